//! The recorder's pure parts: reading back how far the browser's video encoder has got (the
//! video timestamps in the WebM its MediaRecorder writes), and the frame pacing and drain that
//! follow from it. No browser types, so it compiles and is tested everywhere.
//!
//! Why: Chromium's MediaRecorder keeps up to ten frames waiting for its VP8 encoder and drops
//! the waiting ones when it stops. On a busy machine (a laptop in a three-person call) one
//! frame can take 300 ms to encode, so offering twenty frames a second left seconds of picture
//! in that queue, and stopping lost them: the file's picture ended seconds before its sound.
//! Offering only as many frames as the encoder finishes, and stopping once it has written the
//! last one, keeps the whole picture.

use std::collections::HashMap;

/// Reads a WebM byte stream as it arrives, in pieces cut anywhere, and keeps the timestamp of
/// the latest video block. Only what that needs is parsed: the track types, the timestamp
/// scale, cluster timestamps and the first bytes of each block; everything else is skipped.
#[derive(Debug)]
pub struct WebmProgress {
    want: Want,
    /// Bytes of the header or field being read, not complete yet.
    pending: Vec<u8>,
    track_kinds: HashMap<u64, u64>,
    entry_number: Option<u64>,
    entry_kind: Option<u64>,
    nanos_per_tick: u64,
    cluster_ticks: u64,
    latest_video_ms: Option<u64>,
    /// The stream's first element, the EBML header, has been seen.
    started: bool,
    /// The stream was not WebM as expected; nothing more is read.
    lost: bool,
}

#[derive(Clone, Copy, Debug)]
enum Want {
    /// An element's id and size.
    Header,
    /// The whole body of a field this reads (`len` bytes).
    Field {
        id: u32,
        len: usize,
    },
    /// The first `len` bytes of a block, then `rest` to skip.
    BlockHead {
        len: usize,
        rest: u64,
    },
    Skip(u64),
}

/// Element ids, with their length marker, as written.
const EBML_HEADER: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;
const VIDEO_TRACK: u64 = 1;
/// An id is at most four bytes and a size at most eight.
const HEADER_MAX: usize = 12;
/// A block starts with its track number (up to eight bytes) and a 16-bit timestamp relative
/// to its cluster's.
const BLOCK_HEAD_MAX: usize = 10;
/// No field this reads is longer than an unsigned 64-bit integer.
const FIELD_MAX: u64 = 8;

impl Default for WebmProgress {
    fn default() -> Self {
        WebmProgress {
            want: Want::Header,
            pending: Vec::new(),
            track_kinds: HashMap::new(),
            entry_number: None,
            entry_kind: None,
            nanos_per_tick: 1_000_000,
            cluster_ticks: 0,
            latest_video_ms: None,
            started: false,
            lost: false,
        }
    }
}

impl WebmProgress {
    /// Milliseconds into the recording of the latest video frame written so far; `None` before
    /// the first, or once the stream stopped making sense.
    pub fn latest_video_ms(&self) -> Option<u64> {
        if self.lost {
            return None;
        }
        self.latest_video_ms
    }

