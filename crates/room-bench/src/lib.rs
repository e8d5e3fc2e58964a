//! The load generator behind `room-bench`: real WebSocket clients speaking
//! Room's protocol, spread over rooms, some of them chatting at a fixed rate; it measures
//! delivery, throughput, latency and the server's memory per connection. Loopback only.
//!
//! Each chat text carries its send time (`b:<microseconds since the run started>`), so a
//! receiver in the same process computes the latency without clock skew. Receivers find that
//! stamp by scanning the frame instead of decoding JSON, which keeps the tool cheaper per
//! message than the server it measures.

pub mod link;
pub mod media;
pub mod reference;
pub mod turn;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use room::protocol::{ClientMsg, ServerMsg, PROTOCOL_VERSION};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What to run: the flags of `room-bench load`, which are also the defaults of
/// `LoadConfig::default()`, written once.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadConfig {
    /// The server's address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// More nodes sharing rooms with the one at --addr (`--redis-url`), comma-separated:
    /// clients are spread evenly over all of them. Loopback only too.
    #[arg(long, value_delimiter = ',')]
    pub also: Vec<SocketAddr>,
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// How many of the clients send chat; spread evenly over the rooms.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Chat messages per second per sender.
    #[arg(long, default_value_t = 10)]
    pub rate: u32,
    /// Seconds the senders send; with --idle, seconds the connections are held.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Length of each chat text in characters (at least the stamp).
    #[arg(long, default_value_t = 64)]
    pub message_chars: usize,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Only hold the connections open (memory per idle connection).
    #[arg(long)]
    pub idle: bool,
    /// The server's process id, to report its resident memory per connection.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds to wait, after the senders stop, for deliveries still in flight.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub drain: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: LoadConfig,
        }
        <Defaults as clap::Parser>::parse_from(["room-bench"]).config
    }
}

/// A number of seconds, possibly fractional.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    Duration::try_from_secs_f64(value).map_err(|e| format!("{text:?}: {e}"))
}

/// What was measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub attempted: usize,
    pub connected: usize,
    pub connect_seconds: f64,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    /// Seconds from the first send to the last delivery counted.
    pub send_seconds: f64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// Error messages the server sent (rate limits, refusals): a run should have none.
    pub errors: u64,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_connected_kib: Option<u64>,
}

impl LoadReport {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    pub fn deliveries_per_second(&self) -> f64 {
        if self.send_seconds > 0.0 {
            self.received as f64 / self.send_seconds
        } else {
            0.0
        }
    }

    pub fn connects_per_second(&self) -> f64 {
        if self.connect_seconds > 0.0 {
            self.connected as f64 / self.connect_seconds
        } else {
            0.0
        }
    }

    /// Server memory added per open connection, from /proc, in KiB.
    pub fn rss_per_connection_kib(&self) -> Option<f64> {
        let (before, after) = (self.server_rss_before_kib?, self.server_rss_connected_kib?);
        (self.connected > 0).then(|| after.saturating_sub(before) as f64 / self.connected as f64)
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut lines = vec![
            format!("connected            {}/{}", self.connected, self.attempted),
            format!(
                "connect rate         {:.0}/s ({:.2} s)",
                self.connects_per_second(),
                self.connect_seconds
            ),
        ];
        if let Some(rss) = self.rss_per_connection_kib() {
            lines.push(format!(
                "server RSS           {} KiB before, {} KiB connected, {:.1} KiB per connection",
                self.server_rss_before_kib.unwrap_or(0),
                self.server_rss_connected_kib.unwrap_or(0),
                rss
            ));
        }
        if self.expected > 0 || self.sent > 0 {
            let delivered = if self.expected > 0 {
                100.0 * self.received as f64 / self.expected as f64
            } else {
                0.0
            };
            lines.extend([
                format!("messages sent        {}", self.sent),
                format!(
                    "deliveries           {} of {} expected ({delivered:.3}%, {} lost)",
                    self.received,
                    self.expected,
                    self.lost()
                ),
                format!("deliveries/s         {:.0}", self.deliveries_per_second()),
                format!(
                    "latency              p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    self.latency_p50_us as f64 / 1000.0,
                    self.latency_p99_us as f64 / 1000.0,
                    self.latency_max_us as f64 / 1000.0
                ),
                format!("server errors        {}", self.errors),
            ]);
        }
        lines.join("\n")
    }
}

