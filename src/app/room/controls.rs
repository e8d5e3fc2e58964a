//! The call's one control bar: microphone and camera (each with a menu of devices and
//! settings), screen sharing, reactions, hand, more (layout, self-view, recording, shortcuts)
//! and leave; the chat and people panel buttons at its side.

use leptos::prelude::*;

use crate::app::show::When;

use super::{CallPhase, Layout, MeetingState};
use crate::media::{DeviceKind, VoiceProcessing};
use crate::protocol::REACTIONS;

#[component]
pub fn Controls(state: MeetingState) -> impl IntoView {
    let in_call = move || state.call.get() == CallPhase::In;
    let i18n = state.i18n;
    let sharing = move || state.local.get().screen;
    let hand = move || state.my_hand_raised();
    let chat_open = move || state.chat_open.get();
    let people_open = move || state.people_open.get();
    let unread = move || state.unread.get();
    view! {
        <div class="controls" role="toolbar" aria-label=move || i18n.t().call_controls>
            <div class="controls-main">
                <When when=in_call>
                    <div class="split">
                        <MicToggle state/>
                        <details class="attached-menu">
                            <summary aria-label=move || i18n.t().stage.mic_settings title=move || i18n.t().stage.mic_settings>
                                "▾"
                            </summary>
                            <div class="popover">
                                <DevicePicker state kind=DeviceKind::Microphone/>
                                <VoiceSettings state/>
                            </div>
                        </details>
                    </div>
                    <div class="split">
                        <CameraToggle state/>
                        <details class="attached-menu">
                            <summary
                                aria-label=move || i18n.t().stage.camera_settings
                                title=move || i18n.t().stage.camera_settings
                            >
                                "▾"
                            </summary>
                            <div class="popover">
                                <DevicePicker state kind=DeviceKind::Camera/>
                                <Setting
                                    label=Signal::derive(move || i18n.t().stage.mirror_video)
                                    on=state.mirror.into()
                                    set=Callback::new(move |on| state.set_mirror(on))
                                />
                            </div>
                        </details>
                    </div>
                    <button
                        class="toggle screen"
                        class:active=sharing
                        aria-pressed=move || sharing().to_string()
                        aria-label=move || if sharing() { i18n.t().stop_sharing } else { i18n.t().share_screen }
                        title=move || if sharing() { i18n.t().stop_sharing } else { i18n.t().share_screen }
                        on:click=move |_| state.toggle_screen()
                    >
                        <span aria-hidden="true">"🖥"</span>
                    </button>
                </When>
                <details class="menu-button reactions-menu">
                    <summary aria-label=move || i18n.t().stage.reactions title=move || i18n.t().stage.reactions>
                        <span aria-hidden="true">"😊"</span>
                    </summary>
                    <div class="popover reaction-bar" role="group" aria-label=move || i18n.t().react>
                        <ReactionButtons state then=Callback::new(|_| ())/>
                    </div>
                </details>
                <button
                    class="toggle hand"
                    class:active=hand
                    aria-pressed=move || hand().to_string()
                    aria-label=move || if hand() { i18n.t().lower_hand } else { i18n.t().raise_hand }
                    title=move || format!("{} (H)", if hand() { i18n.t().lower_hand } else { i18n.t().raise_hand })
                    on:click=move |_| state.toggle_hand()
                >
                    <span aria-hidden="true">"✋"</span>
                </button>
                <MoreMenu state/>
                <button class="leave" title=move || format!("{} (L)", i18n.t().leave) on:click=move |_| state.leave()>
                    <span aria-hidden="true">"📞 "</span>
                    <span class="label-text">{move || i18n.t().leave}</span>
                </button>
            </div>
            <div class="controls-side">
                <button
                    class="toggle panel-toggle chat-toggle"
                    class:active=chat_open
                    aria-pressed=move || chat_open().to_string()
                    aria-label=move || if chat_open() { i18n.t().stage.close_chat } else { i18n.t().stage.open_chat }
                    title=move || format!("{} (C)", i18n.t().chat)
                    data-testid="chat-toggle"
                    on:click=move |_| state.toggle_chat()
                >
                    <span aria-hidden="true">"💬"</span>
                    <When when=move || { unread() > 0 }>
                        <span class="unread-badge" data-testid="unread" aria-label=move || (i18n.t().stage.unread)(unread())>
                            {move || unread().min(99).to_string()}
                        </span>
                    </When>
                </button>
                <button
                    class="toggle panel-toggle people-toggle"
                    class:active=people_open
                    aria-pressed=move || people_open().to_string()
                    aria-label=move || if people_open() { i18n.t().stage.close_people } else { i18n.t().stage.open_people }
                    title=move || i18n.t().people
                    data-testid="people-toggle"
                    on:click=move |_| state.toggle_people()
                >
                    <span aria-hidden="true">"👥"</span>
                    <span class="people-count">{move || state.roster.with(|r| r.peers.len()).to_string()}</span>
                </button>
            </div>
        </div>
    }
}

