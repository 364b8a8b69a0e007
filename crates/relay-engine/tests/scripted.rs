//! The engine driven by a scripted, in-memory launcher: no processes, no terminals. Each
//! "agent" acts on words in its task (`sleep=MS`, `exit=CODE`, `say=TEXT`) and the
//! launcher records when each step started and ended, so scheduling decisions (slots
//! refilled at once, retries, run timeout, failure policy) are checked through the real
//! driver and scheduler.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_broker::Launcher;
use relay_broker::process::{ProcessEnd, ProcessError, ProcessOutcome, ProcessSpec};
use relay_broker::session::{SessionError, SessionEvent, SessionOutcome, SessionSpec};
use relay_engine::{RunRequest, RunSummary, Settings, StepStatus};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Scripted {
    /// (step, "start"|"end", when)
    log: Mutex<Vec<(String, &'static str, Instant)>>,
    active: AtomicUsize,
    most: AtomicUsize,
}

fn word<'a>(task: &'a str, key: &str) -> Option<&'a str> {
    task.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

impl Launcher for Scripted {
    async fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        _spawned: UnboundedSender<u32>,
    ) -> Result<ProcessOutcome, ProcessError> {
        let step = spec
            .env
            .iter()
            .find(|(k, _)| k == "AGENT_RELAY_STEP")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let task = spec
            .stdin
            .clone()
            .or_else(|| spec.args.last().cloned())
            .unwrap_or_default();
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.log
            .lock()
            .unwrap()
            .push((step.clone(), "start", Instant::now()));
        let ms = word(&task, "sleep")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let end = tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => ProcessEnd::Exited,
            () = cancel.cancelled() => ProcessEnd::Cancelled,
        };
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.log.lock().unwrap().push((step, "end", Instant::now()));
        let fail_first = task.split_whitespace().any(|w| w == "fail-first")
            && !task.contains("previous attempt failed");
        let code = if fail_first {
            1
        } else {
            word(&task, "exit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcessOutcome {
            end,
            exit_code: (end == ProcessEnd::Exited).then_some(code),
            signal: None,
            stdout: word(&task, "say").unwrap_or("").to_string(),
            dropped: 0,
            pgid: 0,
            usage: None,
            model: None,
            session: None,
        })
    }

    async fn run_session(
        &self,
        _spec: SessionSpec,
        _cancel: CancellationToken,
        _events: UnboundedSender<SessionEvent>,
        _inbox: Option<tokio::sync::mpsc::Receiver<relay_broker::session::Inbound>>,
    ) -> Result<SessionOutcome, SessionError> {
        Err(SessionError::Pty("no terminals in this test".into()))
    }
}

async fn run(yaml: &str) -> (Arc<Scripted>, RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let launcher = Arc::new(Scripted::default());
    let req = RunRequest {
        checked: relay_engine::Checked::new(relay_spec::parse(yaml, "t.yaml").unwrap(), None)
            .unwrap()
            .0,
        vars: BTreeMap::new(),
        workdir: dir.path().to_path_buf(),
        self_bin: "agent-relay".into(),
        // The rehearsal path skips the installed-CLI check; the launcher ignores programs.
        rehearse: true,
        allow_unenforced: false,
        settings: Settings::default(),
        observer: None,
        cancel: CancellationToken::new(),
        resume: None,
    };
    let summary = relay_engine::run(launcher.clone(), req).await.unwrap();
    (launcher, summary)
}

fn steps(header: &str, steps: &str) -> String {
    format!(
        "name: t\n{header}agents: [{{name: a, cli: claude, interactive: false}}]\nworkflows:\n  - name: w\n    steps:\n{steps}"
    )
}

fn at(l: &Scripted, step: &str, what: &str) -> Instant {
    l.log
        .lock()
        .unwrap()
        .iter()
        .find(|(s, w, _)| s == step && *w == what)
        .map(|(_, _, t)| *t)
        .unwrap_or_else(|| panic!("no {what} of {step}"))
}

#[tokio::test]
async fn a_freed_slot_is_refilled_at_once_not_in_waves() {
    let (l, s) = run(&steps(
        "swarm: {maxConcurrency: 2}\n",
        "      - {name: short, agent: a, task: sleep=50}\n      - {name: long, agent: a, task: sleep=600}\n      - {name: next, agent: a, task: sleep=50}\n",
    ))
    .await;
    assert_eq!(s.status, relay_engine::events::RunStatus::Completed);
    assert_eq!(l.most.load(Ordering::SeqCst), 2);
    // `next` took the slot `short` freed, while `long` was still running.
    assert!(at(&l, "next", "start") >= at(&l, "short", "end"));
    assert!(at(&l, "next", "start") < at(&l, "long", "end"));
}

#[tokio::test]
async fn retries_wait_the_retry_delay_and_tell_the_agent() {
    let (l, s) = run(&steps(
        "errorHandling: {retryDelayMs: 300}\n",
        "      - {name: flaky, agent: a, retries: 1, task: fail-first say=ok}\n",
    ))
    .await;
    assert_eq!(s.steps[0].status, StepStatus::Completed);
    assert_eq!(s.steps[0].attempts, 2);
    let log = l.log.lock().unwrap().clone();
    let ends: Vec<Instant> = log
        .iter()
        .filter(|(_, w, _)| *w == "end")
        .map(|x| x.2)
        .collect();
    let starts: Vec<Instant> = log
        .iter()
        .filter(|(_, w, _)| *w == "start")
        .map(|x| x.2)
        .collect();
    assert!(starts[1].duration_since(ends[0]) >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_run_timeout_cancels_running_steps_and_skips_the_rest() {
    let (_, s) = run(&steps(
        "swarm: {timeoutMs: 100}\n",
        "      - {name: slow, agent: a, task: sleep=60000}\n      - {name: after, agent: a, dependsOn: [slow], task: x}\n",
    ))
    .await;
    assert_eq!(s.status, relay_engine::events::RunStatus::Failed);
    assert!(s.reason.unwrap().contains("timed out after 100 ms"));
    assert_eq!(s.steps[1].status, StepStatus::Skipped);
}

#[tokio::test]
async fn map_items_respect_the_concurrency_limit() {
    let (l, s) = run(&steps(
        "swarm: {pattern: map-reduce, maxConcurrency: 2}\n",
        "      - {name: m, agent: a, items: [a, b, c, d, e], task: \"sleep=40 say={{item}}\"}\n",
    ))
    .await;
    assert_eq!(s.status, relay_engine::events::RunStatus::Completed);
    assert_eq!(l.most.load(Ordering::SeqCst), 2);
    assert_eq!(
        l.log.lock().unwrap().len(),
        10,
        "five items, each started and ended once"
    );
    for item in ["a", "b", "c", "d", "e"] {
        assert!(
            s.steps[0].output.contains(&format!(": {item}\n{item}")),
            "{}",
            s.steps[0].output
        );
    }
}
