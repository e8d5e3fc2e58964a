//! What the meeting page shows, as plain data: the participant list and the chat stream with
//! join/leave notices. The component applies server messages here and renders the result.

use crate::protocol::{ChatEntry, MessageId, PeerId, PeerInfo, UnixMillis};

/// One line of the chat stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatLine {
    Message {
        entry: ChatEntry,
        mine: bool,
    },
    Notice {
        seq: u64,
        text: String,
        at: Option<UnixMillis>,
    },
}

impl ChatLine {
    /// Stable across re-renders, unique within one page's stream.
    pub fn key(&self) -> String {
        match self {
            ChatLine::Message { entry, .. } => format!("m{}", entry.id.0),
            ChatLine::Notice { seq, .. } => format!("n{seq}"),
        }
    }
}

/// The chat stream of one page: history first, then live messages and notices.
#[derive(Clone, Debug, Default)]
pub struct ChatStream {
    lines: Vec<ChatLine>,
    next_notice: u64,
}

impl ChatStream {
    pub fn lines(&self) -> &[ChatLine] {
        &self.lines
    }

    /// Appends a message unless it is already shown (a history replay overlapping live ones).
    pub fn push_message(&mut self, entry: ChatEntry, me: Option<PeerId>) {
        let known = self
            .lines
            .iter()
            .rev()
            .any(|line| matches!(line, ChatLine::Message { entry: e, .. } if e.id == entry.id));
        if !known {
            let mine = Some(entry.from) == me;
            self.lines.push(ChatLine::Message { entry, mine });
        }
    }

    /// The newest message shown, for asking the server what was missed.
    pub fn last_message_id(&self) -> Option<MessageId> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                ChatLine::Message { entry, .. } => Some(entry.id),
                ChatLine::Notice { .. } => None,
            })
            .max()
    }

    pub fn push_notice(&mut self, text: String, at: Option<UnixMillis>) {
        self.next_notice += 1;
        self.lines.push(ChatLine::Notice {
            seq: self.next_notice,
            text,
            at,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, from: u64) -> ChatEntry {
        ChatEntry {
            id: MessageId(id),
            from: PeerId(from),
            name: format!("p{from}"),
            at: UnixMillis(0),
            text: format!("m{id}"),
        }
    }

    #[test]
    fn messages_are_marked_mine_and_never_shown_twice() {
        let mut stream = ChatStream::default();
        stream.push_message(entry(1, 1), Some(PeerId(1)));
        stream.push_message(entry(2, 2), Some(PeerId(1)));
        stream.push_message(entry(1, 1), Some(PeerId(1)));
        let mine: Vec<_> = stream
            .lines()
            .iter()
            .map(|l| matches!(l, ChatLine::Message { mine: true, .. }))
            .collect();
        assert_eq!(mine, [true, false]);
    }

    #[test]
    fn notices_get_unique_keys_distinct_from_messages() {
        let mut stream = ChatStream::default();
        stream.push_notice("Ann joined".into(), None);
        stream.push_message(entry(1, 1), None);
        stream.push_notice("Ann left".into(), None);
        let keys: Vec<_> = stream.lines().iter().map(ChatLine::key).collect();
        assert_eq!(keys, ["n1", "m1", "n2"]);
        assert_eq!(stream.last_message_id(), Some(MessageId(1)));
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
        };
        roster.add(ann.clone());
        roster.add(ann);
        assert_eq!(roster.peers.len(), 1);
        assert_eq!(roster.remove(PeerId(1)).as_deref(), Some("Ann"));
        assert_eq!(roster.remove(PeerId(1)), None);
    }
}
