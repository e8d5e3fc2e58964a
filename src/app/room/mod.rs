//! The meeting page at `/r/{room}`: a pre-join screen (name, camera preview, devices), then
//! the call's video tiles with controls, the chat and the participant list.

pub mod breakouts;
pub mod chat;
pub mod controls;
pub mod grid;
pub mod hosts;
pub mod model;
pub mod people;
pub mod prejoin;
pub mod recording;
pub mod session;
pub mod shortcuts;
pub mod tiles;
pub mod toasts;
mod toasts_view;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;

use crate::app::show::When;
use leptos_meta::Title;

use crate::client::{self, MediaSession, Socket};
use crate::core::names::RoomSlug;
use crate::media::{
    DeviceInfo, LinkState, MediaEvent, MediaProblem, Quality, SpeakerDetector, VoiceProcessing,
};
use crate::protocol::{
    Breakouts, CallMode, ClientMsg, Limits, MediaState, MeetingRules, NamedPeer, PeerId, Role,
    TrackSource, UnixMillis,
};

use self::model::{ChatLine, Roster};
pub use self::session::{Alert, CallPhase, Phase, ShownReaction};
use self::session::{CallCommand, Command, Env, HostNotice, Input, JoinKeys, Session};
use super::i18n::{use_i18n, I18n};
use super::LangSwitch;

/// The meeting page for `room` as written in the address, or why it is not a room.
#[component]
pub fn RoomPage(room: String) -> impl IntoView {
    match RoomSlug::parse(&room) {
        Ok(slug) => Either::Left(view! { <Meeting slug/> }),
        Err(_) => {
            let i18n = use_i18n();
            Either::Right(view! {
                <main class="page narrow">
                    <h1>{move || i18n.t().not_a_room}</h1>
                    <p>{move || i18n.t().invalid_room_typed}</p>
                    <p><a href="/">{move || i18n.t().back_home}</a></p>
                </main>
            })
        }
    }
}

/// How the call's tiles are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Everyone the same size.
    Grid,
    /// The active speaker large, the others in a strip.
    Speaker,
}

/// The local devices as the page shows them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Devices {
    pub list: Vec<DeviceInfo>,
    pub camera: Option<String>,
    pub microphone: Option<String>,
}

