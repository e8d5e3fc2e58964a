//! Integration tests for reliability: resuming after a dropped connection, restarts on the
//! same data directory, stalled readers and every limit's typed error.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{close_code, ErrorCode, LeaveReason, MessageId, ServerMsg};
use support::{fresh_data_dir, join_msg, Client, Ending, TestServer};

const QUIET: Duration = Duration::from_millis(300);

fn texts(history: &[room::protocol::ChatEntry]) -> Vec<String> {
    history.iter().map(|e| e.text.clone()).collect()
}

#[tokio::test]
async fn a_member_who_returns_within_the_grace_period_resumes_and_gets_exactly_what_was_missed() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("resume", "Ann").await;
    let (mut bob, bob_joined) = server.joined("resume", "Bob").await;
    ann.recv().await; // Bob joined
    ann.chat("seen by both").await;
    ann.expect_chat().await;
    let seen = bob.expect_chat().await;

    // Bob's network goes away: no close frame.
    bob.vanish();
    match ann.recv().await {
        ServerMsg::PeerUpdated { peer } => assert!(peer.away && peer.id == bob_joined.you),
        other => panic!("expected Bob shown away, got {other:?}"),
    }
    ann.chat("missed 1").await;
    ann.chat("missed 2").await;
    ann.expect_chat().await;
    ann.expect_chat().await;

    let mut bob = server.client().await;
    bob.hello().await;
    let joined = bob
        .rejoin(
            "resume",
            "Bob",
            Some(bob_joined.resume_token.clone()),
            Some(seen.id),
        )
        .await;
    let ServerMsg::Joined {
        you,
        resumed,
        history,
        name,
        ..
    } = joined
    else {
        panic!("expected joined, got {joined:?}");
    };
    assert!(resumed);
    assert_eq!(you, bob_joined.you);
    assert_eq!(name, "Bob");
    assert_eq!(texts(&history), ["missed 1", "missed 2"]);
    // Ann sees Bob back, never a leave or a join.
    match ann.recv().await {
        ServerMsg::PeerUpdated { peer } => assert!(!peer.away && peer.id == bob_joined.you),
        other => panic!("expected Bob back, got {other:?}"),
    }
    ann.expect_silence(QUIET).await;
    // Chat carries on both ways, each message once.
    bob.chat("back").await;
    assert_eq!(ann.expect_chat().await.text, "back");
    assert_eq!(bob.expect_chat().await.text, "back");
    bob.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn after_the_grace_period_the_member_has_left_and_comes_back_as_new() {
    let server = TestServer::start(&["--resume-grace-secs", "1"]).await;
    let (mut ann, _) = server.joined("grace", "Ann").await;
    let (bob, bob_joined) = server.joined("grace", "Bob").await;
    ann.recv().await;
    bob.vanish();
    ann.recv_until(|m| matches!(m, ServerMsg::PeerUpdated { .. }))
        .await;
    assert_eq!(
        ann.recv().await,
        ServerMsg::PeerLeft {
            peer: bob_joined.you,
            reason: LeaveReason::Left
        }
    );
    let mut bob = server.client().await;
    bob.hello().await;
    let joined = bob
        .rejoin("grace", "Bob", Some(bob_joined.resume_token), None)
        .await;
    let ServerMsg::Joined { you, resumed, .. } = joined else {
        panic!("expected joined, got {joined:?}");
    };
    assert!(!resumed);
    assert_ne!(you, bob_joined.you);
    assert!(matches!(ann.recv().await, ServerMsg::PeersJoined { peers } if peers[0].id == you));
    server.stop().await;
}

