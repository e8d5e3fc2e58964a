//! One room's state machine: who is in it, what was said, and who must hear about each change.
//! Every input returns an [`Outcome`]: the deliveries, what to store, what history to read
//! and when the room next needs the time.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use super::names::{display_name, name_key, RoomSlug, MAX_ROOM_CHARS};
use super::rate::{RateLimit, SlowLimit, TokenBucket};
use super::{
    Delivery, HistoryNeed, HistoryRange, MediaEffect, MonoMillis, Now, Outcome, Recipients, Refusal,
};
use crate::protocol::{
    CallMode, ChatEntry, ClientMsg, Dismissal, ErrorCode, IceServer, LeaveReason, Limits,
    LinkFailure, MediaState, MeetingRules, MessageId, PeerId, PeerInfo, Role, ServerMsg, Signal,
    TileView, TrackSource, MAX_SDP_BYTES, MAX_TILE_PIXELS, MAX_VIEW_TILES, REACTIONS,
};

mod breakouts;
mod hosts;
mod password;
mod saved;

pub use breakouts::{BreakoutMove, BreakoutWork};
pub use saved::{SavedMember, SavedRemoved, SavedRoom};

use hosts::Removed;
pub use password::{PasswordToHash, MAX_PASSWORD_BYTES, MAX_PASSWORD_CHARS};

/// How calls carry media, as the operator chose (`--media`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaPolicy {
    /// Always browser to browser; calls hold at most `max_mesh_members`.
    Mesh,
    /// Always through the server's forwarding unit.
    Sfu,
    /// Browser to browser up to `mesh_max` members, through the server beyond.
    Auto,
}

/// The limits one room enforces; the server fills them from its flags, whose defaults come
/// from [`RoomLimits::DEFAULT`] (and so do the UI's and the load tool's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    pub max_members: usize,
    /// Chat messages kept in memory for late joiners.
    pub history_len: usize,
    pub max_name_chars: usize,
    pub max_chat_chars: usize,
    /// Members of a call through the server at most.
    pub max_call_members: usize,
    /// Members of a browser-to-browser call at most (`MediaPolicy::Mesh`): every member
    /// sends to every other, so each one's upload grows with this number.
    pub max_mesh_members: usize,
    pub media: MediaPolicy,
    /// Video tiles a page of the stage shows (`--page-size`); told to browsers in `hello`.
    pub page_size: usize,
    /// Under `MediaPolicy::Auto`, the largest call that stays browser to browser.
    pub mesh_max: usize,
    /// Chat messages per member.
    pub chat: RateLimit,
    /// Signaling messages (offers, answers, ICE candidates) per member; generous, since one
    /// negotiation trickles a dozen candidates.
    pub signal: RateLimit,
    /// Reactions per member.
    pub reaction: RateLimit,
    /// State changes per member (hand, media, joining or leaving the call): each is
    /// broadcast to the whole room, so a flood of them is a flood for everyone.
    pub state: RateLimit,
    /// Pages of older history per member: each is a storage read.
    pub history: RateLimit,
    /// Host actions per member (mute, remove, roles, rules): each may reach everyone.
    pub host: RateLimit,
    /// Password guesses per room (each is an Argon2 check; the server also limits them per
    /// client address).
    pub password_guesses: SlowLimit,
    /// From a host closing the breakout rooms (or their timer running out) until everyone is
    /// back in the main room.
    pub breakout_countdown_ms: u64,
    /// How long a member whose connection dropped keeps their place.
    pub resume_grace_ms: u64,
    /// The most chat history, in bytes of JSON, one `joined` or `history_page` carries; the
    /// client pages back for the rest. Bounds what one 90-byte `join` can make the server
    /// build and hold for a client that may never read it.
    pub max_replay_bytes: usize,
    /// Arrivals are announced at once, then at most once per this many ms: a lone join is
    /// heard of immediately, and a crowd joining together (everyone reconnecting after a
    /// restart) is announced in a few `peers_joined` instead of one per newcomer per member.
    pub announce_interval_ms: u64,
}

/// The longest browser id or host key a `join` may carry; ours are 32 hex digits.
pub const MAX_KEY_BYTES: usize = 64;

/// Messages read from storage for one replay or page at most; the byte budget usually stops
/// earlier.
pub const HISTORY_READ_LIMIT: usize = 200;

/// What one message counts against `max_replay_bytes`: its JSON and a separator, counted
/// without building the string.
pub fn replay_size(entry: &ChatEntry) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, entry) {
        Ok(()) => counter.0 + 1,
        Err(_) => usize::MAX,
    }
}

impl RoomLimits {
    /// The one place the defaults are written down.
    pub const DEFAULT: RoomLimits = RoomLimits {
        max_members: 100,
        history_len: 100,
        max_name_chars: 32,
        max_chat_chars: 2000,
        max_call_members: 50,
        max_mesh_members: 6,
        media: MediaPolicy::Auto,
        page_size: 9,
        mesh_max: 2,
        chat: RateLimit::new(10, 5),
        signal: RateLimit::new(200, 50),
        reaction: RateLimit::new(5, 1),
        state: RateLimit::new(20, 10),
        history: RateLimit::new(5, 2),
        host: RateLimit::new(20, 5),
        password_guesses: SlowLimit::new(20, 6),
        breakout_countdown_ms: 60_000,
        resume_grace_ms: 30_000,
        max_replay_bytes: 64 * 1024,
        announce_interval_ms: 100,
    };
}

impl RoomLimits {
    /// Largest WebSocket message a client may send by default; a transport limit, kept here
    /// so every default has one home.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024;

    /// The limits a client is told about in `hello`.
    pub const fn advertised(&self, max_frame_bytes: usize) -> Limits {
        Limits {
            max_frame_bytes,
            max_name_chars: self.max_name_chars,
            max_chat_chars: self.max_chat_chars,
            max_room_chars: MAX_ROOM_CHARS,
            max_call_members: self.call_cap(),
            page_size: self.page_size,
        }
    }

    /// The most members one call may hold under this policy.
    pub const fn call_cap(&self) -> usize {
        match self.media {
            MediaPolicy::Mesh if self.max_mesh_members < self.max_call_members => {
                self.max_mesh_members
            }
            _ => self.max_call_members,
        }
    }

    /// What a client assumes before the server's `hello` arrives.
    pub const DEFAULT_ADVERTISED: Limits =
        RoomLimits::DEFAULT.advertised(RoomLimits::DEFAULT_MAX_FRAME_BYTES);
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits::DEFAULT
    }
}

/// A member whose `joined` waits for stored history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingGreeting {
    after: MessageId,
    resumed: bool,
}

#[derive(Clone, Debug)]
struct Member {
    id: PeerId,
    name: String,
    /// `name` folded for comparison ([`name_key`]).
    name_key: String,
    chat_budget: TokenBucket,
    signal_budget: TokenBucket,
    reaction_budget: TokenBucket,
    state_budget: TokenBucket,
    history_budget: TokenBucket,
    host_budget: TokenBucket,
    role: Role,
    /// What a host turned off; under `only_hosts_unmute` the member cannot turn it on again
    /// until a host allows it.
    blocked: MediaState,
    /// The id the member's browser keeps; a removal bars it.
    browser: Option<String>,
    in_call: bool,
    media: MediaState,
    /// Proof of identity for resuming after a dropped connection; a new one on every resume.
    resume_token: String,
    /// Where the member's current connection comes from.
    address: Option<IpAddr>,
    /// When the connection dropped, if it did; the member is kept for the grace period.
    away_since: Option<MonoMillis>,
    /// The raised hand's place in line.
    hand: Option<u64>,
    /// The breakout room the member is in now (the main room keeps them meanwhile).
    breakout: Option<u8>,
    /// Their browser says it records the meeting.
    recording: bool,
    greeting: Option<PendingGreeting>,
    /// The parts of a session description received so far (`media_offer`/`media_answer`
    /// with `more`), at most `MAX_SDP_BYTES`.
    sdp_parts: String,
    /// The description in progress was refused: its remaining parts are dropped, up to its
    /// last, rather than taken for the start of another.
    sdp_refused: bool,
}

impl Member {
    fn info(&self) -> PeerInfo {
        PeerInfo {
            id: self.id,
            name: self.name.clone(),
            in_call: self.in_call,
            media: self.media,
            away: self.away_since.is_some(),
            hand: self.hand,
            role: self.role,
            breakout: self.breakout,
            recording: self.recording,
        }
    }
}

/// How a joining connection wants to enter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JoinRequest {
    pub name: String,
    /// A token from an earlier `joined`, to resume that identity.
    pub resume: Option<String>,
    /// The newest message the client already has.
    pub last_seen: Option<MessageId>,
    /// Where the connection comes from (as the server's limits count it): a resume token
    /// takes over a member who still looks connected only from the same address.
    pub address: Option<IpAddr>,
    /// The room's host key, to enter as host.
    pub host_key: Option<String>,
    /// The id the browser keeps (see [`ClientMsg::Join`]).
    pub browser: Option<String>,
    /// The meeting password as typed.
    pub password: Option<String>,
    /// The hash of the meeting's password that `password` was found to match, by the caller
    /// and off the room's task (see [`Room::password_to_check`]).
    pub password_matched: Option<String>,
    /// The role a signed token (or, for a breakout room, the main room) grants: `Host`
    /// enters as host, like the host key; `Cohost` as a co-host.
    pub granted_role: Option<Role>,
    /// Set when the request may only resume an earlier membership, with the refusal a fresh
    /// join gets (an expired token lets a member reconnect, not enter anew).
    pub resume_only: Option<Refusal>,
}

/// A successful join: who the connection now is, and what to do about it.
#[derive(Debug)]
pub struct Joined {
    pub peer: PeerId,
    pub resumed: bool,
    /// In the waiting room, not a member yet: the connection hears only `waiting`, then
    /// `joined` or `dismissed`.
    pub waiting: bool,
    pub outcome: Outcome,
}

/// A room: members in the order they joined and the most recent chat.
#[derive(Debug)]
pub struct Room {
    slug: RoomSlug,
    limits: RoomLimits,
    ice_servers: Vec<IceServer>,
    members: Vec<Member>,
    /// How many members are away, so a room where nobody is (nearly always) finds its next
    /// deadline without looking at every member on every request.
    away_members: usize,
    history: VecDeque<ChatEntry>,
    next_message_id: u64,
    next_hand: u64,
    /// Newcomers the others have not heard of yet, in join order, waiting for the next
    /// announcement (`announce_interval_ms` after the last one). Every input other than a
    /// join announces them first, so nobody hears of anything out of order.
    unannounced: Vec<PeerId>,
    /// How the call carries media now.
    call_mode: CallMode,
    /// A browser-to-browser link of this call could not be made, so under `--media auto`
    /// the call stays through the server until it empties.
    mesh_failed: bool,
    /// Pairs whose failed link was reported (lower id first), so the second side's report
    /// is not forwarded or counted again.
    failed_links: Vec<(PeerId, PeerId)>,
    /// When arrivals were last announced on time (not forced by another input).
    last_announcement: Option<MonoMillis>,
    /// What the current host holds to come back as host; a new one whenever the role moves.
    host_key: Option<String>,
    /// A fresh random key for the next host, supplied by the caller (the core has no
    /// randomness): see [`Room::supply_key`].
    spare_key: Option<String>,
    rules: MeetingRules,
    /// People removed by a host, oldest first, at most `MAX_REMOVED`.
    removed: VecDeque<Removed>,
    /// People waiting to be let in (`waiting_room`), in the order they came: members to be,
    /// who hear nothing of the room yet.
    lobby: Vec<Member>,
    /// The hash of the meeting's password (computed by the caller), if a host set one.
    password: Option<String>,
    /// Password guesses this room still allows.
    guesses: TokenBucket,
    /// The breakout rooms this (main) room opened, while open.
    round: Option<breakouts::Round>,
    /// In a breakout room: its number, and what the main room last said about the round.
    breakout_number: Option<u8>,
    relayed_breakouts: Option<crate::protocol::Breakouts>,
}

