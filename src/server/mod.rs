//! The axum server (feature `ssr`): shared state, the router (Leptos pages, `/ws`,
//! `/metrics`, room creation) and `run`, which serves until told to shut down.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod error;
pub mod headers;
pub mod http;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod origin;
pub mod password;
pub mod proxy;
pub mod rooms;
pub mod site;
pub mod socket;
pub mod store;
pub mod turn;
mod udp_batch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRef, Query, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use leptos::config::LeptosOptions;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::shell;
use crate::core::names::RoomSlug;
use crate::core::{MonoMillis, Now};
use crate::protocol::{PeerId, UnixMillis};

use self::config::Config;
use self::error::StartError;
use self::limits::ConnectionLimits;
use self::media::MediaHandle;
use self::metrics::Metrics;
use self::origin::OriginPolicy;
use self::rooms::{RoomSettings, Rooms};
use self::store::ChatStore;
use crate::core::room::MediaPolicy;

/// Everything a request handler or connection needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub config: Arc<Config>,
    pub rooms: Arc<Rooms>,
    pub store: ChatStore,
    pub metrics: Arc<Metrics>,
    pub connections: Arc<ConnectionLimits>,
    /// Which hosts are served and which pages may open a WebSocket.
    pub origins: Arc<OriginPolicy>,
    /// Signed tokens every join needs (`--auth-secret`, `--auth-public-key`), if any.
    pub auth: Option<Arc<auth::TokenAuth>>,
    /// Cancelled once when the server begins shutting down; every connection watches it.
    pub shutdown: CancellationToken,
    /// Connections and room tasks, so shutdown can wait for their close frames.
    pub tasks: TaskTracker,
    /// The other nodes sharing rooms through Redis (`--redis-url`), if any.
    pub cluster: Option<Arc<cluster::Cluster>>,
    next_peer: Arc<AtomicU64>,
}

impl AppState {
    /// Opens the chat store under `--data-dir` (creating it on first start).
    pub fn new(config: Config, leptos: LeptosOptions) -> Result<Self, StartError> {
        let origins = OriginPolicy::new(config.public_url.as_deref(), &config.allowed_origins)
            .map_err(StartError::InvalidOrigin)?;
        let auth = match (&config.auth_secret, &config.auth_public_key) {
            (Some(secret), _) => Some(auth::TokenAuth::shared_secret(secret)),
            (None, Some(path)) => Some(auth::TokenAuth::public_key(path)),
            (None, None) => None,
        }
        .transpose()
        .map_err(StartError::Auth)?
        .map(Arc::new);
        let metrics = Arc::new(Metrics::default());
        let tasks = TaskTracker::new();
        let store = ChatStore::open(&config.data_dir, config.retention(), metrics.store.clone())?;
        let settings = RoomSettings {
            limits: config.room_limits(),
            ice_servers: config.ice_servers(),
            max_rooms: config.max_rooms,
            new_rooms: crate::core::rate::RateLimit::new(
                config.new_rooms_burst,
                config.new_rooms_per_second,
            ),
            public_list: config.public_room_list,
            list_from_cluster: config.redis_url.is_some(),
            media: None,
            turn: None,
        };
        let clock = Clock::new();
        let shutdown = CancellationToken::new();
        let cluster = config.redis_url.clone().map(|url| {
            let node = config
                .node_id
                .clone()
                .unwrap_or_else(cluster::Cluster::random_node_id);
            tracing::info!(node = %node, redis = %url, "sharing rooms with other nodes through Redis");
            cluster::Cluster::new(url, node, metrics.cluster.clone())
        });
        let history = match &cluster {
            Some(cluster) => {
                rooms::History::Shared(cluster.history(config.retention(), shutdown.clone()))
            }
            None => rooms::History::Local(store.clone()),
        };
        let media = match config.media {
            MediaPolicy::Mesh => None,
            MediaPolicy::Sfu | MediaPolicy::Auto => Some(
                MediaHandle::start(
                    config.media_addr,
                    config.media_threads,
                    &config.public_ips,
                    config.addr,
                    metrics.media.clone(),
                    &tasks,
                    shutdown.clone(),
                )
                .map_err(|source| StartError::MediaSocket {
                    addr: config.media_addr,
                    source,
                })?,
            ),
        };
        let turn = if config.turn_enabled() {
            Some(start_turn(
                &config,
                media.as_ref(),
                &metrics,
                &tasks,
                &shutdown,
            )?)
        } else {
            None
        };
        let settings = RoomSettings {
            media,
            turn,
            ..settings
        };
        let state = AppState {
            rooms: Rooms::new(settings, history, metrics.clone(), tasks.clone(), clock),
            store,
            connections: ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
            ),
            origins: Arc::new(origins),
            auth,
            leptos,
            config: Arc::new(config),
            metrics,
            shutdown,
            tasks,
            cluster,
            // Ids stay unique across restarts (clients that reconnect to a restarted server
            // still hold messages from the old ids): start from the clock, in a range that
            // JavaScript numbers represent exactly.
            next_peer: Arc::new(AtomicU64::new(unix_now().0 * 1000)),
        };
        if let Some(cluster) = &state.cluster {
            cluster.start(&state);
        }
        Ok(state)
    }

    pub fn next_peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// The whole HTTP surface of Room.
