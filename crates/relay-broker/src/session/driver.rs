//! The session's decisions, free of I/O. Fed output bytes and clock ticks, the driver
//! answers terminal queries, judges readiness, paces the typing of the task and of nudges,
//! spots `/exit`, idleness and exhausted nudges, and keeps the agent's latest output. The
//! async runner in `mod.rs` only moves bytes and carries out the driver's actions, so the
//! whole state machine can be exercised with recorded bytes and a fake clock.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::detect::{self, Injected, Rules};
use super::inject::{self, ENTER, NUDGE_TEXT};
use super::queries::{self, Mark, QueryScanner};
use super::screen::Screen;
use super::{NudgePolicy, SessionEnd, SessionEvent, SessionTiming};

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write these bytes to the terminal, as one write.
    Write(Vec<u8>),
    /// Report this event.
    Emit(SessionEvent),
    /// End the session this way.
    End(SessionEnd),
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
    nudges: u32,
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
            nudges: 0,
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
                Step::Enter { at } => at,
                Step::Confirm { deadline, .. } => deadline,
            }),
            Phase::Working => {
                if let Some(t) = timing.idle_threshold
                    && !self.idle_reported
                {
                    due.push(self.last_activity + t);
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
                    purpose: Purpose::Nudge(_),
                    ..
                })
        )
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
        let probe = detect::echo_probe(text);
        let shown = attempt > 1
            && !probe.is_empty()
            && self
                .screen
                .visible_rows()
                .iter()
                .any(|r| detect::collapse_ws(r).contains(&probe));
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
            Step::Enter { at } if now >= at => {
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
            },
            _ => {}
        }
    }

    fn confirmed(&mut self, t: Typing, now: Instant, actions: &mut Vec<Action>) {
        if t.purpose == Purpose::Task {
            actions.push(Action::Emit(SessionEvent::TaskDelivered {
                attempts: t.attempt,
            }));
            self.last_activity = now;
            self.idle_reported = false;
        }
        self.last_injection = now;
        self.phase = Phase::Working;
    }

    fn tick_working(&mut self, now: Instant, actions: &mut Vec<Action>) {
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
        }
        // Empty output never replaces what was kept: rows are often wiped just before
        // an app exits or redraws.
        if !out.is_empty() {
            self.output = out;
        }
        if self.task_delivered() && exit.is_some() && !self.exit_seen {
            self.exit_seen = true;
            actions.push(Action::Emit(SessionEvent::ExitRequested));
            self.end(SessionEnd::ExitRequested, actions);
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
        d.on_tick(t0 + ms(150));
        let a = d.on_tick(t0 + ms(350));
        assert!(writes(&a).is_empty());
        assert_eq!(writes(&d.on_tick(t0 + ms(350))), [b"\r".to_vec()]);
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
    fn output_on_the_alternate_screen_survives_leaving_it() {
        let t0 = Instant::now();
        let mut d = Driver::new(config("hello", None), t0);
        d.on_output(
            b"\x1b[?1049h\x1b[1;1HOpenAI Codex\x1b[9;1H\xe2\x80\xba \x1b[10;1H? for shortcuts\x1b[9;3H",
            t0,
        );
        d.on_tick(t0 + ms(100));
        d.on_output(b"hello", t0 + ms(110));
        d.on_tick(t0 + ms(150));
        let a = d.on_output(
            "\x1b[3;1H\u{203a} hello\x1b[5;1H\u{2022} PONG\x1b[9;1H\x1b[2K\u{203a} ".as_bytes(),
            t0 + ms(160),
        );
        assert_eq!(events(&a), [SessionEvent::TaskDelivered { attempts: 1 }]);
        d.on_output(b"\x1b[?1049l", t0 + ms(170));
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