impl Room {
    pub fn new(slug: RoomSlug, limits: RoomLimits, ice_servers: Vec<IceServer>) -> Self {
        let call_mode = mode_for(limits.media, limits.mesh_max, 0);
        let guesses = TokenBucket::new(limits.password_guesses.as_rate(), MonoMillis::default());
        Room {
            slug,
            ice_servers,
            call_mode,
            mesh_failed: false,
            failed_links: Vec::new(),
            history: VecDeque::with_capacity(limits.history_len.min(1024)),
            limits,
            members: Vec::new(),
            away_members: 0,
            next_message_id: 1,
            next_hand: 1,
            unannounced: Vec::new(),
            last_announcement: None,
            host_key: None,
            spare_key: None,
            rules: MeetingRules::default(),
            removed: VecDeque::new(),
            lobby: Vec::new(),
            password: None,
            guesses,
            round: None,
            breakout_number: None,
            relayed_breakouts: None,
        }
    }

    /// Breakout room `number` of a meeting: a room of its own (chat, call), whose members
    /// come only from the main room and have only the roles they have there.
    pub fn new_breakout(
        slug: RoomSlug,
        limits: RoomLimits,
        ice_servers: Vec<IceServer>,
        number: u8,
        round: Option<crate::protocol::Breakouts>,
    ) -> Self {
        Room {
            breakout_number: Some(number),
            relayed_breakouts: round,
            ..Room::new(slug, limits, ice_servers)
        }
    }

    /// A room whose earlier messages were stored: `recent` (oldest first) is kept for late
    /// joiners and numbering continues after `last_id`, past `gap` unused ids. The gap is for
    /// restarts after a crash: messages delivered but not yet stored then took ids after
    /// `last_id`, which clients hold, so those ids must never name other messages.
    pub fn restore(&mut self, recent: Vec<ChatEntry>, last_id: Option<MessageId>, gap: u64) {
        let skip = recent.len().saturating_sub(self.limits.history_len);
        self.history = recent.into_iter().skip(skip).collect();
        let newest = self.history.back().map(|e| e.id.0);
        let last = last_id.map(|id| id.0).max(newest).unwrap_or(0);
        self.next_message_id = last.saturating_add(gap).saturating_add(1);
    }

    /// The id the next chat message will get.
    pub fn next_message_id(&self) -> MessageId {
        MessageId(self.next_message_id)
    }

    /// Kept messages after `last_seen`, or `None` when the kept window does not reach back
    /// that far (storage has the rest).
    fn history_after(&self, last_seen: Option<MessageId>) -> Option<Vec<ChatEntry>> {
        let Some(last_seen) = last_seen else {
            return Some(self.history.iter().cloned().collect());
        };
        let oldest_kept = self
            .history
            .front()
            .map_or(self.next_message_id, |e| e.id.0);
        let next_wanted = last_seen.0.saturating_add(1);
        let complete = next_wanted >= oldest_kept || next_wanted >= self.next_message_id;
        complete.then(|| {
            self.history
                .iter()
                .filter(|e| e.id > last_seen)
                .cloned()
                .collect()
        })
    }

    pub fn slug(&self) -> &RoomSlug {
        &self.slug
    }

