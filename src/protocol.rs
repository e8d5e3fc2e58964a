//! The wire protocol between the browser and the server: typed messages, ids and error codes.
//!
//! Every WebSocket text frame carries exactly one JSON object tagged by `"type"`. The same
//! types are compiled into the server and the WASM client, so the two cannot drift apart;
//! `docs/protocol.md` documents each message for other clients (the load tool, tests).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bumped whenever a change would make an older client misunderstand the server.
/// 2: `invalid_text` split into `empty_text` and `text_too_long`.
/// 3: history in pages: `joined.more_history`, `load_history` and `history_page`.
/// 6: hosts: roles, host actions, meeting rules, removal and the end of a meeting.
pub const PROTOCOL_VERSION: u32 = 7;

/// WebSocket close codes the server uses, named (RFC 6455 section 7.4.1).
pub mod close_code {
    /// The server is going away (shutdown) or the client stopped answering pings.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the protocol (e.g. another protocol version); do not retry as is.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// The client sent a text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The client did not read its messages in time.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// The client sent a message larger than the server accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Over a limit (connections, rooms); try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The same member resumed on another connection (another tab, or a reconnect the
    /// server saw before this connection's loss); this one is finished, do not reconnect.
    pub const SIGNED_IN_ELSEWHERE: u16 = 4000;
    /// A host removed this member from the meeting; do not reconnect.
    pub const REMOVED: u16 = 4001;
    /// A host ended the meeting for everyone; do not reconnect.
    pub const MEETING_ENDED: u16 = 4002;
    /// A host turned this person away from the waiting room (or locked the meeting while
    /// they waited); do not reconnect.
    pub const DENIED: u16 = 4003;
}

/// A connection's identity inside the server; assigned by the server, never reused while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A chat message's position in its room's stream; increases by one per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

/// Milliseconds since the Unix epoch, as the server's clock saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

/// Messages a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First message on every connection: the protocol version the client speaks.
    Hello { version: u32 },
    /// Enter a room under a display name. Answered by `joined` or an `error`.
    Join {
        room: String,
        name: String,
        /// The `resume_token` of an earlier connection: within the grace period the member
        /// keeps their id, name and call seat, and the others see no leave/join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// The newest chat message this client has; the history sent back starts after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seen: Option<MessageId>,
        /// The room's host key (from an earlier `joined` or `host_key`, or a host link):
        /// enter as the host, past a lock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<String>,
        /// A random id this browser keeps: someone a host removed cannot come back from it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        browser: Option<String>,
        /// The meeting's password, when a host set one (`error` `password_required` says so).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// A signed token (the room link's `?token=`), which a server started with
        /// `--auth-secret` or `--auth-public-key` requires; its name and role win over the
        /// ones asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Subscribe to the list of rooms in use (the home page). Answered by `rooms`, then again
    /// whenever the list changes.
    WatchRooms,
    /// Say something in the room the connection has joined.
    Chat { text: String },
    /// Join the room's call (audio/video mesh) with the given camera and microphone state.
    /// Answered by `call_joined`, or `error` `call_full`.
    JoinCall { media: MediaState },
    /// Leave the call but stay in the room (chat, participant list).
    LeaveCall,
    /// The sender's camera or microphone was switched on or off.
    Media { media: MediaState },
    /// WebRTC signaling for one other call member; forwarded to `to` only.
    Signal { to: PeerId, signal: Signal },
    /// Raise or lower your hand; everyone sees raised hands in the order they went up.
    Hand { raised: bool },
    /// A short emoji reaction shown to everyone (one of `REACTIONS`).
    React { emoji: String },
    /// In the call: this browser started (`on`) or stopped recording the meeting locally;
    /// everyone sees it in `recording` of this member's `PeerInfo`.
    Recording { on: bool },
    /// The page of chat history just older than `before` (the oldest message the client
    /// shows). Answered by `history_page`.
    LoadHistory { before: MessageId },
    /// In a call through the server (`call_mode` `sfu`): this browser's SDP offer for its one
    /// connection to the server, carrying its microphone, camera and screen transceivers in
    /// that order. Answered by `media_answer`. A description longer than one message goes in
    /// parts: every part but the last says `more`.
    MediaOffer {
        sdp: String,
        #[serde(default, skip_serializing_if = "is_false")]
        more: bool,
    },
    /// The answer to the server's `media_offer`, in parts like `media_offer`.
    MediaAnswer {
        sdp: String,
        #[serde(default, skip_serializing_if = "is_false")]
        more: bool,
    },
    /// In a call through the server: the size at which this browser shows each of the others'
    /// videos, sent when the layout changes. The server sends each the smallest simulcast
    /// layer that fills its tile; a tile of 0 × 0 (off screen, on another page) gets no
    /// video at all. Videos not listed get the best the connection can take. At most
    /// `MAX_VIEW_TILES` tiles.
    View { tiles: Vec<TileView> },
    /// In a browser-to-browser call: the connection to `peer` could not be made (or was lost
    /// and did not come back). The server tells `peer`, so both sides give up together, and
    /// under `--media auto` moves the call through the server, where it can connect.
    LinkFailed { peer: PeerId, reason: LinkFailure },
    /// Host only: make `peer` a co-host or a plain member again, or hand them the host role
    /// (`host`: the sender becomes a co-host).
    SetRole { peer: PeerId, role: Role },
    /// Host or co-host: turn off `peer`'s microphone, camera or screen share.
    Mute { peer: PeerId, source: TrackSource },
    /// Host or co-host: turn off the microphone of everyone of a lower role.
    MuteAll,
    /// Host or co-host: let `peer` turn on again what a host turned off, under
    /// `only_hosts_unmute`.
    AllowUnmute { peer: PeerId },
    /// Host or co-host: remove `peer` from the meeting; they cannot come back from that
    /// browser until allowed.
    Remove { peer: PeerId },
    /// Host or co-host: let a removed person (by their former id, from `removed_list`) in again.
    AllowBack { peer: PeerId },
    /// Host or co-host: change the meeting's rules.
    SetRules { rules: MeetingRules },
    /// Host or co-host: end the meeting for everyone.
    EndMeeting,
    /// Host or co-host: let `peer` in from the waiting room.
    Admit { peer: PeerId },
    /// Host or co-host: let everyone waiting in.
    AdmitAll,
    /// Host or co-host: turn `peer` away from the waiting room.
    Deny { peer: PeerId },
    /// Host or co-host: set the meeting's password (newcomers must type it), or clear it
    /// with `null`. Members already in stay.
    SetPassword { password: Option<String> },
    /// Host or co-host: open breakout rooms (at most `MAX_BREAKOUTS`), each with a name and
    /// who goes there; `minutes` closes them by themselves after that long.
    OpenBreakouts {
        rooms: Vec<BreakoutRoom>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minutes: Option<u32>,
    },
    /// Host or co-host, while breakout rooms are open: send `peer` to another one (or to none).
    AssignBreakout { peer: PeerId, room: Option<u8> },
    /// Host or co-host: a message shown in the main room and every breakout room.
    BroadcastToBreakouts { text: String },
    /// Host or co-host: everyone comes back to the main room after a 60-second countdown.
    CloseBreakouts,
    /// Go to breakout room `room` (the one you are assigned to; hosts and co-hosts may visit
    /// any). The connection moves: `joined` of that room follows, without a new socket.
    EnterBreakout { room: u8 },
    /// From a breakout room: come back to the main room (`joined` of it follows).
    ReturnToMain,
}

