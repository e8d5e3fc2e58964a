//! A model driver for the room logic: applies arbitrary sequences of operations (joins,
//! leaves, drops, resumes, chat, calls, signaling, time passing) to a `Room` and checks its
//! invariants after each one. Property tests (`proptest`, in the normal test suite) and the
//! `cargo fuzz` target `room_sequence` both drive it.

use std::collections::{HashMap, HashSet};

use super::names::{same_name, RoomSlug};
use super::rate::RateLimit;
use super::room::{JoinRequest, Room, RoomLimits};
use super::{HistoryNeed, Now, Outcome, Recipients};
use crate::protocol::{
    ChatEntry, ClientMsg, MediaState, MeetingRules, MessageId, PeerId, Role, ServerMsg, Signal,
    TrackSource,
};

/// One thing that can happen to a room. Peers are small numbers so sequences reuse them.
#[derive(Clone, Debug)]
pub enum Op {
    Join {
        peer: u8,
        name: String,
        /// Resume with the token of this peer, if any.
        resume_of: Option<u8>,
        last_seen: Option<u64>,
    },
    Leave {
        peer: u8,
    },
    Disconnect {
        peer: u8,
    },
    Chat {
        peer: u8,
        text: String,
    },
    JoinCall {
        peer: u8,
        mic: bool,
        camera: bool,
    },
    LeaveCall {
        peer: u8,
    },
    Media {
        peer: u8,
        mic: bool,
        camera: bool,
    },
    Hand {
        peer: u8,
        raised: bool,
    },
    React {
        peer: u8,
        emoji: String,
    },
    Signal {
        from: u8,
        to: u8,
    },
    Wait {
        ms: u32,
    },
    Expire,
    /// Storage answers the oldest pending history read (if any).
    LoadHistory,
    /// A member asks for the page of chat older than `before`.
    LoadOlder {
        peer: u8,
        before: u64,
    },
    /// Another input makes the room announce pending arrivals before its own work.
    Announce,
    /// A member sends an SDP offer for a connection to the forwarding unit.
    MediaOffer {
        peer: u8,
    },
    /// A member tries a host action (`action` picks which) on `target`.
    Host {
        peer: u8,
        target: u8,
        action: u8,
    },
}

/// The host action `Op::Host` stands for.
fn host_action(target: u8, action: u8) -> ClientMsg {
    let peer = PeerId(target.into());
    match action % 14 {
        0 => ClientMsg::SetRole {
            peer,
            role: Role::Cohost,
        },
        1 => ClientMsg::SetRole {
            peer,
            role: Role::Host,
        },
        2 => ClientMsg::Mute {
            peer,
            source: TrackSource::Microphone,
        },
        3 => ClientMsg::MuteAll,
        4 => ClientMsg::Remove { peer },
        5 => ClientMsg::SetRules {
            rules: MeetingRules {
                locked: target.is_multiple_of(2),
                only_hosts_unmute: true,
                waiting_room: false,
                password: false,
                spotlight: None,
            },
        },
        6 => ClientMsg::EndMeeting,
        7 => ClientMsg::AllowBack { peer },
        8 => ClientMsg::SetRules {
            rules: MeetingRules {
                locked: false,
                only_hosts_unmute: false,
                waiting_room: !target.is_multiple_of(3),
                password: false,
                spotlight: None,
            },
        },
        9 => ClientMsg::Admit { peer },
        10 => ClientMsg::AdmitAll,
        11 => ClientMsg::Deny { peer },
        12 => ClientMsg::SetPassword {
            password: Some("secret".into()),
        },
        _ => ClientMsg::SetPassword { password: None },
    }
}

/// Grace period of the simulated room.
pub const GRACE_MS: u64 = 30_000;

/// A room under test, the clock it runs on and the storage it would write to.
pub struct Simulation {
    pub room: Room,
    pub now: Now,
    limits: RoomLimits,
    /// The id the next chat message must get.
    expected_next_id: u64,
    /// Every chat message the room asked to store.
    stored: Vec<ChatEntry>,
    /// History reads asked for and not answered yet.
    pending_reads: Vec<HistoryNeed>,
    /// Whom each connected member has been told is in the room (from `joined`,
    /// `peers_joined` and `peer_left`), as their page would show it.
    rosters: HashMap<PeerId, Vec<PeerId>>,
}

