//! Control flow on a step, whatever the pattern: `if` and `skipIf` (the step runs or is
//! skipped, with the reason), loops (`loop: {max}`, `loop: {over, as}`, `until`,
//! `breakIf`). A controlled step is one gate: it decides from what its dependencies
//! produced whether to skip, then runs its body once or once per iteration as nodes of
//! its own (`STEP#1`, `STEP#2`, ...: labels, so a resumed run keeps the iterations done),
//! each judged by the gate, never failing the run by itself.
//!
//! A group of nested steps (`steps:` on the step) is the same gate: each iteration places
//! the group's members (`GROUP/X#k`) in waves: every member whose siblings completed in
//! this iteration, together, and the next wave once that one ended (a gate decides again
//! only when all it waits for finished); a member that fails ends the iteration failed
//! (the rest of it does not run) unless it has `continueOnFailure`; the iteration's
//! result is its judged member's (`resultFrom`, else its last).

use std::collections::BTreeMap;

use relay_spec::condition::{self, Expr, Name, StepAttr, Value};
use relay_spec::template::{Quoting, outputs_key, render};
use relay_spec::{Items, SkipRule, Step};

use super::Builder;
use super::data::split_items;
use crate::events::EventKind;
use crate::plan::{Gate, GateCtx, Node, NodeId, NodeRef, Resolution, RunSpec, StepIdx};

/// Iterations of an `until` loop without `maxIterations` or `loop.max`.
pub const DEFAULT_UNTIL_ITERATIONS: u32 = 10;

/// The gate of controlled step `i`.
pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let step = &b.wf.steps[i];
    let index = |name: &str| b.wf.steps.iter().position(|s| s.name == name);
    let cond = step.if_.as_deref().and_then(|c| condition::parse(c).ok());
    let break_if = match step.break_if.as_deref().map(str::trim) {
        None => None,
        Some("success") => Some(Break::Success),
        Some("failure") => Some(Break::Failure),
        Some(c) => condition::parse(c).ok().map(Break::When),
    };
    let mut refs = BTreeMap::new();
    let exprs = cond.iter().chain(match &break_if {
        Some(Break::When(e)) => Some(e),
        _ => None,
    });
    for e in exprs {
        for p in e.paths() {
            if let Name::Step { step: x, .. } = condition::name(p)
                && let Some(xi) = index(x)
                && b.final_node[xi].is_some()
            {
                refs.insert(x.to_string(), b.final_id(xi));
            }
        }
    }
    let skip = step.skip_if.as_ref().and_then(|s| match s.rule() {
        SkipRule::PreviousSuccess => Some(Skip::PreviousSuccess(
            b.step_deps[i].iter().map(|&d| b.final_id(d)).collect(),
        )),
        SkipRule::Command(c) => Some(Skip::Command(c.to_string())),
        SkipRule::Unknown(_) => None,
    });
    let looping = repeat_of(step);
    let group = group_of(b.wf, i);
    let label = step.name.clone();
    b.add(Node::gate(
        label,
        StepIdx(i),
        deps,
        Box::new(ControlGate {
            step: StepIdx(i),
            name: step.name.clone(),
            cond_src: step.if_.clone(),
            cond,
            skip,
            looping,
            break_if,
            refs,
            phase: Phase::Start,
            iterations: Vec::new(),
            items: None,
            outputs: Vec::new(),
            group,
        }),
    ))
}

/// The members of group `g` and where they stand in this iteration, when `g` is one.
fn group_of(wf: &relay_spec::WorkflowDef, g: usize) -> Option<Group> {
    if !wf.steps[g].is_group() {
        return None;
    }
    let idx = relay_spec::groups::members(wf, g);
    let judged_step = relay_spec::groups::judged(wf, g)?;
    let members: Vec<Member> = idx
        .iter()
        .map(|&m| Member {
            step: StepIdx(m),
            name: wf.steps[m].name.clone(),
            continues: wf.steps[m].continue_on_failure == Some(true),
            deps: wf.steps[m]
                .depends_on
                .iter()
                .filter_map(|d| idx.iter().position(|&x| wf.steps[x].name == *d))
                .collect(),
        })
        .collect();
    let n = members.len();
    Some(Group {
        judged: idx.iter().position(|&m| m == judged_step)?,
        members,
        slots: vec![None; n],
        wave: Vec::new(),
        vars: BTreeMap::new(),
        outputs: vec![Vec::new(); n],
    })
}

