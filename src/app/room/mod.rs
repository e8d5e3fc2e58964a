//! The meeting page at `/r/{room}`: a pre-join screen (name, camera preview, devices), then
//! the call's video tiles with controls, the chat and the participant list.

pub mod chat;
pub mod controls;
pub mod model;
pub mod people;
pub mod prejoin;
pub mod shortcuts;
pub mod tiles;

use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::client::{self, Closed, MediaSession, Socket};
use crate::core::names::{display_name, RoomSlug};
use crate::core::room::RoomLimits;
use crate::media::{DeviceInfo, LinkState, MediaEvent, MediaProblem, SpeakerDetector};
use crate::protocol::{
    close_code, ClientMsg, ErrorCode, Limits, MediaState, PeerId, ServerMsg, PROTOCOL_VERSION,
};

use self::model::{ChatStream, Roster};
use super::i18n::{use_i18n, I18n};
use super::LangSwitch;

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = move || params.read().get("room").unwrap_or_default();
    move || match RoomSlug::parse(&room()) {
        Ok(slug) => view! { <Meeting slug/> }.into_any(),
        Err(_) => {
            let i18n = use_i18n();
            view! {
                <main class="page narrow">
                    <h1>{move || i18n.t().not_a_room}</h1>
                    <p>{move || i18n.t().invalid_room_typed}</p>
                    <p><a href="/">{move || i18n.t().back_home}</a></p>
                </main>
            }
            .into_any()
        }
    }
}

/// Where the page is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Choosing a name and checking camera and microphone.
    Lobby,
    Joining,
    InRoom,
    /// Left on purpose or lost the connection; the text says which.
    Ended(String),
}

/// Whether this page takes part in the room's call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallPhase {
    Off,
    Joining,
    In,
    /// The server said no (the call is full); the text says why. Chat still works.
    Refused(String),
}

/// What a dropped connection needs to come back as the same member.
#[derive(Clone, Debug)]
struct Rejoin {
    room: String,
    name: String,
    token: Option<String>,
}

/// Backoff before reconnect attempt `attempt` (1, 2, …): doubling from a quarter second up to
/// eight seconds, then spread by ±50% (`jitter` in 0..1) so that a restarted server is not hit
/// by every client in the same instant.
pub fn reconnect_delay_ms(attempt: u32, jitter: f64) -> u32 {
    let base = 250f64 * 2f64.powi(attempt.saturating_sub(1).min(5) as i32);
    (base.min(8000.0) * (0.5 + jitter.clamp(0.0, 1.0))) as u32
}

/// How the call's tiles are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Everyone the same size.
    Grid,
    /// The active speaker large, the others in a strip.
    Speaker,
}

/// A reaction on screen for a few seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownReaction {
    pub key: u64,
    pub from: PeerId,
    pub emoji: String,
}

/// How long a reaction stays on screen.
const REACTION_MS: u32 = 4000;

/// The local devices as the page shows them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Devices {
    pub list: Vec<DeviceInfo>,
    pub camera: Option<String>,
    pub microphone: Option<String>,
}

/// The page's reactive state; every field is a cheap handle, so the struct is `Copy`.
#[derive(Clone, Copy)]
pub struct MeetingState {
    pub phase: RwSignal<Phase>,
    pub call: RwSignal<CallPhase>,
    pub me: RwSignal<Option<PeerId>>,
    pub roster: RwSignal<Roster>,
    pub chat: RwSignal<ChatStream>,
    /// The last refusal, shown next to the control that caused it.
    pub error: RwSignal<Option<String>>,
    pub limits: RwSignal<Option<Limits>>,
    /// What this browser sends (or would send, before joining).
    pub local: RwSignal<MediaState>,
    pub level: RwSignal<f32>,
    pub devices: RwSignal<Devices>,
    pub problem: RwSignal<Option<MediaProblem>>,
    pub links: RwSignal<HashMap<PeerId, LinkState>>,
    /// Bumped for a member whenever new media of theirs arrives, so their tile re-attaches.
    pub media_epochs: RwSignal<HashMap<PeerId, u32>>,
    /// Reconnect attempts since the connection dropped; 0 while connected.
    pub reconnecting: RwSignal<u32>,
    /// Who is speaking now, this page included.
    pub speaker: RwSignal<Option<PeerId>>,
    speaker_detector: StoredValue<SpeakerDetector>,
    pub layout: RwSignal<Layout>,
    pub reactions: RwSignal<Vec<ShownReaction>>,
    next_reaction: StoredValue<u64>,
    /// Chat and people, folded away on narrow screens.
    pub sidebar_open: RwSignal<bool>,
    pub help_open: RwSignal<bool>,
    pub i18n: I18n,
    /// The room, name and resume token to come back with after a dropped connection.
    session: StoredValue<Option<Rejoin>>,
    socket: client::Stored<Option<Socket>>,
    media: client::Stored<Option<MediaSession>>,
}

