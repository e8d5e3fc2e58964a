//! The forwarding unit on tokio: rooms spread over shards, each one task with its own UDP
//! socket and engine, so every core forwards and no lock is shared. Datagrams, commands from
//! room tasks (offers, answers, departures) and the engine's timeouts go into a shard's
//! [`crate::sfu::engine::Sfu`]; datagrams go out on its socket, many per system call, and
//! signalling goes back to each participant's room task, which passes it on over the
//! WebSocket.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::{ErrorCode, PeerId, ServerMsg, TileView};
use crate::sfu::engine::{RoomKey, Sfu, SfuOutput, SfuStats};

use super::rooms::RoomCommand;
use super::udp_batch::{self, ReceiveBatch};

/// Commands waiting for a shard; a room that finds the queue full drops its command and
/// tells the member, rather than wait.
const COMMAND_QUEUE: usize = 4096;

/// Each shard's socket buffers: a keyframe to a hundred viewers is over a megabyte at once.
const SOCKET_BUFFER: usize = 4 << 20;

/// What room tasks ask of the forwarding unit.
#[derive(Debug)]
pub enum MediaCommand {
    Offer {
        room: RoomKey,
        peer: PeerId,
        sdp: String,
        /// Where this participant's signalling goes back to.
        room_inbox: mpsc::WeakSender<RoomCommand>,
    },
    Answer {
        room: RoomKey,
        peer: PeerId,
        sdp: String,
        room_inbox: mpsc::WeakSender<RoomCommand>,
    },
    View {
        room: RoomKey,
        peer: PeerId,
        tiles: Vec<TileView>,
    },
    Drop {
        room: RoomKey,
        peer: PeerId,
    },
    /// Drop these sources of `peer`'s media (a host turned them off).
    Withhold {
        room: RoomKey,
        peer: PeerId,
        sources: crate::protocol::MediaState,
    },
}

impl MediaCommand {
    fn room(&self) -> &RoomKey {
        match self {
            MediaCommand::Offer { room, .. }
            | MediaCommand::Answer { room, .. }
            | MediaCommand::View { room, .. }
            | MediaCommand::Drop { room, .. }
            | MediaCommand::Withhold { room, .. } => room,
        }
    }

    pub fn peer(&self) -> PeerId {
        match self {
            MediaCommand::Offer { peer, .. }
            | MediaCommand::Answer { peer, .. }
            | MediaCommand::View { peer, .. }
            | MediaCommand::Drop { peer, .. }
            | MediaCommand::Withhold { peer, .. } => *peer,
        }
    }
}

/// What the media task counts for `/metrics`; shared with the registry.
#[derive(Clone, Debug, Default)]
pub struct MediaCounters {
    pub participants: Gauge,
    pub datagrams_in: Counter,
    pub bytes_in: Counter,
    pub datagrams_out: Counter,
    pub bytes_out: Counter,
    pub packets_forwarded: Counter,
    pub forwarding_errors: Counter,
    pub keyframe_requests: Counter,
    pub layer_switches: Counter,
    pub nacks_received: Counter,
    pub nacks_sent: Counter,
    pub speaker_changes: Counter,
    pub silence_dropped: Counter,
    pub withheld_dropped: Counter,
    pub recovery_probes: Counter,
    pub mids_redrawn: Counter,
    pub unknown_datagrams: Counter,
}

