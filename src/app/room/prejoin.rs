//! The pre-join screen: display name, camera preview, microphone level, device pickers and
//! on/off toggles, and a clear way in without camera or microphone.

use leptos::html;
use leptos::prelude::*;

use crate::app::show::When;

use super::controls::{DevicePicker, MediaToggles};
use super::{MeetingState, Phase};
use crate::core::room::MAX_PASSWORD_CHARS;
use crate::media::DeviceKind;

/// The name's length shows once it is this close to the limit.
const NAME_COUNT_FROM: usize = 6;

#[component]
pub fn PreJoin(
    state: MeetingState,
    join: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let i18n = state.i18n;
    let name = state.name;
    let name_chars = move || name.with(|n| n.chars().count());
    let max_name = move || state.limits.get().max_name_chars;
    let near_limit = move || name_chars() + NAME_COUNT_FROM >= max_name();
    let at_limit = move || name_chars() >= max_name();
    let joining = move || state.phase.get() == Phase::Joining;
    let preview = NodeRef::<html::Video>::new();
    // (Re)attach whenever the local tracks change, e.g. after a device switch.
    Effect::new(move |_| {
        state.local.track();
        if let Some(video) = preview.get() {
            state.with_media(|m| m.attach_preview(&video));
        }
    });
    let level_percent = move || (state.level.get() * 100.0).round() as u32;
    let problem = move || state.problem.get().map(|p| i18n.t().problem(&p));
    let no_media = move || {
        let local = state.local.get();
        !local.mic && !local.camera
    };
    let join_label = move || {
        let t = i18n.t();
        if joining() {
            t.joining
        } else if state.problem.with(Option::is_some) && no_media() {
            t.join_without_devices
        } else {
            t.join
        }
    };

    view! {
        <section class="card prejoin">
            <div class="preview-pane">
                <div class="preview" class:camera-off=move || !state.local.get().camera>
                    <video
                        node_ref=preview
                        class="mirror"
                        autoplay
                        playsinline
                        muted
                        aria-label=move || i18n.t().camera_preview
                        data-testid="preview"
                    ></video>
                    <When when=move || !state.local.get().camera>
                        <div class="placeholder">{move || i18n.t().camera_is_off}</div>
                    </When>
                </div>
                <div
                    class="level"
                    role="meter"
                    aria-label=move || i18n.t().mic_level
                    aria-valuemin="0"
                    aria-valuemax="100"
                    aria-valuenow=move || level_percent().to_string()
                    data-testid="mic-level"
                >
                    <span style:width=move || format!("{}%", level_percent())></span>
                </div>
                <div class="row wrap">
                    <MediaToggles state/>
                </div>
                <div class="pickers">
                    <DevicePicker state kind=DeviceKind::Camera/>
                    <DevicePicker state kind=DeviceKind::Microphone/>
                </div>
                <p class="problem" role="alert" data-testid="media-problem">{problem}</p>
            </div>
            <form
                class="join-pane"
                on:submit=move |ev| {
                    ev.prevent_default();
                    join();
                }
            >
                <h2>{move || i18n.t().ready_to_join}</h2>
                <label for="display-name">{move || i18n.t().your_name}</label>
                <input
                    id="display-name"
                    name="name"
                    type="text"
                    required
                    autocomplete="name"
                    maxlength=move || state.limits.get().max_name_chars.to_string()
                    placeholder=move || i18n.t().name_placeholder
                    prop:value=move || name.get()
                    readonly=move || state.token.with(Option::is_some)
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                // The input stops at the limit; saying so beats keys that silently do nothing.
                <When when=near_limit>
                    <p class="name-count" class:full=at_limit aria-live="polite" data-testid="name-count">
                        {move || format!("{} / {}", name_chars(), max_name())}
                        <When when=at_limit>
                            " · "{move || (i18n.t().stage.name_limit_reached)(max_name())}
                        </When>
                    </p>
                </When>
                <When when=move || state.token.with(Option::is_some)>
                    <p class="muted">{move || i18n.t().hosts.name_from_link}</p>
                </When>
                <When when=move || state.needs_password.get()>
                    <label for="meeting-password">{move || i18n.t().hosts.meeting_password}</label>
                    <input
                        id="meeting-password"
                        name="password"
                        type="password"
                        required
                        autocomplete="off"
                        maxlength=MAX_PASSWORD_CHARS.to_string()
                        data-testid="password-input"
                        prop:value=move || state.password.get()
                        on:input=move |ev| state.password.set(event_target_value(&ev))
                    />
                </When>
                <button type="submit" class="primary big" disabled=joining>
                    {join_label}
                </button>
                <p class="error" role="alert">{move || state.alert_text()}</p>
                <p class="muted who-can-read" data-testid="who-can-read">
                    {move || i18n.t().who_can_read}
                </p>
            </form>
        </section>
    }
}
