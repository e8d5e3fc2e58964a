//! Media through the server: a selective forwarding unit on str0m. [`engine::Sfu`] is the
//! logic, with time and datagrams as inputs (no sockets, no clock), so tests drive it with
//! browsers simulated by str0m; `server::media` runs it on a UDP socket.

pub mod engine;
pub mod layers;
pub mod speaker;
pub mod synthetic;

#[cfg(test)]
mod tests;
