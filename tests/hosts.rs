//! Hosts and who gets in, over real WebSockets: every host action from someone who is not a
//! host is refused and changes nothing, a removed person stays out whatever name or token
//! they bring, a locked meeting keeps newcomers out but not its host, and ending a meeting
//! closes every connection for good.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{
    close_code, ClientMsg, Dismissal, ErrorCode, LeaveReason, MeetingRules, Moderation, PeerId,
    Role, ServerMsg, TrackSource,
};
use support::{browser_join_msg, resuming_join_msg, Client, Ending, TestServer};

const QUIET: Duration = Duration::from_millis(300);
/// Microphone and camera on.
const ON: room::protocol::MediaState = room::protocol::MediaState {
    mic: true,
    camera: true,
    screen: false,
};

/// A client that said hello and joined `room` as `name` from browser `browser`.
async fn joined_from(
    server: &TestServer,
    room: &str,
    name: &str,
    browser: &str,
) -> (Client, support::Joined) {
    let mut client = server.client().await;
    client.hello().await;
    let joined = client
        .join_with(browser_join_msg(room, name, browser, None))
        .await;
    (client, joined)
}

fn every_host_action(target: PeerId) -> Vec<ClientMsg> {
    vec![
        ClientMsg::SetRole {
            peer: target,
            role: Role::Cohost,
        },
        ClientMsg::SetRole {
            peer: target,
            role: Role::Host,
        },
        ClientMsg::Mute {
            peer: target,
            source: TrackSource::Microphone,
        },
        ClientMsg::MuteAll,
        ClientMsg::AllowUnmute { peer: target },
        ClientMsg::Remove { peer: target },
        ClientMsg::AllowBack { peer: target },
        ClientMsg::SetRules {
            rules: MeetingRules {
                locked: true,
                only_hosts_unmute: true,
                waiting_room: false,
                password: false,
                spotlight: None,
            },
        },
        ClientMsg::EndMeeting,
        ClientMsg::Admit { peer: target },
        ClientMsg::AdmitAll,
        ClientMsg::Deny { peer: target },
    ]
}

#[tokio::test]
async fn the_first_one_in_is_host_and_only_the_host_holds_the_key() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = joined_from(&server, "keys", "Ann", "b-ann").await;
    assert_eq!(ann_joined.peers[0].role, Role::Host);
    let key = ann_joined.host_key.expect("the host gets the key");
    assert_eq!(key.len(), 32);
    let (_bob, bob_joined) = joined_from(&server, "keys", "Bob", "b-bob").await;
    assert_eq!(bob_joined.host_key, None);
    assert_eq!(bob_joined.peers[0].role, Role::Host);
    assert_eq!(bob_joined.peers[1].role, Role::Member);
    ann.recv().await; // Bob's arrival
    server.stop().await;
}

