//! The steps of agents running now, for what an agent asks of its own step through the
//! socket (`agent-relay mcp`'s `report_done` and `ask_human`): its result, which ends a
//! terminal session as `/exit` does, and questions for a person whose answer goes back
//! to the tool call waiting for it. A leaf: plain data behind a lock, no I/O.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use relay_messaging::control::AnswerWait;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// One running step of an agent.
struct Live {
    agent: String,
    /// Ends the step's terminal session; `None` for a one-shot process.
    end: Option<CancellationToken>,
    /// The result the agent reported.
    report: Option<String>,
    /// Questions asked and not answered yet, oldest first.
    asks: Vec<oneshot::Sender<String>>,
}

/// What became of an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// It went to the tool call that waits for it.
    Returned,
    /// Nobody waits for it any more: it goes to `agent` as a message.
    Late {
        /// The agent that asked.
        agent: String,
    },
    /// The step asked nothing.
    NotAsked,
}

/// The running steps of agents, by label.
#[derive(Default)]
pub(crate) struct LiveSteps {
    steps: Mutex<Book>,
}

/// The steps running now, and whose each ended one was (for [`LiveSteps::resolve`]).
#[derive(Default)]
struct Book {
    live: HashMap<String, Live>,
    ended: HashMap<String, String>,
}

impl LiveSteps {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.steps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An attempt of `agent`'s step `label` starts; `end` ends its terminal session.
    pub(crate) fn started(&self, label: &str, agent: &str, end: Option<CancellationToken>) {
        let mut book = self.lock();
        book.ended.remove(label);
        book.live.insert(
            label.to_owned(),
            Live {
                agent: agent.to_owned(),
                end,
                report: None,
                asks: Vec::new(),
            },
        );
    }

    /// The attempt of step `label` ended: the result its agent reported, if it did.
    /// Questions still open are dropped with it.
    pub(crate) fn finished(&self, label: &str) -> Option<String> {
        let mut book = self.lock();
        let live = book.live.remove(label)?;
        book.ended.insert(label.to_owned(), live.agent);
        live.report
    }

    /// The step `agent` means by `label`: `label`, or, when that is a step of the agent's
    /// that ended and the agent runs exactly one other now, that one (see
    /// [`LiveSteps::mine`]).
    pub(crate) fn resolve(&self, label: &str, agent: Option<&str>) -> String {
        Self::resolve_in(&self.lock(), label, agent)
    }

    fn resolve_in(book: &Book, label: &str, agent: Option<&str>) -> String {
        let Some(a) = agent else {
            return label.to_owned();
        };
        if book.live.contains_key(label) || book.ended.get(label).is_none_or(|e| e != a) {
            return label.to_owned();
        }
        let theirs: Vec<&String> = book
            .live
            .iter()
            .filter(|(_, l)| l.agent == a)
            .map(|(k, _)| k)
            .collect();
        match theirs.as_slice() {
            [only] => (*only).clone(),
            _ => label.to_owned(),
        }
    }

