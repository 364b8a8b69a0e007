//! The backend a run uses, picked at run time from the workflow's `state:`.

use std::time::Duration;

use crate::backend::{Expect, Put, StateBackend, Write};
use crate::memory::MemoryStore;
use crate::redis_store::RedisStore;
use crate::sqlite::SqliteStore;
use crate::{Entry, StateError};

/// One of the three backends.
#[derive(Debug)]
pub enum Backend {
    /// In the coordinator's memory, persisted in the run directory.
    Memory(MemoryStore),
    /// A Redis server.
    Redis(RedisStore),
    /// An SQLite file.
    Database(SqliteStore),
}

impl StateBackend for Backend {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StateError> {
        match self {
            Backend::Memory(b) => b.get(key).await,
            Backend::Redis(b) => b.get(key).await,
            Backend::Database(b) => b.get(key).await,
        }
    }

    async fn put(&self, key: &str, write: &Write<'_>, expect: &Expect) -> Result<Put, StateError> {
        match self {
            Backend::Memory(b) => b.put(key, write, expect).await,
            Backend::Redis(b) => b.put(key, write, expect).await,
            Backend::Database(b) => b.put(key, write, expect).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        match self {
            Backend::Memory(b) => b.delete(key).await,
            Backend::Redis(b) => b.delete(key).await,
            Backend::Database(b) => b.delete(key).await,
        }
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, StateError> {
        match self {
            Backend::Memory(b) => b.list(prefix, limit).await,
            Backend::Redis(b) => b.list(prefix, limit).await,
            Backend::Database(b) => b.list(prefix, limit).await,
        }
    }

    fn poll(&self) -> Option<Duration> {
        match self {
            Backend::Memory(b) => b.poll(),
            Backend::Redis(b) => b.poll(),
            Backend::Database(b) => b.poll(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Memory(b) => b.name(),
            Backend::Redis(b) => b.name(),
            Backend::Database(b) => b.name(),
        }
    }
}
