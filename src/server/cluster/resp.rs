//! A small Redis client: the RESP2 wire format, one pipelined command connection that
//! reconnects by itself, and a subscriber connection for one pub/sub channel.
//!
//! Room needs a handful of commands (`SET`, `EVAL`, `PUBLISH`, streams) and no pooling, so a
//! client of its own is smaller to build than a general one and keeps the dependency list short.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A reply is refused as malformed beyond these bounds, so a confused or hostile server
/// cannot make the node allocate without limit.
const MAX_BULK_BYTES: usize = 64 * 1024 * 1024;
const MAX_ARRAY_LEN: usize = 1 << 20;
const MAX_DEPTH: usize = 8;

/// Requests queued for the command connection at most; publishers wait beyond it.
pub const COMMAND_QUEUE: usize = 4096;

/// How long connecting (and the `AUTH`/`SELECT` that follow) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Waits between reconnection attempts grow from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text, for bulk and simple strings.
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Simple(text) => Some(text),
            Reply::Bulk(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Simple(text) => Some(text.as_bytes()),
            Reply::Bulk(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Why a command got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisError {
    /// No connection to Redis right now (it is down, or restarting); the client retries.
    Unavailable(String),
    /// Redis answered with an error (a bug in the command, or `OOM`, `READONLY`, …).
    Refused(String),
    /// The reply was not the shape the command promises.
    Unexpected(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Unavailable(why) => write!(f, "Redis is unavailable: {why}"),
            RedisError::Refused(why) => write!(f, "Redis refused a command: {why}"),
            RedisError::Unexpected(why) => write!(f, "unexpected reply from Redis: {why}"),
        }
    }
}

impl std::error::Error for RedisError {}

/// A command's arguments, encoded as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let length: usize = args.iter().map(|a| a.len() + 16).sum();
    let mut out = Vec::with_capacity(length + 16);
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply from the front of `buf`: `Ok(None)` when it is not complete yet, else the
/// reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("replies nested too deep".into());
    }
    let Some((line, after)) = line_at(buf, at) else {
        return Ok(None);
    };
    let Some((&tag, rest)) = line.split_first() else {
        return Err("an empty reply line".into());
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    let number = || -> Result<i64, String> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("not a number: {:?}", text()))
    };
    match tag {
        b'+' => Ok(Some((Reply::Simple(text()), after))),
        b'-' => Ok(Some((Reply::Error(text()), after))),
        b':' => Ok(Some((Reply::Integer(number()?), after))),
        b'$' => {
            let length = number()?;
            if length < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let length = usize::try_from(length).map_err(|_| "bad length")?;
            if length > MAX_BULK_BYTES {
                return Err(format!("a bulk reply of {length} bytes"));
            }
            let end = after + length;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("a bulk reply without its CRLF".into());
            }
            Ok(Some((Reply::Bulk(buf[after..end].to_vec()), end + 2)))
        }
        b'*' => {
            let length = number()?;
            if length < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let length = usize::try_from(length).map_err(|_| "bad length")?;
            if length > MAX_ARRAY_LEN {
                return Err(format!("an array reply of {length} items"));
            }
            let mut items = Vec::with_capacity(length.min(1024));
            let mut at = after;
            for _ in 0..length {
                match parse_at(buf, at, depth + 1)? {
                    Some((item, next)) => {
                        items.push(item);
                        at = next;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(items), at)))
        }
        other => Err(format!("an unknown reply type {:?}", other as char)),
    }
}

/// The line starting at `at` without its CRLF, and where the next one starts.
fn line_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

/// Where Redis is: `redis://[:password@]host:port[/db]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrl {
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
    pub username: Option<String>,
    pub db: u32,
}

impl std::str::FromStr for RedisUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or("a Redis URL starts with redis:// (rediss:// is not supported)")?;
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (address, db) = match rest.split_once('/') {
            Some((address, "")) => (address, 0),
            Some((address, db)) => (
                address,
                db.parse()
                    .map_err(|_| format!("the database in {url:?} is not a number"))?,
            ),
            None => (rest, 0),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse()
                    .map_err(|_| format!("the port in {url:?} is not a number"))?,
            ),
            _ => (address, 6379),
        };
        if host.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => match credentials.split_once(':') {
                Some(("", password)) => (None, Some(password.to_string())),
                Some((user, password)) => (Some(user.to_string()), Some(password.to_string())),
                None => (None, Some(credentials.to_string())),
            },
        };
        Ok(RedisUrl {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            password,
            username,
            db,
        })
    }
}

