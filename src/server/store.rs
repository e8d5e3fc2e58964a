//! Durable chat: an embedded SQLite file under `--data-dir`, owned by one writer thread.
//!
//! Fan-out never waits for the disk. Room tasks hand each message to the writer's bounded
//! queue without blocking; the writer commits whatever has queued up in one transaction,
//! at the latest `COMMIT_WINDOW` after the first message of a batch. The promise is therefore:
//! a message is delivered first and is durable within ~20 ms (WAL, `synchronous = NORMAL`:
//! safe against the server crashing or being killed; a power loss can lose the last
//! transactions). Reads (a room's history when it starts, replays for reconnecting clients)
//! go through the same queue, so they always see every write queued before them.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::protocol::{ChatEntry, MessageId, PeerId, UnixMillis};

use super::error::StartError;

/// Migrations in order; `PRAGMA user_version` records how many were applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_messages.sql")];

/// How long the writer waits for more messages before committing a batch.
const COMMIT_WINDOW: Duration = Duration::from_millis(20);
/// Messages committed in one transaction at most.
const MAX_BATCH: usize = 1024;
/// Requests queued for the writer; beyond this, new messages are delivered but not stored.
const QUEUE: usize = 65_536;
/// How often old messages are pruned.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// How much history to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Messages kept per room (the newest); 0 keeps all.
    pub per_room: u64,
    /// Messages older than this many days are removed; 0 keeps them.
    pub max_age_days: u64,
}

/// A room's stored history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredHistory {
    /// Oldest first.
    pub entries: Vec<ChatEntry>,
    /// The last id the room handed out, even if that message was pruned.
    pub last_id: Option<MessageId>,
}

enum Request {
    Append {
        room: String,
        entry: ChatEntry,
    },
    Recent {
        room: String,
        limit: usize,
        reply: oneshot::Sender<StoredHistory>,
    },
    Between {
        room: String,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        max_bytes: usize,
        reply: oneshot::Sender<Vec<ChatEntry>>,
    },
    Sync {
        reply: oneshot::Sender<()>,
    },
    RunRetention {
        now: UnixMillis,
        reply: oneshot::Sender<()>,
    },
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct ChatStore {
    requests: SyncSender<Request>,
}

impl ChatStore {
    /// Opens (creating if needed) `data_dir/room.sqlite3`, migrates it and starts the writer.
    pub fn open(data_dir: &Path, retention: Retention) -> Result<ChatStore, StartError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::CreateDataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("room.sqlite3");
        let connection =
            open_connection(&path).map_err(|source| StartError::OpenStore { path, source })?;
        let (requests, inbox) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("room-store".into())
            .spawn(move || Writer::new(connection, retention).run(inbox))
            .map_err(StartError::StoreThread)?;
        Ok(ChatStore { requests })
    }

    /// Queues a message for storage without waiting. Returns false when the queue is full
    /// (the disk cannot keep up): the message was delivered but will not be stored.
    pub fn append(&self, room: &str, entry: ChatEntry) -> bool {
        match self.requests.try_send(Request::Append {
            room: room.to_string(),
            entry,
        }) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(room, "chat store queue full; a message was not stored");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// The newest `limit` messages of `room` and its last id.
    pub async fn recent(&self, room: &str, limit: usize) -> StoredHistory {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Recent {
            room: room.to_string(),
            limit,
            reply,
        })
        .await;
        answer.await.unwrap_or_default()
    }

    /// The newest messages of `room` with `after < id < before` (no upper bound when `before`
    /// is `None`), oldest first: at most `limit`, and no more than it takes for their text to
    /// pass `max_bytes` (so a read for a budgeted replay holds little more than the budget).
    pub async fn between(
        &self,
        room: &str,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        max_bytes: usize,
    ) -> Vec<ChatEntry> {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Between {
            room: room.to_string(),
            after,
            before,
            limit,
            max_bytes,
            reply,
        })
        .await;
        answer.await.unwrap_or_default()
    }

    /// Waits until everything queued so far is committed.
    pub async fn sync(&self) {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Sync { reply }).await;
        let _ = answer.await;
    }

    /// Prunes by the retention settings now, as if `now` were the time.
    pub async fn run_retention(&self, now: UnixMillis) {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::RunRetention { now, reply }).await;
        let _ = answer.await;
    }

    /// Queues a read. Reads are rare, so when the queue is full they may wait for space, on a
    /// blocking thread rather than the caller's.
    async fn ask(&self, request: Request) {
        if let Err(TrySendError::Full(request)) = self.requests.try_send(request) {
            let requests = self.requests.clone();
            let _ = tokio::task::spawn_blocking(move || requests.send(request)).await;
        }
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let mut connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// Applies the migrations not yet recorded in `user_version`, each in its own transaction.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let applied: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", (index + 1) as i64)?;
        transaction.commit()?;
        tracing::info!(migration = index + 1, "applied a storage migration");
    }
    Ok(())
}