impl Simulation {
    /// A room with small limits, so that sequences reach them.
    pub fn new() -> Self {
        let limits = RoomLimits {
            max_members: 5,
            history_len: 4,
            max_name_chars: 8,
            max_chat_chars: 16,
            max_call_members: 3,
            max_mesh_members: 3,
            media: super::room::MediaPolicy::Auto,
            page_size: 9,
            mesh_max: 2,
            chat: RateLimit::new(3, 2),
            signal: RateLimit::new(4, 2),
            reaction: RateLimit::new(2, 1),
            state: RateLimit::new(4, 2),
            history: RateLimit::new(2, 1),
            host: RateLimit::new(3, 1),
            password_guesses: super::rate::SlowLimit::new(2, 1),
            breakout_countdown_ms: 1_000,
            resume_grace_ms: GRACE_MS,
            // About three short messages: replays and pages are cut often.
            max_replay_bytes: 300,
            announce_interval_ms: 100,
        };
        let slug = RoomSlug::parse("sim").expect("valid slug");
        Simulation {
            room: Room::new(slug, limits.clone(), Vec::new()),
            now: Now::at(1_000_000),
            limits,
            expected_next_id: 1,
            stored: Vec::new(),
            pending_reads: Vec::new(),
            rosters: HashMap::new(),
        }
    }

    /// What a refused or empty input leaves the caller with: nothing to do, same deadline.
    fn unchanged(&self) -> Outcome {
        Outcome {
            next_deadline: self.room.next_deadline(),
            ..Outcome::default()
        }
    }

    fn token(peer: u8) -> String {
        format!("token-{peer}")
    }

