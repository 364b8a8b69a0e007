//! A run directory followed as it grows: `events.jsonl`, `messages.jsonl` and
//! `trajectory.jsonl` are read on from where the last look stopped and folded one line
//! at a time (the snapshot, the timeline, the messages), and the stored workflow is read
//! once. A look at a live run therefore costs what the run wrote since the last look.
//! The same model gives a finished run's pages (opened, read once, viewed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use relay_engine::events::Event;
use relay_engine::runs::Standing;
use relay_engine::snapshot::{Snapshot, StepRecord};
use relay_engine::trajectory::Decision;
use relay_messaging::persist::{MESSAGES_FILE, MessageBook};

use crate::graph::{self, GraphStep};
use crate::tail::{LineTail, Lines};
use crate::view::{AttemptFiles, Folder, NodeView, RunView, StepDetail, StepView, read_tail};

/// The files of a run directory a live page follows.
pub const FOLLOWED: [&str; 4] = ["events.jsonl", MESSAGES_FILE, "trajectory.jsonl", "lock"];

/// Each step's dependencies and verification, as the stored workflow says.
type Facts = BTreeMap<String, (Vec<String>, Option<serde_json::Value>)>;

/// A run, folded from its directory as far as it has been read.
#[derive(Debug)]
pub struct RunModel {
    dir: PathBuf,
    events: LineTail,
    messages: LineTail,
    trajectory: LineTail,
    snap: Snapshot,
    folder: Folder,
    book: MessageBook,
    decisions: Vec<Decision>,
    /// The workflow the facts were read for, and the facts.
    facts: Option<(String, Facts)>,
    /// Whether the stored workflow is read for the facts (only the run page shows them).
    want_facts: bool,
    standing: Standing,
}

impl RunModel {
    /// The run in `dir`, read as far as it goes now.
    pub fn open(dir: &Path) -> RunModel {
        RunModel::opened(dir, true)
    }

    /// The run in `dir` without its steps' dependencies and verification (the stored
    /// workflow is not read): what the runs page and the agent page need.
    pub fn open_states(dir: &Path) -> RunModel {
        RunModel::opened(dir, false)
    }