    /// The step `label` running for the caller (`agent`, or the owner for `None`).
    ///
    /// An agent whose terminal was kept open from an earlier step (`session: resume`)
    /// still has that step's name in its environment: a step of its own that ended, while
    /// it runs exactly one other, means that one.
    fn mine<'a>(
        book: &'a mut Book,
        label: &str,
        agent: Option<&str>,
    ) -> Result<&'a mut Live, String> {
        let label = Self::resolve_in(book, label, agent);
        let label = label.as_str();
        let steps = &mut book.live;
        if !steps.contains_key(label) {
            let mut running: Vec<&str> = steps
                .iter()
                .filter(|(_, l)| agent.is_none_or(|a| a == l.agent))
                .map(|(k, _)| k.as_str())
                .collect();
            running.sort_unstable();
            return Err(if running.is_empty() {
                format!("step `{label}` is not running")
            } else {
                format!(
                    "step `{label}` is not running (running now: {})",
                    running.join(", ")
                )
            });
        }
        let live = steps
            .get_mut(label)
            .ok_or_else(|| format!("step `{label}` is not running"))?;
        if let Some(a) = agent
            && a != live.agent
        {
            return Err(format!(
                "step `{label}` belongs to `{}`, not to `{a}`",
                live.agent
            ));
        }
        Ok(live)
    }

    /// `agent` reports `text` as the result of its step `label`: kept as the step's
    /// output, and its terminal session is ended. Whether a session is being ended.
    pub(crate) fn report(
        &self,
        label: &str,
        agent: Option<&str>,
        text: String,
    ) -> Result<bool, String> {
        let mut steps = self.lock();
        let live = Self::mine(&mut steps, label, agent)?;
        live.report = Some(text);
        Ok(match &live.end {
            Some(end) => {
                end.cancel();
                true
            }
            None => false,
        })
    }

    /// `agent` asks a person a question for its step `label`; where the answer arrives.
    pub(crate) fn ask(&self, label: &str, agent: Option<&str>) -> Result<AnswerWait, String> {
        let mut steps = self.lock();
        let live = Self::mine(&mut steps, label, agent)?;
        let (tx, rx) = oneshot::channel();
        live.asks.push(tx);
        Ok(rx)
    }

    /// The steps with a question open, by label.
    pub(crate) fn asking(&self) -> Vec<String> {
        let mut labels: Vec<String> = self
            .lock()
            .live
            .iter()
            .filter(|(_, l)| !l.asks.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        labels.sort_unstable();
        labels
    }

    /// A person answers the oldest open question of step `label`.
    pub(crate) fn answer(&self, label: &str, text: &str) -> Answered {
        let mut steps = self.lock();
        let Some(live) = steps.live.get_mut(label) else {
            return Answered::NotAsked;
        };
        if live.asks.is_empty() {
            return Answered::NotAsked;
        }
        let tx = live.asks.remove(0);
        match tx.send(text.to_owned()) {
            Ok(()) => Answered::Returned,
            Err(_) => Answered::Late {
                agent: live.agent.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_ends_a_session_and_becomes_the_output() {
        let live = LiveSteps::default();
        let end = CancellationToken::new();
        live.started("write", "alice", Some(end.clone()));
        live.started("read", "bob", None);
        let err = live.report("write", Some("bob"), "x".into()).unwrap_err();
        assert!(err.contains("belongs to `alice`"), "{err}");
        assert!(!end.is_cancelled());
        let err = live.report("nope", Some("bob"), "x".into()).unwrap_err();
        assert_eq!(err, "step `nope` is not running (running now: read)");
        assert_eq!(
            live.report("write", Some("alice"), "done!".into()),
            Ok(true)
        );
        assert!(end.is_cancelled());
        assert_eq!(live.report("read", None, "r".into()), Ok(false));
        assert_eq!(live.finished("write").as_deref(), Some("done!"));
        assert_eq!(live.finished("write"), None);
        assert_eq!(live.finished("read").as_deref(), Some("r"));
    }

    #[test]
    fn a_report_for_an_agents_finished_step_goes_to_the_one_it_runs_now() {
        // A terminal kept open from step `draft` runs step `revise` for the same agent.
        let live = LiveSteps::default();
        let end = CancellationToken::new();
        live.started("draft", "alice", None);
        live.started("mine", "carol", None);
        let _ = live.finished("draft");
        let _ = live.finished("mine");
        live.started("revise", "alice", Some(end.clone()));
        live.started("check", "bob", None);
        assert_eq!(live.report("draft", Some("alice"), "v2".into()), Ok(true));
        assert!(end.is_cancelled());
        assert_eq!(live.finished("revise").as_deref(), Some("v2"));
        // Someone else's ended step is not taken for theirs, nor a step that never ran,
        // nor is a guess made among several.
        live.started("c1", "carol", None);
        let err = live.report("draft", Some("carol"), "x".into()).unwrap_err();
        assert!(err.contains("step `draft` is not running"), "{err}");
        let err = live.report("nope", Some("carol"), "x".into()).unwrap_err();
        assert!(err.contains("step `nope` is not running"), "{err}");
        live.started("c2", "carol", None);
        let err = live.report("mine", Some("carol"), "x".into()).unwrap_err();
        assert!(err.contains("running now: c1, c2"), "{err}");
    }

    #[test]
    fn answers_go_to_the_waiting_call_or_else_to_the_agent() {
        let live = LiveSteps::default();
        live.started("plan", "alice", None);
        assert_eq!(live.answer("plan", "8080"), Answered::NotAsked);
        assert!(live.asking().is_empty());
        let mut first = live.ask("plan", Some("alice")).unwrap();
        let second = live.ask("plan", Some("alice")).unwrap();
        assert_eq!(live.asking(), ["plan"]);
        assert_eq!(live.answer("plan", "8080"), Answered::Returned);
        assert_eq!(first.try_recv().unwrap(), "8080");
        drop(second);
        assert_eq!(
            live.answer("plan", "9090"),
            Answered::Late {
                agent: "alice".into()
            }
        );
        assert_eq!(live.answer("plan", "again"), Answered::NotAsked);
        assert!(live.ask("plan", Some("bob")).is_err());
    }
}
