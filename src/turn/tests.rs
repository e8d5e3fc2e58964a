//! The TURN logic driven as a browser drives it, with no sockets: challenge, allocate,
//! permissions, channels, data both ways, refusals and expiry.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::credentials::{long_term_key, Credentials};
use super::server::*;
use super::stun::{attr, method, Builder, Class, Message, TransactionId};

const REALM: &str = "room";
const SECRET: &[u8] = b"server secret";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn server() -> TurnServer {
    let policy = PeerPolicy::new(
        vec!["10.200.0.0/16".parse().unwrap()],
        vec!["203.0.113.10".parse().unwrap()],
        vec![50000..=50100],
    );
    let limits = TurnLimits {
        realm: REALM.into(),
        max_lifetime: Duration::from_secs(3600),
        max_allocations: 100,
        max_allocations_per_member: 2,
        member_bytes_per_second: 10_000,
    };
    TurnServer::new(
        limits,
        policy,
        Credentials::new(SECRET.to_vec(), 600),
        [9; 16],
    )
}

/// A browser's TURN client, enough of one to drive the server.
struct Client {
    addr: ClientAddr,
    username: String,
    password: String,
    nonce: Option<String>,
    next: u8,
    t0: Instant,
    unix0: u64,
}

const UNIX0: u64 = 1_800_000_000;

impl Client {
    fn new(remote: &str, member: &str) -> Self {
        let (username, password) = Credentials::new(SECRET.to_vec(), 600).mint(member, UNIX0);
        Client {
            addr: ClientAddr {
                transport: Transport::Udp,
                remote: addr(remote),
            },
            username,
            password,
            nonce: None,
            next: 0,
            t0: Instant::now(),
            unix0: UNIX0,
        }
    }

    fn now(&self, secs: u64) -> TurnNow {
        TurnNow {
            mono: self.t0 + Duration::from_secs(secs),
            unix_secs: self.unix0 + secs,
        }
    }

    fn key(&self) -> [u8; 16] {
        long_term_key(&self.username, REALM, &self.password)
    }

    fn transaction(&mut self) -> TransactionId {
        self.next += 1;
        [self.next; 12]
    }

    /// A signed request, with `extra` attributes before the credentials.
    fn request(&mut self, method: u16, extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
        let transaction = self.transaction();
        self.signed(method, transaction, extra)
    }

    fn signed(
        &self,
        method: u16,
        transaction: TransactionId,
        extra: impl FnOnce(&mut Builder),
    ) -> Vec<u8> {
        let mut b = Builder::new(Class::Request, method, transaction);
        extra(&mut b);
        b.attr(attr::USERNAME, self.username.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(
                attr::NONCE,
                self.nonce.clone().unwrap_or_default().as_bytes(),
            )
            .integrity(&self.key());
        b.finish()
    }

    /// Sends `bytes`, returns the one reply and whatever else came out.
    fn send(
        &self,
        server: &mut TurnServer,
        secs: u64,
        bytes: &[u8],
    ) -> (Option<Vec<u8>>, Vec<Output>) {
        let mut out = Vec::new();
        let relayed = server.on_client_data(self.now(secs), self.addr, bytes, &mut out);
        assert!(relayed.is_none(), "a request relayed nothing");
        let mut reply = None;
        out.retain(|o| match o {
            Output::ToClient { client, data } if *client == self.addr => {
                reply = Some(data.clone());
                false
            }
            _ => true,
        });
        (reply, out)
    }

    /// The challenge round trip: learns the nonce.
    fn challenge(&mut self, server: &mut TurnServer) {
        let transaction = self.transaction();
        let mut b = Builder::new(Class::Request, method::ALLOCATE, transaction);
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        let (reply, _) = self.send(server, 0, &b.finish());
        let reply = reply.unwrap();
        let m = Message::parse(&reply).unwrap();
        assert_eq!(error_code(&m), Some(401));
        assert_eq!(m.text(attr::REALM), Some(REALM));
        self.nonce = Some(m.text(attr::NONCE).unwrap().to_string());
    }

    /// Challenge, allocate and open the relay at `relayed`; returns the relay id.
    fn allocate(&mut self, server: &mut TurnServer, relayed: &str) -> RelayId {
        self.challenge(server);
        let request = self.request(method::ALLOCATE, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        });
        let (reply, out) = self.send(server, 0, &request);
        assert!(reply.is_none(), "the reply waits for the relay socket");
        assert_eq!(out, vec![Output::OpenRelay { client: self.addr }]);
        let id = server.next_relay_id();
        let mut out = Vec::new();
        server.relay_opened(self.addr, Some((id, addr(relayed))), &mut out);
        let [Output::ToClient { data, .. }] = &out[..] else {
            panic!("expected the allocate reply, got {out:?}");
        };
        let m = Message::parse(data).unwrap();
        assert_eq!(m.class, Class::Success);
        assert!(m.check_integrity(&self.key()), "replies are signed");
        assert_eq!(
            m.xor_address(attr::XOR_RELAYED_ADDRESS),
            Some(addr(relayed))
        );
        assert_eq!(
            m.xor_address(attr::XOR_MAPPED_ADDRESS),
            Some(self.addr.remote)
        );
        assert_eq!(m.u32(attr::LIFETIME), Some(600));
        id
    }