    /// Whether the stream stopped making sense (then no progress is known).
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Reads the next piece of the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() && !self.lost {
            let available = bytes.len() - at;
            match self.want {
                Want::Skip(left) => {
                    let step = usize::try_from(left).unwrap_or(usize::MAX).min(available);
                    at += step;
                    let left = left - step as u64;
                    self.want = if left == 0 {
                        Want::Header
                    } else {
                        Want::Skip(left)
                    };
                }
                Want::Header => {
                    let before = self.pending.len();
                    let take = (HEADER_MAX - before).min(available);
                    self.pending.extend_from_slice(&bytes[at..at + take]);
                    match parse_header(&self.pending) {
                        Header::Incomplete => at += take,
                        Header::Invalid => self.lost = true,
                        Header::Complete { id, size, len } => {
                            // Bytes taken past the header belong to what follows.
                            at += len - before;
                            self.pending.clear();
                            self.open(id, size);
                        }
                    }
                }
                Want::Field { len, .. } | Want::BlockHead { len, .. } => {
                    let take = (len - self.pending.len()).min(available);
                    self.pending.extend_from_slice(&bytes[at..at + take]);
                    at += take;
                    if self.pending.len() == len {
                        let body = std::mem::take(&mut self.pending);
                        self.read(&body);
                    }
                }
            }
        }
    }

    /// An element's header has been read: go into it, read it, or skip it.
    fn open(&mut self, id: u32, size: Option<u64>) {
        if !self.started {
            self.started = true;
            self.lost = id != EBML_HEADER;
        }
        self.want = match (id, size) {
            // Containers: their children follow (a live recording leaves sizes unknown).
            (SEGMENT | CLUSTER | TRACKS | INFO | BLOCK_GROUP, _) => Want::Header,
            (TRACK_ENTRY, _) => {
                self.entry_number = None;
                self.entry_kind = None;
                Want::Header
            }
            (TIMESTAMP_SCALE | TRACK_NUMBER | TRACK_TYPE | CLUSTER_TIMESTAMP, Some(0)) => {
                self.field(id, 0);
                Want::Header
            }
            (TIMESTAMP_SCALE | TRACK_NUMBER | TRACK_TYPE | CLUSTER_TIMESTAMP, Some(len))
                if len <= FIELD_MAX =>
            {
                Want::Field {
                    id,
                    len: len as usize,
                }
            }
            (SIMPLE_BLOCK | BLOCK, Some(len)) if len >= 4 => {
                let head = len.min(BLOCK_HEAD_MAX as u64);
                Want::BlockHead {
                    len: head as usize,
                    rest: len - head,
                }
            }
            (_, Some(0)) => Want::Header,
            (
                TIMESTAMP_SCALE | TRACK_NUMBER | TRACK_TYPE | CLUSTER_TIMESTAMP | SIMPLE_BLOCK
                | BLOCK,
                _,
            )
            // Only containers may leave their size unknown.
            | (_, None) => {
                self.lost = true;
                Want::Header
            }
            (_, Some(len)) => Want::Skip(len),
        };
    }

    /// The body `open` asked for is complete.
    fn read(&mut self, body: &[u8]) {
        match self.want {
            Want::Field { id, .. } => {
                self.want = Want::Header;
                self.field(id, unsigned(body));
            }
            Want::BlockHead { rest, .. } => {
                self.want = if rest == 0 {
                    Want::Header
                } else {
                    Want::Skip(rest)
                };
                self.block(body);
            }
            Want::Header | Want::Skip(_) => {}
        }
    }

    fn field(&mut self, id: u32, value: u64) {
        match id {
            TIMESTAMP_SCALE if value == 0 => self.lost = true,
            TIMESTAMP_SCALE => self.nanos_per_tick = value,
            TRACK_NUMBER => self.entry_number = Some(value),
            TRACK_TYPE => self.entry_kind = Some(value),
            CLUSTER_TIMESTAMP => self.cluster_ticks = value,
            _ => {}
        }
        if let (Some(number), Some(kind)) = (self.entry_number, self.entry_kind) {
            self.track_kinds.insert(number, kind);
        }
    }

    fn block(&mut self, head: &[u8]) {
        let Some((track, len)) = read_vint(head, 8) else {
            self.lost = true;
            return;
        };
        let Some(relative) = head.get(len..len + 2) else {
            self.lost = true;
            return;
        };
        if self.track_kinds.get(&track.value) != Some(&VIDEO_TRACK) {
            return;
        }
        let relative = i64::from(i16::from_be_bytes([relative[0], relative[1]]));
        let ticks = i64::try_from(self.cluster_ticks)
            .unwrap_or(i64::MAX)
            .saturating_add(relative)
            .max(0) as u64;
        let ms = ticks.saturating_mul(self.nanos_per_tick) / 1_000_000;
        self.latest_video_ms = Some(self.latest_video_ms.map_or(ms, |latest| latest.max(ms)));
    }
}

enum Header {
    Incomplete,
    Invalid,
    /// `size` is `None` when the element leaves it unknown; `len` is the header's length.
    Complete {
        id: u32,
        size: Option<u64>,
        len: usize,
    },
}

fn parse_header(bytes: &[u8]) -> Header {
    let Some(&first) = bytes.first() else {
        return Header::Incomplete;
    };
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Header::Invalid;
    }
    let Some(id) = bytes.get(..id_len) else {
        return Header::Incomplete;
    };
    let id = id.iter().fold(0u32, |id, &b| id << 8 | u32::from(b));
    match bytes.get(id_len..).and_then(|rest| {
        if rest.is_empty() {
            None
        } else {
            Some(read_vint(rest, 8))
        }
    }) {
        None => Header::Incomplete,
        Some(None) if bytes.len() >= HEADER_MAX || bytes[id_len] == 0 => Header::Invalid,
        Some(None) => Header::Incomplete,
        Some(Some((size, size_len))) => Header::Complete {
            id,
            size: (!size.unknown).then_some(size.value),
            len: id_len + size_len,
        },
    }
}