/// Breakout rooms at most.
pub const MAX_BREAKOUTS: usize = 20;

/// One breakout room: its name and who is assigned to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutRoom {
    pub name: String,
    #[serde(default)]
    pub members: Vec<PeerId>,
}

/// Open breakout rooms, as everyone in the meeting sees them; a room's number is its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakouts {
    pub rooms: Vec<BreakoutRoom>,
    /// When the timer closes them (the countdown starts then), if a host set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<UnixMillis>,
    /// When everyone is brought back: set once a host closed them or the timer ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing_at: Option<UnixMillis>,
}

/// What a member may do in their room, in increasing order of power.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Member,
    /// May mute, remove, lock and end, but not change roles.
    Cohost,
    /// One per room: everything a co-host may, and gives and takes roles.
    Host,
}

impl Role {
    pub fn is_member(&self) -> bool {
        *self == Role::Member
    }

    /// Whether this role may use host actions at all.
    pub fn moderates(self) -> bool {
        self >= Role::Cohost
    }
}

/// A meeting's rules, set by its hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingRules {
    /// Nobody new gets in (members reconnecting and the host key still do).
    #[serde(default)]
    pub locked: bool,
    /// Someone a host muted cannot unmute themselves until a host allows it.
    #[serde(default)]
    pub only_hosts_unmute: bool,
    /// Newcomers wait until a host or co-host lets them in.
    #[serde(default)]
    pub waiting_room: bool,
    /// Newcomers must type the meeting's password. Only `set_password` changes it; the value
    /// in `set_rules` is ignored.
    #[serde(default)]
    pub password: bool,
    /// The call member a host shows large on everyone's stage; cleared when they leave the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spotlight: Option<PeerId>,
}

/// Done to a member by a host, told to that member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Moderation {
    /// Their microphone, camera or screen share was turned off.
    Muted { source: TrackSource },
    /// They may turn on again what a host turned off.
    UnmuteAllowed,
}

/// Why the server sent a member away for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dismissal {
    Removed,
    MeetingEnded,
    /// A host did not let this person in from the waiting room.
    Denied,
    /// A host locked the meeting while this person waited to be let in.
    Locked,
}

/// Someone hosts see by name: a person waiting to be let in, or one removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPeer {
    /// Their connection's id (a removed person's former id); `admit`, `deny` and
    /// `allow_back` name them by it.
    pub id: PeerId,
    pub name: String,
}

/// Why a browser-to-browser connection was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkFailure {
    /// It never connected: no path between the two networks (a symmetric NAT or a
    /// firewall on one side and no relay that works).
    NeverConnected,
    /// It connected, dropped, and ICE restarts did not bring it back.
    Lost,
}

impl LinkFailure {
    pub const ALL: [LinkFailure; 2] = [LinkFailure::NeverConnected, LinkFailure::Lost];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkFailure::NeverConnected => "never_connected",
            LinkFailure::Lost => "lost",
        }
    }
}

/// How large one of the others' videos is on screen, in device pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileView {
    pub peer: PeerId,
    /// `camera` or `screen`.
    pub source: TrackSource,
    pub width: u32,
    pub height: u32,
}

/// The most tiles one `view` may list: a camera and a screen for each member of the largest
/// call.
pub const MAX_VIEW_TILES: usize = 128;

/// The largest tile side a `view` may give, in device pixels (an 8K screen is 7680 wide).
pub const MAX_TILE_PIXELS: u32 = 16_384;

/// The reactions a client may send.
pub const REACTIONS: [&str; 6] = ["👍", "👏", "😂", "❤️", "🎉", "😮"];

