//! Plain data about local devices and calls, shared by the browser glue (`client`) and the
//! components: device lists, media problems, link states and the ICE-restart policy. No
//! browser types, so it compiles and is tested everywhere.

use crate::protocol::{MediaState, PeerId};

/// What the session tells the page.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    /// The cameras and microphones available, and which ones are in use.
    Devices {
        devices: Vec<DeviceInfo>,
        camera: Option<String>,
        microphone: Option<String>,
    },
    /// Opening a device failed (or, with `None`, works again).
    Problem(Option<MediaProblem>),
    /// What this browser now sends: whether a live, enabled mic and camera exist.
    Local(MediaState),
    /// Microphone loudness, 0 to 1.
    Level(f32),
    /// The connection to a call member changed state.
    Link { peer: PeerId, state: LinkState },
    /// A call member's audio or video arrived; their tile should (re)attach.
    RemoteMedia { peer: PeerId },
}

/// A camera or microphone the browser offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: String,
    pub label: String,
    pub kind: DeviceKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Camera,
    Microphone,
}

/// Why the camera or microphone could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaProblem {
    /// The person (or a site setting) refused access.
    PermissionDenied,
    /// There is no camera or microphone at all.
    NoDevice,
    /// The device exists but another program holds it, or it failed to start.
    Unavailable(String),
}

impl MediaProblem {
    /// From the `name` of the DOMException that getUserMedia rejected with.
    pub fn from_error_name(name: &str, message: &str) -> Self {
        match name {
            "NotAllowedError" | "SecurityError" | "PermissionDeniedError" => {
                MediaProblem::PermissionDenied
            }
            "NotFoundError" | "OverconstrainedError" | "DevicesNotFoundError" => {
                MediaProblem::NoDevice
            }
            _ => MediaProblem::Unavailable(format!("{name}: {message}")),
        }
    }

    /// A sentence for the pre-join screen.
    pub fn explain(&self) -> String {
        match self {
            MediaProblem::PermissionDenied => "Camera and microphone access is blocked. Allow it \
                in your browser's site settings and reload, or join without them."
                .to_string(),
            MediaProblem::NoDevice => {
                "No camera or microphone was found. You can still join to listen and chat."
                    .to_string()
            }
            MediaProblem::Unavailable(detail) => format!(
                "The camera or microphone could not be started ({detail}). Close other apps \
                 using it and try again, or join without them."
            ),
        }
    }
}

/// How the connection to one other call member is doing, as its tile shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// The connection dropped; an ICE restart is under way.
    Reconnecting,
    /// Restarts did not help; the connection was closed.
    Failed,
}

impl LinkState {
    pub fn label(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting…",
            LinkState::Connected => "",
            LinkState::Reconnecting => "reconnecting…",
            LinkState::Failed => "connection failed",
        }
    }
}

/// What to do after a peer connection changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    Nothing,
    /// Ask for new ICE candidates on both sides (`RTCPeerConnection.restartIce()`).
    RestartIce,
    /// Close the connection for good.
    GiveUp,
}

/// Decides, from `RTCPeerConnection.connectionState` changes, when to restart ICE and when
/// to give up. A connection that reaches `connected` again earns a fresh set of restarts.
#[derive(Clone, Debug)]
pub struct LinkSupervisor {
    state: LinkState,
    restarts_left: u32,
    max_restarts: u32,
}

impl LinkSupervisor {
    pub fn new(max_restarts: u32) -> Self {
        LinkSupervisor {
            state: LinkState::Connecting,
            restarts_left: max_restarts,
            max_restarts,
        }
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Feeds one `connectionState` value ("new", "connecting", "connected", "disconnected",
    /// "failed", "closed").
    pub fn on_connection_state(&mut self, connection_state: &str) -> LinkAction {
        if self.state == LinkState::Failed {
            return LinkAction::Nothing;
        }
        match connection_state {
            "connected" => {
                self.state = LinkState::Connected;
                self.restarts_left = self.max_restarts;
                LinkAction::Nothing
            }
            "new" | "connecting" => {
                if self.state != LinkState::Reconnecting {
                    self.state = LinkState::Connecting;
                }
                LinkAction::Nothing
            }
            // Often recovers by itself within seconds; show it, wait for "failed" to act.
            "disconnected" => {
                self.state = LinkState::Reconnecting;
                LinkAction::Nothing
            }
            "failed" if self.restarts_left > 0 => {
                self.restarts_left -= 1;
                self.state = LinkState::Reconnecting;
                LinkAction::RestartIce
            }
            "failed" => {
                self.state = LinkState::Failed;
                LinkAction::GiveUp
            }
            _ => LinkAction::Nothing,
        }
    }
}

/// Perfect negotiation needs one polite side per pair: it yields when both offer at once.
/// Deriving it from the ids means both sides agree without talking about it.
pub fn is_polite(me: PeerId, other: PeerId) -> bool {
    me > other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_side_of_each_pair_is_polite() {
        for (a, b) in [(1, 2), (7, 3), (10, 11)] {
            let (a, b) = (PeerId(a), PeerId(b));
            assert_ne!(is_polite(a, b), is_polite(b, a));
        }
    }

    #[test]
    fn a_failed_link_is_restarted_then_given_up() {
        let mut link = LinkSupervisor::new(2);
        assert_eq!(link.on_connection_state("connecting"), LinkAction::Nothing);
        assert_eq!(link.state(), LinkState::Connecting);
        link.on_connection_state("connected");
        assert_eq!(link.state(), LinkState::Connected);
        assert_eq!(
            link.on_connection_state("disconnected"),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Reconnecting);
        assert_eq!(link.on_connection_state("failed"), LinkAction::RestartIce);
        // A restart goes back through "connecting" but still shows as reconnecting.
        link.on_connection_state("connecting");
        assert_eq!(link.state(), LinkState::Reconnecting);
        assert_eq!(link.on_connection_state("failed"), LinkAction::RestartIce);
        assert_eq!(link.on_connection_state("failed"), LinkAction::GiveUp);
        assert_eq!(link.state(), LinkState::Failed);
        assert_eq!(link.on_connection_state("connected"), LinkAction::Nothing);
        assert_eq!(link.state(), LinkState::Failed);
    }

    #[test]
    fn recovering_earns_a_fresh_set_of_restarts() {
        let mut link = LinkSupervisor::new(1);
        link.on_connection_state("connected");
        assert_eq!(link.on_connection_state("failed"), LinkAction::RestartIce);
        link.on_connection_state("connected");
        assert_eq!(link.on_connection_state("failed"), LinkAction::RestartIce);
        assert_eq!(link.on_connection_state("failed"), LinkAction::GiveUp);
    }

    #[test]
    fn get_user_media_errors_map_to_problems() {
        assert_eq!(
            MediaProblem::from_error_name("NotAllowedError", "denied"),
            MediaProblem::PermissionDenied
        );
        assert_eq!(
            MediaProblem::from_error_name("NotFoundError", ""),
            MediaProblem::NoDevice
        );
        let busy = MediaProblem::from_error_name("NotReadableError", "in use");
        assert!(busy.explain().contains("NotReadableError: in use"));
        assert!(MediaProblem::PermissionDenied
            .explain()
            .contains("join without them"));
    }
}
