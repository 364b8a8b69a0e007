//! Workers on other machines, over NATS JetStream.
//!
//! ```text
//!  coordinator (agent-relay run --nats URL)                  worker (agent-relay worker --nats URL)
//!  engine ─► NatsLauncher (a Launcher) ── Offer ──► JetStream work queue per need ──► puller
//!              │ lease book (lease.rs, pure)  ◄── Claim / Upload (events, outcome, renewals) ──┤
//!              │ down pump ── Down (messages, cancel) ───────────────────────────────────────► │
//!              │ pipe ◄── run.<id>.pipe.<conn> ◄── bridge (worker's relay.sock) ◄── agents      │
//!  messaging: Router ─► NatsTransport ─► JetStream mailbox per agent (durable consumer)        │
//!                                                            LocalLauncher runs the attempt ◄──┘
//! ```
//!
//! Modules: `names` (streams, consumers, subjects), `caps` (needs and offers, one queue
//! per need), `wire` (the JSON spoken), `lease` (leases and fencing, pure), `outbox`
//! (numbered, acknowledged items, pure), `paths` (coordinator paths on a worker, pure),
//! `connect` (URLs, credentials, TLS), `dispatch` (the coordinator's launcher), `worker`,
//! `bridge` (agents' socket relayed to the coordinator), `pipe` (the coordinator's end of
//! it: a socket connection per agent connection, requests pipelined), `transport` (messaging's
//! `Transport` over JetStream), `copies` (which stored batch holds which envelope, pure), `status` (listing workers), `streams` (streams made once when several processes start
//! together).

pub mod bridge;
pub mod caps;
pub mod connect;
pub mod copies;
pub mod dispatch;
pub mod lease;
pub mod names;
pub mod outbox;
pub mod paths;
pub mod pipe;
pub mod status;
pub mod streams;
pub mod transport;
pub mod wire;
pub mod worker;

use std::time::Duration;

/// The NATS client this crate speaks through (its types appear in this crate's API).
pub use async_nats;
pub use connect::{NatsError, NatsUrl};
pub use dispatch::{DISPATCH_LOG, DispatchOptions, NatsLauncher, RunDispatch};
pub use worker::{WorkerOptions, serve};

/// The environment variable naming the NATS server a run dispatches to (as `--nats`).
pub const NATS_ENV: &str = "AGENT_RELAY_NATS";

/// The environment variable every process a worker starts carries: the worker's name.
pub const WORKER_ENV: &str = "AGENT_RELAY_WORKER";

/// The environment variable every process a worker starts carries: the worker's working
/// directory. With the name, it says which worker a leftover process belongs to.
pub const WORKER_HOME_ENV: &str = "AGENT_RELAY_WORKER_HOME";

/// Timing shared by coordinators and workers; read from the environment so tests (and
/// impatient people) can make it short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Leases and re-dispatch (the coordinator's; workers follow what it grants).
    pub lease: lease::LeaseConfig,
    /// JetStream's acknowledgement wait on the work queues (redelivery of a taken offer
    /// whose worker went quiet); workers send in-progress acks well within it.
    pub ack_wait: Duration,
    /// How often a worker looks for new queues.
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: lease::LeaseConfig::default(),
            ack_wait: Duration::from_secs(30),
            poll: Duration::from_secs(2),
        }
    }
}

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

impl Timing {
    /// The defaults, with `AGENT_RELAY_NATS_LEASE_MS`, `_GRACE_MS`, `_ACK_WAIT_MS`,
    /// `_QUEUE_TIMEOUT_MS`, `_POLL_MS` and `_MAX_ROUNDS` applied.
    pub fn from_env() -> Timing {
        let mut t = Timing::default();
        if let Some(d) = env_ms("AGENT_RELAY_NATS_LEASE_MS") {
            t.lease.ttl = d.max(Duration::from_millis(100));
        }
        if let Some(d) = env_ms("AGENT_RELAY_NATS_GRACE_MS") {
            t.lease.grace = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_NATS_ACK_WAIT_MS") {
            t.ack_wait = d.max(Duration::from_millis(300));
        }
        if let Some(d) = env_ms("AGENT_RELAY_NATS_QUEUE_TIMEOUT_MS") {
            t.lease.queue_timeout = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_NATS_POLL_MS") {
            t.poll = d.max(Duration::from_millis(50));
        }
        if let Some(n) = std::env::var("AGENT_RELAY_NATS_MAX_ROUNDS")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            t.lease.max_rounds = n.max(1);
        }
        t
    }
}