fn repeat_of(step: &Step) -> Option<Repeat> {
    let until = step.until.as_ref().map(|u| match u.strip_prefix("regex:") {
        Some(re) => Until::Regex(re.trim().to_string()),
        None => Until::Text(u.clone()),
    });
    let max = step.loop_.as_ref().and_then(|l| l.max);
    match (&step.loop_, until) {
        (Some(l), until) if l.over.is_some() => Some(Repeat {
            over: l.over.clone(),
            var: l.var().to_string(),
            max: max.or(step.max_iterations),
            until,
        }),
        (Some(_), until) => Some(Repeat {
            over: None,
            var: String::new(),
            max: max.or(step.max_iterations),
            until,
        }),
        (None, Some(until)) => Some(Repeat {
            over: None,
            var: String::new(),
            max: Some(step.max_iterations.unwrap_or(DEFAULT_UNTIL_ITERATIONS)),
            until: Some(until),
        }),
        (None, None) => None,
    }
}

enum Skip {
    /// Skip when all of these completed.
    PreviousSuccess(Vec<NodeId>),
    /// Skip when this command exits 0.
    Command(String),
}

enum Until {
    Text(String),
    Regex(String),
}

impl Until {
    fn met(&self, output: &str) -> bool {
        match self {
            Until::Text(t) => output.contains(t.as_str()),
            Until::Regex(re) => regex::Regex::new(re).is_ok_and(|r| r.is_match(output)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Until::Text(t) => format!("`until: {t}`"),
            Until::Regex(re) => format!("`until: regex:{re}`"),
        }
    }
}

enum Break {
    Success,
    Failure,
    When(Expr),
}

/// A nested step of a group.
struct Member {
    step: StepIdx,
    name: String,
    /// `continueOnFailure`: its failure does not end the iteration.
    continues: bool,
    /// The members it depends on, by position.
    deps: Vec<usize>,
}

/// A group's members and the iteration that runs.
struct Group {
    members: Vec<Member>,
    /// The member whose result is the iteration's.
    judged: usize,
    /// Each member's node in this iteration, once placed.
    slots: Vec<Option<NodeId>>,
    /// The members of the wave placed last, in order.
    wave: Vec<usize>,
    /// The variables of this iteration.
    vars: BTreeMap<String, String>,
    /// Every completed iteration's output of each member.
    outputs: Vec<Vec<String>>,
}

struct Repeat {
    /// Items of a for-each loop.
    over: Option<Items>,
    /// The loop variable (for-each).
    var: String,
    /// The most iterations.
    max: Option<u32>,
    until: Option<Until>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    /// The `skipIf` command runs as this node.
    Checking(Option<NodeId>),
    /// The body's iteration `k` (1-based) runs as the last node of `iterations`.
    Running,
}

struct ControlGate {
    step: StepIdx,
    name: String,
    cond_src: Option<String>,
    cond: Option<Expr>,
    skip: Option<Skip>,
    looping: Option<Repeat>,
    break_if: Option<Break>,
    /// Steps the conditions name, by name, and the node each is done with.
    refs: BTreeMap<String, NodeId>,
    phase: Phase,
    /// The nodes of the iterations placed so far, the last one expanded last.
    iterations: Vec<Option<NodeId>>,
    /// The for-each items, once known.
    items: Option<Vec<String>>,
    /// Every completed iteration's output, in order.
    outputs: Vec<String>,
    /// The nested steps, when the step is a group.
    group: Option<Group>,
}

fn skip(reason: String) -> Resolution {
    Resolution::Skip {
        reason,
        events: Vec::new(),
    }
}

fn fail(reason: String) -> Resolution {
    Resolution::Fail {
        reason,
        events: Vec::new(),
    }
}

impl ControlGate {
    /// The value of a name a condition uses, iteration names included when given.
    fn lookup(
        &self,
        ctx: &GateCtx<'_>,
        path: &[String],
        iteration: Option<(u32, &str, &str)>,
    ) -> Option<Value> {
        match condition::name(path) {
            Name::Step { step, field } => {
                let id = *self.refs.get(step)?;
                let result = ctx.result(id);
                Some(Value::Text(match field {
                    StepAttr::Status => match result {
                        _ if ctx.nodes.skip_reason(id).is_some() => "skipped".into(),
                        Some(r) if r.completed() => "completed".into(),
                        Some(_) => "failed".into(),
                        None => "pending".into(),
                    },
                    StepAttr::Output => result.map(|r| r.output().to_string()).unwrap_or_default(),
                    StepAttr::ExitCode => result
                        .and_then(|r| r.outcome.exit_code())
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                }))
            }
            Name::Var(v) => {
                if let Some((k, output, status)) = iteration {
                    match v {
                        "iteration" => return Some(Value::Text(k.to_string())),
                        "output" => return Some(Value::Text(output.to_string())),
                        "status" => return Some(Value::Text(status.to_string())),
                        _ => {}
                    }
                }
                ctx.vars.get(v).map(|x| Value::Text(x.clone()))
            }
            Name::BadStep(_) => None,
        }
    }

