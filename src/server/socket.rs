//! One WebSocket connection: decodes client frames, hands room work to the room task, and
//! writes whatever lands in the connection's bounded queue. Holds no room state of its own.
//! Generic over the socket (any `Stream` + `Sink` of WebSocket messages), so the loop is unit
//! tested without TCP.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::core::names::RoomSlug;
use crate::core::room::JoinRequest;
use crate::core::Refusal;
use crate::protocol::{
    close_code, ClientMsg, Dismissal, ErrorCode, PeerId, ServerMsg, PROTOCOL_VERSION,
};

use super::cluster::Owner;
use super::limits::ConnectionPermit;
use super::rooms::{Move, Outbox, RoomCommand, RoomHandle, MOVE_QUEUE};
use super::{unix_now, AppState};

/// Frames written before one flush; enough to amortize the syscall, small enough that one busy
/// connection does not starve the others on its worker thread.
const WRITE_BATCH: usize = 64;

/// How long a closing handshake may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// serde's errors quote the offending input (an unknown `type`, say); a refusal quotes at
/// most this much of it, so a hostile frame is not echoed back whole.
const MAX_ERROR_ECHO_CHARS: usize = 160;

/// How often a join is retried when the room task it found was closing at that moment.
const JOIN_ATTEMPTS: usize = 3;

/// Why the loop ended, which decides the close frame and whether the member leaves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client sent a close frame: a goodbye.
    ClientClosed,
    /// The connection broke without a goodbye; the member may come back and resume.
    ConnectionLost,
    ServerShutdown,
    TooSlow,
    TooLarge,
    VersionMismatch,
    /// The client broke the WebSocket protocol (a malformed frame).
    ProtocolViolation,
    /// A text frame that is not UTF-8.
    InvalidText,
    /// Nothing heard, not even a pong, for the idle timeout: the network is gone.
    Silent,
    /// The member resumed on a newer connection; it goes on there.
    Replaced,
    /// A host removed the member or ended the meeting.
    Dismissed(Dismissal),
    /// The room lives on another node (`--redis-url`); the connection is relayed there.
    Relayed,
    /// Another node turned out to run the meeting; the browser reconnects to reach it.
    Evicted,
}

impl Ending {
    fn close_frame(self, state: &AppState) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Ending::ClientClosed | Ending::ConnectionLost | Ending::Relayed => return None,
            Ending::ServerShutdown => (close_code::GOING_AWAY, "server shutting down".to_string()),
            Ending::Evicted => (
                close_code::GOING_AWAY,
                "the meeting moved to another server; reconnecting".to_string(),
            ),
            Ending::TooSlow => (
                close_code::POLICY_VIOLATION,
                "too slow: messages were not read in time".to_string(),
            ),
            Ending::TooLarge => (
                close_code::MESSAGE_TOO_BIG,
                format!(
                    "message too large (limit {} bytes)",
                    state.config.max_frame_bytes
                ),
            ),
            Ending::VersionMismatch => (
                close_code::PROTOCOL_ERROR,
                "protocol version mismatch".to_string(),
            ),
            Ending::Silent => (close_code::GOING_AWAY, "no answer to pings".to_string()),
            Ending::Replaced => (
                close_code::SIGNED_IN_ELSEWHERE,
                "signed in elsewhere".to_string(),
            ),
            Ending::ProtocolViolation => (
                close_code::PROTOCOL_ERROR,
                "malformed WebSocket frame".to_string(),
            ),
            Ending::InvalidText => (
                close_code::INVALID_DATA,
                "text frames must be UTF-8".to_string(),
            ),
            Ending::Dismissed(Dismissal::Removed) => {
                (close_code::REMOVED, "removed by a host".to_string())
            }
            Ending::Dismissed(Dismissal::MeetingEnded) => {
                (close_code::MEETING_ENDED, "the meeting ended".to_string())
            }
            Ending::Dismissed(Dismissal::Denied) => {
                (close_code::DENIED, "not let in by a host".to_string())
            }
            Ending::Dismissed(Dismissal::Locked) => (
                close_code::DENIED,
                "the meeting was locked while waiting".to_string(),
            ),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// What a connection runs over: axum's `WebSocket` in the server, an in-memory pair in tests.
pub trait Socket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}

