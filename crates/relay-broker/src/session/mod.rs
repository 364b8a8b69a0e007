//! Interactive agents: a coding-agent CLI in a real PTY, read through a screen model.
//!
//! `run_session` owns one session from spawn to end: it waits until the TUI is ready,
//! injects the task, types in relayed messages one at a time, passes on the `->relay:`
//! lines the agent prints, watches the rendered screen for `/exit`, idleness and death,
//! nudges and force-releases idle agents, and returns the clean output the agent wrote.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use relay_messaging::{MessageId, RelayLine};
use relay_spec::Cli;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{Receiver, UnboundedSender};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::group::{EndPolicy, signal_group};

pub mod attach;
pub mod detect;
pub mod driver;
mod idle;
pub mod inject;
pub mod kept;
mod output;
mod pty;
pub mod queries;
mod relay_scan;
pub mod sanitize;
pub mod screen;
mod typist;

use driver::{Action, Driver, DriverConfig, Messaging, Terminal};
pub use kept::{Carry, Kept};

/// A message for the agent, as plain data: typed in as the one line `line` once the
/// task is delivered and the agent is quiet. The session answers with
/// [`SessionEvent::MessageDelivered`] or [`SessionEvent::MessageNotDelivered`]; one it
/// never answered (the session ended first) was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The message's id.
    pub id: MessageId,
    /// What to type.
    pub line: String,
    /// A person's answer to the agent's question (`HUMAN_ANSWER: ...`): once it is typed
    /// in, the idle clock and the timeout run again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answer: bool,
}

/// Everything needed to run one interactive step: plain data, so it can be handed to a
/// launcher on another machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Program and arguments (the CLI's interactive argv from the table).
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment (on top of the coordinator's own).
    pub env: Vec<(String, String)>,
    /// The task text to type in once the TUI is ready.
    pub task: String,
    /// Which CLI this is, for its readiness cues and reply glyphs; `None` = generic rules.
    pub cli: Option<Cli>,
    /// Where the full raw PTY transcript is written.
    pub transcript_path: PathBuf,
    /// Bound on the whole session (the step attempt's timeout).
    pub timeout: Option<Duration>,
    /// Terminal size (rows, cols).
    pub size: (u16, u16),
    /// Timing knobs.
    pub timing: SessionTiming,
    /// Idle nudging. `None` with a `timeout` = only wait for `/exit`, exit or the
    /// timeout; `None` without one = nudge once after the idle threshold, then
    /// force-release after another (an agent that does nothing is never waited for
    /// forever; no idle threshold switches that off).
    pub nudge: Option<NudgePolicy>,
    /// The permissions the kernel enforces on the CLI and everything it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::Sandbox>,
    /// Keeping the terminal open for the agent's next step (`session: resume`), with a
    /// launcher that keeps sessions ([`Kept`]); `None` ends the session's processes
    /// when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carry: Option<Carry>,
}

/// Timing knobs of a session; small values in tests, sane defaults for real CLIs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTiming {
    /// Output must be quiet this long before the TUI counts as ready / not mid-output.
    pub settle: Duration,
    /// Longest wait for readiness before typing anyway (an event says so).
    pub ready_fallback: Duration,
    /// Pause between the pasted text and the Enter key.
    pub enter_delay: Duration,
    /// How long to wait for the screen to confirm a delivery before retrying.
    pub confirm_timeout: Duration,
    /// Delivery attempts before the step fails.
    pub delivery_attempts: u32,
    /// No output and an unchanged screen for this long = idle; `None` disables.
    pub idle_threshold: Option<Duration>,
    /// Grace between polite signals and KILL when the session is ended.
    pub kill_grace: Duration,
}

impl Default for SessionTiming {
    fn default() -> Self {
        SessionTiming {
            settle: Duration::from_millis(200),
            ready_fallback: Duration::from_secs(15),
            enter_delay: Duration::from_millis(150),
            confirm_timeout: Duration::from_secs(2),
            delivery_attempts: 3,
            idle_threshold: Some(Duration::from_secs(30)),
            kill_grace: Duration::from_millis(1500),
        }
    }
}