/// The page: the protocol [`Session`] (pure, in one signal, read through memos so each part
/// re-renders only when it changes), the media state the browser reports, and the socket and
/// media objects the session's commands act on. Every field is a cheap handle: `Copy`.
#[derive(Clone, Copy)]
pub struct MeetingState {
    session: RwSignal<Session>,
    pub phase: Memo<Phase>,
    pub call: Memo<CallPhase>,
    pub me: Memo<Option<PeerId>>,
    pub roster: Memo<Roster>,
    pub alert: Memo<Option<Alert>>,
    pub limits: Memo<Limits>,
    /// What this browser sends (or would send, before joining).
    pub local: Memo<MediaState>,
    /// Reconnect attempts since the connection dropped; 0 while connected.
    pub reconnecting: Memo<u32>,
    pub reactions: Memo<Vec<ShownReaction>>,
    /// This page's role, and what hosts see.
    pub role: Memo<Role>,
    pub rules: Memo<MeetingRules>,
    pub removed: Memo<Vec<NamedPeer>>,
    pub waiting: Memo<Vec<NamedPeer>>,
    pub host_notice: Memo<Option<HostNotice>>,
    /// The meeting's breakout rooms while open, and the one this page is in.
    pub breakouts: Memo<Option<Breakouts>>,
    pub in_breakout: Memo<Option<u8>>,
    /// Changes whenever a chat line is added (the list itself is capped, so its length stops
    /// changing in a long meeting).
    pub chat_version: Memo<u64>,
    /// Changes when the chat starts over (another room): the list is built anew.
    pub chat_era: Memo<u64>,
    /// The name typed in the pre-join form.
    pub name: RwSignal<String>,
    /// The meeting password typed in the pre-join form.
    pub password: RwSignal<String>,
    /// The meeting asked for its password.
    pub needs_password: Memo<bool>,
    /// The signed token from the room link; its name is the one the server uses.
    pub token: RwSignal<Option<String>>,
    pub level: RwSignal<f32>,
    pub devices: RwSignal<Devices>,
    pub problem: RwSignal<Option<MediaProblem>>,
    pub links: RwSignal<HashMap<PeerId, LinkState>>,
    /// How well each call member's video arrives, for the mark on their tile.
    pub quality: RwSignal<HashMap<PeerId, Quality>>,
    /// Bumped for a member whenever new media of theirs arrives, so their tile re-attaches.
    pub media_epochs: RwSignal<HashMap<PeerId, u32>>,
    /// Who is speaking now, this page included: as the server hears it in a call through
    /// the server, else as this page's meters hear it.
    pub speaker: Memo<Option<PeerId>>,
    heard_speaker: RwSignal<Option<PeerId>>,
    speaker_detector: StoredValue<SpeakerDetector>,
    pub layout: RwSignal<Layout>,
    /// The member whose tile this page shows large, whatever the layout (a shared screen
    /// still comes first).
    pub pinned: RwSignal<Option<PeerId>>,
    /// The chat and people panels, each opened and closed by its button and remembered.
    pub chat_open: Memo<bool>,
    pub people_open: RwSignal<bool>,
    /// Messages that came while the chat was closed.
    pub unread: Memo<usize>,
    /// The self-view shown mirrored, as in a mirror (what others see is never mirrored).
    pub mirror: RwSignal<bool>,
    /// Noise suppression and echo cancellation of this page's microphone.
    pub voice: RwSignal<VoiceProcessing>,
    /// This page's recording of the meeting, while it records, and since when.
    recorder: client::Stored<Option<client::Recorder>>,
    pub recording_since: RwSignal<Option<UnixMillis>>,
    /// Recording could not start in this browser (said in the banner's place).
    pub recording_failed: RwSignal<bool>,
    /// What is typed in the chat's input; kept here, so closing the panel loses nothing.
    pub chat_draft: RwSignal<String>,
    /// This page's own tile is left off the stage (its camera still sends).
    pub hide_self: RwSignal<bool>,
    /// The page of tiles shown (clamped by the stage to the pages there are).
    pub page: RwSignal<usize>,
    pub toasts: Memo<toasts::Toasts>,
    pub help_open: RwSignal<bool>,
    pub i18n: I18n,
    socket: client::Stored<Option<Socket>>,
    media: client::Stored<Option<MediaSession>>,
}

