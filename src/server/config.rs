//! Server settings from command-line flags and `ROOM_*` environment variables.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::Parser;

use crate::core::rate::RateLimit;
use crate::core::room::{MediaPolicy, RoomLimits};
use crate::protocol::IceServer;

use super::store::Retention;

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
    #[arg(long, env = "ROOM_MAX_FRAME_BYTES", default_value_t = RoomLimits::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Longest chat message, in characters.
    #[arg(long, env = "ROOM_MAX_CHAT_CHARS", default_value_t = RoomLimits::DEFAULT.max_chat_chars)]
    pub max_chat_chars: usize,

    /// Longest display name, in characters.
    #[arg(long, env = "ROOM_MAX_NAME_CHARS", default_value_t = RoomLimits::DEFAULT.max_name_chars)]
    pub max_name_chars: usize,

    /// Chat messages kept per room for late joiners.
    #[arg(long, env = "ROOM_HISTORY_LEN", default_value_t = RoomLimits::DEFAULT.history_len)]
    pub history_len: usize,

    /// Members one room may hold (chat and presence).
    #[arg(long, env = "ROOM_MAX_ROOM_MEMBERS", default_value_t = RoomLimits::DEFAULT.max_members)]
    pub max_room_members: usize,

    /// Chat messages a member may send in a burst.
    #[arg(long, env = "ROOM_CHAT_BURST", default_value_t = RoomLimits::DEFAULT.chat.burst)]
    pub chat_burst: u32,

    /// Chat messages per second a member may send on average.
    #[arg(long, env = "ROOM_CHAT_PER_SECOND", default_value_t = RoomLimits::DEFAULT.chat.per_second)]
    pub chat_per_second: u32,

    /// Signaling messages (offers, answers, ICE candidates) a call member may send in a burst.
    #[arg(long, env = "ROOM_SIGNAL_BURST", default_value_t = RoomLimits::DEFAULT.signal.burst)]
    pub signal_burst: u32,

    /// Signaling messages per second a call member may send on average.
    #[arg(long, env = "ROOM_SIGNAL_PER_SECOND", default_value_t = RoomLimits::DEFAULT.signal.per_second)]
    pub signal_per_second: u32,

    /// Reactions a member may send in a burst.
    #[arg(long, env = "ROOM_REACTION_BURST", default_value_t = RoomLimits::DEFAULT.reaction.burst)]
    pub reaction_burst: u32,

    /// Reactions per second a member may send on average.
    #[arg(long, env = "ROOM_REACTION_PER_SECOND", default_value_t = RoomLimits::DEFAULT.reaction.per_second)]
    pub reaction_per_second: u32,

    /// State changes (hand, microphone, camera, screen, joining or leaving the call) a member
    /// may send in a burst; each is broadcast to the whole room.
    #[arg(long, env = "ROOM_STATE_BURST", default_value_t = RoomLimits::DEFAULT.state.burst)]
    pub state_burst: u32,

    /// State changes per second a member may send on average.
    #[arg(long, env = "ROOM_STATE_PER_SECOND", default_value_t = RoomLimits::DEFAULT.state.per_second)]
    pub state_per_second: u32,

    /// Pages of older chat history (`load_history`) one member may ask for at once.
    #[arg(long, env = "ROOM_HISTORY_BURST", default_value_t = RoomLimits::DEFAULT.history.burst)]
    pub history_burst: u32,

    /// Pages of older chat history one member may ask for per second, sustained.
    #[arg(long, env = "ROOM_HISTORY_PER_SECOND", default_value_t = RoomLimits::DEFAULT.history.per_second)]
    pub history_per_second: u32,

    /// Bytes of chat history (as JSON) one `joined` or `history_page` carries at most; the
    /// client asks for older pages.
    #[arg(long, env = "ROOM_MAX_REPLAY_BYTES", default_value_t = RoomLimits::DEFAULT.max_replay_bytes)]
    pub max_replay_bytes: usize,

    /// Messages queued for one connection before it counts as too slow and is disconnected.
    #[arg(long, env = "ROOM_PEER_QUEUE", default_value_t = 1024)]
    pub peer_queue: usize,

    /// Members one room's call may hold when its media goes through the server.
    #[arg(long, env = "ROOM_MAX_CALL_MEMBERS", default_value_t = RoomLimits::DEFAULT.max_call_members)]
    pub max_call_members: usize,

    /// Video tiles the meeting page shows at once before it pages (phones show at most 4).
    #[arg(long, env = "ROOM_PAGE_SIZE", default_value_t = RoomLimits::DEFAULT.page_size,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=49))]
    pub page_size: usize,

    /// Members a browser-to-browser call may hold under `--media mesh`: every member sends to
    /// every other, so each one's upload grows with this number.
    #[arg(long, env = "ROOM_MAX_MESH_MEMBERS", default_value_t = RoomLimits::DEFAULT.max_mesh_members)]
    pub max_mesh_members: usize,

    /// How calls carry media: `mesh` (browser to browser), `sfu` (through the server's
    /// forwarding unit) or `auto` (browser to browser up to --mesh-max members, through the
    /// server beyond; members switch without reloading).
    #[arg(long, env = "ROOM_MEDIA", default_value = "auto", value_parser = parse_media)]
    pub media: MediaPolicy,

    /// Under `--media auto`, the largest call that stays browser to browser.
    #[arg(long, env = "ROOM_MESH_MAX", default_value_t = RoomLimits::DEFAULT.mesh_max)]
    pub mesh_max: usize,

    /// The UDP address of the forwarding unit's first media socket. There is one socket per
    /// `--media-threads`, on consecutive ports from this one (7882-7883 on two cores: open
    /// them in the firewall). Port 0 gives each a free port.
    #[arg(long, env = "ROOM_MEDIA_ADDR", default_value = "0.0.0.0:7882")]
    pub media_addr: SocketAddr,

    /// Threads (shards) forwarding media, each with its own socket and a share of the rooms;
    /// one room stays on one. Default: one per core.
    #[arg(long, env = "ROOM_MEDIA_THREADS", default_value_t = default_media_threads())]
    pub media_threads: usize,

    /// Addresses browsers reach the media socket on (repeatable, IPv4 or IPv6), e.g. the
    /// server's public address. Default: the media socket's own address if it is specific,
    /// else the HTTP listen address's.
    #[arg(long = "public-ip", env = "ROOM_PUBLIC_IP", value_delimiter = ',')]
    pub public_ips: Vec<std::net::IpAddr>,

    /// STUN/TURN server URLs for the browsers, comma-separated, e.g.
    /// `stun:stun.example.org:3478,turn:turn.example.org:3478?transport=udp`. None by default:
    /// calls on a LAN or loopback need none.
    #[arg(long, env = "ROOM_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// The TURN relay built into this binary, for browsers that cannot reach each other or
    /// the media socket directly: `auto` runs it when --public-ip is given, `on` always,
    /// `off` never. Each call member gets its own short-lived credentials.
    #[arg(long, env = "ROOM_TURN", default_value = "auto", value_parser = parse_turn)]
    pub turn: TurnMode,

    /// Where the TURN relay listens, on UDP and TCP (open both in the firewall).
    #[arg(long, env = "ROOM_TURN_ADDR", default_value = "0.0.0.0:3478")]
    pub turn_addr: SocketAddr,

    /// UDP ports the TURN relay gives out, one per allocation, e.g. `49152-65535` (open them
    /// in the firewall).
    #[arg(long, env = "ROOM_RELAY_PORTS", default_value = "49152-65535", value_parser = parse_ports)]
    pub relay_ports: RangeInclusive<u16>,

    /// Address ranges the TURN relay may send to although they are private, loopback or this
    /// server's own (refused by default), comma-separated, e.g. `192.168.0.0/16` for a LAN
    /// install.
    #[arg(
        long = "turn-allow-peer",
        env = "ROOM_TURN_ALLOW_PEER",
        value_delimiter = ','
    )]
    pub turn_allow_peers: Vec<super::proxy::Cidr>,

    /// Certificate chain (PEM) for TURN over TLS (`turns:`), for networks that let only
    /// TLS out; with --tls-key, the relay also listens on --turn-tls-addr.
    #[arg(long, env = "ROOM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "ROOM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Where TURN over TLS listens when --tls-cert is given; `0.0.0.0:443` gets through the
    /// strictest firewalls if nothing else uses that port.
    #[arg(long, env = "ROOM_TURN_TLS_ADDR", default_value = "0.0.0.0:5349")]
    pub turn_tls_addr: SocketAddr,

    /// Relay allocations one call member may hold at once (a browser makes one or two per
    /// connection).
    #[arg(long, env = "ROOM_TURN_MAX_ALLOCATIONS", default_value_t = 32)]
    pub turn_max_allocations: usize,

    /// Relay allocations the whole server holds at most.
    #[arg(long, env = "ROOM_TURN_MAX_TOTAL_ALLOCATIONS", default_value_t = 4096)]
    pub turn_max_total_allocations: usize,

    /// Kilobits per second one call member may relay, both directions together.
    #[arg(long, env = "ROOM_TURN_MEMBER_KBPS", default_value_t = 10_000)]
    pub turn_member_kbps: u64,

    /// How long the relay credentials handed to a call member stay valid for new
    /// allocations, in seconds (allocations made in time live on while refreshed).
    #[arg(long, env = "ROOM_TURN_CREDENTIAL_SECS", default_value_t = 12 * 3600)]
    pub turn_credential_secs: u64,

    /// Username for the `turn:`/`turns:` URLs in --ice-servers.
    #[arg(long, env = "ROOM_ICE_USERNAME")]
    pub ice_username: Option<String>,

    /// Credential for the `turn:`/`turns:` URLs in --ice-servers.
    #[arg(long, env = "ROOM_ICE_CREDENTIAL")]
    pub ice_credential: Option<String>,

    /// Bytes each connection reads from its socket at most at once (its read buffer).
    #[arg(long, env = "ROOM_WS_READ_BUFFER", default_value_t = 2048)]
    pub ws_read_buffer: usize,

    /// Bytes of outgoing frames collected before they are written; a flush writes sooner.
    #[arg(long, env = "ROOM_WS_WRITE_BUFFER", default_value_t = 64 * 1024)]
    pub ws_write_buffer: usize,

    /// Where the chat history lives (an SQLite file, created on first start).
    #[arg(long, env = "ROOM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Share rooms with other Room nodes through this Redis, e.g. `redis://127.0.0.1:6379`
    /// (`redis://:password@host:port/db`). Without it, this node serves its rooms alone.
    #[arg(long, env = "ROOM_REDIS_URL")]
    pub redis_url: Option<super::cluster::resp::RedisUrl>,

    /// This node's name among the nodes sharing one Redis (letters, digits, `-_.`); random
    /// when not given. Two running nodes must not share one.
    #[arg(long, env = "ROOM_NODE_ID", value_parser = super::cluster::parse_node_id)]
    pub node_id: Option<String>,

    /// Chat messages kept per room on disk (the newest); 0 keeps all.
    #[arg(long, env = "ROOM_HISTORY_KEEP", default_value_t = 1000)]
    pub history_keep: u64,

    /// Days after which chat messages are deleted; 0 keeps them.
    #[arg(long, env = "ROOM_HISTORY_MAX_AGE_DAYS", default_value_t = 30)]
    pub history_max_age_days: u64,

    /// Seconds a member whose connection dropped keeps their place (name, call seat) for a
    /// reconnect; the others see them as reconnecting meanwhile.
    #[arg(long, env = "ROOM_RESUME_GRACE_SECS", default_value_t = RoomLimits::DEFAULT.resume_grace_ms / 1000)]
    pub resume_grace_secs: u64,

    /// Open WebSocket connections the server accepts in total.
    #[arg(long, env = "ROOM_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Open WebSocket connections from one IP address (a whole office behind one NAT counts
    /// as one address; raise this behind a reverse proxy).
    #[arg(long, env = "ROOM_MAX_CONNECTIONS_PER_IP", default_value_t = 200)]
    pub max_connections_per_ip: usize,

    /// List the rooms in use on the home page (and to `watch_rooms`). Off by default: a list
    /// tells everyone which meetings exist and lets them walk in.
    #[arg(long, env = "ROOM_PUBLIC_ROOM_LIST")]
    pub public_room_list: bool,

    /// Rooms one address may open (join while nobody is in them) at once, after a quiet
    /// spell; then `--new-rooms-per-second`. Slows down anyone trying room names.
    #[arg(long, env = "ROOM_NEW_ROOMS_BURST", default_value_t = 20)]
    pub new_rooms_burst: u32,

    /// Rooms one address may open per second, sustained.
    #[arg(long, env = "ROOM_NEW_ROOMS_PER_SECOND", default_value_t = 1)]
    pub new_rooms_per_second: u32,

    /// Rooms that may exist at once; joining an existing room always works.
    #[arg(long, env = "ROOM_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Milliseconds between WebSocket pings to each client.
    #[arg(long, env = "ROOM_HEARTBEAT_MS", default_value_t = 4000)]
    pub heartbeat_ms: u64,

    /// A client heard nothing from for this many milliseconds is disconnected; it has lost
    /// its network, and the others should see it leave.
    #[arg(long, env = "ROOM_IDLE_TIMEOUT_MS", default_value_t = 10000)]
    pub idle_timeout_ms: u64,

    /// The address people type to reach Room when it runs behind a reverse proxy, e.g.
    /// `https://meet.example.com`. Its origin may open WebSockets and its host name is served.
    #[arg(long, env = "ROOM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// More origins (scheme://host[:port], comma-separated) whose pages may open WebSockets,
    /// beyond the page's own address and `--public-url`.
    #[arg(long, env = "ROOM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Where `/metrics` is served: a listener of its own, on loopback by default, so traffic
    /// figures are not public. `off` serves no metrics.
    #[arg(long, env = "ROOM_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: MetricsAddr,

    /// Reverse proxies (addresses or ranges, comma-separated, e.g. `10.0.0.0/8,::1`) whose
    /// `Forwarded`/`X-Forwarded-For` headers name the client; the per-address limits then
    /// count that client. From anyone else these headers are ignored.
    #[arg(long, env = "ROOM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<super::proxy::Cidr>,

    /// Sites allowed to show Room in a frame, as a CSP `frame-ancestors` source list (e.g.
    /// `https://intranet.example`); `'none'` refuses every frame.
    #[arg(long, env = "ROOM_FRAME_ANCESTORS", default_value = "'none'")]
    pub frame_ancestors: String,

    /// Seconds a client may take to send a request's headers, and the longest an idle
    /// keep-alive HTTP connection stays open.
    #[arg(long, env = "ROOM_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Open HTTP connections (pages and assets; WebSockets count under
    /// `--max-connections-per-ip` once upgraded) from one address.
    #[arg(long, env = "ROOM_MAX_HTTP_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_http_connections_per_ip: usize,

    /// Milliseconds a WebSocket write may wait on a client that does not read before the
    /// connection is closed as too slow.
    #[arg(long, env = "ROOM_WRITE_TIMEOUT_MS", default_value_t = 10_000)]
    pub write_timeout_ms: u64,

    /// Seconds shutdown waits for connections to close; then they are dropped and the chat
    /// store is flushed anyway.
    #[arg(long, env = "ROOM_SHUTDOWN_TIMEOUT_SECS", default_value_t = 5)]
    pub shutdown_timeout_secs: u64,

    /// Seconds from a host closing the breakout rooms until everyone is back in the main room.
    #[arg(long, env = "ROOM_BREAKOUT_COUNTDOWN_SECS", default_value_t = RoomLimits::DEFAULT.breakout_countdown_ms / 1000)]
    pub breakout_countdown_secs: u64,

    /// Admit only people whose room link carries a token (`?token=`) signed with this shared
    /// secret (HS256, at least 16 bytes), as a site embedding Room mints them. Without this
    /// or --auth-public-key, rooms are open to anyone with the link.
    #[arg(
        long,
        env = "ROOM_AUTH_SECRET",
        hide_env_values = true,
        conflicts_with = "auth_public_key"
    )]
    pub auth_secret: Option<String>,

    /// Admit only people whose token is signed by the private half of this public key (a PEM
    /// file: Ed25519 for EdDSA tokens, RSA for RS256).
    #[arg(long, env = "ROOM_AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Things the binary does instead of serving.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Print a signed token for a room link (`/r/ROOM?token=…`), signed with --auth-secret or
    /// --private-key.
    Token(TokenArgs),
}

