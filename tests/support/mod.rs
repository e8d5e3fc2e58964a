//! Test support: boots the real server on port 0 and drives it with real WebSocket clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use room::protocol::{
    ChatEntry, ClientMsg, ErrorCode, PeerId, PeerInfo, ServerMsg, PROTOCOL_VERSION,
};
use room::server::{config::Config, run, site, spawn_metrics, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// A new, empty directory for one server's data.
/// A `join` for `room` under `name`, as a new member.
pub fn join_msg(room: &str, name: impl Into<String>) -> ClientMsg {
    ClientMsg::join(room, name)
}

/// A `join` that presents a resume token and the newest message id already seen.
pub fn resuming_join_msg(
    room: &str,
    name: impl Into<String>,
    resume: Option<String>,
    last_seen: Option<room::protocol::MessageId>,
) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        resume,
        last_seen,
        host_key: None,
        browser: None,
        password: None,
        token: None,
    }
}

/// A `join` from a browser that keeps the id `browser`, optionally with a host key.
pub fn browser_join_msg(
    room: &str,
    name: impl Into<String>,
    browser: &str,
    host_key: Option<String>,
) -> ClientMsg {
    ClientMsg::Join {
        room: room.into(),
        name: name.into(),
        resume: None,
        last_seen: None,
        host_key,
        browser: Some(browser.into()),
        password: None,
        token: None,
    }
}

/// A `join` that brings a meeting password and/or a signed token.
pub fn secret_join_msg(
    room: &str,
    name: impl Into<String>,
    password: Option<&str>,
    token: Option<&str>,
) -> ClientMsg {
    let mut join = ClientMsg::join(room, name);
    if let ClientMsg::Join {
        password: p,
        token: t,
        ..
    } = &mut join
    {
        *p = password.map(String::from);
        *t = token.map(String::from);
    }
    join
}

/// This process's resident memory in KiB, from /proc.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// A data directory of a test's own, deleted when dropped (even when the test panics), so
/// runs do not pile up SQLite files in /tmp.
pub struct DataDir(PathBuf);

impl std::ops::Deref for DataDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fresh_data_dir() -> DataDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "room-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    DataDir(dir)
}

/// Long enough for a loaded CI machine, short enough that a hang fails fast.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    /// Set when the server made its own data directory; removed with it.
    _own_data_dir: Option<DataDir>,
}

impl TestServer {
    /// Starts a server with the given extra flags, e.g. `["--max-room-members", "2"]`, and
    /// a data directory of its own.
    pub async fn start(flags: &[&str]) -> TestServer {
        let data_dir = fresh_data_dir();
        let mut server = Self::start_in(&data_dir, flags, "127.0.0.1:0").await;
        server._own_data_dir = Some(data_dir);
        server
    }

    /// Starts a server on `addr` keeping its chat history in `data_dir`.
    pub async fn start_in(data_dir: &Path, flags: &[&str], addr: &str) -> TestServer {
        Self::start_with_site(data_dir, flags, addr, None).await
    }

    /// Starts a server that serves the site files (the WASM client, its CSS) from `site_root`
    /// instead of `target/site`.
    pub async fn start_serving(site_root: &Path) -> TestServer {
        let data_dir = fresh_data_dir();
        let mut server =
            Self::start_with_site(&data_dir, &[], "127.0.0.1:0", Some(site_root)).await;
        server._own_data_dir = Some(data_dir);
        server
    }

