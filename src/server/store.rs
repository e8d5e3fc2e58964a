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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use crate::core::HistoryRange;
use crate::protocol::{ChatEntry, MessageId, PeerId, UnixMillis};

use super::error::StartError;

/// Migrations in order; `PRAGMA user_version` records how many were applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_messages.sql"),
    include_str!("../../migrations/0002_shutdown.sql"),
];

/// How long the writer waits for more messages before committing a batch.
const COMMIT_WINDOW: Duration = Duration::from_millis(20);
/// Messages committed in one transaction at most.
const MAX_BATCH: usize = 1024;
/// Requests queued for the writer at most.
const QUEUE: usize = 65_536;
/// Bytes of chat text waiting for the writer (queued, or kept for a retry while storage
/// fails) at most; beyond this, new messages are delivered but not stored, and counted.
const MAX_WAITING_BYTES: usize = 32 * 1024 * 1024;
/// The first retry of a failed commit waits this long; each next one twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Retries wait at most this long, so storage that recovers is used again soon.
const LONGEST_RETRY: Duration = Duration::from_secs(5);
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
        reply: oneshot::Sender<Result<StoredHistory, ReadError>>,
    },
    Between {
        room: String,
        range: HistoryRange,
        reply: oneshot::Sender<Vec<ChatEntry>>,
    },
    Sync {
        reply: oneshot::Sender<()>,
    },
    CloseCleanly {
        reply: oneshot::Sender<()>,
    },
    LimitPages {
        pages: u64,
        reply: oneshot::Sender<()>,
    },
    RunRetention {
        now: UnixMillis,
        reply: oneshot::Sender<()>,
    },
}

/// What the store counts for `/metrics`; the counters are shared with the registry.
#[derive(Clone, Debug, Default)]
pub struct StoreCounters {
    /// Commits that failed (each is retried).
    pub failures: Counter,
    /// Messages delivered but never stored: the waiting bytes were over their bound.
    pub dropped: Counter,
}

/// Why stored history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading chat history failed: {0}")]
pub struct ReadError(String);

impl ReadError {
    pub fn new(why: String) -> Self {
        ReadError(why)
    }
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct ChatStore {
    requests: SyncSender<Request>,
    /// Bytes of chat text handed to the writer and not yet committed.
    waiting_bytes: Arc<AtomicUsize>,
    counters: StoreCounters,
    /// The server did not stop cleanly last time: stored history may lack the last moments.
    crashed: bool,
}

impl ChatStore {
    /// Opens (creating if needed) `data_dir/room.sqlite3`, migrates it and starts the writer.
    pub fn open(
        data_dir: &Path,
        retention: Retention,
        counters: StoreCounters,
    ) -> Result<ChatStore, StartError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::CreateDataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("room.sqlite3");
        let opened = open_connection(&path).and_then(|connection| {
            let crashed = !take_clean_shutdown(&connection)?;
            Ok((connection, crashed))
        });
        let (connection, crashed) =
            opened.map_err(|source| StartError::OpenStore { path, source })?;
        if crashed {
            tracing::warn!(
                "the server did not stop cleanly last time; new messages are numbered past a gap"
            );
        }
        let (requests, inbox) = mpsc::sync_channel(QUEUE);
        let waiting_bytes = Arc::new(AtomicUsize::new(0));
        let writer = Writer::new(
            connection,
            retention,
            waiting_bytes.clone(),
            counters.clone(),
        );
        std::thread::Builder::new()
            .name("room-store".into())
            .spawn(move || writer.run(inbox))
            .map_err(StartError::StoreThread)?;
        Ok(ChatStore {
            requests,
            waiting_bytes,
            counters,
            crashed,
        })
    }

