//! STUN messages (RFC 8489) as a TURN server needs them: parse, build, sign and check.
//!
//! Parsing borrows the datagram and records where each attribute is; nothing is copied until
//! a value is read. Only the short-term and long-term HMAC-SHA1 integrity of RFC 5389 is
//! spoken: it is what browsers send to TURN servers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const HEADER_LEN: usize = 20;
/// What FINGERPRINT's CRC is XORed with, so a STUN CRC differs from the payload's own.
const FINGERPRINT_XOR: u32 = 0x5354_554e;

pub type TransactionId = [u8; 12];

/// The four classes of STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// Method numbers (RFC 8489 and RFC 8656).
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types this server reads or writes.
pub mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Why bytes are not a STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    NotStun,
    BadLength,
    BadAttribute,
}

/// A parsed STUN message, borrowing the bytes it came from.
#[derive(Debug)]
pub struct Message<'a> {
    pub class: Class,
    pub method: u16,
    pub transaction: TransactionId,
    raw: &'a [u8],
    /// (type, start of value, value length, start of the attribute's header).
    attributes: Vec<(u16, usize, usize, usize)>,
}

impl<'a> Message<'a> {
    /// Whether `data` starts like a STUN message (the first two bits zero and the cookie).
    pub fn looks_like_stun(data: &[u8]) -> bool {
        data.len() >= HEADER_LEN
            && data[0] & 0xC0 == 0
            && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) == MAGIC_COOKIE
    }

    pub fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        if raw.len() < HEADER_LEN {
            return Err(ParseError::TooShort);
        }
        if !Self::looks_like_stun(raw) {
            return Err(ParseError::NotStun);
        }
        let kind = u16::from_be_bytes([raw[0], raw[1]]);
        let length = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        if length % 4 != 0 || HEADER_LEN + length != raw.len() {
            return Err(ParseError::BadLength);
        }
        let class = match kind & 0x0110 {
            0x0000 => Class::Request,
            0x0010 => Class::Indication,
            0x0100 => Class::Success,
            _ => Class::Error,
        };
        let method = (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2);
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&raw[8..20]);
        let mut attributes = Vec::new();
        let mut at = HEADER_LEN;
        while at < raw.len() {
            if at + 4 > raw.len() {
                return Err(ParseError::BadAttribute);
            }
            let kind = u16::from_be_bytes([raw[at], raw[at + 1]]);
            let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
            let start = at + 4;
            if start + len > raw.len() {
                return Err(ParseError::BadAttribute);
            }
            attributes.push((kind, start, len, at));
            at = start + len.next_multiple_of(4);
            // Nothing after FINGERPRINT counts.
            if kind == attr::FINGERPRINT {
                break;
            }
        }
        Ok(Message {
            class,
            method,
            transaction,
            raw,
            attributes,
        })
    }

    /// The first value of attribute `kind`. Attributes after MESSAGE-INTEGRITY (other than
    /// FINGERPRINT) are not covered by it, so they are not read.
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        let mut signed = false;
        for &(k, start, len, _) in &self.attributes {
            if signed && k != attr::FINGERPRINT {
                return None;
            }
            if k == kind {
                return Some(&self.raw[start..start + len]);
            }
            signed |= k == attr::MESSAGE_INTEGRITY;
        }
        None
    }

    /// Every value of attribute `kind` (CreatePermission may name several peers).
    pub fn get_all(&self, kind: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        let raw = self.raw;
        self.attributes
            .iter()
            .take_while(|a| a.0 != attr::MESSAGE_INTEGRITY)
            .filter(move |a| a.0 == kind)
            .map(move |&(_, start, len, _)| &raw[start..start + len])
    }

    pub fn text(&self, kind: u16) -> Option<&'a str> {
        self.get(kind).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn u32(&self, kind: u16) -> Option<u32> {
        self.get(kind)
            .and_then(|v| v.get(..4))
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    pub fn xor_address(&self, kind: u16) -> Option<SocketAddr> {
        self.get(kind)
            .and_then(|v| decode_xor_address(v, &self.transaction))
    }

    /// Comprehension-required attributes (below 0x8000) this server does not know.
    pub fn unknown_required(&self, known: &[u16]) -> Vec<u16> {
        self.attributes
            .iter()
            .map(|a| a.0)
            .filter(|k| *k < 0x8000 && !known.contains(k))
            .collect()
    }

    pub fn has_integrity(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| a.0 == attr::MESSAGE_INTEGRITY)
    }

    /// Whether MESSAGE-INTEGRITY is present and matches `key`.
    pub fn check_integrity(&self, key: &[u8]) -> bool {
        let Some(&(_, start, len, header)) = self
            .attributes
            .iter()
            .find(|a| a.0 == attr::MESSAGE_INTEGRITY)
        else {
            return false;
        };
        if len != 20 {
            return false;
        }
        // The length field covers the message up to and including MESSAGE-INTEGRITY.
        let length = (header + 24 - HEADER_LEN) as u16;
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
            return false;
        };
        mac.update(&self.raw[..2]);
        mac.update(&length.to_be_bytes());
        mac.update(&self.raw[4..header]);
        mac.verify_slice(&self.raw[start..start + len]).is_ok()
    }
}

