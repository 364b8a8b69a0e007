//! Engine timing knobs. Defaults suit real agents; every knob can be set through an
//! environment variable so tests and impatient users can make them small.

use std::time::Duration;

use relay_broker::session::SessionTiming;

/// Timing and terminal settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Grace between TERM and KILL when a process group is ended.
    pub kill_grace: Duration,
    /// Terminal size of interactive sessions (rows, cols).
    pub pty_size: (u16, u16),
    /// Session timing (readiness, delivery, idleness).
    pub timing: SessionTiming,
    /// How long a step parks after a rate limit that names no reset time (doubled for
    /// each park in a row, at most an hour).
    pub park_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kill_grace: Duration::from_millis(1500),
            pty_size: (40, 120),
            timing: SessionTiming::default(),
            park_backoff: Duration::from_secs(60),
        }
    }
}

impl Settings {
    /// Defaults, overridden by `AGENT_RELAY_KILL_GRACE_MS`, `AGENT_RELAY_SETTLE_MS`,
    /// `AGENT_RELAY_READY_TIMEOUT_MS`, `AGENT_RELAY_ENTER_DELAY_MS`,
    /// `AGENT_RELAY_CONFIRM_TIMEOUT_MS`, `AGENT_RELAY_IDLE_MS`, `AGENT_RELAY_PTY_ROWS`,
    /// `AGENT_RELAY_PTY_COLS` and `AGENT_RELAY_PARK_BACKOFF_MS` where set.
    pub fn from_env() -> Self {
        Settings::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Settings::from_env`], with `get` looking each variable up.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let env_ms = |k: &str| {
            get(k)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        let mut s = Settings::default();
        if let Some(d) = env_ms("AGENT_RELAY_KILL_GRACE_MS") {
            s.kill_grace = d;
            s.timing.kill_grace = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_SETTLE_MS") {
            s.timing.settle = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_READY_TIMEOUT_MS") {
            s.timing.ready_fallback = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_ENTER_DELAY_MS") {
            s.timing.enter_delay = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_CONFIRM_TIMEOUT_MS") {
            s.timing.confirm_timeout = d;
        }
        if let Some(d) = env_ms("AGENT_RELAY_PARK_BACKOFF_MS") {
            s.park_backoff = d.max(Duration::from_millis(10));
        }
        if let Some(d) = env_ms("AGENT_RELAY_IDLE_MS") {
            s.timing.idle_threshold = Some(d);
        }
        let dim = |k: &str| get(k).and_then(|v| v.trim().parse::<u16>().ok());
        if let Some(r) = dim("AGENT_RELAY_PTY_ROWS") {
            s.pty_size.0 = r.max(5);
        }
        if let Some(c) = dim("AGENT_RELAY_PTY_COLS") {
            s.pty_size.1 = c.max(20);
        }
        s
    }

    /// The session timing, with the kill grace applied.
    pub fn session_timing(&self) -> SessionTiming {
        let mut t = self.timing.clone();
        t.kill_grace = self.kill_grace;
        t
    }
}