struct Vint {
    value: u64,
    /// All value bits set: an element size that is unknown.
    unknown: bool,
}

/// A variable-length integer of at most `max` bytes, and its length; `None` if it is longer,
/// or not all there yet.
fn read_vint(bytes: &[u8], max: usize) -> Option<(Vint, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > max {
        return None;
    }
    let bytes = bytes.get(..len)?;
    let marker_free = u64::from(first) & (0xFF >> len);
    let value = bytes[1..]
        .iter()
        .fold(marker_free, |value, &b| value << 8 | u64::from(b));
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((
        Vint {
            value,
            unknown: value == all_ones,
        },
        len,
    ))
}

fn unsigned(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |value, &b| value << 8 | u64::from(b))
}

/// How often the recorder offers the encoder a frame: twenty a second while it keeps up,
/// fewer while its output falls behind the clock.
#[derive(Debug)]
pub struct FramePacing {
    interval_ms: u32,
    last_lag_ms: Option<u64>,
}

/// Twenty frames a second, as the canvas is drawn at best.
pub const FASTEST_FRAME_MS: u32 = 50;
/// Never fewer than about three frames a second: a slide show still shows who spoke.
pub const SLOWEST_FRAME_MS: u32 = 320;
/// Output this far behind the clock means frames are queueing for the encoder.
const BEHIND_MS: u64 = 700;
/// Output this close to the clock means the encoder has room for more.
const CAUGHT_UP_MS: u64 = 350;

impl Default for FramePacing {
    fn default() -> Self {
        FramePacing {
            interval_ms: FASTEST_FRAME_MS,
            last_lag_ms: None,
        }
    }
}

impl FramePacing {
    /// Milliseconds to leave between two frames now.
    pub fn interval_ms(&self) -> u32 {
        self.interval_ms
    }

    /// The recorder's output has reached `encoded_until_ms` of video when `elapsed_ms` have
    /// passed since it started.
    pub fn on_progress(&mut self, elapsed_ms: u64, encoded_until_ms: u64) {
        let lag = elapsed_ms.saturating_sub(encoded_until_ms);
        // Slower only while the lag is not already shrinking: frames queued before the last
        // slow-down take a while to drain, and slowing again for them would overshoot.
        let shrinking = self
            .last_lag_ms
            .is_some_and(|last| lag + u64::from(FASTEST_FRAME_MS) < last);
        if lag > BEHIND_MS && !shrinking {
            self.interval_ms = (self.interval_ms * 3 / 2).min(SLOWEST_FRAME_MS);
        } else if lag < CAUGHT_UP_MS {
            self.interval_ms = (self.interval_ms * 4 / 5).max(FASTEST_FRAME_MS);
        }
        self.last_lag_ms = Some(lag);
    }
}

/// After "stop": when to stop the browser's recorder, so the frames still with the encoder
/// make it into the file.
#[derive(Debug)]
pub struct Drain {
    started_ms: u64,
    /// Recording time of the last frame drawn.
    drawn_until_ms: u64,
    progress: Option<u64>,
    progress_at_ms: u64,
}

/// Without readable progress, the encoder gets this long (what it had before progress was
/// read).
pub const BLIND_DRAIN_MS: u64 = 1_000;
/// Progress that stops this long means the encoder has nothing left (it may have dropped the
/// last frames offered).
const STALLED_MS: u64 = 1_500;
/// However far behind the encoder is, the file downloads by then.
pub const LONGEST_DRAIN_MS: u64 = 6_000;
/// The last frame's timestamp is its capture time, a little before it was drawn, and the
/// recording's zero is its first frame, a little after the recorder started.
const LAST_FRAME_SLACK_MS: u64 = 200;

impl Drain {
    /// Stopped at `now_ms` (any clock), with the last frame drawn at `drawn_until_ms` of the
    /// recording and `progress` written so far.
    pub fn new(now_ms: u64, drawn_until_ms: u64, progress: Option<u64>) -> Self {
        Drain {
            started_ms: now_ms,
            drawn_until_ms,
            progress,
            progress_at_ms: now_ms,
        }
    }

