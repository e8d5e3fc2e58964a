//! Several Room nodes sharing rooms through Redis (`--redis-url`). Absent, nothing here runs.
//!
//! A room lives on exactly one node at a time, the one holding its ownership lease in Redis
//! (`room:owner:<slug>`, renewed while the room runs, released when it closes). Any node accepts
//! any browser: a browser whose room lives elsewhere has its frames relayed to the owner over
//! Redis pub/sub ([`envelope`]), where an ordinary connection loop serves it. So the owner's room
//! task stays the one place that orders a room's messages, and a call's media goes straight to
//! the owner's forwarding unit, never through Redis.

pub mod envelope;
pub mod history;
pub mod resp;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::names::RoomSlug;
use crate::core::Refusal;
use crate::protocol::{close_code, ErrorCode};

use self::envelope::{Down, Envelope, Received, SessionId, Up};
use self::resp::{Publisher, Redis, RedisError, RedisUrl};
use super::socket::Socket;
use super::AppState;

/// How long a lease lasts without renewal: a node that dies gives up its rooms this long
/// after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_millis(3000);
/// Leases are renewed (and released for rooms that closed) this often, three times a TTL.
const RENEW_EVERY: Duration = Duration::from_millis(1000);

/// Every node's list of its rooms in use, by node (`--public-room-list`).
const LISTS_KEY: &str = "room:lists";

/// Owners a relayed join may be sent on to before the edge gives up (ownership changing
/// that often means something is wrong).
const MAX_HOPS: usize = 3;

/// Why a relayed browser is sent to reconnect while Redis is away.
const UNREACHABLE: &str = "the meeting's server cannot be reached; reconnecting";

/// Frames written to a relayed browser before one flush, as for a local connection.
const WRITE_BATCH: usize = 64;

/// How long the edge waits for a close frame to reach the browser.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node counts as alive after it last said so; it says so every `RENEW_EVERY`.
const ALIVE_TTL: Duration = Duration::from_millis(3000);

/// How long a relayed join may wait for the owner's first word before the browser is sent
/// to try again (the owner died just now, and its lease has not run out yet).
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// A node hears relayed frames, and the answers to its own, only on its channel: before its
/// subscription is confirmed it could neither serve a meeting other nodes reach nor reach
/// another node's. A join waits this long for it (a node just started), then is refused.
const SUBSCRIBED_WITHIN: Duration = Duration::from_secs(2);

/// Takes the lease if nobody holds it, or its holder stopped saying it is alive (it died);
/// renews it if this node holds it. Answers the holder. The caller says it is alive first,
/// so a lease is never held by a node that others would take for dead.
const CLAIM_SCRIPT: &str = "redis.call('SET', 'room:alive:' .. ARGV[1], '1', 'PX', ARGV[3]) \
    local v = redis.call('GET', KEYS[1]) \
    if v and v ~= ARGV[1] and redis.call('EXISTS', 'room:alive:' .. v) == 0 then v = false end \
    if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end \
    if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    return v";
/// Gives the lease up, only if this node holds it.
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// What `/metrics` reports about the cluster.
#[derive(Clone, Debug)]
pub struct ClusterCounters {
    pub relayed_up: Counter,
    pub relayed_down: Counter,
    pub owned_rooms: Gauge,
    pub redis_up: Gauge,
    pub lease_conflicts: Counter,
    pub unavailable: Counter,
    pub unstored: Counter,
    pub round_trip_seconds: Histogram,
}

impl Default for ClusterCounters {
    fn default() -> Self {
        ClusterCounters {
            relayed_up: Counter::default(),
            relayed_down: Counter::default(),
            owned_rooms: Gauge::default(),
            redis_up: Gauge::default(),
            lease_conflicts: Counter::default(),
            unavailable: Counter::default(),
            unstored: Counter::default(),
            // 20 µs to about 1.3 s.
            round_trip_seconds: Histogram::new(exponential_buckets(0.000_02, 2.0, 17)),
        }
    }
}

