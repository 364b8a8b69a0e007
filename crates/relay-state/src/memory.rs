//! The default backend: a map in the coordinator's memory, written to `board.json` in
//! the run directory after every change, so a resumed run finds what the stopped one
//! left (the file is the run's board: `agent-relay board` is this state).
//!
//! The map sits behind a plain mutex held only for map operations, never across an
//! await; writing the file is serialised by an async lock, and each write takes a fresh
//! snapshot under it, so the file always ends up with the latest state whatever order
//! concurrent writes finish in. A write returns once the file has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::{Expect, Put, StateBackend, Write};
use crate::{Entry, StateError, now_ms};

/// The file name in the run directory.
pub const BOARD_FILE: &str = "board.json";

/// What the file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Map {
    /// The last revision given out.
    rev: u64,
    /// Every entry by full key.
    entries: BTreeMap<String, Entry>,
}

impl Map {
    fn live(&mut self, key: &str, now: u64) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| e.expired(now)) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }

    fn drop_expired(&mut self, now: u64) {
        self.entries.retain(|_, e| !e.expired(now));
    }
}

/// State in memory, optionally kept in a file.
#[derive(Debug)]
pub struct MemoryStore {
    map: Mutex<Map>,
    path: Option<PathBuf>,
    write: tokio::sync::Mutex<()>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> StateError {
    StateError::Backend {
        backend: "memory",
        message: format!("{}: {e}", path.display()),
    }
}

impl MemoryStore {
    /// A store kept in memory only.
    pub fn new() -> MemoryStore {
        MemoryStore {
            map: Mutex::new(Map::default()),
            path: None,
            write: tokio::sync::Mutex::new(()),
        }
    }

    /// The store kept in `path`, with what the file already holds. A file of an older
    /// run, a plain JSON object of strings, is read as entries under `legacy_namespace`.
    pub fn open(path: &Path, legacy_namespace: &str) -> Result<MemoryStore, StateError> {
        let map = match std::fs::read(path) {
            Ok(bytes) => read_map(&bytes, legacy_namespace).map_err(|e| io_error(path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::default(),
            Err(e) => return Err(io_error(path, e)),
        };
        Ok(MemoryStore {
            map: Mutex::new(map),
            path: Some(path.to_path_buf()),
            write: tokio::sync::Mutex::new(()),
        })
    }

    fn map(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn persist(&self) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _one_writer = self.write.lock().await;
        let bytes = {
            let mut map = self.map();
            map.drop_expired(now_ms());
            serde_json::to_vec_pretty(&*map).map_err(|e| io_error(path, e))?
        };
        write_private(path, &bytes)
            .await
            .map_err(|e| io_error(path, e))
    }
}

fn read_map(bytes: &[u8], legacy_namespace: &str) -> Result<Map, serde_json::Error> {
    if let Ok(map) = serde_json::from_slice::<Map>(bytes) {
        return Ok(map);
    }
    let flat: BTreeMap<String, String> = serde_json::from_slice(bytes)?;
    let mut map = Map::default();
    for (k, value) in flat {
        map.rev += 1;
        let entry = Entry {
            value,
            by: "earlier run".to_owned(),
            ts_ms: 0,
            rev: map.rev,
            expires_ms: None,
        };
        map.entries.insert(format!("{legacy_namespace}:{k}"), entry);
    }
    Ok(map)
}

/// Writes `bytes` to a temp file beside `path` (readable by this user only) and renames
/// it over `path`, so a crash leaves the old file or the new one.
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
    tokio::io::AsyncWriteExt::flush(&mut f).await?;
    f.sync_data().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

impl StateBackend for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StateError> {
        Ok(self.map().live(key, now_ms()).cloned())
    }

    async fn put(&self, key: &str, write: &Write<'_>, expect: &Expect) -> Result<Put, StateError> {
        let entry = {
            let mut map = self.map();
            let now = now_ms();
            let current = map.live(key, now).cloned();
            if !expect.met_by(current.as_ref()) {
                return Ok(Put::Mismatch(current));
            }
            map.rev += 1;
            let entry = Entry {
                value: write.value.to_owned(),
                by: write.by.to_owned(),
                ts_ms: now,
                rev: map.rev,
                expires_ms: write.ttl.map(|t| now + t.as_millis() as u64),
            };
            map.entries.insert(key.to_owned(), entry.clone());
            entry
        };
        self.persist().await?;
        Ok(Put::Written(entry))
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let existed = {
            let mut map = self.map();
            let existed = map.live(key, now_ms()).is_some();
            if existed {
                // The revision counter moves on, so a key set again gets a new one.
                map.rev += 1;
                map.entries.remove(key);
            }
            existed
        };
        if existed {
            self.persist().await?;
        }
        Ok(existed)
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, StateError> {
        let mut map = self.map();
        map.drop_expired(now_ms());
        Ok(map
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect())
    }

    fn poll(&self) -> Option<Duration> {
        // Every write goes through this process, and wakes watchers itself.
        None
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_comes_back_and_old_boards_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BOARD_FILE);
        let s = MemoryStore::open(&path, "ns").unwrap();
        let w = Write {
            value: "v1",
            by: "alice",
            ttl: None,
        };
        s.put("ns:plan", &w, &Expect::Any).await.unwrap();
        let again = MemoryStore::open(&path, "ns").unwrap();
        let e = again.get("ns:plan").await.unwrap().unwrap();
        assert_eq!((e.value.as_str(), e.by.as_str(), e.rev), ("v1", "alice", 1));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        std::fs::write(&path, r#"{"plan": "old"}"#).unwrap();
        let old = MemoryStore::open(&path, "ns").unwrap();
        assert_eq!(old.get("ns:plan").await.unwrap().unwrap().value, "old");
    }
}
