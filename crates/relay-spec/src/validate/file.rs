//! File-wide checks: agents (names, `reportsTo`), barriers, and the swarm and
//! coordination settings.

use std::collections::{BTreeMap, HashMap};

use crate::load::{AgentField, PreflightField};
use crate::suggest::{did_you_mean, shown};
use crate::types::{Access, NameOr, OutputCondition, WorkflowDef};

use super::names::{check_agent_name, check_name, check_no_control};
use super::{Ctx, Diagnostic, Report, hint};

pub(super) fn validate_file(ctx: &Ctx<'_>, report: &mut Report) {
    paths(ctx, report);
    profiles(ctx, report);
    agents(ctx, report);
    agent_settings(ctx, report);
    error_handling(ctx, report);
    subscriptions(ctx, report);
    reports_to(ctx, report);
    swarm(ctx, report);
    placements(ctx, report);
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
        for c in &a.channels {
            check_no_control("channel", c, map.agent(i), report);
        }
        if check_agent_name(&a.name, map.agent(i), report)
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
    let Some(swarm) = ctx.file.swarm.as_ref() else {
        return;
    };
    let map = &ctx.loaded.map;
    if let Some(c) = &swarm.channel {
        check_no_control("swarm.channel", c, None, report);
    }
    if let Some(0) = swarm.max_concurrency {
        report.push(Diagnostic::error(
            map.max_concurrency(),
            "swarm.maxConcurrency must be at least 1 (leave it out for no limit)",
        ));
    }
    if let Some(0) = swarm.timeout_ms {
        report.push(Diagnostic::error(
            map.swarm_timeout(),
            "swarm.timeoutMs must be at least 1 (a bound on the whole run, in milliseconds; \
             leave it out for no bound)",
        ));
    }
    if let Some(r) = &swarm.resolver
        && !ctx.agents.contains_key(r.as_str())
    {
        report.push(Diagnostic::error(
            map.resolver(),
            format!(
                "swarm.resolver names unknown agent `{}`{}",
                shown(r),
                ctx.agent_hint(r)
            ),
        ));
    }
    for (k, path) in swarm.worktree_include.iter().enumerate() {
        let pos = map.worktree_include(k);
        let what = "swarm.worktreeInclude";
        if path.trim().is_empty() {
            report.push(Diagnostic::error(pos, format!("{what} has an empty path")));
        } else if path.starts_with('/') || path.split('/').any(|c| c == "..") {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "{what}: `{}` must be relative to the repository's top and stay inside it",
                    shown(path)
                ),
            ));
        }
        super::names::check_no_nul(&format!("{what} path"), path, pos, report);
    }
    let uses_worktrees = ctx.file.worktree_agents().next().is_some();
    if !uses_worktrees
        && (swarm.resolver.is_some()
            || !swarm.worktree_include.is_empty()
            || swarm.keep_worktrees.is_some())
    {
        report.push(Diagnostic::warning(
            None,
            "swarm.resolver, worktreeInclude and keepWorktrees apply to agents with worktrees, and no agent has one (set `swarm.worktrees: per-agent` or `worktree: true` on an agent)",
        ));
    }
    if let Some(w) = swarm.workers.as_deref() {
        if w.trim().is_empty() {
            report.push(Diagnostic::error(
                None,
                "swarm.workers is empty (a NATS URL such as nats://host:4222, or leave it out)",
            ));
        } else if w.contains('@') {
            report.push(Diagnostic::warning(
                None,
                "swarm.workers holds credentials: anyone who reads this file has them; \
                 put the URL with its credentials in AGENT_RELAY_NATS instead",
            ));
        }
    }
}

