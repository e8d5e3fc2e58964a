//! The TURN server's logic (RFC 8656 over UDP and TCP), sans-IO: datagrams, stream frames,
//! opened relay sockets and the clock go in; replies, frames to relay and sockets to open or
//! close come out. `server::turn` moves the bytes.
//!
//! Who may relay: only holders of valid short-lived credentials (see [`Credentials`]), at most
//! a few allocations and a byte budget per member, and never towards loopback, private,
//! link-local or this server's own addresses unless the operator opened a range.

use std::collections::HashMap as StdHashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::credentials::{long_term_key, CredentialError, Credentials};
use super::stun::{self, attr, method, Builder, Class, Message, TransactionId};
use crate::server::proxy::Cidr;

/// A map looked up on the hot path: a seeded fast hash instead of SipHash, since every
/// relayed datagram takes several lookups.
pub type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

const SOFTWARE: &[u8] = b"Room";
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// How long a nonce stays good; a client with an older one is told to retry (438).
const NONCE_LIFETIME_SECS: u64 = 3600;
const UDP: u8 = 17;

/// Address ranges a relay never sends to unless `--turn-allow-peer` opens them: this host,
/// private networks, link-local, carrier-grade NAT, benchmarking, multicast and reserved.
const FORBIDDEN_PEERS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/3",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// How a client reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TCP with TLS (`turns:`).
    Tls,
}

impl Transport {
    /// Whether messages come as a byte stream (framed, ChannelData padded to four bytes).
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}

/// A client's side of the conversation: an allocation belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub transport: Transport,
    pub remote: SocketAddr,
}

pub type RelayId = u64;

/// Both clocks: the monotonic one for lifetimes, the wall one for credential expiry.
#[derive(Clone, Copy, Debug)]
pub struct TurnNow {
    pub mono: Instant,
    pub unix_secs: u64,
}

/// Where relays may send, beyond the public internet.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    forbidden: Vec<Cidr>,
    /// Opened by the operator (`--turn-allow-peer`); wins over every other rule.
    allowed: Vec<Cidr>,
    own_ips: Vec<IpAddr>,
    /// Ports of this server a relay may reach: other relays and the media sockets, so two
    /// relayed browsers, or a relayed browser and the forwarding unit, can talk.
    own_open_ports: Vec<RangeInclusive<u16>>,
}

impl PeerPolicy {
    pub fn new(
        allowed: Vec<Cidr>,
        own_ips: Vec<IpAddr>,
        own_open_ports: Vec<RangeInclusive<u16>>,
    ) -> Self {
        let forbidden = FORBIDDEN_PEERS
            .iter()
            .map(|range| range.parse().expect("the built-in ranges parse"))
            .collect();
        PeerPolicy {
            forbidden,
            allowed,
            own_ips,
            own_open_ports,
        }
    }

    pub fn permits(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip();
        if self.allowed.iter().any(|range| range.contains(ip)) {
            return true;
        }
        if self.forbidden.iter().any(|range| range.contains(ip)) {
            return false;
        }
        if self.own_ips.contains(&ip) {
            return self
                .own_open_ports
                .iter()
                .any(|ports| ports.contains(&peer.port()));
        }
        true
    }
}

/// Limits on what one server and one member may hold.
#[derive(Clone, Debug)]
pub struct TurnLimits {
    pub realm: String,
    pub max_lifetime: Duration,
    pub max_allocations: usize,
    pub max_allocations_per_member: usize,
    /// Bytes per second one member may relay, both ways together (one second's worth may
    /// come at once).
    pub member_bytes_per_second: u64,
}

/// Why a request was refused; the label of `room_turn_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    BadRequest,
    BadCredentials,
    Expired,
    Mismatch,
    PeerForbidden,
    Quota,
    Capacity,
    Bandwidth,
    Unsupported,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::BadRequest,
        Refusal::BadCredentials,
        Refusal::Expired,
        Refusal::Mismatch,
        Refusal::PeerForbidden,
        Refusal::Quota,
        Refusal::Capacity,
        Refusal::Bandwidth,
        Refusal::Unsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::Expired => "expired",
            Refusal::Mismatch => "allocation_mismatch",
            Refusal::PeerForbidden => "peer_forbidden",
            Refusal::Quota => "quota",
            Refusal::Capacity => "capacity",
            Refusal::Bandwidth => "bandwidth",
            Refusal::Unsupported => "unsupported",
        }
    }
}

