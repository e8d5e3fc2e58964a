//! The participant list beside the chat: who is here, raised hands in the order they went
//! up, and everyone's microphone, camera and screen-sharing state.

use leptos::prelude::*;

use crate::app::show::{When, WhenElse};

use super::MeetingState;
use crate::protocol::PeerId;

#[component]
pub fn PeoplePanel(state: MeetingState) -> impl IntoView {
    let me = state.me;
    let i18n = state.i18n;
    let hands = move || {
        state.roster.with(|r| {
            let mut raised: Vec<(u64, String)> = r
                .peers
                .iter()
                .filter_map(|p| p.hand.map(|order| (order, p.name.clone())))
                .collect();
            raised.sort();
            raised.into_iter().map(|(_, name)| name).collect::<Vec<_>>()
        })
    };
    view! {
        <details class="panel people" open>
            <summary>
                <h2>{move || i18n.t().people}</h2>
                <span class="badge">{move || state.roster.with(|r| r.peers.len())}</span>
            </summary>
            <super::hosts::HostPanel state/>
            <When when=move || !hands().is_empty()>
                <ol class="hands" data-testid="hands" aria-label=move || i18n.t().hand_raised>
                    <For each=hands key=|name| name.clone() let:name>
                        <li><span aria-hidden="true">"✋ "</span>{name}</li>
                    </For>
                </ol>
            </When>
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
    let i18n = state.i18n;
    let info = move || state.roster.with(|r| r.get(peer).cloned());
    let in_call = move || info().is_some_and(|p| p.in_call);
    let media = move || info().map(|p| p.media).unwrap_or_default();
    let hand = move || info().and_then(|p| p.hand).is_some();
    view! {
        <li class="person" data-peer=peer.0>
            <span class="avatar" aria-hidden="true">{initials(&name)}</span>
            <span class="person-name">{name.clone()}</span>
            <When when=you>
                <span class="muted">{move || i18n.t().you_suffix}</span>
            </When>
            <super::hosts::RoleBadge state peer/>
            <span class="states">
                <When when=hand>
                    <span class="state" role="img" aria-label=move || i18n.t().hand_raised data-testid="person-hand">
                        "✋"
                    </span>
                </When>
                <WhenElse
                    when=in_call
                    fallback=move || {
                        view! {
                            <span class="state" role="img" aria-label=move || i18n.t().chat_only>"💬"</span>
                        }
                    }
                >
                    <When when=move || media().screen>
                        <span class="state" role="img" aria-label=move || i18n.t().sharing_screen>"🖥"</span>
                    </When>
                    <span
                        class="state"
                        role="img"
                        aria-label=move || if media().mic { i18n.t().mic_on } else { i18n.t().mic_off }
                    >
                        {move || if media().mic { "🎙" } else { "🔇" }}
                    </span>
                    <span
                        class="state"
                        role="img"
                        aria-label=move || if media().camera { i18n.t().camera_on } else { i18n.t().camera_off }
                    >
                        {move || if media().camera { "📷" } else { "🚫" }}
                    </span>
                </WhenElse>
            </span>
            <super::hosts::PersonActions state peer name=name.clone()/>
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
