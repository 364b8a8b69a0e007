//! Whether a workflow's permissions can be enforced on this machine, decided before
//! anything starts: for every agent its steps use (and every deterministic step with
//! permissions of its own), the plan of what the kernel will enforce, the rules Landlock
//! cannot express, and the rules this kernel cannot enforce. A run refuses to start such
//! an agent (exit 4, naming agent and rule) unless `--allow-unenforced`; then it says
//! what is not enforced. `validate --explain` and rehearsals print the same plan.

use std::path::Path;

use relay_broker::cli_table::profile;
use relay_broker::sandbox::plan::{Context, Plan, explain, missing_features, plan};
use relay_broker::sandbox::probe;
use relay_spec::{RelayFile, StepType, WorkflowDef};

/// One agent's (or step's) plan.
#[derive(Debug, Clone)]
pub struct OwnerPlan {
    /// `agent reviewer`, `step build`.
    pub owner: String,
    /// Where its rules came from (`preset readonly`, `profile reviewer`).
    pub sources: Vec<String>,
    /// The plan.
    pub plan: Plan,
}

/// The plans of a workflow, on this machine's kernel.
#[derive(Debug, Clone)]
pub struct Enforcement {
    /// The Landlock ABI here (0: none).
    pub abi: u32,
    /// Every agent its steps use, and deterministic steps with permissions.
    pub owners: Vec<OwnerPlan>,
    /// Lines for what cannot be enforced: each names its owner and rule.
    pub refusals: Vec<String>,
}

/// Plans the enforcement of `wf`'s permissions with `workdir` as the project.
pub fn check(file: &RelayFile, wf: &WorkflowDef, workdir: &Path, allow: bool) -> Enforcement {
    let abi = probe::abi();
    let mut owners: Vec<OwnerPlan> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let agents = wf
        .steps
        .iter()
        .filter(|s| s.kind() == StepType::Agent)
        .filter_map(|s| s.agent.as_deref())
        .chain(
            file.error_handling
                .iter()
                .filter_map(|e| e.repair_agent.as_deref()),
        );
    for name in agents {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let Some(agent) = file.agent(name) else {
            continue;
        };
        let Ok(perms) = relay_spec::permissions::effective_permissions(file, agent) else {
            continue;
        };
        let owner = format!("agent `{}`", agent.name);
        let p = plan(
            &owner,
            &perms,
            &Context {
                agent: Some(&agent.name),
                extra: &agent.additional_paths,
                writable: profile(agent.cli).state_paths,
                allow_unenforced: allow,
                ..Context::new(workdir)
            },
        );
        owners.push(OwnerPlan {
            owner,
            sources: perms.sources.clone(),
            plan: p,
        });
    }
    for step in wf
        .steps
        .iter()
        .filter(|s| s.kind() == StepType::Deterministic)
    {
        let Some(Ok(perms)) = relay_spec::permissions::step_permissions(file, step) else {
            continue;
        };
        let owner = format!("step `{}`", step.name);
        let p = plan(
            &owner,
            &perms,
            &Context {
                allow_unenforced: allow,
                ..Context::new(workdir)
            },
        );
        owners.push(OwnerPlan {
            owner,
            sources: perms.sources.clone(),
            plan: p,
        });
    }
    let mut refusals = Vec::new();
    for o in &owners {
        for f in &o.plan.inexpressible {
            refusals.push(format!(
                "{}: `{}` cannot be enforced as written: {}",
                o.owner, f.rule, f.why
            ));
        }
        if let Some(s) = &o.plan.sandbox {
            for (rule, why) in missing_features(s, abi) {
                refusals.push(format!("{}: `{rule}` cannot be enforced: {why}", o.owner));
            }
        }
    }
    Enforcement {
        abi,
        owners,
        refusals,
    }
}

impl Enforcement {
    /// Warnings for a run that goes on with `--allow-unenforced`.
    pub fn warnings(&self) -> Vec<String> {
        self.refusals
            .iter()
            .map(|r| format!("not enforced (--allow-unenforced): {r}"))
            .collect()
    }

    /// What a rehearsal says instead of enforcing: each owner's rules.
    pub fn rehearsal_lines(&self) -> Vec<String> {
        self.owners
            .iter()
            .filter(|o| o.plan.sandbox.is_some() || !o.plan.inexpressible.is_empty())
            .map(|o| {
                format!(
                    "rehearsal: {} would run with: {}",
                    o.owner,
                    explain(&o.plan, self.abi).join("; ")
                )
            })
            .collect()
    }

    /// `validate --explain`: each owner, where its rules come from, and how each is
    /// enforced here.
    pub fn explain_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "permissions (this kernel: {}):",
            probe::describe(self.abi)
        )];
        for o in &self.owners {
            out.push(format!("  {} ({}):", o.owner, o.sources.join(" + ")));
            for line in explain(&o.plan, self.abi) {
                out.push(format!("    {line}"));
            }
        }
        out
    }
}