impl MeetingState {
    fn new() -> Self {
        let session = RwSignal::new(Session::default());
        let heard_speaker = RwSignal::new(None);
        MeetingState {
            session,
            phase: Memo::new(move |_| session.with(|s| s.phase.clone())),
            call: Memo::new(move |_| session.with(|s| s.call.clone())),
            me: Memo::new(move |_| session.with(|s| s.me)),
            roster: Memo::new(move |_| session.with(|s| s.roster.clone())),
            alert: Memo::new(move |_| session.with(|s| s.alert.clone())),
            limits: Memo::new(move |_| session.with(Session::limits_or_default)),
            local: Memo::new(move |_| session.with(|s| s.local)),
            reconnecting: Memo::new(move |_| session.with(|s| s.reconnecting)),
            reactions: Memo::new(move |_| session.with(|s| s.reactions.clone())),
            chat_version: Memo::new(move |_| session.with(|s| s.chat.version())),
            chat_era: Memo::new(move |_| session.with(|s| s.chat.era())),
            role: Memo::new(move |_| session.with(Session::my_role)),
            rules: Memo::new(move |_| session.with(|s| s.rules)),
            removed: Memo::new(move |_| session.with(|s| s.removed.clone())),
            waiting: Memo::new(move |_| session.with(|s| s.waiting.clone())),
            host_notice: Memo::new(move |_| session.with(|s| s.host_notice.clone())),
            breakouts: Memo::new(move |_| session.with(|s| s.breakouts.clone())),
            in_breakout: Memo::new(move |_| session.with(|s| s.in_breakout)),
            name: RwSignal::new(String::new()),
            password: RwSignal::new(String::new()),
            needs_password: Memo::new(move |_| session.with(|s| s.needs_password)),
            token: RwSignal::new(None),
            level: RwSignal::new(0.0),
            devices: RwSignal::new(Devices::default()),
            problem: RwSignal::new(None),
            links: RwSignal::new(HashMap::new()),
            quality: RwSignal::new(HashMap::new()),
            media_epochs: RwSignal::new(HashMap::new()),
            speaker: Memo::new(move |_| {
                let from_server = session.with(|s| {
                    (s.call == CallPhase::In && s.call_mode == CallMode::Sfu)
                        .then_some(s.server_speaker)
                });
                from_server.unwrap_or_else(|| heard_speaker.get())
            }),
            heard_speaker,
            speaker_detector: StoredValue::new(SpeakerDetector::default()),
            layout: RwSignal::new(Layout::Grid),
            pinned: RwSignal::new(None),
            chat_open: Memo::new(move |_| session.with(|s| s.chat_open)),
            people_open: RwSignal::new(false),
            unread: Memo::new(move |_| session.with(|s| s.unread)),
            mirror: RwSignal::new(true),
            voice: RwSignal::new(VoiceProcessing::default()),
            recorder: client::store(None),
            recording_since: RwSignal::new(None),
            recording_failed: RwSignal::new(false),
            chat_draft: RwSignal::new(String::new()),
            hide_self: RwSignal::new(false),
            page: RwSignal::new(0),
            toasts: Memo::new(move |_| session.with(|s| s.toasts.clone())),
            help_open: RwSignal::new(false),
            i18n: use_i18n(),
            socket: client::store(None),
            media: client::store(None),
        }
    }

    /// Feeds one input to the session and carries out what it asks for.
    pub fn dispatch(self, input: Input) {
        let env = Env {
            now: client::now(),
            jitter: client::random(),
        };
        let commands = self
            .session
            .try_update(|session| session.step(input, env))
            .unwrap_or_default();
        for command in commands {
            self.perform(command);
        }
    }

    fn perform(self, command: Command) {
        match command {
            Command::Send(msg) => {
                self.send(&msg);
            }
            Command::Connect(greeting) => {
                let opened = Socket::connect(
                    greeting,
                    move |msg| self.dispatch(Input::Server(msg)),
                    move |closed| {
                        self.dispatch(Input::SocketClosed {
                            code: closed.code,
                            reason: closed.reason,
                        })
                    },
                );
                match opened {
                    Ok(socket) => self.socket.set_value(Some(socket)),
                    Err(error) => {
                        leptos::logging::warn!("cannot open the WebSocket: {error}");
                        self.socket.set_value(None);
                        self.dispatch(Input::SocketFailed);
                    }
                }
            }
            Command::CloseSocket => self.socket.set_value(None),
            Command::ReconnectIn(ms) => {
                client::after(ms, move || self.dispatch(Input::ReconnectDue))
            }
            Command::ForgetReactionIn { key, ms } => {
                client::after(ms, move || self.dispatch(Input::ReactionDone(key)))
            }
            Command::ForgetToastIn { id, ms } => {
                client::after(ms, move || self.dispatch(Input::ToastDone(id)))
            }
            Command::SaveName(name) => {
                client::save_name(&name);
                self.name.set(name);
            }
            Command::SaveHostKey { room, key } => client::save_host_key(&room, &key),
            Command::TurnOff(source) => match source {
                TrackSource::Microphone => self.with_media(|m| m.set_mic(false)),
                TrackSource::Camera => self.with_media(|m| m.set_camera(false)),
                TrackSource::Screen => {
                    if self.local.get_untracked().screen {
                        self.with_media(MediaSession::stop_screen_share);
                    }
                }
            },
            Command::StartMedia => self.start_media(),
            Command::Call(call) => self.call_command(call),
        }
    }