/// Where a room lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    Here,
    Node(String),
}

/// This node's part of the cluster.
pub struct Cluster {
    node: String,
    url: RedisUrl,
    redis: Redis,
    /// Rooms whose lease this node holds, and when it last took or renewed it.
    owned: Mutex<HashMap<RoomSlug, Instant>>,
    /// Browsers on other nodes served here, by their edge node and session.
    served: Mutex<HashMap<(String, SessionId), mpsc::Sender<Message>>>,
    /// Browsers connected here whose rooms live elsewhere, by session.
    relaying: Mutex<HashMap<SessionId, Relaying>>,
    /// Set when the server begins to shut down: its rooms go to other nodes.
    draining: AtomicBool,
    next_session: AtomicU64,
    subscribed: watch::Sender<bool>,
    counters: ClusterCounters,
    /// Stops the Redis connections; after the server's shutdown, which still needs them.
    stop: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps every update leaves consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    /// Connects to Redis in the background (the node starts even while Redis is down).
    pub fn new(url: RedisUrl, node: String, counters: ClusterCounters) -> Arc<Cluster> {
        let stop = CancellationToken::new();
        let redis = Redis::start(url.clone(), stop.clone());
        Arc::new(Cluster {
            node,
            url,
            redis,
            owned: Mutex::default(),
            served: Mutex::default(),
            relaying: Mutex::default(),
            draining: AtomicBool::new(false),
            next_session: AtomicU64::new(1),
            subscribed: watch::channel(false).0,
            counters,
            stop,
        })
    }

