//! Live rooms: one task per room owns its `core::room::Room` and carries out what the core
//! decides (its `Outcome`s): fan-out to the members' bounded queues, chat to the store, history
//! reads in a task of their own, and a wake-up at the core's next deadline. The registry finds
//! or starts those tasks and publishes the list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::directory::Directory;
use crate::core::names::{readable_slug, RoomSlug};
use crate::core::rate::{KeyedBuckets, RateLimit, SlowLimit};
use crate::core::room::{BreakoutWork, JoinRequest, PasswordToHash, Room, RoomLimits};
use crate::core::{Delivery, HistoryNeed, MediaEffect, MonoMillis, Outcome, Recipients, Refusal};
use crate::protocol::{
    ChatEntry, ClientMsg, Dismissal, ErrorCode, IceServer, LeaveReason, PeerId, ServerMsg,
};

use super::cluster::history::SharedHistory;
use super::media::{MediaCommand, MediaHandle};
use super::metrics::Metrics;
use super::password::Passwords;
use super::store::{ChatStore, ReadError, StoredHistory};
use super::Clock;

/// Commands a room task accepts. Bounded, so a flood from one connection waits on its own
/// reader instead of growing the room's queue.
const ROOM_QUEUE: usize = 4096;

/// The sending side of one connection, as a room sees it.
#[derive(Clone, Debug)]
pub struct Outbox {
    /// Encoded frames for the connection's writer; bounded so a slow reader is noticed.
    pub frames: mpsc::Sender<Utf8Bytes>,
    /// Cancelled by the room when the connection cannot keep up; the connection then closes.
    pub kick: CancellationToken,
    /// Cancelled when another node runs this meeting (`--redis-url`): the connection closes
    /// so the browser reconnects to it.
    pub evicted: CancellationToken,
    /// Cancelled when the member resumed on a newer connection; this one then closes with
    /// "signed in elsewhere" instead of "too slow".
    pub replaced: CancellationToken,
    /// Set when a host removed the member or ended the meeting: the connection writes what
    /// is queued (the `dismissed` message) and closes for good.
    pub dismissed: Dismissed,
    /// Where the connection moves between a meeting's main room and its breakout rooms.
    pub moves: mpsc::Sender<Move>,
}

/// A connection's move between rooms of one meeting, told by the room it is in.
#[derive(Debug)]
pub enum Move {
    /// From the main room into a breakout room: join it with this request.
    ToBreakout {
        room: RoomHandle,
        request: Box<JoinRequest>,
    },
    /// The breakout rooms closed: back to the main room.
    BackToMain,
}

/// Moves queued for one connection at most; a connection that does not take them is too
/// slow anyway.
pub const MOVE_QUEUE: usize = 4;

/// The room's word that a connection is finished for good, and why.
#[derive(Clone, Debug, Default)]
pub struct Dismissed {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<Dismissal>>,
}

impl Dismissed {
    pub fn dismiss(&self, reason: Dismissal) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Resolves once dismissed, with the reason.
    pub async fn wait(&self) -> Dismissal {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or(Dismissal::Removed)
    }
}