/// Counts since start, read by the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    pub allocations_total: u64,
    pub refused: [u64; Refusal::ALL.len()],
    pub bytes_to_peers: u64,
    pub bytes_to_clients: u64,
}

/// Something for the IO layer to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    ToClient {
        client: ClientAddr,
        data: Vec<u8>,
    },
    /// Bind a relay socket for `client`, then call [`TurnServer::relay_opened`].
    OpenRelay {
        client: ClientAddr,
    },
    CloseRelay {
        relay: RelayId,
    },
}

/// A payload from a client to send from its relay socket: `payload` indexes the bytes given
/// to [`TurnServer::on_client_data`].
#[derive(Debug, PartialEq, Eq)]
pub struct PeerSend {
    pub relay: RelayId,
    pub peer: SocketAddr,
    pub payload: Range<usize>,
}

/// How a peer's datagram goes to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientSend {
    /// As ChannelData: the 4-byte header for `channel`, then the datagram.
    Channel { client: ClientAddr, channel: u16 },
    /// As a Data indication, built here.
    Indication { client: ClientAddr, data: Vec<u8> },
}

struct Allocation {
    relay: Option<(RelayId, SocketAddr)>,
    username: String,
    member: String,
    key: [u8; 16],
    /// The Allocate request's, so a retransmission gets the same answer.
    transaction: TransactionId,
    lifetime: Duration,
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    channel_of: HashMap<SocketAddr, u16>,
}

impl Allocation {
    fn permitted(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions
            .get(&peer)
            .is_some_and(|until| *until > now)
    }
}

struct MemberUse {
    allocations: usize,
    tokens: f64,
    refilled: Instant,
}

impl MemberUse {
    /// Takes `bytes` from the member's budget, if there are enough.
    fn spend(&mut self, bytes: usize, per_second: u64, now: Instant) -> bool {
        let rate = per_second as f64;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        if self.tokens < bytes as f64 {
            return false;
        }
        self.tokens -= bytes as f64;
        true
    }
}

/// Who sent an authenticated request.
struct Authenticated {
    username: String,
    member: String,
    key: [u8; 16],
}

/// The TURN server's state: allocations by client, relays by id, members' budgets.
pub struct TurnServer {
    limits: TurnLimits,
    policy: PeerPolicy,
    credentials: Credentials,
    nonce_key: [u8; 16],
    allocations: HashMap<ClientAddr, Allocation>,
    relays: HashMap<RelayId, ClientAddr>,
    budgets: Budgets,
    next_relay: RelayId,
    next_indication: u64,
    stats: TurnStats,
}

/// Each member's allocations and byte budget. Apart from the allocations, so the hot path
/// can charge a member while it holds the allocation that names them.
struct Budgets {
    members: HashMap<String, MemberUse>,
    bytes_per_second: u64,
    refused: u64,
}

impl Budgets {
    /// Takes `bytes` from `member`'s budget, or counts a refusal.
    fn spend(&mut self, member: &str, bytes: usize, now: Instant) -> Option<()> {
        let per_second = self.bytes_per_second;
        let spent = self
            .members
            .get_mut(member)
            .is_some_and(|m| m.spend(bytes, per_second, now));
        if !spent {
            self.refused += 1;
            return None;
        }
        Some(())
    }
}

impl TurnServer {
    pub fn new(
        limits: TurnLimits,
        policy: PeerPolicy,
        credentials: Credentials,
        nonce_key: [u8; 16],
    ) -> Self {
        let budgets = Budgets {
            members: HashMap::default(),
            bytes_per_second: limits.member_bytes_per_second,
            refused: 0,
        };
        TurnServer {
            limits,
            policy,
            credentials,
            nonce_key,
            allocations: HashMap::default(),
            relays: HashMap::default(),
            budgets,
            next_relay: 1,
            next_indication: 0,
            stats: TurnStats::default(),
        }
    }

    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    /// Counts since start.
    pub fn stats(&self) -> TurnStats {
        let mut stats = self.stats.clone();
        stats.refused[Refusal::Bandwidth as usize] += self.budgets.refused;
        stats
    }

