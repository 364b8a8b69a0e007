//! Shared state for the agents of a run, and file claims.
//!
//! ```text
//!  agent-relay state get|set|cas|list|watch ─► run socket (relay-messaging) ─┐
//!  {{state.KEY}} in tasks and commands (relay-engine) ────────────────────────┤
//!                                                                             ▼
//!        State (this crate): keys checked and namespaced, the default TTL, watch,
//!        a record of every write for the run's events
//!                                                                             │ StateBackend
//!                       ┌──────────────────────┬──────────────────────────────┤
//!                       ▼                      ▼                              ▼
//!      memory (board.json in the run    redis (a real server;      database (SQLite, one
//!      directory; resume keeps it)      Lua for compare-and-set)   file; its own thread)
//! ```
//!
//! Every backend has the same semantics, checked by one conformance suite run against
//! all three (`tests/conformance.rs`): a write gives the entry a new revision (higher
//! than any before it in the namespace), an entry past its TTL is gone for every
//! operation, compare-and-set compares values atomically, and a watch wakes when the
//! key's revision changes (a write, a delete, an expiry).
//!
//! Claims (`claims.rs`, `glob.rs`) are the run's own: who holds which paths, kept by
//! the broker, not the backend.

pub mod any;
pub mod backend;
pub mod changes;
pub mod claims;
pub mod glob;
pub mod memory;
pub mod open;
pub mod redis_store;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

pub use any::Backend;
pub use backend::{Expect, Put, StateBackend, Write};
pub use claims::{Ask, Claim, ClaimEnd, ClaimError, ClaimRecord, Claims, Conflict, Refusal};
pub use open::{OpenError, StateSettings, open};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// Most entries one `list` returns.
pub const LIST_MAX: usize = 10_000;

/// Values up to this size are written into the run's events with the key.
pub const SMALL_VALUE_BYTES: usize = 200;

/// One value with who wrote it, when, its revision and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The value.
    pub value: String,
    /// Who wrote it.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// Its revision: every write in a namespace gets a higher one than any before it.
    #[serde(default)]
    pub rev: u64,
    /// When it expires, in milliseconds since the Unix epoch; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

impl Entry {
    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The key is empty, too long or has control characters.
    #[error("bad key {0:?}: keys are 1 to {MAX_KEY_BYTES} bytes of printable text")]
    BadKey(String),
    /// The value is too long.
    #[error("the value is too long ({0} bytes; at most {MAX_VALUE_BYTES})")]
    TooLong(usize),
    /// The backend could not do it (server down, file unwritable, a timeout).
    #[error("{backend} state: {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl StateError {
    /// Whether the caller's input was at fault (as opposed to the backend).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, StateError::BadKey(_) | StateError::TooLong(_))
    }
}

/// What a compare-and-set did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Cas {
    /// The value was as expected and is now the new one.
    Swapped {
        /// The entry written.
        entry: Entry,
    },
    /// The value was not as expected; nothing was written.
    Mismatch {
        /// What the key holds now.
        current: Option<Entry>,
    },
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Watched {
    /// The key's revision changed: its entry now (none when deleted or expired).
    Changed {
        /// The entry.
        entry: Option<Entry>,
    },
    /// The wait ran out with the key as it was.
    TimedOut {
        /// The entry.
        entry: Option<Entry>,
    },
}

/// A write recorded for the run's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key, without the namespace.
    pub key: String,
    /// Who wrote.
    pub by: String,
    /// What was done.
    pub kind: ChangeKind,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A value was set.
    Set {
        /// The value, when it is at most [`SMALL_VALUE_BYTES`].
        value: Option<String>,
        /// Its size in bytes.
        bytes: usize,
        /// Its revision.
        rev: u64,
        /// Its TTL.
        ttl_ms: Option<u64>,
    },
    /// The key was deleted.
    Deleted,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Checks a key: 1 to [`MAX_KEY_BYTES`] bytes, no control characters.
pub fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(StateError::BadKey(key.to_owned()));
    }
    Ok(())
}

/// `name` made a valid namespace: letters, digits, `-`, `_` and `.` kept, anything else
/// `-`, at most [`MAX_NAMESPACE_BYTES`]; `relay` when nothing is left.
pub fn namespace_of(name: &str) -> String {
    let mut ns = String::new();
    for c in name.chars() {
        let c = if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '-'
        };
        if ns.len() + c.len_utf8() > MAX_NAMESPACE_BYTES {
            break;
        }
        ns.push(c);
    }
    if ns.trim_matches('-').is_empty() {
        "relay".to_owned()
    } else {
        ns
    }
}

