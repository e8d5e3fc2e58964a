//! The forwarding logic: one str0m `Rtc` per participant, the tracks each one publishes, what
//! each one receives of the others in its room, and the SDP renegotiations that keep the two
//! in step. Sans-IO: callers pass datagrams and the time in, and send out what
//! [`Sfu::poll_output`] hands back.
//!
//! The browser offers once, with three transceivers it only sends on (microphone, camera,
//! screen, in that order); the server answers, then makes every later offer itself, adding a
//! receive section per track of every other participant and removing those of people who
//! leave. The browser answers; it never offers again on that connection, so the two sides
//! never offer at once.
//!
//! Media is forwarded in str0m's RTP mode: each packet leaves as it came, its payload shared
//! by every viewer, with the sequence numbers, timestamps and payload type of that viewer's
//! section; nothing is reassembled into frames or cut up again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::CryptoProvider;
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite, SeqNo, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};

use super::layers::{
    fit_budget, layer_for, vp8_keyframe_size, KeyframeThrottle, LayerInfo, RateMeter, Want,
};
use super::speaker::ActiveSpeaker;
use crate::protocol::{MediaState, PeerId, RemoteTrack, ServerMsg, TileView, TrackSource};

/// Which room a participant is in; media never crosses rooms.
pub type RoomKey = Arc<str>;

/// A simulcast layer that sent nothing for this long is gone (the sender's browser dropped it
/// for lack of CPU or bandwidth); its viewers move to another.
const LAYER_STALE: Duration = Duration::from_secs(1);

/// What each connection's bandwidth estimate starts at, before feedback arrives; enough for
/// a few small tiles, raised by probing on a good link.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(2_000);

/// Kept free of each estimate for audio, one allowance per received microphone.
const AUDIO_ALLOWANCE_BPS: u64 = 40_000;

/// A microphone packet this loud (dBov), or marked as voice by the sender, is speech; one
/// quieter and unmarked is silence, which is not forwarded: in a large meeting nearly every
/// microphone is quiet, and their packets were most of what the server sent.
const SILENCE_DBOV: i8 = -60;

/// After speech, a microphone's packets go on this long anyway, so soft ends of words and the
/// pauses between them are heard.
const SPEECH_HANGOVER: Duration = Duration::from_secs(1);

/// Video packets each outgoing stream keeps for retransmission (and while paced). str0m's
/// 1,000 held over a megabyte per viewer per video; 160 is about a second of the top layer
/// (a NACK comes within a round trip) and three of the middle one, and holds any keyframe.
const SEND_BUFFER_VIDEO: usize = 160;

/// A viewer held below the layers its tiles want for this long gets its bandwidth estimate
/// started over, with fresh probes, and again this often while it stays held back. After a
/// bad spell its link may have cleared, but the estimator only grows to 1.5 times what it
/// sends, and probes by itself only when the viewer sends well below its estimate: a viewer
/// moved to a middle layer can stay there for good (str0m's "stagnant" probe waits 15 s).
const RECOVERY_PROBE_AFTER: Duration = Duration::from_secs(3);
const RECOVERY_PROBE_EVERY: Duration = Duration::from_secs(6);

/// Draws of new sections' mids for one offer before giving up until the next change (a
/// repeat is rare: a hundred sections drawn at once repeat a mid about 3% of the time).
const MID_DRAWS: usize = 8;

/// Timeouts due at once that one poll of a connection runs before it yields to the others.
const MAX_IMMEDIATE_TIMEOUTS: usize = 256;

/// How often each connection reports its counters (NACKs) to the engine.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// A layer of a published track: its simulcast rid, or `None` for a track sent as one
/// stream (a screen, or a browser that does not simulcast).
type LayerId = Option<Rid>;

