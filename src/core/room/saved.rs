//! What a room must outlive its node with: who its members are (so they resume as
//! themselves on the node that takes the room over), their roles, the host key, and the rules
//! hosts set (a locked or password-protected meeting stays so). Calls, hands and breakout
//! rounds start over; chat lives in the history store.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::hosts::Removed;
use super::{Member, Room};
use crate::core::Now;
use crate::protocol::{MediaState, MeetingRules, PeerId, Role};

/// A room's state as saved between nodes (serialized as JSON by the server).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRoom {
    pub members: Vec<SavedMember>,
    pub host_key: Option<String>,
    pub rules: MeetingRules,
    /// The hash of the meeting's password, never the password.
    pub password: Option<String>,
    pub removed: Vec<SavedRemoved>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMember {
    pub id: PeerId,
    pub name: String,
    pub role: Role,
    pub resume_token: String,
    pub browser: Option<String>,
    /// What a host turned off, which stays off.
    pub blocked: MediaState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRemoved {
    pub id: PeerId,
    pub name: String,
    pub browser: Option<String>,
    pub address: Option<IpAddr>,
}

impl Room {
    /// The room as another node would need it to carry on.
    pub fn saved(&self) -> SavedRoom {
        SavedRoom {
            members: self
                .members
                .iter()
                .map(|m| SavedMember {
                    id: m.id,
                    name: m.name.clone(),
                    role: m.role,
                    resume_token: m.resume_token.clone(),
                    browser: m.browser.clone(),
                    blocked: m.blocked,
                })
                .collect(),
            host_key: self.host_key.clone(),
            rules: MeetingRules {
                // The spotlight is on someone in a call, and calls start over.
                spotlight: None,
                ..self.rules
            },
            password: self.password.clone(),
            removed: self.removed.iter().map(Removed::saved).collect(),
        }
    }

    /// Takes over a room another node ran: its members are here, away, until each comes
    /// back with their resume token (as themselves, in their role) or their grace period
    /// ends. Only for a room nobody has joined yet.
    pub fn restore_saved(&mut self, saved: SavedRoom, now: Now) {
        if !self.members.is_empty() {
            return;
        }
        for saved in saved.members.into_iter().take(self.limits.max_members) {
            let request = super::JoinRequest {
                browser: saved.browser,
                ..super::JoinRequest::default()
            };
            let key = super::name_key(&saved.name);
            let mut member: Member =
                self.new_member(saved.id, saved.name, key, &request, saved.resume_token, now);
            member.role = saved.role;
            member.blocked = saved.blocked;
            member.away_since = Some(now.mono);
            self.members.push(member);
        }
        self.away_members = self.members.len();
        self.host_key = saved.host_key;
        self.rules = saved.rules;
        self.password = saved.password;
        self.removed = saved.removed.into_iter().map(Removed::restored).collect();
    }

    /// A cheap summary of what [`Room::saved`] holds, to save it again only when it changed.
    pub fn saved_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for member in &self.members {
            member.id.hash(&mut hasher);
            member.role.hash(&mut hasher);
            member.resume_token.hash(&mut hasher);
            member.blocked.hash(&mut hasher);
        }
        self.host_key.hash(&mut hasher);
        self.rules.locked.hash(&mut hasher);
        self.rules.waiting_room.hash(&mut hasher);
        self.rules.only_hosts_unmute.hash(&mut hasher);
        self.password.hash(&mut hasher);
        self.removed.len().hash(&mut hasher);
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::RoomSlug;
    use crate::core::room::{JoinRequest, RoomLimits};
    use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};

    const T0: Now = Now::at(1_000_000);

    fn room() -> Room {
        Room::new(
            RoomSlug::parse("saved").unwrap(),
            RoomLimits::default(),
            Vec::new(),
        )
    }

    fn enter(room: &mut Room, id: u64, name: &str) -> Option<String> {
        let request = JoinRequest {
            name: name.into(),
            browser: Some(format!("browser-{id}")),
            ..JoinRequest::default()
        };
        room.supply_key(format!("key-{id}"));
        let joined = room
            .join(PeerId(id), request, format!("token-{id}"), T0)
            .unwrap();
        joined.outcome.deliveries.iter().find_map(|d| match &d.msg {
            ServerMsg::Joined { host_key, .. } => host_key.clone(),
            _ => None,
        })
    }

    #[test]
    fn members_resume_as_themselves_in_the_room_another_node_took_over() {
        let mut before = room();
        let host_key = enter(&mut before, 1, "Ann").expect("the first is host");
        enter(&mut before, 2, "Bob");
        before
            .request(
                PeerId(1),
                ClientMsg::SetRules {
                    rules: MeetingRules {
                        locked: true,
                        ..MeetingRules::default()
                    },
                },
                T0,
            )
            .unwrap();
        let saved = before.saved();
        let json = serde_json::to_string(&saved).unwrap();
        let saved: SavedRoom = serde_json::from_str(&json).unwrap();

        let mut after = room();
        after.restore_saved(saved, T0);
        assert_eq!(after.member_count(), 2);
        // Locked: a stranger stays out, a member comes back as themselves.
        let stranger = JoinRequest {
            name: "Eve".into(),
            ..JoinRequest::default()
        };
        let refused = after
            .join(PeerId(9), stranger, "token-9".into(), T0)
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Locked);
        let bob = JoinRequest {
            name: "Bob".into(),
            resume: Some("token-2".into()),
            ..JoinRequest::default()
        };
        let back = after.join(PeerId(7), bob, "token-2b".into(), T0).unwrap();
        assert!(back.resumed);
        assert_eq!(back.peer, PeerId(2));
        // The first one back is not crowned: the host is still the host, away.
        assert_eq!(after.host(), Some(PeerId(1)));
        // The host comes back with the key held.
        let ann = JoinRequest {
            name: "Ann".into(),
            host_key: Some(host_key),
            resume: Some("token-1".into()),
            ..JoinRequest::default()
        };
        let back = after.join(PeerId(8), ann, "token-1b".into(), T0).unwrap();
        assert!(back.resumed);
        assert_eq!(after.host(), Some(PeerId(1)));
        // Whoever does not come back leaves when the grace period ends.
        let mut lonely = room();
        lonely.restore_saved(before.saved(), T0);
        let later = Now::at(T0.mono.0 + RoomLimits::default().resume_grace_ms);
        lonely.tick(later);
        assert!(lonely.is_empty());
    }

    #[test]
    fn the_fingerprint_changes_with_what_is_saved_and_only_then() {
        let mut room = room();
        let empty = room.saved_fingerprint();
        enter(&mut room, 1, "Ann");
        let one = room.saved_fingerprint();
        assert_ne!(empty, one);
        room.request(
            PeerId(1),
            ClientMsg::Chat {
                text: "hello".into(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(room.saved_fingerprint(), one, "chat is not roster");
    }
}
