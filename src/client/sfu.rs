//! A call through the server: one `RTCPeerConnection` to the forwarding unit, carrying this
//! browser's microphone, camera and screen up and everyone else's down.
//!
//! The browser offers once, with three send-only transceivers in a fixed order (microphone,
//! camera, screen; muting or sharing later only replaces their tracks). After that the
//! server makes every offer, one receive section per track of every other participant, with
//! a map of whose media each section carries; the browser only answers. So the two sides
//! never offer at once and there is no glare to resolve.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    HtmlVideoElement, MediaStream, MediaStreamTrack, RtcPeerConnection, RtcRtpTransceiver,
    RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType, RtcSessionDescriptionInit,
    RtcTrackEvent,
};

use crate::media::{LinkState, MediaEvent, TrackKind};
use crate::protocol::{ClientMsg, IceServer, PeerId, RemoteTrack, TrackSource};

use super::call::{rtc_configuration, set_local_description, LocalTracks};

type Sender = Rc<dyn Fn(ClientMsg)>;
type Events = Rc<dyn Fn(MediaEvent)>;
type EventHandler = Closure<dyn FnMut(JsValue)>;

/// One description from the server, applied in order.
enum FromServer {
    Answer(String),
    Offer(String, Vec<RemoteTrack>),
}

/// A participant's received media.
struct Remote {
    camera: MediaStream,
    screen: MediaStream,
}

struct Shared {
    pc: RtcPeerConnection,
    send: Sender,
    events: Events,
    microphone: RtcRtpTransceiver,
    camera: RtcRtpTransceiver,
    screen: RtcRtpTransceiver,
    /// Whose media each receive section carries, from the server's latest offer.
    tracks: RefCell<HashMap<String, RemoteTrack>>,
    remotes: RefCell<HashMap<PeerId, Remote>>,
    inbox: RefCell<VecDeque<FromServer>>,
    draining: Cell<bool>,
    handlers: RefCell<Vec<EventHandler>>,
}

/// This browser's connection to the server's forwarding unit.
pub struct SfuCall {
    shared: Rc<Shared>,
}

impl SfuCall {
    /// Opens the connection and sends the offer.
    pub fn start(
        ice_servers: &[IceServer],
        tracks: LocalTracks,
        send: Sender,
        events: Events,
    ) -> Option<SfuCall> {
        let pc = RtcPeerConnection::new_with_configuration(&rtc_configuration(ice_servers)).ok()?;
        let add = |kind: &str, track: Option<&MediaStreamTrack>| {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Sendonly);
            match track {
                Some(track) => pc.add_transceiver_with_media_stream_track_and_init(track, &init),
                None => pc.add_transceiver_with_str_and_init(kind, &init),
            }
        };
        let microphone = add("audio", tracks.audio.as_ref());
        let camera = add("video", tracks.video.as_ref());
        let screen = add("video", tracks.screen.as_ref());
        let shared = Rc::new(Shared {
            pc,
            send,
            events,
            microphone,
            camera,
            screen,
            tracks: RefCell::new(HashMap::new()),
            remotes: RefCell::new(HashMap::new()),
            inbox: RefCell::new(VecDeque::new()),
            draining: Cell::new(false),
            handlers: RefCell::new(Vec::new()),
        });
        install_handlers(&shared);
        let offering = Rc::clone(&shared);
        spawn_local(async move {
            match set_local_description(&offering.pc).await {
                Ok(()) => {
                    if let Some(description) = offering.pc.local_description() {
                        for part in ClientMsg::media_description(&description.sdp(), true) {
                            (offering.send)(part);
                        }
                    }
                }
                Err(error) => leptos::logging::warn!("offer to the server failed: {error:?}"),
            }
        });
        Some(SfuCall { shared })
    }

    pub fn on_answer(&self, sdp: String) {
        self.queue(FromServer::Answer(sdp));
    }

    pub fn on_offer(&self, sdp: String, tracks: Vec<RemoteTrack>) {
        self.queue(FromServer::Offer(sdp, tracks));
    }

    /// Descriptions are applied one after the other: each waits for the previous to finish.
    fn queue(&self, description: FromServer) {
        let shared = &self.shared;
        shared.inbox.borrow_mut().push_back(description);
        if shared.draining.replace(true) {
            return;
        }
        let shared = Rc::clone(shared);
        spawn_local(async move {
            loop {
                let next = shared.inbox.borrow_mut().pop_front();
                let Some(description) = next else { break };
                if let Err(error) = shared.apply(description).await {
                    leptos::logging::warn!("description from the server failed: {error:?}");
                }
            }
            shared.draining.set(false);
        });
    }

    /// Sends `track` (or nothing) as this browser's microphone or camera.
    pub fn replace_track(&self, kind: TrackKind, track: Option<&MediaStreamTrack>) {
        let transceiver = match kind {
            TrackKind::Audio => &self.shared.microphone,
            TrackKind::Video => &self.shared.camera,
        };
        let _ = transceiver.sender().replace_track(track);
    }

    pub fn set_screen(&self, track: Option<&MediaStreamTrack>) {
        let _ = self.shared.screen.sender().replace_track(track);
    }

    pub fn attach(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, element, |remote| &remote.camera)
    }

    pub fn attach_screen(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, element, |remote| &remote.screen)
    }

    fn attach_stream(
        &self,
        peer: PeerId,
        element: &HtmlVideoElement,
        stream: fn(&Remote) -> &MediaStream,
    ) -> bool {
        match self.shared.remotes.borrow().get(&peer) {
            Some(remote) => {
                super::media::attach(element, Some(stream(remote)));
                true
            }
            None => false,
        }
    }

    /// Every participant's received microphone, for the speaker detection.
    pub fn remote_audio(&self) -> Vec<(PeerId, MediaStreamTrack)> {
        self.shared
            .remotes
            .borrow()
            .iter()
            .filter_map(|(&peer, remote)| {
                let track = remote.camera.get_audio_tracks().get(0);
                (!track.is_undefined()).then(|| (peer, track.unchecked_into()))
            })
            .collect()
    }

    /// A participant left: their streams go (the server removes their sections too).
    pub fn forget(&self, peer: PeerId) {
        self.shared.remotes.borrow_mut().remove(&peer);
    }

    pub fn close(&self) {
        let pc = &self.shared.pc;
        pc.set_ontrack(None);
        pc.set_onconnectionstatechange(None);
        pc.close();
        self.shared.handlers.borrow_mut().clear();
    }
}

