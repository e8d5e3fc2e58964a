//! Several nodes sharing rooms through a real Redis (`--redis-url`): one meeting across nodes,
//! in one order; leases that move rooms between nodes; Redis going away and coming back.

#![cfg(feature = "ssr")]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use room::protocol::{ErrorCode, ServerMsg};
use support::{RedisServer, TestServer, WAIT};

/// A node of a cluster on `redis`, named `node`, once its connections to Redis are up.
async fn node(redis: &RedisServer, node: &str, extra: &[&str]) -> TestServer {
    let url = redis.url();
    let mut flags = vec!["--redis-url", &url, "--node-id", node];
    flags.extend_from_slice(extra);
    let server = TestServer::start(&flags).await;
    let cluster = server.state.cluster.as_ref().expect("clustered");
    assert!(cluster.wait_up(WAIT).await, "{node} reaches Redis");
    server
}

/// The value of an unlabelled metric in a `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn members_on_three_nodes_meet_in_one_room_and_see_one_order() {
    let redis = RedisServer::start().await;
    let nodes = [
        node(&redis, "node-a", &[]).await,
        node(&redis, "node-b", &[]).await,
        node(&redis, "node-c", &[]).await,
    ];
    const MEMBERS: usize = 30;
    let mut clients = Vec::new();
    let mut ids = HashSet::new();
    for i in 0..MEMBERS {
        let (client, joined) = nodes[i % 3].joined("spread", &format!("p{i}")).await;
        // One room: each newcomer sees everyone who came before, whichever node they used.
        assert_eq!(joined.peers.len(), i + 1, "p{i} sees the others");
        assert!(ids.insert(joined.you), "ids are unique across nodes");
        clients.push(client);
    }
    // Exactly one node runs the room.
    let mut owners = 0.0;
    for node in &nodes {
        owners += metric(&node.metrics().await, "room_cluster_owned_rooms");
    }
    assert_eq!(owners, 1.0, "one node owns the room");

    for client in &mut clients {
        client.drain(Duration::from_millis(50)).await;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.chat(&format!("m{i}")).await;
    }
    let mut orders = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen.len() < MEMBERS && tokio::time::Instant::now() < deadline {
            for msg in client.collect(Duration::from_millis(300)).await {
                if let ServerMsg::Chat { entry } = msg {
                    seen.push((entry.id, entry.text));
                }
            }
        }
        assert_eq!(seen.len(), MEMBERS, "p{i} on node {}: {seen:?}", i % 3);
        let more = client.collect(Duration::from_millis(200)).await;
        assert!(
            !more.iter().any(is_chat),
            "p{i} got a message twice: {more:?}"
        );
        orders.push(seen);
    }
    let texts: HashSet<_> = orders[0].iter().map(|(_, text)| text.clone()).collect();
    assert_eq!(texts.len(), MEMBERS, "every message once");
    for order in &orders[1..] {
        assert_eq!(order, &orders[0], "the same order everywhere");
    }

    let relayed = metric(&nodes[1].metrics().await, "room_cluster_relayed_up_total")
        + metric(&nodes[0].metrics().await, "room_cluster_relayed_up_total");
    assert!(relayed > 0.0, "frames went through Redis");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test]
async fn a_room_moves_to_another_node_once_it_empties_or_its_node_stops() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &[]).await;
    let b = node(&redis, "node-b", &[]).await;

    // Ann opens the room on a; Bob, on b, is relayed to it.
    let (mut ann, _) = a.joined("moving", "Ann").await;
    let (mut bob, joined) = b.joined("moving", "Bob").await;
    assert_eq!(joined.peers.len(), 2);
    assert_eq!(metric(&a.metrics().await, "room_cluster_owned_rooms"), 1.0);
    assert_eq!(metric(&b.metrics().await, "room_cluster_owned_rooms"), 0.0);
    bob.chat("through the relay").await;
    assert_eq!(ann.recv_until(is_chat).await.text_of(), "through the relay");

    // Everyone leaves: a gives the lease up, and the next opener's node takes it.
    ann.close().await;
    bob.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&a.metrics().await, "room_cluster_owned_rooms") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a releases the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut cleo, joined) = b.joined("moving", "Cleo").await;
    assert_eq!(metric(&b.metrics().await, "room_cluster_owned_rooms"), 1.0);
    // The history came along, numbering included.
    let texts: Vec<_> = joined.history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["through the relay"]);
    cleo.chat("second").await;
    let second = cleo.recv_until(is_chat).await;
    let ServerMsg::Chat { entry } = &second else {
        unreachable!()
    };
    assert_eq!(
        entry.id,
        room::protocol::MessageId(joined.history[0].id.0 + 1)
    );
    let (mut dan, joined) = a.joined("moving", "Dan").await;
    assert_eq!(joined.peers.len(), 2, "Dan, on a, is relayed to b");
    dan.chat("hello from a").await;
    assert_eq!(cleo.recv_until(is_chat).await.text_of(), "hello from a");
    cleo.drain(Duration::from_millis(100)).await;

    // b stops: its browsers are told to go; the room is free for a at once.
    b.stop().await;
    assert!(matches!(
        dan.ending().await,
        support::Ending::Closed(1001, _)
    ));
    assert!(matches!(
        cleo.ending().await,
        support::Ending::Closed(1001, _)
    ));
    let (_erin, joined) = a.joined("moving", "Erin").await;
    assert_eq!(joined.peers.len(), 1, "a runs the room now");
    assert_eq!(metric(&a.metrics().await, "room_cluster_owned_rooms"), 1.0);
    a.stop().await;
}