    fn refuse(&mut self, why: Refusal) {
        self.stats.refused[why as usize] += 1;
    }

    /// A datagram (UDP) or one stream frame (TCP) from a client. Replies go to `out`; a
    /// payload to relay is returned.
    pub fn on_client_data(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        data: &[u8],
        out: &mut Vec<Output>,
    ) -> Option<PeerSend> {
        if let Some((channel, payload)) = stun::channel_data(data) {
            return self.channel_data(now.mono, client, channel, payload.len());
        }
        let Ok(msg) = Message::parse(data) else {
            self.refuse(Refusal::BadRequest);
            return None;
        };
        match (msg.class, msg.method) {
            (Class::Request, method::BINDING) => {
                let mut reply = Builder::reply(&msg, Class::Success);
                reply.xor_address(attr::XOR_MAPPED_ADDRESS, client.remote);
                reply.attr(attr::SOFTWARE, SOFTWARE);
                self.to_client(client, reply.finish(), out);
                None
            }
            (Class::Request, method::ALLOCATE) => {
                self.allocate(now, client, &msg, out);
                None
            }
            (
                Class::Request,
                method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND,
            ) => {
                let (Ok(reply) | Err(reply)) = match msg.method {
                    method::REFRESH => self.refresh(now, client, &msg, out),
                    method::CREATE_PERMISSION => self.create_permission(now, client, &msg),
                    _ => self.channel_bind(now, client, &msg),
                };
                self.to_client(client, reply, out);
                None
            }
            (Class::Indication, method::SEND) => self.send_indication(now.mono, client, &msg, data),
            (Class::Request, _) => {
                self.refuse(Refusal::BadRequest);
                let reply = error(&msg, 400, "Bad Request: unknown method", None);
                self.to_client(client, reply, out);
                None
            }
            // Stray responses and indications are dropped, as RFC 8489 says.
            _ => None,
        }
    }

    fn to_client(&self, client: ClientAddr, data: Vec<u8>, out: &mut Vec<Output>) {
        out.push(Output::ToClient { client, data });
    }

    fn channel_data(
        &mut self,
        now: Instant,
        client: ClientAddr,
        channel: u16,
        len: usize,
    ) -> Option<PeerSend> {
        let allocation = self.allocations.get(&client)?;
        let (relay, _) = allocation.relay?;
        let &(peer, until) = allocation.channels.get(&channel)?;
        if until <= now || !allocation.permitted(peer.ip(), now) {
            return None;
        }
        self.budgets.spend(&allocation.member, len, now)?;
        self.stats.bytes_to_peers += len as u64;
        Some(PeerSend {
            relay,
            peer,
            payload: 4..4 + len,
        })
    }

    fn send_indication(
        &mut self,
        now: Instant,
        client: ClientAddr,
        msg: &Message<'_>,
        data: &[u8],
    ) -> Option<PeerSend> {
        let allocation = self.allocations.get(&client)?;
        let (relay, _) = allocation.relay?;
        let peer = msg.xor_address(attr::XOR_PEER_ADDRESS)?;
        let payload = msg.get(attr::DATA)?;
        if !allocation.permitted(peer.ip(), now) {
            return None;
        }
        self.budgets.spend(&allocation.member, payload.len(), now)?;
        self.stats.bytes_to_peers += payload.len() as u64;
        let start = payload.as_ptr() as usize - data.as_ptr() as usize;
        Some(PeerSend {
            relay,
            peer,
            payload: start..start + payload.len(),
        })
    }

    /// A datagram that arrived on relay socket `relay` from `peer`: what to send the client,
    /// if anything (datagrams from peers without a permission are dropped).
    pub fn on_peer_data(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        data: &[u8],
    ) -> Option<ClientSend> {
        let client = *self.relays.get(&relay)?;
        let allocation = self.allocations.get(&client)?;
        if !allocation.permitted(peer.ip(), now) {
            return None;
        }
        let channel = allocation
            .channel_of
            .get(&peer)
            .copied()
            .filter(|ch| allocation.channels.get(ch).is_some_and(|c| c.1 > now));
        self.budgets.spend(&allocation.member, data.len(), now)?;
        self.stats.bytes_to_clients += data.len() as u64;
        if let Some(channel) = channel {
            return Some(ClientSend::Channel { client, channel });
        }
        self.next_indication += 1;
        let mut transaction = [0u8; 12];
        transaction[4..].copy_from_slice(&self.next_indication.to_be_bytes());
        let mut indication = Builder::new(Class::Indication, method::DATA, transaction);
        indication
            .xor_address(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, data);
        Some(ClientSend::Indication {
            client,
            data: indication.finish(),
        })
    }