#[tokio::test]
async fn host_actions_from_a_member_are_forbidden_and_change_nothing() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = joined_from(&server, "rules", "Ann", "b-ann").await;
    let (mut bob, _) = joined_from(&server, "rules", "Bob", "b-bob").await;
    let (mut cy, _) = joined_from(&server, "rules", "Cy", "b-cy").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    let host = ann_joined.you;
    for action in every_host_action(host) {
        let kind = action.kind();
        cy.send(&action).await;
        match cy.recv().await {
            ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::Forbidden, "{kind}"),
            other => panic!("{kind}: expected forbidden, got {other:?}"),
        }
    }
    // Nobody heard of anything, and the meeting is as it was: still open to newcomers.
    ann.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
    let (_dee, dee_joined) = joined_from(&server, "rules", "Dee", "b-dee").await;
    assert_eq!(dee_joined.peers.len(), 4);
    assert_eq!(dee_joined.peers[0].role, Role::Host);
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_host_actions_meets_the_budget_even_when_refused() {
    let server = TestServer::start(&[]).await;
    let (_ann, _) = joined_from(&server, "flood", "Ann", "b-ann").await;
    let (mut bob, _) = joined_from(&server, "flood", "Bob", "b-bob").await;
    for _ in 0..40 {
        bob.send(&ClientMsg::MuteAll).await;
    }
    let replies = bob.collect(QUIET).await;
    let codes: Vec<ErrorCode> = replies
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(codes.len(), 40);
    assert!(codes[..20].iter().all(|c| *c == ErrorCode::Forbidden));
    assert!(codes.contains(&ErrorCode::RateLimited), "{codes:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_muted_member_cannot_unmute_under_the_rule_until_allowed() {
    let server = TestServer::start(&["--media", "mesh"]).await;
    let (mut ann, ann_joined) = joined_from(&server, "mute", "Ann", "b-ann").await;
    let (mut bob, bob_joined) = joined_from(&server, "mute", "Bob", "b-bob").await;
    bob.send(&ClientMsg::JoinCall { media: ON }).await;
    bob.drain(QUIET).await;
    ann.drain(QUIET).await;
    ann.send(&ClientMsg::SetRules {
        rules: MeetingRules {
            locked: false,
            only_hosts_unmute: true,
            waiting_room: false,
            password: false,
            spotlight: None,
        },
    })
    .await;
    ann.send(&ClientMsg::Mute {
        peer: bob_joined.you,
        source: TrackSource::Microphone,
    })
    .await;
    let told = bob.collect(QUIET).await;
    assert!(told.contains(&ServerMsg::Moderated {
        by: ann_joined.you,
        action: Moderation::Muted {
            source: TrackSource::Microphone
        }
    }));
    assert!(told.iter().any(|m| matches!(m,
        ServerMsg::PeerUpdated { peer } if peer.id == bob_joined.you && !peer.media.mic && peer.media.camera)));
    // Turning the microphone back on is refused; the camera can still go off and on.
    bob.send(&ClientMsg::Media { media: ON }).await;
    let refusal = bob.expect_error(ErrorCode::Forbidden).await;
    assert!(refusal.contains("microphone"), "{refusal}");
    ann.drain(QUIET).await;
    ann.send(&ClientMsg::AllowUnmute {
        peer: bob_joined.you,
    })
    .await;
    assert!(matches!(
        bob.recv().await,
        ServerMsg::Moderated {
            action: Moderation::UnmuteAllowed,
            ..
        }
    ));
    bob.send(&ClientMsg::Media { media: ON }).await;
    assert!(matches!(bob.recv().await,
        ServerMsg::PeerUpdated { peer } if peer.media.mic));
    server.stop().await;
}

#[tokio::test]
async fn a_removed_person_stays_out_under_any_name_and_with_their_token() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = joined_from(&server, "out", "Ann", "b-ann").await;
    let (mut bob, bob_joined) = joined_from(&server, "out", "Bob", "b-bob").await;
    let (mut cy, _) = joined_from(&server, "out", "Cy", "b-cy").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    ann.send(&ClientMsg::Remove {
        peer: bob_joined.you,
    })
    .await;
    match bob.recv().await {
        ServerMsg::Dismissed {
            reason, by_name, ..
        } => {
            assert_eq!(reason, Dismissal::Removed);
            assert_eq!(by_name, "Ann");
        }
        other => panic!("expected dismissed, got {other:?}"),
    }
    assert_eq!(
        bob.ending().await,
        Ending::Closed(close_code::REMOVED, "removed by a host".into())
    );
    assert!(matches!(cy.recv().await,
        ServerMsg::PeerLeft { peer, reason: LeaveReason::Removed } if peer == bob_joined.you));
    let list = ann
        .recv_until(|m| matches!(m, ServerMsg::RemovedList { .. }))
        .await;
    let ServerMsg::RemovedList { people } = list else {
        unreachable!()
    };
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].name, "Bob");

    // Another name from the same browser, then the old resume token: both refused.
    let mut again = server.client().await;
    again.hello().await;
    again
        .send(&browser_join_msg("out", "Robert", "b-bob", None))
        .await;
    again.expect_error(ErrorCode::Removed).await;
    let mut token = server.client().await;
    token.hello().await;
    let mut with_token =
        resuming_join_msg("out", "Bobby", Some(bob_joined.resume_token.clone()), None);
    if let ClientMsg::Join { browser, .. } = &mut with_token {
        *browser = Some("b-bob".into());
    }
    token.send(&with_token).await;
    token.expect_error(ErrorCode::Removed).await;
    // A client naming no browser, from the removed person's address, is kept out too.
    let mut bare = server.client().await;
    bare.hello().await;
    bare.send(&support::join_msg("out", "Rob")).await;
    bare.expect_error(ErrorCode::Removed).await;
    cy.expect_silence(QUIET).await;

    // Let back in: the same browser enters again.
    ann.send(&ClientMsg::AllowBack {
        peer: bob_joined.you,
    })
    .await;
    assert!(matches!(ann.recv().await,
        ServerMsg::RemovedList { people } if people.is_empty()));
    let (_bob, back) = joined_from(&server, "out", "Bob", "b-bob").await;
    assert_eq!(back.peers.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_co_host_cannot_act_on_the_host_and_only_the_host_gives_roles() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = joined_from(&server, "roles", "Ann", "b-ann").await;
    let (mut bob, bob_joined) = joined_from(&server, "roles", "Bob", "b-bob").await;
    let (mut cy, cy_joined) = joined_from(&server, "roles", "Cy", "b-cy").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    ann.send(&ClientMsg::SetRole {
        peer: bob_joined.you,
        role: Role::Cohost,
    })
    .await;
    assert!(matches!(cy.recv().await,
        ServerMsg::PeerUpdated { peer } if peer.id == bob_joined.you && peer.role == Role::Cohost));
    bob.drain(QUIET).await;
    for action in [
        ClientMsg::Remove {
            peer: ann_joined.you,
        },
        ClientMsg::Mute {
            peer: ann_joined.you,
            source: TrackSource::Camera,
        },
        ClientMsg::SetRole {
            peer: cy_joined.you,
            role: Role::Cohost,
        },
    ] {
        bob.send(&action).await;
        bob.expect_error(ErrorCode::Forbidden).await;
    }
    // A co-host may lock; everyone hears it, and a newcomer is kept out.
    bob.send(&ClientMsg::SetRules {
        rules: MeetingRules {
            locked: true,
            only_hosts_unmute: false,
            waiting_room: false,
            password: false,
            spotlight: None,
        },
    })
    .await;
    assert!(matches!(cy.recv().await, ServerMsg::Rules { rules } if rules.locked));
    let mut late = server.client().await;
    late.hello().await;
    late.send(&browser_join_msg("roles", "Dee", "b-dee", None))
        .await;
    late.expect_error(ErrorCode::Locked).await;
    server.stop().await;
}

