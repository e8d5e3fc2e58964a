//! The forwarding unit against browsers simulated by str0m, over an in-memory network on a
//! virtual clock: no sockets, no waiting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpPendingOffer;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::MediaKind;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};

use super::engine::{RoomKey, Sfu, SfuOutput};
use super::layers::vp8_keyframe_size;
use super::synthetic::SyntheticPeer;
use crate::protocol::{MediaState, PeerId, RemoteTrack, ServerMsg, TileView, TrackSource};

const SERVER: &str = "10.0.0.1:7882";

/// A browser: its connection, what it was told and what it received.
struct Browser {
    peer: PeerId,
    addr: SocketAddr,
    connection: SyntheticPeer,
    pending: Option<SdpPendingOffer>,
    /// Whose media each receive section carries, from the server's offers.
    tracks: HashMap<String, RemoteTrack>,
    /// Frames received, by the peer and source they came from.
    received: HashMap<(PeerId, TrackSource), usize>,
    /// The picture size of the latest keyframe received, by whose camera it is.
    keyframe_sizes: HashMap<PeerId, (u32, u32)>,
    /// The RTP time of every camera frame received, in order, by whose camera it is.
    video_times: HashMap<PeerId, Vec<u64>>,
    keyframe_requests: usize,
    /// Active speakers the server announced, in order.
    speakers: Vec<Option<PeerId>>,
    timeout: Instant,
}

struct Network {
    sfu: Sfu,
    browsers: Vec<Browser>,
    now: Instant,
}

impl Network {
    fn new() -> Network {
        let now = Instant::now();
        Network {
            sfu: Sfu::new(vec![SERVER.parse().unwrap()]),
            browsers: Vec::new(),
            now,
        }
    }

    /// A browser offers its microphone, camera and screen to the server.
    fn join(&mut self, id: u64, room: &str) {
        self.join_from(id, room, 5000);
    }

    /// Joins from port `port` of the browser's address: a reloaded page comes from another.
    fn join_from(&mut self, id: u64, room: &str, port: u16) {
        let addr: SocketAddr = format!("10.0.1.{id}:{port}").parse().unwrap();
        // A page that connects again replaces its earlier connection here too.
        self.browsers.retain(|b| b.peer != PeerId(id));
        let (connection, offer, pending) = SyntheticPeer::new(self.now, addr);
        self.browsers.push(Browser {
            peer: PeerId(id),
            addr,
            connection,
            pending: Some(pending),
            tracks: HashMap::new(),
            received: HashMap::new(),
            keyframe_sizes: HashMap::new(),
            video_times: HashMap::new(),
            keyframe_requests: 0,
            speakers: Vec::new(),
            timeout: self.now,
        });
        let room: RoomKey = room.into();
        self.sfu
            .offer(self.now, room, PeerId(id), &offer.to_sdp_string())
            .unwrap();
    }

    fn browser(&mut self, id: u64) -> &mut Browser {
        self.browsers
            .iter_mut()
            .find(|b| b.peer == PeerId(id))
            .unwrap()
    }

    /// Runs the network for `duration`, `id`'s browser sending a camera frame every 33 ms and
    /// an audio frame every 20 ms if `sender` says so.
    fn run(&mut self, duration: Duration, sender: Option<u64>) {
        let end = self.now + duration;
        let mut next_video = self.now;
        let mut next_audio = self.now;
        while self.now < end {
            if let Some(id) = sender {
                if self.now >= next_video {
                    self.send_frame(id, MediaKind::Video);
                    next_video += Duration::from_millis(33);
                }
                if self.now >= next_audio {
                    self.send_frame(id, MediaKind::Audio);
                    next_audio += Duration::from_millis(20);
                }
            }
            self.exchange();
            self.sfu.check_indexes();
            self.now += Duration::from_millis(1);
            let now = self.now;
            self.sfu.handle_timeout(now);
            for browser in &mut self.browsers {
                if browser.timeout <= now {
                    browser
                        .connection
                        .rtc
                        .handle_input(Input::Timeout(now))
                        .unwrap();
                }
            }
        }
    }

