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

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::CryptoProvider;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};

use crate::protocol::{PeerId, RemoteTrack, ServerMsg, TrackSource};

/// Which room a participant is in; media never crosses rooms.
pub type RoomKey = Arc<str>;

/// Keyframe requests for one published track, at most this often: every subscriber that opens
/// a track asks for one, and a crowd joining at once must not make the sender encode a
/// keyframe per newcomer.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

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
    pub frames_forwarded: u64,
    pub keyframe_requests: u64,
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
    /// Where each participant's datagrams come from, once ICE told us.
    by_source: HashMap<SocketAddr, PeerId>,
    /// A participant's ICE username fragment, which names it in the first STUN request from
    /// a new address.
    by_ufrag: HashMap<String, PeerId>,
    outputs: VecDeque<SfuOutput>,
    stats: SfuStats,
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
}

/// A track the participant sends.
struct Published {
    mid: Mid,
    kind: MediaKind,
    source: TrackSource,
    last_keyframe_request: Option<Instant>,
    /// Whether media arrived on it yet. Only then do the others get a section for it: a
    /// screen nobody shares or a camera that is off costs no one an SDP section (answers
    /// must fit in one WebSocket message).
    live: bool,
}

/// Another participant's track, as this participant receives it.
struct Subscription {
    origin: PeerId,
    origin_mid: Mid,
    kind: MediaKind,
    source: TrackSource,
    state: SubscriptionState,
    /// The simulcast layer forwarded, once one arrived.
    rid: Option<Rid>,
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
    Media {
        origin: PeerId,
        data: Box<MediaData>,
    },
    KeyframeWanted {
        origin: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    },
    Gone(PeerId),
}

