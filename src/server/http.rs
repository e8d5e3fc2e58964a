//! The TCP and HTTP/1.1 layer under the router: a listen backlog sized for reconnect storms,
//! a cap on connections per address, header and keep-alive timeouts (slowloris), and a
//! shutdown that stops waiting after a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::limits::ConnectionLimits;
use super::AppState;

/// Pending connections the kernel queues before `accept`. `TcpListener::bind` asks for 128:
/// when thousands of browsers reconnect at once after a restart, the overflow costs each of
/// them a one-second SYN retry. The kernel caps this at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// How long to pause accepting after an error such as "too many open files", so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Binds `addr` with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted server can listen at once even while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The connections being served, so shutdown can wait for them and, past its deadline,
/// drop them.
pub struct HttpConnections {
    tasks: TaskTracker,
    drop_now: CancellationToken,
}

impl HttpConnections {
    /// Waits for every connection to finish, at most until `deadline`; whatever is still open
    /// then is dropped. Returns whether all finished by themselves.
    pub async fn drain(self, deadline: tokio::time::Instant) -> bool {
        self.tasks.close();
        let finished = tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_ok();
        self.drop_now.cancel();
        finished
    }
}

/// Accepts connections and serves `router` on each until `shutdown` resolves (or the server's
/// shutdown token is cancelled); then stops accepting, asks open connections to finish their
/// current request, and returns them for [`HttpConnections::drain`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: &AppState,
    shutdown: impl Future<Output = ()>,
) -> HttpConnections {
    let config = &state.config;
    let per_address = ConnectionLimits::new(usize::MAX, config.max_http_connections_per_ip);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // Covers both a request trickling in and a keep-alive connection left idle: hyper
        // starts this timer whenever it waits for the next request's head.
        .header_read_timeout(Duration::from_secs(config.http_header_timeout_secs.max(1)));
    let connections = HttpConnections {
        tasks: TaskTracker::new(),
        drop_now: CancellationToken::new(),
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients' connections: it is not capped as one client.
        let permit = if super::proxy::is_trusted(remote.ip(), &config.trusted_proxies) {
            None
        } else {
            match per_address.admit(remote.ip()) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    state.metrics.refused_tcp_connections.inc();
                    tracing::debug!(%remote, "refusing a connection over the per-address limit");
                    continue;
                }
            }
        };
        let router = router.clone();
        // The client's address, for the handlers that limit by it.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().call(request)
        });
        let connection = http
            .serve_connection(TokioIo::new(prepared(tcp)), service)
            .with_upgrades();
        let finish = state.shutdown.clone();
        let drop_now = connections.drop_now.clone();
        connections.tasks.spawn(async move {
            // Held until the HTTP part ends; an upgraded WebSocket then counts under the
            // WebSocket limits instead.
            let _permit = permit;
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = finish.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        result = connection.as_mut() => result,
                        _ = drop_now.cancelled() => Ok(()),
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "HTTP connection ended with an error");
            }
        });
    }
    state.shutdown.cancel();
    connections
}

fn prepared(tcp: TcpStream) -> TcpStream {
    // Chat and signalling are small messages that must go out now, not when Nagle's
    // algorithm has waited for an acknowledgement (tens of milliseconds per message).
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
    tcp
}
