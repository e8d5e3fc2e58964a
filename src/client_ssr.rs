//! The server build's stand-in for `client/` (browser glue): same names, no browser, so the
//! shared components compile unchanged. None of it runs during server rendering, because
//! sockets are only opened from event handlers and effects.

use crate::protocol::{ClientMsg, ServerMsg, UnixMillis};

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

/// `HH:MM` in UTC; only the browser knows the reader's time zone.
pub fn clock_time(at: UnixMillis) -> String {
    let minutes = at.0 / 60_000;
    format!("{:02}:{:02}", (minutes / 60) % 24, minutes % 60)
}

pub fn now() -> UnixMillis {
    let since_epoch = std::time::UNIX_EPOCH.elapsed().unwrap_or_default();
    UnixMillis(since_epoch.as_millis() as u64)
}
