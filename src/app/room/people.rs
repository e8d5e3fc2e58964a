//! The participant list beside the chat.

use leptos::prelude::*;

use super::MeetingState;
use crate::protocol::PeerId;

#[component]
pub fn PeoplePanel(state: MeetingState) -> impl IntoView {
    let me = state.me;
    view! {
        <details class="panel people" open>
            <summary>
                <h2>"People"</h2>
                <span class="badge">{move || state.roster.with(|r| r.peers.len())}</span>
            </summary>
            <ul class="people-list" data-testid="people">
                <For
                    each=move || state.roster.get().peers
                    key=|peer| peer.id
                    let:peer
                >
                    <Person state peer=peer.id name=peer.name.clone() you=move || me.get() == Some(peer.id)/>
                </For>
            </ul>
        </details>
    }
}

#[component]
fn Person(
    state: MeetingState,
    peer: PeerId,
    name: String,
    you: impl Fn() -> bool + Send + Sync + 'static,
) -> impl IntoView {
    let info = move || state.roster.with(|r| r.get(peer).cloned());
    let in_call = move || info().is_some_and(|p| p.in_call);
    let media = move || info().map(|p| p.media).unwrap_or_default();
    view! {
        <li class="person" data-peer=peer.0>
            <span class="avatar" aria-hidden="true">{initials(&name)}</span>
            <span class="person-name">{name.clone()}</span>
            <Show when=you>
                <span class="muted">" (you)"</span>
            </Show>
            <span class="states">
                <Show
                    when=in_call
                    fallback=|| view! { <span class="state" title="chat only">"💬"</span> }
                >
                    <span
                        class="state"
                        role="img"
                        aria-label=move || if media().mic { "microphone on" } else { "microphone off" }
                    >
                        {move || if media().mic { "🎙" } else { "🔇" }}
                    </span>
                    <span
                        class="state"
                        role="img"
                        aria-label=move || if media().camera { "camera on" } else { "camera off" }
                    >
                        {move || if media().camera { "📷" } else { "🚫" }}
                    </span>
                </Show>
            </span>
        </li>
    }
}

/// Up to two letters for an avatar: "Ann Lee" → "AL", "김민수" → "김".
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::initials;

    #[test]
    fn initials_take_the_first_letter_of_two_words() {
        assert_eq!(initials("Ann Lee"), "AL");
        assert_eq!(initials("bob"), "B");
        assert_eq!(initials("김민수"), "김");
        assert_eq!(initials("a b c"), "AB");
    }
}
