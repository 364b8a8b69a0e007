//! The run's shared board: a key-value map every agent can read and write through the
//! socket (`agent-relay board get|set|list`), kept in `board.json` in the run directory
//! as a plain JSON object of strings (so anything can read it, the blackboard pattern
//! included); who set a value and when is known while the run lives.
//!
//! The map sits behind a plain mutex held only for map operations; writing the file is
//! serialised by an async lock, and each write takes a fresh snapshot under it, so the
//! file always ends up with the latest state whatever order concurrent sets finish in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::model::now_ms;
use crate::sanitize::{MAX_TEXT_BYTES, sanitize};

/// The file name in the run directory.
pub const BOARD_FILE: &str = "board.json";

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// One value on the board, with who set it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoardEntry {
    /// The value.
    pub value: String,
    /// Who set it.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
}

/// Why a board operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The key is empty, too long or has control characters.
    #[error("bad key {0:?}: keys are 1 to {MAX_KEY_BYTES} bytes of printable text")]
    BadKey(String),
    /// The value is too long.
    #[error("the value is too long ({0} bytes; at most {MAX_TEXT_BYTES})")]
    TooLong(usize),
    /// `board.json` could not be read or written.
    #[error("board file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Inner {
    entries: Mutex<BTreeMap<String, BoardEntry>>,
    path: Option<PathBuf>,
    write: tokio::sync::Mutex<()>,
}

/// The shared board. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Board {
    inner: Arc<Inner>,
}

impl Board {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, BoardEntry>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The board kept in `path`, with what the file already holds (a resumed run).
    pub fn open(path: &Path) -> Result<Board, BoardError> {
        let entries = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
                .map_err(|e| BoardError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e),
                })?
                .into_iter()
                .map(|(k, value)| {
                    let entry = BoardEntry {
                        value,
                        by: "earlier run".to_owned(),
                        ts_ms: 0,
                    };
                    (k, entry)
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(BoardError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Board {
            inner: Arc::new(Inner {
                entries: Mutex::new(entries),
                path: Some(path.to_path_buf()),
                write: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// A board kept in memory only.
    pub fn in_memory() -> Board {
        Board {
            inner: Arc::new(Inner {
                entries: Mutex::new(BTreeMap::new()),
                path: None,
                write: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The entry under `key`.
    pub fn get(&self, key: &str) -> Option<BoardEntry> {
        self.entries().get(key).cloned()
    }

    /// Every entry, by key.
    pub fn list(&self) -> BTreeMap<String, BoardEntry> {
        self.entries().clone()
    }

    /// Sets `key` to `value` on behalf of `by`; returns once the file has it.
    pub async fn set(&self, key: &str, value: &str, by: &str) -> Result<(), BoardError> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(BoardError::BadKey(key.to_owned()));
        }
        let value = sanitize(value);
        if value.len() > MAX_TEXT_BYTES {
            return Err(BoardError::TooLong(value.len()));
        }
        self.entries().insert(
            key.to_owned(),
            BoardEntry {
                value,
                by: by.to_owned(),
                ts_ms: now_ms(),
            },
        );
        self.persist().await
    }

    async fn persist(&self) -> Result<(), BoardError> {
        let Some(path) = &self.inner.path else {
            return Ok(());
        };
        let _one_writer = self.inner.write.lock().await;
        let flat: BTreeMap<String, String> = self
            .entries()
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        let bytes = serde_json::to_vec_pretty(&flat).map_err(|e| BoardError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let io = |source| BoardError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .await
            .map_err(io)?;
        tokio::io::AsyncWriteExt::write_all(&mut f, &bytes)
            .await
            .map_err(io)?;
        tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(io)?;
        drop(f);
        tokio::fs::rename(&tmp, path).await.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_persist_and_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BOARD_FILE);
        let b = Board::open(&path).unwrap();
        b.set("plan", "step one\x1b[2J", "alice").await.unwrap();
        b.set("plan", "step two", "bob").await.unwrap();
        assert!(matches!(
            b.set("", "x", "a").await,
            Err(BoardError::BadKey(_))
        ));
        let again = Board::open(&path).unwrap();
        assert_eq!(again.get("plan").unwrap().value, "step two");
        assert_eq!(again.list().len(), 1);
        assert_eq!(b.get("plan").unwrap().by, "bob");
        let file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(file, serde_json::json!({"plan": "step two"}));
    }
}