    async fn start_with_site(
        data_dir: &Path,
        flags: &[&str],
        addr: &str,
        site_root: Option<&Path>,
    ) -> TestServer {
        let data_dir = data_dir.to_str().expect("utf-8 path");
        // The media socket on a free loopback port, so parallel tests do not share one.
        let media_addr: &[&str] = if flags.contains(&"--media-addr") {
            &[]
        } else {
            &["--media-addr", "127.0.0.1:0"]
        };
        let args = ["room", "--data-dir", data_dir]
            .into_iter()
            .chain(media_addr.iter().copied())
            .chain(flags.iter().copied());
        let config = Config::parse_from(args);
        let mut leptos = site::load(Path::new("Leptos.toml")).expect("site settings");
        if let Some(root) = site_root {
            leptos.site_root = root.to_str().expect("utf-8 path").into();
        }
        let listener = room::server::http::bind(addr.parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(config, leptos).expect("the server starts");
        // Metrics have a loopback listener of their own, as `--metrics-addr` gives them.
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        spawn_metrics(metrics, state.clone());
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(run(listener, state.clone(), async move {
            shutdown.cancelled().await
        }));
        TestServer {
            addr,
            metrics_addr,
            state,
            stop,
            task,
            _own_data_dir: None,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A client that said hello and joined `room` as `name`.
    pub async fn joined(&self, room: &str, name: &str) -> (Client, Joined) {
        let mut client = self.client().await;
        client.hello().await;
        let joined = client.join(room, name).await;
        (client, joined)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .unwrap()
            .unwrap();
    }

    /// A plain HTTP/1.1 GET or POST; returns the status line, headers and body as text.
    pub async fn http(&self, method: &str, path: &str) -> String {
        self.raw_http(&format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        ))
        .await
    }

    /// The `/metrics` text, from the metrics listener.
    pub async fn metrics(&self) -> String {
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        );
        Self::exchange(self.metrics_addr, &request).await
    }

    /// Sends `request` as written and returns everything the server answers until it closes.
    pub async fn raw_http(&self, request: &str) -> String {
        Self::exchange(self.addr, request).await
    }

    async fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
            .await
            .expect("response in time")
            .unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }
}

/// What a successful join returned.
#[derive(Debug)]
pub struct Joined {
    pub you: PeerId,
    pub peers: Vec<PeerInfo>,
    pub history: Vec<ChatEntry>,
    pub more_history: bool,
    pub resume_token: String,
    /// Only the host's `joined` carries the room's host key.
    pub host_key: Option<String>,
}

/// A WebSocket upgrade request for `addr` with the `Origin` of Room's own page, as a browser
/// would send it, plus any extra headers.
pub fn upgrade_request(
    addr: SocketAddr,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    request
}

