//! The session's decisions, free of I/O. Fed output bytes, clock ticks and messages to
//! deliver, the driver answers terminal queries, judges readiness, paces the typing of
//! the task, of nudges and of relayed messages, spots `/exit`, idleness, exhausted nudges
//! and the `->relay:` lines the agent prints, and keeps the agent's latest output. The
//! async runner in `mod.rs` only moves bytes and messages and carries out the driver's
//! actions, so the whole state machine can be exercised with recorded bytes and a fake
//! clock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::detect::{self, Injected, Rules};
use super::inject::{self, ENTER, NUDGE_TEXT};
use super::queries::{self, Mark, QueryScanner};
use super::screen::Screen;
use super::{NudgePolicy, SessionEnd, SessionEvent, SessionTiming};
use relay_messaging::MessageId;
use relay_messaging::lines::{self, RelayLine};

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these bytes to the terminal, as one write.
    Write(Vec<u8>),
    /// Report this event.
    Emit(SessionEvent),
    /// End the session this way.
    End(SessionEnd),
    /// The offered message was typed in and the screen confirmed it.
    MessageDelivered(MessageId),
    /// The offered message could not be typed in this time; it is handed back.
    MessageNotDelivered {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
    },
    /// The agent printed a `->relay:` line (or block): send it.
    Relay(RelayLine),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Task,
    Nudge(u32),
    Message,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Text written; Enter is due at `at`.
    Enter { at: Instant },
    /// Enter written; the screen must differ from `before` by `deadline`.
    Confirm { deadline: Instant, before: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Typing {
    purpose: Purpose,
    attempt: u32,
    step: Step,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Starting,
    Typing(Typing),
    Working,
    Ended,
}

/// Where the task was typed: rows after this point are the agent's.
#[derive(Debug)]
struct Anchor {
    /// Absolute main-screen row of the top of the input area.
    abs: u64,
    /// Whether the task was typed on the alternate screen.
    alt: bool,
    /// Alternate-screen rows shown before the task (banner, tips): never output.
    before: HashSet<String>,
}

/// A message waiting to be typed in.
#[derive(Debug)]
struct Inbound {
    id: MessageId,
    line: String,
    /// Attempts made so far.
    attempts: u32,
    /// No attempt before this.
    not_before: Instant,
}

/// The state machine of one session.
pub struct Driver {
    cfg: DriverConfig,
    screen: Screen,
    scanner: QueryScanner,
    started: Instant,
    last_output: Option<Instant>,
    phase: Phase,
    probe: String,
    injected: Injected,
    anchor: Option<Anchor>,
    output: String,
    seen_output: String,
    exit_seen: bool,
    last_activity: Instant,
    last_injection: Instant,
    idle_reported: bool,
    task_resubmitted: bool,
    /// The agent's output changed after the task was delivered (so it was submitted).
    agent_spoke: bool,
    nudges: u32,
    inbound: Option<Inbound>,
    /// How many times each relay line has been sent; a line counts again only when
    /// the output holds more copies of it than were sent.
    relayed: HashMap<RelayLine, usize>,
    /// A relay line at the end of the output waits for quiet before it is sent.
    relay_waiting: bool,
}

impl Driver {
    /// A driver for a session that started at `now`.
    pub fn new(cfg: DriverConfig, now: Instant) -> Self {
        let (rows, cols) = cfg.size;
        let probe = detect::echo_probe(&cfg.typed);
        Driver {
            screen: Screen::new(rows, cols),
            scanner: QueryScanner::new(),
            started: now,
            last_output: None,
            phase: Phase::Starting,
            probe,
            injected: Injected::new(),
            anchor: None,
            output: String::new(),
            seen_output: String::new(),
            exit_seen: false,
            last_activity: now,
            last_injection: now,
            idle_reported: false,
            task_resubmitted: false,
            agent_spoke: false,
            nudges: 0,
            inbound: None,
            relayed: HashMap::new(),
            relay_waiting: false,
            cfg,
        }
    }

    /// The agent's output so far.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Whether the agent's `/exit` was seen.
    pub fn exit_seen(&self) -> bool {
        self.exit_seen
    }

    /// Whether the driver would take a message to type in now: the task is delivered,
    /// the session runs, and no other message is on its way.
    pub fn wants_message(&self) -> bool {
        self.inbound.is_none() && self.task_delivered()
    }

    /// Takes a message to type in (as the one line `line`) once the agent is quiet. It
    /// ends in [`Action::MessageDelivered`] or [`Action::MessageNotDelivered`].
    pub fn offer_message(&mut self, id: MessageId, line: String, now: Instant) {
        self.inbound = Some(Inbound {
            id,
            line,
            attempts: 0,
            not_before: now,
        });
    }

    /// The message held, if any (handed back by the runner when the session ends).
    pub fn held_message(&self) -> Option<MessageId> {
        self.inbound.as_ref().map(|m| m.id)
    }

    /// Sends every complete relay line not sent yet, also one the agent may still be
    /// writing: the session is ending and nothing more will come.
    pub fn flush_relays(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.anchor.is_some() {
            self.scan_relays(true, now, &mut actions);
        }
        actions
    }

    /// Takes a chunk of output that arrived at `now`.
    pub fn on_output(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut pos = 0;
        for found in self.scanner.feed(bytes) {
            match found.mark {
                Mark::Query(q) => {
                    self.screen.process(&bytes[pos..found.end]);
                    pos = found.end;
                    actions.push(Action::Write(queries::answer(q, self.screen.cursor())));
                }
                Mark::ClearScreen | Mark::LeaveAltScreen => {
                    let start = found.start.max(pos);
                    self.screen.process(&bytes[pos..start]);
                    pos = start;
                    // The rows are about to vanish: read them (an `/exit` included) first.
                    if matches!(self.phase, Phase::Working | Phase::Typing(_)) {
                        self.observe(now, &mut actions);
                    }
                }
                Mark::ClearScrollback => {
                    self.screen.process(&bytes[pos..found.end]);
                    pos = found.end;
                    self.screen.clear_history();
                }
            }
        }
        self.screen.process(&bytes[pos..]);
        self.last_output = Some(now);

        if let Phase::Typing(t) = self.phase
            && let Step::Confirm { before, .. } = t.step
            && self.screen.fingerprint() != before
        {
            self.confirmed(t, now, &mut actions);
        }
        if self.task_delivered() {
            self.observe(now, &mut actions);
        }
        actions
    }

    /// Acts on every deadline reached by `now`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if matches!(self.phase, Phase::Ended) {
            return actions;
        }
        if let Some(t) = self.cfg.timeout
            && now >= self.started + t
        {
            self.end(SessionEnd::TimedOut, &mut actions);
            return actions;
        }
        match self.phase {
            Phase::Starting => self.tick_starting(now, &mut actions),
            Phase::Typing(t) => self.tick_typing(t, now, &mut actions),
            Phase::Working => self.tick_working(now, &mut actions),
            Phase::Ended => {}
        }
        actions
    }

    /// The next moment `on_tick` has something to do, if any.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let timing = &self.cfg.timing;
        let mut due: Vec<Instant> = Vec::new();
        if let Some(t) = self.cfg.timeout {
            due.push(self.started + t);
        }
        match self.phase {
            Phase::Ended => return None,
            Phase::Starting => {
                due.push(self.started + timing.ready_fallback);
                if let Some(last) = self.last_output
                    && last + timing.settle > now
                {
                    due.push(last + timing.settle);
                }
            }
            Phase::Typing(t) => due.push(match t.step {
                Step::Enter { at } => at.max(self.paste_taken_at()),
                Step::Confirm { deadline, .. } => deadline,
            }),
            Phase::Working => {
                if let Some(m) = &self.inbound {
                    due.push(m.not_before.max(self.quiet_at()));
                }
                if self.relay_waiting {
                    due.push(self.quiet_at());
                }
                if let Some(t) = timing.idle_threshold
                    && !self.idle_reported
                {
                    due.push(self.last_activity + t);
                }
                if !self.task_resubmitted && !self.agent_spoke {
                    due.push(self.last_activity + self.stuck_after());
                }
                if let Some(p) = &self.cfg.nudge {
                    let quiet = self.quiet_since();
                    due.push(if self.nudges < p.max_nudges {
                        quiet + p.nudge_after
                    } else {
                        quiet + p.escalate_after
                    });
                }
            }
        }
        due.into_iter().min()
    }

    /// Whether the task is delivered and the session still runs.
    fn task_delivered(&self) -> bool {
        matches!(
            self.phase,
            Phase::Working
                | Phase::Typing(Typing {
                    purpose: Purpose::Nudge(_) | Purpose::Message,
                    ..
                })
        )
    }

    /// How long the agent may show nothing new before a task left on its input line is
    /// submitted again.
    fn stuck_after(&self) -> std::time::Duration {
        (self.cfg.timing.settle * 2).max(self.cfg.timing.confirm_timeout)
    }

    /// Whether the end of the task is still on the cursor's row (the input line).
    fn task_still_in_input(&self) -> bool {
        let tail = detect::echo_tail(self.typed_text(Purpose::Task));
        let rows = self.screen.visible_rows();
        let row = usize::from(self.screen.cursor().0);
        !tail.is_empty()
            && rows
                .get(row)
                .is_some_and(|r| detect::collapse_ws(r).contains(&tail))
    }

    /// When the app will have been quiet for the Enter pause since its last output: it has
    /// finished taking in what we pasted.
    fn paste_taken_at(&self) -> Instant {
        self.last_output
            .map_or(self.started, |t| t + self.cfg.timing.enter_delay)
    }

    /// When the output will have been quiet for the settle time.
    fn quiet_at(&self) -> Instant {
        self.last_output
            .map_or(self.started, |t| t + self.cfg.timing.settle)
    }

    fn quiet_since(&self) -> Instant {
        self.last_activity.max(self.last_injection)
    }

    fn end(&mut self, end: SessionEnd, actions: &mut Vec<Action>) {
        self.phase = Phase::Ended;
        actions.push(Action::End(end));
    }

    fn tick_starting(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let timing = &self.cfg.timing;
        let quiet = self.last_output.map(|t| now.saturating_duration_since(t));
        let fallback = now >= self.started + timing.ready_fallback;
        let ready = detect::is_ready(
            &self.screen.visible_rows(),
            &self.cfg.rules.ready_cues,
            quiet,
            timing.settle,
        );
        if ready || fallback {
            actions.push(Action::Emit(SessionEvent::Ready { fallback: !ready }));
            self.set_anchor();
            self.injected.push(&self.cfg.typed, &self.cfg.rules);
            self.start_typing(Purpose::Task, 1, now, actions);
        }
    }

    fn set_anchor(&mut self) {
        let visible = self.screen.visible_rows();
        let (row, _) = self.screen.cursor();
        let mut top = usize::from(row).min(visible.len().saturating_sub(1));
        // The input area may have a border or status rows above the cursor; the echo of
        // the task can be drawn from there.
        while top > 0 {
            let above = &visible[top - 1];
            let decoration = !above.trim().is_empty()
                && (detect::is_chrome(above, &self.cfg.rules) || detect::is_prompt_row(above));
            if !decoration {
                break;
            }
            top -= 1;
        }
        let alt = self.screen.alternate();
        let before = if alt {
            visible
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect()
        } else {
            HashSet::new()
        };
        self.anchor = Some(Anchor {
            abs: self.screen.top_abs() + top as u64,
            alt,
            before,
        });
    }

    fn typed_text(&self, purpose: Purpose) -> &str {
        match purpose {
            Purpose::Task => &self.cfg.typed,
            Purpose::Nudge(_) => NUDGE_TEXT,
            Purpose::Message => self.inbound.as_ref().map_or("", |m| m.line.as_str()),
        }
    }

    fn start_typing(
        &mut self,
        purpose: Purpose,
        attempt: u32,
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let text = self.typed_text(purpose);
        // A retry whose text is already in the input box only needs Enter again; typing
        // it twice would submit it twice.
        let shown = attempt > 1
            && if purpose == Purpose::Message {
                // Every message starts `Relay message from ...`, and earlier ones stay on
                // screen: only the end of this one, on the cursor's row, tells.
                let tail = detect::echo_tail(text);
                let rows = self.screen.visible_rows();
                let row = usize::from(self.screen.cursor().0);
                !tail.is_empty()
                    && rows
                        .get(row)
                        .is_some_and(|r| detect::collapse_ws(r).contains(&tail))
            } else {
                let probe = detect::echo_probe(text);
                !probe.is_empty()
                    && self
                        .screen
                        .visible_rows()
                        .iter()
                        .any(|r| detect::collapse_ws(r).contains(&probe))
            };
        let at = if shown {
            now
        } else {
            actions.push(Action::Write(inject::paste_bytes(
                text,
                self.screen.bracketed_paste(),
            )));
            now + self.cfg.timing.enter_delay
        };
        self.phase = Phase::Typing(Typing {
            purpose,
            attempt,
            step: Step::Enter { at },
        });
    }

    fn tick_typing(&mut self, t: Typing, now: Instant, actions: &mut Vec<Action>) {
        match t.step {
            // Enter waits for the app to have taken in the paste (output quiet), or a large
            // paste is still being processed and the keystroke is swallowed.
            Step::Enter { at } if now >= at && now >= self.paste_taken_at() => {
                let before = self.screen.fingerprint();
                actions.push(Action::Write(ENTER.to_vec()));
                if let Purpose::Nudge(count) = t.purpose {
                    actions.push(Action::Emit(SessionEvent::Nudged { count }));
                }
                self.phase = Phase::Typing(Typing {
                    step: Step::Confirm {
                        deadline: now + self.cfg.timing.confirm_timeout,
                        before,
                    },
                    ..t
                });
            }
            Step::Confirm { deadline, .. } if now >= deadline => match t.purpose {
                Purpose::Task if t.attempt < self.cfg.timing.delivery_attempts => {
                    self.start_typing(Purpose::Task, t.attempt + 1, now, actions);
                }
                Purpose::Task => {
                    let reason = format!(
                        "the screen did not change after typing the task and pressing Enter ({} attempts)",
                        t.attempt
                    );
                    self.end(SessionEnd::DeliveryFailed(reason), actions);
                }
                Purpose::Nudge(_) => {
                    // An unconfirmed nudge is not retried: the escalation timer decides.
                    self.phase = Phase::Working;
                    self.last_injection = now;
                }
                Purpose::Message => {
                    self.phase = Phase::Working;
                    self.last_injection = now;
                    self.message_unconfirmed(now, actions);
                }
            },
            _ => {}
        }
    }

    /// The screen did not confirm a typed message: try again after a growing pause,
    /// or hand it back once the attempts are used up.
    fn message_unconfirmed(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(m) = self.inbound.as_mut() else {
            return;
        };
        if m.attempts < self.cfg.timing.delivery_attempts {
            let pause = self
                .cfg
                .timing
                .settle
                .saturating_mul(1 << m.attempts.min(8));
            m.not_before = now + pause;
            return;
        }
        let reason = format!(
            "the screen did not change after typing the message and pressing Enter ({} attempts)",
            m.attempts
        );
        let id = m.id;
        self.inbound = None;
        actions.push(Action::MessageNotDelivered { id, reason });
    }

    fn confirmed(&mut self, t: Typing, now: Instant, actions: &mut Vec<Action>) {
        if t.purpose == Purpose::Task {
            actions.push(Action::Emit(SessionEvent::TaskDelivered {
                attempts: t.attempt,
            }));
            self.last_activity = now;
            self.idle_reported = false;
        }
        if t.purpose == Purpose::Message
            && let Some(m) = self.inbound.take()
        {
            actions.push(Action::MessageDelivered(m.id));
            // The agent answers a message: that is not idleness.
            self.last_activity = now;
            self.idle_reported = false;
        }
        self.last_injection = now;
        self.phase = Phase::Working;
    }

    fn tick_working(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.relay_waiting && now >= self.quiet_at() {
            self.scan_relays(false, now, actions);
        }
        // A message goes in only while the agent is not writing: typing into a TUI that
        // is mid-reply garbles both.
        let quiet = now >= self.quiet_at();
        if let Some(m) = self.inbound.as_mut()
            && now >= m.not_before
            && quiet
        {
            m.attempts += 1;
            let (line, attempt) = (m.line.clone(), m.attempts);
            self.injected.push(&line, &self.cfg.rules);
            self.start_typing(Purpose::Message, attempt, now, actions);
            return;
        }
        // The task still sitting on the input line after a quiet spell means its Enter was
        // swallowed (the screen changed, so it looked delivered): press Enter once more.
        if !self.task_resubmitted
            && !self.agent_spoke
            && now >= self.last_activity + self.stuck_after()
        {
            self.task_resubmitted = true;
            if self.task_still_in_input() {
                actions.push(Action::Write(ENTER.to_vec()));
            }
        }
        if let Some(t) = self.cfg.timing.idle_threshold
            && !self.idle_reported
            && now >= self.last_activity + t
        {
            self.idle_reported = true;
            actions.push(Action::Emit(SessionEvent::Idle));
        }
        let Some(policy) = self.cfg.nudge.clone() else {
            return;
        };
        let quiet = self.quiet_since();
        if self.nudges < policy.max_nudges {
            if now >= quiet + policy.nudge_after {
                self.nudges += 1;
                self.injected.push(NUDGE_TEXT, &self.cfg.rules);
                self.start_typing(Purpose::Nudge(self.nudges), 1, now, actions);
            }
        } else if now >= quiet + policy.escalate_after {
            actions.push(Action::Emit(SessionEvent::ForceReleased));
            self.end(SessionEnd::ForceReleased, actions);
        }
    }

    /// Reads the rows written since the task: keeps the output, counts a change of it as
    /// activity, and once the task is delivered ends on `/exit`.
    fn observe(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(anchor) = &self.anchor else {
            return;
        };
        let alt_now = self.screen.alternate();
        let (rows, start, exclude) = if alt_now {
            let rows = self.screen.visible_rows();
            let start = detect::echo_row(&rows, &self.probe).unwrap_or(0);
            let exclude = if anchor.alt {
                Some(&anchor.before)
            } else {
                None
            };
            (rows, start, exclude)
        } else {
            if anchor.alt {
                // The app left the screen the task was typed on; what it wrote there was
                // captured before it went.
                return;
            }
            let rows = self.screen.all_rows();
            let anchor_idx = usize::try_from(anchor.abs.saturating_sub(self.screen.first_abs()))
                .unwrap_or(usize::MAX)
                .min(rows.len());
            let start = detect::echo_row(&rows, &self.probe).unwrap_or(anchor_idx);
            (rows, start, None)
        };
        let empty = HashSet::new();
        let region = &rows[start..];
        let exit = detect::find_exit(region, &self.injected, &self.cfg.rules);
        let cut = exit.unwrap_or(region.len());
        let out = detect::extract_output(
            &region[..cut],
            &self.cfg.rules,
            &self.injected,
            exclude.unwrap_or(&empty),
        );
        if out != self.seen_output {
            self.seen_output = out.clone();
            self.last_activity = now;
            self.idle_reported = false;
            if !out.is_empty() {
                self.agent_spoke = true;
            }
        }
        // Empty output never replaces what was kept: rows are often wiped just before
        // an app exits or redraws.
        if !out.is_empty() {
            self.output = out;
        }
        if self.task_delivered() {
            // Everything above an `/exit` is complete.
            self.scan_relays(exit.is_some(), now, actions);
        }
        if self.task_delivered() && exit.is_some() && !self.exit_seen {
            self.exit_seen = true;
            actions.push(Action::Emit(SessionEvent::ExitRequested));
            self.end(SessionEnd::ExitRequested, actions);
        }
    }
}

