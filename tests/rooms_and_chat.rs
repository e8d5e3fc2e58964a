//! Integration tests: the real server on port 0, real WebSocket clients, rooms and chat.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{close_code, ClientMsg, ErrorCode, LeaveReason, RoomSummary, ServerMsg};
use support::{join_msg, Ending, TestServer};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn hello_reports_version_and_limits() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    client
        .send(&ClientMsg::Hello {
            version: room::protocol::PROTOCOL_VERSION,
        })
        .await;
    match client.recv().await {
        ServerMsg::Hello { limits, .. } => {
            assert_eq!(limits.max_frame_bytes, 16 * 1024);
            assert_eq!(limits.max_chat_chars, 2000);
            assert_eq!(limits.max_name_chars, 32);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_different_protocol_version_is_told_and_closed() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    client.send(&ClientMsg::Hello { version: 999 }).await;
    let message = client.expect_error(ErrorCode::VersionMismatch).await;
    assert!(message.contains("999"), "{message}");
    assert_eq!(
        client.ending().await,
        Ending::Closed(
            close_code::PROTOCOL_ERROR,
            "protocol version mismatch".into()
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn anything_before_hello_is_refused_but_the_connection_stays() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    client.chat("too early").await;
    client.expect_error(ErrorCode::HelloRequired).await;
    client.hello().await;
    let joined = client.join("early-room", "Ann").await;
    assert_eq!(joined.peers.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn chat_reaches_everyone_in_the_room_and_nobody_outside_it() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("standup", "Ann").await;
    let (mut bob, bob_joined) = server.joined("standup", "Bob").await;
    let (mut eve, _) = server.joined("elsewhere", "Eve").await;

    let names: Vec<_> = bob_joined.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Ann", "Bob"]);
    match ann.recv().await {
        ServerMsg::PeersJoined { peers } => {
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].name, "Bob");
            assert_eq!(peers[0].id, bob_joined.you);
        }
        other => panic!("expected peers_joined, got {other:?}"),
    }

    ann.chat("hello Bob").await;
    let at_ann = ann.expect_chat().await;
    let at_bob = bob.expect_chat().await;
    assert_eq!(at_ann, at_bob);
    assert_eq!(at_bob.text, "hello Bob");
    assert_eq!(at_bob.name, "Ann");
    assert_eq!(at_bob.from, ann_joined.you);

    bob.chat("hi Ann").await;
    assert_eq!(ann.expect_chat().await.text, "hi Ann");
    assert_eq!(bob.expect_chat().await.text, "hi Ann");

    eve.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn late_joiners_receive_the_last_hundred_messages_in_order() {
    let server = TestServer::start(&["--chat-burst", "200"]).await;
    let (mut ann, _) = server.joined("history", "Ann").await;
    for i in 0..120 {
        ann.chat(&format!("message {i}")).await;
    }
    for _ in 0..120 {
        ann.expect_chat().await;
    }
    let (_bob, joined) = server.joined("history", "Bob").await;
    let texts: Vec<_> = joined.history.iter().map(|e| e.text.clone()).collect();
    let expected: Vec<_> = (20..120).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, expected);
    assert!(joined.history.windows(2).all(|w| w[0].id < w[1].id));
    server.stop().await;
}

#[tokio::test]
async fn the_others_hear_when_someone_leaves() {
    // A goodbye (close frame) leaves at once; only a broken connection gets a grace period
    // (tests/reliability.rs).
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("leaving", "Ann").await;
    let (bob, bob_joined) = server.joined("leaving", "Bob").await;
    ann.recv_until(|m| matches!(m, ServerMsg::PeersJoined { .. }))
        .await;
    bob.close().await;
    assert_eq!(
        ann.recv().await,
        ServerMsg::PeerLeft {
            peer: bob_joined.you,
            reason: LeaveReason::Left
        }
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_messages_get_typed_errors_and_the_connection_stays_usable() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("robust", "Ann").await;
    let (mut bob, _) = server.joined("robust", "Bob").await;
    ann.recv().await; // Bob joined

    ann.send_raw("{not json").await;
    ann.expect_error(ErrorCode::BadMessage).await;
    ann.send_raw(r#"{"type":"shout","text":"hi"}"#).await;
    let message = ann.expect_error(ErrorCode::BadMessage).await;
    assert!(message.contains("shout"), "{message}");
    ann.send_raw(r#"{"type":"chat"}"#).await;
    ann.expect_error(ErrorCode::BadMessage).await;
    ann.send_binary(vec![0, 159, 146, 150]).await;
    ann.expect_error(ErrorCode::BadMessage).await;
    ann.send(&ClientMsg::Hello { version: 1 }).await;
    ann.expect_error(ErrorCode::BadMessage).await;
    ann.send(&join_msg("robust", "Again")).await;
    ann.expect_error(ErrorCode::AlreadyJoined).await;

    // None of that reached Bob, and Ann can still talk.
    ann.chat("still here").await;
    assert_eq!(bob.expect_chat().await.text, "still here");
    server.stop().await;
}

#[tokio::test]
async fn oversized_frames_are_refused_and_only_that_connection_closes() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("big", "Ann").await;
    let (mut bob, _) = server.joined("big", "Bob").await;
    ann.recv().await;

    let huge = ClientMsg::Chat {
        text: "x".repeat(20 * 1024),
    };
    ann.send(&huge).await;
    let message = ann.expect_error(ErrorCode::TooLarge).await;
    assert!(message.contains("16384"), "{message}");
    assert_eq!(
        ann.ending().await,
        Ending::Closed(
            close_code::MESSAGE_TOO_BIG,
            "message too large (limit 16384 bytes)".into()
        )
    );

    match bob.recv().await {
        ServerMsg::PeerLeft { reason, .. } => assert_eq!(reason, LeaveReason::Left),
        other => panic!("expected peer_left, got {other:?}"),
    }
    // Ann was the host (first in): the role passes to Bob, with a key of his own.
    match bob.recv().await {
        ServerMsg::PeerUpdated { peer } => assert_eq!(peer.role, room::protocol::Role::Host),
        other => panic!("expected peer_updated, got {other:?}"),
    }
    assert!(matches!(bob.recv().await, ServerMsg::HostKey { .. }));
    bob.chat("fine here").await;
    assert_eq!(bob.expect_chat().await.text, "fine here");
    server.stop().await;
}

#[tokio::test]
async fn overlong_and_empty_chat_text_is_refused() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("texts", "Ann").await;
    let (mut bob, _) = server.joined("texts", "Bob").await;
    ann.recv().await;

    let overlong = "y".repeat(2001);
    ann.chat(&overlong).await;
    // The refusal hands the text back, so the page can put it in the input again.
    match ann.recv().await {
        ServerMsg::Error {
            code: ErrorCode::TextTooLong,
            message,
            chat_text,
        } => {
            assert!(message.contains("2000"), "{message}");
            assert_eq!(chat_text.as_deref(), Some(overlong.as_str()));
        }
        other => panic!("unexpected {other:?}"),
    }
    ann.chat("   ").await;
    ann.expect_error(ErrorCode::EmptyText).await;
    ann.chat(&"y".repeat(2000)).await;
    assert_eq!(ann.expect_chat().await.text.len(), 2000);
    assert_eq!(bob.expect_chat().await.text.len(), 2000);
    server.stop().await;
}

#[tokio::test]
async fn empty_long_and_taken_names_are_refused_clearly() {
    let server = TestServer::start(&[]).await;
    let (_ann, _) = server.joined("names", "Ann").await;
    let mut bob = server.client().await;
    bob.hello().await;

    bob.send(&join_msg("names", "   ")).await;
    bob.expect_error(ErrorCode::InvalidName).await;
    bob.send(&join_msg("names", "b".repeat(33))).await;
    assert!(bob
        .expect_error(ErrorCode::InvalidName)
        .await
        .contains("32"));
    bob.send(&join_msg("names", "aNN")).await;
    assert!(bob.expect_error(ErrorCode::NameTaken).await.contains("aNN"));
    bob.send(&join_msg("Not A Slug", "Bob")).await;
    bob.expect_error(ErrorCode::InvalidRoom).await;
    // After all that, a good name works on the same connection.
    let joined = bob.join("names", "Bob").await;
    assert_eq!(joined.peers.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_full_room_refuses_the_next_member() {
    let server = TestServer::start(&["--max-room-members", "2"]).await;
    let (_a, _) = server.joined("small", "A").await;
    let (_b, _) = server.joined("small", "B").await;
    let mut c = server.client().await;
    c.hello().await;
    c.send(&join_msg("small", "C")).await;
    c.expect_error(ErrorCode::RoomFull).await;
    server.stop().await;
}

#[tokio::test]
async fn chat_without_joining_is_refused() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    client.hello().await;
    client.chat("hello?").await;
    client.expect_error(ErrorCode::NotJoined).await;
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited_and_others_see_only_what_was_allowed() {
    let server = TestServer::start(&["--chat-burst", "5", "--chat-per-second", "1"]).await;
    let (mut ann, _) = server.joined("flood", "Ann").await;
    let (mut bob, _) = server.joined("flood", "Bob").await;
    ann.recv().await;

    for i in 0..20 {
        ann.chat(&format!("spam {i}")).await;
    }
    let mut delivered = 0;
    let mut limited = 0;
    for i in 0..20 {
        match ann.recv().await {
            ServerMsg::Chat { .. } => delivered += 1,
            // Each refused message comes back to its sender, in the order sent.
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                chat_text,
                ..
            } => {
                assert_eq!(chat_text, Some(format!("spam {i}")));
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The burst goes through (one more token may refill during the loop); the rest is refused.
    assert!((5..=6).contains(&delivered), "{delivered} delivered");
    assert_eq!(delivered + limited, 20);
    for i in 0..delivered {
        assert_eq!(bob.expect_chat().await.text, format!("spam {i}"));
    }
    bob.expect_silence(QUIET).await;
    // Bob's own budget is untouched.
    bob.chat("my turn").await;
    assert_eq!(bob.expect_chat().await.text, "my turn");
    server.stop().await;
}

#[tokio::test]
async fn markup_in_names_and_messages_is_carried_verbatim() {
    let server = TestServer::start(&[]).await;
    let payload = "<img src=x onerror=alert(1)>";
    let (mut ann, _) = server.joined("xss", payload).await;
    ann.chat(payload).await;
    let entry = ann.expect_chat().await;
    assert_eq!(entry.name, payload);
    assert_eq!(entry.text, payload);
    server.stop().await;
}

#[tokio::test]
async fn watchers_see_the_room_list_change_and_empty_rooms_disappear() {
    let server = TestServer::start(&["--public-room-list"]).await;
    let mut watcher = server.client().await;
    watcher.hello().await;
    watcher.send(&ClientMsg::WatchRooms).await;
    assert_eq!(watcher.recv().await, ServerMsg::Rooms { rooms: vec![] });

    let (ann, _) = server.joined("busy", "Ann").await;
    let rooms = |list: &[(&str, usize)]| ServerMsg::Rooms {
        rooms: list
            .iter()
            .map(|&(room, participants)| RoomSummary {
                room: room.into(),
                participants,
            })
            .collect(),
    };
    let mut latest = watcher.recv().await;
    if latest == rooms(&[]) {
        latest = watcher.recv().await;
    }
    assert_eq!(latest, rooms(&[("busy", 1)]));

    let (bob, _) = server.joined("busy", "Bob").await;
    watcher.recv_until(|m| *m == rooms(&[("busy", 2)])).await;
    ann.close().await;
    bob.close().await;
    watcher.recv_until(|m| *m == rooms(&[])).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_sends_every_client_a_close_frame() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("closing", "Ann").await;
    let mut watcher = server.client().await;
    watcher.hello().await;
    server.stop().await;
    assert_eq!(
        ann.ending().await,
        Ending::Closed(close_code::GOING_AWAY, "server shutting down".into())
    );
    assert_eq!(
        watcher.ending().await,
        Ending::Closed(close_code::GOING_AWAY, "server shutting down".into())
    );
}

#[tokio::test]
async fn http_routes_create_and_normalize_rooms_and_render_pages() {
    let server = TestServer::start(&[]).await;
    let created = server.http("POST", "/new").await;
    assert!(created.starts_with("HTTP/1.1 303"), "{created}");
    let location = created
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a location header");
    let slug = location.strip_prefix("/r/").expect("a room path");
    assert!(room::core::names::RoomSlug::parse(slug).is_ok(), "{slug}");

    let joined = server.http("GET", "/join?room=Team+Standup%21").await;
    assert!(joined.contains("location: /r/team-standup"), "{joined}");
    let invalid = server.http("GET", "/join?room=%21%21").await;
    assert!(invalid.contains("location: /?invalid=1"), "{invalid}");

    let home = server.http("GET", "/").await;
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(home.contains("Start a new meeting"));
    assert!(home.contains("/pkg/room.js") || home.contains("room.js"));
    let room_page = server.http("GET", "/r/team-standup").await;
    assert!(room_page.contains("team-standup"));
    assert!(room_page.contains("Your name"));

    let metrics = server.metrics().await;
    assert!(metrics.contains("room_connections_open 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_connections_rooms_messages_errors_and_bytes() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("counted", "Ann").await;
    let (mut bob, _) = server.joined("counted", "Bob").await;
    ann.recv().await;
    ann.chat("one").await;
    ann.expect_chat().await;
    bob.expect_chat().await;
    ann.send_raw("nonsense").await;
    ann.expect_error(ErrorCode::BadMessage).await;

    let metrics = server.metrics().await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert!(metrics.contains("application/openmetrics-text"));
    assert_eq!(value("room_connections_open"), 2.0);
    assert_eq!(value("room_rooms_open"), 1.0);
    assert_eq!(value("room_members"), 2.0);
    assert_eq!(value("room_messages_received_total{type=\"chat\"}"), 1.0);
    assert_eq!(value("room_messages_received_total{type=\"join\"}"), 2.0);
    // One chat to two members.
    assert_eq!(value("room_messages_sent_total{type=\"chat\"}"), 2.0);
    assert_eq!(value("room_errors_total{code=\"bad_message\"}"), 1.0);
    assert!(value("room_received_bytes_total") > 0.0);
    assert!(value("room_sent_bytes_total") > 0.0);
    assert_eq!(value("room_slow_disconnects_total"), 0.0);
    assert_eq!(value("room_messages_sent_total{type=\"signal\"}"), 0.0);

    ann.close().await;
    bob.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = server.metrics().await;
    assert!(metrics.contains("room_connections_open 0"), "{metrics}");
    assert!(metrics.contains("room_rooms_open 0"), "{metrics}");
    assert!(metrics.contains("room_members 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn a_refusal_does_not_echo_a_huge_bad_frame_back() {
    let server = TestServer::start(&[]).await;
    let mut client = server.client().await;
    client.hello().await;
    let huge_type = "x".repeat(10_000);
    client
        .send_raw(&format!(r#"{{"type":"{huge_type}"}}"#))
        .await;
    let message = client.expect_error(ErrorCode::BadMessage).await;
    assert!(
        message.chars().count() < 250,
        "{} chars echoed",
        message.len()
    );
    assert!(
        message.starts_with("could not read that message"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_largest_last_seen_is_harmless() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("last-seen-max", "Ann").await;
    ann.chat("hi").await;
    ann.expect_chat().await;
    let mut bob = server.client().await;
    bob.hello().await;
    let joined = bob
        .rejoin(
            "last-seen-max",
            "Bob",
            None,
            Some(room::protocol::MessageId(u64::MAX)),
        )
        .await;
    assert!(
        matches!(&joined, ServerMsg::Joined { history, .. } if history.is_empty()),
        "{joined:?}"
    );
    // The room is still alive for everyone.
    ann.chat("still here").await;
    let said = ann
        .recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
        .await;
    assert!(matches!(said, ServerMsg::Chat { entry } if entry.text == "still here"));
    server.stop().await;
}

#[tokio::test]
async fn a_frame_that_breaks_the_protocol_closes_with_a_reason_and_leaves_at_once() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("broken-frames", "Ann").await;
    let (mut mallory, joined) = server.joined("broken-frames", "Mallory").await;
    ann.drain(Duration::from_millis(200)).await;
    mallory.send_invalid_utf8().await;
    assert_eq!(
        mallory.ending().await,
        Ending::Closed(close_code::INVALID_DATA, "text frames must be UTF-8".into())
    );
    // Ann sees Mallory leave now, not "reconnecting" for the resume grace period.
    let left = ann
        .recv_until(|m| {
            matches!(
                m,
                ServerMsg::PeerLeft { .. } | ServerMsg::PeerUpdated { .. }
            )
        })
        .await;
    assert_eq!(
        left,
        ServerMsg::PeerLeft {
            peer: joined.you,
            reason: LeaveReason::Left
        }
    );
    server.stop().await;
}