    fn nonce(&self, issued_secs: u64, client: &ClientAddr) -> String {
        let mut mac =
            Hmac::<Sha1>::new_from_slice(&self.nonce_key).expect("HMAC takes keys of any length");
        mac.update(&issued_secs.to_be_bytes());
        mac.update(client.remote.ip().to_string().as_bytes());
        let tag = mac.finalize().into_bytes();
        let tag: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{issued_secs:x}-{tag}")
    }

    fn nonce_is_fresh(&self, nonce: &str, client: &ClientAddr, now_unix_secs: u64) -> bool {
        let Some(issued) = nonce
            .split_once('-')
            .and_then(|(issued, _)| u64::from_str_radix(issued, 16).ok())
        else {
            return false;
        };
        issued + NONCE_LIFETIME_SECS > now_unix_secs
            && issued <= now_unix_secs
            && self.nonce(issued, client) == nonce
    }

    /// A 401 or 438 carrying the realm and a fresh nonce, unsigned: the client has no key yet.
    fn challenge(
        &self,
        now: TurnNow,
        client: &ClientAddr,
        msg: &Message<'_>,
        code: u16,
    ) -> Vec<u8> {
        let reason = if code == 438 {
            "Stale Nonce"
        } else {
            "Unauthorized"
        };
        let mut reply = Builder::reply(msg, Class::Error);
        reply
            .error(code, reason)
            .attr(attr::REALM, self.limits.realm.as_bytes())
            .attr(attr::NONCE, self.nonce(now.unix_secs, client).as_bytes())
            .attr(attr::SOFTWARE, SOFTWARE);
        reply.finish()
    }

    /// Checks a request's long-term credentials. `Err` holds the reply to send.
    fn authenticate(
        &mut self,
        now: TurnNow,
        client: &ClientAddr,
        msg: &Message<'_>,
    ) -> Result<Authenticated, Vec<u8>> {
        let (Some(username), true) = (msg.text(attr::USERNAME), msg.has_integrity()) else {
            // The first request of every client: not a refusal yet.
            return Err(self.challenge(now, client, msg, 401));
        };
        let nonce = msg.text(attr::NONCE).unwrap_or_default();
        if msg.text(attr::REALM) != Some(self.limits.realm.as_str()) {
            self.refuse(Refusal::BadCredentials);
            return Err(self.challenge(now, client, msg, 401));
        }
        if !self.nonce_is_fresh(nonce, client, now.unix_secs) {
            return Err(self.challenge(now, client, msg, 438));
        }
        // An allocation's own requests are checked against the key it was made with, so a
        // call outlives the credential's expiry as long as it keeps refreshing.
        if let Some(allocation) = self.allocations.get(client) {
            if allocation.username == username && msg.check_integrity(&allocation.key) {
                return Ok(Authenticated {
                    username: allocation.username.clone(),
                    member: allocation.member.clone(),
                    key: allocation.key,
                });
            }
        }
        let member = match self.credentials.check(username, now.unix_secs) {
            Ok(parts) => parts.member.to_string(),
            Err(CredentialError::Expired) => {
                self.refuse(Refusal::Expired);
                return Err(self.challenge(now, client, msg, 401));
            }
            Err(CredentialError::Malformed) => {
                self.refuse(Refusal::BadCredentials);
                return Err(self.challenge(now, client, msg, 401));
            }
        };
        let password = self.credentials.password(username);
        let key = long_term_key(username, &self.limits.realm, &password);
        if !msg.check_integrity(&key) {
            self.refuse(Refusal::BadCredentials);
            return Err(self.challenge(now, client, msg, 401));
        }
        Ok(Authenticated {
            username: username.to_string(),
            member,
            key,
        })
    }