impl MeetingState {
    fn new() -> Self {
        MeetingState {
            phase: RwSignal::new(Phase::Lobby),
            call: RwSignal::new(CallPhase::Off),
            me: RwSignal::new(None),
            roster: RwSignal::new(Roster::default()),
            chat: RwSignal::new(ChatStream::default()),
            error: RwSignal::new(None),
            limits: RwSignal::new(None),
            local: RwSignal::new(MediaState::default()),
            level: RwSignal::new(0.0),
            devices: RwSignal::new(Devices::default()),
            problem: RwSignal::new(None),
            links: RwSignal::new(HashMap::new()),
            media_epochs: RwSignal::new(HashMap::new()),
            reconnecting: RwSignal::new(0),
            speaker: RwSignal::new(None),
            speaker_detector: StoredValue::new(SpeakerDetector::default()),
            layout: RwSignal::new(Layout::Grid),
            reactions: RwSignal::new(Vec::new()),
            next_reaction: StoredValue::new(0),
            sidebar_open: RwSignal::new(false),
            help_open: RwSignal::new(false),
            i18n: use_i18n(),
            session: StoredValue::new(None),
            socket: client::store(None),
            media: client::store(None),
        }
    }

    /// Sends over the room's socket; false when it is not open.
    pub fn send(self, msg: &ClientMsg) -> bool {
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

    /// Opens camera and microphone for the pre-join preview (once).
    fn start_media(self) {
        if self.media.with_value(Option::is_some) {
            return;
        }
        let session = MediaSession::new(move |event| self.on_media(event));
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
            MediaEvent::Local(media) => {
                if self.local.get_untracked() != media {
                    self.local.set(media);
                    if self.call.get_untracked() == CallPhase::In {
                        self.send(&ClientMsg::Media { media });
                    }
                }
            }
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
                if self.speaker.get_untracked() != speaker {
                    self.speaker.set(speaker);
                }
            }
            MediaEvent::Link { peer, state } => self.links.update(|l| {
                l.insert(peer, state);
            }),
            MediaEvent::RemoteMedia { peer } => self.media_epochs.update(|e| {
                *e.entry(peer).or_default() += 1;
            }),
        }
    }

    /// Folds one server message into the page.
    fn apply(self, msg: ServerMsg) {
        match msg {
            ServerMsg::Hello { limits, .. } => self.limits.set(Some(limits)),
            ServerMsg::Joined {
                you,
                peers,
                history,
                name,
                room,
                resumed,
                resume_token,
            } => {
                let returning = self.reconnecting.get_untracked() > 0;
                let previous = self.me.get_untracked();
                self.me.set(Some(you));
                // Links to members who are gone (or whose ids changed with a restarted server)
                // are closed; the same member resumed keeps its links.
                let known: Vec<PeerId> = peers.iter().map(|p| p.id).collect();
                let stale: Vec<PeerId> = self.links.with_untracked(|l| {
                    l.keys()
                        .copied()
                        .filter(|id| !known.contains(id) || !resumed)
                        .collect()
                });
                for peer in stale {
                    self.forget_link(peer);
                }
                self.roster.set(Roster { peers });
                self.chat.update(|chat| {
                    for entry in history {
                        chat.push_message(entry, Some(you));
                    }
                    let t = self.i18n.lang.get_untracked().texts();
                    let notice = match (returning, resumed) {
                        (false, _) => (t.you_joined)(&room, &name),
                        (true, true) => t.reconnected.to_string(),
                        (true, false) => t.reconnected_restart.to_string(),
                    };
                    chat.push_notice(notice, Some(client::now()));
                });
                self.session.set_value(Some(Rejoin {
                    room,
                    name,
                    token: Some(resume_token),
                }));
                self.reconnecting.set(0);
                self.error.set(None);
                self.phase.set(Phase::InRoom);
                // After a restart the call starts over under the new id.
                if returning && !resumed && previous != Some(you) {
                    let was_in_call = matches!(
                        self.call.get_untracked(),
                        CallPhase::In | CallPhase::Joining
                    );
                    self.with_media(MediaSession::leave_call);
                    if was_in_call {
                        self.call.set(CallPhase::Joining);
                    }
                }
                // Asked only now: a refused name must not be followed by a refused call.
                if self.call.get_untracked() == CallPhase::Joining {
                    self.send(&ClientMsg::JoinCall {
                        media: self.local.get_untracked(),
                    });
                }
            }
            ServerMsg::PeerJoined { peer } => {
                let notice = (self.texts().joined)(&peer.name);
                self.roster.update(|r| r.add(peer));
                self.chat
                    .update(|c| c.push_notice(notice, Some(client::now())));
            }
            ServerMsg::PeerLeft { peer, reason } => {
                self.forget_link(peer);
                let mut name = None;
                self.roster.update(|r| name = r.remove(peer));
                if let Some(name) = name {
                    let notice = (self.texts().left)(&name, reason);
                    self.chat
                        .update(|c| c.push_notice(notice, Some(client::now())));
                }
            }
            ServerMsg::PeerUpdated { peer } => {
                if !peer.in_call {
                    self.forget_link(peer.id);
                }
                self.roster.update(|r| r.update(peer));
            }
            ServerMsg::CallJoined { peers, ice_servers } => {
                self.call.set(CallPhase::In);
                let Some(me) = self.me.get_untracked() else {
                    return;
                };
                let send: Rc<dyn Fn(ClientMsg)> = Rc::new(move |msg| {
                    self.send(&msg);
                });
                self.with_media(|media| media.join_call(me, &ice_servers, &peers, send));
                // The server recorded what we asked to send when joining; correct it if a
                // device changed meanwhile.
                self.send(&ClientMsg::Media {
                    media: self.local.get_untracked(),
                });
            }
            ServerMsg::Signal { from, signal } => {
                self.with_media(|media| media.on_signal(from, signal));
            }
            ServerMsg::Chat { entry } => {
                let me = self.me.get_untracked();
                if Some(entry.from) == me {
                    self.error.set(None);
                }
                self.chat.update(|c| c.push_message(entry, me));
            }
            ServerMsg::Reaction { from, emoji } => self.show_reaction(from, emoji),
            ServerMsg::Rooms { .. } => {}
            ServerMsg::Error { code, message } => self.on_error(code, message),
        }
    }

    fn texts(self) -> &'static super::i18n::Texts {
        self.i18n.lang.get_untracked().texts()
    }

    /// The server's limits, or the defaults until its `hello` arrives.
    pub fn limits_or_default(self) -> Limits {
        self.limits
            .get_untracked()
            .unwrap_or(RoomLimits::DEFAULT_ADVERTISED)
    }

    fn show_reaction(self, from: PeerId, emoji: String) {
        let key = self
            .next_reaction
            .try_update_value(|k| {
                *k += 1;
                *k
            })
            .unwrap_or_default();
        self.reactions
            .update(|r| r.push(ShownReaction { key, from, emoji }));
        client::after(REACTION_MS, move || {
            self.reactions
                .update(|r| r.retain(|shown| shown.key != key));
        });
    }

    fn on_error(self, code: ErrorCode, message: String) {
        let message = self
            .texts()
            .refusal(code, &message, self.limits_or_default());
        match code {
            ErrorCode::CallFull => {
                self.call.set(CallPhase::Refused(message));
                // Chat-only: release the camera and microphone.
                self.with_media(MediaSession::stop);
            }
            ErrorCode::InvalidName
            | ErrorCode::NameTaken
            | ErrorCode::RoomFull
            | ErrorCode::InvalidRoom
            | ErrorCode::Unavailable
            | ErrorCode::TooManyRooms
                if self.phase.get_untracked() == Phase::Joining =>
            {
                self.phase.set(Phase::Lobby);
                self.call.set(CallPhase::Off);
                self.error.set(Some(message));
            }
            ErrorCode::InvalidName
            | ErrorCode::NameTaken
            | ErrorCode::RoomFull
            | ErrorCode::TooManyRooms
                if self.reconnecting.get_untracked() > 0 =>
            {
                // Came back too late and the room no longer has a place under this name.
                self.socket.set_value(None);
                self.end_call();
                self.reconnecting.set(0);
                self.phase
                    .set(Phase::Ended((self.texts().could_not_rejoin)(&message)));
            }
            _ => self.error.set(Some(message)),
        }
    }

    fn forget_link(self, peer: PeerId) {
        self.with_media(|media| media.hang_up(peer));
        self.links.update(|l| {
            l.remove(&peer);
        });
    }

    fn on_closed(self, closed: Closed) {
        let phase = self.phase.get_untracked();
        let rejoin = self.session.get_value();
        // A dropped connection of a member is retried; a first join that failed, or a
        // version the server does not speak, is not.
        if phase == Phase::InRoom && rejoin.is_some() && closed.code != close_code::PROTOCOL_ERROR {
            self.socket.set_value(None);
            self.schedule_reconnect();
            return;
        }
        if matches!(phase, Phase::Joining | Phase::InRoom) {
            self.end_call();
            let t = self.texts();
            let why = match closed.reason.as_str() {
                "" => t.connection_lost.to_string(),
                reason => (t.disconnected)(reason),
            };
            self.phase.set(Phase::Ended(why));
        }
    }

    fn schedule_reconnect(self) {
        let attempt = self.reconnecting.get_untracked() + 1;
        self.reconnecting.set(attempt);
        let delay = reconnect_delay_ms(attempt, client::random());
        client::after(delay, move || self.reconnect());
    }

    /// Opens a new socket and comes back as the same member if the server still knows the
    /// token; the history after the newest message shown fills the gap.
    fn reconnect(self) {
        if self.phase.get_untracked() != Phase::InRoom {
            return;
        }
        let Some(rejoin) = self.session.get_value() else {
            return;
        };
        let greeting = vec![
            ClientMsg::Hello {
                version: PROTOCOL_VERSION,
            },
            ClientMsg::Join {
                room: rejoin.room,
                name: rejoin.name,
                resume: rejoin.token,
                last_seen: self.chat.with_untracked(ChatStream::last_message_id),
            },
        ];
        match Socket::connect(greeting, move |m| self.apply(m), move |c| self.on_closed(c)) {
            Ok(socket) => self.socket.set_value(Some(socket)),
            Err(_) => self.schedule_reconnect(),
        }
    }

    fn end_call(self) {
        self.with_media(MediaSession::stop);
        self.media.set_value(None);
        self.call.set(CallPhase::Off);
        self.links.set(HashMap::new());
    }

    /// Leaves the room: closes the socket (the others see us leave at once) and the devices.
    pub fn leave(self) {
        self.session.set_value(None);
        self.socket.set_value(None);
        self.end_call();
        self.phase.set(Phase::Ended(self.texts().you_left.into()));
    }

    /// Asks for a seat in the call again after it was full.
    pub fn retry_call(self) {
        self.start_media();
        self.call.set(CallPhase::Joining);
        self.send(&ClientMsg::JoinCall {
            media: self.local.get_untracked(),
        });
    }

    pub fn toggle_mic(self) {
        let on = !self.local.get_untracked().mic;
        self.with_media(|m| m.set_mic(on));
    }

    pub fn toggle_camera(self) {
        let on = !self.local.get_untracked().camera;
        self.with_media(|m| m.set_camera(on));
    }

    pub fn toggle_screen(self) {
        if self.local.get_untracked().screen {
            self.with_media(MediaSession::stop_screen_share);
        } else {
            self.with_media(MediaSession::start_screen_share);
        }
    }

    pub fn my_hand_raised(self) -> bool {
        let me = self.me.get();
        self.roster.with(|r| {
            me.and_then(|me| r.get(me))
                .is_some_and(|p| p.hand.is_some())
        })
    }

    pub fn toggle_hand(self) {
        let raised = !self.my_hand_raised();
        self.send(&ClientMsg::Hand { raised });
    }

    /// Members in the call other than this page, in join order.
    pub fn others_in_call(self) -> Vec<PeerId> {
        let me = self.me.get();
        self.roster.with(|r| {
            r.peers
                .iter()
                .filter(|p| p.in_call && Some(p.id) != me)
                .map(|p| p.id)
                .collect()
        })
    }
}