#[tokio::test]
async fn a_resumed_connection_replaces_an_old_one_that_looked_alive() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("takeover", "Ann").await;
    let (mut old, bob_joined) = server.joined("takeover", "Bob").await;
    ann.recv().await;
    let mut new = server.client().await;
    new.hello().await;
    let joined = new
        .rejoin("takeover", "Bob", Some(bob_joined.resume_token), None)
        .await;
    assert!(matches!(joined, ServerMsg::Joined { resumed: true, .. }));
    // The old connection is closed and told why; its end does not take Bob out of the room.
    assert_eq!(
        old.ending().await,
        Ending::Closed(
            close_code::SIGNED_IN_ELSEWHERE,
            "signed in elsewhere".into()
        )
    );
    ann.chat("still there, Bob?").await;
    assert_eq!(new.expect_chat().await.text, "still there, Bob?");
    ann.recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
        .await;
    ann.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn history_survives_a_restart_and_clients_carry_on_without_gaps_or_duplicates() {
    let data = fresh_data_dir();
    let server = TestServer::start_in(&data, &[], "127.0.0.1:0").await;
    let addr = server.addr.to_string();
    let (mut ann, _) = server.joined("durable", "Ann").await;
    let (mut bob, _) = server.joined("durable", "Bob").await;
    ann.recv().await;
    let mut last_seen_by_bob = None;
    for text in ["one", "two", "three"] {
        ann.chat(text).await;
        ann.expect_chat().await;
        last_seen_by_bob = Some(bob.expect_chat().await.id);
    }
    server.stop().await;
    assert!(matches!(
        ann.ending().await,
        Ending::Closed(close_code::GOING_AWAY, _)
    ));
    assert!(matches!(
        bob.ending().await,
        Ending::Closed(close_code::GOING_AWAY, _)
    ));

    // The same data directory, the same address.
    let server = TestServer::start_in(&data, &[], &addr).await;
    let mut ann = server.client().await;
    ann.hello().await;
    let ServerMsg::Joined {
        history, resumed, ..
    } = ann
        .rejoin("durable", "Ann", Some("stale-token".into()), None)
        .await
    else {
        panic!("Ann could not rejoin");
    };
    assert!(!resumed);
    assert_eq!(texts(&history), ["one", "two", "three"]);
    ann.chat("four").await;
    let four = ann.expect_chat().await;
    assert_eq!(four.id, MessageId(4), "numbering continues after a restart");

    // Bob had seen "three"; he gets "four" and nothing twice.
    let mut bob = server.client().await;
    bob.hello().await;
    let ServerMsg::Joined { history, .. } =
        bob.rejoin("durable", "Bob", None, last_seen_by_bob).await
    else {
        panic!("Bob could not rejoin");
    };
    assert_eq!(texts(&history), ["four"]);
    bob.chat("five").await;
    assert_eq!(
        ann.recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
            .await,
        bob.expect_chat_msg().await
    );
    server.stop().await;
}

#[tokio::test]
async fn a_reconnect_after_a_long_absence_is_replayed_from_storage() {
    let server = TestServer::start(&["--history-len", "3", "--chat-burst", "50"]).await;
    let (mut ann, _) = server.joined("long-gap", "Ann").await;
    let (mut bob, bob_joined) = server.joined("long-gap", "Bob").await;
    ann.recv().await;
    ann.chat("m1").await;
    let seen = bob.expect_chat().await.id;
    bob.vanish();
    ann.recv_until(|m| matches!(m, ServerMsg::PeerUpdated { .. }))
        .await;
    for i in 2..=8 {
        ann.chat(&format!("m{i}")).await;
    }
    ann.drain(QUIET).await;
    let mut bob = server.client().await;
    bob.hello().await;
    let ServerMsg::Joined { history, .. } = bob
        .rejoin("long-gap", "Bob", Some(bob_joined.resume_token), Some(seen))
        .await
    else {
        panic!("Bob could not resume");
    };
    // The room keeps 3 in memory; the other 4 come from SQLite.
    assert_eq!(texts(&history), ["m2", "m3", "m4", "m5", "m6", "m7", "m8"]);
    server.stop().await;
}

async fn refused_connection(client: &mut Client) -> String {
    let message = client.expect_error(ErrorCode::TooManyConnections).await;
    assert_eq!(
        client.ending().await,
        Ending::Closed(close_code::TRY_AGAIN_LATER, "try again later".into())
    );
    message
}

#[tokio::test]
async fn connection_limits_in_total_and_per_address_refuse_with_a_typed_error() {
    let server = TestServer::start(&["--max-connections-per-ip", "2"]).await;
    let first = server.client().await;
    let _second = server.client().await;
    let mut third = server.client().await;
    assert!(refused_connection(&mut third)
        .await
        .contains("your address"));
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = server.client().await;
    again.hello().await;
    server.stop().await;

    let server = TestServer::start(&["--max-connections", "1"]).await;
    let _only = server.client().await;
    let mut over = server.client().await;
    assert!(refused_connection(&mut over)
        .await
        .contains("limit of 1 connections"));
    server.stop().await;
}

