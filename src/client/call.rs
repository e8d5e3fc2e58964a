//! The WebRTC mesh: one `RTCPeerConnection` per other call member, negotiated with the
//! "perfect negotiation" pattern (polite/impolite roles from the peer ids) over the room's
//! WebSocket, so that two sides offering at once never deadlock.
//!
//! Each connection has two base transceivers, audio then video, created by whoever dials
//! (the member who joined the call later) and adopted by the other side. Switching or muting
//! a device replaces the track on those senders, which needs no renegotiation. A member whose
//! tile of us is on another page asks us to pause our camera on their link alone
//! (`Signal::Video`): its encoding goes inactive, so nothing is sent or encoded for them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    HtmlVideoElement, MediaStream, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit,
    RtcIceServer, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState,
    RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState, RtcTrackEvent,
};

use crate::media::{
    is_polite, LinkAction, LinkState, LinkSupervisor, MediaEvent, PeerConnectionState, TrackKind,
    CONNECT_DEADLINE_MS,
};
use crate::protocol::{ClientMsg, IceServer, LinkFailure, PeerId, SdpType, Signal};

/// ICE restarts tried before a connection is given up.
const MAX_ICE_RESTARTS: u32 = 3;

/// The tracks this browser sends to every call member; `None` sends nothing of that kind.
#[derive(Clone, Default)]
pub struct LocalTracks {
    pub audio: Option<MediaStreamTrack>,
    pub video: Option<MediaStreamTrack>,
    /// A shared screen, sent on a third transceiver of its own.
    pub screen: Option<MediaStreamTrack>,
}

impl LocalTracks {
    fn of_kind(&self, kind: TrackKind) -> Option<&MediaStreamTrack> {
        match kind {
            TrackKind::Audio => self.audio.as_ref(),
            TrackKind::Video => self.video.as_ref(),
        }
    }
}

type Sender = Rc<dyn Fn(ClientMsg)>;
/// Members whose camera this page does not show now (their tile is on another page): kept
/// by the media session across calls, read by each call as its links open.
pub type UnwantedCameras = Rc<RefCell<HashSet<PeerId>>>;
type EventHandler = Closure<dyn FnMut(JsValue)>;
type Events = Rc<dyn Fn(MediaEvent)>;

struct Shared {
    configuration: RtcConfiguration,
    me: PeerId,
    tracks: RefCell<LocalTracks>,
    links: RefCell<HashMap<PeerId, Rc<Link>>>,
    /// Members whose camera we do not show now: asked to pause it.
    unwanted: UnwantedCameras,
    /// Members who do not show our camera now: we send it them paused.
    paused_for: RefCell<HashSet<PeerId>>,
    send: Sender,
    events: Events,
}

/// The connection to one other call member.
struct Link {
    peer: PeerId,
    pc: RtcPeerConnection,
    polite: bool,
    making_offer: Cell<bool>,
    ignore_offer: Cell<bool>,
    supervisor: RefCell<LinkSupervisor>,
    /// The member's camera and microphone as one stream, for their tile.
    camera: MediaStream,
    /// The member's shared screen, if they share one.
    screen: MediaStream,
    /// Our own screen-sharing transceiver on this connection, once we shared.
    screen_sender: RefCell<Option<RtcRtpTransceiver>>,
    /// Signals wait here so that each is applied after the previous one finished.
    inbox: RefCell<VecDeque<Signal>>,
    draining: Cell<bool>,
    handlers: RefCell<Vec<EventHandler>>,
}

/// All connections of this browser's call.
pub struct Call {
    shared: Rc<Shared>,
}

impl Call {
    pub fn new(
        me: PeerId,
        ice_servers: &[IceServer],
        tracks: LocalTracks,
        unwanted: UnwantedCameras,
        send: Sender,
        events: Events,
    ) -> Call {
        Call {
            shared: Rc::new(Shared {
                configuration: rtc_configuration(ice_servers),
                me,
                tracks: RefCell::new(tracks),
                links: RefCell::new(HashMap::new()),
                unwanted,
                paused_for: RefCell::new(HashSet::new()),
                send,
                events,
            }),
        }
    }

