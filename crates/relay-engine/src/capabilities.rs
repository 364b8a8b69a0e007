//! What the engine does not act on yet. A field the format accepts but the engine would
//! ignore is never ignored silently: `validate` lists it and every run records a warning.

use relay_spec::{Diagnostic, RelayFile};

/// One warning per field set in `file` that has no effect yet.
pub fn not_yet_effective(file: &RelayFile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut warn = |msg: String| out.push(Diagnostic::warning(None, msg));
    // swarm.channel, agents[].channels and errorHandling.notifyChannel act through the
    // run's message broker, and `state` through its shared state (relay-engine
    // `messaging`).
    for a in &file.agents {
        if a.preset.is_some() {
            warn(format!("agents[{}].preset has no effect yet", a.name));
        }
    }
    out
}
