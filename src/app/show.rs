//! `When` and `WhenElse`: conditional views whose children keep their concrete types.
//!
//! Leptos' `Show` turns its fallback into an `AnyView`, and every type that ever becomes an
//! `AnyView` drags a second, asynchronous hydration path into the WASM for its whole subtree,
//! code this client never runs (it hydrates synchronously). Keeping views typed, here and with
//! `Either` instead of `into_any()` elsewhere, keeps that code out of every first visit.

use leptos::either::Either;
use leptos::prelude::*;

/// Shows its children while `when` is true, nothing otherwise. The condition is memoized, so
/// the children are built again only when it flips.
#[component(transparent)]
pub fn When<W, C>(when: W, children: TypedChildrenFn<C>) -> impl IntoView
where
    W: Fn() -> bool + Send + Sync + 'static,
    C: IntoView + 'static,
{
    let shown = Memo::new(move |_| when());
    let children = children.into_inner();
    move || shown.get().then(|| children())
}

/// Shows its children while `when` is true and `fallback` otherwise.
#[component(transparent)]
pub fn WhenElse<W, C, F, V>(when: W, fallback: F, children: TypedChildrenFn<C>) -> impl IntoView
where
    W: Fn() -> bool + Send + Sync + 'static,
    C: IntoView + 'static,
    F: Fn() -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let shown = Memo::new(move |_| when());
    let children = children.into_inner();
    move || {
        if shown.get() {
            Either::Left(children())
        } else {
            Either::Right(fallback())
        }
    }
}
