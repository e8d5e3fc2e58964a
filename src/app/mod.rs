//! The Leptos user interface, shared by server rendering and the hydrated client: the HTML
//! shell, the choice of page, the language catalogs and one module per page.

pub mod home;
pub mod i18n;
pub mod room;
pub mod show;

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, Html, MetaTags, Title};

use self::i18n::{provide_i18n, use_i18n, Lang};
use crate::client;

/// Until the WASM client has loaded (a slow link), the join form is plain HTML: this keeps what
/// is typed in it, and a press of Join, for the client to carry out once it runs, instead of
/// the browser submitting the form and reloading the page with nothing done. No `<`, `>` or
/// quotes that HTML would need escaped.
const EARLY_INPUT_SCRIPT: &str = "(function(){var early=window.__roomEarly={};\
function keep(form){var n=form.elements.namedItem('name'),p=form.elements.namedItem('password');\
if(n)early.name=n.value;if(p)early.password=p.value;}\
function ours(form){return form&&form.classList&&form.classList.contains('join-pane');}\
document.addEventListener('input',function(e){if(ours(e.target.form))keep(e.target.form);},true);\
document.addEventListener('submit',function(e){if(ours(e.target)&&!document.documentElement.dataset.hydrated)\
{e.preventDefault();keep(e.target);early.submitted=true;}},true);})();";

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::server::headers::set_page_policy();
    view! {
        <!DOCTYPE html>
        <html>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                // In <head> and not in App: the hashed name is known only on the server.
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <script nonce=leptos::nonce::use_nonce() inner_html=EARLY_INPUT_SCRIPT></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Which page an address shows. Room has two pages and every move between them is a full
/// page load (a form or a plain link), so a path match replaces a client-side router, whose
/// type-erased route views would cost the WASM about a quarter of its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/`; `invalid` when a room name typed there was refused (`?invalid`).
    Home {
        invalid: bool,
    },
    /// `/r/<room>`, the room as written in the address (checked by the page).
    Room(String),
    NotFound,
}

impl Page {
    /// `path` without the query, `query` without the `?`.
    pub fn at(path: &str, query: &str) -> Page {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        if path == "/" {
            let invalid = query
                .split('&')
                .any(|pair| pair.split('=').next() == Some("invalid"));
            return Page::Home { invalid };
        }
        match path.strip_prefix("/r/") {
            Some(room) if !room.is_empty() && !room.contains('/') => Page::Room(room.to_string()),
            _ => Page::NotFound,
        }
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let lang = client::page_lang()
        .and_then(|tag| Lang::from_tag(&tag))
        .unwrap_or_default();
    let i18n = provide_i18n(lang);
    let (path, query) = client::page_address();
    let page = match Page::at(&path, &query) {
        Page::Home { invalid } => EitherOf3::A(view! { <home::HomePage invalid/> }),
        Page::Room(room) => EitherOf3::B(view! { <room::RoomPage room/> }),
        Page::NotFound => EitherOf3::C(view! { <NotFound/> }),
    };
    view! {
        <Html {..} lang=move || i18n.lang.get().code()/>
        <Title text="Room"/>
        {page}
    }
}

#[component]
fn NotFound() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <main class="page narrow">
            <h1>{move || i18n.t().page_not_found}</h1>
            <p><a href="/">{move || i18n.t().back_home}</a></p>
        </main>
    }
}

/// English or Korean; the choice sticks (a cookie) and applies at once.
#[component]
pub fn LangSwitch() -> impl IntoView {
    let i18n = use_i18n();
    view! {
        <label class="lang-switch">
            <span class="visually-hidden">{move || i18n.t().language}</span>
            <select
                aria-label=move || i18n.t().language
                data-testid="language"
                on:change=move |ev| {
                    if let Some(lang) = Lang::from_tag(&event_target_value(&ev)) {
                        i18n.lang.set(lang);
                        client::remember_lang(lang.code(), i18n::LANG_COOKIE);
                    }
                }
            >
                {Lang::ALL
                    .into_iter()
                    .map(|lang| {
                        view! {
                            <option value=lang.code() selected=move || i18n.lang.get() == lang>
                                {lang.native_name()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
        </label>
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn addresses_choose_their_page() {
        assert_eq!(Page::at("/", ""), Page::Home { invalid: false });
        assert_eq!(Page::at("/", "invalid"), Page::Home { invalid: true });
        assert_eq!(
            Page::at("/", "lang=ko&invalid=1"),
            Page::Home { invalid: true }
        );
        assert_eq!(Page::at("/", "invalidish"), Page::Home { invalid: false });
        assert_eq!(Page::at("/r/standup", ""), Page::Room("standup".into()));
        assert_eq!(Page::at("/r/standup/", "x=1"), Page::Room("standup".into()));
        assert_eq!(
            Page::at("/r/Not A Room!", ""),
            Page::Room("Not A Room!".into())
        );
        for missing in ["/r", "/r/", "/r/a/b", "/rooms", "/favicon.ico", ""] {
            assert_eq!(Page::at(missing, ""), Page::NotFound, "{missing}");
        }
    }
}
