//! The built-in TURN relay over real sockets: credentials come from `call_joined` as a
//! browser gets them, a raw TURN client allocates over UDP and over TCP and relays to a UDP
//! peer both ways; forged, expired and misdirected requests are refused.
#![cfg(feature = "ssr")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use room::protocol::{ClientMsg, IceServer, MediaState, ServerMsg};
use room::turn::credentials::{long_term_key, Credentials};
use room::turn::stun::{self, attr, method, Builder, Class, Message};
use support::{TestServer, WAIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The relay's entry in `call_joined`, for a member who just joined the call.
async fn relay_entry(server: &TestServer, room: &str, name: &str) -> Option<IceServer> {
    let (mut ws, _) = server.joined(room, name).await;
    ws.send(&ClientMsg::JoinCall {
        media: MediaState::default(),
    })
    .await;
    let ServerMsg::CallJoined { ice_servers, .. } = ws
        .recv_until(|m| matches!(m, ServerMsg::CallJoined { .. }))
        .await
    else {
        unreachable!()
    };
    ice_servers
        .into_iter()
        .find(|s| s.urls.iter().any(|u| u.starts_with("turn:")))
}

fn url_addr(entry: &IceServer, transport: &str) -> SocketAddr {
    let url = entry
        .urls
        .iter()
        .find(|u| u.ends_with(&format!("?transport={transport}")))
        .expect("a URL for the transport");
    let host = url.trim_start_matches("turn:").split('?').next().unwrap();
    host.parse().unwrap()
}

/// TCP or TLS: a byte stream of STUN and ChannelData frames.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Link {
    Udp(UdpSocket),
    Stream(Box<dyn Stream>, Vec<u8>),
}

/// A TURN client speaking the wire format, as a browser's would.
struct TurnClient {
    link: Link,
    username: String,
    password: String,
    nonce: String,
    next: u8,
}

impl TurnClient {
    async fn connect(server: SocketAddr, tcp: bool, username: &str, password: &str) -> Self {
        let link = if tcp {
            let stream = TcpStream::connect(server).await.unwrap();
            Link::Stream(Box::new(stream), Vec::new())
        } else {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            udp.connect(server).await.unwrap();
            Link::Udp(udp)
        };
        Self::over(link, username, password)
    }

    /// Over TLS, trusting only `cert` (the server's self-signed one).
    async fn connect_tls(server: SocketAddr, cert: &[u8], username: &str, password: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = TcpStream::connect(server).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .expect("the TLS handshake");
        Self::over(Link::Stream(Box::new(tls), Vec::new()), username, password)
    }

    fn over(link: Link, username: &str, password: &str) -> Self {
        TurnClient {
            link,
            username: username.into(),
            password: password.into(),
            nonce: String::new(),
            next: 0,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(udp) => {
                udp.send(bytes).await.unwrap();
            }
            Link::Stream(stream, _) => {
                stream.write_all(bytes).await.unwrap();
                stream.flush().await.unwrap();
            }
        }
    }

    /// The next datagram or stream frame, or `None` when nothing comes for a while.
    async fn recv(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(2), async {
            match &mut self.link {
                Link::Udp(udp) => {
                    let mut buf = vec![0; 65_536];
                    let len = udp.recv(&mut buf).await.ok()?;
                    Some(buf[..len].to_vec())
                }
                Link::Stream(stream, buf) => loop {
                    if let Ok(Some(len)) = stun::stream_frame_len(buf) {
                        if buf.len() >= len {
                            return Some(buf.drain(..len).collect());
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    let read = stream.read(&mut chunk).await.ok()?;
                    if read == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                },
            }
        })
        .await
        .ok()
        .flatten()
    }

    fn key(&self) -> [u8; 16] {
        long_term_key(&self.username, "room", &self.password)
    }

    /// Sends a signed request and returns the reply (STUN, same transaction).
    async fn request(&mut self, method: u16, extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
        self.next += 1;
        let transaction = [self.next; 12];
        let mut b = Builder::new(Class::Request, method, transaction);
        extra(&mut b);
        if !self.nonce.is_empty() {
            b.attr(attr::USERNAME, self.username.as_bytes())
                .attr(attr::REALM, b"room")
                .attr(attr::NONCE, self.nonce.as_bytes())
                .integrity(&self.key());
        }
        self.send(&b.finish()).await;
        loop {
            let reply = self.recv().await.expect("a reply");
            if let Ok(m) = Message::parse(&reply) {
                if m.transaction == transaction {
                    return reply;
                }
            }
        }
    }

    /// Allocates a relay; returns the relayed address, or the error code.
    async fn allocate(&mut self) -> Result<SocketAddr, u16> {
        let transport = |b: &mut Builder| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        };
        let challenge = self.request(method::ALLOCATE, transport).await;
        let m = Message::parse(&challenge).unwrap();
        assert_eq!(error_code(&m), Some(401));
        self.nonce = m.text(attr::NONCE).unwrap().to_string();
        let reply = self.request(method::ALLOCATE, transport).await;
        let m = Message::parse(&reply).unwrap();
        match error_code(&m) {
            Some(code) => Err(code),
            None => {
                assert!(m.check_integrity(&self.key()), "the success is signed");
                Ok(m.xor_address(attr::XOR_RELAYED_ADDRESS).unwrap())
            }
        }
    }

