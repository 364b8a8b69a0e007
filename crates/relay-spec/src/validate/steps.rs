//! The checks of one workflow: step names, each step by its kind, dependencies,
//! verification, the agents a step names, `items`, the size and content of its texts, the
//! auction's bidders, and then the graph (cycles) and the references in it.

use std::collections::HashMap;

use crate::graph::StepGraph;
use crate::limits::MAX_TEXT_BYTES;
use crate::load::StepField;
use crate::pattern::{agent_has, choose};
use crate::suggest::{did_you_mean, shown};
use crate::types::{Pattern, Step, StepType, VerificationType, WorkflowDef};

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
    for (s, step) in wf.steps.iter().enumerate() {
        step_kind(ctx, w, s, step, report);
        verification(ctx, w, s, step, report);
        named_agents(ctx, w, s, step, report);
        texts(ctx, w, s, step, report);
        if step.items.is_some() && !ITEM_PATTERNS.contains(&choice.pattern) {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Items),
                format!(
                    "step `{}` has `items`, which only the map-reduce and scatter-gather \
                     patterns use; workflow `{}` runs as {} ({})",
                    step.name,
                    wf.name,
                    choice.pattern.as_str(),
                    choice.reason
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
}

fn step_kind(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let map = &ctx.loaded.map;
    let name = &step.name;
    match step.kind() {
        StepType::Agent => {
            match &step.agent {
                None => report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!(
                        "step `{name}` has no `agent` (or set `type: deterministic` with a `command`)"
                    ),
                )),
                Some(a) if !ctx.agents.contains_key(a.as_str()) => {
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
            if step.task.as_deref().is_none_or(|t| t.trim().is_empty()) {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("step `{name}` has no `task`"),
                ));
            }
            for (field, set) in [
                ("command", step.command.is_some()),
                ("captureOutput", step.capture_output.is_some()),
                ("failOnError", step.fail_on_error.is_some()),
            ] {
                if set {
                    report.push(Diagnostic::warning(
                        map.step(w, s, StepField::Name),
                        format!("step `{name}`: `{field}` has no effect on an agent step"),
                    ));
                }
            }
        }
        StepType::Deterministic => {
            if step.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("deterministic step `{name}` has no `command`"),
                ));
            }
            for (field, set) in [
                ("agent", step.agent.is_some()),
                ("task", step.task.is_some()),
            ] {
                if set {
                    report.push(Diagnostic::warning(
                        map.step(w, s, StepField::Name),
                        format!("step `{name}`: `{field}` has no effect on a deterministic step"),
                    ));
                }
            }
        }
    }
}

fn verification_name(k: VerificationType) -> &'static str {
    match k {
        VerificationType::OutputContains => "output_contains",
        VerificationType::ExitCode => "exit_code",
        VerificationType::FileExists => "file_exists",
        VerificationType::Custom => "custom",
    }
}

fn verification(ctx: &Ctx<'_>, w: usize, s: usize, step: &Step, report: &mut Report) {
    let Some(v) = &step.verification else {
        return;
    };
    let map = &ctx.loaded.map;
    let value = v.value.as_ref().map(|v| v.as_text());
    match (v.kind, value) {
        (_, None) => report.push(Diagnostic::error(
            map.step(w, s, StepField::VerificationType),
            format!(
                "step `{}`: verification `{}` needs a `value`",
                step.name,
                verification_name(v.kind)
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
