//! A deliberately minimal fan-out server speaking just enough of Room's protocol for the load
//! generator (hello, join, chat broadcast, join notices): no validation, limits or history.
//! It exists to measure the load generator itself: whatever rate the tool reaches against this
//! server is an upper bound on what it can measure, so Room's figures below it are Room's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use room::core::room::RoomLimits;
use room::protocol::{
    ChatEntry, ClientMsg, MediaState, MessageId, PeerId, PeerInfo, ServerMsg, UnixMillis,
    PROTOCOL_VERSION,
};

type Members = Vec<(PeerId, mpsc::UnboundedSender<Utf8Bytes>)>;

#[derive(Default)]
struct State {
    rooms: Mutex<HashMap<String, Members>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&state)));
    }
}

/// Binds `addr` and serves; refuses anything but loopback.
pub async fn serve_on(addr: SocketAddr) -> std::io::Result<()> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::other(
            "the reference server only binds loopback",
        ));
    }
    serve(TcpListener::bind(addr).await?).await
}

fn broadcast(members: &Members, frame: &Utf8Bytes) {
    for (_, tx) in members {
        let _ = tx.send(frame.clone());
    }
}

async fn connection(stream: TcpStream, state: Arc<State>) {
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let Ok(socket) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let id = PeerId(
        state
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    );
    let mut room: Option<String> = None;
    let mut next_message = 0u64;
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(msg) = serde_json::from_str::<ClientMsg>(&text) else {
            continue;
        };
        match msg {
            ClientMsg::Hello { .. } => {
                let hello = ServerMsg::Hello {
                    version: PROTOCOL_VERSION,
                    limits: RoomLimits::DEFAULT_ADVERTISED,
                };
                let _ = tx.send(hello.to_json().into());
            }
            ClientMsg::Join {
                room: name,
                name: display,
                ..
            } => {
                let me = PeerInfo {
                    id,
                    name: display.clone(),
                    in_call: false,
                    media: MediaState::default(),
                    away: false,
                    hand: None,
                    role: Default::default(),
                    breakout: None,
                    recording: false,
                };
                let joined = ServerMsg::Joined {
                    you: id,
                    room: name.clone(),
                    name: display,
                    peers: Vec::new(),
                    history: Vec::new(),
                    more_history: false,
                    resumed: false,
                    resume_token: String::new(),
                    host_key: None,
                    rules: Default::default(),
                    waiting: Vec::new(),
                    removed: Vec::new(),
                    breakout: None,
                    breakouts: None,
                };
                let _ = tx.send(joined.to_json().into());
                let notice: Utf8Bytes = ServerMsg::PeersJoined { peers: vec![me] }.to_json().into();
                let mut rooms = state.rooms.lock().unwrap_or_else(|e| e.into_inner());
                let members = rooms.entry(name.clone()).or_default();
                broadcast(members, &notice);
                members.push((id, tx.clone()));
                room = Some(name);
            }
            ClientMsg::Chat { text } => {
                let Some(name) = &room else { continue };
                next_message += 1;
                let frame: Utf8Bytes = ServerMsg::Chat {
                    entry: ChatEntry {
                        id: MessageId(next_message),
                        from: id,
                        name: String::new(),
                        at: UnixMillis(0),
                        text,
                    },
                }
                .to_json()
                .into();
                let rooms = state.rooms.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(members) = rooms.get(name) {
                    broadcast(members, &frame);
                }
            }
            _ => {}
        }
    }
    if let Some(name) = room {
        let mut rooms = state.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(&name) {
            members.retain(|(member, _)| *member != id);
        }
    }
    writer.abort();
}