    fn opened(dir: &Path, want_facts: bool) -> RunModel {
        let mut m = RunModel {
            dir: dir.to_path_buf(),
            events: LineTail::new(&dir.join("events.jsonl")),
            messages: LineTail::new(&dir.join(MESSAGES_FILE)),
            trajectory: LineTail::new(&dir.join(relay_engine::trajectory::FILE)),
            snap: Snapshot::default(),
            folder: Folder::default(),
            book: MessageBook::default(),
            decisions: Vec::new(),
            facts: None,
            want_facts,
            standing: Standing::Interrupted,
        };
        m.refresh();
        m
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the run stands, as of the last look.
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// The snapshot folded so far.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Reads what the run's files gained since the last look; whether anything its pages
    /// show changed. Unreadable lines are skipped (`status` reports them).
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        // A file that cannot be read now is read on at the next look.
        if let Ok(lines) = self.events.read() {
            if matches!(lines, Lines::Restarted(_)) {
                self.snap = Snapshot::default();
                self.folder = Folder::default();
                changed = true;
            }
            for line in lines.lines() {
                if let Ok(e) = serde_json::from_str::<Event>(line) {
                    self.snap.apply(&e);
                    self.folder.apply(&e);
                    changed = true;
                }
            }
        }
        if let Ok(lines) = self.messages.read() {
            if matches!(lines, Lines::Restarted(_)) {
                self.book = MessageBook::default();
                changed = true;
            }
            for line in lines.lines() {
                changed |= matches!(self.book.apply_line(line), Ok(Some(_)));
            }
        }
        if let Ok(lines) = self.trajectory.read() {
            if matches!(lines, Lines::Restarted(_)) {
                self.decisions.clear();
                changed = true;
            }
            let before = self.decisions.len();
            self.decisions.extend(
                lines
                    .lines()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Decision>(l).ok()),
            );
            changed |= self.decisions.len() != before;
        }
        if let Some(wf) = &self.snap.workflow
            && self.want_facts
            && self.facts.as_ref().is_none_or(|(w, _)| w != wf)
        {
            self.facts = Some((wf.clone(), workflow_facts(&self.dir, wf)));
            changed = true;
        }
        let now = standing(&self.snap, &self.dir);
        if now != self.standing {
            self.standing = now;
            changed = true;
        }
        changed
    }

    fn facts_of(&self, step: &str) -> (Vec<String>, Option<serde_json::Value>) {
        self.facts
            .as_ref()
            .and_then(|(_, f)| f.get(step).cloned())
            .unwrap_or_default()
    }

    /// The run as its page shows it.
    pub fn view(&self) -> RunView {
        let snap = &self.snap;
        let folded = self.folder.folded();
        let mut nodes: BTreeMap<&str, Vec<NodeView>> = BTreeMap::new();
        for (label, rec) in &snap.steps {
            if let Some(step) = crate::view::step_of(label, &snap.step_order)
                && step != label
            {
                nodes.entry(step).or_default().push(NodeView {
                    label: label.clone(),
                    status: rec.state,
                    attempts: rec.attempts,
                });
            }
        }
        let steps: Vec<StepView> = snap
            .workflow_steps()
            .map(|(name, rec)| {
                let (deps, check) = self.facts_of(name);
                let node_views = nodes.remove(name).unwrap_or_default();
                let agent = folded.agents.get(name).cloned().or_else(|| {
                    node_views
                        .iter()
                        .rev()
                        .find_map(|n| folded.agents.get(&n.label).cloned())
                });
                StepView {
                    name: name.to_owned(),
                    status: rec.state,
                    attempts: rec.attempts,
                    exit_code: rec.exit_code,
                    duration_ms: rec.duration_ms,
                    reason: rec.reason,
                    agent,
                    depends_on: deps,
                    nodes: node_views,
                    verification: check,
                }
            })
            .collect();
        RunView {
            run_id: snap.run_id.clone().unwrap_or_else(|| dir_name(&self.dir)),
            workflow: snap.workflow.clone().unwrap_or_default(),
            status: self.standing,
            reason: snap.reason.clone(),
            started_at: snap.started_at.clone(),
            duration_ms: snap.duration_ms.or(Some(folded.elapsed_ms)),
            pattern: folded.pattern.clone(),
            graph_svg: graph::render(&graph_steps(&steps)),
            steps,
            attempts: folded.attempts.clone(),
            messages: self.book.messages().cloned().collect(),
            questions: folded.questions.clone(),
            approvals: folded.approvals.clone(),
            paused: folded.paused && self.standing == Standing::Running,
            trajectory: self.decisions.clone(),
        }
    }

    /// The node `step` as its agent page shows it; `None` when the run never mentioned it.
    pub fn step_detail(&self, step: &str) -> Option<StepDetail> {
        let snap = &self.snap;
        let rec: StepRecord = snap.steps.get(step).cloned().or_else(|| {
            snap.step_order.iter().any(|s| s == step).then(|| {
                snap.workflow_steps()
                    .find(|(n, _)| *n == step)
                    .map(|(_, r)| r)
            })?
        })?;
        let sdir = relay_engine::store::step_dir_of(&self.dir, step);
        let attempts = (1..=rec.attempts)
            .map(|n| AttemptFiles {
                attempt: n,
                output: read_tail(&sdir.join(format!("attempt-{n}.txt"))),
                transcript: sdir.join(format!("attempt-{n}.pty")).exists(),
            })
            .collect();
        Some(StepDetail {
            run_id: snap.run_id.clone().unwrap_or_else(|| dir_name(&self.dir)),
            step: step.to_owned(),
            status: rec.state,
            agent: self.folder.folded().agents.get(step).cloned(),
            reason: rec.reason.clone(),
            output: read_tail(&sdir.join("output.txt")),
            stderr: read_tail(&sdir.join("stderr.log")).filter(|s| !s.trim().is_empty()),
            attempts,
            live: self.standing == Standing::Running,
        })
    }
}

/// The steps as the graph draws them.
pub fn graph_steps(steps: &[StepView]) -> Vec<GraphStep> {
    steps
        .iter()
        .map(|s| GraphStep {
            name: s.name.clone(),
            status: s.status,
            deps: s.depends_on.clone(),
            nodes: s
                .nodes
                .iter()
                .map(|n| (n.label.clone(), n.status))
                .collect(),
        })
        .collect()
}

/// The run in `dir`, as its page shows it.
pub fn run_view(dir: &Path) -> RunView {
    RunModel::open(dir).view()
}

/// The node `step` of the run in `dir`; `None` when the run never mentioned it.
pub fn step_detail(dir: &Path, step: &str) -> Option<StepDetail> {
    RunModel::open_states(dir).step_detail(step)
}

/// Each step's dependencies and verification, from the workflow stored in the run.
fn workflow_facts(dir: &Path, workflow: &str) -> Facts {
    let mut facts = BTreeMap::new();
    let Ok(loaded) = relay_spec::load_file(&dir.join("workflow.yaml")) else {
        return facts;
    };
    let file = &loaded.file;
    let Some(wf) = file
        .workflows
        .iter()
        .find(|w| w.name == workflow)
        .or(file.workflows.first())
    else {
        return facts;
    };
    let g = relay_spec::graph::StepGraph::for_workflow(file, wf);
    for (i, s) in wf.steps.iter().enumerate() {
        let deps = g
            .waits_for(relay_spec::graph::StepIdx(i))
            .iter()
            .filter_map(|d| wf.steps.get(d.get()).map(|x| x.name.clone()))
            .collect();
        let check = s
            .verification
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok());
        facts.entry(s.name.clone()).or_insert((deps, check));
    }
    facts
}

