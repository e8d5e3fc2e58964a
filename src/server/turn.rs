//! The built-in TURN relay on sockets: a UDP and a TCP listener on `--turn-addr`, one UDP
//! socket per allocation from `--relay-ports`, around the relay's logic, [`TurnServer`] (in
//! `crate::turn`).
//!
//! One thread polls the UDP listener and every relay socket and hands what arrives to the
//! shared state, which sends at once without waiting: a datagram that finds a socket's
//! buffer full is dropped, as on any UDP path. TCP and TLS clients have a task each on a
//! second thread, and their frames wait in a bounded queue, so a flood on one relay or
//! connection cannot stall the others.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{IceServer, PeerId};
use crate::turn::credentials::Credentials;
use crate::turn::server::{
    ClientAddr, ClientSend, HashMap, Output, PeerPolicy, Refusal, RelayId, Transport, TurnLimits,
    TurnNow, TurnServer, TurnStats,
};
use crate::turn::stun;

use super::limits::{ConnectionLimits, ConnectionPermit};
use super::udp_batch::{self, ReceiveBatch};

/// Frames waiting for one TCP client's socket.
const TCP_WRITE_QUEUE: usize = 256;
/// A TCP client must send its first message within this, and some message within
/// [`TCP_IDLE`] after that (browsers refresh allocations every few minutes).
const TCP_FIRST_MESSAGE: Duration = Duration::from_secs(10);
const TCP_IDLE: Duration = Duration::from_secs(15 * 60);
const MAX_TCP_CONNECTIONS: usize = 4096;
const MAX_TCP_CONNECTIONS_PER_IP: usize = 64;

/// How the relay is set up.
#[derive(Clone, Debug)]
pub struct TurnSettings {
    pub listen: SocketAddr,
    /// The address browsers reach the listener and relays on.
    pub advertised_ip: IpAddr,
    pub relay_ports: RangeInclusive<u16>,
    pub limits: TurnLimits,
    pub policy: PeerPolicy,
    pub credentials: Credentials,
    pub tls: Option<TlsSettings>,
}

/// TURN over TLS: where it listens, the host name its URL names (the certificate's), and the
/// certificate itself.
#[derive(Clone)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub host: String,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("listen", &self.listen)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM certificate chain and private key into a TLS acceptor.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Hands each call member its own credentials for the relay.
#[derive(Clone, Debug)]
pub struct TurnGrant {
    credentials: Credentials,
    urls: Vec<String>,
}

impl TurnGrant {
    /// The entry for `call_joined`'s `ice_servers`: the relay over UDP and TCP, with a
    /// username and password for `member` alone.
    pub fn ice_server(&self, member: PeerId) -> IceServer {
        let (username, password) = self.credentials.mint(&member.0.to_string(), unix_secs());
        IceServer {
            urls: self.urls.clone(),
            username: Some(username),
            credential: Some(password),
        }
    }
}

/// The relay's metrics.
#[derive(Clone, Debug, Default)]
pub struct TurnCounters {
    pub allocations: Gauge,
    pub allocations_total: Counter,
    pub bytes_to_peers: Counter,
    pub bytes_to_clients: Counter,
    pub tcp_connections: Gauge,
    /// Indexed by `Refusal as usize`.
    pub refused: Vec<Counter>,
}

impl TurnCounters {
    pub fn new() -> Self {
        TurnCounters {
            refused: Refusal::ALL.iter().map(|_| Counter::default()).collect(),
            ..TurnCounters::default()
        }
    }

    fn add(&self, before: &TurnStats, now: &TurnStats, allocations: usize) {
        self.allocations.set(allocations as i64);
        self.allocations_total
            .inc_by(now.allocations_total - before.allocations_total);
        self.bytes_to_peers
            .inc_by(now.bytes_to_peers - before.bytes_to_peers);
        self.bytes_to_clients
            .inc_by(now.bytes_to_clients - before.bytes_to_clients);
        for (i, counter) in self.refused.iter().enumerate() {
            counter.inc_by(now.refused[i] - before.refused[i]);
        }
    }
}

