//! A smoke run of the load generator against the real server: a few clients for a second,
//! every message delivered to every member of its room.

// The server's integration-test helpers, shared rather than copied.
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use room_bench::media::MediaConfig;
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

/// `room-bench media` against the real server with its forwarding unit: every receiver gets
/// the publisher's video and audio, and the report has every figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_media_run_forwards_video_and_audio_to_every_receiver() {
    let server = TestServer::start(&["--media", "sfu"]).await;
    let report = loadgen::media::run_media(MediaConfig {
        addr: server.addr,
        publishers: 1,
        subscribers: 2,
        rooms: 1,
        duration: Duration::from_secs(2),
        layer: "q".into(),
        tiles: None,
        speakers: None,
        publish_layers: 3,
        server_pid: Some(std::process::id()),
    })
    .await
    .expect("the media load runs");
    let rendered = report.render();
    assert_eq!(report.connected, 3, "{rendered}");
    assert_eq!(report.errors, 0, "{rendered}");
    // Two receivers, 30 video and 50 audio frames a second each, for two seconds; allow for
    // a slow machine, not for nothing arriving.
    assert!(report.video_frames > 60, "{rendered}");
    assert!(report.audio_frames > 100, "{rendered}");
    assert!(report.loss_percent() < 5.0, "{rendered}");
    assert!(report.datagrams > 0 && report.bytes > 0, "{rendered}");
    assert!(report.delay_p99_us >= report.delay_p50_us && report.delay_p50_us > 0);
    assert!(report.first_video_max_ms > 0, "{rendered}");
    assert!(report.cpu_us_per_datagram().is_some(), "{rendered}");
    assert!(rendered.contains("per forwarded datagram"), "{rendered}");
    server.stop().await;
}

#[tokio::test]
async fn the_media_load_refuses_targets_off_loopback() {
    let error = loadgen::media::run_media(MediaConfig {
        addr: "192.0.2.1:3000".parse().unwrap(),
        publishers: 1,
        subscribers: 1,
        rooms: 1,
        duration: Duration::from_secs(1),
        layer: "h".into(),
        tiles: None,
        speakers: None,
        publish_layers: 3,
        server_pid: None,
    })
    .await
    .unwrap_err();
    assert!(error.contains("loopback"), "{error}");
}
