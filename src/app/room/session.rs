//! The meeting page's protocol state machine, pure: server messages, socket events, timers and
//! the person's actions go in; the new state and commands (send this, open a socket, reconnect
//! in N ms, tell the call glue to dial or hang up) come out. No browser types, no clock, no
//! randomness (the time and a jitter value are inputs), so it is unit-tested like the room
//! core. `MeetingState` (mod.rs) feeds it and carries out its commands.

use crate::core::names::tidy_name;
use crate::core::room::RoomLimits;
use crate::core::Refusal;
use crate::protocol::{
    close_code, Breakouts, CallMode, ClientMsg, Dismissal, ErrorCode, IceServer, Limits,
    LinkFailure, MediaState, MeetingRules, Moderation, NamedPeer, PeerId, RemoteTrack, Role,
    ServerMsg, Signal, TrackSource, UnixMillis, PROTOCOL_VERSION,
};

use super::model::{ChatStream, Notice, Roster};
use super::toasts::{ToastKind, Toasts, TOAST_MS};

/// How long a reaction stays on screen.
pub const REACTION_MS: u32 = 4000;

/// Where the page is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Choosing a name and checking camera and microphone.
    Lobby,
    Joining,
    /// In the meeting's waiting room until a host lets this page in.
    Waiting,
    InRoom,
    Ended(Ending),
}

/// Why the meeting ended for this page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    YouLeft,
    ConnectionLost,
    /// The server closed the connection and said why.
    Disconnected(String),
    /// Came back too late: the room no longer has a place under this name.
    CouldNotRejoin(Refusal),
    /// This member went on in another tab or window.
    SignedInElsewhere,
    /// A host (named) removed this member.
    Removed(String),
    /// A host (named) ended the meeting for everyone.
    MeetingEnded(String),
    /// A host (named) did not let this page in from the waiting room.
    Denied(String),
    /// A host locked the meeting while this page waited.
    LockedOut,
}

impl Ending {
    /// Whether joining again makes sense: not for someone removed, nor into an ended meeting.
    pub fn may_rejoin(&self) -> bool {
        !matches!(
            self,
            Ending::Removed(_) | Ending::MeetingEnded(_) | Ending::Denied(_)
        )
    }
}

/// What a host did that this page shows in a banner until dismissed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostNotice {
    /// `by` turned off this member's microphone, camera or screen share.
    TurnedOff { by: String, source: TrackSource },
    /// `by` lets this member turn on again what a host turned off.
    UnmuteAllowed { by: String },
    /// This member is the host now; the key opens the meeting as host later (the host link).
    YouAreHost { key: String },
}

/// What the page keeps between visits to come back into a room as the same browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinKeys {
    /// The browser's own random id (a host's removal bars it).
    pub browser: Option<String>,
    /// This room's host key, if this browser was its host (or holds a host link).
    pub host_key: Option<String>,
    /// The meeting password as typed, if the meeting asked for one.
    pub password: Option<String>,
    /// The signed token from the room link (`?token=`), on servers that require one.
    pub token: Option<String>,
}

/// The display name a signed token carries (its `name` claim), to show on the pre-join
/// screen: the server uses it whatever the page sends. Read without checking the signature,
/// which is the server's job.
pub fn token_name(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        name: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64url_decode(payload)?;
    serde_json::from_slice::<Claims>(&json).ok()?.name
}

/// Unpadded base64url, as in a JWT; `None` for anything else.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(bytes)
}

/// Whether this page takes part in the room's call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPhase {
    Off,
    Joining,
    In,
    /// The server said no (the call is full). Chat still works.
    Refused(Refusal),
}

/// The problem shown next to the controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    Refused(Refusal),
    /// A message could not be sent: there is no connection right now.
    NotConnected,
    ConnectionLost,
    /// A host turned this off and only hosts may turn it on again.
    HostBlocked(TrackSource),
}

/// A reaction on screen for a few seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownReaction {
    pub key: u64,
    pub from: PeerId,
    pub emoji: String,
}

/// What a dropped connection needs to come back as the same member.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rejoin {
    room: String,
    name: String,
    token: Option<String>,
}

/// Everything that can happen to the session.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Server(ServerMsg),
    /// The socket closed (or never opened) with this close code and reason.
    SocketClosed {
        code: u16,
        reason: String,
    },
    /// A socket could not even be created.
    SocketFailed,
    /// The reconnect delay asked for earlier has passed.
    ReconnectDue,
    /// A reaction's time on screen is over.
    ReactionDone(u64),
    /// A note's time on screen is over (unless news came since).
    ToastDone(u64),
    /// The person closed a note.
    DismissToast(u64),
    /// The chat panel opened (its messages are read) or closed.
    ChatPanel(bool),
    /// This browser started or stopped recording the meeting: everyone is told.
    Recording(bool),
    /// The person pressed join (or rejoin) with this name.
    Join {
        room: String,
        name: String,
        keys: JoinKeys,
    },
    Leave,
    Chat(String),
    /// Show the page of chat just older than the oldest line shown.
    LoadEarlier,
    RetryCall,
    ToggleHand,
    /// Show everyone this reaction.
    React(String),
    /// What this browser sends changed (a device toggled or switched).
    LocalMedia(MediaState),
    /// A host action (`mute`, `remove`, `set_role`, `set_rules`, …) to send.
    Host(ClientMsg),
    /// The person closed the host notice.
    DismissHostNotice,
    /// The person tried to turn on what a host keeps off.
    Blocked(TrackSource),
    /// Go to breakout room `n`, or back to the main room (`None`).
    GoTo(Option<u8>),
}

/// What the page must do for the session.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Send(ClientMsg),
    /// Open a new socket (dropping any old one) and send these first.
    Connect(Vec<ClientMsg>),
    /// Drop the socket; a deliberate close, so the others see this member leave at once.
    CloseSocket,
    /// Feed [`Input::ReconnectDue`] after this many milliseconds.
    ReconnectIn(u32),
    /// Feed [`Input::ReactionDone`] with this key after this many milliseconds.
    ForgetReactionIn {
        key: u64,
        ms: u32,
    },
    /// Feed [`Input::ToastDone`] with this id after this many milliseconds.
    ForgetToastIn {
        id: u64,
        ms: u32,
    },
    /// Remember the display name for the next visit.
    SaveName(String),
    /// Remember this room's host key for the next visit.
    SaveHostKey {
        room: String,
        key: String,
    },
    /// A host turned this off: switch the device (or the screen share) off here too.
    TurnOff(TrackSource),
    /// Open camera and microphone (if not open yet).
    StartMedia,
    Call(CallCommand),
}

/// Commands for the WebRTC glue.
#[derive(Clone, Debug, PartialEq)]
pub enum CallCommand {
    /// Start the call: connect to each of `peers` (mesh), or to the server (sfu).
    Join {
        me: PeerId,
        ice_servers: Vec<IceServer>,
        peers: Vec<PeerId>,
        mode: CallMode,
    },
    /// The call moved between browser-to-browser and through-the-server media: close the
    /// old connections and open the new ones, keeping the devices.
    SwitchMode {
        mode: CallMode,
        peers: Vec<PeerId>,
    },
    /// The server's answer to our offer for the connection to it.
    ServerAnswer {
        sdp: String,
    },
    /// The server's new offer for the connection to it, and whose media each section carries.
    ServerOffer {
        sdp: String,
        tracks: Vec<RemoteTrack>,
    },
    Signal {
        from: PeerId,
        signal: Signal,
    },
    /// Close the link to this member.
    HangUp(PeerId),
    /// The member gave up on its browser-to-browser link to us: close our side the same way.
    PeerGaveUp {
        peer: PeerId,
        reason: LinkFailure,
    },
    /// Close every link except to these members.
    KeepOnly(Vec<PeerId>),
    /// Leave the call but keep the devices (the call starts over).
    Leave,
    /// Stop camera and microphone but keep the page's media (the call was full).
    ReleaseDevices,
    /// Leave the call and release camera and microphone.
    StopMedia,
}

/// What the session needs from outside for one step.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    pub now: UnixMillis,
    /// A random number in 0..1, to spread reconnects.
    pub jitter: f64,
}