    /// Connects to `peer`, making the first offer: used for members already in the call when
    /// this browser joins it.
    pub fn dial(&self, peer: PeerId) {
        if self.shared.links.borrow().contains_key(&peer) {
            return;
        }
        let Some(link) = Link::open(&self.shared, peer) else {
            return;
        };
        let tracks = self.shared.tracks.borrow().clone();
        for kind in TrackKind::BOTH {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Sendrecv);
            // Adding the transceivers fires negotiationneeded, which sends the offer.
            match tracks.of_kind(kind) {
                Some(track) => {
                    link.pc
                        .add_transceiver_with_media_stream_track_and_init(track, &init);
                }
                None => {
                    link.pc
                        .add_transceiver_with_str_and_init(kind.as_str(), &init);
                }
            }
        }
        if let Some(screen) = &tracks.screen {
            link.set_screen(Some(screen));
        }
        link.sync_video_sending(&self.shared);
    }

    /// `peer`'s camera went off this page (they are asked to stop sending it to us) or came
    /// back (to send it again). A link opened later asks by itself, from `UnwantedCameras`.
    pub fn want_video(&self, peer: PeerId, wanted: bool) {
        let link = self.shared.links.borrow().get(&peer).cloned();
        if let Some(link) = link {
            link.send(&self.shared, Signal::Video { wanted });
        }
    }

    /// Starts or stops sending a shared screen to every member. The first share adds a
    /// transceiver (one renegotiation); later ones only replace its track.
    pub fn set_screen(&self, track: Option<&MediaStreamTrack>) {
        self.shared.tracks.borrow_mut().screen = track.cloned();
        for link in self.shared.links.borrow().values() {
            link.set_screen(track);
        }
    }

    /// Shows `peer`'s shared screen in `element`.
    pub fn attach_screen(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, element, |link| &link.screen)
    }

    /// Every member's received microphone, for the speaker detection.
    /// Each link's connection, for reading its statistics.
    pub fn connections(&self) -> Vec<(PeerId, RtcPeerConnection)> {
        self.shared
            .links
            .borrow()
            .values()
            .map(|link| (link.peer, link.pc.clone()))
            .collect()
    }

    pub fn remote_audio(&self) -> Vec<(PeerId, MediaStreamTrack)> {
        self.shared
            .links
            .borrow()
            .values()
            .filter_map(|link| {
                let track = link.camera.get_audio_tracks().get(0);
                (!track.is_undefined()).then(|| (link.peer, track.unchecked_into()))
            })
            .collect()
    }

    /// Applies signaling from `from`, opening a connection for a first offer.
    pub fn on_signal(&self, from: PeerId, signal: Signal) {
        // A wish, not a negotiation step: kept at once, and it opens no connection (it may
        // come before the offer of the link it is about).
        if let Signal::Video { wanted } = signal {
            if wanted {
                self.shared.paused_for.borrow_mut().remove(&from);
            } else {
                self.shared.paused_for.borrow_mut().insert(from);
            }
            let link = self.shared.links.borrow().get(&from).cloned();
            if let Some(link) = link {
                link.sync_video_sending(&self.shared);
            }
            return;
        }
        let existing = self.shared.links.borrow().get(&from).cloned();
        let link = match existing {
            Some(link) => link,
            None => match Link::open(&self.shared, from) {
                Some(link) => link,
                None => return,
            },
        };
        link.inbox.borrow_mut().push_back(signal);
        if !link.draining.replace(true) {
            let shared = Rc::clone(&self.shared);
            spawn_local(async move {
                loop {
                    let next = link.inbox.borrow_mut().pop_front();
                    let Some(signal) = next else { break };
                    link.apply(&shared, signal).await;
                }
                link.draining.set(false);
            });
        }
    }

    /// `peer` gave up on its link to us: ours closes too, showing why on their tile.
    pub fn on_peer_gave_up(&self, peer: PeerId, reason: LinkFailure) {
        let link = self.shared.links.borrow().get(&peer).cloned();
        if let Some(link) = link {
            link.supervisor.borrow_mut().on_peer_gave_up(reason);
            link.pc.close();
            link.report(&self.shared);
        }
    }

    /// Closes the connection to a member who left the call.
    pub fn hang_up(&self, peer: PeerId) {
        self.shared.paused_for.borrow_mut().remove(&peer);
        let link = self.shared.links.borrow_mut().remove(&peer);
        if let Some(link) = link {
            link.close();
        }
    }

    /// Sends `track` (or nothing) as this browser's audio or video to every member.
    pub fn replace_track(&self, kind: TrackKind, track: Option<&MediaStreamTrack>) {
        {
            let mut tracks = self.shared.tracks.borrow_mut();
            match kind {
                TrackKind::Audio => tracks.audio = track.cloned(),
                TrackKind::Video => tracks.video = track.cloned(),
            }
        }
        for link in self.shared.links.borrow().values() {
            if let Some(transceiver) = base_transceiver(&link.pc, kind) {
                let _ = transceiver.sender().replace_track(track);
            }
        }
    }

    /// Shows `peer`'s camera and microphone in `element`.
    pub fn attach(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_stream(peer, element, |link| &link.camera)
    }

    fn attach_stream(
        &self,
        peer: PeerId,
        element: &HtmlVideoElement,
        stream: fn(&Link) -> &MediaStream,
    ) -> bool {
        match self.shared.links.borrow().get(&peer) {
            Some(link) => {
                super::media::attach(element, Some(stream(link)));
                true
            }
            None => false,
        }
    }

    pub fn close(&self) {
        let links: Vec<_> = self.shared.links.borrow_mut().drain().collect();
        for (_, link) in links {
            link.close();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.close();
    }
}

