//! Breakout rooms on the page: the host's plan (split automatically, drag names or pick a
//! room per person, a timer) and controls while open (visit, move people, broadcast, close),
//! and the banner that offers everyone their room, the way back and the closing countdown.

use std::collections::HashMap;

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

use crate::app::show::When;

use super::MeetingState;
use crate::client;
use crate::protocol::{BreakoutRoom, Breakouts, ClientMsg, PeerId, MAX_BREAKOUTS};

/// Where each person goes in a plan not opened yet, by room number.
type Plan = HashMap<PeerId, u8>;

/// Everyone but `me`, spread over `rooms` rooms in turn, in the order they joined.
pub fn split_evenly(people: &[PeerId], me: Option<PeerId>, rooms: u8) -> Plan {
    people
        .iter()
        .filter(|&&p| Some(p) != me)
        .enumerate()
        .map(|(i, &p)| (p, (i % usize::from(rooms.max(1))) as u8))
        .collect()
}

/// The host's part, inside the host panel.
#[component]
pub fn BreakoutPanel(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    // Folded away until needed, so the host panel stays short; open while rooms are.
    view! {
        <details
            class="breakout-panel"
            data-testid="breakout-panel"
            prop:open=move || state.breakouts.with(Option::is_some)
        >
            <summary>{move || i18n.t().breakouts.title}</summary>
            {move || match state.breakouts.get() {
                None => Either::Left(view! { <BreakoutPlanner state/> }),
                Some(open) => Either::Right(view! { <OpenBreakouts state open/> }),
            }}
        </details>
    }
}

#[component]
fn BreakoutPlanner(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let count = RwSignal::new(2u32);
    let minutes = RwSignal::new(0u32);
    let plan = RwSignal::new(Plan::new());
    let dragging = RwSignal::new(None::<PeerId>);
    let people = move || {
        let me = state.me.get();
        state
            .roster
            .get()
            .peers
            .into_iter()
            .filter(|p| Some(p.id) != me)
            .collect::<Vec<_>>()
    };
    let split = move |_| {
        let ids: Vec<PeerId> = people().iter().map(|p| p.id).collect();
        plan.set(split_evenly(&ids, None, count.get_untracked() as u8));
    };
    let open = move |_| {
        let plan = plan.get_untracked();
        let rooms = (0..count.get_untracked() as u8)
            .map(|n| BreakoutRoom {
                name: (i18n.t().breakouts.room_name)(usize::from(n) + 1),
                members: people()
                    .iter()
                    .filter(|p| plan.get(&p.id) == Some(&n))
                    .map(|p| p.id)
                    .collect(),
            })
            .collect();
        let minutes = minutes.get_untracked();
        state.host_action(ClientMsg::OpenBreakouts {
            rooms,
            minutes: (minutes > 0).then_some(minutes),
        });
    };
    // One box per room plus "not assigned" (`None`); names are dropped onto them.
    let boxes = move || {
        let rooms: Vec<Option<u8>> = (0..count.get() as u8).map(Some).collect();
        rooms.into_iter().chain([None]).collect::<Vec<_>>()
    };
    view! {
        <div class="row wrap breakout-setup">
            <NumberField
                label=move || i18n.t().breakouts.rooms_count
                test_id="breakout-count"
                range=(1, MAX_BREAKOUTS as u32)
                value=count
            />
            <button data-testid="breakout-split" on:click=split>
                {move || i18n.t().breakouts.split}
            </button>
        </div>
        <p class="muted">{move || i18n.t().breakouts.drag_hint}</p>
        <div class="breakout-plan">
            <For each=boxes key=|room| *room let:room>
                <div
                    class="breakout-box"
                    data-testid="breakout-box"
                    on:dragover=move |ev| ev.prevent_default()
                    on:drop=move |ev| {
                        ev.prevent_default();
                        if let Some(peer) = dragging.get_untracked() {
                            plan.update(|plan| assign(plan, peer, room));
                        }
                    }
                >
                    <h5>{move || room_label(state, room)}</h5>
                    <ul>
                        <For
                            each=move || {
                                let plan = plan.get();
                                people()
                                    .into_iter()
                                    .filter(|p| plan.get(&p.id).copied() == room)
                                    .collect::<Vec<_>>()
                            }
                            key=|p| p.id
                            let:person
                        >
                            <li
                                draggable="true"
                                on:dragstart=move |_| dragging.set(Some(person.id))
                                on:dragend=move |_| dragging.set(None)
                            >
                                <span class="person-name">{person.name.clone()}</span>
                                <RoomPicker
                                    state
                                    name=person.name.clone()
                                    rooms=Signal::derive(move || count.get() as u8)
                                    current=Signal::derive(move || room)
                                    pick=Callback::new(move |to| plan.update(|plan| assign(plan, person.id, to)))
                                />
                            </li>
                        </For>
                    </ul>
                </div>
            </For>
        </div>
        <div class="row wrap">
            <NumberField
                label=move || i18n.t().breakouts.minutes
                test_id="breakout-minutes"
                range=(0, 1440)
                value=minutes
            />
            <button class="primary" data-testid="breakout-open" on:click=open>
                {move || i18n.t().breakouts.open}
            </button>
        </div>
    }
}

