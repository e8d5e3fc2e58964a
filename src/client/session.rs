//! One page's media: the local camera and microphone (preview, toggles, device switching,
//! level meter) and, once joined, the call. Components talk only to `MediaSession` and hear
//! back through `MediaEvent`s, so they never touch browser media types.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlVideoElement, MediaStream, MediaStreamTrack};

use crate::media::{DeviceKind, MediaEvent, MediaProblem, TrackKind, VoiceProcessing};
use crate::protocol::{
    CallMode, ClientMsg, IceServer, LinkFailure, MediaState, PeerId, RemoteTrack, Signal,
};

use super::call::{Call, LocalTracks, UnwantedCameras};
use super::media::{
    apply_voice_processing, attach, device_of, get_display_media, get_user_media, list_devices,
    running, LevelMeter, Want,
};
use super::quality::{QualityWatch, StatsSource, QUALITY_INTERVAL_MS};
use super::sfu::SfuCall;

/// How often microphone levels are read (the pre-join meter, the active speaker).
const METER_INTERVAL_MS: u32 = 100;

/// How long a call's old connections stay open after it switches between browser to browser
/// and through the server: enough for the new ones to connect and deliver a keyframe.
const DRAIN_MS: u32 = 3000;

struct Inner {
    events: Rc<dyn Fn(MediaEvent)>,
    /// Everything this browser captures, shown in the self-view.
    preview: MediaStream,
    audio: RefCell<Option<MediaStreamTrack>>,
    video: RefCell<Option<MediaStreamTrack>>,
    /// The microphone is kept open while muted (muting only disables it), so unmuting is
    /// instant; the camera is closed when off, so its light goes out.
    mic_on: Cell<bool>,
    /// Noise suppression and echo cancellation, for every microphone opened.
    voice: Cell<VoiceProcessing>,
    camera_device: RefCell<Option<String>>,
    mic_device: RefCell<Option<String>>,
    /// One audio context for every meter; browsers limit how many a page may open.
    audio_context: RefCell<Option<web_sys::AudioContext>>,
    meter: RefCell<Option<LevelMeter>>,
    remote_meters: RefCell<Vec<(PeerId, LevelMeter)>>,
    screen: RefCell<Option<MediaStreamTrack>>,
    screen_ended: RefCell<Option<Closure<dyn FnMut()>>>,
    /// Reads the meters every `METER_INTERVAL_MS`; dropping it stops them.
    meter_interval: RefCell<Option<Interval>>,
    /// Reads the call's statistics for the quality marks, while in a call.
    quality_interval: RefCell<Option<Interval>>,
    quality: Rc<QualityWatch>,
    call: RefCell<Option<CallLink>>,
    /// The call's connections of the other kind, after a switch: they go on showing video
    /// until the new ones deliver, then close (make before break).
    draining: RefCell<Option<(CallLink, Timeout)>>,
    /// Connections to the server opened again in a row after failing; the next waits longer.
    server_link_retries: Cell<u32>,
    /// The wait before opening the connection to the server again.
    server_link_retry: RefCell<Option<Timeout>>,
    /// What the call was started with, to reconnect it the other way when its mode changes.
    setup: RefCell<Option<CallSetup>>,
    /// Members whose camera tile is on another page: a mesh asks them to pause it.
    unwanted_cameras: UnwantedCameras,
}

struct CallSetup {
    me: PeerId,
    ice_servers: Vec<IceServer>,
    send: Rc<dyn Fn(ClientMsg)>,
}

/// The call's connections: one per other member (mesh), or one to the server (sfu).
enum CallLink {
    Mesh(Call),
    Sfu(SfuCall),
}

impl CallLink {
    fn mode(&self) -> CallMode {
        match self {
            CallLink::Mesh(_) => CallMode::Mesh,
            CallLink::Sfu(_) => CallMode::Sfu,
        }
    }

    fn replace_track(&self, kind: TrackKind, track: Option<&MediaStreamTrack>) {
        match self {
            CallLink::Mesh(call) => call.replace_track(kind, track),
            CallLink::Sfu(call) => call.replace_track(kind, track),
        }
    }

    fn set_screen(&self, track: Option<&MediaStreamTrack>) {
        match self {
            CallLink::Mesh(call) => call.set_screen(track),
            CallLink::Sfu(call) => call.set_screen(track),
        }
    }

    fn attach(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        match self {
            CallLink::Mesh(call) => call.attach(peer, element),
            CallLink::Sfu(call) => call.attach(peer, element),
        }
    }

