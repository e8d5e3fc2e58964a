//! A call through the server: one `RTCPeerConnection` to the forwarding unit, carrying this
//! browser's microphone, camera and screen up and everyone else's down.
//!
//! The browser offers once, with three send-only transceivers in a fixed order (microphone,
//! camera, screen; muting or sharing later only replaces their tracks). After that the
//! server makes every offer, one receive section per track of every other participant, with
//! a map of whose media each section carries; the browser only answers. So the two sides
//! never offer at once and there is no glare to resolve.
//!
//! The camera goes up in three simulcast layers; twice a second the page tells the server at
//! which size it shows each of the others' videos (`view`, only when that changed), and the
//! server sends each the layer that fills its tile, or nothing for a tile off screen.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Interval;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    HtmlVideoElement, MediaStream, MediaStreamTrack, RtcPeerConnection, RtcRtpEncodingParameters,
    RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType,
    RtcSessionDescriptionInit, RtcTrackEvent,
};

use crate::media::{simulcast_layers, LinkState, MediaEvent, PeerConnectionState, TrackKind};
use crate::protocol::{ClientMsg, IceServer, PeerId, RemoteTrack, TileView, TrackSource};

use super::call::{connection_state, rtc_configuration, set_local_description, LocalTracks};

type Sender = Rc<dyn Fn(ClientMsg)>;
type Events = Rc<dyn Fn(MediaEvent)>;
/// Told `true` when the connection to the server connects, `false` when it fails.
type Watch = Rc<dyn Fn(bool)>;
type EventHandler = Closure<dyn FnMut(JsValue)>;

/// The camera's simulcast layers: rid, how much smaller than the camera, and the most bits
/// per second each may use. A smaller camera sends only the largest of them (see
/// `simulcast_layers`).
const CAMERA_LAYERS: [(&str, f32, u32); 3] = [
    ("q", 4.0, 150_000),
    ("h", 2.0, 500_000),
    ("f", 1.0, 1_500_000),
];

/// How often tile sizes are checked for a change worth telling the server.
const VIEW_CHECK_MS: u32 = 500;

/// Tile sizes are rounded to this many pixels, so a window being dragged wider does not send
/// a `view` for every pixel.
const VIEW_ROUNDING: u32 = 16;

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
    watch: Watch,
    microphone: RtcRtpTransceiver,
    camera: RtcRtpTransceiver,
    screen: RtcRtpTransceiver,
    /// Whose media each receive section carries, from the server's latest offer.
    tracks: RefCell<HashMap<String, RemoteTrack>>,
    remotes: RefCell<HashMap<PeerId, Remote>>,
    inbox: RefCell<VecDeque<FromServer>>,
    draining: Cell<bool>,
    handlers: RefCell<Vec<EventHandler>>,
    /// Where each of the others' videos is shown, for the sizes in `view`.
    elements: RefCell<HashMap<(PeerId, TrackSource), HtmlVideoElement>>,
    /// The last `view` sent.
    view: RefCell<Vec<TileView>>,
}

/// This browser's connection to the server's forwarding unit.
pub struct SfuCall {
    shared: Rc<Shared>,
    _view_check: Interval,
}

