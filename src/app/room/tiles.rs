//! The call's tiles: a mirrored self-view, one camera tile per other call member (name,
//! muted mark, initials when the camera is off, hand, speaking highlight, connection state)
//! and one tile per shared screen. Grid, speaker and presenter layouts only move tiles
//! within one container, so their videos keep playing when the layout changes.

use leptos::html;
use leptos::prelude::*;

use super::people::initials;
use super::{CallPhase, Layout, MeetingState};
use crate::client::MediaSession;
use crate::media::LinkState;
use crate::protocol::PeerId;

/// One tile of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tile {
    Me,
    Camera(PeerId),
    Screen(PeerId),
}

#[component]
pub fn Tiles(state: MeetingState) -> impl IntoView {
    let tiles = move || {
        let mut tiles = Vec::new();
        if state.call.get() == CallPhase::In {
            tiles.push(Tile::Me);
        }
        let others = state.others_in_call();
        state.roster.with(|r| {
            for peer in &others {
                if r.get(*peer).is_some_and(|p| p.media.screen) {
                    tiles.push(Tile::Screen(*peer));
                }
            }
        });
        tiles.extend(others.into_iter().map(Tile::Camera));
        tiles
    };
    // The featured tile: a shared screen first (presenter layout), else the pinned member,
    // else in speaker layout the active speaker, else nothing (grid).
    let featured = Memo::new(move |_| {
        let tiles = tiles();
        if let Some(screen) = tiles.iter().find(|t| matches!(t, Tile::Screen(_))) {
            return Some(*screen);
        }
        let pinned = state.pinned.get().map(Tile::Camera);
        if let Some(pinned) = pinned.filter(|t| tiles.contains(t)) {
            return Some(pinned);
        }
        if state.layout.get() == Layout::Speaker {
            let me = state.me.get();
            let speaker = state.speaker.get().map(|p| {
                if Some(p) == me {
                    Tile::Me
                } else {
                    Tile::Camera(p)
                }
            });
            return speaker
                .filter(|t| tiles.contains(t))
                .or_else(|| tiles.iter().find(|t| matches!(t, Tile::Camera(_))).copied())
                .or_else(|| tiles.first().copied());
        }
        None
    });
    view! {
        <div
            class="tiles"
            class:focused=move || featured.get().is_some()
            data-count=move || tiles().len().to_string()
            data-layout=move || match (featured.get(), state.layout.get()) {
                (Some(Tile::Screen(_)), _) => "presenter",
                (Some(tile), _) if state.pinned.get().map(Tile::Camera) == Some(tile) => "pinned",
                (_, Layout::Speaker) => "speaker",
                _ => "grid",
            }
            data-testid="tiles"
        >
            <For each=tiles key=|tile| *tile let:tile>
                {
                    let is_featured = move || featured.get() == Some(tile);
                    match tile {
                        Tile::Me => view! { <SelfTile state featured=Signal::derive(is_featured)/> }.into_any(),
                        Tile::Camera(peer) => {
                            view! { <RemoteTile state peer featured=Signal::derive(is_featured)/> }.into_any()
                        }
                        Tile::Screen(peer) => {
                            view! { <ScreenTile state peer featured=Signal::derive(is_featured)/> }.into_any()
                        }
                    }
                }
            </For>
        </div>
    }
}

#[component]
fn SelfTile(state: MeetingState, featured: Signal<bool>) -> impl IntoView {
    let i18n = state.i18n;
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
    let speaking = move || state.speaker.get().is_some() && state.speaker.get() == state.me.get();
    view! {
        <figure
            class="tile self"
            class:camera-off=move || !camera()
            class:featured=featured
            class:speaking=speaking
            data-speaking=move || speaking().to_string()
            data-testid="self-tile"
        >
            <video node_ref=video class="mirror" autoplay playsinline muted></video>
            <Show when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </Show>
            <HandBadge state peer=Signal::derive(move || state.me.get())/>
            <figcaption>
                <span class="tile-name">{move || format!("{}{}", name(), i18n.t().you_suffix)}</span>
                <Show when=move || !mic()>
                    <span class="mic-off" role="img" aria-label=move || i18n.t().mic_off>"🔇"</span>
                </Show>
            </figcaption>
        </figure>
    }
}

/// ✋ on a tile whose member has a raised hand.
#[component]
fn HandBadge(state: MeetingState, peer: Signal<Option<PeerId>>) -> impl IntoView {
    let raised = move || {
        peer.get()
            .and_then(|peer| state.roster.with(|r| r.get(peer).and_then(|p| p.hand)))
            .is_some()
    };
    view! {
        <Show when=raised>
            <span class="hand-badge" role="img" aria-label=move || state.i18n.t().hand_raised data-testid="hand">
                "✋"
            </span>
        </Show>
    }
}