/// Messages the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `hello`: the server's protocol version and the limits it enforces.
    Hello { version: u32, limits: Limits },
    /// The connection is now a member of `room`.
    Joined {
        you: PeerId,
        room: String,
        name: String,
        /// Everyone in the room, the new member included, in the order they joined.
        peers: Vec<PeerInfo>,
        /// Chat messages oldest first: the newest of those after `last_seen` (or of the
        /// room's history) that fit in the server's replay budget.
        history: Vec<ChatEntry>,
        /// True when older messages (after `last_seen`, if given) were left out; ask for them
        /// with `load_history`.
        more_history: bool,
        /// True when an earlier connection's identity was resumed.
        resumed: bool,
        /// Present this in `join` after a disconnection to resume.
        resume_token: String,
        /// Only to the host: the room's host key; present it in `join` to come back as host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<String>,
        #[serde(default)]
        rules: MeetingRules,
        /// Only to hosts and co-hosts: who waits to be let in, and who was removed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        waiting: Vec<NamedPeer>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<NamedPeer>,
        /// Which breakout room this is (its number), when it is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        breakout: Option<u8>,
        /// The meeting's breakout rooms, while they are open (boxed: rarely there, and
        /// every message is as large as its largest kind).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        breakouts: Option<Box<Breakouts>>,
    },
    /// Others entered the room, in the order they joined. Arrivals that reach the server
    /// together (everyone reconnecting after a restart, a class arriving at once) come in one
    /// message instead of one each.
    PeersJoined { peers: Vec<PeerInfo> },
    /// Someone left the room.
    PeerLeft { peer: PeerId, reason: LeaveReason },
    /// A chat message, the sender's own included.
    Chat { entry: ChatEntry },
    /// The rooms in use, busiest first.
    Rooms { rooms: Vec<RoomSummary> },
    /// You are in the room's call. Connect to each of `peers` (you make the offers); ICE
    /// servers come from the server's configuration and may be empty.
    CallJoined {
        peers: Vec<PeerId>,
        ice_servers: Vec<IceServer>,
        /// How this call carries media now: browser to browser (`mesh`, connect to `peers`)
        /// or through the server (`sfu`, send a `media_offer`).
        #[serde(default)]
        mode: CallMode,
    },
    /// The call switched between peer-to-peer and through-the-server media (it grew past or
    /// shrank to the server's `--mesh-max`); sent to every call member.
    CallMode { mode: CallMode },
    /// The server's answer to `media_offer`.
    MediaAnswer { sdp: String },
    /// The server adds or removes what it sends (someone started or stopped publishing):
    /// answer with `media_answer`. `tracks` says whose media each `mid` carries.
    MediaOffer {
        sdp: String,
        tracks: Vec<RemoteTrack>,
    },
    /// A member's call or media state changed (joined or left the call, muted, camera off).
    PeerUpdated { peer: PeerInfo },
    /// WebRTC signaling from another call member.
    Signal { from: PeerId, signal: Signal },
    /// Someone reacted; show it briefly.
    Reaction { from: PeerId, emoji: String },
    /// In a call through the server: who is speaking now, from the audio levels the
    /// microphones report (`null`: nobody yet). Sent when it changes.
    ActiveSpeaker { peer: Option<PeerId> },
    /// `peer` could not connect to you browser to browser (`link_failed`): close your side
    /// of that connection too.
    LinkFailed { peer: PeerId, reason: LinkFailure },
    /// Answer to `load_history`: messages oldest first, all older than its `before`, and
    /// whether even older ones remain.
    HistoryPage { entries: Vec<ChatEntry>, more: bool },
    /// Something the client sent was refused; the connection stays usable unless the close
    /// frame that follows says otherwise.
    Error {
        code: ErrorCode,
        message: String,
        /// A refused chat message's text, handed back so the page puts it in the input
        /// again (it had cleared it): nothing typed is lost to a rate limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_text: Option<String>,
    },
    /// You became the host (handed over, or the host left): keep this key, and present it in
    /// `join` to come back as host.
    HostKey { key: String },
    /// A host (`by`) did this to you.
    Moderated { by: PeerId, action: Moderation },
    /// The meeting's rules changed (or, after `joined`, are these).
    Rules { rules: MeetingRules },
    /// To hosts and co-hosts: the people removed from this meeting, oldest first.
    RemovedList { people: Vec<NamedPeer> },
    /// Answer to `join` while the meeting has a waiting room: wait until a host lets you in
    /// (`joined` follows) or not (`dismissed`). Nothing else of the room comes meanwhile.
    Waiting,
    /// To hosts and co-hosts: who waits to be let in, in the order they came.
    WaitingList { people: Vec<NamedPeer> },
    /// You are out of the meeting for good (`by` removed you, turned you away, or ended it);
    /// the connection closes next. `by_name` is said, since `by` may be gone by then.
    Dismissed {
        reason: Dismissal,
        by: PeerId,
        by_name: String,
    },
    /// The meeting's breakout rooms opened, changed or closed (`null`); to the main room and
    /// to every breakout room.
    BreakoutsChanged {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        breakouts: Option<Breakouts>,
    },
    /// A host's message to every room of the meeting.
    Broadcast {
        from: PeerId,
        name: String,
        text: String,
    },
}

/// How a call's media travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallMode {
    /// One connection per pair of members, browser to browser.
    #[default]
    Mesh,
    /// One connection per member, to the server's selective forwarding unit.
    Sfu,
}

/// Which of a member's media a received track is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Microphone,
    Camera,
    Screen,
}

/// One media section of the server's offer: whose media it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteTrack {
    pub mid: String,
    pub peer: PeerId,
    pub source: TrackSource,
}

