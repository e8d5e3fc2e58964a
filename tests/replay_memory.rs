//! The history-replay memory test, in a binary of its own because it measures this process's
//! RSS: 200 clients from one address each ask for the whole stored history and never read.
//! Before replays were cut to a byte budget, each got one ~8 MB frame, held in memory for as
//! long as the client stayed connected.

#![cfg(feature = "ssr")]

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use room::protocol::{ClientMsg, MessageId, ServerMsg, PROTOCOL_VERSION};
use support::{resuming_join_msg, rss_kib, upgrade_request, TestServer};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const STUCK_CLIENTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_ask_for_all_history_and_never_read_cost_little_memory() {
    let server = TestServer::start(&[
        "--chat-burst",
        "100000",
        "--chat-per-second",
        "100000",
        "--max-connections-per-ip",
        "1000",
        "--max-room-members",
        "1000",
    ])
    .await;
    let (mut ann, _) = server.joined("big", "Ann").await;
    // 1,000 stored messages of 2,000 four-byte characters: 8 MB of history.
    let text = "😀".repeat(2000);
    for _ in 0..1000 {
        ann.chat(&text).await;
        ann.expect_chat().await;
    }
    let before = rss_kib();
    let addr = server.addr;
    let mut stuck = Vec::new();
    for i in 0..STUCK_CLIENTS {
        // The clients live in this process too: a small read buffer keeps their own share
        // of the RSS out of the measurement (tungstenite zero-fills 128 KiB by default).
        let config = WebSocketConfig::default().read_buffer_size(4096);
        let request = upgrade_request(addr, Some(&format!("http://{addr}")));
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .unwrap();
        let hello = ClientMsg::Hello {
            version: PROTOCOL_VERSION,
        };
        let join = resuming_join_msg("big", format!("stuck {i}"), None, Some(MessageId(0)));
        for msg in [hello, join] {
            ws.send(Message::Text(msg.to_json().into())).await.unwrap();
        }
        stuck.push(ws);
    }
    let mut arrived = 0;
    while arrived < STUCK_CLIENTS {
        if let ServerMsg::PeersJoined { peers } = ann.recv().await {
            arrived += peers.len();
        }
    }
    // Every stuck client has its `joined` built and queued or written by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_kib = rss_kib().saturating_sub(before);

    // The room still answers its honest member quickly.
    let mut delays = Vec::new();
    for i in 0..50 {
        let sent = Instant::now();
        ann.chat(&format!("ping {i}")).await;
        let ping = format!("ping {i}");
        ann.recv_until(|m| matches!(m, ServerMsg::Chat { entry } if entry.text == ping))
            .await;
        delays.push(sent.elapsed());
    }
    delays.sort();
    eprintln!(
        "{STUCK_CLIENTS} stuck clients replaying 8 MB of history: RSS grew by {grown_kib} KiB; \
         the honest member's chat round trip p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(grown_kib < 50 * 1024, "RSS grew by {grown_kib} KiB");
    drop(stuck);
    server.stop().await;
}