    fn send_frame(&mut self, id: u64, kind: MediaKind) {
        let now = self.now;
        self.browser(id).connection.send_frame(now, kind);
    }

    /// Moves every datagram and signalling message until nothing is left in flight.
    fn exchange(&mut self) {
        let server: SocketAddr = SERVER.parse().unwrap();
        loop {
            let mut moved = false;
            while let Some(output) = self.sfu.poll_output() {
                moved = true;
                match output {
                    SfuOutput::Transmit {
                        destination,
                        contents,
                    } => {
                        let now = self.now;
                        if let Some(browser) =
                            self.browsers.iter_mut().find(|b| b.addr == destination)
                        {
                            let receive =
                                Receive::new(Protocol::Udp, server, destination, &contents)
                                    .unwrap();
                            browser
                                .connection
                                .rtc
                                .handle_input(Input::Receive(now, receive))
                                .unwrap();
                        }
                    }
                    SfuOutput::Signal { peer, msg } => self.signal(peer, msg),
                }
            }
            for index in 0..self.browsers.len() {
                loop {
                    let browser = &mut self.browsers[index];
                    match browser.connection.rtc.poll_output().unwrap() {
                        Output::Timeout(at) => {
                            browser.timeout = at;
                            break;
                        }
                        Output::Transmit(transmit) => {
                            moved = true;
                            let (source, contents) = (browser.addr, transmit.contents.to_vec());
                            self.sfu.receive(self.now, source, server, &contents);
                        }
                        Output::Event(event) => browser.on_event(event),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn signal(&mut self, peer: PeerId, msg: ServerMsg) {
        let now = self.now;
        let browser = self.browser(peer.0);
        match msg {
            ServerMsg::MediaAnswer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).unwrap();
                let pending = browser.pending.take().unwrap();
                browser
                    .connection
                    .rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .unwrap();
            }
            ServerMsg::MediaOffer { sdp, tracks } => {
                browser.tracks = tracks.into_iter().map(|t| (t.mid.clone(), t)).collect();
                let offer = SdpOffer::from_sdp_string(&sdp).unwrap();
                let answer = browser
                    .connection
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .unwrap();
                self.sfu.answer(now, peer, &answer.to_sdp_string()).unwrap();
            }
            ServerMsg::ActiveSpeaker { peer } => browser.speakers.push(peer),
            other => panic!("unexpected signalling {other:?}"),
        }
    }
}

impl Browser {
    fn on_event(&mut self, event: Event) {
        self.connection.handle_event(&event);
        match event {
            Event::MediaData(data) => {
                if let Some(track) = self.tracks.get(&data.mid.to_string()) {
                    *self.received.entry((track.peer, track.source)).or_default() += 1;
                    if track.source == TrackSource::Camera {
                        let peer = track.peer;
                        if let Some(size) = vp8_keyframe_size(&data.data) {
                            self.keyframe_sizes.insert(peer, size);
                        }
                        let times = self.video_times.entry(peer).or_default();
                        times.push(data.time.numer());
                    }
                }
            }
            Event::KeyframeRequest(_) => self.keyframe_requests += 1,
            _ => {}
        }
    }

    fn frames_from(&self, peer: u64, source: TrackSource) -> usize {
        self.received
            .get(&(PeerId(peer), source))
            .copied()
            .unwrap_or(0)
    }
}

#[test]
fn a_publisher_reaches_everyone_in_its_room_and_nobody_else() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.join(3, "standup");
    net.join(4, "elsewhere");
    net.run(Duration::from_secs(3), Some(1));
    for viewer in [2, 3] {
        let browser = net.browser(viewer);
        let video = browser.frames_from(1, TrackSource::Camera);
        let audio = browser.frames_from(1, TrackSource::Microphone);
        assert!(video > 30, "viewer {viewer} got {video} video frames");
        assert!(audio > 50, "viewer {viewer} got {audio} audio frames");
    }
    assert!(net.browser(4).received.is_empty());
    // Each viewer's sections for the publisher's tracks name the publisher and the source.
    let sources: Vec<TrackSource> = {
        let mut sources: Vec<_> = net
            .browser(2)
            .tracks
            .values()
            .filter(|t| t.peer == PeerId(1))
            .map(|t| t.source)
            .collect();
        sources.sort_by_key(|s| *s as u8);
        sources
    };
    // Nothing was sent on the screen transceiver, so nobody got a section for it.
    assert_eq!(sources, [TrackSource::Microphone, TrackSource::Camera]);
    // Opening the publisher's camera for two viewers asked it for a keyframe.
    assert!(net.browser(1).keyframe_requests >= 1);
    assert!(net.sfu.stats().packets_forwarded > 0);
}

#[test]
fn someone_who_leaves_stops_reaching_the_others_and_is_freed() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.run(Duration::from_secs(2), Some(1));
    let before = net.browser(2).frames_from(1, TrackSource::Camera);
    assert!(before > 10, "got {before} frames before the leave");

    net.sfu.remove(net.now, PeerId(1));
    net.run(Duration::from_millis(100), None);
    assert_eq!(net.sfu.participant_count(), 1);
    // The viewer was offered a description without the publisher's sections.
    assert!(net.browser(2).tracks.values().all(|t| t.peer != PeerId(1)));
    let after_leave = net.browser(2).frames_from(1, TrackSource::Camera);
    net.run(Duration::from_secs(1), Some(1));
    assert_eq!(
        net.browser(2).frames_from(1, TrackSource::Camera),
        after_leave
    );

    net.sfu.remove(net.now, PeerId(2));
    assert_eq!(net.sfu.participant_count(), 0);
    assert_eq!(net.sfu.poll_timeout(), None);
}

#[test]
fn a_late_joiner_receives_those_already_publishing() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.run(Duration::from_secs(1), Some(1));
    net.join(2, "standup");
    net.run(Duration::from_secs(2), Some(1));
    let frames = net.browser(2).frames_from(1, TrackSource::Camera);
    assert!(frames > 20, "the late joiner got {frames} frames");
}