#[tokio::test]
async fn the_host_key_opens_a_locked_meeting_and_the_role_passes_on_when_the_host_leaves() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = joined_from(&server, "pass", "Ann", "b-ann").await;
    let key = ann_joined.host_key.clone().unwrap();
    let (mut bob, bob_joined) = joined_from(&server, "pass", "Bob", "b-bob").await;
    let (mut cy, cy_joined) = joined_from(&server, "pass", "Cy", "b-cy").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    ann.send(&ClientMsg::SetRole {
        peer: cy_joined.you,
        role: Role::Cohost,
    })
    .await;
    ann.send(&ClientMsg::SetRules {
        rules: MeetingRules {
            locked: true,
            only_hosts_unmute: false,
            waiting_room: false,
            password: false,
            spotlight: None,
        },
    })
    .await;
    bob.drain(QUIET).await;
    cy.drain(QUIET).await;
    // The host leaves for good: the co-host (not Bob, who came earlier) becomes host and
    // gets a key of its own.
    ann.close().await;
    let msgs = cy.collect(QUIET).await;
    assert!(msgs.iter().any(|m| matches!(m,
        ServerMsg::PeerUpdated { peer } if peer.id == cy_joined.you && peer.role == Role::Host)));
    let new_key = msgs
        .iter()
        .find_map(|m| match m {
            ServerMsg::HostKey { key } => Some(key.clone()),
            _ => None,
        })
        .expect("the new host gets a key");
    assert_ne!(new_key, key);
    assert!(bob
        .collect(QUIET)
        .await
        .iter()
        .all(|m| !matches!(m, ServerMsg::HostKey { .. })));
    // Ann's old key opens nothing any more: the meeting is locked to her.
    let mut ann_again = server.client().await;
    ann_again.hello().await;
    ann_again
        .send(&browser_join_msg("pass", "Ann", "b-ann", Some(key)))
        .await;
    ann_again.expect_error(ErrorCode::Locked).await;
    // Cy's key does, past the lock, as host; Cy's own connection becomes a co-host.
    let mut holder = server.client().await;
    holder.hello().await;
    let joined = holder
        .join_with(browser_join_msg("pass", "Cy2", "b-cy2", Some(new_key)))
        .await;
    let me = joined.peers.iter().find(|p| p.id == joined.you).unwrap();
    assert_eq!(me.role, Role::Host);
    let cy_now = joined.peers.iter().find(|p| p.id == cy_joined.you).unwrap();
    assert_eq!(cy_now.role, Role::Cohost);
    assert!(joined
        .peers
        .iter()
        .all(|p| p.id != bob_joined.you || p.role == Role::Member));
    server.stop().await;
}

