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

/// Waits until the node's unlabelled metric `name` reads `value`.
async fn wait_for_metric(node: &TestServer, name: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&node.metrics().await, name) != value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} reaches {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the test's own to `redis`, to read or write what the nodes keep there.
async fn redis_client(redis: &RedisServer) -> room::server::cluster::resp::Redis {
    let client = room::server::cluster::resp::Redis::start(
        redis.url().parse().unwrap(),
        tokio_util::sync::CancellationToken::new(),
    );
    assert!(client.wait_up(WAIT).await);
    client
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
    // a gives the lease up.
    wait_for_metric(&a, "room_cluster_owned_rooms", 0.0).await;
    let (mut cleo, joined) = b.joined("moving", "Cleo").await;
    assert_eq!(metric(&b.metrics().await, "room_cluster_owned_rooms"), 1.0);
    // Those who left are not brought back: the emptied meeting saved nobody.
    assert_eq!(joined.peers.len(), 1);
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

    // b stops: its browsers are told to go; the room is free for a at once, and they come
    // back there as themselves.
    let cleo_token = joined.resume_token.clone();
    let cleo_id = joined.you;
    b.stop().await;
    assert!(matches!(
        dan.ending().await,
        support::Ending::Closed(1001, _)
    ));
    assert!(matches!(
        cleo.ending().await,
        support::Ending::Closed(1001, _)
    ));
    let mut cleo = a.client().await;
    cleo.hello().await;
    let back = cleo.rejoin("moving", "Cleo", Some(cleo_token), None).await;
    let ServerMsg::Joined {
        you,
        resumed,
        peers,
        ..
    } = back
    else {
        panic!("Cleo is back: {back:?}")
    };
    assert!(resumed, "Cleo resumes on a");
    assert_eq!(you, cleo_id);
    assert_eq!(peers.len(), 2, "Cleo, and Dan away until he comes back");
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
    let reader = redis_client(&redis).await;
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
    let b = node(&redis, "node-b", &[]).await;
    let (mut ann, _) = a.joined("kept", "Ann").await;
    let (mut dan, dan_joined) = b.joined("kept", "Dan").await;
    wait_for_metric(&a, "room_cluster_redis_up", 1.0).await;

    redis.kill();
    // The node notices.
    wait_for_metric(&a, "room_cluster_redis_up", 0.0).await;
    // Dan, relayed through b, can reach the meeting no more: b sends him to reconnect
    // rather than drop what he says.
    let ending = dan.ending().await;
    assert!(
        matches!(&ending, support::Ending::Closed(1001, why) if why.contains("cannot be reached")),
        "{ending:?}"
    );
    // The room a runs goes on for those connected to it.
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
    let unstored = metric(&a.metrics().await, "room_cluster_unstored_messages_total");
    assert!(unstored >= 1.0, "the chat while Redis was away was counted");

    redis.restart().await;
    for node in [&a, &b] {
        let cluster = node.state.cluster.as_ref().unwrap();
        assert!(cluster.wait_up(WAIT).await, "it reconnects by itself");
    }
    cleo.send(&support::join_msg("new-one", "Cleo")).await;
    assert!(matches!(
        cleo.recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await,
        ServerMsg::Joined { .. }
    ));
    // The restarted Redis is empty; a claims its room again on its next round, and Dan
    // comes back to it through b, as himself.
    let reader = redis_client(&redis).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let owner = reader.query(&[b"GET", b"room:owner:kept"]).await.unwrap();
        if owner.text() == Some("node-a") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a claims its room again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut dan = b.client().await;
    dan.hello().await;
    let back = dan
        .rejoin("kept", "Dan", Some(dan_joined.resume_token), None)
        .await;
    assert!(
        matches!(back, ServerMsg::Joined { resumed: true, you, .. } if you == dan_joined.you),
        "{back:?}"
    );
    a.stop().await;
    b.stop().await;
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

/// A node as its own process, so it can be killed as a crash would (SIGKILL).
struct NodeProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _data: support::DataDir,
}

impl NodeProcess {
    async fn start(redis: &RedisServer, node: &str) -> NodeProcess {
        use std::io::BufRead;
        let data = support::fresh_data_dir();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_room"))
            .args(["--addr", "127.0.0.1:0", "--media-addr", "127.0.0.1:0"])
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--redis-url", &redis.url(), "--node-id", node])
            .env("ROOM_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the room binary runs");
        let stdout = child.stdout.take().unwrap();
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            lines.find_map(|line| {
                line.ok()?
                    .strip_prefix("Room is listening on http://")?
                    .parse()
                    .ok()
            })
        })
        .await
        .unwrap()
        .expect("the node says where it listens");
        NodeProcess {
            child,
            addr,
            _data: data,
        }
    }

    async fn joined(&self, room: &str, name: &str) -> (support::Client, support::Joined) {
        let mut client = support::Client::connect(self.addr).await;
        client.hello().await;
        let joined = client.join(room, name).await;
        (client, joined)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reconnects to `node` as a browser would after losing its connection, retrying until the
/// room answers: the join resumes from `token` and asks for what came after `last_seen`.
async fn come_back(
    node: std::net::SocketAddr,
    name: &str,
    token: String,
    last_seen: room::protocol::MessageId,
) -> (support::Client, ServerMsg) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut client = support::Client::connect(node).await;
        client.hello().await;
        client
            .send(&support::resuming_join_msg(
                "failover",
                name,
                Some(token.clone()),
                Some(last_seen),
            ))
            .await;
        let mut answer = None;
        while let Some(msg) = client.recv_within(Duration::from_secs(4)).await {
            if matches!(msg, ServerMsg::Joined { .. }) {
                answer = Some(msg);
                break;
            }
        }
        if let Some(joined) = answer {
            return (client, joined);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} gets back into the meeting"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn when_the_owner_dies_another_node_takes_the_room_and_nothing_is_lost_or_doubled() {
    let redis = RedisServer::start().await;
    let mut a = NodeProcess::start(&redis, "node-a").await;
    let b = NodeProcess::start(&redis, "node-b").await;
    let (mut ann, ann_joined) = a.joined("failover", "Ann").await;
    let (mut bob, bob_joined) = b.joined("failover", "Bob").await;
    assert_eq!(bob_joined.peers.len(), 2, "Bob, on b, is in a's room");
    // One after the other, so their order is known.
    let mut last = None;
    for (sender, text) in [(0, "before"), (1, "the crash")] {
        [&mut ann, &mut bob][sender].chat(text).await;
        for client in [&mut ann, &mut bob] {
            if let ServerMsg::Chat { entry } = client.recv_until(is_chat).await {
                last = Some(entry.id);
            }
        }
    }
    let last_seen = last.unwrap();

    a.kill();
    let killed = std::time::Instant::now();
    assert_eq!(ann.ending().await, support::Ending::Dropped);
    // Bob's node notices the owner is gone and sends him to reconnect.
    assert!(matches!(
        bob.ending().await,
        support::Ending::Closed(1001, _)
    ));
    let noticed = killed.elapsed();

    // Both come back through b, the only node left.
    let (mut ann, ann_back) = come_back(b.addr, "Ann", ann_joined.resume_token, last_seen).await;
    let (mut bob, bob_back) = come_back(b.addr, "Bob", bob_joined.resume_token, last_seen).await;
    let back = killed.elapsed();
    eprintln!("failover: relay closed after {noticed:?}, both back after {back:?}");
    for (joined, before) in [(&ann_back, &ann_joined.you), (&bob_back, &bob_joined.you)] {
        let ServerMsg::Joined {
            history,
            peers,
            resumed,
            you,
            ..
        } = joined
        else {
            unreachable!()
        };
        // As themselves, with nothing replayed twice: they had every message already.
        assert!(*resumed && you == before, "{joined:?}");
        assert!(history.is_empty(), "{history:?}");
        assert_eq!(peers.len(), 2);
    }
    // The numbering goes on from where it was: nothing already seen is reused.
    bob.drain(Duration::from_millis(100)).await;
    ann.chat("after").await;
    let ServerMsg::Chat { entry } = bob.recv_until(is_chat).await else {
        unreachable!()
    };
    assert_eq!(entry.text, "after");
    assert_eq!(entry.id.0, last_seen.0 + 1);
    // A newcomer reads the whole story once.
    let (_cleo, joined) = {
        let mut cleo = support::Client::connect(b.addr).await;
        cleo.hello().await;
        let joined = cleo.join("failover", "Cleo").await;
        (cleo, joined)
    };
    let texts: Vec<_> = joined.history.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["before", "the crash", "after"]);
    drop(b);
}

