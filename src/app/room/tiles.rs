//! The call's tiles: a mirrored self-view, one camera tile per other call member (name,
//! muted mark, initials when the camera is off, hand, speaking highlight, connection state)
//! and one tile per shared screen. Grid, speaker and presenter layouts only move tiles
//! within one container, so their videos keep playing when the layout changes. The grid sizes
//! tiles to fill the stage (`grid.rs`) and pages them, the active speaker on the first page.

use leptos::either::EitherOf3;
use leptos::html;
use leptos::prelude::*;

use crate::app::show::When;

use super::grid;
use super::people::initials;
use super::{CallPhase, Layout, MeetingState};
use crate::client::{self, MediaSession};
use crate::media::{LinkState, Quality};
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
    // Every tile of the call, in a stable order: shared screens, then cameras, this page's
    // own first. Tiles not shown (another page, a hidden self-view) stay in the DOM, so
    // paging never restarts a video.
    let tiles = Memo::new(move |_| {
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
    });
    // The featured tile: a shared screen first (presenter layout), else the pinned member,
    // else the member a host put in the spotlight, else in speaker layout the active
    // speaker, else nothing (grid).
    let featured = Memo::new(move |_| {
        let tiles = tiles.get();
        if let Some(screen) = tiles.iter().find(|t| matches!(t, Tile::Screen(_))) {
            return Some(*screen);
        }
        let pinned = state.pinned.get().map(Tile::Camera);
        if let Some(pinned) = pinned.filter(|t| tiles.contains(t)) {
            return Some(pinned);
        }
        if let Some(spotlight) = spotlight_tile(state).filter(|t| tiles.contains(t)) {
            return Some(spotlight);
        }
        if state.layout.get() == Layout::Speaker {
            return speaker_tile(state)
                .filter(|t| tiles.contains(t))
                .or_else(|| tiles.iter().find(|t| matches!(t, Tile::Camera(_))).copied())
                .or_else(|| tiles.first().copied());
        }
        None
    });
    let stage = RwSignal::new(StageSize::default());
    let container = NodeRef::<html::Div>::new();
    let size_watch = client::store(None::<client::SizeWatch>);
    Effect::new(move |_| {
        if let Some(element) = container.get() {
            let watch = client::SizeWatch::new(&element, move |width, height| {
                stage.set(StageSize {
                    width,
                    height,
                    window_width: client::window_width(),
                })
            });
            size_watch.set_value(watch);
        }
    });
    // The page of tiles shown besides the featured one: the active speaker always on the
    // first page, this page's own tile left out when hidden.
    let page = Memo::new(move |_| {
        let featured = featured.get();
        let hide_self = state.hide_self.get();
        let candidates: Vec<Tile> = tiles
            .get()
            .into_iter()
            .filter(|t| Some(*t) != featured && !(hide_self && *t == Tile::Me))
            .collect();
        let per_page = grid::page_size(state.limits.get().page_size, stage.get().window_width);
        let per_page = if featured.is_some() {
            per_page.saturating_sub(1).max(1)
        } else {
            per_page
        };
        grid::page(&candidates, per_page, state.page.get(), speaker_tile(state))
    });
    // Paging past the last page (people left) falls back to the last one there is.
    Effect::new(move |_| {
        let shown = page.get().index;
        if state.page.get_untracked() != shown {
            state.page.set(shown);
        }
    });
    let geometry = move || {
        let StageSize { width, height, .. } = stage.get();
        let shown = page.with(|p| p.shown.len());
        if featured.get().is_some() {
            return format!("--strip: {}", shown.max(1));
        }
        let grid = grid::best_grid(shown, width, height, grid::TILE_GAP, grid::TILE_ASPECT);
        format!(
            "--cols: {}; --tile-w: {:.1}px; --tile-h: {:.1}px",
            grid.columns, grid.width, grid.height
        )
    };
    let place = move |tile: Tile| -> Option<usize> {
        if featured.get() == Some(tile) {
            return Some(0);
        }
        page.with(|p| p.shown.iter().position(|t| *t == tile).map(|at| at + 1))
    };
    view! {
        <div class="stage-tiles">
            <div
                class="tiles"
                class:focused=move || featured.get().is_some()
                node_ref=container
                style=geometry
                data-count=move || tiles.with(Vec::len).to_string()
                data-shown=move || page.with(|p| p.shown.len()).to_string()
                data-layout=move || match (featured.get(), state.layout.get()) {
                    (Some(Tile::Screen(_)), _) => "presenter",
                    (Some(tile), _) if state.pinned.get().map(Tile::Camera) == Some(tile) => "pinned",
                    (Some(tile), _) if spotlight_tile(state) == Some(tile) => "spotlight",
                    (_, Layout::Speaker) => "speaker",
                    _ => "grid",
                }
                data-testid="tiles"
            >
                <For each=move || tiles.get() key=|tile| *tile let:tile>
                    {
                        let is_featured = Signal::derive(move || featured.get() == Some(tile));
                        let shown_at = Signal::derive(move || place(tile));
                        match tile {
                            Tile::Me => EitherOf3::A(view! { <SelfTile state featured=is_featured shown_at/> }),
                            Tile::Camera(peer) => {
                                EitherOf3::B(view! { <RemoteTile state peer featured=is_featured shown_at/> })
                            }
                            Tile::Screen(peer) => {
                                EitherOf3::C(view! { <ScreenTile state peer featured=is_featured shown_at/> })
                            }
                        }
                    }
                </For>
            </div>
            <When when=move || page.with(|p| p.count > 1)>
                <PageArrows state page=Signal::derive(move || page.with(|p| (p.index, p.count)))/>
            </When>
        </div>
    }
}