/// What the caller must carry out.
#[derive(Debug, PartialEq)]
pub enum SfuOutput {
    /// A datagram to send from the media socket.
    Transmit {
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A signalling message for one participant, over their room's WebSocket.
    Signal { peer: PeerId, msg: ServerMsg },
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// Frames written to a subscriber.
    pub packets_forwarded: u64,
    /// Frames a subscriber's connection refused to take.
    pub forwarding_errors: u64,
    pub keyframe_requests: u64,
    /// Viewers moved from one simulcast layer to another (or started receiving one).
    pub layer_switches: u64,
    /// Retransmission requests from viewers (answered from the server's buffers) and to
    /// publishers (for what the server lost).
    pub nacks_received: u64,
    pub nacks_sent: u64,
    /// Changes of a room's active speaker.
    pub speaker_changes: u64,
    /// Microphone frames of silence, not forwarded.
    pub silence_dropped: u64,
    /// Frames of a source a host turned off (from a page that kept sending), not forwarded.
    pub withheld_dropped: u64,
    /// Bandwidth estimates started over for viewers held below what their tiles want.
    pub recovery_probes: u64,
    /// Offers whose new sections were given a mid twice by str0m, and drawn again.
    pub mids_redrawn: u64,
    /// Datagrams from an address no participant has used, that named nobody either.
    pub unknown_datagrams: u64,
}

/// Why an offer or answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct SfuError(pub String);

pub struct Sfu {
    /// Host candidates the server offers: its media socket on each public address.
    candidates: Vec<SocketAddr>,
    crypto: Arc<CryptoProvider>,
    participants: HashMap<PeerId, Participant>,
    /// What hosts turned off, per participant: frames of those sources are dropped. Kept
    /// apart from `participants`, since it may come before the participant's offer.
    withheld: HashMap<PeerId, MediaState>,
    /// Who is connected in each room, so forwarding a frame looks at its room only.
    rooms: HashMap<RoomKey, Vec<PeerId>>,
    /// Where each participant's datagrams come from, once ICE told us.
    by_source: HashMap<SocketAddr, PeerId>,
    /// A participant's ICE username fragment, which names it in the first STUN request from
    /// a new address.
    by_ufrag: HashMap<String, PeerId>,
    /// Who speaks in each room with anyone connected.
    speakers: HashMap<RoomKey, ActiveSpeaker>,
    /// Every participant's next timeout, soonest first, so a wake-up finds the due ones
    /// without looking at everyone.
    timeouts: BTreeSet<(Instant, PeerId)>,
    /// Senders just asked for a keyframe: their connections have the request to send, and
    /// are polled before anything else so it leaves at once.
    keyframes_asked: Vec<PeerId>,
    outputs: VecDeque<SfuOutput>,
    stats: SfuStats,
    /// Buffers the forwarding path reuses, so a frame costs no allocation of ours: the
    /// work queue of a `drive` (taken, and given back empty), a frame's fresh layers and who
    /// received it.
    spare_work: VecDeque<Propagation>,
    fresh_layers: Vec<LayerId>,
    spare_viewers: Vec<PeerId>,
}

struct Participant {
    room: RoomKey,
    rtc: Rtc,
    ufrag: String,
    sources: Vec<SocketAddr>,
    published: Vec<Published>,
    subscriptions: Vec<Subscription>,
    /// Our offer waiting for the browser's answer.
    pending: Option<SdpPendingOffer>,
    /// When `rtc` next wants a timeout.
    timeout: Instant,
    /// The sizes at which this browser shows the others' video, from its latest `view`;
    /// `None` before the first.
    view: Option<HashMap<(PeerId, TrackSource), Want>>,
    /// What this participant's downlink can take, from str0m's bandwidth estimate.
    estimate: Option<u64>,
    /// A ceiling on `estimate` set from outside (tests of a constrained link).
    downlink_cap: Option<u64>,
    /// Since when its bandwidth keeps it below the layers its tiles want, and when its
    /// estimator was last started over for that.
    held_back_since: Option<Instant>,
    last_recovery_probe: Option<Instant>,
    /// NACK counts as last reported per stream (the reports are running totals).
    nacks: HashMap<(bool, Mid, LayerId), u64>,
}

/// A track the participant sends.
struct Published {
    mid: Mid,
    kind: MediaKind,
    source: TrackSource,
    /// Its simulcast layers (one for audio and unsimulcast video), as they arrived.
    layers: Vec<Layer>,
    /// Whether media arrived on it yet. Only then do the others get a section for it: a
    /// screen nobody shares or a camera that is off costs no one an SDP section.
    live: bool,
    /// For a microphone: when it last carried speech.
    last_speech: Option<Instant>,
}

struct Layer {
    id: LayerId,
    /// The picture size of its latest keyframe; none seen yet, the layer cannot be chosen
    /// (a viewer could not decode it anyway).
    size: Option<(u32, u32)>,
    rate: RateMeter,
    last_frame: Instant,
    /// Every viewer that opens or switches to the layer asks for a keyframe; these go on
    /// to the sender only so often.
    keyframes: KeyframeThrottle,
}

/// Another participant's track, as this participant receives it.
struct Subscription {
    origin: PeerId,
    origin_mid: Mid,
    kind: MediaKind,
    source: TrackSource,
    state: SubscriptionState,
    /// The layer being forwarded; `None` before the first keyframe and while paused.
    current: Option<LayerId>,
    /// The layer it should get; `None`: nothing (a hidden tile). A switch happens at the
    /// target's next keyframe, so the picture never breaks up.
    target: Option<LayerId>,
    /// How received timestamps map to forwarded ones, so a layer switch (each layer has its
    /// own RTP clock) does not make the viewer's clock jump.
    clock: Option<OutClock>,
    /// How received sequence numbers map to forwarded ones, so the viewer sees one unbroken
    /// sequence across layer switches (each layer has its own).
    sequence: SequenceMap,
    /// The payload type received and the one this viewer's connection agreed for it.
    payload_type: Option<(Pt, Pt)>,
    /// The last packet forwarded did not end its frame.
    frame_open: bool,
    /// The target layer's packets from its keyframe on, held while the current layer's frame
    /// finishes (at most `MAX_HELD_PACKETS`), and that layer.
    held: Vec<Unit>,
    held_layer: LayerId,
}

#[derive(Clone, Copy, Debug)]
struct OutClock {
    offset: u64,
    last_out: u64,
    last_at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubscriptionState {
    /// To be added in the next offer.
    ToOpen,
    /// Offered, not answered yet.
    Negotiating(Mid),
    Open(Mid),
    /// To be removed in the next offer (its origin left).
    ToStop(Mid),
    Stopping(Mid),
}

impl SubscriptionState {
    fn mid(self) -> Option<Mid> {
        match self {
            SubscriptionState::ToOpen => None,
            SubscriptionState::Negotiating(mid)
            | SubscriptionState::Open(mid)
            | SubscriptionState::ToStop(mid)
            | SubscriptionState::Stopping(mid) => Some(mid),
        }
    }
}

/// Work one participant's output makes for the others.
enum Propagation {
    Published {
        origin: PeerId,
        mid: Mid,
        kind: MediaKind,
        source: TrackSource,
    },
    Rtp(Box<Arrived>),
    KeyframeWanted {
        origin: PeerId,
        mid: Mid,
        layer: LayerId,
        kind: KeyframeRequestKind,
    },
    /// A track's usable layers changed (one appeared, changed size): its viewers choose again.
    LayersChanged(PeerId),
    /// A viewer's bandwidth estimate moved.
    Reallocate(PeerId),
    Gone(PeerId),
}

impl Sfu {
    pub fn new(candidates: Vec<SocketAddr>) -> Sfu {
        Sfu {
            candidates,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            participants: HashMap::new(),
            withheld: HashMap::new(),
            rooms: HashMap::new(),
            by_source: HashMap::new(),
            by_ufrag: HashMap::new(),
            speakers: HashMap::new(),
            timeouts: BTreeSet::new(),
            keyframes_asked: Vec::new(),
            outputs: VecDeque::new(),
            stats: SfuStats::default(),
            spare_work: VecDeque::new(),
            fresh_layers: Vec::new(),
            spare_viewers: Vec::new(),
        }
    }

