//! Browser glue (feature `hydrate`): the typed WebSocket to the server, the local media and
//! the WebRTC call, and small helpers over `web-sys`. `client_ssr.rs` has the same surface as
//! no-ops for the server build, so the components compile unchanged in both.

pub mod call;
pub mod media;
pub mod session;

pub use session::MediaSession;

use leptos::prelude::{LocalStorage, StoredValue};

/// Browser objects (sockets, media) kept by a component: they are not `Send`, so they live in
/// thread-local storage. `client_ssr.rs` defines the same names over ordinary storage.
pub type Stored<T> = StoredValue<T, LocalStorage>;

pub fn store<T: 'static>(value: T) -> Stored<T> {
    StoredValue::new_local(value)
}

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::protocol::{ClientMsg, ServerMsg, UnixMillis};

const NAME_KEY: &str = "room.display_name";

/// How a socket ended, for the page to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

/// A WebSocket to `/ws` speaking the typed protocol. Closes itself when dropped.
pub struct Socket {
    ws: WebSocket,
    _handlers: Handlers,
}

impl Socket {
    /// Opens the socket; `greeting` is sent as soon as it opens (hello first), so callers
    /// never see a half-open state.
    pub fn connect(
        greeting: Vec<ClientMsg>,
        on_message: impl Fn(ServerMsg) + 'static,
        on_close: impl Fn(Closed) + 'static,
    ) -> Result<Socket, String> {
        let url = socket_url().ok_or("no window location")?;
        let ws = WebSocket::new(&url).map_err(|e| format!("{e:?}"))?;
        let opened = ws.clone();
        let greeting = Rc::new(RefCell::new(Some(greeting)));
        let open = Closure::<dyn FnMut()>::new(move || {
            for msg in greeting.borrow_mut().take().unwrap_or_default() {
                let _ = opened.send_with_str(&msg.to_json());
            }
        });
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(text) = event.data().as_string() else {
                return;
            };
            match serde_json::from_str::<ServerMsg>(&text) {
                Ok(msg) => on_message(msg),
                Err(error) => leptos::logging::warn!("unreadable server message: {error}"),
            }
        });
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            on_close(Closed {
                code: event.code(),
                reason: event.reason(),
            })
        });
        ws.set_onopen(Some(open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _handlers: Handlers {
                _open: open,
                _message: message,
                _close: close,
            },
        })
    }

    /// Sends now if the socket is open; `false` otherwise.
    pub fn send(&self, msg: &ClientMsg) -> bool {
        self.ws.ready_state() == WebSocket::OPEN && self.ws.send_with_str(&msg.to_json()).is_ok()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Detach first: the handlers are freed with this struct and must not run afterwards.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
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

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// The display name this browser used last.
pub fn saved_name() -> Option<String> {
    local_storage()?.get_item(NAME_KEY).ok()?
}

pub fn save_name(name: &str) {
    if let Some(storage) = local_storage() {
        let _ = storage.set_item(NAME_KEY, name);
    }
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
    let Some(window) = web_sys::window() else {
        return;
    };
    let callback = Closure::once_into_js(f);
    let _ = window
        .set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), ms as i32);
}

/// A random number in 0..1.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// The language tag the server rendered the page in (`<html lang>`), so hydration matches.
pub fn page_lang() -> Option<String> {
    web_sys::window()?
        .document()?
        .document_element()?
        .get_attribute("lang")
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