/// What the server enforces, so a client can check input before sending it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_name_chars: usize,
    pub max_chat_chars: usize,
    pub max_room_chars: usize,
    #[serde(default)]
    pub max_call_members: usize,
    /// Video tiles the stage shows at once before paging (a phone shows fewer).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
}

fn default_page_size() -> usize {
    crate::core::room::RoomLimits::DEFAULT.page_size
}

/// A room member as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub name: String,
    /// Whether they are in the call (sending and receiving audio/video), not just chatting.
    /// Fields at their default are left out on the wire: a room's member list is sent to
    /// every newcomer and most members are idle.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_call: bool,
    #[serde(default, skip_serializing_if = "MediaState::is_off")]
    pub media: MediaState,
    /// Their connection dropped; they may come back within the grace period.
    #[serde(default, skip_serializing_if = "is_false")]
    pub away: bool,
    /// When their hand is raised: its place in the order hands went up (smaller is earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand: Option<u64>,
    #[serde(default, skip_serializing_if = "Role::is_member")]
    pub role: Role,
    /// The breakout room they are in now, if any (in the main room's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakout: Option<u8>,
    /// Their browser is recording the meeting (until they stop, leave the call or their
    /// connection drops).
    #[serde(default, skip_serializing_if = "is_false")]
    pub recording: bool,
}

/// Whether a call member's microphone, camera and screen sharing are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaState {
    pub mic: bool,
    pub camera: bool,
    /// Sharing their screen as an extra video track.
    #[serde(default)]
    pub screen: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl MediaState {
    /// Nothing on: no microphone, camera or screen.
    pub fn is_off(&self) -> bool {
        *self == MediaState::default()
    }

    /// Whether `source` is on.
    pub fn has(self, source: TrackSource) -> bool {
        match source {
            TrackSource::Microphone => self.mic,
            TrackSource::Camera => self.camera,
            TrackSource::Screen => self.screen,
        }
    }
}

/// A STUN or TURN server for the browser's `RTCPeerConnection`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One WebRTC signaling step, relayed verbatim between two call members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// An SDP offer or answer.
    Description { sdp_type: SdpType, sdp: String },
    /// A trickled ICE candidate; an empty `candidate` means the end of candidates.
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_m_line_index: Option<u16>,
    },
    /// Whether the receiver shows the sender's camera: false while its tile is on another
    /// page, so the sender stops sending it on this link until true comes.
    Video { wanted: bool },
}

/// The type of a session description, as `RTCSessionDescription.type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// One chat message as stored and delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEntry {
    pub id: MessageId,
    pub from: PeerId,
    /// The sender's name when they sent it; kept so history reads right after they leave.
    pub name: String,
    pub at: UnixMillis,
    pub text: String,
}

/// A room on the home page's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub room: String,
    pub participants: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Closed the page, pressed leave or lost the connection.
    Left,
    /// Removed by the server because it stopped reading its messages.
    TooSlow,
    /// The server is shutting down.
    ServerShutdown,
    /// A host removed them.
    Removed,
    /// A host ended the meeting.
    MeetingEnded,
}

/// Why a client message was refused. Stable strings on the wire; clients switch on these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not a JSON object of a known `type` with the right fields.
    BadMessage,
    /// The client's protocol version is not the server's; the connection closes.
    VersionMismatch,
    /// Something other than `hello` came first.
    HelloRequired,
    /// A room message came before a successful `join`.
    NotJoined,
    /// A second `join` on a connection that is already in a room.
    AlreadyJoined,
    /// The room name is not a valid slug.
    InvalidRoom,
    /// The display name is empty, too long or contains control characters.
    InvalidName,
    /// Another member of the room already uses that display name.
    NameTaken,
    /// The room has as many members as the server allows.
    RoomFull,
    /// The chat text is empty (or only white space).
    EmptyText,
    /// The chat text is longer than `max_chat_chars`.
    TextTooLong,
    /// The frame is larger than the server accepts; the connection closes.
    TooLarge,
    /// The client sent chat or signaling faster than the server allows; it was dropped.
    RateLimited,
    /// The call has as many members as a mesh allows; the room's chat is still open.
    CallFull,
    /// A call message from a member who is not in the call.
    NotInCall,
    /// A signal addressed to someone who is not in this room's call.
    UnknownPeer,
    /// The server, or this address, has as many connections as it allows; the connection
    /// closes (1013, try again later).
    TooManyConnections,
    /// The server runs as many rooms as it allows; existing rooms can still be joined.
    TooManyRooms,
    /// A reaction that is not one of the offered emoji.
    InvalidReaction,
    /// The server is over a global limit or shutting down; try again later.
    Unavailable,
    /// This server does not allow that (e.g. its room list is not public).
    Forbidden,
    /// A resume token for a member who is still connected from another address; try again
    /// once that connection is gone (the server notices within its idle timeout).
    SessionInUse,
    /// A host locked the meeting: nobody new gets in.
    Locked,
    /// A host removed this browser from the meeting; it cannot come back until allowed.
    Removed,
    /// The meeting has a password and the `join` carried none.
    PasswordRequired,
    /// The `join` carried a password that is not the meeting's.
    WrongPassword,
    /// Too many password guesses for this meeting, or from this address, just now.
    TooManyGuesses,
    /// This server admits only people with a signed token (`join`'s `token`).
    TokenRequired,
    /// The token is malformed or its signature is not the server's.
    TokenInvalid,
    /// The token's `alg` is `none` or not the one this server verifies.
    TokenAlgorithm,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token's `nbf` is still to come.
    TokenNotYetValid,
    /// The token's `room` is another room.
    TokenWrongRoom,
    /// The token lacks a claim Room needs (`room`, `name`, `exp`) or one has a wrong value.
    TokenClaims,
}

