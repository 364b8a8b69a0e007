//! Data-processing patterns:
//! - map-reduce: a step with `items` runs once per item (`{{item}}`, `{{itemIndex}}` in its
//!   task), every item a node of its own, all under `maxConcurrency`; the step's output is
//!   every item's output in order. A reducer step (role reducer) without `dependsOn` waits
//!   for the mapper steps before it; any step after a map step receives the mapped results.
//! - scatter-gather: the last step, when it has no `dependsOn`, gathers: it waits for every
//!   step nothing else depends on and receives all their outputs.

use relay_spec::template::{Quoting, render};
use relay_spec::{Items, Pattern};

use super::Builder;
use crate::events::EventKind;
use crate::plan::{Gate, GateCtx, Node, NodeId, NodeRef, Resolution, RunSpec, StepIdx};

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let step = &b.wf.steps[i];
    if let Some(items) = step.items.clone() {
        let label = step.name.clone();
        return b.add(Node::gate(
            label,
            StepIdx(i),
            deps,
            Box::new(MapGate {
                items,
                step: StepIdx(i),
                expanded: None,
            }),
        ));
    }
    let gathers = match b.pattern {
        Pattern::ScatterGather => !b.step_deps[i].is_empty() && step.depends_on.is_empty(),
        _ => b.step_deps[i]
            .iter()
            .any(|&d| b.wf.steps[d].items.is_some()),
    };
    if gathers {
        b.with_inputs(i, deps, "Results of")
    } else {
        b.plain(i, deps)
    }
}

/// Splits rendered item text: a JSON array of strings or numbers, else non-empty lines.
pub(crate) fn split_items(text: &str) -> Vec<String> {
    if let Ok(serde_json::Value::Array(a)) = serde_json::from_str::<serde_json::Value>(text.trim())
    {
        return a
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

struct MapGate {
    items: Items,
    step: StepIdx,
    /// The items once expanded, each with its node once placed.
    expanded: Option<Vec<(String, Option<NodeId>)>>,
}

impl Gate for MapGate {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        if let Some(nodes) = &self.expanded {
            let mut out = String::new();
            for (k, (item, node)) in nodes.iter().enumerate() {
                match node.and_then(|n| ctx.result(n)) {
                    Some(r) if r.completed() => out.push_str(&format!(
                        "### item {}: {item}\n{}\n\n",
                        k + 1,
                        r.output().trim()
                    )),
                    _ => {
                        return Resolution::Fail {
                            reason: format!("item {} (`{item}`) failed", k + 1),
                            events: Vec::new(),
                        };
                    }
                }
            }
            return Resolution::Complete {
                output: out.trim_end().to_string(),
                events: Vec::new(),
            };
        }
        let items: Vec<String> = match &self.items {
            Items::List(l) => l.iter().map(|s| s.as_text()).collect(),
            Items::Text(t) => match render(t, ctx.vars, ctx.outputs, Quoting::None) {
                Ok(text) => split_items(&text),
                Err(missing) => {
                    return Resolution::Fail {
                        reason: format!(
                            "items: no value for {}",
                            missing
                                .iter()
                                .map(|r| r.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        events: Vec::new(),
                    };
                }
            },
        };
        let mut nodes = Vec::new();
        let mut made = Vec::new();
        for (k, item) in items.iter().enumerate() {
            let mut spec = RunSpec::default();
            spec.vars.insert("item".into(), item.clone());
            spec.vars.insert("itemIndex".into(), (k + 1).to_string());
            nodes.push(Node::run_with(
                format!("{label}[{}]", k + 1),
                self.step,
                Vec::new(),
                spec,
                false,
            ));
            made.push((item.clone(), None));
        }
        let wait_for = (0..made.len()).map(NodeRef::New).collect();
        self.expanded = Some(made);
        Resolution::Expand {
            nodes,
            wait_for,
            events: vec![EventKind::Pattern {
                step: label,
                action: "expanded".into(),
                detail: format!(
                    "{} item{}",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                ),
            }],
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let Some(items) = &mut self.expanded {
            for ((_, node), id) in items.iter_mut().zip(ids) {
                *node = Some(*id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_items;

    #[test]
    fn items_come_from_json_arrays_or_lines() {
        assert_eq!(split_items("[\"a\", 2]"), ["a", "2"]);
        assert_eq!(split_items("x\n\n  y \n"), ["x", "y"]);
    }
}