    /// Everyone connected in `room`.
    fn members(&self, room: &RoomKey) -> &[PeerId] {
        self.rooms.get(room).map_or(&[], Vec::as_slice)
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn stats(&self) -> SfuStats {
        self.stats
    }

    /// Whether `peer` has a connection to the server.
    pub fn has(&self, peer: PeerId) -> bool {
        self.participants.contains_key(&peer)
    }

    /// The browser's offer for its connection: answers it and starts sending it everyone
    /// else's tracks. An offer from someone already connected is a new connection (a
    /// reload, a restarted call) and replaces the old one.
    pub fn offer(
        &mut self,
        now: Instant,
        room: RoomKey,
        peer: PeerId,
        sdp: &str,
    ) -> Result<(), SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| SfuError(format!("not an SDP offer: {e}")))?;
        self.remove(now, peer);
        let creds = IceCreds::new();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_crypto_provider(Arc::clone(&self.crypto))
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_bwe(Some(INITIAL_ESTIMATE))
            .set_send_buffer_video(SEND_BUFFER_VIDEO)
            .set_stats_interval(Some(STATS_INTERVAL))
            .set_rtp_mode(true)
            .build(now);
        for &address in &self.candidates {
            if let Ok(candidate) = Candidate::host(address, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError(format!("the offer cannot be answered: {e}")))?;
        self.outputs.push_back(SfuOutput::Signal {
            peer,
            msg: ServerMsg::MediaAnswer {
                sdp: answer.to_sdp_string(),
            },
        });
        let subscriptions = self
            .members(&room)
            .iter()
            .filter_map(|origin| Some((*origin, self.participants.get(origin)?)))
            .flat_map(|(origin, other)| {
                let live = other.published.iter().filter(|track| track.live);
                live.map(move |track| {
                    Subscription::new(origin, track.mid, track.kind, track.source)
                })
            })
            .collect();
        self.by_ufrag.insert(creds.ufrag.clone(), peer);
        let speaker = self.speakers.get(&room).and_then(ActiveSpeaker::current);
        self.timeouts.insert((now, peer));
        self.rooms.entry(Arc::clone(&room)).or_default().push(peer);
        self.participants.insert(
            peer,
            Participant {
                room,
                rtc,
                ufrag: creds.ufrag,
                sources: Vec::new(),
                published: Vec::new(),
                subscriptions,
                pending: None,
                timeout: now,
                view: None,
                estimate: None,
                downlink_cap: None,
                held_back_since: None,
                last_recovery_probe: None,
                nacks: HashMap::new(),
            },
        );
        if speaker.is_some() {
            self.outputs.push_back(SfuOutput::Signal {
                peer,
                msg: ServerMsg::ActiveSpeaker { peer: speaker },
            });
        }
        self.drive(now, peer);
        self.negotiate(peer);
        Ok(())
    }

    /// The sizes at which `peer` shows the others' video changed: each of their tracks moves
    /// to the layer that fills its tile, or stops if hidden. Tracks the view does not name
    /// get the best layer the connection can take.
    pub fn set_view(&mut self, now: Instant, peer: PeerId, tiles: &[TileView]) {
        let Some(participant) = self.participants.get_mut(&peer) else {
            return;
        };
        participant.view = Some(
            tiles
                .iter()
                .map(|tile| {
                    let want = Want::from_size(tile.width, tile.height);
                    ((tile.peer, tile.source), want)
                })
                .collect(),
        );
        self.allocate(now, peer);
        self.drive(now, peer);
    }

    /// Caps what `peer`'s downlink is taken to carry, as if its bandwidth estimate said so.
    #[cfg(test)]
    pub fn set_estimate(&mut self, now: Instant, peer: PeerId, bits_per_second: u64) {
        if let Some(participant) = self.participants.get_mut(&peer) {
            participant.downlink_cap = Some(bits_per_second);
            self.allocate(now, peer);
            self.drive(now, peer);
        }
    }

    /// The browser's answer to our latest offer.
    pub fn answer(&mut self, now: Instant, peer: PeerId, sdp: &str) -> Result<(), SfuError> {
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| SfuError(format!("not an SDP answer: {e}")))?;
        let Some(participant) = self.participants.get_mut(&peer) else {
            return Err(SfuError("no connection to answer for; offer first".into()));
        };
        let Some(pending) = participant.pending.take() else {
            return Err(SfuError("no offer is waiting for an answer".into()));
        };
        participant
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| SfuError(format!("the answer does not fit the offer: {e}")))?;
        participant.subscriptions.retain_mut(|sub| match sub.state {
            SubscriptionState::Negotiating(mid) => {
                sub.state = SubscriptionState::Open(mid);
                true
            }
            SubscriptionState::Stopping(_) => false,
            _ => true,
        });
        // Choosing layers for the new sections asks their senders for keyframes: a viewer
        // should not wait for the next natural one.
        self.allocate(now, peer);
        self.drive(now, peer);
        self.negotiate(peer);
        Ok(())
    }

    /// The participant left the call or the room: frees their connection and stops their
    /// tracks for everyone else.
    /// Drops `sources` of what `peer` sends from now on (none: forwards everything again).
    pub fn withhold(&mut self, peer: PeerId, sources: MediaState) {
        if sources.is_off() {
            self.withheld.remove(&peer);
        } else {
            self.withheld.insert(peer, sources);
        }
    }

    pub fn remove(&mut self, now: Instant, peer: PeerId) {
        self.withheld.remove(&peer);
        let Some(mut gone) = self.participants.remove(&peer) else {
            return;
        };
        gone.rtc.disconnect();
        self.timeouts.remove(&(gone.timeout, peer));
        self.by_ufrag.remove(&gone.ufrag);
        for source in &gone.sources {
            self.by_source.remove(source);
        }
        if let Some(members) = self.rooms.get_mut(&gone.room) {
            members.retain(|&member| member != peer);
            if members.is_empty() {
                self.rooms.remove(&gone.room);
                self.speakers.remove(&gone.room);
            }
        }
        // Told to those still there.
        if let Some(speaker) = self.speakers.get_mut(&gone.room) {
            if let Some(change) = speaker.remove(peer) {
                self.announce_speaker(&gone.room, change);
            }
        }
        let others: Vec<PeerId> = self.members(&gone.room).to_vec();
        for &id in &others {
            if let Some(other) = self.participants.get_mut(&id) {
                other.subscriptions.retain_mut(|sub| {
                    if sub.origin != peer {
                        return true;
                    }
                    match sub.state {
                        SubscriptionState::ToOpen => false,
                        SubscriptionState::Negotiating(mid) | SubscriptionState::Open(mid) => {
                            sub.state = SubscriptionState::ToStop(mid);
                            true
                        }
                        _ => true,
                    }
                });
            }
        }
        for other in others {
            self.negotiate(other);
            self.drive(now, other);
        }
    }