struct Connection<S> {
    peer: PeerId,
    socket: S,
    state: AppState,
    outbox: Outbox,
    frames: mpsc::Receiver<Utf8Bytes>,
    greeted: bool,
    /// The room this connection's messages go to: the meeting's main room, or the breakout
    /// room it moved into.
    room: Option<RoomHandle>,
    /// While in a breakout room: the main room, which keeps the member meanwhile.
    main: Option<RoomHandle>,
    moves: mpsc::Receiver<Move>,
    room_list: Option<watch::Receiver<Utf8Bytes>>,
    last_heard: Instant,
    /// The client's address as the limits count it.
    address: std::net::IpAddr,
    /// With `Ending::Relayed`: the node that owns the room, and the `join` frame it answers.
    relay_to: Option<(String, String)>,
}

/// Answers a connection over a limit with the typed error and a close frame.
pub async fn turn_away(mut socket: impl Socket, state: &AppState, refusal: Refusal) {
    state.metrics.count_refusal(refusal.code);
    tracing::info!(reason = %refusal.message, "turning a connection away");
    let goodbye = async {
        socket
            .send(Message::Text(refusal.into_msg().to_json().into()))
            .await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::TRY_AGAIN_LATER,
                reason: "try again later".into(),
            })))
            .await
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
}

/// Runs one upgraded connection to its end; `permit` holds its place under the limits until then.
pub async fn serve(socket: impl Socket, state: AppState, permit: ConnectionPermit) {
    let metrics = state.metrics.clone();
    metrics.connections_open.inc();
    metrics.connections_total.inc();
    let mut connection = Connection::new(socket, state, &permit);
    let ending = connection.run().await;
    tracing::debug!(peer = %connection.peer, ?ending, "connection ended");
    match (
        ending,
        connection.relay_to.take(),
        connection.state.cluster.clone(),
    ) {
        (Ending::Relayed, Some((owner, join)), Some(cluster)) => {
            // What this node already said (its `hello`) goes out before the owner's answers.
            connection.write_queued().await;
            let Connection {
                socket,
                state,
                address,
                ..
            } = connection;
            cluster.relay(socket, &state, owner, join, address).await;
        }
        _ => connection.finish(ending).await,
    }
    metrics.connections_open.dec();
}

/// Serves a browser connected to another node, whose room lives here (`--redis-url`): it
/// already said `hello` there; `join` is its first frame here. Answers the node the room
/// lives on instead, when that is not this one.
pub async fn serve_relayed(
    socket: impl Socket,
    state: AppState,
    permit: ConnectionPermit,
    join: &str,
) -> Option<String> {
    let metrics = state.metrics.clone();
    metrics.connections_open.inc();
    metrics.connections_total.inc();
    let mut connection = Connection::new(socket, state, &permit);
    connection.greeted = true;
    let ending = match connection.on_text(join).await {
        Some(ending) => ending,
        None => connection.run().await,
    };
    tracing::debug!(peer = %connection.peer, ?ending, "relayed connection ended");
    let moved = connection.relay_to.take().map(|(owner, _)| owner);
    if ending != Ending::Relayed {
        connection.finish(ending).await;
    }
    metrics.connections_open.dec();
    moved
}

impl<S: Socket> Connection<S> {
    fn new(socket: S, state: AppState, permit: &ConnectionPermit) -> Self {
        let (frames_tx, frames) = mpsc::channel(state.config.peer_queue);
        let (moves_tx, moves) = mpsc::channel(MOVE_QUEUE);
        Connection {
            peer: state.next_peer_id(),
            outbox: Outbox {
                frames: frames_tx,
                kick: state.shutdown.child_token(),
                evicted: CancellationToken::new(),
                replaced: CancellationToken::new(),
                dismissed: Default::default(),
                moves: moves_tx,
            },
            socket,
            state,
            frames,
            greeted: false,
            room: None,
            main: None,
            moves,
            room_list: None,
            last_heard: Instant::now(),
            address: permit.address(),
            relay_to: None,
        }
    }

