//! What a person can do to a live run from a page: cancel it, pause and unpause it,
//! approve or reject a step waiting for approval, answer an agent's question, send an
//! agent a message. Each goes the way the CLI's `cancel`, `pause`, `approve`, `answer`
//! and `send` go: the cancel request beside the run's lock, and the run's socket with its
//! owner token (`relay.token` in the run directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_engine::runs::{CancelOutcome, Standing};
use relay_messaging::client::{Client, ClientError};
use relay_messaging::protocol::{ErrorKind, Reply, Request};
use relay_messaging::{MessageState, socket_path};

/// Why an action was not carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// The request itself is not acceptable (empty text, unknown step or agent).
    #[error("{0}")]
    Invalid(String),
    /// The run does not run any more (or its socket cannot be reached).
    #[error("{0}")]
    NotLive(String),
    /// The run refused or failed.
    #[error("{0}")]
    Failed(String),
}

/// Cancels the run in `dir`; the message says what happened.
pub async fn cancel(dir: &Path, grace: Duration) -> Result<String, ActionError> {
    let outcome = relay_engine::runs::cancel(dir, grace)
        .await
        .map_err(|e| ActionError::Failed(format!("cannot cancel: {e}")))?;
    Ok(match outcome {
        CancelOutcome::Stopped(pid) => {
            format!("cancelled: the coordinator (pid {pid}) ended its agents and stopped")
        }
        CancelOutcome::Requested(pid) => {
            format!("cancel requested: the coordinator (pid {pid}) is still finishing")
        }
        CancelOutcome::Marked => "no coordinator was running; the run is marked cancelled".into(),
        CancelOutcome::AlreadyFinished(s) => {
            return Err(ActionError::NotLive(format!(
                "the run already finished ({}); nothing to cancel",
                s.as_str()
            )));
        }
    })
}

fn run_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One request to the run's socket with the owner's token, off the async threads.
async fn ask(dir: PathBuf, req: Request) -> Result<Reply, ActionError> {
    if relay_engine::runs::run_info(&dir).status != Standing::Running {
        return Err(ActionError::NotLive("the run is not running".into()));
    }
    let reply = tokio::task::spawn_blocking(move || {
        let token = relay_messaging::access::client_token(Some(&dir));
        Client::connect(&socket_path(&dir, &run_id(&dir)))
            .map(|c| c.with_token(token))
            .and_then(|mut c| c.request(&req))
    })
    .await
    .map_err(|e| ActionError::Failed(format!("the request did not finish: {e}")))?
    .map_err(|e| match e {
        ClientError::Unreachable { .. } => ActionError::NotLive(e.to_string()),
        e => ActionError::Failed(e.to_string()),
    })?;
    match reply {
        Reply::Error { kind, message } => Err(match kind {
            ErrorKind::UnknownRecipient
            | ErrorKind::UnknownAgent
            | ErrorKind::BadRequest
            | ErrorKind::Unauthorized => ActionError::Invalid(message),
            ErrorKind::Failed => ActionError::Failed(message),
        }),
        r => Ok(r),
    }
}

fn non_empty(what: &str, text: &str) -> Result<(), ActionError> {
    if text.trim().is_empty() {
        Err(ActionError::Invalid(format!("the {what} is empty")))
    } else {
        Ok(())
    }
}

/// Answers the question `step`'s agent asked.
pub async fn answer(dir: &Path, step: String, text: String) -> Result<String, ActionError> {
    non_empty("answer", &text)?;
    match ask(dir.to_path_buf(), Request::Answer { step, text }).await? {
        Reply::Answered { step } => Ok(format!("answered: step `{step}` goes on with it")),
        r => Err(ActionError::Failed(format!(
            "unexpected answer from the run: {r:?}"
        ))),
    }
}

/// Approves (`approved`) or rejects the step `step` waiting for approval, as `by`.
pub async fn decide(
    dir: &Path,
    step: String,
    approved: bool,
    by: String,
    reason: Option<String>,
) -> Result<String, ActionError> {
    if step.trim().is_empty() {
        return Err(ActionError::Invalid("say which step".into()));
    }
    let reason = reason.filter(|r| !r.trim().is_empty());
    let req = Request::Decide {
        step,
        approved,
        by,
        reason,
    };
    match ask(dir.to_path_buf(), req).await? {
        Reply::Decided {
            step,
            approved: true,
        } => Ok(format!("approved: step `{step}` starts")),
        Reply::Decided {
            step,
            approved: false,
        } => Ok(format!("rejected: step `{step}` fails and does not run")),
        r => Err(ActionError::Failed(format!(
            "unexpected answer from the run: {r:?}"
        ))),
    }
}

/// Pauses (no new step starts; running ones go on) or unpauses the run, as `by`.
pub async fn pause(dir: &Path, paused: bool, by: String) -> Result<String, ActionError> {
    match ask(dir.to_path_buf(), Request::Pause { paused, by }).await? {
        Reply::Paused { paused: true } => {
            Ok("paused: no new step starts until it is unpaused; running ones go on".into())
        }
        Reply::Paused { paused: false } => Ok("unpaused: steps start again".into()),
        r => Err(ActionError::Failed(format!(
            "unexpected answer from the run: {r:?}"
        ))),
    }
}

/// Sends `text` to `to` (an agent, `#channel` or `*`) from `user`.
pub async fn send(dir: &Path, to: String, text: String) -> Result<String, ActionError> {
    non_empty("message", &text)?;
    let target = to.trim();
    if target.is_empty() {
        return Err(ActionError::Invalid("say whom the message is for".into()));
    }
    let req = Request::Send {
        from: "user".into(),
        to: target.to_owned(),
        text,
    };
    match ask(dir.to_path_buf(), req).await? {
        Reply::Sent { receipts } => {
            let failed: Vec<String> = receipts
                .iter()
                .filter(|r| r.state == MessageState::Failed)
                .map(|r| format!("{}: {}", r.to, r.reason.as_deref().unwrap_or("failed")))
                .collect();
            if !receipts.is_empty() && failed.len() == receipts.len() {
                return Err(ActionError::Failed(failed.join("; ")));
            }
            let ids: Vec<String> = receipts
                .iter()
                .filter(|r| r.state != MessageState::Failed)
                .map(|r| format!("{} to {}", r.id, r.to))
                .collect();
            Ok(format!("sent {}", ids.join(", ")))
        }
        r => Err(ActionError::Failed(format!(
            "unexpected answer from the run: {r:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn empty_texts_are_refused_before_anything_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            answer(dir.path(), "a".into(), "  ".into()).await,
            Err(ActionError::Invalid("the answer is empty".into()))
        );
        assert_eq!(
            send(dir.path(), " ".into(), "hi".into()).await,
            Err(ActionError::Invalid("say whom the message is for".into()))
        );
    }

    #[tokio::test]
    async fn a_run_that_is_not_live_takes_no_decision_and_no_pause() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        let e = decide(dir.path(), "deploy".into(), true, "ann".into(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ActionError::NotLive(_)), "{e:?}");
        let e = pause(dir.path(), true, "ann".into()).await.unwrap_err();
        assert!(matches!(e, ActionError::NotLive(_)), "{e:?}");
        assert_eq!(
            decide(dir.path(), " ".into(), true, "ann".into(), None).await,
            Err(ActionError::Invalid("say which step".into()))
        );
    }

    #[tokio::test]
    async fn a_run_that_is_not_live_takes_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), "").unwrap();
        let e = answer(dir.path(), "a".into(), "yes".into())
            .await
            .unwrap_err();
        assert!(matches!(e, ActionError::NotLive(_)), "{e:?}");
    }
}