#[tokio::test]
async fn ending_the_meeting_closes_every_connection_for_good() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = joined_from(&server, "end", "Ann", "b-ann").await;
    let (mut bob, _) = joined_from(&server, "end", "Bob", "b-bob").await;
    ann.drain(QUIET).await;
    ann.send(&ClientMsg::EndMeeting).await;
    for client in [&mut ann, &mut bob] {
        let msg = client
            .recv_until(|m| matches!(m, ServerMsg::Dismissed { .. }))
            .await;
        assert!(matches!(
            msg,
            ServerMsg::Dismissed {
                reason: Dismissal::MeetingEnded,
                ..
            }
        ));
        assert_eq!(
            client.ending().await,
            Ending::Closed(close_code::MEETING_ENDED, "the meeting ended".into())
        );
    }
    // The room is gone: whoever comes next starts a new meeting, as its host.
    let (_dee, joined) = joined_from(&server, "end", "Dee", "b-dee").await;
    assert_eq!(joined.peers.len(), 1);
    assert_eq!(joined.peers[0].role, Role::Host);
    server.stop().await;
}

#[tokio::test]
async fn oversized_keys_and_unknown_targets_are_refused() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = joined_from(&server, "bad", "Ann", "b-ann").await;
    let mut long = server.client().await;
    long.hello().await;
    long.send(&browser_join_msg("bad", "Eve", &"x".repeat(65), None))
        .await;
    long.expect_error(ErrorCode::BadMessage).await;
    ann.send(&ClientMsg::Remove { peer: PeerId(999) }).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send_raw(r#"{"type":"set_role","peer":1,"role":"emperor"}"#)
        .await;
    ann.expect_error(ErrorCode::BadMessage).await;
    server.stop().await;
}

/// Turns the waiting room on (or off) from the host's connection, leaving the rest as is.
async fn set_waiting_room(host: &mut Client, on: bool, locked: bool) {
    host.send(&ClientMsg::SetRules {
        rules: MeetingRules {
            locked,
            only_hosts_unmute: false,
            waiting_room: on,
            password: false,
            spotlight: None,
        },
    })
    .await;
}

