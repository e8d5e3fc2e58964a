//! `room-bench turn`: relayed calls through a TURN server on loopback, Room's built-in relay
//! or another one sharing its credential scheme (coturn with `use-auth-secret` and the same
//! `static-auth-secret`). Each call is a TURN client and a UDP peer sending paced datagrams
//! to each other through one allocation and channel; the report gives loss, one-way delay,
//! the rate relayed and the server's CPU per relayed Mbit/s. Loopback only; stops by itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use room::turn::credentials::{long_term_key, Credentials};
use room::turn::stun::{self, attr, method, Builder, Class, Message};
use tokio::net::UdpSocket;

use crate::media::cpu_seconds;

/// What to run.
#[derive(clap::Args, Clone, Debug)]
pub struct TurnConfig {
    /// The TURN server's UDP address (loopback only).
    #[arg(long, default_value = "127.0.0.1:3478")]
    pub server: SocketAddr,
    /// File holding the secret credentials are derived from: Room's `<data-dir>/turn-secret`,
    /// or the `static-auth-secret` given to coturn.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// The server's realm (Room's is `room`).
    #[arg(long, default_value = "room")]
    pub realm: String,
    /// Relayed calls at once, each a client and a peer.
    #[arg(long, default_value_t = 1)]
    pub calls: usize,
    /// Kilobits per second each way in each call.
    #[arg(long, default_value_t = 2000)]
    pub kbps: u64,
    /// Bytes per datagram (payload), like a video packet.
    #[arg(long, default_value_t = 1000)]
    pub packet_bytes: usize,
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// The server's process id, for its CPU time from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// One direction's counts.
#[derive(Default)]
struct Flow {
    sent: AtomicU64,
    received: AtomicU64,
    bytes: AtomicU64,
    delays_us: Mutex<Vec<u64>>,
}

impl Flow {
    fn arrived(&self, payload: &[u8], epoch: Instant) {
        if payload.len() < 8 {
            return;
        }
        let sent_us = u64::from_be_bytes(payload[..8].try_into().expect("eight bytes"));
        let now_us = epoch.elapsed().as_micros() as u64;
        self.received.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        if let Ok(mut delays) = self.delays_us.lock() {
            delays.push(now_us.saturating_sub(sent_us));
        }
    }

    fn summary(&self, name: &str) -> String {
        let sent = self.sent.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        let mut delays = self.delays_us.lock().map(|d| d.clone()).unwrap_or_default();
        delays.sort_unstable();
        let at = |q: f64| {
            delays
                .get(((delays.len() as f64 - 1.0) * q).round().max(0.0) as usize)
                .map_or(0.0, |us| *us as f64 / 1000.0)
        };
        let loss = if sent == 0 {
            0.0
        } else {
            100.0 * sent.saturating_sub(received) as f64 / sent as f64
        };
        format!(
            "{name}: {received}/{sent} datagrams, loss {loss:.2}%, one-way delay p50 {:.2} ms, p99 {:.2} ms",
            at(0.5),
            at(0.99)
        )
    }
}

/// Runs the calls and renders the report.
pub async fn run_turn(config: TurnConfig) -> Result<String, String> {
    if !config.server.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", config.server));
    }
    let secret = std::fs::read_to_string(&config.secret_file)
        .map_err(|e| format!("cannot read {}: {e}", config.secret_file.display()))?;
    let credentials = Credentials::new(secret.trim().as_bytes().to_vec(), 3600);
    let epoch = Instant::now();
    let up = Arc::new(Flow::default());
    let down = Arc::new(Flow::default());
    let mut calls = Vec::new();
    for index in 0..config.calls {
        let (user, pass) = credentials.mint(&format!("bench{index}"), unix_secs());
        calls.push(open_call(&config, &user, &pass).await?);
    }
    let cpu_before = config.server_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(config.seconds);
    let interval =
        Duration::from_secs_f64(config.packet_bytes as f64 * 8.0 / (config.kbps as f64 * 1000.0));
    let mut tasks = Vec::new();
    for call in calls {
        let (up, down, packet) = (Arc::clone(&up), Arc::clone(&down), config.packet_bytes);
        tasks.push(tokio::spawn(run_call(
            call, up, down, packet, interval, deadline, epoch,
        )));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, config.server_pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let relayed_bytes = up.bytes.load(Ordering::Relaxed) + down.bytes.load(Ordering::Relaxed);
    let mbps = relayed_bytes as f64 * 8.0 / elapsed / 1e6;
    let mut report = format!(
        "relayed calls: {} x {} kbit/s each way, {}-byte datagrams, {:.1} s\n{}\n{}\nrelayed {mbps:.2} Mbit/s (both ways, payload)\n",
        config.calls,
        config.kbps,
        config.packet_bytes,
        elapsed,
        up.summary("client -> peer"),
        down.summary("peer -> client"),
    );
    if let Some(cpu) = cpu {
        let share = cpu / elapsed;
        report.push_str(&format!(
            "server CPU {cpu:.2} s ({:.1}% of a core), {:.2}% of a core per relayed Mbit/s\n",
            share * 100.0,
            if mbps > 0.0 {
                share * 100.0 / mbps
            } else {
                0.0
            }
        ));
    }
    Ok(report)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A client with an allocation and a channel to its peer.
struct Call {
    client: UdpSocket,
    peer: UdpSocket,
    relayed: SocketAddr,
}

const CHANNEL: u16 = 0x4000;

async fn open_call(config: &TurnConfig, user: &str, pass: &str) -> Result<Call, String> {
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    client
        .connect(config.server)
        .await
        .map_err(|e| e.to_string())?;
    let peer = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let peer_addr = peer.local_addr().map_err(|e| e.to_string())?;
    let key = long_term_key(user, &config.realm, pass);
    let transport = |b: &mut Builder| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    };
    let challenge = request(&client, method::ALLOCATE, None, transport).await?;
    let nonce = Message::parse(&challenge)
        .ok()
        .and_then(|m| m.text(attr::NONCE).map(str::to_string))
        .ok_or("the server sent no nonce")?;
    let signed = Some((user, config.realm.as_str(), nonce.as_str(), &key[..]));
    let reply = request(&client, method::ALLOCATE, signed, transport).await?;
    let relayed = Message::parse(&reply)
        .ok()
        .and_then(|m| m.xor_address(attr::XOR_RELAYED_ADDRESS))
        .ok_or("the allocation was refused")?;
    let bound = request(&client, method::CHANNEL_BIND, signed, |b| {
        b.attr(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0])
            .xor_address(attr::XOR_PEER_ADDRESS, peer_addr);
    })
    .await?;
    if Message::parse(&bound).map_or(true, |m| m.class != Class::Success) {
        return Err("the channel bind was refused (is the peer address allowed?)".into());
    }
    Ok(Call {
        client,
        peer,
        relayed,
    })
}

