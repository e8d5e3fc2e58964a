//! Reads how well each call member's video arrives (`getStats`: received and lost packets,
//! frame rate, the connection's round trip), every few seconds, for the marks on their tiles.

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::RtcPeerConnection;

use crate::media::{Quality, VideoStats};
use crate::protocol::PeerId;

/// How often the statistics are read.
pub const QUALITY_INTERVAL_MS: u32 = 2_000;

/// Where to read one or more call members' video from.
pub enum StatsSource {
    /// A browser-to-browser connection: everything it receives is `peer`'s.
    Peer(PeerId, RtcPeerConnection),
    /// The connection to the server: each receive section (by `mid`) is one member's camera.
    Server(RtcPeerConnection, HashMap<String, PeerId>),
}

/// The previous reading per member, to judge the time between readings.
#[derive(Default)]
pub struct QualityWatch {
    last: RefCell<HashMap<PeerId, VideoStats>>,
}

impl QualityWatch {
    /// Reads every source and judges each member seen before; members no longer there are
    /// forgotten.
    pub async fn judge(&self, sources: Vec<StatsSource>) -> Vec<(PeerId, Quality)> {
        let mut now: HashMap<PeerId, VideoStats> = HashMap::new();
        for source in sources {
            match source {
                StatsSource::Peer(peer, pc) => {
                    // The camera is the busiest video a member sends (a screen share
                    // sends few packets while nothing moves).
                    if let Some(best) = read(&pc)
                        .await
                        .into_iter()
                        .map(|(_, stats)| stats)
                        .max_by_key(|stats| stats.packets_received)
                    {
                        now.insert(peer, best);
                    }
                }
                StatsSource::Server(pc, owners) => {
                    for (mid, stats) in read(&pc).await {
                        if let Some(peer) = mid.and_then(|mid| owners.get(&mid).copied()) {
                            now.insert(peer, stats);
                        }
                    }
                }
            }
        }
        let mut last = self.last.borrow_mut();
        let judged = now
            .iter()
            .filter_map(|(peer, stats)| {
                let earlier = last.get(peer)?;
                Some((*peer, Quality::between(earlier, stats)))
            })
            .collect();
        *last = now;
        judged
    }
}

/// The received videos of `pc` (by `mid`), each with the connection's current round trip.
async fn read(pc: &RtcPeerConnection) -> Vec<(Option<String>, VideoStats)> {
    let Ok(report) = JsFuture::from(pc.get_stats()).await else {
        return Vec::new();
    };
    // RTCStatsReport is map-like: Map's forEach walks it.
    let report: js_sys::Map = report.unchecked_into();
    let mut videos = Vec::new();
    let mut round_trip_ms = None;
    report.for_each(&mut |entry, _id| {
        let field = |name: &str| Reflect::get(&entry, &JsValue::from_str(name)).ok();
        let text = |name: &str| field(name).and_then(|v| v.as_string());
        let number = |name: &str| field(name).and_then(|v| v.as_f64());
        match text("type").as_deref() {
            Some("inbound-rtp") if text("kind").as_deref() == Some("video") => {
                videos.push((
                    text("mid"),
                    VideoStats {
                        packets_received: number("packetsReceived").unwrap_or(0.0) as u64,
                        // Duplicates can make it negative; none lost then.
                        packets_lost: number("packetsLost").unwrap_or(0.0).max(0.0) as u64,
                        frames_per_second: number("framesPerSecond"),
                        round_trip_ms: None,
                    },
                ));
            }
            Some("candidate-pair")
                if field("nominated").and_then(|v| v.as_bool()) == Some(true)
                    && text("state").as_deref() == Some("succeeded") =>
            {
                round_trip_ms = number("currentRoundTripTime").map(|seconds| seconds * 1000.0);
            }
            _ => {}
        }
    });
    for (_, stats) in &mut videos {
        stats.round_trip_ms = round_trip_ms;
    }
    videos
}