/// When to nudge an idle agent and when to give up on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NudgePolicy {
    /// Idle time before the first nudge.
    pub nudge_after: Duration,
    /// Further idle time after the last nudge before force-release.
    pub escalate_after: Duration,
    /// Nudges before escalation.
    pub max_nudges: u32,
}

/// Things that happen during a session, reported as they happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionEvent {
    /// The session's process started (its process group id).
    Spawned {
        /// Process group id of the session.
        pgid: u32,
    },
    /// The session continues in the terminal the agent's earlier step left open
    /// ([`Carry`]): no new process.
    Continued {
        /// Process group id of the session.
        pgid: u32,
    },
    /// A start-up dialog (trust this folder, a theme picker, ...) was answered.
    DialogAnswered {
        /// Which dialog.
        dialog: String,
    },
    /// The agent is alive but will not be ready: a dialog that needs a person, or a
    /// screen that never goes quiet. The session ends with the same reason.
    NotReady {
        /// Why.
        reason: String,
    },
    /// The TUI was judged ready; `fallback` when the bounded wait ran out instead (the
    /// task is still typed only into a quiet screen).
    Ready {
        /// Whether readiness came from the fallback timer rather than a cue.
        fallback: bool,
    },
    /// The task was typed in and the agent reacted to it.
    TaskDelivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// The agent went idle.
    Idle,
    /// A nudge was typed in (1-based count).
    Nudged {
        /// Which nudge this was.
        count: u32,
    },
    /// The agent was force-released after exhausting nudges.
    ForceReleased,
    /// `/exit` (or a completion marker) was seen on the screen.
    ExitRequested,
    /// The agent asked a person a question (`HUMAN_QUESTION: ...`); its idle clock and
    /// timeout stand still until an answer ([`Inbound::answer`]) is typed in.
    Asked {
        /// The question.
        question: String,
    },
    /// The agent printed a `->relay:` line or block for others.
    Relay(RelayLine),
    /// An offered message was typed in and the screen confirmed it.
    MessageDelivered {
        /// The message.
        id: MessageId,
    },
    /// An offered message could not be typed in this time.
    MessageNotDelivered {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
    },
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEnd {
    /// The agent printed `/exit`.
    ExitRequested,
    /// The process exited by itself.
    Exited,
    /// The timeout ran out.
    TimedOut,
    /// Force-released after idling through every nudge.
    ForceReleased,
    /// Cancelled from outside (Ctrl+C, run stopping).
    Cancelled,
    /// The task could not be delivered.
    DeliveryFailed(String),
    /// The agent went quiet right after reporting a provider's rate or usage limit (the
    /// line that says so): it waits for the limit, not for a nudge.
    RateLimited(String),
}

/// The result of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionOutcome {
    /// How it ended.
    pub end: SessionEnd,
    /// The exit code, when the process exited with one.
    pub exit_code: Option<i32>,
    /// What the agent wrote after the task was delivered, as clean text.
    pub output: String,
}