impl Drop for SfuCall {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    async fn apply(&self, description: FromServer) -> Result<(), JsValue> {
        match description {
            FromServer::Answer(sdp) => self.set_remote(RtcSdpType::Answer, &sdp).await,
            FromServer::Offer(sdp, tracks) => {
                // The map must be in place before the offer fires its track events.
                *self.tracks.borrow_mut() = tracks
                    .into_iter()
                    .map(|track| (track.mid.clone(), track))
                    .collect();
                self.set_remote(RtcSdpType::Offer, &sdp).await?;
                set_local_description(&self.pc).await?;
                if let Some(answer) = self.pc.local_description() {
                    // An answer for a large call is longer than one message.
                    for part in ClientMsg::media_description(&answer.sdp(), false) {
                        (self.send)(part);
                    }
                }
                self.drop_ended();
                Ok(())
            }
        }
    }

    async fn set_remote(&self, sdp_type: RtcSdpType, sdp: &str) -> Result<(), JsValue> {
        let init = RtcSessionDescriptionInit::new(sdp_type);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init))
            .await
            .map(|_| ())
    }

    fn on_track(&self, event: &RtcTrackEvent) {
        let Some(mid) = event.transceiver().mid() else {
            return;
        };
        let Some(info) = self.tracks.borrow().get(&mid).cloned() else {
            return;
        };
        let track = event.track();
        let fresh = {
            let mut remotes = self.remotes.borrow_mut();
            let fresh = !remotes.contains_key(&info.peer);
            let remote = remotes.entry(info.peer).or_insert_with(Remote::new);
            let stream = match info.source {
                TrackSource::Microphone | TrackSource::Camera => &remote.camera,
                TrackSource::Screen => &remote.screen,
            };
            for old in stream.get_tracks().iter() {
                let old: MediaStreamTrack = old.unchecked_into();
                if old.kind() == track.kind() && old.id() != track.id() {
                    stream.remove_track(&old);
                }
            }
            stream.add_track(&track);
            fresh
        };
        if fresh {
            (self.events)(MediaEvent::Link {
                peer: info.peer,
                state: LinkState::Connected,
            });
        }
        (self.events)(MediaEvent::RemoteMedia { peer: info.peer });
    }

    /// Participants none of whose sections are left (they left the call) are forgotten.
    fn drop_ended(&self) {
        let tracks = self.tracks.borrow();
        self.remotes
            .borrow_mut()
            .retain(|peer, _| tracks.values().any(|t| t.peer == *peer));
    }

    fn on_connection_state(&self) {
        let state = match self.pc.connection_state() {
            web_sys::RtcPeerConnectionState::Connected => LinkState::Connected,
            web_sys::RtcPeerConnectionState::Failed | web_sys::RtcPeerConnectionState::Closed => {
                LinkState::Failed
            }
            _ => LinkState::Connecting,
        };
        if state == LinkState::Failed {
            leptos::logging::warn!("the connection to the server's media failed");
        }
        let peers: Vec<PeerId> = self.remotes.borrow().keys().copied().collect();
        for peer in peers {
            (self.events)(MediaEvent::Link { peer, state });
        }
    }
}

impl Remote {
    fn new() -> Remote {
        Remote {
            camera: MediaStream::new().expect("MediaStream is available"),
            screen: MediaStream::new().expect("MediaStream is available"),
        }
    }
}

/// Handlers hold weak references: the connection must not keep itself alive.
fn install_handlers(shared: &Rc<Shared>) {
    let handler = |action: fn(&Shared, JsValue)| {
        let shared: Weak<Shared> = Rc::downgrade(shared);
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            if let Some(shared) = shared.upgrade() {
                action(&shared, event);
            }
        })
    };
    let track = handler(|shared, event| shared.on_track(&event.unchecked_into()));
    let state = handler(|shared, _| shared.on_connection_state());
    shared.pc.set_ontrack(Some(track.as_ref().unchecked_ref()));
    shared
        .pc
        .set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
    shared.handlers.borrow_mut().extend([track, state]);
}