/// Counts shared by all client tasks.
#[derive(Default)]
struct Shared {
    joined: AtomicUsize,
    peer_joins_seen: AtomicU64,
    errors: AtomicU64,
    last_delivery_us: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    received: u64,
    sent: u64,
    latencies_us: Vec<u32>,
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Refuses any target but a loopback address: the tools load only this machine.
fn require_loopback(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "room-bench only targets loopback addresses, not {addr}"
        ))
    }
}

/// A tag unique to this run, for names and rooms, so that a run straight after another on the
/// same server does not collide with members still leaving (or kept for a resume).
fn run_id() -> String {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", std::process::id() ^ clock.subsec_nanos())
}

/// The `p` quantile (0 to 1) of sorted samples; 0 when there are none.
fn percentile<T: Copy + Into<u64>>(sorted: &[T], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].into()
}

/// Runs the load and reports. Refuses anything but a loopback target.
pub async fn run(config: LoadConfig) -> Result<LoadReport, String> {
    require_loopback(config.addr)?;
    for addr in &config.also {
        require_loopback(*addr)?;
    }
    let nodes: Vec<SocketAddr> = std::iter::once(config.addr)
        .chain(config.also.iter().copied())
        .collect();
    if config.rooms == 0 || config.clients < config.rooms {
        return Err("need at least one client per room".into());
    }
    let senders = config.senders.min(config.clients);
    let mut report = LoadReport {
        attempted: config.clients,
        server_rss_before_kib: config.server_pid.and_then(rss_kib),
        ..LoadReport::default()
    };
    let shared = Arc::new(Shared::default());
    let start = Instant::now();
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);

    let run = run_id();
    // Client i is in room i % rooms; the first `senders` clients in round-robin order send,
    // so senders spread evenly over the rooms.
    let room_sizes: Vec<usize> = (0..config.rooms)
        .map(|r| (config.clients - r).div_ceil(config.rooms))
        .collect();
    let expected_peer_joins: u64 = room_sizes
        .iter()
        .map(|&n| (n * n.saturating_sub(1) / 2) as u64)
        .sum();

    let gate = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(config.clients);
    for i in 0..config.clients {
        let spec = ClientSpec {
            name: format!("c{run}-{i}"),
            room: format!("bench-{run}-{}", i % config.rooms),
            sends: (i < senders && !config.idle).then_some(config.rate),
            phase_offset: i as f64 / senders.max(1) as f64,
            message_chars: config.message_chars,
        };
        let addr = nodes[i % nodes.len()];
        let shared = Arc::clone(&shared);
        let gate = Arc::clone(&gate);
        let phase = phase_rx.clone();
        tasks.push(tokio::spawn(async move {
            let socket = {
                let _permit = gate.acquire().await.ok()?;
                join(addr, &spec).await.ok()?
            };
            shared.joined.fetch_add(1, Ordering::Relaxed);
            Some(client_loop(socket, spec, shared, phase, start).await)
        }));
    }

    // Wait until every client joined (or failed), then until the join notices have drained.
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    while shared.joined.load(Ordering::Relaxed) < config.clients
        && tasks.iter().any(|t| !t.is_finished())
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    report.connected = shared.joined.load(Ordering::Relaxed);
    report.connect_seconds = connect_started.elapsed().as_secs_f64();
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    while report.connected == config.clients
        && shared.peer_joins_seen.load(Ordering::Relaxed) < expected_peer_joins
        && Instant::now() < settle_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    report.server_rss_connected_kib = config.server_pid.and_then(rss_kib);

    let send_started_us = start.elapsed().as_micros() as u64;
    let _ = phase_tx.send(Phase::Sending);
    tokio::time::sleep(config.duration).await;
    let _ = phase_tx.send(Phase::Draining);
    if !config.idle {
        // Deliveries still in flight: wait until the count stops growing, or the limit.
        let drain_deadline = Instant::now() + config.drain;
        let mut last = u64::MAX;
        while Instant::now() < drain_deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = shared.last_delivery_us.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
    }
    let _ = phase_tx.send(Phase::Done);

    let mut latencies = Vec::new();
    let mut sent_per_room = vec![0u64; config.rooms];
    for (i, task) in tasks.into_iter().enumerate() {
        if let Ok(Some(result)) = task.await {
            report.received += result.received;
            sent_per_room[i % config.rooms] += result.sent;
            latencies.extend(result.latencies_us);
        }
    }
    report.sent = sent_per_room.iter().sum();
    report.expected = sent_per_room
        .iter()
        .zip(&room_sizes)
        .map(|(sent, &size)| sent * size as u64)
        .sum();
    let last_delivery_us = shared.last_delivery_us.load(Ordering::Relaxed);
    report.send_seconds = last_delivery_us.saturating_sub(send_started_us) as f64 / 1e6;
    report.errors = shared.errors.load(Ordering::Relaxed);
    latencies.sort_unstable();
    report.latency_p50_us = percentile(&latencies, 0.50);
    report.latency_p99_us = percentile(&latencies, 0.99);
    report.latency_max_us = latencies.last().copied().map_or(0, u64::from);
    Ok(report)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Draining,
    Done,
}