    /// A datagram arrived on the media socket.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += contents.len() as u64;
        let Some(peer) = self.sender_of(source, contents) else {
            self.stats.unknown_datagrams += 1;
            return;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, destination, contents) else {
            return;
        };
        let Some(participant) = self.participants.get_mut(&peer) else {
            return;
        };
        if participant
            .rtc
            .handle_input(Input::Receive(now, receive))
            .is_err()
        {
            self.remove(now, peer);
            return;
        }
        self.drive(now, peer);
    }

    /// The participant a datagram is from: by its source address, or for a first STUN request
    /// from a new address, by the username fragment it names.
    fn sender_of(&mut self, source: SocketAddr, contents: &[u8]) -> Option<PeerId> {
        if let Some(&peer) = self.by_source.get(&source) {
            return Some(peer);
        }
        let stun = str0m::ice::StunMessage::parse(contents).ok()?;
        let (local, _remote) = stun.split_username()?;
        let peer = *self.by_ufrag.get(local)?;
        let participant = self.participants.get_mut(&peer)?;
        participant.sources.push(source);
        self.by_source.insert(source, peer);
        Some(peer)
    }

    /// When [`Sfu::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timeouts.first().map(|&(at, _)| at)
    }

    /// Time passed: every participant whose timeout is due runs it.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .timeouts
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .map(|&(_, peer)| peer)
            .collect();
        for peer in due {
            let Some(participant) = self.participants.get_mut(&peer) else {
                continue;
            };
            if participant.rtc.handle_input(Input::Timeout(now)).is_err() {
                self.remove(now, peer);
                continue;
            }
            self.drive(now, peer);
        }
    }

    /// Panics unless the indexes agree with the participants (one timeout entry each, at
    /// their timeout, each listed once in its room, no mid on two of its sections, and every
    /// source and ufrag naming someone present) and no keyframe
    /// request was left unsent.
    #[cfg(test)]
    pub fn check_indexes(&self) {
        assert!(self.keyframes_asked.is_empty());
        assert_eq!(self.timeouts.len(), self.participants.len());
        for (peer, participant) in &self.participants {
            assert!(self.timeouts.contains(&(participant.timeout, *peer)));
        }
        for peer in self.by_source.values().chain(self.by_ufrag.values()) {
            assert!(self.participants.contains_key(peer));
        }
        let listed: usize = self.rooms.values().map(Vec::len).sum();
        assert_eq!(listed, self.participants.len());
        for (peer, participant) in &self.participants {
            assert!(self.members(&participant.room).contains(peer));
            let mut mids: Vec<Mid> = participant
                .subscriptions
                .iter()
                .filter_map(|sub| sub.state.mid())
                .collect();
            mids.sort_unstable_by_key(|mid| mid.to_string());
            let before = mids.len();
            mids.dedup();
            assert_eq!(mids.len(), before, "a mid given to two sections");
        }
    }

    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        self.outputs.pop_front()
    }

    /// Polls `peer`'s connection until it wants a timeout, then carries what came out of it
    /// to the others; which may make more to poll.
    fn drive(&mut self, now: Instant, peer: PeerId) {
        // A `drive` within a `drive` (someone left) finds the spare taken and starts its own.
        let mut work = std::mem::take(&mut self.spare_work);
        self.poll_participant(now, peer, &mut work);
        loop {
            while let Some(origin) = self.keyframes_asked.pop() {
                self.poll_participant(now, origin, &mut work);
            }
            let Some(item) = work.pop_front() else {
                self.spare_work = work;
                break;
            };
            match item {
                Propagation::Published {
                    origin,
                    mid,
                    kind,
                    source,
                } => {
                    let room = match self.participants.get(&origin) {
                        Some(p) => Arc::clone(&p.room),
                        None => continue,
                    };
                    let viewers: Vec<PeerId> = self
                        .members(&room)
                        .iter()
                        .copied()
                        .filter(|&id| id != origin)
                        .collect();
                    for &viewer in &viewers {
                        if let Some(p) = self.participants.get_mut(&viewer) {
                            p.subscriptions
                                .push(Subscription::new(origin, mid, kind, source));
                        }
                    }
                    for viewer in viewers {
                        self.negotiate(viewer);
                    }
                }
                Propagation::Rtp(arrived) => {
                    if let Some(level) = arrived.packet.header.ext_vals.audio_level {
                        self.hear(now, arrived.origin, level);
                    }
                    let mut viewers = std::mem::take(&mut self.spare_viewers);
                    let stale = self.forward(now, &arrived, &mut viewers);
                    for viewer in stale {
                        self.allocate(now, viewer);
                    }
                    for &viewer in &viewers {
                        self.poll_participant(now, viewer, &mut work);
                    }
                    viewers.clear();
                    self.spare_viewers = viewers;
                }
                Propagation::KeyframeWanted {
                    origin,
                    mid,
                    layer,
                    kind,
                } => self.request_keyframe(now, origin, mid, layer, kind),
                Propagation::LayersChanged(origin) => {
                    let Some(room) = self.participants.get(&origin).map(|p| Arc::clone(&p.room))
                    else {
                        continue;
                    };
                    let viewers: Vec<PeerId> = self
                        .members(&room)
                        .iter()
                        .copied()
                        .filter(|&id| id != origin)
                        .collect();
                    for viewer in viewers {
                        self.allocate(now, viewer);
                        self.poll_participant(now, viewer, &mut work);
                    }
                }
                Propagation::Reallocate(viewer) => {
                    self.allocate(now, viewer);
                    self.poll_participant(now, viewer, &mut work);
                }
                Propagation::Gone(gone) => self.remove(now, gone),
            }
        }
    }

    /// Drains one connection's output: datagrams and signalling out, events into `work`.
    fn poll_participant(&mut self, now: Instant, peer: PeerId, work: &mut VecDeque<Propagation>) {
        let Some(participant) = self.participants.get_mut(&peer) else {
            return;
        };
        let mut immediate = 0;
        loop {
            if !participant.rtc.is_alive() {
                work.push_back(Propagation::Gone(peer));
                return;
            }
            let output = match participant.rtc.poll_output() {
                Ok(output) => output,
                Err(_) => {
                    work.push_back(Propagation::Gone(peer));
                    return;
                }
            };
            match output {
                // str0m's pacer lets one packet out per timeout, and asks for the next
                // timeout at once: running it here sends a frame's packets to this viewer
                // in one go, not one wake-up of the task (and one system call) each.
                Output::Timeout(at) if at <= now && immediate < MAX_IMMEDIATE_TIMEOUTS => {
                    immediate += 1;
                    if participant.rtc.handle_input(Input::Timeout(now)).is_err() {
                        work.push_back(Propagation::Gone(peer));
                        return;
                    }
                }
                Output::Timeout(at) => {
                    if participant.timeout != at {
                        self.timeouts.remove(&(participant.timeout, peer));
                        self.timeouts.insert((at, peer));
                        participant.timeout = at;
                    }
                    return;
                }
                Output::Transmit(transmit) => {
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += transmit.contents.len() as u64;
                    self.outputs.push_back(SfuOutput::Transmit {
                        destination: transmit.destination,
                        contents: transmit.contents.into(),
                    });
                }
                Output::Event(event) => match event {
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        work.push_back(Propagation::Gone(peer));
                        return;
                    }
                    Event::MediaAdded(added) if added.direction == Direction::RecvOnly => {
                        let source = participant.source_of_next(added.kind);
                        participant.published.push(Published {
                            mid: added.mid,
                            kind: added.kind,
                            source,
                            layers: Vec::new(),
                            live: false,
                            last_speech: None,
                        });
                    }
                    // Empty payloads are padding (bandwidth probes): nothing to forward.
                    Event::RtpPacket(packet) if !packet.payload.is_empty() => {
                        let ssrc = packet.header.ssrc;
                        let found = participant
                            .rtc
                            .direct_api()
                            .stream_rx(&ssrc)
                            .map(|s| (s.mid(), s.rid()));
                        if let Some((mid, rid)) = found {
                            let keyframe = participant.received(now, peer, mid, rid, &packet, work);
                            work.push_back(Propagation::Rtp(Box::new(Arrived {
                                origin: peer,
                                mid,
                                rid,
                                keyframe,
                                packet,
                            })));
                        }
                    }
                    Event::KeyframeRequest(request) => {
                        // The viewer lost something: the layer it receives must start over.
                        let wanted = participant
                            .subscriptions
                            .iter()
                            .find(|sub| sub.state == SubscriptionState::Open(request.mid));
                        if let Some(sub) = wanted {
                            if let Some(layer) = sub.current {
                                work.push_back(Propagation::KeyframeWanted {
                                    origin: sub.origin,
                                    mid: sub.origin_mid,
                                    layer,
                                    kind: request.kind,
                                });
                            }
                        }
                    }
                    Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                        let estimate = Some(estimate.as_u64());
                        if participant.estimate != estimate {
                            participant.estimate = estimate;
                            work.push_back(Propagation::Reallocate(peer));
                        }
                    }
                    Event::MediaEgressStats(report) => {
                        let key = (true, report.mid, report.rid);
                        self.stats.nacks_received += participant.nack_delta(key, report.nacks);
                        // The stats come every second: time to see whether a held-back
                        // viewer's link deserves a fresh look.
                        if participant.wants_recovery_probe(now) {
                            participant.last_recovery_probe = Some(now);
                            if let Some(estimate) = participant.estimate {
                                participant.rtc.bwe().reset(Bitrate::bps(estimate));
                                self.stats.recovery_probes += 1;
                            }
                        }
                    }
                    Event::MediaIngressStats(report) => {
                        let key = (false, report.mid, report.rid);
                        self.stats.nacks_sent += participant.nack_delta(key, report.nacks);
                    }
                    _ => {}
                },
            }
        }
    }

    /// Chooses, for each video `viewer` receives, the layer that fills its tile, then lowers
    /// choices until they fit the viewer's bandwidth estimate; asks for a keyframe of every
    /// newly chosen layer, and stops tracks whose tiles are hidden.
    fn allocate(&mut self, now: Instant, viewer: PeerId) {
        let Some(participant) = self.participants.get(&viewer) else {
            return;
        };
        let mut picks = Vec::new();
        let mut infos: Vec<Vec<LayerInfo>> = Vec::new();
        let mut ids: Vec<Vec<LayerId>> = Vec::new();
        let mut audio = 0;
        for (index, sub) in participant.subscriptions.iter().enumerate() {
            if !matches!(sub.state, SubscriptionState::Open(_)) {
                continue;
            }
            if sub.kind == MediaKind::Audio {
                audio += AUDIO_ALLOWANCE_BPS;
                continue;
            }
            let usable = self
                .participants
                .get(&sub.origin)
                .and_then(|origin| origin.track(sub.origin_mid))
                .map(|track| track.usable_layers(now))
                .unwrap_or_default();
            let want = participant.want(sub.origin, sub.source);
            picks.push((index, want));
            ids.push(usable.iter().map(|(id, _)| *id).collect());
            infos.push(usable.into_iter().map(|(_, info)| info).collect());
        }
        let mut choices: Vec<Option<usize>> = picks
            .iter()
            .zip(&infos)
            .map(|((_, want), layers)| layer_for(layers, *want))
            .collect();
        let layer_refs: Vec<&[LayerInfo]> = infos.iter().map(Vec::as_slice).collect();
        let desired: u64 = choices
            .iter()
            .zip(&layer_refs)
            .filter_map(|(choice, layers)| Some(layers[(*choice)?].bitrate))
            .sum::<u64>()
            + audio;
        let estimate = match (participant.estimate, participant.downlink_cap) {
            (Some(estimate), Some(cap)) => Some(estimate.min(cap)),
            (estimate, cap) => estimate.or(cap),
        };
        let wanted = choices.clone();
        if let Some(estimate) = estimate {
            let budget = (estimate * 9 / 10).saturating_sub(audio);
            fit_budget(&mut choices, &layer_refs, budget);
        }
        let held_back = choices != wanted;
        let Some(participant) = self.participants.get_mut(&viewer) else {
            return;
        };
        participant.held_back_since = match participant.held_back_since {
            Some(since) if held_back => Some(since),
            _ => held_back.then_some(now),
        };
        // Ask for more than is sent, so the estimator probes towards what the tiles need.
        participant
            .rtc
            .bwe()
            .set_desired_bitrate(Bitrate::bps(desired.max(INITIAL_ESTIMATE.as_u64())));
        let mut keyframes = Vec::new();
        for (((index, _), choice), ids) in picks.iter().zip(choices).zip(&ids) {
            let sub = &mut participant.subscriptions[*index];
            let target = choice.map(|i| ids[i]);
            if target == sub.target {
                continue;
            }
            sub.target = target;
            sub.held.clear();
            match target {
                None => {
                    sub.current = None;
                    sub.frame_open = false;
                }
                Some(layer) if sub.current != Some(layer) => {
                    keyframes.push((sub.origin, sub.origin_mid, layer));
                }
                Some(_) => {}
            }
        }
        for (origin, mid, layer) in keyframes {
            self.request_keyframe(now, origin, mid, layer, KeyframeRequestKind::Pli);
        }
    }

    /// One audio frame from `origin`: its level counts towards the room's active speaker.
    fn hear(&mut self, now: Instant, origin: PeerId, level: i8) {
        let Some(room) = self.participants.get(&origin).map(|p| Arc::clone(&p.room)) else {
            return;
        };
        let speaker = self.speakers.entry(Arc::clone(&room)).or_default();
        speaker.hear(origin, level);
        if let Some(change) = speaker.decide(now) {
            self.announce_speaker(&room, change);
        }
    }

    /// Writes an RTP packet from `origin` as it came to every participant of its room who
    /// receives that track (for video: who receives this layer, or switches to it at this
    /// keyframe), with this subscription's sequence numbers, clock and payload type; the
    /// payload is shared, not copied. Puts who got it in `viewers` (their connections have
    /// packets to send now) and returns viewers whose chosen layer stopped arriving, who must
    /// choose again.
    fn forward(
        &mut self,
        now: Instant,
        arrived: &Arrived,
        viewers: &mut Vec<PeerId>,
    ) -> Vec<PeerId> {
        let Arrived {
            origin,
            mid: origin_mid,
            rid: layer,
            keyframe,
            ref packet,
        } = *arrived;
        let Some(sender) = self.participants.get(&origin) else {
            return Vec::new();
        };
        let track = sender.track(origin_mid);
        let withheld = self.withheld.get(&origin).copied().unwrap_or_default();
        if track.is_some_and(|t| withheld.has(t.source)) {
            self.stats.withheld_dropped += 1;
            return Vec::new();
        }
        if track.is_some_and(|t| t.kind == MediaKind::Audio && !t.speaking(now)) {
            self.stats.silence_dropped += 1;
            return Vec::new();
        }
        let is_video = track.is_some_and(|t| t.kind == MediaKind::Video);
        let received_pt = packet.header.payload_type;
        let params = sender
            .rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == received_pt)
            .copied();
        let Some(members) = self.rooms.get(&sender.room) else {
            return Vec::new();
        };
        let mut fresh = std::mem::take(&mut self.fresh_layers);
        fresh.clear();
        if let Some(track) = track {
            let layers = track.layers.iter().filter(|l| l.is_fresh(now));
            fresh.extend(layers.map(|l| l.id));
        }
        let unit = Unit {
            received_seq: *packet.seq_no,
            received_pt,
            time: packet.time,
            at: packet.timestamp,
            payload: Arc::clone(&packet.payload),
            marker: packet.header.marker,
            video: is_video,
        };
        let mut stale = Vec::new();
        let mut keyframes = Vec::new();
        for &viewer in members {
            if viewer == origin {
                continue;
            }
            let Some(participant) = self.participants.get_mut(&viewer) else {
                continue;
            };
            let Some(sub) = participant
                .subscriptions
                .iter_mut()
                .find(|sub| sub.origin == origin && sub.origin_mid == origin_mid)
            else {
                continue;
            };
            let SubscriptionState::Open(mid) = sub.state else {
                continue;
            };
            let rtc = &mut participant.rtc;
            let mut sent = false;
            if sub.kind != MediaKind::Video {
                sent = sub.write(rtc, mid, &unit, false, params, &mut self.stats);
            } else {
                let Some(target) = sub.target else {
                    continue;
                };
                if !fresh.contains(&target) {
                    stale.push(viewer);
                }
                if sub.current == Some(layer) {
                    sent = sub.write(rtc, mid, &unit, false, params, &mut self.stats);
                    if unit.marker && !sub.held.is_empty() {
                        // The old layer's frame is whole: the held keyframe can follow it.
                        sub.switch_to_held(rtc, mid, params, &mut self.stats);
                    }
                } else if layer == target {
                    if !sub.held.is_empty() {
                        sub.held.push(unit.clone());
                        if sub.held.len() >= MAX_HELD_PACKETS {
                            sub.switch_to_held(rtc, mid, params, &mut self.stats);
                        }
                    } else if !keyframe {
                        keyframes.push(layer);
                    } else if sub.current.is_some() && sub.frame_open {
                        // Switching in the middle of the old layer's frame would leave its
                        // tail out, and a decoder that takes the keyframe for the rest of
                        // that frame may never recover: hold the keyframe until the old
                        // frame's last packet has gone (the layers' packets interleave).
                        sub.held_layer = layer;
                        sub.held.push(unit.clone());
                    } else {
                        sub.current = Some(layer);
                        self.stats.layer_switches += 1;
                        sent = sub.write(rtc, mid, &unit, true, params, &mut self.stats);
                    }
                }
            }
            if sent {
                viewers.push(viewer);
            }
        }
        self.fresh_layers = fresh;
        keyframes.dedup();
        for layer in keyframes {
            self.request_keyframe(now, origin, origin_mid, layer, KeyframeRequestKind::Pli);
        }
        stale
    }

    fn announce_speaker(&mut self, room: &RoomKey, speaker: Option<PeerId>) {
        self.stats.speaker_changes += 1;
        for &peer in self.rooms.get(room).map_or(&[][..], Vec::as_slice) {
            self.outputs.push_back(SfuOutput::Signal {
                peer,
                msg: ServerMsg::ActiveSpeaker { peer: speaker },
            });
        }
    }

    /// Asks `origin` for a keyframe of one layer of its track `mid`, unless the layer's
    /// throttle holds it back; the request leaves with the next `drive`.
    fn request_keyframe(
        &mut self,
        now: Instant,
        origin: PeerId,
        mid: Mid,
        layer: LayerId,
        kind: KeyframeRequestKind,
    ) {
        let Some(participant) = self.participants.get_mut(&origin) else {
            return;
        };
        let Some(track) = participant.track_mut(mid) else {
            return;
        };
        let Some(layer_state) = track.layers.iter_mut().find(|l| l.id == layer) else {
            return;
        };
        if !layer_state.keyframes.may_ask(now) {
            return;
        }
        let mut api = participant.rtc.direct_api();
        if let Some(rx) = api.stream_rx_by_mid(mid, layer) {
            rx.request_keyframe(kind);
            self.stats.keyframe_requests += 1;
            self.keyframes_asked.push(origin);
        }
    }

    /// Makes an offer to `peer` for the tracks to add or remove, unless one is already
    /// waiting for its answer (the next answer makes the next offer).
    fn negotiate(&mut self, peer: PeerId) {
        let Some(participant) = self.participants.get_mut(&peer) else {
            return;
        };
        if participant.pending.is_some() {
            return;
        }
        // str0m draws each new section's mid at random, unique among the sections already
        // agreed but not among those added in the same change: with dozens added at once
        // (someone joining a large call) two collide now and then, and the browser refuses
        // the offer. A change with a repeated mid is dropped unapplied and drawn again.
        let mut applied = None;
        for _ in 0..MID_DRAWS {
            let mut change = participant.rtc.sdp_api();
            let mut drawn: Vec<(usize, SubscriptionState)> = Vec::new();
            let mut repeated = false;
            for (index, sub) in participant.subscriptions.iter().enumerate() {
                match sub.state {
                    SubscriptionState::ToOpen => {
                        let mid = change.add_media(
                            sub.kind,
                            Direction::SendOnly,
                            Some(sub.origin.to_string()),
                            Some(format!("{}-{}", sub.origin, source_name(sub.source))),
                            None,
                        );
                        let new = SubscriptionState::Negotiating(mid);
                        if drawn.iter().any(|(_, state)| *state == new) {
                            repeated = true;
                            break;
                        }
                        drawn.push((index, new));
                    }
                    SubscriptionState::ToStop(mid) => {
                        change.stop_media(mid);
                        drawn.push((index, SubscriptionState::Stopping(mid)));
                    }
                    _ => {}
                }
            }
            if repeated {
                self.stats.mids_redrawn += 1;
                continue;
            }
            applied = Some((change.apply(), drawn));
            break;
        }
        let Some((Some((offer, pending)), drawn)) = applied else {
            return;
        };
        for (index, state) in drawn {
            participant.subscriptions[index].state = state;
        }
        participant.pending = Some(pending);
        let tracks = participant
            .subscriptions
            .iter()
            .filter(|sub| {
                matches!(
                    sub.state,
                    SubscriptionState::Negotiating(_) | SubscriptionState::Open(_)
                )
            })
            .filter_map(|sub| {
                Some(RemoteTrack {
                    mid: sub.state.mid()?.to_string(),
                    peer: sub.origin,
                    source: sub.source,
                })
            })
            .collect();
        self.outputs.push_back(SfuOutput::Signal {
            peer,
            msg: ServerMsg::MediaOffer {
                sdp: offer.to_sdp_string(),
                tracks,
            },
        });
    }
}

