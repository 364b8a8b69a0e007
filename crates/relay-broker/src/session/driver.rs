//! The session's decisions, free of I/O: bytes, clock ticks and messages in; actions out.
//! The async runner in `mod.rs` only moves bytes and messages and carries out the
//! actions, so the whole state machine runs on recorded bytes and a fake clock.
//!
//! `Driver` composes four small machines, each with its own state and deadline:
//!
//! - the **output tracker** (`output.rs`): the screen, terminal query answers, the anchor
//!   where the task was typed, the agent's clean output, its `/exit`;
//! - the **typist** (`typist.rs`): typing the task, nudges and messages, Enter as a
//!   separate write, delivery judged by the agent's reaction, retries;
//! - the **idle clock** (`idle.rs`): idleness, nudges, force-release;
//! - the **relay scanner** (`relay_scan.rs`): the `->relay:` lines the agent prints.
//!
//! The driver also notices a question the agent asks a person (`HUMAN_QUESTION:`): until
//! an answer is typed in, the idle clock and the session's timeout stand still.
//!
//! Before the task, the driver itself judges readiness from the rendered screen: a
//! start-up dialog (answered where safe, else reported), the CLI's ready cue (a hint), or
//! the cursor on an input line, then a quiet moment.

use std::time::Duration;

use tokio::time::Instant;

use super::detect::{Readiness, Rules};
use super::idle::{Due, IdleClock, after};
use super::output::{LastFrame, OutputTracker};
use super::relay_scan::RelayScanner;
use super::sanitize;
use super::typist::{Did, Typist};
use super::{NudgePolicy, SessionEnd, SessionEvent, SessionTiming};
use relay_messaging::MessageId;
use relay_messaging::lines::RelayLine;

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Something for the terminal.
    Terminal(Terminal),
    /// Something for agent messaging.
    Messaging(Messaging),
    /// Report this event.
    Emit(SessionEvent),
}

/// What the runner does to the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    /// Write these bytes to the terminal, as one write.
    Write(Vec<u8>),
    /// End the session this way.
    End(SessionEnd),
}

/// What the runner tells agent messaging.
#[derive(Debug, Clone, PartialEq)]
pub enum Messaging {
    /// The offered message was typed in and the agent reacted to it.
    Delivered(MessageId),
    /// The offered message could not be typed in this time; it is handed back.
    NotDelivered {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
    },
    /// The agent printed a `->relay:` line (or block): send it.
    Relay(RelayLine),
}

impl Action {
    fn write(bytes: Vec<u8>) -> Action {
        Action::Terminal(Terminal::Write(bytes))
    }

    fn end(end: SessionEnd) -> Action {
        Action::Terminal(Terminal::End(end))
    }
}

/// What the driver needs to know about the session.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Timing knobs.
    pub timing: SessionTiming,
    /// Idle nudging, if any.
    pub nudge: Option<NudgePolicy>,
    /// Bound on the whole session.
    pub timeout: Option<Duration>,
    /// Screen conventions of the CLI.
    pub rules: Rules,
    /// The text typed as the task (the task itself or a pointer to its file).
    pub typed: String,
    /// Terminal size (rows, cols).
    pub size: (u16, u16),
}

/// How many fallback waits a start-up screen may keep changing before the session gives
/// up on it: the task is typed only into a quiet screen.
const NEVER_QUIET_FALLBACKS: u32 = 3;

/// How long a start-up dialog that needs a person must stay unchanged on a quiet screen
/// before the session gives up on it (sooner than the readiness fallback: such a dialog
/// does not go away by itself).
const PERSON_DIALOG_QUIET: Duration = Duration::from_secs(2);

/// How long a terminal continued from an earlier step must be quiet before its next task
/// is typed: the app may still be finishing the turn that printed the earlier `/exit`
/// (gemini redraws its input box then, and takes an Enter that comes too soon after a
/// paste as a line break).
const CONTINUED_QUIET: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Stage {
    /// Waiting for the TUI to be ready; the start-up dialogs answered so far.
    Starting {
        answered: Vec<&'static str>,
    },
    /// The task was typed.
    Running,
    Ended,
}

/// The state machine of one session.
pub struct Driver {
    timing: SessionTiming,
    timeout: Option<Duration>,
    started: Instant,
    stage: Stage,
    out: OutputTracker,
    typist: Typist,
    idle: IdleClock,
    relays: RelayScanner,
    asks: Asks,
    /// Quiet needed before the task is typed: the settle time, longer in a terminal
    /// continued from an earlier step.
    ready_quiet: Duration,
}

/// The questions the agent asked a person, and the answers offered to it.
#[derive(Debug, Default)]
struct Asks {
    /// Questions seen in the output so far.
    seen: usize,
    /// The output changed since it was last read for questions.
    dirty: bool,
    /// Since when the agent waits for an answer.
    since: Option<Instant>,
    /// Time spent waiting for answers, which the timeout does not count.
    paused: Duration,
    /// Answers offered and not delivered yet.
    answers: Vec<MessageId>,
}

impl Driver {
    /// A driver for a session that started at `now`.
    pub fn new(cfg: DriverConfig, now: Instant) -> Self {
        let policy =
            IdleClock::policy_for(cfg.nudge.as_ref(), cfg.timeout, cfg.timing.idle_threshold);
        Driver {
            idle: IdleClock::new(cfg.timing.idle_threshold, policy, now),
            out: OutputTracker::new(cfg.rules, cfg.size, &cfg.typed),
            typist: Typist::new(cfg.timing.clone(), cfg.typed),
            relays: RelayScanner::new(),
            asks: Asks::default(),
            ready_quiet: cfg.timing.settle,
            timing: cfg.timing,
            timeout: cfg.timeout,
            started: now,
            stage: Stage::Starting {
                answered: Vec::new(),
            },
        }
    }

    /// Starts the next task in the same terminal at `now`: the screen is kept, everything
    /// else (readiness, typing, idleness, relays, questions, the timeout) starts over
    /// with `cfg`. The screen is judged for readiness again before the task is typed.
    pub fn next_task(&mut self, cfg: DriverConfig, now: Instant) {
        let policy =
            IdleClock::policy_for(cfg.nudge.as_ref(), cfg.timeout, cfg.timing.idle_threshold);
        self.idle = IdleClock::new(cfg.timing.idle_threshold, policy, now);
        self.out.next_task(&cfg.typed);
        self.typist = Typist::new(cfg.timing.clone(), cfg.typed);
        self.relays = RelayScanner::new();
        self.asks = Asks::default();
        self.ready_quiet = cfg.timing.settle.max(CONTINUED_QUIET);
        self.timing = cfg.timing;
        self.timeout = cfg.timeout;
        self.started = now;
        self.stage = Stage::Starting {
            answered: Vec::new(),
        };
    }

    /// Escape codes that draw the screen as it is now, on a blank terminal.
    pub fn screen_state(&self) -> Vec<u8> {
        self.out.screen_state()
    }

    /// The agent's output so far.
    pub fn output(&self) -> &str {
        self.out.output()
    }

    /// How many rows of the session's output were dropped from the front because the
    /// screen history reached its cap ([`super::screen::HISTORY_ROWS`]).
    pub fn output_cut_rows(&self) -> u64 {
        self.out.dropped_rows()
    }

