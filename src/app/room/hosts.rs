//! What hosts and co-hosts see: each participant's host actions, the host panel (mute
//! everyone, lock, who may unmute, removed people, end for all), and the banner that tells a
//! participant what a host did. The server decides; these only offer what it allows.

use leptos::either::EitherOf3;
use leptos::prelude::*;

use crate::app::show::{When, WhenElse};

use super::session::HostNotice;
use super::MeetingState;
use crate::app::i18n::Texts;
use crate::client;
use crate::core::room::MAX_PASSWORD_CHARS;
use crate::protocol::{ClientMsg, MeetingRules, PeerId, Role, TrackSource};

/// The role's badge next to a name ("Host", "Co-host"); nothing for members.
#[component]
pub fn RoleBadge(state: MeetingState, peer: PeerId) -> impl IntoView {
    let i18n = state.i18n;
    let role = move || state.roster.with(|r| r.get(peer).map(|p| p.role));
    move || {
        let text = match role()? {
            Role::Host => i18n.t().hosts.host,
            Role::Cohost => i18n.t().hosts.cohost,
            Role::Member => return None,
        };
        Some(view! { <span class="role-badge" data-testid="role-badge">{text}</span> })
    }
}

/// The host actions for one participant, folded behind a button; shown only to a host or
/// co-host of a higher role than theirs.
#[component]
pub fn PersonActions(state: MeetingState, peer: PeerId, name: String) -> impl IntoView {
    let i18n = state.i18n;
    let info = move || state.roster.with(|r| r.get(peer).cloned());
    let allowed = move || {
        let mine = state.role.get();
        mine.moderates() && Some(peer) != state.me.get() && info().is_some_and(|p| p.role < mine)
    };
    let confirming = RwSignal::new(false);
    let act = move |msg: ClientMsg| state.host_action(msg);
    let name = StoredValue::new(name);
    let label = move || name.with_value(|n| (i18n.t().hosts.actions_for)(n));
    let confirm_text = move || name.with_value(|n| (i18n.t().hosts.confirm_remove)(n));
    view! {
        <When when=allowed>
            <details class="person-menu" data-testid="person-actions">
                <summary aria-label=label title=label>"⋯"</summary>
                <div class="menu" role="group" aria-label=label>
                    <When when=move || info().is_some_and(|p| p.in_call && p.media.mic)>
                        <button data-testid="host-mute" on:click=move |_| {
                            act(ClientMsg::Mute { peer, source: TrackSource::Microphone })
                        }>{move || i18n.t().hosts.turn_off_mic}</button>
                    </When>
                    <When when=move || info().is_some_and(|p| p.in_call && p.media.camera)>
                        <button data-testid="host-stop-camera" on:click=move |_| {
                            act(ClientMsg::Mute { peer, source: TrackSource::Camera })
                        }>{move || i18n.t().hosts.turn_off_camera}</button>
                    </When>
                    <When when=move || info().is_some_and(|p| p.in_call && p.media.screen)>
                        <button data-testid="host-stop-screen" on:click=move |_| {
                            act(ClientMsg::Mute { peer, source: TrackSource::Screen })
                        }>{move || i18n.t().hosts.turn_off_screen}</button>
                    </When>
                    <When when=move || info().is_some_and(|p| p.in_call)>
                        {move || {
                            let rules = state.rules.get();
                            let on = rules.spotlight == Some(peer);
                            let spotlight = if on { None } else { Some(peer) };
                            let text = if on { i18n.t().hosts.end_spotlight } else { i18n.t().hosts.spotlight };
                            view! {
                                <button data-testid="host-spotlight" on:click=move |_| {
                                    act(ClientMsg::SetRules { rules: MeetingRules { spotlight, ..rules } })
                                }>{text}</button>
                            }
                        }}
                    </When>
                    <When when=move || state.rules.get().only_hosts_unmute>
                        <button data-testid="host-allow-unmute" on:click=move |_| {
                            act(ClientMsg::AllowUnmute { peer })
                        }>{move || i18n.t().hosts.allow_unmute}</button>
                    </When>
                    <When when=move || state.role.get() == Role::Host>
                        {move || {
                            let cohost = info().is_some_and(|p| p.role == Role::Cohost);
                            let (role, text, id) = if cohost {
                                (Role::Member, i18n.t().hosts.take_cohost, "host-take-cohost")
                            } else {
                                (Role::Cohost, i18n.t().hosts.make_cohost, "host-make-cohost")
                            };
                            view! {
                                <button data-testid=id on:click=move |_| {
                                    act(ClientMsg::SetRole { peer, role })
                                }>{text}</button>
                            }
                        }}
                        <button data-testid="host-make-host" on:click=move |_| {
                            act(ClientMsg::SetRole { peer, role: Role::Host })
                        }>{move || i18n.t().hosts.make_host}</button>
                    </When>
                    <WhenElse
                        when=move || confirming.get()
                        fallback=move || view! {
                            <button class="danger" data-testid="host-remove" on:click=move |_| confirming.set(true)>
                                {move || i18n.t().hosts.remove}
                            </button>
                        }
                    >
                        <p class="confirm">{confirm_text}</p>
                        <button class="danger" data-testid="host-remove-confirm" on:click=move |_| {
                            confirming.set(false);
                            act(ClientMsg::Remove { peer });
                        }>{move || i18n.t().hosts.remove}</button>
                        <button on:click=move |_| confirming.set(false)>
                            {move || i18n.t().hosts.cancel}
                        </button>
                    </WhenElse>
                </div>
            </details>
        </When>
    }
}