    /// Whether to stop the recorder now, with `progress` the latest video written.
    pub fn is_done(&mut self, now_ms: u64, progress: Option<u64>, lost: bool) -> bool {
        let waited = now_ms.saturating_sub(self.started_ms);
        if waited >= LONGEST_DRAIN_MS {
            return true;
        }
        if lost {
            return waited >= BLIND_DRAIN_MS;
        }
        if progress > self.progress {
            self.progress = progress;
            self.progress_at_ms = now_ms;
        }
        if self
            .progress
            .is_some_and(|written| written + LAST_FRAME_SLACK_MS >= self.drawn_until_ms)
        {
            return true;
        }
        now_ms.saturating_sub(self.progress_at_ms) >= STALLED_MS.max(BLIND_DRAIN_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An element as a recorder writes it: id, size (eight bytes, or unknown), body.
    fn element(id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = id_bytes(id);
        out.push(0x01);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    fn id_bytes(id: u32) -> Vec<u8> {
        id.to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect()
    }

    fn unknown_size(id: u32) -> Vec<u8> {
        let mut out = id_bytes(id);
        out.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        out
    }

    fn uint(id: u32, value: u64) -> Vec<u8> {
        let bytes: Vec<u8> = value
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        // One-byte size, as most writers use for small fields.
        let mut out = id_bytes(id);
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
        out
    }

    fn simple_block(track: u8, relative: i16, payload: usize) -> Vec<u8> {
        let mut body = vec![0x80 | track];
        body.extend_from_slice(&relative.to_be_bytes());
        body.push(0x80);
        body.extend(std::iter::repeat_n(0x5A, payload));
        element(SIMPLE_BLOCK, &body)
    }

    /// A live recording: video on track 1, sound on track 2, two clusters.
    fn recording(scale: u64) -> Vec<u8> {
        let mut out = element(EBML_HEADER, &uint(0x4282, 6)[..]);
        out.extend(unknown_size(SEGMENT));
        out.extend(element(INFO, &uint(TIMESTAMP_SCALE, scale)));
        let mut tracks = Vec::new();
        for (number, kind) in [(1, 1), (2, 2)] {
            let mut entry = uint(TRACK_NUMBER, number);
            entry.extend(uint(0x73C5, 0xDEAD_BEEF));
            entry.extend(uint(TRACK_TYPE, kind));
            entry.extend(element(0x86, b"V_VP8"));
            tracks.extend(element(TRACK_ENTRY, &entry));
        }
        out.extend(element(TRACKS, &tracks));
        out.extend(unknown_size(CLUSTER));
        out.extend(uint(CLUSTER_TIMESTAMP, 0));
        out.extend(simple_block(1, 0, 3_000));
        out.extend(simple_block(2, 20, 80));
        out.extend(simple_block(1, 120, 900));
        out.extend(unknown_size(CLUSTER));
        out.extend(uint(CLUSTER_TIMESTAMP, 5_000));
        out.extend(simple_block(1, 400, 40_000));
        // Sound after the last picture: its later timestamp is not the video's.
        out.extend(simple_block(2, 900, 80));
        out
    }

    #[test]
    fn the_latest_video_timestamp_is_read_whole_or_in_any_pieces() {
        let file = recording(1_000_000);
        let mut whole = WebmProgress::default();
        whole.push(&file);
        assert_eq!(whole.latest_video_ms(), Some(5_400));
        for piece in [1, 2, 3, 7, 13, 4096] {
            let mut progress = WebmProgress::default();
            for chunk in file.chunks(piece) {
                progress.push(chunk);
            }
            assert_eq!(progress.latest_video_ms(), Some(5_400), "pieces of {piece}");
            assert!(!progress.is_lost());
        }
    }

    #[test]
    fn progress_grows_as_the_stream_arrives() {
        let file = recording(1_000_000);
        let mut progress = WebmProgress::default();
        let mut seen = Vec::new();
        for chunk in file.chunks(50) {
            progress.push(chunk);
            seen.push(progress.latest_video_ms());
        }
        assert_eq!(seen.first(), Some(&None));
        assert!(seen.contains(&Some(120)));
        assert!(seen.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn the_timestamp_scale_is_honoured() {
        let mut progress = WebmProgress::default();
        progress.push(&recording(500_000));
        assert_eq!(progress.latest_video_ms(), Some(2_700));
    }

    #[test]
    fn what_is_not_webm_gives_no_progress_and_no_panic() {
        for junk in [
            vec![0u8; 64],
            vec![0xFF; 64],
            b"<html>not a recording</html>".to_vec(),
            // A block too short to hold its header.
            [&recording(1_000_000)[..30], &element(SIMPLE_BLOCK, &[0x81])].concat(),
            // A field this reads, with an unknown size.
            [
                &recording(1_000_000)[..30],
                &unknown_size(CLUSTER_TIMESTAMP),
            ]
            .concat(),
        ] {
            let mut progress = WebmProgress::default();
            progress.push(&junk);
            assert_eq!(progress.latest_video_ms(), None);
            assert!(progress.is_lost(), "{junk:?}");
        }
        // Cut mid-stream is not an error: the rest may still come.
        let mut progress = WebmProgress::default();
        progress.push(&recording(1_000_000)[..40]);
        assert!(!progress.is_lost());
    }

    #[test]
    fn pacing_slows_while_the_encoder_falls_behind_and_recovers_when_it_catches_up() {
        let mut pacing = FramePacing::default();
        assert_eq!(pacing.interval_ms(), FASTEST_FRAME_MS);
        // Keeping up: no change.
        pacing.on_progress(1_000, 850);
        assert_eq!(pacing.interval_ms(), FASTEST_FRAME_MS);
        // Falling behind: fewer frames, down to the floor and no further.
        let mut elapsed = 1_000;
        let mut lag = 800;
        for _ in 0..10 {
            elapsed += 1_000;
            lag += 400;
            pacing.on_progress(elapsed, elapsed - lag);
        }
        assert_eq!(pacing.interval_ms(), SLOWEST_FRAME_MS);
        // Behind but draining: held where it is.
        let slowest = pacing.interval_ms();
        pacing.on_progress(elapsed + 1_000, elapsed + 1_000 - (lag - 500));
        assert_eq!(pacing.interval_ms(), slowest);
        // Caught up: back to full speed step by step.
        for step in 0..20 {
            pacing.on_progress(20_000 + step * 1_000, 20_000 + step * 1_000 - 200);
        }
        assert_eq!(pacing.interval_ms(), FASTEST_FRAME_MS);
    }

    #[test]
    fn one_late_reading_slows_once_not_to_the_floor() {
        let mut pacing = FramePacing::default();
        pacing.on_progress(1_000, 0);
        let once = pacing.interval_ms();
        assert!(once > FASTEST_FRAME_MS && once < SLOWEST_FRAME_MS);
        // The queue drains: the lag shrinks, so no further slow-down.
        pacing.on_progress(2_000, 1_500);
        pacing.on_progress(3_000, 2_700);
        assert!(pacing.interval_ms() <= once);
    }

    #[test]
    fn the_drain_ends_when_the_last_frame_is_written() {
        let mut drain = Drain::new(10_000, 6_000, Some(3_000));
        assert!(!drain.is_done(10_250, Some(3_400), false));
        assert!(!drain.is_done(10_500, Some(4_500), false));
        assert!(drain.is_done(11_000, Some(5_850), false));
    }

    #[test]
    fn the_drain_ends_when_the_encoder_stops_writing_or_takes_too_long() {
        // The last frames were dropped: progress stops short of them.
        let mut drain = Drain::new(10_000, 6_000, Some(3_000));
        assert!(!drain.is_done(10_500, Some(4_000), false));
        assert!(!drain.is_done(11_900, Some(4_000), false));
        assert!(drain.is_done(12_000, Some(4_000), false));
        // Writing slowly but steadily: cut off at the longest drain.
        let mut drain = Drain::new(0, 60_000, Some(0));
        let mut now = 0;
        while !drain.is_done(now, Some(now), false) {
            now += 250;
        }
        assert_eq!(now, LONGEST_DRAIN_MS);
    }

    #[test]
    fn without_readable_progress_the_drain_is_the_fixed_second() {
        let mut drain = Drain::new(0, 6_000, None);
        assert!(!drain.is_done(750, None, true));
        assert!(drain.is_done(1_000, None, true));
        // Nothing written yet either: stopped after the same second.
        let mut drain = Drain::new(0, 6_000, None);
        assert!(!drain.is_done(750, None, false));
        assert!(drain.is_done(1_500, None, false));
    }
}
