//! Integration tests for calls: joining the mesh, the cap, media state, and WebRTC signaling
//! routed only to the addressed member of the same room.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{
    ClientMsg, ErrorCode, IceServer, LeaveReason, MediaState, PeerId, SdpType, ServerMsg, Signal,
};
use support::{Client, TestServer};

const QUIET: Duration = Duration::from_millis(300);
const AV: MediaState = MediaState {
    mic: true,
    camera: true,
    screen: false,
};

fn offer(sdp: &str) -> Signal {
    Signal::Description {
        sdp_type: SdpType::Offer,
        sdp: sdp.into(),
    }
}

/// Joins the call and returns whom to dial; skips the broadcast of our own update.
async fn join_call(client: &mut Client, media: MediaState) -> (Vec<PeerId>, Vec<IceServer>) {
    client.send(&ClientMsg::JoinCall { media }).await;
    let joined = match client
        .recv_until(|m| matches!(m, ServerMsg::CallJoined { .. }))
        .await
    {
        ServerMsg::CallJoined {
            peers, ice_servers, ..
        } => (peers, ice_servers),
        _ => unreachable!(),
    };
    match client.recv().await {
        ServerMsg::PeerUpdated { peer } => assert!(peer.in_call),
        other => panic!("expected peer_updated, got {other:?}"),
    }
    joined
}

async fn expect_updated(client: &mut Client) -> room::protocol::PeerInfo {
    match client.recv().await {
        ServerMsg::PeerUpdated { peer } => peer,
        other => panic!("expected peer_updated, got {other:?}"),
    }
}

#[tokio::test]
async fn joining_the_call_lists_members_to_dial_and_hands_out_ice_servers() {
    let server = TestServer::start(&[
        "--ice-servers",
        "stun:stun.example.org:3478,turn:turn.example.org:3478",
        "--ice-username",
        "room",
        "--ice-credential",
        "secret",
    ])
    .await;
    let (mut ann, ann_joined) = server.joined("call", "Ann").await;
    let (mut bob, _) = server.joined("call", "Bob").await;
    ann.recv().await; // Bob joined the room

    let (to_dial, ice) = join_call(&mut ann, AV).await;
    assert!(to_dial.is_empty());
    assert_eq!(ice.len(), 2);
    assert_eq!(ice[1].username.as_deref(), Some("room"));
    let update = bob
        .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { .. }))
        .await;
    let ServerMsg::PeerUpdated { peer: update } = update else {
        unreachable!()
    };
    assert_eq!(
        (update.id, update.in_call, update.media),
        (ann_joined.you, true, AV)
    );

    let (to_dial, _) = join_call(&mut bob, MediaState::default()).await;
    assert_eq!(to_dial, vec![ann_joined.you]);
    server.stop().await;
}

