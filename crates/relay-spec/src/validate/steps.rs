//! The checks of one workflow: step names, each step by its kind, dependencies,
//! verification, the agents a step names, `items`, the size and content of its texts,
//! bounds that cannot be 0 (`timeoutMs`, `maxIterations`), the auction's bidders, and then
//! the graph (cycles) and the references in it.

use std::collections::HashMap;

use crate::graph::StepGraph;
use crate::limits::MAX_TEXT_BYTES;
use crate::load::StepField;
use crate::pattern::{agent_has, choose};
use crate::suggest::{did_you_mean, shown};
use crate::types::{CustomCheck, Pattern, Step, StepType, VerificationType, WorkflowDef};

use super::names::{check_name, check_no_nul};
use super::{Ctx, Diagnostic, Report, hint};

/// The patterns that run a step once per item.
pub(super) const ITEM_PATTERNS: [Pattern; 2] = [Pattern::MapReduce, Pattern::ScatterGather];

pub(super) fn validate_workflow(ctx: &Ctx<'_>, w: usize, wf: &WorkflowDef, report: &mut Report) {
    let map = &ctx.loaded.map;
    if wf.steps.is_empty() {
        report.push(Diagnostic::error(
            map.workflow(w),
            format!("workflow `{}` has no steps", wf.name),
        ));
        return;
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(wf.steps.len());
    for (s, step) in wf.steps.iter().enumerate() {
        let pos = map.step(w, s, StepField::Name);
        if let Some(Err(e)) = crate::permissions::step_permissions(ctx.file, step) {
            report.push(Diagnostic::error(pos, e.to_string()));
        }
        bounds(ctx, w, s, step, report);
        if check_name("step", &step.name, pos, report)
            && index.insert(step.name.as_str(), s).is_some()
        {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "duplicate step name `{}` in workflow `{}`",
                    step.name, wf.name
                ),
            ));
        }
    }
    let choice = choose(ctx.file, wf);
    let graph = StepGraph::new(ctx.file, wf, choice.pattern);
    for u in graph.unresolved() {
        let step = &wf.steps[u.step.get()];
        report.push(Diagnostic::error(
            map.step(w, u.step.get(), StepField::DependsOn(u.entry)),
            format!(
                "step `{}` depends on unknown step `{}`{}",
                step.name,
                shown(&u.name),
                hint(did_you_mean(
                    &u.name,
                    wf.steps.iter().map(|s| s.name.as_str())
                ))
            ),
        ));
    }
    super::file::preflight(ctx, w, wf, report);
    super::groups::step_groups(ctx, w, wf, &index, report);
    for (s, step) in wf.steps.iter().enumerate() {
        // A `use` that could not be expanded is reported by loading; the step has no
        // kind to check yet.
        let unexpanded = step.use_.is_some() && !step.expanded;
        if let Some(file) = &step.workflow {
            if step.group.is_some() {
                // Reported by `groups.rs`.
                continue;
            }
            // Loading a file expands its sub-workflows (or reports why not); text with
            // no file to look next to cannot.
            if !ctx.loaded.subworkflows_read && ctx.loaded.diagnostics.is_empty() {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!(
                        "step `{}` runs the workflow file `{}`, which is read only when this workflow is loaded from a file",
                        step.name,
                        shown(file)
                    ),
                ));
            }
            continue;
        }
        if super::groups::is_top_group(wf, s) {
            // A group runs nothing of its own; `groups.rs` checks it and its members.
            texts(ctx, w, s, step, report);
            continue;
        }
        if !unexpanded {
            step_kind(ctx, w, s, step, report);
        }
        verification(ctx, w, s, step, report);
        named_agents(ctx, w, s, step, report);
        texts(ctx, w, s, step, report);
        let pattern = step.run_as.unwrap_or(choice.pattern);
        if step.items.is_some() && !ITEM_PATTERNS.contains(&pattern) {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Items),
                format!(
                    "step `{}` has `items`, which only the map-reduce and scatter-gather \
                     patterns use; workflow `{}` runs as {} ({})",
                    step.name,
                    wf.name,
                    pattern.as_str(),
                    if step.run_as.is_some() {
                        "the pattern of its sub-workflow"
                    } else {
                        &choice.reason
                    }
                ),
            ));
        }
        if choice.pattern == Pattern::Auction {
            auction(ctx, w, s, step, report);
        }
    }

    if let Some(cycle) = graph.cycle() {
        let first = cycle[0].get();
        let names: Vec<&str> = cycle
            .iter()
            .map(|i| wf.steps[i.get()].name.as_str())
            .collect();
        report.push(Diagnostic::error(
            map.step(w, first, StepField::Name),
            format!(
                "dependency cycle in workflow `{}`: {} -> {}",
                wf.name,
                names.join(" -> "),
                names[0]
            ),
        ));
        // Upstream has no meaning on a cycle.
        return;
    }
    super::refs::step_references(ctx, w, wf, &index, &graph, report);
    super::control::step_control(ctx, w, wf, &index, &graph, report);
}