    fn permit(&mut self, server: &mut TurnServer, peer: &str) -> Option<u16> {
        let request = self.request(method::CREATE_PERMISSION, |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, addr(peer));
        });
        let (reply, _) = self.send(server, 1, &request);
        error_code(&Message::parse(&reply.unwrap()).unwrap())
    }
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    let v = m.get(attr::ERROR_CODE)?;
    Some(u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn refused(server: &TurnServer, why: Refusal) -> u64 {
    server.stats().refused[why as usize]
}

#[test]
fn binding_answers_with_the_address_seen() {
    let mut s = server();
    let client = Client::new("198.51.100.7:5000", "1");
    let request = Builder::new(Class::Request, method::BINDING, [1; 12]).finish();
    let (reply, _) = client.send(&mut s, 0, &request);
    let reply = reply.unwrap();
    let m = Message::parse(&reply).unwrap();
    assert_eq!(m.class, Class::Success);
    assert_eq!(
        m.xor_address(attr::XOR_MAPPED_ADDRESS),
        Some(client.addr.remote)
    );
}

#[test]
fn an_allocation_relays_both_ways_through_a_channel_and_indications() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    let relay = c.allocate(&mut s, "203.0.113.10:50001");
    let peer = addr("198.51.100.99:7000");
    // No permission yet: nothing passes either way.
    assert_eq!(s.on_peer_data(c.now(1).mono, relay, peer, b"early"), None);
    assert_eq!(c.permit(&mut s, "198.51.100.99:7000"), None);
    assert_eq!(
        s.on_peer_data(c.now(1).mono, relay, addr("198.51.100.98:7000"), b"other"),
        None,
        "a permission covers its own address only"
    );

    // Send indication out, Data indication back.
    let tx = c.transaction();
    let mut b = Builder::new(Class::Indication, method::SEND, tx);
    b.xor_address(attr::XOR_PEER_ADDRESS, peer)
        .attr(attr::DATA, b"hello");
    let send = b.finish();
    let mut out = Vec::new();
    let to_peer = s.on_client_data(c.now(1), c.addr, &send, &mut out).unwrap();
    assert_eq!((to_peer.relay, to_peer.peer), (relay, peer));
    assert_eq!(&send[to_peer.payload], b"hello");
    let Some(ClientSend::Indication { data, .. }) =
        s.on_peer_data(c.now(1).mono, relay, peer, b"back")
    else {
        panic!("expected a Data indication");
    };
    let m = Message::parse(&data).unwrap();
    assert_eq!((m.class, m.method), (Class::Indication, method::DATA));
    assert_eq!(m.get(attr::DATA), Some(&b"back"[..]));
    assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer));

    // A channel: ChannelData both ways.
    let bind = c.request(method::CHANNEL_BIND, |b| {
        b.attr(attr::CHANNEL_NUMBER, &[0x40, 0x01, 0, 0])
            .xor_address(attr::XOR_PEER_ADDRESS, peer);
    });
    let (reply, _) = c.send(&mut s, 1, &bind);
    let reply = reply.unwrap();
    assert_eq!(Message::parse(&reply).unwrap().class, Class::Success);
    let frame = [0x40, 0x01, 0, 3, b'a', b'b', b'c', 0];
    let to_peer = s
        .on_client_data(c.now(2), c.addr, &frame, &mut out)
        .unwrap();
    assert_eq!(&frame[to_peer.payload], b"abc");
    assert_eq!(
        s.on_peer_data(c.now(2).mono, relay, peer, b"xyz"),
        Some(ClientSend::Channel {
            client: c.addr,
            channel: 0x4001
        })
    );
    // An unbound channel number relays nothing.
    assert_eq!(
        s.on_client_data(c.now(2), c.addr, &[0x40, 0x02, 0, 1, 1, 0, 0, 0], &mut out),
        None
    );
    // Another channel for the same peer is refused.
    let rebind = c.request(method::CHANNEL_BIND, |b| {
        b.attr(attr::CHANNEL_NUMBER, &[0x40, 0x02, 0, 0])
            .xor_address(attr::XOR_PEER_ADDRESS, peer);
    });
    let (reply, _) = c.send(&mut s, 2, &rebind);
    assert_eq!(
        error_code(&Message::parse(&reply.unwrap()).unwrap()),
        Some(400)
    );
    assert_eq!(s.stats().bytes_to_peers, 8);
    assert_eq!(s.stats().bytes_to_clients, 7);
}

