//! Breakout rooms over real WebSockets: a host opens rooms, people move on their own
//! connection (no new socket), each room's chat stays in it, broadcasts reach every room,
//! closing brings everyone back after the countdown, and every breakout message from someone
//! who may not send it is refused without effect.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{close_code, BreakoutRoom, ClientMsg, ErrorCode, PeerId, ServerMsg};
use support::{Client, Ending, Joined, TestServer};

const QUIET: Duration = Duration::from_millis(300);

async fn open(host: &mut Client, rooms: Vec<Vec<PeerId>>) {
    host.send(&ClientMsg::OpenBreakouts {
        rooms: rooms
            .into_iter()
            .enumerate()
            .map(|(i, members)| BreakoutRoom {
                name: format!("Room {}", i + 1),
                members,
            })
            .collect(),
        minutes: None,
    })
    .await;
}

/// Sends `enter_breakout` and reads up to the `joined` of that room.
async fn enter(client: &mut Client, room: u8) -> ServerMsg {
    client.send(&ClientMsg::EnterBreakout { room }).await;
    client
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await
}

fn joined_parts(msg: &ServerMsg) -> (Option<u8>, Vec<String>, Vec<String>) {
    let ServerMsg::Joined {
        breakout,
        peers,
        history,
        ..
    } = msg
    else {
        panic!("not joined: {msg:?}");
    };
    (
        *breakout,
        peers.iter().map(|p| p.name.clone()).collect(),
        history.iter().map(|e| e.text.clone()).collect(),
    )
}

async fn meeting(server: &TestServer, names: &[&str]) -> Vec<(Client, Joined)> {
    let mut people = Vec::new();
    for name in names {
        people.push(server.joined("plenary", name).await);
    }
    for (client, _) in &mut people {
        client.drain(QUIET).await;
    }
    people
}

#[tokio::test]
async fn people_move_into_their_rooms_and_each_rooms_chat_stays_in_it() {
    let server = TestServer::start(&["--breakout-countdown-secs", "1"]).await;
    let mut people = meeting(&server, &["Ann", "Bob", "Cy", "Dee"]).await;
    let ids: Vec<PeerId> = people.iter().map(|(_, j)| j.you).collect();
    let [(ann, _), (bob, _), (cy, _), (dee, _)] = &mut people[..] else {
        unreachable!()
    };
    ann.chat("before the split").await;
    for c in [&mut *ann, &mut *bob, &mut *cy, &mut *dee] {
        c.drain(QUIET).await;
    }
    open(ann, vec![vec![ids[1], ids[2]], vec![ids[3]]]).await;
    for c in [&mut *bob, &mut *cy, &mut *dee] {
        c.recv_until(|m| matches!(m, ServerMsg::BreakoutsChanged { breakouts: Some(_) }))
            .await;
    }
    // Bob may go only to his own room.
    bob.send(&ClientMsg::EnterBreakout { room: 1 }).await;
    bob.recv_error(ErrorCode::Forbidden).await;
    let first = enter(bob, 0).await;
    let (breakout, peers, history) = joined_parts(&first);
    assert_eq!(breakout, Some(0));
    assert_eq!(peers, ["Bob"]);
    assert!(history.is_empty(), "the main room's chat stays there");
    let (_, peers, _) = joined_parts(&enter(cy, 0).await);
    assert_eq!(peers, ["Bob", "Cy"]);
    enter(dee, 1).await;
    // The main room sees where they are.
    let seen = ann
        .recv_until(|m| matches!(m, ServerMsg::PeerUpdated { peer } if peer.name == "Dee"))
        .await;
    assert!(matches!(seen, ServerMsg::PeerUpdated { peer } if peer.breakout == Some(1)));

    bob.chat("only for room one").await;
    cy.recv_until(|m| matches!(m, ServerMsg::Chat { entry } if entry.text == "only for room one"))
        .await;
    let elsewhere = dee.collect(QUIET).await;
    assert!(!elsewhere
        .iter()
        .any(|m| matches!(m, ServerMsg::Chat { .. })));
    let main = ann.collect(QUIET).await;
    assert!(!main.iter().any(|m| matches!(m, ServerMsg::Chat { .. })));

    // A broadcast reaches every room; only hosts may send one.
    ann.send(&ClientMsg::BroadcastToBreakouts {
        text: "five minutes left".into(),
    })
    .await;
    for c in [&mut *bob, &mut *cy, &mut *dee] {
        c.recv_until(
            |m| matches!(m, ServerMsg::Broadcast { text, .. } if text == "five minutes left"),
        )
        .await;
    }
    bob.send(&ClientMsg::BroadcastToBreakouts { text: "hi".into() })
        .await;
    bob.recv_error(ErrorCode::Forbidden).await;

    // Bob comes back on his own, greeted by the main room with its chat.
    bob.send(&ClientMsg::ReturnToMain).await;
    let back = bob
        .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await;
    let (breakout, peers, history) = joined_parts(&back);
    assert_eq!(breakout, None);
    assert_eq!(peers.len(), 4);
    assert_eq!(history, ["before the split"]);
    cy.recv_until(|m| matches!(m, ServerMsg::PeerLeft { .. }))
        .await;

    // Closing: a countdown, then everyone is back in the main room.
    ann.send(&ClientMsg::CloseBreakouts).await;
    let closing = cy
        .recv_until(|m| matches!(m, ServerMsg::BreakoutsChanged { .. }))
        .await;
    assert!(matches!(
        closing,
        ServerMsg::BreakoutsChanged { breakouts: Some(b) } if b.closing_at.is_some()
    ));
    for c in [&mut *cy, &mut *dee] {
        let back = c
            .recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await;
        assert_eq!(joined_parts(&back).0, None);
    }
    ann.recv_until(|m| matches!(m, ServerMsg::BreakoutsChanged { breakouts: None }))
        .await;
    // Back in one room: chat reaches everyone again.
    dee.chat("all together").await;
    for c in [&mut *ann, &mut *bob, &mut *cy] {
        c.recv_until(|m| matches!(m, ServerMsg::Chat { entry } if entry.text == "all together"))
            .await;
    }
    server.stop().await;
}