impl MediaCounters {
    /// Brings the counters from `before` to `now` (one shard's engine counts, these export
    /// the sum over the shards).
    fn advance(&self, before: &SfuStats, now: &SfuStats, participants: (usize, usize)) {
        self.participants
            .inc_by(participants.1 as i64 - participants.0 as i64);
        let pairs = [
            (&self.datagrams_in, before.datagrams_in, now.datagrams_in),
            (&self.bytes_in, before.bytes_in, now.bytes_in),
            (&self.datagrams_out, before.datagrams_out, now.datagrams_out),
            (&self.bytes_out, before.bytes_out, now.bytes_out),
            (
                &self.packets_forwarded,
                before.packets_forwarded,
                now.packets_forwarded,
            ),
            (
                &self.forwarding_errors,
                before.forwarding_errors,
                now.forwarding_errors,
            ),
            (
                &self.keyframe_requests,
                before.keyframe_requests,
                now.keyframe_requests,
            ),
            (
                &self.layer_switches,
                before.layer_switches,
                now.layer_switches,
            ),
            (
                &self.nacks_received,
                before.nacks_received,
                now.nacks_received,
            ),
            (&self.nacks_sent, before.nacks_sent, now.nacks_sent),
            (
                &self.speaker_changes,
                before.speaker_changes,
                now.speaker_changes,
            ),
            (
                &self.silence_dropped,
                before.silence_dropped,
                now.silence_dropped,
            ),
            (
                &self.withheld_dropped,
                before.withheld_dropped,
                now.withheld_dropped,
            ),
            (
                &self.recovery_probes,
                before.recovery_probes,
                now.recovery_probes,
            ),
            (&self.mids_redrawn, before.mids_redrawn, now.mids_redrawn),
            (
                &self.unknown_datagrams,
                before.unknown_datagrams,
                now.unknown_datagrams,
            ),
        ];
        for (counter, was, is) in pairs {
            counter.inc_by(is.saturating_sub(was));
        }
    }
}

/// The way to the media shards; cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    shards: Vec<mpsc::Sender<MediaCommand>>,
    /// Each shard's UDP port, which the TURN relay may reach.
    ports: Vec<u16>,
}

impl MediaHandle {
    /// Binds one media socket per shard, on consecutive ports from `addr`'s (each on a free
    /// port when it says 0), and starts the shards, which end on `shutdown`.
    pub fn start(
        addr: SocketAddr,
        shards: usize,
        public_ips: &[IpAddr],
        http_addr: Option<SocketAddr>,
        counters: MediaCounters,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> std::io::Result<MediaHandle> {
        let mut handle = MediaHandle {
            shards: Vec::new(),
            ports: Vec::new(),
        };
        for index in 0..shards.max(1) {
            let mut shard_addr = addr;
            if addr.port() != 0 {
                let port = u16::try_from(usize::from(addr.port()) + index).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the media ports run past 65535",
                    )
                })?;
                shard_addr.set_port(port);
            }
            let socket = StdUdpSocket::bind(shard_addr)?;
            socket.set_nonblocking(true)?;
            let socket = UdpSocket::from_std(socket)?;
            udp_batch::enlarge_buffers(&socket, SOCKET_BUFFER);
            let local_addr = socket.local_addr()?;
            let candidates = candidates(local_addr, public_ips, http_addr);
            tracing::info!(shard = index, %local_addr, ?candidates, "media socket open");
            let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
            let task = MediaTask {
                sfu: Sfu::new(candidates),
                socket,
                local_addr,
                inboxes: HashMap::new(),
                counters: counters.clone(),
                counted: SfuStats::default(),
                participants: 0,
                outgoing: Vec::new(),
            };
            tasks.spawn(task.run(inbox, shutdown.clone()));
            handle.shards.push(commands);
            handle.ports.push(local_addr.port());
        }
        Ok(handle)
    }

    /// The media sockets' ports, one per shard.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Queues `command` for the shard of its room; false when that shard is overloaded.
    /// After it stopped (the server is shutting down) commands are dropped quietly: nobody
    /// waits for them.
    pub fn send(&self, command: MediaCommand) -> bool {
        // A fixed hasher: every command of a room reaches the same shard.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(command.room());
        let shard = &self.shards[(hash % self.shards.len() as u64) as usize];
        !matches!(
            shard.try_send(command),
            Err(mpsc::error::TrySendError::Full(_))
        )
    }
}

/// The addresses browsers are told to send media to: the configured public addresses, else
/// the socket's own if specific, else the HTTP listener's, else loopback (a warning: only
/// browsers on this machine can connect then).
fn candidates(
    local: SocketAddr,
    public_ips: &[IpAddr],
    http_addr: Option<SocketAddr>,
) -> Vec<SocketAddr> {
    let port = local.port();
    if !public_ips.is_empty() {
        return public_ips
            .iter()
            .map(|&ip| SocketAddr::new(ip, port))
            .collect();
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    if let Some(http) = http_addr.filter(|a| !a.ip().is_unspecified()) {
        return vec![SocketAddr::new(http.ip(), port)];
    }
    tracing::warn!(
        "no --public-ip and the media socket listens on every address: telling browsers to use \
         127.0.0.1, which only works on this machine"
    );
    vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]
}

