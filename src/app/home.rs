//! The home page: start a meeting, join one by name, and see the rooms in use live.

use leptos::prelude::*;

use super::i18n::use_i18n;
use super::show::{When, WhenElse};
use super::LangSwitch;
use crate::client::Socket;
use crate::protocol::{ClientMsg, RoomSummary, ServerMsg, PROTOCOL_VERSION};

/// `invalid`: the room name typed here last time was refused.
#[component]
pub fn HomePage(invalid: bool) -> impl IntoView {
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
                    <When when=move || invalid>
                        <p class="error" role="alert">{move || i18n.t().invalid_room_typed}</p>
                    </When>
                </form>
            </section>
            <RoomsInUse/>
        </main>
    }
}

/// The rooms in use, as rendered on the server (the list travels with the page, so hydration
/// matches it), then followed live over a WebSocket. Nothing where the server keeps its list
/// private.
#[component]
fn RoomsInUse() -> impl IntoView {
    let first = SharedValue::new(crate::client::public_rooms).into_inner()?;
    let live = RwSignal::new(first);
    let socket = crate::client::store(None::<Socket>);
    Effect::new(move |_| {
        if socket.with_value(Option::is_some) {
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
                    live.set(rooms);
                }
            },
            |_| {},
        );
        socket.set_value(connected.ok());
    });
    let i18n = use_i18n();
    Some(view! {
        <section class="card rooms" aria-labelledby="rooms-heading">
            <h2 id="rooms-heading">{move || i18n.t().rooms_in_use}</h2>
            <RoomList rooms=live.into()/>
        </section>
    })
}

#[component]
fn RoomList(rooms: Signal<Vec<RoomSummary>>) -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <WhenElse
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
        </WhenElse>
    }
}
