//! Simulcast layer choice: which of a published video's layers each viewer receives, from the
//! size at which the viewer shows it and what the viewer's connection can take. Pure
//! functions over plain numbers, so the rules are tested without any connection.

use std::time::{Duration, Instant};

/// What a viewer asked to see of one track.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Want {
    /// No `view` yet: the best layer the connection can take.
    #[default]
    Best,
    /// Not on screen: no video at all.
    Hidden,
    /// Shown in a tile this large, in device pixels.
    Size { width: u32, height: u32 },
}

impl Want {
    pub fn from_size(width: u32, height: u32) -> Want {
        if width == 0 || height == 0 {
            Want::Hidden
        } else {
            Want::Size { width, height }
        }
    }
}

/// One layer a viewer could receive, as the forwarding unit measured it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    pub width: u32,
    pub height: u32,
    /// Bits per second over the last measured second; 0 until one was measured.
    pub bitrate: u64,
}

/// A layer may be this much smaller than its tile before a larger one is chosen: browsers
/// scale the video to the tile, and a few percent of upscaling is invisible.
const UPSCALE_TOLERANCE: f32 = 0.85;

/// The layer to send for `want`, among `layers` sorted smallest first: the smallest that fills
/// the tile, or the largest when none does. `None`: send nothing.
pub fn layer_for(layers: &[LayerInfo], want: Want) -> Option<usize> {
    let last = layers.len().checked_sub(1)?;
    match want {
        Want::Hidden => None,
        Want::Best => Some(last),
        Want::Size { width, height } => {
            let fills = |layer: &LayerInfo| {
                layer.width as f32 >= width as f32 * UPSCALE_TOLERANCE
                    && layer.height as f32 >= height as f32 * UPSCALE_TOLERANCE
            };
            Some(layers.iter().position(fills).unwrap_or(last))
        }
    }
}

/// Lowers `choices` (indices into each track's `layers`) until their bitrates add up to at
/// most `budget`, always taking the costliest choice down one layer first, so the biggest
/// tiles give way before small ones lose detail. Never below a track's lowest layer: a
/// blurry picture is better than none.
pub fn fit_budget(choices: &mut [Option<usize>], layers: &[&[LayerInfo]], budget: u64) {
    let cost = |choices: &[Option<usize>]| -> u64 {
        choices
            .iter()
            .zip(layers)
            .filter_map(|(choice, layers)| Some(layers[(*choice)?].bitrate))
            .sum()
    };
    while cost(choices) > budget {
        let costliest = choices
            .iter()
            .enumerate()
            .filter_map(|(track, choice)| match *choice {
                Some(index) if index > 0 => Some((track, layers[track][index].bitrate)),
                _ => None,
            })
            .max_by_key(|&(_, bitrate)| bitrate);
        let Some((track, _)) = costliest else {
            return;
        };
        if let Some(index) = choices[track].as_mut() {
            *index -= 1;
        }
    }
}

/// The picture size a VP8 keyframe carries (RFC 6386 §9.1), or `None` for a frame that is not
/// a keyframe.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let header = frame.get(..10)?;
    let is_keyframe = header[0] & 0x01 == 0;
    if !is_keyframe || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([header[6], header[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([header[8], header[9]]) & 0x3fff);
    Some((width, height))
}

/// Bits per second of one layer, counted over whole windows so a keyframe does not look like
/// a new rate.
#[derive(Clone, Copy, Debug)]
pub struct RateMeter {
    window_start: Instant,
    bytes: u64,
    bitrate: u64,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);

impl RateMeter {
    pub fn new(now: Instant) -> RateMeter {
        RateMeter {
            window_start: now,
            bytes: 0,
            bitrate: 0,
        }
    }

    pub fn add(&mut self, now: Instant, bytes: usize) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            self.bitrate = self.bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            self.bytes = 0;
            self.window_start = now;
        }
        self.bytes += bytes as u64;
    }

    pub fn bitrate(&self) -> u64 {
        self.bitrate
    }
}

/// When to pass a viewer's keyframe request on to a layer's sender. One request stays
/// outstanding until a keyframe arrives (it serves everyone who asks meanwhile), unless it
/// looks lost; answered requests are spaced, so a crowd joining one after another costs the
/// sender a keyframe every [`KeyframeThrottle::SPACING`] at most, and each newcomer waits for
/// its first picture no longer than that.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyframeThrottle {
    /// When the request still unanswered was sent.
    outstanding: Option<Instant>,
    last: Option<Instant>,
}

impl KeyframeThrottle {
    pub const SPACING: Duration = Duration::from_millis(100);
    /// An unanswered request after this long is taken as lost, and asked again.
    pub const RETRY: Duration = Duration::from_millis(500);

    /// Whether to send a request now; if so, it is counted as sent.
    pub fn may_ask(&mut self, now: Instant) -> bool {
        let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
        if since(self.outstanding).is_some_and(|d| d < Self::RETRY)
            || since(self.last).is_some_and(|d| d < Self::SPACING)
        {
            return false;
        }
        self.outstanding = Some(now);
        self.last = Some(now);
        true
    }