/// Where the run stands, from its snapshot and whether a coordinator holds its lock.
fn standing(snap: &Snapshot, dir: &Path) -> Standing {
    use relay_engine::RunStatus;
    match snap.status {
        Some(RunStatus::Completed) => Standing::Completed,
        Some(RunStatus::Failed) => Standing::Failed,
        Some(RunStatus::Cancelled) => Standing::Cancelled,
        Some(RunStatus::NeedsHuman) => Standing::NeedsHuman,
        None if relay_engine::lock::live_holder(dir).is_some() => Standing::Running,
        None => Standing::Interrupted,
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_engine::events::EventKind;
    use relay_engine::snapshot::StepState;
    use std::io::Write;

    fn line(kind: EventKind) -> String {
        let mut s = serde_json::to_string(&Event {
            ts: "2026-03-04T10:00:00.000Z".into(),
            kind,
        })
        .unwrap();
        s.push('\n');
        s
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn started() -> String {
        line(EventKind::RunStarted {
            run_id: "r1".into(),
            workflow: "main".into(),
            pattern: "dag".into(),
            max_concurrency: None,
            steps: vec!["a".into(), "b".into()],
            rehearsal: false,
        })
    }

    #[test]
    fn a_growing_run_is_folded_from_what_it_appended() {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("events.jsonl");
        std::fs::write(
            dir.path().join("workflow.yaml"),
            "name: t\nagents:\n  - {name: x, cli: claude}\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: x, task: t}\n      - {name: b, agent: x, dependsOn: [a], task: t}\n",
        )
        .unwrap();
        append(&ev, &started());
        let mut m = RunModel::open(dir.path());
        let v = m.view();
        assert_eq!(v.run_id, "r1");
        assert_eq!(v.steps[1].depends_on, vec!["a".to_string()]);
        let light = RunModel::open_states(dir.path()).view();
        assert!(
            light.steps[1].depends_on.is_empty(),
            "the workflow is not read"
        );
        assert_eq!(light.steps[1].status, v.steps[1].status);
        assert!(!m.refresh(), "nothing new, nothing changed");
        let read = m.events.offset();
        append(
            &ev,
            &line(EventKind::StepStarted {
                step: "a".into(),
                attempt: 1,
                agent: Some("x".into()),
            }),
        );
        assert!(m.refresh());
        assert!(m.events.offset() > read, "read on from where it was");
        let v = m.view();
        assert_eq!(v.steps[0].status, StepState::Running);
        assert_eq!(v.steps[0].agent.as_deref(), Some("x"));
        assert_eq!(v.attempts.len(), 1);
        // A torn last line waits for its end.
        let done = line(EventKind::StepCompleted {
            step: "a".into(),
            attempt: 1,
            exit_code: Some(0),
            duration_ms: 5,
        });
        let (head, rest) = done.split_at(10);
        append(&ev, head);
        assert!(!m.refresh());
        append(&ev, rest);
        assert!(m.refresh());
        assert_eq!(m.view().steps[0].status, StepState::Completed);
    }

    #[test]
    fn approvals_and_pause_show_while_the_run_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let ev = dir.path().join("events.jsonl");
        append(&ev, &started());
        append(
            &ev,
            &line(EventKind::ApprovalRequested {
                step: "b".into(),
                approvers: vec!["ann".into()],
                timeout_ms: None,
            }),
        );
        append(&ev, &line(EventKind::RunPaused { by: "ann".into() }));
        let m = RunModel::open(dir.path());
        let v = m.view();
        assert_eq!(v.approvals.len(), 1);
        assert_eq!(v.approvals[0].approvers, vec!["ann".to_string()]);
        assert!(
            !v.paused,
            "no coordinator holds the lock: the run is not live, so not paused"
        );
        assert!(m.folder.folded().paused);
    }

    #[test]
    fn messages_and_decisions_are_read_on_too() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("events.jsonl"), &started());
        let msgs = dir.path().join(MESSAGES_FILE);
        append(
            &msgs,
            "{\"tsMs\":1,\"id\":1,\"state\":\"queued\",\"from\":\"a\",\"to\":\"b\",\"text\":\"hi\"}\n",
        );
        let mut m = RunModel::open(dir.path());
        assert_eq!(m.view().messages.len(), 1);
        append(
            &msgs,
            "{\"tsMs\":2,\"id\":1,\"state\":\"delivered\",\"from\":\"a\",\"to\":\"b\"}\n",
        );
        assert!(m.refresh());
        let v = m.view();
        assert_eq!(v.messages.len(), 1);
        assert_eq!(v.messages[0].text, "hi");
        assert_eq!(v.messages[0].state.as_str(), "delivered");
        append(
            &dir.path().join("trajectory.jsonl"),
            "{\"ts\":\"2026-03-04T10:00:00.000Z\",\"step\":\"a\",\"decision\":\"retry\",\"reason\":\"exit 1\",\"evidence\":\"\"}\n",
        );
        assert!(m.refresh());
        assert_eq!(m.view().trajectory.len(), 1);
    }
}
