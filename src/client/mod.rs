//! Browser glue (feature `hydrate`): the typed WebSocket to the server, the local media and
//! the WebRTC call, and small helpers over `web-sys`. `client_ssr.rs` has the same surface as
//! no-ops for the server build, so the components compile unchanged in both.

pub mod call;
pub mod media;
pub mod quality;
pub mod recorder;
pub mod session;
pub mod sfu;

pub use recorder::Recorder;
pub use session::MediaSession;

use leptos::prelude::{LocalStorage, StoredValue};

/// Browser objects (sockets, media) kept by a component: they are not `Send`, so they live in
/// thread-local storage. `client_ssr.rs` defines the same names over ordinary storage.
pub type Stored<T> = StoredValue<T, LocalStorage>;

pub fn store<T: 'static>(value: T) -> Stored<T> {
    StoredValue::new_local(value)
}

use futures_channel::{mpsc, oneshot};
use futures_util::future::{poll_fn, select, Either};
use futures_util::{Sink, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State, WebSocketError};
use gloo_storage::Storage;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;

use crate::protocol::{ClientMsg, ServerMsg, UnixMillis};

const NAME_KEY: &str = "room.display_name";

/// What a browser reports when a socket dies without a close frame.
const ABNORMAL_CLOSURE: u16 = 1006;

/// How a socket ended, for the page to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

/// A WebSocket to `/ws` speaking the typed protocol (over `gloo-net`). Dropping it closes the
/// socket without reporting the close: the page asked for it.
pub struct Socket {
    outgoing: mpsc::UnboundedSender<String>,
    /// Dropped with the socket: the task that owns the connection then stops, and gloo
    /// closes the connection as it is dropped.
    _stop: oneshot::Sender<()>,
}

/// What woke the socket's task.
enum Wake {
    Stop,
    Send(String),
    Receive(Option<Result<Message, WebSocketError>>),
}

impl Socket {
    /// Opens the socket; `greeting` goes out as soon as it opens (hello first), and so does
    /// anything sent before that, in order.
    pub fn connect(
        greeting: Vec<ClientMsg>,
        on_message: impl Fn(ServerMsg) + 'static,
        on_close: impl Fn(Closed) + 'static,
    ) -> Result<Socket, String> {
        let url = socket_url().ok_or("no window location")?;
        // One task owns the connection, so it can look at its state before every send.
        let mut socket = Box::pin(WebSocket::open(&url).map_err(|e| e.to_string())?);
        let (outgoing, mut queue) = mpsc::unbounded::<String>();
        for msg in greeting {
            let _ = outgoing.unbounded_send(msg.to_json());
        }
        let (stop, mut stopped) = oneshot::channel::<()>();
        spawn_local(async move {
            loop {
                let wake = match select(&mut stopped, select(queue.next(), socket.next())).await {
                    Either::Left(_) | Either::Right((Either::Left((None, _)), _)) => Wake::Stop,
                    Either::Right((Either::Left((Some(text), _)), _)) => Wake::Send(text),
                    Either::Right((Either::Right((event, _)), _)) => Wake::Receive(event),
                };
                match wake {
                    Wake::Stop => return,
                    Wake::Send(text) => {
                        // Waits while the socket is still connecting; wakes on open or error.
                        let _ = poll_fn(|cx| socket.as_mut().poll_ready(cx)).await;
                        // Sending on a closing socket only makes the browser log an error;
                        // the close that follows brings the page back.
                        if matches!(socket.state(), State::Open) {
                            let _ = socket.as_mut().start_send(Message::Text(text));
                        }
                    }
                    Wake::Receive(Some(Ok(Message::Text(text)))) => {
                        match serde_json::from_str::<ServerMsg>(&text) {
                            Ok(msg) => on_message(msg),
                            Err(error) => {
                                leptos::logging::warn!("unreadable server message: {error}")
                            }
                        }
                    }
                    Wake::Receive(Some(Ok(Message::Bytes(_)))) => {}
                    Wake::Receive(Some(Err(WebSocketError::ConnectionClose(event)))) => {
                        return on_close(Closed {
                            code: event.code,
                            reason: event.reason,
                        });
                    }
                    // An error event is followed by the close event that explains it.
                    Wake::Receive(Some(Err(_))) => {}
                    Wake::Receive(None) => {
                        return on_close(Closed {
                            code: ABNORMAL_CLOSURE,
                            reason: String::new(),
                        });
                    }
                }
            }
        });
        Ok(Socket {
            outgoing,
            _stop: stop,
        })
    }