/// A labelled whole number kept within `range` (what the browser's own check allows too).
#[component]
fn NumberField(
    label: impl Fn() -> &'static str + Send + Sync + 'static,
    test_id: &'static str,
    range: (u32, u32),
    value: RwSignal<u32>,
) -> impl IntoView {
    let (low, high) = range;
    view! {
        <label>
            {label}
            <input
                type="number"
                min=low.to_string()
                max=high.to_string()
                data-testid=test_id
                prop:value=move || value.get().to_string()
                on:input=move |ev| {
                    let typed = event_target_value(&ev).parse::<u32>().unwrap_or(low);
                    value.set(typed.clamp(low, high));
                }
            />
        </label>
    }
}

fn assign(plan: &mut Plan, peer: PeerId, room: Option<u8>) {
    match room {
        Some(room) => plan.insert(peer, room),
        None => plan.remove(&peer),
    };
}

fn room_label(state: MeetingState, room: Option<u8>) -> String {
    let t = state.i18n.t();
    match room {
        Some(n) => (t.breakouts.room_name)(usize::from(n) + 1),
        None => t.breakouts.unassigned.to_string(),
    }
}

/// A person's room, picked from a list (what dragging does, for the keyboard).
#[component]
fn RoomPicker(
    state: MeetingState,
    name: String,
    rooms: Signal<u8>,
    current: Signal<Option<u8>>,
    pick: Callback<Option<u8>>,
) -> impl IntoView {
    let i18n = state.i18n;
    let label = (i18n.t().breakouts.move_to)(&name);
    view! {
        <select
            aria-label=label
            data-testid="breakout-pick"
            on:change=move |ev| pick.run(event_target_value(&ev).parse::<u8>().ok())
        >
            <option value="" selected=move || current.get().is_none()>
                {move || i18n.t().breakouts.unassigned}
            </option>
            {move || {
                (0..rooms.get())
                    .map(|n| {
                        view! {
                            <option value=n.to_string() selected=move || current.get() == Some(n)>
                                {move || room_label(state, Some(n))}
                            </option>
                        }
                    })
                    .collect_view()
            }}
        </select>
    }
}