#[tokio::test]
async fn signals_reach_only_the_addressed_member() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("signals", "Ann").await;
    let (mut bob, bob_joined) = server.joined("signals", "Bob").await;
    let (mut cat, cat_joined) = server.joined("signals", "Cat").await;
    for client in [&mut ann, &mut bob, &mut cat] {
        join_call(client, AV).await;
    }
    // Drain the room and call notices so that only signaling is left to read.
    for client in [&mut ann, &mut bob, &mut cat] {
        client.drain(QUIET).await;
    }

    let ann_id = {
        ann.send(&ClientMsg::Signal {
            to: bob_joined.you,
            signal: offer("v=0 for bob"),
        })
        .await;
        match bob.recv().await {
            ServerMsg::Signal { from, signal } => {
                assert_eq!(signal, offer("v=0 for bob"));
                from
            }
            other => panic!("expected signal, got {other:?}"),
        }
    };
    cat.expect_silence(QUIET).await;

    // Bob answers with a candidate; only Ann hears it, attributed to Bob.
    let candidate = Signal::Candidate {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    bob.send(&ClientMsg::Signal {
        to: ann_id,
        signal: candidate.clone(),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        ServerMsg::Signal {
            from: bob_joined.you,
            signal: candidate
        }
    );
    cat.expect_silence(QUIET).await;
    assert_ne!(cat_joined.you, ann_id);
    server.stop().await;
}

#[tokio::test]
async fn a_request_to_pause_video_reaches_only_its_member_within_the_signaling_budget() {
    let server = TestServer::start(&["--signal-burst", "4", "--signal-per-second", "1"]).await;
    let (mut ann, _) = server.joined("pages", "Ann").await;
    let (mut bob, bob_joined) = server.joined("pages", "Bob").await;
    let (mut cat, _) = server.joined("pages", "Cat").await;
    let (mut eve, eve_joined) = server.joined("elsewhere", "Eve").await;
    for client in [&mut ann, &mut bob, &mut eve] {
        join_call(client, AV).await;
    }
    for client in [&mut ann, &mut bob, &mut cat, &mut eve] {
        client.drain(QUIET).await;
    }
    let pause = |to| ClientMsg::Signal {
        to,
        signal: Signal::Video { wanted: false },
    };

    // Ann's tile of Bob went to another page: Bob alone hears it, from Ann.
    ann.send(&pause(bob_joined.you)).await;
    match bob.recv().await {
        ServerMsg::Signal { signal, .. } => assert_eq!(signal, Signal::Video { wanted: false }),
        other => panic!("expected signal, got {other:?}"),
    }
    cat.expect_silence(QUIET).await;

    // Raw abuse: another room's member, a wish that is not a flag, one from outside the
    // call, a flood.
    ann.send(&pause(eve_joined.you)).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send_raw(&format!(
        r#"{{"type":"signal","to":{},"signal":{{"kind":"video","wanted":"sometimes"}}}}"#,
        bob_joined.you
    ))
    .await;
    ann.expect_error(ErrorCode::BadMessage).await;
    cat.send(&pause(bob_joined.you)).await;
    cat.expect_error(ErrorCode::NotInCall).await;
    for _ in 0..8 {
        ann.send(&pause(bob_joined.you)).await;
    }
    ann.expect_error(ErrorCode::RateLimited).await;
    let relayed = bob.collect(QUIET).await;
    assert!(
        !relayed.is_empty() && relayed.len() < 8,
        "the budget let {} of 8 through",
        relayed.len()
    );
    eve.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_cross_room_targets_are_refused() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("here", "Ann").await;
    let (mut eve, eve_joined) = server.joined("elsewhere", "Eve").await;
    join_call(&mut ann, AV).await;
    join_call(&mut eve, AV).await;

    ann.send(&ClientMsg::Signal {
        to: eve_joined.you,
        signal: offer("sneaky"),
    })
    .await;
    let message = ann.expect_error(ErrorCode::UnknownPeer).await;
    assert!(message.contains(&eve_joined.you.to_string()), "{message}");
    ann.send(&ClientMsg::Signal {
        to: PeerId(999_999),
        signal: offer("nobody"),
    })
    .await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    eve.expect_silence(QUIET).await;

    // Signaling from outside the call, or outside any room, is refused too.
    let (mut chatter, _) = server.joined("here", "Chatter").await;
    chatter
        .send(&ClientMsg::Signal {
            to: PeerId(1),
            signal: offer("x"),
        })
        .await;
    chatter.expect_error(ErrorCode::NotInCall).await;
    let mut stranger = server.client().await;
    stranger.hello().await;
    stranger
        .send(&ClientMsg::Signal {
            to: PeerId(1),
            signal: offer("x"),
        })
        .await;
    stranger.expect_error(ErrorCode::NotJoined).await;
    server.stop().await;
}

#[tokio::test]
async fn media_state_changes_reach_everyone_in_the_room() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("media", "Ann").await;
    let (mut bob, _) = server.joined("media", "Bob").await;
    let (mut chatter, _) = server.joined("media", "Chatter").await;
    join_call(&mut ann, AV).await;
    join_call(&mut bob, AV).await;

    let muted = MediaState {
        mic: false,
        camera: true,
        screen: false,
    };
    for client in [&mut ann, &mut bob, &mut chatter] {
        client.drain(QUIET).await;
    }
    ann.send(&ClientMsg::Media { media: muted }).await;
    for client in [&mut ann, &mut bob, &mut chatter] {
        let peer = client
            .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.media == muted))
            .await;
        let ServerMsg::PeerUpdated { peer } = peer else {
            unreachable!()
        };
        assert_eq!(peer.id, ann_joined.you);
    }
    // Repeating the same state is not news.
    ann.send(&ClientMsg::Media { media: muted }).await;
    bob.expect_silence(QUIET).await;

    // Leaving the call is announced; the seat is free and the chat goes on.
    ann.send(&ClientMsg::LeaveCall).await;
    let peer = expect_updated(&mut bob).await;
    assert!(!peer.in_call);
    ann.chat("still chatting").await;
    bob.recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn the_call_cap_refuses_with_a_reason_and_leaves_chat_open() {
    let server = TestServer::start(&["--max-call-members", "2"]).await;
    let (mut ann, _) = server.joined("capped", "Ann").await;
    let (mut bob, _) = server.joined("capped", "Bob").await;
    let (mut cat, _) = server.joined("capped", "Cat").await;
    join_call(&mut ann, AV).await;
    join_call(&mut bob, AV).await;
    cat.recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.name == "Bob"))
        .await;

    cat.send(&ClientMsg::JoinCall { media: AV }).await;
    let message = cat.expect_error(ErrorCode::CallFull).await;
    assert!(
        message.contains("full (2 people)") && message.contains("chat"),
        "{message}"
    );
    cat.chat("fine, I'll type").await;
    assert_eq!(cat.expect_chat().await.text, "fine, I'll type");

    // When Ann leaves the room, Cat gets her seat.
    ann.close().await;
    cat.recv_until(|m| matches!(m, ServerMsg::PeerLeft { .. }))
        .await;
    let (to_dial, _) = join_call(&mut cat, AV).await;
    assert_eq!(to_dial.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_shown_away_then_leaves() {
    let server = TestServer::start(&[
        "--heartbeat-ms",
        "100",
        "--idle-timeout-ms",
        "400",
        "--resume-grace-secs",
        "1",
    ])
    .await;
    let (mut ann, _) = server.joined("heartbeat", "Ann").await;
    // Bob joins, then never reads again, so he never answers a ping.
    let (_bob, bob_joined) = server.joined("heartbeat", "Bob").await;
    ann.recv().await; // Bob joined
    let started = std::time::Instant::now();
    match ann.recv().await {
        ServerMsg::PeerUpdated { peer } => assert!(peer.away && peer.id == bob_joined.you),
        other => panic!("expected Bob away, got {other:?}"),
    }
    assert_eq!(
        ann.recv().await,
        ServerMsg::PeerLeft {
            peer: bob_joined.you,
            reason: LeaveReason::Left
        }
    );
    // Silence (0.4 s) plus the grace period (1 s), with some slack for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(4));
    // Ann, who reads (and so answers pings), stays.
    ann.chat("still here").await;
    assert_eq!(ann.expect_chat().await.text, "still here");
    server.stop().await;
}

#[tokio::test]
async fn hands_reactions_and_screen_sharing_reach_everyone() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("extras", "Ann").await;
    let (mut bob, bob_joined) = server.joined("extras", "Bob").await;
    join_call(&mut ann, AV).await;
    join_call(&mut bob, AV).await;
    for client in [&mut ann, &mut bob] {
        client.drain(QUIET).await;
    }

    bob.send(&ClientMsg::Hand { raised: true }).await;
    ann.send(&ClientMsg::Hand { raised: true }).await;
    let mut order = Vec::new();
    for _ in 0..2 {
        let ServerMsg::PeerUpdated { peer } = bob
            .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { .. }))
            .await
        else {
            unreachable!()
        };
        order.push((peer.id, peer.hand.expect("raised")));
    }
    assert_eq!(order[0].0, bob_joined.you);
    assert!(order[0].1 < order[1].1, "Bob raised first: {order:?}");

    ann.send(&ClientMsg::React {
        emoji: "🎉".into()
    })
    .await;
    assert_eq!(
        bob.recv_until(|m| matches!(m, ServerMsg::Reaction { .. }))
            .await,
        ServerMsg::Reaction {
            from: ann_joined.you,
            emoji: "🎉".into()
        }
    );
    ann.send(&ClientMsg::React {
        emoji: "💩".into()
    })
    .await;
    ann.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::InvalidReaction,
                ..
            }
        )
    })
    .await;

    let sharing = MediaState { screen: true, ..AV };
    ann.send(&ClientMsg::Media { media: sharing }).await;
    let ServerMsg::PeerUpdated { peer } = bob
        .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.media.screen))
        .await
    else {
        unreachable!()
    };
    assert_eq!(peer.id, ann_joined.you);
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_state_changes_reaches_the_others_only_within_the_budget() {
    // Default budget: 20 at once, 10 per second, for hand, media and call changes together.
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("flood-state", "Ann").await;
    let (mut bob, _) = server.joined("flood-state", "Bob").await;
    ann.drain(QUIET).await;
    let started = std::time::Instant::now();
    for i in 0..1000 {
        ann.send(&ClientMsg::Hand { raised: i % 2 == 0 }).await;
    }
    // Ann's messages are handled in order, so her chat line closes what the flood caused; that
    // it reaches Bob also shows the room is not wedged.
    ann.chat("still here").await;
    let closing =
        |m: &ServerMsg| matches!(m, ServerMsg::Chat { entry } if entry.text == "still here");
    let to_ann = ann.collect_until(closing).await;
    let to_bob = bob.collect_until(closing).await;
    let seconds = started.elapsed().as_secs_f64();
    let updates = to_bob
        .iter()
        .filter(|m| matches!(m, ServerMsg::PeerUpdated { .. }))
        .count();
    let refused = to_ann
        .iter()
        .filter(|m| {
            matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                }
            )
        })
        .count();
    // Bob hears the burst and the refill, not a thousand updates.
    assert!(updates >= 20, "{updates} updates");
    assert!(
        (updates as f64) <= 20.0 + 10.0 * seconds + 1.0,
        "{updates} updates in {seconds:.2} s"
    );
    assert_eq!(refused + updates, 1000);
    server.stop().await;
}