struct Writer {
    connection: Connection,
    retention: Retention,
    pending: Vec<(String, ChatEntry)>,
    last_retention: Instant,
}

impl Writer {
    fn new(connection: Connection, retention: Retention) -> Self {
        Writer {
            connection,
            retention,
            pending: Vec::new(),
            last_retention: Instant::now(),
        }
    }

    fn run(mut self, inbox: mpsc::Receiver<Request>) {
        loop {
            let request = if self.pending.is_empty() {
                match inbox.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                }
            } else {
                match inbox.recv_timeout(COMMIT_WINDOW) {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout) => {
                        self.commit();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            match request {
                Request::Append { room, entry } => {
                    self.pending.push((room, entry));
                    if self.pending.len() >= MAX_BATCH {
                        self.commit();
                    }
                }
                other => {
                    // Everything queued before a read is visible to it.
                    self.commit();
                    self.answer(other);
                }
            }
            if self.last_retention.elapsed() >= RETENTION_EVERY {
                self.commit();
                self.prune(crate::server::unix_now());
            }
        }
        self.commit();
    }

    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        if let Err(error) = self.insert(&batch) {
            tracing::error!(%error, messages = batch.len(), "storing chat messages failed");
        }
    }

    fn insert(&mut self, batch: &[(String, ChatEntry)]) -> rusqlite::Result<()> {
        let transaction = self.connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT OR REPLACE INTO messages (room, id, sender, name, at, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut last = transaction.prepare_cached(
                "INSERT INTO rooms (room, last_id) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
            )?;
            for (room, entry) in batch {
                insert.execute(params![
                    room,
                    entry.id.0 as i64,
                    entry.from.0 as i64,
                    entry.name,
                    entry.at.0 as i64,
                    entry.text
                ])?;
                last.execute(params![room, entry.id.0 as i64])?;
            }
        }
        transaction.commit()
    }

    fn answer(&mut self, request: Request) {
        match request {
            Request::Recent { room, limit, reply } => {
                let history = self.recent(&room, limit).unwrap_or_else(|error| {
                    tracing::error!(%error, room, "reading chat history failed");
                    StoredHistory::default()
                });
                let _ = reply.send(history);
            }
            Request::Between {
                room,
                after,
                before,
                limit,
                max_bytes,
                reply,
            } => {
                let read = self.between(&room, after, before, limit, max_bytes);
                let entries = read.unwrap_or_else(|error| {
                    tracing::error!(%error, room, "reading chat history failed");
                    Vec::new()
                });
                let _ = reply.send(entries);
            }
            Request::Sync { reply } => {
                let _ = reply.send(());
            }
            Request::RunRetention { now, reply } => {
                self.prune(now);
                let _ = reply.send(());
            }
            Request::Append { .. } => unreachable!("appends are batched, not answered"),
        }
    }

