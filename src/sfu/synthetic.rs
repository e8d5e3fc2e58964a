//! A participant without a browser: a str0m connection shaped like the meeting page's
//! (microphone, camera and screen sections it only sends on, in that order) that publishes
//! synthetic VP8 and Opus frames. The forwarding unit's tests publish with it.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::{Candidate, Rtc};

/// Bytes of one synthetic video frame (about 300 kbit/s at 30 frames a second) and one
/// 20 ms audio frame.
const VIDEO_FRAME_BYTES: usize = 1200;
const AUDIO_FRAME_BYTES: usize = 80;

pub struct SyntheticPeer {
    pub rtc: Rtc,
    pub microphone: Mid,
    pub camera: Mid,
    started: Instant,
}

impl SyntheticPeer {
    /// The connection, with a host candidate at `local`, and the offer to send the server.
    pub fn new(now: Instant, local: SocketAddr) -> (SyntheticPeer, SdpOffer, SdpPendingOffer) {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        if let Ok(candidate) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(candidate);
        }
        let mut change = rtc.sdp_api();
        let microphone = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let camera = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change
            .apply()
            .expect("three new sections are a change to offer");
        let peer = SyntheticPeer {
            rtc,
            microphone,
            camera,
            started: now,
        };
        (peer, offer, pending)
    }

    /// Writes one camera or microphone frame stamped `now`; before the connection is up
    /// there is nothing to write to, and the frame is dropped.
    pub fn send_frame(&mut self, now: Instant, kind: MediaKind) {
        let (mid, codec, frequency, bytes) = match kind {
            MediaKind::Video => (
                self.camera,
                Codec::Vp8,
                Frequency::NINETY_KHZ,
                VIDEO_FRAME_BYTES,
            ),
            MediaKind::Audio => (
                self.microphone,
                Codec::Opus,
                Frequency::FORTY_EIGHT_KHZ,
                AUDIO_FRAME_BYTES,
            ),
        };
        let Some(pt) = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            return;
        };
        let elapsed = now.saturating_duration_since(self.started);
        let ticks = elapsed.as_micros() as u64 * u64::from(frequency.get()) / 1_000_000;
        if let Some(writer) = self.rtc.writer(mid) {
            let _ = writer.write(pt, now, MediaTime::new(ticks, frequency), vec![0x10; bytes]);
        }
    }
}