impl Link {
    fn open(shared: &Rc<Shared>, peer: PeerId) -> Option<Rc<Link>> {
        let pc = RtcPeerConnection::new_with_configuration(&shared.configuration).ok()?;
        let link = Rc::new(Link {
            peer,
            polite: is_polite(shared.me, peer),
            pc,
            making_offer: Cell::new(false),
            ignore_offer: Cell::new(false),
            supervisor: RefCell::new(LinkSupervisor::new(MAX_ICE_RESTARTS)),
            camera: MediaStream::new().ok()?,
            screen: MediaStream::new().ok()?,
            screen_sender: RefCell::new(None),
            inbox: RefCell::new(VecDeque::new()),
            draining: Cell::new(false),
            handlers: RefCell::new(Vec::new()),
        });
        Link::install_handlers(&link, shared);
        shared.links.borrow_mut().insert(peer, Rc::clone(&link));
        // Held weakly: a link closed and replaced before the deadline is not judged by it.
        let (weak_link, weak_shared) = (Rc::downgrade(&link), Rc::downgrade(shared));
        crate::client::after(CONNECT_DEADLINE_MS, move || {
            if let (Some(link), Some(shared)) = (weak_link.upgrade(), weak_shared.upgrade()) {
                let action = link.supervisor.borrow_mut().on_connect_deadline();
                link.act(&shared, action);
            }
        });
        (shared.events)(MediaEvent::Link {
            peer,
            state: LinkState::Connecting,
        });
        if shared.unwanted.borrow().contains(&peer) {
            link.send(shared, Signal::Video { wanted: false });
        }
        Some(link)
    }