struct ClientSpec {
    name: String,
    room: String,
    /// Messages per second, if this client sends.
    sends: Option<u32>,
    /// Where in the send period this sender's messages fall, from 0 to 1.
    phase_offset: f64,
    message_chars: usize,
}

/// The upgrade request a browser on Room's own page would send: Room refuses WebSockets
/// whose `Origin` is not its own.
pub fn websocket_request(
    addr: SocketAddr,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("a ws:// URL is a valid request");
    let origin = format!("http://{addr}")
        .parse()
        .expect("an address is a valid header value");
    request.headers_mut().insert("origin", origin);
    request
}

async fn join(addr: SocketAddr, spec: &ClientSpec) -> Result<Socket, String> {
    // A small read buffer: tungstenite zero-fills all of it before every read.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(websocket_request(addr), Some(config), true)
            .await
            .map_err(|e| e.to_string())?;
    for msg in [
        ClientMsg::Hello {
            version: PROTOCOL_VERSION,
        },
        ClientMsg::join(spec.room.clone(), spec.name.clone()),
    ] {
        socket
            .send(Message::Text(msg.to_json().into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .map_err(|_| "no answer to join".to_string())?
            .ok_or("closed while joining")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(text) = frame {
            // `joined` lists every member; decoding it whole would cost the tool more than
            // the server spent on it, on the cores they share.
            if text.starts_with(r#"{"type":"joined""#) {
                return Ok(socket);
            }
            if let Ok(ServerMsg::Error { message, .. }) = serde_json::from_str::<ServerMsg>(&text) {
                return Err(message);
            }
        }
    }
}

/// Reads everything, counting chat deliveries and their latency; a sender also sends.
async fn client_loop(
    socket: Socket,
    spec: ClientSpec,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    start: Instant,
) -> ClientResult {
    let (mut sink, mut stream) = socket.split();
    let mut result = ClientResult::default();
    let period = spec
        .sends
        .map(|rate| Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut ticker: Option<tokio::time::Interval> = None;
    let mut sending = false;
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                sending = now == Phase::Sending;
                if let (true, Some(period)) = (sending, period) {
                    // Senders are spread over the period, as people do not all press Enter
                    // in the same millisecond; the offered rate stays exact.
                    let offset = period.mul_f64(spec.phase_offset);
                    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    ticker = Some(interval);
                }
                if now == Phase::Done {
                    break;
                }
            }
            _ = tick(&mut ticker), if sending => {
                let stamp = start.elapsed().as_micros() as u64;
                let text = chat_text(stamp, spec.message_chars);
                let frame = ClientMsg::Chat { text }.to_json();
                if sink.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
                result.sent += 1;
            }
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break };
                let Message::Text(text) = frame else { continue };
                match classify(&text) {
                    Frame::Chat(Some(stamp)) => {
                        let now = start.elapsed().as_micros() as u64;
                        result.received += 1;
                        result.latencies_us.push(now.saturating_sub(stamp).min(u64::from(u32::MAX)) as u32);
                        shared.last_delivery_us.fetch_max(now, Ordering::Relaxed);
                    }
                    Frame::PeersJoined(count) => {
                        shared.peer_joins_seen.fetch_add(count, Ordering::Relaxed);
                    }
                    Frame::Error => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Frame::Chat(None) | Frame::Other => {}
                }
            }
        }
    }
    let _ = sink.close().await;
    result
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `b:<stamp>` padded with `.` to `chars` characters.
pub fn chat_text(stamp_us: u64, chars: usize) -> String {
    let mut text = format!("b:{stamp_us} ");
    while text.len() < chars {
        text.push('.');
    }
    text
}