/// Why a session could not run at all. Plain data (OS errors as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SessionError {
    /// The program was not found or could not be started.
    #[error("cannot start {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The PTY could not be opened or used.
    #[error("terminal error: {0}")]
    Pty(String),
    /// The CLI's permissions cannot be enforced (or set up) here.
    #[error("{0}")]
    Sandbox(crate::sandbox::SandboxError),
    /// The transcript could not be written.
    #[error("cannot write transcript {}: {reason}", path.display())]
    Transcript {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// How long the end of a session waits, after `KILL`, for the child to be reaped, its
/// group to empty and the PTY threads to finish.
const AFTER_KILL: Duration = Duration::from_secs(3);

/// Runs one interactive step: spawns the CLI in a PTY, types the task in once the TUI is
/// ready, and watches the rendered screen until the agent prints `/exit`, exits, idles
/// through every nudge, times out or is cancelled. The whole process group is gone when
/// this returns. Messages for the agent arrive on `inbox` (`None`: no messaging).
pub async fn run_session(
    spec: SessionSpec,
    cancel: CancellationToken,
    events: UnboundedSender<SessionEvent>,
    inbox: Option<Receiver<Inbound>>,
) -> Result<SessionOutcome, SessionError> {
    run_session_in(spec, cancel, events, inbox, None).await
}

/// [`run_session`], with the terminals kept open between an agent's steps in `kept`:
/// a spec whose [`Carry`] says `take` continues the terminal its agent left there, and
/// a session with a `Carry` that ends with its task done and its CLI still running is
/// left there (not ended) for the agent's next step.
pub async fn run_session_in(
    spec: SessionSpec,
    cancel: CancellationToken,
    events: UnboundedSender<SessionEvent>,
    inbox: Option<Receiver<Inbound>>,
    kept: Option<&Kept>,
) -> Result<SessionOutcome, SessionError> {
    let transcript = tokio::fs::File::create(&spec.transcript_path)
        .await
        .map_err(|e| SessionError::Transcript {
            path: spec.transcript_path.clone(),
            reason: e.to_string(),
        })?
        .into_std()
        .await;
    let fit = kept::Fit::of(&spec);
    let carried = match (&spec.carry, kept) {
        (Some(carry), Some(kept)) if carry.take => kept.take(carry, &fit).await,
        _ => None,
    };
    let home = carried.as_ref().map(|h| h.home.clone());
    let typed = match typed_task(&spec, home.as_deref()).await {
        Ok(t) => t,
        Err(e) => {
            // The terminal stays for a next try.
            if let (Some(held), Some(carry), Some(kept)) = (carried, &spec.carry, kept) {
                kept.put(carry, fit, held);
            }
            return Err(e);
        }
    };
    let cfg = DriverConfig {
        timing: spec.timing.clone(),
        nudge: spec.nudge.clone(),
        timeout: spec.timeout,
        rules: detect::Rules::for_cli(spec.cli),
        typed,
        size: spec.size,
    };
    let (mut pty, mut driver, home) = match carried {
        Some(held) => {
            let kept::Held {
                pty,
                mut driver,
                home,
                ..
            } = held;
            let now = Instant::now();
            driver.next_task(cfg, now);
            // This step's transcript starts with the screen as the agent left it.
            let (recording, prelude) = (pty.recording(), driver.screen_state());
            let _ = tokio::task::spawn_blocking(move || {
                pty::record_into(&recording, transcript, &prelude);
            })
            .await;
            let _ = events.send(SessionEvent::Continued { pgid: pty.pgid });
            // The screen is judged for readiness now, not at the next output.
            for action in driver.on_tick(now) {
                match action {
                    Action::Terminal(Terminal::Write(bytes)) => pty.write(bytes),
                    Action::Emit(event) => {
                        let _ = events.send(event);
                    }
                    Action::Terminal(Terminal::End(_)) | Action::Messaging(_) => {}
                }
            }
            (pty, driver, home)
        }
        None => {
            let launch = pty::Launch {
                argv: spec.argv.clone(),
                cwd: spec.cwd.clone(),
                env: spec.env.clone(),
                size: spec.size,
                sandbox: spec.sandbox.clone(),
            };
            // fork/exec and openpty block; keep them off the runtime's worker threads.
            let pty = tokio::task::spawn_blocking(move || pty::spawn(&launch, transcript))
                .await
                .map_err(|e| SessionError::Pty(format!("the spawning task failed: {e}")))??;
            let _ = events.send(SessionEvent::Spawned { pgid: pty.pgid });
            let home = spec
                .transcript_path
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            (pty, Driver::new(cfg, Instant::now()), home)
        }
    };
    let pgid = pty.pgid;

    let mut link = Link::new(inbox, events.clone());
    // A person may attach (`agent-relay attach`); a session that cannot listen still runs.
    let mut person = match attach::AttachPoint::open(&spec.transcript_path) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(error = %e, "this session cannot take a person at its terminal");
            None
        }
    };
    let mut end: Option<SessionEnd> = None;
    while end.is_none() {
        let deadline = driver.next_deadline(Instant::now());
        let actions = tokio::select! {
            biased;
            () = cancel.cancelled() => vec![Action::Terminal(Terminal::End(SessionEnd::Cancelled))],
            _ = pty.exit.wait() => break,
            // While a person is attached, relayed messages wait in the inbox.
            delivery = link.recv(), if driver.wants_message() && !person.as_ref().is_some_and(attach::AttachPoint::attached) => {
                match delivery {
                    Some(m) if m.answer => driver.offer_answer(m.id, m.line, Instant::now()),
                    Some(m) => driver.offer_message(m.id, m.line, Instant::now()),
                    None => link.incoming = None,
                }
                Vec::new()
            }
            chunk = pty.output.recv() => match chunk {
                Some(bytes) => {
                    let now = Instant::now();
                    let mut actions = driver.on_output(&bytes, now);
                    // Deadlines also pass while output keeps arriving.
                    actions.extend(driver.on_tick(now));
                    actions
                }
                None => Vec::new(),
            },
            seen = next_from_person(&mut person) => {
                if let attach::Seen::Typed(bytes) = seen {
                    pty.write(bytes);
                }
                Vec::new()
            }
            () = sleep_until(deadline) => driver.on_tick(Instant::now()),
        };
        for action in actions {
            match action {
                Action::Terminal(Terminal::Write(bytes)) => pty.write(bytes),
                Action::Terminal(Terminal::End(e)) => end = Some(e),
                Action::Emit(event) => {
                    let _ = events.send(event);
                }
                Action::Messaging(m) => link.apply(m),
            }
        }
    }

    // Nobody types into a session that is ending.
    drop(person);
    let grace = spec.timing.kill_grace;
    let end = match end {
        Some(end) => {
            if end == SessionEnd::ExitRequested && driver.exit_frame_may_follow() {
                // Let the app finish drawing the frame that holds the `/exit`.
                let quiet = spec.timing.settle.min(LAST_FRAME_QUIET);
                settle_output(&mut pty, &mut driver, &events, &mut link, quiet).await;
            }
            // Done with its task and still running: left open for the agent's next step.
            // (A cancel may be the agent's reported result; the launcher's owner ends a
            // kept session that was cancelled from outside.)
            if let (Some(carry), Some(kept)) = (&spec.carry, kept)
                && matches!(end, SessionEnd::ExitRequested | SessionEnd::Cancelled)
                && !pty.exit.has_exited()
            {
                for action in driver.flush_relays(Instant::now()) {
                    if let Action::Messaging(m) = action {
                        link.apply(m);
                    }
                }
                drop(link);
                let output = with_cut_note(
                    driver.output(),
                    driver.output_cut_rows(),
                    &spec.transcript_path,
                );
                kept.put(
                    carry,
                    fit,
                    kept::Held {
                        pty,
                        driver,
                        grace,
                        home,
                    },
                );
                return Ok(SessionOutcome {
                    end,
                    exit_code: None,
                    output,
                });
            }
            end_group(&mut pty, &mut driver, &events, &mut link, grace).await;
            end
        }
        None => {
            // The leader exited by itself; whatever it left in its group goes too, and
            // then the rest of its output (possibly its `/exit`) is read.
            end_leftovers(pgid, grace).await;
            drain(&mut pty, &mut driver, &events, &mut link, AFTER_KILL).await;
            if driver.exit_seen() {
                SessionEnd::ExitRequested
            } else {
                SessionEnd::Exited
            }
        }
    };
    if !group_gone_within(pgid, AFTER_KILL).await {
        tracing::warn!(pgid, "processes of the session group outlived KILL");
    }
    drain(&mut pty, &mut driver, &events, &mut link, AFTER_KILL).await;
    pty.shutdown(AFTER_KILL).await;
    for action in driver.flush_relays(Instant::now()) {
        if let Action::Messaging(m) = action {
            link.apply(m);
        }
    }
    // A message still held was not delivered; its owner hands it back to the mailbox.
    drop(link);

    let exit_code = if pty.exit.has_exited() {
        pty.exit.wait().await
    } else {
        None
    };
    Ok(SessionOutcome {
        end,
        exit_code,
        output: with_cut_note(
            driver.output(),
            driver.output_cut_rows(),
            &spec.transcript_path,
        ),
    })
}

