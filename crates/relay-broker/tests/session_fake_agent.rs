//! Sessions with the fake agent in TUI mode, which behaves in a PTY like the real CLIs:
//! start-up queries, bracketed paste, its own echo, spinners, reply glyphs and a footer
//! hint as ready cue.

mod session_support;

use std::time::Duration;

use relay_broker::cli_table;
use relay_broker::session::screen::Screen;
use relay_broker::session::{NudgePolicy, SessionEnd, SessionEvent, SessionSpec};
use relay_spec::Cli;
use session_support::{assert_no_leftovers, fake_agent, run, spec, unique_tag};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A spec that runs the fake as `cli` with that CLI's interactive argv.
fn agent_spec(cli: Cli, task: &str, dir: &std::path::Path, tag: &str) -> SessionSpec {
    let bin = fake_agent();
    let mut argv = vec![
        bin.to_string_lossy().into_owned(),
        "--as".to_owned(),
        cli.as_str().to_owned(),
    ];
    argv.extend(cli_table::interactive_args(
        cli,
        None,
        cli_table::Invocation::default(),
    ));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut s = spec(&argv, task, Some(cli), dir, tag);
    s.env.push((
        "FAKE_AGENT_QUERY_LOG".into(),
        dir.join("queries.log").to_string_lossy().into_owned(),
    ));
    s.env.push(("FAKE_AGENT_THINK_MS".into(), "200".into()));
    s
}