/// The page's protocol state.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub phase: Phase,
    pub call: CallPhase,
    pub me: Option<PeerId>,
    pub roster: Roster,
    pub chat: ChatStream,
    pub alert: Option<Alert>,
    pub limits: Option<Limits>,
    /// What this browser sends (or would send, before joining).
    pub local: MediaState,
    /// Reconnect attempts since the connection dropped; 0 while connected.
    pub reconnecting: u32,
    pub reactions: Vec<ShownReaction>,
    /// The server has older chat than the page shows.
    pub more_history: bool,
    /// A `load_history` is on its way.
    pub loading_history: bool,
    /// How the call carries media, as the server last said.
    pub call_mode: CallMode,
    /// In a call through the server: who speaks, as the server hears it.
    pub server_speaker: Option<PeerId>,
    pub rules: MeetingRules,
    /// For hosts and co-hosts: who was removed (and may be let back in).
    pub removed: Vec<NamedPeer>,
    /// For hosts and co-hosts: who waits to be let in.
    pub waiting: Vec<NamedPeer>,
    pub host_notice: Option<HostNotice>,
    /// What a host turned off here; under `only_hosts_unmute` it stays off (the server
    /// refuses it too) until a host allows it.
    pub blocked: MediaState,
    /// The meeting asked for its password: the pre-join screen shows the field.
    pub needs_password: bool,
    /// The meeting's breakout rooms while open, and the one this page is in.
    pub breakouts: Option<Breakouts>,
    pub in_breakout: Option<u8>,
    /// Notes over the stage: joins, leaves, hands, and messages while the chat is closed.
    pub toasts: Toasts,
    pub chat_open: bool,
    /// Messages from others that arrived while the chat was closed.
    pub unread: usize,
    /// The last chat message the server refused, numbered: the page puts it back in the input.
    pub returned_chat: Option<(u64, String)>,
    rejoin: Option<Rejoin>,
    /// A socket is open and the server greeted it: sends will go out.
    greeted: bool,
    /// What the last `join` presented, and the host key since received; a reconnect
    /// presents them again.
    keys: JoinKeys,
    next_reaction: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            phase: Phase::Lobby,
            call: CallPhase::Off,
            me: None,
            roster: Roster::default(),
            chat: ChatStream::default(),
            alert: None,
            limits: None,
            local: MediaState::default(),
            reconnecting: 0,
            reactions: Vec::new(),
            more_history: false,
            loading_history: false,
            call_mode: CallMode::Mesh,
            server_speaker: None,
            rules: MeetingRules::default(),
            removed: Vec::new(),
            waiting: Vec::new(),
            host_notice: None,
            blocked: MediaState::default(),
            needs_password: false,
            breakouts: None,
            in_breakout: None,
            toasts: Toasts::default(),
            chat_open: false,
            unread: 0,
            returned_chat: None,
            rejoin: None,
            greeted: false,
            keys: JoinKeys::default(),
            next_reaction: 0,
        }
    }
}

/// Backoff before reconnect attempt `attempt` (1, 2, …): doubling from a quarter second up to
/// eight seconds, then spread by ±50% (`jitter` in 0..1) so that a restarted server is not hit
/// by every client in the same instant.
pub fn reconnect_delay_ms(attempt: u32, jitter: f64) -> u32 {
    let base = 250f64 * 2f64.powi(attempt.saturating_sub(1).min(5) as i32);
    (base.min(8000.0) * (0.5 + jitter.clamp(0.0, 1.0))) as u32
}

impl Session {
    /// The server's limits, or the defaults until its `hello` arrives.
    pub fn limits_or_default(&self) -> Limits {
        self.limits.unwrap_or(RoomLimits::DEFAULT_ADVERTISED)
    }

    /// Whether a message sent now would reach the server.
    pub fn can_send(&self) -> bool {
        self.greeted
    }

    /// This page's role in the room.
    pub fn my_role(&self) -> Role {
        self.me
            .and_then(|me| self.roster.get(me))
            .map(|p| p.role)
            .unwrap_or_default()
    }

    /// Whether this page may turn `source` on, as the server will judge it.
    pub fn may_turn_on(&self, source: TrackSource) -> bool {
        let blocked = match source {
            TrackSource::Microphone => self.blocked.mic,
            TrackSource::Camera => self.blocked.camera,
            TrackSource::Screen => self.blocked.screen,
        };
        !(blocked && self.rules.only_hosts_unmute)
    }

