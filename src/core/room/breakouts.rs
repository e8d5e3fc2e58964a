//! Breakout rooms, as the main room keeps them: hosts open them with who goes where (and an
//! optional timer), move people, broadcast to all of them and close them with a countdown.
//! Each breakout room is a room of its own (its own chat, call and tiles), run by the caller;
//! the main room only decides who moves where ([`BreakoutMove`]), keeps its members while
//! they are away in one, and says what every breakout room must hear.

use super::{JoinRequest, Room};
use crate::core::names::display_name;
use crate::core::{MonoMillis, Now, Outcome, Recipients, Refusal};
use crate::protocol::{
    BreakoutRoom, Breakouts, ErrorCode, PeerId, ServerMsg, UnixMillis, MAX_BREAKOUTS,
};

/// The longest timer a host may set.
const MAX_MINUTES: u32 = 24 * 60;

/// A member's connection moves from the main room into breakout room `room` of round
/// `round`; the caller finds (or starts) that room and joins it with `request`.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakoutMove {
    pub peer: PeerId,
    pub round: String,
    pub room: u8,
    pub request: JoinRequest,
}

/// What the caller must do about the meeting's breakout rooms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BreakoutWork {
    pub moves: Vec<BreakoutMove>,
    /// Messages every open breakout room must hear (changes, broadcasts).
    pub relay: Vec<ServerMsg>,
    /// The round is over: send everyone in a breakout room back to the main room.
    pub close: bool,
}

impl BreakoutWork {
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty() && self.relay.is_empty() && !self.close
    }

    pub fn then(mut self, other: BreakoutWork) -> BreakoutWork {
        self.moves.extend(other.moves);
        self.relay.extend(other.relay);
        self.close |= other.close;
        self
    }
}

/// The breakout rooms of one round, while open.
#[derive(Clone, Debug)]
pub(super) struct Round {
    /// Names this round's rooms apart from earlier rounds' (their chat is theirs).
    id: String,
    state: Breakouts,
    ends: Option<MonoMillis>,
    closing: Option<MonoMillis>,
}

impl Room {
    /// The meeting's breakout rooms as everyone sees them: the main room's own round, or
    /// (in a breakout room) what the main room last said.
    pub fn breakouts_view(&self) -> Option<Breakouts> {
        match &self.round {
            Some(round) => Some(round.state.clone()),
            None => self.relayed_breakouts.clone(),
        }
    }

    /// When the round's timer or countdown next needs the time.
    pub(super) fn breakout_deadline(&self) -> Option<MonoMillis> {
        let round = self.round.as_ref()?;
        round.closing.or(round.ends)
    }

    pub(super) fn open_breakouts(
        &mut self,
        actor: PeerId,
        rooms: Vec<BreakoutRoom>,
        minutes: Option<u32>,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        self.not_a_breakout()?;
        if self.round.is_some() {
            return Err(bad("breakout rooms are already open; close them first"));
        }
        if rooms.is_empty() || rooms.len() > MAX_BREAKOUTS {
            return Err(bad(&format!("open 1 to {MAX_BREAKOUTS} breakout rooms")));
        }
        if minutes.is_some_and(|m| m == 0 || m > MAX_MINUTES) {
            return Err(bad(&format!(
                "a breakout timer is 1 to {MAX_MINUTES} minutes"
            )));
        }
        let mut seen = Vec::new();
        let mut tidy = Vec::with_capacity(rooms.len());
        for room in rooms {
            let name = display_name(&room.name, self.limits.max_name_chars)
                .map_err(|_| bad("each breakout room needs a name of up to 32 characters"))?;
            let mut members = Vec::new();
            for peer in room.members {
                if !self.is_member(peer) {
                    return Err(Refusal::new(
                        ErrorCode::UnknownPeer,
                        "a breakout room names someone who is not in the meeting",
                    ));
                }
                if seen.contains(&peer) {
                    return Err(bad("each person goes to one breakout room at most"));
                }
                seen.push(peer);
                members.push(peer);
            }
            tidy.push(BreakoutRoom { name, members });
        }
        let Some(id) = self.take_spare_key() else {
            return Err(Refusal::new(
                ErrorCode::Unavailable,
                "breakout rooms cannot be opened right now; try again",
            ));
        };
        let ends = minutes.map(|m| now.mono.plus(u64::from(m) * 60_000));
        self.round = Some(Round {
            id: id.chars().take(8).collect(),
            state: Breakouts {
                rooms: tidy,
                ends_at: minutes.map(|m| later(now.wall, u64::from(m) * 60_000)),
                closing_at: None,
            },
            ends,
            closing: None,
        });
        Ok(self.breakouts_changed())
    }