pub fn app(state: AppState) -> Router {
    // Already started when a second app shares the process (tests): that is fine.
    let _ = any_spawner::Executor::init_tokio();
    let leptos = state.leptos.clone();
    let frame_ancestors = headers::FrameAncestors(state.config.frame_ancestors.clone());
    let page_state = state.clone();
    let page = leptos_axum::render_app_to_stream_with_context(
        move || {
            leptos::prelude::provide_context(frame_ancestors.clone());
            leptos::prelude::provide_context(page_state.clone());
        },
        move || shell(leptos.clone()),
    );
    Router::new()
        .route("/ws", get(websocket))
        .route("/new", post(new_room))
        .route("/join", get(join_room))
        .route("/healthz", get(|| async { "ok" }))
        // The pages (`app::Page`); any other address is a file or the not-found page.
        .route("/", get(page.clone()))
        .route("/r/{room}", get(page))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// `/metrics` alone, for the listener of `--metrics-addr`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves `/metrics` on `listener` until the server shuts down; a task of its own.
pub fn spawn_metrics(listener: TcpListener, state: AppState) {
    let stop = state.shutdown.clone();
    let router = metrics_app(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics listener failed");
        }
    });
}

/// Serves on `listener` (bind it with [`http::bind`]) until `shutdown` resolves, then closes
/// every WebSocket with a close frame, waits up to `--shutdown-timeout-secs` for connections
/// and rooms to finish, and flushes the chat store whatever happened.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let connections = http::serve(listener, router, &state, shutdown).await;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(state.config.shutdown_timeout_secs);
    state.tasks.close();
    let (http_done, rooms_done) = tokio::join!(
        connections.drain(deadline),
        tokio::time::timeout_at(deadline, state.tasks.wait()),
    );
    if !http_done || rooms_done.is_err() {
        tracing::warn!("some connections did not close in time; dropping them");
    }
    // Only now: rooms deliver (and hand to the store) what they still had queued while their
    // connections close, and all of it must be on disk before the process exits.
    state.store.close_cleanly().await;
    // Last: relayed connections needed Redis to say goodbye.
    if let Some(cluster) = &state.cluster {
        cluster.stop().await;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

/// The server's two clocks as the core wants them: monotonic milliseconds since start (tokio's,
/// so tests can pause time) for durations, the wall clock for the stamps people read.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Now {
        Now {
            mono: MonoMillis(self.start.elapsed().as_millis() as u64),
            wall: unix_now(),
        }
    }

    /// The instant a core deadline falls on.
    pub fn instant(&self, at: MonoMillis) -> tokio::time::Instant {
        self.start + Duration::from_millis(at.0)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Starts the built-in TURN relay with the secret from the data directory.
fn start_turn(
    config: &Config,
    media: Option<&MediaHandle>,
    metrics: &Metrics,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<turn::TurnGrant, StartError> {
    use crate::turn::server::{PeerPolicy, TurnLimits};
    let secret = turn::load_secret(&config.data_dir).map_err(|source| StartError::TurnSecret {
        path: config.data_dir.join("turn-secret"),
        source,
    })?;
    let advertised_ip = config.turn_advertised_ip();
    let mut own_ips = config.public_ips.clone();
    own_ips.push(advertised_ip);
    own_ips.extend(config.addr.map(|a| a.ip()));
    own_ips.push(config.turn_addr.ip());
    own_ips.retain(|ip| !ip.is_unspecified());
    let mut open_ports = vec![config.relay_ports.clone()];
    open_ports.extend(media.iter().flat_map(|m| m.ports()).map(|&p| p..=p));
    let settings = turn::TurnSettings {
        listen: config.turn_addr,
        advertised_ip,
        relay_ports: config.relay_ports.clone(),
        limits: TurnLimits {
            realm: "room".into(),
            max_lifetime: Duration::from_secs(3600),
            max_allocations: config.turn_max_total_allocations,
            max_allocations_per_member: config.turn_max_allocations,
            member_bytes_per_second: config.turn_member_kbps.saturating_mul(1000) / 8,
        },
        policy: PeerPolicy::new(config.turn_allow_peers.clone(), own_ips, open_ports),
        credentials: crate::turn::credentials::Credentials::new(
            secret,
            config.turn_credential_secs,
        ),
        tls: turn_tls(config, advertised_ip)?,
    };
    turn::start(settings, metrics.turn.clone(), tasks, shutdown.clone()).map_err(|source| {
        StartError::TurnSocket {
            addr: config.turn_addr,
            source,
        }
    })
}

/// TURN over TLS, when a certificate is given. Its URL names the host in --public-url (what
/// the certificate is for), else the advertised address.
fn turn_tls(
    config: &Config,
    advertised_ip: std::net::IpAddr,
) -> Result<Option<turn::TlsSettings>, StartError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let acceptor = turn::tls_acceptor(cert, key).map_err(StartError::TurnTls)?;
    let host = config
        .public_url
        .as_deref()
        .and_then(origin::url_host)
        .unwrap_or_else(|| match advertised_ip {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        });
    Ok(Some(turn::TlsSettings {
        listen: config.turn_tls_addr,
        host,
        acceptor,
    }))
}

pub fn unix_now() -> UnixMillis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis(since_epoch.as_millis() as u64)
}