    /// Queues `msg`; false once the socket is gone.
    pub fn send(&self, msg: &ClientMsg) -> bool {
        self.outgoing.unbounded_send(msg.to_json()).is_ok()
    }
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", location.host().ok()?))
}

/// The display name this browser used last.
pub fn saved_name() -> Option<String> {
    gloo_storage::LocalStorage::get(NAME_KEY).ok()
}

pub fn save_name(name: &str) {
    let _ = gloo_storage::LocalStorage::set(NAME_KEY, name);
}

/// Where this browser keeps its random id (see [`browser_id`]).
const BROWSER_KEY: &str = "room.browser";

fn host_key_name(room: &str) -> String {
    format!("room.host.{room}")
}

/// The random id this browser keeps, made at first use: a host's removal bars it. Not a
/// secret, so `Math.random` is enough.
pub fn browser_id() -> Option<String> {
    if let Ok(id) = gloo_storage::LocalStorage::get::<String>(BROWSER_KEY) {
        return Some(id);
    }
    let id: String = (0..4)
        .map(|_| format!("{:08x}", (js_sys::Math::random() * 4_294_967_296.0) as u32))
        .collect();
    gloo_storage::LocalStorage::set(BROWSER_KEY, &id).ok()?;
    Some(id)
}

/// This room's host key: from the page's address (`?host=`, a host link) or kept from an
/// earlier visit as host.
pub fn host_key(room: &str) -> Option<String> {
    let from_link = link_param("host=", |c| c.is_ascii_alphanumeric());
    from_link.or_else(|| gloo_storage::LocalStorage::get(host_key_name(room)).ok())
}

/// The signed token in the page's address (`?token=`), for servers that require one.
pub fn link_token() -> Option<String> {
    link_param("token=", |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })
}

/// The value after `prefix` in the page's query, if every character passes `allowed` (both
/// values are base64url or hex, so nothing needs unescaping).
fn link_param(prefix: &str, allowed: fn(char) -> bool) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix(prefix))
        .filter(|value| !value.is_empty() && value.chars().all(allowed))
        .map(str::to_string)
}

pub fn save_host_key(room: &str, key: &str) {
    let _ = gloo_storage::LocalStorage::set(host_key_name(room), key);
}

/// The link that opens `room` as its host.
pub fn host_link(room: &str, key: &str) -> String {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    format!("{origin}/r/{room}?host={key}")
}

/// `HH:MM` in the browser's time zone.
pub fn clock_time(at: UnixMillis) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.0 as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// The browser's wall clock.
pub fn now() -> UnixMillis {
    UnixMillis(js_sys::Date::now() as u64)
}

/// Runs `f` once after `ms` milliseconds.
pub fn after(ms: u32, f: impl FnOnce() + 'static) {
    gloo_timers::callback::Timeout::new(ms, f).forget();
}

/// A random number in 0..1.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// Switches the video an element plays on or off: off, the browser stops decoding it.
pub fn show_video(element: &web_sys::HtmlVideoElement, on: bool) {
    let Some(stream) = element
        .src_object()
        .and_then(|s| s.dyn_into::<web_sys::MediaStream>().ok())
    else {
        return;
    };
    for track in stream.get_video_tracks().iter() {
        if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            track.set_enabled(on);
        }
    }
}

