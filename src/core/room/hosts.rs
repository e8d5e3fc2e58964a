//! Hosts and who gets in: the room's roles, host actions (mute, remove, roles, rules, the end
//! of the meeting), who may enter, and who becomes host when the host leaves.
//!
//! Every rule is the server's: a page only shows what these functions allow. A member may act
//! only on members of a lower role, so a co-host cannot mute or remove the host or another
//! co-host, and only the host changes roles.

use std::net::IpAddr;

use super::{JoinRequest, Joined, Member, Room};
use crate::core::{Delivery, MediaEffect, Now, Outcome, Recipients, Refusal};
use crate::protocol::{
    CallMode, Dismissal, ErrorCode, LeaveReason, MediaState, MeetingRules, Moderation, NamedPeer,
    PeerId, Role, ServerMsg, TrackSource,
};

/// People who may wait to be let in at once; past this a newcomer hears the room is full.
pub const MAX_WAITING: usize = 50;

/// Removed people a room remembers; the oldest is forgotten past this (a host removing more
/// than this many people from one meeting has a bigger problem than the list).
pub const MAX_REMOVED: usize = 100;

/// Someone a host removed, and what bars them from coming back.
#[derive(Clone, Debug)]
pub struct Removed {
    id: PeerId,
    name: String,
    browser: Option<String>,
    address: Option<IpAddr>,
}

impl Removed {
    pub(super) fn saved(&self) -> super::saved::SavedRemoved {
        super::saved::SavedRemoved {
            id: self.id,
            name: self.name.clone(),
            browser: self.browser.clone(),
            address: self.address,
        }
    }

    pub(super) fn restored(saved: super::saved::SavedRemoved) -> Self {
        Removed {
            id: saved.id,
            name: saved.name,
            browser: saved.browser,
            address: saved.address,
        }
    }

    /// Whether `request` comes from this person: the same browser, or, from a client that
    /// names no browser (not a page of ours), the same address.
    fn bars(&self, request: &JoinRequest) -> bool {
        match &request.browser {
            Some(browser) => self.browser.as_ref() == Some(browser),
            None => self.address.is_some() && self.address == request.address,
        }
    }
}

/// The source `after` turns on that `blocked` forbids, if any.
pub fn turned_on_blocked(
    before: MediaState,
    after: MediaState,
    blocked: MediaState,
) -> Option<TrackSource> {
    if after.mic && !before.mic && blocked.mic {
        Some(TrackSource::Microphone)
    } else if after.camera && !before.camera && blocked.camera {
        Some(TrackSource::Camera)
    } else if after.screen && !before.screen && blocked.screen {
        Some(TrackSource::Screen)
    } else {
        None
    }
}

/// `media` with the `blocked` sources off.
pub fn without(media: MediaState, blocked: MediaState) -> MediaState {
    MediaState {
        mic: media.mic && !blocked.mic,
        camera: media.camera && !blocked.camera,
        screen: media.screen && !blocked.screen,
    }
}

/// The source in the words of a refusal.
pub fn source_words(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen sharing",
    }
}

fn set_source(media: &mut MediaState, source: TrackSource, on: bool) {
    match source {
        TrackSource::Microphone => media.mic = on,
        TrackSource::Camera => media.camera = on,
        TrackSource::Screen => media.screen = on,
    }
}

fn source_on(media: MediaState, source: TrackSource) -> bool {
    media.has(source)
}

/// Tells `peer` they are out for good, and has their connection closed after it.
fn dismissed(peer: PeerId, reason: Dismissal, by: PeerId, by_name: String) -> Outcome {
    let mut outcome = Outcome::deliver(
        Recipients::Only(peer),
        ServerMsg::Dismissed {
            reason,
            by,
            by_name,
        },
    );
    outcome.dismiss.push((peer, reason));
    outcome
}

fn forbidden(message: &str) -> Refusal {
    Refusal::new(ErrorCode::Forbidden, message)
}