    /// Whether the server crashed (or was killed) last time instead of shutting down.
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// Commits everything queued and records a clean shutdown: the last call before exit.
    pub async fn close_cleanly(&self) {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::CloseCleanly { reply }).await;
        let _ = answer.await;
    }

    /// Queues a message for storage without waiting. Returns false when too much already
    /// waits (the disk cannot keep up, or storage fails): the message was delivered but will
    /// not be stored, and `room_store_dropped_messages_total` counts it.
    pub fn append(&self, room: &str, entry: ChatEntry) -> bool {
        let size = entry_bytes(&entry);
        let waiting = self.waiting_bytes.fetch_add(size, Ordering::Relaxed);
        let sent = waiting + size <= MAX_WAITING_BYTES
            && self
                .requests
                .try_send(Request::Append {
                    room: room.to_string(),
                    entry,
                })
                .is_ok();
        if !sent {
            self.waiting_bytes.fetch_sub(size, Ordering::Relaxed);
            if self.counters.dropped.inc() == 0 {
                tracing::warn!(
                    room,
                    "chat storage is behind; messages are delivered but not stored"
                );
            }
        }
        sent
    }

    /// Limits the database to `pages` pages of storage (SQLite's `max_page_count`), as a full
    /// disk would: for tests of what happens then, and of the recovery when space returns.
    pub async fn limit_pages(&self, pages: u64) {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::LimitPages { pages, reply }).await;
        let _ = answer.await;
    }

    /// The newest `limit` messages of `room` and its last id. An error, not an empty
    /// history, when they cannot be read: a room that started empty would number its
    /// messages from 1 again.
    pub async fn recent(&self, room: &str, limit: usize) -> Result<StoredHistory, ReadError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Recent {
            room: room.to_string(),
            limit,
            reply,
        })
        .await;
        answer
            .await
            .unwrap_or_else(|_| Err(ReadError("the chat store has stopped".into())))
    }

    /// The messages of `room` in `range`, oldest first (so a read for a budgeted replay holds
    /// little more than the budget).
    pub async fn between(&self, room: &str, range: HistoryRange) -> Vec<ChatEntry> {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Between {
            room: room.to_string(),
            range,
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

/// Reads whether the last run shut down cleanly and marks this one as running (not clean)
/// until [`ChatStore::close_cleanly`].
fn take_clean_shutdown(connection: &Connection) -> rusqlite::Result<bool> {
    let clean: i64 = connection.query_row(
        "SELECT value FROM server_state WHERE key = 'clean_shutdown'",
        [],
        |row| row.get(0),
    )?;
    connection.execute(
        "UPDATE server_state SET value = 0 WHERE key = 'clean_shutdown'",
        [],
    )?;
    Ok(clean == 1)
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

/// The bytes a message counts for against [`MAX_WAITING_BYTES`].
fn entry_bytes(entry: &ChatEntry) -> usize {
    entry.text.len() + entry.name.len() + 64
}

struct Writer {
    connection: Connection,
    retention: Retention,
    pending: Vec<(String, ChatEntry)>,
    last_retention: Instant,
    waiting_bytes: Arc<AtomicUsize>,
    counters: StoreCounters,
    /// While commits fail: when to try again, and how long the wait after that is.
    retry: Option<(Instant, Duration)>,
    /// Failed commits in the current incident, for the recovery log line.
    failures_in_incident: u64,
}

impl Writer {
    fn new(
        connection: Connection,
        retention: Retention,
        waiting_bytes: Arc<AtomicUsize>,
        counters: StoreCounters,
    ) -> Self {
        Writer {
            connection,
            retention,
            pending: Vec::new(),
            last_retention: Instant::now(),
            waiting_bytes,
            counters,
            retry: None,
            failures_in_incident: 0,
        }
    }

    /// Makes the next commit try at once, keeping the backoff's current step.
    fn retry_now(&mut self) {
        if let Some((_, wait)) = self.retry {
            self.retry = Some((Instant::now(), wait));
        }
    }

    /// How long to wait for more requests before committing what is pending.
    fn commit_wait(&self) -> Duration {
        match self.retry {
            Some((at, _)) => at.saturating_duration_since(Instant::now()),
            None => COMMIT_WINDOW,
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
                match inbox.recv_timeout(self.commit_wait()) {
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
                    // Everything queued before a read is visible to it; a sync (shutdown)
                    // tries once more even while waiting out a failure.
                    if matches!(other, Request::Sync { .. } | Request::CloseCleanly { .. }) {
                        self.retry_now();
                    }
                    self.commit();
                    self.answer(other);
                }
            }
            if self.last_retention.elapsed() >= RETENTION_EVERY {
                self.commit();
                self.prune(crate::server::unix_now());
            }
        }
        self.retry_now();
        self.commit();
    }

    /// Commits what is pending. A failure keeps the batch for a retry with backoff (the
    /// disk may be full for a while); the log says so once per incident, and again when
    /// storing works again.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.retry.is_some_and(|(at, _)| Instant::now() < at) {
            return;
        }
        match Self::insert(&mut self.connection, &self.pending) {
            Ok(()) => {
                let stored: usize = self.pending.iter().map(|(_, e)| entry_bytes(e)).sum();
                self.waiting_bytes.fetch_sub(stored, Ordering::Relaxed);
                if self.failures_in_incident > 0 {
                    tracing::info!(
                        failed_commits = self.failures_in_incident,
                        messages = self.pending.len(),
                        "storing chat works again; the messages kept meanwhile are stored"
                    );
                }
                self.pending.clear();
                self.retry = None;
                self.failures_in_incident = 0;
            }
            Err(error) => {
                self.counters.failures.inc();
                self.failures_in_incident += 1;
                if self.failures_in_incident == 1 {
                    tracing::error!(%error, messages = self.pending.len(),
                        "storing chat messages failed; keeping them and retrying");
                } else {
                    tracing::debug!(%error, "storing chat messages failed again");
                }
                let wait = self
                    .retry
                    .map_or(FIRST_RETRY, |(_, wait)| (wait * 2).min(LONGEST_RETRY));
                self.retry = Some((Instant::now() + wait, wait));
            }
        }
    }

    fn insert(connection: &mut Connection, batch: &[(String, ChatEntry)]) -> rusqlite::Result<()> {
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO messages (room, id, sender, name, at, text)
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
                let history = self.recent(&room, limit).map_err(|error| {
                    tracing::error!(%error, room, "reading chat history failed");
                    ReadError(error.to_string())
                });
                let _ = reply.send(history);
            }
            Request::Between { room, range, reply } => {
                let read = self.between(&room, range);
                let entries = read.unwrap_or_else(|error| {
                    tracing::error!(%error, room, "reading chat history failed");
                    Vec::new()
                });
                let _ = reply.send(entries);
            }
            Request::Sync { reply } => {
                let _ = reply.send(());
            }
            Request::CloseCleanly { reply } => {
                // Clean only if nothing is left unstored.
                if self.pending.is_empty() {
                    let marked = self.connection.execute(
                        "UPDATE server_state SET value = 1 WHERE key = 'clean_shutdown'",
                        [],
                    );
                    if let Err(error) = marked {
                        tracing::warn!(%error, "cannot record the clean shutdown");
                    }
                }
                let _ = reply.send(());
            }
            Request::LimitPages { pages, reply } => {
                if let Err(error) = self.connection.pragma_update(
                    None,
                    "max_page_count",
                    pages.min(i64::MAX as u64) as i64,
                ) {
                    tracing::warn!(%error, "cannot limit the database size");
                }
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

    fn between(&self, room: &str, range: HistoryRange) -> rusqlite::Result<Vec<ChatEntry>> {
        let mut select = self.connection.prepare_cached(
            "SELECT id, sender, name, at, text FROM messages WHERE room = ?1 AND id > ?2
             AND id < ?3 ORDER BY id DESC LIMIT ?4",
        )?;
        let before = range
            .before
            .map_or(i64::MAX, |id| id.0.min(i64::MAX as u64) as i64);
        let after = range.after.0.min(i64::MAX as u64) as i64;
        let (limit, max_bytes) = (range.limit, range.max_bytes);
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

    fn range(after: u64, before: Option<u64>, limit: usize, max_bytes: usize) -> HistoryRange {
        HistoryRange {
            after: MessageId(after),
            before: before.map(MessageId),
            limit,
            max_bytes,
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
            let store = ChatStore::open(&dir, KEEP_ALL, StoreCounters::default()).unwrap();
            for id in 1..=5 {
                assert!(store.append("a", entry(id, 0)));
            }
            store.append("b", entry(1, 0));
            // No sync: the read must still see the five queued messages.
            let recent = store.recent("a", 3).await.unwrap();
            let ids: Vec<u64> = recent.entries.iter().map(|e| e.id.0).collect();
            assert_eq!(ids, [3, 4, 5]);
            assert_eq!(recent.last_id, Some(MessageId(5)));
        }
        let store = ChatStore::open(&dir, KEEP_ALL, StoreCounters::default()).unwrap();
        assert_eq!(store.recent("a", 100).await.unwrap().entries.len(), 5);
        let ids = |entries: Vec<ChatEntry>| entries.iter().map(|e| e.id.0).collect::<Vec<_>>();
        let newest_after = store.between("a", range(2, None, 2, 1000)).await;
        assert_eq!(ids(newest_after), [4, 5]);
        let page = store.between("a", range(0, Some(4), 2, 1000)).await;
        assert_eq!(ids(page), [2, 3]);
        // Reading stops once the text passes the byte budget: "Ann" + "m5" is 5 bytes.
        let budgeted = store.between("a", range(0, None, 100, 6)).await;
        assert_eq!(ids(budgeted), [4, 5]);
        let beyond = store.between("a", range(u64::MAX, None, 2, 1000)).await;
        assert!(beyond.is_empty());
        assert_eq!(
            store.recent("nowhere", 10).await.unwrap(),
            StoredHistory::default()
        );
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
            StoreCounters::default(),
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
            .unwrap()
            .entries
            .iter()
            .map(|e| e.id.0)
            .collect();
        assert_eq!(a, [3, 4, 5]);
        let b = store.recent("b", 10).await.unwrap();
        assert_eq!(b.entries.len(), 1);
        store.run_retention(UnixMillis(200 * day)).await;
        let b = store.recent("b", 10).await.unwrap();
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
