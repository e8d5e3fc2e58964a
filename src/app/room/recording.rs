//! Recording the meeting in this browser: the menu item that starts and stops it, and the
//! banner everyone sees while anyone records ("Ann is recording", with the time for the one
//! recording).

use leptos::prelude::*;

use crate::app::show::When;

use super::{CallPhase, MeetingState};
use crate::client;
use crate::protocol::UnixMillis;

/// "Record" or "Stop recording" in the more menu; `close` folds the menu away.
#[component]
pub fn RecordMenuItem(state: MeetingState, close: Callback<()>) -> impl IntoView {
    let i18n = state.i18n;
    let recording = move || state.recording_since.get().is_some();
    view! {
        <button
            role="menuitem"
            data-testid="record"
            on:click=move |_| {
                state.toggle_recording();
                close.run(());
            }
        >
            <span aria-hidden="true">{move || if recording() { "⏹ " } else { "⏺ " }}</span>
            {move || if recording() { i18n.t().stage.stop_recording } else { i18n.t().stage.record }}
        </button>
    }
}

/// Who records the meeting, on everyone's screen; the one recording sees the time and a
/// stop button.
#[component]
pub fn RecordingBanner(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let others = move || {
        let me = state.me.get();
        state.roster.with(|r| {
            r.peers
                .iter()
                .filter(|p| p.recording && Some(p.id) != me)
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
        })
    };
    // A clock that ticks while this page records.
    let now = RwSignal::new(client::now());
    Effect::new(move |_| {
        if state.recording_since.get().is_some() {
            tick(now, state);
        }
    });
    let elapsed = move || {
        let since = state.recording_since.get()?;
        let seconds = now.get().0.saturating_sub(since.0) / 1000;
        Some(format!("{:02}:{:02}", seconds / 60, seconds % 60))
    };
    view! {
        <When when=move || state.recording_failed.get()>
            <div class="call-notice" role="alert">
                <span>{move || i18n.t().stage.recording_failed}</span>
                <button on:click=move |_| state.recording_failed.set(false)>{move || i18n.t().close}</button>
            </div>
        </When>
        <When when=move || elapsed().is_some() || !others().is_empty()>
            <div class="recording-banner" role="status" data-testid="recording-banner">
                <span class="recording-dot" aria-hidden="true"></span>
                {move || {
                    let mut said: Vec<String> = others()
                        .iter()
                        .map(|name| (i18n.t().stage.recording_by)(name))
                        .collect();
                    if let Some(time) = elapsed() {
                        said.insert(0, format!("{} · {time}", i18n.t().stage.you_are_recording));
                    }
                    said.join(" · ")
                }}
                <When when=move || elapsed().is_some()>
                    <button class="stop-recording" on:click=move |_| state.toggle_recording()>
                        {move || i18n.t().stage.stop_recording}
                    </button>
                </When>
            </div>
        </When>
    }
}

/// Moves the clock on every second for as long as this page records.
fn tick(now: RwSignal<UnixMillis>, state: MeetingState) {
    now.set(client::now());
    client::after(1_000, move || {
        if state.recording_since.get_untracked().is_some() {
            tick(now, state);
        }
    });
}

impl MeetingState {
    /// Starts recording the stage, or stops and downloads what was recorded.
    pub fn toggle_recording(self) {
        if let Some(recorder) = self.recorder.try_update_value(Option::take).flatten() {
            recorder.stop();
            self.recording_since.set(None);
            self.dispatch(super::session::Input::Recording(false));
            return;
        }
        if self.call.get_untracked() != CallPhase::In {
            return;
        }
        let Some(stage) = leptos::prelude::document()
            .query_selector("[data-testid=tiles]")
            .ok()
            .flatten()
        else {
            return;
        };
        let started = client::now();
        match client::Recorder::start(&stage, client::recording_file_name()) {
            Ok(recorder) => {
                self.recorder.set_value(Some(recorder));
                self.recording_since.set(Some(started));
                self.dispatch(super::session::Input::Recording(true));
            }
            Err(error) => {
                leptos::logging::warn!("recording did not start: {error}");
                self.recording_failed.set(true);
            }
        }
    }

    /// Leaving the call ends a recording (and downloads it).
    pub(super) fn stop_recording_out_of_call(self) {
        if self.call.get() != CallPhase::In && self.recording_since.get_untracked().is_some() {
            self.toggle_recording();
        }
    }
}