    fn attach_screen(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        match self {
            CallLink::Mesh(call) => call.attach_screen(peer, element),
            CallLink::Sfu(call) => call.attach_screen(peer, element),
        }
    }

    fn stats_sources(&self) -> Vec<StatsSource> {
        match self {
            CallLink::Mesh(call) => call
                .connections()
                .into_iter()
                .map(|(peer, pc)| StatsSource::Peer(peer, pc))
                .collect(),
            CallLink::Sfu(call) => {
                let (pc, owners) = call.camera_owners();
                vec![StatsSource::Server(pc, owners)]
            }
        }
    }

    fn remote_audio(&self) -> Vec<(PeerId, MediaStreamTrack)> {
        match self {
            CallLink::Mesh(call) => call.remote_audio(),
            // Through the server, the server says who speaks (`active_speaker`).
            CallLink::Sfu(_) => Vec::new(),
        }
    }

    fn close(&self) {
        match self {
            CallLink::Mesh(call) => call.close(),
            CallLink::Sfu(call) => call.close(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the page's media must switch the camera light off.
        for slot in [&self.audio, &self.video, &self.screen] {
            if let Some(track) = slot.borrow_mut().take() {
                track.stop();
            }
        }
        if let Some(context) = self.audio_context.borrow_mut().take() {
            let _ = context.close();
        }
        self.meter_interval.borrow_mut().take();
    }
}

/// The page's media; cheap to clone (shared inside).
#[derive(Clone)]
pub struct MediaSession {
    inner: Rc<Inner>,
}

impl MediaSession {
    pub fn new(events: impl Fn(MediaEvent) + 'static) -> MediaSession {
        MediaSession {
            inner: Rc::new(Inner {
                events: Rc::new(events),
                preview: MediaStream::new().expect("MediaStream is available"),
                audio: RefCell::new(None),
                video: RefCell::new(None),
                mic_on: Cell::new(true),
                voice: Cell::new(VoiceProcessing::default()),
                camera_device: RefCell::new(None),
                mic_device: RefCell::new(None),
                audio_context: RefCell::new(None),
                meter: RefCell::new(None),
                remote_meters: RefCell::new(Vec::new()),
                draining: RefCell::new(None),
                server_link_retries: Cell::new(0),
                server_link_retry: RefCell::new(None),
                screen: RefCell::new(None),
                screen_ended: RefCell::new(None),
                meter_interval: RefCell::new(None),
                quality_interval: RefCell::new(None),
                quality: Rc::new(QualityWatch::default()),
                call: RefCell::new(None),
                unwanted_cameras: UnwantedCameras::default(),
                setup: RefCell::new(None),
            }),
        }
    }

    fn emit(&self, event: MediaEvent) {
        (self.inner.events)(event);
    }

    /// Asks for camera and microphone and starts the preview. Falls back to whichever of the
    /// two exists when only one does.
    pub fn start_preview(&self) {
        let session = self.clone();
        spawn_local(async move {
            let attempts = [
                (Want::Any, Want::Any),
                (Want::Any, Want::Off),
                (Want::Off, Want::Any),
            ];
            let mut last_problem = MediaProblem::NoDevice;
            for (audio, video) in attempts {
                match get_user_media(&audio, &video, session.inner.voice.get()).await {
                    Ok(stream) => {
                        session.adopt_stream(&stream);
                        session.emit(MediaEvent::Problem(None));
                        session.after_device_change().await;
                        return;
                    }
                    // Permission refused: asking for less will not help.
                    Err(MediaProblem::PermissionDenied) => {
                        last_problem = MediaProblem::PermissionDenied;
                        break;
                    }
                    Err(problem) => last_problem = problem,
                }
            }
            session.emit(MediaEvent::Problem(Some(last_problem)));
            session.after_device_change().await;
        });
    }

    fn adopt_stream(&self, stream: &MediaStream) {
        for track in stream.get_audio_tracks().iter() {
            self.set_track(TrackKind::Audio, Some(track.unchecked_into()));
        }
        for track in stream.get_video_tracks().iter() {
            self.set_track(TrackKind::Video, Some(track.unchecked_into()));
        }
    }

    /// Puts `track` in place of the current one of its kind: in the preview, in the call, and
    /// in the meter.
    fn set_track(&self, kind: TrackKind, track: Option<MediaStreamTrack>) {
        let inner = &self.inner;
        let slot = match kind {
            TrackKind::Audio => &inner.audio,
            TrackKind::Video => &inner.video,
        };
        if let Some(old) = slot.borrow_mut().take() {
            old.stop();
            inner.preview.remove_track(&old);
        }
        if let Some(track) = &track {
            if kind == TrackKind::Audio {
                track.set_enabled(inner.mic_on.get());
                *inner.mic_device.borrow_mut() = device_of(track);
                *inner.meter.borrow_mut() = self.with_audio_context(|c| LevelMeter::new(c, track));
            } else {
                *inner.camera_device.borrow_mut() = device_of(track);
            }
            inner.preview.add_track(track);
        } else if kind == TrackKind::Audio {
            *inner.meter.borrow_mut() = None;
        }
        if let Some(call) = inner.call.borrow().as_ref() {
            call.replace_track(kind, track.as_ref());
        }
        *slot.borrow_mut() = track;
        self.emit(MediaEvent::Local(self.state()));
    }

    fn with_audio_context<T>(
        &self,
        f: impl FnOnce(&web_sys::AudioContext) -> Option<T>,
    ) -> Option<T> {
        let mut context = self.inner.audio_context.borrow_mut();
        if context.is_none() {
            *context = web_sys::AudioContext::new().ok();
        }
        context.as_ref().and_then(f)
    }

    async fn after_device_change(&self) {
        let devices = list_devices().await;
        self.emit(MediaEvent::Devices {
            devices,
            camera: self.inner.camera_device.borrow().clone(),
            microphone: self.inner.mic_device.borrow().clone(),
        });
        self.emit(MediaEvent::Local(self.state()));
        self.run_meter();
    }

    /// What this browser sends right now.
    pub fn state(&self) -> MediaState {
        let live = |slot: &RefCell<Option<MediaStreamTrack>>| {
            slot.borrow().as_ref().is_some_and(|t| {
                t.enabled() && t.ready_state() == web_sys::MediaStreamTrackState::Live
            })
        };
        MediaState {
            mic: live(&self.inner.audio),
            camera: live(&self.inner.video),
            screen: live(&self.inner.screen),
        }
    }

    /// Shows this browser's own camera in `element`.
    pub fn attach_preview(&self, element: &HtmlVideoElement) {
        attach(element, Some(&self.inner.preview));
    }

    /// Mutes or unmutes; unmuting opens the microphone if none is open yet.
    pub fn set_mic(&self, on: bool) {
        self.inner.mic_on.set(on);
        let existing = self.inner.audio.borrow().clone();
        match existing {
            Some(track) => {
                track.set_enabled(on);
                self.emit(MediaEvent::Local(self.state()));
            }
            None if on => self.open(TrackKind::Audio, self.wanted(DeviceKind::Microphone)),
            None => {}
        }
    }

    /// Turns the camera on (opening the chosen device) or off (closing it).
    pub fn set_camera(&self, on: bool) {
        if on {
            self.open(TrackKind::Video, self.wanted(DeviceKind::Camera));
        } else {
            self.set_track(TrackKind::Video, None);
        }
    }

    /// Switches to another camera or microphone; in a call the others keep receiving without
    /// renegotiation (`replaceTrack`).
    /// Noise suppression and echo cancellation on or off, for the microphone open now and
    /// any opened later.
    pub fn set_voice_processing(&self, voice: VoiceProcessing) {
        self.inner.voice.set(voice);
        if let Some(track) = self.inner.audio.borrow().as_ref() {
            apply_voice_processing(track, voice);
        }
    }

    pub fn choose_device(&self, kind: DeviceKind, id: String) {
        match kind {
            DeviceKind::Camera => {
                *self.inner.camera_device.borrow_mut() = Some(id.clone());
                // A camera switched off stays off; the choice applies when it is turned on.
                if self.inner.video.borrow().is_some() {
                    self.open(TrackKind::Video, Want::Device(id));
                }
            }
            DeviceKind::Microphone => {
                *self.inner.mic_device.borrow_mut() = Some(id.clone());
                self.open(TrackKind::Audio, Want::Device(id));
            }
        }
    }

    fn wanted(&self, kind: DeviceKind) -> Want {
        let device = match kind {
            DeviceKind::Camera => self.inner.camera_device.borrow().clone(),
            DeviceKind::Microphone => self.inner.mic_device.borrow().clone(),
        };
        device.map_or(Want::Any, Want::Device)
    }

    fn open(&self, kind: TrackKind, want: Want) {
        let session = self.clone();
        spawn_local(async move {
            let (audio, video) = if kind == TrackKind::Audio {
                (want, Want::Off)
            } else {
                // Many devices (phones, and Chromium's fake cameras) cannot run two cameras at
                // once, so the old one is released before the new one opens. Its slot keeps
                // the stopped track until the new one replaces it, so the others see no
                // "camera off" blip, only a short pause.
                if let Some(old) = session.inner.video.borrow().as_ref() {
                    old.stop();
                }
                (Want::Off, want)
            };
            match get_user_media(&audio, &video, session.inner.voice.get()).await {
                Ok(stream) => {
                    session.adopt_stream(&stream);
                    session.emit(MediaEvent::Problem(None));
                }
                Err(problem) => {
                    if kind == TrackKind::Video {
                        session.set_track(TrackKind::Video, None);
                    }
                    session.emit(MediaEvent::Problem(Some(problem)));
                }
            }
            session.after_device_change().await;
        });
    }

    /// Judges each call member's video every few seconds while a call is up.
    fn watch_quality(&self) {
        if self.inner.quality_interval.borrow().is_some() {
            return;
        }
        let session = Rc::downgrade(&self.inner);
        let interval = Interval::new(QUALITY_INTERVAL_MS, move || {
            let Some(inner) = session.upgrade() else {
                return;
            };
            let sources = inner
                .call
                .borrow()
                .as_ref()
                .map(CallLink::stats_sources)
                .unwrap_or_default();
            let watch = Rc::clone(&inner.quality);
            let events = Rc::clone(&inner.events);
            spawn_local(async move {
                let judged = watch.judge(sources).await;
                events(MediaEvent::Quality(judged));
            });
        });
        *self.inner.quality_interval.borrow_mut() = Some(interval);
    }

    fn run_meter(&self) {
        if self.inner.meter_interval.borrow().is_some() {
            return;
        }
        let session = Rc::downgrade(&self.inner);
        let interval = Interval::new(METER_INTERVAL_MS, move || {
            if let Some(inner) = session.upgrade() {
                MediaSession { inner }.measure();
            }
        });
        *self.inner.meter_interval.borrow_mut() = Some(interval);
    }

    /// Reads every meter once: ours, and one per call member's received audio (meters are
    /// made as their tracks arrive and dropped with them).
    fn measure(&self) {
        let inner = &self.inner;
        let audible = inner.audio_context.borrow().as_ref().is_some_and(running);
        let local = if audible {
            inner.meter.borrow().as_ref().map_or(0.0, LevelMeter::level)
        } else {
            0.0
        };
        let mut remote = Vec::new();
        if let Some(call) = inner.call.borrow().as_ref() {
            let tracks = call.remote_audio();
            let mut meters = inner.remote_meters.borrow_mut();
            meters.retain(|(peer, meter)| {
                tracks
                    .iter()
                    .any(|(p, track)| p == peer && track.id() == meter.track_id)
            });
            for (peer, track) in &tracks {
                if !meters.iter().any(|(p, _)| p == peer) {
                    if let Some(meter) = self.with_audio_context(|c| LevelMeter::new(c, track)) {
                        meters.push((*peer, meter));
                    }
                }
            }
            if audible {
                remote = meters.iter().map(|(peer, m)| (*peer, m.level())).collect();
            }
        }
        self.emit(MediaEvent::Levels { local, remote });
    }

    /// Asks the browser for a screen to share and sends it to every member as an extra video
    /// track; stopping from the browser's own "stop sharing" bar ends it too.
    pub fn start_screen_share(&self) {
        let session = self.clone();
        spawn_local(async move {
            match get_display_media().await {
                Ok(track) => {
                    let weak = Rc::downgrade(&session.inner);
                    let ended = Closure::<dyn FnMut()>::new(move || {
                        if let Some(inner) = weak.upgrade() {
                            MediaSession { inner }.stop_screen_share();
                        }
                    });
                    track.set_onended(Some(ended.as_ref().unchecked_ref()));
                    *session.inner.screen_ended.borrow_mut() = Some(ended);
                    if let Some(call) = session.inner.call.borrow().as_ref() {
                        call.set_screen(Some(&track));
                    }
                    *session.inner.screen.borrow_mut() = Some(track);
                    session.emit(MediaEvent::Local(session.state()));
                }
                // Cancelling the browser's picker is a choice, not a problem to show.
                Err(MediaProblem::PermissionDenied) => {}
                Err(problem) => session.emit(MediaEvent::Problem(Some(problem))),
            }
        });
    }

    pub fn stop_screen_share(&self) {
        let track = self.inner.screen.borrow_mut().take();
        if let Some(track) = track {
            track.set_onended(None);
            track.stop();
        }
        self.inner.screen_ended.borrow_mut().take();
        if let Some(call) = self.inner.call.borrow().as_ref() {
            call.set_screen(None);
        }
        self.emit(MediaEvent::Local(self.state()));
    }

    /// Shows `peer`'s shared screen in `element`.
    pub fn attach_remote_screen(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_either(|call| call.attach_screen(peer, element))
    }

    /// Starts the call: connects to each member already in it (this side offers), or to
    /// the server.
    pub fn join_call(
        &self,
        me: PeerId,
        ice_servers: &[IceServer],
        members: &[PeerId],
        mode: CallMode,
        send: Rc<dyn Fn(ClientMsg)>,
    ) {
        self.leave_call();
        *self.inner.setup.borrow_mut() = Some(CallSetup {
            me,
            ice_servers: ice_servers.to_vec(),
            send,
        });
        self.connect(mode, members, |_| true);
    }

    /// The call changed between browser-to-browser and through-the-server media: the old
    /// connections close and new ones open, with the same devices. Back in a mesh, of each
    /// pair the member who joined later (the larger id) dials, so every pair connects once.
    pub fn switch_call(&self, mode: CallMode, members: &[PeerId]) {
        let current = self.inner.call.borrow().as_ref().map(CallLink::mode);
        if current.is_none() || current == Some(mode) {
            return;
        }
        if let Some(old) = self.inner.call.borrow_mut().take() {
            self.drain(old);
        }
        self.inner.remote_meters.borrow_mut().clear();
        let me = self.inner.setup.borrow().as_ref().map(|s| s.me);
        if let Some(me) = me {
            self.connect(mode, members, |peer| peer < me);
        }
    }

    /// Keeps the call's old connections open for a few seconds after a switch, so tiles show
    /// their video until the new connections deliver (each tile moves as soon as its new
    /// media flows). The other members keep theirs as long, so both directions carry on.
    fn drain(&self, old: CallLink) {
        let session = Rc::downgrade(&self.inner);
        let close = Timeout::new(DRAIN_MS, move || {
            if let Some(inner) = session.upgrade() {
                if let Some((old, _)) = inner.draining.borrow_mut().take() {
                    old.close();
                }
            }
        });
        if let Some((older, _)) = self.inner.draining.replace(Some((old, close))) {
            older.close();
        }
    }

    fn connect(&self, mode: CallMode, members: &[PeerId], dial: impl Fn(PeerId) -> bool) {
        let setup = self.inner.setup.borrow();
        let Some(setup) = setup.as_ref() else {
            return;
        };
        let tracks = LocalTracks {
            audio: self.inner.audio.borrow().clone(),
            video: self.inner.video.borrow().clone(),
            screen: self.inner.screen.borrow().clone(),
        };
        let events = Rc::clone(&self.inner.events);
        let send = Rc::clone(&setup.send);
        let link = match mode {
            CallMode::Mesh => {
                let unwanted = Rc::clone(&self.inner.unwanted_cameras);
                let call = Call::new(setup.me, &setup.ice_servers, tracks, unwanted, send, events);
                for &peer in members.iter().filter(|&&peer| dial(peer)) {
                    call.dial(peer);
                }
                Some(CallLink::Mesh(call))
            }
            CallMode::Sfu => {
                let session = Rc::downgrade(&self.inner);
                let watch: Rc<dyn Fn(bool)> = Rc::new(move |connected| {
                    if let Some(inner) = session.upgrade() {
                        MediaSession { inner }.server_link_changed(connected);
                    }
                });
                SfuCall::start(&setup.ice_servers, tracks, send, events, watch).map(CallLink::Sfu)
            }
        };
        *self.inner.call.borrow_mut() = link;
        self.watch_quality();
    }

    /// The connection to the server connected, or failed (the network changed, the server
    /// dropped it): a failed one is replaced by a new connection, after 1, 2, 4, then every
    /// 8 seconds, for as long as the call lasts. The server takes a new offer as a new
    /// connection and drops the old one.
    fn server_link_changed(&self, connected: bool) {
        let inner = &self.inner;
        if connected {
            inner.server_link_retries.set(0);
            inner.server_link_retry.borrow_mut().take();
            return;
        }
        if inner.server_link_retry.borrow().is_some() {
            return;
        }
        let retries = inner.server_link_retries.get();
        inner.server_link_retries.set(retries + 1);
        let delay = 1000 * 2u32.pow(retries.min(3));
        let session = Rc::downgrade(inner);
        let retry = Timeout::new(delay, move || {
            let Some(inner) = session.upgrade() else {
                return;
            };
            inner.server_link_retry.borrow_mut().take();
            let session = MediaSession { inner };
            let through_server =
                matches!(session.inner.call.borrow().as_ref(), Some(CallLink::Sfu(_)));
            if !through_server {
                return;
            }
            leptos::logging::warn!("connecting to the server's media again");
            if let Some(call) = session.inner.call.borrow_mut().take() {
                call.close();
            }
            session.connect(CallMode::Sfu, &[], |_| false);
        });
        *inner.server_link_retry.borrow_mut() = Some(retry);
    }

    pub fn on_signal(&self, from: PeerId, signal: Signal) {
        if let Some(CallLink::Mesh(call)) = self.inner.call.borrow().as_ref() {
            call.on_signal(from, signal);
        }
    }

    /// The server answered this browser's offer for its connection to it.
    pub fn on_server_answer(&self, sdp: String) {
        if let Some(CallLink::Sfu(call)) = self.inner.call.borrow().as_ref() {
            call.on_answer(sdp);
        }
    }

    /// The server changed what it sends this browser.
    pub fn on_server_offer(&self, sdp: String, tracks: Vec<RemoteTrack>) {
        if let Some(CallLink::Sfu(call)) = self.inner.call.borrow().as_ref() {
            call.on_offer(sdp, tracks);
        }
    }

    /// A member gave up on its browser-to-browser link to us.
    pub fn on_peer_gave_up(&self, peer: PeerId, reason: LinkFailure) {
        if let Some(CallLink::Mesh(call)) = self.inner.call.borrow().as_ref() {
            call.on_peer_gave_up(peer, reason);
        }
    }

    /// Whether `peer`'s camera tile is on the page shown. Through the server the page's
    /// `view` already says so; in a mesh the member is asked to pause or resume it.
    pub fn want_camera(&self, peer: PeerId, shown: bool) {
        let changed = if shown {
            self.inner.unwanted_cameras.borrow_mut().remove(&peer)
        } else {
            self.inner.unwanted_cameras.borrow_mut().insert(peer)
        };
        if let (true, Some(CallLink::Mesh(call))) = (changed, self.inner.call.borrow().as_ref()) {
            call.want_video(peer, shown);
        }
    }

    /// A member left the call or the room.
    pub fn hang_up(&self, peer: PeerId) {
        self.inner.unwanted_cameras.borrow_mut().remove(&peer);
        match self.inner.call.borrow().as_ref() {
            Some(CallLink::Mesh(call)) => call.hang_up(peer),
            Some(CallLink::Sfu(call)) => call.forget(peer),
            None => {}
        }
    }

    /// Shows `peer`'s camera and microphone in `element`; false until their media arrived.
    pub fn attach_remote(&self, peer: PeerId, element: &HtmlVideoElement) -> bool {
        self.attach_either(|call| call.attach(peer, element))
    }

    /// Attaches from the call's connections, else from those it switched away from while
    /// they still run.
    fn attach_either(&self, attach: impl Fn(&CallLink) -> bool) -> bool {
        if self.inner.call.borrow().as_ref().is_some_and(&attach) {
            return true;
        }
        self.inner
            .draining
            .borrow()
            .as_ref()
            .is_some_and(|(old, _)| attach(old))
    }

    pub fn leave_call(&self) {
        if let Some(call) = self.inner.call.borrow_mut().take() {
            call.close();
        }
        self.inner.server_link_retry.borrow_mut().take();
        self.inner.server_link_retries.set(0);
        if let Some((old, _)) = self.inner.draining.borrow_mut().take() {
            old.close();
        }
        self.inner.setup.borrow_mut().take();
        self.inner.remote_meters.borrow_mut().clear();
        self.inner.quality_interval.borrow_mut().take();
    }

    /// Ends everything: the call, the devices and the meter.
    pub fn stop(&self) {
        self.stop_screen_share();
        self.leave_call();
        self.set_track(TrackKind::Audio, None);
        self.set_track(TrackKind::Video, None);
        self.inner.meter_interval.borrow_mut().take();
    }
}