/// What the attached person does next; never, when the session takes nobody.
async fn next_from_person(point: &mut Option<attach::AttachPoint>) -> attach::Seen {
    match point {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

/// The output, with a first line saying so when the screen history reached its cap and
/// the oldest rows were dropped (the transcript still holds every byte).
fn with_cut_note(output: &str, cut_rows: u64, transcript: &std::path::Path) -> String {
    if cut_rows == 0 {
        return output.to_owned();
    }
    format!(
        "[agent-relay: the first {cut_rows} rows of this session's screen were dropped (more than {} rows); the whole transcript is {}]\n{output}",
        screen::HISTORY_ROWS,
        transcript.display()
    )
}

/// The text to type for the task: the task itself, or for a long one a line pointing to
/// the file it was written to: next to the transcript, or in `home` for a session that
/// continues in a terminal started for an earlier step (whose permissions keep that
/// step's directory readable, not this one's).
async fn typed_task(
    spec: &SessionSpec,
    home: Option<&std::path::Path>,
) -> Result<String, SessionError> {
    if spec.task.len() <= inject::LONG_TASK_BYTES {
        return Ok(spec.task.clone());
    }
    let transcript =
        std::path::absolute(&spec.transcript_path).map_err(|e| SessionError::Transcript {
            path: spec.transcript_path.clone(),
            reason: e.to_string(),
        })?;
    let mut path = inject::task_file_path(&transcript);
    if let Some(home) = home {
        // Named after this step's directory and attempt, so that no two collide.
        let step = transcript
            .parent()
            .and_then(std::path::Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path = std::path::absolute(home)
            .unwrap_or_else(|_| home.to_path_buf())
            .join(format!("{step}.{file}"));
    }
    tokio::fs::write(&path, &spec.task)
        .await
        .map_err(|e| SessionError::Transcript {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    Ok(inject::pointer_line(&path))
}

/// The runner's side of the messaging link: messages offered to the agent come in,
/// what became of them and the lines the agent printed for others go out as events.
struct Link {
    incoming: Option<Receiver<Inbound>>,
    events: UnboundedSender<SessionEvent>,
}

impl Link {
    fn new(incoming: Option<Receiver<Inbound>>, events: UnboundedSender<SessionEvent>) -> Self {
        Link { incoming, events }
    }

    async fn recv(&mut self) -> Option<Inbound> {
        match &mut self.incoming {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Carries out a messaging action of the driver.
    fn apply(&mut self, action: Messaging) {
        let event = match action {
            Messaging::Delivered(id) => SessionEvent::MessageDelivered { id },
            Messaging::NotDelivered { id, reason } => {
                SessionEvent::MessageNotDelivered { id, reason }
            }
            Messaging::Relay(line) => SessionEvent::Relay(line),
        };
        let _ = self.events.send(event);
    }
}

/// Now plus `limit`, or far enough away when that cannot be represented.
fn in_at_most(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Feeds output that arrives while the session is ending to the driver; only its events
/// matter now (the agent's `/exit` may be in the last bytes).
fn absorb(
    driver: &mut Driver,
    events: &UnboundedSender<SessionEvent>,
    link: &mut Link,
    bytes: &[u8],
) {
    for action in driver.on_output(bytes, Instant::now()) {
        match action {
            Action::Emit(event) => {
                let _ = events.send(event);
            }
            Action::Terminal(_) => {}
            Action::Messaging(m) => link.apply(m),
        }
    }
}

/// The longest quiet moment waited for after `/exit`, and the longest wait in all.
const LAST_FRAME_QUIET: Duration = Duration::from_millis(250);
const LAST_FRAME_LIMIT: Duration = Duration::from_secs(1);

/// Reads output until it has been quiet for `quiet`, the child exited, or
/// [`LAST_FRAME_LIMIT`] passed.
async fn settle_output(
    pty: &mut pty::Pty,
    driver: &mut Driver,
    events: &UnboundedSender<SessionEvent>,
    link: &mut Link,
    quiet: Duration,
) {
    let limit = in_at_most(LAST_FRAME_LIMIT);
    loop {
        let next = in_at_most(quiet).min(limit);
        tokio::select! {
            chunk = pty.output.recv() => match chunk {
                Some(bytes) => absorb(driver, events, link, &bytes),
                None => return,
            },
            _ = pty.exit.wait() => return,
            () = tokio::time::sleep_until(next) => return,
        }
        if Instant::now() >= limit {
            return;
        }
    }
}

/// Reads output until the reader thread finishes or `limit` passes.
async fn drain(
    pty: &mut pty::Pty,
    driver: &mut Driver,
    events: &UnboundedSender<SessionEvent>,
    link: &mut Link,
    limit: Duration,
) {
    let deadline = in_at_most(limit);
    while !pty.output.is_done() {
        tokio::select! {
            chunk = pty.output.recv() => {
                if let Some(bytes) = chunk {
                    absorb(driver, events, link, &bytes);
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Waits up to `limit` for the child to exit while reading its output; whether it did.
async fn wait_exit(
    pty: &mut pty::Pty,
    driver: &mut Driver,
    events: &UnboundedSender<SessionEvent>,
    link: &mut Link,
    limit: Duration,
) -> bool {
    let deadline = in_at_most(limit);
    loop {
        tokio::select! {
            _ = pty.exit.wait() => return true,
            chunk = pty.output.recv() => {
                if let Some(bytes) = chunk {
                    absorb(driver, events, link, &bytes);
                }
            }
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// Ends a running session's group: hang-up and terminate, `grace` for the leader to go,
/// then `KILL` for the group (the leader if it stayed, and anything it left behind).
async fn end_group(
    pty: &mut pty::Pty,
    driver: &mut Driver,
    events: &UnboundedSender<SessionEvent>,
    link: &mut Link,
    grace: Duration,
) {
    let pgid = pty.pgid;
    let policy = EndPolicy::for_session(grace);
    for sig in &policy.polite {
        signal_group(pgid, *sig);
    }
    let exited = wait_exit(pty, driver, events, link, policy.grace).await;
    signal_group(pgid, Signal::SIGKILL);
    if !exited && !wait_exit(pty, driver, events, link, AFTER_KILL).await {
        tracing::warn!(pgid, "session leader still not reaped after KILL");
    }
}

/// Waits up to `limit` until no live process of group `pgid` is left; whether none is.
async fn group_gone_within(pgid: u32, limit: Duration) -> bool {
    let deadline = in_at_most(limit);
    loop {
        // Scanning /proc is file I/O: off the runtime's worker threads.
        let alive = tokio::task::spawn_blocking(move || crate::group::group_alive(pgid))
            .await
            .unwrap_or(false);
        if !alive {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After the leader exited by itself: `TERM` for whatever it left in its group, `grace`,
/// then `KILL`.
async fn end_leftovers(pgid: u32, grace: Duration) {
    if group_gone_within(pgid, Duration::ZERO).await {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    if !group_gone_within(pgid, grace).await {
        signal_group(pgid, Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_was_cut_says_so() {
        let t = std::path::Path::new("/runs/r/steps/s/attempt-1.pty");
        assert_eq!(with_cut_note("all of it", 0, t), "all of it");
        let cut = with_cut_note("the rest", 12, t);
        assert!(
            cut.starts_with(
                "[agent-relay: the first 12 rows of this session's screen were dropped"
            ),
            "{cut}"
        );
        assert!(cut.contains("/runs/r/steps/s/attempt-1.pty"), "{cut}");
        assert!(cut.ends_with("]\nthe rest"), "{cut}");
    }
}
