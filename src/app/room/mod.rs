//! The meeting page at `/r/{room}`: asks for a name, then shows the people and the chat.

pub mod chat;
pub mod model;
pub mod people;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::client::{self, Closed, Socket};
use crate::core::names::{display_name, RoomSlug};
use crate::protocol::{ClientMsg, ErrorCode, Limits, PeerId, ServerMsg, PROTOCOL_VERSION};

use self::model::{leave_notice, ChatStream, Roster};
use super::people_label;

/// Longest name the form lets people type; the server has the final word.
const NAME_CHARS: usize = 32;

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = move || params.read().get("room").unwrap_or_default();
    move || match RoomSlug::parse(&room()) {
        Ok(slug) => view! { <Meeting slug/> }.into_any(),
        Err(refusal) => view! {
            <main class="page narrow">
                <h1>"That is not a room name"</h1>
                <p>{refusal.message}</p>
                <p><a href="/">"Back to Room"</a></p>
            </main>
        }
        .into_any(),
    }
}

/// Where the page is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Choosing a name.
    Lobby,
    Joining,
    InRoom,
    /// Left on purpose or lost the connection; the text says which.
    Ended(String),
}

/// The page's reactive state; every field is a cheap handle, so the struct is `Copy`.
#[derive(Clone, Copy)]
pub struct MeetingState {
    pub phase: RwSignal<Phase>,
    pub me: RwSignal<Option<PeerId>>,
    pub roster: RwSignal<Roster>,
    pub chat: RwSignal<ChatStream>,
    /// The last refusal, shown next to the control that caused it.
    pub error: RwSignal<Option<String>>,
    pub limits: RwSignal<Option<Limits>>,
}

impl MeetingState {
    fn new() -> Self {
        MeetingState {
            phase: RwSignal::new(Phase::Lobby),
            me: RwSignal::new(None),
            roster: RwSignal::new(Roster::default()),
            chat: RwSignal::new(ChatStream::default()),
            error: RwSignal::new(None),
            limits: RwSignal::new(None),
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
            } => {
                self.me.set(Some(you));
                self.roster.set(Roster { peers });
                self.chat.update(|chat| {
                    for entry in history {
                        chat.push_message(entry, Some(you));
                    }
                    chat.push_notice(format!("You joined {room} as {name}"), None);
                });
                self.error.set(None);
                self.phase.set(Phase::InRoom);
            }
            ServerMsg::PeerJoined { peer } => {
                let notice = format!("{} joined", peer.name);
                self.roster.update(|r| r.add(peer));
                self.chat
                    .update(|c| c.push_notice(notice, Some(client::now())));
            }
            ServerMsg::PeerLeft { peer, reason } => {
                let mut name = None;
                self.roster.update(|r| name = r.remove(peer));
                if let Some(name) = name {
                    self.chat.update(|c| {
                        c.push_notice(leave_notice(&name, reason), Some(client::now()))
                    });
                }
            }
            ServerMsg::Chat { entry } => {
                let me = self.me.get_untracked();
                if Some(entry.from) == me {
                    self.error.set(None);
                }
                self.chat.update(|c| c.push_message(entry, me));
            }
            ServerMsg::Rooms { .. } => {}
            ServerMsg::Error { code, message } => {
                let refused_join = matches!(
                    code,
                    ErrorCode::InvalidName
                        | ErrorCode::NameTaken
                        | ErrorCode::RoomFull
                        | ErrorCode::InvalidRoom
                        | ErrorCode::Unavailable
                );
                if refused_join && self.phase.get_untracked() == Phase::Joining {
                    self.phase.set(Phase::Lobby);
                }
                self.error.set(Some(message));
            }
        }
    }

    fn on_closed(self, closed: Closed) {
        let phase = self.phase.get_untracked();
        if matches!(phase, Phase::Joining | Phase::InRoom) {
            let why = match closed.reason.as_str() {
                "" => "The connection to the server was lost.".to_string(),
                reason => format!("Disconnected: {reason}."),
            };
            self.phase.set(Phase::Ended(why));
        }
    }
}