    /// Whether the agent's `/exit` was seen.
    pub fn exit_seen(&self) -> bool {
        self.out.exit_seen()
    }

    /// Whether the frame that showed the agent's `/exit` may still be drawn above it (a
    /// blank row or nothing right above the `/exit`): worth a quiet moment before the
    /// session is ended.
    pub fn exit_frame_may_follow(&self) -> bool {
        self.out.exit_frame() == Some(LastFrame::MayFollow)
    }

    /// Whether the driver would take a message to type in now: the task is delivered,
    /// the session runs, and no other message is on its way.
    pub fn wants_message(&self) -> bool {
        matches!(self.stage, Stage::Running) && self.typist.wants_message()
    }

    /// Takes a message to type in (as the one line `line`) once the agent is quiet. It
    /// ends in [`Messaging::Delivered`] or [`Messaging::NotDelivered`].
    pub fn offer_message(&mut self, id: MessageId, line: String, now: Instant) {
        self.typist.offer(id, line, now);
    }

    /// Takes a person's answer to the agent's question, typed in as `line` like a
    /// message; once delivered, the idle clock and the timeout run again.
    pub fn offer_answer(&mut self, id: MessageId, line: String, now: Instant) {
        self.asks.answers.push(id);
        self.typist.offer(id, line, now);
    }

    /// Whether the agent waits for a person's answer.
    pub fn asking(&self) -> bool {
        self.asks.since.is_some()
    }

    /// The message held, if any (handed back by the runner when the session ends).
    pub fn held_message(&self) -> Option<MessageId> {
        self.typist.held_message()
    }

    /// Sends every complete relay line not sent yet, also one the agent may still be
    /// writing: the session is ending and nothing more will come.
    pub fn flush_relays(&mut self, _now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.out.anchored() {
            self.scan_relays(true, &mut actions);
        }
        actions
    }

    /// Takes a chunk of output that arrived at `now`.
    pub fn on_output(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        let mut actions: Vec<Action> = self
            .out
            .feed(bytes, now)
            .into_iter()
            .map(Action::write)
            .collect();
        match self.stage {
            Stage::Running => {}
            Stage::Ended => {
                // The rows above an `/exit` may still be completed as the app draws its
                // last frame (codex can draw the `/exit` row before the reply above it).
                let _ = self.out.take_observed();
                return actions;
            }
            Stage::Starting { .. } => return actions,
        }
        let seen = self.out.take_observed();
        let did = self.typist.on_screen(&self.out);
        self.apply(did, now, &mut actions);
        if seen.changed {
            self.idle.activity(now);
            let o = self.out.output();
            self.asks.dirty = o.contains("HUMAN_QUESTION") || o.contains("NEEDS_CLARIFICATION");
        }
        if seen.exit {
            // The agent wrote `/exit` after the task was typed: it took the task, whatever
            // the typist was still waiting for.
            let did = self.typist.task_taken();
            self.apply(did, now, &mut actions);
            // Everything above an `/exit` is complete.
            self.scan_relays(true, &mut actions);
            actions.push(Action::Emit(SessionEvent::ExitRequested));
            self.finish(SessionEnd::ExitRequested, &mut actions);
            return actions;
        }
        if self.typist.task_delivered() {
            let quiet = self.quiet(now);
            self.scan_relays(quiet, &mut actions);
        }
        actions
    }

    /// When the session times out, if it can: never while the agent waits for a person.
    fn timeout_at(&self) -> Option<Instant> {
        let t = self.timeout?;
        if self.asking() {
            return None;
        }
        after(self.started, t.saturating_add(self.asks.paused))
    }

    /// Reads the settled output for a new question to a person.
    fn scan_questions(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.asks.dirty || !self.typist.task_delivered() || !self.quiet(now) {
            return;
        }
        self.asks.dirty = false;
        let mut asked = super::detect::questions(self.out.output());
        if asked.len() <= self.asks.seen {
            return;
        }
        self.asks.seen = asked.len();
        if let Some(question) = asked.pop() {
            self.asks.since.get_or_insert(now);
            actions.push(Action::Emit(SessionEvent::Asked { question }));
        }
    }

