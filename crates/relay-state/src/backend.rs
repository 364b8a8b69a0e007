//! The one trait every backend implements (the enum that picks one at run time is in
//! `any.rs`).
//! Backends see full keys (`NAMESPACE:KEY`, made by [`crate::State`]) and only store:
//! they give each write a revision, hide what has expired, and compare-and-set
//! atomically. Everything else (key rules, the default TTL, watching, the record of
//! writes) is in `State`, once for all of them.

use std::future::Future;
use std::time::Duration;

use crate::{Entry, StateError};

/// One write.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The value.
    pub value: &'a str,
    /// Who writes.
    pub by: &'a str,
    /// How long the entry lives; forever when `None`.
    pub ttl: Option<Duration>,
}

/// What the key must hold for a write to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Anything (a plain set).
    Any,
    /// Nothing: the key is unset or expired.
    Absent,
    /// Exactly this value.
    Value(String),
}

impl Expect {
    /// Whether `current` satisfies it.
    pub fn met_by(&self, current: Option<&Entry>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Value(v) => current.is_some_and(|e| e.value == *v),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new entry.
    Written(Entry),
    /// The expectation was not met; what the key holds.
    Mismatch(Option<Entry>),
}

/// A place to keep state.
pub trait StateBackend: Send + Sync {
    /// The entry under `key`, unless unset or expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Entry>, StateError>> + Send;

    /// Writes `write` under `key` if `expect` is met, atomically.
    fn put(
        &self,
        key: &str,
        write: &Write<'_>,
        expect: &Expect,
    ) -> impl Future<Output = Result<Put, StateError>> + Send;

    /// Removes `key`; whether it was set (and not expired).
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// Up to `limit` live entries whose keys start with `prefix`.
    fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Entry)>, StateError>> + Send;

    /// How often a watcher should re-read, for writes made by others than this process
    /// (none when only this process can write).
    fn poll(&self) -> Option<Duration>;

    /// The backend's name in the format: `memory`, `redis`, `database`.
    fn name(&self) -> &'static str;
}
