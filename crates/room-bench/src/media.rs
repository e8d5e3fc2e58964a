//! `room-bench media`: load for the forwarding unit. Each client joins a room through the real
//! WebSocket protocol, joins the call, connects to the server's media port with str0m
//! (ICE, DTLS, SRTP, as a browser does) and either publishes synthetic media (a camera in
//! three simulcast layers and a microphone, see `room::sfu::synthetic`) or only receives,
//! asking for one layer through `view`. Every frame carries its send time and number, so the
//! receivers measure forwarding delay and loss; the server's CPU time and memory come from
//! /proc when its process id is given. Loopback only, and it stops by itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use room::protocol::{
    ClientMsg, MediaState, PeerId, RemoteTrack, ServerMsg, TileView, TrackSource, PROTOCOL_VERSION,
};
use room::sfu::synthetic::{wall_micros, FrameStamp, SyntheticPeer, CAMERA_LAYERS};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::MediaKind;
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output};
use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{Impairment, Link};
use crate::{percentile, require_loopback, rss_kib, run_id, websocket_request};

/// What to run: the flags of `room-bench media`.
#[derive(Clone, Debug, clap::Args)]
pub struct MediaConfig {
    /// The server's address; must be a loopback address. The server must carry calls
    /// through its forwarding unit (`--media sfu`, or more members than `--mesh-max`).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Publishers per room: each sends a camera in three layers and a microphone.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Receivers per room: they send nothing and ask for `--layer` of every camera.
    #[arg(long, default_value_t = 4)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Seconds measured, after everyone is connected and receiving.
    #[arg(long, default_value = "10", value_parser = crate::seconds)]
    pub duration: Duration,
    /// The layer each receiver asks for: `q` (320 × 180), `h` (640 × 360) or `f` (1280 × 720).
    #[arg(long, default_value = "h", value_parser = ["q", "h", "f"])]
    pub layer: String,
    /// Cameras each participant shows (a page of a large meeting); the others' tiles are
    /// hidden and receive no video. Default: every camera.
    #[arg(long)]
    pub tiles: Option<usize>,
    /// Publishers per room who speak; the others' microphones send silence (which the
    /// server does not forward). Default: every publisher.
    #[arg(long)]
    pub speakers: Option<usize>,
    /// Camera layers each publisher sends, from the smallest: 1 (`q` only) to 3.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub publish_layers: u8,
    /// The server's process id, for its CPU time per forwarded datagram and its memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// What was measured, summed over the receivers (publishers receive each other too, and
/// count as receivers).
#[derive(Clone, Debug, Default)]
pub struct MediaReport {
    pub participants: usize,
    pub connected: usize,
    pub seconds: f64,
    /// Datagrams and bytes the receivers' sockets got from the server while measuring.
    pub datagrams: u64,
    pub bytes: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Frames missing from the numbered streams the receivers followed.
    pub frames_lost: u64,
    /// Retransmission requests the receivers sent.
    pub nacks: u64,
    /// Errors the server sent the participants (signalling refused, say).
    pub errors: u64,
    pub delay_p50_us: u64,
    pub delay_p99_us: u64,
    /// From sending the answer that opened a receiver's first camera to its first frame.
    pub first_video_p50_ms: u64,
    pub first_video_max_ms: u64,
    pub server_cpu_seconds: Option<f64>,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
}

impl MediaReport {
    pub fn cpu_us_per_datagram(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.datagrams > 0).then(|| cpu * 1e6 / self.datagrams as f64)
    }

    pub fn loss_percent(&self) -> f64 {
        let expected = self.video_frames + self.audio_frames + self.frames_lost;
        if expected == 0 {
            return 0.0;
        }
        self.frames_lost as f64 * 100.0 / expected as f64
    }