/// What was typed into the join form, and whether Join was pressed, before this client ran
/// (kept by the page's early script); taken once.
pub fn take_early_join() -> Option<crate::app::room::EarlyJoin> {
    let window = web_sys::window()?;
    let key = wasm_bindgen::JsValue::from_str("__roomEarly");
    let early = js_sys::Reflect::get(&window, &key).ok()?;
    if early.is_undefined() || early.is_null() {
        return None;
    }
    let _ = js_sys::Reflect::delete_property(window.unchecked_ref::<js_sys::Object>(), &key);
    let text = |field: &str| {
        js_sys::Reflect::get(&early, &wasm_bindgen::JsValue::from_str(field))
            .ok()
            .and_then(|v| v.as_string())
    };
    let submitted = js_sys::Reflect::get(&early, &wasm_bindgen::JsValue::from_str("submitted"))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    Some(crate::app::room::EarlyJoin {
        name: text("name"),
        password: text("password"),
        submitted,
    })
}

/// `room-standup-2026-11-30-0915.webm`: the room in the address and the local time.
pub fn recording_file_name() -> String {
    let room = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .and_then(|path| path.rsplit('/').next().map(str::to_string))
        .filter(|slug| !slug.is_empty())
        .unwrap_or_else(|| "meeting".into());
    let date = js_sys::Date::new_0();
    format!(
        "room-{room}-{:04}-{:02}-{:02}-{:02}{:02}.webm",
        date.get_full_year(),
        date.get_month() + 1,
        date.get_date(),
        date.get_hours(),
        date.get_minutes()
    )
}

/// A flag this browser keeps between visits (which panels were open).
pub fn load_flag(key: &str) -> Option<bool> {
    gloo_storage::LocalStorage::get(key).ok()
}

pub fn save_flag(key: &str, value: bool) {
    let _ = gloo_storage::LocalStorage::set(key, value);
}

/// The window's width in CSS pixels.
pub fn window_width() -> f64 {
    web_sys::window()
        .and_then(|w| w.inner_width().ok())
        .and_then(|w| w.as_f64())
        .unwrap_or(1280.0)
}

/// Reports an element's size (CSS pixels, padding included) now and whenever it changes,
/// until dropped.
pub struct SizeWatch {
    observer: web_sys::ResizeObserver,
    _on_resize: wasm_bindgen::closure::Closure<dyn FnMut(js_sys::Array)>,
}

impl SizeWatch {
    pub fn new(element: &web_sys::Element, on_size: impl Fn(f64, f64) + 'static) -> Option<Self> {
        let watched = element.clone();
        let on_resize = wasm_bindgen::closure::Closure::<dyn FnMut(js_sys::Array)>::new(
            move |_entries: js_sys::Array| {
                on_size(
                    f64::from(watched.client_width()),
                    f64::from(watched.client_height()),
                )
            },
        );
        let observer = web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok()?;
        observer.observe(element);
        Some(SizeWatch {
            observer,
            _on_resize: on_resize,
        })
    }
}

impl Drop for SizeWatch {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

/// The language tag the server rendered the page in (`<html lang>`), so hydration matches.
pub fn page_lang() -> Option<String> {
    web_sys::window()?
        .document()?
        .document_element()?
        .get_attribute("lang")
}

/// The server renders the room list into the page; the client only follows it.
pub fn public_rooms() -> Option<Vec<crate::protocol::RoomSummary>> {
    None
}

/// The path and query (without `?`) of this page, as the server saw them when rendering it.
pub fn page_address() -> (String, String) {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return ("/".to_string(), String::new());
    };
    let path = location.pathname().unwrap_or_else(|_| "/".to_string());
    let search = location.search().unwrap_or_default();
    let query = search.strip_prefix('?').unwrap_or(&search).to_string();
    (path, query)
}

/// Keeps a language chosen with the switcher for later visits: `<html lang>` now, and a
/// cookie named `cookie` that the server reads.
pub fn remember_lang(code: &str, cookie: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(root) = document.document_element() {
        let _ = root.set_attribute("lang", code);
    }
    if let Ok(html) = document.dyn_into::<web_sys::HtmlDocument>() {
        let _ = html.set_cookie(&format!(
            "{cookie}={code}; path=/; max-age=31536000; samesite=lax"
        ));
    }
}
