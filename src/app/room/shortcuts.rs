//! Keyboard shortcuts for the meeting and the dialog that lists them.

use leptos::ev;
use leptos::prelude::*;

use crate::app::show::When;

use super::{CallPhase, MeetingState, Phase};

/// The shortcuts: a key, and what it does, from the catalog.
const KEYS: [(&str, Shortcut); 6] = [
    ("M", Shortcut::Mic),
    ("V", Shortcut::Camera),
    ("H", Shortcut::Hand),
    ("C", Shortcut::Chat),
    ("Shift+L", Shortcut::Leave),
    ("?", Shortcut::Help),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortcut {
    Mic,
    Camera,
    Hand,
    Chat,
    Leave,
    Help,
}

/// Which shortcut a key press means, if any. Typing in a field never triggers one, nor do
/// presses with Ctrl, Alt or Meta (the browser's and the system's own shortcuts).
pub fn shortcut_for(
    key: &str,
    shift: bool,
    other_modifier: bool,
    typing: bool,
) -> Option<Shortcut> {
    if typing || other_modifier {
        return None;
    }
    match (key, shift) {
        ("m" | "M", false) => Some(Shortcut::Mic),
        ("v" | "V", false) => Some(Shortcut::Camera),
        ("h" | "H", false) => Some(Shortcut::Hand),
        ("c" | "C", false) => Some(Shortcut::Chat),
        ("L", true) => Some(Shortcut::Leave),
        ("?", _) => Some(Shortcut::Help),
        _ => None,
    }
}

/// Listens for shortcuts on the window while the meeting page is open.
pub fn install(state: MeetingState) {
    let handle = window_event_listener(ev::keydown, move |event| {
        if state.phase.get_untracked() != Phase::InRoom {
            return;
        }
        if event.key() == "Escape" {
            state.help_open.set(false);
            return;
        }
        let typing = event
            .target()
            .and_then(|t| {
                leptos::wasm_bindgen::JsCast::dyn_into::<leptos::web_sys::Element>(t).ok()
            })
            .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        let other = event.ctrl_key() || event.alt_key() || event.meta_key();
        let Some(shortcut) = shortcut_for(&event.key(), event.shift_key(), other, typing) else {
            return;
        };
        event.prevent_default();
        let in_call = state.call.get_untracked() == CallPhase::In;
        match shortcut {
            Shortcut::Mic if in_call => state.toggle_mic(),
            Shortcut::Camera if in_call => state.toggle_camera(),
            Shortcut::Hand => state.toggle_hand(),
            Shortcut::Chat => {
                state.set_chat_open(true);
                // The panel is drawn on the next turn of the event loop; focus it then.
                crate::client::after(0, || {
                    if let Some(input) = leptos::prelude::document()
                        .query_selector("input[name=message]")
                        .ok()
                        .flatten()
                    {
                        if let Ok(input) = leptos::wasm_bindgen::JsCast::dyn_into::<
                            leptos::web_sys::HtmlElement,
                        >(input)
                        {
                            let _ = input.focus();
                        }
                    }
                });
            }
            Shortcut::Leave => state.leave(),
            Shortcut::Help => state.help_open.update(|open| *open = !*open),
            _ => {}
        }
    });
    on_cleanup(move || handle.remove());
}

#[component]
pub fn HelpDialog(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let describe = move |shortcut: Shortcut| {
        let t = i18n.t();
        match shortcut {
            Shortcut::Mic => t.shortcut_mic,
            Shortcut::Camera => t.shortcut_camera,
            Shortcut::Hand => t.shortcut_hand,
            Shortcut::Chat => t.shortcut_chat,
            Shortcut::Leave => t.shortcut_leave,
            Shortcut::Help => t.shortcut_help,
        }
    };
    view! {
        <When when=move || state.help_open.get()>
            <div class="dialog-backdrop" on:click=move |_| state.help_open.set(false)></div>
            <div
                class="dialog card"
                role="dialog"
                aria-modal="true"
                aria-labelledby="shortcuts-title"
                data-testid="shortcuts"
            >
                <h2 id="shortcuts-title">{move || i18n.t().shortcuts_title}</h2>
                <dl class="shortcut-list">
                    {KEYS
                        .into_iter()
                        .map(|(key, shortcut)| {
                            view! {
                                <div class="shortcut">
                                    <dt><kbd>{key}</kbd></dt>
                                    <dd>{move || describe(shortcut)}</dd>
                                </div>
                            }
                        })
                        .collect_view()}
                </dl>
                <button class="primary" autofocus on:click=move |_| state.help_open.set(false)>
                    {move || i18n.t().close}
                </button>
            </div>
        </When>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_shortcuts_unless_typing_or_modified() {
        assert_eq!(shortcut_for("m", false, false, false), Some(Shortcut::Mic));
        assert_eq!(
            shortcut_for("V", false, false, false),
            Some(Shortcut::Camera)
        );
        assert_eq!(shortcut_for("L", true, false, false), Some(Shortcut::Leave));
        assert_eq!(shortcut_for("l", false, false, false), None);
        assert_eq!(shortcut_for("?", true, false, false), Some(Shortcut::Help));
        assert_eq!(shortcut_for("m", false, false, true), None);
        assert_eq!(shortcut_for("m", false, true, false), None);
    }

    /// What a browser reports for the key a help-dialog label names: "Shift+L" is `L` with
    /// Shift, "?" needs Shift on most layouts, a plain letter arrives lower-case.
    fn press(label: &str) -> (String, bool) {
        match label.strip_prefix("Shift+") {
            Some(key) => (key.to_string(), true),
            None if label == "?" => (label.to_string(), true),
            None => (label.to_lowercase(), false),
        }
    }

    #[test]
    fn every_listed_key_does_what_the_list_says_and_every_action_is_listed() {
        for (label, action) in KEYS {
            let (key, shift) = press(label);
            assert_eq!(
                shortcut_for(&key, shift, false, false),
                Some(action),
                "{label}"
            );
        }
        let listed: Vec<Shortcut> = KEYS.iter().map(|(_, action)| *action).collect();
        for action in [
            Shortcut::Mic,
            Shortcut::Camera,
            Shortcut::Hand,
            Shortcut::Chat,
            Shortcut::Leave,
            Shortcut::Help,
        ] {
            assert!(listed.contains(&action), "{action:?} is not in the list");
        }
    }
}
