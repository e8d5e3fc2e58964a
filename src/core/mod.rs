//! Pure room logic: membership, names, chat history, routing decisions and limits. No IO, no
//! async, no clock: callers pass the time in and carry out the returned [`Outcome`], which is
//! what lets the same code run under a socket server, a test or a fuzzer.

pub mod directory;
pub mod names;
pub mod rate;
pub mod room;
#[cfg(any(test, feature = "simulate"))]
pub mod simulate;

use crate::protocol::{
    ChatEntry, Dismissal, ErrorCode, MediaState, MessageId, PeerId, ServerMsg, TileView, UnixMillis,
};

/// Milliseconds on a clock that never steps backwards (since the server started); what the
/// core measures durations with: rate limits, grace periods, deadlines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoMillis(pub u64);

impl MonoMillis {
    pub fn plus(self, ms: u64) -> MonoMillis {
        MonoMillis(self.0.saturating_add(ms))
    }

    pub fn since(self, earlier: MonoMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The time of one input: monotonic for durations, wall-clock only for the `at` stamps people
/// read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub mono: MonoMillis,
    pub wall: UnixMillis,
}

impl Now {
    /// Both clocks at `ms`; handy where the two need not differ (tests, simulations).
    pub const fn at(ms: u64) -> Now {
        Now {
            mono: MonoMillis(ms),
            wall: UnixMillis(ms),
        }
    }

    /// This time moved forward by `ms` on both clocks.
    pub const fn later(self, ms: u64) -> Now {
        Now {
            mono: MonoMillis(self.mono.0 + ms),
            wall: UnixMillis(self.wall.0 + ms),
        }
    }
}

/// A refused request: the code and a sentence for the person who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    /// The refused chat message, handed back to its sender.
    pub chat_text: Option<String>,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            chat_text: None,
        }
    }

    /// The same refusal, handing `text` back to the page that sent it.
    pub fn returning(self, text: String) -> Self {
        Refusal {
            chat_text: Some(text),
            ..self
        }
    }

    pub fn into_msg(self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message,
            chat_text: self.chat_text,
        }
    }
}

/// Who a message is for, among the members of one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients {
    Only(PeerId),
    Everyone,
    EveryoneBut(PeerId),
    /// Everyone but a few: the members who arrived in one batch, when the others hear of them.
    EveryoneButAll(Vec<PeerId>),
}

impl Recipients {
    pub fn includes(&self, peer: PeerId) -> bool {
        match self {
            Recipients::Only(only) => *only == peer,
            Recipients::Everyone => true,
            Recipients::EveryoneBut(excluded) => *excluded != peer,
            Recipients::EveryoneButAll(excluded) => !excluded.contains(&peer),
        }
    }
}

/// A message the room wants sent; the transport encodes it once for all its recipients.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub to: Recipients,
    pub msg: ServerMsg,
}

/// Stored chat a member is waiting for: the transport reads the messages of `range` from
/// storage (outside the room's task) and hands them to [`room::Room::history_loaded`].
///
/// Two members wait like this: one joining whose history reaches back further than the room
/// keeps in memory (`before` is `None`; until the read is done they receive nothing, so
/// `joined` still comes first), and one asking for an older page (`load_history`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryNeed {
    pub peer: PeerId,
    pub range: HistoryRange,
}

/// Which stored messages to read: the newest with ids in `after < id < before` (no upper
/// bound when `before` is `None`), at most `limit` of them, and no more than it takes for
/// their text to pass `max_bytes` (the replay budget: more would be read only to be dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryRange {
    pub after: MessageId,
    pub before: Option<MessageId>,
    pub limit: usize,
    pub max_bytes: usize,
}

/// Work for the server's forwarding unit (calls through the server, `call_mode` `sfu`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEffect {
    /// A member's offer for their connection to the forwarding unit.
    Offer { peer: PeerId, sdp: String },
    /// A member's answer to the forwarding unit's offer.
    Answer { peer: PeerId, sdp: String },
    /// The sizes at which a member shows the others' videos changed.
    View { peer: PeerId, tiles: Vec<TileView> },
    /// The member no longer sends or receives through the server: they left the call or the
    /// room, or the call went back to browser-to-browser.
    Drop { peer: PeerId },
    /// Drop what the member sends of these sources: a host turned them off and the member
    /// may not turn them on again, whatever a modified page sends.
    Withhold { peer: PeerId, sources: MediaState },
}

/// Everything one input to a room asks the transport to do, in the style of str0m's
/// `poll_output`: the core decides, the caller carries out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Messages to send, in order.
    pub deliveries: Vec<Delivery>,
    /// New chat messages to store durably.
    pub persist: Vec<ChatEntry>,
    /// Stored history a joining member is waiting for.
    pub need_history: Option<HistoryNeed>,
    /// Work for the forwarding unit, in order.
    pub media: Vec<MediaEffect>,
    /// Connections to close for good once this outcome's messages are in their queues
    /// (removed by a host, or the meeting ended); their members are already gone.
    pub dismiss: Vec<(PeerId, Dismissal)>,
    /// Breakout rooms: connections to move, messages for them, the round's end.
    pub breakouts: room::BreakoutWork,
    /// A password a host set, to hash off the room's task and hand back with
    /// [`room::Room::password_hashed`].
    pub hash_password: Option<room::PasswordToHash>,
    /// When the room next needs [`room::Room::tick`] (a grace period runs out); `None` while
    /// nothing is pending. Every outcome carries the current value, so the caller just keeps
    /// the latest.
    pub next_deadline: Option<MonoMillis>,
}

impl Outcome {
    pub fn deliver(to: Recipients, msg: ServerMsg) -> Outcome {
        Outcome {
            deliveries: vec![Delivery { to, msg }],
            ..Outcome::default()
        }
    }

    /// Nothing to send, store or read.
    pub fn is_quiet(&self) -> bool {
        self.deliveries.is_empty()
            && self.persist.is_empty()
            && self.need_history.is_none()
            && self.media.is_empty()
            && self.dismiss.is_empty()
            && self.hash_password.is_none()
            && self.breakouts.is_empty()
    }

    /// Adds `other`'s work after this one's; the later deadline value wins.
    pub fn then(mut self, other: Outcome) -> Outcome {
        self.deliveries.extend(other.deliveries);
        self.persist.extend(other.persist);
        self.need_history = self.need_history.or(other.need_history);
        self.media.extend(other.media);
        self.dismiss.extend(other.dismiss);
        self.hash_password = self.hash_password.or(other.hash_password);
        self.breakouts = self.breakouts.then(other.breakouts);
        self.next_deadline = other.next_deadline;
        self
    }
}