    /// A random node id, for when `--node-id` is not given.
    pub fn random_node_id() -> String {
        let mut bytes = [0u8; 6];
        // Without randomness the clock still tells restarts apart.
        if getrandom::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Chat history kept in this cluster's Redis.
    pub fn history(
        &self,
        retention: super::store::Retention,
        shutdown: CancellationToken,
    ) -> history::SharedHistory {
        history::SharedHistory::new(
            self.redis.clone(),
            retention,
            self.counters.unstored.clone(),
            shutdown,
        )
    }

    /// Whether both connections to Redis are up.
    pub fn is_up(&self) -> bool {
        self.redis.is_up() && *self.subscribed.borrow()
    }

    /// Waits until both connections to Redis are up (start-up, tests).
    pub async fn wait_up(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        self.redis.wait_up(within).await && self.listening_by(deadline).await
    }

    /// Waits until this node's channel subscription is confirmed, at most until `deadline`.
    async fn listening_by(&self, deadline: Instant) -> bool {
        let mut subscribed = self.subscribed.subscribe();
        tokio::time::timeout_at(deadline, subscribed.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Listens on this node's channel and keeps the leases of its rooms; call once, with the
    /// state whose connections relayed browsers are served by.
    pub fn start(self: &Arc<Self>, state: &AppState) {
        let weak = Arc::downgrade(self);
        let serving = state.clone();
        let (up_tx, mut up) = watch::channel(false);
        resp::subscribe(
            self.url.clone(),
            envelope::node_channel(&self.node),
            move |payload| {
                if let Some(cluster) = weak.upgrade() {
                    cluster.dispatch(&payload, &serving);
                }
            },
            up_tx,
            self.stop.clone(),
        );
        let cluster = Arc::clone(self);
        tokio::spawn(async move {
            while up.changed().await.is_ok() {
                let now_up = *up.borrow_and_update();
                cluster.subscribed.send_replace(now_up);
                cluster.counters.redis_up.set(i64::from(cluster.is_up()));
                if !now_up {
                    cluster.drop_all_relays();
                }
            }
        });
        let cluster = Arc::clone(self);
        let shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            cluster.drain().await;
        });
        let cluster = Arc::clone(self);
        let rooms = Arc::clone(&state.rooms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => cluster.keep_leases(&rooms).await,
                    () = cluster.stop.cancelled() => return,
                }
            }
        });
    }

    /// After the server shut down: gives up this node's leases, so other nodes take its rooms
    /// at once rather than after the lease runs out, then closes the Redis connections.
    pub async fn stop(&self) {
        self.release_all().await;
        self.stop.cancel();
    }

    /// Gives up every lease this node holds, waiting at most 2 s for Redis; returns how many.
    async fn release_all(&self) -> usize {
        let owned: Vec<RoomSlug> = lock(&self.owned).drain().map(|(slug, _)| slug).collect();
        self.counters.owned_rooms.set(0);
        let releases = owned.iter().map(|slug| self.release(slug));
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::future::join_all(releases),
        )
        .await;
        owned.len()
    }

    /// Which node runs `slug`, taking its lease for this node when nobody holds it.
    pub async fn locate(&self, slug: &RoomSlug) -> Result<Owner, Refusal> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "this server is shutting down; reconnecting will reach another one",
            ));
        }
        if lock(&self.owned).contains_key(slug) {
            return Ok(Owner::Here);
        }
        if !self.listening_by(Instant::now() + SUBSCRIBED_WITHIN).await {
            self.counters.unavailable.inc();
            tracing::warn!(room = %slug, "a join came before this node listens on its channel");
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "the meeting service is starting or cannot reach its database; try again in a moment",
            ));
        }
        match self.claim(slug).await {
            Ok(owner) => Ok(owner),
            Err(error) => {
                self.counters.unavailable.inc();
                tracing::warn!(room = %slug, %error, "cannot learn who runs a room");
                Err(Refusal::new(
                    ErrorCode::Unavailable,
                    "the meeting service cannot reach its database right now; try again in a moment",
                ))
            }
        }
    }

    fn owner_key(slug: &RoomSlug) -> String {
        format!("room:owner:{slug}")
    }

    /// Runs the claim script: the holder of the lease, which is this node if it was free.
    async fn claim(&self, slug: &RoomSlug) -> Result<Owner, RedisError> {
        let key = Self::owner_key(slug);
        let ttl = LEASE_TTL.as_millis().to_string();
        let alive_ttl = ALIVE_TTL.as_millis().to_string();
        let started = std::time::Instant::now();
        let reply = self
            .redis
            .query(&[
                b"EVAL",
                CLAIM_SCRIPT.as_bytes(),
                b"1",
                key.as_bytes(),
                self.node.as_bytes(),
                ttl.as_bytes(),
                alive_ttl.as_bytes(),
            ])
            .await?;
        self.counters
            .round_trip_seconds
            .observe(started.elapsed().as_secs_f64());
        let holder = reply
            .text()
            .ok_or_else(|| RedisError::Unexpected(format!("{reply:?}")))?;
        if holder == self.node {
            let mut owned = lock(&self.owned);
            owned.insert(slug.clone(), Instant::now());
            self.counters.owned_rooms.set(owned.len() as i64);
            Ok(Owner::Here)
        } else {
            Ok(Owner::Node(holder.to_string()))
        }
    }

    async fn release(&self, slug: &RoomSlug) {
        let key = Self::owner_key(slug);
        let released = self
            .redis
            .query(&[
                b"EVAL",
                RELEASE_SCRIPT.as_bytes(),
                b"1",
                key.as_bytes(),
                self.node.as_bytes(),
            ])
            .await;
        if let Err(error) = released {
            // The lease runs out by itself.
            tracing::debug!(room = %slug, %error, "could not release a lease");
        }
    }

    /// Renews the leases of the rooms running here and releases those of rooms that closed.
    /// A room running here whose lease another node took (Redis was unreachable, or lost its
    /// data, for longer than a lease) is counted and logged, and its members are sent to
    /// reconnect, which takes them to that node: one meeting again.
    async fn keep_leases(&self, rooms: &super::rooms::Rooms) {
        self.counters.redis_up.set(i64::from(self.is_up()));
        if !self.redis.is_up() {
            return;
        }
        self.say_alive().await;
        self.drop_relays_to_the_dead().await;
        self.share_room_list(rooms).await;
        if self.draining.load(Ordering::Relaxed) {
            return;
        }
        let running: HashSet<RoomSlug> = rooms.running_meetings().into_iter().collect();
        let closed: Vec<RoomSlug> = {
            let mut owned = lock(&self.owned);
            // A lease taken just now is for a join whose room is about to start.
            let closed = owned
                .iter()
                .filter(|(slug, taken)| !running.contains(*slug) && taken.elapsed() >= RENEW_EVERY)
                .map(|(slug, _)| slug.clone())
                .collect::<Vec<_>>();
            for slug in &closed {
                owned.remove(slug);
            }
            self.counters.owned_rooms.set(owned.len() as i64);
            closed
        };
        let renewals = running.iter().map(|slug| async move {
            match self.claim(slug).await {
                Ok(Owner::Node(other)) => {
                    let was_ours = {
                        let mut owned = lock(&self.owned);
                        let was = owned.remove(slug).is_some();
                        self.counters.owned_rooms.set(owned.len() as i64);
                        was
                    };
                    if was_ours {
                        self.counters.lease_conflicts.inc();
                        tracing::error!(room = %slug, owner = %other, "another node took the lease of a room running here; sending its members there");
                        rooms.evict(slug);
                    }
                }
                Ok(Owner::Here) => {}
                Err(error) => tracing::debug!(room = %slug, %error, "could not renew a lease"),
            }
        });
        futures_util::future::join_all(renewals).await;
        // A room that started again meanwhile is claimed again on the next round.
        futures_util::future::join_all(closed.iter().map(|slug| self.release(slug))).await;
    }

    fn alive_key(node: &str) -> String {
        format!("room:alive:{node}")
    }

    /// Tells the other nodes this one is alive; they take its rooms over once it stops.
    async fn say_alive(&self) {
        let ttl = ALIVE_TTL.as_millis().to_string();
        let key = Self::alive_key(&self.node);
        if let Err(error) = self
            .redis
            .query(&[b"SET", key.as_bytes(), b"1", b"PX", ttl.as_bytes()])
            .await
        {
            tracing::debug!(%error, "could not say this node is alive");
        }
    }

    /// Which of `nodes` still say they are alive; `None` when Redis cannot tell.
    async fn alive(&self, nodes: &[String]) -> Option<Vec<bool>> {
        if nodes.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| Self::alive_key(n)).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        match self.redis.query(&args).await {
            Ok(resp::Reply::Array(alive)) => {
                Some(alive.iter().map(|a| *a != resp::Reply::Nil).collect())
            }
            _ => None,
        }
    }

    /// Sends the browsers relayed to a node that stopped saying it is alive back to
    /// reconnect: their room will live on another node now.
    async fn drop_relays_to_the_dead(&self) {
        let owners: Vec<String> = {
            let relaying = lock(&self.relaying);
            let owners: HashSet<&String> = relaying.values().map(|r| &r.owner).collect();
            owners.into_iter().cloned().collect()
        };
        let Some(alive) = self.alive(&owners).await else {
            return;
        };
        let dead: HashSet<&String> = owners
            .iter()
            .zip(alive)
            .filter(|(_, alive)| !alive)
            .map(|(owner, _)| owner)
            .collect();
        if !dead.is_empty() {
            self.send_relays_away("the meeting's server stopped; reconnecting", |owner| {
                dead.contains(owner)
            });
        }
    }

    /// Closes (1001, going away) the relays of browsers connected here whose meeting runs on
    /// a node `to` picks, so they reconnect.
    fn send_relays_away(&self, reason: &str, to: impl Fn(&String) -> bool) {
        let relaying = lock(&self.relaying);
        for (session, relay) in relaying.iter().filter(|(_, r)| to(&r.owner)) {
            tracing::info!(session, owner = %relay.owner, reason, "sending a relayed browser to reconnect");
            let _ = relay.frames.try_send(Envelope {
                session: *session,
                from: relay.owner.clone(),
                body: Down::Close {
                    code: close_code::GOING_AWAY,
                    reason: reason.into(),
                },
            });
        }
    }

    /// With `--public-room-list`: puts this node's rooms in Redis and shows every living
    /// node's, merged, to the home pages connected here.
    async fn share_room_list(&self, rooms: &super::rooms::Rooms) {
        if !rooms.public_list() {
            return;
        }
        let own = if self.draining.load(Ordering::Relaxed) {
            Vec::new()
        } else {
            rooms.summary()
        };
        let Ok(own) = serde_json::to_vec(&own) else {
            return;
        };
        let shared = self
            .redis
            .query(&[b"HSET", LISTS_KEY.as_bytes(), self.node.as_bytes(), &own])
            .await;
        let Ok(resp::Reply::Array(fields)) =
            self.redis.query(&[b"HGETALL", LISTS_KEY.as_bytes()]).await
        else {
            tracing::debug!(?shared, "could not read the other nodes' rooms");
            return;
        };
        let mut nodes = Vec::new();
        let mut lists = Vec::new();
        for pair in fields.chunks(2) {
            if let [node, list] = pair {
                let list = list.bytes().and_then(|b| serde_json::from_slice(b).ok());
                if let (Some(node), Some(list)) = (node.text(), list) {
                    nodes.push(node.to_string());
                    lists.push(list);
                }
            }
        }
        let Some(alive) = self.alive(&nodes).await else {
            return;
        };
        let mut living = Vec::new();
        for ((node, list), alive) in nodes.iter().zip(lists).zip(alive) {
            if !alive {
                // A node that died lists nothing any more.
                let _ = self
                    .redis
                    .send(&[b"HDEL", LISTS_KEY.as_bytes(), node.as_bytes()])
                    .await;
            } else {
                living.push(list);
            }
        }
        rooms.show_list(crate::core::directory::merge(living));
    }

    /// The server began to shut down: no more rooms start here, and the leases of those
    /// running go now, so browsers reconnecting elsewhere start them on other nodes.
    async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let rooms = self.release_all().await;
        tracing::info!(rooms, "draining: gave this node's rooms up");
    }

    /// One message from this node's channel.
    fn dispatch(self: &Arc<Self>, payload: &[u8], state: &AppState) {
        match envelope::decode(payload) {
            Some(Received::Up(envelope)) => self.from_edge(envelope, state),
            Some(Received::Down(envelope)) => {
                let session = envelope.session;
                let mut relaying = lock(&self.relaying);
                if let Some(relay) = relaying.get(&session) {
                    if relay.frames.try_send(envelope).is_err() {
                        // The browser does not read fast enough: its relay ends as too slow.
                        relaying.remove(&session);
                    }
                }
            }
            None => tracing::debug!(bytes = payload.len(), "an unreadable cluster message"),
        }
    }

    /// A relayed browser's frame, on the node that owns its room.
    fn from_edge(self: &Arc<Self>, envelope: Envelope<Up>, state: &AppState) {
        let key = (envelope.from, envelope.session);
        let message = match envelope.body {
            Up::Open { address, join } => {
                let (inbound, frames) = mpsc::channel(state.config.peer_queue);
                if lock(&self.served).insert(key.clone(), inbound).is_some() {
                    tracing::warn!(edge = %key.0, session = key.1, "a relayed session opened twice");
                }
                let socket = RelayedSocket {
                    frames,
                    publisher: self.redis.publisher(),
                    channel: envelope::node_channel(&key.0),
                    session: key.1,
                    node: self.node.clone(),
                    closed: Arc::new(AtomicBool::new(false)),
                    counters: self.counters.clone(),
                };
                let cluster = Arc::clone(self);
                let state = state.clone();
                state.tasks.clone().spawn(async move {
                    cluster
                        .serve_relayed(socket, state, key, address, join)
                        .await
                });
                return;
            }
            Up::Text(text) => Message::Text(text.into()),
            Up::Pong => Message::Pong(Default::default()),
            Up::Closed => Message::Close(None),
            Up::Lost => {
                // Dropping the queue ends the connection's stream: a lost connection.
                lock(&self.served).remove(&key);
                return;
            }
        };
        let mut served = lock(&self.served);
        let Some(session) = served.get(&key) else {
            drop(served);
            // The owner restarted, or the session ended: tell the edge, which may then give
            // its browser a fresh start.
            let gone = envelope::encode_down(
                key.1,
                &self.node,
                &Down::Close {
                    code: close_code::GOING_AWAY,
                    reason: "the meeting moved; reconnecting".into(),
                },
            );
            self.redis
                .try_publish(envelope::node_channel(&key.0).as_bytes(), &gone);
            return;
        };
        let closing = matches!(message, Message::Close(_));
        if session.try_send(message).is_err() || closing {
            // A full queue: the room reads this connection slower than it sends, so it is
            // treated as lost (it may resume), as a local connection would be.
            served.remove(&key);
        }
    }

    /// Serves a browser on another node as if it were connected here.
    async fn serve_relayed(
        self: Arc<Self>,
        mut socket: RelayedSocket,
        state: AppState,
        key: (String, SessionId),
        address: IpAddr,
        join: String,
    ) {
        let closed = Arc::clone(&socket.closed);
        let ending = match state.connections.admit(address) {
            Ok(permit) => super::socket::serve_relayed(&mut socket, state, permit, &join).await,
            Err(refusal) => {
                super::socket::turn_away(&mut socket, &state, refusal).await;
                None
            }
        };
        lock(&self.served).remove(&key);
        let last = match ending {
            Some(owner) => Some(Down::Moved { owner }),
            // Endings without a close frame (the browser left, or its edge lost it) still
            // end the edge's relay.
            None if !closed.load(Ordering::Relaxed) => Some(Down::Close {
                code: close_code::GOING_AWAY,
                reason: "the connection ended".into(),
            }),
            None => None,
        };
        if let Some(last) = last {
            let bytes = envelope::encode_down(key.1, &self.node, &last);
            let _ = self
                .redis
                .send(&[b"PUBLISH", socket.channel.as_bytes(), &bytes])
                .await;
        }
    }

    /// Sends a browser's frame towards the node running its meeting; false when Redis is
    /// unreachable.
    async fn publish_up(&self, owner: &str, session: SessionId, body: &Up) -> bool {
        self.counters.relayed_up.inc();
        let bytes = envelope::encode_up(session, &self.node, body);
        let channel = envelope::node_channel(owner);
        match self
            .redis
            .send(&[b"PUBLISH", channel.as_bytes(), &bytes])
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "a relayed frame was not sent");
                false
            }
        }
    }

    /// Redis went away: the browsers relayed from here can reach their meetings no more, so
    /// they are sent to reconnect (and retry until Redis is back) rather than left talking
    /// to nobody.
    fn drop_all_relays(&self) {
        self.send_relays_away(UNREACHABLE, |_| true);
    }

    /// Relays a browser connected here to the node that owns its room, until either side
    /// ends. `join` is the browser's `join` frame, which the owner answers.
    pub async fn relay<S: Socket>(
        &self,
        mut socket: S,
        state: &AppState,
        mut owner: String,
        join: String,
        address: IpAddr,
    ) {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (sender, mut downs) = mpsc::channel(state.config.peer_queue);
        lock(&self.relaying).insert(
            session,
            Relaying {
                owner: owner.clone(),
                frames: sender,
            },
        );
        let open = Up::Open {
            address,
            join: join.clone(),
        };
        self.publish_up(&owner, session, &open).await;
        let idle_timeout = Duration::from_millis(state.config.idle_timeout_ms);
        let write_timeout = Duration::from_millis(state.config.write_timeout_ms.max(1));
        let period = Duration::from_millis(state.config.heartbeat_ms.max(1));
        let mut check = tokio::time::interval_at(Instant::now() + period, period);
        let mut last_heard = Instant::now();
        let mut hops = 0;
        // Until the owner's first word: a join it never answers was sent to a node that
        // died, whose lease has not run out yet.
        let mut answered = false;
        let mut opened = Instant::now();
        // A frame taken out of the queue while batching that was not for the batch.
        let mut stash: Option<Envelope<Down>> = None;
        let mut open_check =
            tokio::time::interval_at(Instant::now() + OPEN_TIMEOUT / 4, OPEN_TIMEOUT / 4);
        let going_away = |reason: &str| CloseFrame {
            code: close_code::GOING_AWAY,
            reason: reason.to_string().into(),
        };
        // What the browser is told last, and what the owner is told last.
        let (to_browser, to_owner) = loop {
            tokio::select! {
                biased;
                () = state.shutdown.cancelled() => {
                    // The owner keeps the member for a resume through another node.
                    break (Some(going_away("server shutting down")), Some(Up::Lost));
                }
                down = next_down(&mut stash, &mut downs) => {
                    let Some(Envelope { from, body, .. }) = down else {
                        tracing::info!(session, "closing a relayed connection that read too slowly");
                        break (
                            Some(CloseFrame {
                                code: close_code::POLICY_VIOLATION,
                                reason: "too slow: messages were not read in time".into(),
                            }),
                            Some(Up::Lost),
                        );
                    };
                    // Late words from an owner the join moved away from.
                    if from != owner {
                        continue;
                    }
                    last_heard = Instant::now();
                    answered = true;
                    let message = match body {
                        Down::Text(text) => Message::Text(text.into()),
                        Down::Ping => Message::Ping(Default::default()),
                        Down::Close { code, reason } => {
                            break (Some(CloseFrame { code, reason: reason.into() }), None);
                        }
                        Down::Moved { owner: next } => {
                            hops += 1;
                            if hops > MAX_HOPS {
                                tracing::warn!(session, "a relayed join moved too often");
                                break (
                                    Some(CloseFrame {
                                        code: close_code::TRY_AGAIN_LATER,
                                        reason: "the meeting is moving between servers; try again".into(),
                                    }),
                                    None,
                                );
                            }
                            owner = next;
                            if let Some(relay) = lock(&self.relaying).get_mut(&session) {
                                relay.owner = owner.clone();
                            }
                            answered = false;
                            opened = Instant::now();
                            self.publish_up(&owner, session, &open).await;
                            continue;
                        }
                    };
                    // Whatever else already came goes out with it, flushed once.
                    let mut batch = vec![message];
                    while batch.len() < WRITE_BATCH {
                        match downs.try_recv() {
                            Ok(Envelope { from, body: Down::Text(text), .. }) if from == owner => {
                                batch.push(Message::Text(text.into()));
                            }
                            Ok(other) => {
                                stash = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let write = async {
                        for message in batch {
                            socket.feed(message).await?;
                        }
                        socket.flush().await
                    };
                    let written = tokio::time::timeout(write_timeout, write).await;
                    if !matches!(written, Ok(Ok(()))) {
                        break (None, Some(Up::Lost));
                    }
                }
                _ = open_check.tick(), if !answered => {
                    if opened.elapsed() >= OPEN_TIMEOUT {
                        tracing::info!(session, %owner, "the node running a relayed room does not answer");
                        break (Some(going_away("the meeting's server does not answer; reconnecting")), Some(Up::Lost));
                    }
                }
                _ = check.tick() => {
                    if last_heard.elapsed() >= idle_timeout {
                        tracing::info!(session, %owner, "the node running a relayed room stopped answering");
                        break (Some(going_away("the meeting's server stopped answering")), Some(Up::Lost));
                    }
                }
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if !self.publish_up(&owner, session, &Up::Text(text.to_string())).await {
                            break (Some(going_away(UNREACHABLE)), None);
                        }
                    }
                    Some(Ok(Message::Pong(_))) => {
                        self.publish_up(&owner, session, &Up::Pong).await;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let refused = super::socket::binary_refused();
                        if !refuse(&mut socket, state, refused).await {
                            break (None, Some(Up::Lost));
                        }
                    }
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) => break (None, Some(Up::Closed)),
                    None => break (None, Some(Up::Lost)),
                    Some(Err(error)) => {
                        let broken = super::socket::broken_read(error, state);
                        if let Some(refusal) = broken.refusal {
                            refuse(&mut socket, state, refusal).await;
                        }
                        break (broken.close, Some(if broken.resumable { Up::Lost } else { Up::Closed }));
                    }
                },
            }
        };
        lock(&self.relaying).remove(&session);
        if let Some(last) = to_owner {
            self.publish_up(&owner, session, &last).await;
        }
        if let Some(frame) = to_browser {
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
        }
    }
}