    /// Handlers hold weak references: the connection must not keep itself alive.
    fn install_handlers(link: &Rc<Link>, shared: &Rc<Shared>) {
        let handler = |action: fn(&Rc<Link>, &Rc<Shared>, JsValue)| {
            let link = Rc::downgrade(link);
            let shared = Rc::downgrade(shared);
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let (Some(link), Some(shared)) = (Weak::upgrade(&link), Weak::upgrade(&shared)) {
                    action(&link, &shared, event);
                }
            })
        };
        let negotiation = handler(|link, shared, _| {
            let (link, shared) = (Rc::clone(link), Rc::clone(shared));
            spawn_local(async move { link.offer(&shared).await });
        });
        let candidate = handler(|link, shared, event| {
            let event: RtcPeerConnectionIceEvent = event.unchecked_into();
            if let Some(candidate) = event.candidate() {
                link.send(
                    shared,
                    Signal::Candidate {
                        candidate: candidate.candidate(),
                        sdp_mid: candidate.sdp_mid(),
                        sdp_m_line_index: candidate.sdp_m_line_index(),
                    },
                );
            }
        });
        let track = handler(|link, shared, event| {
            let event: RtcTrackEvent = event.unchecked_into();
            link.on_track(shared, &event);
        });
        let state = handler(|link, shared, _| link.on_connection_state(shared));
        link.pc
            .set_onnegotiationneeded(Some(negotiation.as_ref().unchecked_ref()));
        link.pc
            .set_onicecandidate(Some(candidate.as_ref().unchecked_ref()));
        link.pc.set_ontrack(Some(track.as_ref().unchecked_ref()));
        link.pc
            .set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
        link.handlers
            .borrow_mut()
            .extend([negotiation, candidate, track, state]);
    }

    fn set_screen(&self, track: Option<&MediaStreamTrack>) {
        if let Some(transceiver) = self.screen_sender.borrow().as_ref() {
            let _ = transceiver.sender().replace_track(track);
            return;
        }
        if let Some(track) = track {
            let init = RtcRtpTransceiverInit::new();
            init.set_direction(RtcRtpTransceiverDirection::Sendonly);
            // Fires negotiationneeded; perfect negotiation sends the offer.
            let transceiver = self
                .pc
                .add_transceiver_with_media_stream_track_and_init(track, &init);
            *self.screen_sender.borrow_mut() = Some(transceiver);
        }
    }

    fn send(&self, shared: &Shared, signal: Signal) {
        (shared.send)(ClientMsg::Signal {
            to: self.peer,
            signal,
        });
    }

    fn send_local_description(&self, shared: &Shared) {
        if let Some(description) = self.pc.local_description() {
            self.send(
                shared,
                Signal::Description {
                    sdp_type: sdp_type_of(description.type_()),
                    sdp: description.sdp(),
                },
            );
        }
    }

    /// negotiationneeded: make and send an offer, unless the other side's offer wins.
    async fn offer(&self, shared: &Shared) {
        self.making_offer.set(true);
        match set_local_description(&self.pc).await {
            Ok(()) => self.send_local_description(shared),
            Err(error) => leptos::logging::warn!("offer to {} failed: {error:?}", self.peer),
        }
        self.making_offer.set(false);
    }

    async fn apply(&self, shared: &Shared, signal: Signal) {
        match signal {
            Signal::Description { sdp_type, sdp } => {
                if let Err(error) = self.on_description(shared, sdp_type, &sdp).await {
                    leptos::logging::warn!("description from {} failed: {error:?}", self.peer);
                }
            }
            // Taken in `on_signal`, never queued.
            Signal::Video { .. } => {}
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
            } => {
                let init = RtcIceCandidateInit::new(&candidate);
                init.set_sdp_mid(sdp_mid.as_deref());
                init.set_sdp_m_line_index(sdp_m_line_index);
                let added = JsFuture::from(
                    self.pc
                        .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
                )
                .await;
                // Candidates for an offer this side ignored are expected to fail.
                if let Err(error) = added {
                    if !self.ignore_offer.get() {
                        leptos::logging::warn!("candidate from {} failed: {error:?}", self.peer);
                    }
                }
            }
        }
    }

    async fn on_description(
        &self,
        shared: &Shared,
        sdp_type: SdpType,
        sdp: &str,
    ) -> Result<(), JsValue> {
        let is_offer = sdp_type == SdpType::Offer;
        let collision = is_offer
            && (self.making_offer.get() || self.pc.signaling_state() != RtcSignalingState::Stable);
        self.ignore_offer.set(!self.polite && collision);
        if self.ignore_offer.get() {
            return Ok(());
        }
        let init = RtcSessionDescriptionInit::new(rtc_sdp_type(sdp_type));
        init.set_sdp(sdp);
        // In have-local-offer state this rolls our offer back first (the polite side yields).
        JsFuture::from(self.pc.set_remote_description(&init)).await?;
        if is_offer {
            self.adopt_base_transceivers(&shared.tracks.borrow());
            self.sync_video_sending(shared);
            set_local_description(&self.pc).await?;
            self.send_local_description(shared);
        }
        Ok(())
    }

    /// On the answering side the base transceivers come from the offer as receive-only; turn
    /// them into send-and-receive carrying our tracks.
    fn adopt_base_transceivers(&self, tracks: &LocalTracks) {
        for kind in TrackKind::BOTH {
            let Some(transceiver) = base_transceiver(&self.pc, kind) else {
                continue;
            };
            if matches!(
                transceiver.direction(),
                RtcRtpTransceiverDirection::Recvonly | RtcRtpTransceiverDirection::Inactive
            ) {
                transceiver.set_direction(RtcRtpTransceiverDirection::Sendrecv);
                let _ = transceiver.sender().replace_track(tracks.of_kind(kind));
            }
        }
    }

    fn on_track(&self, shared: &Shared, event: &RtcTrackEvent) {
        let track = event.track();
        let Some(kind) = TrackKind::parse(&track.kind()) else {
            return;
        };
        let is_base = base_transceiver(&self.pc, kind)
            .is_some_and(|base| js_sys::Object::is(&base, &event.transceiver()));
        // Any other video transceiver carries the member's shared screen.
        let stream = match (is_base, kind) {
            (true, _) => &self.camera,
            (false, TrackKind::Video) => &self.screen,
            (false, TrackKind::Audio) => return,
        };
        for old in stream.get_tracks().iter() {
            let old: MediaStreamTrack = old.unchecked_into();
            if old.kind() == track.kind() && old.id() != track.id() {
                stream.remove_track(&old);
            }
        }
        stream.add_track(&track);
        (shared.events)(MediaEvent::RemoteMedia { peer: self.peer });
    }

    fn on_connection_state(&self, shared: &Shared) {
        let state = connection_state(self.pc.connection_state());
        let action = self.supervisor.borrow_mut().on_connection_state(state);
        self.act(shared, action);
    }

    fn act(&self, shared: &Shared, action: LinkAction) {
        match action {
            LinkAction::RestartIce => {
                // Fires negotiationneeded, whose offer carries fresh ICE credentials. The
                // pinned web-sys has no binding for restartIce().
                let _ = call_method(&self.pc, "restartIce");
            }
            LinkAction::GiveUp(reason) => {
                self.pc.close();
                // The other side learns it through the server and closes its side too.
                (shared.send)(ClientMsg::LinkFailed {
                    peer: self.peer,
                    reason,
                });
            }
            LinkAction::Nothing => {}
        }
        self.report(shared);
    }

    /// Pauses or resumes our camera on this link as the member asked.
    fn sync_video_sending(&self, shared: &Shared) {
        let active = !shared.paused_for.borrow().contains(&self.peer);
        if let Some(transceiver) = base_transceiver(&self.pc, TrackKind::Video) {
            set_sending(&transceiver.sender(), active);
        }
    }

    fn report(&self, shared: &Shared) {
        (shared.events)(MediaEvent::Link {
            peer: self.peer,
            state: self.supervisor.borrow().state(),
        });
    }

    fn close(&self) {
        self.pc.set_onnegotiationneeded(None);
        self.pc.set_onicecandidate(None);
        self.pc.set_ontrack(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.close();
        self.handlers.borrow_mut().clear();
    }
}