fn websocket_request(
    addr: SocketAddr,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    upgrade_request(addr, Some(&format!("http://{addr}")))
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ending {
    Closed(u16, String),
    Dropped,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(websocket_request(addr))
            .await
            .expect("websocket connects");
        Client { ws }
    }

    /// A client whose connection comes from `local`, another loopback address: to the
    /// server, another person's address.
    pub async fn connect_from(addr: SocketAddr, local: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(local.parse().unwrap(), 0))
            .unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async(websocket_request(addr), MaybeTlsStream::Plain(stream))
                .await
                .expect("websocket connects");
        Client { ws }
    }

    /// Wraps a WebSocket a test opened itself (with its own headers or local address).
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(&msg.to_json()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// The next protocol message; panics on timeout or close.
    pub async fn recv(&mut self) -> ServerMsg {
        // One deadline for the whole wait: pings must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a message in time")
                .expect("connection open")
                .expect("readable frame");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("undecodable {text}: {e}"))
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next protocol message within `within`; `None` when none came or the connection
    /// ended.
    pub async fn recv_within(&mut self, within: Duration) -> Option<ServerMsg> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).ok(),
                Message::Ping(_) | Message::Pong(_) => continue,
                _ => return None,
            }
        }
    }

    /// The next protocol message if one is already waiting, without waiting for one.
    pub async fn try_recv(&mut self) -> Option<ServerMsg> {
        // Polling the stream once and dropping the future loses nothing.
        self.recv_within(Duration::ZERO).await
    }

    /// Skips messages until one matches, returning it.
    pub async fn recv_until(&mut self, mut wanted: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
        let wait = async {
            loop {
                let msg = self.recv().await;
                if wanted(&msg) {
                    return msg;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the expected message in time")
    }

    /// Skips messages until an error with `code` arrives; its message.
    pub async fn recv_error(&mut self, code: ErrorCode) -> String {
        match self
            .recv_until(|m| matches!(m, ServerMsg::Error { code: got, .. } if *got == code))
            .await
        {
            ServerMsg::Error { message, .. } => message,
            _ => unreachable!(),
        }
    }

    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.recv().await {
            ServerMsg::Error {
                code: got, message, ..
            } if got == code => message,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    pub async fn expect_chat_msg(&mut self) -> ServerMsg {
        ServerMsg::Chat {
            entry: self.expect_chat().await,
        }
    }

    pub async fn expect_chat(&mut self) -> ChatEntry {
        match self.recv().await {
            ServerMsg::Chat { entry } => entry,
            other => panic!("expected chat, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for a while (used to prove isolation).
    pub async fn expect_silence(&mut self, how_long: Duration) {
        let deadline = tokio::time::Instant::now() + how_long;
        while let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match frame {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// A text frame whose payload is not UTF-8, which no honest client can send.
    pub async fn send_invalid_utf8(&mut self) {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
        let _ = self.ws.send(Message::Frame(frame)).await;
    }

    /// Every protocol message that arrives until nothing has for `quiet`.
    pub async fn collect(&mut self, quiet: Duration) -> Vec<ServerMsg> {
        let mut messages = Vec::new();
        while let Ok(Some(frame)) = tokio::time::timeout(quiet, self.ws.next()).await {
            if let Ok(Message::Text(text)) = frame {
                messages.push(serde_json::from_str(&text).expect("a server message"));
            }
        }
        messages
    }

    /// Everything that arrives up to and including the first message `last` accepts. Unlike
    /// `collect`, it does not depend on a quiet spell, which a loaded machine can break.
    pub async fn collect_until(
        &mut self,
        mut last: impl FnMut(&ServerMsg) -> bool,
    ) -> Vec<ServerMsg> {
        let mut messages = Vec::new();
        let wait = async {
            loop {
                let msg = self.recv().await;
                let done = last(&msg);
                messages.push(msg);
                if done {
                    return;
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the closing message in time");
        messages
    }

    /// Reads and discards whatever arrives until nothing has for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while let Ok(Some(frame)) = tokio::time::timeout(quiet, self.ws.next()).await {
            frame.expect("readable frame");
        }
    }

    /// Reads until the server closes the connection.
    pub async fn ending(&mut self) -> Ending {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the connection ends in time");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ending::Closed(u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => {
                    return Ending::Closed(u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ending::Dropped,
            }
        }
    }

    /// Drops the TCP connection without a WebSocket close frame, as a lost network would.
    pub fn vanish(self) {
        drop(self.ws);
    }

    /// Joins with a resume token and the newest message id already seen.
    pub async fn rejoin(
        &mut self,
        room: &str,
        name: &str,
        token: Option<String>,
        last_seen: Option<room::protocol::MessageId>,
    ) -> ServerMsg {
        self.send(&resuming_join_msg(room, name, token, last_seen))
            .await;
        self.recv_until(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Error { .. }))
            .await
    }

    pub async fn hello(&mut self) {
        self.send(&ClientMsg::Hello {
            version: PROTOCOL_VERSION,
        })
        .await;
        match self.recv().await {
            ServerMsg::Hello { version, .. } => assert_eq!(version, PROTOCOL_VERSION),
            other => panic!("expected hello, got {other:?}"),
        }
    }

    pub async fn join(&mut self, room: &str, name: &str) -> Joined {
        self.join_with(join_msg(room, name)).await
    }

    /// Sends this `join` and reads the `joined` that answers it.
    pub async fn join_with(&mut self, join: ClientMsg) -> Joined {
        self.send(&join).await;
        match self.recv().await {
            ServerMsg::Joined {
                you,
                peers,
                history,
                more_history,
                resume_token,
                host_key,
                ..
            } => Joined {
                you,
                peers,
                history,
                more_history,
                resume_token,
                host_key,
            },
            other => panic!("expected joined, got {other:?}"),
        }
    }

    pub async fn chat(&mut self, text: &str) {
        self.send(&ClientMsg::Chat { text: text.into() }).await;
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A `redis-server` of a test's own on a free loopback port, without persistence; killed
/// when dropped. Debian's `redis-server` package provides it (scripts/setup.sh installs it).
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = RedisServer { port, child: None };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port after `kill` (with none of its data).
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect(
                "redis-server runs (Debian package redis-server; scripts/setup.sh installs it)",
            );
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