#[derive(Clone, Debug, clap::Args)]
pub struct TokenArgs {
    /// The room the token opens, or `*` for any room.
    #[arg(long)]
    pub room: String,
    /// The display name the holder gets.
    #[arg(long)]
    pub name: String,
    /// `host` enters as the room's host; `member` as anyone else.
    #[arg(long, default_value = "member", value_parser = ["host", "member"])]
    pub role: String,
    /// Seconds from now until the token no longer lets anyone in.
    #[arg(long, default_value_t = 24 * 3600)]
    pub valid_for: u64,
    /// Seconds from now before which the token does not let anyone in yet.
    #[arg(long)]
    pub starts_in: Option<u64>,
    /// The shared secret of servers started with --auth-secret.
    #[arg(
        long = "auth-secret",
        env = "ROOM_AUTH_SECRET",
        hide_env_values = true,
        conflicts_with = "private_key"
    )]
    pub secret: Option<String>,
    /// The private key (PEM, Ed25519 or RSA) for servers started with --auth-public-key.
    #[arg(long)]
    pub private_key: Option<PathBuf>,
}

/// `--metrics-addr`: an address to listen on, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(MetricsAddr(None));
        }
        text.trim()
            .parse()
            .map(|addr| MetricsAddr(Some(addr)))
            .map_err(|_| format!("{text:?} is not host:port or off"))
    }
}