#[component]
fn Meeting(slug: RoomSlug) -> impl IntoView {
    let state = MeetingState::new();
    let name = RwSignal::new(String::new());
    let room = slug.to_string();

    // Only the browser knows the name used last time, and has a camera.
    Effect::new(move |_| {
        if let Some(saved) = client::saved_name() {
            name.set(saved);
        }
        state.start_media();
    });

    let join = {
        let room = room.clone();
        move || {
            let max_chars = state.limits_or_default().max_name_chars;
            let chosen = match display_name(&name.get_untracked(), max_chars) {
                Ok(chosen) => chosen,
                Err(refusal) => {
                    let text = state.texts().refusal(
                        refusal.code,
                        &refusal.message,
                        state.limits_or_default(),
                    );
                    state.error.set(Some(text));
                    return;
                }
            };
            client::save_name(&chosen);
            name.set(chosen.clone());
            state.error.set(None);
            state.phase.set(Phase::Joining);
            state.call.set(CallPhase::Joining);
            state.start_media();
            let join = ClientMsg::Join {
                room: room.clone(),
                name: chosen,
                resume: None,
                last_seen: None,
            };
            // A socket that is still open after a refused name is reused.
            if state.send(&join) {
                return;
            }
            state.chat.set(ChatStream::default());
            let greeting = vec![
                ClientMsg::Hello {
                    version: PROTOCOL_VERSION,
                },
                join,
            ];
            match Socket::connect(
                greeting,
                move |m| state.apply(m),
                move |c| state.on_closed(c),
            ) {
                Ok(opened) => state.socket.set_value(Some(opened)),
                Err(error) => {
                    leptos::logging::warn!("cannot open the WebSocket: {error}");
                    state.error.set(Some(state.texts().connection_lost.into()));
                    state.phase.set(Phase::Lobby);
                }
            }
        }
    };

    let send_chat = move |text: String| {
        let sent = state.send(&ClientMsg::Chat { text });
        if !sent {
            state.error.set(Some(state.texts().not_connected.into()));
        }
        sent
    };
    let i18n = state.i18n;
    shortcuts::install(state);

    let title = format!("{room} · Room");
    let heading = room.clone();
    view! {
        <Title text=title/>
        <main class="page meeting">
            <Show when=move || { state.reconnecting.get() > 0 }>
                <div class="reconnecting" role="status" data-testid="reconnecting">
                    {move || i18n.t().reconnecting}
                </div>
            </Show>
            <header class="meeting-header">
                <a class="brand small" href="/">"Room"</a>
                <h1 class="room-name">{heading}</h1>
                <Show when=move || state.phase.get() == Phase::InRoom>
                    <span class="participant-count" data-testid="participant-count">
                        {move || (i18n.t().people_count)(state.roster.with(|r| r.peers.len()))}
                    </span>
                </Show>
                <LangSwitch/>
            </header>
            {move || match state.phase.get() {
                Phase::Lobby | Phase::Joining => {
                    view! { <prejoin::PreJoin name state join=join.clone()/> }.into_any()
                }
                Phase::InRoom => {
                    view! {
                        <div class="meeting-body" class:sidebar-open=move || state.sidebar_open.get()>
                            <section class="stage" aria-label=move || i18n.t().call>
                                <CallNotice state/>
                                <tiles::Tiles state/>
                                <tiles::Reactions state/>
                                <controls::Controls state/>
                            </section>
                            <aside class="sidebar">
                                <people::PeoplePanel state/>
                                <chat::ChatPanel state send=send_chat/>
                            </aside>
                        </div>
                    }
                        .into_any()
                }
                Phase::Ended(why) => {
                    let join = join.clone();
                    view! {
                        <section class="card narrow ended">
                            <p class="ended-reason">{why}</p>
                            <div class="row">
                                <button class="primary" on:click=move |_| join()>
                                    {move || i18n.t().rejoin}
                                </button>
                                <a class="button" href="/">{move || i18n.t().home}</a>
                            </div>
                        </section>
                    }
                        .into_any()
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
        CallPhase::Refused(why) => Some(view! {
            <div class="call-notice" role="status" data-testid="call-refused">
                <span>{why}</span>
                <button on:click=move |_| state.retry_call()>
                    {move || state.i18n.t().try_again}
                </button>
            </div>
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::reconnect_delay_ms;

    #[test]
    fn reconnect_backoff_doubles_up_to_a_cap_and_spreads_out() {
        let middle: Vec<u32> = (1..=8).map(|a| reconnect_delay_ms(a, 0.5)).collect();
        assert_eq!(middle, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(reconnect_delay_ms(1, 0.0), 125);
        assert_eq!(reconnect_delay_ms(1, 1.0), 375);
        assert_eq!(reconnect_delay_ms(30, 1.0), 12000);
    }
}
