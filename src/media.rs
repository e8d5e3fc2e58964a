//! Plain data about local devices and calls, shared by the browser glue (`client`) and the
//! components: device lists, media problems, link states and the ICE-restart policy. No
//! browser types, so it compiles and is tested everywhere.

use crate::protocol::{LinkFailure, MediaState, PeerId};

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
    /// Loudness, 0 to 1: this browser's microphone, and each call member's received audio.
    Levels {
        local: f32,
        remote: Vec<(PeerId, f32)>,
    },
    /// The connection to a call member changed state.
    Link { peer: PeerId, state: LinkState },
    /// A call member's audio or video arrived; their tile should (re)attach.
    RemoteMedia { peer: PeerId },
    /// How well each call member's video arrives, from the connections' statistics.
    Quality(Vec<(PeerId, Quality)>),
}

/// How well a call member's video arrives here: what the mark on their tile shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    Good,
    Fair,
    Poor,
}

/// One reading of the statistics of a received video (`getStats`' `inbound-rtp`) and of
/// the connection carrying it. Counters are totals since the stream began.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VideoStats {
    pub packets_received: u64,
    pub packets_lost: u64,
    pub frames_per_second: Option<f64>,
    pub round_trip_ms: Option<f64>,
}

impl Quality {
    /// Judges the time between two readings: loss over it, and the latest round trip and
    /// frame rate. Video calls stay usable to about 2 % loss and 300 ms; past 8 % loss,
    /// 500 ms or 8 frames a second people notice freezing and lag.
    pub fn between(earlier: &VideoStats, now: &VideoStats) -> Quality {
        let received = now
            .packets_received
            .saturating_sub(earlier.packets_received);
        let lost = now.packets_lost.saturating_sub(earlier.packets_lost);
        let loss = if received + lost == 0 {
            0.0
        } else {
            lost as f64 / (received + lost) as f64
        };
        let round_trip = now.round_trip_ms.unwrap_or(0.0);
        // A still picture sends few frames; only a moving stream with packets arriving
        // counts its frame rate.
        let fps = now.frames_per_second.filter(|_| received > 0);
        if loss > 0.08 || round_trip > 500.0 || fps.is_some_and(|f| f < 8.0) {
            Quality::Poor
        } else if loss > 0.02 || round_trip > 300.0 || fps.is_some_and(|f| f < 15.0) {
            Quality::Fair
        } else {
            Quality::Good
        }
    }
}

/// How the browser treats this page's microphone, as the person chose in its menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceProcessing {
    pub noise_suppression: bool,
    pub echo_cancellation: bool,
}

impl Default for VoiceProcessing {
    /// What browsers do unless asked otherwise: both on.
    fn default() -> Self {
        VoiceProcessing {
            noise_suppression: true,
            echo_cancellation: true,
        }
    }
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
    /// It never connected within [`CONNECT_DEADLINE_MS`]: the two networks have no path
    /// between them. Closed on both sides.
    Unreachable,
}

/// How long a new browser-to-browser link may take to connect before both sides give up on
/// it (and, under `--media auto`, the call moves through the server). Browsers on any
/// network with a path connect in well under a second; without one, Chromium itself would
/// keep "checking" for half a minute or more.
pub const CONNECT_DEADLINE_MS: u32 = 15_000;

/// `RTCPeerConnection.connectionState`, as plain data the supervisor can be tested with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// Which kind of track: what `MediaStreamTrack.kind` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
}

impl TrackKind {
    pub const BOTH: [TrackKind; 2] = [TrackKind::Audio, TrackKind::Video];

    /// The browser's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }

    pub fn parse(kind: &str) -> Option<TrackKind> {
        TrackKind::BOTH.into_iter().find(|k| k.as_str() == kind)
    }
}

/// What to do after a peer connection changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    Nothing,
    /// Ask for new ICE candidates on both sides (`RTCPeerConnection.restartIce()`).
    RestartIce,
    /// Close the connection for good and tell the other side why.
    GiveUp(LinkFailure),
}

/// Decides, from `RTCPeerConnection.connectionState` changes, when to restart ICE and when
/// to give up. A connection that reaches `connected` again earns a fresh set of restarts.
#[derive(Clone, Debug)]
pub struct LinkSupervisor {
    state: LinkState,
    restarts_left: u32,
    max_restarts: u32,
    /// A link that never connected is never "reconnecting": it is still connecting.
    ever_connected: bool,
}

impl LinkSupervisor {
    pub fn new(max_restarts: u32) -> Self {
        LinkSupervisor {
            state: LinkState::Connecting,
            restarts_left: max_restarts,
            max_restarts,
            ever_connected: false,
        }
    }