    /// Applies `op` and checks every invariant; an `Err` describes the broken one.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        let now = self.now;
        let outcome = match op.clone() {
            Op::Join {
                peer,
                name,
                resume_of,
                last_seen,
            } => {
                let request = JoinRequest {
                    name,
                    resume: resume_of.map(Self::token),
                    last_seen: last_seen.map(MessageId),
                    address: None,
                    ..JoinRequest::default()
                };
                // Simulated newcomers never know the password.
                let barred = self.room.rules().password;
                match self
                    .room
                    .join(PeerId(peer.into()), request, Self::token(peer), now)
                {
                    Ok(joined) => {
                        let placed = if joined.waiting {
                            self.room.is_waiting(joined.peer)
                        } else {
                            self.room.is_member(joined.peer)
                        };
                        if !placed {
                            return Err(format!(
                                "{op:?}: joined peer is neither member nor waiting"
                            ));
                        }
                        if barred && !joined.resumed {
                            return Err(format!("{op:?}: got in past the meeting password"));
                        }
                        joined.outcome
                    }
                    Err(_) => self.unchanged(),
                }
            }
            Op::Leave { peer } => self
                .room
                .leave(PeerId(peer.into()), crate::protocol::LeaveReason::Left),
            Op::Disconnect { peer } => self.room.disconnect(PeerId(peer.into()), now),
            Op::Wait { ms } => {
                self.now = now.later(u64::from(ms));
                self.unchanged()
            }
            Op::Expire => self.room.tick(now),
            Op::Announce => self.room.announce_arrivals(),
            Op::LoadHistory => {
                if self.pending_reads.is_empty() {
                    return Ok(());
                }
                let need = self.pending_reads.remove(0);
                let range = need.range;
                let in_range = self
                    .stored
                    .iter()
                    .filter(|e| e.id > range.after && range.before.is_none_or(|b| e.id < b));
                let mut bytes = 0;
                let mut stored: Vec<ChatEntry> = in_range
                    .rev()
                    .take(range.limit)
                    .take_while(|e| {
                        let within = bytes <= range.max_bytes;
                        bytes += e.text.len() + e.name.len();
                        within
                    })
                    .cloned()
                    .collect();
                stored.reverse();
                self.room.history_loaded(need, stored)
            }
            request => {
                let (peer, msg) = match request {
                    Op::Chat { peer, text } => (peer, ClientMsg::Chat { text }),
                    Op::JoinCall { peer, mic, camera } => (
                        peer,
                        ClientMsg::JoinCall {
                            media: MediaState {
                                mic,
                                camera,
                                screen: false,
                            },
                        },
                    ),
                    Op::LeaveCall { peer } => (peer, ClientMsg::LeaveCall),
                    Op::Media { peer, mic, camera } => (
                        peer,
                        ClientMsg::Media {
                            media: MediaState {
                                mic,
                                camera,
                                screen: camera && !mic,
                            },
                        },
                    ),
                    Op::Hand { peer, raised } => (peer, ClientMsg::Hand { raised }),
                    Op::MediaOffer { peer } => (
                        peer,
                        ClientMsg::MediaOffer {
                            sdp: "v=0".into(),
                            more: false,
                        },
                    ),
                    Op::React { peer, emoji } => (peer, ClientMsg::React { emoji }),
                    Op::Host {
                        peer,
                        target,
                        action,
                    } => (peer, host_action(target, action)),
                    Op::LoadOlder { peer, before } => (
                        peer,
                        ClientMsg::LoadHistory {
                            before: MessageId(before),
                        },
                    ),
                    Op::Signal { from, to } => (
                        from,
                        ClientMsg::Signal {
                            to: PeerId(to.into()),
                            signal: Signal::Candidate {
                                candidate: String::new(),
                                sdp_mid: None,
                                sdp_m_line_index: None,
                            },
                        },
                    ),
                    _ => unreachable!("handled above"),
                };
                let outcome = self
                    .room
                    .request(PeerId(peer.into()), msg, now)
                    .unwrap_or_else(|_| self.unchanged());
                // The transport hashes a new password and hands it back at once.
                match outcome.hash_password.clone() {
                    Some(job) => {
                        let hash = format!("hash:{}", job.password);
                        outcome.then(self.room.password_hashed(job.by, hash))
                    }
                    None => outcome,
                }
            }
        };
        self.check(op, &outcome)
    }

    fn check(&mut self, op: &Op, outcome: &Outcome) -> Result<(), String> {
        let deliveries = &outcome.deliveries;
        let peers = self.room.peers();
        let fail = |what: &str| Err(format!("after {op:?}: {what}; members {peers:?}"));
        if peers.len() > self.limits.max_members {
            return fail("more members than the limit");
        }
        for (i, a) in peers.iter().enumerate() {
            if peers[i + 1..]
                .iter()
                .any(|b| a.id == b.id || same_name(&a.name, &b.name))
            {
                return fail("two members share an id or a name");
            }
            if a.name.is_empty() || a.name.chars().count() > self.limits.max_name_chars {
                return fail("a name outside the limits");
            }
        }
        if peers.iter().any(|p| self.room.is_waiting(p.id)) {
            return fail("a member is also waiting to be let in");
        }
        let hosts = peers.iter().filter(|p| p.role == Role::Host).count();
        if hosts != usize::from(!peers.is_empty()) {
            return fail("a room with members has not exactly one host");
        }
        if self.room.call_size() > self.limits.max_call_members {
            return fail("more call members than the cap");
        }
        let expected_mode = super::room::mode_for(
            self.limits.media,
            self.limits.mesh_max,
            self.room.call_size(),
        );
        if self.room.call_mode() != expected_mode {
            return fail("the call's media mode does not fit its size");
        }
        for effect in &outcome.media {
            if let super::MediaEffect::Offer { peer, .. }
            | super::MediaEffect::Answer { peer, .. } = effect
            {
                if !peers.iter().any(|p| p.id == *peer && p.in_call)
                    || expected_mode != crate::protocol::CallMode::Sfu
                {
                    return fail("media signalling passed on outside a call through the server");
                }
            }
        }
        let mut hands: Vec<u64> = peers.iter().filter_map(|p| p.hand).collect();
        let raised = hands.len();
        hands.sort_unstable();
        hands.dedup();
        if hands.len() != raised {
            return fail("two raised hands share a place in line");
        }
        let ids: Vec<u64> = self.room.history().map(|e| e.id.0).collect();
        if ids.len() > self.limits.history_len || ids.windows(2).any(|w| w[0] >= w[1]) {
            return fail("history too long or out of order");
        }
        let members: HashSet<PeerId> = peers.iter().map(|p| p.id).collect();
        if outcome.next_deadline != self.room.next_deadline() {
            return fail("the outcome's deadline is not the room's");
        }
        let waiting = peers.iter().any(|p| p.away) || self.room.has_unannounced_arrivals();
        if self.room.next_deadline().is_some() != waiting {
            return fail(
                "a deadline without anyone away or unannounced, or one of them without it",
            );
        }
        if self
            .room
            .next_deadline()
            .is_some_and(|deadline| deadline <= self.now.mono && matches!(op, Op::Expire))
        {
            return fail("a deadline already due after the room was woken");
        }
        if let Some(need) = outcome.need_history {
            let waiting = match need.range.before {
                None => self.room.is_awaiting_history(need.peer),
                Some(_) => self.room.is_member(need.peer),
            };
            if !waiting {
                return fail("a history read for a member not waiting for one");
            }
            self.pending_reads.push(need);
        }
        for entry in &outcome.persist {
            if self.stored.last().is_some_and(|last| last.id >= entry.id) {
                return fail("stored ids out of order");
            }
            self.stored.push(entry.clone());
        }
        let chats = deliveries
            .iter()
            .filter(|d| matches!(d.msg, ServerMsg::Chat { .. }))
            .count();
        if chats != outcome.persist.len() {
            return fail("a chat message delivered but not stored, or the reverse");
        }
        if let Err(broken) = self.follow_rosters(deliveries) {
            return fail(&broken);
        }
        for delivery in deliveries {
            if let ServerMsg::Joined { you, history, .. } = &delivery.msg {
                if delivery.to != Recipients::Only(*you) || self.room.is_awaiting_history(*you) {
                    return fail("joined sent to someone else or before their history");
                }
                if history.windows(2).any(|w| w[0].id >= w[1].id) {
                    return fail("joined history out of order or repeated");
                }
                if !within_replay_budget(history, self.limits.max_replay_bytes) {
                    return fail("joined history over the replay budget");
                }
            }
            if let ServerMsg::HistoryPage { entries, .. } = &delivery.msg {
                if entries.windows(2).any(|w| w[0].id >= w[1].id) {
                    return fail("history page out of order or repeated");
                }
                if !within_replay_budget(entries, self.limits.max_replay_bytes) {
                    return fail("history page over the replay budget");
                }
            }
            if let Recipients::Only(peer) | Recipients::EveryoneBut(peer) = delivery.to.clone() {
                // An arrival announced just before its own leaving (in one outcome) names
                // someone who is gone by the end of it, as a goodbye does.
                // And the one a host removed hears why, once gone; someone waiting to be
                // let in hears that, and nothing else.
                let left = matches!(
                    delivery.msg,
                    ServerMsg::PeerLeft { .. }
                        | ServerMsg::PeersJoined { .. }
                        | ServerMsg::Dismissed { .. }
                ) || (delivery.msg == ServerMsg::Waiting && self.room.is_waiting(peer));
                if !members.contains(&peer) && !left {
                    return fail("a delivery addressed to a non-member");
                }
            }
            if let ServerMsg::Chat { entry } = &delivery.msg {
                if entry.id.0 != self.expected_next_id {
                    return fail("chat ids skipped or repeated");
                }
                if !members.contains(&entry.from) {
                    return fail("chat from a non-member");
                }
                self.expected_next_id += 1;
            }
            if let ServerMsg::HostKey { .. } = &delivery.msg {
                if delivery.to != Recipients::Only(self.room.host().unwrap_or(PeerId(u64::MAX))) {
                    return fail("a host key sent to someone who is not the host");
                }
            }
            if let ServerMsg::RemovedList { .. } = &delivery.msg {
                let Recipients::Only(to) = delivery.to else {
                    return fail("the removed list broadcast");
                };
                if !peers.iter().any(|p| p.id == to && p.role.moderates()) {
                    return fail("the removed list sent to someone who is not a host");
                }
            }
            if let ServerMsg::Signal { .. } = &delivery.msg {
                let Recipients::Only(to) = delivery.to else {
                    return fail("a signal broadcast instead of addressed");
                };
                if !peers.iter().any(|p| p.id == to && p.in_call) {
                    return fail("a signal to someone outside the call");
                }
            }
        }
        Ok(())
    }
}

