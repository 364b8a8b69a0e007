//! One coordinator per run: a lock file in the run directory naming the process that
//! drives it. A lock whose process is gone (or whose pid now belongs to another process,
//! told apart by its start time) is stale and is taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Identity of a live process: pid plus its start time, so a reused pid is not mistaken
/// for the coordinator that died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

/// Start time of `pid`, if it is alive (zombies count as gone).
pub fn process_start(pid: u32) -> Option<u64> {
    relay_broker::procfs::stat(pid)
        .filter(|s| s.is_live())
        .map(|s| s.start)
}

impl Holder {
    /// This process.
    pub fn me() -> Holder {
        let pid = std::process::id();
        Holder {
            pid,
            start: process_start(pid).unwrap_or(0),
        }
    }

    /// Whether this holder is still the same live process.
    pub fn alive(&self) -> bool {
        process_start(self.pid).is_some_and(|s| s == self.start)
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut it = text.split_whitespace();
        Some(Holder {
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        })
    }
}

/// Why a run could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live coordinator drives the run.
    #[error("run {run_id} is being driven by another coordinator (pid {pid})")]
    Busy {
        /// The run.
        run_id: String,
        /// The live coordinator.
        pid: u32,
    },
    /// The lock file could not be written.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A held run lock; released (the file removed) on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// The lock file of the run in `dir`.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// Who holds the lock of the run in `dir`, if a live process does.
pub fn live_holder(dir: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(lock_path(dir)).ok()?;
    Holder::parse(&text).filter(Holder::alive)
}

impl RunLock {
    /// Takes the lock of the run in `dir`, taking over a stale one.
    pub fn acquire(dir: &Path, run_id: &str) -> Result<RunLock, LockError> {
        let path = lock_path(dir);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        for _ in 0..3 {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let me = Holder::me();
                    f.write_all(format!("{} {}\n", me.pid, me.start).as_bytes())
                        .map_err(io)?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match Holder::parse(&text) {
                        Some(h) if h.alive() => {
                            return Err(LockError::Busy {
                                run_id: run_id.to_string(),
                                pid: h.pid,
                            });
                        }
                        // Stale (dead holder) or unreadable (torn write): take it over.
                        // If two takers race, only one `create_new` succeeds.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        Err(LockError::Busy {
            run_id: run_id.to_string(),
            pid: 0,
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let l = RunLock::acquire(dir.path(), "r").unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path(), "r"),
            Err(LockError::Busy { pid, .. }) if pid == std::process::id()
        ));
        assert_eq!(live_holder(dir.path()), Some(Holder::me()));
        drop(l);
        assert!(live_holder(dir.path()).is_none());
        RunLock::acquire(dir.path(), "r").unwrap();
    }

    #[test]
    fn stale_lock_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        std::fs::write(lock_path(dir.path()), format!("{pid} 12345\n")).unwrap();
        assert!(live_holder(dir.path()).is_none());
        RunLock::acquire(dir.path(), "r").unwrap();
    }

    #[test]
    fn a_reused_pid_with_another_start_time_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me();
        std::fs::write(
            lock_path(dir.path()),
            format!("{} {}\n", me.pid, me.start + 1),
        )
        .unwrap();
        RunLock::acquire(dir.path(), "r").unwrap();
    }
}