#[test]
fn garbage_offers_answers_and_datagrams_are_refused_without_harm() {
    let mut net = Network::new();
    let room: RoomKey = "standup".into();
    assert!(net.sfu.offer(net.now, room, PeerId(9), "not sdp").is_err());
    assert!(net.sfu.answer(net.now, PeerId(9), "v=0").is_err());
    net.join(1, "standup");
    // An answer nobody asked for.
    assert!(net.sfu.answer(net.now, PeerId(1), "v=0\r\n").is_err());
    let stranger: SocketAddr = "10.9.9.9:1".parse().unwrap();
    net.sfu
        .receive(net.now, stranger, SERVER.parse().unwrap(), &[0, 1, 2, 3]);
    assert_eq!(net.sfu.stats().unknown_datagrams, 1);
    net.join(2, "standup");
    net.run(Duration::from_secs(2), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > 10);
}

#[test]
fn a_page_that_connects_again_replaces_its_connection_and_receives_again() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.run(Duration::from_secs(2), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > 10);
    // Bob reloads: a new connection from a new port, the same member.
    net.join_from(2, "standup", 6000);
    net.run(Duration::from_secs(2), Some(1));
    assert_eq!(net.sfu.participant_count(), 2);
    let frames = net.browser(2).frames_from(1, TrackSource::Camera);
    assert!(frames > 10, "the new connection got {frames} frames");
    // Datagrams from the old address name nobody any more.
    let before = net.sfu.stats().unknown_datagrams;
    let old: SocketAddr = "10.0.1.2:5000".parse().unwrap();
    net.sfu
        .receive(net.now, old, SERVER.parse().unwrap(), &[0x80, 0, 0, 0]);
    assert_eq!(net.sfu.stats().unknown_datagrams, before + 1);
}

/// `viewer` shows `origin`'s camera at `width` × `height`.
fn show(net: &mut Network, viewer: u64, origin: u64, width: u32, height: u32) {
    let tiles = [TileView {
        peer: PeerId(origin),
        source: TrackSource::Camera,
        width,
        height,
    }];
    net.sfu.set_view(net.now, PeerId(viewer), &tiles);
}