impl fmt::Display for RedisUrl {
    /// Without the password, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
    }
}

/// Opens a connection and makes it ready for commands: `AUTH` and `SELECT` when the URL asks.
async fn connect(url: &RedisUrl) -> Result<(TcpStream, BytesMut), RedisError> {
    let ready = async {
        let mut stream = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut setup = Vec::new();
        if let Some(password) = &url.password {
            setup.push(match &url.username {
                Some(user) => encode(&[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => encode(&[b"AUTH", password.as_bytes()]),
            });
        }
        if url.db != 0 {
            setup.push(encode(&[b"SELECT", url.db.to_string().as_bytes()]));
        }
        for command in setup {
            stream
                .write_all(&command)
                .await
                .map_err(|e| RedisError::Unavailable(e.to_string()))?;
            match read_reply(&mut stream, &mut buf).await? {
                Reply::Error(error) => return Err(RedisError::Refused(error)),
                _ => continue,
            }
        }
        Ok((stream, buf))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, ready)
        .await
        .map_err(|_| RedisError::Unavailable("connecting timed out".into()))?
}

/// Reads until one whole reply is in `buf`, and takes it out.
async fn read_reply(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Reply, RedisError> {
    loop {
        if let Some((reply, used)) = parse(buf).map_err(RedisError::Unexpected)? {
            buf.advance(used);
            return Ok(reply);
        }
        let read = stream
            .read_buf(buf)
            .await
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        if read == 0 {
            return Err(RedisError::Unavailable(
                "Redis closed the connection".into(),
            ));
        }
    }
}

/// One command for the connection task; `reply` is `None` for fire-and-forget commands
/// (publishes), whose answers are read and dropped.
struct Request {
    command: Vec<u8>,
    reply: Option<oneshot::Sender<Result<Reply, RedisError>>>,
}

impl Request {
    /// A `PUBLISH` whose answer (the number of listeners) nobody needs.
    fn publish(channel: &[u8], payload: &[u8]) -> Request {
        Request {
            command: encode(&[b"PUBLISH", channel, payload]),
            reply: None,
        }
    }
}

/// A handle to the command connection; cheap to clone. Commands are pipelined in the order
/// they are sent, which is what keeps one room's relayed messages in order.
#[derive(Clone)]
pub struct Redis {
    requests: mpsc::Sender<Request>,
    up: tokio::sync::watch::Receiver<bool>,
}

impl Redis {
    /// Starts the connection task; it connects, and reconnects whenever the connection
    /// breaks, until `stop`.
    pub fn start(url: RedisUrl, stop: CancellationToken) -> Redis {
        let (requests, inbox) = mpsc::channel(COMMAND_QUEUE);
        let (up_tx, up) = tokio::sync::watch::channel(false);
        tokio::spawn(command_loop(url, inbox, up_tx, stop));
        Redis { requests, up }
    }

    /// Whether the connection is up right now.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Sends a command and waits for its reply; a Redis error reply is an `Err`.
    pub async fn query(&self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        if !self.is_up() {
            return Err(RedisError::Unavailable("not connected".into()));
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            command: encode(args),
            reply: Some(reply),
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| RedisError::Unavailable("the client stopped".into()))?;
        match answer.await {
            Ok(Ok(Reply::Error(error))) => Err(RedisError::Refused(error)),
            Ok(result) => result,
            Err(_) => Err(RedisError::Unavailable("the connection broke".into())),
        }
    }

    /// Queues a command whose reply nobody waits for, in order with every other command.
    /// Waits while the queue is full; fails only when Redis is down.
    pub async fn send(&self, args: &[&[u8]]) -> Result<(), RedisError> {
        if !self.is_up() {
            return Err(RedisError::Unavailable("not connected".into()));
        }
        self.requests
            .send(Request {
                command: encode(args),
                reply: None,
            })
            .await
            .map_err(|_| RedisError::Unavailable("the client stopped".into()))
    }

    /// A sender of `PUBLISH`es for a `Sink`: it waits for room in the queue by polling.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            sender: tokio_util::sync::PollSender::new(self.requests.clone()),
        }
    }

    /// Queues a `PUBLISH` without waiting; `false` when the queue is full.
    pub fn try_publish(&self, channel: &[u8], payload: &[u8]) -> bool {
        self.requests
            .try_send(Request::publish(channel, payload))
            .is_ok()
    }

    /// Waits until the connection is up (for start-up and tests).
    pub async fn wait_up(&self, within: Duration) -> bool {
        let mut up = self.up.clone();
        tokio::time::timeout(within, up.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Publishes in order with every other command of its [`Redis`], for code that polls.
pub struct Publisher {
    sender: tokio_util::sync::PollSender<Request>,
}

impl Publisher {
    /// Ready when a `PUBLISH` can be queued.
    pub fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), RedisError>> {
        self.sender
            .poll_reserve(cx)
            .map_err(|_| RedisError::Unavailable("the client stopped".into()))
    }

    /// Queues a `PUBLISH`; call after `poll_ready` said ready.
    pub fn publish(&mut self, channel: &[u8], payload: &[u8]) -> Result<(), RedisError> {
        self.sender
            .send_item(Request::publish(channel, payload))
            .map_err(|_| RedisError::Unavailable("the client stopped".into()))
    }
}

async fn command_loop(
    url: RedisUrl,
    mut inbox: mpsc::Receiver<Request>,
    up: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut wait = RECONNECT_FIRST;
    loop {
        let connected = tokio::select! {
            connected = connect(&url) => connected,
            () = stop.cancelled() => return,
        };
        match connected {
            Ok((stream, buf)) => {
                wait = RECONNECT_FIRST;
                tracing::info!(redis = %url, "connected to Redis");
                up.send_replace(true);
                let why = serve_commands(stream, buf, &mut inbox, &stop).await;
                up.send_replace(false);
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(redis = %url, error = %why, "lost the connection to Redis; reconnecting");
            }
            Err(error) => {
                tracing::debug!(redis = %url, %error, "cannot reach Redis");
            }
        }
        // Whatever was queued while the connection broke fails now rather than waiting.
        while let Ok(request) = inbox.try_recv() {
            if let Some(reply) = request.reply {
                let _ = reply.send(Err(RedisError::Unavailable("not connected".into())));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Pipelines requests onto one connection until it breaks: writes whatever is queued, then
/// flushes once; matches replies to requests in order.
async fn serve_commands(
    stream: TcpStream,
    mut buf: BytesMut,
    inbox: &mut mpsc::Receiver<Request>,
    stop: &CancellationToken,
) -> RedisError {
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let mut pending: VecDeque<Option<oneshot::Sender<Result<Reply, RedisError>>>> = VecDeque::new();
    let broke = |why: String| RedisError::Unavailable(why);
    let error = loop {
        tokio::select! {
            request = inbox.recv() => {
                let Some(request) = request else {
                    break broke("the client stopped".into());
                };
                let mut next = Some(request);
                let mut written = Ok(());
                while let Some(request) = next.take() {
                    pending.push_back(request.reply);
                    written = writer.write_all(&request.command).await;
                    if written.is_err() || pending.len() > COMMAND_QUEUE {
                        break;
                    }
                    next = inbox.try_recv().ok();
                }
                if let Err(error) = written.and(writer.flush().await) {
                    break broke(error.to_string());
                }
            }
            read = reader.read_buf(&mut buf) => {
                match read {
                    Ok(0) => break broke("Redis closed the connection".into()),
                    Err(error) => break broke(error.to_string()),
                    Ok(_) => {}
                }
                loop {
                    match parse(&buf) {
                        Ok(Some((reply, used))) => {
                            buf.advance(used);
                            match pending.pop_front() {
                                Some(Some(waiter)) => {
                                    let _ = waiter.send(Ok(reply));
                                }
                                Some(None) => {
                                    if let Reply::Error(error) = reply {
                                        tracing::warn!(%error, "Redis refused a queued command");
                                    }
                                }
                                None => {
                                    return RedisError::Unexpected("a reply nobody asked for".into());
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(error) => return RedisError::Unexpected(error),
                    }
                }
            }
            () = stop.cancelled() => break broke("stopping".into()),
        }
    };
    for waiter in pending.into_iter().flatten() {
        let _ = waiter.send(Err(error.clone()));
    }
    error
}

/// Listens on one pub/sub channel and hands each message's payload to `deliver`, in order,
/// reconnecting (and resubscribing) whenever the connection breaks, until `stop`. `up`
/// tells whether it is subscribed right now.
pub fn subscribe(
    url: RedisUrl,
    channel: String,
    mut deliver: impl FnMut(Vec<u8>) + Send + 'static,
    up: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut wait = RECONNECT_FIRST;
        loop {
            let connected = tokio::select! {
                connected = connect(&url) => connected,
                () = stop.cancelled() => return,
            };
            if let Ok((mut stream, mut buf)) = connected {
                let listened = async {
                    let command = encode(&[b"SUBSCRIBE", channel.as_bytes()]);
                    stream
                        .write_all(&command)
                        .await
                        .map_err(|e| RedisError::Unavailable(e.to_string()))?;
                    loop {
                        let reply = read_reply(&mut stream, &mut buf).await?;
                        let Reply::Array(mut parts) = reply else {
                            return Err(RedisError::Unexpected(format!("{reply:?}")));
                        };
                        match parts.as_mut_slice() {
                            [kind, _, Reply::Bulk(payload)] if kind.bytes() == Some(b"message") => {
                                deliver(std::mem::take(payload));
                            }
                            [kind, ..] if kind.bytes() == Some(b"subscribe") => {
                                wait = RECONNECT_FIRST;
                                up.send_replace(true);
                            }
                            _ => {}
                        }
                    }
                };
                let error: RedisError = tokio::select! {
                    result = listened => match result {
                        Err(error) => error,
                        Ok(never) => never,
                    },
                    () = stop.cancelled() => return,
                };
                up.send_replace(false);
                tracing::warn!(redis = %url, %error, "lost the Redis subscription; reconnecting");
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_type_parses_and_partial_input_waits() {
        let input = b"*5\r\n+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n";
        let (reply, used) = parse(input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Simple("OK".into()),
                Reply::Error("ERR no".into()),
                Reply::Integer(42),
                Reply::Bulk(b"abc".to_vec()),
                Reply::Nil,
            ])
        );
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn binary_payloads_keep_their_bytes() {
        let payload = b"a\r\nb\0c";
        let mut input = format!("${}\r\n", payload.len()).into_bytes();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&input).unwrap().unwrap().0,
            Reply::Bulk(payload.to_vec())
        );
        let command = encode(&[b"PUBLISH", b"ch", payload]);
        assert_eq!(
            command,
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$6\r\na\r\nb\0c\r\n".to_vec()
        );
    }

    #[test]
    fn malformed_or_oversized_replies_are_errors_not_allocations() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":12x\r\n").is_err());
        assert!(parse(b"$999999999999\r\n").is_err());
        assert!(parse(b"*99999999999\r\n").is_err());
        assert!(parse(b"$3\r\nabcde").is_err());
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn urls_give_host_port_password_and_database() {
        let url: RedisUrl = "redis://127.0.0.1:6380".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.db),
            ("127.0.0.1", 6380, 0)
        );
        let url: RedisUrl = "redis://:s3cret@cache.internal/2".parse().unwrap();
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        assert_eq!(
            (url.host.as_str(), url.port, url.db),
            ("cache.internal", 6379, 2)
        );
        let url: RedisUrl = "redis://room:pw@[::1]:7000".parse().unwrap();
        assert_eq!(url.username.as_deref(), Some("room"));
        assert_eq!((url.host.as_str(), url.port), ("::1", 7000));
        assert!("http://x".parse::<RedisUrl>().is_err());
        assert!("redis://:6379".parse::<RedisUrl>().is_err());
        assert!(!url.to_string().contains("pw"));
    }
}
