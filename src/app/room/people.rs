//! The participant list beside the chat.

use leptos::prelude::*;

use super::MeetingState;

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
                    <li class="person" data-peer=peer.id.0>
                        <span class="avatar" aria-hidden="true">{initials(&peer.name)}</span>
                        <span class="person-name">{peer.name.clone()}</span>
                        <Show when=move || me.get() == Some(peer.id)>
                            <span class="muted">" (you)"</span>
                        </Show>
                    </li>
                </For>
            </ul>
        </details>
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