impl Outbox {
    /// Queues a frame without waiting. `false` means the queue was full: the peer is too slow.
    fn offer(&self, frame: &Utf8Bytes) -> bool {
        match self.frames.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            // The connection is already gone; its leave is on the way.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }
}

#[derive(Debug)]
pub enum RoomCommand {
    /// Enter the room, or resume an earlier identity; the reply says which id the
    /// connection now has.
    Join {
        peer: PeerId,
        request: JoinRequest,
        outbox: Outbox,
        reply: oneshot::Sender<Result<PeerId, Refusal>>,
    },
    /// A room-level client message (chat, call, signaling) from a member, and when the
    /// connection received it (for the fan-out latency histogram).
    Request {
        peer: PeerId,
        msg: ClientMsg,
        received: std::time::Instant,
    },
    /// The member said goodbye (closed the page, pressed leave): they leave at once.
    /// `outbox` tells the connection apart from a newer one that already resumed. `done`,
    /// if given, is answered once the room will send them nothing more (a move back to the
    /// main room waits for it, so nothing of this room arrives after that room's greeting).
    Leave {
        peer: PeerId,
        outbox: mpsc::Sender<Utf8Bytes>,
        done: Option<oneshot::Sender<()>>,
    },
    /// The connection dropped without a goodbye: the member may resume within the grace
    /// period. `outbox` tells the connection apart from a newer one that already resumed.
    Disconnect {
        peer: PeerId,
        outbox: mpsc::Sender<Utf8Bytes>,
    },
    /// A history read the core asked for has finished (sent by the reading task).
    HistoryLoaded {
        need: HistoryNeed,
        entries: Vec<ChatEntry>,
    },
    /// Signalling the forwarding unit has for a member (sent by the media task).
    FromMedia { peer: PeerId, msg: ServerMsg },
    /// The hash of the password `by` set (sent by the hashing task).
    PasswordHashed { by: PeerId, hash: String },
    /// A member's connection is back from a breakout room (`then`: on its way to another).
    /// The reply says whether they are still a member.
    Return {
        peer: PeerId,
        outbox: Outbox,
        then: Option<u8>,
        reply: oneshot::Sender<bool>,
    },
    /// To a breakout room: what its main room says to every breakout room.
    FromMain(ServerMsg),
    /// To a breakout room: the round is over, send everyone back to the main room.
    CloseBreakout,
    /// Another node holds this meeting's lease (`--redis-url`): send everyone to reconnect
    /// there, and leave the saved state in Redis to that node.
    Evict,
}

/// A way to reach a running room task.
#[derive(Clone, Debug)]
pub struct RoomHandle {
    pub commands: mpsc::Sender<RoomCommand>,
    generation: u64,
}

struct Registry {
    running: HashMap<RoomSlug, RoomHandle>,
    directory: Directory,
    next_generation: u64,
    /// Room openings per client address.
    openers: KeyedBuckets<IpAddr>,
    /// Password guesses per client address, over all rooms.
    guessers: KeyedBuckets<IpAddr>,
}

/// All rooms of this server.
pub struct Rooms {
    registry: Mutex<Registry>,
    /// The home page's list, encoded once per change and shared by every watcher.
    list: watch::Sender<Utf8Bytes>,
    settings: RoomSettings,
    history: History,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    clock: Clock,
    passwords: Passwords,
}

/// What every room of this server shares.
#[derive(Clone, Debug)]
pub struct RoomSettings {
    pub limits: RoomLimits,
    pub ice_servers: Vec<IceServer>,
    pub max_rooms: usize,
    /// Rooms one client address may open.
    pub new_rooms: RateLimit,
    /// Whether the list of rooms in use is published (`--public-room-list`).
    pub public_list: bool,
    /// The published list is every node's, which the cluster puts together (`--redis-url`).
    pub list_from_cluster: bool,
    /// The forwarding unit, unless calls only go browser to browser (`--media mesh`).
    pub media: Option<MediaHandle>,
    /// The built-in TURN relay, which gives each call member its own credentials.
    pub turn: Option<super::turn::TurnGrant>,
}

/// Ids left unused after a crash: more than can be delivered and not yet stored (the store
/// keeps at most 32 MiB of waiting messages of at least 64 bytes each), and small enough that
/// ids stay exact in JavaScript for billions of crashes.
const CRASH_ID_GAP: u64 = 1_000_000;

/// Client addresses whose room openings are remembered at most; when all of them are busy,
/// new addresses cannot open rooms until some are quiet (joining open rooms still works).
const MAX_TRACKED_OPENERS: usize = 100_000;

/// Password guesses one client address may make, over all rooms: a person who mistypes a
/// few times is not held up, a guesser gets two a minute.
const GUESSES_PER_ADDRESS: SlowLimit = SlowLimit::new(10, 30);

impl Rooms {
    pub fn new(
        settings: RoomSettings,
        history: History,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        clock: Clock,
    ) -> Arc<Self> {
        let empty = encode_list(&Directory::default());
        Arc::new(Rooms {
            registry: Mutex::new(Registry {
                running: HashMap::new(),
                directory: Directory::default(),
                next_generation: 0,
                openers: KeyedBuckets::new(settings.new_rooms, MAX_TRACKED_OPENERS),
                guessers: KeyedBuckets::new(GUESSES_PER_ADDRESS.as_rate(), MAX_TRACKED_OPENERS),
            }),
            list: watch::channel(empty).0,
            settings,
            history,
            metrics,
            tasks,
            clock,
            passwords: Passwords::default(),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry holds plain maps that every update leaves consistent, so a panic
        // elsewhere while it was held does not make it unusable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task of `slug`, started if the room is not running, the server may run another
    /// and `opener` (a client address) has not opened too many lately.
    pub fn handle(
        self: &Arc<Self>,
        slug: &RoomSlug,
        opener: IpAddr,
    ) -> Result<RoomHandle, Refusal> {
        let mut registry = self.registry();
        if let Some(handle) = registry.running.get(slug) {
            return Ok(handle.clone());
        }
        if !registry.openers.try_take(opener, self.clock.now().mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "your address has opened many rooms just now; wait a little and try again",
            ));
        }
        let room = Room::new(
            slug.clone(),
            self.settings.limits.clone(),
            self.settings.ice_servers.clone(),
        );
        self.start(registry, room)
    }

    /// The task of breakout room `number` of round `round` of `parent`, started if needed.
    fn breakout_handle(
        self: &Arc<Self>,
        parent: &RoomSlug,
        round: &str,
        number: u8,
        state: Option<crate::protocol::Breakouts>,
    ) -> Result<RoomHandle, Refusal> {
        let slug = RoomSlug::breakout(parent, round, number);
        let registry = self.registry();
        if let Some(handle) = registry.running.get(&slug) {
            return Ok(handle.clone());
        }
        let room = Room::new_breakout(
            slug,
            self.settings.limits.clone(),
            self.settings.ice_servers.clone(),
            number,
            state,
        );
        self.start(registry, room)
    }

    /// Starts the task of `room`, if the server may run another.
    fn start(
        self: &Arc<Self>,
        mut registry: std::sync::MutexGuard<'_, Registry>,
        room: Room,
    ) -> Result<RoomHandle, Refusal> {
        let slug = room.slug().clone();
        if registry.running.len() >= self.settings.max_rooms {
            return Err(Refusal::new(
                ErrorCode::TooManyRooms,
                format!(
                    "this server already runs {} rooms, its limit; join an existing room or try later",
                    self.settings.max_rooms
                ),
            ));
        }
        registry.next_generation += 1;
        let (commands, inbox) = mpsc::channel(ROOM_QUEUE);
        let handle = RoomHandle {
            commands,
            generation: registry.next_generation,
        };
        registry.running.insert(slug.clone(), handle.clone());
        drop(registry);
        self.metrics.rooms_open.inc();
        let task = RoomTask {
            room,
            outboxes: HashMap::new(),
            waiting: HashMap::new(),
            lobby: HashMap::new(),
            in_breakouts: HashMap::new(),
            breakout_rooms: HashMap::new(),
            rooms: Arc::clone(self),
            generation: handle.generation,
            commands: handle.commands.downgrade(),
            deadline: None,
            media_key: format!("{slug}#{}", handle.generation).into(),
            unsettled: Default::default(),
            saved: 0,
            evicted: false,
        };
        self.tasks.spawn(task.run(inbox));
        Ok(handle)
    }

    /// The meetings running here (not their breakout rooms, which go with them).
    pub fn running_meetings(&self) -> Vec<RoomSlug> {
        self.registry()
            .running
            .keys()
            .filter(|slug| !slug.is_breakout())
            .cloned()
            .collect()
    }

    /// The limits every room of this server enforces.
    pub fn limits(&self) -> &RoomLimits {
        &self.settings.limits
    }

    /// Subscribes to the encoded `rooms` message; it changes whenever a head count does.
    pub fn watch_list(&self) -> watch::Receiver<Utf8Bytes> {
        self.list.subscribe()
    }

    /// A readable slug with an unguessable part; without OS randomness there is none, since
    /// a guessable name would expose the meeting.
    pub fn fresh_slug(&self) -> Result<RoomSlug, getrandom::Error> {
        let words = [getrandom::u32()?, getrandom::u32()?];
        let secret = (u128::from(getrandom::u64()?) << 64) | u128::from(getrandom::u64()?);
        Ok(readable_slug(words, secret))
    }

    /// Sends the members of `slug` to reconnect, if it runs here: another node runs it.
    pub fn evict(&self, slug: &RoomSlug) {
        if let Some(handle) = self.registry().running.get(slug) {
            let _ = handle.commands.try_send(RoomCommand::Evict);
        }
    }

    /// Whether the list of rooms in use is published (`--public-room-list`).
    pub fn public_list(&self) -> bool {
        self.settings.public_list
    }

    /// Publishes `rooms` (every node's, merged) as the list, if it changed.
    pub fn show_list(&self, rooms: Vec<crate::protocol::RoomSummary>) {
        let encoded: Utf8Bytes = ServerMsg::Rooms { rooms }.to_json().into();
        self.list.send_if_modified(|list| {
            let changed = *list != encoded;
            if changed {
                *list = encoded;
            }
            changed
        });
    }

    /// The home page's list as it is now.
    pub fn summary(&self) -> Vec<crate::protocol::RoomSummary> {
        self.registry().directory.summary()
    }

    fn publish_count(&self, slug: &RoomSlug, count: usize) {
        // A meeting's breakout rooms are its own business.
        if slug.is_breakout() {
            return;
        }
        let mut registry = self.registry();
        // Sorting and encoding the list on every join and leave cost a tenth of the CPU in a
        // reconnect storm; nobody reads it unless it is public.
        let publish = self.settings.public_list && !self.settings.list_from_cluster;
        if registry.directory.set_participants(slug, count) && publish {
            let encoded = encode_list(&registry.directory);
            drop(registry);
            self.list.send_replace(encoded);
        }
    }

    /// Takes a password guess from `address`'s budget.
    fn may_guess(&self, address: IpAddr) -> bool {
        let now = self.clock.now().mono;
        self.registry()
            .guessers
            .try_take_many(address, now, GUESSES_PER_ADDRESS.cost())
    }

    /// Forgets the room if it is still the running instance; a newer one may have replaced it.
    fn retire(&self, slug: &RoomSlug, generation: u64) {
        let mut registry = self.registry();
        if registry
            .running
            .get(slug)
            .is_some_and(|h| h.generation == generation)
        {
            registry.running.remove(slug);
            self.metrics.rooms_open.dec();
        }
    }
}

fn encode_list(directory: &Directory) -> Utf8Bytes {
    ServerMsg::Rooms {
        rooms: directory.summary(),
    }
    .to_json()
    .into()
}

/// 128 random bits as hex: unguessable, so a resume token cannot be forged.
fn resume_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without OS randomness, resuming is simply not offered.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct RoomTask {
    room: Room,
    /// Members who receive what the room sends.
    outboxes: HashMap<PeerId, Outbox>,
    /// Members whose `joined` waits for a history read: they receive nothing until it is
    /// sent, so it still comes first.
    waiting: HashMap<PeerId, Outbox>,
    /// People in the waiting room: not members, they receive only what is addressed to
    /// them alone (`waiting`, then `joined` or `dismissed`).
    lobby: HashMap<PeerId, Outbox>,
    /// Members away in a breakout room: they hear nothing from here, but a removal or the
    /// meeting's end still reaches their connection.
    in_breakouts: HashMap<PeerId, Outbox>,
    /// The breakout rooms of the open round that have been started, by number.
    breakout_rooms: HashMap<u8, RoomHandle>,
    rooms: Arc<Rooms>,
    generation: u64,
    /// This room's own inbox, for the tasks that read history to answer through. Weak, so
    /// the room does not keep its own inbox open.
    commands: mpsc::WeakSender<RoomCommand>,
    /// When the core next needs the time (an away member's grace period ends).
    deadline: Option<MonoMillis>,
    /// This room (this run of it) to the forwarding unit, which keeps rooms apart by it.
    media_key: crate::sfu::engine::RoomKey,
    /// The fingerprint of the room's state when last saved to Redis.
    saved: u64,
    /// Another node runs this meeting: this one only empties, saving nothing.
    evicted: bool,
    /// Outcomes waiting for their chat to be in Redis before anyone sees it.
    unsettled: std::collections::VecDeque<(Option<StoreWrite>, Outcome)>,
}

/// A pending write of chat to Redis.
type StoreWrite = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Where rooms keep their chat: this node's SQLite file, or Redis when rooms move between
/// nodes (`--redis-url`).
#[derive(Clone)]
pub enum History {
    Local(ChatStore),
    Shared(SharedHistory),
}

impl History {
    async fn recent(&self, room: &str, limit: usize) -> Result<StoredHistory, ReadError> {
        match self {
            History::Local(store) => store.recent(room, limit).await,
            History::Shared(shared) => shared.recent(room, limit).await,
        }
    }