/// The stage's measured size and the window's width (phones page by fewer tiles).
#[derive(Clone, Copy, Debug, PartialEq)]
struct StageSize {
    width: f64,
    height: f64,
    window_width: f64,
}

impl Default for StageSize {
    /// What the server renders for: a desktop window, until the browser measures.
    fn default() -> Self {
        StageSize {
            width: 1000.0,
            height: 560.0,
            window_width: client::window_width(),
        }
    }
}

/// The active speaker's tile, this page's own included.
fn speaker_tile(state: MeetingState) -> Option<Tile> {
    state.speaker.get().map(|peer| camera_tile(state, peer))
}

/// The tile of the member a host put in the spotlight, this page's own included.
fn spotlight_tile(state: MeetingState) -> Option<Tile> {
    state
        .rules
        .get()
        .spotlight
        .map(|peer| camera_tile(state, peer))
}

/// A member's camera tile: this page's own is the self-view.
fn camera_tile(state: MeetingState, peer: PeerId) -> Tile {
    if Some(peer) == state.me.get() {
        Tile::Me
    } else {
        Tile::Camera(peer)
    }
}

/// Previous and next page of tiles, with where this is ("2 / 3").
#[component]
fn PageArrows(state: MeetingState, page: Signal<(usize, usize)>) -> impl IntoView {
    let i18n = state.i18n;
    let on_last_page = move || {
        let (index, count) = page.get();
        index + 1 == count
    };
    view! {
        <nav class="pager" aria-label=move || i18n.t().stage.pages data-testid="pager">
            <button
                class="pager-previous"
                disabled=move || page.get().0 == 0
                aria-label=move || i18n.t().stage.previous_page
                title=move || i18n.t().stage.previous_page
                on:click=move |_| state.page.update(|p| *p = p.saturating_sub(1))
            >
                "‹"
            </button>
            <span class="pager-position" data-testid="page-position">
                {move || format!("{} / {}", page.get().0 + 1, page.get().1)}
            </span>
            <button
                class="pager-next"
                disabled=on_last_page
                aria-label=move || i18n.t().stage.next_page
                title=move || i18n.t().stage.next_page
                on:click=move |_| state.page.update(|p| *p += 1)
            >
                "›"
            </button>
        </nav>
    }
}

/// `order` puts a tile where its page shows it; `None` hides it (another page).
fn placement(shown_at: Option<usize>) -> String {
    shown_at
        .map(|at| format!("order: {at}"))
        .unwrap_or_default()
}

