//! What coordinators and workers say to each other, as JSON. Everything a worker sends
//! about an attempt carries the attempt's id and the fencing token of its lease, so the
//! coordinator can refuse whatever comes from a worker that no longer holds it.
//!
//! ```text
//!  coordinator ── Offer (JetStream work queue) ──────────────► worker
//!  worker ──────── Claim ─► run.<id>.claim ──► Granted{token} | Wait | Refused
//!  worker ──────── Upload{seq, items} ─► run.<id>.up ──► Ack{next_seq} | Fenced
//!                  (events, outcome parts; an empty upload renews the lease)
//!  coordinator ── Down{seq, items} ─► worker.<id>.down ──► DownAck | Unknown
//!                  (messages for the session, cancel)
//!  agent on worker ── socket lines ─► run.<id>.pipe.<conn> ──► the coordinator's socket
//!                     (one line, or sends written back to back: newline separated; several
//!                     requests of a connection in flight) ─► the reply lines, in order
//! ```

use std::path::PathBuf;

use relay_broker::process::{ProcessError, ProcessOutcome, ProcessSpec};
use relay_broker::session::{Inbound, SessionError, SessionEvent, SessionOutcome, SessionSpec};
use serde::{Deserialize, Serialize};

/// One attempt handed to a worker: `<run>/<n>` and unique within its coordinator.
pub type AttemptId = String;

/// The fencing token of a lease: grants of one attempt are numbered 1, 2, ...; only the
/// holder of the latest is listened to.
pub type Token = u64;

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Work {
    /// A one-shot process (agent, command or check).
    Process(ProcessSpec),
    /// An interactive session.
    Session(SessionSpec),
}

/// Where the coordinator keeps things, so a worker can put them in its own places.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Places {
    /// The coordinator's working directory (the project).
    pub root: PathBuf,
    /// The run's directory on the coordinator.
    pub run_dir: PathBuf,
}

/// A file of the coordinator's the worker needs beside the work (a step's output, for a
/// check that reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Carried {
    /// The path on the coordinator.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// An attempt offered on a work queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    /// The run.
    pub run: String,
    /// The coordinator instance: a worker's claims go to whoever coordinates the run now,
    /// and only the instance that made the offer grants it.
    pub epoch: u64,
    /// The attempt.
    pub attempt: AttemptId,
    /// Which dispatch of the attempt this is (a re-dispatch offers it again, one higher).
    pub round: u32,
    /// The step's label, for status listings.
    pub step: String,
    /// What to run.
    pub work: Work,
    /// Where the coordinator keeps things.
    pub places: Places,
    /// Files to put in place first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<Carried>,
}

/// A worker asks for the lease of an offered attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// The coordinator instance the offer came from.
    pub epoch: u64,
    /// The attempt.
    pub attempt: AttemptId,
    /// The round of the offer the worker took.
    pub round: u32,
    /// The worker.
    pub worker: String,
}

/// The coordinator's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "answer")]
pub enum ClaimReply {
    /// Yours: run it, renew within `lease_ms`, report under `token`.
    Granted {
        /// The fencing token.
        token: Token,
        /// How long the lease lasts without a renewal.
        lease_ms: u64,
        /// How long after a lapse the coordinator waits before giving the attempt away.
        grace_ms: u64,
    },
    /// Someone else holds it for now: put the offer back for `after_ms`.
    Wait {
        /// How long to wait.
        after_ms: u64,
    },
    /// Never yours: drop the offer for good.
    Refused {
        /// Why.
        reason: String,
    },
}

/// Something a worker reports about an attempt, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpItem {
    /// The process (group) started.
    Spawned(u32),
    /// A session event.
    Session(SessionEvent),
    /// A piece of the serialised outcome (outcomes can be larger than one message).
    OutcomePart(String),
    /// The last piece: the outcome is complete.
    OutcomeEnd,
    /// Text for a log file of the step on the coordinator (stderr, a transcript).
    Log {
        /// The file on the coordinator.
        path: PathBuf,
        /// What to append.
        text: String,
    },
}

