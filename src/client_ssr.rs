//! The server build's stand-in for `client/` (browser glue): same names, no browser, so the
//! shared components compile unchanged. None of it runs during server rendering, because
//! sockets are only opened from event handlers and effects.

use std::rc::Rc;

use leptos::prelude::StoredValue;
use leptos::web_sys::{Element, HtmlVideoElement};

use crate::media::{DeviceKind, MediaEvent};
use crate::protocol::{
    CallMode, ClientMsg, IceServer, LinkFailure, MediaState, PeerId, RemoteTrack, ServerMsg,
    Signal, UnixMillis,
};

/// On the server the stand-ins below are plain `Send + Sync` values, so they use ordinary
/// storage: thread-local storage would panic when an async render finishes on another thread.
pub type Stored<T> = StoredValue<T>;

pub fn store<T: Send + Sync + 'static>(value: T) -> Stored<T> {
    StoredValue::new(value)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

pub struct Socket;

impl Socket {
    pub fn connect(
        _greeting: Vec<ClientMsg>,
        _on_message: impl Fn(ServerMsg) + 'static,
        _on_close: impl Fn(Closed) + 'static,
    ) -> Result<Socket, String> {
        Err("sockets exist only in the browser".into())
    }

    pub fn send(&self, _msg: &ClientMsg) -> bool {
        false
    }
}

pub fn saved_name() -> Option<String> {
    None
}

pub fn save_name(_name: &str) {}

pub fn browser_id() -> Option<String> {
    None
}

pub fn host_key(_room: &str) -> Option<String> {
    None
}

pub fn save_host_key(_room: &str, _key: &str) {}

pub fn link_token() -> Option<String> {
    None
}

pub fn host_link(room: &str, key: &str) -> String {
    format!("/r/{room}?host={key}")
}

/// `HH:MM` in UTC; only the browser knows the reader's time zone.
pub fn clock_time(at: UnixMillis) -> String {
    let minutes = at.0 / 60_000;
    format!("{:02}:{:02}", (minutes / 60) % 24, minutes % 60)
}

pub fn show_video(_element: &HtmlVideoElement, _on: bool) {}

/// Recording happens in the browser only.
pub struct Recorder;

impl Recorder {
    pub fn start(_stage: &Element, _file_name: String) -> Result<Recorder, String> {
        Err("recording needs a browser".into())
    }

    pub fn stop(self) {}
}

pub fn recording_file_name() -> String {
    "room-meeting.webm".into()
}

pub fn take_early_join() -> Option<crate::app::room::EarlyJoin> {
    None
}

pub fn load_flag(_key: &str) -> Option<bool> {
    None
}

pub fn save_flag(_key: &str, _value: bool) {}

/// What the server assumes while rendering: a desktop window.
pub fn window_width() -> f64 {
    1280.0
}

pub struct SizeWatch;

impl SizeWatch {
    pub fn new(_element: &Element, _on_size: impl Fn(f64, f64) + 'static) -> Option<Self> {
        None
    }
}

pub fn now() -> UnixMillis {
    let since_epoch = std::time::UNIX_EPOCH.elapsed().unwrap_or_default();
    UnixMillis(since_epoch.as_millis() as u64)
}

/// Stand-in for the browser's media session; the server has no camera.
#[derive(Clone)]
pub struct MediaSession;

impl MediaSession {
    pub fn new(_events: impl Fn(MediaEvent) + 'static) -> MediaSession {
        MediaSession
    }
    pub fn start_preview(&self) {}
    pub fn state(&self) -> MediaState {
        MediaState::default()
    }
    pub fn attach_preview(&self, _element: &HtmlVideoElement) {}

    pub fn set_voice_processing(&self, _voice: crate::media::VoiceProcessing) {}
    pub fn set_mic(&self, _on: bool) {}
    pub fn set_camera(&self, _on: bool) {}
    pub fn choose_device(&self, _kind: DeviceKind, _id: String) {}
    pub fn join_call(
        &self,
        _me: PeerId,
        _ice_servers: &[IceServer],
        _members: &[PeerId],
        _mode: CallMode,
        _send: Rc<dyn Fn(ClientMsg)>,
    ) {
    }
    pub fn switch_call(&self, _mode: CallMode, _members: &[PeerId]) {}
    pub fn on_signal(&self, _from: PeerId, _signal: Signal) {}
    pub fn on_server_answer(&self, _sdp: String) {}
    pub fn on_server_offer(&self, _sdp: String, _tracks: Vec<RemoteTrack>) {}
    pub fn want_camera(&self, _peer: PeerId, _shown: bool) {}
    pub fn hang_up(&self, _peer: PeerId) {}
    pub fn on_peer_gave_up(&self, _peer: PeerId, _reason: LinkFailure) {}
    pub fn attach_remote(&self, _peer: PeerId, _element: &HtmlVideoElement) -> bool {
        false
    }
    pub fn leave_call(&self) {}
    pub fn stop(&self) {}
    pub fn start_screen_share(&self) {}
    pub fn stop_screen_share(&self) {}
    pub fn attach_remote_screen(&self, _peer: PeerId, _element: &HtmlVideoElement) -> bool {
        false
    }
}

/// Timers only run in the browser.
pub fn after(_ms: u32, _f: impl FnOnce() + 'static) {}

pub fn random() -> f64 {
    0.5
}

/// The language tag a page request asks for: the switcher's cookie, else `Accept-Language`.
#[cfg(feature = "ssr")]
pub fn page_lang() -> Option<String> {
    use axum::http::{header, request::Parts};
    use leptos::prelude::use_context;
    let parts = use_context::<Parts>()?;
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let lang = crate::app::i18n::Lang::for_request(
        header(header::COOKIE),
        header(header::ACCEPT_LANGUAGE),
    );
    Some(lang.code().to_string())
}

/// Without a server (library builds for tools and fuzzing) there is no request to read.
#[cfg(not(feature = "ssr"))]
pub fn page_lang() -> Option<String> {
    None
}

/// The rooms in use for the home page, `None` where the server keeps its list private.
#[cfg(feature = "ssr")]
pub fn public_rooms() -> Option<Vec<crate::protocol::RoomSummary>> {
    let state = leptos::prelude::use_context::<crate::server::AppState>()?;
    state.config.public_room_list.then(|| state.rooms.summary())
}

#[cfg(not(feature = "ssr"))]
pub fn public_rooms() -> Option<Vec<crate::protocol::RoomSummary>> {
    None
}

/// The path and query (without `?`) of the page being rendered.
#[cfg(feature = "ssr")]
pub fn page_address() -> (String, String) {
    let uri = leptos::prelude::use_context::<axum::http::request::Parts>().map(|parts| parts.uri);
    match uri {
        Some(uri) => (
            uri.path().to_string(),
            uri.query().unwrap_or_default().to_string(),
        ),
        None => ("/".to_string(), String::new()),
    }
}

#[cfg(not(feature = "ssr"))]
pub fn page_address() -> (String, String) {
    ("/".to_string(), String::new())
}

pub fn remember_lang(_code: &str, _cookie: &str) {}
