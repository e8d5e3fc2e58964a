//! The panic-counting test in a binary of its own: a process-wide panic hook would otherwise
//! count panics of tests running beside it.

#![cfg(feature = "ssr")]

mod support;

use std::time::Duration;

use support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendering_pages_under_concurrency_never_panics() {
    // A panic while rendering aborts the response mid-stream; count them all.
    let panics = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        previous(info);
    }));
    let server = std::sync::Arc::new(TestServer::start(&[]).await);
    let mut requests = Vec::new();
    for i in 0..40 {
        let server = server.clone();
        let path = if i % 2 == 0 { "/" } else { "/r/busy-room" };
        requests.push(tokio::spawn(async move { server.http("GET", path).await }));
    }
    for request in requests {
        let page = request.await.unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(
            page.trim_end().ends_with("</script>") || page.contains("</html>"),
            "{page}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(panics.load(std::sync::atomic::Ordering::SeqCst), 0);
    let _ = std::panic::take_hook();
    if let Ok(server) = std::sync::Arc::try_unwrap(server) {
        server.stop().await;
    }
}