/// The first transceiver of `kind`: the one carrying the camera or microphone.
fn base_transceiver(pc: &RtcPeerConnection, kind: TrackKind) -> Option<RtcRtpTransceiver> {
    pc.get_transceivers()
        .iter()
        .map(|t| t.unchecked_into::<RtcRtpTransceiver>())
        .find(|t| t.receiver().track().kind() == kind.as_str())
}

pub(super) fn rtc_configuration(ice_servers: &[IceServer]) -> RtcConfiguration {
    let configuration = RtcConfiguration::new();
    let servers = js_sys::Array::new();
    for server in ice_servers {
        let entry = RtcIceServer::new();
        let urls: js_sys::Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
        entry.set_urls(&urls);
        if let Some(username) = &server.username {
            entry.set_username(username);
        }
        if let Some(credential) = &server.credential {
            entry.set_credential(credential);
        }
        servers.push(&entry);
    }
    configuration.set_ice_servers(&servers);
    configuration
}

/// `setLocalDescription()` without arguments: the browser creates the right offer or answer
/// for the current state, which perfect negotiation relies on. The pinned web-sys only binds
/// the form that takes a description.
pub(super) async fn set_local_description(pc: &RtcPeerConnection) -> Result<(), JsValue> {
    let promise: js_sys::Promise = call_method(pc, "setLocalDescription")?.unchecked_into();
    JsFuture::from(promise).await.map(|_| ())
}

