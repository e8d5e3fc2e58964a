//! A smoke run of the load generator against the real server: a few clients for a second,
//! every message delivered to every member of its room.

// The server's integration-test helpers, shared rather than copied.
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use room_bench::{self as loadgen, LoadConfig};
use support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_delivers_everything() {
    let server = TestServer::start(&["--chat-burst", "50", "--chat-per-second", "50"]).await;
    let report = loadgen::run(LoadConfig {
        addr: server.addr,
        clients: 9,
        rooms: 3,
        senders: 3,
        rate: 20,
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(5),
        server_pid: Some(std::process::id()),
        ..LoadConfig::default()
    })
    .await
    .expect("the load runs");
    assert_eq!(report.connected, 9);
    // Three senders at 20/s for a second, each message to the three members of its room.
    assert!(report.sent >= 45, "{}", report.render());
    assert_eq!(report.expected, report.sent * 3);
    assert_eq!(report.received, report.expected, "{}", report.render());
    assert_eq!(report.errors, 0);
    assert!(report.latency_p99_us > 0 && report.latency_max_us >= report.latency_p99_us);
    assert!(report.server_rss_connected_kib.is_some());
    assert!(report.render().contains("0 lost"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_reported_as_errors_not_deliveries() {
    // The default rate limit (burst 10, 5/s) refuses most of 50 messages a second.
    let server = TestServer::start(&[]).await;
    let report = loadgen::run(LoadConfig {
        addr: server.addr,
        clients: 2,
        rooms: 1,
        senders: 1,
        rate: 50,
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(3),
        ..LoadConfig::default()
    })
    .await
    .expect("the load runs");
    assert!(report.errors > 0, "{}", report.render());
    assert!(report.lost() > 0);
    server.stop().await;
}