    /// Writes what is queued for the client, within the close timeout.
    async fn write_queued(&mut self) {
        let socket = &mut self.socket;
        let frames = &mut self.frames;
        let write = async {
            while let Ok(queued) = frames.try_recv() {
                socket.feed(Message::Text(queued)).await?;
            }
            socket.flush().await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, write).await;
    }

    async fn run(&mut self) -> Ending {
        let period = Duration::from_millis(self.state.config.heartbeat_ms.max(1));
        let idle_timeout = Duration::from_millis(self.state.config.idle_timeout_ms);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.outbox.kick.cancelled() => {
                    return if self.state.shutdown.is_cancelled() {
                        Ending::ServerShutdown
                    } else {
                        Ending::TooSlow
                    };
                }
                _ = self.outbox.replaced.cancelled() => return Ending::Replaced,
                _ = self.outbox.evicted.cancelled() => return Ending::Evicted,
                _ = heartbeat.tick() => {
                    if self.last_heard.elapsed() >= idle_timeout {
                        tracing::info!(peer = %self.peer, "closing a connection that stopped answering pings");
                        return Ending::Silent;
                    }
                    if let Some(ending) = self.write_batch(Message::Ping(Default::default())).await {
                        return ending;
                    }
                }
                Some(frame) = self.frames.recv() => {
                    if let Some(ending) = self.write_batch(Message::Text(frame)).await {
                        return ending;
                    }
                }
                // After the frames, so what the room queued before dismissing goes out first
                // (`finish` writes whatever is left).
                reason = self.outbox.dismissed.wait() => return Ending::Dismissed(reason),
                Some(hop) = self.moves.recv() => self.on_move(hop).await,
                Ok(()) = changed(&mut self.room_list) => {
                    if let Some(list) = &mut self.room_list {
                        let frame = list.borrow_and_update().clone();
                        self.send_frame(frame);
                    }
                }
                incoming = self.socket.next() => {
                    self.last_heard = Instant::now();
                    let message = match incoming {
                        None => return Ending::ConnectionLost,
                        Some(Ok(message)) => message,
                        Some(Err(error)) => return self.read_failed(error),
                    };
                    match message {
                        Message::Text(text) => {
                            if let Some(ending) = self.on_text(&text).await {
                                return ending;
                            }
                        }
                        Message::Binary(_) => self.refuse(binary_refused()),
                        Message::Close(_) => return Ending::ClientClosed,
                        // Pings are answered by the WebSocket layer itself.
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
            }
        }
    }

