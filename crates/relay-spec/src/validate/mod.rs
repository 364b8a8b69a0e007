//! Checks a loaded workflow file beyond its shape: names that must be unique, well formed
//! or must exist, dependency cycles, step-output references that are not upstream,
//! fields that only some patterns use, values out of range, inputs over the limits.
//! Every problem is collected (not just the first) with its position.
//!
//! | file | checks |
//! |---|---|
//! | `names.rs` | the rules every name follows (not empty, no control characters, bounded length; an agent's, one messages can be sent to) |
//! | `file.rs` | agents and `reportsTo`, barriers, swarm and coordination settings |
//! | `steps.rs` | each step: its kind, agent, dependencies, verification, items, texts |
//! | `refs.rs` | `{{steps.X.output}}` and `{{item}}` references |
//! | `control.rs` | loops, conditions, `outputVar`, approvals, sessions |
//! | `groups.rs` | groups of nested steps (`steps:` on a step) |

mod control;
mod file;
mod groups;
mod names;
mod refs;
mod steps;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::diagnostic::{Diagnostic, Report, Severity};
pub use control::{LOOP_VARS, is_controlled, is_loop};
pub use names::{ADDRESSABLE_NAME_RULE, is_addressable_name};

use crate::graph::{StepGraph, StepIdx};
use crate::load::{Loaded, StepField, did_you_mean};
use crate::template::{Ref, references};
use crate::types::{Items, RelayFile, Scalar, Step, WorkflowDef};

/// Picks the workflow to run: `name` if given, else the first one.
pub fn select_workflow<'a>(
    file: &'a RelayFile,
    name: Option<&str>,
) -> Result<(usize, &'a WorkflowDef), String> {
    match name {
        None => file
            .workflows
            .first()
            .map(|w| (0, w))
            .ok_or_else(|| "the file defines no workflows".to_string()),
        Some(n) => file
            .workflows
            .iter()
            .enumerate()
            .find(|(_, w)| w.name == n)
            .ok_or_else(|| {
                let mut msg = format!("unknown workflow `{}`", crate::suggest::shown(n));
                if let Some(best) = did_you_mean(n, file.workflows.iter().map(|w| w.name.as_str()))
                {
                    msg.push_str(&format!(" (did you mean `{best}`?)"));
                }
                let names: Vec<&str> = file.workflows.iter().map(|w| w.name.as_str()).collect();
                if !names.is_empty() {
                    msg.push_str(&format!("; the file defines: {}", names.join(", ")));
                }
                msg
            }),
    }
}

/// What the checks of one file share: the file, where its names stand, and its agents
/// by name.
pub(crate) struct Ctx<'a> {
    pub loaded: &'a Loaded,
    pub file: &'a RelayFile,
    pub agents: HashMap<&'a str, usize>,
}

impl Ctx<'_> {
    /// ` (did you mean `X`?)` for an unknown agent name, or nothing.
    pub fn agent_hint(&self, name: &str) -> String {
        hint(did_you_mean(
            name,
            self.file.agents.iter().map(|a| a.name.as_str()),
        ))
    }
}

/// ` (did you mean `X`?)`, or nothing.
pub(crate) fn hint(best: Option<&str>) -> String {
    best.map(|b| format!(" (did you mean `{b}`?)"))
        .unwrap_or_default()
}

/// Whether `pattern` compiles as a regular expression (bounded in size, so a hostile
/// pattern cannot take unbounded memory to compile).
pub(crate) fn regex_check(pattern: &str) -> Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
}

/// Validates the whole file; with `workflow`, also that it names an existing workflow.
pub fn validate(loaded: &Loaded, workflow: Option<&str>) -> Report {
    let file = &loaded.file;
    let mut report = Report::default();
    report
        .diagnostics
        .extend(loaded.diagnostics.iter().cloned());
    let mut agents: HashMap<&str, usize> = HashMap::new();
    for (i, a) in file.agents.iter().enumerate() {
        agents.entry(a.name.as_str()).or_insert(i);
    }
    let ctx = Ctx {
        loaded,
        file,
        agents,
    };

    file::validate_file(&ctx, &mut report);
    if file.workflows.is_empty() {
        report.push(Diagnostic::error(
            None,
            "the file defines no workflows (add `workflows:` with at least one workflow and steps)",
        ));
    }
    let mut wf_names = BTreeSet::new();
    for (w, wf) in file.workflows.iter().enumerate() {
        let pos = loaded.map.workflow(w);
        names::check_name("workflow", &wf.name, pos, &mut report);
        if !wf_names.insert(wf.name.as_str()) {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "duplicate workflow name `{}`",
                    crate::suggest::shown(&wf.name)
                ),
            ));
        }
        steps::validate_workflow(&ctx, w, wf, &mut report);
    }

    if let Some(n) = workflow
        && !file.workflows.is_empty()
        && let Err(msg) = select_workflow(file, Some(n))
    {
        report.push(Diagnostic::error(None, msg));
    }
    report.sort();
    report
}