    async fn permit(&mut self, peer: SocketAddr) -> Option<u16> {
        let reply = self
            .request(method::CREATE_PERMISSION, |b| {
                b.xor_address(attr::XOR_PEER_ADDRESS, peer);
            })
            .await;
        error_code(&Message::parse(&reply).unwrap())
    }
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    let v = m.get(attr::ERROR_CODE)?;
    Some(u16::from(v[2]) * 100 + u16::from(v[3]))
}

/// Relays "ping" out through a Send indication and a channel, and "pong" back both ways.
async fn relay_round_trips(client: &mut TurnClient, tcp: bool) {
    let relayed = client.allocate().await.expect("an allocation");
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    assert_eq!(client.permit(peer_addr).await, None);

    let mut send = Builder::new(Class::Indication, method::SEND, [99; 12]);
    send.xor_address(attr::XOR_PEER_ADDRESS, peer_addr)
        .attr(attr::DATA, b"ping");
    client.send(&send.finish()).await;
    let mut buf = [0u8; 1500];
    let (len, from) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..len], b"ping");
    assert_eq!(
        from.port(),
        relayed.port(),
        "the peer sees the relayed address"
    );
    peer.send_to(b"pong", from).await.unwrap();
    let data = client.recv().await.expect("a Data indication");
    let m = Message::parse(&data).unwrap();
    assert_eq!((m.class, m.method), (Class::Indication, method::DATA));
    assert_eq!(m.get(attr::DATA), Some(&b"pong"[..]));
    assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(peer_addr));

    let bound = client
        .request(method::CHANNEL_BIND, |b| {
            b.attr(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0])
                .xor_address(attr::XOR_PEER_ADDRESS, peer_addr);
        })
        .await;
    assert_eq!(error_code(&Message::parse(&bound).unwrap()), None);
    // Three bytes: over TCP the frame is padded to four.
    let mut frame = vec![0x40, 0x00, 0, 3, b'a', b'b', b'c'];
    if tcp {
        frame.push(0);
    }
    client.send(&frame).await;
    let (len, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..len], b"abc");
    peer.send_to(b"xyz", from).await.unwrap();
    let back = client.recv().await.expect("channel data");
    assert_eq!(stun::channel_data(&back), Some((0x4000, &b"xyz"[..])));
    if tcp {
        assert_eq!(back.len(), 8, "padded to four bytes on a stream");
    }
}