    fn given_up(&self) -> bool {
        matches!(self.state, LinkState::Failed | LinkState::Unreachable)
    }

    fn give_up(&mut self) -> LinkAction {
        if self.ever_connected {
            self.state = LinkState::Failed;
            LinkAction::GiveUp(LinkFailure::Lost)
        } else {
            self.state = LinkState::Unreachable;
            LinkAction::GiveUp(LinkFailure::NeverConnected)
        }
    }

    /// [`CONNECT_DEADLINE_MS`] after the link was opened: a link that never connected is
    /// given up.
    pub fn on_connect_deadline(&mut self) -> LinkAction {
        if self.ever_connected || self.given_up() {
            return LinkAction::Nothing;
        }
        self.give_up()
    }

    /// The other side gave up on the link (the server told us): close ours the same way.
    pub fn on_peer_gave_up(&mut self, reason: LinkFailure) {
        self.state = match reason {
            LinkFailure::NeverConnected => LinkState::Unreachable,
            LinkFailure::Lost => LinkState::Failed,
        };
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// Feeds one `connectionState` value.
    pub fn on_connection_state(&mut self, connection_state: PeerConnectionState) -> LinkAction {
        if self.given_up() {
            return LinkAction::Nothing;
        }
        match connection_state {
            PeerConnectionState::Connected => {
                self.state = LinkState::Connected;
                self.ever_connected = true;
                self.restarts_left = self.max_restarts;
                LinkAction::Nothing
            }
            PeerConnectionState::Disconnected | PeerConnectionState::Failed
                if !self.ever_connected =>
            {
                // Keeps trying until the deadline; "failed" this early means no candidate
                // pair worked yet, and a restart gathers again.
                self.state = LinkState::Connecting;
                if connection_state == PeerConnectionState::Failed && self.restarts_left > 0 {
                    self.restarts_left -= 1;
                    return LinkAction::RestartIce;
                }
                LinkAction::Nothing
            }
            PeerConnectionState::New | PeerConnectionState::Connecting => {
                if self.state != LinkState::Reconnecting {
                    self.state = LinkState::Connecting;
                }
                LinkAction::Nothing
            }
            // Often recovers by itself within seconds; show it, wait for "failed" to act.
            PeerConnectionState::Disconnected => {
                self.state = LinkState::Reconnecting;
                LinkAction::Nothing
            }
            PeerConnectionState::Failed if self.restarts_left > 0 => {
                self.restarts_left -= 1;
                self.state = LinkState::Reconnecting;
                LinkAction::RestartIce
            }
            PeerConnectionState::Failed => self.give_up(),
            PeerConnectionState::Closed => LinkAction::Nothing,
        }
    }
}

/// Picks the active speaker from audio levels, with hysteresis so the highlight does not
/// flicker: someone must be the loudest (above `speaking_level`) for `switch_after_ms` to
/// take over, pauses between syllables shorter than `gap_ms` not counting as stopping, and
/// the current speaker stays until they have been quiet for `silence_after_ms`.
#[derive(Clone, Debug)]
pub struct SpeakerDetector {
    pub speaking_level: f32,
    pub switch_after_ms: u64,
    pub gap_ms: u64,
    pub silence_after_ms: u64,
    current: Option<PeerId>,
    current_last_loud: u64,
    /// Who may take over: since when they speak, and when they last did.
    candidate: Option<(PeerId, u64, u64)>,
}

impl Default for SpeakerDetector {
    fn default() -> Self {
        SpeakerDetector {
            speaking_level: 0.15,
            switch_after_ms: 400,
            gap_ms: 300,
            silence_after_ms: 1500,
            current: None,
            current_last_loud: 0,
            candidate: None,
        }
    }
}

impl SpeakerDetector {
    /// Feeds one round of levels taken at `now_ms`; returns the active speaker.
    pub fn update(&mut self, now_ms: u64, levels: &[(PeerId, f32)]) -> Option<PeerId> {
        let loud = |peer: PeerId| {
            levels
                .iter()
                .any(|(p, level)| *p == peer && *level >= self.speaking_level)
        };
        let loudest = levels
            .iter()
            .filter(|(_, level)| *level >= self.speaking_level)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(peer, _)| *peer);
        if let Some(current) = self.current.filter(|c| loud(*c)) {
            self.current_last_loud = now_ms;
            if loudest == Some(current) {
                self.candidate = None;
            }
        }
        match (loudest, self.candidate) {
            (Some(peer), _) if Some(peer) == self.current => {}
            (Some(peer), Some((candidate, since, _))) if candidate == peer => {
                self.candidate = Some((peer, since, now_ms));
            }
            (Some(peer), _) => self.candidate = Some((peer, now_ms, now_ms)),
            (None, Some((_, _, last_loud))) if now_ms.saturating_sub(last_loud) > self.gap_ms => {
                self.candidate = None;
            }
            (None, _) => {}
        }
        if let Some((peer, since, last_loud)) = self.candidate {
            if last_loud.saturating_sub(since) >= self.switch_after_ms {
                self.current = Some(peer);
                self.current_last_loud = now_ms;
                self.candidate = None;
            }
        }
        if self.current.is_some()
            && now_ms.saturating_sub(self.current_last_loud) >= self.silence_after_ms
        {
            self.current = None;
        }
        self.current
    }
}