    /// A keyframe arrived, asked for or not.
    pub fn answered(&mut self) {
        self.outstanding = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(width: u32, height: u32, bitrate: u64) -> LayerInfo {
        LayerInfo {
            width,
            height,
            bitrate,
        }
    }

    fn three() -> Vec<LayerInfo> {
        vec![
            layer(320, 180, 150_000),
            layer(640, 360, 500_000),
            layer(1280, 720, 1_500_000),
        ]
    }

    #[test]
    fn the_smallest_layer_that_fills_the_tile_is_chosen() {
        let layers = three();
        assert_eq!(layer_for(&layers, Want::from_size(200, 112)), Some(0));
        assert_eq!(layer_for(&layers, Want::from_size(320, 180)), Some(0));
        // A little upscaling is fine; a lot is not.
        assert_eq!(layer_for(&layers, Want::from_size(360, 203)), Some(0));
        assert_eq!(layer_for(&layers, Want::from_size(480, 270)), Some(1));
        assert_eq!(layer_for(&layers, Want::from_size(1000, 560)), Some(2));
        // Larger than any layer: the largest.
        assert_eq!(layer_for(&layers, Want::from_size(2560, 1440)), Some(2));
        // A tall tile needs the height too.
        assert_eq!(layer_for(&layers, Want::from_size(300, 600)), Some(2));
    }

    #[test]
    fn hidden_tiles_get_nothing_and_no_view_gets_the_best() {
        let layers = three();
        assert_eq!(layer_for(&layers, Want::from_size(0, 0)), None);
        assert_eq!(layer_for(&layers, Want::Hidden), None);
        assert_eq!(layer_for(&layers, Want::Best), Some(2));
        assert_eq!(layer_for(&[], Want::Best), None);
        // A track sent without simulcast has one layer, whatever the tile.
        let one = [layer(1920, 1080, 2_000_000)];
        assert_eq!(layer_for(&one, Want::from_size(160, 90)), Some(0));
    }

    #[test]
    fn a_tight_budget_lowers_the_costliest_choices_first() {
        let camera = three();
        let layers = [camera.as_slice(), camera.as_slice(), camera.as_slice()];
        // A large tile and two small ones: 1.5M + 150k + 150k.
        let mut choices = [Some(2), Some(0), Some(0)];
        fit_budget(&mut choices, &layers, 5_000_000);
        assert_eq!(choices, [Some(2), Some(0), Some(0)]);
        fit_budget(&mut choices, &layers, 1_000_000);
        assert_eq!(choices, [Some(1), Some(0), Some(0)]);
        // Three large tiles on 1.2 Mbit/s: all three come down, most expensive first.
        let mut choices = [Some(2), Some(2), Some(2)];
        fit_budget(&mut choices, &layers, 1_200_000);
        assert_eq!(choices, [Some(1), Some(1), Some(0)]);
        // Below even the lowest layers: those stay, nothing is paused.
        let mut choices = [Some(2), None, Some(1)];
        fit_budget(&mut choices, &layers, 10_000);
        assert_eq!(choices, [Some(0), None, Some(0)]);
    }

    #[test]
    fn vp8_keyframes_tell_their_size_and_other_frames_do_not() {
        // Frame tag (keyframe, show_frame), start code, 640 × 360 with no scaling.
        let keyframe = [
            0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0xff,
        ];
        assert_eq!(vp8_keyframe_size(&keyframe), Some((640, 360)));
        let mut delta = keyframe;
        delta[0] |= 0x01;
        assert_eq!(vp8_keyframe_size(&delta), None);
        assert_eq!(vp8_keyframe_size(&keyframe[..6]), None);
        let mut garbage = keyframe;
        garbage[4] = 0;
        assert_eq!(vp8_keyframe_size(&garbage), None);
    }

    #[test]
    fn the_rate_meter_counts_whole_seconds() {
        let start = Instant::now();
        let mut meter = RateMeter::new(start);
        for ms in 0..1000u64 {
            meter.add(start + Duration::from_millis(ms), 125);
        }
        assert_eq!(meter.bitrate(), 0, "nothing measured before a window ends");
        meter.add(start + Duration::from_millis(1000), 125);
        // 1,000 × 125 bytes in one second.
        assert_eq!(meter.bitrate(), 1_000_000);
    }

    #[test]
    fn one_keyframe_request_at_a_time_and_spaced_once_answered() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.may_ask(at(0)));
        // Others asking before the keyframe comes wait for the same one.
        assert!(!throttle.may_ask(at(20)));
        assert!(!throttle.may_ask(at(150)));
        throttle.answered();
        assert!(throttle.may_ask(at(160)));
        throttle.answered();
        // Answered at once, still no more than one every SPACING.
        assert!(!throttle.may_ask(at(200)));
        assert!(throttle.may_ask(at(260)));
        // Never answered: asked again once it looks lost.
        assert!(!throttle.may_ask(at(700)));
        assert!(throttle.may_ask(at(760)));
    }
}