/// Tells a relayed browser, from its own node, why something it sent was refused (what the
/// owner cannot see: frames the WebSocket layer here already rejected). False when the
/// browser cannot be written to.
async fn refuse<S: Socket>(socket: &mut S, state: &AppState, refusal: Refusal) -> bool {
    state.metrics.count_refusal(refusal.code);
    let frame = refusal.into_msg().to_json();
    matches!(
        tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Text(frame.into()))).await,
        Ok(Ok(()))
    )
}

/// The next frame for a relayed browser: one set aside while batching, else the queue's.
async fn next_down(
    stash: &mut Option<Envelope<Down>>,
    downs: &mut mpsc::Receiver<Envelope<Down>>,
) -> Option<Envelope<Down>> {
    match stash.take() {
        Some(down) => Some(down),
        None => downs.recv().await,
    }
}

/// A browser connected here whose room lives on `owner`.
struct Relaying {
    owner: String,
    frames: mpsc::Sender<Envelope<Down>>,
}

/// The owner's side of a relayed browser: a socket whose frames come from, and go to, the
/// browser's edge node over Redis.
pub struct RelayedSocket {
    frames: mpsc::Receiver<Message>,
    publisher: Publisher,
    channel: String,
    session: SessionId,
    node: String,
    /// Set once a close frame was sent, so the ending adds none.
    closed: Arc<AtomicBool>,
    counters: ClusterCounters,
}

