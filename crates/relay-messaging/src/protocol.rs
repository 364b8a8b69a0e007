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
//! → {"op":"state-get","key":"k"}                            ← {"reply":"value","key":"k","entry":{...}}
//! → {"op":"state-set","key":"k","value":"v","ttlMs":5000}   ← {"reply":"written","key":"k","entry":{...}}
//! → {"op":"state-cas","key":"k","expected":"v","value":"w"} ← written, or {"reply":"mismatch","key":"k","current":{...}}
//! → {"op":"state-delete","key":"k"}                         ← {"reply":"deleted","key":"k","existed":true}
//! → {"op":"state-list","prefix":"plan/"}                    ← {"reply":"board","entries":{...}}
//! → {"op":"state-watch","key":"k","rev":3,"waitMs":30000}   ← {"reply":"watched","key":"k","changed":true,"entry":{...}}
//! → {"op":"claim","agent":"a","paths":["src/**"],"ttlMs":60000,"waitMs":10000}
//! ← {"reply":"claimed","claims":[...]} or {"reply":"refused","held":[{"path":"src/**","holder":"b",...}]}
//! → {"op":"release","agent":"a","paths":["src/**"]}         ← {"reply":"released","claims":[...]}
//! → {"op":"ask","step":"plan","question":"which port?","waitMs":60000}
//! ← {"reply":"asked","step":"plan","answer":"8080"}             answer absent: none came in time
//! → {"op":"done","step":"plan","text":"the result"}           ← {"reply":"done","step":"plan","ended":true}
//! ← {"reply":"error","kind":"unknown-recipient","message":"no agent `bobb` ..."}
//! ```
//!
//! `expected` absent in `state-cas` means "only if the key is unset"; `rev` absent in
//! `state-watch` means "from the key as it is now" (0: unset).
//!
//! Every request carries the caller's `token` (see [`crate::access`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use relay_state::{Claim, Entry};

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

impl Authed {
    /// Reads a request line: what deserializing an [`Authed`] gives, and the same
    /// error when it fails. The requests every message makes (`send`, `inbox`) are
    /// read in one pass that copies nothing it need not; the derived form buffers the
    /// whole line twice first (once for the flattened request, once for its tag).
    /// Any other line, or one that pass does not take as it stands, is read the
    /// derived way.
    pub fn from_line(line: &[u8]) -> Result<Authed, serde_json::Error> {
        // Only lines that start as our clients write these two (an object, its op
        // first): any other line costs one prefix comparison more than before.
        let common = [&br#"{"op":"send","#[..], br#"{"op":"inbox","#];
        if common.iter().any(|p| line.starts_with(p))
            && let Ok(fast) = serde_json::from_slice::<Common<'_>>(line)
            && let Some(authed) = fast.authed()
        {
            return Ok(authed);
        }
        serde_json::from_slice(line)
    }
}

/// The requests read in one pass.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum CommonOp {
    Send,
    Inbox,
}

/// The fields of the requests every message makes, borrowed from the line.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Common<'a> {
    op: Option<CommonOp>,
    #[serde(borrow)]
    from: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    to: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    agent: Option<std::borrow::Cow<'a, str>>,
    wait_ms: Option<u64>,
    max: Option<usize>,
    #[serde(borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
}