#[test]
fn each_viewer_gets_the_layer_that_fills_its_tile_and_switches_at_a_keyframe() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.join(3, "standup");
    net.run(Duration::from_millis(500), Some(1));
    // Bob shows Ann large, Cat as a thumbnail.
    show(&mut net, 2, 1, 1280, 720);
    show(&mut net, 3, 1, 200, 112);
    net.run(Duration::from_secs(1), Some(1));
    assert_eq!(
        net.browser(2).keyframe_sizes.get(&PeerId(1)),
        Some(&(1280, 720))
    );
    assert_eq!(
        net.browser(3).keyframe_sizes.get(&PeerId(1)),
        Some(&(320, 180))
    );

    // Cat makes Ann's tile large: a keyframe of the large layer is asked for and Cat moves
    // to it at once, without waiting for Ann's next keyframe (every 3 s).
    let requests = net.sfu.stats().keyframe_requests;
    let switches = net.sfu.stats().layer_switches;
    show(&mut net, 3, 1, 640, 360);
    net.run(Duration::from_millis(300), Some(1));
    assert_eq!(
        net.browser(3).keyframe_sizes.get(&PeerId(1)),
        Some(&(640, 360))
    );
    assert!(net.sfu.stats().keyframe_requests > requests);
    assert_eq!(net.sfu.stats().layer_switches, switches + 1);
    // Bob was not disturbed.
    assert_eq!(
        net.browser(2).keyframe_sizes.get(&PeerId(1)),
        Some(&(1280, 720))
    );

    // Each layer has its own RTP clock; what Cat receives still runs on smoothly: no step
    // between frames much larger than the 33 ms (2,970 ticks) between them.
    let times = &net.browser(3).video_times[&PeerId(1)];
    let steps: Vec<u64> = times
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .filter(|&step| step != 0)
        .collect();
    assert!(steps.len() > 20);
    let largest = steps.iter().max().unwrap();
    assert!(*largest < 10_000, "a jump of {largest} ticks in {steps:?}");
}

#[test]
fn what_a_host_turned_off_is_not_forwarded_even_if_the_page_keeps_sending() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.run(Duration::from_secs(1), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Microphone) > 10);
    // The host turned off the microphone; the (modified) page sends on regardless.
    let muted = MediaState {
        mic: true,
        ..MediaState::default()
    };
    net.sfu.withhold(PeerId(1), muted);
    net.run(Duration::from_millis(50), Some(1));
    let audio = net.browser(2).frames_from(1, TrackSource::Microphone);
    let video = net.browser(2).frames_from(1, TrackSource::Camera);
    net.run(Duration::from_secs(1), Some(1));
    assert_eq!(
        net.browser(2).frames_from(1, TrackSource::Microphone),
        audio
    );
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > video + 10);
    assert!(net.sfu.stats().withheld_dropped > 30);
    // Allowed again: the sound goes on.
    net.sfu.withhold(PeerId(1), MediaState::default());
    net.run(Duration::from_secs(1), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Microphone) > audio + 30);
}

#[test]
fn hidden_tiles_receive_no_video_but_their_sound_goes_on() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.run(Duration::from_secs(1), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > 10);
    show(&mut net, 2, 1, 0, 0);
    net.run(Duration::from_millis(50), Some(1));
    let video = net.browser(2).frames_from(1, TrackSource::Camera);
    let audio = net.browser(2).frames_from(1, TrackSource::Microphone);
    net.run(Duration::from_secs(1), Some(1));
    assert_eq!(net.browser(2).frames_from(1, TrackSource::Camera), video);
    assert!(net.browser(2).frames_from(1, TrackSource::Microphone) > audio + 30);
    // Shown again: video is back within a keyframe request.
    show(&mut net, 2, 1, 320, 180);
    net.run(Duration::from_millis(300), Some(1));
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > video + 3);
    assert_eq!(
        net.browser(2).keyframe_sizes.get(&PeerId(1)),
        Some(&(320, 180))
    );
}