enum Frame {
    Chat(Option<u64>),
    /// How many arrivals it announces.
    PeersJoined(u64),
    Error,
    Other,
}

/// Recognises the frames the tool counts without decoding the JSON: the server writes the
/// `type` tag first, and a chat text of ours starts with `b:`.
fn classify(text: &str) -> Frame {
    if text.starts_with(r#"{"type":"chat""#) {
        let stamp = text.find(r#""text":"b:"#).and_then(|at| {
            let digits = &text[at + 10..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse().ok()
        });
        Frame::Chat(stamp)
    } else if text.starts_with(r#"{"type":"peers_joined""#) {
        // One `"id":` per listed peer; the tool's own names cannot contain a quote.
        Frame::PeersJoined(text.matches(r#""id":"#).count() as u64)
    } else if text.starts_with(r#"{"type":"error""#) {
        Frame::Error
    } else {
        Frame::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use room::protocol::{ChatEntry, MessageId, PeerId, UnixMillis};

    #[test]
    fn chat_frames_are_recognised_with_their_stamp() {
        let msg = ServerMsg::Chat {
            entry: ChatEntry {
                id: MessageId(1),
                from: PeerId(2),
                name: "c1".into(),
                at: UnixMillis(5),
                text: chat_text(123_456, 64),
            },
        };
        assert!(matches!(
            classify(&msg.to_json()),
            Frame::Chat(Some(123_456))
        ));
        assert_eq!(chat_text(7, 64).len(), 64);
        let error = ServerMsg::error(room::protocol::ErrorCode::RateLimited, "slow");
        assert!(matches!(classify(&error.to_json()), Frame::Error));
    }

    #[test]
    fn an_announcement_counts_every_arrival_it_lists() {
        let peer = |id| room::protocol::PeerInfo {
            id: PeerId(id),
            name: format!("c-{id}"),
            in_call: false,
            media: Default::default(),
            away: false,
            hand: None,
            role: Default::default(),
            breakout: None,
            recording: false,
        };
        let msg = ServerMsg::PeersJoined {
            peers: vec![peer(1), peer(2), peer(3)],
        };
        assert!(matches!(classify(&msg.to_json()), Frame::PeersJoined(3)));
    }

    #[tokio::test]
    async fn refuses_targets_off_loopback() {
        let config = LoadConfig {
            addr: "192.0.2.1:80".parse().unwrap(),
            ..LoadConfig::default()
        };
        assert!(run(config).await.unwrap_err().contains("loopback"));
    }
}