    pub(super) fn assign_breakout(
        &mut self,
        actor: PeerId,
        peer: PeerId,
        room: Option<u8>,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        if !self.is_member(peer) {
            return Err(Refusal::new(
                ErrorCode::UnknownPeer,
                "nobody in the meeting has that id",
            ));
        }
        let round = self.open_round()?;
        if room.is_some_and(|r| usize::from(r) >= round.state.rooms.len()) {
            return Err(bad("there is no breakout room with that number"));
        }
        for (index, breakout) in round.state.rooms.iter_mut().enumerate() {
            breakout.members.retain(|&m| m != peer);
            if room == Some(index as u8) {
                breakout.members.push(peer);
            }
        }
        Ok(self.breakouts_changed())
    }

    pub(super) fn broadcast(
        &mut self,
        actor: PeerId,
        text: String,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        self.open_round()?;
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(Refusal::new(ErrorCode::EmptyText, "the message is empty"));
        }
        if text.chars().count() > self.limits.max_chat_chars {
            return Err(Refusal::new(
                ErrorCode::TextTooLong,
                format!(
                    "a message is at most {} characters",
                    self.limits.max_chat_chars
                ),
            ));
        }
        let msg = ServerMsg::Broadcast {
            from: actor,
            name: self.name_of(actor),
            text,
        };
        Ok(to_every_room(msg))
    }

    pub(super) fn close_breakouts(&mut self, actor: PeerId, now: Now) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        self.open_round()?;
        Ok(self.start_closing(now))
    }

    fn start_closing(&mut self, now: Now) -> Outcome {
        let Some(round) = &mut self.round else {
            return Outcome::default();
        };
        if round.closing.is_some() {
            return Outcome::default();
        }
        let countdown = self.limits.breakout_countdown_ms;
        round.closing = Some(now.mono.plus(countdown));
        round.state.closing_at = Some(later(now.wall, countdown));
        self.breakouts_changed()
    }

    /// The timer ran out (the countdown starts) or the countdown did (everyone comes back).
    pub(super) fn breakouts_tick(&mut self, now: Now) -> Outcome {
        let Some(round) = &self.round else {
            return Outcome::default();
        };
        if round.closing.is_some_and(|at| now.mono >= at) {
            return self.end_round();
        }
        if round.closing.is_none() && round.ends.is_some_and(|at| now.mono >= at) {
            return self.start_closing(now);
        }
        Outcome::default()
    }

    /// The round is over: the main room forgets where everyone was and each breakout room
    /// sends its people back.
    fn end_round(&mut self) -> Outcome {
        self.round = None;
        let mut outcome = Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::BreakoutsChanged { breakouts: None },
        );
        for member in &mut self.members {
            if member.breakout.take().is_some() {
                outcome.deliveries.push(crate::core::Delivery {
                    to: Recipients::Everyone,
                    msg: ServerMsg::PeerUpdated {
                        peer: member.info(),
                    },
                });
            }
        }
        outcome.breakouts.close = true;
        outcome
    }

    /// A member goes into breakout room `room`: their own if assigned, any for hosts and
    /// co-hosts. They leave the main room's call; the main room keeps them as a member.
    pub(super) fn enter_breakout(
        &mut self,
        peer: PeerId,
        room: u8,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.not_a_breakout()?;
        let moderates = self.state_change(peer, now)?.role.moderates();
        let Some(round) = &self.round else {
            return Err(bad("no breakout rooms are open"));
        };
        if round.closing.is_some() {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "the breakout rooms are closing",
            ));
        }
        let Some(breakout) = round.state.rooms.get(usize::from(room)) else {
            return Err(bad("there is no breakout room with that number"));
        };
        if !moderates && !breakout.members.contains(&peer) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "you are assigned to another breakout room",
            ));
        }
        let round_id = round.id.clone();
        let left_call = self.leave_call(peer, now)?;
        let member = self.member_mut(peer)?;
        member.breakout = Some(room);
        let request = JoinRequest {
            name: member.name.clone(),
            granted_role: Some(member.role),
            ..JoinRequest::default()
        };
        let info = member.info();
        let mut outcome = left_call.then(Outcome::deliver(
            Recipients::EveryoneBut(peer),
            ServerMsg::PeerUpdated { peer: info },
        ));
        outcome.breakouts.moves.push(BreakoutMove {
            peer,
            round: round_id,
            room,
            request,
        });
        Ok(outcome)
    }

    /// A member came back from a breakout room on their connection (or is on the way to
    /// another, `then`): greet them in the main room again.
    pub fn returned(&mut self, peer: PeerId, then: Option<u8>, now: Now) -> Outcome {
        let announced = self.announce_pending();
        let Ok(member) = self.member_mut(peer) else {
            return self.finish(announced);
        };
        let outcome = if member.breakout.take().is_some() {
            let info = member.info();
            Outcome::deliver(
                Recipients::EveryoneBut(peer),
                ServerMsg::PeerUpdated { peer: info },
            )
        } else {
            Outcome::default()
        };
        let next = match then.map(|room| self.enter_breakout(peer, room, now)) {
            Some(Ok(moved)) => moved,
            // Not allowed there (or no room any more): back in the main room, told why.
            Some(Err(refusal)) => self
                .greet(peer, None, true)
                .then(Outcome::deliver(Recipients::Only(peer), refusal.into_msg())),
            None => self.greet(peer, None, true),
        };
        self.finish(announced.then(outcome).then(next))
    }

    /// In a breakout room: what the main room said about the round (its state, broadcasts).
    pub fn from_main_room(&mut self, msg: ServerMsg) -> Outcome {
        if let ServerMsg::BreakoutsChanged { breakouts } = &msg {
            self.relayed_breakouts = breakouts.clone();
        }
        let outcome = Outcome::deliver(Recipients::Everyone, msg);
        self.finish(outcome)
    }

    /// Whether `peer` is away in a breakout room.
    pub fn in_breakout(&self, peer: PeerId) -> bool {
        self.members
            .iter()
            .any(|m| m.id == peer && m.breakout.is_some())
    }

    fn breakouts_changed(&self) -> Outcome {
        let msg = ServerMsg::BreakoutsChanged {
            breakouts: self.breakouts_view(),
        };
        to_every_room(msg)
    }

    fn open_round(&mut self) -> Result<&mut Round, Refusal> {
        self.round
            .as_mut()
            .ok_or_else(|| bad("no breakout rooms are open"))
    }

    fn not_a_breakout(&self) -> Result<(), Refusal> {
        if self.breakout_number.is_some() {
            return Err(bad(
                "breakout rooms are run from the main room; return to it first",
            ));
        }
        Ok(())
    }
}

