//! The home page: start a meeting, join one by name, and see the rooms in use live.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::i18n::use_i18n;
use super::LangSwitch;
use crate::client::Socket;
use crate::protocol::{ClientMsg, RoomSummary, ServerMsg, PROTOCOL_VERSION};

/// The rooms in use, for the first render (`None` when the server keeps its list private);
/// the page then follows changes over a WebSocket.
#[server(endpoint = "list_rooms")]
pub async fn list_rooms() -> Result<Option<Vec<RoomSummary>>, ServerFnError> {
    let state = expect_context::<crate::server::AppState>();
    Ok(state.config.public_room_list.then(|| state.rooms.summary()))
}

#[component]
pub fn HomePage() -> impl IntoView {
    let query = use_query_map();
    let invalid = move || query.read().get("invalid").is_some();
    let i18n = use_i18n();
    view! {
        <main class="page narrow home">
            <div class="top-bar">
                <LangSwitch/>
            </div>
            <header class="hero">
                <h1 class="brand">"Room"</h1>
                <p class="tagline">{move || i18n.t().tagline}</p>
            </header>
            <section class="card start">
                <form method="post" action="/new">
                    <button type="submit" class="primary big">{move || i18n.t().start_meeting}</button>
                </form>
                <form method="get" action="/join" class="join-form">
                    <label for="join-room">{move || i18n.t().join_by_name}</label>
                    <div class="row">
                        <input
                            id="join-room"
                            name="room"
                            type="text"
                            required
                            maxlength="80"
                            placeholder=move || i18n.t().room_placeholder
                            autocomplete="off"
                        />
                        <button type="submit">{move || i18n.t().join}</button>
                    </div>
                    <Show when=invalid>
                        <p class="error" role="alert">{move || i18n.t().invalid_room_typed}</p>
                    </Show>
                </form>
            </section>
            <RoomsInUse/>
        </main>
    }
}

#[component]
fn RoomsInUse() -> impl IntoView {
    let initial = Resource::new(|| (), |_| list_rooms());
    let live = RwSignal::new(None::<Vec<RoomSummary>>);
    let socket = crate::client::store(None::<Socket>);
    // Follow the list only where the server publishes one.
    Effect::new(move |_| {
        let public = matches!(initial.get(), Some(Ok(Some(_))));
        if !public || socket.with_value(Option::is_some) {
            return;
        }
        let connected = Socket::connect(
            vec![
                ClientMsg::Hello {
                    version: PROTOCOL_VERSION,
                },
                ClientMsg::WatchRooms,
            ],
            move |msg| {
                if let ServerMsg::Rooms { rooms } = msg {
                    live.set(Some(rooms));
                }
            },
            |_| {},
        );
        socket.set_value(connected.ok());
    });
    let i18n = use_i18n();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let first = initial.await.ok().flatten()?;
                let rooms = move || live.get().unwrap_or_else(|| first.clone());
                Some(view! {
                    <section class="card rooms" aria-labelledby="rooms-heading">
                        <h2 id="rooms-heading">{move || i18n.t().rooms_in_use}</h2>
                        <RoomList rooms=Signal::derive(rooms)/>
                    </section>
                })
            })}
        </Transition>
    }
}

#[component]
fn RoomList(rooms: Signal<Vec<RoomSummary>>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <Show
            when=move || rooms.with(|r| !r.is_empty())
            fallback=move || view! { <p class="muted empty-rooms">{move || i18n.t().no_rooms}</p> }
        >
            <ul class="room-list">
                <For
                    each=move || rooms.get()
                    key=|r| (r.room.clone(), r.participants)
                    let:summary
                >
                    <li data-room=summary.room.clone()>
                        <a href=format!("/r/{}", summary.room)>{summary.room.clone()}</a>
                        <span class="count">
                            {move || (i18n.t().people_count)(summary.participants)}
                        </span>
                    </li>
                </For>
            </ul>
        </Show>
    }
}
