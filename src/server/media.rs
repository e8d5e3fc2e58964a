//! The forwarding unit on tokio: one UDP socket, one task. Datagrams, commands from room
//! tasks (offers, answers, departures) and the engine's timeouts go into
//! [`crate::sfu::engine::Sfu`]; datagrams go out on the socket and signalling goes back to
//! each participant's room task, which passes it on over the WebSocket.

use std::collections::HashMap;
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

/// Commands waiting for the media task; a room that finds the queue full drops its command
/// and tells the member, rather than wait.
const COMMAND_QUEUE: usize = 4096;

/// Largest datagram read: a little over the Ethernet MTU, which WebRTC stays under.
const DATAGRAM_BUFFER: usize = 2048;

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
        peer: PeerId,
        sdp: String,
        room_inbox: mpsc::WeakSender<RoomCommand>,
    },
    View {
        peer: PeerId,
        tiles: Vec<TileView>,
    },
    Drop {
        peer: PeerId,
    },
}

/// What the media task counts for `/metrics`; shared with the registry.
#[derive(Clone, Debug, Default)]
pub struct MediaCounters {
    pub participants: Gauge,
    pub datagrams_in: Counter,
    pub bytes_in: Counter,
    pub datagrams_out: Counter,
    pub bytes_out: Counter,
    pub frames_forwarded: Counter,
    pub forwarding_errors: Counter,
    pub keyframe_requests: Counter,
    pub layer_switches: Counter,
    pub nacks_received: Counter,
    pub nacks_sent: Counter,
    pub speaker_changes: Counter,
    pub unknown_datagrams: Counter,
}

impl MediaCounters {
    /// Brings the counters from `before` to `now` (the engine counts, these export).
    fn advance(&self, before: &SfuStats, now: &SfuStats, participants: usize) {
        self.participants.set(participants as i64);
        let pairs = [
            (&self.datagrams_in, before.datagrams_in, now.datagrams_in),
            (&self.bytes_in, before.bytes_in, now.bytes_in),
            (&self.datagrams_out, before.datagrams_out, now.datagrams_out),
            (&self.bytes_out, before.bytes_out, now.bytes_out),
            (
                &self.frames_forwarded,
                before.frames_forwarded,
                now.frames_forwarded,
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

/// The way to the media task; cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    commands: mpsc::Sender<MediaCommand>,
    local_addr: SocketAddr,
}

impl MediaHandle {
    /// Binds the media socket and starts the task, which ends on `shutdown`.
    pub fn start(
        addr: SocketAddr,
        public_ips: &[IpAddr],
        http_addr: Option<SocketAddr>,
        counters: MediaCounters,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> std::io::Result<MediaHandle> {
        let socket = StdUdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let candidates = candidates(local_addr, public_ips, http_addr);
        tracing::info!(%local_addr, ?candidates, "media socket open");
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let task = MediaTask {
            sfu: Sfu::new(candidates),
            socket,
            local_addr,
            inboxes: HashMap::new(),
            counters,
            counted: SfuStats::default(),
        };
        tasks.spawn(task.run(inbox, shutdown));
        Ok(MediaHandle {
            commands,
            local_addr,
        })
    }

    /// The media socket's address (its port, when the flag said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `command`; false when the media task is overloaded. After it stopped (the
    /// server is shutting down) commands are dropped quietly: nobody waits for them.
    pub fn send(&self, command: MediaCommand) -> bool {
        !matches!(
            self.commands.try_send(command),
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
    /// The engine's counts as last exported.
    counted: SfuStats,
}

impl MediaTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<MediaCommand>,
        shutdown: CancellationToken,
    ) {
        let mut buffer = vec![0u8; DATAGRAM_BUFFER];
        loop {
            let deadline = self.sfu.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => {
                        let now = std::time::Instant::now();
                        self.sfu.receive(now, source, self.local_addr, &buffer[..length]);
                    }
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
            } => {
                if let Err(error) = self.sfu.answer(now, peer, &sdp) {
                    // Possibly from someone with no connection here: answer them directly.
                    self.inboxes.entry(peer).or_insert(room_inbox);
                    self.refuse(peer, error.0);
                }
            }
            MediaCommand::View { peer, tiles } => self.sfu.set_view(now, peer, &tiles),
            MediaCommand::Drop { peer } => {
                self.sfu.remove(now, peer);
                self.inboxes.remove(&peer);
            }
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
                } => {
                    let _ = self.socket.try_send_to(&contents, destination);
                }
                SfuOutput::Signal { peer, msg } => self.signal(peer, msg),
            }
        }
        let stats = self.sfu.stats();
        self.counters
            .advance(&self.counted, &stats, self.sfu.participant_count());
        self.counted = stats;
        // Participants the engine dropped by itself (their ICE timed out) need no way back.
        let sfu = &self.sfu;
        self.inboxes.retain(|peer, _| sfu.has(*peer));
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
