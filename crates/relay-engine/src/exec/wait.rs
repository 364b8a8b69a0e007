//! Waiting for local files (a `waitFor` step with no provider, or `provider: local`):
//! the globs are read again every poll, and a path that appears is `created`, one whose
//! size or modification time changes is `updated`, one that goes away is `deleted`. The
//! first event of a wanted kind ends the wait, described as JSON (the polling itself is
//! `poll.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the globs are read.
const POLL: Duration = Duration::from_millis(100);

pub use crate::poll::FileEvent;
use crate::poll::{diff, snapshot};

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    /// A wanted event.
    Event(FileEvent),
    /// The timeout ran out.
    TimedOut,
    /// The run was cancelled.
    Cancelled,
}

/// Waits in `cwd` for an event of a kind in `events` on a path matching `globs`.
pub async fn wait(
    cwd: &Path,
    globs: &[String],
    events: &[String],
    timeout: Option<Duration>,
    cancel: &CancellationToken,
) -> WaitEnd {
    let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
    let read = |cwd: PathBuf, globs: Vec<String>| {
        tokio::task::spawn_blocking(move || snapshot(&cwd, &globs))
    };
    let mut before = read(cwd.to_path_buf(), globs.to_vec())
        .await
        .unwrap_or_default();
    loop {
        let sleep = tokio::time::sleep(POLL);
        tokio::select! {
            () = cancel.cancelled() => return WaitEnd::Cancelled,
            () = sleep => {}
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return WaitEnd::TimedOut;
        }
        let after = read(cwd.to_path_buf(), globs.to_vec())
            .await
            .unwrap_or_default();
        if let Some(e) = diff(&before, &after, events) {
            return WaitEnd::Event(e);
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::Seen;
    use std::time::SystemTime;

    #[test]
    fn events_are_told_apart_and_filtered() {
        let p = |s: &str| PathBuf::from(s);
        let t0 = SystemTime::UNIX_EPOCH;
        let before: Seen = [(p("a"), (1, Some(t0))), (p("b"), (1, Some(t0)))].into();
        let after: Seen = [(p("a"), (2, Some(t0))), (p("c"), (1, Some(t0)))].into();
        assert_eq!(diff(&before, &after, &[]).unwrap().event, "updated");
        let only = |e: &str| vec![e.to_string()];
        assert_eq!(diff(&before, &after, &only("created")).unwrap().path, "c");
        assert_eq!(diff(&before, &after, &only("deleted")).unwrap().path, "b");
        assert_eq!(diff(&before, &before, &[]), None);
    }

    #[tokio::test]
    async fn a_file_another_process_creates_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out/ready.json");
        let writer = {
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, "{}").unwrap();
            })
        };
        let end = wait(
            dir.path(),
            &["out/*.json".into()],
            &["created".into()],
            Some(Duration::from_secs(20)),
            &CancellationToken::new(),
        )
        .await;
        writer.await.unwrap();
        assert_eq!(
            end,
            WaitEnd::Event(FileEvent {
                event: "created",
                path: target.display().to_string()
            })
        );
        let end = wait(
            dir.path(),
            &["never/*".into()],
            &[],
            Some(Duration::from_millis(250)),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(end, WaitEnd::TimedOut);
    }
}
