//! The chat panel: the message stream with notices, and the input that sends on Enter.

use leptos::either::Either;
use leptos::html;
use leptos::prelude::*;

use crate::app::show::When;

use std::sync::Arc;

use super::model::ChatLine;
use super::MeetingState;
use crate::app::i18n::I18n;
use crate::client;

/// How close to the bottom (in pixels) still counts as "reading the latest".
const STICK_THRESHOLD: i32 = 48;

#[component]
pub fn ChatPanel(state: MeetingState) -> impl IntoView {
    let i18n = state.i18n;
    let draft = state.chat_draft;
    let list = NodeRef::<html::Ol>::new();
    // Whether the reader is at the bottom; new lines only scroll the list when they are, so
    // someone reading older messages is not yanked away.
    let stick = RwSignal::new(true);
    let unseen = RwSignal::new(0u64);

    let scroll_to_bottom = move || {
        if let Some(list) = list.get_untracked() {
            list.set_scroll_top(list.scroll_height());
        }
        unseen.set(0);
        stick.set(true);
    };

    Effect::new(move |seen: Option<u64>| {
        let seen = seen.unwrap_or(0);
        let count = state.chat_version.get();
        if count > seen {
            if stick.get_untracked() {
                // After the list has drawn the new lines, or the bottom is not the bottom.
                request_animation_frame(scroll_to_bottom);
            } else {
                unseen.update(|n| *n += count - seen);
            }
        }
        count
    });

    let on_scroll = move |_| {
        if let Some(list) = list.get_untracked() {
            let distance = list.scroll_height() - list.scroll_top() - list.client_height();
            let at_bottom = distance <= STICK_THRESHOLD;
            stick.set(at_bottom);
            if at_bottom {
                unseen.set(0);
            }
        }
    };

    let max_chars = move || state.limits.get().max_chat_chars.to_string();

    view! {
        <section class="panel chat" aria-label=move || i18n.t().chat>
            <ol class="chat-lines" node_ref=list on:scroll=on_scroll data-testid="chat">
                <When when=move || state.can_load_earlier()>
                    <li class="notice load-earlier">
                        <button
                            class="link"
                            data-testid="load-earlier"
                            on:click=move |_| state.load_earlier()
                        >
                            {move || i18n.t().load_earlier}
                        </button>
                    </li>
                </When>
                <When when=move || state.earlier_chat_hidden()>
                    <li class="notice earlier-hidden" data-testid="earlier-hidden">
                        {move || i18n.t().earlier_hidden}
                    </li>
                </When>
                // Keyed by era too: another room's messages reuse the same ids, and a row
                // kept for its key would go on showing the old room's line.
                <For
                    each=move || state.chat_lines()
                    key=move |line| (state.chat_era.get_untracked(), line.key())
                    let:line
                >
                    <ChatLineView line i18n/>
                </For>
            </ol>
            <When when=move || { unseen.get() > 0 }>
                <button class="jump" on:click=move |_| scroll_to_bottom()>
                    {move || (i18n.t().new_messages)(unseen.get() as usize)}
                </button>
            </When>
            <form
                class="chat-input row"
                on:submit=move |ev| {
                    ev.prevent_default();
                    let text = draft.get_untracked();
                    if text.trim().is_empty() {
                        return;
                    }
                    if state.send_chat(text) {
                        draft.set(String::new());
                        scroll_to_bottom();
                    }
                }
            >
                <input
                    type="text"
                    name="message"
                    aria-label=move || i18n.t().message
                    placeholder=move || i18n.t().message_placeholder
                    autocomplete="off"
                    maxlength=max_chars
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                />
                <button type="submit">{move || i18n.t().send}</button>
            </form>
            <p class="error" role="alert">{move || state.alert_text()}</p>
        </section>
    }
}

#[component]
fn ChatLineView(line: Arc<ChatLine>, i18n: I18n) -> impl IntoView {
    match &*line {
        ChatLine::Message { entry, mine } => Either::Left(view! {
            <li class="message" class:mine=*mine data-id=entry.id.0>
                <div class="meta">
                    <span class="author">{entry.name.clone()}</span>
                    <time>{client::clock_time(entry.at)}</time>
                </div>
                // Text nodes, never HTML: a name or message full of markup shows as written.
                <p class="text">{entry.text.clone()}</p>
            </li>
        }),
        ChatLine::Notice { notice, at, .. } => {
            let notice = notice.clone();
            Either::Right(view! {
                <li class="notice">
                    <span>{move || i18n.t().notice(&notice)}</span>
                    {at.map(|at| view! { <time>{client::clock_time(at)}</time> })}
                </li>
            })
        }
    }
}