    fn allocate(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        msg: &Message<'_>,
        out: &mut Vec<Output>,
    ) {
        let auth = match self.authenticate(now, &client, msg) {
            Ok(auth) => auth,
            Err(reply) => return self.to_client(client, reply, out),
        };
        let key = auth.key;
        if let Some(existing) = self.allocations.get(&client) {
            if existing.transaction == msg.transaction {
                if let Some((_, relayed)) = existing.relay {
                    let reply = allocated(
                        msg.transaction,
                        relayed,
                        existing.lifetime,
                        client.remote,
                        &key,
                    );
                    self.to_client(client, reply, out);
                }
                return;
            }
            self.refuse(Refusal::Mismatch);
            let reply = error(msg, 437, "Allocation Mismatch", Some(&key));
            return self.to_client(client, reply, out);
        }
        let unknown = msg.unknown_required(&[
            attr::USERNAME,
            attr::MESSAGE_INTEGRITY,
            attr::REALM,
            attr::NONCE,
            attr::LIFETIME,
            attr::REQUESTED_TRANSPORT,
            attr::REQUESTED_ADDRESS_FAMILY,
            attr::EVEN_PORT,
            attr::DONT_FRAGMENT,
        ]);
        if !unknown.is_empty() {
            self.refuse(Refusal::Unsupported);
            let mut reply = Builder::reply(msg, Class::Error);
            let list: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
            reply
                .error(420, "Unknown Attribute")
                .attr(attr::UNKNOWN_ATTRIBUTES, &list)
                .integrity(&key);
            return self.to_client(client, reply.finish(), out);
        }
        let refusal = match msg.get(attr::REQUESTED_TRANSPORT) {
            None => Some((
                Refusal::BadRequest,
                400,
                "Bad Request: no REQUESTED-TRANSPORT",
            )),
            Some(value) if value.first() != Some(&UDP) => {
                Some((Refusal::Unsupported, 442, "Unsupported Transport Protocol"))
            }
            Some(_) => None,
        }
        .or_else(|| {
            msg.get(attr::REQUESTED_ADDRESS_FAMILY)
                .filter(|family| family.first() != Some(&0x01))
                .map(|_| (Refusal::Unsupported, 440, "Address Family not Supported"))
        })
        .or_else(|| {
            let held = self
                .budgets
                .members
                .get(&auth.member)
                .map_or(0, |m| m.allocations);
            (held >= self.limits.max_allocations_per_member).then_some((
                Refusal::Quota,
                486,
                "Allocation Quota Reached",
            ))
        })
        .or_else(|| {
            (self.allocations.len() >= self.limits.max_allocations).then_some((
                Refusal::Capacity,
                508,
                "Insufficient Capacity",
            ))
        });
        if let Some((why, code, reason)) = refusal {
            self.refuse(why);
            return self.to_client(client, error(msg, code, reason, Some(&key)), out);
        }
        let lifetime = self.lifetime(msg);
        let rate = self.limits.member_bytes_per_second as f64;
        self.budgets
            .members
            .entry(auth.member.clone())
            .or_insert_with(|| MemberUse {
                allocations: 0,
                tokens: rate,
                refilled: now.mono,
            })
            .allocations += 1;
        self.allocations.insert(
            client,
            Allocation {
                relay: None,
                username: auth.username,
                member: auth.member,
                key,
                transaction: msg.transaction,
                lifetime,
                expires: now.mono + lifetime,
                permissions: HashMap::default(),
                channels: HashMap::default(),
                channel_of: HashMap::default(),
            },
        );
        out.push(Output::OpenRelay { client });
    }

    fn lifetime(&self, msg: &Message<'_>) -> Duration {
        msg.u32(attr::LIFETIME)
            .map_or(DEFAULT_LIFETIME, |secs| {
                Duration::from_secs(u64::from(secs))
            })
            .min(self.limits.max_lifetime)
    }