    /// Writes `first` and whatever else is already queued, then flushes once. A write that
    /// blocks on a client that stopped reading ends at the write deadline (the connection is
    /// too slow), or earlier on a kick or shutdown: while it waits, this connection neither
    /// reads nor notices silence, and what it was writing stays in memory.
    async fn write_batch(&mut self, first: Message) -> Option<Ending> {
        let deadline = Duration::from_millis(self.state.config.write_timeout_ms.max(1));
        let socket = &mut self.socket;
        let frames = &mut self.frames;
        let write = async {
            socket.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                let Ok(frame) = frames.try_recv() else { break };
                socket.feed(Message::Text(frame)).await?;
            }
            socket.flush().await
        };
        tokio::select! {
            result = tokio::time::timeout(deadline, write) => match result {
                Ok(written) => written.err().map(|_| Ending::ConnectionLost),
                Err(_) => {
                    self.state.metrics.slow_disconnects.inc();
                    tracing::info!(peer = %self.peer, "closing a connection whose write timed out");
                    Some(Ending::TooSlow)
                }
            },
            _ = self.outbox.kick.cancelled() => Some(if self.state.shutdown.is_cancelled() {
                Ending::ServerShutdown
            } else {
                Ending::TooSlow
            }),
        }
    }

    fn read_failed(&mut self, error: axum::Error) -> Ending {
        let ending = read_ending(error);
        match ending {
            Ending::TooLarge => {
                self.refuse(too_large(&self.state));
                tracing::info!(peer = %self.peer, "closing a connection that sent an oversized message");
            }
            Ending::ProtocolViolation | Ending::InvalidText => {
                tracing::info!(peer = %self.peer, "closing a connection that broke the WebSocket protocol");
            }
            _ => {}
        }
        ending
    }

    async fn on_text(&mut self, text: &str) -> Option<Ending> {
        let msg = match serde_json::from_str::<ClientMsg>(text) {
            Ok(msg) => msg,
            Err(error) => {
                let error = truncated(&error.to_string(), MAX_ERROR_ECHO_CHARS);
                tracing::debug!(peer = %self.peer, %error, "undecodable message");
                self.refuse(Refusal::new(
                    ErrorCode::BadMessage,
                    format!("could not read that message: {error}"),
                ));
                return None;
            }
        };
        self.state.metrics.count_received(&msg, text.len());
        if !self.greeted {
            return self.on_hello(msg);
        }
        match msg {
            ClientMsg::Hello { .. } => self.refuse(Refusal::new(
                ErrorCode::BadMessage,
                "hello was already received on this connection",
            )),
            ClientMsg::Join {
                room,
                name,
                resume,
                last_seen,
                host_key,
                browser,
                password,
                token,
            } => {
                let request = JoinRequest {
                    name,
                    resume,
                    last_seen,
                    address: Some(self.address),
                    host_key,
                    browser,
                    password,
                    ..JoinRequest::default()
                };
                return self.join(&room, request, token, text).await;
            }
            ClientMsg::WatchRooms if !self.state.config.public_room_list => {
                self.refuse(Refusal::new(
                    ErrorCode::Forbidden,
                    "this server does not list its rooms (--public-room-list is off)",
                ))
            }
            ClientMsg::WatchRooms if self.room_list.is_some() => self.refuse(Refusal::new(
                ErrorCode::BadMessage,
                "this connection already watches the room list",
            )),
            ClientMsg::WatchRooms => {
                let mut list = self.state.rooms.watch_list();
                // Send the current list right away, then every change.
                list.mark_changed();
                self.room_list = Some(list);
            }
            ClientMsg::ReturnToMain if self.main.is_some() => self.back_to_main(None).await,
            ClientMsg::EnterBreakout { room } if self.main.is_some() => {
                self.back_to_main(Some(room)).await;
            }
            // Hosts visiting a breakout room still run the round from there.
            msg @ (ClientMsg::OpenBreakouts { .. }
            | ClientMsg::AssignBreakout { .. }
            | ClientMsg::BroadcastToBreakouts { .. }
            | ClientMsg::CloseBreakouts)
                if self.main.is_some() =>
            {
                if let Some(main) = &self.main {
                    let _ = main
                        .commands
                        .send(RoomCommand::Request {
                            peer: self.peer,
                            msg,
                            received: std::time::Instant::now(),
                        })
                        .await;
                }
            }
            room_request => self.forward_to_room(room_request).await,
        }
        None
    }

    fn on_hello(&mut self, msg: ClientMsg) -> Option<Ending> {
        match msg {
            ClientMsg::Hello { version } if version == PROTOCOL_VERSION => {
                self.greeted = true;
                let config = &self.state.config;
                let limits = self.state.rooms.limits().advertised(config.max_frame_bytes);
                self.send(&ServerMsg::Hello {
                    version: PROTOCOL_VERSION,
                    limits,
                });
                None
            }
            ClientMsg::Hello { version } => {
                self.refuse(Refusal::new(
                    ErrorCode::VersionMismatch,
                    format!(
                        "this server speaks protocol version {PROTOCOL_VERSION}, the client {version}; reload the page"
                    ),
                ));
                Some(Ending::VersionMismatch)
            }
            _ => {
                self.refuse(Refusal::new(
                    ErrorCode::HelloRequired,
                    "send hello with the protocol version first",
                ));
                None
            }
        }
    }

    /// Joins the room, or ends with `Ending::Relayed` when another node runs it; `text` is
    /// the `join` frame as received, for that node.
    async fn join(
        &mut self,
        room: &str,
        request: JoinRequest,
        token: Option<String>,
        text: &str,
    ) -> Option<Ending> {
        if self.room.is_some() {
            self.refuse(Refusal::new(
                ErrorCode::AlreadyJoined,
                "this connection is already in a room",
            ));
            return None;
        }
        let slug = match RoomSlug::parse(room) {
            Ok(slug) => slug,
            Err(refusal) => {
                self.refuse(refusal);
                return None;
            }
        };
        if let Some(cluster) = self.state.cluster.clone() {
            match cluster.locate(&slug).await {
                Ok(Owner::Here) => {}
                Ok(Owner::Node(owner)) => {
                    self.relay_to = Some((owner, text.to_string()));
                    return Some(Ending::Relayed);
                }
                Err(refusal) => {
                    self.refuse(refusal);
                    return None;
                }
            }
        }
        self.join_here(slug, request, token).await;
        None
    }

    async fn join_here(&mut self, slug: RoomSlug, mut request: JoinRequest, token: Option<String>) {
        if let Some(auth) = &self.state.auth {
            let checked = match token.as_deref().filter(|t| !t.is_empty()) {
                Some(token) => auth.check(token, &slug, unix_now().0 / 1000),
                None => Err(Refusal::new(
                    ErrorCode::TokenRequired,
                    "this server admits only people with an invitation link; ask the organiser for yours",
                )),
            };
            match checked {
                Ok(grant) => {
                    request.name = grant.name;
                    request.granted_role = Some(grant.role);
                }
                // Reconnecting outlives the token: the member may come back as themselves,
                // not enter anew.
                Err(refusal) if refusal.code == ErrorCode::TokenExpired => {
                    request.resume_only = Some(refusal);
                }
                Err(refusal) => return self.refuse(refusal),
            }
        }
        for _ in 0..JOIN_ATTEMPTS {
            let handle = match self.state.rooms.handle(&slug, self.address) {
                Ok(handle) => handle,
                Err(refusal) => return self.refuse(refusal),
            };
            let (reply, outcome) = oneshot::channel();
            let command = RoomCommand::Join {
                peer: self.peer,
                request: request.clone(),
                outbox: self.outbox.clone(),
                reply,
            };
            if handle.commands.send(command).await.is_err() {
                continue;
            }
            match outcome.await {
                Ok(Ok(peer)) => {
                    // A resumed member keeps the id of their earlier connection.
                    self.peer = peer;
                    self.room = Some(handle);
                    return;
                }
                Ok(Err(refusal)) => return self.refuse(refusal),
                // The room closed between lookup and join; the registry starts a new one.
                Err(_) => continue,
            }
        }
        self.refuse(Refusal::new(
            ErrorCode::Unavailable,
            "the room could not be joined; try again",
        ));
    }

    /// A room moves this connection: into a breakout room, or back to the main room.
    async fn on_move(&mut self, hop: Move) {
        match hop {
            Move::ToBreakout { room, request } => {
                let (reply, joined) = oneshot::channel();
                let command = RoomCommand::Join {
                    peer: self.peer,
                    request: *request,
                    outbox: self.outbox.clone(),
                    reply,
                };
                let sent = room.commands.send(command).await.is_ok();
                let answer = joined.await;
                tracing::debug!(peer = %self.peer, sent, ?answer, "into a breakout room");
                let entered = sent && matches!(answer, Ok(Ok(_)));
                if self.main.is_none() {
                    self.main = self.room.take();
                }
                if entered {
                    self.room = Some(room);
                } else {
                    // The breakout room is full or gone: back where the member came from.
                    self.back_to_main(None).await;
                    self.refuse(Refusal::new(
                        ErrorCode::Unavailable,
                        "that breakout room could not be entered; you are back in the main room",
                    ));
                }
            }
            Move::BackToMain => self.back_to_main(None).await,
        }
    }

    /// Leaves the breakout room (if in one) for the main room, which greets the member
    /// again, or (`then`) moves them on to another breakout room.
    async fn back_to_main(&mut self, then: Option<u8>) {
        let Some(main) = self.main.take().or_else(|| self.room.clone()) else {
            return;
        };
        if let Some(breakout) = self.room.take() {
            if !breakout.commands.same_channel(&main.commands) {
                let (done, left) = oneshot::channel();
                let command = RoomCommand::Leave {
                    peer: self.peer,
                    outbox: self.outbox.frames.clone(),
                    done: Some(done),
                };
                if breakout.commands.send(command).await.is_ok() {
                    // A closed room answers nothing, and has nothing more to send either.
                    let _ = left.await;
                }
            }
        }
        let (reply, still) = oneshot::channel();
        let command = RoomCommand::Return {
            peer: self.peer,
            outbox: self.outbox.clone(),
            then,
            reply,
        };
        let sent = main.commands.send(command).await.is_ok();
        let answer = still.await;
        tracing::debug!(peer = %self.peer, sent, ?answer, ?then, "back to the main room");
        if sent && answer == Ok(true) {
            self.room = Some(main);
        } else {
            self.refuse(Refusal::new(
                ErrorCode::NotJoined,
                "you are no longer in this meeting; join it again",
            ));
        }
    }

    async fn forward_to_room(&mut self, msg: ClientMsg) {
        let Some(room) = &self.room else {
            return self.refuse(Refusal::new(ErrorCode::NotJoined, "join a room first"));
        };
        let command = RoomCommand::Request {
            peer: self.peer,
            msg,
            received: std::time::Instant::now(),
        };
        // Awaiting here is deliberate: a full room queue slows down this sender's reads,
        // not anybody else.
        if room.commands.send(command).await.is_err() {
            self.room = None;
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.state.metrics.count_refusal(refusal.code);
        self.send(&refusal.into_msg());
    }

    fn send(&mut self, msg: &ServerMsg) {
        self.state.metrics.count_sent(msg, 1, 0);
        self.send_frame(msg.to_json().into());
    }

    /// Queues a reply behind whatever the room already queued, keeping the order the client
    /// sees identical to the order things happened.
    fn send_frame(&mut self, frame: Utf8Bytes) {
        if self.outbox.frames.try_send(frame).is_err() {
            self.outbox.kick.cancel();
        }
    }

    async fn finish(mut self, ending: Ending) {
        if let (Some(breakout), Some(_)) = (&self.room, &self.main) {
            // The breakout room keeps nobody for a resume: a connection that comes back
            // resumes in the main room.
            let _ = breakout
                .commands
                .send(RoomCommand::Leave {
                    peer: self.peer,
                    outbox: self.outbox.frames.clone(),
                    done: None,
                })
                .await;
            self.room = self.main.take();
        }
        if let Some(room) = self.room.take() {
            let peer = self.peer;
            let outbox = self.outbox.frames.clone();
            // Only a connection that broke keeps its member for a resume; a goodbye, a refusal
            // or a shutdown (clients rejoin the restarted server) ends the membership now.
            let command = if ending == Ending::ConnectionLost || ending == Ending::Silent {
                RoomCommand::Disconnect { peer, outbox }
            } else {
                RoomCommand::Leave {
                    peer,
                    outbox,
                    done: None,
                }
            };
            let _ = room.commands.send(command).await;
        }
        let Some(frame) = ending.close_frame(&self.state) else {
            return;
        };
        let socket = &mut self.socket;
        let frames = &mut self.frames;
        let goodbye = async {
            // Deliver what was already queued (the error explaining the close, the last chat
            // before a shutdown) unless the queue overflowing is the very reason for closing.
            if ending != Ending::TooSlow {
                while let Ok(queued) = frames.try_recv() {
                    socket.feed(Message::Text(queued)).await?;
                }
            }
            socket.send(Message::Close(Some(frame))).await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// Why reading a WebSocket failed: a broken frame is not a broken network (no resume, the
/// member leaves now, and the client hears why), while a connection cut without a close
/// frame, which shows up as a protocol error too, is a lost network that may come back.
fn read_ending(error: axum::Error) -> Ending {
    let error = error.into_inner();
    let kind = error.downcast_ref::<tungstenite::Error>();
    match kind {
        Some(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )) => Ending::ConnectionLost,
        Some(tungstenite::Error::Utf8(_)) => Ending::InvalidText,
        Some(tungstenite::Error::Protocol(_)) => Ending::ProtocolViolation,
        Some(tungstenite::Error::Capacity(_)) => Ending::TooLarge,
        _ => Ending::ConnectionLost,
    }
}

/// The answer to a binary frame: the protocol is JSON text.
pub(super) fn binary_refused() -> Refusal {
    Refusal::new(
        ErrorCode::BadMessage,
        "binary frames are not supported; send JSON text",
    )
}

fn too_large(state: &AppState) -> Refusal {
    Refusal::new(
        ErrorCode::TooLarge,
        format!(
            "messages are limited to {} bytes; this connection will close",
            state.config.max_frame_bytes
        ),
    )
}

/// How a relay ends a browser connection whose read failed (`--redis-url`): whether the
/// member may resume, the error to send first, and the close frame.
pub(super) struct BrokenRead {
    pub resumable: bool,
    pub refusal: Option<Refusal>,
    pub close: Option<CloseFrame>,
}

pub(super) fn broken_read(error: axum::Error, state: &AppState) -> BrokenRead {
    let ending = read_ending(error);
    BrokenRead {
        resumable: ending == Ending::ConnectionLost,
        refusal: (ending == Ending::TooLarge).then(|| too_large(state)),
        close: ending.close_frame(state),
    }
}

/// `text` cut to at most `max` characters, marked with an ellipsis when cut.
fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Waits for the room list to change, or forever when this connection does not watch it.
async fn changed(
    list: &mut Option<watch::Receiver<Utf8Bytes>>,
) -> Result<(), watch::error::RecvError> {
    match list {
        Some(list) => list.changed().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::Path;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use clap::Parser;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

    use super::*;
    use crate::core::names::RoomSlug;
    use crate::protocol::close_code;
    use crate::server::config::Config;
    use crate::server::site;

    /// One end of an in-memory WebSocket: what the test sends comes out of `Stream`, what the
    /// server writes goes to the test.
    struct MemorySocket {
        incoming: UnboundedReceiver<Message>,
        outgoing: UnboundedSender<Message>,
    }

    impl Stream for MemorySocket {
        type Item = Result<Message, axum::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx).map(|m| m.map(Ok))
        }
    }

    impl Sink<Message> for MemorySocket {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
            self.outgoing.send(message).map_err(axum::Error::new)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    /// The test's side of a connection served by `serve`.
    struct Peer {
        send: UnboundedSender<Message>,
        received: UnboundedReceiver<Message>,
    }

    impl Peer {
        fn connect(state: &AppState) -> Peer {
            let (send, incoming) = unbounded_channel();
            let (outgoing, received) = unbounded_channel();
            let permit = state
                .connections
                .admit(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .expect("under the limits");
            tokio::spawn(serve(
                MemorySocket { incoming, outgoing },
                state.clone(),
                permit,
            ));
            Peer { send, received }
        }

        fn send(&self, msg: &ClientMsg) {
            self.send_text(&msg.to_json());
        }

        fn send_text(&self, text: &str) {
            let _ = self.send.send(Message::Text(text.to_string().into()));
        }

        /// The next message the server wrote, skipping pings.
        async fn next(&mut self) -> Message {
            loop {
                let message = tokio::time::timeout(Duration::from_secs(5), self.received.recv())
                    .await
                    .expect("the server answers in time")
                    .expect("the connection is open");
                if !matches!(message, Message::Ping(_)) {
                    return message;
                }
            }
        }

        async fn recv(&mut self) -> ServerMsg {
            match self.next().await {
                Message::Text(text) => serde_json::from_str(&text).expect("a server message"),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    fn state() -> AppState {
        let data_dir = std::env::temp_dir().join(format!(
            "room-socket-unit-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let config = Config::parse_from([
            "room",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--media-addr",
            "127.0.0.1:0",
        ]);
        let leptos = site::load(Path::new("Leptos.toml")).expect("site settings");
        AppState::new(config, leptos).expect("state")
    }

    fn rand_suffix() -> u32 {
        getrandom::u32().unwrap_or_default()
    }

    fn hello() -> ClientMsg {
        ClientMsg::Hello {
            version: PROTOCOL_VERSION,
        }
    }

    #[tokio::test]
    async fn hello_join_and_chat_round_trip_without_tcp() {
        let state = state();
        let mut ann = Peer::connect(&state);
        ann.send(&hello());
        assert!(
            matches!(ann.recv().await, ServerMsg::Hello { limits, .. } if limits.max_chat_chars == 2000)
        );
        ann.send(&ClientMsg::join("unit", "Ann"));
        assert!(matches!(ann.recv().await, ServerMsg::Joined { name, .. } if name == "Ann"));
        ann.send(&ClientMsg::Chat { text: "hi".into() });
        assert!(matches!(ann.recv().await, ServerMsg::Chat { entry } if entry.text == "hi"));
    }

    #[tokio::test]
    async fn anything_before_hello_and_binary_frames_are_refused_and_the_loop_goes_on() {
        let state = state();
        let mut ann = Peer::connect(&state);
        ann.send(&ClientMsg::WatchRooms);
        assert!(
            matches!(ann.recv().await, ServerMsg::Error { code, .. } if code == ErrorCode::HelloRequired)
        );
        ann.send_text("{not json");
        assert!(
            matches!(ann.recv().await, ServerMsg::Error { code, .. } if code == ErrorCode::BadMessage)
        );
        let _ = ann.send.send(Message::Binary(vec![1, 2, 3].into()));
        assert!(
            matches!(ann.recv().await, ServerMsg::Error { code, .. } if code == ErrorCode::BadMessage)
        );
        ann.send(&hello());
        assert!(matches!(ann.recv().await, ServerMsg::Hello { .. }));
    }

    #[tokio::test]
    async fn another_protocol_version_gets_the_error_then_a_protocol_error_close() {
        let state = state();
        let mut ann = Peer::connect(&state);
        ann.send(&ClientMsg::Hello { version: 1 });
        assert!(
            matches!(ann.recv().await, ServerMsg::Error { code, .. } if code == ErrorCode::VersionMismatch)
        );
        match ann.next().await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, close_code::PROTOCOL_ERROR),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_join_whose_connection_vanished_still_announces_what_it_announced() {
        let state = state();
        let mut ann = Peer::connect(&state);
        let mut bob = Peer::connect(&state);
        let mut bob_token = String::new();
        for (peer, name) in [(&mut ann, "Ann"), (&mut bob, "Bob")] {
            peer.send(&hello());
            peer.recv().await;
            peer.send(&ClientMsg::join("unit-vanish", name));
            if let ServerMsg::Joined { resume_token, .. } = peer.recv().await {
                bob_token = resume_token;
            }
        }
        // Bob's arrival waits for the next announcement. His page resumes from the same
        // address (a takeover) and that connection is gone before the reply: the resume
        // announced Bob on the way, and Ann must still hear of him.
        let slug = RoomSlug::parse("unit-vanish").unwrap();
        let room = state
            .rooms
            .handle(&slug, IpAddr::V4(Ipv4Addr::LOCALHOST))
            .unwrap();
        let (frames, _) = tokio::sync::mpsc::channel(8);
        let (reply, _) = tokio::sync::oneshot::channel();
        let request = JoinRequest {
            name: "Bob".into(),
            resume: Some(bob_token),
            last_seen: None,
            address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..JoinRequest::default()
        };
        let outbox = Outbox {
            frames,
            kick: Default::default(),
            evicted: Default::default(),
            replaced: Default::default(),
            dismissed: Default::default(),
            moves: tokio::sync::mpsc::channel(1).0,
        };
        room.commands
            .send(RoomCommand::Join {
                peer: PeerId(u64::MAX),
                request,
                outbox,
                reply,
            })
            .await
            .unwrap();
        match ann.recv().await {
            ServerMsg::PeersJoined { peers } => assert_eq!(peers[0].name, "Bob"),
            other => panic!("expected peers_joined, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_client_close_ends_the_membership_at_once() {
        let state = state();
        let mut ann = Peer::connect(&state);
        let mut bob = Peer::connect(&state);
        for (peer, name) in [(&mut ann, "Ann"), (&mut bob, "Bob")] {
            peer.send(&hello());
            peer.recv().await;
            peer.send(&ClientMsg::join("unit-close", name));
            assert!(matches!(peer.recv().await, ServerMsg::Joined { .. }));
        }
        assert!(matches!(ann.recv().await, ServerMsg::PeersJoined { .. }));
        let _ = bob.send.send(Message::Close(None));
        assert!(matches!(
            ann.recv().await,
            ServerMsg::PeerLeft {
                reason: crate::protocol::LeaveReason::Left,
                ..
            }
        ));
    }
}