impl Stream for RelayedSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.frames.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

impl Sink<Message> for RelayedSocket {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.publisher.poll_ready(cx).map_err(axum::Error::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let body = match item {
            Message::Text(text) => Down::Text(text.as_str().to_string()),
            Message::Ping(_) => Down::Ping,
            Message::Close(frame) => {
                self.closed.store(true, Ordering::Relaxed);
                let (code, reason) = frame
                    .map(|f| (f.code, f.reason.as_str().to_string()))
                    .unwrap_or((close_code::GOING_AWAY, String::new()));
                Down::Close { code, reason }
            }
            Message::Pong(_) | Message::Binary(_) => return Ok(()),
        };
        self.counters.relayed_down.inc();
        let bytes = envelope::encode_down(self.session, &self.node, &body);
        let this = &mut *self;
        this.publisher
            .publish(this.channel.as_bytes(), &bytes)
            .map_err(axum::Error::new)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// Checks a `--node-id`: it names the node's channel and lease values.
pub fn parse_node_id(id: &str) -> Result<String, String> {
    let fits = !id.is_empty()
        && id.len() <= envelope::MAX_NODE_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if fits {
        Ok(id.to_string())
    } else {
        Err(format!(
            "a node id is 1 to {} letters, digits, '-', '_' or '.'",
            envelope::MAX_NODE_ID
        ))
    }
}
