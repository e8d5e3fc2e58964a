//! One room's state machine: who is in it, what was said, and who must hear about each change.

use std::collections::VecDeque;

use super::names::{display_name, same_name, RoomSlug};
use super::rate::TokenBucket;
use super::{Delivery, Recipients, Refusal};
use crate::protocol::{
    ChatEntry, ErrorCode, LeaveReason, MessageId, PeerId, PeerInfo, ServerMsg, UnixMillis,
};

/// The limits one room enforces; the server fills them from its flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    pub max_members: usize,
    /// Chat messages kept for late joiners.
    pub history_len: usize,
    pub max_name_chars: usize,
    pub max_chat_chars: usize,
    /// Chat messages a member may send at once after being quiet.
    pub chat_burst: u32,
    /// Chat messages per second a member may send on average.
    pub chat_per_second: u32,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_members: 100,
            history_len: 100,
            max_name_chars: 32,
            max_chat_chars: 2000,
            chat_burst: 10,
            chat_per_second: 5,
        }
    }
}

#[derive(Clone, Debug)]
struct Member {
    id: PeerId,
    name: String,
    chat_budget: TokenBucket,
}

/// A room: members in the order they joined and the most recent chat.
#[derive(Debug)]
pub struct Room {
    slug: RoomSlug,
    limits: RoomLimits,
    members: Vec<Member>,
    history: VecDeque<ChatEntry>,
    next_message_id: u64,
}

impl Room {
    pub fn new(slug: RoomSlug, limits: RoomLimits) -> Self {
        Room {
            slug,
            history: VecDeque::with_capacity(limits.history_len.min(1024)),
            limits,
            members: Vec::new(),
            next_message_id: 1,
        }
    }

    pub fn slug(&self) -> &RoomSlug {
        &self.slug
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn is_member(&self, peer: PeerId) -> bool {
        self.members.iter().any(|m| m.id == peer)
    }

    pub fn member_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.members
            .iter()
            .map(|m| PeerInfo {
                id: m.id,
                name: m.name.clone(),
            })
            .collect()
    }

    pub fn history(&self) -> impl Iterator<Item = &ChatEntry> {
        self.history.iter()
    }

    /// Adds `peer` under `requested_name`. The newcomer gets the member list and history;
    /// everyone else hears that they arrived.
    pub fn join(
        &mut self,
        peer: PeerId,
        requested_name: &str,
        now: UnixMillis,
    ) -> Result<Vec<Delivery>, Refusal> {
        if self.is_member(peer) {
            return Err(Refusal::new(
                ErrorCode::AlreadyJoined,
                "this connection is already in the room",
            ));
        }
        let name = display_name(requested_name, self.limits.max_name_chars)?;
        if self.members.iter().any(|m| same_name(&m.name, &name)) {
            return Err(Refusal::new(
                ErrorCode::NameTaken,
                format!("someone in this room is already called {name:?}; pick another name"),
            ));
        }
        if self.members.len() >= self.limits.max_members {
            return Err(Refusal::new(
                ErrorCode::RoomFull,
                format!(
                    "this room is full ({} people); try again later",
                    self.limits.max_members
                ),
            ));
        }
        self.members.push(Member {
            id: peer,
            name: name.clone(),
            chat_budget: TokenBucket::new(self.limits.chat_burst, self.limits.chat_per_second, now),
        });
        let newcomer = PeerInfo { id: peer, name };
        Ok(vec![
            Delivery {
                to: Recipients::Only(peer),
                msg: ServerMsg::Joined {
                    you: peer,
                    room: self.slug.to_string(),
                    name: newcomer.name.clone(),
                    peers: self.peers(),
                    history: self.history.iter().cloned().collect(),
                },
            },
            Delivery {
                to: Recipients::EveryoneBut(peer),
                msg: ServerMsg::PeerJoined { peer: newcomer },
            },
        ])
    }

    /// Removes `peer`; the others hear why. Leaving twice is harmless and tells no one.
    pub fn leave(&mut self, peer: PeerId, reason: LeaveReason) -> Vec<Delivery> {
        let Some(index) = self.members.iter().position(|m| m.id == peer) else {
            return Vec::new();
        };
        self.members.remove(index);
        vec![Delivery {
            to: Recipients::Everyone,
            msg: ServerMsg::PeerLeft { peer, reason },
        }]
    }

