//! The runs page's rows, one per run directory, each read again only when its run's files
//! changed: a finished run once, a live one through a [`RunModel`] read on as it grows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use relay_engine::runs::{self, RunInfo, Standing};
use relay_engine::snapshot::{StepRecord, StepState};
use serde::Serialize;

use crate::follow::RunModel;

/// One row of the runs page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    /// Run id.
    pub run_id: String,
    /// Workflow.
    pub workflow: String,
    /// Where it stands.
    pub status: Standing,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took, when finished.
    pub duration_ms: Option<u64>,
    /// Steps in the workflow.
    pub steps: usize,
    /// Steps completed.
    pub done: usize,
    /// Steps failed.
    pub failed: usize,
    /// Steps running.
    pub running: usize,
}

fn counts<'a>(states: impl Iterator<Item = StepState> + 'a) -> (usize, usize, usize, usize) {
    let (mut n, mut done, mut failed, mut running) = (0, 0, 0, 0);
    for s in states {
        n += 1;
        match s {
            StepState::Completed => done += 1,
            StepState::Failed => failed += 1,
            StepState::Running => running += 1,
            _ => {}
        }
    }
    (n, done, failed, running)
}

impl From<&RunInfo> for RunRow {
    fn from(r: &RunInfo) -> Self {
        let (steps, done, failed, running) = counts(r.steps.iter().map(|s| s.status));
        RunRow {
            run_id: r.run_id.clone(),
            workflow: r.workflow.clone(),
            status: r.status,
            started_at: r.started_at.clone(),
            duration_ms: r.duration_ms,
            steps,
            done,
            failed,
            running,
        }
    }
}

impl From<&RunModel> for RunRow {
    fn from(m: &RunModel) -> Self {
        let snap = m.snapshot();
        let (steps, done, failed, running) = counts(
            snap.workflow_steps()
                .map(|(_, r): (&str, StepRecord)| r.state),
        );
        RunRow {
            run_id: snap.run_id.clone().unwrap_or_else(|| {
                m.dir()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            workflow: snap.workflow.clone().unwrap_or_default(),
            status: m.standing(),
            started_at: snap.started_at.clone(),
            duration_ms: snap.duration_ms,
            steps,
            done,
            failed,
            running,
        }
    }
}

/// Size and change time of the events log, and whether the lock is there: what a row is
/// read again for.
type Stamp = (Option<(u64, SystemTime)>, bool);

fn stamp(dir: &Path) -> Stamp {
    let events = std::fs::metadata(dir.join("events.jsonl"))
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    (events, relay_engine::lock::lock_path(dir).exists())
}

struct Entry {
    stamp: Stamp,
    row: RunRow,
    /// Kept while the run is live.
    model: Option<RunModel>,
}

/// What a refresh changed.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct RowsChange {
    /// Rows new or changed.
    pub changed: Vec<RunRow>,
    /// Run ids gone.
    pub removed: Vec<String>,
}

impl RowsChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The runs of a directory.
pub struct RunsList {
    root: PathBuf,
    /// By run directory name (run ids sort by time).
    entries: BTreeMap<String, Entry>,
}

impl RunsList {
    /// The runs under `workdir`, none read yet.
    pub fn new(workdir: &Path) -> RunsList {
        RunsList {
            root: relay_engine::store::runs_root(workdir),
            entries: BTreeMap::new(),
        }
    }

    /// The runs under `workdir`, read.
    pub fn read(workdir: &Path) -> RunsList {
        let mut l = RunsList::new(workdir);
        l.refresh();
        l
    }

    /// Where the runs are.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Looks at every run directory; reads again the rows whose files changed.
    pub fn refresh(&mut self) -> RowsChange {
        let mut seen: Vec<String> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("events.jsonl").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        seen.sort();
        let mut change = RowsChange::default();
        for gone in self
            .entries
            .keys()
            .filter(|k| seen.binary_search(k).is_err())
            .cloned()
            .collect::<Vec<_>>()
        {
            if let Some(e) = self.entries.remove(&gone) {
                change.removed.push(e.row.run_id);
            }
        }
        for name in seen {
            let dir = self.root.join(&name);
            let now = stamp(&dir);
            let row = match self.entries.get_mut(&name) {
                Some(e) if e.stamp == now && e.row.status != Standing::Running => continue,
                Some(Entry {
                    model: Some(m),
                    stamp,
                    row,
                }) => {
                    *stamp = now;
                    m.refresh();
                    let r = RunRow::from(&*m);
                    if r == *row {
                        continue;
                    }
                    r
                }
                _ => {
                    let info = runs::run_info(&dir);
                    let model =
                        (info.status == Standing::Running).then(|| RunModel::open_states(&dir));
                    let row = RunRow::from(&info);
                    self.entries.insert(
                        name.clone(),
                        Entry {
                            stamp: now,
                            row: row.clone(),
                            model,
                        },
                    );
                    change.changed.push(row);
                    continue;
                }
            };
            if let Some(e) = self.entries.get_mut(&name) {
                if row.status != Standing::Running {
                    e.model = None;
                }
                e.row = row.clone();
            }
            change.changed.push(row);
        }
        change
    }

    /// Every row, newest run first.
    pub fn rows(&self) -> Vec<RunRow> {
        self.entries.values().rev().map(|e| e.row.clone()).collect()
    }

    /// The run directories.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.entries.keys().map(|k| self.root.join(k)).collect()
    }

    /// Whether any run is live.
    pub fn any_live(&self) -> bool {
        self.entries
            .values()
            .any(|e| e.row.status == Standing::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(root: &Path, id: &str, last: &str) -> PathBuf {
        let d = root.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("events.jsonl"),
            format!(
                "{{\"ts\":\"2026-03-04T10:00:00.000Z\",\"type\":\"run:started\",\"runId\":\"{id}\",\"workflow\":\"w\",\"pattern\":\"dag\",\"steps\":[\"a\"]}}\n{last}"
            ),
        )
        .unwrap();
        d
    }

    #[test]
    fn rows_are_read_again_only_when_their_run_changed() {
        let wd = tempfile::tempdir().unwrap();
        let mut l = RunsList::new(wd.path());
        assert!(l.refresh().is_empty(), "no runs directory yet");
        let root = relay_engine::store::runs_root(wd.path());
        run_dir(&root, "20260304-100000-000-aaaa", "");
        let c = l.refresh();
        assert_eq!(c.changed.len(), 1);
        assert_eq!(c.changed[0].status, Standing::Interrupted);
        assert!(l.refresh().is_empty(), "unchanged");
        let d = run_dir(
            &root,
            "20260304-110000-000-bbbb",
            "{\"ts\":\"2026-03-04T11:00:01.000Z\",\"type\":\"run:completed\",\"durationMs\":1000}\n",
        );
        let c = l.refresh();
        assert_eq!(
            c.changed
                .iter()
                .map(|r| (r.run_id.as_str(), r.status))
                .collect::<Vec<_>>(),
            [("20260304-110000-000-bbbb", Standing::Completed)],
            "only the new run"
        );
        assert_eq!(
            l.rows()
                .iter()
                .map(|r| r.run_id.as_str())
                .collect::<Vec<_>>(),
            ["20260304-110000-000-bbbb", "20260304-100000-000-aaaa"],
            "newest first"
        );
        std::fs::remove_dir_all(&d).unwrap();
        let c = l.refresh();
        assert_eq!(c.removed, ["20260304-110000-000-bbbb"]);
        assert!(!l.any_live());
    }
}