    /// Acts on every deadline reached by `now`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if matches!(self.stage, Stage::Ended) {
            return actions;
        }
        if self.timeout_at().is_some_and(|end| now >= end) {
            self.finish(SessionEnd::TimedOut, &mut actions);
            return actions;
        }
        match self.stage {
            Stage::Starting { .. } => self.tick_starting(now, &mut actions),
            Stage::Running => self.tick_running(now, &mut actions),
            Stage::Ended => {}
        }
        actions
    }

    /// The next moment `on_tick` has something to do, if any.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut due: Vec<Option<Instant>> = vec![self.timeout_at()];
        match &self.stage {
            Stage::Ended => return None,
            Stage::Starting { .. } => {
                // Only moments still ahead: past the fallback, a screen that is not quiet
                // yet is looked at again when it could be, not in a busy loop.
                let fallback = after(self.started, self.timing.ready_fallback);
                let late = after(self.started, self.timing.ready_fallback.saturating_mul(2));
                match (fallback, late) {
                    (Some(f), _) if f > now => due.push(Some(f)),
                    (_, Some(l)) if l > now => due.push(Some(l)),
                    _ => due.push(self.never_quiet_at().filter(|t| *t > now)),
                }
                if let Some(last) = self.out.last_output() {
                    for wait in [self.ready_quiet, PERSON_DIALOG_QUIET] {
                        if let Some(at) = after(last, wait)
                            && at > now
                        {
                            due.push(Some(at));
                        }
                    }
                }
            }
            Stage::Running => {
                due.push(self.typist.next_deadline(
                    &self.out,
                    self.started,
                    self.idle.last_activity(),
                ));
                if self.typist.is_free() {
                    if self.relays.waiting() || self.asks.dirty {
                        due.push(self.quiet_at());
                    }
                    if !self.asking() {
                        due.push(self.idle.next_deadline());
                    }
                }
            }
        }
        due.into_iter().flatten().min()
    }

    fn quiet_at(&self) -> Option<Instant> {
        self.out
            .last_output()
            .map_or(Some(self.started), |t| after(t, self.timing.settle))
    }

    fn quiet(&self, now: Instant) -> bool {
        self.quiet_at().is_some_and(|q| now >= q)
    }

    fn never_quiet_at(&self) -> Option<Instant> {
        after(
            self.started,
            self.timing
                .ready_fallback
                .saturating_mul(NEVER_QUIET_FALLBACKS),
        )
    }

    fn finish(&mut self, end: SessionEnd, actions: &mut Vec<Action>) {
        self.stage = Stage::Ended;
        actions.push(Action::end(end));
    }

    fn tick_starting(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Stage::Starting { answered } = &mut self.stage else {
            return;
        };
        let settled = self
            .out
            .quiet_for(now)
            .is_some_and(|q| q >= self.ready_quiet);
        let fallback = after(self.started, self.timing.ready_fallback).is_none_or(|t| now >= t);
        let ready = match self.out.readiness() {
            Readiness::Dialog(d) => {
                if !settled {
                    return;
                }
                if let Some(keys) = d.answer
                    && !answered.contains(&d.name)
                {
                    answered.push(d.name);
                    let text = sanitize::typed_text(keys, false);
                    if !text.is_empty() {
                        actions.push(Action::write(sanitize::wrap(&text, false)));
                    }
                    if keys.ends_with('\r') {
                        actions.push(Action::write(super::inject::ENTER.to_vec()));
                    }
                    actions.push(Action::Emit(SessionEvent::DialogAnswered {
                        dialog: d.name.to_owned(),
                    }));
                    return;
                }
                let stuck = self
                    .out
                    .quiet_for(now)
                    .is_some_and(|q| q >= PERSON_DIALOG_QUIET);
                if fallback || stuck {
                    let reason = format!(
                        "the agent is waiting at a start-up dialog ({}) that needs a person: answer it once in the CLI by hand, or seed its settings",
                        d.name
                    );
                    actions.push(Action::Emit(SessionEvent::NotReady {
                        reason: reason.clone(),
                    }));
                    self.finish(SessionEnd::DeliveryFailed(reason), actions);
                }
                return;
            }
            Readiness::Cue | Readiness::InputLine => settled,
            Readiness::NotYet => false,
        };
        // A fallback still types only into a quiet screen that looks drawn (or into a
        // program that never wrote anything); a blank screen or a hidden cursor gets one
        // more fallback wait.
        let late = after(self.started, self.timing.ready_fallback.saturating_mul(2))
            .is_none_or(|t| now >= t);
        let quiet =
            self.out.last_output().is_none() || (settled && (self.out.looks_drawn() || late));
        if ready || (fallback && quiet) {
            actions.push(Action::Emit(SessionEvent::Ready { fallback: !ready }));
            self.stage = Stage::Running;
            let did = self.typist.start_task(now, &mut self.out);
            self.apply(did, now, actions);
        } else if self.never_quiet_at().is_none_or(|t| now >= t) {
            let reason =
                "the agent's screen never went quiet long enough to type the task".to_owned();
            actions.push(Action::Emit(SessionEvent::NotReady {
                reason: reason.clone(),
            }));
            self.finish(SessionEnd::DeliveryFailed(reason), actions);
        }
    }

    fn tick_running(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if !self.typist.is_free() {
            let did = self
                .typist
                .tick(now, &mut self.out, self.started, self.idle.last_activity());
            self.apply(did, now, actions);
            return;
        }
        if self.relays.waiting() && self.quiet(now) {
            self.scan_relays(true, actions);
        }
        self.scan_questions(now, actions);
        let did = self
            .typist
            .tick(now, &mut self.out, self.started, self.idle.last_activity());
        let typing = !self.typist.is_free();
        self.apply(did, now, actions);
        if typing || !matches!(self.stage, Stage::Running) || self.asking() {
            return;
        }
        let due = self.idle.due(now);
        if !due.is_empty()
            && let Some(message) = self.limit_reported()
        {
            // Nudging an agent that waits for its provider's limit would only spend
            // requests against it.
            self.finish(SessionEnd::RateLimited(message), actions);
            return;
        }
        for due in due {
            match due {
                Due::Idle => actions.push(Action::Emit(SessionEvent::Idle)),
                Due::Nudge(n) => {
                    let did = self.typist.nudge(n, now, &mut self.out);
                    self.apply(did, now, actions);
                }
                Due::Release => {
                    actions.push(Action::Emit(SessionEvent::ForceReleased));
                    self.finish(SessionEnd::ForceReleased, actions);
                    return;
                }
            }
        }
    }

    /// The line of a provider's rate or usage limit the agent's output ends with, if it
    /// does: only the last few lines count, which is where a TUI shows the error it stopped
    /// at (an agent that merely talks about rate limits earlier is left alone).
    fn limit_reported(&self) -> Option<String> {
        const LAST_LINES: usize = 4;
        let lines: Vec<&str> = self
            .out
            .output()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(LAST_LINES)..].join("\n");
        crate::ratelimit::detect(self.out.rules().cli, &tail, 0, 0).map(|l| l.message)
    }

    /// Carries out what the typist did.
    fn apply(&mut self, did: Vec<Did>, now: Instant, actions: &mut Vec<Action>) {
        for d in did {
            match d {
                Did::Write(bytes) => actions.push(Action::write(bytes)),
                Did::TaskDelivered { attempts } => {
                    actions.push(Action::Emit(SessionEvent::TaskDelivered { attempts }));
                    self.idle.activity(now);
                    self.idle.typed(now);
                }
                Did::TaskUndeliverable(reason) => {
                    self.finish(SessionEnd::DeliveryFailed(reason), actions);
                }
                Did::Nudged(count) => actions.push(Action::Emit(SessionEvent::Nudged { count })),
                Did::MessageDelivered(id) => {
                    if let Some(i) = self.asks.answers.iter().position(|a| *a == id) {
                        self.asks.answers.remove(i);
                        if let Some(since) = self.asks.since.take() {
                            self.asks.paused += now.saturating_duration_since(since);
                        }
                    }
                    actions.push(Action::Messaging(Messaging::Delivered(id)));
                    // The agent answers a message: that is not idleness.
                    self.idle.activity(now);
                    self.idle.typed(now);
                }
                Did::MessageNotDelivered { id, reason } => {
                    actions.push(Action::Messaging(Messaging::NotDelivered { id, reason }));
                }
                Did::Settled => self.idle.typed(now),
            }
        }
    }

    /// Sends the relay lines of the output not sent yet. The last one, when it ends the
    /// output, may still be growing; it waits for quiet unless `complete`.
    fn scan_relays(&mut self, complete: bool, actions: &mut Vec<Action>) {
        let glyphs: Vec<&str> = self
            .out
            .rules()
            .reply_glyphs
            .iter()
            .map(String::as_str)
            .collect();
        for line in self.relays.scan(self.out.output(), &glyphs, complete) {
            actions.push(Action::Messaging(Messaging::Relay(line)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::inject::NUDGE_TEXT;
    use super::*;
    use relay_spec::Cli;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(typed: &str, nudge: Option<NudgePolicy>) -> DriverConfig {
        DriverConfig {
            timing: SessionTiming {
                settle: ms(100),
                ready_fallback: ms(1000),
                enter_delay: ms(50),
                confirm_timeout: ms(200),
                delivery_attempts: 2,
                idle_threshold: Some(ms(300)),
                kill_grace: ms(100),
            },
            nudge,
            timeout: Some(ms(60_000)),
            rules: Rules::for_cli(Some(Cli::Claude)),
            typed: typed.to_owned(),
            size: (10, 60),
        }
    }

    fn writes(actions: &[Action]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Terminal(Terminal::Write(b)) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn events(actions: &[Action]) -> Vec<SessionEvent> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Emit(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// Brings a driver to the point where the task is delivered.
    fn delivered(d: &mut Driver, t0: Instant) -> Instant {
        d.on_output(
            b"Fake Claude\r\n? for shortcuts\r\n\x1b[?2004h\xe2\x9d\xaf ",
            t0,
        );
        let t = t0 + ms(100);
        let a = d.on_tick(t);
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
        let w = writes(&a);
        assert!(w[0].starts_with(b"\x1b[200~"), "bracketed paste: {w:?}");
        d.on_output(b"say hi", t);
        let t = t + ms(50);
        assert_eq!(writes(&d.on_tick(t)), [b"\r".to_vec()]);
        let a = d.on_output(b"\r\n", t);
        assert_eq!(events(&a), [SessionEvent::TaskDelivered { attempts: 1 }]);
        t
    }

    #[test]
    fn answers_queries_with_the_cursor_where_the_query_was() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("x", None), t0);
        let a = d.on_output(b"ab\x1b[6n\r\nmore text\x1b[c", t0);
        assert_eq!(
            writes(&a),
            [b"\x1b[1;3R".to_vec(), b"\x1b[?62;22c".to_vec()]
        );
    }

    #[test]
    fn types_the_task_after_the_cue_and_quiet_then_finds_exit() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        d.on_output(b"Fake Claude\r\n? for shortcuts\r\n", t0);
        // Quiet is not enough before the settle time.
        assert!(d.on_tick(t0 + ms(50)).is_empty());
        let t = delivered(&mut d, t0);
        let a = d.on_output("● hi there\r\n● /exit\r\n".as_bytes(), t + ms(10));
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ExitRequested))));
        assert_eq!(d.output(), "hi there");
    }

    #[test]
    fn a_next_task_in_the_same_terminal_is_read_apart_from_the_one_before() {
        next_task_read_apart(b"");
    }

    #[test]
    fn a_next_task_on_the_alternate_screen_is_read_apart_from_the_one_before() {
        // Rows have no fixed place there (codex draws its whole conversation so).
        next_task_read_apart(b"\x1b[?1049h\x1b[H\x1b[2J");
    }

    fn next_task_read_apart(screen: &[u8]) {
        // Both tasks start alike, as tasks of one agent do; the first one's echo, reply and
        // `/exit` stay on the screen above the second.
        let (one, two) = (
            "Work for the team on this: part one",
            "Work for the team on this: part two",
        );
        let t0 = Instant::now();
        let mut d = Driver::new(config(one, None), t0);
        let mut start = screen.to_vec();
        start.extend_from_slice(b"Fake Claude\r\n? for shortcuts\r\n\x1b[?2004h\xe2\x9d\xaf ");
        d.on_output(&start, t0);
        let t = t0 + ms(100);
        assert_eq!(
            events(&d.on_tick(t)),
            [SessionEvent::Ready { fallback: false }]
        );
        d.on_output(one.as_bytes(), t);
        let t = t + ms(50);
        assert_eq!(writes(&d.on_tick(t)), [b"\r".to_vec()]);
        d.on_output(b"\r\n", t);
        let a = d.on_output("● first reply\r\n● /exit\r\n".as_bytes(), t + ms(10));
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
        assert_eq!(d.output(), "first reply");
        d.on_output("\r\n\u{276f} ".as_bytes(), t + ms(20));

        let t1 = t + ms(1500);
        d.next_task(config(two, None), t1);
        assert!(!d.exit_seen());
        assert_eq!(d.output(), "");
        // Ready at once: the prompt has long been quiet.
        let a = d.on_tick(t1);
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
        assert!(writes(&a)[0].starts_with(b"\x1b[200~"));
        // Before its echo shows, the first task's rows are not taken for this one's.
        let a = d.on_output(b"\x1b[?25h", t1 + ms(5));
        assert!(events(&a).is_empty(), "{a:?}");
        assert!(!d.exit_seen());
        d.on_output(two.as_bytes(), t1 + ms(10));
        assert_eq!(writes(&d.on_tick(t1 + ms(60))), [b"\r".to_vec()]);
        let a = d.on_output(b"\r\n", t1 + ms(60));
        assert_eq!(events(&a), [SessionEvent::TaskDelivered { attempts: 1 }]);
        let a = d.on_output("● second reply\r\n● /exit\r\n".as_bytes(), t1 + ms(70));
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
        assert_eq!(d.output(), "second reply");
    }

    #[test]
    fn readiness_falls_back_when_no_cue_shows() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("x", None), t0);
        d.on_output(b"Loading...", t0);
        assert!(d.on_tick(t0 + ms(500)).is_empty());
        let a = d.on_tick(t0 + ms(1000));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: true }]);
    }

    #[test]
    fn delivery_is_retried_then_fails() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("do the thing", None), t0);
        d.on_output(b"? for shortcuts\r\n", t0);
        let a = d.on_tick(t0 + ms(100));
        assert_eq!(writes(&a), [b"do the thing".to_vec()]);
        assert_eq!(writes(&d.on_tick(t0 + ms(150))), [b"\r".to_vec()]);
        // Nothing changes on screen: the second attempt types the text again.
        let a = d.on_tick(t0 + ms(350));
        assert_eq!(writes(&a), [b"do the thing".to_vec()]);
        assert_eq!(writes(&d.on_tick(t0 + ms(400))), [b"\r".to_vec()]);
        let a = d.on_tick(t0 + ms(600));
        assert!(matches!(
            a.as_slice(),
            [Action::Terminal(Terminal::End(SessionEnd::DeliveryFailed(
                _
            )))]
        ));
    }

    #[test]
    fn a_retry_whose_text_is_shown_only_presses_enter() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("do the thing", None), t0);
        d.on_output(b"? for shortcuts\r\n", t0);
        d.on_tick(t0 + ms(100));
        d.on_output(b"do the thing", t0 + ms(110));
        // Enter waits until the app has been quiet for the Enter pause after the paste.
        assert!(writes(&d.on_tick(t0 + ms(150))).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        let a = d.on_tick(t0 + ms(360));
        assert!(writes(&a).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(360))), [b"\r".to_vec()]);
    }

    #[test]
    fn an_agent_quiet_after_a_provider_limit_ends_rate_limited_not_nudged() {
        let t0 = Instant::now();
        let policy = NudgePolicy {
            nudge_after: ms(500),
            escalate_after: ms(400),
            max_nudges: 1,
        };
        let mut d = Driver::new(config("say hi", Some(policy.clone())), t0);
        let t = delivered(&mut d, t0);
        let limit = r#"● API Error: 429 {"type":"error","error":{"type":"rate_limit_error"}}"#;
        d.on_output(format!("● working on it\r\n{limit}\r\n").as_bytes(), t);
        let a = d.on_tick(t + ms(300));
        assert!(writes(&a).is_empty(), "nothing typed: {a:?}");
        assert!(
            matches!(
                a.as_slice(),
                [Action::Terminal(Terminal::End(SessionEnd::RateLimited(line)))]
                    if line.contains("429")
            ),
            "{a:?}"
        );
        // Talk about rate limits that the agent went on from is idleness as usual.
        let mut d = Driver::new(config("say hi", Some(policy)), t0);
        let t = delivered(&mut d, t0);
        d.on_output(
            "● API Error: 429 rate limit\r\n● retried\r\n● a\r\n● b\r\n● c\r\n".as_bytes(),
            t,
        );
        assert_eq!(events(&d.on_tick(t + ms(300))), [SessionEvent::Idle]);
    }

    #[test]
    fn idle_nudge_then_force_release_in_order() {
        let t0 = Instant::now();
        let policy = NudgePolicy {
            nudge_after: ms(500),
            escalate_after: ms(400),
            max_nudges: 1,
        };
        let mut d = Driver::new(config("say hi", Some(policy)), t0);
        let t = delivered(&mut d, t0);
        d.on_output("● working on it\r\n".as_bytes(), t);
        assert_eq!(d.next_deadline(t), Some(t + ms(300)));
        assert_eq!(events(&d.on_tick(t + ms(300))), [SessionEvent::Idle]);
        let a = d.on_tick(t + ms(500));
        assert!(writes(&a)[0].ends_with(format!("{NUDGE_TEXT}\x1b[201~").as_bytes()));
        let a = d.on_tick(t + ms(550));
        assert_eq!(events(&a), [SessionEvent::Nudged { count: 1 }]);
        // The echo of the nudge is neither output nor activity.
        let echo = format!("\u{276f} {NUDGE_TEXT}\r\n");
        assert!(events(&d.on_output(echo.as_bytes(), t + ms(560))).is_empty());
        assert_eq!(d.output(), "working on it");
        assert!(d.on_tick(t + ms(900)).is_empty());
        let a = d.on_tick(t + ms(960));
        assert_eq!(events(&a), [SessionEvent::ForceReleased]);
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ForceReleased))));
    }

    #[test]
    fn output_keeps_changing_while_the_agent_works() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        d.on_output("\u{280b} thinking".as_bytes(), t + ms(100));
        d.on_output("\r\u{2819} thinking".as_bytes(), t + ms(200));
        // Activity moved the idle deadline.
        assert_eq!(d.next_deadline(t + ms(200)), Some(t + ms(500)));
        d.on_output("\r\x1b[2K● answer\r\n".as_bytes(), t + ms(250));
        assert_eq!(d.output(), "answer");
    }

    #[test]
    fn the_task_text_is_not_taken_for_exit() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi\n/exit", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output(b"\r\n/exit\r\n", t);
        assert!(events(&a).is_empty());
        let a = d.on_output(b"/exit\r\n", t);
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
    }

    #[test]
    fn a_task_left_on_the_input_line_is_submitted_again() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        // The Enter was swallowed: the text is still on the input line, nothing happens.
        d.on_output("\x1b[2K\r\u{276f} say hi".as_bytes(), t);
        let a = d.on_tick(t + ms(200));
        assert_eq!(writes(&a), [b"\r".to_vec()], "Enter pressed once more");
        assert!(writes(&d.on_tick(t + ms(400))).is_empty(), "only once");
    }

    #[test]
    fn a_submitted_task_is_not_submitted_again() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        d.on_output("\u{25cf} thinking\r\n\u{276f} ".as_bytes(), t + ms(10));
        assert!(writes(&d.on_tick(t + ms(250))).is_empty());
    }

    #[test]
    fn output_on_the_alternate_screen_survives_leaving_it() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("hello", None), t0);
        d.on_output(
            b"\x1b[?1049h\x1b[1;1HOpenAI Codex\x1b[9;1H\xe2\x80\xba \x1b[10;1H? for shortcuts\x1b[9;3H",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(b"hello", t0 + ms(110));
        d.on_tick(t0 + ms(160));
        let a = d.on_output(
            "\x1b[3;1H\u{203a} hello\x1b[5;1H\u{2022} PONG\x1b[9;1H\x1b[2K\u{203a} ".as_bytes(),
            t0 + ms(170),
        );
        assert_eq!(events(&a), [SessionEvent::TaskDelivered { attempts: 1 }]);
        d.on_output(b"\x1b[?1049l", t0 + ms(180));
        assert_eq!(d.output(), "PONG");
    }

    #[test]
    fn a_full_redraw_after_the_task_is_read_from_the_echo() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        // Enough history that the input line sits at the bottom of a scrolled screen.
        for i in 0..30 {
            d.on_output(format!("banner line {i}\r\n").as_bytes(), t0);
        }
        let t = delivered(&mut d, t0);
        d.on_output("● first draft\r\n".as_bytes(), t);
        // Ink-style: wipe screen and scrollback, then draw the whole conversation again.
        let redraw = "\x1b[2J\x1b[3J\x1b[HFake Claude\r\n\r\n\u{276f} say hi\r\n\r\n\
                      ● final answer\r\n● /exit\r\n\u{276f} ";
        let a = d.on_output(redraw.as_bytes(), t + ms(10));
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
        assert_eq!(d.output(), "final answer");
    }

    #[test]
    fn an_exit_wiped_in_the_same_chunk_still_counts() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output("● bye\r\n● /exit\r\n\x1b[2J\x1b[H".as_bytes(), t);
        assert_eq!(events(&a), [SessionEvent::ExitRequested]);
        assert_eq!(d.output(), "bye");
    }

    fn relays(actions: &[Action]) -> Vec<RelayLine> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Messaging(Messaging::Relay(l)) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    fn relay(to: &str, text: &str) -> RelayLine {
        RelayLine {
            target: relay_messaging::Target::parse(to).unwrap(),
            text: text.into(),
        }
    }

    #[test]
    fn a_message_waits_for_quiet_then_is_typed_and_confirmed() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        assert!(!d.wants_message(), "not before the task");
        let t = delivered(&mut d, t0);
        d.on_output("● still writing".as_bytes(), t + ms(10));
        assert!(d.wants_message());
        let line = "Relay message from a: hello".to_string();
        d.offer_message(MessageId(4), line.clone(), t + ms(20));
        assert!(!d.wants_message(), "one at a time");
        assert!(
            writes(&d.on_tick(t + ms(60))).is_empty(),
            "the agent is mid-output"
        );
        assert_eq!(d.next_deadline(t + ms(60)), Some(t + ms(110)));
        let a = d.on_tick(t + ms(110));
        assert_eq!(
            writes(&a),
            [format!("\x1b[200~{line}\x1b[201~").into_bytes()]
        );
        assert_eq!(writes(&d.on_tick(t + ms(160))), [b"\r".to_vec()]);
        let echo = format!("\r\n\u{276f} {line}\r\n");
        let a = d.on_output(echo.as_bytes(), t + ms(170));
        assert!(a.contains(&Action::Messaging(Messaging::Delivered(MessageId(4)))));
        assert!(d.wants_message());
        // Its echo is neither output nor a relay line.
        assert_eq!(d.output(), "still writing");
    }

    #[test]
    fn a_question_to_a_person_stops_the_clocks_until_its_answer_is_typed() {
        let t0 = Instant::now();
        let policy = NudgePolicy {
            nudge_after: ms(500),
            escalate_after: ms(400),
            max_nudges: 1,
        };
        let mut cfg = config("say hi", Some(policy));
        cfg.timeout = Some(ms(2_000));
        let mut d = Driver::new(cfg, t0);
        let t = delivered(&mut d, t0);
        d.on_output("● HUMAN_QUESTION: which port?\r\n".as_bytes(), t);
        assert!(!d.asking(), "asked only once the output settles");
        let a = d.on_tick(t + ms(100));
        assert_eq!(
            events(&a),
            [SessionEvent::Asked {
                question: "which port?".into()
            }]
        );
        assert!(d.asking());
        // No idle, nudge, release or timeout while the agent waits for a person.
        assert_eq!(d.next_deadline(t + ms(100)), None);
        for later in [600, 1_500, 5_000] {
            assert!(d.on_tick(t + ms(later)).is_empty(), "at {later} ms");
        }
        // The same question seen again (a repaint) is not asked twice.
        d.on_output(b"\r\n", t + ms(5_010));
        assert!(events(&d.on_tick(t + ms(5_200))).is_empty());
        let line = "HUMAN_ANSWER: 8080".to_string();
        d.offer_answer(MessageId(7), line.clone(), t + ms(5_200));
        let a = d.on_tick(t + ms(5_300));
        assert_eq!(
            writes(&a),
            [format!("\x1b[200~{line}\x1b[201~").into_bytes()]
        );
        assert_eq!(writes(&d.on_tick(t + ms(5_350))), [b"\r".to_vec()]);
        let echo = format!("\r\n\u{276f} {line}\r\n");
        let a = d.on_output(echo.as_bytes(), t + ms(5_360));
        assert!(a.contains(&Action::Messaging(Messaging::Delivered(MessageId(7)))));
        assert!(!d.asking());
        // The clocks run again; the timeout has not counted the wait for the answer.
        let next = d.next_deadline(t + ms(5_360)).expect("clocks run");
        assert!(next > t + ms(5_360));
        assert_eq!(
            events(&d.on_tick(t + ms(5_360) + ms(300))),
            [SessionEvent::Idle]
        );
        let a = d.on_tick(t0 + ms(2_000) + ms(5_300));
        assert!(
            a.contains(&Action::Terminal(Terminal::End(SessionEnd::TimedOut))),
            "{a:?}"
        );
    }

    #[test]
    fn a_completion_marker_ends_the_session_and_stays_in_the_output() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output(
            "● tried\r\nOWNER_DECISION: INCOMPLETE_RETRY\r\nREASON: tests red\r\n".as_bytes(),
            t,
        );
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ExitRequested))));
        assert!(
            d.output()
                .ends_with("tried\nOWNER_DECISION: INCOMPLETE_RETRY\nREASON: tests red"),
            "{:?}",
            d.output()
        );
    }

    #[test]
    fn an_unconfirmed_message_is_retried_then_handed_back() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        d.offer_message(MessageId(9), "Relay message from a: x".into(), t);
        let mut now = t + ms(100);
        let mut typed = 0;
        let mut handed_back = None;
        // Nothing ever changes on screen: two attempts (config), then it is handed back.
        for _ in 0..40 {
            for a in d.on_tick(now) {
                match a {
                    Action::Terminal(Terminal::Write(w)) if w.starts_with(b"\x1b[200~") => {
                        typed += 1
                    }
                    Action::Messaging(Messaging::NotDelivered { id, reason }) => {
                        handed_back = Some((id, reason))
                    }
                    _ => {}
                }
            }
            now += ms(50);
        }
        assert_eq!(typed, 2);
        let (id, reason) = handed_back.expect("handed back");
        assert_eq!(id, MessageId(9));
        assert!(reason.contains("2 attempts"), "{reason}");
        assert!(d.wants_message());
    }

    #[test]
    fn relay_lines_are_sent_once_and_never_from_the_echo() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi\n->relay:bob from the task", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output("\r\n->relay:bob from the task\r\n".as_bytes(), t);
        assert!(relays(&a).is_empty(), "echo of the task");
        let a = d.on_output(
            "● ->relay:bob hello\r\n● working\r\n".as_bytes(),
            t + ms(10),
        );
        assert_eq!(relays(&a), [relay("bob", "hello")]);
        let a = d.on_output("● more work\r\n".as_bytes(), t + ms(20));
        assert!(relays(&a).is_empty(), "sent once");
        // The same text printed again is a second message.
        let a = d.on_output("● ->relay:bob hello\r\n● done\r\n".as_bytes(), t + ms(30));
        assert_eq!(relays(&a), [relay("bob", "hello")]);
    }

    #[test]
    fn a_relay_line_still_being_written_waits_for_quiet() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output("● ->relay:#ops deploy".as_bytes(), t + ms(10));
        assert!(relays(&a).is_empty());
        let a = d.on_output(" finished".as_bytes(), t + ms(20));
        assert!(relays(&a).is_empty());
        assert_eq!(d.next_deadline(t + ms(20)), Some(t + ms(120)));
        assert_eq!(
            relays(&d.on_tick(t + ms(120))),
            [relay("#ops", "deploy finished")]
        );
    }

    #[test]
    fn relay_lines_before_exit_are_sent_with_it() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        let a = d.on_output("● ->relay:* bye all\r\n/exit\r\n".as_bytes(), t);
        assert_eq!(relays(&a), [relay("*", "bye all")]);
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ExitRequested))));
    }

    #[test]
    fn timeout_ends_the_session() {
        let t0 = Instant::now();
        let mut cfg = config("x", None);
        cfg.timeout = Some(ms(50));
        let mut d = Driver::new(cfg, t0);
        assert_eq!(d.next_deadline(t0), Some(t0 + ms(50)));
        assert_eq!(
            d.on_tick(t0 + ms(50)),
            [Action::Terminal(Terminal::End(SessionEnd::TimedOut))]
        );
        assert_eq!(d.next_deadline(t0 + ms(50)), None);
    }

    fn generic(typed: &str) -> DriverConfig {
        DriverConfig {
            rules: Rules::for_cli(None),
            ..config(typed, None)
        }
    }

    #[test]
    fn a_bare_prompt_without_any_cue_is_ready_after_a_quiet_moment() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("say hi"), t0);
        d.on_output("Welcome to some agent\r\n\r\n\u{276f} ".as_bytes(), t0);
        assert!(d.on_tick(t0 + ms(50)).is_empty(), "not quiet yet");
        let a = d.on_tick(t0 + ms(100));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
        assert_eq!(writes(&a), [b"say hi".to_vec()]);
    }

    #[test]
    fn a_status_line_while_booting_then_a_prompt_is_ready_without_the_fallback() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("go"), t0);
        // A codex-like start: a spinner line redrawn, then the prompt below it.
        for i in 0..5u64 {
            d.on_output(
                format!("\r\x1b[2KBooting MCP server: fs {i}").as_bytes(),
                t0 + ms(i * 40),
            );
            assert!(d.on_tick(t0 + ms(i * 40)).is_empty());
        }
        d.on_output("\r\n\u{203a} ".as_bytes(), t0 + ms(200));
        let a = d.on_tick(t0 + ms(300));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
    }

    #[test]
    fn a_trust_dialog_is_answered_and_the_task_waits_for_the_prompt() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("go"), t0);
        d.on_output(
            "Do you trust the files in this folder?\r\n\u{276f} 1. Yes, proceed\r\n  2. No, exit\r\n".as_bytes(),
            t0,
        );
        let a = d.on_tick(t0 + ms(100));
        assert_eq!(writes(&a), [b"\r".to_vec()], "Enter takes the default");
        assert_eq!(
            events(&a),
            [SessionEvent::DialogAnswered {
                dialog: "trust this folder".into()
            }]
        );
        // Still on screen a moment later: not answered twice, no task typed into it.
        assert!(d.on_tick(t0 + ms(300)).is_empty());
        d.on_output(b"\x1b[2J\x1b[H> ", t0 + ms(350));
        let a = d.on_tick(t0 + ms(450));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
        assert_eq!(writes(&a), [b"go".to_vec()]);
    }

    #[test]
    fn a_dialog_that_needs_a_person_is_the_reason_the_agent_is_not_ready() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("go"), t0);
        d.on_output(
            b"Detected a custom API key in your environment\r\nDo you want to use this API key?\r\n> 1. Yes\r\n  2. No (recommended)\r\n",
            t0,
        );
        assert!(
            writes(&d.on_tick(t0 + ms(500))).is_empty(),
            "never typed into it"
        );
        let a = d.on_tick(t0 + ms(1000));
        let got = events(&a);
        let [SessionEvent::NotReady { reason }] = got.as_slice() else {
            panic!("{a:?}");
        };
        assert!(reason.contains("use this API key?"), "{reason}");
        assert!(matches!(
            a.last(),
            Some(Action::Terminal(Terminal::End(SessionEnd::DeliveryFailed(
                _
            ))))
        ));
    }

    #[test]
    fn a_login_dialog_ends_the_start_soon_even_with_a_long_fallback() {
        let t0 = Instant::now();
        let mut cfg = generic("go");
        cfg.timing.ready_fallback = ms(60_000);
        let mut d = Driver::new(cfg, t0);
        d.on_output(
            b"Select login method:\r\n> 1. Claude account\r\n  2. API key\r\n",
            t0,
        );
        assert!(d.on_tick(t0 + ms(1000)).is_empty(), "may still change");
        assert_eq!(d.next_deadline(t0 + ms(1000)), Some(t0 + ms(2000)));
        let a = d.on_tick(t0 + ms(2000));
        let got = events(&a);
        let [SessionEvent::NotReady { reason }] = got.as_slice() else {
            panic!("{a:?}");
        };
        assert!(reason.contains("login"), "{reason}");
        assert!(writes(&a).is_empty(), "never typed into it");
    }

    #[test]
    fn the_fallback_never_types_into_a_blank_screen_with_a_hidden_cursor() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("go"), t0);
        // An app that switched screens, hid the cursor and is still loading.
        d.on_output(b"\x1b[?1049h\x1b[?25l", t0);
        assert!(d.on_tick(t0 + ms(1000)).is_empty(), "not at the fallback");
        assert_eq!(d.next_deadline(t0 + ms(1000)), Some(t0 + ms(2000)));
        let a = d.on_tick(t0 + ms(2000));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: true }]);
    }

    #[test]
    fn a_multi_line_task_goes_in_as_one_line_without_bracketed_paste() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("first line\n/exit\n\nlast\rline"), t0);
        d.on_output(b"> ", t0);
        let a = d.on_tick(t0 + ms(100));
        assert_eq!(writes(&a), [b"first line /exit last line".to_vec()]);
    }

    #[test]
    fn an_agent_that_answered_before_enter_is_delivered_and_its_exit_honoured() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("say hi"), t0);
        d.on_output(b"> ", t0);
        d.on_tick(t0 + ms(100));
        // A line-oriented agent took the text and answered while Enter was still due.
        let a = d.on_output(b"say hi\r\nhi\r\n/exit\r\n> ", t0 + ms(110));
        assert_eq!(
            events(&a),
            [
                SessionEvent::TaskDelivered { attempts: 1 },
                SessionEvent::ExitRequested
            ]
        );
        assert_eq!(d.output(), "hi");
    }

    #[test]
    fn an_exit_while_delivery_is_being_confirmed_ends_the_session() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("say hi"), t0);
        d.on_output(b"> ", t0);
        d.on_tick(t0 + ms(100));
        assert_eq!(writes(&d.on_tick(t0 + ms(150))), [b"\r".to_vec()]);
        let a = d.on_output(b"\r\n\x1b[1;35m/exit\x1b[0m\r\n", t0 + ms(160));
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ExitRequested))));
    }

    #[test]
    fn a_screen_that_repaints_is_not_a_reaction() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("do the thing"), t0);
        d.on_output(b"\x1b[?2004h> \r\n\r\n  clock 10:00\x1b[2A\x1b[3G", t0);
        d.on_tick(t0 + ms(100));
        d.on_output(b"do the thing", t0 + ms(110));
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        // Only the clock below the input line changes; the text stays on the input line.
        let a = d.on_output(b"\x1b7\x1b[2B\r\x1b[2K  clock 10:01\x1b8", t0 + ms(200));
        assert!(events(&a).is_empty(), "{a:?}");
        // The retry sees the text still in the input box and only presses Enter.
        d.on_tick(t0 + ms(360));
        assert_eq!(writes(&d.on_tick(t0 + ms(360))), [b"\r".to_vec()]);
    }

    #[test]
    fn without_timeout_or_nudge_policy_an_idle_agent_is_nudged_then_released() {
        let t0 = Instant::now();
        let mut cfg = config("say hi", None);
        cfg.timeout = None;
        let mut d = Driver::new(cfg, t0);
        let t = delivered(&mut d, t0);
        d.on_output("\u{25cf} working\r\n".as_bytes(), t);
        assert_eq!(events(&d.on_tick(t + ms(300))), [SessionEvent::Idle]);
        let a = d.on_tick(t + ms(300));
        assert!(writes(&a).is_empty());
        // One idle threshold after the last activity: the nudge; one more: released.
        let mut seen = Vec::new();
        let mut now = t + ms(300);
        while now < t + ms(2000) && !seen.contains(&SessionEvent::ForceReleased) {
            now += ms(10);
            seen.extend(events(&d.on_tick(now)));
        }
        assert_eq!(
            seen,
            [
                SessionEvent::Nudged { count: 1 },
                SessionEvent::ForceReleased
            ]
        );
    }

    #[test]
    fn huge_thresholds_saturate_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut cfg = config(
            "say hi",
            Some(NudgePolicy {
                nudge_after: Duration::MAX,
                escalate_after: Duration::MAX,
                max_nudges: 1,
            }),
        );
        cfg.timeout = Some(Duration::MAX);
        cfg.timing.idle_threshold = Some(Duration::MAX);
        cfg.timing.ready_fallback = Duration::MAX;
        cfg.timing.confirm_timeout = Duration::MAX;
        let mut d = Driver::new(cfg, t0);
        let t = delivered(&mut d, t0);
        d.on_output("\u{25cf} working\r\n".as_bytes(), t);
        assert_eq!(d.next_deadline(t), None);
        assert!(d.on_tick(t + Duration::from_secs(86_400)).is_empty());
    }

    #[test]
    fn the_reply_drawn_above_an_exit_after_it_still_counts() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("hello", None), t0);
        d.on_output(
            b"\x1b[?1049h\x1b[1;1HOpenAI Codex\x1b[9;1H\xe2\x80\xba \x1b[10;1H? for shortcuts\x1b[9;3H",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(b"hello", t0 + ms(110));
        d.on_tick(t0 + ms(160));
        // Codex can draw the `/exit` row of a reply before the row above it.
        let a = d.on_output(
            "\x1b[3;1H\u{203a} hello\x1b[6;3H/exit\x1b[9;1H\x1b[2K\u{203a} ".as_bytes(),
            t0 + ms(170),
        );
        assert!(a.contains(&Action::Terminal(Terminal::End(SessionEnd::ExitRequested))));
        assert!(d.exit_frame_may_follow(), "a blank row above the /exit");
        d.on_output("\x1b[5;1H\u{2022} ACK".as_bytes(), t0 + ms(180));
        assert_eq!(d.output(), "ACK");
    }

    #[test]
    fn a_finished_reply_above_the_exit_needs_no_wait() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("say hi", None), t0);
        let t = delivered(&mut d, t0);
        d.on_output(
            "\u{25cf} hi there\r\n\u{25cf} /exit\r\n".as_bytes(),
            t + ms(10),
        );
        assert!(d.exit_seen());
        assert!(!d.exit_frame_may_follow());
    }

    #[test]
    fn no_message_is_typed_while_the_cli_says_it_is_busy() {
        let t0 = Instant::now();
        let mut cfg = config("say hi", None);
        cfg.rules = Rules::for_cli(Some(Cli::Gemini));
        let mut d = Driver::new(cfg, t0);
        d.on_output(b"\x1b[?2004h > \r\nType your message\x1b[1A\x1b[4G", t0);
        d.on_tick(t0 + ms(100));
        d.on_output(b"say hi", t0 + ms(110));
        d.on_tick(t0 + ms(160));
        d.on_output(
            "\x1b[2J\x1b[H > say hi\r\n  Queued (press \u{2191} to edit):\r\n > ".as_bytes(),
            t0 + ms(170),
        );
        assert!(d.wants_message());
        d.offer_message(
            MessageId(3),
            "Relay message from a: hello".into(),
            t0 + ms(180),
        );
        assert!(
            writes(&d.on_tick(t0 + ms(400))).is_empty(),
            "not while queued"
        );
        d.on_output("\x1b[2;1H\x1b[2K\u{2726} hi\r\n".as_bytes(), t0 + ms(500));
        assert_eq!(d.next_deadline(t0 + ms(500)), Some(t0 + ms(600)));
        let a = d.on_tick(t0 + ms(600));
        assert_eq!(
            writes(&a),
            [b"\x1b[200~Relay message from a: hello\x1b[201~".to_vec()]
        );
    }

    #[test]
    fn a_collapsed_paste_still_on_the_input_line_is_not_delivered_and_holds_messages() {
        // Recorded from the real claude 2.1 under load: a long paste shows as
        // `[Pasted text #1 +4 lines]`; an Enter pressed while claude is still taking the
        // paste in is swallowed although the footer changes. A message typed then would be
        // submitted with the task as one prompt.
        let t0 = Instant::now();
        let mut d = Driver::new(config("line one\nline two\nline three", None), t0);
        d.on_output("? for shortcuts\r\n\x1b[?2004h\u{276f} ".as_bytes(), t0);
        let a = d.on_tick(t0 + ms(100));
        assert_eq!(events(&a), [SessionEvent::Ready { fallback: false }]);
        d.on_output(
            "\r\x1b[2K\u{276f} [Pasted text #1 +2 lines]".as_bytes(),
            t0 + ms(110),
        );
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        d.offer_message(
            MessageId(9),
            "Relay message from x: hi".into(),
            t0 + ms(165),
        );
        // The footer changes; the placeholder stays on the input line.
        let a = d.on_output(
            "\x1b7\r\n\x1b[2Kpaste again to expand\x1b8".as_bytes(),
            t0 + ms(170),
        );
        assert!(events(&a).is_empty(), "not delivered: {a:?}");
        // The retry presses Enter only; the message is not typed meanwhile.
        let a = d.on_tick(t0 + ms(370));
        assert!(writes(&a).is_empty(), "{a:?}");
        let a = d.on_tick(t0 + ms(370));
        assert_eq!(writes(&a), [b"\r".to_vec()]);
        // Now claude takes it: the prompt moves into the conversation, the input is empty.
        let a = d.on_output(
            "\r\x1b[2K\u{276f} line one\r\n\r\n\u{276f} ".as_bytes(),
            t0 + ms(380),
        );
        assert_eq!(events(&a), [SessionEvent::TaskDelivered { attempts: 2 }]);
    }

    #[test]
    fn a_collapsed_paste_on_the_row_above_the_cursor_is_not_delivered() {
        // Recorded from the real gemini 0.61 with four TUIs starting at once: the task
        // shows as `[Pasted Text: 511 chars]` in the input box, with the cursor one row
        // below it, and the Enter is swallowed while the screen changes.
        let t0 = Instant::now();
        let mut d = Driver::new(generic("first line\nsecond line"), t0);
        d.on_output(
            b"\x1b[?2004h \x1b[1m*\x1b[0m \r\n\r\n footer row\x1b[2A\x1b[4G",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(b"\r\x1b[2K * [Pasted Text: 23 chars]\r\n", t0 + ms(110));
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        let a = d.on_output(b"\x1b7\r\n\x1b[2K footer changed\x1b8", t0 + ms(170));
        assert!(events(&a).is_empty(), "not delivered: {a:?}");
        assert!(writes(&d.on_tick(t0 + ms(360))).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(360))), [b"\r".to_vec()]);
    }

    #[test]
    fn enter_taken_as_a_line_break_in_the_input_box_is_not_delivery() {
        let t0 = Instant::now();
        let mut d = Driver::new(generic("first line\nsecond line"), t0);
        d.on_output(
            b"\x1b[?2004h \x1b[1m*\x1b[0m \r\n\r\n footer row\x1b[2A\x1b[4G",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(b"first line\r\n   second line", t0 + ms(110));
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        // The box grows by a row and the cursor goes down to it: a line break, no submit.
        let a = d.on_output(
            b"\r\n\x1b[2K   \r\n\x1b[2K footer row\x1b[1A\x1b[4G",
            t0 + ms(170),
        );
        assert!(events(&a).is_empty(), "{a:?}");
        // The retry finds the text in the box and only presses Enter.
        assert!(writes(&d.on_tick(t0 + ms(360))).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(360))), [b"\r".to_vec()]);
    }

    #[test]
    fn a_line_break_is_told_when_the_box_moves_up_as_the_app_redraws() {
        // gemini 0.61 drops the row of its paste hint above the box as it takes Enter as
        // a line break: the box moves up a row, and the cursor stays on the same row.
        let t0 = Instant::now();
        let mut d = Driver::new(generic("first line\nsecond line"), t0);
        d.on_output(
            b"\x1b[?2004h paste hint\r\n \x1b[1m*\x1b[0m \r\n\r\n footer row\x1b[2A\x1b[4G",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(
            b"first line\r\n   second line\r\n\r\n footer row\x1b[2A\x1b[15G",
            t0 + ms(110),
        );
        assert_eq!(writes(&d.on_tick(t0 + ms(160))), [b"\r".to_vec()]);
        let a = d.on_output(
            b"\x1b[H\x1b[2K * first line\r\n\x1b[2K   second line\r\n\x1b[2K   \r\n\x1b[2K\r\n\x1b[2K footer row\x1b[3;4H",
            t0 + ms(170),
        );
        assert!(events(&a).is_empty(), "not delivered: {a:?}");
        assert!(writes(&d.on_tick(t0 + ms(360))).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(360))), [b"\r".to_vec()]);
    }
}
