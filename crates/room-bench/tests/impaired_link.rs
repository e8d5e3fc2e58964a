//! A receiver behind a slow, lossy, distant link (1 Mbit/s, 3% loss, 80 ms each way) in a
//! room with a receiver on a clear one: the first moves to a smaller layer within 5 s and is
//! back on the large one within 10 s of the link clearing, retransmissions repair its
//! losses, and the second sees no change. The link is emulated in the receiver
//! (`room_bench::link`: this machine's kernel has no `netem`); the server sees only what
//! arrives, when, and the receiver's reports.

// The server's integration-test helpers, shared rather than copied.
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use room::sfu::synthetic::CAMERA_LAYERS;
use room_bench::link::{Impairment, LinkShape};
use room_bench::media::{participate, MediaReport, Participant, VideoLog};
use support::TestServer;

const LARGE: usize = 2;

/// Which layer a synthetic frame of `bytes` bytes belongs to.
fn layer_of(bytes: usize) -> Option<usize> {
    CAMERA_LAYERS.iter().position(|&(.., size)| size == bytes)
}

/// The layers of the frames received in `[from, to)`, in order.
fn layers_between(log: &VideoLog, from: Instant, to: Instant) -> Vec<Option<usize>> {
    let log = log.lock().unwrap();
    log.iter()
        .filter(|&&(at, _)| at >= from && at < to)
        .map(|&(_, bytes)| layer_of(bytes))
        .collect()
}

/// When the frames stopped being of the large layer for good within `[from, to)`, or started
/// being so for good; `None` if they never did.
fn settled_at(log: &VideoLog, from: Instant, to: Instant, large: bool) -> Option<Instant> {
    let log = log.lock().unwrap();
    let frames: Vec<(Instant, bool)> = log
        .iter()
        .filter(|&&(at, _)| at >= from && at < to)
        .map(|&(at, bytes)| (at, layer_of(bytes) == Some(LARGE)))
        .collect();
    let last_other = frames.iter().rposition(|&(_, is_large)| is_large != large);
    match last_other {
        None => frames.first().map(|&(at, _)| at),
        Some(index) => frames.get(index + 1).map(|&(at, _)| at),
    }
}

/// Frames of each layer per second from `start`, for failure messages: "s5 q30 h0 f0".
fn timeline(log: &VideoLog, start: Instant, end: Instant) -> String {
    let mut lines = Vec::new();
    let mut from = start;
    let mut second = 0;
    while from < end {
        let to = from + Duration::from_secs(1);
        let layers = layers_between(log, from, to);
        let count = |layer| layers.iter().filter(|&&l| l == Some(layer)).count();
        lines.push(format!(
            "s{second} q{} h{} f{}",
            count(0),
            count(1),
            count(2)
        ));
        from = to;
        second += 1;
    }
    lines.join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_a_bad_link_steps_down_and_back_up_and_the_others_see_no_change() {
    let server = TestServer::start(&["--media", "sfu"]).await;
    let start = Instant::now();
    let impaired_from = start + Duration::from_secs(5);
    let impaired_until = impaired_from + Duration::from_secs(10);
    let end = impaired_until + Duration::from_secs(12);
    let participant = |name: &str, publishes: bool, impairment, log: Option<VideoLog>| {
        Participant {
            addr: server.addr,
            room: "impaired-link".into(),
            name: name.into(),
            publishes,
            // Everyone shows everyone large: only the link decides the layer.
            tile: (1280, 720),
            udp_bind: "127.0.0.1:0".parse().unwrap(),
            until: end,
            impairment,
            video_log: log,
        }
    };
    let bad_link = Impairment {
        from: impaired_from,
        until: impaired_until,
        shape: LinkShape {
            bits_per_second: 1_000_000,
            loss: 0.03,
            delay: Duration::from_millis(80),
        },
    };
    let far_log: VideoLog = Arc::new(Mutex::new(Vec::new()));
    let near_log: VideoLog = Arc::new(Mutex::new(Vec::new()));
    let publisher = tokio::spawn(participate(participant("ann", true, None, None)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let far = tokio::spawn(participate(participant(
        "far",
        false,
        Some(bad_link),
        Some(Arc::clone(&far_log)),
    )));
    let near = tokio::spawn(participate(participant(
        "near",
        false,
        None,
        Some(Arc::clone(&near_log)),
    )));
    let far: MediaReport = far.await.unwrap().expect("the far viewer ran");
    let near: MediaReport = near.await.unwrap().expect("the near viewer ran");
    publisher.await.unwrap().expect("the publisher ran");
    server.stop().await;

    let second = Duration::from_secs(1);
    eprintln!("far:  {}", timeline(&far_log, start, end));
    eprintln!("near: {}", timeline(&near_log, start, end));
    // Before the link got bad, both received the large layer.
    for (name, log) in [("far", &far_log), ("near", &near_log)] {
        let before = layers_between(log, impaired_from - second, impaired_from);
        assert!(
            before.len() >= 20,
            "{name}: {} frames in the second before",
            before.len()
        );
        assert!(
            before.iter().all(|&l| l == Some(LARGE)),
            "{name}: {before:?}"
        );
    }
    // The far viewer stepped down within 5 s and stayed down while the link was bad...
    let down = settled_at(&far_log, impaired_from, impaired_until, false)
        .expect("the far viewer left the large layer");
    let down_after = down.saturating_duration_since(impaired_from);
    let during = layers_between(
        &far_log,
        impaired_from + Duration::from_secs(5),
        impaired_until,
    );
    assert!(
        during.len() >= 50,
        "{} frames while the link was bad",
        during.len()
    );
    // ...and was back on the large layer within 10 s of it clearing.
    let up = settled_at(&far_log, impaired_until, end, true)
        .expect("the far viewer came back to the large layer");
    let up_after = up.saturating_duration_since(impaired_until);
    eprintln!(
        "far viewer: off the large layer {down_after:?} after the link went bad, back on it \
         {up_after:?} after it cleared; {} frames lost ({:.2}%), {} NACKs",
        far.frames_lost,
        far.loss_percent(),
        far.nacks
    );
    assert!(
        down_after <= Duration::from_secs(5),
        "{down_after:?} to step down"
    );
    assert!(
        up_after <= Duration::from_secs(10),
        "{up_after:?} to step up"
    );
    // Losses were asked for again and repaired: unrepaired, 3% packet loss each way would
    // lose about 6% of the middle layer's two-packet frames and 14% of the large layer's
    // five-packet ones (the link's queue also overflows while the large layer is still
    // sent).
    assert!(far.nacks > 0, "no NACKs behind a lossy link");
    assert!(
        far.loss_percent() < 2.5,
        "{:.2}% of frames lost",
        far.loss_percent()
    );
    // The near viewer saw no change: the large layer all along, about 30 frames a second.
    let near_after = layers_between(&near_log, impaired_from, end);
    assert!(
        near_after.iter().all(|&l| l == Some(LARGE)),
        "{near_after:?}"
    );
    let seconds = end.saturating_duration_since(impaired_from).as_secs_f64();
    assert!(
        near_after.len() as f64 >= 25.0 * seconds,
        "{} frames in {seconds} s",
        near_after.len()
    );
    assert_eq!(near.frames_lost, 0, "the near viewer lost frames");
}