/// Opens the listeners and starts the relay, which runs until `shutdown`; the grant hands
/// out credentials for it.
pub fn start(
    settings: TurnSettings,
    counters: TurnCounters,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> io::Result<TurnGrant> {
    let udp = StdUdpSocket::bind(settings.listen)?;
    udp.set_nonblocking(true)?;
    let udp_addr = udp.local_addr()?;
    // TCP on the UDP listener's port, so "port 0" gives both the same free port when it can.
    let tcp_listen = SocketAddr::new(settings.listen.ip(), udp_addr.port());
    let tcp = std::net::TcpListener::bind(tcp_listen)?;
    tcp.set_nonblocking(true)?;
    let tcp_addr = tcp.local_addr()?;
    let tls = match settings.tls.clone() {
        Some(tls) => {
            let listener = std::net::TcpListener::bind(tls.listen)?;
            listener.set_nonblocking(true)?;
            Some((listener, tls))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((listener, _)) => Some(listener.local_addr()?),
        None => None,
    };
    let public = |port: u16| SocketAddr::new(settings.advertised_ip, port);
    let mut urls = vec![
        format!("turn:{}?transport=udp", public(udp_addr.port())),
        format!("turn:{}?transport=tcp", public(tcp_addr.port())),
    ];
    if let (Some((_, tls)), Some(addr)) = (&tls, tls_addr) {
        urls.push(format!("turns:{}:{}?transport=tcp", tls.host, addr.port()));
    }
    let grant = TurnGrant {
        credentials: settings.credentials.clone(),
        urls,
    };
    tracing::info!(%udp_addr, %tcp_addr, urls = ?grant.urls, relay_ports = ?settings.relay_ports, "TURN relay open");

    // The relay's UDP sockets are read on a thread of its own by a poll loop without an
    // async runtime, as coturn runs an event loop: each wake-up reads every ready socket, a
    // batch a system call, and sends at once. Tasks on a runtime cost the runtime's wake-up,
    // a read that only says "empty" and a timer check per datagram, which kept the relay's
    // CPU above coturn's at one call (docs/BENCHMARKS.md). TCP and TLS clients, few and
    // stream-shaped, keep async tasks on a second thread; both share the state behind a
    // lock that each side takes once per wake-up or frame.
    let poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), WAKE)?;
    let mut listener = mio::net::UdpSocket::from_std(udp);
    poll.registry()
        .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
    let relay = Arc::new(Mutex::new(Relay {
        server: TurnServer::new(
            settings.limits,
            settings.policy,
            settings.credentials,
            random_key(),
        ),
        udp: listener,
        sockets: HashMap::default(),
        streams: HashMap::default(),
        registry: poll.registry().try_clone()?,
        bind_ip: settings.listen.ip(),
        advertised_ip: settings.advertised_ip,
        next_port: pick_start(&settings.relay_ports),
        ports: settings.relay_ports,
        counters: counters.clone(),
        counted: TurnStats::default(),
        out: Vec::new(),
        frame: Vec::new(),
        unix_secs: unix_secs(),
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let running = tasks.token();
    let udp_relay = Arc::clone(&relay);
    std::thread::Builder::new()
        .name("room-turn".into())
        .spawn(move || {
            let _running = running;
            serve_udp(&udp_relay, poll);
            lock(&udp_relay).close_all();
        })?;
    let tasks = tasks.clone();
    let running = tasks.token();
    std::thread::Builder::new()
        .name("room-turn-tcp".into())
        .spawn(move || {
            let _running = running;
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let limits = ConnectionLimits::new(MAX_TCP_CONNECTIONS, MAX_TCP_CONNECTIONS_PER_IP);
                let accept = |listener, tls| Acceptor {
                    listener,
                    tls,
                    relay: Arc::downgrade(&relay),
                    limits: Arc::clone(&limits),
                    counters: counters.clone(),
                    tasks: tasks.clone(),
                    shutdown: shutdown.clone(),
                };
                match TcpListener::from_std(tcp) {
                    Ok(tcp) => {
                        tasks.spawn_local(accept(tcp, None).run());
                    }
                    Err(error) => tracing::error!(%error, "TURN over TCP could not start"),
                }
                match tls.map(|(l, tls)| TcpListener::from_std(l).map(|l| (l, tls))) {
                    Some(Ok((listener, tls))) => {
                        tasks.spawn_local(accept(listener, Some(tls.acceptor)).run());
                    }
                    Some(Err(error)) => tracing::error!(%error, "TURN over TLS could not start"),
                    None => {}
                }
                shutdown.cancelled().await;
                if let Err(error) = waker.wake() {
                    tracing::error!(%error, "could not stop the TURN relay's UDP thread");
                }
            });
        })?;
    Ok(grant)
}

/// The secret relay passwords are derived from: read from `turn-secret` in the data
/// directory, or made and written there (readable by this user only) at first start, so
/// credentials handed out before a restart stay good.
pub fn load_secret(data_dir: &Path) -> io::Result<Vec<u8>> {
    let path = data_dir.join("turn-secret");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim().as_bytes().to_vec();
            if secret.len() < 32 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the secret is shorter than 32 characters",
                ));
            }
            Ok(secret)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let hex: String = random_key()
                .iter()
                .chain(random_key().iter())
                .map(|b| format!("{b:02x}"))
                .collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            std::io::Write::write_all(&mut file, hex.as_bytes())?;
            Ok(hex.into_bytes())
        }
        Err(error) => Err(error),
    }
}