impl Sfu {
    pub fn new(candidates: Vec<SocketAddr>) -> Sfu {
        Sfu {
            candidates,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            participants: HashMap::new(),
            by_source: HashMap::new(),
            by_ufrag: HashMap::new(),
            outputs: VecDeque::new(),
            stats: SfuStats::default(),
        }
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
            .participants
            .iter()
            .filter(|(_, other)| other.room == room)
            .flat_map(|(&origin, other)| {
                let live = other.published.iter().filter(|track| track.live);
                live.map(move |track| Subscription {
                    origin,
                    origin_mid: track.mid,
                    kind: track.kind,
                    source: track.source,
                    state: SubscriptionState::ToOpen,
                    rid: None,
                })
            })
            .collect();
        self.by_ufrag.insert(creds.ufrag.clone(), peer);
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
            },
        );
        self.drive(now, peer);
        self.negotiate(peer);
        Ok(())
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
        let mut opened = Vec::new();
        participant.subscriptions.retain_mut(|sub| match sub.state {
            SubscriptionState::Negotiating(mid) => {
                sub.state = SubscriptionState::Open(mid);
                if sub.kind == MediaKind::Video {
                    opened.push((sub.origin, sub.origin_mid));
                }
                true
            }
            SubscriptionState::Stopping(_) => false,
            _ => true,
        });
        // A viewer should not wait for the sender's next natural keyframe.
        for (origin, mid) in opened {
            self.request_keyframe(now, origin, mid, None, KeyframeRequestKind::Pli);
        }
        self.drive(now, peer);
        self.negotiate(peer);
        Ok(())
    }

    /// The participant left the call or the room: frees their connection and stops their
    /// tracks for everyone else.
    pub fn remove(&mut self, now: Instant, peer: PeerId) {
        let Some(mut gone) = self.participants.remove(&peer) else {
            return;
        };
        gone.rtc.disconnect();
        self.by_ufrag.remove(&gone.ufrag);
        for source in &gone.sources {
            self.by_source.remove(source);
        }
        let others: Vec<PeerId> = self
            .participants
            .iter_mut()
            .filter(|(_, other)| other.room == gone.room)
            .map(|(&id, other)| {
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
                id
            })
            .collect();
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
        self.participants.values().map(|p| p.timeout).min()
    }

    /// Time passed: every participant whose timeout is due runs it.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.timeout <= now)
            .map(|(&peer, _)| peer)
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

    pub fn poll_output(&mut self) -> Option<SfuOutput> {
        self.outputs.pop_front()
    }

    /// Polls `peer`'s connection until it wants a timeout, then carries what came out of it
    /// to the others; which may make more to poll.
    fn drive(&mut self, now: Instant, peer: PeerId) {
        let mut work = VecDeque::new();
        self.poll_participant(peer, &mut work);
        while let Some(item) = work.pop_front() {
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
                        .participants
                        .iter_mut()
                        .filter(|(&id, p)| id != origin && p.room == room)
                        .map(|(&id, p)| {
                            p.subscriptions.push(Subscription {
                                origin,
                                origin_mid: mid,
                                kind,
                                source,
                                state: SubscriptionState::ToOpen,
                                rid: None,
                            });
                            id
                        })
                        .collect();
                    for viewer in viewers {
                        self.negotiate(viewer);
                    }
                }
                Propagation::Media { origin, data } => {
                    let viewers = self.forward(now, origin, &data);
                    for viewer in viewers {
                        self.poll_participant(viewer, &mut work);
                    }
                }
                Propagation::KeyframeWanted {
                    origin,
                    mid,
                    rid,
                    kind,
                } => {
                    if self.request_keyframe(now, origin, mid, rid, kind) {
                        self.poll_participant(origin, &mut work);
                    }
                }
                Propagation::Gone(gone) => self.remove(now, gone),
            }
        }
    }

    /// Drains one connection's output: datagrams and signalling out, events into `work`.
    fn poll_participant(&mut self, peer: PeerId, work: &mut VecDeque<Propagation>) {
        let Some(participant) = self.participants.get_mut(&peer) else {
            return;
        };
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
                Output::Timeout(at) => {
                    participant.timeout = at;
                    return;
                }
                Output::Transmit(transmit) => {
                    self.stats.datagrams_out += 1;
                    self.stats.bytes_out += transmit.contents.len() as u64;
                    self.outputs.push_back(SfuOutput::Transmit {
                        destination: transmit.destination,
                        contents: transmit.contents.to_vec(),
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
                            last_keyframe_request: None,
                            live: false,
                        });
                    }
                    Event::MediaData(data) => {
                        let first = participant
                            .published
                            .iter_mut()
                            .find(|t| t.mid == data.mid && !t.live);
                        if let Some(track) = first {
                            track.live = true;
                            work.push_back(Propagation::Published {
                                origin: peer,
                                mid: track.mid,
                                kind: track.kind,
                                source: track.source,
                            });
                        }
                        work.push_back(Propagation::Media {
                            origin: peer,
                            data: Box::new(data),
                        });
                    }
                    Event::KeyframeRequest(request) => {
                        let wanted = participant
                            .subscriptions
                            .iter()
                            .find(|sub| sub.state == SubscriptionState::Open(request.mid));
                        if let Some(sub) = wanted {
                            work.push_back(Propagation::KeyframeWanted {
                                origin: sub.origin,
                                mid: sub.origin_mid,
                                rid: sub.rid,
                                kind: request.kind,
                            });
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// Writes a frame from `origin` to every participant of its room who receives that track;
    /// returns who got it (their connections have packets to send now).
    fn forward(&mut self, now: Instant, origin: PeerId, data: &MediaData) -> Vec<PeerId> {
        let Some(room) = self.participants.get(&origin).map(|p| Arc::clone(&p.room)) else {
            return Vec::new();
        };
        let mut viewers = Vec::new();
        let mut keyframes = Vec::new();
        for (&viewer, participant) in self.participants.iter_mut() {
            if viewer == origin || participant.room != room {
                continue;
            }
            let Some(sub) = participant
                .subscriptions
                .iter_mut()
                .find(|sub| sub.origin == origin && sub.origin_mid == data.mid)
            else {
                continue;
            };
            let SubscriptionState::Open(mid) = sub.state else {
                continue;
            };
            if let Some(rid) = data.rid {
                // One layer per viewer: the first to arrive, until layer choice by tile size.
                match sub.rid {
                    None => {
                        sub.rid = Some(rid);
                        keyframes.push(rid);
                    }
                    Some(chosen) if chosen != rid => continue,
                    Some(_) => {}
                }
            }
            let Some(writer) = participant.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if writer
                .write(pt, data.network_time, data.time, Arc::clone(&data.data))
                .is_ok()
            {
                self.stats.frames_forwarded += 1;
                viewers.push(viewer);
            }
        }
        for rid in keyframes {
            self.request_keyframe(now, origin, data.mid, Some(rid), KeyframeRequestKind::Pli);
        }
        viewers
    }

    /// Asks `origin` for a keyframe of its track `mid`, unless one was asked for just now.
    fn request_keyframe(
        &mut self,
        now: Instant,
        origin: PeerId,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) -> bool {
        let Some(participant) = self.participants.get_mut(&origin) else {
            return false;
        };
        let Some(track) = participant.published.iter_mut().find(|t| t.mid == mid) else {
            return false;
        };
        if track
            .last_keyframe_request
            .is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_INTERVAL)
        {
            return false;
        }
        track.last_keyframe_request = Some(now);
        let Some(mut writer) = participant.rtc.writer(mid) else {
            return false;
        };
        // Without simulcast there is no rid; with it, a layer not flowing yet is an error.
        if writer.request_keyframe(rid, kind).is_err() && rid.is_some() {
            let _ = writer.request_keyframe(None, kind);
        }
        self.stats.keyframe_requests += 1;
        true
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
        let mut change = participant.rtc.sdp_api();
        for sub in &mut participant.subscriptions {
            match sub.state {
                SubscriptionState::ToOpen => {
                    let mid = change.add_media(
                        sub.kind,
                        Direction::SendOnly,
                        Some(sub.origin.to_string()),
                        Some(format!("{}-{}", sub.origin, source_name(sub.source))),
                        None,
                    );
                    sub.state = SubscriptionState::Negotiating(mid);
                }
                SubscriptionState::ToStop(mid) => {
                    change.stop_media(mid);
                    sub.state = SubscriptionState::Stopping(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return;
        };
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

fn source_name(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen",
    }
}
