//! The typist: types the task, nudges and relayed messages into the agent one at a time,
//! presses Enter as a separate write once the app has taken the text in, and judges
//! delivery by the agent's reaction.
//!
//! A text counts as delivered when the agent reacts in a way that is not our echo: its
//! output changes after Enter, the input line that showed the text is cleared, or the
//! text moved off the input line into the conversation. A screen that merely repaints
//! (a clock, a footer) proves nothing, and a text that is still on the input line is
//! never typed a second time: a retry then only presses Enter.

use std::time::Duration;

use relay_messaging::MessageId;
use tokio::time::Instant;

use super::SessionTiming;
use super::idle::after;
use super::inject::{ENTER, NUDGE_TEXT};
use super::output::{Layout, OutputTracker};
use super::sanitize;

/// What the typist did or found, for the driver to carry out and report.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Did {
    /// Write these bytes to the terminal, as one write.
    Write(Vec<u8>),
    /// The agent reacted to the task.
    TaskDelivered { attempts: u32 },
    /// The agent never reacted to the task.
    TaskUndeliverable(String),
    /// Enter was pressed on nudge number `n`.
    Nudged(u32),
    /// The agent reacted to a message.
    MessageDelivered(MessageId),
    /// A message got no reaction through every attempt: handed back.
    MessageNotDelivered { id: MessageId, reason: String },
    /// A nudge was confirmed, or a nudge or message attempt was given up on: typing
    /// counts as done at this moment.
    Settled,
}

/// A message waiting to be typed in.
#[derive(Debug, Clone)]
pub(super) struct Held {
    id: MessageId,
    line: String,
    /// Attempts made so far.
    attempts: u32,
    /// No attempt before this.
    not_before: Instant,
}

#[derive(Debug, Clone)]
enum What {
    Task,
    Nudge(u32),
    Message(Held),
}

/// What the screen showed when Enter was pressed.
#[derive(Debug, Clone)]
struct AtEnter {
    output: String,
    /// With bracketed paste on (an input box): where the cursor was, to tell a line break
    /// in the box from a submit.
    layout: Option<Layout>,
}

/// Whether the typed text was seen on the input line since it was typed (its echo may
/// come after Enter, from an app that is slow to draw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    NotSeen,
    OnInputLine,
}

#[derive(Debug, Clone)]
enum Step {
    /// Text written; Enter is due at `at`.
    Enter { at: Instant },
    /// Enter written; the agent must react by `deadline` (`None`: never times out).
    Confirm {
        deadline: Option<Instant>,
        at_enter: AtEnter,
    },
}

#[derive(Debug, Clone)]
struct Job {
    what: What,
    /// The text as typed (clean; one line without bracketed paste).
    typed: String,
    attempt: u32,
    /// Rows holding the end of the text before it was typed.
    rows_before: usize,
    echo: Echo,
    step: Step,
}

#[derive(Debug)]
enum State {
    /// The task has not been typed yet.
    BeforeTask,
    /// Typing something.
    Busy(Job),
    /// The task is delivered; nothing is being typed.
    Free,
}

/// The one check after delivery that the task's Enter was not swallowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recheck {
    Pending,
    Done,
}

/// Typing and confirming, one text at a time.
#[derive(Debug)]
pub(super) struct Typist {
    timing: SessionTiming,
    task: String,
    state: State,
    /// A message waiting for a quiet moment.
    queued: Option<Held>,
    recheck: Recheck,
    /// The task as it was typed the last time.
    typed_task: String,
}

impl Typist {
    pub(super) fn new(timing: SessionTiming, task: String) -> Self {
        Typist {
            timing,
            typed_task: task.clone(),
            task,
            state: State::BeforeTask,
            queued: None,
            recheck: Recheck::Pending,
        }
    }

    /// Whether the task was delivered.
    pub(super) fn task_delivered(&self) -> bool {
        match &self.state {
            State::BeforeTask => false,
            State::Busy(job) => !matches!(job.what, What::Task),
            State::Free => true,
        }
    }

    /// The attempt at the task under way, if the task is being typed or confirmed.
    pub(super) fn task_attempt(&self) -> Option<u32> {
        match &self.state {
            State::Busy(Job {
                what: What::Task,
                attempt,
                ..
            }) => Some(*attempt),
            _ => None,
        }
    }

    /// Whether nothing is being typed (and the task is delivered).
    pub(super) fn is_free(&self) -> bool {
        matches!(self.state, State::Free)
    }

    /// Whether a message would be taken now.
    pub(super) fn wants_message(&self) -> bool {
        self.task_delivered() && self.held_message().is_none()
    }

    /// The message held, queued or being typed.
    pub(super) fn held_message(&self) -> Option<MessageId> {
        match (&self.queued, &self.state) {
            (Some(m), _) => Some(m.id),
            (
                None,
                State::Busy(Job {
                    what: What::Message(m),
                    ..
                }),
            ) => Some(m.id),
            _ => None,
        }
    }