#[component]
fn OpenBreakouts(state: MeetingState, open: Breakouts) -> impl IntoView {
    let i18n = state.i18n;
    let text = RwSignal::new(String::new());
    let count = open.rooms.len() as u8;
    let rooms: Vec<(u8, BreakoutRoom)> = open
        .rooms
        .into_iter()
        .enumerate()
        .map(|(n, room)| (n as u8, room))
        .collect();
    let name_of = move |peer: PeerId| {
        state
            .roster
            .with(|r| r.get(peer).map(|p| p.name.clone()))
            .unwrap_or_default()
    };
    let here = move |n: u8| {
        state
            .roster
            .with(|r| r.peers.iter().filter(|p| p.breakout == Some(n)).count())
    };
    view! {
        <ul class="breakout-rooms">
            {rooms
                .into_iter()
                .map(|(n, room)| {
                    let name = room.name.clone();
                    view! {
                        <li class="breakout-box" data-testid="breakout-room">
                            <h5>
                                {name.clone()}
                                <When when=move || state.in_breakout.get().is_none()>
                                    <span class="muted">" · "{move || (i18n.t().breakouts.here)(here(n))}</span>
                                </When>
                            </h5>
                            <ul>
                                {room
                                    .members
                                    .into_iter()
                                    .map(|peer| {
                                        let person = name_of(peer);
                                        view! {
                                            <li>
                                                <span class="person-name">{person.clone()}</span>
                                                <RoomPicker
                                                    state
                                                    name=person
                                                    rooms=Signal::derive(move || count)
                                                    current=Signal::derive(move || Some(n))
                                                    pick=Callback::new(move |room| {
                                                        state.host_action(ClientMsg::AssignBreakout { peer, room })
                                                    })
                                                />
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                            <When when=move || state.in_breakout.get() != Some(n)>
                                <button data-testid="breakout-visit" on:click=move |_| state.go_to(Some(n))>
                                    {move || i18n.t().breakouts.visit}" "{name.clone()}
                                </button>
                            </When>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <form
            class="row"
            on:submit=move |ev| {
                ev.prevent_default();
                let message = text.get_untracked();
                if !message.trim().is_empty() {
                    state.host_action(ClientMsg::BroadcastToBreakouts { text: message });
                    text.set(String::new());
                }
            }
        >
            <input
                type="text"
                data-testid="breakout-broadcast-text"
                aria-label=move || i18n.t().breakouts.broadcast_placeholder
                placeholder=move || i18n.t().breakouts.broadcast_placeholder
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            />
            <button type="submit" data-testid="breakout-broadcast">
                {move || i18n.t().breakouts.broadcast}
            </button>
        </form>
        <When when=move || state.breakouts.with(|b| b.as_ref().is_some_and(|b| b.closing_at.is_none()))>
            <button class="danger" data-testid="breakout-close" on:click=move |_| state.host_action(ClientMsg::CloseBreakouts)>
                {move || i18n.t().breakouts.close}
            </button>
        </When>
    }
}

/// What everyone sees while breakout rooms are open: their room and a way in, the way back,
/// the time left and the closing countdown.
#[component]
pub fn BreakoutBanner(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let now = RwSignal::new(client::now().0);
    tick_every_second(now);
    let mine = move || {
        let me = state.me.get()?;
        let open = state.breakouts.get()?;
        open.rooms
            .iter()
            .position(|r| r.members.contains(&me))
            .map(|n| (n as u8, open.rooms[n].name.clone()))
    };
    let current_name = move || {
        let n = state.in_breakout.get()?;
        state.breakouts.with(|b| {
            b.as_ref()?
                .rooms
                .get(usize::from(n))
                .map(|r| r.name.clone())
        })
    };
    let seconds_until = move |at: Option<crate::protocol::UnixMillis>| {
        at.map(|at| at.0.saturating_sub(now.get()).div_ceil(1000))
    };
    move || {
        let open = state.breakouts.get()?;
        let t = i18n.t();
        let place = match (state.in_breakout.get(), mine()) {
            (Some(_), _) => {
                let name = current_name().unwrap_or_default();
                EitherOf3::A(view! {
                    <span data-testid="breakout-here">{(t.breakouts.you_are_in)(&name)}</span>
                    <button data-testid="breakout-return" on:click=move |_| state.go_to(None)>
                        {t.breakouts.return_to_main}
                    </button>
                })
            }
            (None, Some((n, name))) if open.closing_at.is_none() => EitherOf3::B(view! {
                <span>{(t.breakouts.you_are_assigned)(&name)}</span>
                <button class="primary" data-testid="breakout-join" on:click=move |_| state.go_to(Some(n))>
                    {(t.breakouts.join_room)(&name)}
                </button>
            }),
            _ => EitherOf3::C(()),
        };
        let time = move || match (open.closing_at, open.ends_at) {
            (Some(closing), _) => seconds_until(Some(closing)).map(|s| (t.breakouts.closing_in)(s)),
            (None, Some(ends)) => seconds_until(Some(ends)).map(|s| (t.breakouts.time_left)(s)),
            (None, None) => None,
        };
        Some(view! {
            <div class="breakout-banner" role="status" data-testid="breakout-banner">
                {place}
                <span class="breakout-time" data-testid="breakout-time">{time}</span>
            </div>
        })
    }
}

/// Keeps `now` at the browser's clock, once a second, for as long as the signal lives.
fn tick_every_second(now: RwSignal<u64>) {
    client::after(1000, move || {
        if now.try_set(client::now().0).is_none() {
            tick_every_second(now);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_spreads_people_in_turn_and_leaves_out_the_host() {
        let people: Vec<PeerId> = (1..=5).map(PeerId).collect();
        let plan = split_evenly(&people, Some(PeerId(1)), 2);
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[&PeerId(2)], 0);
        assert_eq!(plan[&PeerId(3)], 1);
        assert_eq!(plan[&PeerId(4)], 0);
        assert_eq!(plan[&PeerId(5)], 1);
    }
}