    async fn between(&self, room: &str, range: crate::core::HistoryRange) -> Vec<ChatEntry> {
        match self {
            History::Local(store) => store.between(room, range).await,
            History::Shared(shared) => shared.between(room, range).await,
        }
    }

    /// Whether ids after the stored last one may have been delivered unstored. Redis holds
    /// every message before it is delivered.
    fn crashed(&self) -> bool {
        match self {
            History::Local(store) => store.crashed(),
            History::Shared(_) => false,
        }
    }
}

impl RoomTask {
    async fn run(mut self, mut inbox: mpsc::Receiver<RoomCommand>) {
        let slug = self.room.slug().to_string();
        // The one read inside the task: the room has no members to keep waiting yet.
        let stored = match self
            .rooms
            .history
            .recent(&slug, self.room.limits().history_len)
            .await
        {
            Ok(stored) => stored,
            Err(error) => {
                // Starting empty would show no history and number messages from 1 again,
                // so ids already seen would be reused. The joins waiting here get a dropped
                // reply, retry, and are told the room is unavailable.
                tracing::error!(room = %slug, %error, "cannot open the room");
                self.rooms.retire(self.room.slug(), self.generation);
                return;
            }
        };
        let gap = if self.rooms.history.crashed() {
            CRASH_ID_GAP
        } else {
            0
        };
        self.room.restore(stored.entries, stored.last_id, gap);
        if !self.take_over_saved(&slug).await {
            self.rooms.retire(self.room.slug(), self.generation);
            return;
        }
        tracing::debug!(room = %slug, next_id = ?self.room.next_message_id(), "room opened");
        loop {
            let deadline = self.deadline.map(|at| self.rooms.clock.instant(at));
            tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                () = sleep_until(deadline) => {
                    self.supply_key();
                    let before = self.room.member_count();
                    let outcome = self.room.tick(self.rooms.clock.now());
                    self.carry_out(outcome);
                    self.publish_if_changed(before);
                }
            }
            self.settle().await;
            self.save_if_changed().await;
            if self.room.is_empty() {
                self.forget_saved().await;
            }
            if self.retire_if_empty() {
                break;
            }
        }
        tracing::debug!(room = %slug, "room closed");
    }

