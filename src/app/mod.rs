//! The Leptos user interface, shared by server rendering and the hydrated client: the HTML
//! shell, the router, the language catalogs and one module per page.

pub mod home;
pub mod i18n;
pub mod room;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, Html, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{ParamSegment, StaticSegment};

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

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let lang = client::page_lang()
        .and_then(|tag| Lang::from_tag(&tag))
        .unwrap_or_default();
    let i18n = provide_i18n(lang);
    view! {
        <Html {..} lang=move || i18n.lang.get().code()/>
        <Title text="Room"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("") view=home::HomePage/>
                <Route path=(StaticSegment("r"), ParamSegment("room")) view=room::RoomPage/>
            </Routes>
        </Router>
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
