//! File-wide checks: agents (names, `reportsTo`), barriers, and the swarm and
//! coordination settings.

use std::collections::{BTreeMap, HashMap};

use crate::suggest::{did_you_mean, shown};

use super::names::check_name;
use super::{Ctx, Diagnostic, Report, hint};

pub(super) fn validate_file(ctx: &Ctx<'_>, report: &mut Report) {
    agents(ctx, report);
    reports_to(ctx, report);
    swarm(ctx, report);
    barriers(ctx, report);
    if let Some(t) = ctx
        .file
        .coordination
        .as_ref()
        .and_then(|c| c.voting_threshold)
        && !(0.0..=1.0).contains(&t)
    {
        report.push(Diagnostic::error(
            None,
            format!("coordination.votingThreshold must be between 0 and 1, not {t}"),
        ));
    }
}

fn agents(ctx: &Ctx<'_>, report: &mut Report) {
    let map = &ctx.loaded.map;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in ctx.file.agents.iter().enumerate() {
        if check_name("agent", &a.name, map.agent(i), report)
            && seen.insert(a.name.as_str(), i).is_some()
        {
            report.push(Diagnostic::error(
                map.agent(i),
                format!("duplicate agent name `{}`", a.name),
            ));
        }
    }
}

/// `reportsTo` names an agent of the file, not the agent itself, and no chain of them
/// comes back to where it started.
fn reports_to(ctx: &Ctx<'_>, report: &mut Report) {
    let map = &ctx.loaded.map;
    let agents = &ctx.file.agents;
    let mut boss: Vec<Option<usize>> = vec![None; agents.len()];
    for (i, a) in agents.iter().enumerate() {
        let Some(b) = a.reports_to.as_deref() else {
            continue;
        };
        match ctx.agents.get(b) {
            None => report.push(Diagnostic::error(
                map.agent_reports_to(i),
                format!(
                    "agent `{}` reports to unknown agent `{}`{}",
                    a.name,
                    shown(b),
                    ctx.agent_hint(b)
                ),
            )),
            Some(&j) if j == i => report.push(Diagnostic::error(
                map.agent_reports_to(i),
                format!("agent `{}` reports to itself", a.name),
            )),
            Some(&j) => boss[i] = Some(j),
        }
    }
    // Follow each chain upwards; a chain that meets itself is a cycle, reported once by
    // its first agent in file order.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; agents.len()];
    for start in 0..agents.len() {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            match state[i] {
                DONE => break,
                ON_PATH => {
                    let from = path.iter().position(|&p| p == i).unwrap_or(0);
                    let cycle = &path[from..];
                    let first = cycle.iter().copied().min().unwrap_or(i);
                    let rot = cycle.iter().position(|&p| p == first).unwrap_or(0);
                    let names: Vec<&str> = cycle[rot..]
                        .iter()
                        .chain(&cycle[..rot])
                        .map(|&p| agents[p].name.as_str())
                        .collect();
                    report.push(Diagnostic::error(
                        map.agent_reports_to(first),
                        format!(
                            "reportsTo forms a cycle: {} -> {}",
                            names.join(" -> "),
                            names[0]
                        ),
                    ));
                    break;
                }
                _ => {
                    state[i] = ON_PATH;
                    path.push(i);
                    at = boss[i];
                }
            }
        }
        for p in path {
            state[p] = DONE;
        }
    }
}

fn swarm(ctx: &Ctx<'_>, report: &mut Report) {
    if let Some(0) = ctx.file.swarm.as_ref().and_then(|s| s.max_concurrency) {
        report.push(Diagnostic::error(
            ctx.loaded.map.max_concurrency(),
            "swarm.maxConcurrency must be at least 1 (leave it out for no limit)",
        ));
    }
}

fn barriers(ctx: &Ctx<'_>, report: &mut Report) {
    let map = &ctx.loaded.map;
    let Some(c) = &ctx.file.coordination else {
        return;
    };
    // Every step name of the file, with the workflow it is in.
    let mut steps: BTreeMap<&str, &str> = BTreeMap::new();
    for wf in &ctx.file.workflows {
        for s in &wf.steps {
            steps.entry(s.name.as_str()).or_insert(wf.name.as_str());
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (b, bar) in c.barriers.iter().enumerate() {
        let pos = map.barrier(b);
        if !check_name("barrier", &bar.name, pos, report) {
            continue;
        }
        if seen.insert(bar.name.as_str(), b).is_some() {
            report.push(Diagnostic::error(
                pos,
                format!("duplicate barrier name `{}`", bar.name),
            ));
        }
        if let Some(wf) = steps.get(bar.name.as_str()) {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "barrier `{0}` has the same name as step `{0}` of workflow `{wf}`, so \
                     `dependsOn: [{0}]` could mean either; rename one of them",
                    bar.name
                ),
            ));
        }
        if bar.wait_for.is_empty() {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "barrier `{}` waits for no steps (list them in `waitFor`)",
                    bar.name
                ),
            ));
        }
        for (k, s) in bar.wait_for.iter().enumerate() {
            if !steps.contains_key(s.as_str()) {
                report.push(Diagnostic::error(
                    map.barrier_wait(b, k),
                    format!(
                        "barrier `{}` waits for unknown step `{}`{}",
                        bar.name,
                        shown(s),
                        hint(did_you_mean(s, steps.keys().copied()))
                    ),
                ));
            }
        }
    }
}
