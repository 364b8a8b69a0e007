//! Control-flow fields of a step: conditions parse and name only steps the step waits
//! for, `skipIf` is a rule of the format, a loop says how often it runs, `until` and
//! `breakIf` are well formed, `outputVar` is a usable and unique name, approvals say
//! `required`; `until` holds no `{{...}}`, which is not filled in there.

use std::collections::HashMap;

use crate::condition::{self, Name};
use crate::graph::{StepGraph, StepIdx};
use crate::load::StepField;
use crate::suggest::{did_you_mean, shown};
use crate::types::{SessionMode, SkipRule, Step, WorkflowDef};

use super::{Ctx, Diagnostic, Report, hint, regex_check};

/// Names only a loop's body or `breakIf` may use.
pub const LOOP_VARS: [&str; 2] = ["iteration", "maxIterations"];

/// Whether a step has any field that makes it a controlled step (planned as a gate).
pub fn is_controlled(step: &Step) -> bool {
    step.if_.is_some() || step.skip_if.is_some() || is_loop(step) || step.is_group()
}

/// Whether a step repeats.
pub fn is_loop(step: &Step) -> bool {
    step.loop_.is_some() || step.until.is_some()
}

fn name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn step_control(
    ctx: &Ctx<'_>,
    w: usize,
    wf: &WorkflowDef,
    index: &HashMap<&str, usize>,
    graph: &StepGraph,
    report: &mut Report,
) {
    let map = &ctx.loaded.map;
    let mut output_vars: HashMap<&str, usize> = HashMap::new();
    for (s, step) in wf.steps.iter().enumerate() {
        let name = &step.name;
        if let Some(src) = &step.if_ {
            condition_refs(
                ctx,
                w,
                wf,
                index,
                graph,
                s,
                src,
                "if",
                StepField::If,
                report,
            );
        }
        if step.session.is_some_and(SessionMode::continues) && step.agent.is_none() {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Session),
                format!(
                    "step `{name}`: `session` continues an agent's conversation, and the step \
                     names no `agent`"
                ),
            ));
        }
        if let Some(skip) = &step.skip_if
            && let SkipRule::Unknown(t) = skip.rule()
        {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::SkipIf),
                format!(
                    "step `{name}`: `skipIf: {}` is no rule; write `previous_success` or \
                     `sh: COMMAND`",
                    shown(t)
                ),
            ));
        }
        if let Some(l) = &step.loop_ {
            let pos = map.step(w, s, StepField::Loop);
            match (l.max, &l.over) {
                (None, None) if step.until.is_none() => report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}`: `loop` needs `max: N` (a counted loop) or `over: ...` \
                         (once per item)"
                    ),
                )),
                (Some(0), _) => report.push(Diagnostic::error(
                    pos,
                    format!("step `{name}`: `loop.max` must be at least 1"),
                )),
                _ => {}
            }
            if l.as_.is_some() && l.over.is_none() {
                report.push(Diagnostic::error(
                    pos,
                    format!("step `{name}`: `loop.as` names the item of `over`, which is missing"),
                ));
            }
            if !name_ok(l.var()) {
                report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}`: `loop.as: {}` is not a variable name (letters, digits, \
                         `_` and `-`, starting with a letter)",
                        shown(l.var())
                    ),
                ));
            }
        }
        if step.items.is_some() && is_loop(step) {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Loop),
                format!(
                    "step `{name}` has both `items` and a loop; use `loop.over` for a loop over \
                     items"
                ),
            ));
        }
        if let Some(u) = &step.until {
            let pos = map.step(w, s, StepField::Until);
            if u.trim().is_empty() {
                report.push(Diagnostic::error(
                    pos,
                    format!("step `{name}`: `until` is empty"),
                ));
            } else if u.contains("{{") {
                report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}`: `until: {}` would be looked for as written: \
                         `{{{{...}}}}` is not filled in in `until`; write the text the output \
                         must contain (or `regex:RE`)",
                        shown(u)
                    ),
                ));
            } else if let Some(re) = u.strip_prefix("regex:")
                && let Err(e) = regex_check(re.trim())
            {
                report.push(Diagnostic::error(
                    pos,
                    format!("step `{name}`: `until` is not a valid regular expression: {e}"),
                ));
            }
        }
        if let Some(b) = &step.break_if {
            let pos = map.step(w, s, StepField::BreakIf);
            if !is_loop(step) {
                report.push(Diagnostic::error(
                    pos,
                    format!("step `{name}` has `breakIf` but no loop (`loop` or `until`)"),
                ));
            } else if !matches!(b.trim(), "success" | "failure") {
                condition_refs(
                    ctx,
                    w,
                    wf,
                    index,
                    graph,
                    s,
                    b,
                    "breakIf",
                    StepField::BreakIf,
                    report,
                );
            }
        }
        if let Some(v) = &step.output_var {
            let pos = map.step(w, s, StepField::OutputVar);
            if !name_ok(v) {
                report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}`: `outputVar: {}` is not a variable name (letters, digits, \
                         `_` and `-`, starting with a letter)",
                        shown(v)
                    ),
                ));
            } else if let Some(&other) = output_vars.get(v.as_str()) {
                report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{name}`: `outputVar: {v}` is also the output of step `{}`",
                        wf.steps[other].name
                    ),
                ));
            } else {
                output_vars.insert(v, s);
            }
        }
        if let Some(a) = &step.approval
            && let Some(word) = a.unknown_word()
        {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Approval),
                format!(
                    "step `{name}`: `approval: {}` is not a setting; write `required` or a \
                     mapping with `approvers`, `timeoutMs`, `onTimeout`",
                    shown(word)
                ),
            ));
        }
    }
    // A `{{NAME}}` of an outputVar must come from a step this one waits for.
    let mut queries = Vec::new();
    let mut uses = Vec::new();
    for (s, step) in wf.steps.iter().enumerate() {
        for (field, text) in super::step_texts(step) {
            for r in crate::template::references(text) {
                if let crate::template::Ref::Var(v) = r
                    && let Some(&from) = output_vars.get(v.as_str())
                {
                    if from == s {
                        report.push(Diagnostic::error(
                            map.step(w, s, field),
                            format!("step `{}` uses {{{{{v}}}}}, its own output", step.name),
                        ));
                    } else {
                        queries.push((StepIdx(s), StepIdx(from)));
                        uses.push((s, field, v, from));
                    }
                }
            }
        }
    }
    for ((s, field, v, from), upstream) in uses.into_iter().zip(graph.upstream_all(&queries)) {
        if !upstream {
            report.push(Diagnostic::error(
                map.step(w, s, field),
                format!(
                    "step `{}` uses {{{{{v}}}}}, the output of step `{}`, but does not depend \
                     on it (add it to dependsOn)",
                    wf.steps[s].name, wf.steps[from].name
                ),
            ));
        }
    }
}

/// Parses a condition and checks the steps it names.
#[allow(clippy::too_many_arguments)]
fn condition_refs(
    ctx: &Ctx<'_>,
    w: usize,
    wf: &WorkflowDef,
    index: &HashMap<&str, usize>,
    graph: &StepGraph,
    s: usize,
    src: &str,
    field_name: &str,
    field: StepField,
    report: &mut Report,
) {
    let map = &ctx.loaded.map;
    let step = &wf.steps[s];
    let pos = map.step(w, s, field);
    let expr = match condition::parse(src) {
        Ok(e) => e,
        Err(e) => {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "step `{}`: `{field_name}`, column {} of the condition: {}",
                    step.name, e.column, e.message
                ),
            ));
            return;
        }
    };
    let mut queries = Vec::new();
    let mut named = Vec::new();
    for path in expr.paths() {
        match condition::name(path) {
            Name::Step { step: x, .. } => match index.get(x) {
                Some(&xi) if xi == s => report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{}`: `{field_name}` asks about the step itself; use `breakIf` \
                         with `output` and `status` inside a loop",
                        step.name
                    ),
                )),
                Some(&xi) => {
                    queries.push((StepIdx(s), StepIdx(xi)));
                    named.push(x.to_string());
                }
                None => report.push(Diagnostic::error(
                    pos,
                    format!(
                        "step `{}`: `{field_name}` names `steps.{}` but there is no step `{}`{}",
                        step.name,
                        shown(x),
                        shown(x),
                        hint(did_you_mean(x, index.keys().copied()))
                    ),
                )),
            },
            Name::BadStep(x) => report.push(Diagnostic::error(
                pos,
                format!(
                    "step `{}`: `{field_name}` uses `{}`; a step is asked for \
                     `steps.{}.status`, `.output` or `.exitCode`",
                    step.name,
                    path.join("."),
                    if x.is_empty() { "NAME" } else { x }
                ),
            )),
            Name::Var(_) => {}
        }
    }
    for (x, upstream) in named.into_iter().zip(graph.upstream_all(&queries)) {
        if !upstream {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "step `{}`: `{field_name}` asks about step `{x}` but does not depend on it \
                     (add it to dependsOn)",
                    step.name
                ),
            ));
        }
    }
}