impl Participant {
    fn wants_recovery_probe(&self, now: Instant) -> bool {
        let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
        since(self.held_back_since).is_some_and(|held| held >= RECOVERY_PROBE_AFTER)
            && since(self.last_recovery_probe).is_none_or(|last| last >= RECOVERY_PROBE_EVERY)
            // A cap set from outside is not something probing can lift.
            && self.downlink_cap.is_none()
    }

    fn track(&self, mid: Mid) -> Option<&Published> {
        self.published.iter().find(|t| t.mid == mid)
    }

    fn track_mut(&mut self, mid: Mid) -> Option<&mut Published> {
        self.published.iter_mut().find(|t| t.mid == mid)
    }

    /// What this browser asked to see of `origin`'s `source`.
    fn want(&self, origin: PeerId, source: TrackSource) -> Want {
        self.view
            .as_ref()
            .and_then(|view| view.get(&(origin, source)).copied())
            .unwrap_or_default()
    }

    /// The increase of a running NACK total since its last report.
    fn nack_delta(&mut self, key: (bool, Mid, LayerId), total: u64) -> u64 {
        let last = self.nacks.insert(key, total).unwrap_or(0);
        total.saturating_sub(last)
    }

    /// Bookkeeping for a packet this participant sent: the track goes live with its first
    /// packet, a layer is measured, and a keyframe tells the layer's size. Returns whether
    /// the packet starts a video keyframe.
    fn received(
        &mut self,
        now: Instant,
        peer: PeerId,
        mid: Mid,
        rid: LayerId,
        packet: &RtpPacket,
        work: &mut VecDeque<Propagation>,
    ) -> bool {
        let Some(track) = self.track_mut(mid) else {
            return false;
        };
        if !track.live {
            track.live = true;
            work.push_back(Propagation::Published {
                origin: peer,
                mid: track.mid,
                kind: track.kind,
                source: track.source,
            });
        }
        let index = match track.layers.iter().position(|l| l.id == rid) {
            Some(index) => index,
            None => {
                track.layers.push(Layer {
                    id: rid,
                    size: None,
                    rate: RateMeter::new(now),
                    last_frame: now,
                    keyframes: KeyframeThrottle::default(),
                });
                if track.kind == MediaKind::Video {
                    // Its size comes with its first keyframe; until then nobody can get it.
                    work.push_back(Propagation::KeyframeWanted {
                        origin: peer,
                        mid: track.mid,
                        layer: rid,
                        kind: KeyframeRequestKind::Pli,
                    });
                }
                track.layers.len() - 1
            }
        };
        let layer = &mut track.layers[index];
        layer.rate.add(now, packet.payload.len());
        let revived = !layer.is_fresh(now);
        layer.last_frame = now;
        if track.kind != MediaKind::Video {
            let ext = &packet.header.ext_vals;
            let speech = match ext.audio_level {
                Some(level) => level > SILENCE_DBOV || ext.voice_activity == Some(true),
                // No level to tell by: everything counts.
                None => true,
            };
            if speech {
                track.last_speech = Some(now);
            }
            return false;
        }
        let keyframe = starts_vp8_keyframe(&packet.payload);
        let size = if keyframe {
            vp8_descriptor_len(&packet.payload)
                .and_then(|at| vp8_keyframe_size(packet.payload.get(at..)?))
        } else {
            None
        };
        if keyframe {
            layer.keyframes.answered();
        }
        if (size.is_some() && size != layer.size) || (revived && layer.size.is_some()) {
            layer.size = size.or(layer.size);
            work.push_back(Propagation::LayersChanged(peer));
        }
        keyframe
    }

