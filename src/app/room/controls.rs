//! The call's controls: microphone, camera, device pickers and leave.

use leptos::prelude::*;

use super::{CallPhase, MeetingState};
use crate::media::DeviceKind;

#[component]
pub fn Controls(state: MeetingState, sidebar_open: RwSignal<bool>) -> impl IntoView {
    let in_call = move || state.call.get() == CallPhase::In;
    view! {
        <div class="controls" role="toolbar" aria-label="Call controls">
            <Show when=in_call>
                <MediaToggles state/>
                <DevicePicker state kind=DeviceKind::Camera/>
                <DevicePicker state kind=DeviceKind::Microphone/>
            </Show>
            <button
                class="only-narrow"
                aria-expanded=move || sidebar_open.get().to_string()
                on:click=move |_| sidebar_open.update(|open| *open = !*open)
            >
                "💬 Chat & people"
            </button>
            <button class="leave danger" on:click=move |_| state.leave()>"Leave"</button>
        </div>
    }
}

/// Microphone and camera on/off, used before joining and in the call.
#[component]
pub fn MediaToggles(state: MeetingState) -> impl IntoView {
    let mic = move || state.local.get().mic;
    let camera = move || state.local.get().camera;
    view! {
        <button
            class="toggle mic"
            class:off=move || !mic()
            aria-pressed=move || (!mic()).to_string()
            aria-label=move || if mic() { "Mute microphone" } else { "Unmute microphone" }
            title=move || if mic() { "Mute microphone" } else { "Unmute microphone" }
            on:click=move |_| {
                let on = !state.local.get_untracked().mic;
                state.with_media(|m| m.set_mic(on));
            }
        >
            {move || if mic() { "🎙 Mic on" } else { "🔇 Mic off" }}
        </button>
        <button
            class="toggle camera"
            class:off=move || !camera()
            aria-pressed=move || (!camera()).to_string()
            aria-label=move || if camera() { "Turn camera off" } else { "Turn camera on" }
            title=move || if camera() { "Turn camera off" } else { "Turn camera on" }
            on:click=move |_| {
                let on = !state.local.get_untracked().camera;
                state.with_media(|m| m.set_camera(on));
            }
        >
            {move || if camera() { "📷 Camera on" } else { "🚫 Camera off" }}
        </button>
    }
}

/// A select of the cameras or microphones; switching keeps the call going (replaceTrack).
#[component]
pub fn DevicePicker(state: MeetingState, kind: DeviceKind) -> impl IntoView {
    let label = match kind {
        DeviceKind::Camera => "Camera",
        DeviceKind::Microphone => "Microphone",
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