/// Layout, the self-view, recording and the shortcuts, folded behind one button.
#[component]
fn MoreMenu(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let in_call = move || state.call.get() == CallPhase::In;
    let speaker_layout = move || state.layout.get() == Layout::Speaker;
    let hide_self = move || state.hide_self.get();
    let menu = NodeRef::<leptos::html::Details>::new();
    // A choice closes the menu, as menus do.
    let close = move || {
        if let Some(menu) = menu.get_untracked() {
            menu.set_open(false);
        }
    };
    view! {
        <details class="menu-button more-menu" node_ref=menu>
            <summary aria-label=move || i18n.t().stage.more title=move || i18n.t().stage.more>
                <span aria-hidden="true">"⋯"</span>
            </summary>
            <div class="popover menu-list" role="menu">
                <When when=in_call>
                    <button
                        role="menuitem"
                        on:click=move |_| {
                            state.layout.update(|l| {
                                *l = if *l == Layout::Grid { Layout::Speaker } else { Layout::Grid };
                            });
                            close();
                        }
                    >
                        <span aria-hidden="true">{move || if speaker_layout() { "▦ " } else { "◧ " }}</span>
                        {move || if speaker_layout() { i18n.t().layout_grid } else { i18n.t().layout_speaker }}
                    </button>
                    <button
                        role="menuitem"
                        on:click=move |_| {
                            state.hide_self.update(|h| *h = !*h);
                            close();
                        }
                    >
                        {move || if hide_self() { i18n.t().stage.show_self } else { i18n.t().stage.hide_self }}
                    </button>
                    <super::recording::RecordMenuItem state close=Callback::new(move |_| close())/>
                </When>
                // On a phone the bar has no room for these; they live here instead.
                <div class="only-narrow narrow-extras">
                    <div class="reaction-row" role="group" aria-label=move || i18n.t().stage.reactions>
                        <ReactionButtons state then=Callback::new(move |_| close())/>
                    </div>
                    <When when=in_call>
                        <DevicePicker state kind=DeviceKind::Camera/>
                        <DevicePicker state kind=DeviceKind::Microphone/>
                    </When>
                </div>
                <button
                    role="menuitem"
                    on:click=move |_| {
                        state.help_open.set(true);
                        close();
                    }
                >
                    {move || format!("{} (?)", i18n.t().shortcuts)}
                </button>
            </div>
        </details>
    }
}

/// One button per reaction; `then` runs after one is sent (a menu folds away).
#[component]
fn ReactionButtons(state: MeetingState, then: Callback<()>) -> impl IntoView {
    let i18n = state.i18n;
    REACTIONS
        .into_iter()
        .map(|emoji| {
            view! {
                <button
                    class="reaction-button"
                    aria-label=format!("{} {emoji}", i18n.t().react)
                    on:click=move |_| {
                        state.react(emoji);
                        then.run(());
                    }
                >
                    {emoji}
                </button>
            }
        })
        .collect_view()
}