impl Simulation {
    /// Applies the deliveries to each connected member's view of who is in the room, as the
    /// transport would deliver them (not to members away or still waiting for `joined`), and
    /// checks that nobody hears of an arrival twice and that, once arrivals are announced,
    /// every view matches the room.
    fn follow_rosters(&mut self, deliveries: &[super::Delivery]) -> Result<(), String> {
        let peers = self.room.peers();
        let connected: Vec<PeerId> = peers
            .iter()
            .filter(|p| !p.away && !self.room.is_awaiting_history(p.id))
            .map(|p| p.id)
            .collect();
        self.rosters.retain(|peer, _| connected.contains(peer));
        for delivery in deliveries {
            if let ServerMsg::Joined { you, peers, .. } = &delivery.msg {
                self.rosters
                    .insert(*you, peers.iter().map(|p| p.id).collect());
                continue;
            }
            for &member in &connected {
                if !delivery.to.includes(member) {
                    continue;
                }
                let Some(roster) = self.rosters.get_mut(&member) else {
                    continue;
                };
                match &delivery.msg {
                    ServerMsg::PeersJoined { peers } => {
                        for peer in peers {
                            if roster.contains(&peer.id) {
                                return Err(format!(
                                    "{member:?} heard twice that {:?} arrived",
                                    peer.id
                                ));
                            }
                            roster.push(peer.id);
                        }
                    }
                    ServerMsg::PeerLeft { peer, .. } => roster.retain(|p| p != peer),
                    _ => {}
                }
            }
        }
        // Joins and refused requests may leave arrivals pending until their announcement.
        if self.room.has_unannounced_arrivals() {
            return Ok(());
        }
        let mut everyone: Vec<PeerId> = peers.iter().map(|p| p.id).collect();
        everyone.sort_unstable();
        for (member, roster) in &self.rosters {
            let mut seen = roster.clone();
            seen.sort_unstable();
            if seen != everyone {
                return Err(format!(
                    "{member:?} sees {seen:?}, the room has {everyone:?}"
                ));
            }
        }
        Ok(())
    }
}

