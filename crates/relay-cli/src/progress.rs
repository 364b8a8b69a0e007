//! The progress view on stderr, fed by the engine's events: a line per event, plus (on a
//! terminal) a status line redrawn in place with what is running and for how long.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use relay_engine::events::{Event, EventKind, RunStatus};
use relay_engine::{RunSummary, StepStatus};
use tokio::sync::mpsc::UnboundedReceiver;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Event lines and a live status line (stderr is a terminal).
    Live,
    /// Event lines only.
    Plain,
    /// Nothing until the summary.
    Quiet,
}

impl Mode {
    /// Live on a terminal, plain otherwise, quiet when asked.
    pub fn pick(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Live
        } else {
            Mode::Plain
        }
    }
}

struct View {
    mode: Mode,
    total: usize,
    finished: usize,
    running: BTreeMap<String, (u32, Instant)>,
    /// Rows of the live block on screen now (0: none).
    block_rows: usize,
    /// Spinner frame.
    frame: usize,
}

/// Spinner frames of running steps.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Running steps the live block lists; more are counted on one row.
const BLOCK_STEPS: usize = 8;

/// The live block: a tally row, then a row per running step (spinner, name, attempt,
/// elapsed), the longest-running first; pure, so it is tested without a terminal.
fn block(
    finished: usize,
    total: usize,
    running: &[(&str, u32, Duration)],
    frame: usize,
) -> Vec<String> {
    let mut sorted: Vec<&(&str, u32, Duration)> = running.iter().collect();
    sorted.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let width = sorted
        .iter()
        .take(BLOCK_STEPS)
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0);
    let mut rows = vec![format!("[{finished}/{total}] {} running", running.len())];
    for (name, attempt, elapsed) in sorted.iter().take(BLOCK_STEPS) {
        let spin = SPINNER[frame % SPINNER.len()];
        let a = if *attempt > 1 {
            format!("  attempt {attempt}")
        } else {
            String::new()
        };
        rows.push(format!("  {spin} {name:width$}  {:>7}{a}", secs(*elapsed)));
    }
    if sorted.len() > BLOCK_STEPS {
        rows.push(format!("  … and {} more", sorted.len() - BLOCK_STEPS));
    }
    rows
}