    /// The IO layer's answer to [`Output::OpenRelay`]: the relay's id and the address peers
    /// send to, or `None` when no socket could be bound.
    pub fn relay_opened(
        &mut self,
        client: ClientAddr,
        relay: Option<(RelayId, SocketAddr)>,
        out: &mut Vec<Output>,
    ) {
        let Some(allocation) = self.allocations.get_mut(&client) else {
            if let Some((relay, _)) = relay {
                out.push(Output::CloseRelay { relay });
            }
            return;
        };
        let transaction = allocation.transaction;
        let key = allocation.key;
        match relay {
            Some((id, relayed)) => {
                allocation.relay = Some((id, relayed));
                let reply = allocated(
                    transaction,
                    relayed,
                    allocation.lifetime,
                    client.remote,
                    &key,
                );
                self.relays.insert(id, client);
                self.stats.allocations_total += 1;
                self.to_client(client, reply, out);
            }
            None => {
                self.drop_allocation(client, out);
                self.refuse(Refusal::Capacity);
                let mut reply = Builder::new(Class::Error, method::ALLOCATE, transaction);
                reply.error(508, "Insufficient Capacity").integrity(&key);
                self.to_client(client, reply.finish(), out);
            }
        }
    }

    /// A fresh relay id for [`TurnServer::relay_opened`].
    pub fn next_relay_id(&mut self) -> RelayId {
        self.next_relay += 1;
        self.next_relay
    }

    /// The authenticated allocation of `client`, or the reply refusing the request.
    fn own_allocation(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        msg: &Message<'_>,
    ) -> Result<[u8; 16], Vec<u8>> {
        let auth = self.authenticate(now, &client, msg)?;
        match self.allocations.get(&client) {
            Some(allocation) if allocation.relay.is_some() => {
                if allocation.username != auth.username {
                    self.refuse(Refusal::BadCredentials);
                    return Err(error(msg, 441, "Wrong Credentials", Some(&auth.key)));
                }
                Ok(auth.key)
            }
            _ => {
                self.refuse(Refusal::Mismatch);
                Err(error(msg, 437, "Allocation Mismatch", Some(&auth.key)))
            }
        }
    }

    /// Extends or ends the client's allocation. Like the two below, it returns the reply
    /// either way: a refusal is a reply too.
    fn refresh(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        msg: &Message<'_>,
        out: &mut Vec<Output>,
    ) -> Result<Vec<u8>, Vec<u8>> {
        let key = self.own_allocation(now, client, msg)?;
        let lifetime = self.lifetime(msg);
        if lifetime.is_zero() {
            self.drop_allocation(client, out);
        } else if let Some(allocation) = self.allocations.get_mut(&client) {
            allocation.expires = now.mono + lifetime;
        }
        let mut reply = Builder::reply(msg, Class::Success);
        reply
            .u32(attr::LIFETIME, lifetime.as_secs() as u32)
            .attr(attr::SOFTWARE, SOFTWARE)
            .integrity(&key);
        Ok(reply.finish())
    }

    /// The peers a permission or channel request names, if all may be relayed to.
    fn peers(&mut self, msg: &Message<'_>, key: &[u8]) -> Result<Vec<SocketAddr>, Vec<u8>> {
        let mut peers = Vec::new();
        for value in msg.get_all(attr::XOR_PEER_ADDRESS) {
            let Some(peer) = stun::decode_xor_address(value, &msg.transaction) else {
                self.refuse(Refusal::BadRequest);
                return Err(error(
                    msg,
                    400,
                    "Bad Request: bad XOR-PEER-ADDRESS",
                    Some(key),
                ));
            };
            if peer.is_ipv6() {
                self.refuse(Refusal::Unsupported);
                return Err(error(msg, 443, "Peer Address Family Mismatch", Some(key)));
            }
            if !self.policy.permits(peer) {
                self.refuse(Refusal::PeerForbidden);
                return Err(error(
                    msg,
                    403,
                    "Forbidden: this server does not relay there",
                    Some(key),
                ));
            }
            peers.push(peer);
        }
        if peers.is_empty() || peers.len() > 16 {
            self.refuse(Refusal::BadRequest);
            return Err(error(
                msg,
                400,
                "Bad Request: one to 16 XOR-PEER-ADDRESS",
                Some(key),
            ));
        }
        Ok(peers)
    }

    fn create_permission(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        msg: &Message<'_>,
    ) -> Result<Vec<u8>, Vec<u8>> {
        let key = self.own_allocation(now, client, msg)?;
        let peers = self.peers(msg, &key)?;
        let allocation = self.allocations.get_mut(&client).expect("checked above");
        for peer in peers {
            allocation
                .permissions
                .insert(peer.ip(), now.mono + PERMISSION_LIFETIME);
        }
        Ok(success(msg, &key))
    }