impl SfuCall {
    /// Opens the connection and sends the offer.
    pub fn start(
        ice_servers: &[IceServer],
        tracks: LocalTracks,
        send: Sender,
        events: Events,
        watch: Watch,
    ) -> Option<SfuCall> {
        let pc = RtcPeerConnection::new_with_configuration(&rtc_configuration(ice_servers)).ok()?;
        let add = |kind: &str, track: Option<&MediaStreamTrack>, layers: Option<js_sys::Array>| {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Sendonly);
            if let Some(layers) = layers {
                init.set_send_encodings(&layers);
            }
            match track {
                Some(track) => pc.add_transceiver_with_media_stream_track_and_init(track, &init),
                None => pc.add_transceiver_with_str_and_init(kind, &init),
            }
        };
        let microphone = add("audio", tracks.audio.as_ref(), None);
        let camera = add(
            "video",
            tracks.video.as_ref(),
            camera_layers(tracks.video.as_ref()),
        );
        // A shared screen goes as one stream: text must stay sharp, and one sharer has few
        // viewers to adapt to.
        let screen = add("video", tracks.screen.as_ref(), None);
        let shared = Rc::new(Shared {
            pc,
            send,
            events,
            watch,
            microphone,
            camera,
            screen,
            tracks: RefCell::new(HashMap::new()),
            remotes: RefCell::new(HashMap::new()),
            inbox: RefCell::new(VecDeque::new()),
            draining: Cell::new(false),
            handlers: RefCell::new(Vec::new()),
            elements: RefCell::new(HashMap::new()),
            view: RefCell::new(Vec::new()),
        });
        install_handlers(&shared);
        let watched = Rc::downgrade(&shared);
        let view_check = Interval::new(VIEW_CHECK_MS, move || {
            if let Some(shared) = watched.upgrade() {
                shared.report_view();
            }
        });
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
        Some(SfuCall {
            shared,
            _view_check: view_check,
        })
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

    /// The connection and whose camera each receive section carries, for its statistics.
    pub fn camera_owners(&self) -> (RtcPeerConnection, HashMap<String, PeerId>) {
        let owners = self
            .shared
            .tracks
            .borrow()
            .iter()
            .filter(|(_, track)| track.source == TrackSource::Camera)
            .map(|(mid, track)| (mid.clone(), track.peer))
            .collect();
        (self.shared.pc.clone(), owners)
    }

