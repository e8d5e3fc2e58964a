//! The call's video tiles: a mirrored self-view and one tile per other call member, with
//! their name, a muted-microphone mark, initials when the camera is off, and the state of
//! the connection while it is not up.

use leptos::html;
use leptos::prelude::*;

use super::people::initials;
use super::{CallPhase, MeetingState};
use crate::media::LinkState;
use crate::protocol::PeerId;

#[component]
pub fn Tiles(state: MeetingState) -> impl IntoView {
    let count = move || {
        let others = state.others_in_call().len();
        others + usize::from(state.call.get() == CallPhase::In)
    };
    view! {
        <div class="tiles" data-count=move || count().to_string() data-testid="tiles">
            <Show when=move || state.call.get() == CallPhase::In>
                <SelfTile state/>
            </Show>
            <For each=move || state.others_in_call() key=|peer| *peer let:peer>
                <RemoteTile state peer/>
            </For>
        </div>
    }
}

#[component]
fn SelfTile(state: MeetingState) -> impl IntoView {
    let video = NodeRef::<html::Video>::new();
    Effect::new(move |_| {
        state.local.track();
        if let Some(video) = video.get() {
            state.with_media(|m| m.attach_preview(&video));
        }
    });
    let name = move || {
        state
            .me
            .get()
            .and_then(|me| state.roster.with(|r| r.name_of(me).map(str::to_string)))
            .unwrap_or_default()
    };
    let camera = move || state.local.get().camera;
    let mic = move || state.local.get().mic;
    view! {
        <figure class="tile self" class:camera-off=move || !camera() data-testid="self-tile">
            <video node_ref=video class="mirror" autoplay playsinline muted></video>
            <Show when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </Show>
            <figcaption>
                <span class="tile-name">{move || format!("{} (you)", name())}</span>
                <Show when=move || !mic()>
                    <span class="mic-off" role="img" aria-label="microphone off">"🔇"</span>
                </Show>
            </figcaption>
        </figure>
    }
}

#[component]
fn RemoteTile(state: MeetingState, peer: PeerId) -> impl IntoView {
    let video = NodeRef::<html::Video>::new();
    Effect::new(move |_| {
        state.media_epochs.with(|e| e.get(&peer).copied());
        if let Some(video) = video.get() {
            state.with_media(|m| {
                m.attach_remote(peer, &video);
            });
        }
    });
    let info = move || state.roster.with(|r| r.get(peer).cloned());
    let name = move || info().map(|p| p.name).unwrap_or_default();
    let camera = move || info().is_some_and(|p| p.media.camera);
    let mic = move || info().is_some_and(|p| p.media.mic);
    let link = move || {
        state
            .links
            .with(|l| l.get(&peer).copied())
            .unwrap_or(LinkState::Connecting)
    };
    view! {
        <figure
            class="tile remote"
            class:camera-off=move || !camera()
            class:troubled=move || link() != LinkState::Connected
            data-peer=peer.0
            data-name=name
            data-link=move || format!("{:?}", link()).to_lowercase()
            data-testid="remote-tile"
        >
            <video node_ref=video autoplay playsinline></video>
            <Show when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </Show>
            <Show when=move || link() != LinkState::Connected>
                <div class="link-state" role="status">{move || link().label()}</div>
            </Show>
            <figcaption>
                <span class="tile-name">{name}</span>
                <Show when=move || !mic()>
                    <span class="mic-off" role="img" aria-label="microphone off" data-testid="mic-off">
                        "🔇"
                    </span>
                </Show>
                <Show when=move || !camera()>
                    <span class="cam-off" role="img" aria-label="camera off" data-testid="camera-off">
                        "🚫"
                    </span>
                </Show>
            </figcaption>
        </figure>
    }
}