/// `timeoutMs` and `maxIterations` bound something, so 0 is no bound a step could meet.
fn bounds(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let map = &ctx.loaded.map;
    if step.timeout_ms == Some(0) {
        report.push(Diagnostic::error(
            map.step(w, s, StepField::TimeoutMs),
            format!(
                "step `{}`: `timeoutMs` must be at least 1 (a bound on each attempt, in \
                 milliseconds; leave it out for no bound)",
                step.name
            ),
        ));
    }
    if step.max_iterations == Some(0) {
        report.push(Diagnostic::error(
            map.step(w, s, StepField::MaxIterations),
            format!(
                "step `{}`: `maxIterations` must be at least 1 (the most times the step runs; \
                 leave it out for the default)",
                step.name
            ),
        ));
    }
}

/// The fields only some kinds of step use, and the kinds that use them.
const KIND_FIELDS: &[(&str, &[StepType])] = &[
    ("agent", &[StepType::Agent]),
    ("task", &[StepType::Agent]),
    // Also the bound of an `until` loop, on any step that loops.
    ("maxIterations", &[StepType::Agent, StepType::Deterministic]),
    ("participants", &[StepType::Agent]),
    ("rounds", &[StepType::Agent]),
    ("escalateTo", &[StepType::Agent]),
    ("humanAssistance", &[StepType::Agent]),
    ("command", &[StepType::Deterministic]),
    ("captureOutput", &[StepType::Deterministic]),
    ("failOnError", &[StepType::Deterministic]),
    ("branch", &[StepType::Worktree]),
    ("baseBranch", &[StepType::Worktree]),
    ("createBranch", &[StepType::Worktree]),
    ("path", &[StepType::Worktree]),
    ("waitFor", &[StepType::WaitFor]),
    ("integration", &[StepType::Integration]),
    ("action", &[StepType::Integration]),
    ("params", &[StepType::Integration]),
    ("items", &[StepType::Agent, StepType::Deterministic]),
    ("compensate", &[StepType::Agent, StepType::Deterministic]),
    ("permissions", &[StepType::Deterministic]),
];

/// Which kind-specific fields `step` sets.
fn set_fields(step: &Step) -> Vec<&'static str> {
    let set = [
        ("agent", step.agent.is_some()),
        ("task", step.task.is_some()),
        ("maxIterations", step.max_iterations.is_some()),
        ("participants", !step.participants.is_empty()),
        ("rounds", step.rounds.is_some()),
        ("escalateTo", !step.escalate_to.is_empty()),
        ("humanAssistance", step.human_assistance.is_some()),
        ("command", step.command.is_some()),
        ("captureOutput", step.capture_output.is_some()),
        ("failOnError", step.fail_on_error.is_some()),
        ("branch", step.branch.is_some()),
        ("baseBranch", step.base_branch.is_some()),
        ("createBranch", step.create_branch.is_some()),
        ("path", step.path.is_some()),
        ("waitFor", step.wait_for.is_some()),
        ("integration", step.integration.is_some()),
        ("action", step.action.is_some()),
        ("params", !step.params.is_empty()),
        ("items", step.items.is_some()),
        ("compensate", step.compensate.is_some()),
        ("permissions", step.permissions.is_some()),
    ];
    set.into_iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| f)
        .collect()
}

fn article(kind: StepType) -> &'static str {
    match kind {
        StepType::Agent | StepType::Integration => "an",
        _ => "a",
    }
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|t| t.trim().is_empty())
}