/// Who is told of each record, in the order records happen: channels, and sinks called
/// on the spot (so a record is passed on before the operation that made it returns).
pub struct Observers<T> {
    sinks: Mutex<Vec<Sink<T>>>,
}

type Sink<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

impl<T> Default for Observers<T> {
    fn default() -> Self {
        Observers {
            sinks: Mutex::new(Vec::new()),
        }
    }
}

impl<T> std::fmt::Debug for Observers<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers").finish_non_exhaustive()
    }
}

impl<T: Clone + Send + 'static> Observers<T> {
    fn sinks(&self) -> std::sync::MutexGuard<'_, Vec<Sink<T>>> {
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every record from now on, on a channel.
    pub fn channel(&self) -> UnboundedReceiver<T> {
        let (tx, rx) = unbounded_channel::<T>();
        self.sink(move |r: &T| tx.send(r.clone()).is_ok());
        rx
    }

    /// `f` is called with every record from now on, as it happens, until it returns
    /// false. It must not block.
    pub fn sink(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) {
        self.sinks().push(Box::new(f));
    }

    /// Tells every observer of `record`.
    pub fn emit(&self, record: &T) {
        self.sinks().retain(|f| f(record));
    }
}

struct Inner {
    backend: Arc<Backend>,
    namespace: String,
    default_ttl: Option<Duration>,
    /// Bumped after every write through this state (or one sharing its backend), so
    /// watchers re-read at once.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    observers: Observers<Change>,
}

/// The shared state of a run: a backend, a namespace and a default TTL. Cheap to clone.
#[derive(Clone)]
pub struct State {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("backend", &self.inner.backend.name())
            .field("namespace", &self.inner.namespace)
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

impl State {
    /// The state kept in `backend`, under `namespace` (made valid with
    /// [`namespace_of`]), whose entries live `default_ttl` unless a write says otherwise.
    pub fn new(backend: Backend, namespace: &str, default_ttl: Option<Duration>) -> State {
        State {
            inner: Arc::new(Inner {
                backend: Arc::new(backend),
                namespace: namespace_of(namespace),
                default_ttl: default_ttl.filter(|d| !d.is_zero()),
                changes: Arc::new(tokio::sync::watch::Sender::new(0)),
                observers: Observers::default(),
            }),
        }
    }

    /// The same backend under another namespace (writes through either wake watchers of
    /// both; each has its own observers).
    pub fn namespaced(&self, namespace: &str) -> State {
        State {
            inner: Arc::new(Inner {
                backend: self.inner.backend.clone(),
                namespace: namespace_of(namespace),
                default_ttl: self.inner.default_ttl,
                changes: self.inner.changes.clone(),
                observers: Observers::default(),
            }),
        }
    }

    /// A state in memory only (tests, tools).
    pub fn in_memory(namespace: &str) -> State {
        State::new(Backend::Memory(memory::MemoryStore::new()), namespace, None)
    }

    /// The backend's name: `memory`, `redis` or `database`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The TTL of a write that sets none.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The backend's key for `key`: `NAMESPACE:KEY`.
    fn full(&self, key: &str) -> Result<String, StateError> {
        check_key(key)?;
        Ok(format!("{}:{key}", self.inner.namespace))
    }

    /// Who is told of every write (for the run's events): told before the write returns.
    pub fn observers(&self) -> &Observers<Change> {
        &self.inner.observers
    }

    fn written(&self, change: Change) {
        self.inner.changes.send_modify(|g| *g = g.wrapping_add(1));
        self.inner.observers.emit(&change);
    }

    /// The entry under `key`, unless it is unset or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, StateError> {
        let full = self.full(key)?;
        self.inner.backend.get(&full).await
    }

    /// Sets `key` to `value` on behalf of `by`, living `ttl` (default: the state's).
    pub async fn set(
        &self,
        key: &str,
        value: &str,
        by: &str,
        ttl: Option<Duration>,
    ) -> Result<Entry, StateError> {
        match self.put(key, value, by, ttl, Expect::Any).await? {
            Cas::Swapped { entry } => Ok(entry),
            // An unconditional write cannot mismatch; a backend that says so is broken.
            Cas::Mismatch { .. } => Err(StateError::Backend {
                backend: self.backend_name(),
                message: format!("an unconditional write of `{key}` was refused"),
            }),
        }
    }