/// The meeting-wide host tools, above the participant list.
#[component]
pub fn HostPanel(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let ending = RwSignal::new(false);
    view! {
        <When when=move || state.role.get().moderates()>
            <section class="host-panel" data-testid="host-panel" aria-label=move || i18n.t().hosts.host_controls>
                <h3>{move || i18n.t().hosts.host_controls}</h3>
                // Who waits comes first: they need an answer.
                <When when=move || !state.waiting.get().is_empty()>
                    <div class="waiting-line">
                        <h4 data-testid="waiting-count">
                            {move || (i18n.t().hosts.waiting_count)(state.waiting.get().len())}
                        </h4>
                        <ul class="waiting-list" data-testid="waiting-list">
                            <For each=move || state.waiting.get() key=|p| p.id let:person>
                                <li>
                                    <span class="person-name">{person.name.clone()}</span>
                                    <button data-testid="host-admit" on:click=move |_| state.host_action(ClientMsg::Admit { peer: person.id })>
                                        {move || i18n.t().hosts.admit}
                                    </button>
                                    <button class="danger" data-testid="host-deny" on:click=move |_| state.host_action(ClientMsg::Deny { peer: person.id })>
                                        {move || i18n.t().hosts.deny}
                                    </button>
                                </li>
                            </For>
                        </ul>
                        <button data-testid="host-admit-all" on:click=move |_| state.host_action(ClientMsg::AdmitAll)>
                            {move || i18n.t().hosts.admit_all}
                        </button>
                    </div>
                </When>
                <RuleToggle
                    state
                    test_id="host-lock"
                    get=|r| r.locked
                    set=|r, on| r.locked = on
                    label=|t| t.hosts.lock
                />
                <RuleToggle
                    state
                    test_id="host-waiting-room"
                    get=|r| r.waiting_room
                    set=|r, on| r.waiting_room = on
                    label=|t| t.hosts.waiting_room
                />
                <RuleToggle
                    state
                    test_id="host-only-hosts-unmute"
                    get=|r| r.only_hosts_unmute
                    set=|r, on| r.only_hosts_unmute = on
                    label=|t| t.hosts.only_hosts_unmute
                />
                <PasswordSetting state/>
                <super::breakouts::BreakoutPanel state/>
                <When when=move || !state.removed.get().is_empty()>
                    <h4>{move || i18n.t().hosts.removed_people}</h4>
                    <ul class="removed-list" data-testid="removed-list">
                        <For each=move || state.removed.get() key=|p| p.id let:person>
                            <li>
                                <span class="person-name">{person.name.clone()}</span>
                                <button on:click=move |_| state.host_action(ClientMsg::AllowBack { peer: person.id })>
                                    {move || i18n.t().hosts.allow_back}
                                </button>
                            </li>
                        </For>
                    </ul>
                </When>
                <div class="host-actions">
                    <WhenElse
                        when=move || ending.get()
                        fallback=move || view! {
                            <button data-testid="host-mute-all" on:click=move |_| state.host_action(ClientMsg::MuteAll)>
                                {move || i18n.t().hosts.mute_all}
                            </button>
                            <button class="danger" data-testid="host-end" on:click=move |_| ending.set(true)>
                                {move || i18n.t().hosts.end_for_all}
                            </button>
                        }
                    >
                        <p class="confirm">{move || i18n.t().hosts.confirm_end}</p>
                        <button class="danger" data-testid="host-end-confirm" on:click=move |_| {
                            ending.set(false);
                            state.host_action(ClientMsg::EndMeeting);
                        }>{move || i18n.t().hosts.end_for_all}</button>
                        <button on:click=move |_| ending.set(false)>{move || i18n.t().hosts.cancel}</button>
                    </WhenElse>
                </div>
            </section>
        </When>
    }
}