#[test]
fn forged_expired_or_stale_credentials_are_refused() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.challenge(&mut s);
    let request = |c: &mut Client| {
        c.request(method::ALLOCATE, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        })
    };
    let code = |c: &Client, s: &mut TurnServer, secs: u64, bytes: &[u8]| {
        let (reply, out) = c.send(s, secs, bytes);
        assert!(out.is_empty(), "no relay opened");
        error_code(&Message::parse(&reply.unwrap()).unwrap())
    };

    let honest_password = c.password.clone();
    c.password = "guessed".into();
    let bytes = request(&mut c);
    assert_eq!(code(&c, &mut s, 0, &bytes), Some(401));
    assert_eq!(refused(&s, Refusal::BadCredentials), 1);

    // A username naming another member with the first one's password.
    c.password = honest_password;
    c.username = c.username.replace(":1", ":2");
    let bytes = request(&mut c);
    assert_eq!(code(&c, &mut s, 0, &bytes), Some(401));
    assert_eq!(refused(&s, Refusal::BadCredentials), 2);

    // Expired: minted long ago.
    let (username, password) = Credentials::new(SECRET.to_vec(), 600).mint("1", UNIX0 - 601);
    c.username = username;
    c.password = password;
    let bytes = request(&mut c);
    assert_eq!(code(&c, &mut s, 0, &bytes), Some(401));
    assert_eq!(refused(&s, Refusal::Expired), 1);

    // A made-up nonce, and one an hour old: 438, try again with the new one.
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.nonce = Some("10-0011223344556677".into());
    let bytes = request(&mut c);
    assert_eq!(code(&c, &mut s, 0, &bytes), Some(438));
    c.challenge(&mut s);
    let bytes = request(&mut c);
    assert_eq!(code(&c, &mut s, 3600, &bytes), Some(438));
    // A nonce is tied to the address it was given to.
    let mut other = Client::new("198.51.100.8:5000", "1");
    other.nonce = c.nonce.clone();
    let bytes = request(&mut other);
    assert_eq!(code(&other, &mut s, 0, &bytes), Some(438));
    assert_eq!(s.allocations(), 0);
}