/// One message of any size, or several that fit in `budget` bytes of JSON together.
fn within_replay_budget(entries: &[ChatEntry], budget: usize) -> bool {
    let bytes: usize = entries
        .iter()
        .map(|e| serde_json::to_string(e).map_or(0, |json| json.len() + 1))
        .sum();
    entries.len() <= 1 || bytes <= budget
}

impl Default for Simulation {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        let peer = 0u8..7;
        let name = prop_oneof![
            Just("Ann".to_string()),
            Just("ann".to_string()),
            Just("Bob".to_string()),
            Just("".to_string()),
            Just("  Cat  ".to_string()),
            "[a-zA-Z ]{0,10}",
        ];
        let text = prop_oneof![Just(String::new()), "[a-z ]{0,20}"];
        prop_oneof![
            (
                peer.clone(),
                name,
                proptest::option::of(0u8..7),
                proptest::option::of(0u64..20)
            )
                .prop_map(|(peer, name, resume_of, last_seen)| Op::Join {
                    peer,
                    name,
                    resume_of,
                    last_seen
                }),
            peer.clone().prop_map(|peer| Op::Leave { peer }),
            peer.clone().prop_map(|peer| Op::Disconnect { peer }),
            (peer.clone(), text).prop_map(|(peer, text)| Op::Chat { peer, text }),
            (peer.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(peer, mic, camera)| Op::JoinCall { peer, mic, camera }),
            peer.clone().prop_map(|peer| Op::LeaveCall { peer }),
            (peer.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(peer, mic, camera)| Op::Media { peer, mic, camera }),
            (peer.clone(), peer.clone()).prop_map(|(from, to)| Op::Signal { from, to }),
            (peer.clone(), any::<bool>()).prop_map(|(peer, raised)| Op::Hand { peer, raised }),
            (
                peer.clone(),
                prop_oneof![Just("👍".to_string()), Just("x".to_string())]
            )
                .prop_map(|(peer, emoji)| Op::React { peer, emoji }),
            (0u32..40_000).prop_map(|ms| Op::Wait { ms }),
            Just(Op::Expire),
            Just(Op::LoadHistory),
            (peer, 0u64..20).prop_map(|(peer, before)| Op::LoadOlder { peer, before }),
            Just(Op::Announce),
            (0u8..7).prop_map(|peer| Op::MediaOffer { peer }),
            (0u8..7, 0u8..7, any::<u8>()).prop_map(|(peer, target, action)| Op::Host {
                peer,
                target,
                action
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_sequence_keeps_the_room_consistent(ops in proptest::collection::vec(op(), 1..80)) {
            let mut simulation = Simulation::new();
            for op in &ops {
                if let Err(broken) = simulation.apply(op) {
                    prop_assert!(false, "{}", broken);
                }
            }
        }
    }

    #[test]
    fn the_driver_notices_a_broken_invariant() {
        // A sanity check of the checker itself: a chat id out of sequence is caught.
        let mut simulation = Simulation::new();
        simulation.expected_next_id = 7;
        let ops = [
            Op::Join {
                peer: 1,
                name: "Ann".into(),
                resume_of: None,
                last_seen: None,
            },
            Op::Chat {
                peer: 1,
                text: "hi".into(),
            },
        ];
        simulation.apply(&ops[0]).unwrap();
        assert!(simulation.apply(&ops[1]).unwrap_err().contains("chat ids"));
    }
}