#[tokio::test]
async fn a_call_member_relays_through_the_built_in_turn_over_udp_and_tcp() {
    // `--public-ip` turns the relay on (`--turn auto`); loopback peers are opened for the test.
    let server = TestServer::start(&[
        "--media",
        "mesh",
        "--public-ip",
        "127.0.0.1",
        "--turn-addr",
        "127.0.0.1:0",
        "--relay-ports",
        "41000-41999",
        "--turn-allow-peer",
        "127.0.0.0/8",
    ])
    .await;
    let entry = relay_entry(&server, "relay", "Ann")
        .await
        .expect("a TURN entry");
    let username = entry.username.clone().unwrap();
    let password = entry.credential.clone().unwrap();
    let (expiry, member) = username.split_once(':').unwrap();
    assert!(
        expiry.parse::<u64>().is_ok() && !member.is_empty(),
        "{username}"
    );

    let mut udp = TurnClient::connect(url_addr(&entry, "udp"), false, &username, &password).await;
    relay_round_trips(&mut udp, false).await;
    let mut tcp = TurnClient::connect(url_addr(&entry, "tcp"), true, &username, &password).await;
    relay_round_trips(&mut tcp, true).await;

    // A second member gets other credentials.
    let other = relay_entry(&server, "relay", "Bob").await.unwrap();
    assert_ne!(other.username, entry.username);
    assert_ne!(other.credential, entry.credential);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("room_turn_allocations_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("room_turn_allocations_open 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("room_turn_relayed_to_peers_bytes_total 14"),
        "{metrics}"
    );
    assert!(
        metrics.contains("room_turn_relayed_to_clients_bytes_total 14"),
        "{metrics}"
    );
    assert!(metrics.contains("room_turn_tcp_connections 1"), "{metrics}");

    // Closing the TCP connection ends its allocation.
    drop(tcp);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("room_turn_allocations_open 1"),
        "{metrics}"
    );
    assert!(metrics.contains("room_turn_tcp_connections 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn the_relay_refuses_forged_or_expired_credentials_and_private_peers() {
    let data_dir = support::fresh_data_dir();
    let server = TestServer::start_in(
        &data_dir,
        &[
            "--media",
            "mesh",
            "--turn",
            "on",
            "--turn-addr",
            "127.0.0.1:0",
            "--relay-ports",
            "42000-42999",
        ],
        "127.0.0.1:0",
    )
    .await;
    let entry = relay_entry(&server, "guarded", "Ann")
        .await
        .expect("a TURN entry");
    let udp_addr = url_addr(&entry, "udp");
    let username = entry.username.clone().unwrap();
    let password = entry.credential.clone().unwrap();

    let mut forged = TurnClient::connect(udp_addr, false, &username, "made-up").await;
    assert_eq!(forged.allocate().await, Err(401));
    let (stranger, _) = username.split_once(':').unwrap();
    let mut other_member = TurnClient::connect(
        udp_addr,
        false,
        &format!("{stranger}:someone-else"),
        &password,
    )
    .await;
    assert_eq!(other_member.allocate().await, Err(401));

    // Credentials minted with the server's own secret, but expired a second ago.
    let secret = std::fs::read_to_string(data_dir.join("turn-secret")).unwrap();
    let minted = Credentials::new(secret.trim().as_bytes().to_vec(), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (old_user, old_pass) = minted.mint("7", now - 1);
    let mut expired = TurnClient::connect(udp_addr, false, &old_user, &old_pass).await;
    assert_eq!(expired.allocate().await, Err(401));
    // The same secret, still valid: accepted (so the refusal above was the expiry).
    let (user, pass) = Credentials::new(secret.trim().as_bytes().to_vec(), 60).mint("7", now);
    let mut valid = TurnClient::connect(udp_addr, false, &user, &pass).await;
    valid.allocate().await.expect("valid credentials allocate");

    // Nothing on this machine or a private network is reachable through the relay.
    let mut honest = TurnClient::connect(udp_addr, false, &username, &password).await;
    honest.allocate().await.expect("an allocation");
    let http = server.addr;
    for peer in [
        http,
        "10.1.2.3:80".parse().unwrap(),
        "192.168.1.1:53".parse().unwrap(),
    ] {
        assert_eq!(honest.permit(peer).await, Some(403), "{peer}");
    }
    let mut send = Builder::new(Class::Indication, method::SEND, [5; 12]);
    send.xor_address(attr::XOR_PEER_ADDRESS, http)
        .attr(attr::DATA, b"GET /metrics HTTP/1.0\r\n\r\n");
    honest.send(&send.finish()).await;
    assert_eq!(
        honest.recv().await,
        None,
        "nothing comes back from a refused peer"
    );

    // Garbage over UDP is dropped; garbage over TCP closes the connection.
    for len in [0usize, 1, 3, 19, 20, 21, 100, 1400] {
        honest.send(&vec![0x00; len]).await;
        honest.send(&vec![0xFF; len]).await;
    }
    let mut junk = TcpStream::connect(url_addr(&entry, "tcp")).await.unwrap();
    junk.write_all(&[0xC0; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, junk.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "the connection is closed");
    // The relay still answers.
    let mut after = TurnClient::connect(udp_addr, false, &username, &password).await;
    after.allocate().await.expect("still serving");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = server.metrics().await;
    for line in [
        "room_turn_refused_total{reason=\"bad_credentials\"} 2",
        "room_turn_refused_total{reason=\"expired\"} 1",
        "room_turn_refused_total{reason=\"peer_forbidden\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_a_public_address_the_relay_stays_off() {
    let server = TestServer::start(&["--media", "mesh"]).await;
    assert_eq!(relay_entry(&server, "plain", "Ann").await, None);
    server.stop().await;
}

#[tokio::test]
async fn the_relay_speaks_tls_for_networks_that_let_only_tls_out() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = support::fresh_data_dir();
    std::fs::create_dir_all(&*dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start(&[
        "--media",
        "mesh",
        "--turn",
        "on",
        "--turn-addr",
        "127.0.0.1:0",
        "--turn-tls-addr",
        "127.0.0.1:0",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--relay-ports",
        "43000-43999",
        "--turn-allow-peer",
        "127.0.0.0/8",
    ])
    .await;
    let entry = relay_entry(&server, "tls", "Ann")
        .await
        .expect("a TURN entry");
    let url = entry
        .urls
        .iter()
        .find(|u| u.starts_with("turns:"))
        .expect("a turns: URL");
    let addr: SocketAddr = url
        .trim_start_matches("turns:")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (username, password) = (entry.username.unwrap(), entry.credential.unwrap());
    let mut client =
        TurnClient::connect_tls(addr, certified.cert.der(), &username, &password).await;
    relay_round_trips(&mut client, true).await;
    // Plain TCP to the TLS port gets nowhere.
    let mut plain = TurnClient::connect(addr, true, &username, &password).await;
    plain
        .send(&Builder::new(Class::Request, method::BINDING, [1; 12]).finish())
        .await;
    assert_eq!(plain.recv().await, None);
    server.stop().await;
}