fn default_media_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Whether the built-in TURN relay runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnMode {
    Auto,
    On,
    Off,
}

fn parse_turn(text: &str) -> Result<TurnMode, String> {
    match text {
        "auto" => Ok(TurnMode::Auto),
        "on" => Ok(TurnMode::On),
        "off" => Ok(TurnMode::Off),
        other => Err(format!("{other:?} is not auto, on or off")),
    }
}

fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port from 1 to 65535"))
    };
    let (low, high) = (port(low)?, port(high)?);
    if low > high {
        return Err(format!("{text:?}: the first port is above the last"));
    }
    Ok(low..=high)
}

fn parse_media(text: &str) -> Result<MediaPolicy, String> {
    match text {
        "mesh" => Ok(MediaPolicy::Mesh),
        "sfu" => Ok(MediaPolicy::Sfu),
        "auto" => Ok(MediaPolicy::Auto),
        other => Err(format!("{other:?} is not mesh, sfu or auto")),
    }
}

impl Config {
    pub fn retention(&self) -> Retention {
        Retention {
            per_room: self.history_keep,
            max_age_days: self.history_max_age_days,
        }
    }

    pub fn room_limits(&self) -> RoomLimits {
        RoomLimits {
            max_members: self.max_room_members,
            history_len: self.history_len,
            max_name_chars: self.max_name_chars,
            max_chat_chars: self.max_chat_chars,
            max_call_members: self.max_call_members,
            max_mesh_members: self.max_mesh_members,
            media: self.media,
            page_size: self.page_size,
            mesh_max: self.mesh_max,
            chat: RateLimit::new(self.chat_burst, self.chat_per_second),
            signal: RateLimit::new(self.signal_burst, self.signal_per_second),
            reaction: RateLimit::new(self.reaction_burst, self.reaction_per_second),
            state: RateLimit::new(self.state_burst, self.state_per_second),
            history: RateLimit::new(self.history_burst, self.history_per_second),
            host: RoomLimits::DEFAULT.host,
            password_guesses: RoomLimits::DEFAULT.password_guesses,
            breakout_countdown_ms: self.breakout_countdown_secs.saturating_mul(1000),
            max_replay_bytes: self.max_replay_bytes,
            resume_grace_ms: self.resume_grace_secs.saturating_mul(1000),
            announce_interval_ms: RoomLimits::DEFAULT.announce_interval_ms,
        }
    }