fn unix_secs() -> u64 {
    super::unix_now().0 / 1000
}

fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).expect("the OS random number generator works");
    key
}

fn pick_start(ports: &RangeInclusive<u16>) -> u16 {
    let span = u32::from(*ports.end()) - u32::from(*ports.start()) + 1;
    let offset = u32::from_be_bytes(random_key()[..4].try_into().expect("four bytes")) % span;
    (u32::from(*ports.start()) + offset) as u16
}

/// The poll loop's token for the UDP listener; a relay socket's token is its id.
const LISTENER: mio::Token = mio::Token(usize::MAX);
/// The token of the waker that stops the poll loop at shutdown.
const WAKE: mio::Token = mio::Token(usize::MAX - 1);
/// How often the relay's clocks run (allocation lifetimes, nonces, metrics).
const TICK: Duration = Duration::from_secs(1);
/// Batches read from one socket per wake-up before the others get their turn, so a flood
/// on one relay cannot starve the rest.
const BATCHES_PER_TURN: usize = 8;

/// The relay's state, shared by the UDP thread's poll loop and the TCP thread's tasks.
struct Relay {
    server: TurnServer,
    udp: mio::net::UdpSocket,
    sockets: HashMap<RelayId, mio::net::UdpSocket>,
    /// Each TCP or TLS client's queue of frames to write.
    streams: HashMap<ClientAddr, mpsc::Sender<Vec<u8>>>,
    /// Where new relay sockets join the UDP thread's poll loop.
    registry: mio::Registry,
    bind_ip: IpAddr,
    advertised_ip: IpAddr,
    ports: RangeInclusive<u16>,
    next_port: u16,
    counters: TurnCounters,
    counted: TurnStats,
    /// Reused for the logic's outputs.
    out: Vec<Output>,
    /// Reused for ChannelData frames to clients.
    frame: Vec<u8>,
    /// The wall clock in seconds, read once a tick: credentials and nonces count whole
    /// seconds, so the hot path reads only the monotonic clock.
    unix_secs: u64,
}

/// The relay's state for one wake-up or one frame. A panic while it was held cannot leave
/// it worse than a relay that stops for everyone, so a poisoned lock is taken as it is.
fn lock(relay: &Mutex<Relay>) -> MutexGuard<'_, Relay> {
    relay.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the UDP listener and the relay sockets as they become ready, and ticks the