#[tokio::test]
async fn breakout_messages_from_anyone_who_may_not_are_refused_without_effect() {
    let server = TestServer::start(&[]).await;
    let mut people = meeting(&server, &["Ann", "Bob"]).await;
    let ids: Vec<PeerId> = people.iter().map(|(_, j)| j.you).collect();
    let [(ann, _), (bob, _)] = &mut people[..] else {
        unreachable!()
    };
    // A member cannot open, assign, broadcast or close.
    let plan = vec![BreakoutRoom {
        name: "Mine".into(),
        members: vec![ids[1]],
    }];
    for msg in [
        ClientMsg::OpenBreakouts {
            rooms: plan.clone(),
            minutes: None,
        },
        ClientMsg::AssignBreakout {
            peer: ids[0],
            room: Some(0),
        },
        ClientMsg::BroadcastToBreakouts { text: "x".into() },
        ClientMsg::CloseBreakouts,
    ] {
        bob.send(&msg).await;
        bob.expect_error(ErrorCode::Forbidden).await;
    }
    // Nothing is open: nowhere to go, nothing to return from.
    bob.send(&ClientMsg::EnterBreakout { room: 0 }).await;
    bob.expect_error(ErrorCode::BadMessage).await;
    bob.send(&ClientMsg::ReturnToMain).await;
    bob.expect_error(ErrorCode::BadMessage).await;
    // Bad plans: too many rooms, unnamed rooms, strangers, someone twice, silly timers.
    let room = |name: &str, members: Vec<PeerId>| BreakoutRoom {
        name: name.into(),
        members,
    };
    for (rooms, minutes, code) in [
        (vec![room("R", Vec::new()); 21], None, ErrorCode::BadMessage),
        (vec![room("  ", Vec::new())], None, ErrorCode::BadMessage),
        (
            vec![room(&"n".repeat(33), Vec::new())],
            None,
            ErrorCode::BadMessage,
        ),
        (
            vec![room("R", vec![PeerId(424242)])],
            None,
            ErrorCode::UnknownPeer,
        ),
        (
            vec![room("R", vec![ids[1]]), room("S", vec![ids[1]])],
            None,
            ErrorCode::BadMessage,
        ),
        (vec![room("R", Vec::new())], Some(0), ErrorCode::BadMessage),
        (
            vec![room("R", Vec::new())],
            Some(100_000),
            ErrorCode::BadMessage,
        ),
    ] {
        ann.send(&ClientMsg::OpenBreakouts { rooms, minutes }).await;
        ann.recv_error(code).await;
    }
    bob.expect_silence(QUIET).await;
    // Opened, a room number that does not exist, and a flood of moves, meet their limits.
    open(ann, vec![vec![ids[1]]]).await;
    bob.recv_until(|m| matches!(m, ServerMsg::BreakoutsChanged { .. }))
        .await;
    bob.send(&ClientMsg::EnterBreakout { room: 9 }).await;
    bob.expect_error(ErrorCode::BadMessage).await;
    let mut limited = false;
    for _ in 0..30 {
        bob.send(&ClientMsg::EnterBreakout { room: 0 }).await;
        bob.send(&ClientMsg::ReturnToMain).await;
    }
    for msg in bob.collect(QUIET).await {
        limited |= matches!(
            msg,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            }
        );
    }
    assert!(limited, "moving back and forth is rate-limited");
    server.stop().await;
}

#[tokio::test]
async fn a_host_removes_someone_in_a_breakout_room_and_a_dropped_one_comes_back_to_main() {
    let server = TestServer::start(&[]).await;
    let mut people = meeting(&server, &["Ann", "Bob", "Cy"]).await;
    let ids: Vec<PeerId> = people.iter().map(|(_, j)| j.you).collect();
    let cy_token = people[2].1.resume_token.clone();
    let [(ann, _), (bob, _), (cy, _)] = &mut people[..] else {
        unreachable!()
    };
    open(ann, vec![vec![ids[1], ids[2]]]).await;
    enter(bob, 0).await;
    enter(cy, 0).await;
    ann.send(&ClientMsg::Remove { peer: ids[1] }).await;
    assert!(matches!(
        bob.ending().await,
        Ending::Closed(code, _) if code == close_code::REMOVED
    ));
    cy.recv_until(|m| matches!(m, ServerMsg::PeerLeft { .. }))
        .await;
    // Cy's network drops in the breakout room; she resumes, in the main room.
    let (cy, _) = &mut people.remove(2);
    drop(std::mem::replace(cy, server.client().await));
    cy.hello().await;
    let back = cy
        .join_with(support::resuming_join_msg(
            "plenary",
            "Cy",
            Some(cy_token),
            None,
        ))
        .await;
    assert_eq!(back.you, ids[2]);
    assert_eq!(back.peers.len(), 2, "Ann and Cy; Bob was removed");
    server.stop().await;
}