    /// The browser's transceivers come in a fixed order: microphone, camera, screen.
    fn source_of_next(&self, kind: MediaKind) -> TrackSource {
        match kind {
            MediaKind::Audio => TrackSource::Microphone,
            MediaKind::Video => {
                let cameras = self
                    .published
                    .iter()
                    .filter(|t| t.kind == MediaKind::Video)
                    .count();
                if cameras == 0 {
                    TrackSource::Camera
                } else {
                    TrackSource::Screen
                }
            }
        }
    }
}

impl Layer {
    /// Still arriving: a frame within `LAYER_STALE`.
    fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_frame) < LAYER_STALE
    }
}

impl Published {
    /// Whether a microphone spoke lately (its silence is not forwarded).
    fn speaking(&self, now: Instant) -> bool {
        self.last_speech
            .is_some_and(|at| now.saturating_duration_since(at) <= SPEECH_HANGOVER)
    }

    /// The layers a viewer can be given now (size known, still arriving), smallest first.
    fn usable_layers(&self, now: Instant) -> Vec<(LayerId, LayerInfo)> {
        let mut layers: Vec<(LayerId, LayerInfo)> = self
            .layers
            .iter()
            .filter(|l| l.is_fresh(now))
            .filter_map(|l| {
                let (width, height) = l.size?;
                let info = LayerInfo {
                    width,
                    height,
                    bitrate: l.rate.bitrate(),
                };
                Some((l.id, info))
            })
            .collect();
        layers.sort_by_key(|(_, info)| u64::from(info.width) * u64::from(info.height));
        layers
    }
}

