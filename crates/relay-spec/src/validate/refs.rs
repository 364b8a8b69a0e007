//! References in a step's texts: `{{steps.X.output}}` must name a step this one
//! (transitively) waits for, and not the step itself, in every text it may stand in
//! (task, command, cwd, verification, `items`, `loop.over`, `compensate`); `{{item}}` and
//! `{{itemIndex}}` exist only in a step that has `items`.

use std::collections::HashMap;

use crate::graph::{StepGraph, StepIdx};
use crate::load::StepField;
use crate::suggest::{did_you_mean, shown};
use crate::template::{Ref, references};
use crate::types::WorkflowDef;

use super::{Ctx, Diagnostic, ITEM_VARS, Report, hint, step_texts};

pub(super) fn step_references(
    ctx: &Ctx<'_>,
    w: usize,
    wf: &WorkflowDef,
    index: &HashMap<&str, usize>,
    graph: &StepGraph,
    report: &mut Report,
) {
    let map = &ctx.loaded.map;
    // Every reference to an existing step is collected first, so the graph answers them
    // all in one pass.
    let mut uses: Vec<(usize, StepField, String, usize)> = Vec::new();
    for (s, step) in wf.steps.iter().enumerate() {
        let owner = crate::groups::loop_owner(wf, s);
        for (field, text) in step_texts(step) {
            for r in references(text) {
                match r {
                    Ref::StepOutput(x) | Ref::StepOutputs(x) => match index.get(x.as_str()) {
                        // In a group, a nested step reads what it produced in the
                        // iteration before (see below); any other step has no output
                        // until it has run.
                        Some(&xi) if xi == s && step.group.is_none() => {
                            report.push(Diagnostic::error(
                                map.step(w, s, field),
                                format!(
                                    "step `{}` uses {{{{steps.{x}.output}}}}, its own output: a \
                                     step cannot use its own output (it has none until it has \
                                     run); take it from a step it depends on",
                                    step.name
                                ),
                            ));
                        }
                        Some(&xi) => uses.push((s, field, x, xi)),
                        None => report.push(Diagnostic::error(
                            map.step(w, s, field),
                            format!(
                                "step `{}` uses {{{{steps.{}.output}}}} but there is no step `{}`{}",
                                step.name,
                                shown(&x),
                                shown(&x),
                                hint(did_you_mean(&x, index.keys().copied()))
                            ),
                        )),
                    },
                    Ref::Var(v)
                        if ITEM_VARS.contains(&v.as_str())
                            && step.items.is_none()
                            && owner
                                .loop_
                                .as_ref()
                                .is_none_or(|l| l.over.is_none() || l.var() != v) =>
                    {
                        report.push(Diagnostic::error(
                            map.step(w, s, field),
                            format!(
                                "step `{}` uses {{{{{v}}}}} but has no `items` to take it from",
                                step.name
                            ),
                        ));
                    }
                    Ref::Var(_) | Ref::State(_) => {}
                }
            }
        }
    }
    // A step inside a group may read a sibling that runs after it: what that sibling
    // produced in the iteration before (nothing in the first).
    uses.retain(|&(s, _, _, xi)| {
        let g = wf.steps[s].group.as_deref();
        g.is_none() || g != wf.steps[xi].group.as_deref()
    });
    let queries: Vec<(StepIdx, StepIdx)> = uses
        .iter()
        .map(|&(s, _, _, xi)| (StepIdx(s), StepIdx(xi)))
        .collect();
    for ((s, field, x, _), upstream) in uses.into_iter().zip(graph.upstream_all(&queries)) {
        if !upstream {
            report.push(Diagnostic::error(
                map.step(w, s, field),
                format!(
                    "step `{}` uses {{{{steps.{x}.output}}}} but does not depend on `{x}` (add it to dependsOn)",
                    wf.steps[s].name
                ),
            ));
        }
    }
}