    /// Retiring under the registry lock means no new connection can find this task any
    /// more; commands already queued are dropped with the inbox, and a dropped join reply
    /// sends its connection back to the registry for a fresh room.
    fn retire_if_empty(&self) -> bool {
        if self.room.is_empty() {
            self.rooms.retire(self.room.slug(), self.generation);
            true
        } else {
            false
        }
    }

    /// With rooms shared between nodes: carries on a room another node ran (it died, or shut
    /// down) with its members away until they resume. False when Redis cannot say.
    async fn take_over_saved(&mut self, slug: &str) -> bool {
        let History::Shared(shared) = &self.rooms.history else {
            return true;
        };
        if self.room.slug().is_breakout() {
            return true;
        }
        match shared.load_saved(slug).await {
            Ok(Some(saved)) => {
                tracing::info!(room = %slug, members = saved.members.len(), "taking over a room another node ran");
                self.room.restore_saved(saved, self.rooms.clock.now());
                self.deadline = self.room.next_deadline();
                self.saved = self.room.saved_fingerprint();
                self.rooms
                    .publish_count(self.room.slug(), self.room.member_count());
                true
            }
            Ok(None) => true,
            Err(error) => {
                tracing::error!(room = %slug, %error, "cannot open the room");
                false
            }
        }
    }