/// The outcome of an attempt, whichever kind it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// How a process ended.
    Process(Result<ProcessOutcome, ProcessError>),
    /// How a session ended.
    Session(Result<SessionOutcome, SessionError>),
}

/// A worker's report: items `seq..seq+items.len()` of an attempt. Empty, it renews the
/// lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    /// The coordinator instance.
    pub epoch: u64,
    /// The attempt.
    pub attempt: AttemptId,
    /// The worker's fencing token.
    pub token: Token,
    /// The worker.
    pub worker: String,
    /// Sequence number of the first item.
    pub seq: u64,
    /// The items.
    pub items: Vec<UpItem>,
}

/// The coordinator's answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "answer")]
pub enum UploadReply {
    /// Items before `next_seq` are in; the lease runs another `lease_ms`.
    Ack {
        /// The next item expected.
        next_seq: u64,
        /// The lease's new length.
        lease_ms: u64,
    },
    /// The worker no longer holds the attempt: end it, report nothing more.
    Fenced {
        /// Why.
        reason: String,
    },
}

/// Something the coordinator tells a worker about an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DownItem {
    /// A message to type into the session.
    Inbound(Inbound),
    /// End the attempt.
    Cancel,
}

/// The coordinator's request to a worker: items `seq..` for an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Down {
    /// The attempt.
    pub attempt: AttemptId,
    /// The holder's token.
    pub token: Token,
    /// Sequence number of the first item.
    pub seq: u64,
    /// The items.
    pub items: Vec<DownItem>,
}

/// A worker's answer to a [`Down`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "answer")]
pub enum DownReply {
    /// Items before `next_seq` are in.
    Ack {
        /// The next item expected.
        next_seq: u64,
    },
    /// The worker runs no such attempt under that token.
    Unknown,
}

/// A fence: the coordinator of `run` is now instance `epoch`; attempts of other
/// instances are to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fence {
    /// The run.
    pub run: String,
    /// The coordinator instance now in charge.
    pub epoch: u64,
}

/// One attempt a worker is running, as its status says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    /// The run.
    pub run: String,
    /// The attempt.
    pub attempt: AttemptId,
    /// The step's label.
    pub step: String,
    /// The lease's fencing token.
    pub token: Token,
    /// Milliseconds since it started.
    pub age_ms: u64,
    /// Milliseconds of lease left, as last renewed (0: lapsed).
    pub lease_left_ms: u64,
}

/// A worker's answer to a status request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Its name (its identity: one worker per name).
    pub name: String,
    /// This process of it (a restarted worker has a new one).
    pub instance: String,
    /// Its host name.
    pub host: String,
    /// Its pid.
    pub pid: u32,
    /// Attempts it runs at once.
    pub capacity: u32,
    /// Slots free now.
    pub free: u32,
    /// What it offers.
    pub offer: crate::caps::Offer,
    /// What it runs now.
    pub running: Vec<Running>,
}

/// JSON bytes of `value`.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our wire types have no maps with non-string keys and no fallible serialisers.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `value` read from JSON bytes.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// The reply line of the run's socket protocol for a request that failed: `message`.
pub(crate) fn error_line(message: &str) -> Vec<u8> {
    encode(&serde_json::json!({"reply": "error", "kind": "failed", "message": message}))
}

/// `line`, `count` times, newline separated (one reply line per request line).
pub(crate) fn repeat(line: &[u8], count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((line.len() + 1) * count);
    for i in 0..count {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_back() {
        let g = ClaimReply::Granted {
            token: 3,
            lease_ms: 1000,
            grace_ms: 500,
        };
        assert_eq!(decode::<ClaimReply>(&encode(&g)), Ok(g));
        let f = UploadReply::Fenced { reason: "x".into() };
        assert_eq!(decode::<UploadReply>(&encode(&f)), Ok(f));
        assert!(decode::<ClaimReply>(b"{not json").is_err());
    }
}
