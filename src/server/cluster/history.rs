//! Chat history in Redis (`--redis-url`): a stream per room, so whichever node runs a room
//! next, or takes it over from a node that died, starts from the same history and numbering.
//! Beside it, the room's saved state ([`SavedRoom`]: members, roles, rules), so its members
//! resume as themselves there.
//!
//! Each message is the stream entry `<message id>-0` holding the entry as JSON: Redis refuses
//! an id not above the last one, so two nodes that both believe they run a room cannot
//! interleave its history unnoticed. The room's last id is kept apart from the capped stream.

use prometheus_client::metrics::counter::Counter;
use tokio_util::sync::CancellationToken;

use crate::core::room::SavedRoom;

use crate::core::HistoryRange;
use crate::protocol::{ChatEntry, MessageId};

use super::resp::{Redis, RedisError, Reply};
use crate::server::store::{ReadError, Retention, StoredHistory};

/// Appends one message: capped like `--history-keep` (0 keeps all), the room's last id
/// recorded, and the stream given up after `--history-max-age-days` of silence.
const APPEND_SCRIPT: &str = "\
    if ARGV[1] == '0' then redis.call('XADD', KEYS[1], ARGV[2], 'e', ARGV[3]) \
    else redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], ARGV[2], 'e', ARGV[3]) end \
    redis.call('SET', KEYS[2], ARGV[4]) \
    if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end \
    return 1";

/// How long a room waits for Redis to take a message before delivering it anyway.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Rooms' chat history in Redis; cheap to clone.
#[derive(Clone)]
pub struct SharedHistory {
    redis: Redis,
    retention: Retention,
    /// Messages delivered but not stored (Redis refused or was unreachable).
    pub unstored: Counter,
    /// Cancelled when the node begins to shut down: its rooms' saved state is then left for
    /// the next node as it is, not emptied by the members leaving here.
    shutdown: CancellationToken,
}

/// A room's saved state outlives a crash this long at most (a room nobody reopens).
const SAVED_TTL_MS: &str = "86400000";

fn saved_key(room: &str) -> String {
    format!("room:saved:{room}")
}

fn stream_key(room: &str) -> String {
    format!("room:chat:{room}")
}

fn last_key(room: &str) -> String {
    format!("room:chat-last:{room}")
}

impl SharedHistory {
    pub fn new(
        redis: Redis,
        retention: Retention,
        unstored: Counter,
        shutdown: CancellationToken,
    ) -> Self {
        SharedHistory {
            redis,
            retention,
            unstored,
            shutdown,
        }
    }

    /// The state another node saved for `room`, if it ran it and did not close it.
    pub async fn load_saved(&self, room: &str) -> Result<Option<SavedRoom>, ReadError> {
        let reply = self
            .redis
            .query(&[b"GET", saved_key(room).as_bytes()])
            .await
            .map_err(|error| ReadError::new(error.to_string()))?;
        match reply.bytes() {
            None => Ok(None),
            Some(json) => match serde_json::from_slice(json) {
                Ok(saved) => Ok(Some(saved)),
                Err(error) => {
                    // Another version's format, say: the room starts afresh rather than not.
                    tracing::warn!(room, %error, "ignoring a room's unreadable saved state");
                    Ok(None)
                }
            },
        }
    }

