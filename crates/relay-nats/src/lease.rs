//! Leases and fencing, sans-I/O: the coordinator's book of the attempts it handed to
//! workers ([`Leases`]) and a worker's view of one lease it holds ([`Tenure`]). Inputs
//! (offers, claims, uploads, the clock) go in; answers and changes come out; nothing
//! here touches the network, so every rule is tested with a made-up clock.
//!
//! The rules:
//! - An offered attempt is granted to the first worker that claims the current round;
//!   each grant gets the next fencing token.
//! - The holder renews its lease with every upload (an empty one will do). A lease not
//!   renewed within its length lapses; the holder may still come back during the grace
//!   period. After it the attempt is offered again (one round higher) or, once
//!   `max_rounds` are used or the attempt was cancelled, failed with the reason. Either
//!   way the old token is dead: nothing from it is accepted again, so two workers never
//!   both run an attempt to a result that counts.
//! - Uploads carry sequence numbers; items already taken are skipped, so a resent batch
//!   is taken once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::wire::{AttemptId, ClaimReply, Token, UploadReply};

/// Lease timing and re-dispatch policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// A lease's length without renewal.
    pub ttl: Duration,
    /// How long a lapsed lease may still be renewed by its holder.
    pub grace: Duration,
    /// Dispatches of one attempt before a lapse fails it instead.
    pub max_rounds: u32,
    /// How long an offer may wait for a worker before the attempt fails.
    pub queue_timeout: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(10),
            grace: Duration::from_secs(20),
            max_rounds: 3,
            queue_timeout: Duration::from_secs(600),
        }
    }
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The worker.
    pub worker: String,
    /// Its token.
    pub token: Token,
    /// When the lease ends unless renewed.
    pub until: Instant,
    /// The next upload item expected.
    pub next_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// On a queue, waiting for a worker.
    Queued { round: u32, since: Instant },
    /// Held by a worker.
    Held { round: u32, holder: Holder },
    /// The outcome is in, or the attempt failed: nothing more is taken.
    Done { why: String },
}

#[derive(Debug, Clone)]
struct Entry {
    phase: Phase,
    /// Tokens given out so far.
    grants: Token,
    cancelled: bool,
    /// The token whose lapse was reported (once per lapse).
    told_lapse: Option<Token>,
}

/// What the coordinator must do after the clock moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The holder's lease lapsed; its grace period begins.
    Lapsed {
        /// The attempt.
        attempt: AttemptId,
        /// Its holder.
        worker: String,
    },
    /// Offer the attempt again (the old holder's token is dead).
    Redispatch {
        /// The attempt.
        attempt: AttemptId,
        /// The new round.
        round: u32,
        /// Why.
        reason: String,
    },
    /// The attempt failed.
    Failed {
        /// The attempt.
        attempt: AttemptId,
        /// Why.
        reason: String,
    },
}

/// What cancelling an attempt takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It had not started: it is over now.
    WasQueued,
    /// Tell its holder to end it; its outcome follows.
    TellHolder {
        /// The worker.
        worker: String,
        /// Its token.
        token: Token,
    },
    /// Nothing to do (unknown, or over already).
    Nothing,
}

/// What the coordinator takes from an accepted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Take `items[skip..]`; answer with `reply`.
    Items {
        /// Items already taken from an earlier send of the same batch.
        skip: usize,
        /// The answer.
        reply: UploadReply,
    },
    /// Take nothing; answer with `reply` (a fence).
    Refused {
        /// The answer.
        reply: UploadReply,
    },
}

/// An upload as the book judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report<'a> {
    /// Who sends it.
    pub worker: &'a str,
    /// Under which token.
    pub token: Token,
    /// Sequence number of its first item.
    pub seq: u64,
    /// How many items.
    pub count: usize,
    /// Whether they end with the outcome.
    pub last: bool,
}