    /// Records a chat message from `peer` and sends it to everyone, the sender included, so
    /// that every member sees the same order and the sender learns the message id.
    pub fn chat(
        &mut self,
        peer: PeerId,
        text: String,
        now: UnixMillis,
    ) -> Result<Vec<Delivery>, Refusal> {
        let limits = &self.limits;
        let Some(member) = self.members.iter_mut().find(|m| m.id == peer) else {
            return Err(Refusal::new(ErrorCode::NotJoined, "join a room first"));
        };
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::InvalidText, "the message is empty"));
        }
        // Counting chars is linear, so check the byte length first: a char is at most 4 bytes.
        if text.len() > limits.max_chat_chars && text.chars().count() > limits.max_chat_chars {
            return Err(Refusal::new(
                ErrorCode::InvalidText,
                format!("messages are at most {} characters", limits.max_chat_chars),
            ));
        }
        if !member.chat_budget.try_take(now) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "slow down: at most {} messages per second",
                    limits.chat_per_second
                ),
            ));
        }
        let entry = ChatEntry {
            id: MessageId(self.next_message_id),
            from: peer,
            name: member.name.clone(),
            at: now,
            text,
        };
        self.next_message_id += 1;
        if self.limits.history_len > 0 {
            if self.history.len() == self.limits.history_len {
                self.history.pop_front();
            }
            self.history.push_back(entry.clone());
        }
        Ok(vec![Delivery {
            to: Recipients::Everyone,
            msg: ServerMsg::Chat { entry },
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000);

    fn room() -> Room {
        Room::new(RoomSlug::parse("test-room").unwrap(), RoomLimits::default())
    }

    fn room_with(limits: RoomLimits) -> Room {
        Room::new(RoomSlug::parse("test-room").unwrap(), limits)
    }

    fn chat_text(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries
            .iter()
            .filter_map(|d| match &d.msg {
                ServerMsg::Chat { entry } => Some(entry.text.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn joining_greets_the_newcomer_and_tells_the_others() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        let out = room.join(PeerId(2), "  Bob ", T0).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].to, Recipients::Only(PeerId(2)));
        match &out[0].msg {
            ServerMsg::Joined {
                you, peers, name, ..
            } => {
                assert_eq!(*you, PeerId(2));
                assert_eq!(name, "Bob");
                let names: Vec<_> = peers.iter().map(|p| p.name.as_str()).collect();
                assert_eq!(names, ["Ann", "Bob"]);
            }
            other => panic!("expected joined, got {other:?}"),
        }
        assert_eq!(out[1].to, Recipients::EveryoneBut(PeerId(2)));
        assert_eq!(
            out[1].msg,
            ServerMsg::PeerJoined {
                peer: PeerInfo {
                    id: PeerId(2),
                    name: "Bob".into()
                }
            }
        );
    }

    #[test]
    fn names_are_unique_per_room_regardless_of_case() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        let err = room.join(PeerId(2), "ANN", T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::NameTaken);
        assert_eq!(room.member_count(), 1);
        // Once Ann leaves, the name is free again.
        room.leave(PeerId(1), LeaveReason::Left);
        assert!(room.join(PeerId(2), "ANN", T0).is_ok());
    }

    #[test]
    fn bad_names_and_double_joins_are_refused() {
        let mut room = room();
        assert_eq!(
            room.join(PeerId(1), "", T0).unwrap_err().code,
            ErrorCode::InvalidName
        );
        assert_eq!(
            room.join(PeerId(1), &"x".repeat(33), T0).unwrap_err().code,
            ErrorCode::InvalidName
        );
        room.join(PeerId(1), "Ann", T0).unwrap();
        assert_eq!(
            room.join(PeerId(1), "Other", T0).unwrap_err().code,
            ErrorCode::AlreadyJoined
        );
    }

    #[test]
    fn a_full_room_refuses_the_next_member() {
        let mut room = room_with(RoomLimits {
            max_members: 2,
            ..RoomLimits::default()
        });
        room.join(PeerId(1), "a", T0).unwrap();
        room.join(PeerId(2), "b", T0).unwrap();
        assert_eq!(
            room.join(PeerId(3), "c", T0).unwrap_err().code,
            ErrorCode::RoomFull
        );
    }

    #[test]
    fn chat_goes_to_everyone_with_increasing_ids() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        room.join(PeerId(2), "Bob", T0).unwrap();
        let first = room.chat(PeerId(1), "hello".into(), T0).unwrap();
        let second = room.chat(PeerId(2), "hi Ann".into(), T0).unwrap();
        assert_eq!(first[0].to, Recipients::Everyone);
        let ids: Vec<_> = [first, second]
            .iter()
            .map(|d| match &d[0].msg {
                ServerMsg::Chat { entry } => (entry.id, entry.name.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                (MessageId(1), "Ann".to_string()),
                (MessageId(2), "Bob".to_string())
            ]
        );
    }

    #[test]
    fn late_joiners_get_the_last_messages_in_order() {
        let mut room = room_with(RoomLimits {
            history_len: 3,
            chat_burst: 100,
            ..RoomLimits::default()
        });
        room.join(PeerId(1), "Ann", T0).unwrap();
        for i in 0..5 {
            room.chat(PeerId(1), format!("m{i}"), T0).unwrap();
        }
        let out = room.join(PeerId(2), "Bob", T0).unwrap();
        let ServerMsg::Joined { history, .. } = &out[0].msg else {
            panic!("expected joined");
        };
        let texts: Vec<_> = history.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["m2", "m3", "m4"]);
        assert_eq!(history[0].id, MessageId(3));
    }

    #[test]
    fn history_outlives_the_sender() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        room.chat(PeerId(1), "bye".into(), T0).unwrap();
        room.leave(PeerId(1), LeaveReason::Left);
        let out = room.join(PeerId(2), "Bob", T0).unwrap();
        let ServerMsg::Joined { history, .. } = &out[0].msg else {
            panic!("expected joined");
        };
        assert_eq!(history[0].name, "Ann");
    }

    #[test]
    fn empty_overlong_and_outsider_chat_is_refused() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        let code = |r: Result<Vec<Delivery>, Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(room.chat(PeerId(1), " \n ".into(), T0)),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code(room.chat(PeerId(1), "x".repeat(2001), T0)),
            ErrorCode::InvalidText
        );
        assert_eq!(
            code(room.chat(PeerId(9), "hi".into(), T0)),
            ErrorCode::NotJoined
        );
        // 2,000 characters of 3-byte text are fine even though they are 6,000 bytes.
        assert!(room.chat(PeerId(1), "한".repeat(2000), T0).is_ok());
        assert_eq!(room.history().count(), 1);
    }

    #[test]
    fn flooding_is_rate_limited_per_member() {
        let mut room = room_with(RoomLimits {
            chat_burst: 3,
            chat_per_second: 1,
            ..RoomLimits::default()
        });
        room.join(PeerId(1), "Ann", T0).unwrap();
        room.join(PeerId(2), "Bob", T0).unwrap();
        let results: Vec<_> = (0..5)
            .map(|i| room.chat(PeerId(1), format!("{i}"), T0))
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(
            results[4].as_ref().unwrap_err().code,
            ErrorCode::RateLimited
        );
        // Bob has his own budget, and Ann's refills with time.
        assert!(room.chat(PeerId(2), "me too".into(), T0).is_ok());
        assert!(room
            .chat(PeerId(1), "later".into(), UnixMillis(T0.0 + 1000))
            .is_ok());
        let texts: Vec<_> = room.history().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["0", "1", "2", "me too", "later"]);
    }

    #[test]
    fn leaving_tells_everyone_once() {
        let mut room = room();
        room.join(PeerId(1), "Ann", T0).unwrap();
        room.join(PeerId(2), "Bob", T0).unwrap();
        let out = room.leave(PeerId(1), LeaveReason::TooSlow);
        assert_eq!(
            out,
            vec![Delivery {
                to: Recipients::Everyone,
                msg: ServerMsg::PeerLeft {
                    peer: PeerId(1),
                    reason: LeaveReason::TooSlow
                }
            }]
        );
        assert!(room.leave(PeerId(1), LeaveReason::Left).is_empty());
        assert_eq!(room.member_ids().collect::<Vec<_>>(), [PeerId(2)]);
        assert!(chat_text(&out).is_empty());
    }
}