    /// Saves `room`'s state, in order with its other writes, without waiting.
    pub async fn save(&self, room: &str, saved: &SavedRoom) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let Ok(json) = serde_json::to_vec(saved) else {
            return;
        };
        let key = saved_key(room);
        let args: [&[u8]; 5] = [
            b"SET",
            key.as_bytes(),
            &json,
            b"PX",
            SAVED_TTL_MS.as_bytes(),
        ];
        if let Err(error) = self.redis.send(&args).await {
            tracing::debug!(room, %error, "could not save a room's state");
        }
    }

    /// The room closed with nobody in it: nothing to carry over.
    pub async fn forget(&self, room: &str) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let _ = self.redis.send(&[b"DEL", saved_key(room).as_bytes()]).await;
    }

    /// Stores `entries` in order, each acknowledged by Redis before the next is sent; the
    /// room delivers them only afterwards. A message Redis does not take is still delivered
    /// (the meeting goes on while Redis is away), counted and logged.
    pub async fn append(&self, room: &str, entries: &[ChatEntry]) {
        let keys = (stream_key(room), last_key(room));
        let keep = self.retention.per_room.to_string();
        let max_age_ms = self
            .retention
            .max_age_days
            .saturating_mul(86_400_000)
            .to_string();
        for entry in entries {
            let json = match serde_json::to_string(entry) {
                Ok(json) => json,
                Err(error) => {
                    tracing::error!(%error, "a chat entry did not encode");
                    continue;
                }
            };
            let id = entry.id.0.to_string();
            let stream_id = format!("{id}-0");
            let args: [&[u8]; 10] = [
                b"EVAL",
                APPEND_SCRIPT.as_bytes(),
                b"2",
                keys.0.as_bytes(),
                keys.1.as_bytes(),
                keep.as_bytes(),
                stream_id.as_bytes(),
                json.as_bytes(),
                id.as_bytes(),
                max_age_ms.as_bytes(),
            ];
            let write = self.redis.query(&args);
            // A Redis that hangs must not hang the room: past this, the message goes out
            // unstored.
            let stored = tokio::time::timeout(WRITE_TIMEOUT, write)
                .await
                .unwrap_or_else(|_| Err(RedisError::Unavailable("no answer in time".into())));
            if let Err(error) = stored {
                if self.unstored.inc() == 0 {
                    tracing::warn!(room, %error, "chat is delivered but not stored while Redis is unavailable");
                } else {
                    tracing::debug!(room, %error, "a chat message was not stored");
                }
            }
        }
    }

    /// The newest `limit` messages of `room` and its last id.
    pub async fn recent(&self, room: &str, limit: usize) -> Result<StoredHistory, ReadError> {
        let read = async {
            let count = limit.to_string();
            let newest = self
                .redis
                .query(&[
                    b"XREVRANGE",
                    stream_key(room).as_bytes(),
                    b"+",
                    b"-",
                    b"COUNT",
                    count.as_bytes(),
                ])
                .await?;
            let mut entries = entries_of(newest)?;
            entries.reverse();
            let last = self
                .redis
                .query(&[b"GET", last_key(room).as_bytes()])
                .await?;
            let last_id = match last {
                Reply::Nil => None,
                reply => Some(MessageId(
                    reply
                        .text()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| RedisError::Unexpected(format!("last id {reply:?}")))?,
                )),
            };
            // The stream may hold a newer id than the key if a write was cut in between.
            let newest_entry = entries.last().map(|e| e.id);
            Ok::<_, RedisError>(StoredHistory {
                last_id: last_id.max(newest_entry),
                entries,
            })
        };
        read.await
            .map_err(|error| ReadError::new(error.to_string()))
    }

    /// The messages of `room` in `range`, oldest first, at most `range.limit` and about
    /// `range.max_bytes`.
    pub async fn between(&self, room: &str, range: HistoryRange) -> Vec<ChatEntry> {
        let end = match range.before {
            Some(before) => format!("({}-0", before.0),
            None => "+".to_string(),
        };
        let start = format!("({}-0", range.after.0);
        let count = range.limit.to_string();
        let read = self
            .redis
            .query(&[
                b"XREVRANGE",
                stream_key(room).as_bytes(),
                end.as_bytes(),
                start.as_bytes(),
                b"COUNT",
                count.as_bytes(),
            ])
            .await
            .and_then(entries_of);
        let newest_first = match read {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(room, %error, "cannot read chat history from Redis");
                return Vec::new();
            }
        };
        let mut bytes = 0;
        let mut entries: Vec<ChatEntry> = newest_first
            .into_iter()
            .take_while(|entry| {
                let within = bytes <= range.max_bytes;
                bytes += entry.text.len() + entry.name.len();
                within
            })
            .collect();
        entries.reverse();
        entries
    }
}

/// The entries of an `XRANGE`/`XREVRANGE` reply, in the reply's order.
fn entries_of(reply: Reply) -> Result<Vec<ChatEntry>, RedisError> {
    let unexpected = |what: &str| RedisError::Unexpected(format!("a stream entry: {what}"));
    let Reply::Array(items) = reply else {
        return Err(unexpected("not an array"));
    };
    items
        .into_iter()
        .map(|item| {
            let Reply::Array(parts) = item else {
                return Err(unexpected("not an [id, fields] pair"));
            };
            let Some(Reply::Array(fields)) = parts.get(1) else {
                return Err(unexpected("no fields"));
            };
            let json = fields
                .get(1)
                .and_then(Reply::bytes)
                .ok_or_else(|| unexpected("no entry field"))?;
            serde_json::from_slice(json).map_err(|e| unexpected(&e.to_string()))
        })
        .collect()
}