#[tokio::test]
async fn someone_waiting_gets_nothing_of_the_room_until_let_in() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = joined_from(&server, "lobby", "Ann", "b-ann").await;
    ann.chat("before anyone waits").await;
    ann.expect_chat().await;
    set_waiting_room(&mut ann, true, false).await;
    ann.drain(QUIET).await;

    let mut bob = server.client().await;
    bob.hello().await;
    bob.send(&browser_join_msg("lobby", "Bob", "b-bob", None))
        .await;
    assert_eq!(bob.recv().await, ServerMsg::Waiting);
    let bob_id = match ann.recv().await {
        ServerMsg::WaitingList { people } => {
            assert_eq!(people.len(), 1);
            assert_eq!(people[0].name, "Bob");
            people[0].id
        }
        other => panic!("expected waiting_list, got {other:?}"),
    };
    // While he waits: no chat, no names, no history, and what he sends does nothing.
    ann.chat("secret plans").await;
    ann.expect_chat().await;
    bob.chat("let me in").await;
    bob.send(&ClientMsg::Remove { peer: bob_id }).await;
    bob.send(&ClientMsg::LoadHistory {
        before: room::protocol::MessageId(9),
    })
    .await;
    bob.expect_silence(QUIET).await;
    ann.expect_silence(QUIET).await;

    ann.send(&ClientMsg::Admit { peer: bob_id }).await;
    match bob.recv().await {
        ServerMsg::Joined { you, history, .. } => {
            assert_eq!(you, bob_id);
            let texts: Vec<&str> = history.iter().map(|e| e.text.as_str()).collect();
            assert_eq!(texts, ["before anyone waits", "secret plans"]);
        }
        other => panic!("expected joined, got {other:?}"),
    }
    let told = ann.collect(QUIET).await;
    assert!(told.contains(&ServerMsg::WaitingList { people: Vec::new() }));
    assert!(told.iter().any(|m| matches!(m,
        ServerMsg::PeersJoined { peers } if peers[0].id == bob_id)));
    bob.chat("thanks").await;
    assert_eq!(ann.expect_chat().await.text, "thanks");
    server.stop().await;
}

#[tokio::test]
async fn a_denied_or_locked_out_person_is_told_and_closed() {
    let server = TestServer::start(&[]).await;
    let (mut ann, _) = joined_from(&server, "deny", "Ann", "b-ann").await;
    let (mut bob, bob_joined) = joined_from(&server, "deny", "Bob", "b-bob").await;
    ann.drain(QUIET).await;
    set_waiting_room(&mut ann, true, false).await;
    bob.drain(QUIET).await;
    ann.drain(QUIET).await;
    let mut cy = server.client().await;
    cy.hello().await;
    cy.send(&browser_join_msg("deny", "Cy", "b-cy", None)).await;
    assert_eq!(cy.recv().await, ServerMsg::Waiting);
    let mut dee = server.client().await;
    dee.hello().await;
    dee.send(&browser_join_msg("deny", "Dee", "b-dee", None))
        .await;
    assert_eq!(dee.recv().await, ServerMsg::Waiting);
    let waiting = ann.collect(QUIET).await;
    let ServerMsg::WaitingList { people } = waiting.last().unwrap() else {
        panic!("expected waiting_list, got {waiting:?}")
    };
    assert_eq!(people.len(), 2);
    // A member who is not a host cannot let anyone in.
    bob.send(&ClientMsg::Admit { peer: people[0].id }).await;
    bob.expect_error(ErrorCode::Forbidden).await;

    ann.send(&ClientMsg::Deny { peer: people[0].id }).await;
    assert!(matches!(cy.recv().await,
        ServerMsg::Dismissed { reason: Dismissal::Denied, by_name, .. } if by_name == "Ann"));
    assert_eq!(
        cy.ending().await,
        Ending::Closed(close_code::DENIED, "not let in by a host".into())
    );
    // Locking sends the rest of the line away too.
    set_waiting_room(&mut ann, true, true).await;
    assert!(matches!(
        dee.recv().await,
        ServerMsg::Dismissed {
            reason: Dismissal::Locked,
            ..
        }
    ));
    assert_eq!(
        dee.ending().await,
        Ending::Closed(
            close_code::DENIED,
            "the meeting was locked while waiting".into()
        )
    );
    // Bob, a member, only heard the rules change.
    let heard = bob.collect(QUIET).await;
    assert!(
        heard.iter().all(|m| matches!(m, ServerMsg::Rules { .. })),
        "{heard:?}"
    );
    assert!(bob_joined.peers.len() == 2);
    server.stop().await;
}