    pub fn limits(&self) -> &RoomLimits {
        &self.limits
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

    /// Whether `request` carries the resume token of a member (who keeps their place).
    fn resumes_a_member(&self, request: &JoinRequest) -> bool {
        request
            .resume
            .as_deref()
            .filter(|t| !t.is_empty())
            .is_some_and(|token| self.members.iter().any(|m| m.resume_token == token))
    }

    pub fn member_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    pub fn peers(&self) -> Vec<PeerInfo> {
        self.members.iter().map(Member::info).collect()
    }

    pub fn call_size(&self) -> usize {
        self.members.iter().filter(|m| m.in_call).count()
    }

    fn member_mut(&mut self, peer: PeerId) -> Result<&mut Member, Refusal> {
        self.members
            .iter_mut()
            .find(|m| m.id == peer)
            .ok_or_else(|| Refusal::new(ErrorCode::NotJoined, "join a room first"))
    }

    /// The member, if they are in the call: only call members signal.
    fn call_member_mut(&mut self, peer: PeerId) -> Result<&mut Member, Refusal> {
        let member = self.member_mut(peer)?;
        if !member.in_call {
            return Err(Refusal::new(ErrorCode::NotInCall, "join the call first"));
        }
        Ok(member)
    }

    pub fn history(&self) -> impl Iterator<Item = &ChatEntry> {
        self.history.iter()
    }

    /// When the next announcement of arrivals is due, or the first away member's grace
    /// period runs out, whichever is sooner.
    pub fn next_deadline(&self) -> Option<MonoMillis> {
        let announcement = match (self.announcement_due(), self.breakout_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.away_members == 0 {
            return announcement;
        }
        let expiry = self
            .members
            .iter()
            .filter_map(|m| m.away_since)
            .min()
            .map(|since| since.plus(self.limits.resume_grace_ms));
        match (announcement, expiry) {
            (Some(a), Some(e)) => Some(a.min(e)),
            (a, e) => a.or(e),
        }
    }

    /// Whether some arrivals have not been announced yet.
    pub fn has_unannounced_arrivals(&self) -> bool {
        !self.unannounced.is_empty()
    }

    fn announcement_due(&self) -> Option<MonoMillis> {
        if self.unannounced.is_empty() {
            return None;
        }
        Some(self.last_announcement.map_or(MonoMillis(0), |last| {
            last.plus(self.limits.announce_interval_ms)
        }))
    }

    /// Announces pending arrivals if their time has come.
    fn announce_if_due(&mut self, now: MonoMillis) -> Outcome {
        match self.announcement_due() {
            Some(due) if due <= now => {
                self.last_announcement = Some(now);
                self.announce_pending()
            }
            _ => Outcome::default(),
        }
    }

    /// Stamps `outcome` with the room's current deadline.
    fn finish(&self, mut outcome: Outcome) -> Outcome {
        outcome.next_deadline = self.next_deadline();
        outcome
    }

    /// Adds `peer` to the room, or gives an earlier identity back to a returning connection.
    /// The newcomer gets the member list and history (after `last_seen`, if given); the others
    /// hear that someone arrived, or that the returning member is back.
    pub fn join(
        &mut self,
        peer: PeerId,
        request: JoinRequest,
        resume_token: String,
        now: Now,
    ) -> Result<Joined, Refusal> {
        if self.is_member(peer) || self.is_waiting(peer) {
            return Err(Refusal::new(
                ErrorCode::AlreadyJoined,
                "this connection is already in the room",
            ));
        }
        if let Some(token) = request.resume.as_deref().filter(|t| !t.is_empty()) {
            if let Some(index) = self.members.iter().position(|m| m.resume_token == token) {
                let member = &self.members[index];
                // A member who still looks connected is taken over only from the same
                // address (a reconnect the server has not noticed the need for yet): a token
                // copied elsewhere must not throw a live person out of their meeting.
                let live = member.away_since.is_none();
                if live && member.address != request.address {
                    return Err(Refusal::new(
                        ErrorCode::SessionInUse,
                        "you are still connected from another place; trying again once that connection is gone",
                    ));
                }
                let announced = self.announce_pending();
                let mut joined = self.resume(index, request, resume_token);
                joined.outcome = self.finish(announced.then(joined.outcome));
                return Ok(joined);
            }
        }
        if let Some(refusal) = request.resume_only.clone() {
            return Err(refusal);
        }
        if request
            .browser
            .as_ref()
            .is_some_and(|b| b.len() > MAX_KEY_BYTES)
            || request
                .host_key
                .as_ref()
                .is_some_and(|k| k.len() > MAX_KEY_BYTES)
        {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!("a browser id or host key is at most {MAX_KEY_BYTES} bytes"),
            ));
        }
        let claims_host = self.claims_host(&request);
        if !claims_host {
            self.may_enter(&request)?;
        }
        let name = display_name(&request.name, self.limits.max_name_chars)?;
        let key = name_key(&name);
        if self.members.iter().any(|m| m.name_key == key)
            || self.lobby.iter().any(|w| w.name_key == key)
        {
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
        let member = self.new_member(peer, name, key, &request, resume_token, now);
        if self.rules.waiting_room && !claims_host && !self.members.is_empty() {
            return self.wait(member);
        }
        self.members.push(member);
        self.unannounced.push(peer);
        // Before the greeting, so `joined` already names the newcomer's role.
        let crowned = self.crown_newcomer(peer, claims_host);
        let greeting = self.greet(peer, request.last_seen, false);
        let announced = self.announce_if_due(now.mono);
        Ok(Joined {
            peer,
            resumed: false,
            waiting: false,
            outcome: self.finish(crowned.then(greeting).then(announced)),
        })
    }

    /// A member as they enter, with full budgets and no role.
    fn new_member(
        &self,
        peer: PeerId,
        name: String,
        name_key: String,
        request: &JoinRequest,
        resume_token: String,
        now: Now,
    ) -> Member {
        let limits = &self.limits;
        Member {
            id: peer,
            name,
            name_key,
            chat_budget: TokenBucket::new(limits.chat, now.mono),
            signal_budget: TokenBucket::new(limits.signal, now.mono),
            reaction_budget: TokenBucket::new(limits.reaction, now.mono),
            state_budget: TokenBucket::new(limits.state, now.mono),
            history_budget: TokenBucket::new(limits.history, now.mono),
            host_budget: TokenBucket::new(limits.host, now.mono),
            role: match request.granted_role {
                Some(Role::Cohost) => Role::Cohost,
                _ => Role::Member,
            },
            blocked: MediaState::default(),
            browser: request.browser.clone(),
            in_call: false,
            media: MediaState::default(),
            resume_token,
            address: request.address,
            away_since: None,
            hand: None,
            breakout: None,
            recording: false,
            greeting: None,
            sdp_parts: String::new(),
            sdp_refused: false,
        }
    }

    /// Announces pending arrivals now, whatever the time; what any input but a join does
    /// first.
    #[cfg(any(test, feature = "simulate"))]
    pub fn announce_arrivals(&mut self) -> Outcome {
        let outcome = self.announce_pending();
        self.finish(outcome)
    }

    /// Tells everyone of the newcomers they have not heard of yet, in one message each: the
    /// members who were there before get all of them, each newcomer those who came after it
    /// (the earlier ones were in its `joined`).
    fn announce_pending(&mut self) -> Outcome {
        if self.unannounced.is_empty() {
            return Outcome::default();
        }
        let arrivals = std::mem::take(&mut self.unannounced);
        let infos: Vec<PeerInfo> = arrivals
            .iter()
            .filter_map(|&id| self.members.iter().find(|m| m.id == id))
            .map(Member::info)
            .collect();
        let mut deliveries = Vec::with_capacity(infos.len());
        if self.members.len() > infos.len() {
            deliveries.push(Delivery {
                to: match arrivals.as_slice() {
                    [only] => Recipients::EveryoneBut(*only),
                    _ => Recipients::EveryoneButAll(arrivals),
                },
                msg: ServerMsg::PeersJoined {
                    peers: infos.clone(),
                },
            });
        }
        for (index, newcomer) in infos.iter().enumerate() {
            let later = &infos[index + 1..];
            if !later.is_empty() {
                deliveries.push(Delivery {
                    to: Recipients::Only(newcomer.id),
                    msg: ServerMsg::PeersJoined {
                        peers: later.to_vec(),
                    },
                });
            }
        }
        Outcome {
            deliveries,
            ..Outcome::default()
        }
    }

    /// The `joined` message for `peer` now, or a request for the stored history it needs.
    fn greet(&mut self, peer: PeerId, last_seen: Option<MessageId>, resumed: bool) -> Outcome {
        let after = last_seen.unwrap_or(MessageId(0));
        if let Some(history) = self.history_after(last_seen) {
            let (history, more) = self.replay(history, after);
            return Outcome::deliver(
                Recipients::Only(peer),
                self.joined_msg(peer, history, more, resumed),
            );
        }
        if let Ok(member) = self.member_mut(peer) {
            member.greeting = Some(PendingGreeting { after, resumed });
        }
        Outcome {
            need_history: Some(HistoryNeed {
                peer,
                range: self.history_range(after, None),
            }),
            ..Outcome::default()
        }
    }

    /// The stored messages to read for a replay or page, within the replay budget.
    fn history_range(&self, after: MessageId, before: Option<MessageId>) -> HistoryRange {
        HistoryRange {
            after,
            before,
            limit: HISTORY_READ_LIMIT,
            max_bytes: self.limits.max_replay_bytes,
        }
    }

    /// The newest of `entries` (oldest first, all after `after`) that fit in the replay
    /// budget, and whether messages after `after` remain that the client does not get now.
    fn replay(&self, entries: Vec<ChatEntry>, after: MessageId) -> (Vec<ChatEntry>, bool) {
        let mut budget = self.limits.max_replay_bytes;
        let mut keep = 0;
        for entry in entries.iter().rev().take(HISTORY_READ_LIMIT) {
            let size = replay_size(entry);
            // At least one message, however long, so paging always makes progress.
            if size > budget && keep > 0 {
                break;
            }
            budget = budget.saturating_sub(size);
            keep += 1;
        }
        let dropped = entries.len() - keep;
        let kept: Vec<ChatEntry> = entries.into_iter().skip(dropped).collect();
        let more = kept
            .first()
            .is_some_and(|first| first.id.0 > after.0.saturating_add(1));
        (kept, more)
    }

    /// The stored messages a member waited for have been read (`stored`, oldest first): send
    /// the `joined` or `history_page` they were for, with those and whatever the room has kept
    /// in the same range, each once and in order. Stale answers (the member left, or asked
    /// again from another point) do nothing.
    pub fn history_loaded(&mut self, need: HistoryNeed, stored: Vec<ChatEntry>) -> Outcome {
        let announced = self.announce_pending();
        let outcome = self.history_loaded_announced(need, stored);
        self.finish(announced.then(outcome))
    }

    fn history_loaded_announced(&mut self, need: HistoryNeed, stored: Vec<ChatEntry>) -> Outcome {
        let Some(member) = self.members.iter_mut().find(|m| m.id == need.peer) else {
            return self.finish(Outcome::default());
        };
        let range = need.range;
        // A page needs no bookkeeping; a greeting must still be the one this read was for.
        let greeting = match range.before {
            Some(_) => None,
            None => match member.greeting.take_if(|g| g.after == range.after) {
                Some(greeting) => Some(greeting),
                None => return self.finish(Outcome::default()),
            },
        };
        let before = range.before.unwrap_or(MessageId(u64::MAX));
        let merged: BTreeMap<MessageId, ChatEntry> = stored
            .into_iter()
            .chain(self.history.iter().cloned())
            .filter(|e| e.id > range.after && e.id < before)
            .map(|e| (e.id, e))
            .collect();
        let (entries, more) = self.replay(merged.into_values().collect(), range.after);
        let msg = match greeting {
            Some(greeting) => self.joined_msg(need.peer, entries, more, greeting.resumed),
            None => ServerMsg::HistoryPage { entries, more },
        };
        let outcome = Outcome::deliver(Recipients::Only(need.peer), msg);
        self.finish(outcome)
    }

    /// `load_history`: the page of messages just older than `before`, read from storage.
    fn load_history(
        &mut self,
        peer: PeerId,
        before: MessageId,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let range = self.history_range(MessageId(0), Some(before));
        let member = self.member_mut(peer)?;
        if !member.history_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many requests for older messages; wait a moment",
            ));
        }
        Ok(Outcome {
            need_history: Some(HistoryNeed { peer, range }),
            ..Outcome::default()
        })
    }

    /// Whether `peer` joined and still waits for its `joined` message (stored history).
    pub fn is_awaiting_history(&self, peer: PeerId) -> bool {
        self.members
            .iter()
            .any(|m| m.id == peer && m.greeting.is_some())
    }

    fn joined_msg(
        &self,
        peer: PeerId,
        history: Vec<ChatEntry>,
        more_history: bool,
        resumed: bool,
    ) -> ServerMsg {
        let member = self.members.iter().find(|m| m.id == peer);
        let host = member.is_some_and(|m| m.role == Role::Host);
        let moderates = member.is_some_and(|m| m.role.moderates());
        ServerMsg::Joined {
            you: peer,
            room: self.slug.to_string(),
            name: member.map(|m| m.name.clone()).unwrap_or_default(),
            peers: self.peers(),
            history,
            more_history,
            resumed,
            resume_token: member.map(|m| m.resume_token.clone()).unwrap_or_default(),
            host_key: self.host_key.clone().filter(|_| host),
            rules: self.rules,
            waiting: if moderates {
                self.waiting_people()
            } else {
                Vec::new()
            },
            removed: if moderates {
                self.removed_people()
            } else {
                Vec::new()
            },
            breakout: self.breakout_number,
            breakouts: self.breakouts_view().map(Box::new),
        }
    }

    /// The member at `index` is back on a new connection, under the same id and with a new
    /// token (the old one, seen by whoever held it, resumes nothing any more).
    fn resume(&mut self, index: usize, request: JoinRequest, new_token: String) -> Joined {
        let last_seen = request.last_seen;
        let member = &mut self.members[index];
        member.resume_token = new_token;
        member.address = request.address;
        if member.away_since.take().is_some() {
            self.away_members -= 1;
        }
        // A new connection starts in the main room.
        member.breakout = None;
        member.greeting = None;
        let peer = member.id;
        let back = member.info();
        let greeting = self.greet(peer, last_seen, true);
        let outcome = greeting.then(Outcome::deliver(
            Recipients::EveryoneBut(peer),
            ServerMsg::PeerUpdated { peer: back },
        ));
        Joined {
            peer,
            resumed: true,
            waiting: false,
            outcome: self.finish(outcome),
        }
    }

    /// The member's connection dropped without a goodbye: keep them for the grace period,
    /// shown as away, instead of telling everyone they left.
    pub fn disconnect(&mut self, peer: PeerId, now: Now) -> Outcome {
        // Someone waiting keeps no place: they come back to the end of the line.
        if let Some(outcome) = self.leave_lobby(peer) {
            return self.finish(outcome);
        }
        let announced = self.announce_pending();
        let outcome = self.mark_away(peer, now);
        self.finish(announced.then(outcome))
    }

    fn mark_away(&mut self, peer: PeerId, now: Now) -> Outcome {
        let Some(member) = self.members.iter_mut().find(|m| m.id == peer) else {
            return self.finish(Outcome::default());
        };
        // A greeting still waiting for history is for a connection that is gone.
        member.greeting = None;
        if member.away_since.is_some() {
            return self.finish(Outcome::default());
        }
        member.away_since = Some(now.mono);
        // The page that recorded is gone (a reload or a lost connection ends a recording).
        member.recording = false;
        self.away_members += 1;
        let outcome = Outcome::deliver(
            Recipients::EveryoneBut(peer),
            ServerMsg::PeerUpdated {
                peer: member.info(),
            },
        );
        self.finish(outcome)
    }

    /// Time passed: members away for the whole grace period leave for good.
    pub fn tick(&mut self, now: Now) -> Outcome {
        let announced = self.announce_if_due(now.mono);
        let grace = self.limits.resume_grace_ms;
        let expired: Vec<PeerId> = self
            .members
            .iter()
            .filter(|m| m.away_since.is_some_and(|t| now.mono.since(t) >= grace))
            .map(|m| m.id)
            .collect();
        let outcome = expired.into_iter().fold(announced, |outcome, peer| {
            outcome.then(self.leave(peer, LeaveReason::Left))
        });
        let outcome = outcome.then(self.breakouts_tick(now));
        self.finish(outcome)
    }

    /// Removes `peer`; the others hear why. Leaving twice is harmless and tells no one, and
    /// so is leaving before anyone heard of the arrival: the newest arrival, not announced yet
    /// (anyone who came after it saw it in their `joined`, so then the others hear as usual).
    pub fn leave(&mut self, peer: PeerId, reason: LeaveReason) -> Outcome {
        if let Some(outcome) = self.leave_lobby(peer) {
            return self.finish(outcome);
        }
        let unheard_of = self.unannounced.last() == Some(&peer);
        if unheard_of {
            self.unannounced.pop();
        }
        let announced = self.announce_pending();
        let Some(index) = self.members.iter().position(|m| m.id == peer) else {
            return self.finish(announced);
        };
        let gone = self.members.remove(index);
        if gone.away_since.is_some() {
            self.away_members -= 1;
        }
        let announced = if gone.in_call {
            announced.then(self.left_call(peer))
        } else {
            announced
        };
        let outcome = if unheard_of {
            announced
        } else {
            announced.then(Outcome::deliver(
                Recipients::Everyone,
                ServerMsg::PeerLeft { peer, reason },
            ))
        };
        // A breakout room's roles are the main room's: nobody inherits one there.
        let outcome = if gone.role == Role::Host && self.breakout_number.is_none() {
            outcome.then(self.pass_host_on())
        } else {
            outcome
        };
        let outcome = if self.members.is_empty() {
            // Nobody is left to let them in.
            outcome.then(self.dismiss_lobby(Dismissal::MeetingEnded, peer, String::new()))
        } else {
            outcome
        };
        self.finish(outcome)
    }

    /// Carries out one room-level request from a member. Connection-level messages (hello,
    /// join, watch_rooms) belong to the transport and are refused here.
    pub fn request(&mut self, peer: PeerId, msg: ClientMsg, now: Now) -> Result<Outcome, Refusal> {
        if self.is_waiting(peer) {
            // Someone waiting gets nothing of the room, not even refusals to count on.
            return Ok(self.finish(Outcome::default()));
        }
        let outcome = match msg {
            ClientMsg::Chat { text } => self.chat(peer, text, now),
            ClientMsg::JoinCall { media } => self.join_call(peer, media, now),
            ClientMsg::LeaveCall => self.leave_call(peer, now),
            ClientMsg::Media { media } => self.set_media(peer, media, now),
            ClientMsg::Signal { to, signal } => self.signal(peer, to, signal, now),
            ClientMsg::Hand { raised } => self.set_hand(peer, raised, now),
            ClientMsg::React { emoji } => self.react(peer, emoji, now),
            ClientMsg::Recording { on } => self.set_recording(peer, on, now),
            ClientMsg::LoadHistory { before } => self.load_history(peer, before, now),
            ClientMsg::MediaOffer { sdp, more } => {
                self.media_description(peer, sdp, more, true, now)
            }
            ClientMsg::MediaAnswer { sdp, more } => {
                self.media_description(peer, sdp, more, false, now)
            }
            ClientMsg::View { tiles } => self.view(peer, tiles, now),
            ClientMsg::LinkFailed { peer: to, reason } => self.link_failed(peer, to, reason, now),
            ClientMsg::SetRole { peer: to, role } => self.set_role(peer, to, role, now),
            ClientMsg::Mute { peer: to, source } => self.mute(peer, to, source, now),
            ClientMsg::MuteAll => self.mute_all(peer, now),
            ClientMsg::AllowUnmute { peer: to } => self.allow_unmute(peer, to, now),
            ClientMsg::Remove { peer: to } => self.remove(peer, to, now),
            ClientMsg::AllowBack { peer: to } => self.allow_back(peer, to, now),
            ClientMsg::SetRules { rules } => self.set_rules(peer, rules, now),
            ClientMsg::EndMeeting => self.end_meeting(peer, now),
            ClientMsg::Admit { peer: to } => self.admit(peer, to, now),
            ClientMsg::AdmitAll => self.admit_all(peer, now),
            ClientMsg::Deny { peer: to } => self.deny(peer, to, now),
            ClientMsg::SetPassword { password } => self.set_password(peer, password, now),
            ClientMsg::OpenBreakouts { rooms, minutes } => {
                self.open_breakouts(peer, rooms, minutes, now)
            }
            ClientMsg::AssignBreakout { peer: to, room } => {
                self.assign_breakout(peer, to, room, now)
            }
            ClientMsg::BroadcastToBreakouts { text } => self.broadcast(peer, text, now),
            ClientMsg::CloseBreakouts => self.close_breakouts(peer, now),
            ClientMsg::EnterBreakout { room } => self.enter_breakout(peer, room, now),
            // The connection handles it while in a breakout room.
            ClientMsg::ReturnToMain => Err(Refusal::new(
                ErrorCode::BadMessage,
                "you are in the main room already",
            )),
            ClientMsg::Hello { .. } | ClientMsg::Join { .. } | ClientMsg::WatchRooms => {
                Err(Refusal::new(
                    ErrorCode::BadMessage,
                    format!("{} is not a room request", msg.kind()),
                ))
            }
        }?;
        // A refused request leaves pending arrivals for the next input; only the refused
        // member hears of the refusal, so nothing reaches anyone out of order.
        let announced = self.announce_pending();
        Ok(self.finish(announced.then(outcome)))
    }

    /// Puts `peer` into the call. The newcomer learns whom to connect to; everyone sees the
    /// change in the participant list.
    /// Asking again while in the call only repeats the answer to the asker; the others hear
    /// of it only if the media state changed.
    pub fn join_call(
        &mut self,
        peer: PeerId,
        media: MediaState,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let max = self.limits.call_cap();
        let call_size = self.call_size();
        let only_hosts_unmute = self.rules.only_hosts_unmute;
        let member = self.state_change(peer, now)?;
        let changed = !member.in_call || member.media != media;
        let newcomer = !member.in_call;
        if newcomer && call_size >= max {
            return Err(Refusal::new(
                ErrorCode::CallFull,
                format!("the call is full ({max} people); you can still chat"),
            ));
        }
        member.in_call = true;
        // What a host turned off stays off under `only_hosts_unmute`; the page hears the
        // state it really has in `peer_updated`.
        member.media = if only_hosts_unmute {
            hosts::without(media, member.blocked)
        } else {
            media
        };
        let updated = member.info();
        // The newcomer hears the mode in its own answer; the others, if it changed.
        let switched = if newcomer {
            self.settle_mode(Some(peer))
        } else {
            Outcome::default()
        };
        let others_in_call = self
            .members
            .iter()
            .filter(|m| m.in_call && m.id != peer)
            .map(|m| m.id)
            .collect();
        let mut outcome = switched;
        outcome.deliveries.push(Delivery {
            to: Recipients::Only(peer),
            msg: ServerMsg::CallJoined {
                peers: others_in_call,
                ice_servers: self.ice_servers.clone(),
                mode: self.call_mode,
            },
        });
        if changed {
            outcome.deliveries.push(Delivery {
                to: Recipients::Everyone,
                msg: ServerMsg::PeerUpdated { peer: updated },
            });
        }
        Ok(outcome)
    }

    /// How the call carries media now.
    pub fn call_mode(&self) -> CallMode {
        self.call_mode
    }

    /// Moves the call to the mode its size calls for. Its members hear of a change (but
    /// `except`, who hears of it in its own answer), and going back to browser to browser
    /// frees everyone's connection to the forwarding unit.
    fn settle_mode(&mut self, except: Option<PeerId>) -> Outcome {
        let call_size = self.call_size();
        if call_size == 0 {
            self.mesh_failed = false;
            self.failed_links.clear();
        }
        let wanted = if self.mesh_failed && self.limits.media == MediaPolicy::Auto {
            CallMode::Sfu
        } else {
            mode_for(self.limits.media, self.limits.mesh_max, call_size)
        };
        if wanted == self.call_mode {
            return Outcome::default();
        }
        self.call_mode = wanted;
        let mut outcome = Outcome::default();
        for member in self.members.iter().filter(|m| m.in_call) {
            if wanted == CallMode::Mesh {
                outcome.media.push(MediaEffect::Drop { peer: member.id });
            }
            if Some(member.id) != except {
                outcome.deliveries.push(Delivery {
                    to: Recipients::Only(member.id),
                    msg: ServerMsg::CallMode { mode: wanted },
                });
            }
        }
        outcome
    }

    /// What a member leaving the call means for the media path: their connection to the
    /// forwarding unit goes, and the call may go back to browser to browser.
    fn left_call(&mut self, peer: PeerId) -> Outcome {
        let mut outcome = Outcome::default();
        if self.call_mode == CallMode::Sfu {
            outcome.media.push(MediaEffect::Drop { peer });
        }
        if self.rules.spotlight == Some(peer) {
            self.rules.spotlight = None;
            let rules = self.rules;
            outcome = outcome.then(Outcome::deliver(
                Recipients::Everyone,
                ServerMsg::Rules { rules },
            ));
        }
        outcome.then(self.settle_mode(None))
    }

    /// A member's offer or answer for their connection to the forwarding unit, or a part of
    /// one (`more`): parts are kept until the last, up to `MAX_SDP_BYTES` in all.
    fn media_description(
        &mut self,
        peer: PeerId,
        sdp: String,
        more: bool,
        offer: bool,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let mode = self.call_mode;
        let member = self.call_member_mut(peer)?;
        if mode != CallMode::Sfu {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                "this call is browser to browser; media offers go to the server only in a call through it",
            ));
        }
        if member.sdp_refused {
            member.sdp_refused = more;
            // Dropped, yet still messages: a flood of them meets the budget.
            if !member.signal_budget.try_take(now.mono) {
                return Err(Refusal::new(
                    ErrorCode::RateLimited,
                    "too much call signalling; slow down",
                ));
            }
            return Ok(Outcome::default());
        }
        // A description takes one from the budget, whatever its parts: an answer in a large
        // call has a dozen, and a refusal halfway would leave a description with a hole.
        if member.sdp_parts.is_empty() && !member.signal_budget.try_take(now.mono) {
            member.sdp_refused = more;
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too much call signalling; slow down",
            ));
        }
        if member.sdp_parts.len() + sdp.len() > MAX_SDP_BYTES {
            member.sdp_parts = String::new();
            member.sdp_refused = more;
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!("a session description may have at most {MAX_SDP_BYTES} bytes"),
            ));
        }
        member.sdp_parts.push_str(&sdp);
        if more {
            return Ok(Outcome::default());
        }
        let sdp = std::mem::take(&mut member.sdp_parts);
        if sdp.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::BadMessage, "the SDP is empty"));
        }
        let effect = if offer {
            MediaEffect::Offer { peer, sdp }
        } else {
            MediaEffect::Answer { peer, sdp }
        };
        let mut media = vec![effect];
        // A connection to the forwarding unit starts knowing what it must drop.
        if offer {
            media.extend(self.withhold_if_blocked(peer));
        }
        Ok(Outcome {
            media,
            ..Outcome::default()
        })
    }

    /// The sizes at which a member shows the others' videos, for the forwarding unit's layer
    /// choice. In a browser-to-browser call there is nothing to choose: accepted and ignored,
    /// since a page may send one just as the call switches.
    fn view(&mut self, peer: PeerId, tiles: Vec<TileView>, now: Now) -> Result<Outcome, Refusal> {
        let mode = self.call_mode;
        let member = self.call_member_mut(peer)?;
        if tiles.len() > MAX_VIEW_TILES {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!("a view may list at most {MAX_VIEW_TILES} tiles"),
            ));
        }
        let bad_tile = tiles.iter().any(|tile| {
            tile.source == TrackSource::Microphone
                || tile.width > MAX_TILE_PIXELS
                || tile.height > MAX_TILE_PIXELS
        });
        if bad_tile {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!(
                    "a tile shows a camera or a screen, at most {MAX_TILE_PIXELS} pixels a side"
                ),
            ));
        }
        if !member.signal_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many layout changes; slow down",
            ));
        }
        if mode != CallMode::Sfu {
            return Ok(Outcome::default());
        }
        Ok(Outcome {
            media: vec![MediaEffect::View { peer, tiles }],
            ..Outcome::default()
        })
    }

    /// Signalling the forwarding unit has for `peer` (its answer, a new offer): passed on
    /// while they are in a call through the server, dropped otherwise (they left meanwhile).
    pub fn from_media_server(&mut self, peer: PeerId, msg: ServerMsg) -> Outcome {
        let announced = self.announce_pending();
        let in_call = self.members.iter().any(|m| m.id == peer && m.in_call);
        let outcome = if in_call && self.call_mode == CallMode::Sfu {
            Outcome::deliver(Recipients::Only(peer), msg)
        } else {
            Outcome::default()
        };
        self.finish(announced.then(outcome))
    }

    /// The member, if they may change their state now (one budget for hand, media and call
    /// changes, no-ops included: each costs the server work even when nobody hears of it).
    fn state_change(&mut self, peer: PeerId, now: Now) -> Result<&mut Member, Refusal> {
        let member = self.member_mut(peer)?;
        if !member.state_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many changes of hand, camera, microphone or call; slow down",
            ));
        }
        Ok(member)
    }

    /// Takes `peer` out of the call; they stay in the room.
    pub fn leave_call(&mut self, peer: PeerId, now: Now) -> Result<Outcome, Refusal> {
        let member = self.state_change(peer, now)?;
        if !member.in_call {
            return Ok(Outcome::default());
        }
        member.in_call = false;
        member.media = MediaState::default();
        // What recorded the call was the call's page; out of the call, nothing is recorded.
        member.recording = false;
        member.sdp_parts = String::new();
        member.sdp_refused = false;
        let updated = member.info();
        let outcome = Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated { peer: updated },
        );
        Ok(outcome.then(self.left_call(peer)))
    }

    /// Records that `peer` switched their microphone or camera.
    pub fn set_media(
        &mut self,
        peer: PeerId,
        media: MediaState,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        let only_hosts_unmute = self.rules.only_hosts_unmute;
        let member = self.state_change(peer, now)?;
        if !member.in_call {
            return Err(Refusal::new(ErrorCode::NotInCall, "join the call first"));
        }
        if member.media == media {
            return Ok(Outcome::default());
        }
        if only_hosts_unmute {
            if let Some(source) = hosts::turned_on_blocked(member.media, media, member.blocked) {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    format!(
                        "a host turned off your {}; ask a host to let you turn it on",
                        hosts::source_words(source)
                    ),
                ));
            }
        }
        member.media = media;
        let updated = member.info();
        let mut outcome = Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated { peer: updated },
        );
        // Turned on again where that is allowed: the forwarding unit passes it on again.
        outcome.media.extend(self.withhold_if_blocked(peer));
        Ok(outcome)
    }

    /// Raises (joining the end of the line) or lowers `peer`'s hand.
    pub fn set_hand(&mut self, peer: PeerId, raised: bool, now: Now) -> Result<Outcome, Refusal> {
        let next_hand = self.next_hand;
        let member = self.state_change(peer, now)?;
        if member.hand.is_some() == raised {
            return Ok(Outcome::default());
        }
        member.hand = raised.then_some(next_hand);
        let updated = member.info();
        if raised {
            self.next_hand += 1;
        }
        Ok(Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated { peer: updated },
        ))
    }

    /// `peer`'s browser started or stopped recording; everyone is told. Only a call member
    /// records (the recording is of the call), within the state budget.
    pub fn set_recording(&mut self, peer: PeerId, on: bool, now: Now) -> Result<Outcome, Refusal> {
        let member = self.state_change(peer, now)?;
        if !member.in_call {
            return Err(Refusal::new(
                ErrorCode::NotInCall,
                "join the call to record it",
            ));
        }
        if member.recording == on {
            return Ok(Outcome::default());
        }
        member.recording = on;
        Ok(Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::PeerUpdated {
                peer: member.info(),
            },
        ))
    }

    /// Shows everyone a short reaction from `peer`; one of `REACTIONS`, rate-limited.
    pub fn react(&mut self, peer: PeerId, emoji: String, now: Now) -> Result<Outcome, Refusal> {
        let member = self.member_mut(peer)?;
        if !REACTIONS.contains(&emoji.as_str()) {
            return Err(Refusal::new(
                ErrorCode::InvalidReaction,
                format!("reactions are one of {}", REACTIONS.join(" ")),
            ));
        }
        if !member.reaction_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many reactions; wait a moment",
            ));
        }
        Ok(Outcome::deliver(
            Recipients::Everyone,
            ServerMsg::Reaction { from: peer, emoji },
        ))
    }

    /// Relays WebRTC signaling from one call member to another in this room, and only there.
    pub fn signal(
        &mut self,
        from: PeerId,
        to: PeerId,
        signal: Signal,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.check_call_message(from, to, now)?;
        Ok(Outcome::deliver(
            Recipients::Only(to),
            ServerMsg::Signal { from, signal },
        ))
    }

    /// Whether `from` may send a call message about `to` now: both in this room's call, not
    /// the same member, and within `from`'s signaling budget (which this spends).
    fn check_call_message(&mut self, from: PeerId, to: PeerId, now: Now) -> Result<(), Refusal> {
        let target_in_call = self.members.iter().any(|m| m.id == to && m.in_call);
        let sender = self.call_member_mut(from)?;
        if to == from || !target_in_call {
            return Err(Refusal::new(
                ErrorCode::UnknownPeer,
                format!("{to} is not in this room's call"),
            ));
        }
        if !sender.signal_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many signaling messages; slow down",
            ));
        }
        Ok(())
    }

    /// `from` could not connect browser to browser to `to`. `to` hears of it, so it closes its
    /// side too (once per pair: the second side's report is accepted quietly), and under
    /// `--media auto` the call moves through the server, which both can reach.
    fn link_failed(
        &mut self,
        from: PeerId,
        to: PeerId,
        reason: LinkFailure,
        now: Now,
    ) -> Result<Outcome, Refusal> {
        self.check_call_message(from, to, now)?;
        let mode = self.call_mode;
        let pair = (from.min(to), from.max(to));
        // A report from before a switch to the forwarding unit, or the pair's second one.
        if mode != CallMode::Mesh || self.failed_links.contains(&pair) {
            return Ok(Outcome::default());
        }
        self.failed_links.push(pair);
        let told = Outcome::deliver(
            Recipients::Only(to),
            ServerMsg::LinkFailed { peer: from, reason },
        );
        self.mesh_failed = true;
        Ok(told.then(self.settle_mode(None)))
    }

    /// Records a chat message from `peer` and sends it to everyone, the sender included, so
    /// that every member sees the same order and the sender learns the message id. The
    /// outcome asks for it to be stored.
    pub fn chat(&mut self, peer: PeerId, text: String, now: Now) -> Result<Outcome, Refusal> {
        let limits = &self.limits;
        let Some(member) = self.members.iter_mut().find(|m| m.id == peer) else {
            return Err(Refusal::new(ErrorCode::NotJoined, "join a room first"));
        };
        if text.trim().is_empty() {
            return Err(Refusal::new(ErrorCode::EmptyText, "the message is empty"));
        }
        // Counting chars is linear, so check the byte length first: a char is at most 4 bytes.
        if text.len() > limits.max_chat_chars && text.chars().count() > limits.max_chat_chars {
            return Err(Refusal::new(
                ErrorCode::TextTooLong,
                format!("messages are at most {} characters", limits.max_chat_chars),
            )
            .returning(text));
        }
        if !member.chat_budget.try_take(now.mono) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "slow down: at most {} messages per second",
                    limits.chat.per_second
                ),
            )
            .returning(text));
        }
        let entry = ChatEntry {
            id: MessageId(self.next_message_id),
            from: peer,
            name: member.name.clone(),
            at: now.wall,
            text,
        };
        self.next_message_id += 1;
        if self.limits.history_len > 0 {
            if self.history.len() == self.limits.history_len {
                self.history.pop_front();
            }
            self.history.push_back(entry.clone());
        }
        Ok(Outcome {
            deliveries: vec![Delivery {
                to: Recipients::Everyone,
                msg: ServerMsg::Chat {
                    entry: entry.clone(),
                },
            }],
            persist: vec![entry],
            ..Outcome::default()
        })
    }
}