    /// Takes a message to type in once the agent is quiet.
    pub(super) fn offer(&mut self, id: MessageId, line: String, now: Instant) {
        self.queued = Some(Held {
            id,
            line,
            attempts: 0,
            not_before: now,
        });
    }

    /// Types the task (first attempt); the tracker anchors the agent's output here.
    pub(super) fn start_task(&mut self, now: Instant, out: &mut OutputTracker) -> Vec<Did> {
        out.anchor();
        self.begin(What::Task, 1, now, out)
    }

    /// Types nudge number `n`.
    pub(super) fn nudge(&mut self, n: u32, now: Instant, out: &mut OutputTracker) -> Vec<Did> {
        self.begin(What::Nudge(n), 1, now, out)
    }

    fn raw_text(&self, what: &What) -> String {
        match what {
            What::Task => self.task.clone(),
            What::Nudge(_) => NUDGE_TEXT.to_owned(),
            What::Message(m) => m.line.clone(),
        }
    }

    fn begin(
        &mut self,
        what: What,
        attempt: u32,
        now: Instant,
        out: &mut OutputTracker,
    ) -> Vec<Did> {
        let bracketed = out.bracketed_paste();
        let typed = sanitize::typed_text(&self.raw_text(&what), bracketed);
        // A retry whose text is already in the input box only needs Enter again; typing
        // it twice would submit it twice.
        let shown = attempt > 1
            && (out.paste_pending()
                || match what {
                    // Every message starts `Relay message from ...`, and earlier ones stay
                    // on screen: only the end of this one, on the cursor's row, tells.
                    What::Message(_) => out.tail_on_input_line(&typed),
                    What::Task | What::Nudge(_) => out.shows(&typed),
                });
        let rows_before = out.rows_holding(&typed);
        let mut did = Vec::new();
        let at = if shown {
            now
        } else {
            out.typed(&typed);
            did.push(Did::Write(sanitize::wrap(&typed, bracketed)));
            after(now, self.timing.enter_delay).unwrap_or(now)
        };
        if matches!(what, What::Task) {
            self.typed_task = typed.clone();
        }
        let echo = if out.on_input_line(&typed) {
            Echo::OnInputLine
        } else {
            Echo::NotSeen
        };
        self.state = State::Busy(Job {
            what,
            typed,
            attempt,
            rows_before,
            echo,
            step: Step::Enter { at },
        });
        did
    }

    /// When the app will have been quiet for the Enter pause since its last output: it has
    /// finished taking in what was pasted.
    fn paste_taken_at(&self, out: &OutputTracker, started: Instant) -> Instant {
        out.last_output()
            .map_or(Some(started), |t| after(t, self.timing.enter_delay))
            .unwrap_or(started)
    }

    fn quiet_at(&self, out: &OutputTracker, started: Instant) -> Option<Instant> {
        out.last_output()
            .map_or(Some(started), |t| after(t, self.timing.settle))
    }

    /// How long the agent may show nothing new before a task left on its input line is
    /// submitted again.
    fn stuck_after(&self) -> Duration {
        (self.timing.settle.saturating_mul(2)).max(self.timing.confirm_timeout)
    }

    /// The next moment `tick` has something to do.
    pub(super) fn next_deadline(
        &self,
        out: &OutputTracker,
        started: Instant,
        last_activity: Instant,
    ) -> Option<Instant> {
        match &self.state {
            State::BeforeTask => None,
            State::Busy(job) => match &job.step {
                Step::Enter { at } => Some((*at).max(self.paste_taken_at(out, started))),
                Step::Confirm { deadline, .. } => *deadline,
            },
            State::Free => {
                // While the CLI says it cannot take input, the next output decides again.
                let message = self
                    .queued
                    .as_ref()
                    .filter(|_| !out.busy() && !out.paste_pending())
                    .and_then(|m| self.quiet_at(out, started).map(|q| m.not_before.max(q)));
                let recheck = (self.recheck == Recheck::Pending
                    && (out.tail_on_input_line(&self.typed_task) || out.paste_pending()))
                .then(|| after(last_activity, self.stuck_after()))
                .flatten();
                [message, recheck].into_iter().flatten().min()
            }
        }
    }

