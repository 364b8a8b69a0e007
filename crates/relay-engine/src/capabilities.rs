//! What the engine does not act on yet, or cannot offline. A field the format accepts but
//! the engine would ignore is never ignored silently: `validate` lists it and every run
//! records a warning saying why.

use relay_spec::{Diagnostic, RelayFile, StepType};

/// One warning per field set in `file` that has no effect (yet, or offline).
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
    if let Some(s) = &file.swarm {
        if s.completion_grace_period_ms.is_some() {
            warn("swarm.completionGracePeriodMs has no effect yet".into());
        }
        if s.human_assistance
            .as_ref()
            .is_some_and(|h| h.slack_enabled())
        {
            warn(
                "swarm.humanAssistance.slack: Slack is not reachable offline; questions agents ask \
                 show in the progress view and in `agent-relay questions`, and are answered with \
                 `agent-relay answer RUN_ID STEP \"text\"`"
                    .into(),
            );
        }
    }
    if let Some(i) = &file.integrations
        && i.relayfile.is_some()
    {
        warn("integrations.relayfile needs the hosted Relayfile service, which is not reachable offline".into());
    }
    for wf in &file.workflows {
        for s in &wf.steps {
            let hosted = match s.kind() {
                StepType::Integration => Some(format!(
                    "the `{}` integration",
                    s.integration.as_deref().unwrap_or("unnamed")
                )),
                StepType::WaitFor => s
                    .wait_for
                    .as_ref()
                    .and_then(|w| w.provider.as_deref())
                    .filter(|p| *p != "local")
                    .map(|p| format!("`{p}` events")),
                _ => None,
            };
            if let Some(what) = hosted {
                warn(format!(
                    "workflows[{}].steps[{}] needs {what} from a hosted service, which is not \
                     reachable offline: the step fails with that reason when it runs (a rehearsal \
                     stands in for it)",
                    wf.name, s.name
                ));
            }
        }
    }
    out
}
