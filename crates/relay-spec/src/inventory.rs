//! Which of the format's newer fields a file sets, by where they stand
//! (`agents[dev].permissions`, `workflows[ship].steps[wait].type: waitFor`). The runner
//! names the ones it does not act on yet, so no field is ever ignored silently.

use crate::types::{CustomCheck, RelayFile, StepType};

/// Every field of the reference format beyond the original one that `file` sets, in file
/// order.
pub fn reference_fields_in_use(file: &RelayFile) -> Vec<String> {
    let mut out = Vec::new();
    let mut set = |on: bool, path: String| {
        if on {
            out.push(path);
        }
    };
    set(!file.paths.is_empty(), "paths".into());
    set(
        !file.permission_profiles.is_empty(),
        "permission_profiles".into(),
    );
    set(file.trajectories.is_some(), "trajectories".into());
    if let Some(i) = &file.integrations {
        set(i.relayfile.is_some(), "integrations.relayfile".into());
        set(
            !i.subscriptions.is_empty(),
            "integrations.subscriptions".into(),
        );
    }
    if let Some(s) = &file.swarm {
        set(
            s.completion_grace_period_ms.is_some(),
            "swarm.completionGracePeriodMs".into(),
        );
        set(s.human_assistance.is_some(), "swarm.humanAssistance".into());
        set(s.token_budget.is_some(), "swarm.tokenBudget".into());
    }
    for a in &file.agents {
        let at = |f: &str| format!("agents[{}].{f}", a.name);
        set(a.permissions.is_some(), at("permissions"));
        set(a.workdir.is_some(), at("workdir"));
        set(!a.additional_paths.is_empty(), at("additionalPaths"));
        set(a.task.is_some(), at("task"));
        set(!a.watch.is_empty(), at("watch"));
        set(!a.subscriptions.is_empty(), at("subscriptions"));
        set(
            a.constraints
                .as_ref()
                .is_some_and(|c| c.max_tokens.is_some()),
            at("constraints.maxTokens"),
        );
    }
    for wf in &file.workflows {
        set(
            !wf.preflight.is_empty(),
            format!("workflows[{}].preflight", wf.name),
        );
        for s in &wf.steps {
            let at = |f: &str| format!("workflows[{}].steps[{}].{f}", wf.name, s.name);
            let kind = s.kind();
            set(
                matches!(
                    kind,
                    StepType::Worktree | StepType::WaitFor | StepType::Integration
                ),
                at(&format!("type: {}", kind.as_str())),
            );
            set(s.use_.is_some(), at("use"));
            set(s.workdir.is_some(), at("workdir"));
            set(s.human_assistance.is_some(), at("humanAssistance"));
            set(
                s.verification
                    .as_ref()
                    .and_then(|v| v.custom_check())
                    .is_some_and(|c| matches!(c, CustomCheck::Regex(_))),
                at("verification: regex"),
            );
        }
    }
    if let Some(e) = &file.error_handling {
        set(e.repair_agent.is_some(), "errorHandling.repairAgent".into());
        set(
            e.repair_retries.is_some(),
            "errorHandling.repairRetries".into(),
        );
        set(
            e.on_exhaustion.is_some(),
            "errorHandling.onExhaustion".into(),
        );
        set(!e.protect.is_empty(), "errorHandling.protect".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_newer_fields_a_file_sets_and_nothing_else() {
        let f = crate::parse(
            "name: t\npaths: [{name: p, path: x}]\nswarm: {tokenBudget: 5, maxConcurrency: 2}\nagents:\n  - {name: a, cli: claude, workdir: p, role: r}\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: t, verification: {type: custom, value: 'regex:ok'}}\n      - {name: wt, type: worktree, branch: b}\n      - {name: d, type: deterministic, command: 'true'}\nerrorHandling: {protect: ['*.lock'], maxRetries: 1}\n",
            "t.yaml",
        )
        .expect("parses")
        .file;
        assert_eq!(
            reference_fields_in_use(&f),
            [
                "paths",
                "swarm.tokenBudget",
                "agents[a].workdir",
                "workflows[w].steps[s].verification: regex",
                "workflows[w].steps[wt].type: worktree",
                "errorHandling.protect",
            ]
        );
        let plain = crate::parse("name: t\nagents: [{name: a, cli: claude}]\n", "t.yaml")
            .expect("parses")
            .file;
        assert!(reference_fields_in_use(&plain).is_empty());
    }
}
