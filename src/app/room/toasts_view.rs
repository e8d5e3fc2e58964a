//! The notes over the stage (`toasts.rs` decides which): each says what happened in a line,
//! a message note opens the chat when clicked, and each has a close button.

use leptos::prelude::*;

use super::session::Input;
use super::toasts::{Toast, ToastKind};
use super::MeetingState;

#[component]
pub fn ToastStack(state: MeetingState) -> impl IntoView {
    let toasts = move || state.toasts.with(|t| t.shown().to_vec());
    view! {
        <div class="toasts" role="status" aria-live="polite" data-testid="toasts">
            <For each=toasts key=|toast| (toast.id, toast.count) let:toast>
                <ToastView state toast/>
            </For>
        </div>
    }
}

#[component]
fn ToastView(state: MeetingState, toast: Toast) -> impl IntoView {
    let i18n = state.i18n;
    let id = toast.id;
    let first = toast.names.first().cloned().unwrap_or_default();
    let others = toast.names.len().saturating_sub(1);
    let is_message = matches!(toast.kind, ToastKind::Message { .. });
    let kind = match toast.kind {
        ToastKind::Joined => "joined",
        ToastKind::Left => "left",
        ToastKind::Hand => "hand",
        ToastKind::Message { .. } => "message",
    };
    let headline = {
        let kind = toast.kind.clone();
        let count = toast.count;
        move || {
            let t = &i18n.t().stage;
            match kind {
                ToastKind::Joined => (t.toast_joined)(&first, others),
                ToastKind::Left => (t.toast_left)(&first, others),
                ToastKind::Hand => (t.toast_hand)(&first, others),
                ToastKind::Message { .. } => (t.toast_messages)(&first, count),
            }
        }
    };
    view! {
        <div class="toast" data-kind=kind data-testid="toast">
            <button
                class="toast-body"
                disabled=!is_message
                on:click=move |_| {
                    if is_message {
                        state.set_chat_open(true);
                    }
                }
            >
                <span class="toast-headline">{headline}</span>
                {toast.text.clone().map(|text| view! { <span class="toast-text">{text}</span> })}
            </button>
            <button
                class="toast-close"
                aria-label=move || i18n.t().stage.dismiss
                title=move || i18n.t().stage.dismiss
                on:click=move |_| state.dispatch(Input::DismissToast(id))
            >
                "×"
            </button>
        </div>
    }
}