impl Room {
    /// Whether the room has no spare host key; the caller then supplies one (a fresh random
    /// string) before the next input, so the core needs no randomness of its own.
    pub fn needs_key(&self) -> bool {
        self.spare_key.is_none()
    }

    /// An empty key (no randomness at hand) is not taken: it would open the room to anyone.
    pub fn supply_key(&mut self, key: String) {
        if !key.is_empty() {
            self.spare_key = Some(key);
        }
    }

    pub fn rules(&self) -> MeetingRules {
        self.rules
    }

    /// The host, if the room has members.
    pub fn host(&self) -> Option<PeerId> {
        self.members
            .iter()
            .find(|m| m.role == Role::Host)
            .map(|m| m.id)
    }

    /// The host key moves to whoever becomes host; the one before it opens nothing any more.
    /// The spare random key, for another use than a host key (it is replaced before the
    /// next input).
    pub(super) fn take_spare_key(&mut self) -> Option<String> {
        self.spare_key.take()
    }

    fn mint_key(&mut self) -> Option<String> {
        self.host_key = self.spare_key.take();
        self.host_key.clone()
    }

    /// Whether the newcomer enters as host: with the room's host key or a host's token.
    pub(super) fn claims_host(&self, request: &JoinRequest) -> bool {
        let holds_key = request.host_key.as_ref().is_some_and(|k| !k.is_empty())
            && request.host_key == self.host_key;
        holds_key || request.granted_role == Some(Role::Host)
    }

    /// Whether a newcomer who does not enter as host may come in.
    pub(super) fn may_enter(&self, request: &JoinRequest) -> Result<(), Refusal> {
        self.removed_or_locked(request)?;
        self.password_gate(request)
    }

    /// Refuses a newcomer the hosts keep out: someone removed, or anyone while locked.
    pub(super) fn removed_or_locked(&self, request: &JoinRequest) -> Result<(), Refusal> {
        if self.removed.iter().any(|r| r.bars(request)) {
            return Err(Refusal::new(
                ErrorCode::Removed,
                "a host removed you from this meeting; you can come back only if a host lets you",
            ));
        }
        if self.rules.locked {
            return Err(Refusal::new(
                ErrorCode::Locked,
                "the host locked this meeting: nobody new can join right now",
            ));
        }
        Ok(())
    }

    /// Gives the newcomer `peer` its role: the host's if it holds the host key (the host
    /// before becomes a co-host) or if the room has no host (it is the first one in).
    pub(super) fn crown_newcomer(&mut self, peer: PeerId, claims_host: bool) -> Outcome {
        let mut outcome = Outcome::default();
        let current = self
            .members
            .iter()
            .position(|m| m.role == Role::Host && m.id != peer);
        match current {
            Some(_) if !claims_host => return outcome,
            Some(index) => {
                let demoted = &mut self.members[index];
                demoted.role = Role::Cohost;
                // Not to the newcomer: its `joined` comes first and lists the new roles.
                outcome.deliveries.push(Delivery {
                    to: Recipients::EveryoneBut(peer),
                    msg: ServerMsg::PeerUpdated {
                        peer: demoted.info(),
                    },
                });
            }
            // A breakout room's roles come from the main room only.
            None if !claims_host && self.breakout_number.is_some() => return outcome,
            None if !claims_host => {
                self.mint_key();
            }
            None => {}
        }
        if let Ok(member) = self.member_mut(peer) {
            member.role = Role::Host;
        }
        outcome
    }

    /// The host left for good: the earliest co-host becomes host, else the member here
    /// longest (connected ones first); everyone hears of it and the new host gets the key.
    pub(super) fn pass_host_on(&mut self) -> Outcome {
        let rank = |m: &Member| (m.role != Role::Cohost, m.away_since.is_some());
        let Some(index) = (0..self.members.len()).min_by_key(|&i| rank(&self.members[i])) else {
            self.host_key = None;
            return Outcome::default();
        };
        self.promote(index)
    }

