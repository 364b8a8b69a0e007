//! The run directory `.agent-relay/runs/<run-id>/`: the workflow as run, the append-only
//! event log, each step's outputs and logs, and the final result. Everything in it is
//! private to the user whatever the umask (directories 0700, files 0600): tasks,
//! transcripts and variables may hold secrets, and `resume` executes `workflow.yaml`.
//!
//! ```text
//! <run-id>/
//!   workflow.yaml        the source text as it was run
//!   run.json             run id, file, workflow, variables, rehearsal flag
//!   events.jsonl         one event per line, appended and flushed as it happens
//!   steps/<node>/        attempt-<n>.txt (output of each attempt), output.txt (final),
//!                        stderr.log, attempt-<n>.pty (raw terminal transcript)
//!   result.json          the summary printed by `--json`
//! ```

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::events::Event;

/// Why the run directory could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct StoreError {
    /// The file or directory.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_path_buf(),
        source,
    }
}

/// File whose presence tells a live coordinator that `agent-relay cancel` asked it to stop.
pub const CANCEL_REQUEST: &str = "cancel-requested";

/// The directory that holds every run under `workdir`.
pub fn runs_root(workdir: &Path) -> PathBuf {
    workdir.join(".agent-relay").join("runs")
}

/// Longest directory name made from a label before it is shortened with a hash.
const MAX_DIR_NAME: usize = 160;

/// A node label as a directory name, one-to-one: letters, digits, `-`, `_` and `.`
/// (not leading) stand for themselves, every other byte is `%` and two hex digits. So
/// `a/b`, `a b` and `a_b` get three directories, `..` cannot climb, and `draft#2` (a
/// review round) is not `draft_2` (a step). A name that would be very long keeps its
/// start and gets a hash of the whole label.
pub fn step_dir_name(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for (i, b) in label.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    if out.is_empty() {
        return "%".to_owned();
    }
    if out.len() > MAX_DIR_NAME {
        let mut cut = MAX_DIR_NAME - 18;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&format!("~{:016x}", fnv1a(label.as_bytes())));
    }
    out
}

/// FNV-1a, 64 bits: a stable hash (unlike std's, which is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Creates `dir` and its missing parents, private to the user.
pub async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)?;
        // An existing directory keeps its mode otherwise (or a umask of 077 loosened it).
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Options that create a file readable and writable by the user only.
pub fn private_file() -> tokio::fs::OpenOptions {
    let mut o = tokio::fs::OpenOptions::new();
    o.mode(0o600);
    o
}

/// An open run directory.
#[derive(Debug)]
pub struct RunStore {
    dir: PathBuf,
    events: tokio::fs::File,
}

impl RunStore {
    /// Creates the directory of run `run_id` under `workdir`.
    pub async fn create(workdir: &Path, run_id: &str) -> Result<Self, StoreError> {
        let dir = runs_root(workdir).join(run_id);
        let steps = dir.join("steps");
        create_private_dir(&steps).await.map_err(err(&steps))?;
        create_private_dir(&dir).await.map_err(err(&dir))?;
        let path = dir.join("events.jsonl");
        let events = private_file()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(err(&path))?;
        Ok(RunStore { dir, events })
    }