#[component]
fn RemoteTile(state: MeetingState, peer: PeerId, featured: Signal<bool>) -> impl IntoView {
    let i18n = state.i18n;
    let video = follow_remote(state, peer, MediaSession::attach_remote);
    let info = move || state.roster.with(|r| r.get(peer).cloned());
    let name = move || info().map(|p| p.name).unwrap_or_default();
    let camera = move || info().is_some_and(|p| p.media.camera);
    let mic = move || info().is_some_and(|p| p.media.mic);
    let away = move || info().is_some_and(|p| p.away);
    let link = move || {
        if away() {
            return LinkState::Reconnecting;
        }
        state
            .links
            .with(|l| l.get(&peer).copied())
            .unwrap_or(LinkState::Connecting)
    };
    let speaking = move || state.speaker.get() == Some(peer);
    let pinned = move || state.pinned.get() == Some(peer);
    view! {
        <figure
            class="tile remote"
            class:camera-off=move || !camera()
            class:troubled=move || link() != LinkState::Connected
            class:featured=featured
            class:speaking=speaking
            data-peer=peer.0
            data-name=name
            data-link=move || format!("{:?}", link()).to_lowercase()
            data-speaking=move || speaking().to_string()
            data-testid="remote-tile"
        >
            <video node_ref=video autoplay playsinline></video>
            <Show when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </Show>
            <Show when=move || link() != LinkState::Connected>
                <div class="link-state" role="status">{move || i18n.t().link_state(link())}</div>
            </Show>
            <HandBadge state peer=Signal::derive(move || Some(peer))/>
            <div class="tile-host-actions">
                <super::hosts::PersonActions state peer name=name()/>
            </div>
            <button
                class="pin"
                class:on=pinned
                aria-pressed=move || pinned().to_string()
                aria-label=move || if pinned() { i18n.t().unpin } else { i18n.t().pin }
                title=move || if pinned() { i18n.t().unpin } else { i18n.t().pin }
                data-testid="pin"
                on:click=move |_| state.pinned.update(|p| *p = if *p == Some(peer) { None } else { Some(peer) })
            >
                "📌"
            </button>
            <figcaption>
                <span class="tile-name">{name}</span>
                <Show when=move || !mic()>
                    <span class="mic-off" role="img" aria-label=move || i18n.t().mic_off data-testid="mic-off">
                        "🔇"
                    </span>
                </Show>
                <Show when=move || !camera()>
                    <span class="cam-off" role="img" aria-label=move || i18n.t().camera_off data-testid="camera-off">
                        "🚫"
                    </span>
                </Show>
            </figcaption>
        </figure>
    }
}

#[component]
fn ScreenTile(state: MeetingState, peer: PeerId, featured: Signal<bool>) -> impl IntoView {
    let i18n = state.i18n;
    let video = follow_remote(state, peer, MediaSession::attach_remote_screen);
    let name = move || {
        state
            .roster
            .with(|r| r.name_of(peer).unwrap_or_default().to_string())
    };
    view! {
        <figure
            class="tile screen"
            class:featured=featured
            data-peer=peer.0
            data-name=name
            data-testid="screen-tile"
        >
            // The screen's own sound, if any, is not sent; the member's voice plays in their tile.
            <video node_ref=video autoplay playsinline muted></video>
            <figcaption>
                <span class="tile-name">{move || (i18n.t().screen_of)(&name())}</span>
            </figcaption>
        </figure>
    }
}

/// A `<video>` that shows what `attach` gives for `peer`, attached again whenever new media
/// of theirs arrives.
fn follow_remote(
    state: MeetingState,
    peer: PeerId,
    attach: fn(&MediaSession, PeerId, &leptos::web_sys::HtmlVideoElement) -> bool,
) -> NodeRef<html::Video> {
    let video = NodeRef::<html::Video>::new();
    Effect::new(move |_| {
        state.media_epochs.with(|e| e.get(&peer).copied());
        if let Some(video) = video.get() {
            state.with_media(|m| {
                attach(m, peer, &video);
            });
        }
    });
    video
}

/// Reactions floating over the call for a few seconds.
#[component]
pub fn Reactions(state: MeetingState) -> impl IntoView {
    view! {
        <div class="reactions" aria-live="polite" data-testid="reactions">
            <For each=move || state.reactions.get() key=|shown| shown.key let:shown>
                <span class="reaction" data-from=shown.from.0>
                    <span class="reaction-emoji">{shown.emoji.clone()}</span>
                    <span class="reaction-name">
                        {move || state.roster.with(|r| r.name_of(shown.from).unwrap_or_default().to_string())}
                    </span>
                </span>
            </For>
        </div>
    }
}