    /// Decides at the start: skip, check, or run.
    fn start(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        if let Some(cond) = &self.cond {
            match cond.eval(&|p| self.lookup(ctx, p, None)) {
                Ok(v) if v.truthy() => {}
                Ok(_) => {
                    return skip(format!(
                        "condition `{}` is false",
                        self.cond_src.as_deref().unwrap_or_default().trim()
                    ));
                }
                Err(e) => return fail(format!("condition `if`: {e}")),
            }
        }
        match &self.skip {
            Some(Skip::PreviousSuccess(deps))
                if deps
                    .iter()
                    .all(|&d| ctx.result(d).is_some_and(|r| r.completed())) =>
            {
                return skip(
                    "`skipIf: previous_success`: every step it depends on completed".into(),
                );
            }
            Some(Skip::Command(cmd)) => {
                self.phase = Phase::Checking(None);
                let spec = RunSpec {
                    command: Some(cmd.clone()),
                    soft: true,
                    unverified: true,
                    retries: Some(0),
                    ..RunSpec::default()
                };
                return Resolution::Expand {
                    nodes: vec![Node::run_with(
                        format!("{}:skip-check", self.name),
                        self.step,
                        Vec::new(),
                        spec,
                        false,
                    )],
                    wait_for: vec![NodeRef::New(0)],
                    events: Vec::new(),
                };
            }
            _ => {}
        }
        self.first(ctx)
    }