#[tokio::test]
async fn a_message_is_in_redis_before_anyone_sees_it() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &["--chat-burst", "50"]).await;
    let b = node(&redis, "node-b", &[]).await;
    let (mut ann, _) = a.joined("durable", "Ann").await;
    let (mut bob, _) = b.joined("durable", "Bob").await;
    ann.drain(Duration::from_millis(100)).await;
    let reader = room::server::cluster::resp::Redis::start(
        redis.url().parse().unwrap(),
        tokio_util::sync::CancellationToken::new(),
    );
    assert!(reader.wait_up(WAIT).await);
    for i in 0..20 {
        ann.chat(&format!("n{i}")).await;
        // Whoever sees it first, locally or through the relay, Redis already has it.
        for seen in [ann.recv_until(is_chat).await, bob.recv_until(is_chat).await] {
            let ServerMsg::Chat { entry } = seen else {
                unreachable!()
            };
            let id = format!("{}-0", entry.id.0);
            let stored = reader
                .query(&[
                    b"XRANGE",
                    b"room:chat:durable",
                    id.as_bytes(),
                    id.as_bytes(),
                ])
                .await
                .unwrap();
            assert!(
                matches!(&stored, room::server::cluster::resp::Reply::Array(items) if items.len() == 1),
                "message {} is in Redis: {stored:?}",
                entry.id.0
            );
        }
    }
    // While Redis holds writes back, nobody sees the message: delivery waits for the store.
    reader
        .query(&[b"CLIENT", b"PAUSE", b"600", b"WRITE"])
        .await
        .unwrap();
    let paused = std::time::Instant::now();
    ann.chat("held back").await;
    assert_eq!(ann.recv_until(is_chat).await.text_of(), "held back");
    assert!(
        paused.elapsed() >= Duration::from_millis(400),
        "delivered after {:?}, while Redis was not writing",
        paused.elapsed()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn without_redis_new_rooms_are_refused_and_service_returns_with_it() {
    let mut redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &[]).await;
    let (mut ann, _) = a.joined("kept", "Ann").await;

    redis.kill();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&a.metrics().await, "room_cluster_redis_up") != 0.0 {
        assert!(tokio::time::Instant::now() < deadline, "the node notices");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The room it owns goes on.
    let (mut bob, _) = a.joined("kept", "Bob").await;
    bob.chat("still here").await;
    assert_eq!(ann.recv_until(is_chat).await.text_of(), "still here");
    // A room nobody can be sure about is refused, clearly.
    let mut cleo = a.client().await;
    cleo.hello().await;
    cleo.send(&support::join_msg("new-one", "Cleo")).await;
    let message = cleo.expect_error(ErrorCode::Unavailable).await;
    assert!(message.contains("try again"), "{message}");
    let refused = metric(&a.metrics().await, "room_cluster_refused_unavailable_total");
    assert!(refused >= 1.0);

    redis.restart().await;
    assert!(
        a.state.cluster.as_ref().unwrap().wait_up(WAIT).await,
        "it reconnects by itself"
    );
    cleo.send(&support::join_msg("new-one", "Cleo")).await;
    assert!(matches!(
        cleo.recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await,
        ServerMsg::Joined { .. }
    ));
    a.stop().await;
}

#[tokio::test]
async fn hostile_frames_through_a_relay_get_the_same_answers_as_on_the_owner() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &["--max-frame-bytes", "4096"]).await;
    let b = node(&redis, "node-b", &["--max-frame-bytes", "4096"]).await;
    let (_ann, _) = a.joined("guarded", "Ann").await;
    let (mut bob, _) = b.joined("guarded", "Bob").await;

    bob.send_raw("{\"type\":\"nonsense\"}").await;
    bob.expect_error(ErrorCode::BadMessage).await;
    bob.send_binary(vec![1, 2, 3]).await;
    bob.expect_error(ErrorCode::BadMessage).await;
    bob.send(&support::join_msg("guarded", "Bob again")).await;
    bob.expect_error(ErrorCode::AlreadyJoined).await;
    // The owner's rate limits hold for relayed members too.
    for i in 0..40 {
        bob.chat(&format!("flood {i}")).await;
    }
    bob.recv_error(ErrorCode::RateLimited).await;
    // A frame over the limit ends the connection at the edge, as on any node.
    bob.send_raw(&format!(
        "{{\"type\":\"chat\",\"text\":\"{}\"}}",
        "x".repeat(5000)
    ))
    .await;
    assert!(matches!(
        bob.ending().await,
        support::Ending::Closed(1009, _)
    ));

    // Garbage published on a node's channel is ignored.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let junk = room::server::cluster::resp::encode(&[b"PUBLISH", b"room:node:node-a", b"\x02junk"]);
    raw.write_all(&junk).await.unwrap();
    let (mut cleo, joined) = b.joined("guarded", "Cleo").await;
    assert_eq!(joined.peers.len(), 2, "Ann and Cleo; Bob left");
    cleo.chat("still fine").await;
    assert_eq!(cleo.recv_until(is_chat).await.text_of(), "still fine");
    a.stop().await;
    b.stop().await;
}

fn is_chat(msg: &ServerMsg) -> bool {
    matches!(msg, ServerMsg::Chat { .. })
}

trait ChatText {
    fn text_of(&self) -> String;
}

impl ChatText for ServerMsg {
    fn text_of(&self) -> String {
        match self {
            ServerMsg::Chat { entry } => entry.text.clone(),
            other => panic!("expected chat, got {other:?}"),
        }
    }
}