/// Every row the transcript renders to, scrolled-off rows included.
fn rendered_transcript(dir: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(dir.join("transcript.log")).expect("transcript");
    let mut screen = Screen::new(30, 120);
    screen.process(&bytes);
    screen.all_rows()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_starting_tui_gets_the_task_intact() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-slow");
    let task =
        "[[fake:say=intact-7f3a]] Multi-line task:\n  keep   the spacing\n[[fake:echo-task]]";
    let mut s = agent_spec(Cli::Claude, task, dir.path(), &tag);
    s.env
        .push(("FAKE_AGENT_START_DELAY_MS".into(), "800".into()));
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(
        ran.kinds()[..2],
        [
            SessionEvent::Ready { fallback: false },
            SessionEvent::TaskDelivered { attempts: 1 },
        ]
    );
    assert!(out.output.starts_with("intact-7f3a\n"), "{}", out.output);
    // echo-task replies with the task as the agent received it (its markers defused),
    // one reply row per line; the transcript, rendered, shows that reply.
    let rows = rendered_transcript(dir.path());
    let reply = rows
        .iter()
        .position(|r| r == "● [fake:say=intact-7f3a]] Multi-line task:")
        .unwrap_or_else(|| panic!("no echo-task reply in {rows:#?}"));
    assert_eq!(rows[reply + 1], "    keep   the spacing");
    assert_eq!(rows[reply + 2], "  [fake:echo-task]]");
    // Each start-up query was answered once.
    let log = std::fs::read_to_string(dir.path().join("queries.log")).unwrap();
    let kinds: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(kinds, ["DA1", "CPR"], "{log}");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_is_seen_in_every_style() {
    for style in ["plain", "color", "spinner", "glyph"] {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique_tag(&format!("fake-style-{style}"));
        let task = format!("[[fake:say=styled {style}]] [[fake:exit-style={style}]]");
        let ran = run(agent_spec(Cli::Claude, &task, dir.path(), &tag)).await;
        let out = ran.outcome();
        assert_eq!(out.end, SessionEnd::ExitRequested, "style {style}");
        assert_eq!(out.output, format!("styled {style}"), "style {style}");
        assert_eq!(
            ran.events.last(),
            Some(&SessionEvent::ExitRequested),
            "style {style}"
        );
        assert_no_leftovers(&tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_on_its_own_line_in_the_task_is_not_the_agents_exit() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-task-exit");
    let task = "[[fake:say=still working]] [[fake:no-exit]]\nWhen finished, print\n/exit\non its own line.";
    let mut s = agent_spec(Cli::Claude, task, dir.path(), &tag);
    s.timeout = Some(ms(5000));
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::TimedOut);
    assert!(!ran.events.contains(&SessionEvent::ExitRequested));
    assert_eq!(out.output, "still working");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echoed_task_never_shows_up_in_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-echo");
    let task = "Compute the zebra-quokka index for the repository.\n\
                Then report it. [[fake:say=index is 42\\nsecond line]]";
    let ran = run(agent_spec(Cli::Claude, task, dir.path(), &tag)).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(out.output, "index is 42\nsecond line");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_persona_is_read_with_its_own_conventions() {
    for cli in [
        Cli::Codex,
        Cli::Gemini,
        Cli::Aider,
        Cli::Opencode,
        Cli::Goose,
        Cli::Droid,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique_tag(&format!("fake-{}", cli.as_str()));
        let task =
            "[[fake:say=hello from the agent\\nand a second line]] [[fake:exit-style=glyph]]";
        let ran = run(agent_spec(cli, task, dir.path(), &tag)).await;
        let out = ran.outcome();
        assert_eq!(out.end, SessionEnd::ExitRequested, "{cli:?}");
        assert_eq!(
            out.output, "hello from the agent\nand a second line",
            "{cli:?}"
        );
        assert_no_leftovers(&tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_is_nudged_then_force_released() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-idle");
    let mut s = agent_spec(
        Cli::Claude,
        "[[fake:say=partial result]] [[fake:no-exit]]",
        dir.path(),
        &tag,
    );
    // No thinking spinner after the nudge: a spinner is activity and would start a new
    // idle period (a second Idle) before the force-release.
    s.env.push(("FAKE_AGENT_THINK_MS".into(), "0".into()));
    s.timing.idle_threshold = Some(ms(400));
    s.nudge = Some(NudgePolicy {
        nudge_after: ms(800),
        escalate_after: ms(800),
        max_nudges: 1,
    });
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ForceReleased);
    assert_eq!(
        ran.kinds(),
        [
            SessionEvent::Ready { fallback: false },
            SessionEvent::TaskDelivered { attempts: 1 },
            SessionEvent::Idle,
            SessionEvent::Nudged { count: 1 },
            SessionEvent::ForceReleased,
        ]
    );
    assert_eq!(out.output, "partial result");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_obeys_the_nudge_ends_with_exit_requested() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-obey");
    let mut s = agent_spec(
        Cli::Claude,
        "[[fake:say=done, forgot to exit]] [[fake:no-exit]] [[fake:obey-nudge]]",
        dir.path(),
        &tag,
    );
    s.nudge = Some(NudgePolicy {
        nudge_after: ms(600),
        escalate_after: ms(10_000),
        max_nudges: 3,
    });
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(
        ran.kinds(),
        [
            SessionEvent::Ready { fallback: false },
            SessionEvent::TaskDelivered { attempts: 1 },
            SessionEvent::Nudged { count: 1 },
            SessionEvent::ExitRequested,
        ]
    );
    // The nudge's echo is not output; the agent's answer to it is.
    assert_eq!(out.output, "done, forgot to exit\n\nok, finishing");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-timeout");
    let mut s = agent_spec(
        Cli::Claude,
        "[[fake:no-exit]] [[fake:child=60000]]",
        dir.path(),
        &tag,
    );
    s.timeout = Some(ms(2500));
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::TimedOut);
    // The child it started went with it.
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_ignores_term_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-ignore-term");
    let ran = run(agent_spec(
        Cli::Claude,
        "[[fake:ignore-term]] [[fake:say=stubborn]]",
        dir.path(),
        &tag,
    ))
    .await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(out.output, "stubborn");
    assert_eq!(out.exit_code, None, "ended by KILL");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_exits_with_a_code_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fake-exit-code");
    let ran = run(agent_spec(
        Cli::Claude,
        "[[fake:say=giving up]] [[fake:exit=4]]",
        dir.path(),
        &tag,
    ))
    .await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::Exited);
    assert_eq!(out.exit_code, Some(4));
    assert_eq!(out.output, "giving up");
    assert_no_leftovers(&tag);
}