#[component]
fn SelfTile(
    state: MeetingState,
    featured: Signal<bool>,
    shown_at: Signal<Option<usize>>,
) -> impl IntoView {
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
            class:off-page=move || shown_at.get().is_none()
            style=move || placement(shown_at.get())
            class:speaking=speaking
            data-speaking=move || speaking().to_string()
            data-testid="self-tile"
        >
            <video node_ref=video class:mirror=move || state.mirror.get() autoplay playsinline muted></video>
            <When when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </When>
            <HandBadge state peer=Signal::derive(move || state.me.get())/>
            <figcaption>
                <span class="tile-name">{move || format!("{}{}", name(), i18n.t().you_suffix)}</span>
                <When when=move || !mic()>
                    <span class="mic-off" role="img" aria-label=move || i18n.t().mic_off>"🔇"</span>
                </When>
            </figcaption>
        </figure>
    }
}

/// Signal bars for how well a member's video arrives here, once it has been measured.
#[component]
fn QualityMark(state: MeetingState, peer: PeerId) -> impl IntoView {
    let quality = move || state.quality.with(|q| q.get(&peer).copied());
    move || {
        let quality = quality()?;
        let t = &state.i18n.t().stage;
        let (level, label) = match quality {
            Quality::Good => ("good", t.quality_good),
            Quality::Fair => ("fair", t.quality_fair),
            Quality::Poor => ("poor", t.quality_poor),
        };
        Some(view! {
            <span class="quality" data-quality=level role="img" aria-label=label title=label data-testid="quality">
                <i></i>
                <i></i>
                <i></i>
            </span>
        })
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
        <When when=raised>
            <span class="hand-badge" role="img" aria-label=move || state.i18n.t().hand_raised data-testid="hand">
                "✋"
            </span>
        </When>
    }
}

#[component]
fn RemoteTile(
    state: MeetingState,
    peer: PeerId,
    featured: Signal<bool>,
    shown_at: Signal<Option<usize>>,
) -> impl IntoView {
    let i18n = state.i18n;
    let video = follow_remote(state, peer, MediaSession::attach_remote, shown_at);
    Effect::new(move |_| {
        let shown = shown_at.get().is_some();
        state.with_media(|m| m.want_camera(peer, shown));
    });
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
            class:off-page=move || shown_at.get().is_none()
            style=move || placement(shown_at.get())
            class:speaking=speaking
            data-peer=peer.0
            data-name=name
            data-link=move || format!("{:?}", link()).to_lowercase()
            data-speaking=move || speaking().to_string()
            data-testid="remote-tile"
        >
            <video node_ref=video autoplay playsinline></video>
            <When when=move || !camera()>
                <div class="placeholder" aria-hidden="true">{move || initials(&name())}</div>
            </When>
            <When when=move || link() != LinkState::Connected>
                <div class="link-state" role="status">{move || i18n.t().link_state(link())}</div>
            </When>
            <HandBadge state peer=Signal::derive(move || Some(peer))/>
            <QualityMark state peer/>
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
                <When when=move || !mic()>
                    <span class="mic-off" role="img" aria-label=move || i18n.t().mic_off data-testid="mic-off">
                        "🔇"
                    </span>
                </When>
                <When when=move || !camera()>
                    <span class="cam-off" role="img" aria-label=move || i18n.t().camera_off data-testid="camera-off">
                        "🚫"
                    </span>
                </When>
            </figcaption>
        </figure>
    }
}

#[component]
fn ScreenTile(
    state: MeetingState,
    peer: PeerId,
    featured: Signal<bool>,
    shown_at: Signal<Option<usize>>,
) -> impl IntoView {
    let i18n = state.i18n;
    let video = follow_remote(state, peer, MediaSession::attach_remote_screen, shown_at);
    let name = move || {
        state
            .roster
            .with(|r| r.name_of(peer).unwrap_or_default().to_string())
    };
    view! {
        <figure
            class="tile screen"
            class:featured=featured
            class:off-page=move || shown_at.get().is_none()
            style=move || placement(shown_at.get())
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
/// of theirs arrives. Off screen (another page) its video is switched off, so the browser
/// stops decoding it; through the server, the server also stops sending it (the page
/// reports the tile as 0 × 0).
fn follow_remote(
    state: MeetingState,
    peer: PeerId,
    attach: fn(&MediaSession, PeerId, &leptos::web_sys::HtmlVideoElement) -> bool,
    shown_at: Signal<Option<usize>>,
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
    Effect::new(move |_| {
        state.media_epochs.with(|e| e.get(&peer).copied());
        let on_screen = shown_at.get().is_some();
        if let Some(video) = video.get() {
            client::show_video(&video, on_screen);
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