/// A packet a participant sent, where it belongs, ready to forward.
struct Arrived {
    origin: PeerId,
    mid: Mid,
    rid: LayerId,
    /// It starts a video keyframe (looked at once, on arrival).
    keyframe: bool,
    packet: RtpPacket,
}

/// The sequence numbers one subscription forwards: the received ones moved by an offset
/// that a layer switch (or the first packet) resets, so forwarded numbers run on by one.
#[derive(Clone, Copy, Debug, Default)]
struct SequenceMap {
    /// Received and forwarded number of the newest packet.
    last: Option<(u64, u64)>,
    /// The first number forwarded since the last switch: anything mapped below it is a
    /// late packet of the layer from before it was switched to.
    floor: u64,
}

/// Packets held for a switch stop the switch's wait after this many (the old layer's frame
/// never ended): the switch happens anyway.
const MAX_HELD_PACKETS: usize = 256;

/// What forwarding needs of a received packet; held copies share its payload.
#[derive(Clone, Debug)]
struct Unit {
    received_seq: u64,
    received_pt: Pt,
    time: MediaTime,
    at: Instant,
    payload: Arc<[u8]>,
    marker: bool,
    video: bool,
}

impl SequenceMap {
    fn forward(&mut self, received: u64, switched: bool) -> Option<SeqNo> {
        let out = match self.last {
            Some((_, last_out)) if switched => last_out + 1,
            Some((last_in, last_out)) => {
                let out = i128::from(last_out) + i128::from(received) - i128::from(last_in);
                u64::try_from(out).ok()?
            }
            None => received,
        };
        if switched || self.last.is_none() {
            self.floor = out;
        }
        if out < self.floor {
            return None;
        }
        if self.last.is_none_or(|(_, last_out)| out > last_out) {
            self.last = Some((received, out));
        }
        Some(out.into())
    }
}