    fn channel_bind(
        &mut self,
        now: TurnNow,
        client: ClientAddr,
        msg: &Message<'_>,
    ) -> Result<Vec<u8>, Vec<u8>> {
        let key = self.own_allocation(now, client, msg)?;
        let channel = msg
            .get(attr::CHANNEL_NUMBER)
            .and_then(|v| v.get(..2))
            .map(|v| u16::from_be_bytes([v[0], v[1]]))
            .filter(|ch| (0x4000..=0x4FFF).contains(ch));
        let (Some(channel), 1) = (channel, msg.get_all(attr::XOR_PEER_ADDRESS).count()) else {
            self.refuse(Refusal::BadRequest);
            let reason = "Bad Request: one channel number and one peer";
            return Err(error(msg, 400, reason, Some(&key)));
        };
        let peer = self.peers(msg, &key)?[0];
        let allocation = self.allocations.get_mut(&client).expect("checked above");
        let taken = allocation
            .channels
            .get(&channel)
            .is_some_and(|c| c.0 != peer)
            || allocation
                .channel_of
                .get(&peer)
                .is_some_and(|c| *c != channel);
        if taken {
            self.refuse(Refusal::BadRequest);
            let reason = "Bad Request: channel or peer already bound";
            return Err(error(msg, 400, reason, Some(&key)));
        }
        allocation
            .channels
            .insert(channel, (peer, now.mono + CHANNEL_LIFETIME));
        allocation.channel_of.insert(peer, channel);
        allocation
            .permissions
            .insert(peer.ip(), now.mono + PERMISSION_LIFETIME);
        Ok(success(msg, &key))
    }

    /// A TCP client went away: its allocation goes with it.
    pub fn client_closed(&mut self, client: ClientAddr, out: &mut Vec<Output>) {
        self.drop_allocation(client, out);
    }

    fn drop_allocation(&mut self, client: ClientAddr, out: &mut Vec<Output>) {
        let Some(allocation) = self.allocations.remove(&client) else {
            return;
        };
        if let Some((relay, _)) = allocation.relay {
            self.relays.remove(&relay);
            out.push(Output::CloseRelay { relay });
        }
        if let Some(member) = self.budgets.members.get_mut(&allocation.member) {
            member.allocations -= 1;
            if member.allocations == 0 {
                self.budgets.members.remove(&allocation.member);
            }
        }
    }

    /// Expires allocations, permissions and channels; call about once a second.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let expired: Vec<ClientAddr> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(client, _)| *client)
            .collect();
        for client in expired {
            self.drop_allocation(client, out);
        }
        for allocation in self.allocations.values_mut() {
            allocation.permissions.retain(|_, until| *until > now);
            let channels = &mut allocation.channels;
            channels.retain(|_, (_, until)| *until > now);
            allocation
                .channel_of
                .retain(|_, channel| channels.contains_key(channel));
        }
    }
}

fn error(msg: &Message<'_>, code: u16, reason: &str, key: Option<&[u8]>) -> Vec<u8> {
    let mut reply = Builder::reply(msg, Class::Error);
    reply.error(code, reason).attr(attr::SOFTWARE, SOFTWARE);
    if let Some(key) = key {
        reply.integrity(key);
    }
    reply.finish()
}

fn success(msg: &Message<'_>, key: &[u8]) -> Vec<u8> {
    let mut reply = Builder::reply(msg, Class::Success);
    reply.attr(attr::SOFTWARE, SOFTWARE).integrity(key);
    reply.finish()
}

fn allocated(
    transaction: TransactionId,
    relayed: SocketAddr,
    lifetime: Duration,
    mapped: SocketAddr,
    key: &[u8],
) -> Vec<u8> {
    let mut reply = Builder::new(Class::Success, method::ALLOCATE, transaction);
    reply
        .xor_address(attr::XOR_RELAYED_ADDRESS, relayed)
        .u32(attr::LIFETIME, lifetime.as_secs() as u32)
        .xor_address(attr::XOR_MAPPED_ADDRESS, mapped)
        .attr(attr::SOFTWARE, SOFTWARE)
        .integrity(key);
    reply.finish()
}
