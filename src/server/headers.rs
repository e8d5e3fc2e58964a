//! Security headers: the ones every response carries, and the Content-Security-Policy of the
//! pages, whose inline hydration script is allowed by a per-response nonce.

use axum::http::header::{HeaderName, HeaderValue};
use axum::http::HeaderMap;

/// Which sites may show Room in a frame (`--frame-ancestors`), handed to page rendering.
#[derive(Clone, Debug)]
pub struct FrameAncestors(pub String);

/// Headers for every response: no MIME sniffing, no referrer to other sites, camera,
/// microphone and screen capture for this origin only, and no framing unless configured.
pub fn add_common(headers: &mut HeaderMap, frame_ancestors: &str) {
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(axum::http::header::REFERRER_POLICY, "no-referrer");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(self), microphone=(self), display-capture=(self)",
    );
    // For browsers that predate CSP's frame-ancestors.
    if frame_ancestors.trim() == "'none'" {
        set(axum::http::header::X_FRAME_OPTIONS, "DENY");
    }
}

/// The page's policy: scripts only from this origin or carrying `nonce` (the hydration
/// script), WebAssembly compiled from those, connections to this origin's HTTP and WebSocket
/// only. Inline `style` attributes stay allowed: the server renders a few (the microphone
/// meter's width), and they cannot run code.
pub fn content_security_policy(nonce: &str, host: Option<&str>, frame_ancestors: &str) -> String {
    let websocket = host
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data: blob:; \
         media-src 'self' blob: mediastream:; connect-src 'self'{websocket}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors {frame_ancestors}"
    )
}

/// Called while a page renders on the server: puts the policy, with the nonce Leptos gave
/// this response's inline scripts, on the response.
pub fn set_page_policy() {
    use leptos::prelude::use_context;
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let frame_ancestors =
        use_context::<FrameAncestors>().map_or_else(|| "'none'".to_string(), |f| f.0);
    let parts = use_context::<axum::http::request::Parts>();
    let host = parts
        .as_ref()
        .and_then(|parts| parts.headers.get(axum::http::header::HOST))
        .and_then(|host| host.to_str().ok());
    let policy = content_security_policy(&nonce, host, &frame_ancestors);
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// How long a browser may keep a successful response. Files whose names carry their
/// content's hash (cargo-leptos' `hash-files`: `room.<22 characters of MD5>.wasm`) never change
/// under that name, so a second visit loads them from the cache without asking; pages and files
/// with fixed names are checked again every time, so a new release is seen at once.
pub fn cache_control(path: &str) -> &'static str {
    if file_name_carries_hash(path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn file_name_carries_hash(path: &str) -> bool {
    const HASH_CHARS: usize = 22;
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut parts = name.split('.');
    let (Some(stem), Some(hash), Some(extension)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // A precompressed copy (`.wasm.br`) is chosen by the server, not named by the page.
    !stem.is_empty()
        && !extension.is_empty()
        && parts.all(|rest| rest == "br" || rest == "gz")
        && hash.len() == HASH_CHARS
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_site_files_are_kept_for_a_year_and_everything_else_is_checked_again() {
        let immutable = "public, max-age=31536000, immutable";
        assert_eq!(
            cache_control("/pkg/room.dX3b_1-Zq8Tn0aPw9mKc2A.wasm"),
            immutable
        );
        assert_eq!(
            cache_control("/pkg/room.dX3b_1-Zq8Tn0aPw9mKc2A.css"),
            immutable
        );
        assert_eq!(cache_control("/pkg/room.wasm"), "no-cache");
        assert_eq!(cache_control("/pkg/room_bg.wasm"), "no-cache");
        assert_eq!(cache_control("/r/standup"), "no-cache");
        assert_eq!(cache_control("/"), "no-cache");
        assert_eq!(cache_control("/favicon.svg"), "no-cache");
        // A room name that happens to look like a hash is a page, not a file.
        assert_eq!(cache_control("/r/dX3b_1-Zq8Tn0aPw9mKc2A"), "no-cache");
        assert_eq!(
            cache_control("/pkg/room.dX3b_1-Zq8Tn0aPw9mKc2A"),
            "no-cache"
        );
        assert_eq!(
            cache_control("/pkg/room.dX3b_1-Zq8Tn0aPw9mK!2A.js"),
            "no-cache"
        );
    }

    #[test]
    fn the_page_policy_allows_the_nonce_and_this_sites_websocket_only() {
        let policy = content_security_policy("abc", Some("127.0.0.1:3000"), "'none'");
        assert!(policy.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(policy.contains("connect-src 'self' ws://127.0.0.1:3000 wss://127.0.0.1:3000;"));
        assert!(policy.ends_with("frame-ancestors 'none'"));
        assert!(!policy.contains(" 'unsafe-eval'"));
        assert!(!policy.contains("script-src 'self' 'unsafe-inline'"));
    }

    #[test]
    fn framing_is_refused_unless_configured() {
        let mut headers = HeaderMap::new();
        add_common(&mut headers, "'none'");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let mut embedded = HeaderMap::new();
        add_common(&mut embedded, "https://intranet.example");
        assert!(!embedded.contains_key("x-frame-options"));
    }
}