#[test]
fn relaying_to_private_loopback_or_this_server_is_refused() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.allocate(&mut s, "203.0.113.10:50001");
    for peer in [
        "127.0.0.1:3000",
        "10.0.0.1:80",
        "192.168.1.1:53",
        "172.16.5.5:22",
        "169.254.169.254:80",
        "100.64.0.1:1",
        "0.0.0.0:1",
        "224.0.0.1:5353",
        "203.0.113.10:3000",
        "203.0.113.10:6379",
    ] {
        assert_eq!(c.permit(&mut s, peer), Some(403), "{peer}");
    }
    assert_eq!(refused(&s, Refusal::PeerForbidden), 10);
    // This server's relay and media ports, a public address and the operator's range pass.
    for peer in ["203.0.113.10:50050", "198.51.100.99:7000", "10.200.3.4:9"] {
        assert_eq!(c.permit(&mut s, peer), None, "{peer}");
    }
    let bind = c.request(method::CHANNEL_BIND, |b| {
        b.attr(attr::CHANNEL_NUMBER, &[0x40, 0x01, 0, 0])
            .xor_address(attr::XOR_PEER_ADDRESS, addr("127.0.0.1:3000"));
    });
    let (reply, _) = c.send(&mut s, 1, &bind);
    assert_eq!(
        error_code(&Message::parse(&reply.unwrap()).unwrap()),
        Some(403)
    );
    // A Send indication towards a refused address goes nowhere.
    let mut b = Builder::new(Class::Indication, method::SEND, [3; 12]);
    b.xor_address(attr::XOR_PEER_ADDRESS, addr("127.0.0.1:3000"))
        .attr(attr::DATA, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        s.on_client_data(c.now(1), c.addr, &b.finish(), &mut Vec::new()),
        None
    );
}