/// `msg` to everyone in the main room and in every breakout room.
fn to_every_room(msg: ServerMsg) -> Outcome {
    Outcome {
        breakouts: BreakoutWork {
            relay: vec![msg.clone()],
            ..BreakoutWork::default()
        },
        ..Outcome::deliver(Recipients::Everyone, msg)
    }
}

fn later(at: UnixMillis, ms: u64) -> UnixMillis {
    UnixMillis(at.0.saturating_add(ms))
}

fn bad(message: &str) -> Refusal {
    Refusal::new(ErrorCode::BadMessage, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::RoomSlug;
    use crate::core::room::RoomLimits;
    use crate::protocol::{ClientMsg, Role};

    const T0: Now = Now::at(1_000);

    fn meeting(names: &[&str]) -> Room {
        let mut room = Room::new(
            RoomSlug::parse("main").unwrap(),
            RoomLimits::DEFAULT,
            Vec::new(),
        );
        for (i, name) in names.iter().enumerate() {
            room.supply_key(format!("key{i}0000000"));
            let request = JoinRequest {
                name: name.to_string(),
                ..JoinRequest::default()
            };
            room.join(PeerId(i as u64 + 1), request, format!("r{i}"), T0)
                .unwrap();
        }
        room.supply_key("round0000000".into());
        room
    }

    fn send(room: &mut Room, from: u64, msg: ClientMsg) -> Result<Outcome, Refusal> {
        room.request(PeerId(from), msg, T0)
    }

    fn open(room: &mut Room, minutes: Option<u32>) -> Outcome {
        send(
            room,
            1,
            ClientMsg::OpenBreakouts {
                rooms: vec![
                    BreakoutRoom {
                        name: "Room 1".into(),
                        members: vec![PeerId(2)],
                    },
                    BreakoutRoom {
                        name: "Room 2".into(),
                        members: vec![PeerId(3)],
                    },
                ],
                minutes,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_host_opens_rooms_and_people_move_only_to_their_own() {
        let mut room = meeting(&["Ann", "Bob", "Cy"]);
        assert_eq!(
            send(&mut room, 2, ClientMsg::CloseBreakouts)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        let opened = open(&mut room, None);
        assert_eq!(opened.breakouts.relay.len(), 1);
        assert!(opened.deliveries.iter().any(|d| matches!(
            &d.msg,
            ServerMsg::BreakoutsChanged { breakouts: Some(b) } if b.rooms.len() == 2
        )));
        // Bob may not go to Cy's room; he goes to his own.
        let refused = send(&mut room, 2, ClientMsg::EnterBreakout { room: 1 }).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        let moved = send(&mut room, 2, ClientMsg::EnterBreakout { room: 0 }).unwrap();
        let hop = &moved.breakouts.moves[0];
        assert_eq!(
            (hop.peer, hop.room, hop.round.as_str()),
            (PeerId(2), 0, "round000")
        );
        assert_eq!(hop.request.name, "Bob");
        assert!(room.in_breakout(PeerId(2)));
        assert!(room.peers()[1].breakout == Some(0));
        // The host visits any room, keeping the role there.
        let visit = send(&mut room, 1, ClientMsg::EnterBreakout { room: 1 }).unwrap();
        assert_eq!(
            visit.breakouts.moves[0].request.granted_role,
            Some(Role::Host)
        );
        // Back in the main room: greeted again, still a member all along.
        let back = room.returned(PeerId(2), None, T0);
        assert!(back
            .deliveries
            .iter()
            .any(|d| d.to == Recipients::Only(PeerId(2))
                && matches!(d.msg, ServerMsg::Joined { resumed: true, .. })));
        assert!(!room.in_breakout(PeerId(2)));
    }

    #[test]
    fn closing_counts_down_sixty_seconds_then_brings_everyone_back() {
        let mut room = meeting(&["Ann", "Bob", "Cy"]);
        open(&mut room, Some(5));
        send(&mut room, 2, ClientMsg::EnterBreakout { room: 0 }).unwrap();
        // The timer runs out: the countdown starts, and nobody moves yet.
        let five = 5 * 60_000;
        assert_eq!(room.next_deadline(), Some(T0.mono.plus(five)));
        let started = room.tick(T0.later(five));
        assert!(!started.breakouts.close);
        assert!(room.breakouts_view().unwrap().closing_at.is_some());
        let refused = room
            .request(
                PeerId(3),
                ClientMsg::EnterBreakout { room: 1 },
                T0.later(five),
            )
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        let countdown = RoomLimits::DEFAULT.breakout_countdown_ms;
        assert_eq!(countdown, 60_000, "a minute, as people expect");
        assert_eq!(room.next_deadline(), Some(T0.mono.plus(five + countdown)));
        let ended = room.tick(T0.later(five + countdown));
        assert!(ended.breakouts.close);
        assert!(room.breakouts_view().is_none());
        assert!(!room.in_breakout(PeerId(2)));
    }

    #[test]
    fn bad_plans_are_refused_and_broadcasts_reach_every_room() {
        let mut room = meeting(&["Ann", "Bob"]);
        let plan = |members: Vec<u64>| ClientMsg::OpenBreakouts {
            rooms: vec![
                BreakoutRoom {
                    name: "A".into(),
                    members: members.iter().map(|&m| PeerId(m)).collect(),
                },
                BreakoutRoom {
                    name: "B".into(),
                    members: vec![PeerId(2)],
                },
            ],
            minutes: None,
        };
        assert_eq!(
            send(&mut room, 1, plan(vec![2])).unwrap_err().code,
            ErrorCode::BadMessage
        );
        assert_eq!(
            send(&mut room, 1, plan(vec![9])).unwrap_err().code,
            ErrorCode::UnknownPeer
        );
        let too_many = ClientMsg::OpenBreakouts {
            rooms: vec![
                BreakoutRoom {
                    name: "R".into(),
                    members: Vec::new(),
                };
                MAX_BREAKOUTS + 1
            ],
            minutes: None,
        };
        assert_eq!(
            send(&mut room, 1, too_many).unwrap_err().code,
            ErrorCode::BadMessage
        );
        send(&mut room, 1, plan(vec![])).unwrap();
        let told = send(
            &mut room,
            1,
            ClientMsg::BroadcastToBreakouts {
                text: "Two minutes".into(),
            },
        )
        .unwrap();
        assert!(
            matches!(&told.breakouts.relay[0], ServerMsg::Broadcast { text, .. } if text == "Two minutes")
        );
        assert_eq!(
            send(
                &mut room,
                2,
                ClientMsg::BroadcastToBreakouts { text: "x".into() }
            )
            .unwrap_err()
            .code,
            ErrorCode::Forbidden
        );
    }
}