/// Makes every encoding of `sender` active or not: inactive, the browser neither encodes nor
/// sends it, and the connection stays as negotiated. (Through `Reflect`: web-sys's typed
/// parameters would be one more feature for one call.)
fn set_sending(sender: &web_sys::RtcRtpSender, active: bool) {
    let result = (|| -> Result<(), JsValue> {
        let parameters = call_method(sender, "getParameters")?;
        let encodings: js_sys::Array =
            js_sys::Reflect::get(&parameters, &"encodings".into())?.dyn_into()?;
        let mut changed = false;
        for encoding in encodings.iter() {
            if js_sys::Reflect::get(&encoding, &"active".into())?.as_bool() != Some(active) {
                js_sys::Reflect::set(&encoding, &"active".into(), &active.into())?;
                changed = true;
            }
        }
        if changed {
            let set: js_sys::Function =
                js_sys::Reflect::get(sender, &"setParameters".into())?.dyn_into()?;
            let done: js_sys::Promise = set.call1(sender, &parameters)?.dyn_into()?;
            spawn_local(async move {
                if let Err(error) = JsFuture::from(done).await {
                    leptos::logging::warn!("pausing or resuming video failed: {error:?}");
                }
            });
        }
        Ok(())
    })();
    if let Err(error) = result {
        leptos::logging::warn!("pausing or resuming video failed: {error:?}");
    }
}

fn call_method(target: &JsValue, name: &str) -> Result<JsValue, JsValue> {
    let method: js_sys::Function = js_sys::Reflect::get(target, &name.into())?.dyn_into()?;
    method.call0(target)
}

fn sdp_type_of(sdp_type: RtcSdpType) -> SdpType {
    match sdp_type {
        RtcSdpType::Offer => SdpType::Offer,
        RtcSdpType::Pranswer => SdpType::Pranswer,
        RtcSdpType::Rollback => SdpType::Rollback,
        _ => SdpType::Answer,
    }
}

fn rtc_sdp_type(sdp_type: SdpType) -> RtcSdpType {
    match sdp_type {
        SdpType::Offer => RtcSdpType::Offer,
        SdpType::Answer => RtcSdpType::Answer,
        SdpType::Pranswer => RtcSdpType::Pranswer,
        SdpType::Rollback => RtcSdpType::Rollback,
    }
}

/// `connectionState` as the plain data the supervisors read.
pub(super) fn connection_state(state: RtcPeerConnectionState) -> PeerConnectionState {
    match state {
        RtcPeerConnectionState::New => PeerConnectionState::New,
        RtcPeerConnectionState::Connecting => PeerConnectionState::Connecting,
        RtcPeerConnectionState::Connected => PeerConnectionState::Connected,
        RtcPeerConnectionState::Disconnected => PeerConnectionState::Disconnected,
        RtcPeerConnectionState::Failed => PeerConnectionState::Failed,
        _ => PeerConnectionState::Closed,
    }
}
