//! Pure room logic: membership, names, chat history, routing decisions and limits. No IO, no
//! async, no clock: callers pass the time in and carry the returned deliveries out, which is
//! what lets the same code run under a socket server, a test or a fuzzer.

pub mod directory;
pub mod names;
pub mod rate;
pub mod room;
pub mod simulate;

use crate::protocol::{ErrorCode, PeerId, ServerMsg};

/// A refused request: the code and a sentence for the person who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn into_msg(self) -> ServerMsg {
        ServerMsg::Error {
            code: self.code,
            message: self.message,
        }
    }
}

/// Who a message is for, among the members of one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipients {
    Only(PeerId),
    Everyone,
    EveryoneBut(PeerId),
}

impl Recipients {
    pub fn includes(self, peer: PeerId) -> bool {
        match self {
            Recipients::Only(only) => only == peer,
            Recipients::Everyone => true,
            Recipients::EveryoneBut(excluded) => excluded != peer,
        }
    }
}

/// A message the room wants sent; the transport encodes it once for all its recipients.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub to: Recipients,
    pub msg: ServerMsg,
}
