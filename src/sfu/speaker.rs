//! Who is speaking in a room, from the audio level each microphone packet carries (RFC 6464,
//! the level the sender's browser measured): a smoothed share of loud packets per speaker,
//! and a change of speaker only when someone clearly took over, so a cough or a laugh does
//! not move the big tile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::PeerId;

/// Louder than this (dBov) counts as speech; quiet rooms and breathing sit well below.
const SPEECH_DBOV: i8 = -50;
/// Weight of one packet (20 ms) in the smoothed share: about half a second of memory.
const PACKET_WEIGHT: f32 = 0.04;
/// A speaker needs this share of loud packets to be chosen.
const START_SHARE: f32 = 0.3;
/// The chosen speaker keeps the place unless someone else is louder by this much, or they
/// fell silent.
const TAKEOVER_MARGIN: f32 = 0.15;
const STOP_SHARE: f32 = 0.1;
/// How often a room's speaker is decided.
const DECIDE_EVERY: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
pub struct ActiveSpeaker {
    speech: HashMap<PeerId, f32>,
    current: Option<PeerId>,
    next_decision: Option<Instant>,
}

impl ActiveSpeaker {
    /// One audio packet from `peer` with its level in dBov (0 loudest, -127 silence).
    pub fn hear(&mut self, peer: PeerId, level: i8) {
        let loud = if level > SPEECH_DBOV { 1.0 } else { 0.0 };
        let share = self.speech.entry(peer).or_default();
        *share += (loud - *share) * PACKET_WEIGHT;
    }

    pub fn current(&self) -> Option<PeerId> {
        self.current
    }

    /// The new speaker, when the room's speaker changed since the last decision.
    pub fn decide(&mut self, now: Instant) -> Option<Option<PeerId>> {
        if self.next_decision.is_some_and(|at| now < at) {
            return None;
        }
        self.next_decision = Some(now + DECIDE_EVERY);
        let share = |peer: PeerId| self.speech.get(&peer).copied().unwrap_or(0.0);
        let loudest = self
            .speech
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(&peer, &share)| (peer, share))
            .filter(|&(_, share)| share >= START_SHARE);
        let next = match (self.current, loudest) {
            (_, None) => self.current.filter(|&c| share(c) >= STOP_SHARE),
            (Some(current), Some((peer, loudness)))
                if peer != current
                    && share(current) >= STOP_SHARE
                    && loudness < share(current) + TAKEOVER_MARGIN =>
            {
                Some(current)
            }
            (_, Some((peer, _))) => Some(peer),
        };
        // Silence keeps the last speaker on the big tile, as people expect.
        let next = next.or(self.current);
        (next != self.current).then(|| {
            self.current = next;
            next
        })
    }

    /// `peer` left; the new speaker if it was them.
    pub fn remove(&mut self, peer: PeerId) -> Option<Option<PeerId>> {
        self.speech.remove(&peer);
        (self.current == Some(peer)).then(|| {
            self.current = None;
            None
        })
    }

    pub fn is_empty(&self) -> bool {
        self.speech.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seconds` of 20 ms packets, with `loud` speaking and everyone else in `quiet` silent.
    fn talk(speaker: &mut ActiveSpeaker, loud: &[u64], quiet: &[u64], millis: u64) {
        for _ in 0..millis / 20 {
            for &peer in loud {
                speaker.hear(PeerId(peer), -25);
            }
            for &peer in quiet {
                speaker.hear(PeerId(peer), -90);
            }
        }
    }

    #[test]
    fn whoever_talks_becomes_the_speaker_and_keeps_it_through_silence() {
        let start = Instant::now();
        let mut speaker = ActiveSpeaker::default();
        talk(&mut speaker, &[], &[1, 2, 3], 1000);
        assert_eq!(speaker.decide(start), None, "nobody spoke");
        talk(&mut speaker, &[2], &[1, 3], 1000);
        assert_eq!(speaker.decide(start + DECIDE_EVERY), Some(Some(PeerId(2))));
        talk(&mut speaker, &[], &[1, 2, 3], 3000);
        assert_eq!(speaker.decide(start + DECIDE_EVERY * 2), None);
        assert_eq!(speaker.current(), Some(PeerId(2)));
    }

    #[test]
    fn a_short_interruption_does_not_take_over_but_a_new_speaker_does() {
        let start = Instant::now();
        let mut speaker = ActiveSpeaker::default();
        talk(&mut speaker, &[1], &[2], 2000);
        assert_eq!(speaker.decide(start), Some(Some(PeerId(1))));
        // Bob laughs for 100 ms while Ann goes on.
        talk(&mut speaker, &[1, 2], &[], 100);
        assert_eq!(speaker.decide(start + DECIDE_EVERY), None);
        // Ann stops and Bob talks.
        talk(&mut speaker, &[2], &[1], 1500);
        assert_eq!(
            speaker.decide(start + DECIDE_EVERY * 2),
            Some(Some(PeerId(2)))
        );
    }

    #[test]
    fn decisions_are_spaced_and_a_leaving_speaker_is_cleared() {
        let start = Instant::now();
        let mut speaker = ActiveSpeaker::default();
        talk(&mut speaker, &[1], &[], 1000);
        assert_eq!(speaker.decide(start), Some(Some(PeerId(1))));
        talk(&mut speaker, &[2], &[1], 3000);
        // Too soon after the last decision.
        assert_eq!(speaker.decide(start + Duration::from_millis(100)), None);
        assert_eq!(speaker.remove(PeerId(3)), None);
        assert_eq!(speaker.remove(PeerId(1)), Some(None));
        assert_eq!(speaker.decide(start + DECIDE_EVERY), Some(Some(PeerId(2))));
        speaker.remove(PeerId(2));
        assert!(speaker.is_empty());
    }
}
