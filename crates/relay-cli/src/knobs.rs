//! The numeric environment knobs (timings, terminal size, Landlock cap): a value that is
//! set but cannot be read is an error that names the variable, not a silent default.
//! The crates that read the knobs fall back to their defaults; this check runs first.

use crate::error::{CliError, CliResult};

/// What a knob holds, for the message.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Milliseconds (`u64`).
    Millis,
    /// A terminal dimension (`u16`).
    Cells,
    /// A whole number (`u32`).
    Count,
}

/// Every numeric knob and what it holds.
const KNOBS: &[(&str, Kind)] = &[
    ("AGENT_RELAY_KILL_GRACE_MS", Kind::Millis),
    ("AGENT_RELAY_SETTLE_MS", Kind::Millis),
    ("AGENT_RELAY_READY_TIMEOUT_MS", Kind::Millis),
    ("AGENT_RELAY_ENTER_DELAY_MS", Kind::Millis),
    ("AGENT_RELAY_CONFIRM_TIMEOUT_MS", Kind::Millis),
    ("AGENT_RELAY_IDLE_MS", Kind::Millis),
    ("AGENT_RELAY_PARK_BACKOFF_MS", Kind::Millis),
    ("AGENT_RELAY_DASHBOARD_INTERVAL_MS", Kind::Millis),
    ("AGENT_RELAY_NATS_LEASE_MS", Kind::Millis),
    ("AGENT_RELAY_NATS_GRACE_MS", Kind::Millis),
    ("AGENT_RELAY_NATS_ACK_WAIT_MS", Kind::Millis),
    ("AGENT_RELAY_NATS_QUEUE_TIMEOUT_MS", Kind::Millis),
    ("AGENT_RELAY_NATS_POLL_MS", Kind::Millis),
    ("AGENT_RELAY_PTY_ROWS", Kind::Cells),
    ("AGENT_RELAY_PTY_COLS", Kind::Cells),
    ("AGENT_RELAY_NATS_MAX_ROUNDS", Kind::Count),
    (relay_broker::sandbox::probe::ABI_CAP_ENV, Kind::Count),
];

/// One line per knob whose value cannot be read; `get` looks a variable up.
fn problems(get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for &(name, kind) in KNOBS {
        let Some(raw) = get(name) else { continue };
        let v = raw.trim();
        if v.is_empty() {
            continue;
        }
        let ok = match kind {
            Kind::Millis => v.parse::<u64>().is_ok(),
            Kind::Cells => v.parse::<u16>().is_ok(),
            Kind::Count => v.parse::<u32>().is_ok(),
        };
        if !ok {
            let want = match kind {
                Kind::Millis => "a whole number of milliseconds (e.g. 1500)",
                Kind::Cells => "a whole number of character cells, at most 65535 (e.g. 40)",
                Kind::Count => "a whole number (e.g. 3)",
            };
            let shown = relay_spec::suggest::shown(&raw);
            out.push(format!("{name}={shown:?} is not {want}"));
        }
    }
    if let Some(p) = unready(&get) {
        out.push(p);
    }
    out
}

/// A readiness wait shorter than the quiet a screen needs before the task is typed
/// (either set, or the settle time set past the default wait): no agent could ever be
/// ready, and every session would fail at start-up.
fn unready(get: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let t = relay_engine::Settings::from_lookup(get).timing;
    let (ready, settle) = (t.ready_fallback.as_millis(), t.settle.as_millis());
    if ready >= settle {
        return None;
    }
    let set = get("AGENT_RELAY_READY_TIMEOUT_MS").filter(|v| !v.trim().is_empty());
    match set {
        // Unreadable: `problems` names it.
        Some(v) if v.trim().parse::<u64>().is_err() => None,
        Some(_) => Some(format!(
            "AGENT_RELAY_READY_TIMEOUT_MS={ready} is shorter than the {settle} ms a screen must stay quiet \
             before the task is typed (AGENT_RELAY_SETTLE_MS): no agent could get ready; give it at least {settle}"
        )),
        None => Some(format!(
            "AGENT_RELAY_SETTLE_MS={settle} is longer than the {ready} ms an agent's screen is waited for by \
             default: no agent could get ready; set AGENT_RELAY_READY_TIMEOUT_MS to at least {settle}"
        )),
    }
}