fn step_kind(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let map = &ctx.loaded.map;
    let name = &step.name;
    let kind = step.kind();
    let mut need = |missing: bool, at: StepField, what: &str| {
        if missing {
            report.push(Diagnostic::error(
                map.step(w, s, at),
                format!("{} step `{name}` has no {what}", kind.as_str()),
            ));
        }
    };
    match kind {
        StepType::Agent => {
            let agent = step.agent.as_deref().and_then(|a| ctx.file.agent(a));
            match &step.agent {
                None => report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!(
                        "step `{name}` has no `agent` (or set `type: deterministic` with a `command`)"
                    ),
                )),
                Some(a) if agent.is_none() => {
                    report.push(Diagnostic::error(
                        map.step(w, s, StepField::Agent),
                        format!(
                            "step `{name}` uses unknown agent `{}`{}",
                            shown(a),
                            ctx.agent_hint(a)
                        ),
                    ));
                }
                Some(_) => {}
            }
            // The agent's own `task` stands in for a step that sets none.
            if ctx.file.task_of(step).is_none_or(|t| t.trim().is_empty()) {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("step `{name}` has no `task`"),
                ));
            }
        }
        StepType::Deterministic => need(blank(&step.command), StepField::Name, "`command`"),
        StepType::Worktree => need(blank(&step.branch), StepField::Name, "`branch`"),
        StepType::Integration => {
            need(blank(&step.integration), StepField::Name, "`integration`");
            need(blank(&step.action), StepField::Name, "`action`");
        }
        StepType::WaitFor => match &step.wait_for {
            None => need(true, StepField::Name, "`waitFor` (what to wait for)"),
            Some(wait) => {
                let at = map.step(w, s, StepField::WaitFor);
                if wait.path.is_some() && !wait.paths.is_empty() {
                    report.push(Diagnostic::error(
                        at,
                        format!("step `{name}`: `waitFor` takes `path` or `paths`, not both"),
                    ));
                }
                if wait.event.is_some() && !wait.events.is_empty() {
                    report.push(Diagnostic::error(
                        at,
                        format!("step `{name}`: `waitFor` takes `event` or `events`, not both"),
                    ));
                }
                if wait.all_paths().is_empty() && wait.all_events().is_empty() {
                    report.push(Diagnostic::error(
                        at,
                        format!("step `{name}`: `waitFor` names no path and no event to wait for"),
                    ));
                }
            }
        },
    }
    for field in set_fields(step) {
        let Some((_, kinds)) = KIND_FIELDS.iter().find(|(f, _)| *f == field) else {
            continue;
        };
        if !kinds.contains(&kind) {
            report.push(Diagnostic::warning(
                map.step(w, s, StepField::Name),
                format!(
                    "step `{name}`: `{field}` has no effect on {} {} step",
                    article(kind),
                    kind.as_str()
                ),
            ));
        }
    }
    workdir(ctx, w, s, step, report);
}

/// `workdir` names an entry of `paths`, and is not set together with `cwd`.
fn workdir(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let Some(wd) = &step.workdir else {
        return;
    };
    let pos = ctx.loaded.map.step(w, s, StepField::Workdir);
    if step.cwd.is_some() {
        report.push(Diagnostic::error(
            pos,
            format!(
                "step `{}` sets both `cwd` and `workdir`; keep one",
                step.name
            ),
        ));
    }
    if ctx.file.path(wd).is_none() {
        report.push(Diagnostic::error(
            pos,
            super::file::unknown_path_message(ctx, &format!("step `{}`", step.name), wd),
        ));
    }
}

