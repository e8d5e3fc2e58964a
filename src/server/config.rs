//! Server settings from command-line flags and `ROOM_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::core::room::RoomLimits;

/// Room: a self-hosted video meeting server.
#[derive(Clone, Debug, Parser)]
#[command(name = "room", version, about)]
pub struct Config {
    /// Address to listen on. Defaults to `site-addr` from Leptos.toml (127.0.0.1:3000).
    #[arg(long, env = "ROOM_ADDR")]
    pub addr: Option<SocketAddr>,

    /// Leptos site settings (where the built site lives). The copy built into the binary is
    /// used when this file does not exist.
    #[arg(long, env = "ROOM_SITE_CONFIG", default_value = "Leptos.toml")]
    pub site_config: PathBuf,

    /// Largest WebSocket frame or message a client may send, in bytes.
    #[arg(long, env = "ROOM_MAX_FRAME_BYTES", default_value_t = 16 * 1024)]
    pub max_frame_bytes: usize,

    /// Longest chat message, in characters.
    #[arg(long, env = "ROOM_MAX_CHAT_CHARS", default_value_t = 2000)]
    pub max_chat_chars: usize,

    /// Longest display name, in characters.
    #[arg(long, env = "ROOM_MAX_NAME_CHARS", default_value_t = 32)]
    pub max_name_chars: usize,

    /// Chat messages kept per room for late joiners.
    #[arg(long, env = "ROOM_HISTORY_LEN", default_value_t = 100)]
    pub history_len: usize,

    /// Members one room may hold (chat and presence).
    #[arg(long, env = "ROOM_MAX_ROOM_MEMBERS", default_value_t = 100)]
    pub max_room_members: usize,

    /// Chat messages a member may send in a burst.
    #[arg(long, env = "ROOM_CHAT_BURST", default_value_t = 10)]
    pub chat_burst: u32,

    /// Chat messages per second a member may send on average.
    #[arg(long, env = "ROOM_CHAT_PER_SECOND", default_value_t = 5)]
    pub chat_per_second: u32,

    /// Messages queued for one connection before it counts as too slow and is disconnected.
    #[arg(long, env = "ROOM_PEER_QUEUE", default_value_t = 1024)]
    pub peer_queue: usize,
}

impl Config {
    pub fn room_limits(&self) -> RoomLimits {
        RoomLimits {
            max_members: self.max_room_members,
            history_len: self.history_len,
            max_name_chars: self.max_name_chars,
            max_chat_chars: self.max_chat_chars,
            chat_burst: self.chat_burst,
            chat_per_second: self.chat_per_second,
        }
    }

    /// The defaults, as if the binary had been started without flags or environment.
    pub fn defaults() -> Self {
        Config::parse_from(["room"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_limits() {
        let config = Config::defaults();
        assert_eq!(config.max_frame_bytes, 16384);
        assert_eq!(config.room_limits(), RoomLimits::default());
    }

    #[test]
    fn flags_override_defaults() {
        let config =
            Config::parse_from(["room", "--max-room-members", "3", "--addr", "127.0.0.1:0"]);
        assert_eq!(config.max_room_members, 3);
        assert_eq!(config.addr, Some("127.0.0.1:0".parse().unwrap()));
    }
}
