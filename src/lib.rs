//! Room: a self-hosted video meeting app in one binary.
//!
//! One crate builds twice: the server (feature `ssr`, an axum binary that also renders the
//! pages) and the browser client (feature `hydrate`, WASM that takes over those pages).
//!
//! # Layout
//! - [`protocol`]: the typed messages both sides exchange over the WebSocket, with the error
//!   codes, `SdpType` and the close codes.
//! - [`core`]: pure room logic (membership, names, chat history, calls, limits), no IO and no
//!   clock. Every input returns an [`core::Outcome`] (what to deliver, what to store, which
//!   stored history to read, when to wake the room next) that the server carries out.
//!   [`core::room::RoomLimits::DEFAULT`] is the one home of the defaults.
//! - [`media`]: plain data about devices, tracks and call links, shared by client and components.
//! - `sfu` (ssr only): the selective forwarding unit's logic on str0m, sans-IO like `core`.
//! - `turn` (ssr only): the built-in TURN relay's logic (STUN messages, credentials,
//!   allocations), sans-IO.
//! - `server` (ssr only): configuration, the router, the socket loop (generic over the socket, so
//!   it is unit-tested without TCP), one task per room carrying out the core's outcomes, metrics,
//!   and `server::cluster`: several nodes sharing rooms through Redis (`--redis-url`).
//! - [`app`]: Leptos components for each page, compiled into both builds. The meeting page's
//!   protocol state machine is [`app::room::session::Session`], pure and unit-tested: server
//!   messages, socket events, timers and clicks in; state and commands out.
//! - [`client`]: browser glue (WebSocket, timers and storage through gloo, local media, the
//!   WebRTC mesh); a no-op stand-in on the server build.
//!
//! The load tools live in their own workspace member, `crates/room-bench`.

// Leptos views are nested generic types; the meeting page's tree is deeper than the default.
#![recursion_limit = "256"]

pub mod app;
pub mod core;
pub mod media;
pub mod protocol;
pub mod recording;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "ssr")]
pub mod sfu;

#[cfg(feature = "ssr")]
pub mod turn;

#[cfg(feature = "hydrate")]
pub mod client;

#[cfg(not(feature = "hydrate"))]
#[path = "client_ssr.rs"]
pub mod client;

/// Entry point the generated JS calls once the WASM has loaded: takes over the server-rendered
/// page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Lets tests (and curious people) tell that the page is now interactive.
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