    /// The name of member `peer`, or nothing if they are gone (the text then says "a host").
    fn name_of(&self, peer: PeerId) -> String {
        self.roster
            .get(peer)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    pub fn my_hand_raised(&self) -> bool {
        self.me
            .and_then(|me| self.roster.get(me))
            .is_some_and(|p| p.hand.is_some())
    }

    /// Members in the call other than this page, in join order.
    pub fn others_in_call(&self) -> Vec<PeerId> {
        self.roster
            .peers
            .iter()
            .filter(|p| p.in_call && Some(p.id) != self.me)
            .map(|p| p.id)
            .collect()
    }

    /// Shows news in a note and asks to be told when its time is up.
    fn toast(
        &mut self,
        kind: ToastKind,
        name: &str,
        text: Option<&str>,
        env: Env,
        out: &mut Vec<Command>,
    ) {
        let id = self.toasts.push(kind, name, text, env.now);
        out.push(Command::ForgetToastIn { id, ms: TOAST_MS });
    }

    /// Applies one input; returns what the page must do, in order.
    pub fn step(&mut self, input: Input, env: Env) -> Vec<Command> {
        let mut out = Vec::new();
        match input {
            Input::Server(msg) => self.on_server(msg, env, &mut out),
            Input::SocketClosed { code, reason } => self.on_closed(code, reason, env, &mut out),
            Input::SocketFailed if self.phase == Phase::Joining => {
                self.phase = Phase::Lobby;
                self.call = CallPhase::Off;
                self.alert = Some(Alert::ConnectionLost);
            }
            Input::SocketFailed => self.on_closed(0, String::new(), env, &mut out),
            Input::ReconnectDue => self.reconnect(&mut out),
            Input::ReactionDone(key) => self.reactions.retain(|r| r.key != key),
            Input::ToastDone(id) => self.toasts.expire(id, env.now),
            Input::Recording(on) => self.send_if_connected(ClientMsg::Recording { on }, &mut out),
            Input::DismissToast(id) => self.toasts.dismiss(id),
            Input::ChatPanel(open) => {
                self.chat_open = open;
                if open {
                    self.unread = 0;
                    self.toasts.drop_messages();
                }
            }
            Input::Join { room, name, keys } => self.join(room, name, keys, &mut out),
            Input::Leave => {
                self.rejoin = None;
                self.greeted = false;
                out.push(Command::CloseSocket);
                self.end_call(&mut out);
                self.phase = Phase::Ended(Ending::YouLeft);
            }
            Input::Chat(text) => self.send_if_connected(ClientMsg::Chat { text }, &mut out),
            Input::LoadEarlier => {
                if let Some(before) = self
                    .chat
                    .oldest_message_id()
                    .filter(|_| self.can_load_earlier())
                {
                    self.loading_history = true;
                    out.push(Command::Send(ClientMsg::LoadHistory { before }));
                }
            }
            Input::RetryCall => {
                out.push(Command::StartMedia);
                self.call = CallPhase::Joining;
                out.push(Command::Send(ClientMsg::JoinCall { media: self.local }));
            }
            Input::ToggleHand => out.push(Command::Send(ClientMsg::Hand {
                raised: !self.my_hand_raised(),
            })),
            Input::React(emoji) => out.push(Command::Send(ClientMsg::React { emoji })),
            Input::LocalMedia(media) => {
                if self.local != media {
                    self.local = media;
                    if self.call == CallPhase::In {
                        out.push(Command::Send(ClientMsg::Media { media }));
                    }
                }
            }
            Input::Host(msg) => self.send_if_connected(msg, &mut out),
            Input::DismissHostNotice => self.host_notice = None,
            Input::Blocked(source) => self.alert = Some(Alert::HostBlocked(source)),
            Input::GoTo(Some(room)) => {
                self.send_if_connected(ClientMsg::EnterBreakout { room }, &mut out)
            }
            Input::GoTo(None) => self.send_if_connected(ClientMsg::ReturnToMain, &mut out),
        }
        out
    }

    /// Whether "load earlier messages" can do anything now.
    pub fn can_load_earlier(&self) -> bool {
        self.greeted
            && self.phase == Phase::InRoom
            && self.more_history
            && !self.loading_history
            && self.chat.has_room_for_older()
            && self.chat.oldest_message_id().is_some()
    }

    fn join(&mut self, room: String, name: String, keys: JoinKeys, out: &mut Vec<Command>) {
        let chosen = match tidy_name(&name, self.limits_or_default().max_name_chars) {
            Ok(chosen) => chosen,
            Err(refusal) => {
                self.alert = Some(Alert::Refused(refusal));
                return;
            }
        };
        out.push(Command::SaveName(chosen.clone()));
        self.alert = None;
        self.phase = Phase::Joining;
        self.call = CallPhase::Joining;
        out.push(Command::StartMedia);
        self.keys = keys.clone();
        let join = ClientMsg::Join {
            room,
            name: chosen,
            resume: None,
            last_seen: None,
            host_key: keys.host_key,
            browser: keys.browser,
            password: keys.password,
            token: keys.token,
        };
        // A socket that is still open after a refused name is reused.
        if self.greeted {
            out.push(Command::Send(join));
            return;
        }
        self.chat.start_over();
        out.push(Command::Connect(vec![hello(), join]));
    }

    fn on_server(&mut self, msg: ServerMsg, env: Env, out: &mut Vec<Command>) {
        match msg {
            ServerMsg::Hello { limits, .. } => {
                self.greeted = true;
                self.limits = Some(limits);
            }
            ServerMsg::Joined {
                you,
                peers,
                history,
                more_history,
                name,
                room,
                resumed,
                resume_token,
                host_key,
                rules,
                waiting,
                removed,
                breakout,
                breakouts,
            } => {
                let returning = self.reconnecting > 0;
                let previous = self.me;
                self.me = Some(you);
                // Into or out of a breakout room: another room's chat, people and call.
                let moved = self.phase == Phase::InRoom && self.in_breakout != breakout;
                if moved {
                    self.chat.start_over();
                    self.more_history = false;
                }
                // Links to members who are gone (or whose ids changed with a restarted server)
                // are closed; the same member resumed keeps its links.
                let keep = if resumed && !moved {
                    peers.iter().map(|p| p.id).collect()
                } else {
                    Vec::new()
                };
                out.push(Command::Call(CallCommand::KeepOnly(keep)));
                // Resumed in a room another server took over (the one before died or shut
                // down): the member is back, but the call starts over there.
                let call_kept = peers.iter().any(|p| p.id == you && p.in_call);
                self.roster = Roster { peers };
                // The replay was cut to fit the server's budget: what it left out between the
                // lines shown and the replay would be a hole, so start over from the replay
                // and let the person page back.
                let seen = self.chat.last_message_id();
                let hole = more_history
                    && history
                        .first()
                        .zip(seen)
                        .is_some_and(|(first, seen)| first.id.0 > seen.0 + 1);
                if hole {
                    self.chat.start_over();
                }
                self.more_history = more_history || (self.more_history && !hole);
                self.loading_history = false;
                for entry in history {
                    self.chat.push_message(entry, Some(you));
                }
                let breakout_name = breakout.and_then(|n| {
                    breakouts
                        .as_ref()
                        .and_then(|b| b.rooms.get(usize::from(n)))
                        .map(|r| r.name.clone())
                });
                let notice = match (returning, resumed) {
                    _ if moved => Notice::Moved {
                        breakout: breakout_name,
                    },
                    (false, _) => Notice::YouJoined {
                        room: room.clone(),
                        name: name.clone(),
                    },
                    (true, true) => Notice::Reconnected,
                    (true, false) => Notice::ReconnectedAfterRestart,
                };
                self.in_breakout = breakout;
                self.breakouts = breakouts.map(|b| *b);
                self.chat.push_notice(notice, Some(env.now));
                self.rules = rules;
                self.waiting = waiting;
                self.removed = removed;
                if let Some(key) = host_key {
                    self.got_host_key(&room, key, !returning, out);
                }
                // A breakout room is entered from the main room only: a dropped connection
                // comes back to the main room.
                if breakout.is_none() {
                    self.rejoin = Some(Rejoin {
                        room,
                        name,
                        token: Some(resume_token),
                    });
                }
                self.reconnecting = 0;
                self.alert = None;
                self.phase = Phase::InRoom;
                // After a restart the call starts over under the new id; a move starts it
                // over in the new room.
                let restarted = returning && !resumed && previous != Some(you);
                let in_a_call = matches!(self.call, CallPhase::In | CallPhase::Joining);
                let taken_over = returning && resumed && !call_kept && in_a_call;
                if moved || restarted || taken_over {
                    let was_in_call = matches!(self.call, CallPhase::In | CallPhase::Joining);
                    out.push(Command::Call(CallCommand::Leave));
                    if was_in_call {
                        self.call = CallPhase::Joining;
                    }
                }
                // Asked only now: a refused name must not be followed by a refused call.
                if self.call == CallPhase::Joining {
                    out.push(Command::Send(ClientMsg::JoinCall { media: self.local }));
                }
            }
            ServerMsg::HistoryPage { entries, more } => {
                for entry in entries {
                    self.chat.push_message(entry, self.me);
                }
                self.more_history = more;
                self.loading_history = false;
            }
            ServerMsg::PeersJoined { peers } => {
                for peer in peers {
                    self.toast(ToastKind::Joined, &peer.name, None, env, out);
                    let notice = Notice::Joined {
                        name: peer.name.clone(),
                    };
                    self.roster.add(peer);
                    self.chat.push_notice(notice, Some(env.now));
                }
            }
            ServerMsg::PeerLeft { peer, reason } => {
                out.push(Command::Call(CallCommand::HangUp(peer)));
                if let Some(name) = self.roster.remove(peer) {
                    self.toast(ToastKind::Left, &name, None, env, out);
                    self.chat
                        .push_notice(Notice::Left { name, reason }, Some(env.now));
                }
            }
            ServerMsg::PeerUpdated { peer } => {
                if !peer.in_call {
                    out.push(Command::Call(CallCommand::HangUp(peer.id)));
                }
                let was_host = self
                    .roster
                    .get(peer.id)
                    .is_some_and(|p| p.role == Role::Host);
                let raised_now = peer.hand.is_some()
                    && Some(peer.id) != self.me
                    && self.roster.get(peer.id).is_some_and(|p| p.hand.is_none());
                if raised_now {
                    self.toast(ToastKind::Hand, &peer.name, None, env, out);
                }
                if peer.role == Role::Host && !was_host {
                    let name = peer.name.clone();
                    self.chat
                        .push_notice(Notice::NewHost { name }, Some(env.now));
                }
                if !peer.role.moderates() && Some(peer.id) == self.me {
                    self.removed.clear();
                }
                self.roster.update(peer);
            }
            ServerMsg::CallJoined {
                peers,
                ice_servers,
                mode,
            } => {
                self.call = CallPhase::In;
                self.call_mode = mode;
                self.server_speaker = None;
                let Some(me) = self.me else {
                    return;
                };
                out.push(Command::Call(CallCommand::Join {
                    me,
                    ice_servers,
                    peers,
                    mode,
                }));
                // The server recorded what we asked to send when joining; correct it if a
                // device changed meanwhile.
                out.push(Command::Send(ClientMsg::Media { media: self.local }));
            }
            ServerMsg::Signal { from, signal } => {
                out.push(Command::Call(CallCommand::Signal { from, signal }));
            }
            ServerMsg::LinkFailed { peer, reason } => {
                out.push(Command::Call(CallCommand::PeerGaveUp { peer, reason }));
            }
            ServerMsg::CallMode { mode } => {
                self.call_mode = mode;
                if self.call == CallPhase::In {
                    let peers = self.others_in_call();
                    out.push(Command::Call(CallCommand::SwitchMode { mode, peers }));
                }
            }
            ServerMsg::MediaAnswer { sdp } => {
                out.push(Command::Call(CallCommand::ServerAnswer { sdp }));
            }
            ServerMsg::ActiveSpeaker { peer } => self.server_speaker = peer,
            ServerMsg::MediaOffer { sdp, tracks } => {
                out.push(Command::Call(CallCommand::ServerOffer { sdp, tracks }));
            }
            ServerMsg::Chat { entry } => {
                if Some(entry.from) == self.me {
                    self.alert = None;
                } else if !self.chat_open {
                    self.unread += 1;
                    let from = ToastKind::Message { from: entry.from };
                    self.toast(from, &entry.name, Some(&entry.text), env, out);
                }
                self.chat.push_message(entry, self.me);
            }
            ServerMsg::Reaction { from, emoji } => {
                self.next_reaction += 1;
                let key = self.next_reaction;
                self.reactions.push(ShownReaction { key, from, emoji });
                out.push(Command::ForgetReactionIn {
                    key,
                    ms: REACTION_MS,
                });
            }
            ServerMsg::Rooms { .. } => {}
            ServerMsg::HostKey { key } => {
                if let Some(room) = self.rejoin.as_ref().map(|r| r.room.clone()) {
                    self.got_host_key(&room, key, true, out);
                }
            }
            ServerMsg::Moderated { by, action } => {
                let by = self.name_of(by);
                self.host_notice = Some(match action {
                    Moderation::Muted { source } => {
                        match source {
                            TrackSource::Microphone => self.blocked.mic = true,
                            TrackSource::Camera => self.blocked.camera = true,
                            TrackSource::Screen => self.blocked.screen = true,
                        }
                        out.push(Command::TurnOff(source));
                        HostNotice::TurnedOff { by, source }
                    }
                    Moderation::UnmuteAllowed => {
                        self.blocked = MediaState::default();
                        if matches!(self.alert, Some(Alert::HostBlocked(_))) {
                            self.alert = None;
                        }
                        HostNotice::UnmuteAllowed { by }
                    }
                });
            }
            ServerMsg::Rules { rules } => {
                if rules.locked != self.rules.locked {
                    self.chat.push_notice(
                        if rules.locked {
                            Notice::Locked
                        } else {
                            Notice::Unlocked
                        },
                        Some(env.now),
                    );
                }
                if !rules.only_hosts_unmute {
                    // As the server does: turning the rule off forgets what hosts turned off.
                    self.blocked = MediaState::default();
                }
                self.rules = rules;
            }
            ServerMsg::RemovedList { people } => self.removed = people,
            ServerMsg::WaitingList { people } => self.waiting = people,
            ServerMsg::BreakoutsChanged { breakouts } => self.breakouts = breakouts,
            ServerMsg::Broadcast { name, text, .. } => {
                self.chat
                    .push_notice(Notice::Broadcast { name, text }, Some(env.now));
            }
            ServerMsg::Waiting => {
                if self.phase == Phase::Joining {
                    self.phase = Phase::Waiting;
                    self.alert = None;
                }
            }
            ServerMsg::Dismissed {
                reason, by_name, ..
            } => {
                self.rejoin = None;
                self.reconnecting = 0;
                self.greeted = false;
                out.push(Command::CloseSocket);
                self.end_call(out);
                self.phase = Phase::Ended(match reason {
                    Dismissal::Removed => Ending::Removed(by_name),
                    Dismissal::MeetingEnded => Ending::MeetingEnded(by_name),
                    Dismissal::Denied => Ending::Denied(by_name),
                    Dismissal::Locked => Ending::LockedOut,
                });
            }
            ServerMsg::Error {
                code,
                message,
                chat_text,
            } => {
                if let Some(text) = chat_text {
                    let number = self.returned_chat.as_ref().map_or(1, |(n, _)| n + 1);
                    self.returned_chat = Some((number, text));
                }
                self.on_error(Refusal::new(code, message), env, out);
            }
        }
    }

    /// Sends `msg` if a connection is up; otherwise says there is none (nothing is queued).
    fn send_if_connected(&mut self, msg: ClientMsg, out: &mut Vec<Command>) {
        if self.greeted {
            out.push(Command::Send(msg));
        } else {
            self.alert = Some(Alert::NotConnected);
        }
    }

    /// Keeps the host key for this room and, the first time, shows the host link.
    /// Saved every time (a host link's key is not in storage yet); shown only when new.
    fn got_host_key(&mut self, room: &str, key: String, show: bool, out: &mut Vec<Command>) {
        out.push(Command::SaveHostKey {
            room: room.to_string(),
            key: key.clone(),
        });
        if self.keys.host_key.as_ref() == Some(&key) {
            return;
        }
        self.keys.host_key = Some(key.clone());
        if show {
            self.host_notice = Some(HostNotice::YouAreHost { key });
        }
    }

    fn on_error(&mut self, refusal: Refusal, env: Env, out: &mut Vec<Command>) {
        // Refusals that only a person can change: another name, the password, a new link.
        let needs_the_person = matches!(
            refusal.code,
            ErrorCode::InvalidName
                | ErrorCode::NameTaken
                | ErrorCode::RoomFull
                | ErrorCode::TooManyRooms
                | ErrorCode::Locked
                | ErrorCode::Removed
                | ErrorCode::PasswordRequired
                | ErrorCode::WrongPassword
                | ErrorCode::TooManyGuesses
                | ErrorCode::TokenRequired
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenAlgorithm
                | ErrorCode::TokenExpired
                | ErrorCode::TokenNotYetValid
                | ErrorCode::TokenWrongRoom
                | ErrorCode::TokenClaims
        );
        if matches!(
            refusal.code,
            ErrorCode::PasswordRequired | ErrorCode::WrongPassword
        ) {
            self.needs_password = true;
        }
        // While joining, a rate limit (password guesses) also hands back to the person.
        let ends_a_join = needs_the_person
            || matches!(
                refusal.code,
                ErrorCode::InvalidRoom | ErrorCode::Unavailable | ErrorCode::RateLimited
            );
        let ends_a_rejoin = needs_the_person;
        // Passing conditions: the old connection is not gone yet, the server is busy.
        let retries_a_rejoin = matches!(
            refusal.code,
            ErrorCode::SessionInUse | ErrorCode::Unavailable | ErrorCode::RateLimited
        );
        if refusal.code == ErrorCode::CallFull {
            self.call = CallPhase::Refused(refusal);
            // Chat-only: release the camera and microphone.
            out.push(Command::Call(CallCommand::ReleaseDevices));
        } else if ends_a_join && self.phase == Phase::Joining {
            self.phase = Phase::Lobby;
            self.call = CallPhase::Off;
            self.alert = Some(Alert::Refused(refusal));
        } else if retries_a_rejoin && self.reconnecting > 0 {
            self.greeted = false;
            self.retry_later(env, out);
        } else if ends_a_rejoin && self.reconnecting > 0 {
            self.greeted = false;
            out.push(Command::CloseSocket);
            self.end_call(out);
            self.reconnecting = 0;
            self.phase = Phase::Ended(Ending::CouldNotRejoin(refusal));
        } else {
            self.alert = Some(Alert::Refused(refusal));
        }
    }

    fn on_closed(&mut self, code: u16, reason: String, env: Env, out: &mut Vec<Command>) {
        self.greeted = false;
        if matches!(
            code,
            close_code::REMOVED | close_code::MEETING_ENDED | close_code::DENIED
        ) && matches!(self.phase, Phase::Joining | Phase::Waiting | Phase::InRoom)
        {
            // The `dismissed` that names the host did not arrive; the close code still says
            // not to come back.
            self.rejoin = None;
            self.reconnecting = 0;
            self.end_call(out);
            let by = String::new();
            self.phase = Phase::Ended(match code {
                close_code::REMOVED => Ending::Removed(by),
                close_code::DENIED => Ending::Denied(by),
                _ => Ending::MeetingEnded(by),
            });
            return;
        }
        if code == close_code::SIGNED_IN_ELSEWHERE && self.phase == Phase::InRoom {
            // Reconnecting would take the meeting back from the other tab, and so on.
            self.rejoin = None;
            self.reconnecting = 0;
            self.end_call(out);
            self.phase = Phase::Ended(Ending::SignedInElsewhere);
            return;
        }
        // A dropped connection of a member is retried; a first join that failed, or a
        // version the server does not speak, is not.
        if self.phase == Phase::InRoom
            && self.rejoin.is_some()
            && code != close_code::PROTOCOL_ERROR
        {
            self.retry_later(env, out);
            return;
        }
        if matches!(self.phase, Phase::Joining | Phase::Waiting | Phase::InRoom) {
            self.end_call(out);
            self.phase = Phase::Ended(if reason.is_empty() {
                Ending::ConnectionLost
            } else {
                Ending::Disconnected(reason)
            });
        }
    }

    /// Closes the socket and asks for the next reconnect attempt after the backoff.
    fn retry_later(&mut self, env: Env, out: &mut Vec<Command>) {
        out.push(Command::CloseSocket);
        self.reconnecting += 1;
        out.push(Command::ReconnectIn(reconnect_delay_ms(
            self.reconnecting,
            env.jitter,
        )));
    }

    /// Opens a new socket and comes back as the same member if the server still knows the
    /// token; the history after the newest message held fills the gap.
    fn reconnect(&mut self, out: &mut Vec<Command>) {
        if self.phase != Phase::InRoom {
            return;
        }
        let Some(rejoin) = self.rejoin.clone() else {
            return;
        };
        out.push(Command::Connect(vec![
            hello(),
            ClientMsg::Join {
                room: rejoin.room,
                name: rejoin.name,
                resume: rejoin.token,
                last_seen: self.chat.last_message_id(),
                host_key: self.keys.host_key.clone(),
                browser: self.keys.browser.clone(),
                password: self.keys.password.clone(),
                token: self.keys.token.clone(),
            },
        ]));
    }

    fn end_call(&mut self, out: &mut Vec<Command>) {
        out.push(Command::Call(CallCommand::StopMedia));
        self.call = CallPhase::Off;
    }
}

fn hello() -> ClientMsg {
    ClientMsg::Hello {
        version: PROTOCOL_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::room::model::{test_entry as entry, ChatLine};
    use crate::protocol::{ChatEntry, LeaveReason, MessageId, PeerInfo};

    const ENV: Env = Env {
        now: UnixMillis(1_000),
        jitter: 0.5,
    };

    fn peer(id: u64, name: &str) -> PeerInfo {
        PeerInfo {
            id: PeerId(id),
            name: name.into(),
            in_call: false,
            media: MediaState::default(),
            away: false,
            hand: None,
            role: Default::default(),
            breakout: None,
            recording: false,
        }
    }

    /// `joined` for `you`; resumed, the server kept `you` in the call it was in.
    fn joined(you: u64, resumed: bool, history: Vec<ChatEntry>) -> Input {
        let me = PeerInfo {
            in_call: resumed,
            ..peer(you, "Ann")
        };
        Input::Server(ServerMsg::Joined {
            you: PeerId(you),
            room: "standup".into(),
            name: "Ann".into(),
            peers: vec![me, peer(2, "Bob")],
            history,
            more_history: false,
            resumed,
            resume_token: format!("token-{you}"),
            host_key: None,
            rules: Default::default(),
            waiting: Vec::new(),
            removed: Vec::new(),
            breakout: None,
            breakouts: None,
        })
    }

    /// `joined` whose replay was cut to the server's budget.
    fn joined_with_more(you: u64, resumed: bool, history: Vec<ChatEntry>) -> Input {
        let mut input = joined(you, resumed, history);
        if let Input::Server(ServerMsg::Joined { more_history, .. }) = &mut input {
            *more_history = true;
        }
        input
    }

    fn hello_from_server() -> Input {
        Input::Server(ServerMsg::Hello {
            version: PROTOCOL_VERSION,
            limits: RoomLimits::DEFAULT_ADVERTISED,
        })
    }

    /// The connection broke without a close frame.
    fn dropped() -> Input {
        Input::SocketClosed {
            code: 1006,
            reason: String::new(),
        }
    }

    fn join_as(name: &str) -> Input {
        Input::Join {
            room: "standup".into(),
            name: name.into(),
            keys: JoinKeys {
                browser: Some("browser-1".into()),
                ..JoinKeys::default()
            },
        }
    }

    /// The `join` a page of browser "browser-1" sends.
    fn join_msg(name: &str) -> ClientMsg {
        ClientMsg::Join {
            room: "standup".into(),
            name: name.into(),
            resume: None,
            last_seen: None,
            host_key: None,
            browser: Some("browser-1".into()),
            password: None,
            token: None,
        }
    }

    /// A session that asked to join "standup" as Ann and was greeted by the server.
    fn greeted() -> Session {
        let mut session = Session::default();
        session.step(join_as("Ann"), ENV);
        session.step(hello_from_server(), ENV);
        session
    }

    /// A session that joined "standup" as Ann (peer 1), not yet in the call.
    fn joined_room() -> Session {
        let mut session = greeted();
        session.step(joined(1, false, vec![entry(1, 2)]), ENV);
        session
    }

    /// A session that joined "standup" as Ann (peer 1) and is in the call.
    fn in_room() -> Session {
        let mut session = joined_room();
        session.step(
            Input::Server(ServerMsg::CallJoined {
                peers: vec![PeerId(2)],
                ice_servers: Vec::new(),
                mode: CallMode::Mesh,
            }),
            ENV,
        );
        session
    }

    fn message_ids(session: &Session) -> Vec<u64> {
        session
            .chat
            .lines()
            .filter_map(|l| match &**l {
                ChatLine::Message { entry, .. } => Some(entry.id.0),
                ChatLine::Notice { .. } => None,
            })
            .collect()
    }

    #[test]
    fn the_call_mode_and_the_servers_speaker_are_kept_and_reset_by_a_new_call() {
        let mut session = in_room();
        assert_eq!(session.call_mode, CallMode::Mesh);
        let out = session.step(
            Input::Server(ServerMsg::CallMode {
                mode: CallMode::Sfu,
            }),
            ENV,
        );
        assert_eq!(session.call_mode, CallMode::Sfu);
        assert!(matches!(
            out.as_slice(),
            [Command::Call(CallCommand::SwitchMode {
                mode: CallMode::Sfu,
                ..
            })]
        ));
        let out = session.step(
            Input::Server(ServerMsg::ActiveSpeaker {
                peer: Some(PeerId(2)),
            }),
            ENV,
        );
        assert!(out.is_empty());
        assert_eq!(session.server_speaker, Some(PeerId(2)));
        // A new call starts with nobody speaking.
        session.step(
            Input::Server(ServerMsg::CallJoined {
                peers: Vec::new(),
                ice_servers: Vec::new(),
                mode: CallMode::Sfu,
            }),
            ENV,
        );
        assert_eq!(session.server_speaker, None);
    }

    #[test]
    fn joining_connects_with_hello_then_join_and_asks_for_the_call_once_joined() {
        let mut session = Session::default();
        let out = session.step(join_as("  Ann "), ENV);
        assert_eq!(session.phase, Phase::Joining);
        assert!(out.contains(&Command::SaveName("Ann".into())));
        assert!(out.contains(&Command::Connect(vec![hello(), join_msg("Ann")])));
        session.step(hello_from_server(), ENV);
        let out = session.step(joined(1, false, Vec::new()), ENV);
        assert_eq!(session.phase, Phase::InRoom);
        assert!(out.contains(&Command::Send(ClientMsg::JoinCall {
            media: MediaState::default()
        })));
        assert!(session.can_send());
    }

    #[test]
    fn a_bad_name_is_refused_before_anything_is_sent() {
        let mut session = Session::default();
        let out = session.step(join_as("   "), ENV);
        assert!(out.is_empty());
        assert_eq!(session.phase, Phase::Lobby);
        assert!(
            matches!(&session.alert, Some(Alert::Refused(r)) if r.code == ErrorCode::InvalidName)
        );
    }

    #[test]
    fn a_taken_name_returns_to_the_lobby_and_the_next_try_reuses_the_socket() {
        let mut session = greeted();
        session.step(
            Input::Server(ServerMsg::error(ErrorCode::NameTaken, "taken")),
            ENV,
        );
        assert_eq!(session.phase, Phase::Lobby);
        assert_eq!(session.call, CallPhase::Off);
        let out = session.step(join_as("Ann B"), ENV);
        assert!(out.contains(&Command::Send(join_msg("Ann B"))));
        assert!(!out.iter().any(|c| matches!(c, Command::Connect(_))));
    }

    #[test]
    fn a_dropped_connection_backs_off_then_resumes_with_the_token_and_last_seen() {
        let mut session = in_room();
        session.step(Input::Server(ServerMsg::Chat { entry: entry(2, 2) }), ENV);
        let out = session.step(dropped(), ENV);
        assert_eq!(out, [Command::CloseSocket, Command::ReconnectIn(250)]);
        assert_eq!(session.reconnecting, 1);
        assert_eq!(session.phase, Phase::InRoom);
        // The first attempt fails; the next waits twice as long.
        session.step(Input::ReconnectDue, ENV);
        let out = session.step(Input::SocketFailed, ENV);
        assert_eq!(out, [Command::CloseSocket, Command::ReconnectIn(500)]);
        let out = session.step(Input::ReconnectDue, ENV);
        assert_eq!(
            out,
            [Command::Connect(vec![
                hello(),
                ClientMsg::Join {
                    room: "standup".into(),
                    name: "Ann".into(),
                    resume: Some("token-1".into()),
                    last_seen: Some(MessageId(2)),
                    host_key: None,
                    browser: Some("browser-1".into()),
                    password: None,
                    token: None,
                }
            ])]
        );
        // Resumed: the replay overlaps what was shown; nothing is shown twice, links stay.
        session.step(hello_from_server(), ENV);
        let out = session.step(joined(1, true, vec![entry(2, 2), entry(3, 2)]), ENV);
        assert_eq!(message_ids(&session), [1, 2, 3]);
        assert_eq!(session.reconnecting, 0);
        assert!(out.contains(&Command::Call(CallCommand::KeepOnly(vec![
            PeerId(1),
            PeerId(2)
        ]))));
        assert!(!out.contains(&Command::Call(CallCommand::Leave)));
        assert_eq!(session.call, CallPhase::In);
        assert!(matches!(
            session.chat.lines().last().map(|l| (**l).clone()),
            Some(ChatLine::Notice {
                notice: Notice::Reconnected,
                ..
            })
        ));
    }

    #[test]
    fn after_a_restart_the_page_rejoins_as_new_and_starts_the_call_over() {
        let mut session = in_room();
        session.step(
            Input::SocketClosed {
                code: close_code::GOING_AWAY,
                reason: "server shutting down".into(),
            },
            ENV,
        );
        session.step(Input::ReconnectDue, ENV);
        session.step(hello_from_server(), ENV);
        // The restarted server no longer knows the token: a new id, not resumed.
        let out = session.step(joined(7, false, Vec::new()), ENV);
        assert_eq!(session.me, Some(PeerId(7)));
        assert!(out.contains(&Command::Call(CallCommand::KeepOnly(Vec::new()))));
        assert!(out.contains(&Command::Call(CallCommand::Leave)));
        assert!(out.contains(&Command::Send(ClientMsg::JoinCall {
            media: MediaState::default()
        })));
        assert_eq!(session.call, CallPhase::Joining);
        let out = session.step(
            Input::Server(ServerMsg::CallJoined {
                peers: vec![PeerId(2)],
                ice_servers: Vec::new(),
                mode: CallMode::Mesh,
            }),
            ENV,
        );
        assert!(out.contains(&Command::Call(CallCommand::Join {
            me: PeerId(7),
            ice_servers: Vec::new(),
            peers: vec![PeerId(2)],
            mode: CallMode::Mesh,
        })));
    }

    #[test]
    fn resumed_where_the_server_has_no_call_for_the_member_the_call_starts_over() {
        let mut session = in_room();
        session.step(
            Input::SocketClosed {
                code: close_code::GOING_AWAY,
                reason: "the meeting's server stopped; reconnecting".into(),
            },
            ENV,
        );
        session.step(Input::ReconnectDue, ENV);
        session.step(hello_from_server(), ENV);
        // Another server took the room over: the same member, but in no call there.
        let mut back = joined(1, true, Vec::new());
        if let Input::Server(ServerMsg::Joined { peers, .. }) = &mut back {
            peers[0].in_call = false;
        }
        let out = session.step(back, ENV);
        assert_eq!(session.me, Some(PeerId(1)));
        assert!(out.contains(&Command::Call(CallCommand::Leave)));
        assert!(out.contains(&Command::Send(ClientMsg::JoinCall {
            media: MediaState::default()
        })));
        assert_eq!(session.call, CallPhase::Joining);
    }

    #[test]
    fn a_gap_in_the_ids_makes_the_next_resume_ask_from_before_it() {
        let mut session = in_room();
        session.step(Input::Server(ServerMsg::Chat { entry: entry(2, 2) }), ENV);
        session.step(Input::Server(ServerMsg::Chat { entry: entry(5, 2) }), ENV);
        session.step(dropped(), ENV);
        let out = session.step(Input::ReconnectDue, ENV);
        let Command::Connect(greeting) = &out[0] else {
            panic!("expected a connect, got {out:?}");
        };
        assert!(matches!(
            &greeting[1],
            ClientMsg::Join {
                last_seen: Some(MessageId(2)),
                ..
            }
        ));
        session.step(hello_from_server(), ENV);
        session.step(
            joined(1, true, vec![entry(3, 2), entry(4, 2), entry(5, 2)]),
            ENV,
        );
        assert_eq!(message_ids(&session), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn coming_back_too_late_under_a_taken_name_ends_the_meeting() {
        let mut session = in_room();
        session.step(dropped(), ENV);
        session.step(Input::ReconnectDue, ENV);
        let out = session.step(
            Input::Server(ServerMsg::error(ErrorCode::NameTaken, "taken")),
            ENV,
        );
        assert!(out.contains(&Command::CloseSocket));
        assert!(out.contains(&Command::Call(CallCommand::StopMedia)));
        assert!(matches!(
            session.phase,
            Phase::Ended(Ending::CouldNotRejoin(_))
        ));
    }

    #[test]
    fn a_protocol_error_close_is_not_retried() {
        let mut session = in_room();
        let out = session.step(
            Input::SocketClosed {
                code: close_code::PROTOCOL_ERROR,
                reason: "protocol version mismatch".into(),
            },
            ENV,
        );
        assert!(!out.iter().any(|c| matches!(c, Command::ReconnectIn(_))));
        assert_eq!(
            session.phase,
            Phase::Ended(Ending::Disconnected("protocol version mismatch".into()))
        );
    }

    #[test]
    fn a_full_call_releases_the_devices_and_chat_goes_on() {
        let mut session = joined_room();
        let out = session.step(
            Input::Server(ServerMsg::error(ErrorCode::CallFull, "full")),
            ENV,
        );
        assert!(matches!(session.call, CallPhase::Refused(_)));
        assert_eq!(out, [Command::Call(CallCommand::ReleaseDevices)]);
        let out = session.step(Input::Chat("hi".into()), ENV);
        assert_eq!(out, [Command::Send(ClientMsg::Chat { text: "hi".into() })]);
    }

    #[test]
    fn chat_without_a_connection_says_so_instead_of_sending() {
        let mut session = in_room();
        session.step(dropped(), ENV);
        assert!(session.step(Input::Chat("hi".into()), ENV).is_empty());
        assert_eq!(session.alert, Some(Alert::NotConnected));
    }

    fn chat_from(id: u64, from: u64, text: &str) -> Input {
        Input::Server(ServerMsg::Chat {
            entry: ChatEntry {
                id: MessageId(id),
                from: PeerId(from),
                name: format!("peer {from}"),
                at: UnixMillis(0),
                text: text.into(),
            },
        })
    }

    #[test]
    fn messages_while_the_chat_is_closed_count_as_unread_and_pop_up_until_it_opens() {
        let mut session = in_room();
        let me = session.me.unwrap().0;
        session.step(chat_from(10, 2, "hello"), ENV);
        session.step(chat_from(11, 2, "anyone?"), ENV);
        session.step(chat_from(12, me, "mine"), ENV);
        assert_eq!(session.unread, 2);
        let note = &session.toasts.shown()[0];
        assert_eq!(note.kind, ToastKind::Message { from: PeerId(2) });
        assert_eq!((note.count, note.text.as_deref()), (2, Some("anyone?")));

        session.step(Input::ChatPanel(true), ENV);
        assert_eq!(session.unread, 0);
        assert!(session.toasts.shown().is_empty());
        // Read as they come while the chat is open.
        session.step(chat_from(13, 2, "welcome"), ENV);
        assert_eq!(session.unread, 0);
        assert!(session.toasts.shown().is_empty());
    }

    #[test]
    fn a_chat_message_the_server_refuses_comes_back_for_the_input() {
        let mut session = in_room();
        let refused = || {
            Input::Server(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                chat_text: Some("too fast".into()),
            })
        };
        session.step(Input::Chat("too fast".into()), ENV);
        session.step(refused(), ENV);
        assert_eq!(session.returned_chat, Some((1, "too fast".to_string())));
        assert!(session.alert.is_some());
        // The same text refused again is news again (the page puts it back again).
        session.step(refused(), ENV);
        assert_eq!(session.returned_chat, Some((2, "too fast".to_string())));
    }

    #[test]
    fn a_hand_raised_by_someone_else_pops_up_once() {
        let mut session = in_room();
        let raised = PeerInfo {
            hand: Some(1),
            ..peer(2, "Bob")
        };
        session.step(
            Input::Server(ServerMsg::PeerUpdated {
                peer: raised.clone(),
            }),
            ENV,
        );
        session.step(Input::Server(ServerMsg::PeerUpdated { peer: raised }), ENV);
        let hands: Vec<_> = session
            .toasts
            .shown()
            .iter()
            .filter(|t| t.kind == ToastKind::Hand)
            .collect();
        assert_eq!(hands.len(), 1);
        assert_eq!(hands[0].count, 1);
    }

    #[test]
    fn arrivals_announced_together_are_each_added_and_noted_in_order() {
        let mut session = in_room();
        let out = session.step(
            Input::Server(ServerMsg::PeersJoined {
                peers: vec![peer(3, "Cy"), peer(4, "Di")],
            }),
            ENV,
        );
        // One note gathers both arrivals; each arrival restarts its timer.
        assert!(out
            .iter()
            .all(|c| matches!(c, Command::ForgetToastIn { ms: TOAST_MS, .. })));
        assert_eq!(session.toasts.shown().len(), 1);
        assert_eq!(session.toasts.shown()[0].kind, ToastKind::Joined);
        assert_eq!(session.toasts.shown()[0].names, ["Cy", "Di"]);
        assert_eq!(session.roster.name_of(PeerId(3)), Some("Cy"));
        assert_eq!(session.roster.name_of(PeerId(4)), Some("Di"));
        let noted: Vec<String> = session
            .chat
            .lines()
            .filter_map(|line| match &**line {
                ChatLine::Notice {
                    notice: Notice::Joined { name },
                    ..
                } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(noted, ["Cy", "Di"]);
    }

    #[test]
    fn members_leaving_the_call_or_room_are_hung_up_and_noted() {
        let mut session = in_room();
        let out = session.step(
            Input::Server(ServerMsg::PeerLeft {
                peer: PeerId(2),
                reason: LeaveReason::Left,
            }),
            ENV,
        );
        assert_eq!(out[0], Command::Call(CallCommand::HangUp(PeerId(2))));
        assert!(matches!(out[1], Command::ForgetToastIn { .. }));
        assert_eq!(session.toasts.shown()[0].kind, ToastKind::Left);
        assert!(session.roster.get(PeerId(2)).is_none());
        assert!(matches!(
            session.chat.lines().last().map(|l| (**l).clone()),
            Some(ChatLine::Notice {
                notice: Notice::Left { .. },
                ..
            })
        ));
    }

    #[test]
    fn reactions_show_then_go_and_media_changes_are_sent_in_a_call() {
        let mut session = in_room();
        let out = session.step(
            Input::Server(ServerMsg::Reaction {
                from: PeerId(2),
                emoji: "👍".into(),
            }),
            ENV,
        );
        assert_eq!(
            out,
            [Command::ForgetReactionIn {
                key: 1,
                ms: REACTION_MS
            }]
        );
        assert_eq!(session.reactions.len(), 1);
        session.step(Input::ReactionDone(1), ENV);
        assert!(session.reactions.is_empty());
        let muted = MediaState {
            mic: false,
            camera: true,
            screen: false,
        };
        let out = session.step(Input::LocalMedia(muted), ENV);
        assert_eq!(out, [Command::Send(ClientMsg::Media { media: muted })]);
        assert!(session.step(Input::LocalMedia(muted), ENV).is_empty());
    }

    #[test]
    fn leaving_closes_the_socket_and_releases_the_devices() {
        let mut session = in_room();
        let out = session.step(Input::Leave, ENV);
        assert_eq!(
            out,
            [Command::CloseSocket, Command::Call(CallCommand::StopMedia)]
        );
        assert_eq!(session.phase, Phase::Ended(Ending::YouLeft));
        // A close after leaving does not bring the page back.
        let out = session.step(
            Input::SocketClosed {
                code: 1000,
                reason: String::new(),
            },
            ENV,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn reconnect_backoff_doubles_up_to_a_cap_and_spreads_out() {
        let middle: Vec<u32> = (1..=8).map(|a| reconnect_delay_ms(a, 0.5)).collect();
        assert_eq!(middle, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(reconnect_delay_ms(1, 0.0), 125);
        assert_eq!(reconnect_delay_ms(1, 1.0), 375);
        assert_eq!(reconnect_delay_ms(30, 1.0), 12000);
    }

    #[test]
    fn earlier_messages_are_asked_for_once_and_shown_before_the_rest() {
        let mut session = greeted();
        session.step(
            joined_with_more(1, false, vec![entry(8, 2), entry(9, 2)]),
            ENV,
        );
        assert!(session.can_load_earlier());
        let out = session.step(Input::LoadEarlier, ENV);
        assert_eq!(
            out,
            [Command::Send(ClientMsg::LoadHistory {
                before: MessageId(8)
            })]
        );
        // A second click while the page is on its way asks for nothing.
        assert!(session.step(Input::LoadEarlier, ENV).is_empty());
        session.step(
            Input::Server(ServerMsg::HistoryPage {
                entries: vec![entry(6, 2), entry(7, 2)],
                more: false,
            }),
            ENV,
        );
        assert_eq!(message_ids(&session), [6, 7, 8, 9]);
        assert!(!session.can_load_earlier());
        assert!(session.step(Input::LoadEarlier, ENV).is_empty());
        // Live messages still go last, and resume after the newest.
        session.step(
            Input::Server(ServerMsg::Chat {
                entry: entry(10, 2),
            }),
            ENV,
        );
        assert_eq!(message_ids(&session), [6, 7, 8, 9, 10]);
        assert_eq!(session.chat.last_message_id(), Some(MessageId(10)));
    }

    #[test]
    fn a_cut_replay_after_a_long_absence_starts_the_chat_over_instead_of_leaving_a_hole() {
        let mut session = in_room();
        session.step(dropped(), ENV);
        session.step(Input::ReconnectDue, ENV);
        session.step(hello_from_server(), ENV);
        // Ann had message 1; the server sends 50 and 51 and says more are missing between.
        session.step(
            joined_with_more(1, true, vec![entry(50, 2), entry(51, 2)]),
            ENV,
        );
        assert_eq!(message_ids(&session), [50, 51]);
        assert!(session.can_load_earlier());
        assert_eq!(session.chat.last_message_id(), Some(MessageId(51)));
    }

    #[test]
    fn a_rejoin_refused_for_a_passing_reason_is_retried_and_signed_in_elsewhere_ends_it() {
        let mut session = in_room();
        session.step(dropped(), ENV);
        session.step(Input::ReconnectDue, ENV);
        session.step(hello_from_server(), ENV);
        // The server has not noticed the old connection's loss yet.
        let out = session.step(
            Input::Server(ServerMsg::Error {
                code: ErrorCode::SessionInUse,
                message: "still connected".into(),
                chat_text: None,
            }),
            ENV,
        );
        assert_eq!(out, [Command::CloseSocket, Command::ReconnectIn(500)]);
        assert_eq!(session.phase, Phase::InRoom);
        session.step(Input::ReconnectDue, ENV);
        session.step(hello_from_server(), ENV);
        session.step(joined(1, true, Vec::new()), ENV);
        assert_eq!(session.reconnecting, 0);
        // Another tab took this member over: this page stops, and does not take it back.
        let out = session.step(
            Input::SocketClosed {
                code: close_code::SIGNED_IN_ELSEWHERE,
                reason: "signed in elsewhere".into(),
            },
            ENV,
        );
        assert!(!out.iter().any(|c| matches!(c, Command::ReconnectIn(_))));
        assert_eq!(session.phase, Phase::Ended(Ending::SignedInElsewhere));
    }

    #[test]
    fn a_password_refusal_asks_for_the_password_and_the_next_join_brings_it() {
        let mut session = Session::default();
        session.step(join_as("Ann"), ENV);
        session.step(hello_from_server(), ENV);
        session.step(
            Input::Server(ServerMsg::Error {
                code: ErrorCode::PasswordRequired,
                message: "password".into(),
                chat_text: None,
            }),
            ENV,
        );
        assert_eq!(session.phase, Phase::Lobby);
        assert!(session.needs_password);
        let out = session.step(
            Input::Join {
                room: "standup".into(),
                name: "Ann".into(),
                keys: JoinKeys {
                    password: Some("tiger".into()),
                    ..JoinKeys::default()
                },
            },
            ENV,
        );
        assert!(out.iter().any(|c| matches!(
            c,
            Command::Send(ClientMsg::Join { password: Some(p), .. }) if p == "tiger"
        )));
        // Too many guesses hands back to the person too, rather than hang on "joining".
        session.step(
            Input::Server(ServerMsg::Error {
                code: ErrorCode::TooManyGuesses,
                message: "wait".into(),
                chat_text: None,
            }),
            ENV,
        );
        assert_eq!(session.phase, Phase::Lobby);
    }

    #[test]
    fn moving_into_a_breakout_room_and_back_switches_chat_and_call_but_not_the_way_home() {
        let mut session = in_room();
        assert_eq!(session.call, CallPhase::In);
        let rejoin = session.rejoin.clone();
        let mut into = joined(1, false, vec![entry(7, 2)]);
        if let Input::Server(ServerMsg::Joined {
            breakout,
            breakouts,
            room,
            ..
        }) = &mut into
        {
            *breakout = Some(0);
            *room = "standup--abcd-0".into();
            *breakouts = Some(Box::new(Breakouts {
                rooms: vec![crate::protocol::BreakoutRoom {
                    name: "Room 1".into(),
                    members: vec![PeerId(1)],
                }],
                ends_at: None,
                closing_at: None,
            }));
        }
        let out = session.step(into, ENV);
        assert!(out.contains(&Command::Call(CallCommand::KeepOnly(Vec::new()))));
        assert!(out.contains(&Command::Call(CallCommand::Leave)));
        assert!(out.contains(&Command::Send(ClientMsg::JoinCall {
            media: session.local
        })));
        assert_eq!(session.in_breakout, Some(0));
        // Only the breakout room's chat, and a note saying where this is.
        assert_eq!(message_ids(&session), [7]);
        assert!(session.chat.lines().any(|l| matches!(
            &**l,
            ChatLine::Notice { notice: Notice::Moved { breakout: Some(name) }, .. } if name == "Room 1"
        )));
        // A dropped connection still comes back to the main room.
        assert_eq!(session.rejoin, rejoin);
        session.step(joined(1, true, vec![entry(3, 1)]), ENV);
        assert_eq!(session.in_breakout, None);
        assert_eq!(message_ids(&session), [3]);
        let out = session.step(Input::GoTo(Some(0)), ENV);
        assert_eq!(out, [Command::Send(ClientMsg::EnterBreakout { room: 0 })]);
    }

    #[test]
    fn a_tokens_name_is_read_from_its_payload() {
        // {"name":"Ann Lee","room":"*"} with any header and signature.
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJuYW1lIjoiQW5uIExlZSIsInJvb20iOiIqIn0.sig";
        assert_eq!(token_name(token).as_deref(), Some("Ann Lee"));
        assert_eq!(token_name("no dots"), None);
        assert_eq!(token_name("a.!!!.c"), None);
    }

    #[test]
    fn a_host_muting_turns_the_device_off_and_keeps_it_off_under_the_rule() {
        let mut session = in_room();
        session.step(
            Input::Server(ServerMsg::Rules {
                rules: MeetingRules {
                    locked: false,
                    only_hosts_unmute: true,
                    waiting_room: false,
                    password: false,
                    spotlight: None,
                },
            }),
            ENV,
        );
        let out = session.step(
            Input::Server(ServerMsg::Moderated {
                by: PeerId(2),
                action: Moderation::Muted {
                    source: TrackSource::Microphone,
                },
            }),
            ENV,
        );
        assert_eq!(out, [Command::TurnOff(TrackSource::Microphone)]);
        assert_eq!(
            session.host_notice,
            Some(HostNotice::TurnedOff {
                by: "Bob".into(),
                source: TrackSource::Microphone
            })
        );
        assert!(!session.may_turn_on(TrackSource::Microphone));
        assert!(session.may_turn_on(TrackSource::Camera));
        session.step(
            Input::Server(ServerMsg::Moderated {
                by: PeerId(2),
                action: Moderation::UnmuteAllowed,
            }),
            ENV,
        );
        assert!(session.may_turn_on(TrackSource::Microphone));
    }

    #[test]
    fn a_removed_member_ends_for_good_and_a_new_host_keeps_the_key() {
        let mut session = joined_room();
        let out = session.step(Input::Server(ServerMsg::HostKey { key: "k2".into() }), ENV);
        assert!(out.contains(&Command::SaveHostKey {
            room: "standup".into(),
            key: "k2".into()
        }));
        assert_eq!(
            session.host_notice,
            Some(HostNotice::YouAreHost { key: "k2".into() })
        );
        session.step(
            Input::Server(ServerMsg::Dismissed {
                reason: Dismissal::Removed,
                by: PeerId(2),
                by_name: "Bob".into(),
            }),
            ENV,
        );
        assert_eq!(session.phase, Phase::Ended(Ending::Removed("Bob".into())));
        let out = session.step(
            Input::SocketClosed {
                code: close_code::REMOVED,
                reason: "removed by a host".into(),
            },
            ENV,
        );
        assert!(!out.iter().any(|c| matches!(c, Command::ReconnectIn(_))));
        assert!(!Ending::Removed(String::new()).may_rejoin());
        // Without the message, the close code alone ends the meeting the same way.
        let mut other = joined_room();
        let out = other.step(
            Input::SocketClosed {
                code: close_code::MEETING_ENDED,
                reason: String::new(),
            },
            ENV,
        );
        assert!(!out.iter().any(|c| matches!(c, Command::ReconnectIn(_))));
        assert_eq!(
            other.phase,
            Phase::Ended(Ending::MeetingEnded(String::new()))
        );
    }

    #[test]
    fn a_page_in_the_waiting_room_waits_then_joins_or_is_turned_away() {
        let mut session = greeted();
        session.step(Input::Server(ServerMsg::Waiting), ENV);
        assert_eq!(session.phase, Phase::Waiting);
        let out = session.step(joined(1, false, Vec::new()), ENV);
        assert_eq!(session.phase, Phase::InRoom);
        assert!(out.contains(&Command::Send(ClientMsg::JoinCall {
            media: session.local
        })));

        let mut turned_away = greeted();
        turned_away.step(Input::Server(ServerMsg::Waiting), ENV);
        turned_away.step(
            Input::Server(ServerMsg::Dismissed {
                reason: Dismissal::Denied,
                by: PeerId(2),
                by_name: "Bob".into(),
            }),
            ENV,
        );
        assert_eq!(
            turned_away.phase,
            Phase::Ended(Ending::Denied("Bob".into()))
        );
        assert!(!Ending::Denied(String::new()).may_rejoin());
        assert!(Ending::LockedOut.may_rejoin());
    }
}
