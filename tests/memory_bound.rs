//! The RSS test in a binary of its own: the process's memory is shared by every test in a
//! binary, so tests running beside it would move the number it measures.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use room::protocol::{LeaveReason, ServerMsg};
use support::{rss_kib, TestServer};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_is_dropped_and_memory_stays_bounded() {
    let server = TestServer::start(&[
        "--peer-queue",
        "256",
        "--chat-burst",
        "1000000",
        "--chat-per-second",
        "1000000",
    ])
    .await;
    let (mut ann, _) = server.joined("stall", "Ann").await;
    let (mut bob, _) = server.joined("stall", "Bob").await;
    let (_stan, stan_joined) = server.joined("stall", "Stan").await;
    ann.drain(QUIET).await;
    bob.drain(QUIET).await;
    let before = rss_kib();

    // 40 MB of chat while Stan reads nothing: were his queue unbounded, it would hold it all.
    let text = "s".repeat(1000);
    let mut kicked = None;
    for _ in 0..400 {
        for _ in 0..100 {
            ann.chat(&text).await;
        }
        for reader in [&mut ann, &mut bob] {
            let mut chats = 0;
            while chats < 100 {
                match reader.recv().await {
                    ServerMsg::Chat { .. } => chats += 1,
                    ServerMsg::PeerLeft { peer, reason } => kicked = Some((peer, reason)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    let grown_kib = rss_kib().saturating_sub(before);
    assert_eq!(kicked, Some((stan_joined.you, LeaveReason::TooSlow)));
    assert_eq!(server.state.metrics.slow_disconnects.get(), 1);
    // The room goes on for the readers.
    bob.chat("still flowing").await;
    bob.recv_until(|m| matches!(m, ServerMsg::Chat { entry } if entry.text == "still flowing"))
        .await;
    // Stan's queue (256 frames of ~1 KiB) and one write batch, plus allocator slack.
    assert!(grown_kib < 24 * 1024, "RSS grew by {grown_kib} KiB");
    eprintln!("RSS growth while 40 MB went past a stalled reader: {grown_kib} KiB");
    server.stop().await;
}
