//! Opening a run's state from the workflow's `state:` settings: which backend, where it
//! is, the namespace (default: the workflow's name) and the default TTL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_spec::{StateBackend as Kind, StateConfig};

use crate::memory::{BOARD_FILE, MemoryStore};
use crate::redis_store::RedisStore;
use crate::sqlite::SqliteStore;
use crate::{Backend, State, StateError};

/// The Redis server used when `state.url` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The SQLite file used when `state.url` is not set, relative to the working directory.
pub const DEFAULT_DATABASE: &str = ".agent-relay/state.sqlite";

/// Where a run is, for the defaults.
#[derive(Debug, Clone)]
pub struct StateSettings<'a> {
    /// The `state:` settings, if the file has them.
    pub config: Option<&'a StateConfig>,
    /// The run directory (the memory backend's file lives there).
    pub run_dir: &'a Path,
    /// The working directory (relative database paths start there).
    pub workdir: &'a Path,
    /// The workflow's name (the default namespace).
    pub workflow: &'a str,
}

/// Why the state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The `url` does not fit the backend.
    #[error("state.url `{url}`: {why}")]
    BadUrl {
        /// The url.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The backend is not reachable or not usable.
    #[error(transparent)]
    Backend(#[from] StateError),
}

/// The database file `url` names (`sqlite:PATH`, `sqlite://PATH`, `file:PATH` or a path),
/// relative to `workdir`.
pub fn database_path(url: Option<&str>, workdir: &Path) -> Result<PathBuf, OpenError> {
    let raw = url.unwrap_or(DEFAULT_DATABASE);
    let path = ["sqlite://", "sqlite:", "file://", "file:"]
        .iter()
        .find_map(|p| raw.strip_prefix(p))
        .unwrap_or(raw);
    if path.is_empty() || path.contains('\0') {
        return Err(OpenError::BadUrl {
            url: raw.to_owned(),
            why: "no file path".into(),
        });
    }
    Ok(workdir.join(path))
}

/// The Redis server `url` names (the default when `None`).
fn redis_url(url: Option<&str>) -> Result<&str, OpenError> {
    let url = url.unwrap_or(DEFAULT_REDIS_URL);
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(url)
    } else {
        Err(OpenError::BadUrl {
            url: url.to_owned(),
            why: "a redis url starts with redis:// (or rediss:// for TLS)".into(),
        })
    }
}

/// Checks the `state:` settings without opening anything: whether the url fits the
/// backend (what `validate` can tell before a run).
pub fn check(config: Option<&StateConfig>) -> Result<(), OpenError> {
    let Some(cfg) = config else { return Ok(()) };
    match cfg.backend.unwrap_or(Kind::Memory) {
        Kind::Memory => Ok(()),
        Kind::Redis => redis_url(cfg.url.as_deref()).map(|_| ()),
        Kind::Database => database_path(cfg.url.as_deref(), Path::new(".")).map(|_| ()),
    }
}

/// Opens the state the settings describe. Connects to Redis (a server that does not
/// answer is an error now, before any step runs) or opens the SQLite file.
pub async fn open(s: &StateSettings<'_>) -> Result<State, OpenError> {
    let cfg = s.config.cloned().unwrap_or_default();
    let namespace = cfg.namespace.as_deref().unwrap_or(s.workflow);
    let ttl = cfg.ttl_ms.map(Duration::from_millis);
    let namespace_now = crate::namespace_of(namespace);
    let backend = match cfg.backend.unwrap_or(Kind::Memory) {
        Kind::Memory => {
            let path = s.run_dir.join(BOARD_FILE);
            let ns = namespace_now.clone();
            let store = tokio::task::spawn_blocking(move || MemoryStore::open(&path, &ns))
                .await
                .map_err(|e| StateError::Backend {
                    backend: "memory",
                    message: e.to_string(),
                })??;
            Backend::Memory(store)
        }
        Kind::Redis => Backend::Redis(RedisStore::connect(redis_url(cfg.url.as_deref())?).await?),
        Kind::Database => {
            let path = database_path(cfg.url.as_deref(), s.workdir)?;
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StateError::Backend {
                    backend: "database",
                    message: e.to_string(),
                })??;
            Backend::Database(store)
        }
    };
    Ok(State::new(backend, &namespace_now, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_files_relative_to_the_working_directory() {
        let wd = Path::new("/w");
        assert_eq!(
            database_path(None, wd).unwrap(),
            Path::new("/w/.agent-relay/state.sqlite")
        );
        assert_eq!(
            database_path(Some("sqlite:db/s.db"), wd).unwrap(),
            Path::new("/w/db/s.db")
        );
        assert_eq!(
            database_path(Some("/abs/s.db"), wd).unwrap(),
            Path::new("/abs/s.db")
        );
        assert!(database_path(Some("sqlite:"), wd).is_err());
    }

    #[test]
    fn urls_that_do_not_fit_the_backend_are_found_before_a_run() {
        let cfg = |backend, url: &str| StateConfig {
            backend: Some(backend),
            url: Some(url.to_owned()),
            ..StateConfig::default()
        };
        let e = check(Some(&cfg(Kind::Redis, "garbage"))).unwrap_err();
        assert!(e.to_string().contains("state.url `garbage`"), "{e}");
        assert!(check(Some(&cfg(Kind::Redis, "redis://h:6379/"))).is_ok());
        assert!(check(Some(&cfg(Kind::Database, "sqlite:"))).is_err());
        assert!(check(Some(&cfg(Kind::Database, "sqlite:s.db"))).is_ok());
        assert!(check(None).is_ok());
    }
}