/// The coordinator's leases, one per attempt on a worker.
#[derive(Debug)]
pub struct Leases {
    cfg: LeaseConfig,
    attempts: BTreeMap<AttemptId, Entry>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Leases {
    /// An empty book.
    pub fn new(cfg: LeaseConfig) -> Leases {
        Leases {
            cfg,
            attempts: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// `attempt` is offered for the first time (round 1).
    pub fn offer(&mut self, attempt: &str, now: Instant) {
        self.attempts.insert(
            attempt.to_owned(),
            Entry {
                phase: Phase::Queued {
                    round: 1,
                    since: now,
                },
                grants: 0,
                cancelled: false,
                told_lapse: None,
            },
        );
    }

    /// `worker` claims round `round` of `attempt`.
    pub fn claim(&mut self, attempt: &str, round: u32, worker: &str, now: Instant) -> ClaimReply {
        let cfg = self.cfg.clone();
        let Some(e) = self.attempts.get_mut(attempt) else {
            return ClaimReply::Refused {
                reason: "the coordinator knows no such attempt".into(),
            };
        };
        match &e.phase {
            Phase::Done { why } => ClaimReply::Refused {
                reason: format!("the attempt is over ({why})"),
            },
            Phase::Queued { round: r, .. } if *r != round => ClaimReply::Refused {
                reason: format!("round {round} was replaced by round {r}"),
            },
            Phase::Queued { .. } => {
                e.grants += 1;
                e.phase = Phase::Held {
                    round,
                    holder: Holder {
                        worker: worker.to_owned(),
                        token: e.grants,
                        until: now + cfg.ttl,
                        next_seq: 0,
                    },
                };
                ClaimReply::Granted {
                    token: e.grants,
                    lease_ms: ms(cfg.ttl),
                    grace_ms: ms(cfg.grace),
                }
            }
            Phase::Held { round: r, .. } if *r != round => ClaimReply::Refused {
                reason: format!("round {round} was replaced by round {r}"),
            },
            Phase::Held { holder, .. } if holder.worker == worker => ClaimReply::Refused {
                // The same worker took the offer again (it came back after a restart):
                // whatever it ran before is gone, and its lease decides what happens.
                reason: "this worker holds it already".into(),
            },
            Phase::Held { holder, .. } => {
                // A redelivery of a held offer: the holder may still be alive. Ask again
                // once its lease and grace would have run out.
                let end = holder.until + cfg.grace;
                ClaimReply::Wait {
                    after_ms: ms(end.saturating_duration_since(now)).max(100),
                }
            }
        }
    }

    /// A worker uploads items of `attempt` (see [`Report`]).
    pub fn upload(&mut self, attempt: &str, r: Report<'_>, now: Instant) -> Taken {
        let Report {
            worker,
            token,
            seq,
            count,
            last,
        } = r;
        let cfg = self.cfg.clone();
        let fenced = |reason: String| Taken::Refused {
            reply: UploadReply::Fenced { reason },
        };
        let Some(e) = self.attempts.get_mut(attempt) else {
            return fenced("the coordinator knows no such attempt".into());
        };
        let holder = match &mut e.phase {
            Phase::Held { holder, .. } if holder.token == token && holder.worker == worker => {
                holder
            }
            Phase::Held { holder, .. } => {
                return fenced(format!(
                    "the lease is held by {} under token {}",
                    holder.worker, holder.token
                ));
            }
            Phase::Queued { round, .. } => {
                return fenced(format!(
                    "the lease lapsed; the attempt is offered again (round {round})"
                ));
            }
            Phase::Done { why } => return fenced(format!("the attempt is over ({why})")),
        };
        holder.until = now + cfg.ttl;
        if seq > holder.next_seq {
            // A gap: take nothing; the worker resends from what we expect.
            let next_seq = holder.next_seq;
            e.told_lapse = None;
            return Taken::Items {
                skip: count,
                reply: UploadReply::Ack {
                    next_seq,
                    lease_ms: ms(cfg.ttl),
                },
            };
        }
        let skip = usize::try_from(holder.next_seq - seq)
            .unwrap_or(usize::MAX)
            .min(count);
        holder.next_seq = holder.next_seq.max(seq + count as u64);
        let reply = UploadReply::Ack {
            next_seq: holder.next_seq,
            lease_ms: ms(cfg.ttl),
        };
        e.told_lapse = None;
        if last && skip < count {
            e.phase = Phase::Done {
                why: "its outcome is in".into(),
            };
        }
        Taken::Items { skip, reply }
    }

    /// The clock moved to `now`: lapses, re-dispatches, failures.
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        let cfg = self.cfg.clone();
        let mut out = Vec::new();
        for (id, e) in &mut self.attempts {
            match &e.phase {
                Phase::Queued { since, .. } if now >= *since + cfg.queue_timeout => {
                    let reason = format!("no worker took it within {}", seconds(cfg.queue_timeout));
                    e.phase = Phase::Done {
                        why: reason.clone(),
                    };
                    out.push(Change::Failed {
                        attempt: id.clone(),
                        reason,
                    });
                }
                Phase::Held { round, holder } if now >= holder.until + cfg.grace => {
                    let silent = now.saturating_duration_since(holder.until) + cfg.ttl;
                    let lost = format!(
                        "worker {} stopped renewing its lease (silent for {} ms)",
                        holder.worker,
                        silent.as_millis()
                    );
                    if e.cancelled || *round >= cfg.max_rounds {
                        let reason = if e.cancelled {
                            format!("{lost} after the attempt was cancelled")
                        } else {
                            format!("{lost}; not offered again after {round} rounds")
                        };
                        e.phase = Phase::Done {
                            why: reason.clone(),
                        };
                        out.push(Change::Failed {
                            attempt: id.clone(),
                            reason,
                        });
                    } else {
                        let round = round + 1;
                        e.phase = Phase::Queued { round, since: now };
                        out.push(Change::Redispatch {
                            attempt: id.clone(),
                            round,
                            reason: lost,
                        });
                    }
                }
                Phase::Held { holder, .. }
                    if now >= holder.until && e.told_lapse != Some(holder.token) =>
                {
                    e.told_lapse = Some(holder.token);
                    out.push(Change::Lapsed {
                        attempt: id.clone(),
                        worker: holder.worker.clone(),
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// The attempt is cancelled.
    pub fn cancel(&mut self, attempt: &str) -> Cancelled {
        let Some(e) = self.attempts.get_mut(attempt) else {
            return Cancelled::Nothing;
        };
        e.cancelled = true;
        match &e.phase {
            Phase::Queued { .. } => {
                e.phase = Phase::Done {
                    why: "cancelled".into(),
                };
                Cancelled::WasQueued
            }
            Phase::Held { holder, .. } => Cancelled::TellHolder {
                worker: holder.worker.clone(),
                token: holder.token,
            },
            Phase::Done { .. } => Cancelled::Nothing,
        }
    }

    /// The attempt is over for the coordinator: forget it (later claims are refused as
    /// unknown).
    pub fn forget(&mut self, attempt: &str) {
        self.attempts.remove(attempt);
    }

    /// The holder of `attempt`, if a worker holds it.
    pub fn holder(&self, attempt: &str) -> Option<&Holder> {
        match &self.attempts.get(attempt)?.phase {
            Phase::Held { holder, .. } => Some(holder),
            _ => None,
        }
    }

    /// The current round of `attempt`.
    pub fn round(&self, attempt: &str) -> Option<u32> {
        match &self.attempts.get(attempt)?.phase {
            Phase::Held { round, .. } | Phase::Queued { round, .. } => Some(*round),
            Phase::Done { .. } => None,
        }
    }
}

/// How often the coordinator's clock should tick the book.
pub const TICK: Duration = Duration::from_millis(100);

/// A worker's side of one lease: when to renew, and when to give up on a coordinator
/// that does not answer (it surely gave the attempt away by then).
#[derive(Debug, Clone)]
pub struct Tenure {
    ttl: Duration,
    grace: Duration,
    /// Last time the coordinator confirmed the lease.
    confirmed: Instant,
    /// Last time a renewal was sent.
    sent: Option<Instant>,
}

/// Why a worker ends an attempt it was running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// The coordinator says another holds it, or it is over.
    Fenced(String),
    /// The coordinator did not confirm the lease for longer than lease and grace.
    Silent(Duration),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Fenced(why) => write!(f, "the lease was taken away: {why}"),
            Lost::Silent(d) => write!(
                f,
                "the coordinator did not confirm the lease for {} ms",
                d.as_millis()
            ),
        }
    }
}

impl Tenure {
    /// A lease granted at `now` for `ttl`, with `grace` after it.
    pub fn new(ttl: Duration, grace: Duration, now: Instant) -> Tenure {
        Tenure {
            ttl,
            grace,
            confirmed: now,
            sent: None,
        }
    }

    /// Whether a renewal is due: a third of the lease after the last confirmation, and
    /// not more often than that while none is answered.
    pub fn renew_due(&self, now: Instant) -> bool {
        let every = self.ttl / 3;
        let since = self.sent.map_or(self.confirmed, |s| s.max(self.confirmed));
        now >= since + every
    }

    /// A renewal (or any upload) was sent.
    pub fn sent(&mut self, now: Instant) {
        self.sent = Some(now);
    }

    /// The coordinator confirmed the lease for `ttl` from `now`.
    pub fn confirmed(&mut self, now: Instant, ttl: Duration) {
        self.confirmed = now;
        self.ttl = ttl;
    }

    /// Whether the lease is lost by silence at `now`.
    pub fn lost(&self, now: Instant) -> Option<Lost> {
        let silent = now.saturating_duration_since(self.confirmed);
        (silent >= self.ttl + self.grace).then_some(Lost::Silent(silent))
    }

    /// Time left on the lease at `now`.
    pub fn left(&self, now: Instant) -> Duration {
        (self.confirmed + self.ttl).saturating_duration_since(now)
    }
}

/// `d` as a person reads it: `600 s`, `1.5 s`.
pub(crate) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            max_rounds: 2,
            queue_timeout: Duration::from_secs(60),
        }
    }

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn rep(worker: &str, token: Token, seq: u64, count: usize, last: bool) -> Report<'_> {
        Report {
            worker,
            token,
            seq,
            count,
            last,
        }
    }

    fn granted(r: ClaimReply) -> Token {
        match r {
            ClaimReply::Granted { token, .. } => token,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn the_first_claim_wins_and_a_redelivery_waits() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        assert_eq!(granted(l.claim("a", 1, "w1", t0)), 1);
        match l.claim("a", 1, "w2", at(t0, 1)) {
            ClaimReply::Wait { after_ms } => assert_eq!(after_ms, 14_000),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            l.claim("zzz", 1, "w2", t0),
            ClaimReply::Refused { .. }
        ));
    }

    #[test]
    fn uploads_renew_and_resent_items_are_taken_once() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        let tok = granted(l.claim("a", 1, "w1", t0));
        assert_eq!(
            l.upload("a", rep("w1", tok, 0, 3, false), at(t0, 8)),
            Taken::Items {
                skip: 0,
                reply: UploadReply::Ack {
                    next_seq: 3,
                    lease_ms: 10_000
                }
            }
        );
        // The reply was lost: the worker sends 0..5; only 3 and 4 are new.
        match l.upload("a", rep("w1", tok, 0, 5, false), at(t0, 9)) {
            Taken::Items { skip, .. } => assert_eq!(skip, 3),
            other => panic!("{other:?}"),
        }
        // Renewed at 9 s: nothing lapses at 18 s (< 9 + 10).
        assert!(l.tick(at(t0, 18)).is_empty());
    }