    pub fn attach(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, TrackSource::Camera, element, |remote| &remote.camera)
    }

    pub fn attach_screen(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, TrackSource::Screen, element, |remote| &remote.screen)
    }

    fn attach_stream(
        &self,
        peer: PeerId,
        source: TrackSource,
        element: &HtmlVideoElement,
        stream: fn(&Remote) -> &MediaStream,
    ) -> bool {
        self.shared
            .elements
            .borrow_mut()
            .insert((peer, source), element.clone());
        match self.shared.remotes.borrow().get(&peer) {
            // Only once media flows: until then the tile keeps what it shows (the call's
            // earlier connection, while it switches here), and the first packet of each track
            // brings it back here (`RemoteMedia` on unmute).
            Some(remote) if has_media(stream(remote)) => {
                super::media::attach(element, Some(stream(remote)));
                true
            }
            _ => false,
        }
    }

    /// A participant left: their streams go (the server removes their sections too).
    pub fn forget(&self, peer: PeerId) {
        self.shared.remotes.borrow_mut().remove(&peer);
        self.shared
            .elements
            .borrow_mut()
            .retain(|(shown, _), _| *shown != peer);
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
        // A received track is muted until its first packet arrives: that is when the tile
        // can show it.
        let events = Rc::clone(&self.events);
        let peer = info.peer;
        let unmuted = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            events(MediaEvent::RemoteMedia { peer });
        });
        track.set_onunmute(Some(unmuted.as_ref().unchecked_ref()));
        self.handlers.borrow_mut().push(unmuted);
        (self.events)(MediaEvent::RemoteMedia { peer: info.peer });
    }

    /// Tells the server the size of every video it sends this page, if any changed: each
    /// track in the server's map, at its element's size on screen, or 0 × 0 when it is not
    /// on screen (scrolled away, hidden, its tile gone).
    fn report_view(&self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let scale = window.device_pixel_ratio();
        let viewport = (
            window
                .inner_width()
                .ok()
                .and_then(|w| w.as_f64())
                .unwrap_or(0.0),
            window
                .inner_height()
                .ok()
                .and_then(|h| h.as_f64())
                .unwrap_or(0.0),
        );
        let mut shown: Vec<(PeerId, TrackSource)> = self
            .tracks
            .borrow()
            .values()
            .filter(|track| track.source != TrackSource::Microphone)
            .map(|track| (track.peer, track.source))
            .collect();
        shown.sort_by_key(|&(peer, source)| (peer, source as u8));
        shown.dedup();
        let elements = self.elements.borrow();
        // A video with no element yet (its tile is being drawn) is left out, which the server
        // reads as "the best you can": pausing it would make a newly arrived video wait for
        // the next check.
        let tiles: Vec<TileView> = shown
            .into_iter()
            .filter_map(|(peer, source)| {
                let element = elements.get(&(peer, source))?;
                let (width, height) = on_screen_size(element, viewport, scale);
                Some(TileView {
                    peer,
                    source,
                    width,
                    height,
                })
            })
            .collect();
        if *self.view.borrow() == tiles {
            return;
        }
        (self.send)(ClientMsg::View {
            tiles: tiles.clone(),
        });
        *self.view.borrow_mut() = tiles;
    }

    /// Participants none of whose sections are left (they left the call) are forgotten.
    fn drop_ended(&self) {
        let tracks = self.tracks.borrow();
        self.remotes
            .borrow_mut()
            .retain(|peer, _| tracks.values().any(|t| t.peer == *peer));
    }

    fn on_connection_state(&self) {
        let state = match connection_state(self.pc.connection_state()) {
            PeerConnectionState::Connected => LinkState::Connected,
            PeerConnectionState::Failed | PeerConnectionState::Closed => LinkState::Failed,
            _ => LinkState::Connecting,
        };
        match state {
            LinkState::Failed => {
                leptos::logging::warn!("the connection to the server's media failed");
                (self.watch)(false);
            }
            LinkState::Connected => (self.watch)(true),
            _ => {}
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

/// Whether any track of `stream` has received media.
fn has_media(stream: &MediaStream) -> bool {
    stream
        .get_tracks()
        .iter()
        .any(|track| !track.unchecked_into::<MediaStreamTrack>().muted())
}

/// The camera's layers, smallest first, as `sendEncodings`: as many as the camera's size
/// allows (three when it is off: a camera turned on later is usually 720p); none for a camera
/// too small to simulcast.
fn camera_layers(camera: Option<&MediaStreamTrack>) -> Option<js_sys::Array> {
    let count = camera.map_or(CAMERA_LAYERS.len(), |track| {
        let settings = track.get_settings();
        let side = |side: Option<i32>| side.map_or(0, |pixels| pixels.max(0) as u32);
        simulcast_layers(side(settings.get_width()), side(settings.get_height()))
    });
    if count < 2 {
        return None;
    }
    let layers = CAMERA_LAYERS[CAMERA_LAYERS.len() - count..]
        .iter()
        .map(|&(rid, scale_down, max_bitrate)| {
            let layer = RtcRtpEncodingParameters::new();
            layer.set_rid(rid);
            layer.set_scale_resolution_down_by(scale_down);
            layer.set_max_bitrate(max_bitrate);
            JsValue::from(layer)
        })
        .collect();
    Some(layers)
}

/// How large `element` is on screen in device pixels, rounded; 0 × 0 when it is detached,
/// hidden or outside the window.
fn on_screen_size(element: &HtmlVideoElement, viewport: (f64, f64), scale: f64) -> (u32, u32) {
    if !element.is_connected() {
        return (0, 0);
    }
    let rect = element.get_bounding_client_rect();
    let outside = rect.right() <= 0.0
        || rect.bottom() <= 0.0
        || rect.left() >= viewport.0
        || rect.top() >= viewport.1;
    if outside || rect.width() < 1.0 || rect.height() < 1.0 {
        return (0, 0);
    }
    let round = |pixels: f64| {
        let pixels = (pixels * scale).round() as u32;
        pixels.div_ceil(VIEW_ROUNDING) * VIEW_ROUNDING
    };
    (round(rect.width()), round(rect.height()))
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
