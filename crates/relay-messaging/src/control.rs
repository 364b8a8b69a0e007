//! Requests a person makes of a live run through its socket (answering a question an
//! agent asked, approving or rejecting a step, pausing the run), handed to the run's
//! engine, which says whether it took them.

use tokio::sync::{mpsc, oneshot};

/// One request for the engine, with the channel its answer goes back on.
#[derive(Debug)]
pub enum Control {
    /// Answer the question node `step` asked.
    Answer {
        /// The node (its label).
        step: String,
        /// The answer.
        text: String,
        /// `Ok` when the step took it; why not otherwise.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Decide the approval workflow step `step` waits for.
    Decide {
        /// The workflow step.
        step: String,
        /// Whether it may run.
        approved: bool,
        /// Who decides.
        by: String,
        /// Why.
        reason: Option<String>,
        /// `Ok` when it was decided; why not otherwise.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Pause (`true`) or unpause the run.
    Pause {
        /// Pause or unpause.
        paused: bool,
        /// Who asks.
        by: String,
        /// `Ok` when done; why not otherwise.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Resume every parked step now (`agent-relay unpark`).
    Unpark {
        /// The steps that were parked; an error when none was.
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Mark an item of a running step's checklist.
    Mark {
        /// The step's label.
        step: String,
        /// The item's id.
        item: String,
        /// Blocked rather than done.
        blocked: bool,
        /// What the agent said.
        note: Option<String>,
        /// The agent asking; `None` for the run's owner.
        agent: Option<String>,
        /// `Ok` when it was marked; why not otherwise.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// An agent asks a person a question for its running step.
    Ask {
        /// The step's label.
        step: String,
        /// The agent asking; `None` for the run's owner.
        agent: Option<String>,
        /// The question.
        question: String,
        /// Where the answer will arrive, when the step may ask; why not otherwise.
        reply: oneshot::Sender<Result<AnswerWait, String>>,
    },
    /// An agent reports its running step's result.
    Done {
        /// The step's label.
        step: String,
        /// The agent reporting; `None` for the run's owner.
        agent: Option<String>,
        /// The result.
        text: String,
        /// Whether a terminal session is being ended; why not otherwise.
        reply: oneshot::Sender<Result<bool, String>>,
    },
}

/// Where the answer to a question asked through the socket arrives.
pub type AnswerWait = oneshot::Receiver<String>;

/// A checklist mark asked for, as the engine takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRequest {
    /// The step's label.
    pub step: String,
    /// The item's id.
    pub item: String,
    /// Blocked rather than done.
    pub blocked: bool,
    /// What the agent said.
    pub note: Option<String>,
    /// The agent asking; `None` for the run's owner.
    pub agent: Option<String>,
}

const ENDING: &str = "the run is ending and takes no requests";

/// The socket server's side: sends a control and waits for the engine's word.
#[derive(Debug, Clone)]
pub struct Controls(mpsc::UnboundedSender<Control>);

impl Controls {
    /// A new pair: the server's side and the engine's receiver.
    pub fn channel() -> (Controls, mpsc::UnboundedReceiver<Control>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Controls(tx), rx)
    }

    /// Asks the engine to take `step`'s answer `text`.
    pub async fn answer(&self, step: String, text: String) -> Result<(), String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Answer { step, text, reply })
            .map_err(|_| "the run is ending and takes no answers".to_string())?;
        wait.await
            .unwrap_or_else(|_| Err("the run is ending and takes no answers".into()))
    }

    /// Asks the engine to approve or reject `step`.
    pub async fn decide(
        &self,
        step: String,
        approved: bool,
        by: String,
        reason: Option<String>,
    ) -> Result<(), String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Decide {
                step,
                approved,
                by,
                reason,
                reply,
            })
            .map_err(|_| ENDING.to_string())?;
        wait.await.unwrap_or_else(|_| Err(ENDING.into()))
    }

    /// Asks the engine to pause or unpause the run.
    pub async fn pause(&self, paused: bool, by: String) -> Result<(), String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Pause { paused, by, reply })
            .map_err(|_| ENDING.to_string())?;
        wait.await.unwrap_or_else(|_| Err(ENDING.into()))
    }

    /// Asks the engine to mark a checklist item.
    pub async fn mark(&self, m: MarkRequest) -> Result<(), String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Mark {
                step: m.step,
                item: m.item,
                blocked: m.blocked,
                note: m.note,
                agent: m.agent,
                reply,
            })
            .map_err(|_| ENDING.to_string())?;
        wait.await.unwrap_or_else(|_| Err(ENDING.into()))
    }

    /// Asks the engine to record `question` for `step`; where its answer arrives.
    pub async fn ask(
        &self,
        step: String,
        agent: Option<String>,
        question: String,
    ) -> Result<AnswerWait, String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Ask {
                step,
                agent,
                question,
                reply,
            })
            .map_err(|_| ENDING.to_string())?;
        wait.await.unwrap_or_else(|_| Err(ENDING.into()))
    }

    /// Asks the engine to take `text` as `step`'s result; whether a session is ended.
    pub async fn done(
        &self,
        step: String,
        agent: Option<String>,
        text: String,
    ) -> Result<bool, String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Done {
                step,
                agent,
                text,
                reply,
            })
            .map_err(|_| ENDING.to_string())?;
        wait.await.unwrap_or_else(|_| Err(ENDING.into()))
    }

    /// Asks the engine to resume its parked steps now; the steps it resumed.
    pub async fn unpark(&self) -> Result<Vec<String>, String> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(Control::Unpark { reply })
            .map_err(|_| "the run is ending".to_string())?;
        wait.await
            .unwrap_or_else(|_| Err("the run is ending".into()))
    }
}
