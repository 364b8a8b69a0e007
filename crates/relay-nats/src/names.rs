//! Names on the NATS server: streams, consumers and subjects, and how the project's own
//! names (runs, agents, workers) become subject tokens. One place, so the coordinator and
//! the workers cannot disagree.

/// The stream of attempt offers: a work queue (an offer is removed once a worker took it
/// to its end), kept in files so it outlives a server restart.
pub const WORK_STREAM: &str = "RELAY_WORK";
/// Subjects of [`WORK_STREAM`].
pub const WORK_SUBJECTS: &str = "relay.work.>";
/// The stream of agents' mailboxes (one subject, and one consumer, per agent of a run).
pub const MAIL_STREAM: &str = "RELAY_MAIL";
/// Subjects of [`MAIL_STREAM`].
pub const MAIL_SUBJECTS: &str = "relay.mail.>";
/// Every worker answers a request here with its status.
pub const STATUS: &str = "relay.workers.status";
/// Announced when a coordinator opens a new queue, so workers look for it at once.
pub const QUEUES_CHANGED: &str = "relay.workers.queues";

/// `name` as one subject token (and a valid consumer name): ASCII letters, digits, `-`
/// and `_` stay, every other byte becomes `=XX`. Injective, so two names never share a
/// mailbox.
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("=00");
    }
    out
}

/// The subject offers of queue `queue` are published on.
pub fn work_subject(queue: &str) -> String {
    format!("relay.work.{queue}")
}

/// The queue only worker `worker` takes from (checks that must run where a step ran).
pub fn worker_queue(worker: &str) -> String {
    format!("w-{}", token(worker))
}

/// Requests of workers to the coordinator of run `run`: claims, uploads (events, the
/// outcome, lease renewals) and the agents' socket requests.
pub fn run_subject(run: &str, what: &str) -> String {
    format!("relay.run.{}.{what}", token(run))
}

/// Requests of the coordinator to worker `worker`: messages for its sessions, cancels.
pub fn down_subject(worker: &str) -> String {
    format!("relay.worker.{}.down", token(worker))
}

/// The mailbox subject of `agent` in run `run`.
pub fn mail_subject(run: &str, agent: &str) -> String {
    format!("relay.mail.{}.{}", token(run), token(agent))
}

/// The durable consumer reading `agent`'s mailbox in run `run`.
pub fn mail_consumer(run: &str, agent: &str) -> String {
    format!("m-{}-{}", token(run), token(agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_plain_names_and_escape_the_rest() {
        assert_eq!(token("writer-1_a"), "writer-1_a");
        assert_eq!(token("a.b"), "a=2Eb");
        assert_eq!(token("a b*>"), "a=20b=2A=3E");
        assert_eq!(token(""), "=00");
        // `=` itself is escaped, so an escaped name cannot equal a plain one.
        assert_ne!(token("a=2Eb"), token("a.b"));
    }
}