impl View {
    fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        Self::clear_block(&mut err, &mut self.block_rows);
        let _ = writeln!(err, "{text}");
    }

    /// Erases the live block; the cursor is left where its first row was.
    fn clear_block(err: &mut impl Write, rows: &mut usize) {
        if *rows > 1 {
            let _ = write!(err, "\r\x1b[{}A\x1b[J", *rows - 1);
        } else if *rows == 1 {
            let _ = write!(err, "\r\x1b[J");
        }
        *rows = 0;
    }

    fn status(&mut self) {
        if self.mode != Mode::Live {
            return;
        }
        let mut err = std::io::stderr().lock();
        Self::clear_block(&mut err, &mut self.block_rows);
        if self.running.is_empty() {
            let _ = err.flush();
            return;
        }
        let running: Vec<(&str, u32, Duration)> = self
            .running
            .iter()
            .map(|(name, (attempt, t))| (name.as_str(), *attempt, t.elapsed()))
            .collect();
        self.frame += 1;
        let rows = block(self.finished, self.total, &running, self.frame);
        let _ = write!(err, "{}", rows.join("\n"));
        let _ = err.flush();
        self.block_rows = rows.len();
    }

    fn on(&mut self, e: &Event) {
        let live = self.mode == Mode::Live;
        let text = match &e.kind {
            EventKind::RunStarted {
                run_id,
                workflow,
                steps,
                pattern,
                max_concurrency,
                rehearsal,
            } => {
                self.total = steps.len();
                format!(
                    "run {run_id}: workflow `{workflow}`, {} step{}, pattern {pattern}{}{}",
                    steps.len(),
                    if steps.len() == 1 { "" } else { "s" },
                    max_concurrency
                        .map(|m| format!(", at most {m} at once"))
                        .unwrap_or_default(),
                    if *rehearsal { " (rehearsal)" } else { "" }
                )
            }
            EventKind::StepStarted {
                step,
                attempt,
                agent,
            } => {
                self.running
                    .entry(step.clone())
                    .and_modify(|r| r.0 = *attempt)
                    .or_insert((*attempt, Instant::now()));
                let who = agent
                    .as_ref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default();
                if *attempt > 1 {
                    format!("{} {step}{who} attempt {attempt}", mark(live, "start"))
                } else {
                    format!("{} {step}{who}", mark(live, "start"))
                }
            }
            EventKind::StepRetrying {
                step,
                attempt,
                reason,
                delay_ms,
            } => format!(
                "{} {step} attempt {attempt} failed: {reason}; retrying{}",
                mark(live, "retry"),
                if *delay_ms > 0 {
                    format!(" in {}", secs(Duration::from_millis(*delay_ms)))
                } else {
                    String::new()
                }
            ),
            EventKind::StepCompleted {
                step, duration_ms, ..
            } => {
                self.running.remove(step);
                self.finished += 1;
                format!(
                    "{} {step} completed in {}",
                    mark(live, "ok"),
                    secs(Duration::from_millis(*duration_ms))
                )
            }
            EventKind::StepFailed { step, reason, .. } => {
                self.running.remove(step);
                self.finished += 1;
                format!("{} {step} failed: {reason}", mark(live, "fail"))
            }
            EventKind::StepSkipped { step, reason } => {
                self.finished += 1;
                format!("{} {step} skipped: {reason}", mark(live, "skip"))
            }
            EventKind::Warning { message } => format!("warning: {message}"),
            EventKind::AgentSpawned {
                step,
                worker: Some(w),
                ..
            } => format!("  {step}: on worker {w}"),
            EventKind::AgentReady {
                step,
                fallback: true,
            } => format!("  {step}: no ready prompt seen in time; typing the task anyway"),
            EventKind::AgentDialogAnswered { step, dialog } => {
                format!("  {step}: answered the agent's start-up dialog: {dialog}")
            }
            EventKind::AgentNotReady { step, reason } => {
                format!("  {step}: agent will not become ready: {reason}")
            }
            EventKind::AgentIdle { step } => format!("  {step}: agent is idle"),
            EventKind::StepNudged { step, count } => {
                format!("  {step}: nudged idle agent ({count})")
            }
            EventKind::StepForceReleased { step } => {
                format!("  {step}: force-released idle agent")
            }
            EventKind::QuestionAsked { step, question } => format!(
                "  {step}: asks a person: {question}\n    answer with: agent-relay answer last {step} \"...\""
            ),
            EventKind::QuestionAnswered { step, .. } => format!("  {step}: answered; going on"),
            EventKind::ApprovalRequested {
                step, timeout_ms, ..
            } => format!(
                "  {step}: waits for approval{}\n    decide with: agent-relay approve last {step}  |  agent-relay reject last {step} --reason \"...\"",
                timeout_ms
                    .map(|ms| format!(" (for at most {ms} ms)"))
                    .unwrap_or_default()
            ),
            EventKind::ApprovalDecided {
                step,
                approved,
                by,
                reason,
            } => format!(
                "  {step}: {} by {by}{}",
                if *approved { "approved" } else { "rejected" },
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            EventKind::RunPaused { by } => format!("paused by {by}: no new step starts"),
            EventKind::RunUnpaused { by } => format!("unpaused by {by}"),
            EventKind::Pattern {
                step,
                action,
                detail,
            } if action == "loop" => format!("  {step}: {detail}"),
            EventKind::WorktreeRunBranch { branch, .. } => {
                format!("  agents' work is merged into branch {branch}")
            }
            EventKind::WorktreeConflict {
                step,
                branch,
                files,
                report,
                ..
            } => format!(
                "  {step}: merge conflict in {}; its version is kept on {branch}; report: {report}",
                files.join(", ")
            ),
            EventKind::WorktreeResolved { step, resolver, .. } => {
                format!("  {step}: conflict resolved by {resolver}")
            }
            EventKind::StepParked {
                step,
                until_ms,
                reason,
                ..
            } => {
                self.running.remove(step);
                let now = relay_engine::run::park::wall_now_ms();
                format!(
                    "{} {step} parked until {}: {reason}\n    resume it now with: agent-relay unpark last",
                    mark(live, "park"),
                    relay_engine::run::park::show(*until_ms, now)
                )
            }
            EventKind::RunUnparked { steps } => format!("  unparked: {}", steps.join(", ")),
            EventKind::StepTokenLimit {
                step,
                max_tokens,
                used,
                ..
            } => format!("  {step}: stopped at {used} tokens (its maxTokens is {max_tokens})"),
            _ => return,
        };
        self.line(&text);
        self.status();
    }
}

fn mark(live: bool, what: &str) -> &'static str {
    match (live, what) {
        (true, "start") => "▶",
        (true, "ok") => "✓",
        (true, "fail") => "✗",
        (true, "skip") => "–",
        (true, "park") => "⏸",
        (true, _) => "↻",
        (false, "start") => "start",
        (false, "ok") => "ok   ",
        (false, "fail") => "FAIL ",
        (false, "skip") => "skip ",
        (false, "park") => "park ",
        (false, _) => "retry",
    }
}

fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Renders events until the engine closes the channel.
pub fn spawn(mut rx: UnboundedReceiver<Event>, mode: Mode) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut view = View {
            mode,
            total: 0,
            finished: 0,
            running: BTreeMap::new(),
            block_rows: 0,
            frame: 0,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(150));
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(e) if mode != Mode::Quiet => view.on(&e),
                    Some(_) => {}
                    None => break,
                },
                _ = tick.tick(), if mode == Mode::Live => view.status(),
            }
        }
        // The block collapses; the summary follows in its place.
        View::clear_block(&mut std::io::stderr().lock(), &mut view.block_rows);
    })
}

/// Tokens (and dollars, when priced) in words: `1234 tokens (1000 in, 234 out), $0.0123`.
pub fn spending(u: &relay_broker::usage::Usage, cost_usd: Option<f64>) -> String {
    let mut parts = vec![format!("{} in", u.input), format!("{} out", u.output)];
    if u.cache_read > 0 {
        parts.push(format!("{} cache read", u.cache_read));
    }
    if u.cache_write > 0 {
        parts.push(format!("{} cache write", u.cache_write));
    }
    let mut text = format!("{} tokens ({})", u.total(), parts.join(", "));
    if let Some(c) = cost_usd {
        text.push_str(&format!(", ${c:.4}"));
    }
    text
}

/// The final summary on stderr.
pub fn print_summary(s: &RunSummary) {
    let count = |st: StepStatus| s.steps.iter().filter(|x| x.status == st).count();
    let status = match s.status {
        RunStatus::Completed => "completed",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "CANCELLED",
        RunStatus::NeedsHuman => "NEEDS A PERSON",
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nrun {} {status} in {}: {} completed, {} failed, {} skipped",
        s.run_id,
        secs(Duration::from_millis(s.duration_ms)),
        count(StepStatus::Completed),
        count(StepStatus::Failed),
        count(StepStatus::Skipped)
    );
    let width = s.steps.iter().map(|x| x.name.len()).max().unwrap_or(0);
    for st in &s.steps {
        let detail = match st.status {
            StepStatus::Completed => format!(
                "completed  {}{}",
                secs(Duration::from_millis(st.duration_ms)),
                if st.attempts > 1 {
                    format!(" after {} attempts", st.attempts)
                } else {
                    String::new()
                }
            ),
            StepStatus::Failed => {
                format!("failed     {}", st.reason.as_deref().unwrap_or("failed"))
            }
            StepStatus::Skipped => format!("skipped    {}", st.reason.as_deref().unwrap_or("")),
        };
        let spent = st
            .usage
            .as_ref()
            .map(|u| format!("  [{}]", spending(u, st.cost_usd)))
            .unwrap_or_default();
        let _ = writeln!(err, "  {:width$}  {detail}{spent}", st.name);
    }
    if let Some(u) = &s.usage {
        let _ = writeln!(err, "spent: {}", spending(u, s.cost_usd));
    }
    if let Some(r) = &s.reason {
        let _ = writeln!(err, "reason: {r}");
    }
    for w in &s.worktrees {
        let _ = writeln!(err, "worktree: {w}");
    }
    let _ = writeln!(err, "run directory: {}", s.run_dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_block_lists_running_steps_longest_first_with_attempts() {
        let running = [
            ("short", 1, Duration::from_millis(300)),
            ("long-step", 2, Duration::from_millis(61_500)),
        ];
        let rows = block(3, 7, &running, 1);
        assert_eq!(
            rows,
            vec![
                "[3/7] 2 running".to_string(),
                format!("  {} long-step    1m01s  attempt 2", SPINNER[1]),
                format!("  {} short        300ms", SPINNER[1]),
            ]
        );
        assert_ne!(block(3, 7, &running, 2)[1], rows[1], "the spinner turns");
    }

    #[test]
    fn a_long_list_is_cut_and_counted() {
        let names: Vec<String> = (0..12).map(|i| format!("s{i:02}")).collect();
        let running: Vec<(&str, u32, Duration)> = names
            .iter()
            .map(|n| (n.as_str(), 1, Duration::from_secs(1)))
            .collect();
        let rows = block(0, 12, &running, 0);
        assert_eq!(rows.len(), 1 + BLOCK_STEPS + 1);
        assert_eq!(rows.last().unwrap(), "  … and 4 more");
    }

    #[test]
    fn clearing_the_block_moves_up_over_its_rows() {
        let mut out = Vec::new();
        let mut rows = 3;
        View::clear_block(&mut out, &mut rows);
        assert_eq!(out, b"\r\x1b[2A\x1b[J");
        assert_eq!(rows, 0);
        out.clear();
        View::clear_block(&mut out, &mut rows);
        assert!(out.is_empty(), "nothing to clear, nothing written");
    }
}
