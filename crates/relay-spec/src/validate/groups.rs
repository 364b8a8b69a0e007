//! Groups of nested steps (`steps:` on a step): a group runs nothing of its own, its
//! nested steps depend only on each other, nothing outside depends on them but through
//! the group, groups do not nest, the repetition belongs to the group (a nested step has
//! no loop or condition of its own), and `resultFrom` names one of its nested steps.

use std::collections::HashMap;

use crate::groups::{member_named, members};
use crate::load::StepField;
use crate::suggest::{did_you_mean, shown};
use crate::types::WorkflowDef;

use super::{Ctx, Diagnostic, Report, hint};

/// Whether step `s` is a group as written at the top of a workflow (the steps of one
/// are checked as its members).
pub(super) fn is_top_group(wf: &WorkflowDef, s: usize) -> bool {
    wf.steps[s].is_group() && wf.steps[s].group.is_none()
}

pub(super) fn step_groups(
    ctx: &Ctx<'_>,
    w: usize,
    wf: &WorkflowDef,
    index: &HashMap<&str, usize>,
    report: &mut Report,
) {
    let map = &ctx.loaded.map;
    for (s, step) in wf.steps.iter().enumerate() {
        let name = &step.name;
        if is_top_group(wf, s) {
            let own: [(bool, StepField, &str); 7] = [
                (step.agent.is_some(), StepField::Agent, "an `agent`"),
                (step.task.is_some(), StepField::Task, "a `task`"),
                (step.command.is_some(), StepField::Command, "a `command`"),
                (step.step_type.is_some(), StepField::Name, "a `type`"),
                (
                    step.verification.is_some(),
                    StepField::VerificationType,
                    "a `verification`",
                ),
                (step.items.is_some(), StepField::Items, "`items`"),
                (
                    step.approval.is_some(),
                    StepField::Approval,
                    "an `approval` (put it on its first nested step)",
                ),
            ];
            for (set, field, what) in own {
                if set {
                    report.push(Diagnostic::error(
                        map.step(w, s, field),
                        format!(
                            "step `{name}` is a group of nested `steps`; it runs nothing of its \
                             own and cannot have {what}"
                        ),
                    ));
                }
            }
            if let Some(r) = &step.result_from
                && member_named(wf, s, r).is_none()
            {
                let shorts: Vec<String> = members(wf, s)
                    .into_iter()
                    .map(|m| short(&wf.steps[m].name, name).to_string())
                    .collect();
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::ResultFrom),
                    format!(
                        "step `{name}`: `resultFrom: {}` names none of its nested steps ({}){}",
                        shown(r),
                        shorts.join(", "),
                        hint(did_you_mean(r, shorts.iter().map(String::as_str)))
                    ),
                ));
            }
        } else if step.result_from.is_some() {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::ResultFrom),
                format!("step `{name}` has `resultFrom` but no nested `steps`"),
            ));
        }
        if let Some(g) = &step.group {
            let nested: [(bool, StepField, &str); 7] = [
                (
                    step.is_group(),
                    StepField::Steps,
                    "nested `steps` (groups do not nest)",
                ),
                (step.workflow.is_some(), StepField::Name, "a sub-`workflow`"),
                (step.loop_.is_some(), StepField::Loop, "a `loop`"),
                (step.until.is_some(), StepField::Until, "`until`"),
                (step.break_if.is_some(), StepField::BreakIf, "`breakIf`"),
                (step.if_.is_some(), StepField::If, "`if`"),
                (step.skip_if.is_some(), StepField::SkipIf, "`skipIf`"),
            ];
            for (set, field, what) in nested {
                if set {
                    report.push(Diagnostic::error(
                        map.step(w, s, field),
                        format!(
                            "step `{}` inside group `{g}` cannot have {what}: the group's loop \
                             and conditions apply to all of its steps",
                            short(name, g)
                        ),
                    ));
                }
            }
        }
        for (e, dep) in step.depends_on.iter().enumerate() {
            let Some(&d) = index.get(dep.as_str()) else {
                continue;
            };
            let target = wf.steps[d].group.as_deref();
            if target == step.group.as_deref() {
                continue;
            }
            let pos = map.step(w, s, StepField::DependsOn(e));
            match (&step.group, target) {
                (Some(g), _) => report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{}` inside group `{g}` depends on `{dep}`, which is not in the \
                         group: nested steps depend only on each other (put `{dep}` in the \
                         group's `dependsOn`)",
                        short(name, g)
                    ),
                )),
                (None, Some(tg)) => report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}` depends on `{dep}`, a step inside group `{tg}`: depend \
                         on the group `{tg}` (it ends after its last iteration)"
                    ),
                )),
                (None, None) => {}
            }
        }
    }
}

/// `G/X` as written inside group `G`: `X`.
fn short<'a>(name: &'a str, group: &str) -> &'a str {
    name.strip_prefix(group)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(name)
}