    /// Opens the existing directory of run `run_id` to append to it.
    pub async fn open(workdir: &Path, run_id: &str) -> Result<Self, StoreError> {
        let dir = runs_root(workdir).join(run_id);
        let path = dir.join("events.jsonl");
        let mut events = tokio::fs::OpenOptions::new()
            .append(true)
            .read(true)
            .open(&path)
            .await
            .map_err(err(&path))?;
        // A crash may have left half a line: what comes now starts a line of its own, so
        // only the torn line is lost.
        let len = events.metadata().await.map_err(err(&path))?.len();
        if len > 0 {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut last = [0u8; 1];
            events
                .seek(std::io::SeekFrom::Start(len - 1))
                .await
                .map_err(err(&path))?;
            events.read_exact(&mut last).await.map_err(err(&path))?;
            if last[0] != b'\n' {
                events.write_all(b"\n").await.map_err(err(&path))?;
            }
        }
        Ok(RunStore { dir, events })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the directory of node `label` is (see [`step_dir_name`]).
    pub fn step_dir_path(&self, label: &str) -> PathBuf {
        step_dir_of(&self.dir, label)
    }

    /// The directory of node `label` (created on demand).
    pub async fn step_dir(&self, label: &str) -> Result<PathBuf, StoreError> {
        let d = self.step_dir_path(label);
        create_private_dir(&d).await.map_err(err(&d))?;
        Ok(d)
    }

    /// Appends one event as a JSON line and flushes it.
    pub async fn append(&mut self, event: &Event) -> Result<(), StoreError> {
        self.append_all(std::slice::from_ref(event)).await
    }

    /// Appends events as JSON lines in one write, and flushes them.
    pub async fn append_all(&mut self, events: &[Event]) -> Result<(), StoreError> {
        let path = self.dir.join("events.jsonl");
        let mut buf = Vec::with_capacity(events.len() * 160);
        for event in events {
            serde_json::to_writer(&mut buf, event).map_err(|e| StoreError {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            buf.push(b'\n');
        }
        self.events.write_all(&buf).await.map_err(err(&path))?;
        self.events.flush().await.map_err(err(&path))?;
        Ok(())
    }

    /// Appends `bytes` to the file `rel` of the run directory (created, private).
    pub async fn append_to(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(rel);
        let mut f = private_file()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(err(&path))?;
        f.write_all(bytes).await.map_err(err(&path))?;
        f.flush().await.map_err(err(&path))
    }

    /// Writes a file in the run directory atomically (temp file, then rename).
    pub async fn write_file(&self, rel: &str, contents: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(rel), contents).await
    }

    /// Writes `value` as pretty JSON to `rel`.
    pub async fn write_json(&self, rel: &str, value: &impl Serialize) -> Result<(), StoreError> {
        let path = self.dir.join(rel);
        let text = serde_json::to_vec_pretty(value).map_err(|e| StoreError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &text).await
    }
}

/// The directory of node `label` in the run directory `run_dir`.
pub fn step_dir_of(run_dir: &Path, label: &str) -> PathBuf {
    run_dir.join("steps").join(step_dir_name(label))
}

/// Writes `path` by writing a sibling temp file and renaming it over, so a reader (or a
/// crash) never sees half a file. The file is private to the user.
pub async fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .await
        .map_err(err(&tmp))?;
    f.write_all(contents).await.map_err(err(&tmp))?;
    // No fsync: the rename makes the write all-or-nothing for readers and for a killed
    // coordinator; surviving power loss is not worth a sync per step on the hot path.
    f.flush().await.map_err(err(&tmp))?;
    drop(f);
    tokio::fs::rename(&tmp, path).await.map_err(err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_directories_never_collide_or_climb() {
        let labels = [
            "a/b", "a b", "a_b", "a%2fb", "..", ".", ".x", "draft#2", "draft_2", "x:y", "",
        ];
        let names: Vec<String> = labels.iter().map(|l| step_dir_name(l)).collect();
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), labels.len(), "{names:?}");
        for n in &names {
            assert!(
                !n.contains('/') && n != "." && n != ".." && !n.starts_with('.'),
                "{n}"
            );
        }
        assert_eq!(step_dir_name("build_docs-v2.1"), "build_docs-v2.1");
    }

    #[test]
    fn long_labels_are_shortened_but_stay_distinct() {
        let a = "x".repeat(300);
        let b = format!("{}y", "x".repeat(299));
        let (na, nb) = (step_dir_name(&a), step_dir_name(&b));
        assert!(na.len() <= MAX_DIR_NAME && nb.len() <= MAX_DIR_NAME);
        assert_ne!(na, nb);
    }
}
