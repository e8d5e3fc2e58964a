//! A participant without a browser: a str0m connection shaped like the meeting page's
//! (microphone, camera and screen sections it only sends on, in that order) that publishes
//! synthetic VP8 and Opus frames: a camera in three simulcast layers like the page's, each
//! with keyframes that carry its picture size (on the first frame, on request and every few
//! seconds, as an encoder does), and audio with the level a browser reports. Every frame
//! carries, after its header, when it was sent and its number on its stream
//! ([`FrameStamp`]), so a receiver can tell forwarding delay and loss. The forwarding unit's
//! tests and `room-bench media` publish with it.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer,
};
use str0m::{Candidate, Event, Rtc};

/// Bytes of one 20 ms audio frame.
const AUDIO_FRAME_BYTES: usize = 80;

/// Camera layers as the page sends them: rid, picture size and bytes per frame (about 150,
/// 500 and 1,200 kbit/s at 30 frames a second).
pub const CAMERA_LAYERS: [(&str, u32, u32, usize); 3] = [
    ("q", 320, 180, 625),
    ("h", 640, 360, 2_000),
    ("f", 1280, 720, 5_000),
];

/// A keyframe at least this often even unasked.
const KEYFRAME_EVERY: Duration = Duration::from_secs(2);

/// Where the stamp sits: after the VP8 header a decoder reads (10 bytes of a keyframe), and
/// at the start of an audio frame.
const VIDEO_STAMP_AT: usize = 10;
const AUDIO_STAMP_AT: usize = 0;

/// Wall-clock microseconds since the Unix epoch: the clock stamps are written and read in.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What a synthetic frame says of itself: wall-clock microseconds when it was written, and
/// its number on its stream (layer or microphone), counting from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameStamp {
    pub sent_us: u64,
    pub number: u32,
}

impl FrameStamp {
    const BYTES: usize = 12;

    fn now(number: u32) -> FrameStamp {
        FrameStamp {
            sent_us: wall_micros(),
            number,
        }
    }

    fn write(self, frame: &mut [u8], at: usize) {
        if let Some(place) = frame.get_mut(at..at + Self::BYTES) {
            place[..8].copy_from_slice(&self.sent_us.to_le_bytes());
            place[8..].copy_from_slice(&self.number.to_le_bytes());
        }
    }

    fn read(frame: &[u8], at: usize) -> Option<FrameStamp> {
        let place = frame.get(at..at + Self::BYTES)?;
        Some(FrameStamp {
            sent_us: u64::from_le_bytes(place[..8].try_into().ok()?),
            number: u32::from_le_bytes(place[8..].try_into().ok()?),
        })
    }

    /// The stamp of a received synthetic video frame.
    pub fn of_video(frame: &[u8]) -> Option<FrameStamp> {
        Self::read(frame, VIDEO_STAMP_AT)
    }

    /// The stamp of a received synthetic audio frame.
    pub fn of_audio(frame: &[u8]) -> Option<FrameStamp> {
        Self::read(frame, AUDIO_STAMP_AT)
    }
}

struct VideoLayer {
    rid: Rid,
    width: u32,
    height: u32,
    bytes: usize,
    /// Each layer has its own RTP clock, as in a browser: a forwarding unit that switches
    /// layers must not let its viewers see the jump.
    time_base: u64,
    last_keyframe: Option<Instant>,
    keyframe_wanted: bool,
    frames: u32,
}

pub struct SyntheticPeer {
    pub rtc: Rtc,
    pub microphone: Mid,
    pub camera: Mid,
    layers: Vec<VideoLayer>,
    /// The microphone's level, in dBov as the audio-level header extension carries it.
    pub audio_level: i8,
    /// How many of the camera's layers it sends, from the smallest (a browser short of
    /// CPU or uplink drops the large ones); 3 unless changed.
    pub camera_layers: usize,
    audio_frames: u32,
    started: Instant,
}

