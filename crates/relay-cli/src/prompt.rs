//! The terminal prompt for approvals: when `agent-relay run` has a terminal on stdin, a
//! step that waits for approval is asked about there (`approve step `deploy`? [y/n]`).
//! `y` approves, `n` (optionally followed by a reason) rejects, as `agent-relay approve`
//! and `reject` would from another terminal (recorded for `$USER`); an empty line leaves
//! the step waiting. A decision made elsewhere takes the step off the prompt.

use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex, PoisonError};

use relay_engine::events::{Event, EventKind};
use relay_messaging::protocol::{Reply, Request};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::messaging::Endpoint;

/// What a line typed at the prompt decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Approve.
    Approve,
    /// Reject, with the reason given.
    Reject(Option<String>),
    /// Nothing (an empty or unreadable line): the step keeps waiting.
    Nothing,
}

/// Reads one typed line.
pub fn answer(line: &str) -> Answer {
    let t = line.trim();
    let (word, rest) = t
        .split_once(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .unwrap_or((t, ""));
    let rest = rest.trim_start_matches([':', ',', ' ']).trim();
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" | "approve" => Answer::Approve,
        "n" | "no" | "reject" => Answer::Reject((!rest.is_empty()).then(|| rest.to_owned())),
        _ => Answer::Nothing,
    }
}

/// Steps waiting for a decision at the prompt, oldest first, and the run they are of.
#[derive(Default)]
struct Waiting {
    run: Option<String>,
    steps: VecDeque<String>,
}

fn lock(w: &Mutex<Waiting>) -> std::sync::MutexGuard<'_, Waiting> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ask(step: &str) {
    eprintln!("approve step `{step}`? [y/n, or n and a reason; empty leaves it waiting]");
}

/// Passes `events` on to the returned receiver, and, when stdin is a terminal and
/// `enabled`, prompts for each approval the run waits for.
pub fn tee(mut events: UnboundedReceiver<Event>, enabled: bool) -> UnboundedReceiver<Event> {
    let (tx, rx): (UnboundedSender<Event>, _) = tokio::sync::mpsc::unbounded_channel();
    if !enabled || !std::io::stdin().is_terminal() {
        return events;
    }
    let waiting: Arc<Mutex<Waiting>> = Arc::default();
    let reader = waiting.clone();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else {
                return;
            };
            let (run, step) = {
                let w = lock(&reader);
                (w.run.clone(), w.steps.front().cloned())
            };
            let (Some(run), Some(step)) = (run, step) else {
                continue;
            };
            let approved = match answer(&line) {
                Answer::Approve => (true, None),
                Answer::Reject(reason) => (false, reason),
                Answer::Nothing => {
                    ask(&step);
                    continue;
                }
            };
            let req = Request::Decide {
                step: step.clone(),
                approved: approved.0,
                by: crate::steer::user(None),
                reason: approved.1,
            };
            match Endpoint::for_run(run).ask(&req) {
                Ok(Reply::Decided { .. }) => {
                    lock(&reader).steps.retain(|s| *s != step);
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "cannot decide step `{step}`: {}",
                    e.headline.unwrap_or_default()
                ),
            }
            if let Some(next) = lock(&reader).steps.front() {
                ask(next);
            }
        }
    });
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            match &e.kind {
                EventKind::RunStarted { run_id, .. } => lock(&waiting).run = Some(run_id.clone()),
                EventKind::ApprovalRequested { step, .. } => {
                    let mut w = lock(&waiting);
                    if !w.steps.contains(step) {
                        w.steps.push_back(step.clone());
                        if w.steps.len() == 1 {
                            ask(step);
                        }
                    }
                }
                EventKind::ApprovalDecided { step, .. } => {
                    lock(&waiting).steps.retain(|s| s != step);
                }
                _ => {}
            }
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_approve_reject_with_a_reason_or_leave_it() {
        assert_eq!(answer("y"), Answer::Approve);
        assert_eq!(answer(" Yes \n"), Answer::Approve);
        assert_eq!(answer("n"), Answer::Reject(None));
        assert_eq!(
            answer("no: the db is down"),
            Answer::Reject(Some("the db is down".into()))
        );
        assert_eq!(
            answer("n not today"),
            Answer::Reject(Some("not today".into()))
        );
        assert_eq!(answer(""), Answer::Nothing);
        assert_eq!(answer("maybe"), Answer::Nothing);
    }
}
