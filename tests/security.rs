//! Integration tests for what a hostile page or client must not get: WebSockets from other
//! sites, rebound host names, connections held open by slowloris clients, a server that
//! cannot shut down, and clients that never read.

#![cfg(feature = "ssr")]

mod support;

use std::time::{Duration, Instant};

use room::protocol::{ChatEntry, ClientMsg, ErrorCode, MessageId, ServerMsg};
use support::{upgrade_request, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

/// The HTTP status of a WebSocket upgrade, or 101 when it was accepted.
async fn upgrade_status(request: tungstenite::handshake::client::Request) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("the upgrade failed without an answer: {other}"),
    }
}

#[tokio::test]
async fn only_the_sites_own_pages_may_open_a_websocket() {
    let server = TestServer::start(&["--allowed-origins", "https://intranet.example"]).await;
    let addr = server.addr;
    let own = format!("http://{addr}");
    assert_eq!(upgrade_status(upgrade_request(addr, Some(&own))).await, 101);
    assert_eq!(
        upgrade_status(upgrade_request(addr, Some("https://intranet.example"))).await,
        101
    );
    for foreign in [
        Some("https://evil.example"),
        Some("null"),
        Some("http://127.0.0.1:1"),
        None,
    ] {
        assert_eq!(
            upgrade_status(upgrade_request(addr, foreign)).await,
            403,
            "origin {foreign:?}"
        );
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("room_forbidden_requests_total 4"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rebound_dns_name_gets_neither_pages_nor_a_websocket() {
    let server = TestServer::start(&[]).await;
    let port = server.addr.port();
    let page = server
        .raw_http(&format!(
            "GET / HTTP/1.1\r\nHost: attacker.example:{port}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    assert!(page.starts_with("HTTP/1.1 403"), "{page}");
    assert!(page.contains("does not serve the host"), "{page}");
    // Origin and Host agree, as they do after DNS rebinding: still refused.
    let mut request = upgrade_request(
        server.addr,
        Some(&format!("http://attacker.example:{port}")),
    );
    request
        .headers_mut()
        .insert("host", format!("attacker.example:{port}").parse().unwrap());
    assert_eq!(upgrade_status(request).await, 403);
    // The site's own addresses still work.
    let home = server
        .raw_http(&format!(
            "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    server.stop().await;
}

/// Reads until the server closes `stream`; returns how long that took.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn slow_silent_and_idle_http_connections_are_closed_after_the_header_timeout() {
    let server = TestServer::start(&["--http-header-timeout-secs", "1"]).await;
    let mut half_sent = TcpStream::connect(server.addr).await.unwrap();
    half_sent
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    for (name, stream) in [
        ("half-sent", &mut half_sent),
        ("silent", &mut silent),
        ("idle keep-alive", &mut idle),
    ] {
        let took = closed_after(stream, Duration::from_secs(5)).await;
        assert!(
            took < Duration::from_secs(4),
            "{name} closed after {took:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_http_connections() {
    let server = TestServer::start(&["--max-http-connections-per-ip", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server accept those three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_after(&mut over, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = server.http("GET", "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("room_refused_tcp_connections_total 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_gives_up_on_stuck_connections_after_its_deadline() {
    let server = TestServer::start(&[
        "--http-header-timeout-secs",
        "60",
        "--shutdown-timeout-secs",
        "1",
    ])
    .await;
    let mut stuck = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /new HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        stuck.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    server.stop().await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[tokio::test]
async fn a_member_who_never_reads_is_closed_when_a_write_times_out() {
    // A replay far larger than loopback's socket buffers, so Bob's `joined` cannot be written
    // while he does not read: only the write deadline can end his connection.
    let server = TestServer::start(&[
        "--write-timeout-ms",
        "500",
        "--chat-burst",
        "100000",
        "--chat-per-second",
        "100000",
        "--max-chat-chars",
        "60000",
        "--max-frame-bytes",
        "262144",
        "--history-len",
        "1000",
        "--max-replay-bytes",
        "100000000",
    ])
    .await;
    let (mut ann, _) = server.joined("stuck", "Ann").await;
    // 200 messages (one replay's most) of 60 KB: 12 MB in Bob's `joined`.
    let text = "x".repeat(60_000);
    for _ in 0..200 {
        ann.send(&ClientMsg::Chat { text: text.clone() }).await;
        ann.expect_chat().await;
    }
    let mut bob = server.client().await;
    bob.hello().await;
    bob.send(&support::join_msg("stuck", "Bob")).await;
    let start = Instant::now();
    ann.recv_until(|m| matches!(m, ServerMsg::PeersJoined { .. }))
        .await;
    ann.recv_until(|m| matches!(m, ServerMsg::PeerLeft { .. }))
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(bob);
    server.stop().await;
}

#[tokio::test]
async fn the_listener_queues_a_reconnect_storm_without_dropping_syns() {
    // Nothing accepts, so every connection waits in the kernel's queue. With the old backlog
    // of 128 the rest were dropped and retried a second later.
    let listener = room::server::http::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let connects = (0..600)
        .map(|_| tokio::time::timeout(Duration::from_millis(700), TcpStream::connect(addr)));
    let results = futures_util::future::join_all(connects).await;
    let queued = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(queued, 600);
    drop(listener);
}

/// Bytes of `entries` as the server counts them against the replay budget.
fn replay_bytes(entries: &[ChatEntry]) -> usize {
    entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len() + 1)
        .sum()
}

#[tokio::test]
async fn history_comes_in_bounded_pages_that_only_members_may_ask_for() {
    let server = TestServer::start(&[
        "--max-replay-bytes",
        "8000",
        "--history-len",
        "20",
        "--chat-burst",
        "1000",
        "--chat-per-second",
        "1000",
    ])
    .await;
    let (mut ann, _) = server.joined("paged", "Ann").await;
    for i in 1..=60 {
        ann.chat(&format!("m{i} {}", "p".repeat(1000))).await;
        ann.expect_chat().await;
    }
    let (mut bob, joined) = server.joined("paged", "Bob").await;
    assert!(joined.more_history);
    assert!(replay_bytes(&joined.history) <= 8000);
    assert_eq!(joined.history.last().unwrap().id, MessageId(60));
    let mut ids: Vec<u64> = joined.history.iter().map(|e| e.id.0).collect();
    let mut pages = 0;
    loop {
        let before = MessageId(ids[0]);
        bob.send(&ClientMsg::LoadHistory { before }).await;
        let ServerMsg::HistoryPage { entries, more } = bob
            .recv_until(|m| matches!(m, ServerMsg::HistoryPage { .. }))
            .await
        else {
            unreachable!()
        };
        assert!(replay_bytes(&entries) <= 8000);
        assert_eq!(entries.last().map(|e| e.id.0 + 1), Some(before.0));
        ids.splice(0..0, entries.iter().map(|e| e.id.0));
        pages += 1;
        if !more {
            break;
        }
        // The page budget refills at two per second.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(ids, (1..=60).collect::<Vec<_>>());
    assert!(pages >= 6, "{pages} pages");

    // A flood of requests is refused, not served, and the connection stays usable.
    for _ in 0..20 {
        bob.send(&ClientMsg::LoadHistory {
            before: MessageId(60),
        })
        .await;
    }
    bob.recv_error(ErrorCode::RateLimited).await;
    bob.chat("still here").await;
    bob.recv_until(|m| matches!(m, ServerMsg::Chat { entry } if entry.text == "still here"))
        .await;

    // Someone who has not joined the room cannot read it.
    let mut stranger = server.client().await;
    stranger.hello().await;
    stranger
        .send(&ClientMsg::LoadHistory {
            before: MessageId(60),
        })
        .await;
    stranger.expect_error(ErrorCode::NotJoined).await;
    server.stop().await;
}

#[tokio::test]
async fn pages_carry_a_nonce_policy_and_every_response_the_security_headers() {
    let server = TestServer::start(&[]).await;
    let page = server.http("GET", "/").await;
    let (raw_head, body) = page.split_once("\r\n\r\n").unwrap();
    let policy = raw_head
        .lines()
        .find(|line| {
            line.to_ascii_lowercase()
                .starts_with("content-security-policy: ")
        })
        .map(|line| &line["content-security-policy: ".len()..])
        .unwrap_or_else(|| panic!("no policy in {raw_head}"));
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy");
    assert!(nonce.len() >= 16, "{nonce}");
    // The hydration script carries the same nonce.
    assert!(body.contains(&format!("nonce=\"{nonce}\"")), "{body}");
    let head = raw_head.to_ascii_lowercase();
    assert!(policy.contains("frame-ancestors 'none'"));
    for header in [
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "permissions-policy: camera=(self), microphone=(self), display-capture=(self)",
        "x-frame-options: deny",
    ] {
        assert!(head.contains(header), "{header} missing from {head}");
    }
    // Another page, another nonce.
    let again = server.http("GET", "/").await;
    assert!(!again.contains(&format!("'nonce-{nonce}'")));
    // Not only pages: the health check too.
    let health = server.http("GET", "/healthz").await.to_ascii_lowercase();
    assert!(health.contains("x-content-type-options: nosniff"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_not_to_the_public() {
    let server = TestServer::start(&[]).await;
    let public = server.http("GET", "/metrics").await;
    assert!(!public.contains("room_connections"), "{public}");
    let private = server.metrics().await;
    assert!(private.starts_with("HTTP/1.1 200"), "{private}");
    assert!(private.contains("room_connections_open"), "{private}");
    server.stop().await;
}

#[tokio::test]
async fn new_meetings_get_unguessable_names_and_nobody_lists_rooms_by_default() {
    let server = TestServer::start(&[]).await;
    let mut slugs = std::collections::HashSet::new();
    for _ in 0..20 {
        let created = server.http("POST", "/new").await;
        let slug = created
            .lines()
            .find_map(|l| l.strip_prefix("location: /r/"))
            .expect("a room path")
            .to_string();
        // Two words, then four groups of four base-32 characters: 80 random bits.
        let parts: Vec<&str> = slug.split('-').collect();
        assert_eq!(parts.len(), 6, "{slug}");
        for group in &parts[2..] {
            assert_eq!(group.len(), 4, "{slug}");
            assert!(group
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
        slugs.insert(parts[2..].join("-"));
    }
    assert_eq!(slugs.len(), 20);

    // Busy rooms are neither in the home page nor on the socket.
    let (_ann, _) = server.joined("private-standup", "Ann").await;
    let home = server.http("GET", "/").await;
    assert!(!home.contains("private-standup"), "{home}");
    let mut watcher = server.client().await;
    watcher.hello().await;
    watcher.send(&ClientMsg::WatchRooms).await;
    watcher.expect_error(ErrorCode::Forbidden).await;
    // The list once had an endpoint of its own; it travels with the home page now.
    let listed = server
        .raw_http(&format!(
            "POST /api/list_rooms HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            server.addr
        ))
        .await;
    assert!(!listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(!listed.contains("private-standup"), "{listed}");
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_open_rooms_without_end_but_can_always_join_open_ones() {
    let server =
        TestServer::start(&["--new-rooms-burst", "3", "--new-rooms-per-second", "1"]).await;
    let (_ann, _) = server.joined("open-room", "Ann").await;
    for room in ["guess-1", "guess-2"] {
        let (_client, _) = server.joined(room, "Eve").await;
    }
    let mut eve = server.client().await;
    eve.hello().await;
    eve.send(&support::join_msg("guess-3", "Eve")).await;
    let refusal = eve.expect_error(ErrorCode::RateLimited).await;
    assert!(refusal.contains("opened many rooms"), "{refusal}");
    // A room that is already open takes anyone, however many they opened.
    eve.send(&support::join_msg("open-room", "Eve")).await;
    eve.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn a_copied_resume_token_cannot_take_over_a_live_member_and_each_resume_changes_it() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("tokens", "Ann").await;
    let first_token = ann_joined.resume_token;

    // Mallory, at another address, holds Ann's token while Ann is connected.
    let mut mallory = support::Client::connect_from(server.addr, "127.0.0.2").await;
    mallory.hello().await;
    let refused = mallory
        .rejoin("tokens", "Ann", Some(first_token.clone()), None)
        .await;
    assert!(
        matches!(
            refused,
            ServerMsg::Error {
                code: ErrorCode::SessionInUse,
                ..
            }
        ),
        "{refused:?}"
    );
    ann.chat("still mine").await;
    assert_eq!(ann.expect_chat().await.text, "still mine");

    // Ann's own page reconnects (same address) before the server noticed: it takes over,
    // the old connection hears why, and the token changes.
    let mut ann_again = server.client().await;
    ann_again.hello().await;
    let ServerMsg::Joined {
        resumed,
        resume_token: second_token,
        ..
    } = ann_again
        .rejoin("tokens", "Ann", Some(first_token.clone()), None)
        .await
    else {
        panic!("expected joined");
    };
    assert!(resumed);
    assert_ne!(second_token, first_token);
    assert_eq!(
        ann.ending().await,
        support::Ending::Closed(
            room::protocol::close_code::SIGNED_IN_ELSEWHERE,
            "signed in elsewhere".into()
        )
    );

    // Ann's network drops: she is away. The old token is worth nothing now (a plain join
    // under her name, which she still holds); the current one resumes from anywhere.
    ann_again.vanish();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stale = mallory
        .rejoin("tokens", "Ann", Some(first_token), None)
        .await;
    assert!(
        matches!(
            stale,
            ServerMsg::Error {
                code: ErrorCode::NameTaken,
                ..
            }
        ),
        "{stale:?}"
    );
    let moved = mallory
        .rejoin("tokens", "Ann", Some(second_token), None)
        .await;
    assert!(
        matches!(moved, ServerMsg::Joined { resumed: true, .. }),
        "{moved:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn look_alike_and_invisible_names_cannot_pose_as_a_member() {
    let server = TestServer::start(&[]).await;
    let (_ann, _) = server.joined("names", "Ann").await;
    let mut eve = server.client().await;
    eve.hello().await;
    for (name, code) in [
        ("\u{0410}nn", ErrorCode::NameTaken),
        ("ＡＮＮ", ErrorCode::NameTaken),
        ("Ann\u{200B}", ErrorCode::InvalidName),
        ("\u{202E}nnA", ErrorCode::InvalidName),
        ("\u{3164}", ErrorCode::InvalidName),
    ] {
        eve.send(&support::join_msg("names", name)).await;
        eve.expect_error(code).await;
    }
    // A real other name, in another script, is fine.
    eve.send(&support::join_msg("names", "안나")).await;
    eve.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await;
    server.stop().await;
}

/// A WebSocket from `local` carrying `X-Forwarded-For: forwarded`, as a reverse proxy at
/// `local` would open it.
async fn websocket_via(server: &TestServer, local: &str, forwarded: &str) -> support::Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(local.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let mut request = upgrade_request(server.addr, Some(&format!("http://{}", server.addr)));
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded.parse().unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    support::Client::from_stream(ws)
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limits_count_the_forwarded_client_and_nobody_else_can_claim_one(
) {
    let server = TestServer::start(&[
        "--trusted-proxies",
        "127.0.0.2",
        "--max-connections-per-ip",
        "1",
    ])
    .await;
    // Through the proxy: two clients, one connection each, both in.
    let mut first = websocket_via(&server, "127.0.0.2", "203.0.113.7").await;
    let mut second = websocket_via(&server, "127.0.0.2", "203.0.113.8").await;
    first.hello().await;
    second.hello().await;
    // The same client a second time is over its limit.
    let mut again = websocket_via(&server, "127.0.0.2", "203.0.113.7").await;
    again.expect_error(ErrorCode::TooManyConnections).await;
    // Not a proxy: the header is ignored, and 127.0.0.1 counts as itself.
    let mut direct = websocket_via(&server, "127.0.0.1", "198.51.100.1").await;
    direct.hello().await;
    let mut spoofed = websocket_via(&server, "127.0.0.1", "198.51.100.2").await;
    spoofed.expect_error(ErrorCode::TooManyConnections).await;
    server.stop().await;
}

#[tokio::test]
async fn a_flood_from_a_client_that_reads_is_refused_not_disconnected() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(&[]).await;
    let (_ann, _) = server.joined("flood", "Ann").await;
    let (ws, _) = tokio_tungstenite::connect_async(upgrade_request(
        server.addr,
        Some(&format!("http://{}", server.addr)),
    ))
    .await
    .unwrap();
    let (mut sink, mut stream) = ws.split();
    // Reads everything at full speed, counting refusals, until the connection ends.
    let reader = tokio::spawn(async move {
        let mut refused = 0;
        while let Some(Ok(frame)) = stream.next().await {
            match frame {
                Message::Text(text) if text.contains("\"rate_limited\"") => refused += 1,
                Message::Close(close) => return (refused, close.map(|c| u16::from(c.code))),
                _ => {}
            }
        }
        (refused, None)
    });
    let hello = ClientMsg::Hello {
        version: room::protocol::PROTOCOL_VERSION,
    };
    sink.send(Message::Text(hello.to_json().into()))
        .await
        .unwrap();
    let join = support::join_msg("flood", "Bob").to_json();
    sink.send(Message::Text(join.into())).await.unwrap();
    let chat = ClientMsg::Chat {
        text: "spam".into(),
    }
    .to_json();
    for _ in 0..20_000 {
        sink.feed(Message::Text(chat.clone().into())).await.unwrap();
    }
    sink.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Still connected: a goodbye now is answered, not preceded by a kick.
    sink.send(Message::Close(None)).await.unwrap();
    let (refused, close) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(refused > 10_000, "{refused} refusals");
    assert_ne!(close, Some(room::protocol::close_code::POLICY_VIOLATION));
    server.stop().await;
}