impl ErrorCode {
    /// Every code, in declaration order, so `code as usize` indexes this list.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadMessage,
        ErrorCode::VersionMismatch,
        ErrorCode::HelloRequired,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::InvalidRoom,
        ErrorCode::InvalidName,
        ErrorCode::NameTaken,
        ErrorCode::RoomFull,
        ErrorCode::EmptyText,
        ErrorCode::TextTooLong,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::CallFull,
        ErrorCode::NotInCall,
        ErrorCode::UnknownPeer,
        ErrorCode::TooManyConnections,
        ErrorCode::TooManyRooms,
        ErrorCode::InvalidReaction,
        ErrorCode::Unavailable,
        ErrorCode::Forbidden,
        ErrorCode::SessionInUse,
        ErrorCode::Locked,
        ErrorCode::Removed,
        ErrorCode::PasswordRequired,
        ErrorCode::WrongPassword,
        ErrorCode::TooManyGuesses,
        ErrorCode::TokenRequired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenAlgorithm,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::TokenWrongRoom,
        ErrorCode::TokenClaims,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::CallFull => "call_full",
            ErrorCode::NotInCall => "not_in_call",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::InvalidReaction => "invalid_reaction",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SessionInUse => "session_in_use",
            ErrorCode::Locked => "locked",
            ErrorCode::Removed => "removed",
            ErrorCode::PasswordRequired => "password_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::TooManyGuesses => "too_many_guesses",
            ErrorCode::TokenRequired => "token_required",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::TokenAlgorithm => "token_algorithm",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::TokenWrongRoom => "token_wrong_room",
            ErrorCode::TokenClaims => "token_claims",
        }
    }
}

impl ClientMsg {
    /// The `type` tags, indexed by [`ClientMsg::kind_index`]; labels for logs and metrics.
    pub const KINDS: &'static [&'static str] = &[
        "hello",
        "join",
        "watch_rooms",
        "chat",
        "join_call",
        "leave_call",
        "media",
        "signal",
        "hand",
        "react",
        "load_history",
        "media_offer",
        "media_answer",
        "view",
        "link_failed",
        "set_role",
        "mute",
        "mute_all",
        "allow_unmute",
        "remove",
        "allow_back",
        "set_rules",
        "end_meeting",
        "admit",
        "admit_all",
        "deny",
        "set_password",
        "open_breakouts",
        "assign_breakout",
        "broadcast_to_breakouts",
        "close_breakouts",
        "enter_breakout",
        "return_to_main",
        "recording",
    ];

    pub fn kind_index(&self) -> usize {
        match self {
            ClientMsg::Hello { .. } => 0,
            ClientMsg::Join { .. } => 1,
            ClientMsg::WatchRooms => 2,
            ClientMsg::Chat { .. } => 3,
            ClientMsg::JoinCall { .. } => 4,
            ClientMsg::LeaveCall => 5,
            ClientMsg::Media { .. } => 6,
            ClientMsg::Signal { .. } => 7,
            ClientMsg::Hand { .. } => 8,
            ClientMsg::React { .. } => 9,
            ClientMsg::LoadHistory { .. } => 10,
            ClientMsg::MediaOffer { .. } => 11,
            ClientMsg::MediaAnswer { .. } => 12,
            ClientMsg::View { .. } => 13,
            ClientMsg::LinkFailed { .. } => 14,
            ClientMsg::SetRole { .. } => 15,
            ClientMsg::Mute { .. } => 16,
            ClientMsg::MuteAll => 17,
            ClientMsg::AllowUnmute { .. } => 18,
            ClientMsg::Remove { .. } => 19,
            ClientMsg::AllowBack { .. } => 20,
            ClientMsg::SetRules { .. } => 21,
            ClientMsg::EndMeeting => 22,
            ClientMsg::Admit { .. } => 23,
            ClientMsg::AdmitAll => 24,
            ClientMsg::Deny { .. } => 25,
            ClientMsg::SetPassword { .. } => 26,
            ClientMsg::OpenBreakouts { .. } => 27,
            ClientMsg::AssignBreakout { .. } => 28,
            ClientMsg::BroadcastToBreakouts { .. } => 29,
            ClientMsg::CloseBreakouts => 30,
            ClientMsg::EnterBreakout { .. } => 31,
            ClientMsg::ReturnToMain => 32,
            ClientMsg::Recording { .. } => 33,
        }
    }

    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
}