#[tokio::test]
async fn turning_the_waiting_room_off_lets_everyone_in_and_the_host_key_skips_it() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = joined_from(&server, "open", "Ann", "b-ann").await;
    let key = ann_joined.host_key.unwrap();
    set_waiting_room(&mut ann, true, false).await;
    ann.drain(QUIET).await;
    let mut bob = server.client().await;
    bob.hello().await;
    bob.send(&browser_join_msg("open", "Bob", "b-bob", None))
        .await;
    assert_eq!(bob.recv().await, ServerMsg::Waiting);
    // The host's key enters at once, and the new host connection sees who waits.
    let mut ann2 = server.client().await;
    ann2.hello().await;
    ann2.send(&browser_join_msg(
        "open",
        "Ann on phone",
        "b-ann2",
        Some(key),
    ))
    .await;
    match ann2.recv().await {
        ServerMsg::Joined { waiting, .. } => {
            assert_eq!(waiting.len(), 1);
            assert_eq!(waiting[0].name, "Bob");
        }
        other => panic!("expected joined, got {other:?}"),
    }
    ann.drain(QUIET).await;
    set_waiting_room(&mut ann, false, false).await;
    assert!(matches!(bob.recv().await, ServerMsg::Joined { .. }));
    server.stop().await;
}

#[tokio::test]
async fn only_a_host_puts_a_call_member_in_the_spotlight_and_it_ends_when_they_leave_the_call() {
    let server = TestServer::start(&[]).await;
    let (mut ann, ann_joined) = server.joined("stage", "Ann").await;
    let (mut bob, bob_joined) = server.joined("stage", "Bob").await;
    let (mut cy, _) = server.joined("stage", "Cy").await;
    let spotlight = |peer: PeerId| ClientMsg::SetRules {
        rules: MeetingRules {
            spotlight: Some(peer),
            ..MeetingRules::default()
        },
    };
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;

    // Not a host: refused, and nobody hears of it.
    cy.send(&spotlight(bob_joined.you)).await;
    cy.expect_error(ErrorCode::Forbidden).await;
    // Someone not in the call, or nobody at all, cannot be in the spotlight.
    ann.send(&spotlight(bob_joined.you)).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send(&spotlight(PeerId(424242))).await;
    ann.expect_error(ErrorCode::UnknownPeer).await;
    ann.send_raw(r#"{"type":"set_rules","rules":{"spotlight":"everyone"}}"#)
        .await;
    ann.expect_error(ErrorCode::BadMessage).await;
    bob.expect_silence(QUIET).await;

    bob.send(&ClientMsg::JoinCall { media: ON }).await;
    bob.drain(QUIET).await;
    cy.drain(QUIET).await;
    ann.drain(QUIET).await;
    ann.send(&spotlight(bob_joined.you)).await;
    for client in [&mut ann, &mut bob, &mut cy] {
        let told = client
            .recv_until(|m| matches!(m, ServerMsg::Rules { .. }))
            .await;
        assert!(
            matches!(told, ServerMsg::Rules { rules } if rules.spotlight == Some(bob_joined.you))
        );
    }
    // Leaving the call takes them out of the spotlight, for everyone.
    bob.send(&ClientMsg::LeaveCall).await;
    for client in [&mut ann, &mut cy] {
        let told = client
            .recv_until(|m| matches!(m, ServerMsg::Rules { .. }))
            .await;
        assert!(matches!(told, ServerMsg::Rules { rules } if rules.spotlight.is_none()));
    }
    let _ = ann_joined;
    server.stop().await;
}
