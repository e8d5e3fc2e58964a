//! What the meeting page shows, as plain data: the participant list and the chat stream with
//! join/leave notices. The session applies server messages here; components render the result.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::{ChatEntry, LeaveReason, MessageId, PeerId, PeerInfo, UnixMillis};

/// Lines a page keeps; older ones are dropped (and the page says so), so a long meeting costs
/// the same per message at its end as at its start.
pub const MAX_CHAT_LINES: usize = 1000;

/// Something that happened in the room, said in the page's language when it is rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    YouJoined {
        room: String,
        name: String,
    },
    Reconnected,
    /// Back, but as a new member: the server restarted meanwhile.
    ReconnectedAfterRestart,
    Joined {
        name: String,
    },
    Left {
        name: String,
        reason: LeaveReason,
    },
    /// A host locked the meeting: nobody new gets in.
    Locked,
    Unlocked,
    /// `name` is the host now.
    NewHost {
        name: String,
    },
    /// This page moved into a breakout room, or back to the main room (`None`).
    Moved {
        breakout: Option<String>,
    },
    /// A host's message to every room of the meeting.
    Broadcast {
        name: String,
        text: String,
    },
}

/// What tells chat lines apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineKey {
    Message(MessageId),
    Notice(u64),
}

/// One line of the chat stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatLine {
    Message {
        entry: ChatEntry,
        mine: bool,
    },
    Notice {
        seq: u64,
        notice: Notice,
        at: Option<UnixMillis>,
    },
}

impl ChatLine {
    /// Stable across re-renders, unique within one page's stream; cheap, since the list
    /// computes it for every line on every change.
    pub fn key(&self) -> LineKey {
        match self {
            ChatLine::Message { entry, .. } => LineKey::Message(entry.id),
            ChatLine::Notice { seq, .. } => LineKey::Notice(*seq),
        }
    }

    fn message_id(&self) -> Option<MessageId> {
        match self {
            ChatLine::Message { entry, .. } => Some(entry.id),
            ChatLine::Notice { .. } => None,
        }
    }
}

/// The chat stream of one page: history first, then live messages and notices, in message-id
/// order, each message once, at most [`MAX_CHAT_LINES`] lines. Lines are shared (`Arc`), so
/// handing the list to the view copies pointers, not text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatStream {
    lines: VecDeque<Arc<ChatLine>>,
    /// Ids of the messages in `lines`, ascending: a sorted set, searched by bisection (the
    /// lines hold them in the same order).
    shown: VecDeque<MessageId>,
    /// Messages up to this id were dropped for the cap; older arrivals are not shown again.
    dropped_up_to: Option<MessageId>,
    /// The newest id up to which every message has arrived (since the first one this page
    /// received): where a replay must start so nothing is missing.
    contiguous_up_to: Option<MessageId>,
    next_notice: u64,
    /// Bumped by every line added, so a view can tell that something changed once the cap
    /// keeps the length still.
    version: u64,
    /// Which stream this is: another room's (a breakout room), or the same room's after a
    /// gap, numbers its messages afresh, so a view keyed by message id must start over.
    era: u64,
}

impl ChatStream {
    pub fn lines(&self) -> impl ExactSizeIterator<Item = &Arc<ChatLine>> {
        self.lines.iter()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn era(&self) -> u64 {
        self.era
    }

    /// Empties the stream for another room (or after a gap): a new era, and notice numbers
    /// that go on rising.
    pub fn start_over(&mut self) {
        *self = ChatStream {
            era: self.era + 1,
            next_notice: self.next_notice,
            version: self.version + 1,
            ..ChatStream::default()
        };
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether older lines were dropped to keep the page light.
    pub fn earlier_hidden(&self) -> bool {
        self.dropped_up_to.is_some()
    }

    /// Adds a message in id order unless it is already shown (a replay overlapping live
    /// ones) or older than what the cap dropped.
    pub fn push_message(&mut self, entry: ChatEntry, me: Option<PeerId>) {
        let id = entry.id;
        if self.is_shown(id) || self.dropped_up_to.is_some_and(|d| id <= d) {
            return;
        }
        let mine = Some(entry.from) == me;
        // Messages are kept in id order, so the last one shown is the newest. Usually this
        // one is newer still and goes last (after any notices); a replay filling a gap goes
        // before the first newer message.
        let newest = self.lines.iter().rev().find_map(|l| l.message_id());
        let position = if newest.is_some_and(|newest| newest > id) {
            self.lines
                .iter()
                .position(|l| l.message_id().is_some_and(|other| other > id))
                .unwrap_or(self.lines.len())
        } else {
            self.lines.len()
        };
        self.lines
            .insert(position, Arc::new(ChatLine::Message { entry, mine }));
        let at = self.shown.partition_point(|other| *other < id);
        self.shown.insert(at, id);
        self.version += 1;
        self.advance_contiguous(id);
        self.enforce_cap();
    }

    fn is_shown(&self, id: MessageId) -> bool {
        self.shown.binary_search(&id).is_ok()
    }

    fn advance_contiguous(&mut self, id: MessageId) {
        let Some(mut up_to) = self.contiguous_up_to else {
            self.contiguous_up_to = Some(id);
            return;
        };
        if id.0 != up_to.0 + 1 {
            return;
        }
        up_to = id;
        while self.is_shown(MessageId(up_to.0 + 1)) {
            up_to = MessageId(up_to.0 + 1);
        }
        self.contiguous_up_to = Some(up_to);
    }

    fn enforce_cap(&mut self) {
        while self.lines.len() > MAX_CHAT_LINES {
            if let Some(dropped) = self.lines.pop_front() {
                if let Some(id) = dropped.message_id() {
                    // The oldest line holds the smallest id.
                    self.shown.pop_front();
                    self.dropped_up_to = Some(self.dropped_up_to.map_or(id, |d| d.max(id)));
                }
            }
        }
    }

    /// The oldest message shown: where a page of older history ends.
    pub fn oldest_message_id(&self) -> Option<MessageId> {
        self.shown.front().copied()
    }

    /// Whether older messages may be added without the cap dropping them again at once.
    pub fn has_room_for_older(&self) -> bool {
        self.dropped_up_to.is_none() && self.lines.len() < MAX_CHAT_LINES
    }

    /// The message id to ask the server to replay after: the newest one before any gap.
    pub fn last_message_id(&self) -> Option<MessageId> {
        self.contiguous_up_to
    }

    pub fn push_notice(&mut self, notice: Notice, at: Option<UnixMillis>) {
        self.next_notice += 1;
        self.version += 1;
        self.lines.push_back(Arc::new(ChatLine::Notice {
            seq: self.next_notice,
            notice,
            at,
        }));
        self.enforce_cap();
    }
}

/// The people in the room, in the order they joined.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    pub peers: Vec<PeerInfo>,
}

impl Roster {
    pub fn name_of(&self, id: PeerId) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.as_str())
    }

    pub fn add(&mut self, peer: PeerInfo) {
        if self.name_of(peer.id).is_none() {
            self.peers.push(peer);
        }
    }

    /// Replaces what is known about a member (call and media state); unknown ids are ignored.
    pub fn update(&mut self, peer: PeerInfo) {
        if let Some(known) = self.peers.iter_mut().find(|p| p.id == peer.id) {
            *known = peer;
        }
    }

    pub fn get(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.iter().find(|p| p.id == id)
    }

    /// Removes `id` and returns the name it had, for the leave notice.
    pub fn remove(&mut self, id: PeerId) -> Option<String> {
        let index = self.peers.iter().position(|p| p.id == id)?;
        Some(self.peers.remove(index).name)
    }
}