#[component]
fn Meeting(slug: RoomSlug) -> impl IntoView {
    let state = MeetingState::new();
    let socket = StoredValue::new_local(None::<Socket>);
    let name = RwSignal::new(String::new());
    let room = slug.to_string();

    // Only the browser knows the name used last time.
    Effect::new(move |_| {
        if let Some(saved) = client::saved_name() {
            name.set(saved);
        }
    });

    let join = {
        let room = room.clone();
        move || {
            let chosen = match display_name(&name.get_untracked(), NAME_CHARS) {
                Ok(chosen) => chosen,
                Err(refusal) => {
                    state.error.set(Some(refusal.message));
                    return;
                }
            };
            client::save_name(&chosen);
            name.set(chosen.clone());
            state.error.set(None);
            state.phase.set(Phase::Joining);
            let join = ClientMsg::Join {
                room: room.clone(),
                name: chosen,
            };
            // A socket that is still open after a refused name is reused.
            let reused = socket.with_value(|s| s.as_ref().is_some_and(|s| s.send(&join)));
            if reused {
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
                Ok(opened) => socket.set_value(Some(opened)),
                Err(error) => {
                    state.error.set(Some(format!("Cannot connect: {error}")));
                    state.phase.set(Phase::Lobby);
                }
            }
        }
    };

    let leave = move || {
        socket.set_value(None);
        state
            .phase
            .set(Phase::Ended("You left the meeting.".into()));
    };

    let send_chat = move |text: String| {
        let sent = socket.with_value(|s| {
            s.as_ref()
                .is_some_and(|s| s.send(&ClientMsg::Chat { text: text.clone() }))
        });
        if !sent {
            state
                .error
                .set(Some("Not connected; the message was not sent.".into()));
        }
        sent
    };

    let title = format!("{room} · Room");
    let heading = room.clone();
    view! {
        <Title text=title/>
        <main class="page meeting">
            <header class="meeting-header">
                <a class="brand small" href="/">"Room"</a>
                <h1 class="room-name">{heading}</h1>
                <Show when=move || state.phase.get() == Phase::InRoom>
                    <span class="participant-count" data-testid="participant-count">
                        {move || people_label(state.roster.with(|r| r.peers.len()))}
                    </span>
                    <button class="leave danger" on:click=move |_| leave()>"Leave"</button>
                </Show>
            </header>
            {move || match state.phase.get() {
                Phase::Lobby | Phase::Joining => {
                    view! { <NameForm name state join=join.clone()/> }.into_any()
                }
                Phase::InRoom => {
                    view! {
                        <div class="meeting-body">
                            <chat::ChatPanel state send=send_chat/>
                            <people::PeoplePanel state/>
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
                                <button class="primary" on:click=move |_| join()>"Rejoin"</button>
                                <a class="button" href="/">"Home"</a>
                            </div>
                        </section>
                    }
                        .into_any()
                }
            }}
        </main>
    }
}

#[component]
fn NameForm(
    name: RwSignal<String>,
    state: MeetingState,
    join: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let joining = move || state.phase.get() == Phase::Joining;
    view! {
        <section class="card narrow prejoin">
            <h2>"Join the meeting"</h2>
            <form on:submit=move |ev| {
                ev.prevent_default();
                join();
            }>
                <label for="display-name">"Your name"</label>
                <div class="row">
                    <input
                        id="display-name"
                        name="name"
                        type="text"
                        required
                        autocomplete="name"
                        maxlength=NAME_CHARS.to_string()
                        placeholder="How others will see you"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                    <button type="submit" class="primary" disabled=joining>
                        {move || if joining() { "Joining…" } else { "Join" }}
                    </button>
                </div>
                <p class="error" role="alert">{move || state.error.get()}</p>
            </form>
        </section>
    }
}