/// The texts of a step that may hold references, with the field each came from: the
/// task, command, cwd, verification value, `compensate`, `items` (as text, or each text
/// item of a list), `loop.over` as text (a list's items are taken as written), a
/// worktree's branch, base and path, what a waitFor step waits for, and an integration's
/// parameters.
pub fn step_texts(step: &Step) -> Vec<(StepField, &str)> {
    let mut v = Vec::new();
    if let Some(t) = &step.task {
        v.push((StepField::Task, t.as_str()));
    }
    if let Some(c) = &step.command {
        v.push((StepField::Command, c.as_str()));
    }
    if let Some(c) = &step.cwd {
        v.push((StepField::Cwd, c.as_str()));
    }
    if let Some(Some(Scalar::Text(t))) = step.verification.as_ref().map(|v| &v.value) {
        v.push((StepField::VerificationValue, t.as_str()));
    }
    if let Some(c) = &step.compensate {
        v.push((StepField::Compensate, c.as_str()));
    }
    match &step.items {
        Some(Items::Text(t)) => v.push((StepField::Items, t.as_str())),
        Some(Items::List(list)) => v.extend(list.iter().filter_map(|s| match s {
            Scalar::Text(t) => Some((StepField::Items, t.as_str())),
            _ => None,
        })),
        None => {}
    }
    if let Some(Items::Text(t)) = step.loop_.as_ref().and_then(|l| l.over.as_ref()) {
        v.push((StepField::Loop, t.as_str()));
    }
    for t in [&step.branch, &step.base_branch, &step.path]
        .into_iter()
        .flatten()
    {
        v.push((StepField::Branch, t.as_str()));
    }
    if let Some(w) = &step.wait_for {
        v.extend(w.all_paths().into_iter().map(|p| (StepField::WaitFor, p)));
    }
    v.extend(step.params.values().filter_map(|p| match p {
        Scalar::Text(t) => Some((StepField::Params, t.as_str())),
        _ => None,
    }));
    v
}

/// Each step's dependencies as indices: its `dependsOn` (a barrier standing for the steps
/// it waits for) plus those its pattern implies. Unknown names are left out. The same as
/// [`StepGraph::waits_for`], for callers that work with plain indices.
pub fn effective_deps(file: &RelayFile, wf: &WorkflowDef) -> Vec<Vec<usize>> {
    let graph = StepGraph::for_workflow(file, wf);
    (0..graph.len())
        .map(|i| {
            graph
                .waits_for(StepIdx(i))
                .iter()
                .map(|d| d.get())
                .collect()
        })
        .collect()
}

/// The names a step with `items` provides itself: `{{item}}` and `{{itemIndex}}`.
pub const ITEM_VARS: [&str; 2] = ["item", "itemIndex"];

/// The user variables the workflow's steps refer to, in name order.
pub fn required_vars(wf: &WorkflowDef) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let outputs: BTreeSet<&str> = wf
        .steps
        .iter()
        .filter_map(|s| s.output_var.as_deref())
        .collect();
    for (i, s) in wf.steps.iter().enumerate() {
        // A group's loop gives its variables to every step inside it.
        let owner = crate::groups::loop_owner(wf, i);
        let mut provided: Vec<&str> = if s.items.is_some() {
            ITEM_VARS.to_vec()
        } else {
            Vec::new()
        };
        if is_loop(owner) {
            provided.extend(LOOP_VARS);
            if let Some(l) = &owner.loop_
                && l.over.is_some()
            {
                provided.push(l.var());
            }
        }
        let given = |v: &str| provided.contains(&v) || outputs.contains(v);
        for (_, text) in step_texts(s) {
            for r in references(text) {
                if let Ref::Var(v) = r
                    && !given(&v)
                {
                    vars.insert(v);
                }
            }
        }
        // Variables a condition reads (`vars.X` or a bare `X`).
        let break_if = s
            .break_if
            .as_deref()
            .filter(|b| !matches!(b.trim(), "success" | "failure"));
        for (src, in_loop) in [(s.if_.as_deref(), false), (break_if, true)] {
            let Some(expr) = src.and_then(|c| crate::condition::parse(c).ok()) else {
                continue;
            };
            for p in expr.paths() {
                if let crate::condition::Name::Var(v) = crate::condition::name(p) {
                    let loop_own = in_loop && matches!(v, "output" | "status");
                    if !loop_own && !given(v) {
                        vars.insert(v.to_string());
                    }
                }
            }
        }
    }
    vars
}

/// The variables `wf` needs that `vars` does not provide.
pub fn missing_vars(wf: &WorkflowDef, vars: &BTreeMap<String, String>) -> Vec<String> {
    required_vars(wf)
        .into_iter()
        .filter(|v| !vars.contains_key(v))
        .collect()
}

#[cfg(test)]
mod tests;