    pub fn render(&self) -> String {
        let per_second = |n: u64| n as f64 / self.seconds.max(f64::EPSILON);
        let mut lines = vec![
            format!(
                "participants         {}/{} connected, {} errors from the server",
                self.connected, self.participants, self.errors
            ),
            format!(
                "forwarded            {:.0} datagrams/s, {:.1} Mbit/s to receivers",
                per_second(self.datagrams),
                per_second(self.bytes) * 8.0 / 1e6
            ),
            format!(
                "frames received      {:.0} video/s, {:.0} audio/s, {} lost ({:.2}%), {} NACKs",
                per_second(self.video_frames),
                per_second(self.audio_frames),
                self.frames_lost,
                self.loss_percent(),
                self.nacks
            ),
            format!(
                "forwarding delay     p50 {:.2} ms, p99 {:.2} ms",
                self.delay_p50_us as f64 / 1000.0,
                self.delay_p99_us as f64 / 1000.0
            ),
            format!(
                "first video          p50 {} ms, max {} ms after subscribing",
                self.first_video_p50_ms, self.first_video_max_ms
            ),
        ];
        if let Some(per) = self.cpu_us_per_datagram() {
            lines.push(format!(
                "server CPU           {:.2} s over {:.1} s, {per:.2} µs per forwarded datagram",
                self.server_cpu_seconds.unwrap_or_default(),
                self.seconds
            ));
        }
        if let (Some(before), Some(after)) = (self.server_rss_before_kib, self.server_rss_after_kib)
        {
            let per = after.saturating_sub(before) as f64 / self.connected.max(1) as f64;
            lines.push(format!(
                "server RSS           {before} KiB before, {after} KiB with everyone, {per:.1} KiB per participant"
            ));
        }
        lines.join("\n")
    }
}

/// CPU seconds the process has used (user and system), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every architecture it runs on here.
    Some((user + system) / 100.0)
}

/// What every client adds to, under one lock taken once per client at the end.
#[derive(Default)]
struct Totals {
    connected: usize,
    datagrams: u64,
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
    frames_lost: u64,
    nacks: u64,
    errors: u64,
    delays_us: Vec<u64>,
    first_video_ms: Vec<u64>,
}

