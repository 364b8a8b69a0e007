//! The vocabulary of agent messaging: who takes part, how a message is addressed, the
//! states a message goes through, and the record of each state change.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A message's id, unique within a run; ids grow in the order messages were accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// How a message was addressed: one agent, a channel, or everyone else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// One agent, by name.
    Agent(String),
    /// Every member of a channel but the sender.
    Channel(String),
    /// Every agent of the run but the sender.
    Broadcast,
}

impl Target {
    /// Reads the written form: `NAME`, `#channel` or `*`.
    pub fn parse(s: &str) -> Option<Target> {
        let s = s.trim();
        if s == "*" {
            return Some(Target::Broadcast);
        }
        match s.strip_prefix('#') {
            Some(ch) if is_name(ch) => Some(Target::Channel(ch.to_owned())),
            Some(_) => None,
            None if is_name(s) => Some(Target::Agent(s.to_owned())),
            None => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Agent(a) => f.write_str(a),
            Target::Channel(c) => write!(f, "#{c}"),
            Target::Broadcast => f.write_str("*"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an agent, #channel or *: {s}")))
    }
}

/// Whether `s` can name an agent or a channel: letters, digits, `-`, `_`, `.`. The rule
/// a workflow file's agent names are held to when it is validated.
pub fn is_name(s: &str) -> bool {
    relay_spec::validate::is_addressable_name(s)
}

/// Where a message stands. `Queued` is the only state that changes again; the others
/// are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Accepted, waiting for its recipient.
    Queued,
    /// Handed to the recipient: typed into its terminal and confirmed on screen, or put
    /// in its task.
    Delivered,
    /// The recipient took it with `agent-relay inbox`.
    Read,
    /// It will never reach the recipient; the record says why.
    Failed,
}

impl MessageState {
    /// Whether nothing further happens to a message in this state.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageState::Queued)
    }

    /// The state as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Delivered => "delivered",
            MessageState::Read => "read",
            MessageState::Failed => "failed",
        }
    }
}

/// Where an agent of the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Not running now, but a step of it may still run: messages wait for it.
    Pending,
    /// One of its steps runs.
    Running,
    /// None of its steps will run again: messages to it fail.
    Ended,
}

/// An agent as the router knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    /// Its name.
    pub name: String,
    /// What it is for, if the workflow says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether it runs in a terminal (messages are typed in) or one-shot (messages go
    /// into its task or are read with `inbox`).
    pub interactive: bool,
    /// The channels it is on.
    pub channels: Vec<String>,
    /// Where it stands.
    pub state: AgentState,
}

/// One message for one recipient: everything needed to deliver it, on this machine or
/// another. A channel or broadcast message becomes one envelope per recipient, each with
/// its own id and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Its id.
    pub id: MessageId,
    /// Who sent it.
    pub from: String,
    /// Who gets it.
    pub to: String,
    /// How it was addressed.
    pub target: Target,
    /// The text, already sanitized.
    pub text: String,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
}

/// One state change of one message: a line of `messages.jsonl`.
///
/// The first record of a message (state `queued`, or `failed` when it was refused at
/// once) carries its text; later records carry only what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the change happened, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The message.
    pub id: MessageId,
    /// The new state.
    pub state: MessageState,
    /// Sender.
    pub from: String,
    /// Recipient (for a refused channel or broadcast with nobody to get it, the target).
    pub to: String,
    /// How it was addressed (first record only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The text (first record only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// The first record of `env`.
    pub fn first(env: &Envelope, state: MessageState, reason: Option<String>) -> Record {
        Record {
            ts_ms: env.ts_ms,
            id: env.id,
            state,
            from: env.from.clone(),
            to: env.to.clone(),
            target: Some(env.target.clone()),
            text: Some(env.text.clone()),
            reason,
        }
    }

    /// A later change of `env`.
    pub fn change(env: &Envelope, state: MessageState, reason: Option<String>) -> Record {
        Record {
            ts_ms: now_ms(),
            id: env.id,
            state,
            from: env.from.clone(),
            to: env.to.clone(),
            target: None,
            text: None,
            reason,
        }
    }
}

/// What happened to one recipient's copy when a message was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The copy's id.
    pub id: MessageId,
    /// The recipient.
    pub to: String,
    /// `queued`, or `failed` with the reason.
    pub state: MessageState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_and_write_the_same_forms() {
        for s in ["bob", "#reviews", "*", "agent-2.b_x"] {
            assert_eq!(Target::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Target::parse("#"), None);
        assert_eq!(Target::parse("a b"), None);
        assert_eq!(Target::parse("NAME`"), None);
        assert_eq!(Target::parse(""), None);
    }

    #[test]
    fn records_are_camel_case_json_lines() {
        let env = Envelope {
            id: MessageId(3),
            from: "a".into(),
            to: "b".into(),
            target: Target::Channel("x".into()),
            text: "hi".into(),
            ts_ms: 5,
        };
        let v = serde_json::to_value(Record::first(&env, MessageState::Queued, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"tsMs": 5, "id": 3, "state": "queued", "from": "a", "to": "b",
                               "target": "#x", "text": "hi"})
        );
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back.target, Some(Target::Channel("x".into())));
    }
}