/// Perfect negotiation needs one polite side per pair: it yields when both offer at once.
/// Deriving it from the ids means both sides agree without talking about it.
pub fn is_polite(me: PeerId, other: PeerId) -> bool {
    me > other
}

/// How many simulcast layers a camera of `width` × `height` is sent in: three from about
/// 960 × 540, two from 480 × 270, else one. Browsers send no more than this (Chromium drops the
/// largest layers past it), so asking for three from a 640 × 480 camera would leave only the
/// quarter and half sizes, and a large tile with a blurry picture.
pub fn simulcast_layers(width: u32, height: u32) -> usize {
    let pixels = u64::from(width) * u64::from(height);
    if pixels >= 960 * 540 {
        3
    } else if pixels >= 480 * 270 {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::{Quality, VideoStats};

    fn stats(received: u64, lost: u64, fps: f64, rtt: f64) -> VideoStats {
        VideoStats {
            packets_received: received,
            packets_lost: lost,
            frames_per_second: Some(fps),
            round_trip_ms: Some(rtt),
        }
    }

    #[test]
    fn quality_follows_loss_round_trip_and_frame_rate_between_readings() {
        let start = stats(1000, 10, 30.0, 20.0);
        assert_eq!(
            Quality::between(&start, &stats(2000, 15, 30.0, 40.0)),
            Quality::Good
        );
        // 5 % of the packets since the last reading lost; the total before does not count.
        assert_eq!(
            Quality::between(&start, &stats(1950, 60, 30.0, 40.0)),
            Quality::Fair
        );
        assert_eq!(
            Quality::between(&start, &stats(1900, 110, 30.0, 40.0)),
            Quality::Poor
        );
        assert_eq!(
            Quality::between(&start, &stats(2000, 10, 30.0, 350.0)),
            Quality::Fair
        );
        assert_eq!(
            Quality::between(&start, &stats(2000, 10, 30.0, 800.0)),
            Quality::Poor
        );
        assert_eq!(
            Quality::between(&start, &stats(2000, 10, 12.0, 40.0)),
            Quality::Fair
        );
        assert_eq!(
            Quality::between(&start, &stats(2000, 10, 5.0, 40.0)),
            Quality::Poor
        );
        // Nothing arrived since (a camera turned off): the frame rate says nothing.
        assert_eq!(
            Quality::between(&start, &stats(1000, 10, 0.0, 40.0)),
            Quality::Good
        );
        // Counters that went back (a new stream) do not underflow.
        assert_eq!(
            Quality::between(&start, &stats(10, 0, 30.0, 40.0)),
            Quality::Good
        );
    }

    #[test]
    fn cameras_get_as_many_layers_as_browsers_send() {
        use super::simulcast_layers;
        assert_eq!(simulcast_layers(1280, 720), 3);
        assert_eq!(simulcast_layers(1920, 1080), 3);
        assert_eq!(simulcast_layers(640, 480), 2);
        assert_eq!(simulcast_layers(640, 360), 2);
        assert_eq!(simulcast_layers(320, 240), 1);
        assert_eq!(simulcast_layers(0, 0), 1);
    }

    use super::*;
    use PeerConnectionState as State;

    fn feed(
        detector: &mut SpeakerDetector,
        from_ms: u64,
        to_ms: u64,
        levels: &[(PeerId, f32)],
    ) -> Option<PeerId> {
        let mut current = None;
        for now in (from_ms..to_ms).step_by(100) {
            current = detector.update(now, levels);
        }
        current
    }

    #[test]
    fn the_active_speaker_takes_over_only_after_speaking_for_a_while() {
        let (ann, bob) = (PeerId(1), PeerId(2));
        let mut detector = SpeakerDetector::default();
        // A short blip is not enough.
        assert_eq!(detector.update(0, &[(ann, 0.5), (bob, 0.0)]), None);
        assert_eq!(detector.update(100, &[(ann, 0.0), (bob, 0.0)]), None);
        // Speaking for half a second is.
        assert_eq!(
            feed(&mut detector, 200, 800, &[(ann, 0.5), (bob, 0.05)]),
            Some(ann)
        );
        // Bob coughs once: Ann stays.
        assert_eq!(detector.update(800, &[(ann, 0.1), (bob, 0.9)]), Some(ann));
        assert_eq!(detector.update(900, &[(ann, 0.4), (bob, 0.0)]), Some(ann));
        // Bob talks over a pause of Ann's: he takes over after the switch delay.
        assert_eq!(
            feed(&mut detector, 1000, 1600, &[(ann, 0.0), (bob, 0.6)]),
            Some(bob)
        );
        // Silence ends the highlight after a second and a half, not at once.
        assert_eq!(
            feed(&mut detector, 1600, 2500, &[(ann, 0.0), (bob, 0.0)]),
            Some(bob)
        );
        assert_eq!(
            feed(&mut detector, 2500, 3400, &[(ann, 0.0), (bob, 0.0)]),
            None
        );
    }

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
        assert_eq!(
            link.on_connection_state(State::Connecting),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Connecting);
        link.on_connection_state(State::Connected);
        assert_eq!(link.state(), LinkState::Connected);
        assert_eq!(
            link.on_connection_state(State::Disconnected),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Reconnecting);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::RestartIce
        );
        // A restart goes back through "connecting" but still shows as reconnecting.
        link.on_connection_state(State::Connecting);
        assert_eq!(link.state(), LinkState::Reconnecting);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::RestartIce
        );
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::GiveUp(LinkFailure::Lost)
        );
        assert_eq!(link.state(), LinkState::Failed);
        assert_eq!(
            link.on_connection_state(State::Connected),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Failed);
        // Connected once: the deadline no longer applies.
        assert_eq!(link.on_connect_deadline(), LinkAction::Nothing);
    }

    #[test]
    fn a_link_that_never_connects_is_never_reconnecting_and_ends_at_the_deadline() {
        let mut link = LinkSupervisor::new(2);
        link.on_connection_state(State::Connecting);
        assert_eq!(
            link.on_connection_state(State::Disconnected),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Connecting);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::RestartIce
        );
        assert_eq!(link.state(), LinkState::Connecting);
        // Even with restarts left, the deadline ends it, and says why.
        assert_eq!(
            link.on_connect_deadline(),
            LinkAction::GiveUp(LinkFailure::NeverConnected)
        );
        assert_eq!(link.state(), LinkState::Unreachable);
        assert_eq!(link.on_connect_deadline(), LinkAction::Nothing);
        assert_eq!(
            link.on_connection_state(State::Connected),
            LinkAction::Nothing
        );
        assert_eq!(link.state(), LinkState::Unreachable);
    }

    #[test]
    fn a_never_connected_link_out_of_restarts_is_unreachable_not_failed() {
        let mut link = LinkSupervisor::new(1);
        link.on_connection_state(State::Failed);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::Nothing,
            "without restarts left it waits for the deadline"
        );
        assert_eq!(link.state(), LinkState::Connecting);
        assert_eq!(
            link.on_connect_deadline(),
            LinkAction::GiveUp(LinkFailure::NeverConnected)
        );
    }

    #[test]
    fn the_other_side_giving_up_closes_this_side_the_same_way() {
        let mut link = LinkSupervisor::new(3);
        link.on_peer_gave_up(LinkFailure::NeverConnected);
        assert_eq!(link.state(), LinkState::Unreachable);
        assert_eq!(link.on_connect_deadline(), LinkAction::Nothing);
        let mut link = LinkSupervisor::new(3);
        link.on_connection_state(State::Connected);
        link.on_peer_gave_up(LinkFailure::Lost);
        assert_eq!(link.state(), LinkState::Failed);
    }

    #[test]
    fn recovering_earns_a_fresh_set_of_restarts() {
        let mut link = LinkSupervisor::new(1);
        link.on_connection_state(State::Connected);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::RestartIce
        );
        link.on_connection_state(State::Connected);
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::RestartIce
        );
        assert_eq!(
            link.on_connection_state(State::Failed),
            LinkAction::GiveUp(LinkFailure::Lost)
        );
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
        assert_eq!(
            MediaProblem::from_error_name("NotReadableError", "in use"),
            MediaProblem::Unavailable("NotReadableError: in use".into())
        );
    }
}