#[test]
fn a_viewer_whose_link_cannot_take_the_large_layer_gets_a_smaller_one() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.join(3, "standup");
    net.run(Duration::from_secs(2), Some(1));
    show(&mut net, 2, 1, 1280, 720);
    show(&mut net, 3, 1, 1280, 720);
    net.run(Duration::from_millis(500), Some(1));
    assert_eq!(
        net.browser(3).keyframe_sizes.get(&PeerId(1)),
        Some(&(1280, 720))
    );
    // Cat's estimate drops to 700 kbit/s: the 1.2 Mbit/s layer no longer fits.
    net.sfu.set_estimate(net.now, PeerId(3), 700_000);
    net.run(Duration::from_millis(300), Some(1));
    assert_eq!(
        net.browser(3).keyframe_sizes.get(&PeerId(1)),
        Some(&(640, 360))
    );
    assert_eq!(
        net.browser(2).keyframe_sizes.get(&PeerId(1)),
        Some(&(1280, 720))
    );
}

#[test]
fn the_room_hears_who_is_speaking() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.join(3, "standup");
    net.browser(1).connection.audio_level = -90;
    net.run(Duration::from_secs(2), Some(1));
    assert!(
        net.browser(2).speakers.is_empty(),
        "silence named a speaker"
    );
    net.browser(1).connection.audio_level = -20;
    net.run(Duration::from_secs(2), Some(1));
    for viewer in [1, 2, 3] {
        assert_eq!(net.browser(viewer).speakers, [Some(PeerId(1))]);
    }
    // A newcomer learns the speaker at once; everyone hears when the speaker leaves.
    net.join(4, "standup");
    net.run(Duration::from_millis(100), None);
    assert_eq!(net.browser(4).speakers, [Some(PeerId(1))]);
    net.sfu.remove(net.now, PeerId(1));
    net.run(Duration::from_millis(100), None);
    assert_eq!(net.browser(2).speakers, [Some(PeerId(1)), None]);
    assert_eq!(net.sfu.stats().speaker_changes, 2);
}

#[test]
fn silence_is_not_forwarded_but_speech_and_its_pauses_are() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.browser(1).connection.audio_level = -90;
    net.run(Duration::from_secs(2), Some(1));
    // The silent microphone still got its section (it may speak), but no frames.
    let tracks = &net.browser(2).tracks;
    assert!(tracks.values().any(|t| t.source == TrackSource::Microphone));
    assert_eq!(net.browser(2).frames_from(1, TrackSource::Microphone), 0);
    assert!(net.browser(2).frames_from(1, TrackSource::Camera) > 30);
    assert!(net.sfu.stats().silence_dropped > 50);
    net.browser(1).connection.audio_level = -20;
    net.run(Duration::from_secs(1), Some(1));
    let spoken = net.browser(2).frames_from(1, TrackSource::Microphone);
    assert!(spoken >= 45, "{spoken} frames of speech");
    // A pause shorter than the hangover goes through; a long silence stops again.
    net.browser(1).connection.audio_level = -90;
    net.run(Duration::from_millis(500), Some(1));
    let paused = net.browser(2).frames_from(1, TrackSource::Microphone);
    assert!(
        paused >= spoken + 20,
        "{} frames of the pause",
        paused - spoken
    );
    net.run(Duration::from_secs(2), Some(1));
    let after = net.browser(2).frames_from(1, TrackSource::Microphone);
    assert!(after - paused <= 30, "{} frames of silence", after - paused);
}

#[test]
fn sections_freed_by_leavers_are_reused_in_order_as_others_come_and_go() {
    let mut net = Network::new();
    net.join(1, "standup");
    net.join(2, "standup");
    net.run(Duration::from_secs(1), Some(1));
    // Publishers come and go while 1 and 2 stay; each offer must fit the sections the
    // viewers already have (the harness fails on any the browser refuses).
    for id in 3..9 {
        net.join(id, "standup");
        net.run(Duration::from_millis(300), Some(id));
        if id > 3 {
            net.sfu.remove(net.now, PeerId(id - 1));
            net.browsers.retain(|b| b.peer != PeerId(id - 1));
        }
        net.run(Duration::from_millis(300), Some(id));
    }
    let frames = net.browser(2).frames_from(8, TrackSource::Camera);
    assert!(
        frames > 5,
        "the last publisher reached the viewer with {frames} frames"
    );
}
