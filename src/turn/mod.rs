//! The TURN relay built into the binary (RFC 8656), sans-IO like `core` and `sfu`: STUN
//! messages, short-lived credentials and the allocation logic. `server::turn` runs it on
//! sockets.

pub mod credentials;
pub mod server;
pub mod stun;

#[cfg(test)]
mod tests;