/// Chat message `id` from peer `from`, for tests of the page's model and session.
#[cfg(test)]
pub(crate) fn test_entry(id: u64, from: u64) -> ChatEntry {
    ChatEntry {
        id: MessageId(id),
        from: PeerId(from),
        name: format!("p{from}"),
        at: UnixMillis(0),
        text: format!("m{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::test_entry as entry;
    use super::*;

    fn ids(stream: &ChatStream) -> Vec<u64> {
        stream
            .lines()
            .filter_map(|l| l.message_id())
            .map(|id| id.0)
            .collect()
    }

    #[test]
    fn messages_are_marked_mine_and_never_shown_twice() {
        let mut stream = ChatStream::default();
        stream.push_message(entry(1, 1), Some(PeerId(1)));
        stream.push_message(entry(2, 2), Some(PeerId(1)));
        stream.push_message(entry(1, 1), Some(PeerId(1)));
        let mine: Vec<_> = stream
            .lines()
            .map(|l| matches!(**l, ChatLine::Message { mine: true, .. }))
            .collect();
        assert_eq!(mine, [true, false]);
    }

    #[test]
    fn notices_get_unique_keys_distinct_from_messages() {
        let mut stream = ChatStream::default();
        stream.push_notice(Notice::Joined { name: "Ann".into() }, None);
        stream.push_message(entry(1, 1), None);
        stream.push_notice(Notice::Reconnected, None);
        let keys: Vec<_> = stream.lines().map(|l| l.key()).collect();
        assert_eq!(
            keys,
            [
                LineKey::Notice(1),
                LineKey::Message(MessageId(1)),
                LineKey::Notice(2)
            ]
        );
        assert_eq!(stream.last_message_id(), Some(MessageId(1)));
    }

    #[test]
    fn a_gap_holds_the_resume_point_until_it_is_filled_in_order() {
        let mut stream = ChatStream::default();
        stream.push_message(entry(4, 1), None);
        stream.push_message(entry(5, 1), None);
        // 6 and 7 never arrived; 8 did.
        stream.push_message(entry(8, 1), None);
        assert_eq!(stream.last_message_id(), Some(MessageId(5)));
        // A replay after 5 fills the gap and repeats 8, which is not shown twice.
        for id in [6, 7, 8] {
            stream.push_message(entry(id, 1), None);
        }
        assert_eq!(ids(&stream), [4, 5, 6, 7, 8]);
        assert_eq!(stream.last_message_id(), Some(MessageId(8)));
    }

    #[test]
    fn a_long_meeting_keeps_the_newest_lines_and_says_earlier_ones_are_hidden() {
        let mut stream = ChatStream::default();
        for id in 1..=(MAX_CHAT_LINES as u64 + 50) {
            stream.push_message(entry(id, 1), None);
        }
        assert_eq!(stream.len(), MAX_CHAT_LINES);
        assert!(stream.earlier_hidden());
        assert_eq!(ids(&stream)[0], 51);
        // A dropped message replayed later stays dropped.
        stream.push_message(entry(3, 1), None);
        assert_eq!(ids(&stream)[0], 51);
        assert_eq!(
            stream.last_message_id(),
            Some(MessageId(MAX_CHAT_LINES as u64 + 50))
        );
    }

    #[test]
    fn the_roster_tracks_arrivals_and_departures() {
        let mut roster = Roster::default();
        let ann = PeerInfo {
            id: PeerId(1),
            name: "Ann".into(),
            in_call: false,
            media: Default::default(),
            away: false,
            hand: None,
            role: Default::default(),
            breakout: None,
            recording: false,
        };
        roster.add(ann.clone());
        roster.add(ann);
        assert_eq!(roster.peers.len(), 1);
        assert_eq!(roster.remove(PeerId(1)).as_deref(), Some("Ann"));
        assert_eq!(roster.remove(PeerId(1)), None);
    }
}