/// Builds one STUN message, keeping the header's length field current.
pub struct Builder {
    buf: Vec<u8>,
    transaction: TransactionId,
}

impl Builder {
    pub fn new(class: Class, method: u16, transaction: TransactionId) -> Self {
        let class_bits = match class {
            Class::Request => 0x0000,
            Class::Indication => 0x0010,
            Class::Success => 0x0100,
            Class::Error => 0x0110,
        };
        let kind = (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2);
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&(kind | class_bits).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction);
        Builder { buf, transaction }
    }

    /// The reply of class `class` to `request`.
    pub fn reply(request: &Message<'_>, class: Class) -> Self {
        Builder::new(class, request.method, request.transaction)
    }

    fn set_length(&mut self) {
        let length = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&length.to_be_bytes());
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        let padded = self.buf.len().next_multiple_of(4);
        self.buf.resize(padded, 0);
        self.set_length();
        self
    }

    pub fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.attr(kind, &value.to_be_bytes())
    }

    pub fn xor_address(&mut self, kind: u16, address: SocketAddr) -> &mut Self {
        let value = encode_xor_address(address, &self.transaction);
        self.attr(kind, &value)
    }

    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut value = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        value.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &value)
    }

    /// Appends MESSAGE-INTEGRITY computed with `key`.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let header = self.buf.len();
        let length = (header + 24 - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&length.to_be_bytes());
        let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(&self.buf);
        let tag = mac.finalize().into_bytes();
        self.attr(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// The message with FINGERPRINT appended.
    pub fn finish(mut self) -> Vec<u8> {
        let length = (self.buf.len() + 8 - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32(&self.buf) ^ FINGERPRINT_XOR;
        self.attr(attr::FINGERPRINT, &crc.to_be_bytes());
        self.buf
    }
}

fn encode_xor_address(address: SocketAddr, transaction: &TransactionId) -> Vec<u8> {
    let port = address.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut value = vec![0];
    match address.ip() {
        IpAddr::V4(ip) => {
            value.push(0x01);
            value.extend_from_slice(&port.to_be_bytes());
            value.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
        }
        IpAddr::V6(ip) => {
            value.push(0x02);
            value.extend_from_slice(&port.to_be_bytes());
            let mask = xor_mask_v6(transaction);
            value.extend(ip.octets().iter().zip(mask).map(|(a, m)| a ^ m));
        }
    }
    value
}

/// An XOR-…-ADDRESS value of a message with `transaction`.
pub fn decode_xor_address(value: &[u8], transaction: &TransactionId) -> Option<SocketAddr> {
    if value.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (value[1], value.len()) {
        (0x01, 8) => {
            let bits = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
            IpAddr::V4(Ipv4Addr::from(bits ^ MAGIC_COOKIE))
        }
        (0x02, 20) => {
            let mask = xor_mask_v6(transaction);
            let mut octets = [0u8; 16];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = value[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn xor_mask_v6(transaction: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction);
    mask
}

/// CRC-32 (ISO-HDLC, as zlib), for FINGERPRINT; only control messages carry one, so a
/// bitwise loop is fast enough.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A TURN ChannelData message's channel number and payload, if `data` is one.
pub fn channel_data(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < 4 {
        return None;
    }
    let channel = u16::from_be_bytes([data[0], data[1]]);
    if !(0x4000..=0x4FFF).contains(&channel) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    data.get(4..4 + len).map(|payload| (channel, payload))
}

/// Writes into `frame` (cleared first) a ChannelData message carrying `payload` on `channel`,
/// padded to four bytes for a stream (TCP or TLS) as RFC 8656 §12.5 asks.
pub fn write_channel_data(frame: &mut Vec<u8>, channel: u16, payload: &[u8], stream: bool) {
    frame.clear();
    frame.extend_from_slice(&channel.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(payload);
    if stream {
        frame.resize(frame.len().next_multiple_of(4), 0);
    }
}

/// How many bytes of a TCP stream starting at `data` make its next message, once its header
/// is in: a STUN message, or a ChannelData message padded to four bytes (RFC 8656 §12.5).
/// `Err` when the stream is neither, and the connection should close.
pub fn stream_frame_len(data: &[u8]) -> Result<Option<usize>, ParseError> {
    if data.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    match data[0] >> 6 {
        0 => Ok(Some(HEADER_LEN + len)),
        1 => Ok(Some((4 + len).next_multiple_of(4))),
        _ => Err(ParseError::NotStun),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: TransactionId = [7; 12];

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_built_message_parses_back_with_its_attributes() {
        let peer: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let peer6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        let mut b = Builder::new(Class::Success, method::ALLOCATE, TX);
        b.xor_address(attr::XOR_RELAYED_ADDRESS, peer)
            .xor_address(attr::XOR_PEER_ADDRESS, peer6)
            .u32(attr::LIFETIME, 600)
            .attr(attr::SOFTWARE, b"room");
        let bytes = b.finish();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.class, Class::Success);
        assert_eq!(m.method, method::ALLOCATE);
        assert_eq!(m.transaction, TX);
        assert_eq!(m.xor_address(attr::XOR_RELAYED_ADDRESS), Some(peer));
        assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer6));
        assert_eq!(m.u32(attr::LIFETIME), Some(600));
        assert_eq!(m.text(attr::SOFTWARE), Some("room"));
        assert!(m.unknown_required(&[]).iter().all(|k| *k != attr::SOFTWARE));
    }

    #[test]
    fn integrity_holds_for_the_right_key_only() {
        let mut b = Builder::new(Class::Request, method::REFRESH, TX);
        b.attr(attr::USERNAME, b"1:2").integrity(b"key");
        let bytes = b.finish();
        let m = Message::parse(&bytes).unwrap();
        assert!(m.check_integrity(b"key"));
        assert!(!m.check_integrity(b"other"));
        let mut tampered = bytes.clone();
        tampered[27] ^= 1;
        assert!(!Message::parse(&tampered).unwrap().check_integrity(b"key"));
    }

    #[test]
    fn attributes_after_integrity_are_not_believed() {
        let mut b = Builder::new(Class::Request, method::REFRESH, TX);
        b.integrity(b"key").u32(attr::LIFETIME, 0);
        let bytes = b.buf.clone();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.u32(attr::LIFETIME), None);
    }

    #[test]
    fn malformed_input_is_refused_not_panicked_on() {
        assert_eq!(Message::parse(&[0; 3]).unwrap_err(), ParseError::TooShort);
        let mut b = Builder::new(Class::Request, method::BINDING, TX);
        b.attr(attr::SOFTWARE, b"x");
        let mut bytes = b.buf.clone();
        // An attribute claiming more bytes than the message has.
        bytes[22..24].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(
            Message::parse(&bytes).unwrap_err(),
            ParseError::BadAttribute
        );
        bytes.push(0);
        assert_eq!(Message::parse(&bytes).unwrap_err(), ParseError::BadLength);
        for cut in 0..bytes.len() {
            let _ = Message::parse(&bytes[..cut]);
        }
    }

    #[test]
    fn channel_data_and_stream_framing() {
        let mut written = Vec::new();
        write_channel_data(&mut written, 0x4001, &[1, 2, 3], false);
        assert_eq!(written, [0x40, 0x01, 0, 3, 1, 2, 3]);
        write_channel_data(&mut written, 0x4001, &[1, 2, 3], true);
        let frame = [0x40, 0x01, 0, 3, 1, 2, 3, 0];
        assert_eq!(written, frame);
        assert_eq!(channel_data(&frame), Some((0x4001, &[1u8, 2, 3][..])));
        assert_eq!(channel_data(&[0x30, 0, 0, 0]), None);
        assert_eq!(stream_frame_len(&frame), Ok(Some(8)));
        let stun = Builder::new(Class::Request, method::BINDING, TX).finish();
        assert_eq!(stream_frame_len(&stun), Ok(Some(stun.len())));
        assert_eq!(stream_frame_len(&[0xC0, 0, 0, 0]), Err(ParseError::NotStun));
        assert_eq!(stream_frame_len(&[0x00]), Ok(None));
    }
}