    /// The meeting emptied: nothing to carry over to the next node that runs it. Sent before
    /// the room retires, so the next run of it, here or elsewhere, reads after this.
    async fn forget_saved(&mut self) {
        let History::Shared(shared) = &self.rooms.history else {
            return;
        };
        if !self.room.slug().is_breakout() && !self.evicted {
            let shared = shared.clone();
            shared.forget(self.room.slug().as_str()).await;
        }
    }

    /// Saves who is in the room, and the rules, whenever they change (`--redis-url`).
    async fn save_if_changed(&mut self) {
        let History::Shared(shared) = &self.rooms.history else {
            return;
        };
        if self.room.slug().is_breakout() || self.room.is_empty() || self.evicted {
            return;
        }
        let fingerprint = self.room.saved_fingerprint();
        if fingerprint != self.saved {
            self.saved = fingerprint;
            let shared = shared.clone();
            shared
                .save(self.room.slug().as_str(), &self.room.saved())
                .await;
        }
    }

    fn publish_if_changed(&self, before: usize) {
        let after = self.room.member_count();
        if after != before {
            self.rooms.publish_count(self.room.slug(), after);
        }
    }

    /// The core mints host keys from a spare the task keeps supplied.
    fn supply_key(&mut self) {
        if self.room.needs_key() {
            self.room.supply_key(resume_token());
        }
    }

