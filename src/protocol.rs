//! The wire protocol between the browser and the server: typed messages, ids and error codes.
//!
//! Every WebSocket text frame carries exactly one JSON object tagged by `"type"`. The same
//! types are compiled into the server and the WASM client, so the two cannot drift apart;
//! `docs/protocol.md` documents each message for other clients (the load tool, tests).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bumped whenever a change would make an older client misunderstand the server.
pub const PROTOCOL_VERSION: u32 = 1;

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
    Join { room: String, name: String },
    /// Subscribe to the list of rooms in use (the home page). Answered by `rooms`, then again
    /// whenever the list changes.
    WatchRooms,
    /// Say something in the room the connection has joined.
    Chat { text: String },
}

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
        /// The room's most recent chat messages, oldest first.
        history: Vec<ChatEntry>,
    },
    /// Someone else entered the room.
    PeerJoined { peer: PeerInfo },
    /// Someone left the room.
    PeerLeft { peer: PeerId, reason: LeaveReason },
    /// A chat message, the sender's own included.
    Chat { entry: ChatEntry },
    /// The rooms in use, busiest first.
    Rooms { rooms: Vec<RoomSummary> },
    /// Something the client sent was refused; the connection stays usable unless the close
    /// frame that follows says otherwise.
    Error { code: ErrorCode, message: String },
}

/// What the server enforces, so a client can check input before sending it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_name_chars: usize,
    pub max_chat_chars: usize,
    pub max_room_chars: usize,
}

/// A room member as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub name: String,
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
    /// The chat text is empty or longer than the limit.
    InvalidText,
    /// The frame is larger than the server accepts; the connection closes.
    TooLarge,
    /// The client sent chat faster than the server allows; the message was dropped.
    RateLimited,
    /// The server is over a global limit or shutting down; try again later.
    Unavailable,
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
        ErrorCode::InvalidText,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
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
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl ClientMsg {
    /// The `type` tags, indexed by [`ClientMsg::kind_index`]; labels for logs and metrics.
    pub const KINDS: &'static [&'static str] = &["hello", "join", "watch_rooms", "chat"];

    pub fn kind_index(&self) -> usize {
        match self {
            ClientMsg::Hello { .. } => 0,
            ClientMsg::Join { .. } => 1,
            ClientMsg::WatchRooms => 2,
            ClientMsg::Chat { .. } => 3,
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
        "peer_joined",
        "peer_left",
        "chat",
        "rooms",
        "error",
    ];

    pub fn kind_index(&self) -> usize {
        match self {
            ServerMsg::Hello { .. } => 0,
            ServerMsg::Joined { .. } => 1,
            ServerMsg::PeerJoined { .. } => 2,
            ServerMsg::PeerLeft { .. } => 3,
            ServerMsg::Chat { .. } => 4,
            ServerMsg::Rooms { .. } => 5,
            ServerMsg::Error { .. } => 6,
        }
    }

    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }

    /// JSON text of the message. Serializing these types cannot fail (no maps with non-string
    /// keys, no custom serializers), so a failure is a programming error worth a loud panic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ServerMsg serializes")
    }
}

impl ClientMsg {
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
                },
            },
            ServerMsg::Joined {
                you: PeerId(1),
                room: "brave-otter-42".into(),
                name: "Ann".into(),
                peers: vec![PeerInfo {
                    id: PeerId(1),
                    name: "Ann".into(),
                }],
                history: vec![entry.clone()],
            },
            ServerMsg::Chat { entry },
            ServerMsg::Rooms {
                rooms: vec![RoomSummary {
                    room: "a".into(),
                    participants: 2,
                }],
            },
            ServerMsg::error(ErrorCode::NameTaken, "taken"),
        ];
        for msg in messages {
            assert!(msg
                .to_json()
                .starts_with(&format!(r#"{{"type":"{}""#, msg.kind())));
            let back: ServerMsg = serde_json::from_str(&msg.to_json()).unwrap();
            assert_eq!(back, msg);
        }
    }
}