    /// Sets `key` to `value` only if it holds `expected` now (`None`: only if it is
    /// unset), atomically.
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
        by: &str,
        ttl: Option<Duration>,
    ) -> Result<Cas, StateError> {
        let expect = match expected {
            Some(v) => Expect::Value(v.to_owned()),
            None => Expect::Absent,
        };
        self.put(key, value, by, ttl, expect).await
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        by: &str,
        ttl: Option<Duration>,
        expect: Expect,
    ) -> Result<Cas, StateError> {
        let full = self.full(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateError::TooLong(value.len()));
        }
        let ttl = ttl.or(self.inner.default_ttl).filter(|d| !d.is_zero());
        let write = Write { value, by, ttl };
        match self.inner.backend.put(&full, &write, &expect).await? {
            Put::Written(entry) => {
                self.written(Change {
                    key: key.to_owned(),
                    by: by.to_owned(),
                    kind: ChangeKind::Set {
                        value: (value.len() <= SMALL_VALUE_BYTES).then(|| value.to_owned()),
                        bytes: value.len(),
                        rev: entry.rev,
                        ttl_ms: ttl.map(|d| d.as_millis() as u64),
                    },
                });
                Ok(Cas::Swapped { entry })
            }
            Put::Mismatch(current) => Ok(Cas::Mismatch { current }),
        }
    }

    /// Deletes `key` on behalf of `by`; whether it was set.
    pub async fn delete(&self, key: &str, by: &str) -> Result<bool, StateError> {
        let full = self.full(key)?;
        let existed = self.inner.backend.delete(&full).await?;
        if existed {
            self.written(Change {
                key: key.to_owned(),
                by: by.to_owned(),
                kind: ChangeKind::Deleted,
            });
        }
        Ok(existed)
    }

    /// Every live entry whose key starts with `prefix`, by key (at most [`LIST_MAX`]).
    pub async fn list(&self, prefix: &str) -> Result<BTreeMap<String, Entry>, StateError> {
        if prefix.chars().any(char::is_control) || prefix.len() > MAX_KEY_BYTES {
            return Err(StateError::BadKey(prefix.to_owned()));
        }
        let ns = format!("{}:", self.inner.namespace);
        let found = self
            .inner
            .backend
            .list(&format!("{ns}{prefix}"), LIST_MAX)
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|(k, e)| k.strip_prefix(&ns).map(|k| (k.to_owned(), e)))
            .collect())
    }

    /// Waits up to `wait` for `key` to change from revision `seen` (0: unset; `None`:
    /// whatever it is now), and returns its entry then. A write, a delete and an expiry
    /// all change it. Writes through this state wake the watch at once; others (another
    /// coordinator on the same server or file) within the backend's poll interval.
    pub async fn watch(
        &self,
        key: &str,
        seen: Option<u64>,
        wait: Duration,
    ) -> Result<Watched, StateError> {
        let full = self.full(key)?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = self.inner.changes.subscribe();
        rx.borrow_and_update();
        let mut entry = self.inner.backend.get(&full).await?;
        let rev_of = |e: &Option<Entry>| e.as_ref().map_or(0, |e| e.rev);
        let seen = seen.unwrap_or_else(|| rev_of(&entry));
        let poll = self.inner.backend.poll();
        loop {
            if rev_of(&entry) != seen {
                return Ok(Watched::Changed { entry });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Watched::TimedOut { entry });
            }
            let mut until = deadline;
            if let Some(p) = poll {
                until = until.min(now + p);
            }
            if let Some(exp) = entry.as_ref().and_then(|e| e.expires_ms) {
                let left = Duration::from_millis(exp.saturating_sub(now_ms()));
                // A hair past the expiry, so the re-read finds it gone.
                until = until.min(now + left + Duration::from_millis(1));
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                    }
                }
                () = tokio::time::sleep_until(until) => {}
            }
            entry = self.inner.backend.get(&full).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_made_valid() {
        assert_eq!(namespace_of("ship"), "ship");
        assert_eq!(namespace_of("build and test"), "build-and-test");
        assert_eq!(namespace_of("a:b"), "a-b");
        assert_eq!(namespace_of("::"), "relay");
        assert_eq!(namespace_of(&"x".repeat(500)).len(), MAX_NAMESPACE_BYTES);
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("plan/step-1").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