/// relay's clocks, until the waker says stop.
fn serve_udp(relay: &Mutex<Relay>, mut poll: mio::Poll) {
    let mut events = mio::Events::with_capacity(256);
    // Read whole: a relayed datagram may be as long as UDP allows.
    let mut batch = ReceiveBatch::with_datagram_size(65_536);
    let mut next_tick = Instant::now() + TICK;
    // Sockets that still held datagrams when their turn ended: the poll, edge-triggered,
    // would not report them again until more arrive.
    let mut unfinished: Vec<mio::Token> = Vec::new();
    let mut ready: Vec<mio::Token> = Vec::new();
    loop {
        let timeout = if unfinished.is_empty() {
            next_tick.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        if let Err(error) = poll.poll(&mut events, Some(timeout)) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(%error, "the TURN relay's UDP poll failed; UDP relaying stops");
            return;
        }
        ready.clear();
        ready.extend(events.iter().map(|event| event.token()));
        ready.append(&mut unfinished);
        let mut relay = lock(relay);
        for &token in &ready {
            if token == WAKE {
                return;
            }
            if !relay.read(token, &mut batch) && !unfinished.contains(&token) {
                unfinished.push(token);
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            relay.tick();
            next_tick = now + TICK;
        }
    }
}

impl Relay {
    /// Reads and relays what the socket of `token` holds, up to its turn's share; false if
    /// it may hold more.
    fn read(&mut self, token: mio::Token, batch: &mut ReceiveBatch) -> bool {
        let relay = token.0 as RelayId;
        for _ in 0..BATCHES_PER_TURN {
            let received = if token == LISTENER {
                udp_batch::receive_unwatched(&self.udp, batch)
            } else {
                match self.sockets.get(&relay) {
                    Some(socket) => udp_batch::receive_unwatched(socket, batch),
                    // Closed since the poll reported it.
                    None => return true,
                }
            };
            match received {
                Ok(count) => {
                    for (source, data) in batch.datagrams() {
                        if token == LISTENER {
                            let client = ClientAddr {
                                transport: Transport::Udp,
                                remote: source,
                            };
                            self.client_data(client, data);
                        } else {
                            self.peer_data(relay, source, data);
                        }
                    }
                    if udp_batch::emptied(count) {
                        return true;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                // ICMP reports about earlier sends; the socket still works.
                Err(_) => {}
            }
        }
        false
    }

    /// Runs one step of the logic with the reused output list, then carries out its outputs.
    fn step<T>(&mut self, f: impl FnOnce(&mut TurnServer, &mut Vec<Output>) -> T) -> T {
        let mut out = std::mem::take(&mut self.out);
        let result = f(&mut self.server, &mut out);
        self.carry_out(&mut out);
        self.out = out;
        result
    }

    fn client_data(&mut self, client: ClientAddr, data: &[u8]) {
        let now = TurnNow {
            mono: Instant::now(),
            unix_secs: self.unix_secs,
        };
        let send = self.step(|server, out| server.on_client_data(now, client, data, out));
        if let Some(send) = send {
            if let Some(socket) = self.sockets.get(&send.relay) {
                let _ = socket.send_to(&data[send.payload], send.peer);
            }
        }
    }

    fn peer_data(&mut self, relay: RelayId, peer: SocketAddr, data: &[u8]) {
        match self.server.on_peer_data(Instant::now(), relay, peer, data) {
            Some(ClientSend::Channel { client, channel }) => {
                let mut frame = std::mem::take(&mut self.frame);
                let stream = client.transport.is_stream();
                stun::write_channel_data(&mut frame, channel, data, stream);
                self.to_client(client, &frame);
                self.frame = frame;
            }
            Some(ClientSend::Indication { client, data }) => self.to_client(client, &data),
            None => {}
        }
    }

    fn stream_opened(&mut self, client: ClientAddr, writer: mpsc::Sender<Vec<u8>>) {
        self.streams.insert(client, writer);
    }

    fn stream_closed(&mut self, client: ClientAddr) {
        self.streams.remove(&client);
        self.step(|server, out| server.client_closed(client, out));
    }

    fn tick(&mut self) {
        self.unix_secs = unix_secs();
        self.step(|server, out| server.tick(Instant::now(), out));
        let now = self.server.stats();
        self.counters
            .add(&self.counted, &now, self.server.allocations());
        self.counted = now;
    }

    fn close_all(&mut self) {
        self.sockets.clear();
    }

    /// Sends at once over UDP; over TCP queues a copy for the connection's writer.
    fn to_client(&self, client: ClientAddr, data: &[u8]) {
        match client.transport {
            Transport::Udp => {
                let _ = self.udp.send_to(data, client.remote);
            }
            Transport::Tcp | Transport::Tls => {
                if let Some(writer) = self.streams.get(&client) {
                    let _ = writer.try_send(data.to_vec());
                }
            }
        }
    }

    fn carry_out(&mut self, out: &mut Vec<Output>) {
        while !out.is_empty() {
            for output in std::mem::take(out) {
                match output {
                    Output::ToClient { client, data } => self.to_client(client, &data),
                    Output::OpenRelay { client } => {
                        let opened = self.open_relay();
                        self.server.relay_opened(client, opened, out);
                    }
                    Output::CloseRelay { relay } => {
                        if let Some(mut socket) = self.sockets.remove(&relay) {
                            let _ = self.registry.deregister(&mut socket);
                        }
                    }
                }
            }
        }
    }

    /// Binds a socket on the next free port of the range and has the poll loop read it.
    fn open_relay(&mut self) -> Option<(RelayId, SocketAddr)> {
        let span = usize::from(*self.ports.end() - *self.ports.start()) + 1;
        for _ in 0..span.min(512) {
            let port = self.next_port;
            self.next_port = if port >= *self.ports.end() {
                *self.ports.start()
            } else {
                port + 1
            };
            let Ok(socket) = StdUdpSocket::bind(SocketAddr::new(self.bind_ip, port)) else {
                continue;
            };
            let id = self.server.next_relay_id();
            let registered = socket.set_nonblocking(true).and_then(|()| {
                let mut socket = mio::net::UdpSocket::from_std(socket);
                self.registry
                    .register(
                        &mut socket,
                        mio::Token(id as usize),
                        mio::Interest::READABLE,
                    )
                    .map(|()| socket)
            });
            return match registered {
                Ok(socket) => {
                    self.sockets.insert(id, socket);
                    Some((id, SocketAddr::new(self.advertised_ip, port)))
                }
                Err(error) => {
                    tracing::warn!(%error, "could not set up a relay socket");
                    None
                }
            };
        }
        tracing::warn!(ports = ?self.ports, "no free relay port: refusing an allocation");
        None
    }
}

/// A TURN client connection's place under the limits, and in the gauge.
struct TcpSlot {
    _permit: ConnectionPermit,
    gauge: Gauge,
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Accepts TCP (or, with `tls`, TLS) connections from TURN clients.
struct Acceptor {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    relay: Weak<Mutex<Relay>>,
    limits: Arc<ConnectionLimits>,
    counters: TurnCounters,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Acceptor {
    async fn run(self) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let Ok((stream, remote)) = accepted else {
                // Out of file descriptors, most likely: let some close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Some(slot) = self.slot(remote.ip()) else {
                tracing::debug!(%remote, "refusing a TURN TCP connection: too many open");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (relay, shutdown) = (self.relay.clone(), self.shutdown.clone());
            match self.tls.clone() {
                None => {
                    let client = ClientAddr {
                        transport: Transport::Tcp,
                        remote,
                    };
                    let connection = serve_stream(stream, client, relay, slot, shutdown);
                    self.tasks.spawn_local(connection);
                }
                Some(acceptor) => {
                    let client = ClientAddr {
                        transport: Transport::Tls,
                        remote,
                    };
                    self.tasks.spawn_local(async move {
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout(TCP_FIRST_MESSAGE, handshake).await {
                            Ok(Ok(stream)) => {
                                serve_stream(stream, client, relay, slot, shutdown).await;
                            }
                            _ => {
                                tracing::debug!(%remote, "a TURN TLS handshake failed or timed out")
                            }
                        }
                    });
                }
            }
        }
    }

    /// A place for a connection from `ip`, unless there are too many.
    fn slot(&self, ip: IpAddr) -> Option<TcpSlot> {
        let permit = self.limits.admit(ip).ok()?;
        self.counters.tcp_connections.inc();
        Some(TcpSlot {
            _permit: permit,
            gauge: self.counters.tcp_connections.clone(),
        })
    }
}

/// Reads STUN and ChannelData frames from one TCP or TLS client and writes what the relay
/// queues for it, until either side closes, the client idles too long, or shutdown.
async fn serve_stream<S: AsyncRead + AsyncWrite>(
    stream: S,
    client: ClientAddr,
    relay: Weak<Mutex<Relay>>,
    _slot: TcpSlot,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (frames_out, mut outgoing) = mpsc::channel::<Vec<u8>>(TCP_WRITE_QUEUE);
    match relay.upgrade() {
        Some(relay) => lock(&relay).stream_opened(client, frames_out),
        None => return,
    }
    let write = async {
        while let Some(frame) = outgoing.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 16_384];
        let mut wait = TCP_FIRST_MESSAGE;
        loop {
            let mut taken = 0;
            loop {
                match stun::stream_frame_len(&buf[taken..]) {
                    Ok(Some(len)) if buf.len() - taken >= len => {
                        let Some(relay) = relay.upgrade() else { return };
                        lock(&relay).client_data(client, &buf[taken..taken + len]);
                        taken += len;
                        wait = TCP_IDLE;
                    }
                    Ok(_) => break,
                    Err(_) => {
                        tracing::debug!(remote = %client.remote, "closing a TURN stream that sent neither STUN nor channel data");
                        return;
                    }
                }
            }
            buf.drain(..taken);
            match tokio::time::timeout(wait, reader.read(&mut chunk)).await {
                Ok(Ok(read)) if read > 0 => buf.extend_from_slice(&chunk[..read]),
                _ => return,
            }
        }
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
        _ = shutdown.cancelled() => {}
    }
    if let Some(relay) = relay.upgrade() {
        lock(&relay).stream_closed(client);
    }
}