    fn call_command(self, command: CallCommand) {
        match command {
            CallCommand::Join {
                me,
                ice_servers,
                peers,
                mode,
            } => {
                let send: Rc<dyn Fn(ClientMsg)> = Rc::new(move |msg| {
                    self.send(&msg);
                });
                self.links.set(HashMap::new());
                self.with_media(|media| media.join_call(me, &ice_servers, &peers, mode, send));
            }
            CallCommand::SwitchMode { mode, peers } => {
                self.links.set(HashMap::new());
                self.with_media(|media| media.switch_call(mode, &peers));
            }
            CallCommand::ServerAnswer { sdp } => {
                self.with_media(|media| media.on_server_answer(sdp));
            }
            CallCommand::ServerOffer { sdp, tracks } => {
                self.with_media(|media| media.on_server_offer(sdp, tracks));
            }
            CallCommand::Signal { from, signal } => {
                self.with_media(|media| media.on_signal(from, signal));
            }
            CallCommand::HangUp(peer) => self.forget_link(peer),
            CallCommand::PeerGaveUp { peer, reason } => {
                self.with_media(|media| media.on_peer_gave_up(peer, reason));
            }
            CallCommand::KeepOnly(keep) => {
                let stale: Vec<PeerId> = self.links.with_untracked(|links| {
                    links
                        .keys()
                        .copied()
                        .filter(|id| !keep.contains(id))
                        .collect()
                });
                for peer in stale {
                    self.forget_link(peer);
                }
            }
            CallCommand::Leave => self.with_media(MediaSession::leave_call),
            CallCommand::ReleaseDevices => self.with_media(MediaSession::stop),
            CallCommand::StopMedia => {
                self.with_media(MediaSession::stop);
                self.media.set_value(None);
                self.links.set(HashMap::new());
            }
        }
    }

    /// Sends over the room's socket; false when it is not open. For the call's signaling,
    /// which the WebRTC glue sends itself.
    fn send(self, msg: &ClientMsg) -> bool {
        self.socket
            .with_value(|s| s.as_ref().is_some_and(|s| s.send(msg)))
    }

    /// Runs `f` with the page's media session, if there is one.
    pub fn with_media(self, f: impl FnOnce(&MediaSession)) {
        self.media.with_value(|m| {
            if let Some(media) = m {
                f(media);
            }
        });
    }

    /// Reads the session without tracking (event handlers, effects that track elsewhere).
    pub fn with_session<T>(self, f: impl FnOnce(&Session) -> T) -> T {
        self.session.with_untracked(f)
    }

    /// The chat's lines, re-read whenever one is added.
    pub fn chat_lines(self) -> Vec<Arc<ChatLine>> {
        self.chat_version.track();
        self.session
            .with_untracked(|s| s.chat.lines().cloned().collect())
    }

    /// Whether older chat lines were dropped from the page.
    pub fn earlier_chat_hidden(self) -> bool {
        self.chat_version.track();
        self.session.with_untracked(|s| s.chat.earlier_hidden())
    }

    /// Whether the server has older chat this page can ask for now.
    pub fn can_load_earlier(self) -> bool {
        self.session.with(Session::can_load_earlier)
    }

    pub fn load_earlier(self) {
        self.dispatch(Input::LoadEarlier);
    }

    /// The alert in the page's language.
    pub fn alert_text(self) -> Option<String> {
        let alert = self.alert.get()?;
        Some(self.i18n.t().alert(&alert, self.limits.get()))
    }

    /// Opens camera and microphone for the pre-join preview (once).
    fn start_media(self) {
        if self.media.with_value(Option::is_some) {
            return;
        }
        let session = MediaSession::new(move |event| self.on_media(event));
        session.set_voice_processing(self.voice.get_untracked());
        session.start_preview();
        self.media.set_value(Some(session));
    }

