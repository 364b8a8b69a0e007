//! Sub-workflows (an extension): a step `workflow: other.yaml` (with `workflowName:` to
//! pick one of that file's workflows, and `params:` for its `{{...}}` variables) runs the
//! other workflow's steps inside this run. It is expanded when the file is loaded:
//!
//! - each step `X` of the other workflow becomes step `PARENT/X` (its `dependsOn` and its
//!   `steps.X.` references renamed alike); those that depend on nothing depend on what
//!   the parent step depends on;
//! - the parent step becomes a deterministic step that depends on the other workflow's
//!   last steps and whose output is theirs (so `{{steps.PARENT.output}}` is the
//!   sub-workflow's result, and steps after it wait for all of it);
//! - the other file's agents join this file's (one of the same name must be the same);
//! - `params` and the other file's declared variable defaults fill its `{{NAME}}`s;
//! - sub-workflows nest, and a file may run another workflow of its own; a workflow that
//!   runs itself, directly or not (the same file and workflow name coming back), is an
//!   error naming the workflows. Of an included file only the workflow it runs is
//!   expanded: its other workflows do not run there.
//!
//! The sub-workflow's steps keep their own dependencies. When the other file sets a
//! pattern (`swarm.pattern`), its steps run under it as they would at the top of their
//! own file: the dependencies it implies are written into their `dependsOn`, and each
//! step is marked to be planned under it (`run_as`; the including workflow's pattern
//! orders them no further). Only patterns whose whole effect is on their own steps nest
//! ([`nestable`]); the others shape the whole run and are refused, naming the pattern.
//! Without a pattern of its own, a sub-workflow's steps run under the including one's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::load::Loaded;
use crate::rename::{map_texts, rename_refs};
use crate::source_map::StepField;
use crate::template::substitute;
use crate::types::{Agent, Pattern, RelayFile, Step, StepType};

/// How deep sub-workflows may nest.
const MAX_DEPTH: usize = 8;

/// Whether a sub-workflow may run under its own `pattern` inside another workflow, and
/// why not when it may not: what the pattern shapes beyond its own steps.
pub fn nestable(pattern: Pattern) -> Result<(), &'static str> {
    match pattern {
        Pattern::Dag
        | Pattern::FanOut
        | Pattern::Pipeline
        | Pattern::Cascade
        | Pattern::Mesh
        | Pattern::MapReduce => Ok(()),
        Pattern::HubSpoke | Pattern::Hierarchical | Pattern::Handoff => {
            Err("it decides who may message whom, and that rule is the whole run's")
        }
        Pattern::Supervisor | Pattern::Reflection | Pattern::ReviewLoop | Pattern::Verifier => {
            Err("its reviews are linked across the whole workflow by the agents' roles")
        }
        Pattern::RedTeam
        | Pattern::Auction
        | Pattern::Consensus
        | Pattern::Debate
        | Pattern::Competitive => Err(
            "its votes, bids and rounds take their participants and settings from the whole file",
        ),
        Pattern::Escalation | Pattern::CircuitBreaker | Pattern::Saga => {
            Err("its fallbacks, breaker and compensations are kept for the whole run")
        }
        Pattern::Blackboard | Pattern::Swarm => {
            Err("its shared board and agent pool are the whole run's")
        }
        Pattern::ScatterGather => {
            Err("its gathering step is found among the steps of the whole workflow")
        }
    }
}

/// Whether `file` has a step that names another workflow file.
pub fn uses_subworkflows(file: &RelayFile) -> bool {
    file.workflows
        .iter()
        .any(|wf| wf.steps.iter().any(|s| s.workflow.is_some()))
}

/// A workflow being expanded: its file (canonical) and its name.
type Frame = (PathBuf, String);

/// Expands every sub-workflow step of `loaded` (read from `path`); what cannot be
/// expanded is reported at its step.
pub fn expand_loaded(loaded: &mut Loaded, path: &Path) {
    loaded.subworkflows_read = true;
    if !uses_subworkflows(&loaded.file) {
        return;
    }
    let key = canonical(path);
    for w in 0..loaded.file.workflows.len() {
        let name = loaded.file.workflows[w].name.clone();
        expand_workflow(loaded, w, path, &mut vec![(key.clone(), name)]);
    }
}

