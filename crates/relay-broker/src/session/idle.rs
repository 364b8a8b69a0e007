//! The idle clock: when the agent last did something (its output changed) or was last
//! typed to, and from that when it counts as idle, when it is nudged and when it is
//! force-released.
//!
//! Every deadline is `Option<Instant>`: a duration too large to add to an instant (a
//! threshold of `u64::MAX` seconds) means "never", not a panic.

use std::time::Duration;

use tokio::time::Instant;

use super::NudgePolicy;

/// `t + d`, or `None` (never) when that is past what an instant can hold.
pub(super) fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    /// The agent has been active since the last `Idle` event (or there was none).
    Watching,
    /// `Idle` was reported for the current quiet spell.
    Reported,
}

/// What is due on the idle clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// The agent just went idle.
    Idle,
    /// Type nudge number `n` (1-based).
    Nudge(u32),
    /// Every nudge was used up: release the agent.
    Release,
}

/// Idleness, nudges and force-release.
#[derive(Debug)]
pub(super) struct IdleClock {
    threshold: Option<Duration>,
    policy: Option<NudgePolicy>,
    last_activity: Instant,
    last_injection: Instant,
    report: Report,
    nudges: u32,
}

impl IdleClock {
    /// A clock started at `now`. `policy` is the step's nudge policy, already defaulted.
    pub(super) fn new(
        threshold: Option<Duration>,
        policy: Option<NudgePolicy>,
        now: Instant,
    ) -> Self {
        IdleClock {
            threshold,
            policy,
            last_activity: now,
            last_injection: now,
            report: Report::Watching,
            nudges: 0,
        }
    }

    /// The policy a session runs with: the step's own, or, when the step sets neither a
    /// timeout nor a nudge policy, one nudge after the idle threshold and a force-release
    /// one threshold later, so that an agent that does nothing is never waited for
    /// forever. No idle threshold (switched off) means no default either.
    pub(super) fn policy_for(
        nudge: Option<&NudgePolicy>,
        timeout: Option<Duration>,
        threshold: Option<Duration>,
    ) -> Option<NudgePolicy> {
        match (nudge, timeout, threshold) {
            (Some(p), _, _) => Some(p.clone()),
            (None, None, Some(t)) => Some(NudgePolicy {
                nudge_after: t,
                escalate_after: t,
                max_nudges: 1,
            }),
            _ => None,
        }
    }

    /// The agent did something at `now`.
    pub(super) fn activity(&mut self, now: Instant) {
        self.last_activity = now;
        self.report = Report::Watching;
    }

    /// Something was typed in (and confirmed or given up on) at `now`.
    pub(super) fn typed(&mut self, now: Instant) {
        self.last_injection = now;
    }

    /// When the agent last did something.
    pub(super) fn last_activity(&self) -> Instant {
        self.last_activity
    }

    fn quiet_since(&self) -> Instant {
        self.last_activity.max(self.last_injection)
    }

    fn idle_at(&self) -> Option<Instant> {
        match (self.threshold, self.report) {
            (Some(t), Report::Watching) => after(self.last_activity, t),
            _ => None,
        }
    }

    fn policy_at(&self) -> Option<Instant> {
        let p = self.policy.as_ref()?;
        let wait = if self.nudges < p.max_nudges {
            p.nudge_after
        } else {
            p.escalate_after
        };
        after(self.quiet_since(), wait)
    }

    /// The next moment something is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [self.idle_at(), self.policy_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// What is due at `now`, in order; a nudge counts as typed from here on.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        if self.idle_at().is_some_and(|t| now >= t) {
            self.report = Report::Reported;
            due.push(Due::Idle);
        }
        let Some(p) = self.policy.clone() else {
            return due;
        };
        if self.policy_at().is_some_and(|t| now >= t) {
            if self.nudges < p.max_nudges {
                self.nudges += 1;
                due.push(Due::Nudge(self.nudges));
            } else {
                due.push(Due::Release);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_threshold_never_comes_due_and_never_panics() {
        let t0 = Instant::now();
        let mut clock = IdleClock::new(
            Some(Duration::MAX),
            Some(NudgePolicy {
                nudge_after: Duration::MAX,
                escalate_after: Duration::MAX,
                max_nudges: 1,
            }),
            t0,
        );
        assert_eq!(clock.next_deadline(), None);
        assert!(clock.due(t0 + Duration::from_secs(3600)).is_empty());
        // About 9.2e18 seconds, as `idleThresholdSecs: 9223372036854775807` gives.
        let huge = Duration::from_secs(i64::MAX as u64);
        let clock = IdleClock::new(Some(huge), None, t0);
        assert_eq!(clock.next_deadline(), None);
    }

    #[test]
    fn no_timeout_and_no_policy_means_one_nudge_then_release() {
        let t = Duration::from_secs(30);
        let p = IdleClock::policy_for(None, None, Some(t)).expect("a default policy");
        assert_eq!((p.nudge_after, p.escalate_after, p.max_nudges), (t, t, 1));
        // A timeout bounds the step already; a switched-off idle threshold means off.
        assert!(IdleClock::policy_for(None, Some(t), Some(t)).is_none());
        assert!(IdleClock::policy_for(None, None, None).is_none());
    }

    #[test]
    fn idle_is_reported_once_per_quiet_spell() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = IdleClock::new(Some(ms(100)), None, t0);
        assert_eq!(clock.due(t0 + ms(100)), [Due::Idle]);
        assert!(clock.due(t0 + ms(300)).is_empty());
        clock.activity(t0 + ms(300));
        assert_eq!(clock.next_deadline(), Some(t0 + ms(400)));
    }
}