    fn on_media(self, event: MediaEvent) {
        match event {
            MediaEvent::Devices {
                devices,
                camera,
                microphone,
            } => self.devices.set(Devices {
                list: devices,
                camera,
                microphone,
            }),
            MediaEvent::Problem(problem) => self.problem.set(problem),
            MediaEvent::Local(media) => self.dispatch(Input::LocalMedia(media)),
            MediaEvent::Levels { local, remote } => {
                self.level.set(local);
                let mut levels = remote;
                if let Some(me) = self.me.get_untracked() {
                    levels.push((
                        me,
                        if self.local.get_untracked().mic {
                            local
                        } else {
                            0.0
                        },
                    ));
                }
                let now = client::now().0;
                let speaker = self
                    .speaker_detector
                    .try_update_value(|d| d.update(now, &levels))
                    .flatten();
                if self.heard_speaker.get_untracked() != speaker {
                    self.heard_speaker.set(speaker);
                }
            }
            MediaEvent::Link { peer, state } => self.links.update(|l| {
                l.insert(peer, state);
            }),
            MediaEvent::RemoteMedia { peer } => self.media_epochs.update(|e| {
                *e.entry(peer).or_default() += 1;
            }),
            MediaEvent::Quality(judged) => {
                let judged: HashMap<PeerId, Quality> = judged.into_iter().collect();
                if self.quality.with_untracked(|q| *q != judged) {
                    self.quality.set(judged);
                }
            }
        }
    }

    fn forget_link(self, peer: PeerId) {
        self.with_media(|media| media.hang_up(peer));
        self.links.update(|l| {
            l.remove(&peer);
        });
    }

    /// Joins the room under the name in the form; the session checks it first.
    pub fn join(self, room: String) {
        let password = self.password.get_untracked();
        let keys = JoinKeys {
            browser: client::browser_id(),
            host_key: client::host_key(&room),
            password: (!password.is_empty()).then_some(password),
            token: self.token.get_untracked(),
        };
        self.dispatch(Input::Join {
            room,
            name: self.name.get_untracked(),
            keys,
        });
    }

    /// Sends a host action (the server checks this page may).
    pub fn host_action(self, msg: ClientMsg) {
        self.dispatch(Input::Host(msg));
    }

    /// Goes to breakout room `room`, or back to the main room.
    pub fn go_to(self, room: Option<u8>) {
        self.dispatch(Input::GoTo(room));
    }

    pub fn dismiss_host_notice(self) {
        self.dispatch(Input::DismissHostNotice);
    }

    /// Sends a chat message; false (and an alert) when there is no connection.
    pub fn send_chat(self, text: String) -> bool {
        let connected = self.with_session(Session::can_send);
        self.dispatch(Input::Chat(text));
        connected
    }

    /// Leaves the room: closes the socket (the others see us leave at once) and the devices.
    pub fn leave(self) {
        self.dispatch(Input::Leave);
    }

    /// Asks for a seat in the call again after it was full.
    pub fn retry_call(self) {
        self.dispatch(Input::RetryCall);
    }

    pub fn react(self, emoji: &str) {
        self.dispatch(Input::React(emoji.to_string()));
    }

    /// Whether `source` may be turned on; if a host keeps it off, says so instead.
    fn may_turn_on(self, source: TrackSource) -> bool {
        let may = self.session.with_untracked(|s| s.may_turn_on(source));
        if !may {
            self.dispatch(Input::Blocked(source));
        }
        may
    }

    pub fn toggle_mic(self) {
        let on = !self.local.get_untracked().mic;
        if on && !self.may_turn_on(TrackSource::Microphone) {
            return;
        }
        self.with_media(|m| m.set_mic(on));
    }

    pub fn toggle_camera(self) {
        let on = !self.local.get_untracked().camera;
        if on && !self.may_turn_on(TrackSource::Camera) {
            return;
        }
        self.with_media(|m| m.set_camera(on));
    }

    pub fn toggle_screen(self) {
        if self.local.get_untracked().screen {
            self.with_media(MediaSession::stop_screen_share);
        } else if self.may_turn_on(TrackSource::Screen) {
            self.with_media(MediaSession::start_screen_share);
        }
    }

    pub fn my_hand_raised(self) -> bool {
        self.roster.track();
        self.session.with_untracked(Session::my_hand_raised)
    }

    pub fn toggle_hand(self) {
        self.dispatch(Input::ToggleHand);
    }

    pub fn set_chat_open(self, open: bool) {
        client::save_flag(CHAT_OPEN_KEY, open);
        self.dispatch(Input::ChatPanel(open));
    }