#[tokio::test]
async fn the_room_limit_refuses_new_rooms_but_not_existing_ones() {
    let server = TestServer::start(&["--max-rooms", "1"]).await;
    let (_ann, _) = server.joined("only-room", "Ann").await;
    let mut bob = server.client().await;
    bob.hello().await;
    bob.send(&join_msg("second-room", "Bob")).await;
    bob.expect_error(ErrorCode::TooManyRooms).await;
    let joined = bob.join("only-room", "Bob").await;
    assert_eq!(joined.peers.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_during_a_shutdown_is_stored() {
    let data_dir = fresh_data_dir();
    let server = TestServer::start_in(
        &data_dir,
        &["--chat-burst", "1000000", "--chat-per-second", "1000000"],
        "127.0.0.1:0",
    )
    .await;
    let (mut ann, _) = server.joined("burst-at-shutdown", "Ann").await;
    let (mut bob, _) = server.joined("burst-at-shutdown", "Bob").await;
    ann.drain(QUIET).await;
    // Ann chats as fast as she can while the server is told to stop.
    let sender = tokio::spawn(async move {
        for i in 0..5000 {
            ann.chat(&format!("m{i}")).await;
        }
        ann
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await;
    // What `run` left on disk when it returned, read at once from the file as a restarted server
    // would (not through the store's queue, which commits before it reads).
    let db = rusqlite::Connection::open(data_dir.join("room.sqlite3")).unwrap();
    let mut query = db
        .prepare("SELECT id FROM messages WHERE room = 'burst-at-shutdown'")
        .unwrap();
    let stored: std::collections::HashSet<MessageId> = query
        .query_map([], |row| row.get::<_, i64>(0))
        .unwrap()
        .map(|id| MessageId(id.unwrap() as u64))
        .collect();
    let delivered: Vec<MessageId> = bob
        .collect(QUIET)
        .await
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Chat { entry } => Some(entry.id),
            _ => None,
        })
        .collect();
    let _ = sender.await;
    assert!(!delivered.is_empty());
    let missing: Vec<_> = delivered.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} delivered messages not stored",
        missing.len(),
        delivered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_reconnecting_after_a_restart_are_all_back_with_nothing_lost() {
    const ROOMS: usize = 10;
    const PER_ROOM: usize = 20;
    let flags = ["--max-connections-per-ip", "1000"];
    let data = fresh_data_dir();
    let server = TestServer::start_in(&data, &flags, "127.0.0.1:0").await;
    let addr = server.addr.to_string();
    let mut clients = Vec::new();
    for room in 0..ROOMS {
        for person in 0..PER_ROOM {
            let (client, _) = server
                .joined(&format!("storm-{room}"), &format!("p{person}"))
                .await;
            clients.push(client);
        }
    }
    // Three messages per room; every member read the first before the restart.
    let mut first_ids = Vec::new();
    for room in 0..ROOMS {
        let speaker = &mut clients[room * PER_ROOM];
        for text in ["one", "two", "three"] {
            speaker.chat(&format!("{room} {text}")).await;
        }
        // All three delivered (so they must be stored); the first is the last one read.
        let mut ids = Vec::new();
        while ids.len() < 3 {
            if let ServerMsg::Chat { entry } = speaker.recv().await {
                ids.push(entry.id);
            }
        }
        first_ids.push(ids[0]);
    }
    server.stop().await;

    let server = TestServer::start_in(&data, &flags, &addr).await;
    let started = std::time::Instant::now();
    let rejoins = (0..ROOMS * PER_ROOM).map(|i| {
        let (room, person) = (i / PER_ROOM, i % PER_ROOM);
        let last_seen = first_ids[room];
        let addr = server.addr;
        async move {
            let mut client = Client::connect(addr).await;
            client.hello().await;
            let joined = client
                .rejoin(
                    &format!("storm-{room}"),
                    &format!("p{person}"),
                    None,
                    Some(last_seen),
                )
                .await;
            (room, joined, client)
        }
    });
    let back = futures_util::future::join_all(rejoins).await;
    let took = started.elapsed();
    for (room, joined, _client) in &back {
        let ServerMsg::Joined { history, .. } = joined else {
            panic!("a client could not rejoin: {joined:?}");
        };
        assert_eq!(
            texts(history),
            [format!("{room} two"), format!("{room} three")]
        );
    }
    eprintln!("200 clients were back in {took:?} after the restart");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    server.stop().await;
}

#[tokio::test]
async fn chat_goes_on_while_storage_fails_and_everything_is_stored_when_space_returns() {
    let data_dir = fresh_data_dir();
    let server = TestServer::start_in(&data_dir, &["--chat-burst", "100"], "127.0.0.1:0").await;
    let (mut ann, _) = server.joined("full-disk", "Ann").await;
    ann.chat("before").await;
    ann.expect_chat().await;
    server.state.store.sync().await;
    // The disk is full: the database may not grow past its current size.
    server.state.store.limit_pages(1).await;
    let text = "x".repeat(1000);
    for _ in 0..20 {
        ann.chat(&text).await;
        assert_eq!(ann.expect_chat().await.text, text, "chat goes on");
    }
    let failures = || async {
        let metrics = server.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("room_store_failures_total "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while failures().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no failure counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Space returns: the kept messages are stored, none lost, none twice.
    server.state.store.limit_pages(1_000_000).await;
    server.state.store.sync().await;
    let db = rusqlite::Connection::open(data_dir.join("room.sqlite3")).unwrap();
    let stored: i64 = db
        .query_row(
            "SELECT count(*) FROM messages WHERE room = 'full-disk'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, 21);
    server.stop().await;
}

#[tokio::test]
async fn a_room_whose_history_cannot_be_read_is_unavailable_rather_than_empty() {
    let data_dir = fresh_data_dir();
    let server = TestServer::start_in(&data_dir, &[], "127.0.0.1:0").await;
    let (mut ann, _) = server.joined("unreadable", "Ann").await;
    ann.chat("said before").await;
    ann.expect_chat().await;
    // Ann leaves; the empty room closes and forgets what it kept in memory.
    ann.close().await;
    server.state.store.sync().await;
    // The stored history breaks under the server (here: its table disappears).
    let db = rusqlite::Connection::open(data_dir.join("room.sqlite3")).unwrap();
    db.execute_batch("DROP TABLE messages").unwrap();
    drop(db);
    tokio::time::sleep(QUIET).await;
    let mut bob = server.client().await;
    bob.hello().await;
    bob.send(&join_msg("unreadable", "Bob")).await;
    // Not a room that starts over from message 1 with no history: a clear refusal.
    bob.expect_error(ErrorCode::Unavailable).await;
    server.stop().await;
}

#[tokio::test]
async fn after_a_crash_new_messages_never_reuse_the_ids_of_unstored_ones() {
    let data_dir = fresh_data_dir();
    let server = TestServer::start_in(&data_dir, &[], "127.0.0.1:0").await;
    let addr = server.addr.to_string();
    let (mut ann, _) = server.joined("crashy", "Ann").await;
    ann.chat("stored").await;
    let stored = ann.expect_chat().await.id;
    server.stop().await;

    // A clean restart numbers on.
    let server = TestServer::start_in(&data_dir, &[], &addr).await;
    let (mut ann, _) = server.joined("crashy", "Ann").await;
    ann.chat("after a clean restart").await;
    let next = ann.expect_chat().await.id;
    assert_eq!(next.0, stored.0 + 1);
    server.stop().await;

    // The process was killed instead (the mark a running server leaves is still there):
    // whatever it delivered in its last moments may be missing from storage, so new
    // messages are numbered past a gap instead of reusing those ids.
    let db = rusqlite::Connection::open(data_dir.join("room.sqlite3")).unwrap();
    db.execute(
        "UPDATE server_state SET value = 0 WHERE key = 'clean_shutdown'",
        [],
    )
    .unwrap();
    drop(db);
    let server = TestServer::start_in(&data_dir, &[], &addr).await;
    let (mut ann, joined) = server.joined("crashy", "Ann").await;
    assert_eq!(texts(&joined.history), ["stored", "after a clean restart"]);
    ann.chat("after a crash").await;
    let after_crash = ann.expect_chat().await.id;
    assert!(after_crash.0 > next.0 + 1_000, "{after_crash:?}");
    server.stop().await;
}