    fn handle(&mut self, command: RoomCommand) {
        self.supply_key();
        let before = self.room.member_count();
        let now = self.rooms.clock.now();
        match command {
            RoomCommand::Join {
                peer,
                request,
                outbox,
                reply,
            } => match self.room.password_to_check(&request) {
                Ok(None) => self.join(peer, request, outbox, reply),
                Ok(Some(hash)) => self.check_password(peer, request, hash, outbox, reply),
                Err(refusal) => {
                    let _ = reply.send(Err(refusal));
                }
            },
            RoomCommand::Request {
                peer,
                msg,
                received,
            } => {
                match self.room.request(peer, msg, now) {
                    Ok(outcome) => self.carry_out(outcome),
                    Err(refusal) => self.refuse(peer, refusal),
                }
                self.rooms.metrics.observe_fan_out(received.elapsed());
            }
            RoomCommand::Leave { peer, outbox, done } => {
                if self.is_current(peer, &outbox) {
                    self.remove(peer, LeaveReason::Left);
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            RoomCommand::Disconnect { peer, outbox } => {
                if self.is_current(peer, &outbox) {
                    self.forget_outbox(peer);
                    let outcome = self.room.disconnect(peer, now);
                    self.carry_out(outcome);
                }
            }
            RoomCommand::FromMedia { peer, msg } => {
                let outcome = self.room.from_media_server(peer, msg);
                self.carry_out(outcome);
            }
            RoomCommand::PasswordHashed { by, hash } => {
                let outcome = self.room.password_hashed(by, hash);
                self.carry_out(outcome);
            }
            RoomCommand::Return {
                peer,
                outbox,
                then,
                reply,
            } => {
                // Only the connection the main room let go: one a resume replaced meanwhile
                // must not take the member back from the new one.
                let away_on_it = self
                    .in_breakouts
                    .get(&peer)
                    .is_some_and(|away| away.frames.same_channel(&outbox.frames));
                let member = self.room.is_member(peer) && away_on_it;
                if reply.send(member).is_ok() && member {
                    self.in_breakouts.remove(&peer);
                    self.rooms.metrics.members.inc();
                    self.outboxes.insert(peer, outbox);
                    let outcome = self.room.returned(peer, then, now);
                    if self.room.is_awaiting_history(peer) {
                        if let Some(outbox) = self.outboxes.remove(&peer) {
                            self.waiting.insert(peer, outbox);
                        }
                    }
                    self.carry_out(outcome);
                }
            }
            RoomCommand::FromMain(msg) => {
                let outcome = self.room.from_main_room(msg);
                self.carry_out(outcome);
            }
            RoomCommand::Evict => {
                self.evicted = true;
                let everyone = self.outboxes.values().chain(self.waiting.values());
                for outbox in everyone
                    .chain(self.lobby.values())
                    .chain(self.in_breakouts.values())
                {
                    outbox.evicted.cancel();
                }
            }
            RoomCommand::CloseBreakout => {
                for outbox in self.outboxes.values().chain(self.waiting.values()) {
                    let _ = outbox.moves.try_send(Move::BackToMain);
                }
            }
            RoomCommand::HistoryLoaded { need, entries } => {
                let outcome = self.room.history_loaded(need, entries);
                if !self.room.is_awaiting_history(need.peer) {
                    if let Some(outbox) = self.waiting.remove(&need.peer) {
                        self.outboxes.insert(need.peer, outbox);
                    }
                }
                self.carry_out(outcome);
            }
        }
        self.publish_if_changed(before);
    }

    /// Whether `outbox` is the connection the member uses now; an older one that a resume
    /// replaced must not take the member with it when it ends.
    fn is_current(&self, peer: PeerId, outbox: &mpsc::Sender<Utf8Bytes>) -> bool {
        self.connection(peer)
            .is_some_and(|current| current.frames.same_channel(outbox))
    }

    /// The connection of `peer`, whether a member receiving, a member waiting for history,
    /// or someone in the waiting room.
    fn connection(&self, peer: PeerId) -> Option<&Outbox> {
        self.outboxes
            .get(&peer)
            .or_else(|| self.waiting.get(&peer))
            .or_else(|| self.lobby.get(&peer))
            .or_else(|| self.in_breakouts.get(&peer))
    }

    /// Drops the member's connection from the fan-out, if they had one.
    fn forget_outbox(&mut self, peer: PeerId) {
        if self.lobby.remove(&peer).is_some() || self.in_breakouts.remove(&peer).is_some() {
            return;
        }
        let had = self
            .outboxes
            .remove(&peer)
            .or_else(|| self.waiting.remove(&peer));
        if had.is_some() {
            self.rooms.metrics.members.dec();
        }
    }

    fn join(
        &mut self,
        connection: PeerId,
        request: JoinRequest,
        outbox: Outbox,
        reply: oneshot::Sender<Result<PeerId, Refusal>>,
    ) {
        let now = self.rooms.clock.now();
        let joined = match self.room.join(connection, request, resume_token(), now) {
            Ok(joined) => joined,
            Err(refusal) => {
                let _ = reply.send(Err(refusal));
                return;
            }
        };
        let peer = joined.peer;
        if reply.send(Ok(peer)).is_err() {
            // The connection went away while joining. What the join told the others still
            // goes out (it may announce earlier arrivals too), not what it had for the
            // member; then a newcomer leaves (unmentioned if nobody heard of it yet) and a
            // resumed member is away again.
            let mut told = joined.outcome;
            told.deliveries.retain(|d| d.to != Recipients::Only(peer));
            told.need_history = None;
            self.carry_out(told);
            let outcome = if joined.resumed {
                self.room.disconnect(peer, now)
            } else {
                self.room.leave(peer, LeaveReason::Left)
            };
            self.carry_out(outcome);
            return;
        }
        let previous = self
            .outboxes
            .remove(&peer)
            .or_else(|| self.waiting.remove(&peer));
        let from_breakout = self.in_breakouts.remove(&peer);
        if let Some(old) = &from_breakout {
            // Resumed while the old connection sat in a breakout room: it is finished too.
            old.replaced.cancel();
        }
        if joined.waiting {
            self.lobby.insert(peer, outbox);
            self.carry_out(joined.outcome);
            return;
        }
        if let Some(previous) = previous {
            // Resumed while the old connection still looked alive: that one is finished.
            previous.replaced.cancel();
        } else {
            self.rooms.metrics.members.inc();
        }
        if self.room.is_awaiting_history(peer) {
            self.waiting.insert(peer, outbox);
        } else {
            self.outboxes.insert(peer, outbox);
        }
        self.carry_out(joined.outcome);
    }

    /// Checks a newcomer's password off the room's task, once the address and then the
    /// room allow another guess; a match comes back as the same join, marked as matching
    /// this hash, and a miss is refused.
    fn check_password(
        &mut self,
        peer: PeerId,
        mut request: JoinRequest,
        hash: String,
        outbox: Outbox,
        reply: oneshot::Sender<Result<PeerId, Refusal>>,
    ) {
        let Some(inbox) = self.commands.upgrade() else {
            return;
        };
        if let Some(address) = request.address {
            if !self.rooms.may_guess(address) {
                let _ = reply.send(Err(Refusal::new(
                    ErrorCode::TooManyGuesses,
                    format!(
                        "too many wrong passwords from your address; try again in {} seconds",
                        GUESSES_PER_ADDRESS.every_secs
                    ),
                )));
                return;
            }
        }
        if let Err(refusal) = self.room.take_guess(self.rooms.clock.now()) {
            let _ = reply.send(Err(refusal));
            return;
        }
        let passwords = self.rooms.passwords.clone();
        let guess = request.password.clone().unwrap_or_default();
        self.rooms.tasks.spawn(async move {
            if passwords.matches(hash.clone(), guess).await {
                request.password_matched = Some(hash);
                // A room that closed meanwhile drops the reply: the connection starts over.
                let _ = inbox
                    .send(RoomCommand::Join {
                        peer,
                        request,
                        outbox,
                        reply,
                    })
                    .await;
            } else {
                let _ = reply.send(Err(Refusal::new(
                    ErrorCode::WrongPassword,
                    "that is not the meeting's password",
                )));
            }
        });
    }

    /// Hashes the password a host set off the room's task; the hash comes back through the
    /// room's inbox.
    fn hash_password(&self, job: PasswordToHash) {
        let Some(inbox) = self.commands.upgrade() else {
            return;
        };
        let passwords = self.rooms.passwords.clone();
        self.rooms.tasks.spawn(async move {
            match passwords.hash(job.password).await {
                Some(hash) => {
                    let _ = inbox
                        .send(RoomCommand::PasswordHashed { by: job.by, hash })
                        .await;
                }
                None => tracing::error!("no OS randomness to salt a meeting password"),
            }
        });
    }

    /// Does what the core asked. With history in Redis, new chat is stored first and the
    /// outcome (with every later one, to keep their order) waits for `settle`.
    fn carry_out(&mut self, mut outcome: Outcome) {
        if let History::Shared(shared) = &self.rooms.history {
            if !outcome.persist.is_empty() || !self.unsettled.is_empty() {
                // The write takes the entries; `apply` stores only into a local history.
                let entries = std::mem::take(&mut outcome.persist);
                let write = (!entries.is_empty()).then(|| {
                    let shared = shared.clone();
                    let slug = self.room.slug().to_string();
                    Box::pin(async move { shared.append(&slug, &entries).await }) as StoreWrite
                });
                self.unsettled.push_back((write, outcome));
                return;
            }
        }
        self.apply(outcome);
    }

    /// Applies the outcomes that waited for their chat to be stored, in order.
    async fn settle(&mut self) {
        while let Some((write, outcome)) = self.unsettled.pop_front() {
            if let Some(write) = write {
                write.await;
            }
            self.apply(outcome);
        }
    }

    /// Stores new chat (with local history, fan-out does not wait for the disk), starts the
    /// history read a joining member needs, remembers the next deadline, and delivers.
    fn apply(&mut self, outcome: Outcome) {
        let slug = self.room.slug().as_str();
        if let History::Local(store) = &self.rooms.history {
            for entry in outcome.persist {
                store.append(slug, entry);
            }
        }
        if let Some(need) = outcome.need_history {
            self.read_history(need);
        }
        if let Some(job) = outcome.hash_password {
            self.hash_password(job);
        }
        self.breakout_work(outcome.breakouts);
        for effect in outcome.media {
            self.to_media(effect);
        }
        self.deadline = outcome.next_deadline;
        self.settle_lobby();
        self.deliver(outcome.deliveries);
        for (peer, reason) in outcome.dismiss {
            // The member is already gone from the room; its `dismissed` is in its queue.
            if let Some(outbox) = self.connection(peer) {
                outbox.dismissed.dismiss(reason);
            }
            self.forget_outbox(peer);
        }
    }

    /// Moves connections into breakout rooms, tells the started breakout rooms what the
    /// main room says, and sends everyone back when the round ends.
    fn breakout_work(&mut self, work: BreakoutWork) {
        for hop in work.moves {
            let Some(outbox) = self
                .outboxes
                .remove(&hop.peer)
                .or_else(|| self.waiting.remove(&hop.peer))
            else {
                continue;
            };
            // A breakout room everyone left has closed; entering it again starts it anew.
            let running = self
                .breakout_rooms
                .get(&hop.room)
                .filter(|room| !room.commands.is_closed());
            let room = match running {
                Some(room) => Ok(room.clone()),
                // A new breakout room starts knowing the round (its first command must be
                // a join: an empty room closes after any other).
                None => self
                    .rooms
                    .breakout_handle(
                        self.room.slug(),
                        &hop.round,
                        hop.room,
                        self.room.breakouts_view(),
                    )
                    .inspect(|room| {
                        self.breakout_rooms.insert(hop.room, room.clone());
                    }),
            };
            self.rooms.metrics.members.dec();
            let moved = match room {
                Ok(room) => outbox.moves.try_send(Move::ToBreakout {
                    room,
                    request: Box::new(hop.request),
                }),
                Err(_) => outbox.moves.try_send(Move::BackToMain),
            };
            if moved.is_err() {
                outbox.kick.cancel();
            }
            self.in_breakouts.insert(hop.peer, outbox);
        }
        for msg in work.relay {
            for room in self.breakout_rooms.values() {
                let _ = room.commands.try_send(RoomCommand::FromMain(msg.clone()));
            }
        }
        if work.close {
            for (_, room) in self.breakout_rooms.drain() {
                let _ = room.commands.try_send(RoomCommand::CloseBreakout);
            }
        }
    }

    /// Moves the people a host let in from the waiting room to the members' fan-out, before
    /// their `joined` is delivered.
    fn settle_lobby(&mut self) {
        let admitted: Vec<PeerId> = self
            .lobby
            .keys()
            .copied()
            .filter(|&peer| self.room.is_member(peer))
            .collect();
        for peer in admitted {
            if let Some(outbox) = self.lobby.remove(&peer) {
                self.rooms.metrics.members.inc();
                if self.room.is_awaiting_history(peer) {
                    self.waiting.insert(peer, outbox);
                } else {
                    self.outboxes.insert(peer, outbox);
                }
            }
        }
    }

    /// Reads stored history in a task of its own, so the room goes on serving everyone else;
    /// the answer comes back through the room's inbox.
    fn read_history(&self, need: HistoryNeed) {
        let Some(inbox) = self.commands.upgrade() else {
            return;
        };
        let history = self.rooms.history.clone();
        let slug = self.room.slug().to_string();
        self.rooms.tasks.spawn(async move {
            let entries = history.between(&slug, need.range).await;
            // A room that closed meanwhile has nobody left to greet.
            let _ = inbox
                .send(RoomCommand::HistoryLoaded { need, entries })
                .await;
        });
    }

    /// Passes a member's offer, answer or departure to the forwarding unit. An overloaded
    /// unit drops it, and the member hears so rather than wait for an answer.
    fn to_media(&self, effect: MediaEffect) {
        let Some(media) = &self.rooms.settings.media else {
            return;
        };
        let command = match effect {
            MediaEffect::Offer { peer, sdp } => MediaCommand::Offer {
                room: Arc::clone(&self.media_key),
                peer,
                sdp,
                room_inbox: self.commands.clone(),
            },
            MediaEffect::Answer { peer, sdp } => MediaCommand::Answer {
                room: Arc::clone(&self.media_key),
                peer,
                sdp,
                room_inbox: self.commands.clone(),
            },
            MediaEffect::View { peer, tiles } => MediaCommand::View {
                room: Arc::clone(&self.media_key),
                peer,
                tiles,
            },
            MediaEffect::Drop { peer } => MediaCommand::Drop {
                room: Arc::clone(&self.media_key),
                peer,
            },
            MediaEffect::Withhold { peer, sources } => MediaCommand::Withhold {
                room: Arc::clone(&self.media_key),
                peer,
                sources,
            },
        };
        let peer = command.peer();
        if !media.send(command) {
            tracing::warn!(%peer, "the media task is overloaded: a signalling step was dropped");
        }
    }

    fn remove(&mut self, peer: PeerId, reason: LeaveReason) {
        tracing::debug!(room = %self.room.slug(), %peer, ?reason, "leaving");
        self.forget_outbox(peer);
        let outcome = self.room.leave(peer, reason);
        self.carry_out(outcome);
    }

    fn refuse(&mut self, peer: PeerId, refusal: Refusal) {
        self.rooms.metrics.count_refusal(refusal.code);
        self.deliver(vec![Delivery {
            to: Recipients::Only(peer),
            msg: refusal.into_msg(),
        }]);
    }

    /// Encodes each message once and offers the shared bytes to every recipient's queue.
    /// Members whose queue is full are removed afterwards, which may produce more deliveries.
    fn deliver(&mut self, deliveries: Vec<Delivery>) {
        let mut too_slow = Vec::new();
        for mut delivery in deliveries {
            // Relay credentials are per member, so they join the message only here.
            if let (Recipients::Only(peer), ServerMsg::CallJoined { ice_servers, .. }, Some(turn)) =
                (&delivery.to, &mut delivery.msg, &self.rooms.settings.turn)
            {
                ice_servers.push(turn.ice_server(*peer));
            }
            if let ServerMsg::LinkFailed { reason, .. } = &delivery.msg {
                self.rooms.metrics.count_link_failed(*reason);
            }
            let frame: Utf8Bytes = delivery.msg.to_json().into();
            let mut sent = 0u64;
            let mut offer = |peer: PeerId, outbox: &Outbox| {
                if outbox.offer(&frame) {
                    sent += 1;
                } else if !too_slow.contains(&peer) {
                    too_slow.push(peer);
                }
            };
            match delivery.to {
                // What is for one member alone (a refusal, a host's mute, the host key)
                // reaches them in a breakout room too.
                Recipients::Only(peer) => {
                    if let Some(outbox) = self
                        .outboxes
                        .get(&peer)
                        .or_else(|| self.lobby.get(&peer))
                        .or_else(|| self.in_breakouts.get(&peer))
                    {
                        offer(peer, outbox);
                    }
                }
                to => {
                    for (&peer, outbox) in &self.outboxes {
                        if to.includes(peer) {
                            offer(peer, outbox);
                        }
                    }
                }
            }
            self.rooms
                .metrics
                .count_sent(&delivery.msg, sent, frame.len() as u64);
        }
        for peer in too_slow {
            if let Some(outbox) = self.outboxes.get(&peer).or_else(|| self.lobby.get(&peer)) {
                tracing::info!(room = %self.room.slug(), %peer, "disconnecting a peer that stopped reading");
                self.rooms.metrics.slow_disconnects.inc();
                outbox.kick.cancel();
            }
            self.remove(peer, LeaveReason::TooSlow);
        }
    }
}

/// Resolves at `deadline`, or never when there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