    pub fn toggle_chat(self) {
        self.set_chat_open(!self.chat_open.get_untracked());
    }

    pub fn toggle_people(self) {
        let open = !self.people_open.get_untracked();
        client::save_flag(PEOPLE_OPEN_KEY, open);
        self.people_open.set(open);
    }

    pub fn set_mirror(self, on: bool) {
        client::save_flag(MIRROR_KEY, on);
        self.mirror.set(on);
    }

    pub fn set_voice(self, voice: VoiceProcessing) {
        client::save_flag(NOISE_KEY, voice.noise_suppression);
        client::save_flag(ECHO_KEY, voice.echo_cancellation);
        self.voice.set(voice);
        self.with_media(|m| m.set_voice_processing(voice));
    }

    /// The panels and media settings this browser had last time (panels closed at first).
    fn restore_settings(self) {
        if let Some(on) = client::load_flag(MIRROR_KEY) {
            self.mirror.set(on);
        }
        let chosen = VoiceProcessing {
            noise_suppression: client::load_flag(NOISE_KEY).unwrap_or(true),
            echo_cancellation: client::load_flag(ECHO_KEY).unwrap_or(true),
        };
        // Read by the media session as it opens the microphone.
        self.voice.set(chosen);
        if client::load_flag(CHAT_OPEN_KEY) == Some(true) {
            self.dispatch(Input::ChatPanel(true));
        }
        if client::load_flag(PEOPLE_OPEN_KEY) == Some(true) {
            self.people_open.set(true);
        }
    }

    /// Members in the call other than this page, in join order.
    pub fn others_in_call(self) -> Vec<PeerId> {
        self.roster.track();
        self.me.track();
        self.session.with_untracked(Session::others_in_call)
    }
}

/// The join form as the person left it before the client ran: typed text, and Join pressed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EarlyJoin {
    pub name: Option<String>,
    pub password: Option<String>,
    pub submitted: bool,
}

/// Where this browser remembers which panels were open.
const CHAT_OPEN_KEY: &str = "room.panel.chat";
const PEOPLE_OPEN_KEY: &str = "room.panel.people";
const MIRROR_KEY: &str = "room.mirror";
const NOISE_KEY: &str = "room.noise_suppression";
const ECHO_KEY: &str = "room.echo_cancellation";