impl ServerMsg {
    /// The `type` tags, indexed by [`ServerMsg::kind_index`].
    pub const KINDS: &'static [&'static str] = &[
        "hello",
        "joined",
        "peers_joined",
        "peer_left",
        "chat",
        "rooms",
        "error",
        "call_joined",
        "peer_updated",
        "signal",
        "reaction",
        "history_page",
        "call_mode",
        "media_answer",
        "media_offer",
        "active_speaker",
        "link_failed",
        "host_key",
        "moderated",
        "rules",
        "removed_list",
        "dismissed",
        "waiting",
        "waiting_list",
        "breakouts_changed",
        "broadcast",
    ];

    pub fn kind_index(&self) -> usize {
        match self {
            ServerMsg::Hello { .. } => 0,
            ServerMsg::Joined { .. } => 1,
            ServerMsg::PeersJoined { .. } => 2,
            ServerMsg::PeerLeft { .. } => 3,
            ServerMsg::Chat { .. } => 4,
            ServerMsg::Rooms { .. } => 5,
            ServerMsg::Error { .. } => 6,
            ServerMsg::CallJoined { .. } => 7,
            ServerMsg::PeerUpdated { .. } => 8,
            ServerMsg::Signal { .. } => 9,
            ServerMsg::Reaction { .. } => 10,
            ServerMsg::HistoryPage { .. } => 11,
            ServerMsg::CallMode { .. } => 12,
            ServerMsg::MediaAnswer { .. } => 13,
            ServerMsg::MediaOffer { .. } => 14,
            ServerMsg::ActiveSpeaker { .. } => 15,
            ServerMsg::LinkFailed { .. } => 16,
            ServerMsg::HostKey { .. } => 17,
            ServerMsg::Moderated { .. } => 18,
            ServerMsg::Rules { .. } => 19,
            ServerMsg::RemovedList { .. } => 20,
            ServerMsg::Dismissed { .. } => 21,
            ServerMsg::Waiting => 22,
            ServerMsg::WaitingList { .. } => 23,
            ServerMsg::BreakoutsChanged { .. } => 24,
            ServerMsg::Broadcast { .. } => 25,
        }
    }

    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            chat_text: None,
        }
    }

    /// JSON text of the message. Serializing these types cannot fail (no maps with non-string
    /// keys, no custom serializers), so a failure is a programming error worth a loud panic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ServerMsg serializes")
    }
}

/// The most SDP one `media_offer` or `media_answer` may carry across its parts: an answer
/// grows by about 800 bytes per section, and a call of 50 gives a page about 100 of them.
pub const MAX_SDP_BYTES: usize = 128 * 1024;

/// SDP in each part of a `media_offer` or `media_answer`: with JSON's escapes (each line end
/// becomes four characters) a part stays well under the default 16 KiB frame limit.
pub const SDP_PART_BYTES: usize = 6 * 1024;

impl ClientMsg {
    /// `sdp` as one `media_offer` (or `media_answer`) per part of at most `SDP_PART_BYTES`.
    pub fn media_description(sdp: &str, offer: bool) -> Vec<ClientMsg> {
        let mut parts = Vec::new();
        let mut rest = sdp;
        loop {
            let mut end = rest.len().min(SDP_PART_BYTES);
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            let (part, tail) = rest.split_at(end);
            rest = tail;
            let (sdp, more) = (part.to_string(), !rest.is_empty());
            parts.push(if offer {
                ClientMsg::MediaOffer { sdp, more }
            } else {
                ClientMsg::MediaAnswer { sdp, more }
            });
            if rest.is_empty() {
                return parts;
            }
        }
    }

