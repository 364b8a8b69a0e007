//! The socket protocol: one JSON object per line each way. A client writes a request
//! line and reads one reply line; a connection may carry any number of them in turn.
//!
//! ```text
//! → {"op":"send","from":"alice","to":"bob","text":"hi","token":"..."}   to: NAME, #channel or *
//! ← {"reply":"sent","receipts":[{"id":7,"to":"bob","state":"queued"}]}
//! → {"op":"inbox","agent":"bob","waitMs":10000}
//! ← {"reply":"messages","messages":[{"id":7,"from":"alice","to":"bob","target":"bob","text":"hi","tsMs":...}]}
//! → {"op":"agents"}
//! ← {"reply":"agents","agents":[...],"channels":{"main":["alice","bob"]}}
//! → {"op":"board-set","key":"k","value":"v","by":"alice"}   ← {"reply":"stored","key":"k"}
//! → {"op":"board-get","key":"k"}                            ← {"reply":"value","key":"k","entry":{...}}
//! → {"op":"board-list"}                                     ← {"reply":"board","entries":{...}}
//! ← {"reply":"error","kind":"unknown-recipient","message":"no agent `bobb` ..."}
//! ```
//!
//! Every request carries the caller's `token` (see [`crate::access`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::board::BoardEntry;
use crate::model::{AgentInfo, Envelope, Receipt};

/// Longest request or reply line, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// A request with the token that says who asks (see [`crate::access`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authed {
    /// The request.
    #[serde(flatten)]
    pub request: Request,
    /// The caller's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Request {
    /// Send `text` from `from` to `to` (`NAME`, `#channel` or `*`).
    Send {
        /// Sender.
        from: String,
        /// Target, written form.
        to: String,
        /// The text.
        text: String,
    },
    /// Take `agent`'s unread messages, waiting up to `wait_ms` for the first.
    Inbox {
        /// Whose messages.
        agent: String,
        /// How long to wait when there are none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
        /// At most this many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<usize>,
    },
    /// Who is in the run.
    Agents,
    /// Read one board entry.
    BoardGet {
        /// The key.
        key: String,
    },
    /// Write one board entry.
    BoardSet {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Who writes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Read the whole board.
    BoardList,
    /// Answer the question a step's agent asked (the run's owner only).
    Answer {
        /// The step (node label).
        step: String,
        /// The answer.
        text: String,
    },
    /// Approve or reject a step waiting for approval (the run's owner only).
    Decide {
        /// The workflow step.
        step: String,
        /// Whether it may run.
        approved: bool,
        /// Who decides (a user name).
        by: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Pause the run (no new step starts) or unpause it (the run's owner only).
    Pause {
        /// `true` to pause, `false` to unpause.
        paused: bool,
        /// Who asks.
        by: String,
    },
}

/// What kind of error a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// No agent or channel by the name given as recipient.
    UnknownRecipient,
    /// No agent by the name given as reader.
    UnknownAgent,
    /// The request is malformed or its values are not acceptable.
    BadRequest,
    /// The caller has no valid token, or asked to act as someone else.
    Unauthorized,
    /// The run could not do it.
    Failed,
}

/// The reply to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "reply",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Reply {
    /// The message was accepted; one receipt per recipient.
    Sent {
        /// Per recipient: queued, or failed and why.
        receipts: Vec<Receipt>,
    },
    /// Messages taken from the inbox (now read).
    Messages {
        /// Oldest first.
        messages: Vec<Envelope>,
    },
    /// The agents and channels of the run.
    Agents {
        /// Every agent.
        agents: Vec<AgentInfo>,
        /// Every channel with its members.
        channels: BTreeMap<String, Vec<String>>,
    },
    /// A board entry, if the key is set.
    Value {
        /// The key asked for.
        key: String,
        /// Its entry.
        entry: Option<BoardEntry>,
    },
    /// The step took the answer.
    Answered {
        /// The step.
        step: String,
    },
    /// The step's approval was decided.
    Decided {
        /// The step.
        step: String,
        /// Whether it may run.
        approved: bool,
    },
    /// The run is paused, or not.
    Paused {
        /// Whether it is paused now.
        paused: bool,
    },
    /// A board entry was written.
    Stored {
        /// The key.
        key: String,
    },
    /// The whole board.
    Board {
        /// Every entry.
        entries: BTreeMap<String, BoardEntry>,
    },
    /// The request failed.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// A message for a person.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_an_op_tag_and_camel_case_fields() {
        let r: Request = serde_json::from_str(r#"{"op":"inbox","agent":"b","waitMs":5}"#).unwrap();
        assert_eq!(
            r,
            Request::Inbox {
                agent: "b".into(),
                wait_ms: Some(5),
                max: None
            }
        );
        let line = serde_json::to_string(&Request::BoardList).unwrap();
        assert_eq!(line, r#"{"op":"board-list"}"#);
        let e = Reply::Error {
            kind: ErrorKind::UnknownRecipient,
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"reply":"error","kind":"unknown-recipient","message":"x"}"#
        );
    }
}