impl SyntheticPeer {
    /// The connection, with a host candidate at `local`, and the offer to send the server.
    pub fn new(now: Instant, local: SocketAddr) -> (SyntheticPeer, SdpOffer, SdpPendingOffer) {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            // Receive counters (NACKs sent) for the load tool's report.
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        if let Ok(candidate) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(candidate);
        }
        let mut simulcast = Simulcast::new();
        for (rid, ..) in CAMERA_LAYERS {
            simulcast.add_send_layer(SimulcastLayer::new(rid));
        }
        let mut change = rtc.sdp_api();
        let microphone = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let camera = change.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            Some(simulcast),
        );
        change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change
            .apply()
            .expect("three new sections are a change to offer");
        let layers = CAMERA_LAYERS
            .iter()
            .zip(1u64..)
            .map(|(&(rid, width, height, bytes), n)| VideoLayer {
                rid: rid.into(),
                width,
                height,
                bytes,
                time_base: n * 1_000_003,
                last_keyframe: None,
                keyframe_wanted: true,
                frames: 0,
            })
            .collect();
        let peer = SyntheticPeer {
            rtc,
            microphone,
            camera,
            layers,
            audio_level: -30,
            camera_layers: CAMERA_LAYERS.len(),
            audio_frames: 0,
            started: now,
        };
        (peer, offer, pending)
    }

    /// Notes what the connection asks of the sender (keyframes).
    pub fn handle_event(&mut self, event: &Event) {
        if let Event::KeyframeRequest(request) = event {
            for layer in &mut self.layers {
                if request.rid.is_none() || request.rid == Some(layer.rid) {
                    layer.keyframe_wanted = true;
                }
            }
        }
    }

    /// Writes one frame stamped `now`: a microphone frame, or a camera frame on every layer.
    /// Before the connection is up there is nothing to write to, and the frame is dropped.
    pub fn send_frame(&mut self, now: Instant, kind: MediaKind) {
        let codec = match kind {
            MediaKind::Video => Codec::Vp8,
            MediaKind::Audio => Codec::Opus,
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
        let ticks = |frequency: Frequency| {
            elapsed.as_micros() as u64 * u64::from(frequency.get()) / 1_000_000
        };
        match kind {
            MediaKind::Audio => {
                let time = MediaTime::new(
                    ticks(Frequency::FORTY_EIGHT_KHZ),
                    Frequency::FORTY_EIGHT_KHZ,
                );
                if let Some(writer) = self.rtc.writer(self.microphone) {
                    let mut frame = vec![0x10; AUDIO_FRAME_BYTES];
                    FrameStamp::now(self.audio_frames).write(&mut frame, AUDIO_STAMP_AT);
                    let writer = writer.audio_level(self.audio_level, self.audio_level > -50);
                    if writer.write(pt, now, time, frame).is_ok() {
                        self.audio_frames += 1;
                    }
                }
            }
            MediaKind::Video => {
                for layer in self.layers.iter_mut().take(self.camera_layers) {
                    let keyframe = layer.keyframe_wanted
                        || layer
                            .last_keyframe
                            .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_EVERY);
                    let mut frame = vp8_frame(keyframe, layer.width, layer.height, layer.bytes);
                    FrameStamp::now(layer.frames).write(&mut frame, VIDEO_STAMP_AT);
                    let time = MediaTime::new(
                        layer.time_base + ticks(Frequency::NINETY_KHZ),
                        Frequency::NINETY_KHZ,
                    );
                    let Some(writer) = self.rtc.writer(self.camera) else {
                        return;
                    };
                    if writer.rid(layer.rid).write(pt, now, time, frame).is_ok() {
                        layer.frames += 1;
                        if keyframe {
                            layer.keyframe_wanted = false;
                            layer.last_keyframe = Some(now);
                        }
                    }
                }
            }
        }
    }
}

/// A VP8 frame of `bytes` bytes whose header says what a decoder looks at first: keyframe or
/// not and, for a keyframe, the picture size (RFC 6386 §9.1).
fn vp8_frame(keyframe: bool, width: u32, height: u32, bytes: usize) -> Vec<u8> {
    let mut frame = vec![0x5a; bytes.max(VIDEO_STAMP_AT + FrameStamp::BYTES)];
    if keyframe {
        frame[..3].copy_from_slice(&[0x10, 0x02, 0x00]);
        frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        frame[6..8].copy_from_slice(&(width as u16).to_le_bytes());
        frame[8..10].copy_from_slice(&(height as u16).to_le_bytes());
    } else {
        frame[..3].copy_from_slice(&[0x11, 0x02, 0x00]);
    }
    frame
}