/// `agents[].placement.labels` keys are words a worker's `--label KEY=VALUE` can match
/// (checked with or without a `swarm` section).
fn placements(ctx: &Ctx<'_>, report: &mut Report) {
    for (i, a) in ctx.file.agents.iter().enumerate() {
        for k in a.placement.iter().flat_map(|p| p.labels.keys()) {
            if k.trim().is_empty() || k.contains('=') {
                report.push(Diagnostic::error(
                    ctx.loaded.map.agent(i),
                    format!(
                        "agents[{}].placement.labels has the key `{k}`; a label key is a \
                         non-empty word without `=`",
                        a.name
                    ),
                ));
            }
        }
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

/// The message for `whose` `workdir` naming no `paths` entry.
pub(super) fn unknown_path_message(ctx: &Ctx<'_>, whose: &str, name: &str) -> String {
    let names: Vec<&str> = ctx.file.paths.iter().map(|p| p.name.as_str()).collect();
    let mut msg = format!(
        "{whose} has `workdir: {}`, but `paths` has no entry of that name{}",
        shown(name),
        hint(did_you_mean(name, names.iter().copied()))
    );
    if names.is_empty() {
        msg.push_str("; declare it under `paths: [{name, path}]`");
    } else {
        msg.push_str(&format!("; paths: {}", names.join(", ")));
    }
    msg
}

fn paths(ctx: &Ctx<'_>, report: &mut Report) {
    let map = &ctx.loaded.map;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in ctx.file.paths.iter().enumerate() {
        let pos = map.path(i);
        if check_name("path", &p.name, pos, report) && seen.insert(p.name.as_str(), i).is_some() {
            report.push(Diagnostic::error(
                pos,
                format!("duplicate path name `{}`", p.name),
            ));
        }
        if p.path.trim().is_empty() {
            report.push(Diagnostic::error(
                pos,
                format!("path `{}` has an empty `path`", p.name),
            ));
        }
    }
}

fn profiles(ctx: &Ctx<'_>, report: &mut Report) {
    for name in ctx.file.permission_profiles.keys() {
        if Access::from_name(name).is_some() {
            // `permissions: readonly` would mean the preset, never this profile.
            report.push(Diagnostic::error(
                None,
                format!("permission profile `{name}` has the name of an access preset; rename it"),
            ));
        } else {
            check_name("permission profile", name, None, report);
        }
    }
}

/// Each agent's permissions, working directory and subscriptions refer to things that
/// exist.
fn agent_settings(ctx: &Ctx<'_>, report: &mut Report) {
    let map = &ctx.loaded.map;
    let file = ctx.file;
    for (i, a) in file.agents.iter().enumerate() {
        let at = |f| map.agent_field(i, f);
        if a.constraints.as_ref().and_then(|c| c.timeout_ms) == Some(0) {
            report.push(Diagnostic::error(
                map.agent(i),
                format!(
                    "agent `{}`: constraints.timeoutMs must be at least 1 (a bound on each \
                     attempt, in milliseconds; leave it out for no bound)",
                    a.name
                ),
            ));
        }
        if a.permissions.is_some()
            && let Err(e) = crate::permissions::effective_permissions(file, a)
        {
            let field = match &a.permissions {
                Some(NameOr::Value(_)) => AgentField::PermissionsProfile,
                _ => AgentField::Permissions,
            };
            report.push(Diagnostic::error(at(field), e.to_string()));
        }
        if let Some(wd) = &a.workdir {
            if a.cwd.is_some() {
                report.push(Diagnostic::error(
                    at(AgentField::Workdir),
                    format!("agent `{}` sets both `cwd` and `workdir`; keep one", a.name),
                ));
            }
            if file.path(wd).is_none() {
                report.push(Diagnostic::error(
                    at(AgentField::Workdir),
                    unknown_path_message(ctx, &format!("agent `{}`", a.name), wd),
                ));
            }
        }
        let known: Vec<&str> = file
            .integrations
            .iter()
            .flat_map(|i| i.subscriptions.iter().filter_map(|s| s.name.as_deref()))
            .collect();
        for (k, sub) in a.subscriptions.iter().enumerate() {
            match sub {
                NameOr::Name(n) if !known.contains(&n.as_str()) => {
                    report.push(Diagnostic::error(
                        at(AgentField::Subscription(k)),
                        format!(
                            "agent `{}` subscribes to `{}`, but `integrations.subscriptions` has no subscription of that name{}",
                            a.name,
                            shown(n),
                            hint(did_you_mean(n, known.iter().copied()))
                        ),
                    ));
                }
                NameOr::Value(s) if s.path.is_some() && !s.paths.is_empty() => {
                    report.push(Diagnostic::error(
                        at(AgentField::Subscription(k)),
                        format!(
                            "agent `{}`: a subscription takes `path` or `paths`, not both",
                            a.name
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
}

fn error_handling(ctx: &Ctx<'_>, report: &mut Report) {
    let Some(eh) = &ctx.file.error_handling else {
        return;
    };
    let map = &ctx.loaded.map;
    if let Some(r) = &eh.repair_agent
        && !ctx.agents.contains_key(r.as_str())
    {
        report.push(Diagnostic::error(
            map.repair_agent(),
            format!(
                "errorHandling.repairAgent names unknown agent `{}`{}",
                shown(r),
                ctx.agent_hint(r)
            ),
        ));
    }
    if let Some(c) = &eh.notify_channel {
        check_no_control("errorHandling.notifyChannel", c, None, report);
    }
    for (k, glob) in eh.protect.iter().enumerate() {
        if glob.trim().is_empty() {
            report.push(Diagnostic::error(
                map.protect(k),
                "errorHandling.protect has an empty glob",
            ));
        }
        super::names::check_no_nul("errorHandling.protect glob", glob, map.protect(k), report);
    }
}

fn subscriptions(ctx: &Ctx<'_>, report: &mut Report) {
    let Some(i) = &ctx.file.integrations else {
        return;
    };
    let map = &ctx.loaded.map;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, s) in i.subscriptions.iter().enumerate() {
        let pos = map.subscription(k);
        if let Some(n) = &s.name
            && check_name("subscription", n, pos, report)
            && seen.insert(n.as_str(), k).is_some()
        {
            report.push(Diagnostic::error(
                pos,
                format!("duplicate subscription name `{n}`"),
            ));
        }
        if s.path.is_some() && !s.paths.is_empty() {
            report.push(Diagnostic::error(
                pos,
                "a subscription takes `path` or `paths`, not both",
            ));
        }
    }
}

/// A workflow's preflight checks: a command each, within the limits, and conditions that
/// are `empty`, `non-empty` or a regular expression that compiles.
pub(super) fn preflight(ctx: &Ctx<'_>, w: usize, wf: &WorkflowDef, report: &mut Report) {
    let map = &ctx.loaded.map;
    for (k, check) in wf.preflight.iter().enumerate() {
        let pos = map.preflight(w, k, PreflightField::Command);
        let what = format!("preflight command {} of workflow `{}`", k + 1, wf.name);
        if check.command.trim().is_empty() {
            report.push(Diagnostic::error(pos, format!("the {what} is empty")));
        }
        super::names::check_no_nul(&what, &check.command, pos, report);
        if check.command.len() > crate::limits::MAX_TEXT_BYTES {
            report.push(Diagnostic::error(
                pos,
                format!(
                    "the {what} is {} bytes; it may be at most {} MiB",
                    check.command.len(),
                    crate::limits::MAX_TEXT_BYTES / (1024 * 1024)
                ),
            ));
        }
        for (key, cond, field) in [
            ("failIf", check.fail_condition(), PreflightField::FailIf),
            (
                "successIf",
                check.success_condition(),
                PreflightField::SuccessIf,
            ),
        ] {
            if let Some(OutputCondition::Matches(pattern)) = cond
                && let Err(e) = super::regex_check(pattern)
            {
                report.push(Diagnostic::error(
                    map.preflight(w, k, field),
                    format!(
                        "{key} of {what} is neither `empty`, `non-empty` nor a regular expression that compiles: {e}"
                    ),
                ));
            }
        }
    }
}