/// Refuses to go on when a knob in the environment is set to something unreadable.
pub fn check() -> CliResult<()> {
    let found = problems(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()));
    let Some((first, rest)) = found.split_first() else {
        return Ok(());
    };
    let mut e = CliError::invalid(first);
    for r in rest {
        e = e.note(format!("error: {r}"));
    }
    Err(e.note("  unset the variable to use the default, or give it a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Vec<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        problems(|k| map.get(k).cloned())
    }

    #[test]
    fn readable_and_empty_values_pass() {
        assert!(with(&[]).is_empty());
        assert!(
            with(&[
                ("AGENT_RELAY_KILL_GRACE_MS", " 200 "),
                ("AGENT_RELAY_PTY_ROWS", "50"),
                ("AGENT_RELAY_LANDLOCK_ABI", "0"),
                ("AGENT_RELAY_SETTLE_MS", ""),
            ])
            .is_empty()
        );
    }

    #[test]
    fn a_readiness_wait_shorter_than_the_settle_time_is_refused() {
        let found = with(&[("AGENT_RELAY_READY_TIMEOUT_MS", "0")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("AGENT_RELAY_READY_TIMEOUT_MS=0 "),
            "{found:?}"
        );
        assert!(found[0].contains("AGENT_RELAY_SETTLE_MS"), "{found:?}");
        let found = with(&[
            ("AGENT_RELAY_READY_TIMEOUT_MS", "300"),
            ("AGENT_RELAY_SETTLE_MS", "500"),
        ]);
        assert!(found[0].contains("at least 500"), "{found:?}");
        assert!(
            with(&[
                ("AGENT_RELAY_READY_TIMEOUT_MS", "300"),
                ("AGENT_RELAY_SETTLE_MS", "50"),
            ])
            .is_empty()
        );
        assert!(with(&[("AGENT_RELAY_READY_TIMEOUT_MS", "4000")]).is_empty());
        // The settle time set past the default wait is refused too, naming both.
        let found = with(&[("AGENT_RELAY_SETTLE_MS", "20000")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("AGENT_RELAY_SETTLE_MS=20000 "),
            "{found:?}"
        );
        assert!(
            found[0].contains("AGENT_RELAY_READY_TIMEOUT_MS to at least 20000"),
            "{found:?}"
        );
        // An unreadable wait is named once, as unreadable.
        let found = with(&[
            ("AGENT_RELAY_READY_TIMEOUT_MS", "2s"),
            ("AGENT_RELAY_SETTLE_MS", "20000"),
        ]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("is not a whole number"), "{found:?}");
    }

    #[test]
    fn each_unreadable_value_is_named_with_what_it_should_be() {
        let found = with(&[
            ("AGENT_RELAY_PTY_ROWS", "abc"),
            ("AGENT_RELAY_KILL_GRACE_MS", "1.5s"),
            ("AGENT_RELAY_LANDLOCK_ABI", "-1"),
            ("AGENT_RELAY_PTY_COLS", "70000"),
        ]);
        assert_eq!(found.len(), 4, "{found:?}");
        let line = |n: &str| found.iter().find(|l| l.starts_with(n)).cloned().unwrap();
        assert!(line("AGENT_RELAY_PTY_ROWS=").contains("character cells"));
        assert!(line("AGENT_RELAY_KILL_GRACE_MS=").contains("milliseconds"));
        assert!(line("AGENT_RELAY_LANDLOCK_ABI=").contains("whole number"));
        assert!(line("AGENT_RELAY_PTY_COLS=").contains("65535"));
    }

    /// The files that read the numeric knobs: each one they read is in [`KNOBS`].
    const READERS: &[&str] = &[
        include_str!("../../relay-engine/src/settings.rs"),
        include_str!("../../relay-nats/src/lib.rs"),
        include_str!("dashboard.rs"),
        include_str!("../../relay-broker/src/sandbox/probe.rs"),
    ];

    #[test]
    fn every_numeric_knob_the_crates_read_is_checked() {
        let numeric = ["_MS", "_ROWS", "_COLS", "_ABI", "_ROUNDS"];
        let mut read = 0;
        for src in READERS {
            for piece in src.split('"').skip(1).step_by(2) {
                let is_knob = piece.starts_with("AGENT_RELAY_")
                    && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    && numeric.iter().any(|n| piece.ends_with(n));
                if is_knob {
                    read += 1;
                    assert!(
                        KNOBS.iter().any(|(k, _)| *k == piece),
                        "{piece} is read but not checked"
                    );
                }
            }
        }
        assert!(read >= 15, "found only {read} knobs in the readers");
    }

    #[test]
    fn a_value_with_control_characters_is_printed_escaped() {
        let found = with(&[("AGENT_RELAY_IDLE_MS", "5\x1b[2J")]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].contains('\x1b'), "{:?}", found[0]);
    }
}