    #[test]
    fn a_lapsed_lease_is_redispatched_after_grace_and_the_old_token_is_fenced() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        let old = granted(l.claim("a", 1, "w1", t0));
        let lapse = l.tick(at(t0, 10));
        assert_eq!(
            lapse,
            [Change::Lapsed {
                attempt: "a".into(),
                worker: "w1".into()
            }]
        );
        // Within grace the holder may come back.
        assert!(matches!(
            l.upload("a", rep("w1", old, 0, 0, false), at(t0, 12)),
            Taken::Items { .. }
        ));
        // Silent again: lapses at 22, re-dispatched at 27.
        assert!(
            l.tick(at(t0, 26))
                .iter()
                .all(|c| !matches!(c, Change::Redispatch { .. }))
        );
        let ch = l.tick(at(t0, 27));
        assert!(
            matches!(&ch[..], [Change::Redispatch { round: 2, reason, .. }] if reason.contains("w1")),
            "{ch:?}"
        );
        // The old holder's result is refused...
        assert!(matches!(
            l.upload("a", rep("w1", old, 0, 1, true), at(t0, 28)),
            Taken::Refused { .. }
        ));
        // ...a claim of the old round is refused for good, the new round is granted.
        assert!(matches!(
            l.claim("a", 1, "w2", at(t0, 28)),
            ClaimReply::Refused { .. }
        ));
        let new = granted(l.claim("a", 2, "w2", at(t0, 28)));
        assert!(new > old);
        assert!(matches!(
            l.upload("a", rep("w1", old, 0, 1, true), at(t0, 29)),
            Taken::Refused { .. }
        ));
        assert!(matches!(
            l.upload("a", rep("w2", new, 0, 1, true), at(t0, 29)),
            Taken::Items { skip: 0, .. }
        ));
        // Over: even the holder's late resend changes nothing, and nobody can claim it.
        assert!(matches!(
            l.claim("a", 2, "w3", at(t0, 30)),
            ClaimReply::Refused { .. }
        ));
    }

    #[test]
    fn after_max_rounds_a_lapse_fails_the_attempt() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        granted(l.claim("a", 1, "w1", t0));
        l.tick(at(t0, 15));
        granted(l.claim("a", 2, "w2", at(t0, 15)));
        let ch = l.tick(at(t0, 30));
        assert!(
            matches!(&ch[..], [Change::Failed { reason, .. }] if reason.contains("w2") && reason.contains("2 rounds")),
            "{ch:?}"
        );
    }

    #[test]
    fn a_cancelled_attempt_is_never_redispatched() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("q", t0);
        assert_eq!(l.cancel("q"), Cancelled::WasQueued);
        assert!(matches!(
            l.claim("q", 1, "w1", t0),
            ClaimReply::Refused { .. }
        ));
        l.offer("h", t0);
        let tok = granted(l.claim("h", 1, "w1", t0));
        assert_eq!(
            l.cancel("h"),
            Cancelled::TellHolder {
                worker: "w1".into(),
                token: tok
            }
        );
        let ch = l.tick(at(t0, 15));
        assert!(matches!(&ch[..], [Change::Failed { .. }]), "{ch:?}");
    }

    #[test]
    fn an_offer_nobody_takes_fails_after_the_queue_timeout() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        assert!(l.tick(at(t0, 59)).is_empty());
        assert!(matches!(&l.tick(at(t0, 60))[..], [Change::Failed { .. }]));
    }

    #[test]
    fn the_same_worker_claiming_again_does_not_get_a_second_lease() {
        let t0 = Instant::now();
        let mut l = Leases::new(cfg());
        l.offer("a", t0);
        granted(l.claim("a", 1, "w1", t0));
        assert!(matches!(
            l.claim("a", 1, "w1", at(t0, 1)),
            ClaimReply::Refused { .. }
        ));
    }

    #[test]
    fn a_worker_gives_up_after_lease_and_grace_of_silence() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(9);
        let mut t = Tenure::new(ttl, Duration::from_secs(6), t0);
        assert!(!t.renew_due(at(t0, 2)));
        assert!(t.renew_due(at(t0, 3)));
        t.sent(at(t0, 3));
        assert!(!t.renew_due(at(t0, 4)), "no resend before another third");
        t.confirmed(at(t0, 4), ttl);
        assert_eq!(t.left(at(t0, 5)), Duration::from_secs(8));
        assert_eq!(t.lost(at(t0, 18)), None);
        assert_eq!(
            t.lost(at(t0, 19)),
            Some(Lost::Silent(Duration::from_secs(15)))
        );
    }
}
