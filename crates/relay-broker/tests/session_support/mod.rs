//! Shared helpers of the session integration tests: a spec with small timings, a runner
//! that collects events, and the leftover-process check.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use relay_broker::session::{
    SessionError, SessionEvent, SessionOutcome, SessionSpec, SessionTiming, run_session,
};
use relay_spec::Cli;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Timings small enough for tests, large enough for a loaded 2-core machine.
pub fn timing() -> SessionTiming {
    SessionTiming {
        settle: Duration::from_millis(150),
        ready_fallback: Duration::from_secs(5),
        enter_delay: Duration::from_millis(100),
        confirm_timeout: Duration::from_secs(3),
        delivery_attempts: 2,
        idle_threshold: None,
        kill_grace: Duration::from_millis(300),
    }
}

/// A unique tag for this test's processes.
pub fn unique_tag(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A session spec running `argv` in `dir`, tagged with `tag`.
pub fn spec(argv: &[&str], task: &str, cli: Option<Cli>, dir: &Path, tag: &str) -> SessionSpec {
    SessionSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: dir.to_path_buf(),
        env: vec![("RELAY_TEST_TAG".into(), tag.into())],
        task: task.into(),
        cli,
        transcript_path: dir.join("transcript.log"),
        timeout: Some(Duration::from_secs(30)),
        size: (30, 120),
        timing: timing(),
        nudge: None,
        sandbox: None,
        carry: None,
    }
}

/// What a finished session produced.
pub struct Ran {
    /// The result.
    pub result: Result<SessionOutcome, SessionError>,
    /// Every event, in order.
    pub events: Vec<SessionEvent>,
}

impl Ran {
    /// The outcome, which must be there.
    pub fn outcome(&self) -> &SessionOutcome {
        match &self.result {
            Ok(o) => o,
            Err(e) => panic!("session failed to run: {e}"),
        }
    }

    /// The events without `Spawned` (its pgid varies).
    pub fn kinds(&self) -> Vec<SessionEvent> {
        self.events
            .iter()
            .filter(|e| !matches!(e, SessionEvent::Spawned { .. }))
            .cloned()
            .collect()
    }
}

/// Runs a session to its end and collects its events.
pub async fn run(spec: SessionSpec) -> Ran {
    run_with(spec, CancellationToken::new()).await
}

/// Runs a session with `cancel` and collects its events.
pub async fn run_with(spec: SessionSpec, cancel: CancellationToken) -> Ran {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = run_session(spec, cancel, tx, None).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Ran { result, events }
}

/// Asserts that no process tagged `tag` is alive. The session has already waited for its
/// group to be gone, so a short grace only covers /proc catching up.
pub fn assert_no_leftovers(tag: &str) {
    let left = relay_testkit::wait_for_no_processes_with_env(
        "RELAY_TEST_TAG",
        tag,
        Duration::from_secs(2),
    );
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// The fake agent binary, built on first use when the test run did not build it.
pub fn fake_agent() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if std::env::var_os("FAKE_AGENT_BIN").is_none() {
            let exe = std::env::current_exe().expect("test executable path");
            let target = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable inside target/<profile>/deps");
            if !target.join("fake-agent").is_file() {
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "-p", "relay-testkit", "--bin", "fake-agent"]);
                if target.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                let status = cmd
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("run cargo build for fake-agent");
                assert!(status.success(), "cargo build -p relay-testkit failed");
            }
        }
        relay_testkit::fake_agent_path()
    })
    .clone()
}