#[test]
fn members_get_few_allocations_and_a_byte_budget() {
    let mut s = server();
    let mut first = Client::new("198.51.100.7:5000", "1");
    let mut second = Client::new("198.51.100.7:5001", "1");
    let mut third = Client::new("198.51.100.7:5002", "1");
    let relay = first.allocate(&mut s, "203.0.113.10:50001");
    second.allocate(&mut s, "203.0.113.10:50002");
    third.challenge(&mut s);
    let request = third.request(method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    let (reply, out) = third.send(&mut s, 0, &request);
    assert!(out.is_empty());
    let reply = reply.unwrap();
    let m = Message::parse(&reply).unwrap();
    assert_eq!(error_code(&m), Some(486));
    assert!(m.check_integrity(&third.key()));
    // Another member is not affected.
    let mut other = Client::new("198.51.100.8:5000", "2");
    other.allocate(&mut s, "203.0.113.10:50003");

    // 10,000 bytes a second: the eleventh kilobyte within the second is dropped.
    let peer = addr("198.51.100.99:7000");
    assert_eq!(first.permit(&mut s, "198.51.100.99:7000"), None);
    let chunk = [0u8; 1000];
    let passed = (0..11)
        .filter(|_| {
            s.on_peer_data(first.now(1).mono, relay, peer, &chunk)
                .is_some()
        })
        .count();
    assert_eq!(passed, 10);
    assert_eq!(refused(&s, Refusal::Bandwidth), 1);
    assert!(
        s.on_peer_data(first.now(2).mono, relay, peer, &chunk)
            .is_some(),
        "refilled"
    );
}

#[test]
fn allocations_end_on_refresh_zero_expiry_or_close() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    let relay = c.allocate(&mut s, "203.0.113.10:50001");
    // A retransmitted Allocate gets the same answer; a new one on this 5-tuple does not.
    let again = c.signed(method::ALLOCATE, [c.next; 12], |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    let (reply, out) = c.send(&mut s, 0, &again);
    assert!(out.is_empty());
    let reply = reply.unwrap();
    let m = Message::parse(&reply).unwrap();
    assert_eq!(
        m.xor_address(attr::XOR_RELAYED_ADDRESS),
        Some(addr("203.0.113.10:50001"))
    );
    let fresh = c.request(method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    let (reply, _) = c.send(&mut s, 0, &fresh);
    assert_eq!(
        error_code(&Message::parse(&reply.unwrap()).unwrap()),
        Some(437)
    );

    // Refresh to 30 s, then let it lapse.
    let refresh = c.request(method::REFRESH, |b| {
        b.u32(attr::LIFETIME, 30);
    });
    let (reply, _) = c.send(&mut s, 0, &refresh);
    assert_eq!(
        Message::parse(&reply.unwrap()).unwrap().u32(attr::LIFETIME),
        Some(30)
    );
    let mut out = Vec::new();
    s.tick(c.now(29).mono, &mut out);
    assert!(out.is_empty());
    s.tick(c.now(30).mono, &mut out);
    assert_eq!(out, vec![Output::CloseRelay { relay }]);
    assert_eq!(s.allocations(), 0);

    // Refresh with lifetime 0 deletes at once.
    let relay = c.allocate(&mut s, "203.0.113.10:50002");
    let delete = c.request(method::REFRESH, |b| {
        b.u32(attr::LIFETIME, 0);
    });
    let (reply, out) = c.send(&mut s, 1, &delete);
    assert_eq!(
        Message::parse(&reply.unwrap()).unwrap().class,
        Class::Success
    );
    assert_eq!(out, vec![Output::CloseRelay { relay }]);

    // A TCP client's allocation ends with its connection.
    let relay = c.allocate(&mut s, "203.0.113.10:50003");
    let mut out = Vec::new();
    s.client_closed(c.addr, &mut out);
    assert_eq!(out, vec![Output::CloseRelay { relay }]);
    assert_eq!(s.allocations(), 0);
}

#[test]
fn a_relay_that_cannot_be_opened_is_an_error_not_a_leak() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.challenge(&mut s);
    let request = c.request(method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    c.send(&mut s, 0, &request);
    let mut out = Vec::new();
    s.relay_opened(c.addr, None, &mut out);
    let [Output::ToClient { data, .. }] = &out[..] else {
        panic!("expected an error reply");
    };
    assert_eq!(error_code(&Message::parse(data).unwrap()), Some(508));
    assert_eq!(s.allocations(), 0);
    // The member's quota was given back: two allocations still fit.
    c.allocate(&mut s, "203.0.113.10:50001");
    let mut second = Client::new("198.51.100.7:5001", "1");
    second.allocate(&mut s, "203.0.113.10:50002");
}

#[test]
fn tcp_transport_and_unknown_attributes() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.challenge(&mut s);
    // TCP allocations (of UDP relays) are what a browser behind a UDP-blocking firewall makes.
    c.addr.transport = Transport::Tcp;
    c.challenge(&mut s);
    let tcp_relay = c.request(method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0]);
    });
    let (reply, _) = c.send(&mut s, 0, &tcp_relay);
    assert_eq!(
        error_code(&Message::parse(&reply.unwrap()).unwrap()),
        Some(442)
    );
    let unknown = c.request(method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(0x0022, &[0; 8]);
    });
    let (reply, _) = c.send(&mut s, 0, &unknown);
    let reply = reply.unwrap();
    let m = Message::parse(&reply).unwrap();
    assert_eq!(error_code(&m), Some(420));
    assert_eq!(m.get(attr::UNKNOWN_ATTRIBUTES), Some(&[0x00, 0x22][..]));
    c.allocate(&mut s, "203.0.113.10:50001");
}

#[test]
fn garbage_never_panics_and_opens_nothing() {
    let mut s = server();
    let mut c = Client::new("198.51.100.7:5000", "1");
    c.allocate(&mut s, "203.0.113.10:50001");
    let valid = c.request(method::CREATE_PERMISSION, |b| {
        b.xor_address(attr::XOR_PEER_ADDRESS, addr("198.51.100.99:7000"));
    });
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::new();
    for round in 0..20_000 {
        let mut bytes = valid.clone();
        let flips = 1 + round % 4;
        for _ in 0..flips {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % bytes.len();
            bytes[at] = (seed >> 32) as u8;
        }
        bytes.truncate(bytes.len() - (seed as usize % 3) * (round % 2));
        s.on_client_data(c.now(1), c.addr, &bytes, &mut out);
        assert!(!out.iter().any(|o| matches!(o, Output::OpenRelay { .. })));
        out.clear();
    }
    assert_eq!(s.allocations(), 1);
}
