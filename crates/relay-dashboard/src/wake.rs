//! What wakes a live stream: the kernel's word (inotify) that a file that matters in a
//! watched directory was written, created, removed or renamed into place. Nothing is
//! looked at while nothing changes. Where inotify cannot be had (another system, or the
//! per-user limit reached), a timer stands in for it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// A directory to watch and the file names in it that matter (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    /// The directory.
    pub dir: PathBuf,
    /// Names that matter in it.
    pub names: Option<Vec<OsString>>,
}

impl Watched {
    /// Every change in `dir` matters.
    pub fn all(dir: PathBuf) -> Watched {
        Watched { dir, names: None }
    }

    /// Only changes to `names` in `dir` matter.
    pub fn only(dir: PathBuf, names: &[&str]) -> Watched {
        Watched {
            dir,
            names: Some(names.iter().map(OsString::from).collect()),
        }
    }
}

/// Waits for changes in watched directories.
pub struct Wake {
    #[cfg(target_os = "linux")]
    stream: Option<inotify::EventStream<Vec<u8>>>,
    /// Names that matter, by watch.
    #[cfg(target_os = "linux")]
    watches: HashMap<inotify::WatchDescriptor, Option<Vec<OsString>>>,
    /// Directories watched.
    dirs: HashMap<PathBuf, Option<Vec<OsString>>>,
    /// How often to look when there is no notification.
    fallback: Duration,
}

impl Wake {
    /// Notifications if the system gives them, else a look every `fallback`.
    pub fn new(fallback: Duration) -> Wake {
        Wake {
            #[cfg(target_os = "linux")]
            stream: inotify::Inotify::init()
                .and_then(|i| i.into_event_stream(vec![0u8; 4096]))
                .ok(),
            #[cfg(target_os = "linux")]
            watches: HashMap::new(),
            dirs: HashMap::new(),
            fallback,
        }
    }

    /// A timer only (for tests of what it stands in for).
    pub fn timer(fallback: Duration) -> Wake {
        Wake {
            #[cfg(target_os = "linux")]
            stream: None,
            #[cfg(target_os = "linux")]
            watches: HashMap::new(),
            dirs: HashMap::new(),
            fallback,
        }
    }

    /// Whether changes are notified (rather than looked for on a timer).
    pub fn notifies(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.stream.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Watches `w` unless it already is or does not exist yet; true when a watch was
    /// added now (what changed before it was added has not been seen).
    pub fn watch(&mut self, w: &Watched) -> bool {
        if self.dirs.contains_key(&w.dir) || !w.dir.is_dir() {
            return false;
        }
        #[cfg(target_os = "linux")]
        {
            use inotify::WatchMask;
            let Some(stream) = &self.stream else {
                return false;
            };
            let mask = WatchMask::MODIFY
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM;
            match stream.watches().add(&w.dir, mask) {
                Ok(wd) => {
                    self.watches.insert(wd, w.names.clone());
                }
                // Out of watches: the timer goes on looking for this one.
                Err(_) => return false,
            }
        }
        self.dirs.insert(w.dir.clone(), w.names.clone());
        true
    }

    /// Whether `dir` is watched.
    pub fn watches(&self, dir: &Path) -> bool {
        self.dirs.contains_key(dir)
    }

    /// Resolves when a file that matters changed, or at `deadline` (or, without
    /// notifications, at the next timer look, whichever comes first).
    pub async fn changed(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(stream) = &mut self.stream {
            use futures_util::StreamExt;
            let ended = loop {
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(e)) => {
                            if matters(&self.watches, &e) {
                                break false;
                            }
                        }
                        _ => break true,
                    },
                    _ = tokio::time::sleep_until(deadline) => break false,
                }
            };
            if ended {
                // Notifications ended: the timer looks from here on.
                self.stream = None;
                self.watches.clear();
                self.dirs.clear();
            }
            return;
        }
        let timer = Instant::now() + self.fallback;
        tokio::time::sleep_until(deadline.min(timer)).await;
    }

    /// Forgets the notifications already queued: the look about to happen covers them.
    pub fn drain(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(stream) = &mut self.stream {
            use futures_util::{FutureExt, StreamExt};
            while let Some(Some(Ok(_))) = stream.next().now_or_never() {}
        }
    }
}

/// Whether a notification is about a file that matters.
#[cfg(target_os = "linux")]
fn matters(
    watches: &HashMap<inotify::WatchDescriptor, Option<Vec<OsString>>>,
    e: &inotify::EventOwned,
) -> bool {
    if e.mask.contains(inotify::EventMask::Q_OVERFLOW) {
        return true;
    }
    match (watches.get(&e.wd), &e.name) {
        (Some(None), _) => true,
        (Some(Some(names)), Some(name)) => names.iter().any(|n| n == name),
        (Some(Some(_)), None) => false,
        // A watch that was removed (its directory went away).
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn a_write_to_a_file_that_matters_wakes_it_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wake::new(Duration::from_secs(3600));
        assert!(w.notifies(), "inotify is available on this system");
        assert!(w.watch(&Watched::only(dir.path().to_path_buf(), &["events.jsonl"])));
        assert!(
            !w.watch(&Watched::all(dir.path().to_path_buf())),
            "watched once"
        );
        std::fs::write(dir.path().join("state.json"), "{}").unwrap();
        let t = Instant::now();
        w.changed(Instant::now() + Duration::from_millis(300)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "a file that does not matter did not wake it"
        );
        let path = dir.path().join("events.jsonl");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
                .write_all(b"{}\n")
                .unwrap();
        });
        let t = Instant::now();
        w.changed(soon()).await;
        assert!(t.elapsed() < Duration::from_secs(9), "the append woke it");
        writer.join().unwrap();
        w.drain();
    }

    #[tokio::test]
    async fn a_directory_that_does_not_exist_yet_is_watched_once_it_does() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("steps").join("a");
        let mut w = Wake::new(Duration::from_secs(3600));
        assert!(!w.watch(&Watched::all(sub.clone())));
        assert!(!w.watches(&sub));
        std::fs::create_dir_all(&sub).unwrap();
        assert!(w.watch(&Watched::all(sub.clone())));
        std::fs::write(sub.join("attempt-1.pty"), "x").unwrap();
        let t = Instant::now();
        w.changed(soon()).await;
        assert!(t.elapsed() < Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn without_notifications_a_timer_looks() {
        let mut w = Wake::timer(Duration::from_millis(500));
        assert!(!w.notifies());
        let t = Instant::now();
        w.changed(t + Duration::from_secs(60)).await;
        assert_eq!(t.elapsed(), Duration::from_millis(500));
        let t = Instant::now();
        w.changed(t + Duration::from_millis(100)).await;
        assert_eq!(
            t.elapsed(),
            Duration::from_millis(100),
            "the deadline first"
        );
    }
}