/// Noise suppression and echo cancellation for the microphone.
#[component]
fn VoiceSettings(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let voice = move || state.voice.get();
    view! {
        <Setting
            label=Signal::derive(move || i18n.t().stage.noise_suppression)
            on=Signal::derive(move || voice().noise_suppression)
            set=Callback::new(move |on| state.set_voice(VoiceProcessing { noise_suppression: on, ..voice() }))
        />
        <Setting
            label=Signal::derive(move || i18n.t().stage.echo_cancellation)
            on=Signal::derive(move || voice().echo_cancellation)
            set=Callback::new(move |on| state.set_voice(VoiceProcessing { echo_cancellation: on, ..voice() }))
        />
    }
}

/// A checkbox for one on/off setting of a device menu.
#[component]
fn Setting(label: Signal<&'static str>, on: Signal<bool>, set: Callback<bool>) -> impl IntoView {
    view! {
        <label class="check">
            <input type="checkbox" prop:checked=on on:change=move |ev| set.run(event_target_checked(&ev))/>
            {label}
        </label>
    }
}

/// Microphone and camera on/off, used before joining and in the call.
#[component]
pub fn MediaToggles(state: MeetingState) -> impl IntoView {
    view! {
        <MicToggle state labelled=true/>
        <CameraToggle state labelled=true/>
    }
}

#[component]
fn MicToggle(state: MeetingState, #[prop(optional)] labelled: bool) -> impl IntoView {
    let i18n = state.i18n;
    let mic = move || state.local.get().mic;
    view! {
        <button
            class="toggle mic"
            class:off=move || !mic()
            aria-pressed=move || (!mic()).to_string()
            aria-label=move || if mic() { i18n.t().mute } else { i18n.t().unmute }
            title=move || format!("{} (M)", if mic() { i18n.t().mute } else { i18n.t().unmute })
            on:click=move |_| state.toggle_mic()
        >
            <span aria-hidden="true">{move || if mic() { "🎙" } else { "🔇" }}</span>
            <When when=move || labelled>
                <span class="label-text">{move || if mic() { i18n.t().mic_on } else { i18n.t().mic_off }}</span>
            </When>
        </button>
    }
}

#[component]
fn CameraToggle(state: MeetingState, #[prop(optional)] labelled: bool) -> impl IntoView {
    let i18n = state.i18n;
    let camera = move || state.local.get().camera;
    view! {
        <button
            class="toggle camera"
            class:off=move || !camera()
            aria-pressed=move || (!camera()).to_string()
            aria-label=move || if camera() { i18n.t().camera_turn_off } else { i18n.t().camera_turn_on }
            title=move || {
                format!("{} (V)", if camera() { i18n.t().camera_turn_off } else { i18n.t().camera_turn_on })
            }
            on:click=move |_| state.toggle_camera()
        >
            <span aria-hidden="true">{move || if camera() { "📷" } else { "🚫" }}</span>
            <When when=move || labelled>
                <span class="label-text">
                    {move || if camera() { i18n.t().camera_on } else { i18n.t().camera_off }}
                </span>
            </When>
        </button>
    }
}

/// A select of the cameras or microphones; switching keeps the call going (replaceTrack).
#[component]
pub fn DevicePicker(state: MeetingState, kind: DeviceKind) -> impl IntoView {
    let i18n = state.i18n;
    let label = move || match kind {
        DeviceKind::Camera => i18n.t().camera,
        DeviceKind::Microphone => i18n.t().microphone,
    };
    let options = move || {
        state.devices.with(|d| {
            d.list
                .iter()
                .filter(|device| device.kind == kind)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let selected = move || {
        state.devices.with(|d| match kind {
            DeviceKind::Camera => d.camera.clone(),
            DeviceKind::Microphone => d.microphone.clone(),
        })
    };
    view! {
        <label class="picker">
            <span class="picker-label">{label}</span>
            <select
                aria-label=label
                disabled=move || options().is_empty()
                on:change=move |ev| {
                    let id = event_target_value(&ev);
                    state.with_media(|m| m.choose_device(kind, id));
                }
            >
                <For each=options key=|device| device.id.clone() let:device>
                    <option
                        value=device.id.clone()
                        selected=move || selected().as_deref() == Some(device.id.as_str())
                    >
                        {device.label.clone()}
                    </option>
                </For>
            </select>
        </label>
    }
}
