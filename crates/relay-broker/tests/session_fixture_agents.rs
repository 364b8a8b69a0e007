//! Sessions with agents we did not model the driver on (relay-testkit's fixture agents,
//! in real PTYs): a bare prompt with no banner or cue, a line-oriented agent where a
//! newline submits and nothing is pasted, and a slow one behind spinners with `/exit`
//! in colour. Each gets a multi-line task, goes idle and is nudged, and takes a relayed
//! message.

mod session_support;

use std::time::Duration;

use relay_broker::session::{
    Inbound, NudgePolicy, SessionEnd, SessionEvent, SessionSpec, run_session,
};
use relay_messaging::MessageId;
use relay_testkit::FixtureAgent;
use session_support::{Ran, assert_no_leftovers, spec, unique_tag};
use tokio_util::sync::CancellationToken;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn agent_spec(agent: FixtureAgent, task: &str, dir: &std::path::Path, tag: &str) -> SessionSpec {
    let argv = agent.argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut s = spec(&argv, task, None, dir, tag);
    s.env.push(("SPIN_MS".into(), "600".into()));
    s.env.push(("BOOT_MS".into(), "300".into()));
    // Readiness must come from the screen, not from the fallback.
    s.timing.ready_fallback = Duration::from_secs(20);
    s
}

/// Runs `spec`, offering `messages` once the task is delivered.
async fn run_with_messages(spec: SessionSpec, messages: Vec<Inbound>) -> Ran {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(4);
    let session = tokio::spawn(run_session(spec, CancellationToken::new(), tx, Some(in_rx)));
    let mut events = Vec::new();
    let mut pending = Some(messages);
    while let Some(e) = rx.recv().await {
        if matches!(e, SessionEvent::TaskDelivered { .. })
            && let Some(msgs) = pending.take()
        {
            for m in msgs {
                let _ = in_tx.send(m).await;
            }
        }
        events.push(e);
    }
    let result = session.await.expect("the session task");
    Ran { result, events }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_agent_gets_a_multi_line_task_and_its_exit_is_seen() {
    for agent in FixtureAgent::ALL {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique_tag(&format!("fixture-task-{}", agent.name()));
        // The REPLY line is last: a line-oriented agent gets the task as one line.
        let task = "Do the thing in two parts.\nA line with /exit in the middle.\n\
                    REPLY:DONE_ONE\\nDONE_TWO\\n/exit|";
        let ran = run_with_messages(agent_spec(agent, task, dir.path(), &tag), vec![]).await;
        let out = ran.outcome();
        assert_eq!(
            out.end,
            SessionEnd::ExitRequested,
            "{}: {:?}",
            agent.name(),
            ran.events
        );
        assert_eq!(
            ran.kinds(),
            [
                SessionEvent::Ready { fallback: false },
                SessionEvent::TaskDelivered { attempts: 1 },
                SessionEvent::ExitRequested,
            ],
            "{}",
            agent.name()
        );
        let lines: Vec<&str> = out
            .output
            .lines()
            .map(|l| l.trim_start_matches('\u{25c6}').trim())
            .collect();
        assert_eq!(
            lines,
            ["DONE_ONE", "DONE_TWO"],
            "{}: {:?}",
            agent.name(),
            out.output
        );
        assert_no_leftovers(&tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_agent_idles_is_nudged_and_is_released() {
    for agent in FixtureAgent::ALL {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique_tag(&format!("fixture-idle-{}", agent.name()));
        let mut s = agent_spec(agent, "Say nothing at all.", dir.path(), &tag);
        s.env.push(("SPIN_MS".into(), "0".into()));
        s.timing.idle_threshold = Some(ms(400));
        s.nudge = Some(NudgePolicy {
            nudge_after: ms(700),
            escalate_after: ms(700),
            max_nudges: 1,
        });
        let ran = run_with_messages(s, vec![]).await;
        assert_eq!(
            ran.outcome().end,
            SessionEnd::ForceReleased,
            "{}",
            agent.name()
        );
        assert_eq!(
            ran.kinds(),
            [
                SessionEvent::Ready { fallback: false },
                SessionEvent::TaskDelivered { attempts: 1 },
                SessionEvent::Idle,
                SessionEvent::Nudged { count: 1 },
                SessionEvent::ForceReleased,
            ],
            "{}",
            agent.name()
        );
        assert_eq!(
            ran.outcome().output,
            "",
            "{}: the echo is not output",
            agent.name()
        );
        assert_no_leftovers(&tag);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timeout_or_policy_an_idle_agent_is_nudged_once_then_released() {
    let agent = FixtureAgent::BarePrompt;
    let dir = tempfile::tempdir().unwrap();
    let tag = unique_tag("fixture-default-idle");
    let mut s = agent_spec(agent, "REPLY:started, then nothing|", dir.path(), &tag);
    s.timeout = None;
    s.nudge = None;
    s.timing.idle_threshold = Some(ms(500));
    let ran = run_with_messages(s, vec![]).await;
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
    assert_eq!(ran.outcome().output, "started, then nothing");
    assert_no_leftovers(&tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_agent_takes_a_relayed_message_in_a_live_session() {
    for agent in FixtureAgent::ALL {
        let dir = tempfile::tempdir().unwrap();
        let tag = unique_tag(&format!("fixture-msg-{}", agent.name()));
        let s = agent_spec(agent, "Start. REPLY:WORKING|", dir.path(), &tag);
        let message = Inbound {
            id: MessageId(7),
            line: "Relay message from lead: REPLY:GOT_IT\\n/exit|".into(),
            answer: false,
        };
        let ran = run_with_messages(s, vec![message]).await;
        let out = ran.outcome();
        assert_eq!(
            out.end,
            SessionEnd::ExitRequested,
            "{}: {:?}",
            agent.name(),
            ran.events
        );
        assert!(
            ran.events
                .contains(&SessionEvent::MessageDelivered { id: MessageId(7) }),
            "{}: {:?}",
            agent.name(),
            ran.events
        );
        let lines: Vec<&str> = out
            .output
            .lines()
            .map(|l| l.trim_start_matches('\u{25c6}').trim())
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            ["WORKING", "GOT_IT"],
            "{}: {:?}",
            agent.name(),
            out.output
        );
        assert_no_leftovers(&tag);
    }
}
