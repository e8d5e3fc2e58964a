//! The site's files over HTTP: hashed client files compressed and kept for a year, pages and
//! fixed names checked again, and the page naming the hashed files it needs.
#![cfg(feature = "ssr")]

mod support;

use std::path::PathBuf;

use support::TestServer;

const HASH: &str = "hZKVePDGvMNFDOMJBxL13A";

/// A site root like the one `cargo leptos build --release --precompress` writes: a hashed
/// WASM file with brotli and gzip copies beside it, and a file with a fixed name.
fn site_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!("room-site-files-{}", std::process::id()));
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join(format!("room.{HASH}.wasm")), b"\0asm plain").unwrap();
    std::fs::write(pkg.join(format!("room.{HASH}.wasm.br")), b"brotli bytes").unwrap();
    std::fs::write(pkg.join(format!("room.{HASH}.wasm.gz")), b"gzip bytes").unwrap();
    std::fs::write(root.join("favicon.svg"), b"<svg/>").unwrap();
    root
}

async fn get(server: &TestServer, path: &str, accept_encoding: &str) -> String {
    server
        .raw_http(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: {accept_encoding}\r\nConnection: close\r\n\r\n",
            server.addr
        ))
        .await
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn hashed_client_files_come_compressed_and_cached_for_a_year_and_pages_are_checked_again() {
    let root = site_root();
    let server = TestServer::start_serving(&root).await;
    let wasm = format!("/pkg/room.{HASH}.wasm");

    let brotli = get(&server, &wasm, "gzip, deflate, br").await;
    assert!(brotli.starts_with("HTTP/1.1 200"), "{brotli}");
    assert_eq!(header(&brotli, "content-encoding"), Some("br"));
    assert_eq!(header(&brotli, "content-type"), Some("application/wasm"));
    assert_eq!(
        header(&brotli, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(header(&brotli, "vary"), Some("accept-encoding"));
    assert!(brotli.ends_with("brotli bytes"));

    let gzip = get(&server, &wasm, "gzip").await;
    assert_eq!(header(&gzip, "content-encoding"), Some("gzip"));
    assert!(gzip.ends_with("gzip bytes"));

    let plain = get(&server, &wasm, "identity").await;
    assert_eq!(header(&plain, "content-encoding"), None);
    assert!(plain.ends_with("\0asm plain"));

    let fixed_name = get(&server, "/favicon.svg", "br").await;
    assert!(fixed_name.starts_with("HTTP/1.1 200"), "{fixed_name}");
    assert_eq!(header(&fixed_name, "cache-control"), Some("no-cache"));

    let page = get(&server, "/r/standup", "br").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert_eq!(header(&page, "cache-control"), Some("no-cache"));

    // A file that is not there is the app's 404 page, which no cache keeps.
    let missing = get(&server, "/pkg/room.AAAAAAAAAAAAAAAAAAAAAA.wasm", "br").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_eq!(header(&missing, "cache-control"), None);

    server.stop().await;
    std::fs::remove_dir_all(&root).unwrap();
}