    fn recent(&self, room: &str, limit: usize) -> rusqlite::Result<StoredHistory> {
        let mut select = self.connection.prepare_cached(
            "SELECT id, sender, name, at, text FROM messages WHERE room = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let mut entries = select
            .query_map(params![room, limit as i64], entry_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        entries.reverse();
        let last_id: Option<i64> = self
            .connection
            .prepare_cached("SELECT last_id FROM rooms WHERE room = ?1")?
            .query_row(params![room], |row| row.get(0))
            .optional()?;
        Ok(StoredHistory {
            entries,
            last_id: last_id.map(|id| MessageId(id as u64)),
        })
    }

    fn between(
        &self,
        room: &str,
        after: MessageId,
        before: Option<MessageId>,
        limit: usize,
        max_bytes: usize,
    ) -> rusqlite::Result<Vec<ChatEntry>> {
        let mut select = self.connection.prepare_cached(
            "SELECT id, sender, name, at, text FROM messages WHERE room = ?1 AND id > ?2
             AND id < ?3 ORDER BY id DESC LIMIT ?4",
        )?;
        let before = before.map_or(i64::MAX, |id| id.0.min(i64::MAX as u64) as i64);
        let after = after.0.min(i64::MAX as u64) as i64;
        let mut entries = Vec::new();
        let mut bytes = 0;
        for entry in select.query_map(params![room, after, before, limit as i64], entry_from_row)? {
            if bytes > max_bytes {
                break;
            }
            let entry = entry?;
            bytes += entry.text.len() + entry.name.len();
            entries.push(entry);
        }
        entries.reverse();
        Ok(entries)
    }

    fn prune(&mut self, now: UnixMillis) {
        self.last_retention = Instant::now();
        let Retention {
            per_room,
            max_age_days,
        } = self.retention;
        let mut removed = 0;
        if max_age_days > 0 {
            let cutoff = now.0.saturating_sub(max_age_days * 86_400_000);
            removed += self
                .connection
                .execute("DELETE FROM messages WHERE at < ?1", params![cutoff as i64])
                .unwrap_or(0);
        }
        if per_room > 0 {
            removed += self
                .connection
                .execute(
                    "DELETE FROM messages WHERE (room, id) IN (
                         SELECT room, id FROM (
                             SELECT room, id, row_number() OVER (
                                 PARTITION BY room ORDER BY id DESC) AS newest
                             FROM messages)
                         WHERE newest > ?1)",
                    params![per_room as i64],
                )
                .unwrap_or(0);
        }
        if removed > 0 {
            tracing::info!(removed, "pruned old chat messages");
        }
    }
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChatEntry> {
    Ok(ChatEntry {
        id: MessageId(row.get::<_, i64>(0)? as u64),
        from: PeerId(row.get::<_, i64>(1)? as u64),
        name: row.get(2)?,
        at: UnixMillis(row.get::<_, i64>(3)? as u64),
        text: row.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("room-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn entry(id: u64, at: u64) -> ChatEntry {
        ChatEntry {
            id: MessageId(id),
            from: PeerId(1),
            name: "Ann".into(),
            at: UnixMillis(at),
            text: format!("m{id}"),
        }
    }

    const KEEP_ALL: Retention = Retention {
        per_room: 0,
        max_age_days: 0,
    };

    #[tokio::test]
    async fn messages_survive_reopening_and_reads_see_queued_writes() {
        let dir = temp_dir("reopen");
        {
            let store = ChatStore::open(&dir, KEEP_ALL).unwrap();
            for id in 1..=5 {
                assert!(store.append("a", entry(id, 0)));
            }
            store.append("b", entry(1, 0));
            // No sync: the read must still see the five queued messages.
            let recent = store.recent("a", 3).await;
            let ids: Vec<u64> = recent.entries.iter().map(|e| e.id.0).collect();
            assert_eq!(ids, [3, 4, 5]);
            assert_eq!(recent.last_id, Some(MessageId(5)));
        }
        let store = ChatStore::open(&dir, KEEP_ALL).unwrap();
        assert_eq!(store.recent("a", 100).await.entries.len(), 5);
        let ids = |entries: Vec<ChatEntry>| entries.iter().map(|e| e.id.0).collect::<Vec<_>>();
        let newest_after = store.between("a", MessageId(2), None, 2, 1000).await;
        assert_eq!(ids(newest_after), [4, 5]);
        let page = store
            .between("a", MessageId(0), Some(MessageId(4)), 2, 1000)
            .await;
        assert_eq!(ids(page), [2, 3]);
        // Reading stops once the text passes the byte budget: "Ann" + "m5" is 5 bytes.
        let budgeted = store.between("a", MessageId(0), None, 100, 6).await;
        assert_eq!(ids(budgeted), [4, 5]);
        let beyond = store.between("a", MessageId(u64::MAX), None, 2, 1000).await;
        assert!(beyond.is_empty());
        assert_eq!(store.recent("nowhere", 10).await, StoredHistory::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_per_room_and_drops_old_ones_but_not_the_numbering() {
        let dir = temp_dir("retention");
        let day = 86_400_000;
        let store = ChatStore::open(
            &dir,
            Retention {
                per_room: 3,
                max_age_days: 7,
            },
        )
        .unwrap();
        for id in 1..=5 {
            store.append("a", entry(id, 100 * day));
        }
        store.append("b", entry(1, 90 * day));
        store.append("b", entry(2, 99 * day));
        store.run_retention(UnixMillis(100 * day)).await;
        let a: Vec<u64> = store
            .recent("a", 10)
            .await
            .entries
            .iter()
            .map(|e| e.id.0)
            .collect();
        assert_eq!(a, [3, 4, 5]);
        let b = store.recent("b", 10).await;
        assert_eq!(b.entries.len(), 1);
        store.run_retention(UnixMillis(200 * day)).await;
        let b = store.recent("b", 10).await;
        assert!(b.entries.is_empty());
        assert_eq!(b.last_id, Some(MessageId(2)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migrations_are_recorded_and_not_reapplied() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
    }
}
