//! What the engine does not act on yet, or cannot offline. A field the format accepts but
//! the engine would ignore is never ignored silently: `validate` lists it and every run
//! records a warning saying why.

use relay_broker::cli_table::profile;
use relay_spec::{Agent, Diagnostic, RelayFile, StepType};

/// Why the tokens `agent` uses cannot be counted, when they cannot: only one-shot runs of
/// the CLIs that report usage in their structured output (claude, codex, gemini, opencode)
/// are metered.
pub fn unmetered(agent: &Agent) -> Option<String> {
    if agent.is_interactive() {
        Some("an interactive session does not report its token usage (one-shot runs, `interactive: false`, do)".into())
    } else if profile(agent.cli).usage.is_none() {
        Some(format!(
            "{} does not report its token usage",
            agent.cli.as_str()
        ))
    } else {
        None
    }
}

/// What `session: resume` does for `agent` when it cannot name the conversation to
/// continue (see `cli_table::session_support`): an interactive agent still continues in
/// the terminal its earlier step left open (`relay_broker::session::Kept`).
pub fn no_sessions(agent: &Agent) -> Option<String> {
    let can = relay_broker::cli_table::session_support(agent.cli);
    let cli = agent.cli.as_str();
    match (agent.is_interactive(), can.oneshot, can.interactive) {
        (true, _, false) => Some(format!(
            "continues in the terminal the agent's earlier step left open, but a resumed run \
             or a worker on another machine starts a new conversation: an interactive {cli} \
             session cannot be given an id to resume{}",
            if can.oneshot {
                " (one-shot runs, `interactive: false`, can)"
            } else {
                ""
            }
        )),
        (false, false, _) => Some(format!(
            "starts a new conversation each time: {cli} has no sessions a later run can name"
        )),
        _ => None,
    }
}

/// Why `agent`'s CLI cannot be given the run's MCP server, when it cannot (see
/// `cli_table::McpWiring::Unsupported`).
pub fn no_mcp(agent: &Agent) -> Option<String> {
    use relay_spec::Cli;
    if profile(agent.cli).mcp != relay_broker::cli_table::McpWiring::Unsupported {
        return None;
    }
    Some(match agent.cli {
        Cli::Aider => "aider has no MCP client".to_owned(),
        cli => format!(
            "{} reads MCP servers only from its settings files in the project or your home, \
             which agent-relay leaves alone",
            cli.as_str()
        ),
    })
}

/// One warning per field set in `file` that has no effect (yet, or offline).
pub fn not_yet_effective(file: &RelayFile) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut warn = |msg: String| out.push(Diagnostic::warning(None, msg));
    for a in &file.agents {
        if a.mcp == Some(true)
            && let Some(why) = no_mcp(a)
        {
            warn(format!(
                "agents[{}].mcp: the agent gets no MCP tools: {why}; it messages with \
                 `agent-relay send`/`inbox` and `->relay:` lines",
                a.name
            ));
        }
    }
    // swarm.channel, agents[].channels and errorHandling.notifyChannel act through the
    // run's message broker, and `state` through its shared state (relay-engine
    // `messaging`).
    for a in &file.agents {
        if a.preset.is_some() {
            warn(format!("agents[{}].preset has no effect yet", a.name));
        }
        let limited = a
            .constraints
            .as_ref()
            .is_some_and(|c| c.max_tokens.is_some());
        let budgeted = file
            .swarm
            .as_ref()
            .is_some_and(|s| s.token_budget.is_some());
        if let Some(why) = unmetered(a).filter(|_| limited || budgeted) {
            let what = match (limited, budgeted) {
                (true, true) => {
                    "constraints.maxTokens is not enforced and swarm.tokenBudget does not count it"
                }
                (true, false) => "constraints.maxTokens is not enforced",
                _ => "swarm.tokenBudget does not count its tokens",
            };
            warn(format!("agents[{}]: {what}: {why}", a.name));
        }
    }
    for wf in &file.workflows {
        for step in &wf.steps {
            if !step.session.is_some_and(relay_spec::SessionMode::continues) {
                continue;
            }
            let Some(agent) = step
                .agent
                .as_deref()
                .and_then(|n| file.agents.iter().find(|a| a.name == n))
            else {
                continue;
            };
            if let Some(why) = no_sessions(agent) {
                warn(format!("step `{}`: `session: resume` {why}", step.name));
            }
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
    for (agent, sub) in crate::watch::subscriptions_of(file) {
        if !crate::watch::is_local(&sub) {
            warn(format!(
                "agents[{agent}]: a subscription to `{}` events needs a hosted service, which \
                 is not reachable offline: the agent is not told of them (local files are \
                 watched with no provider or `provider: local`)",
                sub.provider.as_deref().unwrap_or_default()
            ));
        } else if sub.path.is_none() && sub.paths.is_empty() {
            warn(format!(
                "agents[{agent}]: a local subscription without `path` or `paths` watches nothing"
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(yaml: &str) -> Vec<String> {
        let file = relay_spec::parse(yaml, "t.yaml").expect("parses").file;
        not_yet_effective(&file)
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn a_token_limit_on_an_agent_whose_usage_is_not_metered_is_named() {
        let w = warnings(
            "name: t\nagents:\n  - {name: c, cli: claude, interactive: false, constraints: {maxTokens: 10}}\n  - {name: a, cli: aider, interactive: false, constraints: {maxTokens: 10}}\n  - {name: i, cli: codex, interactive: true, constraints: {maxTokens: 10}}\n",
        );
        assert_eq!(
            w,
            [
                "agents[a]: constraints.maxTokens is not enforced: aider does not report its token usage",
                "agents[i]: constraints.maxTokens is not enforced: an interactive session does not report its token usage (one-shot runs, `interactive: false`, do)",
            ]
        );
    }

    #[test]
    fn a_run_budget_names_the_agents_it_cannot_count() {
        let w = warnings(
            "name: t\nswarm: {tokenBudget: 100}\nagents:\n  - {name: c, cli: gemini, interactive: false}\n  - {name: g, cli: goose, interactive: false}\n",
        );
        assert_eq!(
            w,
            [
                "agents[g]: swarm.tokenBudget does not count its tokens: goose does not report its token usage"
            ]
        );
        assert!(warnings("name: t\nagents: [{name: g, cli: goose}]\n").is_empty());
    }

    #[test]
    fn mcp_asked_of_a_cli_that_takes_no_mcp_servers_is_named() {
        let w = warnings(
            "name: t\nagents:\n  - {name: a, cli: aider, mcp: true}\n  - {name: d, cli: droid, mcp: true}\n  - {name: c, cli: claude, mcp: true}\n  - {name: q, cli: aider}\n",
        );
        assert_eq!(
            w,
            [
                "agents[a].mcp: the agent gets no MCP tools: aider has no MCP client; it messages with `agent-relay send`/`inbox` and `->relay:` lines",
                "agents[d].mcp: the agent gets no MCP tools: droid reads MCP servers only from its settings files in the project or your home, which agent-relay leaves alone; it messages with `agent-relay send`/`inbox` and `->relay:` lines",
            ]
        );
    }
}