#[tokio::test]
async fn the_home_page_lists_the_rooms_of_every_node() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &["--public-room-list"]).await;
    let b = node(&redis, "node-b", &["--public-room-list"]).await;
    let (_ann, _) = a.joined("alpha", "Ann").await;
    let (_bob, _) = b.joined("beta", "Bob").await;
    let (_cy, _) = a.joined("beta", "Cy").await;
    let mut watcher = a.client().await;
    watcher.hello().await;
    watcher.send(&room::protocol::ClientMsg::WatchRooms).await;
    let wanted = |m: &ServerMsg| {
        matches!(m, ServerMsg::Rooms { rooms } if rooms.len() == 2
            && rooms[0].room == "beta" && rooms[0].participants == 2
            && rooms[1].room == "alpha" && rooms[1].participants == 1)
    };
    watcher.recv_until(wanted).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_room_whose_lease_another_node_holds_sends_its_members_there() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "node-a", &[]).await;
    let b = node(&redis, "node-b", &[]).await;
    let (mut ann, joined) = a.joined("split", "Ann").await;
    // As after Redis lost its data and node b took the free lease on a join.
    let writer = redis_client(&redis).await;
    writer
        .query(&[b"SET", b"room:owner:split", b"node-b", b"PX", b"60000"])
        .await
        .unwrap();
    // a notices on its next renewal and sends Ann to reconnect; she lands in b's room.
    assert_eq!(
        ann.ending().await,
        support::Ending::Closed(
            1001,
            "the meeting moved to another server; reconnecting".into()
        )
    );
    let conflicts = metric(&a.metrics().await, "room_cluster_lease_conflicts_total");
    assert_eq!(conflicts, 1.0);
    let mut ann = a.client().await;
    ann.hello().await;
    let back = ann
        .rejoin("split", "Ann", Some(joined.resume_token), None)
        .await;
    assert!(matches!(back, ServerMsg::Joined { .. }), "{back:?}");
    assert_eq!(metric(&b.metrics().await, "room_cluster_owned_rooms"), 1.0);
    a.stop().await;
    b.stop().await;
}