    /// The ICE servers handed to browsers: STUN URLs in one entry, TURN URLs (which need the
    /// credentials) in another.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        let (turn, stun): (Vec<String>, Vec<String>) = self
            .ice_servers
            .iter()
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .partition(|url| url.starts_with("turn:") || url.starts_with("turns:"));
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if !turn.is_empty() {
            servers.push(IceServer {
                urls: turn,
                username: self.ice_username.clone(),
                credential: self.ice_credential.clone(),
            });
        }
        servers
    }

    /// Whether the built-in TURN relay runs.
    pub fn turn_enabled(&self) -> bool {
        match self.turn {
            TurnMode::On => true,
            TurnMode::Off => false,
            TurnMode::Auto => !self.public_ips.is_empty(),
        }
    }

    /// The address browsers are told to reach the TURN relay and its relays on: the first
    /// public IPv4 address, else the listener's own if specific, else the HTTP listener's,
    /// else loopback (only browsers on this machine can use it then).
    pub fn turn_advertised_ip(&self) -> IpAddr {
        let specific = |ip: IpAddr| (!ip.is_unspecified()).then_some(ip);
        self.public_ips
            .iter()
            .copied()
            .find(IpAddr::is_ipv4)
            .or_else(|| specific(self.turn_addr.ip()))
            .or_else(|| self.addr.and_then(|a| specific(a.ip())))
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
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
        assert!(config.ice_servers().is_empty());
    }

    #[test]
    fn the_relay_runs_with_a_public_address_or_when_asked_and_its_ports_parse() {
        assert!(!Config::defaults().turn_enabled());
        let public = Config::parse_from(["room", "--public-ip", "203.0.113.7"]);
        assert!(public.turn_enabled());
        assert_eq!(public.turn_advertised_ip().to_string(), "203.0.113.7");
        let off = Config::parse_from(["room", "--public-ip", "203.0.113.7", "--turn", "off"]);
        assert!(!off.turn_enabled());
        let on = Config::parse_from(["room", "--turn", "on", "--turn-addr", "10.1.2.3:3478"]);
        assert!(on.turn_enabled());
        assert_eq!(on.turn_advertised_ip().to_string(), "10.1.2.3");
        assert_eq!(parse_ports("49152-65535"), Ok(49152..=65535));
        assert_eq!(parse_ports("3478"), Ok(3478..=3478));
        for bad in ["5-1", "0-10", "70000", "a-b", ""] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        let tls_half = Config::try_parse_from(["room", "--tls-cert", "cert.pem"]);
        assert!(tls_half.is_err(), "a certificate needs its key");
    }

    #[test]
    fn ice_servers_split_into_stun_and_authenticated_turn() {
        let config = Config::parse_from([
            "room",
            "--ice-servers",
            "stun:stun.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:t.example.org",
            "--ice-username",
            "u",
            "--ice-credential",
            "secret",
        ]);
        assert_eq!(
            config.ice_servers(),
            vec![
                IceServer {
                    urls: vec!["stun:stun.example.org:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec![
                        "turn:turn.example.org:3478?transport=udp".into(),
                        "turns:t.example.org".into()
                    ],
                    username: Some("u".into()),
                    credential: Some("secret".into()),
                },
            ]
        );
    }

    #[test]
    fn flags_override_defaults() {
        let config = Config::parse_from([
            "room",
            "--max-room-members",
            "3",
            "--addr",
            "127.0.0.1:0",
            "--reaction-burst",
            "2",
            "--signal-per-second",
            "9",
        ]);
        assert_eq!(config.max_room_members, 3);
        let limits = config.room_limits();
        assert_eq!(limits.reaction, RateLimit::new(2, 1));
        assert_eq!(limits.signal, RateLimit::new(200, 9));
        assert_eq!(config.addr, Some("127.0.0.1:0".parse().unwrap()));
    }
}
