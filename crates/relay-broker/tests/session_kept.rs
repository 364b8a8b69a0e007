//! Terminals kept open between an agent's steps (`session: resume`), with the fake agent
//! in TUI mode: the next task is typed into the same process, which remembers the first;
//! a kept terminal whose process died, or that does not fit, is not taken; and nothing
//! is left running once the run ends them or the launcher goes.

#![allow(clippy::unwrap_used)]

mod session_support;

use std::path::Path;
use std::time::Duration;

use relay_broker::session::screen::Screen;
use relay_broker::session::{Carry, SessionEnd, SessionEvent, SessionOutcome, SessionSpec};
use relay_broker::{Launcher, LocalLauncher, cli_table};
use relay_spec::Cli;
use session_support::{assert_no_leftovers, fake_agent, spec, unique_tag};
use tokio_util::sync::CancellationToken;

/// The fake as codex (whose interactive sessions cannot be given an id to resume), in
/// `dir/step`, carried for `take`.
fn step_spec(root: &Path, step: &str, task: &str, tag: &str, take: bool) -> SessionSpec {
    let dir = root.join(step);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = fake_agent();
    let mut argv = vec![
        bin.to_string_lossy().into_owned(),
        "--as".to_owned(),
        "codex".to_owned(),
    ];
    argv.extend(cli_table::interactive_args(
        Cli::Codex,
        None,
        cli_table::Invocation::default(),
    ));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut s = spec(&argv, task, Some(Cli::Codex), root, tag);
    s.transcript_path = dir.join("attempt-1.pty");
    s.env.push(("FAKE_AGENT_THINK_MS".into(), "100".into()));
    s.env.push((
        "FAKE_AGENT_STATE_DIR".into(),
        root.join("state").to_string_lossy().into_owned(),
    ));
    s.carry = Some(Carry {
        run: "run-1".into(),
        agent: "dev".into(),
        take,
    });
    s
}

async fn run_on(launcher: &LocalLauncher, s: SessionSpec) -> (SessionOutcome, Vec<SessionEvent>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = launcher
        .run_session(s, CancellationToken::new(), tx, None)
        .await
        .expect("the session runs");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (out, events)
}

fn pgid_of(events: &[SessionEvent]) -> (u32, bool) {
    events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Spawned { pgid } => Some((*pgid, false)),
            SessionEvent::Continued { pgid } => Some((*pgid, true)),
            _ => None,
        })
        .expect("a spawned or continued event")
}

fn alive(pgid: u32) -> bool {
    relay_broker::group::group_alive(pgid)
}

async fn wait_until_gone(pgid: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_next_task_is_typed_into_the_terminal_it_left_open() {
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag("kept-next");
    let launcher = LocalLauncher::default();
    let first = step_spec(
        root.path(),
        "one",
        "first turn [[fake:say=ok]]",
        &tag,
        false,
    );
    let (out, events) = run_on(&launcher, first).await;
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(out.output.trim(), "ok");
    let (pgid, continued) = pgid_of(&events);
    assert!(!continued);
    assert_eq!(launcher.kept_open(), 1);
    assert!(alive(pgid), "the terminal stays open between the steps");

    let second = step_spec(root.path(), "two", "[[fake:recall]]", &tag, true);
    let (out, events) = run_on(&launcher, second).await;
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(pgid_of(&events), (pgid, true), "{events:?}");
    // The same process remembers the first task, and this step's output is only the
    // second one's (not the first reply, nor its `/exit`, still on the screen).
    assert!(out.output.contains("recall: first turn"), "{}", out.output);
    assert!(!out.output.contains("ok\n"), "{}", out.output);
    // The second transcript starts from the screen as the first step left it.
    let bytes = std::fs::read(root.path().join("two/attempt-1.pty")).unwrap();
    let mut screen = Screen::new(30, 120);
    screen.process(&bytes);
    let rows = screen.all_rows();
    assert!(rows.iter().any(|r| r.contains("first turn")), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.contains("recall: first turn")),
        "{rows:#?}"
    );

    // The run's end ends it.
    launcher.end_kept("run-1", None).await;
    assert_eq!(launcher.kept_open(), 0);
    assert!(!alive(pgid));
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_terminal_whose_process_died_or_that_does_not_fit_is_not_taken() {
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag("kept-dead");
    let launcher = LocalLauncher::default();
    let (_, events) = run_on(
        &launcher,
        step_spec(root.path(), "one", "first [[fake:say=ok]]", &tag, false),
    )
    .await;
    let (first, _) = pgid_of(&events);
    relay_broker::group::signal_group(first, nix::sys::signal::Signal::SIGKILL);
    wait_until_gone(first).await;
    let (out, events) = run_on(
        &launcher,
        step_spec(root.path(), "two", "[[fake:recall]]", &tag, true),
    )
    .await;
    let (second, continued) = pgid_of(&events);
    assert!(!continued && second != first, "{events:?}");
    assert!(out.output.contains("recall: (nothing)"), "{}", out.output);

    // Kept again after the second step; a step elsewhere does not take it.
    assert!(alive(second));
    let mut elsewhere = step_spec(root.path(), "three", "[[fake:recall]]", &tag, true);
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    elsewhere.cwd = other;
    elsewhere.carry = None;
    let (_, events) = run_on(&launcher, elsewhere).await;
    let (third, continued) = pgid_of(&events);
    assert!(!continued && third != second, "{events:?}");
    assert!(alive(second), "the kept terminal waits for a step it fits");
    assert_eq!(launcher.kept_open(), 1);

    // A launcher that goes ends what it kept.
    drop(launcher);
    wait_until_gone(second).await;
    assert!(!alive(second), "the kept terminal outlived its launcher");
    assert_no_leftovers(&tag);
}