struct MediaTask {
    sfu: Sfu,
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// Each participant's room task, for the signalling the engine has for them.
    inboxes: HashMap<PeerId, mpsc::WeakSender<RoomCommand>>,
    counters: MediaCounters,
    /// The engine's counts and participants as last exported.
    counted: SfuStats,
    participants: usize,
    /// Datagrams of one flush, gathered to leave in batches.
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
}

impl MediaTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<MediaCommand>,
        shutdown: CancellationToken,
    ) {
        let mut batch = ReceiveBatch::default();
        loop {
            let deadline = self.sfu.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                ready = self.socket.readable() => match ready.and_then(|()| {
                    udp_batch::receive(&self.socket, &mut batch)
                }) {
                    Ok(_) => {
                        let now = std::time::Instant::now();
                        for (source, contents) in batch.datagrams() {
                            self.sfu.receive(now, source, self.local_addr, contents);
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    // ICMP port unreachable from a participant that went away shows up as an
                    // error on the next read; nothing to do for the others.
                    Err(error) => tracing::debug!(%error, "media socket read failed"),
                },
                () = sleep_until(deadline) => self.sfu.handle_timeout(std::time::Instant::now()),
            }
            self.flush();
        }
        tracing::debug!("media task stopped");
    }

    fn command(&mut self, command: MediaCommand) {
        let now = std::time::Instant::now();
        match command {
            MediaCommand::Offer {
                room,
                peer,
                sdp,
                room_inbox,
            } => {
                self.inboxes.insert(peer, room_inbox);
                if let Err(error) = self.sfu.offer(now, room, peer, &sdp) {
                    self.refuse(peer, error.0);
                }
            }
            MediaCommand::Answer {
                peer,
                sdp,
                room_inbox,
                ..
            } => {
                if let Err(error) = self.sfu.answer(now, peer, &sdp) {
                    // Possibly from someone with no connection here: answer them directly.
                    self.inboxes.entry(peer).or_insert(room_inbox);
                    self.refuse(peer, error.0);
                }
            }
            MediaCommand::View { peer, tiles, .. } => self.sfu.set_view(now, peer, &tiles),
            MediaCommand::Drop { peer, .. } => {
                self.sfu.remove(now, peer);
                self.inboxes.remove(&peer);
            }
            MediaCommand::Withhold { peer, sources, .. } => self.sfu.withhold(peer, sources),
        }
    }

    fn refuse(&self, peer: PeerId, message: String) {
        tracing::info!(%peer, %message, "media signalling refused");
        self.signal(peer, ServerMsg::error(ErrorCode::BadMessage, message));
    }

    fn signal(&self, peer: PeerId, msg: ServerMsg) {
        let Some(inbox) = self.inboxes.get(&peer).and_then(mpsc::WeakSender::upgrade) else {
            return;
        };
        if inbox
            .try_send(RoomCommand::FromMedia { peer, msg })
            .is_err()
        {
            tracing::warn!(%peer, "room queue full: media signalling dropped");
        }
    }

    /// Sends what the engine produced. A datagram the socket cannot take now is dropped, as
    /// a router would: media must never wait.
    fn flush(&mut self) {
        while let Some(output) = self.sfu.poll_output() {
            match output {
                SfuOutput::Transmit {
                    destination,
                    contents,
                } => self.outgoing.push((destination, contents)),
                SfuOutput::Signal { peer, msg } => self.signal(peer, msg),
            }
        }
        if !self.outgoing.is_empty() {
            udp_batch::send(&self.socket, &self.outgoing);
            self.outgoing.clear();
        }
        let stats = self.sfu.stats();
        let participants = self.sfu.participant_count();
        self.counters
            .advance(&self.counted, &stats, (self.participants, participants));
        self.counted = stats;
        self.participants = participants;
        // Participants the engine dropped by itself (their ICE timed out) need no way back.
        if self.inboxes.len() > participants {
            let sfu = &self.sfu;
            self.inboxes.retain(|peer, _| sfu.has(*peer));
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