/// A checklist has items (inline, or read from its file), each with a distinct valid id,
/// and belongs to an agent step.
fn checklist(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let Some(v) = &step.verification else {
        return;
    };
    let pos = ctx.loaded.map.step(w, s, StepField::VerificationType);
    let mut err = |msg: String| report.push(Diagnostic::error(pos, msg));
    if step.agent.is_none() {
        err(format!(
            "step `{}`: a checklist is marked by an agent; the step has no `agent`",
            step.name
        ));
    }
    if v.items.is_empty() {
        if v.value.is_none() {
            err(format!(
                "step `{}`: verification `checklist` needs `items` (or a file of them as `value`)",
                step.name
            ));
        }
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for item in &v.items {
        if !crate::types::ChecklistItem::valid_id(&item.id) {
            err(format!(
                "step `{}`: checklist item id `{}` is not 1 to 64 letters, digits, `-`, `_` or `.`",
                step.name,
                shown(&item.id)
            ));
        } else if !seen.insert(item.id.as_str()) {
            err(format!(
                "step `{}`: checklist item `{}` is listed twice",
                step.name, item.id
            ));
        }
    }
}

fn verification(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let Some(v) = &step.verification else {
        return;
    };
    let map = &ctx.loaded.map;
    let value = v.value.as_ref().map(|v| v.as_text());
    if v.kind == VerificationType::Checklist {
        return checklist(ctx, w, s, step, report);
    }
    match (v.kind, value) {
        (_, None) => report.push(Diagnostic::error(
            map.step(w, s, StepField::VerificationType),
            format!(
                "step `{}`: verification `{}` needs a `value`",
                step.name,
                v.kind.as_str()
            ),
        )),
        (VerificationType::ExitCode, Some(val)) if v.expected_exit_code().is_none() => {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::VerificationValue),
                format!(
                    "step `{}`: exit_code verification value `{}` is not an integer from 0 to 255",
                    step.name,
                    shown(&val)
                ),
            ))
        }
        _ => {}
    }
    if let Some(CustomCheck::Regex(pattern)) = v.custom_check()
        && let Err(e) = super::regex_check(pattern)
    {
        report.push(Diagnostic::error(
            map.step(w, s, StepField::VerificationValue),
            format!(
                "step `{}`: verification `regex:` pattern does not compile: {e}",
                step.name
            ),
        ));
    }
}

/// Agents a step names besides its own: `participants` and `escalateTo`.
fn named_agents(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let map = &ctx.loaded.map;
    type Position = fn(usize) -> StepField;
    let lists: [(&str, &[String], Position); 2] = [
        ("participants", &step.participants, StepField::Participant),
        ("escalateTo", &step.escalate_to, StepField::EscalateTo),
    ];
    for (field, names, at) in lists {
        for (k, a) in names.iter().enumerate() {
            if !ctx.agents.contains_key(a.as_str()) {
                report.push(Diagnostic::error(
                    map.step(w, s, at(k)),
                    format!(
                        "step `{}` lists unknown agent `{}` in `{field}`{}",
                        step.name,
                        shown(a),
                        ctx.agent_hint(a)
                    ),
                ));
            }
        }
    }
}

/// The texts a step hands to a program: no NUL character, and within the size limit.
fn texts(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let map = &ctx.loaded.map;
    let custom = step
        .verification
        .as_ref()
        .filter(|v| v.kind == VerificationType::Custom)
        .and_then(|v| v.value.as_ref())
        .map(|v| v.as_text());
    let texts: [(&str, Option<&str>, StepField); 4] = [
        ("task", step.task.as_deref(), StepField::Task),
        ("command", step.command.as_deref(), StepField::Command),
        (
            "compensate",
            step.compensate.as_deref(),
            StepField::Compensate,
        ),
        (
            "verification command",
            custom.as_deref(),
            StepField::VerificationValue,
        ),
    ];
    for (field, text, at) in texts {
        let Some(text) = text else {
            continue;
        };
        let pos = map.step(w, s, at);
        check_no_nul(
            &format!("{field} of step `{}`", step.name),
            text,
            pos,
            report,
        );
        if text.len() > MAX_TEXT_BYTES {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "the {field} of step `{}` is {} bytes; it may be at most {} MiB",
                    step.name,
                    text.len(),
                    MAX_TEXT_BYTES / (1024 * 1024)
                ),
            ));
        }
    }
}

/// An auctioneer's step needs someone to bid: `participants`, or another agent.
fn auction(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    if step.kind() != StepType::Agent || !step.participants.is_empty() {
        return;
    }
    let Some(own) = step.agent.as_deref().and_then(|a| ctx.file.agent(a)) else {
        return;
    };
    if !agent_has(own, &["auctioneer"]) {
        return;
    }
    if ctx.file.agents.iter().all(|a| a.name == own.name) {
        report.push(Diagnostic::error(
            ctx.loaded.map.step(w, s, StepField::Agent),
            format!(
                "step `{}` is put up for auction by `{}`, but there is no one to bid: add \
                 agents to bid or list them in `participants`",
                step.name, own.name
            ),
        ));
    }
}
