//! Live rooms: one task per room owns its `core::room::Room` and fans messages out to the
//! members' bounded queues; the registry finds or starts those tasks and publishes the list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::directory::Directory;
use crate::core::names::{readable_slug, RoomSlug};
use crate::core::room::{Room, RoomLimits};
use crate::core::{Delivery, Recipients, Refusal};
use crate::protocol::{ClientMsg, IceServer, LeaveReason, PeerId, ServerMsg};

use super::metrics::Metrics;
use super::unix_now;

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
    Join {
        peer: PeerId,
        name: String,
        outbox: Outbox,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// A room-level client message (chat, call, signaling) from a member.
    Request {
        peer: PeerId,
        msg: ClientMsg,
    },
    Leave {
        peer: PeerId,
    },
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
}

/// All rooms of this server.
pub struct Rooms {
    registry: Mutex<Registry>,
    /// The home page's list, encoded once per change and shared by every watcher.
    list: watch::Sender<Utf8Bytes>,
    limits: RoomLimits,
    ice_servers: Vec<IceServer>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

impl Rooms {
    pub fn new(
        limits: RoomLimits,
        ice_servers: Vec<IceServer>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        let empty = encode_list(&Directory::default());
        Arc::new(Rooms {
            registry: Mutex::new(Registry {
                running: HashMap::new(),
                directory: Directory::default(),
                next_generation: 0,
            }),
            list: watch::channel(empty).0,
            limits,
            ice_servers,
            metrics,
            tasks,
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry holds plain maps that every update leaves consistent, so a panic
        // elsewhere while it was held does not make it unusable.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task of `slug`, started if the room is not running.
    pub fn handle(self: &Arc<Self>, slug: &RoomSlug) -> RoomHandle {
        let mut registry = self.registry();
        if let Some(handle) = registry.running.get(slug) {
            return handle.clone();
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
            room: Room::new(slug.clone(), self.limits.clone(), self.ice_servers.clone()),
            outboxes: HashMap::new(),
            rooms: Arc::clone(self),
            generation: handle.generation,
        };
        self.tasks.spawn(task.run(inbox));
        handle
    }

    /// Subscribes to the encoded `rooms` message; it changes whenever a head count does.
    pub fn watch_list(&self) -> watch::Receiver<Utf8Bytes> {
        self.list.subscribe()
    }

    /// A readable slug that no running room uses.
    pub fn fresh_slug(&self) -> RoomSlug {
        loop {
            let slug = readable_slug([random_u32(), random_u32(), random_u32()]);
            if !self.registry().running.contains_key(&slug) {
                return slug;
            }
        }
    }

    /// The home page's list as it is now.
    pub fn summary(&self) -> Vec<crate::protocol::RoomSummary> {
        self.registry().directory.summary()
    }

    pub fn open_rooms(&self) -> usize {
        self.registry().running.len()
    }

    fn publish_count(&self, slug: &RoomSlug, count: usize) {
        let mut registry = self.registry();
        if registry.directory.set_participants(slug, count) {
            let encoded = encode_list(&registry.directory);
            drop(registry);
            self.list.send_replace(encoded);
        }
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

fn random_u32() -> u32 {
    // Slugs only need to be hard to collide with, not secret; fall back to the clock if the
    // OS cannot provide randomness.
    getrandom::u32().unwrap_or_else(|_| (unix_now().0 as u32).wrapping_mul(2_654_435_761))
}

struct RoomTask {
    room: Room,
    outboxes: HashMap<PeerId, Outbox>,
    rooms: Arc<Rooms>,
    generation: u64,
}

impl RoomTask {
    async fn run(mut self, mut inbox: mpsc::Receiver<RoomCommand>) {
        tracing::debug!(room = %self.room.slug(), "room opened");
        while let Some(command) = inbox.recv().await {
            self.handle(command);
            if self.room.is_empty() {
                // Retiring under the registry lock means no new connection can find this task
                // any more; commands already queued are dropped with the inbox, and a dropped
                // join reply sends its connection back to the registry for a fresh room.
                self.rooms.retire(self.room.slug(), self.generation);
                break;
            }
        }
        tracing::debug!(room = %self.room.slug(), "room closed");
    }

    fn handle(&mut self, command: RoomCommand) {
        let before = self.room.member_count();
        match command {
            RoomCommand::Join {
                peer,
                name,
                outbox,
                reply,
            } => match self.room.join(peer, &name, unix_now()) {
                Ok(deliveries) => {
                    self.outboxes.insert(peer, outbox);
                    if reply.send(Ok(())).is_err() {
                        // The connection went away while joining; undo quietly.
                        self.outboxes.remove(&peer);
                        self.room.leave(peer, LeaveReason::Left);
                    } else {
                        self.rooms.metrics.members.inc();
                        self.deliver(deliveries);
                    }
                }
                Err(refusal) => {
                    let _ = reply.send(Err(refusal));
                }
            },
            RoomCommand::Request { peer, msg } => match self.room.request(peer, msg, unix_now()) {
                Ok(deliveries) => self.deliver(deliveries),
                Err(refusal) => self.refuse(peer, refusal),
            },
            RoomCommand::Leave { peer } => self.remove(peer, LeaveReason::Left),
        }
        let after = self.room.member_count();
        if after != before {
            self.rooms.publish_count(self.room.slug(), after);
        }
    }

    fn remove(&mut self, peer: PeerId, reason: LeaveReason) {
        if self.outboxes.remove(&peer).is_some() {
            self.rooms.metrics.members.dec();
        }
        let deliveries = self.room.leave(peer, reason);
        self.deliver(deliveries);
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
        for delivery in deliveries {
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
                Recipients::Only(peer) => {
                    if let Some(outbox) = self.outboxes.get(&peer) {
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
            if let Some(outbox) = self.outboxes.get(&peer) {
                tracing::info!(room = %self.room.slug(), %peer, "disconnecting a peer that stopped reading");
                self.rooms.metrics.slow_disconnects.inc();
                outbox.kick.cancel();
            }
            self.remove(peer, LeaveReason::TooSlow);
        }
    }
}