    /// Acts on what is due at `now`: Enter, a confirmation that ran out, a queued message,
    /// the swallowed-Enter check.
    pub(super) fn tick(
        &mut self,
        now: Instant,
        out: &mut OutputTracker,
        started: Instant,
        last_activity: Instant,
    ) -> Vec<Did> {
        let mut did = Vec::new();
        match std::mem::replace(&mut self.state, State::Free) {
            State::BeforeTask => self.state = State::BeforeTask,
            State::Busy(mut job) => match job.step {
                // Enter waits for the app to have taken in the paste (output quiet), or a
                // large paste is still being processed and the keystroke is swallowed.
                Step::Enter { at } if now >= at && now >= self.paste_taken_at(out, started) => {
                    did.push(Did::Write(ENTER.to_vec()));
                    if let What::Nudge(n) = job.what {
                        did.push(Did::Nudged(n));
                    }
                    if out.on_input_line(&job.typed) {
                        job.echo = Echo::OnInputLine;
                    }
                    job.step = Step::Confirm {
                        deadline: after(now, self.timing.confirm_timeout),
                        at_enter: AtEnter {
                            output: out.output().to_owned(),
                            layout: out.bracketed_paste().then(|| out.layout()),
                        },
                    };
                    self.state = State::Busy(job);
                }
                Step::Confirm {
                    deadline: Some(deadline),
                    ..
                } if now >= deadline => did.extend(self.unconfirmed(job, now, out)),
                _ => self.state = State::Busy(job),
            },
            State::Free => {
                // A message goes in only while the agent is not writing: typing into a TUI
                // that is mid-reply garbles both.
                // Nor while a collapsed paste waits on the input line: the message would be
                // submitted with it as one prompt.
                let quiet = self.quiet_at(out, started).is_some_and(|q| now >= q)
                    && !out.busy()
                    && !out.paste_pending();
                if let Some(m) = self.queued.take_if(|m| now >= m.not_before && quiet) {
                    let mut m = m;
                    m.attempts += 1;
                    let attempt = m.attempts;
                    return self.begin(What::Message(m), attempt, now, out);
                }
                // The task still sitting on the input line after a quiet spell means its
                // Enter was swallowed (something on screen looked like a reaction): press
                // Enter once more.
                if self.recheck == Recheck::Pending
                    && (out.tail_on_input_line(&self.typed_task) || out.paste_pending())
                    && after(last_activity, self.stuck_after()).is_some_and(|t| now >= t)
                {
                    self.recheck = Recheck::Done;
                    did.push(Did::Write(ENTER.to_vec()));
                }
            }
        }
        did
    }

    /// Looks for the agent's reaction to what was just typed.
    pub(super) fn on_screen(&mut self, out: &OutputTracker) -> Vec<Did> {
        let State::Busy(job) = &mut self.state else {
            return Vec::new();
        };
        let on_input = out.on_input_line(&job.typed);
        let was_on_input = job.echo == Echo::OnInputLine;
        if on_input {
            job.echo = Echo::OnInputLine;
        }
        let Step::Confirm { at_enter, .. } = &job.step else {
            return Vec::new();
        };
        // Text still on the input line (or the placeholder of a collapsed paste) was not
        // taken, whatever else the screen shows (a TUI can re-lay out its screen on Enter
        // while it swallows the key), and neither was Enter taken as a line break in an
        // input box.
        if on_input
            || out.paste_pending()
            || at_enter
                .layout
                .as_ref()
                .is_some_and(|l| out.line_break_inserted_since(l))
        {
            return Vec::new();
        }
        let answered = !out.output().is_empty() && out.output() != at_enter.output;
        let cleared = was_on_input;
        let moved = out.rows_holding(&job.typed) > job.rows_before;
        if !(answered || cleared || moved) {
            return Vec::new();
        }
        self.confirmed()
    }

    /// The agent took the task some other way (its `/exit` is on screen): the task
    /// counts as delivered.
    pub(super) fn task_taken(&mut self) -> Vec<Did> {
        if self.task_attempt().is_some() {
            self.confirmed()
        } else {
            Vec::new()
        }
    }

    fn confirmed(&mut self) -> Vec<Did> {
        let State::Busy(job) = std::mem::replace(&mut self.state, State::Free) else {
            return Vec::new();
        };
        match job.what {
            What::Task => vec![Did::TaskDelivered {
                attempts: job.attempt,
            }],
            What::Nudge(_) => vec![Did::Settled],
            What::Message(m) => vec![Did::MessageDelivered(m.id)],
        }
    }

    fn unconfirmed(&mut self, job: Job, now: Instant, out: &mut OutputTracker) -> Vec<Did> {
        self.state = State::Free;
        match job.what {
            What::Task if job.attempt < self.timing.delivery_attempts => {
                self.begin(What::Task, job.attempt + 1, now, out)
            }
            What::Task => {
                self.state = State::BeforeTask;
                vec![Did::TaskUndeliverable(format!(
                    "the agent did not react to the task (no new output, its input line not cleared) after typing it and pressing Enter ({} attempts)",
                    job.attempt
                ))]
            }
            // An unconfirmed nudge is not retried: the idle clock decides.
            What::Nudge(_) => vec![Did::Settled],
            What::Message(mut m) => {
                let mut did = vec![Did::Settled];
                if m.attempts < self.timing.delivery_attempts {
                    // Try again after a growing pause.
                    let pause = self.timing.settle.saturating_mul(1 << m.attempts.min(8));
                    m.not_before = after(now, pause).unwrap_or(now);
                    self.queued = Some(m);
                } else {
                    did.push(Did::MessageNotDelivered {
                        id: m.id,
                        reason: format!(
                            "the agent did not react to the message after typing it and pressing Enter ({} attempts)",
                            m.attempts
                        ),
                    });
                }
                did
            }
        }
    }
}
