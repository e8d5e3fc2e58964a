//! What nodes say to each other about relayed connections: a compact binary envelope carried
//! as one pub/sub message on the receiving node's channel. Pure encoding, no IO.
//!
//! A browser connected to node E (the edge) whose room lives on node O (the owner) has its
//! WebSocket frames carried E → O as `Up` envelopes and O's frames carried back as `Down`
//! envelopes. Frames are carried as the very text the browser sent or will receive: the owner
//! decodes them exactly as if the browser were connected to it.

use std::net::IpAddr;

/// The pub/sub channel a node listens on.
pub fn node_channel(node: &str) -> String {
    format!("room:node:{node}")
}

/// Node ids are short printable names (`--node-id`, or random hex), so they fit the header.
pub const MAX_NODE_ID: usize = 64;

/// A relayed connection's number, chosen by its edge node; with the edge's id it is unique.
pub type SessionId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Up {
    /// A browser asks to join a room the receiver owns: the client address the limits
    /// count and the `join` frame itself. The browser already said `hello` to the edge.
    Open {
        address: IpAddr,
        join: String,
    },
    Text(String),
    Pong,
    /// The browser said goodbye (a close frame): the member leaves now.
    Closed,
    /// The browser's connection broke, or the edge gave it up: the member may resume.
    Lost,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Down {
    Text(String),
    /// The owner's heartbeat: the edge pings the browser, whose pong comes back as `Up::Pong`.
    Ping,
    /// The owner closed the connection with this close code and reason.
    Close {
        code: u16,
        reason: String,
    },
    /// The receiver does not own the room; `owner` does (as far as it knows).
    Moved {
        owner: String,
    },
}

/// One envelope as it travels: which connection, which node sent it, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<T> {
    pub session: SessionId,
    pub from: String,
    pub body: T,
}

const UP_OPEN: u8 = 1;
const UP_TEXT: u8 = 2;
const UP_PONG: u8 = 3;
const UP_CLOSED: u8 = 4;
const UP_LOST: u8 = 5;
const DOWN_TEXT: u8 = 16;
const DOWN_PING: u8 = 17;
const DOWN_CLOSE: u8 = 18;
const DOWN_MOVED: u8 = 19;

/// Either direction, as decoded from the channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    Up(Envelope<Up>),
    Down(Envelope<Down>),
}

fn header(kind: u8, session: SessionId, from: &str, body_len: usize) -> Vec<u8> {
    let from = &from.as_bytes()[..from.len().min(MAX_NODE_ID)];
    let mut out = Vec::with_capacity(10 + from.len() + body_len);
    out.push(kind);
    out.extend_from_slice(&session.to_be_bytes());
    out.push(from.len() as u8);
    out.extend_from_slice(from);
    out
}

pub fn encode_up(session: SessionId, from: &str, body: &Up) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match body {
        Up::Open { address, join } => {
            let address = address.to_string();
            let mut out = header(UP_OPEN, session, from, address.len() + 1 + join.len());
            out.push(address.len() as u8);
            out.extend_from_slice(address.as_bytes());
            out.extend_from_slice(join.as_bytes());
            return out;
        }
        Up::Text(text) => (UP_TEXT, text.as_bytes()),
        Up::Pong => (UP_PONG, b""),
        Up::Closed => (UP_CLOSED, b""),
        Up::Lost => (UP_LOST, b""),
    };
    let mut out = header(kind, session, from, payload.len());
    out.extend_from_slice(payload);
    out
}

pub fn encode_down(session: SessionId, from: &str, body: &Down) -> Vec<u8> {
    let (kind, payload): (u8, &[u8]) = match body {
        Down::Text(text) => (DOWN_TEXT, text.as_bytes()),
        Down::Ping => (DOWN_PING, b""),
        Down::Close { code, reason } => {
            let mut out = header(DOWN_CLOSE, session, from, 2 + reason.len());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
            return out;
        }
        Down::Moved { owner } => (DOWN_MOVED, owner.as_bytes()),
    };
    let mut out = header(kind, session, from, payload.len());
    out.extend_from_slice(payload);
    out
}

/// Reads one envelope; `None` for anything malformed (Redis carries only what nodes wrote,
/// but a node of another version, or anyone with access to Redis, may write something else).
pub fn decode(bytes: &[u8]) -> Option<Received> {
    let (&kind, rest) = bytes.split_first()?;
    let session = SessionId::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let (&from_len, rest) = rest.get(8..)?.split_first()?;
    let from = std::str::from_utf8(rest.get(..usize::from(from_len))?).ok()?;
    let body = rest.get(usize::from(from_len)..)?;
    let text = || std::str::from_utf8(body).ok().map(str::to_string);
    let up = |body| {
        Some(Received::Up(Envelope {
            session,
            from: from.to_string(),
            body,
        }))
    };
    let down = |body| {
        Some(Received::Down(Envelope {
            session,
            from: from.to_string(),
            body,
        }))
    };
    match kind {
        UP_OPEN => {
            let (&len, rest) = body.split_first()?;
            let address = std::str::from_utf8(rest.get(..usize::from(len))?).ok()?;
            let join = std::str::from_utf8(rest.get(usize::from(len)..)?).ok()?;
            up(Up::Open {
                address: address.parse().ok()?,
                join: join.to_string(),
            })
        }
        UP_TEXT => up(Up::Text(text()?)),
        UP_PONG => up(Up::Pong),
        UP_CLOSED => up(Up::Closed),
        UP_LOST => up(Up::Lost),
        DOWN_TEXT => down(Down::Text(text()?)),
        DOWN_PING => down(Down::Ping),
        DOWN_CLOSE => {
            let code = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
            let reason = std::str::from_utf8(body.get(2..)?).ok()?.to_string();
            down(Down::Close { code, reason })
        }
        DOWN_MOVED => down(Down::Moved { owner: text()? }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_survives_the_trip() {
        let ups = [
            Up::Open {
                address: "2001:db8::7".parse().unwrap(),
                join: r#"{"type":"join","room":"a","name":"Ann"}"#.into(),
            },
            Up::Text("{\"type\":\"chat\",\"text\":\"hé\"}".into()),
            Up::Pong,
            Up::Closed,
            Up::Lost,
        ];
        for body in ups {
            let bytes = encode_up(u64::MAX - 3, "node-a", &body);
            let expected = Envelope {
                session: u64::MAX - 3,
                from: "node-a".into(),
                body,
            };
            assert_eq!(decode(&bytes), Some(Received::Up(expected)));
        }
        let downs = [
            Down::Text("{}".into()),
            Down::Ping,
            Down::Close {
                code: 4003,
                reason: "removed by a host".into(),
            },
            Down::Moved {
                owner: "node-c".into(),
            },
        ];
        for body in downs {
            let bytes = encode_down(7, "b", &body);
            let expected = Envelope {
                session: 7,
                from: "b".into(),
                body,
            };
            assert_eq!(decode(&bytes), Some(Received::Down(expected)));
        }
    }

    #[test]
    fn truncated_or_unknown_envelopes_are_refused() {
        let bytes = encode_up(
            1,
            "n",
            &Up::Open {
                address: "127.0.0.1".parse().unwrap(),
                join: "{}".into(),
            },
        );
        for cut in 0..12 {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[99, 0, 0, 0, 0, 0, 0, 0, 1, 0]), None);
        let mut bad_text = encode_down(1, "n", &Down::Text(String::new()));
        bad_text.push(0xff);
        assert_eq!(decode(&bad_text), None);
    }
}