    /// Starts the body: once, or the first iteration.
    fn first(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        self.phase = Phase::Running;
        if let Some(Repeat {
            over: Some(over), ..
        }) = &self.looping
        {
            let items = match over {
                Items::List(l) => l.iter().map(|s| s.as_text()).collect(),
                Items::Text(t) => match ctx.globs.get(t.trim()) {
                    Some(files) => files.clone(),
                    None => match render(t, ctx.vars, ctx.outputs, Quoting::None) {
                        Ok(text) => split_items(&text),
                        Err(missing) => {
                            return fail(format!(
                                "loop.over: no value for {}",
                                missing
                                    .iter()
                                    .map(|r| r.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                    },
                },
            };
            if items.is_empty() {
                return Resolution::Complete {
                    output: String::new(),
                    events: vec![EventKind::Pattern {
                        step: self.name.clone(),
                        action: "loop".into(),
                        detail: "no items: nothing to run".into(),
                    }],
                };
            }
            self.items = Some(items);
        }
        self.iterate(1)
    }

    /// How many iterations the loop has at most.
    fn total(&self) -> u32 {
        let Some(r) = &self.looping else {
            return 1;
        };
        let items = self
            .items
            .as_ref()
            .map(|i| u32::try_from(i.len()).unwrap_or(u32::MAX));
        match (items, r.max) {
            (Some(n), Some(m)) => n.min(m),
            (Some(n), None) => n,
            (None, Some(m)) => m,
            (None, None) => DEFAULT_UNTIL_ITERATIONS,
        }
    }

    fn iterate(&mut self, k: u32) -> Resolution {
        let mut spec = RunSpec {
            soft: true,
            ..RunSpec::default()
        };
        let mut events = Vec::new();
        if let Some(r) = &self.looping {
            let total = self.total();
            spec.vars.insert("iteration".into(), k.to_string());
            spec.vars.insert("maxIterations".into(), total.to_string());
            let mut detail = format!("iteration {k} of {total}");
            if let Some(items) = &self.items
                && let Some(item) = items.get(k as usize - 1)
            {
                spec.vars.insert(r.var.clone(), item.clone());
                detail.push_str(&format!(": {item}"));
            }
            events.push(EventKind::Pattern {
                step: self.name.clone(),
                action: "loop".into(),
                detail,
            });
        }
        self.iterations.push(None);
        if let Some(g) = &mut self.group {
            g.vars = spec.vars;
            g.slots.iter_mut().for_each(|s| *s = None);
            g.wave.clear();
            return self.next_wave(None, events);
        }
        Resolution::Expand {
            nodes: vec![Node::run_with(
                format!("{}#{k}", self.name),
                self.step,
                Vec::new(),
                spec,
                false,
            )],
            wait_for: vec![NodeRef::New(0)],
            events,
        }
    }

    /// A group's iteration goes on: the members now ready are placed, or, when none is,
    /// the iteration is judged by its judged member (or by the member that failed).
    fn next_wave(&mut self, ctx: Option<&GateCtx<'_>>, events: Vec<EventKind>) -> Resolution {
        let k = u32::try_from(self.iterations.len()).unwrap_or(u32::MAX);
        let Some(g) = &mut self.group else {
            return fail("the group has no nested steps".into());
        };
        let result = |slot: Option<NodeId>| slot.and_then(|id| ctx.and_then(|c| c.result(id)));
        let mut done = vec![false; g.members.len()];
        for (m, slot) in g.slots.iter().enumerate() {
            match (slot, result(*slot)) {
                (None, _) => {}
                (Some(_), Some(r)) if r.completed() || g.members[m].continues => done[m] = true,
                (Some(_), Some(r)) => {
                    let why = r.reason().unwrap_or("failed").to_string();
                    let output = r.output().trim_end().to_string();
                    let reason = format!("`{}` failed: {why}", g.members[m].name);
                    return self.verdict(ctx, k, false, output, reason);
                }
                (Some(_), None) => {
                    return fail(format!("`{}` never finished", g.members[m].name));
                }
            }
        }
        let ready: Vec<usize> = (0..g.members.len())
            .filter(|&m| g.slots[m].is_none() && g.members[m].deps.iter().all(|&d| done[d]))
            .collect();
        if ready.is_empty() {
            for (m, slot) in g.slots.iter().enumerate() {
                if let Some(r) = result(*slot) {
                    g.outputs[m].push(r.output().trim_end().to_string());
                }
            }
            // A judged member that failed and goes on (`continueOnFailure`) is judged on
            // what it printed.
            let Some(r) = result(g.slots[g.judged]) else {
                return fail(format!(
                    "`{}` was never reached in iteration {k}",
                    g.members[g.judged].name
                ));
            };
            let output = r.output().trim_end().to_string();
            return self.verdict(ctx, k, true, output, String::new());
        }
        // A sibling that has not run yet reads as empty.
        let fallback: BTreeMap<String, String> = g
            .members
            .iter()
            .map(|m| (m.name.clone(), String::new()))
            .collect();
        let nodes = ready
            .iter()
            .map(|&m| {
                let member = &g.members[m];
                let spec = RunSpec {
                    soft: true,
                    vars: g.vars.clone(),
                    fallback_outputs: fallback.clone(),
                    ..RunSpec::default()
                };
                Node::run_with(
                    format!("{}#{k}", member.name),
                    member.step,
                    Vec::new(),
                    spec,
                    true,
                )
            })
            .collect::<Vec<_>>();
        let wait_for = (0..nodes.len()).map(NodeRef::New).collect();
        g.wave = ready;
        Resolution::Expand {
            nodes,
            wait_for,
            events,
        }
    }

    fn done(&self, why: Option<String>) -> Resolution {
        Resolution::Complete {
            output: self.outputs.last().cloned().unwrap_or_default(),
            events: why
                .map(|detail| EventKind::Pattern {
                    step: self.name.clone(),
                    action: "loop".into(),
                    detail,
                })
                .into_iter()
                .collect(),
        }
    }

    /// Judges the iteration that just ended.
    fn judge(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let k = u32::try_from(self.iterations.len()).unwrap_or(u32::MAX);
        let Some(Some(id)) = self.iterations.last().copied() else {
            return fail("the step's run was never placed".into());
        };
        let Some(result) = ctx.result(id) else {
            return fail("the step's run never finished".into());
        };
        let completed = result.completed();
        let output = result.output().trim_end().to_string();
        let reason = result.reason().unwrap_or("failed").to_string();
        self.verdict(Some(ctx), k, completed, output, reason)
    }

    /// Decides after iteration `k` ended: done, failed, or the next iteration.
    fn verdict(
        &mut self,
        ctx: Option<&GateCtx<'_>>,
        k: u32,
        completed: bool,
        output: String,
        reason: String,
    ) -> Resolution {
        let Some(repeat) = &self.looping else {
            return if completed {
                self.outputs.push(output.clone());
                Resolution::Complete {
                    output,
                    events: Vec::new(),
                }
            } else {
                fail(reason)
            };
        };
        if completed {
            self.outputs.push(output.clone());
        }
        let status = if completed { "completed" } else { "failed" };
        match &self.break_if {
            Some(Break::Failure) if !completed => {
                return self.done(Some(format!("iteration {k} failed: breakIf failure")));
            }
            Some(Break::Success) if completed => {
                return self.done(Some(format!("iteration {k} completed: breakIf success")));
            }
            Some(Break::When(e)) => {
                let Some(ctx) = ctx else {
                    return fail("condition `breakIf`: judged before anything ran".into());
                };
                match e.eval(&|p| self.lookup(ctx, p, Some((k, &output, status)))) {
                    Ok(v) if v.truthy() => {
                        return self.done(Some(format!("iteration {k}: breakIf holds")));
                    }
                    Ok(_) => {}
                    Err(e) => return fail(format!("condition `breakIf`: {e}")),
                }
            }
            _ => {}
        }
        if !completed && !matches!(self.break_if, Some(Break::Success)) {
            return fail(format!("iteration {k} failed: {reason}"));
        }
        if completed
            && let Some(u) = &repeat.until
            && u.met(&output)
        {
            return self.done(Some(format!("iteration {k}: {} met", u.describe())));
        }
        if k >= self.total() {
            if let Some(u) = &repeat.until {
                return fail(format!(
                    "{} not met after {k} iteration{}",
                    u.describe(),
                    if k == 1 { "" } else { "s" }
                ));
            }
            if !completed {
                return fail(format!("iteration {k} failed: {reason}"));
            }
            return self.done(None);
        }
        self.iterate(k + 1)
    }
}

impl Gate for ControlGate {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        match self.phase {
            Phase::Start => self.start(ctx),
            Phase::Checking(Some(id)) => {
                if ctx.result(id).is_some_and(|r| r.completed()) {
                    let cmd = match &self.skip {
                        Some(Skip::Command(c)) => c.as_str(),
                        _ => "",
                    };
                    skip(format!("`skipIf: sh: {cmd}` exited 0"))
                } else {
                    self.first(ctx)
                }
            }
            Phase::Checking(None) => fail("the skipIf check was never placed".into()),
            Phase::Running if self.group.is_some() => self.next_wave(Some(ctx), Vec::new()),
            Phase::Running => self.judge(ctx),
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        let Some(&id) = ids.first() else {
            return;
        };
        match self.phase {
            Phase::Checking(None) => self.phase = Phase::Checking(Some(id)),
            Phase::Running if self.group.is_some() => {
                if let Some(g) = &mut self.group {
                    for (&m, &id) in g.wave.iter().zip(ids) {
                        g.slots[m] = Some(id);
                    }
                }
            }
            Phase::Running => {
                if let Some(last) = self.iterations.last_mut() {
                    *last = Some(id);
                }
            }
            _ => {}
        }
    }

    fn extra_outputs(&self) -> Vec<(String, String)> {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let mut out = Vec::new();
        if self.looping.is_some() {
            out.push((outputs_key(&self.name), json(&self.outputs)));
        }
        if let Some(g) = &self.group {
            for (m, outputs) in g.members.iter().zip(&g.outputs) {
                out.push((outputs_key(&m.name), json(outputs)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_matches_text_or_a_regex() {
        assert!(Until::Text("PASS".into()).met("tests: PASS"));
        assert!(!Until::Text("PASS".into()).met("tests: FAIL"));
        assert!(Until::Regex("^ok [0-9]+$".into()).met("ok 12"));
        assert!(!Until::Regex("(".into()).met("("));
    }
}