    /// A `join` of `room` as a new member called `name`.
    pub fn join(room: impl Into<String>, name: impl Into<String>) -> ClientMsg {
        ClientMsg::Join {
            room: room.into(),
            name: name.into(),
            resume: None,
            last_seen: None,
            host_key: None,
            browser: None,
            password: None,
            token: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ClientMsg serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_use_the_documented_tags() {
        let chat = ClientMsg::Chat { text: "hi".into() };
        assert_eq!(chat.to_json(), r#"{"type":"chat","text":"hi"}"#);
        let parsed: ClientMsg = serde_json::from_str(r#"{"type":"watch_rooms"}"#).unwrap();
        assert_eq!(parsed, ClientMsg::WatchRooms);
    }

    #[test]
    fn error_codes_list_themselves_in_order_and_match_serde() {
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, index);
            assert_eq!(
                serde_json::to_string(code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    /// The `type` tag serde writes for `value`.
    fn tag_of(value: &impl Serialize) -> String {
        let json = serde_json::to_value(value).unwrap();
        json["type"].as_str().unwrap().to_string()
    }

    #[test]
    fn long_descriptions_go_in_parts_that_fit_a_frame_and_join_up_again() {
        let sdp = "a=candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host\r\n".repeat(400);
        let parts = ClientMsg::media_description(&sdp, false);
        assert!(parts.len() > 1);
        let mut joined = String::new();
        for (index, part) in parts.iter().enumerate() {
            let ClientMsg::MediaAnswer { sdp, more } = part else {
                panic!("expected media_answer, got {part:?}");
            };
            assert_eq!(*more, index + 1 < parts.len());
            assert!(part.to_json().len() < crate::core::room::RoomLimits::DEFAULT_MAX_FRAME_BYTES);
            joined.push_str(sdp);
        }
        assert_eq!(joined, sdp);
        // A short one is one part, and says no `more` on the wire.
        let one = ClientMsg::media_description("v=0", true);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].to_json(), r#"{"type":"media_offer","sdp":"v=0"}"#);
    }

    #[test]
    fn client_kind_labels_are_the_serde_tags() {
        let media = MediaState::default();
        let every_kind = [
            ClientMsg::Hello { version: 1 },
            ClientMsg::Join {
                room: "r".into(),
                name: "n".into(),
                resume: None,
                last_seen: None,
                host_key: None,
                browser: None,
                password: None,
                token: None,
            },
            ClientMsg::WatchRooms,
            ClientMsg::Chat { text: "t".into() },
            ClientMsg::JoinCall { media },
            ClientMsg::LeaveCall,
            ClientMsg::Media { media },
            ClientMsg::Signal {
                to: PeerId(1),
                signal: Signal::Description {
                    sdp_type: SdpType::Answer,
                    sdp: String::new(),
                },
            },
            ClientMsg::Hand { raised: true },
            ClientMsg::React { emoji: "x".into() },
            ClientMsg::LoadHistory {
                before: MessageId(7),
            },
            ClientMsg::MediaOffer {
                sdp: "v=0".into(),
                more: true,
            },
            ClientMsg::MediaAnswer {
                sdp: "v=0".into(),
                more: false,
            },
            ClientMsg::View {
                tiles: vec![TileView {
                    peer: PeerId(2),
                    source: TrackSource::Camera,
                    width: 640,
                    height: 360,
                }],
            },
            ClientMsg::LinkFailed {
                peer: PeerId(2),
                reason: LinkFailure::Lost,
            },
            ClientMsg::SetRole {
                peer: PeerId(2),
                role: Role::Cohost,
            },
            ClientMsg::Mute {
                peer: PeerId(2),
                source: TrackSource::Microphone,
            },
            ClientMsg::MuteAll,
            ClientMsg::AllowUnmute { peer: PeerId(2) },
            ClientMsg::Remove { peer: PeerId(2) },
            ClientMsg::AllowBack { peer: PeerId(2) },
            ClientMsg::SetRules {
                rules: MeetingRules::default(),
            },
            ClientMsg::EndMeeting,
            ClientMsg::Admit { peer: PeerId(2) },
            ClientMsg::AdmitAll,
            ClientMsg::Deny { peer: PeerId(2) },
            ClientMsg::SetPassword {
                password: Some("open sesame".into()),
            },
            ClientMsg::OpenBreakouts {
                rooms: vec![BreakoutRoom {
                    name: "Room 1".into(),
                    members: vec![PeerId(2)],
                }],
                minutes: Some(10),
            },
            ClientMsg::AssignBreakout {
                peer: PeerId(2),
                room: None,
            },
            ClientMsg::BroadcastToBreakouts { text: "t".into() },
            ClientMsg::CloseBreakouts,
            ClientMsg::EnterBreakout { room: 0 },
            ClientMsg::ReturnToMain,
            ClientMsg::Recording { on: true },
        ];
        assert_eq!(every_kind.len(), ClientMsg::KINDS.len());
        for (index, msg) in every_kind.iter().enumerate() {
            assert_eq!(msg.kind_index(), index);
            assert_eq!(msg.kind(), tag_of(msg));
        }
    }

    #[test]
    fn sdp_types_use_the_browser_names() {
        for (sdp_type, name) in [
            (SdpType::Offer, "offer"),
            (SdpType::Answer, "answer"),
            (SdpType::Pranswer, "pranswer"),
            (SdpType::Rollback, "rollback"),
        ] {
            assert_eq!(
                serde_json::to_string(&sdp_type).unwrap(),
                format!("\"{name}\"")
            );
        }
    }

    #[test]
    fn idle_members_are_sent_compactly() {
        let idle = PeerInfo {
            id: PeerId(7),
            name: "Ann".into(),
            in_call: false,
            media: MediaState::default(),
            away: false,
            hand: None,
            role: Role::Member,
            breakout: None,
            recording: false,
        };
        assert_eq!(
            serde_json::to_string(&idle).unwrap(),
            r#"{"id":7,"name":"Ann"}"#
        );
        let back: PeerInfo = serde_json::from_str(r#"{"id":7,"name":"Ann"}"#).unwrap();
        assert_eq!(back, idle);
    }

    #[test]
    fn host_messages_read_as_documented() {
        let mute: ClientMsg =
            serde_json::from_str(r#"{"type":"mute","peer":3,"source":"microphone"}"#).unwrap();
        assert_eq!(
            mute,
            ClientMsg::Mute {
                peer: PeerId(3),
                source: TrackSource::Microphone
            }
        );
        let told = ServerMsg::Moderated {
            by: PeerId(1),
            action: Moderation::Muted {
                source: TrackSource::Camera,
            },
        };
        assert_eq!(
            told.to_json(),
            r#"{"type":"moderated","by":1,"action":{"kind":"muted","source":"camera"}}"#
        );
        assert!(Role::Host > Role::Cohost && Role::Cohost > Role::Member);
        let rules: ClientMsg =
            serde_json::from_str(r#"{"type":"set_rules","rules":{"locked":true}}"#).unwrap();
        assert_eq!(
            rules,
            ClientMsg::SetRules {
                rules: MeetingRules {
                    locked: true,
                    only_hosts_unmute: false,
                    waiting_room: false,
                    password: false,
                    spotlight: None,
                }
            }
        );
    }

    #[test]
    fn ids_are_plain_numbers_on_the_wire() {
        let msg = ServerMsg::PeerLeft {
            peer: PeerId(7),
            reason: LeaveReason::TooSlow,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"peer_left","peer":7,"reason":"too_slow"}"#
        );
    }

    #[test]
    fn signals_nest_a_second_tag() {
        let msg = ClientMsg::Signal {
            to: PeerId(4),
            signal: Signal::Description {
                sdp_type: SdpType::Offer,
                sdp: "v=0".into(),
            },
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"signal","to":4,"signal":{"kind":"description","sdp_type":"offer","sdp":"v=0"}}"#
        );
        let parsed: ClientMsg = serde_json::from_str(
            r#"{"type":"signal","to":4,"signal":{"kind":"candidate","candidate":""}}"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            ClientMsg::Signal {
                to: PeerId(4),
                signal: Signal::Candidate {
                    candidate: String::new(),
                    sdp_mid: None,
                    sdp_m_line_index: None
                }
            }
        );
        let pause = ClientMsg::Signal {
            to: PeerId(4),
            signal: Signal::Video { wanted: false },
        };
        assert_eq!(
            serde_json::to_string(&pause).unwrap(),
            r#"{"type":"signal","to":4,"signal":{"kind":"video","wanted":false}}"#
        );
    }

    #[test]
    fn unknown_types_and_missing_fields_are_rejected() {
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"chat"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"[1,2]"#).is_err());
    }

    #[test]
    fn every_server_message_round_trips() {
        let entry = ChatEntry {
            id: MessageId(3),
            from: PeerId(1),
            name: "Ann".into(),
            at: UnixMillis(1_700_000_000_000),
            text: "<b>hi</b>".into(),
        };
        let messages = vec![
            ServerMsg::Hello {
                version: PROTOCOL_VERSION,
                limits: Limits {
                    max_frame_bytes: 16384,
                    max_name_chars: 32,
                    max_chat_chars: 2000,
                    max_room_chars: 40,
                    max_call_members: 6,
                    page_size: 9,
                },
            },
            ServerMsg::Joined {
                you: PeerId(1),
                room: "brave-otter-42".into(),
                name: "Ann".into(),
                peers: vec![PeerInfo {
                    id: PeerId(1),
                    name: "Ann".into(),
                    in_call: false,
                    media: MediaState::default(),
                    away: false,
                    hand: None,
                    role: Role::Host,
                    breakout: None,
                    recording: false,
                }],
                history: vec![entry.clone()],
                more_history: true,
                resumed: false,
                resume_token: "t".into(),
                host_key: Some("k".into()),
                waiting: vec![NamedPeer {
                    id: PeerId(5),
                    name: "Eve".into(),
                }],
                removed: Vec::new(),
                rules: MeetingRules {
                    locked: true,
                    only_hosts_unmute: true,
                    waiting_room: false,
                    password: false,
                    spotlight: None,
                },
                breakout: Some(1),
                breakouts: None,
            },
            ServerMsg::HistoryPage {
                entries: vec![entry.clone()],
                more: false,
            },
            ServerMsg::Chat { entry },
            ServerMsg::Rooms {
                rooms: vec![RoomSummary {
                    room: "a".into(),
                    participants: 2,
                }],
            },
            ServerMsg::error(ErrorCode::NameTaken, "taken"),
            ServerMsg::CallJoined {
                peers: vec![PeerId(2)],
                ice_servers: vec![IceServer {
                    urls: vec!["turn:turn.example.org:3478".into()],
                    username: Some("u".into()),
                    credential: Some("c".into()),
                }],
                mode: CallMode::Sfu,
            },
            ServerMsg::CallMode {
                mode: CallMode::Mesh,
            },
            ServerMsg::MediaAnswer { sdp: "v=0".into() },
            ServerMsg::MediaOffer {
                sdp: "v=0".into(),
                tracks: vec![RemoteTrack {
                    mid: "0".into(),
                    peer: PeerId(2),
                    source: TrackSource::Screen,
                }],
            },
            ServerMsg::ActiveSpeaker {
                peer: Some(PeerId(2)),
            },
            ServerMsg::LinkFailed {
                peer: PeerId(2),
                reason: LinkFailure::NeverConnected,
            },
            ServerMsg::PeerUpdated {
                peer: PeerInfo {
                    id: PeerId(2),
                    name: "Bob".into(),
                    in_call: true,
                    media: MediaState {
                        mic: false,
                        camera: true,
                        screen: true,
                    },
                    away: true,
                    hand: Some(3),
                    role: Role::Cohost,
                    breakout: None,
                    recording: false,
                },
            },
            ServerMsg::HostKey { key: "k".into() },
            ServerMsg::Moderated {
                by: PeerId(1),
                action: Moderation::UnmuteAllowed,
            },
            ServerMsg::Rules {
                rules: MeetingRules::default(),
            },
            ServerMsg::RemovedList {
                people: vec![NamedPeer {
                    id: PeerId(3),
                    name: "Eve".into(),
                }],
            },
            ServerMsg::Dismissed {
                reason: Dismissal::Removed,
                by: PeerId(1),
                by_name: "Ann".into(),
            },
            ServerMsg::Waiting,
            ServerMsg::WaitingList {
                people: vec![NamedPeer {
                    id: PeerId(4),
                    name: "Dee".into(),
                }],
            },
            ServerMsg::BreakoutsChanged {
                breakouts: Some(Breakouts {
                    rooms: vec![BreakoutRoom {
                        name: "Room 1".into(),
                        members: vec![PeerId(2)],
                    }],
                    ends_at: Some(UnixMillis(1_000)),
                    closing_at: None,
                }),
            },
            ServerMsg::Broadcast {
                from: PeerId(1),
                name: "Ann".into(),
                text: "Five minutes left".into(),
            },
            ServerMsg::Reaction {
                from: PeerId(2),
                emoji: REACTIONS[0].into(),
            },
            ServerMsg::Signal {
                from: PeerId(2),
                signal: Signal::Candidate {
                    candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                },
            },
        ];
        let kinds: std::collections::HashSet<&str> = messages.iter().map(ServerMsg::kind).collect();
        // Every kind but `peers_joined` and `peer_left` is round-tripped below; their tags are
        // checked here.
        assert_eq!(kinds.len() + 2, ServerMsg::KINDS.len());
        let left = ServerMsg::PeerLeft {
            peer: PeerId(1),
            reason: LeaveReason::Left,
        };
        assert_eq!(left.kind(), tag_of(&left));
        let joined = ServerMsg::PeersJoined {
            peers: vec![PeerInfo {
                id: PeerId(1),
                name: "n".into(),
                in_call: false,
                media: MediaState::default(),
                away: false,
                hand: None,
                role: Role::Member,
                breakout: None,
                recording: false,
            }],
        };
        assert_eq!(joined.kind(), tag_of(&joined));
        for msg in messages {
            assert_eq!(msg.kind(), tag_of(&msg));
            let back: ServerMsg = serde_json::from_str(&msg.to_json()).unwrap();
            assert_eq!(back, msg);
        }
    }
}
