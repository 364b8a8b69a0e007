//! Sessions with plain programs (`sh`, `cat`, `python3`) in a real PTY: the process group,
//! the end reasons, query answers, task delivery and idle handling, without any agent.

mod session_support;

use std::time::Duration;

use relay_broker::session::{NudgePolicy, SessionEnd, SessionError, SessionEvent};
use session_support::{assert_no_leftovers, run, spec, unique_tag};
use tokio_util::sync::CancellationToken;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_row_ends_the_session_and_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-exit");
    let script = r#"printf '❯ '; read line; echo "got:$line"; echo /exit; sleep 30"#;
    let s = spec(&["sh", "-c", script], "hello", None, dir.path(), &tag);
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    assert_eq!(out.output, "got:hello");
    assert_eq!(
        ran.kinds(),
        [
            SessionEvent::Ready { fallback: false },
            SessionEvent::TaskDelivered { attempts: 1 },
            SessionEvent::ExitRequested,
        ]
    );
    assert!(
        matches!(ran.events[0], SessionEvent::Spawned { pgid } if pgid > 1),
        "{:?}",
        ran.events
    );
    // The transcript holds the raw bytes, terminal line endings included.
    let transcript = std::fs::read(dir.path().join("transcript.log")).unwrap();
    assert!(
        transcript.windows(11).any(|w| w == b"got:hello\r\n"),
        "{}",
        String::from_utf8_lossy(&transcript)
    );
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_by_itself_reports_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-exited");
    let script = r#"printf '❯ '; read line; echo "bye $line"; exit 3"#;
    let ran = run(spec(&["sh", "-c", script], "now", None, dir.path(), &tag)).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::Exited);
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.output, "bye now");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_on_a_line_of_the_task_is_not_taken_for_the_agents() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-task-exit");
    // The shell reads the lines and says nothing; the terminal echoes them.
    let script = r#"printf '❯ '; while read l; do :; done"#;
    let mut s = spec(
        &["sh", "-c", script],
        "first line\n/exit\nlast line",
        None,
        dir.path(),
        &tag,
    );
    s.timeout = Some(Duration::from_secs(3));
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::TimedOut);
    assert!(!ran.events.contains(&SessionEvent::ExitRequested));
    assert_eq!(ran.outcome().output, "");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_ignores_hangup_and_term_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-ignore-term");
    // Ignored signals stay ignored in the children, so the sleeps survive TERM too.
    let script = r#"trap '' HUP TERM; printf '❯ '; read l; echo /exit; while :; do sleep 1; done"#;
    let ran = run(spec(&["sh", "-c", script], "go", None, dir.path(), &tag)).await;
    assert_eq!(ran.outcome().end, SessionEnd::ExitRequested);
    assert_eq!(ran.outcome().exit_code, None, "ended by KILL");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-cancel");
    let script = r#"printf '❯ '; read l; echo working; sleep 30"#;
    let s = spec(&["sh", "-c", script], "go", None, dir.path(), &tag);
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let session = tokio::spawn(relay_broker::session::run_session(
        s,
        cancel.clone(),
        tx,
        None,
    ));
    while let Some(e) = rx.recv().await {
        if matches!(e, SessionEvent::TaskDelivered { .. }) {
            cancel.cancel();
        }
    }
    let out = session.await.unwrap().unwrap();
    assert_eq!(out.end, SessionEnd::Cancelled);
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_program_is_nudged_then_force_released() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-idle");
    // It reads the nudge and goes on saying nothing.
    let script = r#"printf '❯ '; read l; echo working; read n; sleep 30"#;
    let mut s = spec(&["sh", "-c", script], "go", None, dir.path(), &tag);
    s.timing.idle_threshold = Some(ms(300));
    s.nudge = Some(NudgePolicy {
        nudge_after: ms(600),
        escalate_after: ms(600),
        max_nudges: 1,
    });
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::ForceReleased);
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
    // The terminal echoed the nudge; it is not the program's output.
    assert_eq!(ran.outcome().output, "working");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nudged_program_that_prints_exit_ends_with_exit_requested() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-nudge-obeyed");
    let script = r#"printf '❯ '; read l; echo working; read n; echo /exit; sleep 30"#;
    let mut s = spec(&["sh", "-c", script], "go", None, dir.path(), &tag);
    s.nudge = Some(NudgePolicy {
        nudge_after: ms(400),
        escalate_after: ms(5000),
        max_nudges: 2,
    });
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::ExitRequested);
    let kinds = ran.kinds();
    assert_eq!(
        &kinds[kinds.len() - 2..],
        [
            SessionEvent::Nudged { count: 1 },
            SessionEvent::ExitRequested
        ]
    );
    assert_eq!(ran.outcome().output, "working");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_queries_are_answered_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-queries");
    let log = dir.path().join("answers.bin");
    // Raw mode so the answers arrive as bytes; the CPR query is split across two writes.
    let program = r#"