/// The meeting password: set a new one (the server keeps only its hash, so the current one
/// cannot be shown) or remove it.
#[component]
fn PasswordSetting(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let typed = RwSignal::new(String::new());
    view! {
        <form
            class="password-setting"
            on:submit=move |ev| {
                ev.prevent_default();
                let password = typed.get_untracked();
                if !password.is_empty() {
                    state.host_action(ClientMsg::SetPassword { password: Some(password) });
                    typed.set(String::new());
                }
            }
        >
            <label for="host-password">
                {move || if state.rules.get().password {
                    i18n.t().hosts.password_is_set
                } else {
                    i18n.t().hosts.meeting_password
                }}
            </label>
            <div class="row">
                <input
                    id="host-password"
                    type="password"
                    autocomplete="new-password"
                    maxlength=MAX_PASSWORD_CHARS.to_string()
                    data-testid="host-password"
                    prop:value=move || typed.get()
                    on:input=move |ev| typed.set(event_target_value(&ev))
                />
                <button type="submit" data-testid="host-set-password">
                    {move || i18n.t().hosts.set_password}
                </button>
                <When when=move || state.rules.get().password>
                    <button
                        type="button"
                        data-testid="host-clear-password"
                        on:click=move |_| state.host_action(ClientMsg::SetPassword { password: None })
                    >
                        {move || i18n.t().hosts.clear_password}
                    </button>
                </When>
            </div>
        </form>
    }
}

/// A check box for one of the meeting's rules: it shows the rule as the server last said and
/// asks the server to change it.
#[component]
fn RuleToggle(
    state: MeetingState,
    test_id: &'static str,
    get: fn(&MeetingRules) -> bool,
    set: fn(&mut MeetingRules, bool),
    label: fn(&Texts) -> &'static str,
) -> impl IntoView {
    let i18n = state.i18n;
    view! {
        <label class="toggle">
            <input
                type="checkbox"
                data-testid=test_id
                prop:checked=move || get(&state.rules.get())
                on:change=move |ev| {
                    let mut rules = state.rules.get_untracked();
                    set(&mut rules, event_target_checked(&ev));
                    state.host_action(ClientMsg::SetRules { rules });
                }
            />
            {move || label(i18n.t())}
        </label>
    }
}

/// What a host did to this participant, or the host link for a new host, until closed.
#[component]
pub fn HostNoticeBanner(state: MeetingState, room: String) -> impl IntoView {
    let i18n = state.i18n;
    move || {
        let notice = state.host_notice.get()?;
        let body = match notice {
            HostNotice::TurnedOff { by, source } => {
                let t = i18n.t();
                EitherOf3::A(
                    view! { <span>{(t.hosts.turned_off)(t.host_name(&by), source)}</span> },
                )
            }
            HostNotice::UnmuteAllowed { by } => {
                let t = i18n.t();
                EitherOf3::B(view! { <span>{(t.hosts.unmute_allowed)(t.host_name(&by))}</span> })
            }
            HostNotice::YouAreHost { key } => {
                let link = client::host_link(&room, &key);
                EitherOf3::C(view! {
                    <span>{i18n.t().hosts.you_are_host}</span>
                    <input
                        class="host-link"
                        readonly
                        data-testid="host-link"
                        aria-label=i18n.t().hosts.host_link
                        prop:value=link
                    />
                })
            }
        };
        Some(view! {
            <div class="host-notice" role="status" data-testid="host-notice">
                {body}
                <button class="close" aria-label=i18n.t().close on:click=move |_| state.dismiss_host_notice()>
                    "×"
                </button>
            </div>
        })
    }
}