/// The mode a call of `call_size` members runs in under `policy`.
pub(super) fn mode_for(policy: MediaPolicy, mesh_max: usize, call_size: usize) -> CallMode {
    match policy {
        MediaPolicy::Mesh => CallMode::Mesh,
        MediaPolicy::Sfu => CallMode::Sfu,
        MediaPolicy::Auto if call_size <= mesh_max => CallMode::Mesh,
        MediaPolicy::Auto => CallMode::Sfu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Now = Now::at(1_000_000);

    /// Joins as a newcomer (no resume), with a token derived from the id.
    fn enter(
        room: &mut Room,
        peer: PeerId,
        name: &str,
        now: Now,
    ) -> Result<Vec<Delivery>, Refusal> {
        let request = JoinRequest {
            name: name.to_string(),
            ..JoinRequest::default()
        };
        let joined = room.join(peer, request, format!("token-{}", peer.0), now)?;
        // A lone join, as the transport handles it: announced as soon as it is done.
        Ok(joined.outcome.then(room.announce_arrivals()).deliveries)
    }

    /// The deliveries of a request's outcome.
    fn d(outcome: Result<Outcome, Refusal>) -> Result<Vec<Delivery>, Refusal> {
        outcome.map(|o| o.deliveries)
    }

    fn room() -> Room {
        Room::new(
            RoomSlug::parse("test-room").unwrap(),
            RoomLimits::default(),
            Vec::new(),
        )
    }

    fn room_with(limits: RoomLimits) -> Room {
        Room::new(RoomSlug::parse("test-room").unwrap(), limits, Vec::new())
    }

    fn link_failed(to: u64) -> ClientMsg {
        ClientMsg::LinkFailed {
            peer: PeerId(to),
            reason: LinkFailure::NeverConnected,
        }
    }

    #[test]
    fn a_failed_direct_link_is_told_to_the_other_side_and_moves_the_call_through_the_server() {
        let mut room = room();
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        let av = MediaState {
            mic: true,
            camera: true,
            screen: false,
        };
        room.join_call(PeerId(1), av, T0).unwrap();
        room.join_call(PeerId(2), av, T0).unwrap();
        assert_eq!(room.call_mode(), CallMode::Mesh);

        // Only call members may report, only about another call member.
        let cat = room.request(PeerId(3), link_failed(1), T0).unwrap_err();
        assert_eq!(cat.code, ErrorCode::NotInCall);
        let unknown = room.request(PeerId(1), link_failed(9), T0).unwrap_err();
        assert_eq!(unknown.code, ErrorCode::UnknownPeer);
        let own = room.request(PeerId(1), link_failed(1), T0).unwrap_err();
        assert_eq!(own.code, ErrorCode::UnknownPeer);

        let out = room.request(PeerId(1), link_failed(2), T0).unwrap();
        assert_eq!(
            out.deliveries[0],
            Delivery {
                to: Recipients::Only(PeerId(2)),
                msg: ServerMsg::LinkFailed {
                    peer: PeerId(1),
                    reason: LinkFailure::NeverConnected
                }
            }
        );
        let switched: Vec<_> = out.deliveries[1..]
            .iter()
            .map(|d| (d.to.clone(), d.msg.clone()))
            .collect();
        assert_eq!(
            switched,
            [1, 2].map(|id| (
                Recipients::Only(PeerId(id)),
                ServerMsg::CallMode {
                    mode: CallMode::Sfu
                }
            ))
        );
        assert_eq!(room.call_mode(), CallMode::Sfu);
        // Bob's own report of the same link changes nothing and tells nobody.
        let again = room.request(PeerId(2), link_failed(1), T0).unwrap();
        assert!(again.deliveries.is_empty());

        // Through the server it stays, though two is browser-to-browser size, until the call
        // empties; the next call starts browser to browser again.
        room.leave_call(PeerId(2), T0).unwrap();
        assert_eq!(room.call_mode(), CallMode::Sfu);
        room.join_call(PeerId(2), av, T0).unwrap();
        assert_eq!(room.call_mode(), CallMode::Sfu);
        room.leave_call(PeerId(1), T0).unwrap();
        room.leave_call(PeerId(2), T0).unwrap();
        room.join_call(PeerId(1), av, T0).unwrap();
        room.join_call(PeerId(2), av, T0).unwrap();
        assert_eq!(room.call_mode(), CallMode::Mesh);
    }

    #[test]
    fn link_failure_reports_spend_the_signal_budget_and_respect_a_mesh_only_policy() {
        let mut room = room_with(RoomLimits {
            media: MediaPolicy::Mesh,
            signal: RateLimit::new(3, 1),
            ..RoomLimits::default()
        });
        for (id, name) in [(1, "Ann"), (2, "Bob")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
            room.join_call(PeerId(id), MediaState::default(), T0)
                .unwrap();
        }
        let out = room.request(PeerId(1), link_failed(2), T0).unwrap();
        assert_eq!(out.deliveries.len(), 1, "told to Bob; no server to move to");
        assert_eq!(room.call_mode(), CallMode::Mesh);
        room.request(PeerId(1), link_failed(2), T0).unwrap();
        room.request(PeerId(1), link_failed(2), T0).unwrap();
        let flood = room.request(PeerId(1), link_failed(2), T0).unwrap_err();
        assert_eq!(flood.code, ErrorCode::RateLimited);
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
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let out = enter(&mut room, PeerId(2), "  Bob ", T0).unwrap();
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
            ServerMsg::PeersJoined {
                peers: vec![PeerInfo {
                    id: PeerId(2),
                    name: "Bob".into(),
                    in_call: false,
                    media: MediaState::default(),
                    away: false,
                    hand: None,
                    role: Default::default(),
                    breakout: None,
                    recording: false,
                }]
            }
        );
    }

    fn arrived(delivery: &Delivery) -> Vec<&str> {
        match &delivery.msg {
            ServerMsg::PeersJoined { peers } => peers.iter().map(|p| p.name.as_str()).collect(),
            other => panic!("expected peers_joined, got {other:?}"),
        }
    }

    /// A join right after an announcement (the room's first one is at `T0`), so it waits.
    fn join_unannounced(room: &mut Room, peer: PeerId, name: &str) -> Vec<Delivery> {
        join_at(room, peer, name, T0)
    }

    #[test]
    fn joins_handled_together_are_announced_once_each_to_whoever_had_not_heard() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        // Three arrive in one batch: each is greeted at once with everyone so far…
        for (id, name) in [(2, "Bob"), (3, "Cy"), (4, "Di")] {
            let out = join_unannounced(&mut room, PeerId(id), name);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].to, Recipients::Only(PeerId(id)));
        }
        // …and the announcement tells Ann of all three in one message, and each newcomer of
        // those who came after it (the earlier ones were in its `joined`).
        let out = room.announce_arrivals().deliveries;
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].to,
            Recipients::EveryoneButAll(vec![PeerId(2), PeerId(3), PeerId(4)])
        );
        assert!(out[0].to.includes(PeerId(1)) && !out[0].to.includes(PeerId(3)));
        assert_eq!(arrived(&out[0]), ["Bob", "Cy", "Di"]);
        assert_eq!(out[1].to, Recipients::Only(PeerId(2)));
        assert_eq!(arrived(&out[1]), ["Cy", "Di"]);
        assert_eq!(out[2].to, Recipients::Only(PeerId(3)));
        assert_eq!(arrived(&out[2]), ["Di"]);
        // Announced once: nothing is left for the next input.
        assert!(room.announce_arrivals().deliveries.is_empty());
    }

    #[test]
    fn a_lone_arrival_is_announced_at_once_and_a_crowd_at_most_every_interval() {
        let mut room = room();
        let interval = RoomLimits::DEFAULT.announce_interval_ms;
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let at = |ms| T0.later(ms);
        // Bob comes after a quiet spell: everyone hears at once.
        let out = join_at(&mut room, PeerId(2), "Bob", at(interval));
        assert_eq!(arrived(&out[1]), ["Bob"]);
        assert_eq!(room.next_deadline(), None);
        // Cy and Di follow within the interval: they wait for the next announcement, which
        // is the room's next deadline.
        assert_eq!(
            join_at(&mut room, PeerId(3), "Cy", at(interval + 10)).len(),
            1
        );
        assert_eq!(
            join_at(&mut room, PeerId(4), "Di", at(interval + 20)).len(),
            1
        );
        assert_eq!(room.next_deadline(), Some(at(2 * interval).mono));
        assert!(room.tick(at(2 * interval - 1)).deliveries.is_empty());
        let out = room.tick(at(2 * interval)).deliveries;
        assert_eq!(arrived(&out[0]), ["Cy", "Di"]);
        assert_eq!(arrived(&out[1]), ["Di"]);
        assert_eq!(room.next_deadline(), None);
    }

    fn join_at(room: &mut Room, peer: PeerId, name: &str, now: Now) -> Vec<Delivery> {
        let request = JoinRequest {
            name: name.to_string(),
            ..JoinRequest::default()
        };
        room.join(peer, request, format!("token-{}", peer.0), now)
            .unwrap()
            .outcome
            .deliveries
    }

    #[test]
    fn any_other_input_announces_pending_arrivals_before_its_own_messages() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        join_unannounced(&mut room, PeerId(2), "Bob");
        let out = d(room.request(
            PeerId(1),
            ClientMsg::Chat {
                text: "hello".into(),
            },
            T0,
        ))
        .unwrap();
        assert_eq!(out[0].to, Recipients::EveryoneBut(PeerId(2)));
        assert_eq!(arrived(&out[0]), ["Bob"]);
        assert_eq!(chat_text(&out[1..]), ["hello"]);

        // A refused request leaves them for the next input, which announces them first.
        join_unannounced(&mut room, PeerId(3), "Cy");
        let refused = room.request(PeerId(1), ClientMsg::WatchRooms, T0);
        assert!(refused.is_err());
        let out = room.disconnect(PeerId(1), T0).deliveries;
        assert_eq!(arrived(&out[0]), ["Cy"]);
        assert!(matches!(out[1].msg, ServerMsg::PeerUpdated { .. }));
    }

    #[test]
    fn the_newest_arrival_leaving_before_being_announced_is_never_mentioned() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        join_unannounced(&mut room, PeerId(2), "Bob");
        join_unannounced(&mut room, PeerId(3), "Cy");
        let out = room.leave(PeerId(3), LeaveReason::Left).deliveries;
        // Bob is announced (to Ann); Cy neither arrives nor leaves in anyone's eyes.
        assert_eq!(out.len(), 1);
        assert_eq!(arrived(&out[0]), ["Bob"]);
        assert_eq!(room.member_count(), 2);

        // Someone a later arrival saw in its `joined` leaves as usual, after the announcement.
        join_unannounced(&mut room, PeerId(4), "Di");
        join_unannounced(&mut room, PeerId(5), "Ed");
        let out = room.leave(PeerId(4), LeaveReason::Left).deliveries;
        assert_eq!(arrived(&out[0]), ["Di", "Ed"]);
        assert_eq!(arrived(&out[1]), ["Ed"]);
        assert_eq!(
            out[2].msg,
            ServerMsg::PeerLeft {
                peer: PeerId(4),
                reason: LeaveReason::Left
            }
        );
    }

    #[test]
    fn names_are_unique_per_room_regardless_of_case() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let err = enter(&mut room, PeerId(2), "ANN", T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::NameTaken);
        assert_eq!(room.member_count(), 1);
        // Once Ann leaves, the name is free again.
        room.leave(PeerId(1), LeaveReason::Left);
        assert!(enter(&mut room, PeerId(2), "ANN", T0).is_ok());
    }

    #[test]
    fn bad_names_and_double_joins_are_refused() {
        let mut room = room();
        assert_eq!(
            enter(&mut room, PeerId(1), "", T0).unwrap_err().code,
            ErrorCode::InvalidName
        );
        assert_eq!(
            enter(&mut room, PeerId(1), &"x".repeat(33), T0)
                .unwrap_err()
                .code,
            ErrorCode::InvalidName
        );
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        assert_eq!(
            enter(&mut room, PeerId(1), "Other", T0).unwrap_err().code,
            ErrorCode::AlreadyJoined
        );
    }

    #[test]
    fn a_full_room_refuses_the_next_member() {
        let mut room = room_with(RoomLimits {
            max_members: 2,
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "a", T0).unwrap();
        enter(&mut room, PeerId(2), "b", T0).unwrap();
        assert_eq!(
            enter(&mut room, PeerId(3), "c", T0).unwrap_err().code,
            ErrorCode::RoomFull
        );
    }

    #[test]
    fn chat_goes_to_everyone_with_increasing_ids() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        let first = d(room.chat(PeerId(1), "hello".into(), T0)).unwrap();
        let second = d(room.chat(PeerId(2), "hi Ann".into(), T0)).unwrap();
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
            chat: RateLimit::new(100, 5),
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        for i in 0..5 {
            d(room.chat(PeerId(1), format!("m{i}"), T0)).unwrap();
        }
        let out = enter(&mut room, PeerId(2), "Bob", T0).unwrap();
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
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        d(room.chat(PeerId(1), "bye".into(), T0)).unwrap();
        room.leave(PeerId(1), LeaveReason::Left);
        let out = enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        let ServerMsg::Joined { history, .. } = &out[0].msg else {
            panic!("expected joined");
        };
        assert_eq!(history[0].name, "Ann");
    }

    #[test]
    fn empty_overlong_and_outsider_chat_is_refused() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let code = |r: Result<Vec<Delivery>, Refusal>| r.unwrap_err().code;
        assert_eq!(
            code(d(room.chat(PeerId(1), " \n ".into(), T0))),
            ErrorCode::EmptyText
        );
        assert_eq!(
            code(d(room.chat(PeerId(1), "x".repeat(2001), T0))),
            ErrorCode::TextTooLong
        );
        assert_eq!(
            code(d(room.chat(PeerId(9), "hi".into(), T0))),
            ErrorCode::NotJoined
        );
        // 2,000 characters of 3-byte text are fine even though they are 6,000 bytes.
        assert!(d(room.chat(PeerId(1), "한".repeat(2000), T0)).is_ok());
        assert_eq!(room.history().count(), 1);
    }

    #[test]
    fn flooding_is_rate_limited_per_member() {
        let mut room = room_with(RoomLimits {
            chat: RateLimit::new(3, 1),
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        let results: Vec<_> = (0..5)
            .map(|i| d(room.chat(PeerId(1), format!("{i}"), T0)))
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(
            results[4].as_ref().unwrap_err().code,
            ErrorCode::RateLimited
        );
        // Bob has his own budget, and Ann's refills with time.
        assert!(d(room.chat(PeerId(2), "me too".into(), T0)).is_ok());
        assert!(room.chat(PeerId(1), "later".into(), T0.later(1000)).is_ok());
        let texts: Vec<_> = room.history().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["0", "1", "2", "me too", "later"]);
    }

    #[test]
    fn leaving_tells_everyone_once() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        enter(&mut room, PeerId(3), "Cy", T0).unwrap();
        // Bob is not the host (Ann, first in, is), so nothing but his leaving is heard of.
        let out = room.leave(PeerId(2), LeaveReason::TooSlow).deliveries;
        assert_eq!(
            out,
            vec![Delivery {
                to: Recipients::Everyone,
                msg: ServerMsg::PeerLeft {
                    peer: PeerId(2),
                    reason: LeaveReason::TooSlow
                }
            }]
        );
        assert!(room
            .leave(PeerId(2), LeaveReason::Left)
            .deliveries
            .is_empty());
        assert_eq!(
            room.member_ids().collect::<Vec<_>>(),
            [PeerId(1), PeerId(3)]
        );
        assert!(chat_text(&out).is_empty());
    }

    const AV: MediaState = MediaState {
        mic: true,
        camera: true,
        screen: false,
    };

    fn offer() -> Signal {
        Signal::Description {
            sdp_type: crate::protocol::SdpType::Offer,
            sdp: "v=0".into(),
        }
    }

    #[test]
    fn joining_the_call_lists_who_to_connect_to_and_tells_everyone() {
        let mut room = room();
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        d(room.join_call(PeerId(1), AV, T0)).unwrap();
        let out = d(room.join_call(PeerId(2), MediaState::default(), T0)).unwrap();
        assert_eq!(
            out[0],
            Delivery {
                to: Recipients::Only(PeerId(2)),
                msg: ServerMsg::CallJoined {
                    peers: vec![PeerId(1)],
                    ice_servers: Vec::new(),
                    mode: CallMode::Mesh,
                }
            }
        );
        assert_eq!(out[1].to, Recipients::Everyone);
        let ServerMsg::PeerUpdated { peer } = &out[1].msg else {
            panic!("expected peer_updated");
        };
        assert!(peer.in_call);
        assert_eq!(room.call_size(), 2);
        // Cat is in the room but not the call, and shows up that way.
        assert!(!room.peers()[2].in_call);
    }

    #[test]
    fn the_call_is_capped_but_chat_stays_open() {
        let mut room = room_with(RoomLimits {
            max_call_members: 2,
            ..RoomLimits::default()
        });
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        d(room.join_call(PeerId(1), AV, T0)).unwrap();
        d(room.join_call(PeerId(2), AV, T0)).unwrap();
        let refusal = d(room.join_call(PeerId(3), AV, T0)).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::CallFull);
        assert!(refusal.message.contains("still chat"));
        assert!(d(room.chat(PeerId(3), "let me in".into(), T0)).is_ok());
        // Joining again while in the call is not counted twice.
        assert!(d(room.join_call(PeerId(2), MediaState::default(), T0)).is_ok());
        // A seat frees up when someone leaves the call or the room.
        room.leave(PeerId(1), LeaveReason::Left);
        assert!(d(room.join_call(PeerId(3), AV, T0)).is_ok());
    }

    fn auto_room() -> Room {
        let mut room = room_with(RoomLimits {
            media: MediaPolicy::Auto,
            mesh_max: 2,
            ..RoomLimits::default()
        });
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat"), (4, "Dan")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        room
    }

    fn modes_sent(outcome: &Outcome) -> Vec<(Recipients, CallMode)> {
        outcome
            .deliveries
            .iter()
            .filter_map(|d| match d.msg {
                ServerMsg::CallMode { mode } => Some((d.to.clone(), mode)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_call_past_mesh_max_goes_through_the_server_and_comes_back_when_it_shrinks() {
        let mut room = auto_room();
        room.join_call(PeerId(1), AV, T0).unwrap();
        let second = room.join_call(PeerId(2), AV, T0).unwrap();
        assert!(matches!(
            second.deliveries[0].msg,
            ServerMsg::CallJoined {
                mode: CallMode::Mesh,
                ..
            }
        ));
        // The third member tips it over: they hear it in their answer, the others in a
        // call_mode of their own; nobody outside the call hears of it.
        let third = room.join_call(PeerId(3), AV, T0).unwrap();
        assert_eq!(
            modes_sent(&third),
            [
                (Recipients::Only(PeerId(1)), CallMode::Sfu),
                (Recipients::Only(PeerId(2)), CallMode::Sfu)
            ]
        );
        assert!(third.deliveries.iter().any(|d| matches!(
            d.msg,
            ServerMsg::CallJoined {
                mode: CallMode::Sfu,
                ..
            }
        )));
        assert_eq!(room.call_mode(), CallMode::Sfu);
        // Back to two: the leaver's and everyone's server connections go, and the two left
        // switch back to browser to browser.
        let shrink = room.leave_call(PeerId(3), T0).unwrap();
        assert_eq!(
            modes_sent(&shrink),
            [
                (Recipients::Only(PeerId(1)), CallMode::Mesh),
                (Recipients::Only(PeerId(2)), CallMode::Mesh)
            ]
        );
        assert_eq!(
            shrink.media,
            [
                MediaEffect::Drop { peer: PeerId(3) },
                MediaEffect::Drop { peer: PeerId(1) },
                MediaEffect::Drop { peer: PeerId(2) }
            ]
        );
        // Leaving the room from a call through the server frees that connection too.
        room.join_call(PeerId(3), AV, T0).unwrap();
        room.join_call(PeerId(4), AV, T0).unwrap();
        let gone = room.leave(PeerId(4), LeaveReason::Left);
        assert_eq!(gone.media, [MediaEffect::Drop { peer: PeerId(4) }]);
        assert!(modes_sent(&gone).is_empty());
    }

    #[test]
    fn a_description_in_parts_takes_one_from_the_budget_and_is_never_passed_on_with_a_hole() {
        let mut room = auto_room();
        for id in 1..=3 {
            room.join_call(PeerId(id), AV, T0).unwrap();
        }
        let part = |sdp: &str, more: bool| ClientMsg::MediaAnswer {
            sdp: sdp.into(),
            more,
        };
        // Spend all but one of the budget.
        let burst = RoomLimits::DEFAULT.signal.burst as usize;
        for _ in 0..burst - 1 {
            room.request(PeerId(1), part("v=0", false), T0).unwrap();
        }
        // The last one starts a description of many parts: it goes through whole.
        room.request(PeerId(1), part("v=0\r\n", true), T0).unwrap();
        for _ in 0..20 {
            room.request(PeerId(1), part("a=x\r\n", true), T0).unwrap();
        }
        let whole = room.request(PeerId(1), part("s=-\r\n", false), T0).unwrap();
        let expected = format!("v=0\r\n{}s=-\r\n", "a=x\r\n".repeat(20));
        assert_eq!(
            whole.media,
            [MediaEffect::Answer {
                peer: PeerId(1),
                sdp: expected
            }]
        );
        // The next is refused at its first part, and all of it is dropped: no part of it
        // becomes the start of another.
        let err = room
            .request(PeerId(1), part("v=1\r\n", true), T0)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        for more in [true, true, false] {
            match room.request(PeerId(1), part("a=y\r\n", more), T0) {
                Ok(dropped) => assert!(dropped.media.is_empty()),
                Err(refusal) => assert_eq!(refusal.code, ErrorCode::RateLimited),
            }
        }
        // Once the budget refills, a new description goes through as sent.
        let next = room
            .request(PeerId(1), part("v=2", false), T0.later(1_000))
            .unwrap();
        assert_eq!(
            next.media,
            [MediaEffect::Answer {
                peer: PeerId(1),
                sdp: "v=2".into()
            }]
        );
    }

    #[test]
    fn media_offers_are_for_members_of_a_call_through_the_server_within_their_budget() {
        let mut room = auto_room();
        let offer = |sdp: &str| ClientMsg::MediaOffer {
            sdp: sdp.into(),
            more: false,
        };
        // Not in the call.
        let err = room.request(PeerId(1), offer("v=0"), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotInCall);
        // In a call that is still browser to browser.
        room.join_call(PeerId(1), AV, T0).unwrap();
        let err = room.request(PeerId(1), offer("v=0"), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
        room.join_call(PeerId(2), AV, T0).unwrap();
        room.join_call(PeerId(3), AV, T0).unwrap();
        let err = room.request(PeerId(1), offer("  "), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
        let accepted = room.request(PeerId(1), offer("v=0"), T0).unwrap();
        assert_eq!(
            accepted.media,
            [MediaEffect::Offer {
                peer: PeerId(1),
                sdp: "v=0".into()
            }]
        );
        let answer = ClientMsg::MediaAnswer {
            sdp: "v=0".into(),
            more: false,
        };
        let burst = RoomLimits::DEFAULT.signal.burst as usize;
        let refused = (0..burst + 5)
            .filter(|_| room.request(PeerId(2), answer.clone(), T0).is_err())
            .count();
        assert_eq!(refused, 5);
        // A description in parts is passed on whole once the last part is in; too much in
        // all is refused and forgotten.
        let part = |sdp: &str, more: bool| ClientMsg::MediaOffer {
            sdp: sdp.into(),
            more,
        };
        assert!(room
            .request(PeerId(3), part("v=0\r\n", true), T0)
            .unwrap()
            .media
            .is_empty());
        let whole = room.request(PeerId(3), part("s=-\r\n", false), T0).unwrap();
        assert_eq!(
            whole.media,
            [MediaEffect::Offer {
                peer: PeerId(3),
                sdp: "v=0\r\ns=-\r\n".into()
            }]
        );
        let big = "a".repeat(MAX_SDP_BYTES / 2 + 1);
        room.request(PeerId(3), part(&big, true), T0).unwrap();
        let err = room.request(PeerId(3), part(&big, true), T0).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
        // The rest of the refused description is dropped, not taken for a new one.
        for more in [true, false] {
            let rest = room
                .request(PeerId(3), part("a=rest\r\n", more), T0)
                .unwrap();
            assert!(rest.media.is_empty());
        }
        let after = room.request(PeerId(3), part("v=0", false), T0).unwrap();
        assert_eq!(
            after.media,
            [MediaEffect::Offer {
                peer: PeerId(3),
                sdp: "v=0".into()
            }]
        );
        // What the forwarding unit says reaches only a member still in such a call.
        let reply = ServerMsg::MediaAnswer { sdp: "v=0".into() };
        let out = room.from_media_server(PeerId(1), reply.clone());
        assert_eq!(out.deliveries[0].to, Recipients::Only(PeerId(1)));
        assert!(room
            .from_media_server(PeerId(4), reply)
            .deliveries
            .is_empty());
    }

    #[test]
    fn signals_go_only_to_the_addressed_call_member() {
        let mut room = room();
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        d(room.join_call(PeerId(1), AV, T0)).unwrap();
        d(room.join_call(PeerId(2), AV, T0)).unwrap();
        let out = d(room.signal(PeerId(1), PeerId(2), offer(), T0)).unwrap();
        assert_eq!(
            out,
            vec![Delivery {
                to: Recipients::Only(PeerId(2)),
                msg: ServerMsg::Signal {
                    from: PeerId(1),
                    signal: offer()
                }
            }]
        );
        let code = |r: Result<Vec<Delivery>, Refusal>| r.unwrap_err().code;
        // Cat is in the room but not the call; 9 is nowhere; nobody signals themselves.
        assert_eq!(
            code(d(room.signal(PeerId(1), PeerId(3), offer(), T0))),
            ErrorCode::UnknownPeer
        );
        assert_eq!(
            code(d(room.signal(PeerId(1), PeerId(9), offer(), T0))),
            ErrorCode::UnknownPeer
        );
        assert_eq!(
            code(d(room.signal(PeerId(1), PeerId(1), offer(), T0))),
            ErrorCode::UnknownPeer
        );
        assert_eq!(
            code(d(room.signal(PeerId(3), PeerId(1), offer(), T0))),
            ErrorCode::NotInCall
        );
        assert_eq!(
            code(d(room.signal(PeerId(8), PeerId(1), offer(), T0))),
            ErrorCode::NotJoined
        );
    }

    #[test]
    fn signaling_floods_are_rate_limited() {
        let mut room = room_with(RoomLimits {
            signal: RateLimit::new(3, 1),
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        d(room.join_call(PeerId(1), AV, T0)).unwrap();
        d(room.join_call(PeerId(2), AV, T0)).unwrap();
        let ok = (0..5)
            .filter(|_| d(room.signal(PeerId(1), PeerId(2), offer(), T0)).is_ok())
            .count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn media_changes_are_announced_once_and_need_the_call() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        assert_eq!(
            d(room.set_media(PeerId(1), AV, T0)).unwrap_err().code,
            ErrorCode::NotInCall
        );
        d(room.join_call(PeerId(1), AV, T0)).unwrap();
        let muted = MediaState {
            mic: false,
            camera: true,
            screen: false,
        };
        let out = d(room.set_media(PeerId(1), muted, T0)).unwrap();
        let ServerMsg::PeerUpdated { peer } = &out[0].msg else {
            panic!("expected peer_updated");
        };
        assert_eq!(peer.media, muted);
        assert!(d(room.set_media(PeerId(1), muted, T0)).unwrap().is_empty());
        let out = d(room.leave_call(PeerId(1), T0)).unwrap();
        let ServerMsg::PeerUpdated { peer } = &out[0].msg else {
            panic!("expected peer_updated");
        };
        assert!(!peer.in_call);
        assert!(d(room.leave_call(PeerId(1), T0)).unwrap().is_empty());
    }

    fn rejoin(room: &mut Room, peer: PeerId, token: &str, last_seen: Option<u64>) -> Joined {
        let request = JoinRequest {
            name: "ignored when resuming".into(),
            resume: Some(token.to_string()),
            last_seen: last_seen.map(MessageId),
            address: None,
            ..JoinRequest::default()
        };
        room.join(peer, request, format!("token-{}", peer.0), T0)
            .unwrap()
    }

    fn history_of(joined: &Joined) -> Vec<String> {
        let ServerMsg::Joined { history, .. } = &joined.outcome.deliveries[0].msg else {
            panic!("expected joined");
        };
        history.iter().map(|e| e.text.clone()).collect()
    }

    #[test]
    fn a_dropped_member_is_kept_as_away_and_resumes_with_what_they_missed() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        d(room.chat(PeerId(1), "before".into(), T0)).unwrap();
        let away = room.disconnect(PeerId(2), T0).deliveries;
        assert_eq!(away[0].to, Recipients::EveryoneBut(PeerId(2)));
        assert!(matches!(&away[0].msg, ServerMsg::PeerUpdated { peer } if peer.away));
        assert!(room.disconnect(PeerId(2), T0).deliveries.is_empty());
        d(room.chat(PeerId(1), "missed 1".into(), T0)).unwrap();
        d(room.chat(PeerId(1), "missed 2".into(), T0)).unwrap();

        // Bob comes back on a new connection (id 7) with his token: he is peer 2 again.
        let joined = rejoin(&mut room, PeerId(7), "token-2", Some(1));
        assert_eq!(joined.peer, PeerId(2));
        assert!(joined.resumed && joined.outcome.need_history.is_none());
        assert_eq!(history_of(&joined), ["missed 1", "missed 2"]);
        let ServerMsg::Joined { name, .. } = &joined.outcome.deliveries[0].msg else {
            unreachable!()
        };
        assert_eq!(name, "Bob");
        // The others see him back, not a leave and a join.
        assert!(
            matches!(&joined.outcome.deliveries[1].msg, ServerMsg::PeerUpdated { peer } if !peer.away && peer.id == PeerId(2))
        );
        assert_eq!(room.member_count(), 2);
    }

    #[test]
    fn after_the_grace_period_an_away_member_leaves_and_the_token_is_worthless() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        assert_eq!(room.next_deadline(), None);
        let away = room.disconnect(PeerId(2), T0.later(5));
        // The room asks to be woken exactly when the grace period runs out, and not before.
        assert_eq!(away.next_deadline, Some(T0.later(30_005).mono));
        assert!(room.tick(T0.later(30_004)).is_quiet());
        let left = room.tick(T0.later(30_005));
        assert_eq!(left.next_deadline, None);
        assert_eq!(
            left.deliveries[0].msg,
            ServerMsg::PeerLeft {
                peer: PeerId(2),
                reason: LeaveReason::Left
            }
        );
        // The token no longer resumes: a join with it is an ordinary join under the name.
        let request = JoinRequest {
            name: "Bob".into(),
            resume: Some("token-2".into()),
            last_seen: None,
            address: None,
            ..JoinRequest::default()
        };
        let joined = room.join(PeerId(8), request, "token-8".into(), T0).unwrap();
        assert_eq!(joined.peer, PeerId(8));
        assert!(!joined.resumed);
    }

    #[test]
    fn a_gap_older_than_the_kept_history_waits_for_storage() {
        let mut room = room_with(RoomLimits {
            history_len: 2,
            chat: RateLimit::new(100, 1),
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        for i in 1..=5 {
            d(room.chat(PeerId(1), format!("m{i}"), T0)).unwrap();
        }
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        room.disconnect(PeerId(2), T0);
        // Bob had message 3; the room keeps only 4 and 5 in memory, which is complete.
        let joined = rejoin(&mut room, PeerId(9), "token-2", Some(3));
        assert_eq!(joined.outcome.need_history, None);
        assert_eq!(history_of(&joined), ["m4", "m5"]);
        room.disconnect(PeerId(2), T0);
        // Bob had message 1; 2 and 3 are only in storage: no `joined` yet, a read instead.
        // (Each resume hands out a new token: the first one made it "token-9".)
        let joined = rejoin(&mut room, PeerId(9), "token-9", Some(1));
        let need = joined.outcome.need_history.expect("a history read");
        assert_eq!(
            need,
            HistoryNeed {
                peer: PeerId(2),
                range: HistoryRange {
                    after: MessageId(1),
                    before: None,
                    limit: HISTORY_READ_LIMIT,
                    max_bytes: RoomLimits::DEFAULT.max_replay_bytes,
                },
            }
        );
        assert!(joined
            .outcome
            .deliveries
            .iter()
            .all(|d| d.to != Recipients::Only(PeerId(2))));
        assert!(room.is_awaiting_history(PeerId(2)));
        // Chat goes on while storage is read; the answer overlaps what the room kept.
        d(room.chat(PeerId(1), "m6".into(), T0)).unwrap();
        let stored = (2..=4).map(|i| entry(i, &format!("m{i}"))).collect();
        let greeted = room.history_loaded(need, stored);
        assert_eq!(greeted.deliveries.len(), 1);
        assert_eq!(greeted.deliveries[0].to, Recipients::Only(PeerId(2)));
        let ServerMsg::Joined {
            history, resumed, ..
        } = &greeted.deliveries[0].msg
        else {
            panic!("expected joined");
        };
        assert!(resumed);
        let texts: Vec<_> = history.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["m2", "m3", "m4", "m5", "m6"]);
        assert!(!room.is_awaiting_history(PeerId(2)));
        // A second answer to the same read is stale and sends nothing.
        assert!(room.history_loaded(need, Vec::new()).is_quiet());
    }

    #[test]
    fn a_history_read_for_a_connection_that_dropped_is_ignored() {
        let mut room = room();
        room.restore((200..=202).map(|i| entry(i, "old")).collect(), None, 0);
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        room.disconnect(PeerId(1), T0);
        let joined = rejoin(&mut room, PeerId(4), "token-1", Some(100));
        let need = joined.outcome.need_history.expect("a history read");
        room.disconnect(PeerId(1), T0);
        assert!(room.history_loaded(need, Vec::new()).is_quiet());
    }

    fn entry(id: u64, text: &str) -> ChatEntry {
        ChatEntry {
            id: MessageId(id),
            from: PeerId(1),
            name: "Ann".into(),
            at: T0.wall,
            text: text.into(),
        }
    }

    #[test]
    fn state_changes_share_one_budget_and_repeats_tell_no_one() {
        let mut room = room_with(RoomLimits {
            state: RateLimit::new(3, 1),
            ..RoomLimits::default()
        });
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        let first = d(room.join_call(PeerId(1), AV, T0)).unwrap();
        assert_eq!(first.len(), 2);
        // Asking again with the same media answers Ann alone; nobody else hears of it.
        let again = d(room.join_call(PeerId(1), AV, T0)).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].to, Recipients::Only(PeerId(1)));
        assert!(d(room.set_hand(PeerId(1), false, T0)).unwrap().is_empty());
        // Three changes spent the burst; the fourth kind of change is refused too.
        assert_eq!(
            d(room.set_media(PeerId(1), MediaState::default(), T0))
                .unwrap_err()
                .code,
            ErrorCode::RateLimited
        );
        // Bob has his own budget, and Ann's refills with time.
        assert!(d(room.set_hand(PeerId(2), true, T0)).is_ok());
        assert!(d(room.set_hand(PeerId(1), true, T0.later(1000))).is_ok());
    }

    #[test]
    fn chat_asks_to_be_stored_and_stamps_the_wall_clock() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let now = Now {
            mono: MonoMillis(5),
            wall: crate::protocol::UnixMillis(1_700_000_000_000),
        };
        let out = room.chat(PeerId(1), "hi".into(), now).unwrap();
        assert_eq!(out.persist.len(), 1);
        assert_eq!(out.persist[0].at, now.wall);
        assert_eq!(
            out.deliveries[0].msg,
            ServerMsg::Chat {
                entry: out.persist[0].clone()
            }
        );
        // Nothing else asks for storage.
        assert!(room
            .set_hand(PeerId(1), true, T0)
            .unwrap()
            .persist
            .is_empty());
    }

    #[test]
    fn a_restored_room_continues_numbering_and_serves_the_stored_history() {
        let mut room = room_with(RoomLimits {
            history_len: 2,
            ..RoomLimits::default()
        });
        let stored: Vec<ChatEntry> = (1..=3)
            .map(|i| ChatEntry {
                id: MessageId(i),
                from: PeerId(1),
                name: "Ann".into(),
                at: T0.wall,
                text: format!("old {i}"),
            })
            .collect();
        room.restore(stored, Some(MessageId(3)), 0);
        assert_eq!(room.next_message_id(), MessageId(4));
        let joined = room
            .join(
                PeerId(5),
                JoinRequest {
                    name: "Bob".into(),
                    ..JoinRequest::default()
                },
                "t".into(),
                T0,
            )
            .unwrap();
        assert_eq!(history_of(&joined), ["old 2", "old 3"]);
        let out = d(room.chat(PeerId(5), "new".into(), T0)).unwrap();
        assert!(matches!(&out[0].msg, ServerMsg::Chat { entry } if entry.id == MessageId(4)));
    }

    fn hands(room: &Room) -> Vec<(String, u64)> {
        let mut raised: Vec<(String, u64)> = room
            .peers()
            .into_iter()
            .filter_map(|p| p.hand.map(|h| (p.name, h)))
            .collect();
        raised.sort_by_key(|(_, order)| *order);
        raised
    }

    #[test]
    fn hands_go_up_in_order_and_come_down() {
        let mut room = room();
        for (id, name) in [(1, "Ann"), (2, "Bob"), (3, "Cat")] {
            enter(&mut room, PeerId(id), name, T0).unwrap();
        }
        d(room.set_hand(PeerId(2), true, T0)).unwrap();
        let out = d(room.set_hand(PeerId(1), true, T0)).unwrap();
        assert_eq!(out[0].to, Recipients::Everyone);
        assert!(d(room.set_hand(PeerId(1), true, T0)).unwrap().is_empty());
        let order: Vec<String> = hands(&room).into_iter().map(|(n, _)| n).collect();
        assert_eq!(order, ["Bob", "Ann"]);
        d(room.set_hand(PeerId(2), false, T0)).unwrap();
        d(room.set_hand(PeerId(2), true, T0)).unwrap();
        let order: Vec<String> = hands(&room).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            order,
            ["Ann", "Bob"],
            "raising again goes to the end of the line"
        );
    }

    #[test]
    fn reactions_are_from_the_offered_set_and_rate_limited() {
        let mut room = room();
        enter(&mut room, PeerId(1), "Ann", T0).unwrap();
        let out = d(room.react(PeerId(1), "👏".into(), T0)).unwrap();
        assert_eq!(
            out[0].msg,
            ServerMsg::Reaction {
                from: PeerId(1),
                emoji: "👏".into()
            }
        );
        assert_eq!(
            d(room.react(PeerId(1), "<script>".into(), T0))
                .unwrap_err()
                .code,
            ErrorCode::InvalidReaction
        );
        let accepted = (0..10)
            .filter(|_| d(room.react(PeerId(1), "🎉".into(), T0)).is_ok())
            .count();
        assert_eq!(accepted, 4, "a burst of five, one already used");
    }

    /// The ids in the first delivery's `joined` history, and its `more_history`.
    fn replayed(out: &[Delivery]) -> (Vec<u64>, bool) {
        let ServerMsg::Joined {
            history,
            more_history,
            ..
        } = &out[0].msg
        else {
            panic!("expected joined, got {:?}", out[0].msg);
        };
        (history.iter().map(|e| e.id.0).collect(), *more_history)
    }

    #[test]
    fn a_join_replays_the_newest_messages_that_fit_the_budget_and_says_more_remain() {
        let text = "x".repeat(1000);
        let one = serde_json::to_string(&entry(10, &text)).unwrap().len() + 1;
        let mut room = room_with(RoomLimits {
            history_len: 50,
            max_replay_bytes: 3 * one + 10,
            ..RoomLimits::default()
        });
        let stored: Vec<ChatEntry> = (1..=20).map(|id| entry(id, &text)).collect();
        room.restore(stored, Some(MessageId(20)), 0);
        let out = enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        assert_eq!(replayed(&out), (vec![18, 19, 20], true));
    }

    #[test]
    fn a_single_message_larger_than_the_budget_is_still_sent_and_short_history_is_complete() {
        let mut room = room_with(RoomLimits {
            max_replay_bytes: 10,
            ..RoomLimits::default()
        });
        room.restore(
            vec![entry(1, "long enough to pass ten bytes")],
            Some(MessageId(1)),
            0,
        );
        let out = enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        assert_eq!(replayed(&out), (vec![1], false));
    }

    #[test]
    fn older_pages_come_from_storage_merged_with_memory_within_the_budget() {
        let text = "y".repeat(500);
        let one = serde_json::to_string(&entry(10, &text)).unwrap().len() + 1;
        let mut room = room_with(RoomLimits {
            history_len: 4,
            max_replay_bytes: 4 * one,
            history: RateLimit::new(2, 1),
            ..RoomLimits::default()
        });
        let all: Vec<ChatEntry> = (1..=12).map(|id| entry(id, &text)).collect();
        room.restore(all.clone(), Some(MessageId(12)), 0);
        enter(&mut room, PeerId(2), "Bob", T0).unwrap();
        let outcome = room
            .request(
                PeerId(2),
                ClientMsg::LoadHistory {
                    before: MessageId(10),
                },
                T0,
            )
            .unwrap();
        assert!(outcome.deliveries.is_empty());
        let need = outcome.need_history.expect("a storage read");
        assert_eq!(
            need,
            HistoryNeed {
                peer: PeerId(2),
                range: HistoryRange {
                    after: MessageId(0),
                    before: Some(MessageId(10)),
                    limit: HISTORY_READ_LIMIT,
                    max_bytes: 4 * one,
                },
            }
        );
        // Storage lags: it has 1..=8 only; the room's memory adds 9.
        let stored = all[..8].to_vec();
        let page = room.history_loaded(need, stored);
        assert_eq!(page.deliveries[0].to, Recipients::Only(PeerId(2)));
        let ServerMsg::HistoryPage { entries, more } = &page.deliveries[0].msg else {
            panic!("expected a page, got {:?}", page.deliveries[0].msg);
        };
        let ids: Vec<u64> = entries.iter().map(|e| e.id.0).collect();
        assert_eq!(ids, [6, 7, 8, 9]);
        assert!(more);
        // The budget is two pages at once; the third is refused.
        let again = ClientMsg::LoadHistory {
            before: MessageId(6),
        };
        room.request(PeerId(2), again.clone(), T0).unwrap();
        let refused = room.request(PeerId(2), again.clone(), T0).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        // Only members may page.
        let stranger = room.request(PeerId(7), again, T0).unwrap_err();
        assert_eq!(stranger.code, ErrorCode::NotJoined);
    }

    fn join_from(
        room: &mut Room,
        connection: u64,
        token: &str,
        address: &str,
    ) -> Result<Joined, Refusal> {
        let request = JoinRequest {
            name: "Ann".into(),
            resume: Some(token.to_string()),
            last_seen: None,
            address: Some(address.parse().unwrap()),
            ..JoinRequest::default()
        };
        room.join(
            PeerId(connection),
            request,
            format!("token-{connection}"),
            T0,
        )
    }

    #[test]
    fn a_token_resumes_an_away_member_once_and_a_live_one_only_from_the_same_address() {
        let mut room = room();
        let first = join_from(&mut room, 1, "", "10.0.0.1").unwrap();
        assert!(!first.resumed);
        // Ann is connected: her token, used from elsewhere, takes nothing over.
        let stolen = join_from(&mut room, 2, "token-1", "10.9.9.9").unwrap_err();
        assert_eq!(stolen.code, ErrorCode::SessionInUse);
        assert!(room.is_member(PeerId(1)));
        // From her own address (her page reconnecting before the server noticed the drop)
        // it resumes, and the token changes.
        let again = join_from(&mut room, 3, "token-1", "10.0.0.1").unwrap();
        assert!(again.resumed && again.peer == PeerId(1));
        let ServerMsg::Joined { resume_token, .. } = &again.outcome.deliveries[0].msg else {
            panic!("expected joined");
        };
        assert_eq!(resume_token, "token-3");
        // Once she is away, the current token resumes from anywhere; the old one is dead.
        room.disconnect(PeerId(1), T0);
        let old = join_from(&mut room, 4, "token-1", "10.0.0.7").unwrap_err();
        assert_eq!(old.code, ErrorCode::NameTaken);
        let moved = join_from(&mut room, 5, "token-3", "10.0.0.7").unwrap();
        assert!(moved.resumed && moved.peer == PeerId(1));
    }

    #[test]
    fn after_a_crash_numbering_skips_the_ids_that_may_have_been_delivered_unstored() {
        let mut room = room();
        room.restore(vec![entry(7, "stored")], Some(MessageId(7)), 1_000);
        assert_eq!(room.next_message_id(), MessageId(1_008));
        // A room with nothing stored may still have delivered ids 1, 2, … before the crash.
        let mut empty = room_with(RoomLimits::default());
        empty.restore(Vec::new(), None, 1_000);
        assert_eq!(empty.next_message_id(), MessageId(1_001));
        empty.restore(Vec::new(), None, 0);
        assert_eq!(empty.next_message_id(), MessageId(1));
    }
}