import os, select, sys, termios, tty
fd = sys.stdin.fileno()
cooked = termios.tcgetattr(fd)
tty.setraw(fd)
out = sys.stdout.buffer
out.write(b"abc\x1b[c"); out.flush()
out.write(b"\x1b["); out.flush()
select.select([], [], [], 0.05)
out.write(b"6n\x1b]10;?\x1b\\\x1b]11;?\x07"); out.flush()
got = b""
while got.count(b"\x1b") < 4:
    r, _, _ = select.select([fd], [], [], 5)
    if not r:
        break
    got += os.read(fd, 1024)
# Anything answered twice would follow right behind.
while select.select([fd], [], [], 0.3)[0]:
    got += os.read(fd, 1024)
open(sys.argv[1], "wb").write(got)
termios.tcsetattr(fd, termios.TCSADRAIN, cooked)
out.write("\r\n\u276f ".encode()); out.flush()
line = sys.stdin.readline().strip()
print("task:" + line + "\n/exit", flush=True)
select.select([], [], [], 30)
"#;
    let argv = ["python3", "-c", program, log.to_str().unwrap()];
    let mut s = spec(&argv, "typed after the answers", None, dir.path(), &tag);
    // Longer than the script's quiet wait for duplicates, so the task comes after it.
    s.timing.settle = ms(1000);
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::ExitRequested);
    assert_eq!(ran.outcome().output, "task:typed after the answers");
    let got = std::fs::read(&log).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        "\x1b[?62;22c\x1b[1;4R\x1b]10;rgb:ffff/ffff/ffff\x1b\\\x1b]11;rgb:0000/0000/0000\x07"
    );
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_task_is_handed_over_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-long");
    let task = format!("LONG TASK START\n{}\nLONG TASK END\n", "x".repeat(5000));
    let script = r#"printf '❯ '; read l; echo "got:$l"; echo /exit; sleep 30"#;
    let mut s = spec(&["sh", "-c", script], &task, None, dir.path(), &tag);
    s.size = (30, 250);
    let ran = run(s).await;
    let out = ran.outcome();
    assert_eq!(out.end, SessionEnd::ExitRequested);
    let file = dir.path().join("transcript.task.md");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), task);
    assert_eq!(
        out.output,
        format!(
            "got:Your task is in the file {}. Read it and do it.",
            file.display()
        )
    );
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_fails_when_the_screen_never_changes() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-undelivered");
    let script = r#"stty -echo; printf '❯ '; sleep 30"#;
    let mut s = spec(&["sh", "-c", script], "hello", None, dir.path(), &tag);
    s.timing.confirm_timeout = ms(400);
    let ran = run(s).await;
    assert!(
        matches!(ran.outcome().end, SessionEnd::DeliveryFailed(_)),
        "{:?}",
        ran.outcome().end
    );
    assert!(
        !ran.events
            .iter()
            .any(|e| matches!(e, SessionEvent::TaskDelivered { .. }))
    );
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_program_gets_the_task_after_the_fallback_wait() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-fallback");
    let mut s = spec(&["cat"], "hello", None, dir.path(), &tag);
    s.timing.ready_fallback = ms(300);
    s.timeout = Some(Duration::from_secs(3));
    let ran = run(s).await;
    assert_eq!(ran.outcome().end, SessionEnd::TimedOut);
    assert_eq!(
        ran.kinds(),
        [
            SessionEvent::Ready { fallback: true },
            SessionEvent::TaskDelivered { attempts: 1 },
        ]
    );
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_that_cannot_start_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("plain-missing");
    let ran = run(spec(&["/nonexistent/agent"], "x", None, dir.path(), &tag)).await;
    assert!(matches!(ran.result, Err(SessionError::Spawn { .. })));
    let mut s = spec(&["sh"], "x", None, dir.path(), &tag);
    s.cwd = dir.path().join("missing");
    let ran = run(s).await;
    assert!(matches!(ran.result, Err(SessionError::Spawn { .. })));
    let mut s = spec(&["sh"], "x", None, dir.path(), &tag);
    s.transcript_path = dir.path().join("no/such/dir/t.log");
    let ran = run(s).await;
    assert!(matches!(ran.result, Err(SessionError::Transcript { .. })));
    assert!(ran.events.is_empty());
}