/// Expands the sub-workflow steps of workflow `w` of `loaded` (read from `path`), which
/// runs inside the workflows of `stack` (the last one is `w` itself).
fn expand_workflow(loaded: &mut Loaded, w: usize, path: &Path, stack: &mut Vec<Frame>) {
    let mut found = Vec::new();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let RelayFile {
        workflows, agents, ..
    } = &mut loaded.file;
    if let Some(wf) = workflows.get_mut(w) {
        let mut steps = std::mem::take(&mut wf.steps);
        let mut added = Vec::new();
        for (s, step) in steps.iter_mut().enumerate() {
            // A group's member cannot run a sub-workflow; validation says so.
            if step.workflow.is_none() || step.group.is_some() {
                continue;
            }
            match inline(step, &dir, stack, agents) {
                Ok(more) => added.extend(more),
                Err(why) => found.push((w, s, why)),
            }
        }
        steps.extend(added);
        wf.steps = steps;
    }
    for (w, s, msg) in found {
        let pos = loaded.map.step(w, s, StepField::Name);
        loaded.diagnostics.push(Diagnostic::error(pos, msg));
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Turns `step` into the step that collects its sub-workflow's result, and returns the
/// sub-workflow's steps, renamed.
fn inline(
    step: &mut Step,
    dir: &Path,
    stack: &mut Vec<Frame>,
    agents: &mut Vec<Agent>,
) -> Result<Vec<Step>, String> {
    let name = step.name.clone();
    let rel = step.workflow.clone().unwrap_or_default();
    if step.agent.is_some() || step.task.is_some() || step.command.is_some() {
        return Err(format!(
            "step `{name}` runs the workflow `{rel}`; it cannot also have an `agent`, `task` or `command`"
        ));
    }
    if stack.len() > MAX_DEPTH {
        return Err(format!(
            "step `{name}`: sub-workflows nest deeper than {MAX_DEPTH} levels"
        ));
    }
    let path = dir.join(&rel);
    let source = crate::load_error::read_bounded(&path)
        .map_err(|e| format!("step `{name}`: cannot read sub-workflow `{rel}`: {e}"))?;
    let mut sub = crate::load::parse(&source, &path.display().to_string())
        .map_err(|e| format!("step `{name}`: sub-workflow `{rel}`: {e}"))?;
    if sub.uses_custom_steps() {
        let custom = crate::custom_steps::CustomSteps::find_for(&path)
            .map_err(|e| format!("step `{name}`: sub-workflow `{rel}`: {e}"))?;
        sub.expand_custom_steps(&custom);
    }
    crate::checklist::load_files(&mut sub, path.parent().unwrap_or(Path::new(".")));
    // Only the workflow this step runs is expanded (the others do not run here); one
    // that is missing is reported below.
    sub.subworkflows_read = true;
    let picked = match &step.workflow_name {
        Some(n) => sub.file.workflows.iter().position(|w| w.name == *n),
        None => (!sub.file.workflows.is_empty()).then_some(0),
    };
    if let Some(w) = picked {
        let key: Frame = (canonical(&path), sub.file.workflows[w].name.clone());
        if let Some(i) = stack.iter().position(|f| *f == key) {
            let cycle: Vec<String> = stack[i..]
                .iter()
                .chain(std::iter::once(&key))
                .map(|(p, wf)| format!("{} (workflow `{wf}`)", p.display()))
                .collect();
            return Err(format!(
                "step `{name}`: sub-workflows include each other: {}",
                cycle.join(" -> ")
            ));
        }
        stack.push(key);
        expand_workflow(&mut sub, w, &path, stack);
        stack.pop();
    }
    let report = crate::validate::validate(&sub, step.workflow_name.as_deref());
    if let Some(e) = report.errors().next() {
        let at = e
            .pos
            .map(|p| format!("{}:{}:{}: ", rel, p.line, p.column))
            .unwrap_or_else(|| format!("{rel}: "));
        return Err(format!("step `{name}`: sub-workflow {at}{}", e.message));
    }
    let wf = match &step.workflow_name {
        Some(n) => sub
            .file
            .workflows
            .iter()
            .find(|w| w.name == *n)
            .ok_or_else(|| {
                let names: Vec<&str> = sub.file.workflows.iter().map(|w| w.name.as_str()).collect();
                format!(
                    "step `{name}`: `{rel}` has no workflow `{n}` (it has: {})",
                    names.join(", ")
                )
            })?,
        None => sub
            .file
            .workflows
            .first()
            .ok_or_else(|| format!("step `{name}`: `{rel}` has no workflow"))?,
    };
    let pattern = sub.file.swarm.as_ref().and_then(|sw| sw.pattern);
    if let Some(p) = pattern
        && let Err(why) = nestable(p)
    {
        return Err(format!(
            "step `{name}`: sub-workflow `{rel}` runs as `{}` (its `swarm.pattern`), which cannot run nested inside another workflow: {why}",
            p.as_str()
        ));
    }
    // What the pattern implies between the sub-workflow's own steps, written out.
    let implied: Vec<Vec<usize>> = match pattern {
        Some(p) => crate::pattern::implicit_deps(&sub.file, wf, p),
        None => vec![Vec::new(); wf.steps.len()],
    };
    for a in &sub.file.agents {
        match agents.iter().find(|b| b.name == a.name) {
            Some(b) if b != a => {
                return Err(format!(
                    "step `{name}`: agent `{}` of `{rel}` is not the same as this file's agent of that name",
                    a.name
                ));
            }
            Some(_) => {}
            None => agents.push(a.clone()),
        }
    }
    let mut values = sub.file.vars_with_defaults(&BTreeMap::new());
    values.extend(step.params.iter().map(|(k, v)| (k.clone(), v.as_text())));
    let names: BTreeSet<String> = wf.steps.iter().map(|s| s.name.clone()).collect();
    let steps: Vec<Step> = wf
        .steps
        .iter()
        .zip(&implied)
        .map(|(s, extra)| {
            let mut s = s.clone();
            for &d in extra {
                let dep = &wf.steps[d].name;
                if !s.depends_on.contains(dep) {
                    s.depends_on.push(dep.clone());
                }
            }
            if s.run_as.is_none() {
                s.run_as = pattern;
            }
            s
        })
        .collect();
    let depended: BTreeSet<&str> = steps
        .iter()
        .flat_map(|s| s.depends_on.iter().map(String::as_str))
        .collect();
    let rename = |text: &str| rename_refs(&substitute(text, &values), &name, &names);
    let mut out = Vec::with_capacity(steps.len());
    let mut leaves = Vec::new();
    for s in &steps {
        let mut t = s.clone();
        // A group's members are its own business: the group stands for them.
        if !depended.contains(s.name.as_str()) && s.group.is_none() {
            leaves.push(format!("{name}/{}", s.name));
        }
        t.name = format!("{name}/{}", s.name);
        if let Some(g) = &mut t.group {
            *g = format!("{name}/{g}");
        }
        t.depends_on = if s.depends_on.is_empty() && s.group.is_none() {
            step.depends_on.clone()
        } else {
            s.depends_on
                .iter()
                .map(|d| {
                    if names.contains(d) {
                        format!("{name}/{d}")
                    } else {
                        d.clone()
                    }
                })
                .collect()
        };
        map_texts(&mut t, &rename);
        out.push(t);
    }
    // The parent step collects the result: the output of the sub-workflow's last steps.
    let words: Vec<String> = leaves
        .iter()
        .map(|l| format!("{{{{steps.{l}.output}}}}"))
        .collect();
    step.step_type = Some(StepType::Deterministic);
    step.command = Some(format!("printf '%s\\n' {}", words.join(" ")));
    step.depends_on = leaves;
    step.workflow = None;
    step.workflow_name = None;
    step.params.clear();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent including `sub.yaml`, written with `sub` as its text, in a directory of
    /// its own.
    fn including(tag: &str, sub: &str) -> Loaded {
        let dir = std::env::temp_dir().join(format!("relay-sub-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sub.yaml"), sub).unwrap();
        let parent = "name: p\nagents: [{name: dev, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - {name: prep, agent: dev, task: go}\n      - {name: ci, workflow: sub.yaml, dependsOn: [prep]}\n";
        std::fs::write(dir.join("wf.yaml"), parent).unwrap();
        let loaded = crate::load_file(&dir.join("wf.yaml")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    fn sub_with(pattern: &str) -> String {
        format!(
            "name: s\nswarm: {{pattern: {pattern}}}\nagents: [{{name: dev, cli: claude}}]\nworkflows:\n  - name: w\n    steps:\n      - {{name: a, agent: dev, task: a}}\n      - {{name: b, agent: dev, task: b}}\n      - {{name: c, agent: dev, task: c}}\n"
        )
    }

    #[test]
    fn a_sub_workflows_own_pattern_orders_its_steps_and_marks_them() {
        let l = including("pipeline", &sub_with("pipeline"));
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        let steps = &l.file.workflows[0].steps;
        let dep = |n: &str| {
            let s = steps.iter().find(|s| s.name == n).unwrap();
            (s.depends_on.clone(), s.run_as)
        };
        assert_eq!(
            dep("ci/a"),
            (vec!["prep".to_string()], Some(Pattern::Pipeline))
        );
        assert_eq!(
            dep("ci/b"),
            (vec!["ci/a".to_string()], Some(Pattern::Pipeline))
        );
        assert_eq!(
            dep("ci/c"),
            (vec!["ci/b".to_string()], Some(Pattern::Pipeline))
        );
        // The collecting step waits for the pipeline's last step only.
        assert_eq!(dep("ci"), (vec!["ci/c".to_string()], None));
        // Fan-out implies nothing: all three start after `prep`.
        let l = including("fanout", &sub_with("fan-out"));
        let steps = &l.file.workflows[0].steps;
        let c = steps.iter().find(|s| s.name == "ci/c").unwrap();
        assert_eq!(c.depends_on, ["prep"]);
        assert_eq!(c.run_as, Some(Pattern::FanOut));
    }

    #[test]
    fn a_pattern_that_shapes_the_whole_run_is_refused_by_name() {
        for p in [
            "debate",
            "hub-spoke",
            "review-loop",
            "saga",
            "swarm",
            "scatter-gather",
        ] {
            let l = including(p, &sub_with(p));
            let msg = &l.diagnostics.first().expect("refused").message;
            assert!(
                msg.contains(&format!("runs as `{p}`"))
                    && msg.contains("cannot run nested inside another workflow"),
                "{msg}"
            );
        }
    }

    /// `src` written as `same.yaml` in a directory of its own, loaded from there.
    fn load_as_same(tag: &str, src: &str) -> Loaded {
        let dir = std::env::temp_dir().join(format!("relay-same-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("same.yaml"), src).unwrap();
        let loaded = crate::load_file(&dir.join("same.yaml")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        loaded
    }

    const SAME_HEAD: &str = "name: t\nagents: [{name: dev, cli: claude}]\nworkflows:\n";

    #[test]
    fn a_file_may_run_another_workflow_of_its_own() {
        let l = load_as_same(
            "other",
            &format!(
                "{SAME_HEAD}  - name: m\n    steps:\n      - {{name: x, workflow: same.yaml, workflowName: n}}\n  - name: n\n    steps:\n      - {{name: e, type: deterministic, command: echo hi}}\n"
            ),
        );
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        assert!(!crate::validate(&l, None).has_errors());
        let names: Vec<&str> = l.file.workflows[0]
            .steps
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["x", "x/e"]);
    }

    #[test]
    fn a_workflow_that_runs_itself_is_a_cycle_naming_the_workflows() {
        let cycle = |l: &Loaded| {
            l.diagnostics
                .iter()
                .map(|d| d.message.clone())
                .find(|m| m.contains("include each other"))
                .unwrap_or_else(|| panic!("no cycle in {:?}", l.diagnostics))
        };
        let direct = load_as_same(
            "direct",
            &format!(
                "{SAME_HEAD}  - name: m\n    steps:\n      - {{name: x, workflow: same.yaml, workflowName: m}}\n"
            ),
        );
        let m = cycle(&direct);
        assert!(
            m.contains("same.yaml (workflow `m`) -> ") && m.ends_with("same.yaml (workflow `m`)"),
            "{m}"
        );
        // Its first workflow, by leaving out `workflowName`, is the same workflow.
        let first = load_as_same(
            "first",
            &format!(
                "{SAME_HEAD}  - name: m\n    steps:\n      - {{name: x, workflow: same.yaml}}\n"
            ),
        );
        cycle(&first);
        let through = load_as_same(
            "through",
            &format!(
                "{SAME_HEAD}  - name: m\n    steps:\n      - {{name: x, workflow: same.yaml, workflowName: n}}\n  - name: n\n    steps:\n      - {{name: y, workflow: same.yaml, workflowName: m}}\n"
            ),
        );
        let m = cycle(&through);
        assert!(
            m.contains("(workflow `m`) -> ")
                && m.contains("(workflow `n`) -> ")
                && m.ends_with("(workflow `m`)"),
            "{m}"
        );
    }
}
