//! The run directory `.agent-relay/runs/<run-id>/`: the workflow as run, the append-only
//! event log, each step's outputs and logs, and the final result.
//!
//! ```text
//! <run-id>/
//!   workflow.yaml        the source text as it was run
//!   run.json             run id, file, workflow, variables, rehearsal flag
//!   events.jsonl         one event per line, appended and flushed as it happens
//!   steps/<step>/        attempt-<n>.txt (output of each attempt), output.txt (final),
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

/// A step name as a safe directory name.
pub fn step_dir_name(step: &str) -> String {
    step.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
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
        tokio::fs::create_dir_all(&steps)
            .await
            .map_err(err(&steps))?;
        let path = dir.join("events.jsonl");
        let events = tokio::fs::OpenOptions::new()
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
        let events = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(err(&path))?;
        Ok(RunStore { dir, events })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of one step (created on demand).
    pub async fn step_dir(&self, step: &str) -> Result<PathBuf, StoreError> {
        let d = self.dir.join("steps").join(step_dir_name(step));
        tokio::fs::create_dir_all(&d).await.map_err(err(&d))?;
        Ok(d)
    }

    /// Appends one event as a JSON line and flushes it.
    pub async fn append(&mut self, event: &Event) -> Result<(), StoreError> {
        let path = self.dir.join("events.jsonl");
        let mut line = serde_json::to_vec(event).map_err(|e| StoreError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        self.events.write_all(&line).await.map_err(err(&path))?;
        self.events.flush().await.map_err(err(&path))?;
        Ok(())
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

/// Writes `path` by writing a sibling temp file and renaming it over, so a reader (or a
/// crash) never sees half a file.
pub async fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut f = tokio::fs::File::create(&tmp).await.map_err(err(&tmp))?;
    f.write_all(contents).await.map_err(err(&tmp))?;
    // No fsync: the rename makes the write all-or-nothing for readers and for a killed
    // coordinator; surviving power loss is not worth a sync per step on the hot path.
    f.flush().await.map_err(err(&tmp))?;
    drop(f);
    tokio::fs::rename(&tmp, path).await.map_err(err(path))
}