impl Common<'_> {
    /// The request, when it is a `send` or an `inbox` with all it needs.
    fn authed(self) -> Option<Authed> {
        let request = match self.op? {
            CommonOp::Send => Request::Send {
                from: self.from?.into_owned(),
                to: self.to?.into_owned(),
                text: self.text?.into_owned(),
            },
            CommonOp::Inbox => Request::Inbox {
                agent: self.agent?.into_owned(),
                wait_ms: self.wait_ms,
                max: self.max,
            },
        };
        Some(Authed {
            request,
            token: self.token.map(std::borrow::Cow::into_owned),
        })
    }
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
    /// Read one key of the shared state.
    StateGet {
        /// The key.
        key: String,
    },
    /// Write one key of the shared state.
    StateSet {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Who writes it (an agent always writes as itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// How long it lives (default: the state's `ttlMs`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Write one key only if it holds `expected` (unset, when absent).
    StateCas {
        /// The key.
        key: String,
        /// The value it must hold now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<String>,
        /// The new value.
        value: String,
        /// Who writes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// How long it lives.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Delete one key.
    StateDelete {
        /// The key.
        key: String,
        /// Who deletes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Every entry whose key starts with `prefix`.
    StateList {
        /// The prefix (default: every key).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// Wait for a key to change from revision `rev`.
    StateWatch {
        /// The key.
        key: String,
        /// The revision seen (0: unset); default: the key as it is now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rev: Option<u64>,
        /// How long to wait.
        wait_ms: u64,
    },
    /// Claim paths or globs for `agent`.
    Claim {
        /// Who claims.
        agent: String,
        /// From which step (its label), so the claim ends with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// From which directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dir: Option<String>,
        /// Paths or globs, relative to that directory.
        paths: Vec<String>,
        /// How long the claims last at most.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
        /// How long to wait for claims in the way to end (default: not at all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// Release `agent`'s claims on `paths` (all of them when absent).
    Release {
        /// Whose claims.
        agent: String,
        /// Which.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        paths: Option<Vec<String>>,
    },
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
    /// Resume the run's parked steps now (the run's owner only).
    Unpark,
    /// Mark an item of a running step's checklist done or blocked (the step's agent, or
    /// the run's owner).
    Mark {
        /// The step (its label, as in `AGENT_RELAY_STEP`).
        step: String,
        /// The item's id.
        item: String,
        /// Blocked rather than done.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        blocked: bool,
        /// How it was done, or why it is blocked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Ask a person a question for a running step (its agent only): the same question
    /// `HUMAN_QUESTION:` asks, answered with `agent-relay answer`. The reply waits up to
    /// `wait_ms` for the answer; one that comes later reaches the agent as a message.
    Ask {
        /// The step (its label, as in `AGENT_RELAY_STEP`).
        step: String,
        /// The question.
        question: String,
        /// How long to wait for the answer (default: not at all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// A running step's result (its agent only): it becomes the step's output, and a
    /// terminal session ends as if the agent had printed `/exit`.
    Done {
        /// The step (its label, as in `AGENT_RELAY_STEP`).
        step: String,
        /// The result.
        text: String,
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
        /// The file claims held now.
        #[serde(default)]
        claims: Vec<Claim>,
    },
    /// A board or state entry, if the key is set.
    Value {
        /// The key asked for.
        key: String,
        /// Its entry.
        entry: Option<Entry>,
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
    /// The checklist item was marked.
    Marked {
        /// The step.
        step: String,
        /// The item.
        item: String,
    },
    /// A question was asked; its answer, when one came in time.
    Asked {
        /// The step.
        step: String,
        /// The answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
    },
    /// A step's result was taken.
    Done {
        /// The step.
        step: String,
        /// Whether its terminal session is being ended (a one-shot step ends by itself).
        ended: bool,
    },
    /// These parked steps resume now.
    Unparked {
        /// The steps.
        steps: Vec<String>,
    },
    /// A board entry was written.
    Stored {
        /// The key.
        key: String,
    },
    /// The whole board, or the entries under a prefix.
    Board {
        /// Every entry.
        entries: BTreeMap<String, Entry>,
    },
    /// A state key was written.
    Written {
        /// The key.
        key: String,
        /// The entry written.
        entry: Entry,
    },
    /// A compare-and-set found another value; nothing was written.
    Mismatch {
        /// The key.
        key: String,
        /// What it holds.
        current: Option<Entry>,
    },
    /// A state key was deleted.
    Deleted {
        /// The key.
        key: String,
        /// Whether it was set.
        existed: bool,
    },
    /// A watch ended.
    Watched {
        /// The key.
        key: String,
        /// Whether it changed (else the wait ran out).
        changed: bool,
        /// Its entry now.
        entry: Option<Entry>,
    },
    /// Claims granted.
    Claimed {
        /// The claims.
        claims: Vec<Claim>,
    },
    /// A claim refused: others hold overlapping claims.
    Refused {
        /// The claims in the way.
        held: Vec<Claim>,
    },
    /// Claims released.
    Released {
        /// The claims.
        claims: Vec<Claim>,
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

    #[test]
    fn a_request_line_reads_as_the_derived_form_does() {
        let lines = [
            r#"{"op":"send","from":"a","to":"b","text":"hi \"x\" \u00e9","token":"t1"}"#,
            r#"{"token":"t2","op":"inbox","agent":"b","waitMs":5,"max":3}"#,
            r#"{"op":"inbox","agent":"b"}"#,
            r#"{"op":"inbox","agent":"b","waitMs":null,"text":7}"#,
            r##"{"op":"send","from":"a","to":"#c","text":"x","waitMs":"soon","agent":1}"##,
            r#"{"op":"board-list","token":null,"extra":{"x":[1,2]}}"#,
            r#"{"op":"agents","from":"a"}"#,
            // Refused, by both, with the same error.
            r#"{"op":"fly","token":"t"}"#,
            r#"{"op":"send","from":"a","to":"b","text":"hi","token":5}"#,
            r#"{"op":"send","from":"a","text":"hi"}"#,
            r#"{"op":"send","from":"a","to":"b","text":null}"#,
            r#"{"op":"inbox","agent":"b","waitMs":-1}"#,
            r#"{"op":"inbox","agent":"b","waitMs":1.5}"#,
            r#"{"op":"inbox","agent":"b","op":"inbox"}"#,
            r#"{"op":"inbox","agent":"b"} trailing"#,
            r#"{"from":"a","to":"b","text":"no op"}"#,
            r#"["op","send"]"#,
            r#"["send","a","b","hi",null,null,null,"t"]"#,
            "not json",
            "",
        ];
        for line in lines {
            let derived = serde_json::from_str::<Authed>(line).map_err(|e| e.to_string());
            let read = Authed::from_line(line.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(read, derived, "{line}");
        }
        // The clients write the op first: their lines take the one-pass read.
        for (authed, op) in [
            (Authed::from_line(lines[0].as_bytes()).unwrap(), "send"),
            (Authed::from_line(lines[1].as_bytes()).unwrap(), "inbox"),
        ] {
            let written = serde_json::to_string(&authed).unwrap();
            assert!(
                written.starts_with(&format!(r#"{{"op":"{op}","#)),
                "{written}"
            );
        }
        let sent = Authed::from_line(lines[0].as_bytes()).unwrap();
        assert_eq!(sent.token.as_deref(), Some("t1"));
        assert!(matches!(sent.request, Request::Send { text, .. } if text == "hi \"x\" \u{e9}"));
    }
}