    fn promote(&mut self, index: usize) -> Outcome {
        let key = self.mint_key();
        let member = &mut self.members[index];
        member.role = Role::Host;
        let peer = member.id;
        let mut outcome = Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated {
                peer: member.info(),
            },
        );
        if let Some(key) = key {
            outcome.deliveries.push(Delivery {
                to: Recipients::Only(peer),
                msg: ServerMsg::HostKey { key },
            });
        }
        outcome.then(self.lists_to(peer))
    }

    /// What a new host or co-host needs to see: who waits and who was removed (if anyone).
    fn lists_to(&self, peer: PeerId) -> Outcome {
        let mut outcome = Outcome::default();
        if !self.lobby.is_empty() {
            outcome.deliveries.push(Delivery {
                to: Recipients::Only(peer),
                msg: ServerMsg::WaitingList {
                    people: self.waiting_people(),
                },
            });
        }
        if !self.removed.is_empty() {
            outcome.deliveries.push(Delivery {
                to: Recipients::Only(peer),
                msg: self.removed_list(),
            });
        }
        outcome
    }

    fn removed_list(&self) -> ServerMsg {
        ServerMsg::RemovedList {
            people: self.removed_people(),
        }
    }

    pub(super) fn removed_people(&self) -> Vec<NamedPeer> {
        self.removed
            .iter()
            .map(|r| NamedPeer {
                id: r.id,
                name: r.name.clone(),
            })
            .collect()
    }

    pub(super) fn waiting_people(&self) -> Vec<NamedPeer> {
        self.lobby
            .iter()
            .map(|w| NamedPeer {
                id: w.id,
                name: w.name.clone(),
            })
            .collect()
    }

    /// Whether `peer` waits to be let in.
    pub fn is_waiting(&self, peer: PeerId) -> bool {
        self.lobby.iter().any(|w| w.id == peer)
    }

    /// `message` to every host and co-host, one delivery each.
    fn to_moderators(&self, message: ServerMsg) -> Outcome {
        let deliveries = self
            .members
            .iter()
            .filter(|m| m.role.moderates())
            .map(|m| Delivery {
                to: Recipients::Only(m.id),
                msg: message.clone(),
            })
            .collect();
        Outcome {
            deliveries,
            ..Outcome::default()
        }
    }

    fn waiting_list_to_moderators(&self) -> Outcome {
        self.to_moderators(ServerMsg::WaitingList {
            people: self.waiting_people(),
        })
    }

    /// Puts a newcomer in the waiting room: they hear `waiting`, the hosts their name.
    pub(super) fn wait(&mut self, newcomer: Member) -> Result<Joined, Refusal> {
        if self.lobby.len() >= MAX_WAITING {
            return Err(Refusal::new(
                ErrorCode::RoomFull,
                format!("{MAX_WAITING} people are already waiting to be let in; try again later"),
            ));
        }
        let peer = newcomer.id;
        self.lobby.push(newcomer);
        let outcome = Outcome::deliver(Recipients::Only(peer), ServerMsg::Waiting)
            .then(self.waiting_list_to_moderators());
        Ok(Joined {
            peer,
            resumed: false,
            waiting: true,
            outcome: self.finish(outcome),
        })
    }

    /// Takes `peer` out of the waiting room (they left or lost their connection), if there.
    pub(super) fn leave_lobby(&mut self, peer: PeerId) -> Option<Outcome> {
        let index = self.lobby.iter().position(|w| w.id == peer)?;
        self.lobby.remove(index);
        Some(self.waiting_list_to_moderators())
    }

    /// Sends everyone waiting away for good, saying why.
    pub(super) fn dismiss_lobby(
        &mut self,
        reason: Dismissal,
        by: PeerId,
        by_name: String,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        for waiter in std::mem::take(&mut self.lobby) {
            outcome = outcome.then(dismissed(waiter.id, reason, by, by_name.clone()));
        }
        if !outcome.dismiss.is_empty() {
            outcome = outcome.then(self.waiting_list_to_moderators());
        }
        outcome
    }

    /// Lets the person waiting at `index` in: they become a member and get `joined`.
    fn let_in(&mut self, index: usize, now: Now) -> Result<Outcome, Refusal> {
        if self.members.len() >= self.limits.max_members {
            return Err(Refusal::new(
                ErrorCode::RoomFull,
                format!("the room is full ({} people)", self.limits.max_members),
            ));
        }
        let member = self.lobby.remove(index);
        let peer = member.id;
        self.members.push(member);
        self.unannounced.push(peer);
        let greeting = self.greet(peer, None, false);
        Ok(greeting.then(self.announce_if_due(now.mono)))
    }

    /// Where `peer` stands in the waiting room's line.
    fn waiting_index(&self, peer: PeerId) -> Result<usize, Refusal> {
        self.lobby
            .iter()
            .position(|w| w.id == peer)
            .ok_or_else(|| Refusal::new(ErrorCode::UnknownPeer, "nobody waiting has that id"))
    }

    pub(super) fn admit(
        &mut self,
        actor: PeerId,
        peer: PeerId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        let index = self.waiting_index(peer)?;
        let outcome = self.let_in(index, now)?;
        Ok(outcome.then(self.waiting_list_to_moderators()))
    }

    pub(super) fn admit_all(&mut self, actor: PeerId, now: Now) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        Ok(self.let_everyone_in(now))
    }

    /// Lets in everyone waiting, as long as the room has places.
    fn let_everyone_in(&mut self, now: Now) -> Outcome {
        let mut outcome = Outcome::default();
        while !self.lobby.is_empty() {
            match self.let_in(0, now) {
                Ok(greeted) => outcome = outcome.then(greeted),
                Err(_) => break,
            }
        }
        outcome.then(self.waiting_list_to_moderators())
    }

    pub(super) fn deny(
        &mut self,
        actor: PeerId,
        peer: PeerId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        let index = self.waiting_index(peer)?;
        self.lobby.remove(index);
        let outcome = dismissed(peer, Dismissal::Denied, actor, self.name_of(actor));
        Ok(outcome.then(self.waiting_list_to_moderators()))
    }

    /// The removed list, to every host and co-host: it changed.
    fn removed_list_to_moderators(&self) -> Outcome {
        self.to_moderators(self.removed_list())
    }

    /// The sender's role, if it may use host actions; every host action, allowed or not,
    /// takes from the sender's budget, so refused ones cannot flood either.
    pub(super) fn moderator(&mut self, peer: PeerId, now: Now) -> Result<Role, Refusal> {
        let member = self.member_mut(peer)?;
        if !member.host_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many host actions; slow down",
            ));
        }
        if !member.role.moderates() {
            return Err(forbidden("only the host or a co-host can do that"));
        }
        Ok(member.role)
    }

    /// The index of the member `actor` (of `role`) wants to act on.
    fn target(&self, actor: PeerId, role: Role, target: PeerId) -> Result<usize, Refusal> {
        if actor == target {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                "that is you: use your own controls",
            ));
        }
        let index = self
            .members
            .iter()
            .position(|m| m.id == target)
            .ok_or_else(|| {
                Refusal::new(ErrorCode::UnknownPeer, "nobody in this room has that id")
            })?;
        if self.members[index].role >= role {
            return Err(forbidden(
                "you cannot do that to the host or to someone of your own role",
            ));
        }
        Ok(index)
    }

    pub(super) fn name_of(&self, peer: PeerId) -> String {
        self.members
            .iter()
            .find(|m| m.id == peer)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    /// Turns off one source of the member at `index` and bars it from coming back on under
    /// `only_hosts_unmute`; tells them who did it, and everyone the new state.
    /// What the forwarding unit must drop of member `index`'s media: what a host turned off
    /// and the server has not seen them turn on again with leave. Nothing outside a call
    /// through the server.
    pub(super) fn withhold(&self, index: usize) -> Option<MediaEffect> {
        let member = self.members.get(index)?;
        if self.call_mode != CallMode::Sfu || !member.in_call {
            return None;
        }
        let (blocked, media) = (member.blocked, member.media);
        Some(MediaEffect::Withhold {
            peer: member.id,
            sources: MediaState {
                mic: blocked.mic && !media.mic,
                camera: blocked.camera && !media.camera,
                screen: blocked.screen && !media.screen,
            },
        })
    }

    /// [`Room::withhold`] for `peer`, if a host ever turned something of theirs off.
    pub(super) fn withhold_if_blocked(&self, peer: PeerId) -> Option<MediaEffect> {
        let index = self.members.iter().position(|m| m.id == peer)?;
        if self.members[index].blocked.is_off() {
            return None;
        }
        self.withhold(index)
    }

    fn turn_off(&mut self, index: usize, source: TrackSource, by: PeerId) -> Outcome {
        let member = &mut self.members[index];
        set_source(&mut member.blocked, source, true);
        let mut outcome = Outcome::default();
        if member.in_call && source_on(member.media, source) {
            set_source(&mut member.media, source, false);
            outcome.deliveries.push(Delivery {
                to: Recipients::Everyone,
                msg: ServerMsg::PeerUpdated {
                    peer: member.info(),
                },
            });
        }
        outcome.deliveries.push(Delivery {
            to: Recipients::Only(member.id),
            msg: ServerMsg::Moderated {
                by,
                action: Moderation::Muted { source },
            },
        });
        outcome.media.extend(self.withhold(index));
        outcome
    }

    pub(super) fn mute(
        &mut self,
        actor: PeerId,
        target: PeerId,
        source: TrackSource,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let role = self.moderator(actor, now)?;
        let index = self.target(actor, role, target)?;
        Ok(self.turn_off(index, source, actor))
    }

    pub(super) fn mute_all(&mut self, actor: PeerId, now: Now) -> Result<Outcome, Refusal> {
        let role = self.moderator(actor, now)?;
        let mut outcome = Outcome::default();
        for index in 0..self.members.len() {
            let member = &self.members[index];
            if member.id != actor && member.role < role {
                outcome = outcome.then(self.turn_off(index, TrackSource::Microphone, actor));
            }
        }
        Ok(outcome)
    }

    pub(super) fn allow_unmute(
        &mut self,
        actor: PeerId,
        target: PeerId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let role = self.moderator(actor, now)?;
        let index = self.target(actor, role, target)?;
        self.members[index].blocked = MediaState::default();
        let mut outcome = Outcome::deliver(
            Recipients::Only(target),
            ServerMsg::Moderated {
                by: actor,
                action: Moderation::UnmuteAllowed,
            },
        );
        outcome.media.extend(self.withhold(index));
        Ok(outcome)
    }

    pub(super) fn remove(
        &mut self,
        actor: PeerId,
        target: PeerId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let role = self.moderator(actor, now)?;
        let index = self.target(actor, role, target)?;
        let gone = &self.members[index];
        if self.removed.len() >= MAX_REMOVED {
            self.removed.pop_front();
        }
        self.removed.push_back(Removed {
            id: gone.id,
            name: gone.name.clone(),
            browser: gone.browser.clone(),
            address: gone.address,
        });
        let outcome = dismissed(target, Dismissal::Removed, actor, self.name_of(actor));
        let left = self.leave(target, LeaveReason::Removed);
        Ok(outcome.then(left).then(self.removed_list_to_moderators()))
    }

    pub(super) fn allow_back(
        &mut self,
        actor: PeerId,
        former: PeerId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        let index = self
            .removed
            .iter()
            .position(|r| r.id == former)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::UnknownPeer,
                    "nobody removed from this meeting has that id",
                )
            })?;
        self.removed.remove(index);
        Ok(self.removed_list_to_moderators())
    }

    pub(super) fn set_rules(
        &mut self,
        actor: PeerId,
        rules: MeetingRules,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        // Only `set_password` changes the password.
        let rules = MeetingRules {
            password: self.rules.password,
            ..rules
        };
        if rules == self.rules {
            return Ok(Outcome::default());
        }
        if let Some(spotlight) = rules.spotlight {
            let in_call = self.members.iter().any(|m| m.id == spotlight && m.in_call);
            if !in_call {
                return Err(Refusal::new(
                    ErrorCode::UnknownPeer,
                    "only someone in the call can be in the spotlight",
                ));
            }
        }
        let mut freed = Vec::new();
        if !rules.only_hosts_unmute {
            // Otherwise turning the rule on again later would bring back old bars.
            for member in &mut self.members {
                member.blocked = MediaState::default();
            }
            freed = (0..self.members.len())
                .filter_map(|index| self.withhold(index))
                .collect();
        }
        let turned_away = if rules.locked && !self.rules.locked {
            self.dismiss_lobby(Dismissal::Locked, actor, self.name_of(actor))
        } else {
            Outcome::default()
        };
        let waiting_room_closed = self.rules.waiting_room && !rules.waiting_room;
        self.rules = rules;
        let told = Outcome::deliver(Recipients::Everyone, ServerMsg::Rules { rules });
        // Turning the waiting room off lets in whoever waits, as people expect.
        let let_in = if waiting_room_closed && !rules.locked {
            self.let_everyone_in(now)
        } else {
            Outcome::default()
        };
        // The people let in hear `joined` first: `rules` reaches them as members already.
        let mut outcome = turned_away.then(let_in).then(told);
        outcome.media.extend(freed);
        Ok(outcome)
    }

    pub(super) fn set_role(
        &mut self,
        actor: PeerId,
        target: PeerId,
        role: Role,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        if self.moderator(actor, now)? != Role::Host {
            return Err(forbidden("only the host can give or take roles"));
        }
        let index = self.target(actor, Role::Host, target)?;
        if self.members[index].role == role {
            return Ok(Outcome::default());
        }
        if role != Role::Host {
            let member = &mut self.members[index];
            member.role = role;
            let outcome = Outcome::deliver(
                Recipients::Everyone,
                ServerMsg::PeerUpdated {
                    peer: member.info(),
                },
            );
            return Ok(if role.moderates() {
                outcome.then(self.lists_to(target))
            } else {
                outcome
            });
        }
        let me = self
            .members
            .iter_mut()
            .find(|m| m.id == actor)
            .expect("the host is a member");
        me.role = Role::Cohost;
        let stepped_down = Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated { peer: me.info() },
        );
        Ok(stepped_down.then(self.promote(index)))
    }

    /// Sends everyone away for good: the room empties (and closes), and nobody hears of the
    /// others leaving one by one.
    pub(super) fn end_meeting(&mut self, actor: PeerId, now: Now) -> Result<Outcome, Refusal> {
        self.moderator(actor, now)?;
        let by_name = self.name_of(actor);
        let mut outcome = Outcome::default();
        for member in std::mem::take(&mut self.members) {
            outcome = outcome.then(dismissed(
                member.id,
                Dismissal::MeetingEnded,
                actor,
                by_name.clone(),
            ));
            if member.in_call && self.call_mode == CallMode::Sfu {
                outcome.media.push(MediaEffect::Drop { peer: member.id });
            }
        }
        self.away_members = 0;
        self.unannounced.clear();
        self.failed_links.clear();
        self.host_key = None;
        Ok(outcome.then(self.dismiss_lobby(Dismissal::MeetingEnded, actor, by_name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::names::RoomSlug;
    use crate::core::room::RoomLimits;
    use crate::core::Now;

    const T0: Now = Now::at(1_000);

    fn room() -> Room {
        let mut room = Room::new(
            RoomSlug::parse("hosts").unwrap(),
            RoomLimits::default(),
            Vec::new(),
        );
        room.supply_key("key-1".into());
        room
    }

    fn enter(room: &mut Room, id: u64, name: &str, browser: &str) -> Outcome {
        let request = JoinRequest {
            name: name.into(),
            browser: Some(browser.into()),
            ..JoinRequest::default()
        };
        let joined = room
            .join(PeerId(id), request, format!("token-{id}"), T0)
            .unwrap();
        room.announce_arrivals();
        joined.outcome
    }

    fn role_of(room: &Room, id: u64) -> Role {
        room.members
            .iter()
            .find(|m| m.id == PeerId(id))
            .map(|m| m.role)
            .unwrap()
    }

    #[test]
    fn in_a_call_through_the_server_what_a_host_turned_off_is_withheld_until_allowed() {
        let mut room = Room::new(
            RoomSlug::parse("sfu").unwrap(),
            RoomLimits {
                media: crate::core::room::MediaPolicy::Sfu,
                ..RoomLimits::default()
            },
            Vec::new(),
        );
        room.supply_key("key-1".into());
        enter(&mut room, 1, "Ann", "a");
        enter(&mut room, 2, "Bob", "b");
        let on = MediaState {
            mic: true,
            camera: true,
            screen: false,
        };
        room.join_call(PeerId(2), on, T0).unwrap();
        let withheld = |outcome: &Outcome| {
            outcome.media.iter().find_map(|effect| match effect {
                MediaEffect::Withhold { peer, sources } if *peer == PeerId(2) => Some(*sources),
                _ => None,
            })
        };
        let muted = room
            .mute(PeerId(1), PeerId(2), TrackSource::Microphone, T0)
            .unwrap();
        assert_eq!(
            withheld(&muted),
            Some(MediaState {
                mic: true,
                ..MediaState::default()
            })
        );
        // A new connection to the forwarding unit starts knowing it.
        let offer = room
            .request(
                PeerId(2),
                crate::protocol::ClientMsg::MediaOffer {
                    sdp: "v=0".into(),
                    more: false,
                },
                T0,
            )
            .unwrap();
        assert!(withheld(&offer).is_some_and(|s| s.mic));
        let allowed = room.allow_unmute(PeerId(1), PeerId(2), T0).unwrap();
        assert_eq!(withheld(&allowed), Some(MediaState::default()));
    }

    #[test]
    fn the_first_in_is_host_and_the_role_passes_to_the_earliest_connected_co_host() {
        let mut room = room();
        enter(&mut room, 1, "Ann", "a");
        enter(&mut room, 2, "Bob", "b");
        enter(&mut room, 3, "Cy", "c");
        enter(&mut room, 4, "Dee", "d");
        assert_eq!(room.host(), Some(PeerId(1)));
        for peer in [3, 4] {
            room.set_role(PeerId(1), PeerId(peer), Role::Cohost, T0)
                .unwrap();
        }
        // Cy, the earlier co-host, is away: Dee, connected, comes first.
        room.disconnect(PeerId(3), T0);
        room.supply_key("key-2".into());
        let out = room.leave(PeerId(1), LeaveReason::Left);
        assert_eq!(room.host(), Some(PeerId(4)));
        assert!(out.deliveries.contains(&Delivery {
            to: Recipients::Only(PeerId(4)),
            msg: ServerMsg::HostKey {
                key: "key-2".into()
            },
        }));
        // Without co-hosts, the member here longest.
        room.set_role(PeerId(4), PeerId(3), Role::Member, T0)
            .unwrap();
        room.leave(PeerId(4), LeaveReason::Left);
        assert_eq!(room.host(), Some(PeerId(2)));
        // The last one out takes the key with them: an empty room opens anew.
        room.leave(PeerId(2), LeaveReason::Left);
        room.leave(PeerId(3), LeaveReason::Left);
        assert!(room.is_empty());
        assert_eq!(room.host_key, None);
    }

    #[test]
    fn handing_over_makes_the_old_host_a_co_host_and_moves_the_key() {
        let mut room = room();
        enter(&mut room, 1, "Ann", "a");
        enter(&mut room, 2, "Bob", "b");
        room.supply_key("key-2".into());
        let out = room.set_role(PeerId(1), PeerId(2), Role::Host, T0).unwrap();
        assert_eq!(role_of(&room, 1), Role::Cohost);
        assert_eq!(role_of(&room, 2), Role::Host);
        assert_eq!(room.host_key.as_deref(), Some("key-2"));
        assert!(out
            .deliveries
            .iter()
            .any(|d| d.to == Recipients::Only(PeerId(2))
                && matches!(d.msg, ServerMsg::HostKey { .. })));
        // Now a co-host, Ann can no longer give roles.
        let refused = room
            .set_role(PeerId(1), PeerId(2), Role::Member, T0)
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
    }

    #[test]
    fn mute_all_spares_the_sender_and_those_of_their_role_or_higher() {
        let mut room = room();
        let on = MediaState {
            mic: true,
            camera: true,
            screen: false,
        };
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cy"), (4, "Dee")] {
            enter(&mut room, id, name, name);
            room.join_call(PeerId(id), on, T0).unwrap();
        }
        room.set_role(PeerId(1), PeerId(2), Role::Cohost, T0)
            .unwrap();
        room.set_role(PeerId(1), PeerId(3), Role::Cohost, T0)
            .unwrap();
        let out = room.mute_all(PeerId(2), T0).unwrap();
        let mic = |id: u64| {
            room.members
                .iter()
                .find(|m| m.id == PeerId(id))
                .unwrap()
                .media
                .mic
        };
        assert!(mic(1) && mic(2) && mic(3));
        assert!(!mic(4));
        let told: Vec<_> = out
            .deliveries
            .iter()
            .filter(|d| matches!(d.msg, ServerMsg::Moderated { .. }))
            .map(|d| d.to.clone())
            .collect();
        assert_eq!(told, [Recipients::Only(PeerId(4))]);
    }

    #[test]
    fn ending_the_meeting_dismisses_everyone_and_empties_the_room() {
        let mut room = room();
        enter(&mut room, 1, "Ann", "a");
        enter(&mut room, 2, "Bob", "b");
        room.disconnect(PeerId(2), T0);
        let refused = room.end_meeting(PeerId(2), T0).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        let out = room.end_meeting(PeerId(1), T0).unwrap();
        assert_eq!(
            out.dismiss,
            [
                (PeerId(1), Dismissal::MeetingEnded),
                (PeerId(2), Dismissal::MeetingEnded)
            ]
        );
        assert!(out
            .deliveries
            .iter()
            .all(|d| matches!(d.msg, ServerMsg::Dismissed { .. })));
        assert!(room.is_empty());
        assert_eq!(room.next_deadline(), None);
    }

    #[test]
    fn a_locked_room_still_lets_its_members_resume() {
        let mut room = room();
        enter(&mut room, 1, "Ann", "a");
        enter(&mut room, 2, "Bob", "b");
        room.set_rules(
            PeerId(1),
            MeetingRules {
                locked: true,
                only_hosts_unmute: false,
                waiting_room: false,
                password: false,
                spotlight: None,
            },
            T0,
        )
        .unwrap();
        room.disconnect(PeerId(2), T0);
        let back = JoinRequest {
            name: "Bob".into(),
            resume: Some("token-2".into()),
            ..JoinRequest::default()
        };
        assert!(room.join(PeerId(9), back, "token-9".into(), T0).is_ok());
        let newcomer = JoinRequest {
            name: "Cy".into(),
            ..JoinRequest::default()
        };
        let refused = room
            .join(PeerId(10), newcomer, "token-10".into(), T0)
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Locked);
    }
}