/// Refuses requests for host names this server does not serve (DNS rebinding), and puts the
/// security headers on every response.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST);
    let host = host.and_then(|value| value.to_str().ok());
    let cache_control = headers::cache_control(request.uri().path());
    let mut response = match state.origins.check_host(host) {
        Ok(()) => next.run(request).await,
        Err(forbidden) => refuse_forbidden(&state, forbidden),
    };
    headers::add_common(response.headers_mut(), &state.config.frame_ancestors);
    if response.status().is_success() {
        let headers = response.headers_mut();
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static(cache_control));
        // Site files come brotli, gzip or plain by the request's Accept-Encoding: a shared
        // cache must keep them apart.
        headers
            .entry(header::VARY)
            .or_insert(HeaderValue::from_static("accept-encoding"));
    }
    response
}

fn refuse_forbidden(state: &AppState, forbidden: origin::Forbidden) -> Response {
    state.metrics.forbidden_requests.inc();
    tracing::info!(reason = %forbidden, "refusing a request");
    (StatusCode::FORBIDDEN, forbidden.to_string()).into_response()
}

async fn websocket(
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> Response {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    if let Err(forbidden) = state
        .origins
        .check_websocket(header(header::HOST), header(header::ORIGIN))
    {
        return refuse_forbidden(&state, forbidden);
    }
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    // Behind a trusted proxy, the limits count the client it names, not the proxy.
    let client = proxy::client_address(client.ip(), &headers, &state.config.trusted_proxies);
    let permit = state.connections.admit(client);
    let limit = state.config.max_frame_bytes;
    let tasks = state.tasks.clone();
    ws.max_message_size(limit)
        .max_frame_size(limit)
        // tungstenite zero-fills its whole read buffer before every read attempt, and keeps
        // it per connection: its 128 KiB default costs both CPU and memory for our small
        // messages.
        .read_buffer_size(state.config.ws_read_buffer)
        .write_buffer_size(state.config.ws_write_buffer)
        .on_upgrade(move |socket| async move {
            match permit {
                Ok(permit) => {
                    tasks
                        .track_future(socket::serve(socket, state, permit))
                        .await
                }
                // Over a limit: say so in the protocol, then close (1013, try again later).
                Err(refusal) => socket::turn_away(socket, &state, refusal).await,
            }
        })
}

async fn new_room(State(state): State<AppState>) -> Response {
    match state.rooms.fresh_slug() {
        Ok(slug) => Redirect::to(&format!("/r/{slug}")).into_response(),
        Err(error) => {
            tracing::error!(%error, "no randomness for a meeting name");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot make an unguessable meeting name right now; try again",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct JoinForm {
    room: String,
}

/// The home page's "join by name" form: tidies what was typed into a slug.
async fn join_room(Query(form): Query<JoinForm>) -> Redirect {
    match RoomSlug::normalize(&form.room) {
        Ok(slug) => Redirect::to(&format!("/r/{slug}")),
        Err(_) => Redirect::to("/?invalid=1"),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, self::metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
}