impl Subscription {
    /// A track of `origin`'s to receive, its section not yet opened.
    fn new(origin: PeerId, origin_mid: Mid, kind: MediaKind, source: TrackSource) -> Self {
        Subscription {
            origin,
            origin_mid,
            kind,
            source,
            state: SubscriptionState::ToOpen,
            current: None,
            target: None,
            clock: None,
            sequence: SequenceMap::default(),
            payload_type: None,
            frame_open: false,
            held: Vec::new(),
            held_layer: None,
        }
    }

    /// Writes `unit` to this subscription's section `mid` of `rtc` with its own sequence
    /// numbers, clock and payload type; `switched`: the first packet of a new layer.
    fn write(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        unit: &Unit,
        switched: bool,
        params: Option<PayloadParams>,
        stats: &mut SfuStats,
    ) -> bool {
        let Some(seq) = self.sequence.forward(unit.received_seq, switched) else {
            // Late, from before this layer was switched to.
            return false;
        };
        let time = self.rebase(unit.time, unit.at, switched);
        let pt = match self.payload_type {
            Some((from, to)) if from == unit.received_pt => to,
            _ => {
                let Some(to) = params
                    .and_then(|p| rtc.codec_config().match_params(p))
                    .map(|p| p.pt())
                else {
                    stats.forwarding_errors += 1;
                    return false;
                };
                self.payload_type = Some((unit.received_pt, to));
                to
            }
        };
        let mut api = rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            stats.forwarding_errors += 1;
            return false;
        };
        // Video can be sent again on a NACK; late audio is worth nothing.
        let write = RtpWrite::new(
            pt,
            seq,
            time.numer() as u32,
            unit.at,
            Arc::clone(&unit.payload),
        )
        .marker(unit.marker)
        .nackable(unit.video);
        tx.write_rtp(write);
        if unit.video {
            self.frame_open = !unit.marker;
        }
        stats.packets_forwarded += 1;
        true
    }

    /// Moves to the held layer and writes what was held for it.
    fn switch_to_held(
        &mut self,
        rtc: &mut Rtc,
        mid: Mid,
        params: Option<PayloadParams>,
        stats: &mut SfuStats,
    ) {
        self.current = Some(self.held_layer);
        stats.layer_switches += 1;
        let held = std::mem::take(&mut self.held);
        for (index, unit) in held.iter().enumerate() {
            self.write(rtc, mid, unit, index == 0, params, stats);
        }
        self.held = held;
        self.held.clear();
    }

    /// The timestamp to forward a packet stamped `time`, received at `network_time`, with:
    /// the received one moved by this subscription's offset, which a layer switch (or the
    /// first packet) sets so forwarded time runs on as the wall clock did.
    fn rebase(&mut self, time: MediaTime, network_time: Instant, switched: bool) -> MediaTime {
        let received = time.numer();
        let frequency = time.frequency();
        let clock = match self.clock {
            Some(clock) if !switched => clock,
            previous => {
                let out = previous.map_or(received, |last| {
                    let elapsed = network_time.saturating_duration_since(last.last_at);
                    let ticks = elapsed.as_micros() as u64 * u64::from(frequency.get()) / 1_000_000;
                    last.last_out.wrapping_add(ticks.max(1))
                });
                OutClock {
                    offset: out.wrapping_sub(received),
                    last_out: out,
                    last_at: network_time,
                }
            }
        };
        let out = received.wrapping_add(clock.offset);
        self.clock = Some(OutClock {
            last_out: out,
            last_at: network_time,
            ..clock
        });
        MediaTime::new(out, frequency)
    }
}

fn source_name(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen",
    }
}

/// Length of a VP8 RTP payload descriptor (RFC 7741), where the VP8 payload header starts.
fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    Some(at)
}

/// Whether a VP8 RTP payload is the first packet of a keyframe.
fn starts_vp8_keyframe(payload: &[u8]) -> bool {
    Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload))
}

#[cfg(test)]
mod sequence_tests {
    use super::SequenceMap;

    fn forward(map: &mut SequenceMap, received: u64, switched: bool) -> Option<u64> {
        map.forward(received, switched).map(|seq| *seq)
    }

    #[test]
    fn forwarded_numbers_run_on_by_one_across_layer_switches() {
        let mut map = SequenceMap::default();
        assert_eq!(forward(&mut map, 500, true), Some(500));
        assert_eq!(forward(&mut map, 501, false), Some(501));
        // Another layer, numbered on its own, continues the sequence.
        assert_eq!(forward(&mut map, 9000, true), Some(502));
        assert_eq!(forward(&mut map, 9001, false), Some(503));
        // A loss stays a gap the viewer can ask to have resent.
        assert_eq!(forward(&mut map, 9003, false), Some(505));
        // A late packet of this layer keeps its place.
        assert_eq!(forward(&mut map, 9002, false), Some(504));
        // One from before this layer was switched to would land among the old layer's.
        assert_eq!(forward(&mut map, 8999, false), None);
        assert_eq!(forward(&mut map, 9004, false), Some(506));
    }
}