#[tokio::test]
async fn asking_to_join_the_call_again_is_not_broadcast_again() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = server.joined("call-twice", "Ann").await;
    let (mut bob, _) = server.joined("call-twice", "Bob").await;
    ann.drain(QUIET).await;
    join_call(&mut ann, AV).await;
    assert!(expect_updated(&mut bob).await.in_call);
    // The same request again: Ann gets her answer, Bob hears nothing.
    ann.send(&ClientMsg::JoinCall { media: AV }).await;
    assert!(matches!(ann.recv().await, ServerMsg::CallJoined { .. }));
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn watching_the_room_list_twice_on_one_connection_is_refused() {
    let server = TestServer::start(&["--public-room-list"]).await;
    let mut watcher = server.client().await;
    watcher.hello().await;
    watcher.send(&ClientMsg::WatchRooms).await;
    assert!(matches!(watcher.recv().await, ServerMsg::Rooms { .. }));
    watcher.send(&ClientMsg::WatchRooms).await;
    watcher.expect_error(ErrorCode::BadMessage).await;
    watcher.expect_silence(QUIET).await;
    server.stop().await;
}

#[tokio::test]
async fn a_failed_direct_link_is_relayed_once_counted_and_moves_the_call_through_the_server() {
    let server = TestServer::start(&["--signal-burst", "4", "--signal-per-second", "1"]).await;
    let (mut ann, ann_joined) = server.joined("links", "Ann").await;
    let (mut bob, bob_joined) = server.joined("links", "Bob").await;
    let (mut eve, eve_joined) = server.joined("elsewhere", "Eve").await;
    join_call(&mut ann, AV).await;
    join_call(&mut bob, AV).await;
    join_call(&mut eve, AV).await;
    ann.drain(QUIET).await;
    let failed = |peer: PeerId| ClientMsg::LinkFailed {
        peer,
        reason: room::protocol::LinkFailure::NeverConnected,
    };

    // Raw abuse first: another room's member, nobody, oneself, an unknown reason.
    ann.send(&failed(eve_joined.you)).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send(&failed(ann_joined.you)).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send_raw(&format!(
        r#"{{"type":"link_failed","peer":{},"reason":"bored"}}"#,
        bob_joined.you
    ))
    .await;
    ann.expect_error(ErrorCode::BadMessage).await;
    let mut stranger = server.client().await;
    stranger.hello().await;
    stranger.send(&failed(ann_joined.you)).await;
    stranger.expect_error(ErrorCode::NotJoined).await;
    bob.expect_silence(QUIET).await;
    eve.expect_silence(QUIET).await;

    ann.send(&failed(bob_joined.you)).await;
    match bob.recv().await {
        ServerMsg::LinkFailed { peer, .. } => assert_eq!(peer, ann_joined.you),
        other => panic!("expected link_failed, got {other:?}"),
    }
    for client in [&mut ann, &mut bob] {
        let mode = client
            .recv_until(|m| matches!(m, ServerMsg::CallMode { .. }))
            .await;
        assert_eq!(
            mode,
            ServerMsg::CallMode {
                mode: room::protocol::CallMode::Sfu
            }
        );
    }
    // Bob's report of the same link, and a flood of them, reach nobody; the flood meets the
    // signalling budget.
    for _ in 0..8 {
        bob.send(&failed(ann_joined.you)).await;
    }
    bob.expect_error(ErrorCode::RateLimited).await;
    ann.expect_silence(QUIET).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("room_call_links_failed_total{reason=\"never_connected\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn recording_is_announced_to_everyone_only_from_the_call_and_ends_with_the_connection() {
    let server = TestServer::start(&["--state-burst", "6", "--state-per-second", "1"]).await;
    let (mut ann, joined) = server.joined("rec", "Ann").await;
    let (mut bob, _) = server.joined("rec", "Bob").await;
    ann.recv().await;

    // Outside the call there is nothing to record.
    ann.send(&ClientMsg::Recording { on: true }).await;
    ann.expect_error(ErrorCode::NotInCall).await;
    bob.expect_silence(QUIET).await;

    join_call(&mut ann, AV).await;
    assert!(expect_updated(&mut bob).await.in_call);
    ann.send(&ClientMsg::Recording { on: true }).await;
    let seen = expect_updated(&mut bob).await;
    assert!(seen.recording && seen.id == joined.you);
    assert!(expect_updated(&mut ann).await.recording);
    // Saying it again tells nobody anything.
    ann.send(&ClientMsg::Recording { on: true }).await;
    bob.expect_silence(QUIET).await;

    // A malformed or oversized flag is a bad message, not a recording.
    ann.send_raw(r#"{"type":"recording","on":"yes please"}"#)
        .await;
    ann.expect_error(ErrorCode::BadMessage).await;

    // Flipping it in a loop spends the state budget (shared with hand, media and call).
    let mut limited = false;
    let mut recording_now = true;
    for i in 0..10 {
        ann.send(&ClientMsg::Recording { on: i % 2 == 1 }).await;
    }
    for _ in 0..10 {
        match ann.recv().await {
            ServerMsg::PeerUpdated { peer } => recording_now = peer.recording,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited, "ten flips in a moment are rate limited");
    while bob.try_recv().await.is_some() {}

    // The recording page going away ends the recording for everyone.
    if !recording_now {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        ann.send(&ClientMsg::Recording { on: true }).await;
        bob.recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.recording))
            .await;
    }
    drop(ann);
    let gone = bob
        .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.away))
        .await;
    match gone {
        ServerMsg::PeerUpdated { peer } => assert!(!peer.recording),
        _ => unreachable!(),
    }
    server.stop().await;
}
