//! What the engine does not act on yet. A field the format accepts but the engine would
//! ignore is never ignored silently: `validate` lists it and every run records a warning.

use relay_spec::{Diagnostic, Pattern, RelayFile};

/// Patterns whose scheduling the engine implements; others run as `dag` for now.
const EFFECTIVE_PATTERNS: [Pattern; 2] = [Pattern::Dag, Pattern::FanOut];

/// One warning per field set in `file` that has no effect yet.
pub fn not_yet_effective(file: &RelayFile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut warn = |msg: String| out.push(Diagnostic::warning(None, msg));
    if let Some(s) = &file.swarm {
        if let Some(p) = s.pattern
            && !EFFECTIVE_PATTERNS.contains(&p)
        {
            warn(format!(
                "swarm.pattern `{}` has no effect yet: steps run by their dependsOn edges (as `dag`)",
                p.as_str()
            ));
        }
        if s.channel.is_some() {
            warn("swarm.channel has no effect yet: agent messaging is not available".into());
        }
    }
    for a in &file.agents {
        if !a.channels.is_empty() {
            warn(format!(
                "agents[{}].channels has no effect yet: agent messaging is not available",
                a.name
            ));
        }
        if a.preset.is_some() {
            warn(format!("agents[{}].preset has no effect yet", a.name));
        }
    }
    if let Some(c) = &file.coordination {
        if !c.barriers.is_empty() {
            warn("coordination.barriers have no effect yet".into());
        }
        if c.consensus_strategy.is_some() || c.voting_threshold.is_some() {
            warn("coordination.consensusStrategy/votingThreshold have no effect yet".into());
        }
    }
    if file.state.is_some() {
        warn("state (shared state) has no effect yet".into());
    }
    if file
        .error_handling
        .as_ref()
        .is_some_and(|e| e.notify_channel.is_some())
    {
        warn(
            "errorHandling.notifyChannel has no effect yet: agent messaging is not available"
                .into(),
        );
    }
    out
}