/// Runs the load and reports. Refuses anything but a loopback target.
pub async fn run_media(config: MediaConfig) -> Result<MediaReport, String> {
    require_loopback(config.addr)?;
    let per_room = config.publishers + config.subscribers;
    if config.rooms == 0 || per_room < 2 || config.publishers == 0 {
        return Err("need a publisher and someone else in every room".into());
    }
    // A tile the size of the chosen layer's picture.
    let tile = CAMERA_LAYERS
        .iter()
        .find(|&&(rid, ..)| rid == config.layer)
        .map(|&(_, width, height, _)| (width, height))
        .ok_or("--layer names no camera layer")?;
    let run = run_id();
    let totals = Arc::new(Mutex::new(Totals::default()));
    // Everyone connects and settles for this long before measuring.
    let warm_up = Duration::from_secs(3) + Duration::from_millis(20 * per_room as u64);
    let measure_from = Instant::now() + warm_up;
    let measure_until = measure_from + config.duration;
    let rss_before = config.server_pid.and_then(rss_kib);
    let mut tasks = Vec::new();
    for room in 0..config.rooms {
        for index in 0..per_room {
            let client = Client {
                addr: config.addr,
                room: format!("media-{run}-{room}"),
                name: format!("m{run}-{room}-{index}"),
                publishes: index < config.publishers,
                tile,
                tiles: config.tiles.unwrap_or(usize::MAX),
                speaks: index < config.speakers.unwrap_or(config.publishers),
                camera_layers: usize::from(config.publish_layers),
                udp_bind: LOOPBACK_ANY_PORT,
                impairment: None,
                video_log: None,
                measure_from,
                measure_until,
            };
            let totals = Arc::clone(&totals);
            tasks.push(tokio::spawn(async move {
                if let Err(error) = client.run(totals).await {
                    eprintln!("room-bench media: a client failed: {error}");
                }
            }));
            // Joins spread a little, as people arrive.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cpu_wait = measure_from.saturating_duration_since(Instant::now());
    tokio::time::sleep(cpu_wait).await;
    let cpu_before = config.server_pid.and_then(cpu_seconds);
    tokio::time::sleep(config.duration).await;
    let cpu_after = config.server_pid.and_then(cpu_seconds);
    let rss_after = config.server_pid.and_then(rss_kib);
    for task in tasks {
        let _ = task.await;
    }
    let mut report = totals
        .lock()
        .await
        .report(config.rooms * per_room, config.duration);
    report.server_cpu_seconds = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    report.server_rss_before_kib = rss_before;
    report.server_rss_after_kib = rss_after;
    Ok(report)
}

/// A media socket on loopback, on a free port.
const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Every video frame one participant received: when, and its size in bytes (the synthetic
/// layers differ in size, so the size tells the layer).
pub type VideoLog = Arc<std::sync::Mutex<Vec<(Instant, usize)>>>;

/// One participant on its own, for tests that follow it over time.
pub struct Participant {
    /// The server; must be a loopback address.
    pub addr: SocketAddr,
    pub room: String,
    pub name: String,
    pub publishes: bool,
    /// The tile size it shows every camera at.
    pub tile: (u32, u32),
    /// Where its media socket binds (a loopback address).
    pub udp_bind: SocketAddr,
    /// When it stops; it counts from when it starts.
    pub until: Instant,
    /// Its link to the server, impaired for a while.
    pub impairment: Option<Impairment>,
    pub video_log: Option<VideoLog>,
}

/// Runs one participant until its end and reports what it received.
pub async fn participate(participant: Participant) -> Result<MediaReport, String> {
    require_loopback(participant.addr)?;
    let started = Instant::now();
    let client = Client {
        addr: participant.addr,
        room: participant.room,
        name: participant.name,
        publishes: participant.publishes,
        tile: participant.tile,
        tiles: usize::MAX,
        speaks: true,
        camera_layers: CAMERA_LAYERS.len(),
        udp_bind: participant.udp_bind,
        impairment: participant.impairment,
        video_log: participant.video_log,
        measure_from: started,
        measure_until: participant.until,
    };
    let totals = Arc::new(Mutex::new(Totals::default()));
    client.run(Arc::clone(&totals)).await?;
    let seconds = participant.until.saturating_duration_since(started);
    let report = totals.lock().await.report(1, seconds);
    Ok(report)
}

impl Totals {
    fn report(&mut self, participants: usize, duration: Duration) -> MediaReport {
        self.delays_us.sort_unstable();
        self.first_video_ms.sort_unstable();
        MediaReport {
            participants,
            connected: self.connected,
            seconds: duration.as_secs_f64(),
            datagrams: self.datagrams,
            bytes: self.bytes,
            video_frames: self.video_frames,
            audio_frames: self.audio_frames,
            frames_lost: self.frames_lost,
            nacks: self.nacks,
            delay_p50_us: percentile(&self.delays_us, 0.5),
            delay_p99_us: percentile(&self.delays_us, 0.99),
            first_video_p50_ms: percentile(&self.first_video_ms, 0.5),
            first_video_max_ms: self.first_video_ms.last().copied().unwrap_or(0),
            errors: self.errors,
            ..MediaReport::default()
        }
    }
}

struct Client {
    addr: SocketAddr,
    room: String,
    name: String,
    publishes: bool,
    tile: (u32, u32),
    tiles: usize,
    speaks: bool,
    camera_layers: usize,
    udp_bind: SocketAddr,
    impairment: Option<Impairment>,
    video_log: Option<VideoLog>,
    measure_from: Instant,
    measure_until: Instant,
}

/// One client's own counts, added to the totals once at the end.
#[derive(Default)]
struct Counts {
    datagrams: u64,
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
    frames_lost: u64,
    nacks: HashMap<(String, Option<String>), u64>,
    errors: u64,
    delays_us: Vec<u64>,
    first_video_ms: Option<u64>,
}

impl Client {
    async fn run(self, totals: Arc<Mutex<Totals>>) -> Result<(), String> {
        let (mut ws, _) = tokio_tungstenite::connect_async(websocket_request(self.addr))
            .await
            .map_err(|e| e.to_string())?;
        let media = MediaState {
            mic: self.publishes,
            camera: self.publishes,
            screen: false,
        };
        for msg in [
            ClientMsg::Hello {
                version: PROTOCOL_VERSION,
            },
            ClientMsg::join(self.room.clone(), self.name.clone()),
            ClientMsg::JoinCall { media },
        ] {
            send(&mut ws, &msg).await?;
        }
        let udp = UdpSocket::bind(self.udp_bind)
            .await
            .map_err(|e| e.to_string())?;
        let seed = u64::from(link_seed(&self.name));
        let mut link = Link::new(self.impairment, seed);
        let local = udp.local_addr().map_err(|e| e.to_string())?;
        let start = Instant::now();
        let (mut peer, offer, pending) = SyntheticPeer::new(start, local);
        if !self.speaks {
            peer.audio_level = -127;
        }
        peer.camera_layers = self.camera_layers;
        let mut pending: Option<SdpPendingOffer> = Some(pending);
        let mut offered = false;
        let mut tracks: HashMap<String, RemoteTrack> = HashMap::new();
        let mut viewed: Vec<PeerId> = Vec::new();
        let mut last_numbers: HashMap<(String, Option<String>), u32> = HashMap::new();
        let mut subscribed_at: Option<Instant> = None;
        let mut counts = Counts::default();
        let mut timeout;
        let mut next_video = start;
        let mut next_audio = start;
        let mut buffer = vec![0u8; 2048];
        let mut connected = false;
        let mut offers = 0;
        loop {
            let now = Instant::now();
            if now >= self.measure_until {
                break;
            }
            let measuring = now >= self.measure_from;
            if self.publishes && offered {
                if now >= next_video {
                    peer.send_frame(now, MediaKind::Video);
                    next_video += Duration::from_millis(33);
                }
                if now >= next_audio {
                    peer.send_frame(now, MediaKind::Audio);
                    next_audio += Duration::from_millis(20);
                }
            }
            // Whatever the connection has to send, and what it tells.
            loop {
                match peer.rtc.poll_output().map_err(|e| e.to_string())? {
                    Output::Timeout(at) => {
                        timeout = at;
                        break;
                    }
                    Output::Transmit(transmit) => {
                        link.depart(now, transmit.destination, transmit.contents.into());
                    }
                    Output::Event(event) => {
                        peer.handle_event(&event);
                        match event {
                            Event::MediaData(data) => {
                                let Some(track) = tracks.get(&data.mid.to_string()) else {
                                    continue;
                                };
                                let video = track.source == TrackSource::Camera;
                                let stamp = if video {
                                    FrameStamp::of_video(&data.data)
                                } else {
                                    FrameStamp::of_audio(&data.data)
                                };
                                if let (true, Some(log)) = (video, &self.video_log) {
                                    if let Ok(mut log) = log.lock() {
                                        log.push((Instant::now(), data.data.len()));
                                    }
                                }
                                if video && counts.first_video_ms.is_none() {
                                    let since = subscribed_at.unwrap_or(start);
                                    counts.first_video_ms =
                                        Some(since.elapsed().as_millis() as u64);
                                }
                                let Some(stamp) = stamp else { continue };
                                // A receiver gets one stream per camera whatever the layer,
                                // and the layers' numbers run in step (a frame each per tick),
                                // so a layer switch leaves no gap unless frames were lost.
                                let stream =
                                    (data.mid.to_string(), data.rid.map(|r| r.to_string()));
                                let last = last_numbers.insert(stream, stamp.number);
                                if !measuring {
                                    continue;
                                }
                                if let Some(last) = last {
                                    if stamp.number > last + 1 && stamp.number - last < 1000 {
                                        counts.frames_lost += u64::from(stamp.number - last - 1);
                                    }
                                }
                                if video {
                                    counts.video_frames += 1;
                                } else {
                                    counts.audio_frames += 1;
                                }
                                counts
                                    .delays_us
                                    .push(wall_micros().saturating_sub(stamp.sent_us));
                            }
                            Event::MediaIngressStats(report) => {
                                let key =
                                    (report.mid.to_string(), report.rid.map(|r| r.to_string()));
                                counts.nacks.insert(key, report.nacks);
                            }
                            Event::IceConnectionStateChange(state) => {
                                connected |= state == str0m::IceConnectionState::Connected
                                    || state == str0m::IceConnectionState::Completed;
                            }
                            _ => {}
                        }
                    }
                }
            }
            while let Some((destination, contents)) = link.sent(Instant::now()) {
                let _ = udp.send_to(&contents, destination).await;
            }
            let wake = [timeout, self.measure_until]
                .into_iter()
                .chain(self.publishes.then_some(next_video.min(next_audio)))
                .chain(link.next_due())
                .min()
                .unwrap_or(self.measure_until);
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake.max(now)));
            tokio::select! {
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        // Pings are answered by the library; nothing else comes.
                        Some(Ok(_)) => continue,
                        _ => return Err("the WebSocket closed".into()),
                    };
                    let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else { continue };
                    match msg {
                        ServerMsg::CallJoined { .. } if !offered => {
                            offered = true;
                            for part in ClientMsg::media_description(&offer.to_sdp_string(), true) {
                                send(&mut ws, &part).await?;
                            }
                        }
                        ServerMsg::Error { code, message, .. } => {
                            counts.errors += 1;
                            if counts.errors == 1 {
                                eprintln!("room-bench media: {}: {code:?}: {message}", self.name);
                            }
                        }
                        ServerMsg::MediaAnswer { sdp } => {
                            let answer = SdpAnswer::from_sdp_string(&sdp).map_err(|e| e.to_string())?;
                            if let Some(pending) = pending.take() {
                                peer.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| e.to_string())?;
                            }
                        }
                        ServerMsg::MediaOffer { sdp, tracks: described } => {
                            tracks = described.into_iter().map(|t| (t.mid.clone(), t)).collect();
                            let offer = SdpOffer::from_sdp_string(&sdp).map_err(|e| e.to_string())?;
                            offers += 1;
                            let answer = peer.rtc.sdp_api().accept_offer(offer).map_err(|e| {
                                format!("{e} (offer {offers}, sections {})", section_ids(&sdp))
                            })?;
                            for part in ClientMsg::media_description(&answer.to_sdp_string(), false) {
                                send(&mut ws, &part).await?;
                            }
                            if subscribed_at.is_none() && tracks.values().any(|t| t.source == TrackSource::Camera) {
                                subscribed_at = Some(Instant::now());
                            }
                            // Ask for the chosen layer of every camera now described.
                            let mut cameras: Vec<PeerId> = tracks
                                .values()
                                .filter(|t| t.source == TrackSource::Camera)
                                .map(|t| t.peer)
                                .collect();
                            cameras.sort();
                            if cameras != viewed {
                                // The first cameras fill the page; a hidden tile is 0 × 0.
                                let tiles = cameras.iter().enumerate().map(|(shown, &peer)| {
                                    let (width, height) =
                                        if shown < self.tiles { self.tile } else { (0, 0) };
                                    TileView { peer, source: TrackSource::Camera, width, height }
                                }).collect();
                                send(&mut ws, &ClientMsg::View { tiles }).await?;
                                viewed = cameras;
                            }
                        }
                        _ => {}
                    }
                }
                received = udp.recv_from(&mut buffer) => {
                    let Ok((length, source)) = received else { continue };
                    if Instant::now() >= self.measure_from {
                        counts.datagrams += 1;
                        counts.bytes += length as u64;
                    }
                    link.arrive(Instant::now(), source, buffer[..length].to_vec());
                }
                () = sleep => {
                    let now = Instant::now();
                    if now >= timeout {
                        peer.rtc.handle_input(Input::Timeout(now)).map_err(|e| e.to_string())?;
                    }
                }
            }
            let now = Instant::now();
            while let Some((source, contents)) = link.delivered(now) {
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &contents) {
                    peer.rtc
                        .handle_input(Input::Receive(now, receive))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        let _ = ws.close(None).await;
        let mut totals = totals.lock().await;
        totals.connected += usize::from(connected);
        totals.datagrams += counts.datagrams;
        totals.bytes += counts.bytes;
        totals.video_frames += counts.video_frames;
        totals.audio_frames += counts.audio_frames;
        totals.frames_lost += counts.frames_lost;
        totals.nacks += counts.nacks.values().sum::<u64>();
        totals.errors += counts.errors;
        totals.delays_us.append(&mut counts.delays_us);
        totals.first_video_ms.extend(counts.first_video_ms);
        Ok(())
    }
}

async fn send<S>(ws: &mut S, msg: &ClientMsg) -> Result<(), String>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    ws.send(Message::Text(msg.to_json().into()))
        .await
        .map_err(|e| e.to_string())
}

/// A seed for a participant's link that differs between participants of one run.
fn link_seed(name: &str) -> u32 {
    name.bytes().fold(2_166_136_261u32, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(16_777_619)
    })
}

/// The `mid`s of a session description's sections, in order, for error messages.
fn section_ids(sdp: &str) -> String {
    let ids: Vec<&str> = sdp
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix("a=mid:"))
        .collect();
    ids.join(" ")
}
