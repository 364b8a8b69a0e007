//! Rate-limit parking, pure: when an agent reports its provider's rate or usage limit, its
//! step waits for the reset (or a backoff when none is given) instead of failing, and
//! every other step on the same provider holds back until then. A provider here is the
//! agent's CLI (its account and its limits). Times are kept both as instants (for the
//! run's clock) and as wall-clock milliseconds (for the log, so that a resumed run parks
//! again until the same moment).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Parks one step may have in a row before its limit counts as a failure: a provider
/// that keeps refusing is not waited on for ever.
pub const MAX_PARKS: u32 = 12;

/// Longest backoff when a limit names no reset time.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Until when something is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Until {
    /// On the run's clock.
    pub at: Instant,
    /// Wall clock, milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// The run's parked providers, and its clocks.
#[derive(Debug, Clone)]
pub struct Parking {
    /// The run's clock and the wall clock at the same moment.
    origin: (Instant, u64),
    /// Backoff of a first park without a reset time; doubled for each park in a row.
    backoff: Duration,
    providers: BTreeMap<String, Until>,
}

impl Parking {
    /// Parking for a run whose clock read `now` when the wall clock read `wall_ms`.
    pub fn new(now: Instant, wall_ms: u64, backoff: Duration) -> Parking {
        Parking {
            origin: (now, wall_ms),
            backoff,
            providers: BTreeMap::new(),
        }
    }

    /// The wall clock at `now`.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin.0).as_millis() as u64;
        self.origin.1.saturating_add(since)
    }

    /// The run's clock at wall-clock `wall_ms` (now, if that has passed).
    pub fn instant_of(&self, wall_ms: u64, now: Instant) -> Instant {
        let ahead = wall_ms.saturating_sub(self.wall_ms(now));
        now.checked_add(Duration::from_millis(ahead)).unwrap_or(now)
    }

    /// `provider` reported a limit at `now` that resets at `resets_at` (Unix seconds), if
    /// it said; `strike` is how many times in a row this step was limited (1 for the
    /// first). Parks the provider and says until when.
    pub fn park(
        &mut self,
        provider: &str,
        resets_at: Option<u64>,
        strike: u32,
        now: Instant,
    ) -> Until {
        let wall_now = self.wall_ms(now);
        let wall_ms = match resets_at {
            // A reset already past (clocks differ): a short wait, not none.
            Some(s) => s.saturating_mul(1000).max(wall_now + 1000),
            None => {
                let factor = 1u32 << strike.saturating_sub(1).min(16);
                let wait = self.backoff.saturating_mul(factor).min(MAX_BACKOFF);
                wall_now.saturating_add(wait.as_millis() as u64)
            }
        };
        let until = Until {
            at: self.instant_of(wall_ms, now),
            wall_ms,
        };
        self.hold(provider, until);
        until
    }

    /// Holds `provider` back until `until` (the later of it and any earlier park).
    pub fn hold(&mut self, provider: &str, until: Until) {
        let e = self.providers.entry(provider.to_owned()).or_insert(until);
        if until.wall_ms > e.wall_ms {
            *e = until;
        }
    }

    /// Until when `provider` is held back at `now`, if it is.
    pub fn held(&self, provider: &str, now: Instant) -> Option<Until> {
        self.providers.get(provider).copied().filter(|u| u.at > now)
    }

    /// Lifts every hold (`agent-relay unpark`).
    pub fn clear(&mut self) {
        self.providers.clear();
    }
}

/// Wall clock now, milliseconds since the Unix epoch.
pub fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `wall_ms` as the run shows it: `HH:MM UTC`, with the date when it is not today's
/// (relative to `now_ms`).
pub fn show(wall_ms: u64, now_ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(wall_ms);
    let stamp = crate::clock::rfc3339(t);
    let (date, time) = stamp.split_at(10);
    let hhmm = time.get(1..6).unwrap_or("");
    if wall_ms / 86_400_000 == now_ms / 86_400_000 {
        format!("{hhmm} UTC")
    } else {
        format!("{date} {hhmm} UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALL: u64 = 1_796_000_000_000;

    #[test]
    fn a_reset_time_parks_the_provider_until_then() {
        let t0 = Instant::now();
        let mut p = Parking::new(t0, WALL, Duration::from_secs(60));
        let u = p.park("claude", Some(WALL / 1000 + 600), 1, t0);
        assert_eq!(u.wall_ms, WALL + 600_000);
        assert_eq!(u.at, t0 + Duration::from_secs(600));
        assert_eq!(p.held("claude", t0 + Duration::from_secs(599)), Some(u));
        assert_eq!(p.held("claude", t0 + Duration::from_secs(600)), None);
        assert_eq!(p.held("codex", t0), None);
    }

    #[test]
    fn without_a_reset_the_backoff_doubles_and_is_capped() {
        let t0 = Instant::now();
        let mut p = Parking::new(t0, WALL, Duration::from_secs(60));
        assert_eq!(p.park("x", None, 1, t0).wall_ms, WALL + 60_000);
        assert_eq!(p.park("x", None, 3, t0).wall_ms, WALL + 240_000);
        assert_eq!(p.park("x", None, 30, t0).wall_ms, WALL + 3_600_000);
        // A reset in the past still waits a moment.
        assert_eq!(p.park("y", Some(1), 1, t0).wall_ms, WALL + 1000);
    }

    #[test]
    fn a_later_hold_wins_and_unpark_lifts_all() {
        let t0 = Instant::now();
        let mut p = Parking::new(t0, WALL, Duration::from_secs(1));
        let late = p.park("c", Some(WALL / 1000 + 100), 1, t0);
        p.park("c", Some(WALL / 1000 + 10), 1, t0);
        assert_eq!(p.held("c", t0), Some(late));
        p.clear();
        assert_eq!(p.held("c", t0), None);
    }

    #[test]
    fn wall_times_are_shown_in_utc_with_the_date_when_not_today() {
        // 2026-11-30T00:53:20Z.
        assert_eq!(show(WALL, WALL), "00:53 UTC");
        assert_eq!(show(WALL + 86_400_000, WALL), "2026-12-01 00:53 UTC");
        let t0 = Instant::now();
        let p = Parking::new(t0, WALL, Duration::from_secs(1));
        assert_eq!(p.wall_ms(t0 + Duration::from_millis(1500)), WALL + 1500);
        assert_eq!(p.instant_of(WALL - 5, t0), t0);
    }
}