async fn request(
    socket: &UdpSocket,
    method: u16,
    signed: Option<(&str, &str, &str, &[u8])>,
    extra: impl Fn(&mut Builder),
) -> Result<Vec<u8>, String> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut transaction = [0u8; 12];
    transaction[4..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut b = Builder::new(Class::Request, method, transaction);
    extra(&mut b);
    if let Some((user, realm, nonce, key)) = signed {
        b.attr(attr::USERNAME, user.as_bytes())
            .attr(attr::REALM, realm.as_bytes())
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(key);
    }
    let bytes = b.finish();
    let mut buf = vec![0u8; 2048];
    for _ in 0..5 {
        socket.send(&bytes).await.map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await;
        if let Ok(Ok(len)) = reply {
            if Message::parse(&buf[..len]).is_ok_and(|m| m.transaction == transaction) {
                return Ok(buf[..len].to_vec());
            }
        }
    }
    Err(format!(
        "no answer from the TURN server to method {method:#x}"
    ))
}

async fn run_call(
    call: Call,
    up: Arc<Flow>,
    down: Arc<Flow>,
    packet: usize,
    interval: Duration,
    deadline: Instant,
    epoch: Instant,
) {
    let Call {
        client,
        peer,
        relayed,
    } = call;
    let stop = tokio::time::Instant::from_std(deadline);
    let receive_client = async {
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok(len)) =
            tokio::time::timeout_at(stop + Duration::from_millis(500), client.recv(&mut buf)).await
        {
            if let Some((CHANNEL, payload)) = stun::channel_data(&buf[..len]) {
                down.arrived(payload, epoch);
            }
        }
    };
    let receive_peer = async {
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok((len, _))) =
            tokio::time::timeout_at(stop + Duration::from_millis(500), peer.recv_from(&mut buf))
                .await
        {
            up.arrived(&buf[..len], epoch);
        }
    };
    let send = async {
        let mut tick = tokio::time::interval(interval);
        let mut datagram = vec![0u8; packet];
        let mut frame = Vec::new();
        stun::write_channel_data(&mut frame, CHANNEL, &datagram, false);
        while tokio::time::Instant::now() < stop {
            tick.tick().await;
            let now_us = (epoch.elapsed().as_micros() as u64).to_be_bytes();
            frame[4..12].copy_from_slice(&now_us);
            if client.send(&frame).await.is_ok() {
                up.sent.fetch_add(1, Ordering::Relaxed);
            }
            datagram[..8].copy_from_slice(&now_us);
            if peer.send_to(&datagram, relayed).await.is_ok() {
                down.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    tokio::join!(receive_client, receive_peer, send);
}
