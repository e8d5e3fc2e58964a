//! The call's controls: microphone, camera, screen sharing, hand, reactions, layout, device
//! pickers, shortcuts help, the chat toggle and leave.

use leptos::prelude::*;

use super::{CallPhase, Layout, MeetingState};
use crate::media::DeviceKind;
use crate::protocol::REACTIONS;

#[component]
pub fn Controls(state: MeetingState) -> impl IntoView {
    let in_call = move || state.call.get() == CallPhase::In;
    let i18n = state.i18n;
    let sharing = move || state.local.get().screen;
    let hand = move || state.my_hand_raised();
    let speaker_layout = move || state.layout.get() == Layout::Speaker;
    view! {
        <div class="controls" role="toolbar" aria-label=move || i18n.t().call_controls>
            <Show when=in_call>
                <MediaToggles state/>
                <button
                    class="toggle screen"
                    class:active=sharing
                    aria-pressed=move || sharing().to_string()
                    aria-label=move || if sharing() { i18n.t().stop_sharing } else { i18n.t().share_screen }
                    on:click=move |_| state.toggle_screen()
                >
                    <span aria-hidden="true">"🖥 "</span>
                    <span class="label-text">
                        {move || if sharing() { i18n.t().stop_sharing } else { i18n.t().share_screen }}
                    </span>
                </button>
            </Show>
            <button
                class="toggle hand"
                class:active=hand
                aria-pressed=move || hand().to_string()
                aria-label=move || if hand() { i18n.t().lower_hand } else { i18n.t().raise_hand }
                title="H"
                on:click=move |_| state.toggle_hand()
            >
                <span aria-hidden="true">"✋ "</span>
                <span class="label-text">
                    {move || if hand() { i18n.t().lower_hand } else { i18n.t().raise_hand }}
                </span>
            </button>
            <div class="reaction-bar" role="group" aria-label=move || i18n.t().react>
                {REACTIONS
                    .into_iter()
                    .map(|emoji| {
                        view! {
                            <button
                                class="reaction-button"
                                aria-label=format!("{} {emoji}", i18n.t().react)
                                on:click=move |_| state.react(emoji)
                            >
                                {emoji}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <Show when=in_call>
                <button
                    class="toggle layout"
                    aria-pressed=move || speaker_layout().to_string()
                    aria-label=move || if speaker_layout() { i18n.t().layout_grid } else { i18n.t().layout_speaker }
                    on:click=move |_| {
                        state.layout.update(|l| {
                            *l = if *l == Layout::Grid { Layout::Speaker } else { Layout::Grid };
                        })
                    }
                >
                    <span aria-hidden="true">{move || if speaker_layout() { "▦ " } else { "◧ " }}</span>
                    <span class="label-text">
                        {move || if speaker_layout() { i18n.t().layout_grid } else { i18n.t().layout_speaker }}
                    </span>
                </button>
                <details class="device-settings">
                    <summary aria-label=move || i18n.t().devices>
                        <span aria-hidden="true">"⚙ "</span>
                        <span class="label-text">{move || i18n.t().devices}</span>
                    </summary>
                    <div class="device-menu">
                        <DevicePicker state kind=DeviceKind::Camera/>
                        <DevicePicker state kind=DeviceKind::Microphone/>
                    </div>
                </details>
            </Show>
            <button
                class="only-narrow"
                aria-label=move || i18n.t().chat_and_people
                aria-expanded=move || state.sidebar_open.get().to_string()
                on:click=move |_| state.sidebar_open.update(|open| *open = !*open)
            >
                <span aria-hidden="true">"💬 "</span>
                <span class="label-text">{move || i18n.t().chat_and_people}</span>
            </button>
            <button
                class="help-button"
                aria-label=move || i18n.t().shortcuts
                title="?"
                on:click=move |_| state.help_open.set(true)
            >
                "?"
            </button>
            <button class="leave danger" on:click=move |_| state.leave()>
                {move || i18n.t().leave}
            </button>
        </div>
    }
}

/// Microphone and camera on/off, used before joining and in the call.
#[component]
pub fn MediaToggles(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let mic = move || state.local.get().mic;
    let camera = move || state.local.get().camera;
    view! {
        <button
            class="toggle mic"
            class:off=move || !mic()
            aria-pressed=move || (!mic()).to_string()
            aria-label=move || if mic() { i18n.t().mute } else { i18n.t().unmute }
            title="M"
            on:click=move |_| state.toggle_mic()
        >
            <span aria-hidden="true">{move || if mic() { "🎙 " } else { "🔇 " }}</span>
            <span class="label-text">{move || if mic() { i18n.t().mic_on } else { i18n.t().mic_off }}</span>
        </button>
        <button
            class="toggle camera"
            class:off=move || !camera()
            aria-pressed=move || (!camera()).to_string()
            aria-label=move || if camera() { i18n.t().camera_turn_off } else { i18n.t().camera_turn_on }
            title="V"
            on:click=move |_| state.toggle_camera()
        >
            <span aria-hidden="true">{move || if camera() { "📷 " } else { "🚫 " }}</span>
            <span class="label-text">
                {move || if camera() { i18n.t().camera_on } else { i18n.t().camera_off }}
            </span>
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