#[component]
fn Meeting(slug: RoomSlug) -> impl IntoView {
    let state = MeetingState::new();
    let room = slug.to_string();

    // Only the browser knows the name used last time, and has a camera.
    Effect::new(move |_| {
        if let Some(saved) = client::saved_name() {
            state.name.set(saved);
        }
        if let Some(token) = client::link_token() {
            if let Some(name) = session::token_name(&token) {
                state.name.set(name);
            }
            state.token.set(Some(token));
        }
        state.restore_settings();
        state.start_media();
    });
    Effect::new(move |_| state.stop_recording_out_of_call());
    // A message the server refused comes back into the input, before anything typed since.
    let returned_chat = Memo::new(move |_| state.session.with(|s| s.returned_chat.clone()));
    Effect::new(move |_| {
        if let Some((_, text)) = returned_chat.get() {
            state.chat_draft.update(|draft| {
                *draft = if draft.is_empty() {
                    text
                } else {
                    format!("{text} {draft}")
                };
            });
        }
    });

    let join = {
        let room = room.clone();
        move || state.join(room.clone())
    };
    // What the person did before the client ran wins over the name saved last time.
    Effect::new({
        let join = join.clone();
        move |_| {
            let Some(early) = client::take_early_join() else {
                return;
            };
            if let Some(name) = early.name.filter(|n| !n.is_empty()) {
                state.name.set(name);
            }
            if let Some(password) = early.password.filter(|p| !p.is_empty()) {
                state.password.set(password);
            }
            if early.submitted {
                join();
            }
        }
    });
    let i18n = state.i18n;
    shortcuts::install(state);

    let title = format!("{room} · Room");
    let heading = room.clone();
    let heading_room = room.clone();
    view! {
        <Title text=title/>
        <main class="page meeting">
            <When when=move || { state.reconnecting.get() > 0 }>
                <div class="reconnecting" role="status" data-testid="reconnecting">
                    {move || i18n.t().reconnecting}
                </div>
            </When>
            <header class="meeting-header">
                <a class="brand small" href="/">"Room"</a>
                <h1 class="room-name">
                    {heading}
                    {move || {
                        let n = state.in_breakout.get()?;
                        let name = state
                            .breakouts
                            .with(|b| b.as_ref()?.rooms.get(usize::from(n)).map(|r| r.name.clone()))?;
                        Some(view! { <span class="breakout-name" data-testid="breakout-name">" · "{name}</span> })
                    }}
                </h1>
                <When when=move || state.phase.get() == Phase::InRoom>
                    <span class="participant-count" data-testid="participant-count">
                        {move || (i18n.t().people_count)(state.roster.with(|r| r.peers.len()))}
                    </span>
                    <When when=move || state.rules.get().locked>
                        <span class="locked-badge" data-testid="locked-badge">
                            "🔒 "{move || i18n.t().hosts.locked_badge}
                        </span>
                    </When>
                </When>
                <LangSwitch/>
            </header>
            {move || match state.phase.get() {
                Phase::Lobby | Phase::Joining => {
                    EitherOf4::A(view! { <prejoin::PreJoin state join=join.clone()/> })
                }
                Phase::Waiting => {
                    EitherOf4::B(view! {
                        <section class="card narrow waiting" role="status" data-testid="waiting">
                            <h2>{move || i18n.t().hosts.waiting_title}</h2>
                            <p>{move || i18n.t().hosts.waiting_body}</p>
                            <button on:click=move |_| state.leave()>{move || i18n.t().leave}</button>
                        </section>
                    })
                }
                Phase::InRoom => {
                    let sidebar = move || state.chat_open.get() || state.people_open.get();
                    EitherOf4::C(view! {
                        <div class="meeting-body" class:sidebar-open=sidebar>
                            <section class="stage" aria-label=move || i18n.t().call>
                                <CallNotice state/>
                                <hosts::HostNoticeBanner state room=heading_room.clone()/>
                                <breakouts::BreakoutBanner state/>
                                <recording::RecordingBanner state/>
                                <tiles::Tiles state/>
                                <tiles::Reactions state/>
                                <toasts_view::ToastStack state/>
                            </section>
                            <When when=sidebar>
                                <aside class="sidebar" class:both=move || state.chat_open.get() && state.people_open.get()>
                                    <When when=move || state.people_open.get()>
                                        <people::PeoplePanel state/>
                                    </When>
                                    <When when=move || state.chat_open.get()>
                                        <chat::ChatPanel state/>
                                    </When>
                                </aside>
                            </When>
                        </div>
                        <controls::Controls state/>
                    })
                }
                Phase::Ended(why) => {
                    let join = join.clone();
                    let may_rejoin = why.may_rejoin();
                    let why = i18n.t().ending(&why, state.limits.get_untracked());
                    EitherOf4::D(view! {
                        <section class="card narrow ended" data-testid="ended">
                            <p class="ended-reason">{why}</p>
                            <div class="row">
                                <When when=move || may_rejoin>
                                    <button class="primary" on:click={
                                        let join = join.clone();
                                        move |_| join()
                                    }>
                                        {move || i18n.t().rejoin}
                                    </button>
                                </When>
                                <a class="button" href="/">{move || i18n.t().home}</a>
                            </div>
                        </section>
                    })
                }
            }}
            <shortcuts::HelpDialog state/>
        </main>
    }
}

/// Tells a participant who could not join the call why, and lets them try again.
#[component]
fn CallNotice(state: MeetingState) -> impl IntoView {
    move || match state.call.get() {
        CallPhase::Refused(refusal) => Some(view! {
            <div class="call-notice" role="status" data-testid="call-refused">
                <span>
                    {move || {
                        state.i18n.t().refusal(refusal.code, &refusal.message, state.limits.get())
                    }}
                </span>
                <button on:click=move |_| state.retry_call()>
                    {move || state.i18n.t().try_again}
                </button>
            </div>
        }),
        _ => None,
    }
}
