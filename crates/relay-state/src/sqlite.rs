//! The `database` backend: one SQLite file, through `rusqlite` with SQLite compiled in.
//!
//! Why SQLite: the state outlives the run in a single file next to the project, needs no
//! server, and several coordinators can share it (SQLite's file locking, a busy timeout,
//! compare-and-set inside an immediate transaction). Compiled in (`bundled`), so the
//! binary needs no system library and every machine has the same SQLite.
//!
//! A connection is not `Sync`, and its calls block: it lives on a thread of its own, and
//! requests reach it over a channel with a one-shot reply, so nothing blocks the async
//! runtime. The thread ends when the store is dropped.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::backend::{Expect, Put, StateBackend, Write};
use crate::{Entry, StateError, now_ms};

/// How long a write waits for another process's lock on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a watcher re-reads the file for writes of other processes.
const POLL: Duration = Duration::from_millis(250);

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS relay_state (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    writer TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    rev INTEGER NOT NULL,
    expires_ms INTEGER
);
CREATE TABLE IF NOT EXISTS relay_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO relay_meta (name, value) VALUES ('rev', 0);
";

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Op {
    Get(String, Reply<Option<Entry>>),
    Put {
        key: String,
        value: String,
        by: String,
        ttl: Option<Duration>,
        expect: Expect,
        reply: Reply<Put>,
    },
    Delete(String, Reply<bool>),
    List(String, usize, Reply<Vec<(String, Entry)>>),
}

/// State in an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    ops: mpsc::Sender<Op>,
}

fn err(e: impl std::fmt::Display) -> StateError {
    StateError::Backend {
        backend: "database",
        message: e.to_string(),
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path` and starts its thread.
    /// Blocks while the file is opened: call it from a blocking context or before the
    /// run starts.
    pub fn open(path: &Path) -> Result<SqliteStore, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let (tx, rx) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("relay-state-sqlite".into())
            .spawn(move || serve(conn, rx))
            .map_err(err)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            ops: tx,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, StateError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(op(tx))
            .map_err(|_| err("the database thread has stopped"))?;
        rx.await
            .map_err(|_| err("the database thread has stopped"))?
            .map_err(|m| err(format!("{}: {m}", self.path.display())))
    }
}

fn serve(mut conn: Connection, ops: mpsc::Receiver<Op>) {
    while let Ok(op) = ops.recv() {
        // A reply nobody waits for any more (the request was dropped) is fine to lose.
        match op {
            Op::Get(key, reply) => {
                let _ = reply.send(get(&conn, &key, now_ms()).map_err(|e| e.to_string()));
            }
            Op::Put {
                key,
                value,
                by,
                ttl,
                expect,
                reply,
            } => {
                let w = Write {
                    value: &value,
                    by: &by,
                    ttl,
                };
                let _ = reply.send(put(&mut conn, &key, &w, &expect).map_err(|e| e.to_string()));
            }
            Op::Delete(key, reply) => {
                let _ = reply.send(delete(&mut conn, &key).map_err(|e| e.to_string()));
            }
            Op::List(prefix, limit, reply) => {
                let _ = reply.send(list(&conn, &prefix, limit).map_err(|e| e.to_string()));
            }
        }
    }
}

fn entry_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        value: row.get(0)?,
        by: row.get(1)?,
        ts_ms: row.get::<_, i64>(2)?.max(0) as u64,
        rev: row.get::<_, i64>(3)?.max(0) as u64,
        expires_ms: row.get::<_, Option<i64>>(4)?.map(|e| e.max(0) as u64),
    })
}

fn get(conn: &Connection, key: &str, now: u64) -> rusqlite::Result<Option<Entry>> {
    conn.query_row(
        "SELECT value, writer, ts_ms, rev, expires_ms FROM relay_state
         WHERE key = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)",
        params![key, now as i64],
        entry_of,
    )
    .optional()
}

fn next_rev(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
    tx.query_row(
        "UPDATE relay_meta SET value = value + 1 WHERE name = 'rev' RETURNING value",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v.max(0) as u64)
}

fn put(conn: &mut Connection, key: &str, w: &Write<'_>, expect: &Expect) -> rusqlite::Result<Put> {
    // Immediate: the write lock is taken before the read, so no other process can write
    // between the comparison and the write.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let current = get(&tx, key, now)?;
    if !expect.met_by(current.as_ref()) {
        return Ok(Put::Mismatch(current));
    }
    let rev = next_rev(&tx)?;
    let entry = Entry {
        value: w.value.to_owned(),
        by: w.by.to_owned(),
        ts_ms: now,
        rev,
        expires_ms: w.ttl.map(|t| now + t.as_millis() as u64),
    };
    tx.execute(
        "INSERT OR REPLACE INTO relay_state (key, value, writer, ts_ms, rev, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key,
            entry.value,
            entry.by,
            entry.ts_ms as i64,
            entry.rev as i64,
            entry.expires_ms.map(|e| e as i64)
        ],
    )?;
    // Expired rows are invisible; this keeps the file from growing with them.
    tx.execute(
        "DELETE FROM relay_state WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
        params![now as i64],
    )?;
    tx.commit()?;
    Ok(Put::Written(entry))
}

fn delete(conn: &mut Connection, key: &str) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existed = get(&tx, key, now_ms())?.is_some();
    tx.execute("DELETE FROM relay_state WHERE key = ?1", params![key])?;
    if existed {
        next_rev(&tx)?;
    }
    tx.commit()?;
    Ok(existed)
}

fn list(conn: &Connection, prefix: &str, limit: usize) -> rusqlite::Result<Vec<(String, Entry)>> {
    // `substr` counts characters, as `length` does: the comparison is on the prefix as
    // text, with no pattern characters to escape.
    let mut stmt = conn.prepare(
        "SELECT value, writer, ts_ms, rev, expires_ms, key FROM relay_state
         WHERE substr(key, 1, length(?1)) = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)
         ORDER BY key LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![prefix, now_ms() as i64, limit.min(i64::MAX as usize) as i64],
        |r| Ok((r.get::<_, String>(5)?, entry_of(r)?)),
    )?;
    rows.collect()
}

impl StateBackend for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StateError> {
        let key = key.to_owned();
        self.ask(|r| Op::Get(key, r)).await
    }

    async fn put(&self, key: &str, write: &Write<'_>, expect: &Expect) -> Result<Put, StateError> {
        let (key, value, by, ttl) = (
            key.to_owned(),
            write.value.to_owned(),
            write.by.to_owned(),
            write.ttl,
        );
        let expect = expect.clone();
        self.ask(|reply| Op::Put {
            key,
            value,
            by,
            ttl,
            expect,
            reply,
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let key = key.to_owned();
        self.ask(|r| Op::Delete(key, r)).await
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, StateError> {
        let prefix = prefix.to_owned();
        self.ask(|r| Op::List(prefix, limit, r)).await
    }

    fn poll(&self) -> Option<Duration> {
        Some(POLL)
    }

    fn name(&self) -> &'static str {
        "database"
    }
}