impl Driver {
    /// Sends the relay lines of the output not sent yet. The last one, when it ends the
    /// output, may still be growing; it waits for quiet unless `complete`.
    fn scan_relays(&mut self, complete: bool, now: Instant, actions: &mut Vec<Action>) {
        let glyphs: Vec<&str> = self
            .cfg
            .rules
            .reply_glyphs
            .iter()
            .map(String::as_str)
            .collect();
        let scan = lines::scan(&self.output, &glyphs);
        let settled = complete || now >= self.quiet_at();
        let ready = if scan.last_may_grow && !settled {
            scan.lines.len().saturating_sub(1)
        } else {
            scan.lines.len()
        };
        self.relay_waiting = ready < scan.lines.len();
        let mut seen: HashMap<&RelayLine, usize> = HashMap::new();
        for line in &scan.lines[..ready] {
            let copies = seen.entry(line).or_insert(0);
            *copies += 1;
            let sent = self.relayed.entry(line.clone()).or_insert(0);
            if *copies > *sent {
                *sent = *copies;
                actions.push(Action::Relay(line.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
                Action::Write(b) => Some(b.clone()),
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
        assert!(a.contains(&Action::End(SessionEnd::ExitRequested)));
        assert_eq!(d.output(), "hi there");
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
            [Action::End(SessionEnd::DeliveryFailed(_))]
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
        assert!(a.contains(&Action::End(SessionEnd::ForceReleased)));
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
                Action::Relay(l) => Some(l.clone()),
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
        assert!(a.contains(&Action::MessageDelivered(MessageId(4))));
        assert!(d.wants_message());
        // Its echo is neither output nor a relay line.
        assert_eq!(d.output(), "still writing");
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
                    Action::Write(w) if w.starts_with(b"\x1b[200~") => typed += 1,
                    Action::MessageNotDelivered { id, reason } => handed_back = Some((id, reason)),
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
        assert!(a.contains(&Action::End(SessionEnd::ExitRequested)));
    }

    #[test]
    fn timeout_ends_the_session() {
        let t0 = Instant::now();
        let mut cfg = config("x", None);
        cfg.timeout = Some(ms(50));
        let mut d = Driver::new(cfg, t0);
        assert_eq!(d.next_deadline(t0), Some(t0 + ms(50)));
        assert_eq!(d.on_tick(t0 + ms(50)), [Action::End(SessionEnd::TimedOut)]);
        assert_eq!(d.next_deadline(t0 + ms(50)), None);
    }
}
