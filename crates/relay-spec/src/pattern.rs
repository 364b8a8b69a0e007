//! What a swarm pattern means at the level of the file: which pattern is in effect
//! (chosen by role when `swarm.pattern` is absent) and the dependencies it implies between
//! steps, so validation and the engine agree on what is upstream of what.

use std::collections::BTreeSet;

use crate::types::{Agent, Pattern, RelayFile, WorkflowDef};

/// The pattern in effect and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The pattern.
    pub pattern: Pattern,
    /// Why it was chosen, in words.
    pub reason: String,
}

/// Whether `role` names `keyword` as a whole word (`critic` in "Code critic", not in
/// "Critical thinker").
pub fn role_has(role: &str, keyword: &str) -> bool {
    let role = role.to_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut start = 0;
    while let Some(pos) = role[start..].find(keyword) {
        let at = start + pos;
        let before = role[..at].chars().next_back();
        let after = role[at + keyword.len()..].chars().next();
        if !is_word(before) && !is_word(after) {
            return true;
        }
        start = at + keyword.len().max(1);
    }
    false
}

/// Whether `agent`'s role names any of `keywords`.
pub fn agent_has(agent: &Agent, keywords: &[&str]) -> bool {
    agent
        .role
        .as_deref()
        .is_some_and(|r| keywords.iter().any(|k| role_has(r, k)))
}

fn any_agent(file: &RelayFile, keywords: &[&str]) -> bool {
    file.agents.iter().any(|a| agent_has(a, keywords))
}

/// The tier of an agent whose role names `tier-N`.
pub fn tier_of(agent: &Agent) -> Option<u32> {
    let role = agent.role.as_deref()?.to_lowercase();
    let at = role.find("tier-")?;
    role[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// The pattern of `wf`: `swarm.pattern`, else the first rule of the auto-selection table
/// that matches (steps with `dependsOn` → dag; consensus settings → consensus; roles such
/// as mapper+reducer, critic, tier-N, auctioneer, ... ; fan-out by default).
pub fn choose(file: &RelayFile, wf: &WorkflowDef) -> Choice {
    if let Some(p) = file.swarm.as_ref().and_then(|s| s.pattern) {
        return Choice {
            pattern: p,
            reason: "set by swarm.pattern".into(),
        };
    }
    let pick = |pattern: Pattern, reason: &str| Choice {
        pattern,
        reason: format!("auto-selected: {reason}"),
    };
    if wf.steps.iter().any(|s| !s.depends_on.is_empty()) {
        return pick(Pattern::Dag, "steps declare dependsOn");
    }
    if file
        .coordination
        .as_ref()
        .is_some_and(|c| c.consensus_strategy.is_some())
    {
        return pick(Pattern::Consensus, "coordination.consensusStrategy is set");
    }
    if any_agent(file, &["mapper"]) && any_agent(file, &["reducer"]) {
        return pick(Pattern::MapReduce, "agents with roles mapper and reducer");
    }
    if any_agent(file, &["attacker", "red-team"]) && any_agent(file, &["defender", "blue-team"]) {
        return pick(Pattern::RedTeam, "attacker and defender roles");
    }
    if any_agent(file, &["critic"]) {
        return pick(Pattern::Reflection, "an agent with role critic");
    }
    if file.agents.iter().any(|a| tier_of(a).is_some()) {
        return pick(Pattern::Escalation, "agents with tier-N roles");
    }
    if any_agent(file, &["auctioneer"]) {
        return pick(Pattern::Auction, "an agent with role auctioneer");
    }
    if any_agent(file, &["saga-orchestrator", "compensate-handler"]) {
        return pick(
            Pattern::Saga,
            "a saga-orchestrator or compensate-handler role",
        );
    }
    if any_agent(file, &["fallback", "backup", "primary"]) {
        return pick(
            Pattern::CircuitBreaker,
            "a primary, fallback or backup role",
        );
    }
    if any_agent(file, &["blackboard", "shared-workspace"]) {
        return pick(Pattern::Blackboard, "a blackboard or shared-workspace role");
    }
    if any_agent(file, &["hive-mind", "swarm-agent"]) {
        return pick(Pattern::Swarm, "a hive-mind or swarm-agent role");
    }
    if any_agent(file, &["verifier"]) {
        return pick(Pattern::Verifier, "an agent with role verifier");
    }
    if any_agent(file, &["supervisor"]) {
        return pick(Pattern::Supervisor, "an agent with role supervisor");
    }
    if any_agent(file, &["lead"]) && file.agents.len() >= 4 {
        return pick(Pattern::Hierarchical, "a lead with 4 or more agents");
    }
    if any_agent(file, &["hub", "coordinator"]) {
        return pick(Pattern::HubSpoke, "a hub or coordinator role");
    }
    let agents: BTreeSet<&str> = wf.steps.iter().filter_map(|s| s.agent.as_deref()).collect();
    if wf.steps.len() >= 3 && agents.len() == wf.steps.len() {
        return pick(
            Pattern::Pipeline,
            "3 or more steps, each with its own agent",
        );
    }
    pick(Pattern::FanOut, "no other rule matched")
}

/// The hub agents of hub-spoke: roles hub, coordinator or lead; else the first agent.
pub fn hubs(file: &RelayFile) -> BTreeSet<String> {
    let named: BTreeSet<String> = file
        .agents
        .iter()
        .filter(|a| agent_has(a, &["hub", "coordinator", "lead"]))
        .map(|a| a.name.clone())
        .collect();
    if named.is_empty() {
        file.agents.iter().take(1).map(|a| a.name.clone()).collect()
    } else {
        named
    }
}

/// Who each agent reports to in a hierarchy: `reportsTo`, else the lead (role lead, or
/// the first agent) for everyone but the lead itself.
pub fn managers(file: &RelayFile) -> Vec<(String, Option<String>)> {
    let lead = file
        .agents
        .iter()
        .find(|a| agent_has(a, &["lead"]))
        .or(file.agents.first())
        .map(|a| a.name.clone());
    file.agents
        .iter()
        .map(|a| {
            let boss = a
                .reports_to
                .clone()
                .or_else(|| lead.clone().filter(|l| *l != a.name));
            (a.name.clone(), boss)
        })
        .collect()
}

fn agent_of<'a>(file: &'a RelayFile, name: Option<&str>) -> Option<&'a Agent> {
    let name = name?;
    file.agents.iter().find(|a| a.name == name)
}

/// Dependencies `pattern` adds to `wf`'s steps (by index), on top of `dependsOn`:
/// pipeline and handoff chain steps that declare none; cascade makes each phase wait for
/// the one before; scatter-gather makes a final step without dependencies gather every
/// leaf; hub-spoke, hierarchical, supervisor and map-reduce make a collecting step
/// (hub, manager, supervisor, reducer) without dependencies wait for the steps before
/// it that it collects.
pub fn implicit_deps(file: &RelayFile, wf: &WorkflowDef, pattern: Pattern) -> Vec<Vec<usize>> {
    let own = |s: &crate::types::Step| s.group.is_none() && s.run_as.is_none();
    if wf.steps.iter().all(own) {
        return implicit_in(file, wf, pattern);
    }
    // A pattern orders the workflow's own steps; the members of a group are ordered by
    // their group alone, and the steps of a sub-workflow with a pattern of its own by
    // that pattern (written into their `dependsOn` when it was included).
    let top: Vec<usize> = (0..wf.steps.len()).filter(|&i| own(&wf.steps[i])).collect();
    let view = WorkflowDef {
        steps: top.iter().map(|&i| wf.steps[i].clone()).collect(),
        ..wf.clone()
    };
    let mut extra = vec![Vec::new(); wf.steps.len()];
    for (k, deps) in implicit_in(file, &view, pattern).into_iter().enumerate() {
        extra[top[k]] = deps.into_iter().map(|d| top[d]).collect();
    }
    extra
}

fn implicit_in(file: &RelayFile, wf: &WorkflowDef, pattern: Pattern) -> Vec<Vec<usize>> {
    let n = wf.steps.len();
    let mut extra = vec![Vec::new(); n];
    let free = |i: usize| wf.steps[i].depends_on.is_empty();
    let role_of = |i: usize, kw: &[&str]| {
        agent_of(file, wf.steps[i].agent.as_deref()).is_some_and(|a| agent_has(a, kw))
    };
    match pattern {
        Pattern::Pipeline | Pattern::Handoff => {
            for (i, deps) in extra.iter_mut().enumerate().skip(1) {
                if free(i) {
                    deps.push(i - 1);
                }
            }
        }
        Pattern::Cascade => {
            let mut phases = Vec::with_capacity(n);
            let mut current = 1;
            let none_set = wf.steps.iter().all(|x| x.phase.is_none());
            for (i, s) in wf.steps.iter().enumerate() {
                current = match s.phase {
                    Some(p) => p,
                    None if i == 0 => 1,
                    None if none_set => current + 1,
                    None => current,
                };
                phases.push(current);
            }
            // Each step waits for every step of the highest phase below its own.
            let mut members: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (j, p) in phases.iter().enumerate() {
                members.entry(*p).or_default().push(j);
            }
            for i in 0..n {
                if let Some((_, prev)) = members.range(..phases[i]).next_back() {
                    extra[i].extend(prev.iter().copied());
                }
            }
        }
        Pattern::ScatterGather if n >= 2 && free(n - 1) => {
            let depended: BTreeSet<&str> = wf
                .steps
                .iter()
                .flat_map(|s| s.depends_on.iter().map(String::as_str))
                .collect();
            extra[n - 1] = (0..n - 1)
                .filter(|&j| !depended.contains(wf.steps[j].name.as_str()))
                .collect();
        }
        Pattern::HubSpoke => {
            let hubs = hubs(file);
            let is_hub = |i: usize| wf.steps[i].agent.as_ref().is_some_and(|a| hubs.contains(a));
            for (i, deps) in extra.iter_mut().enumerate() {
                if is_hub(i) && free(i) {
                    *deps = (0..i).filter(|&j| !is_hub(j)).collect();
                }
            }
        }
        Pattern::Hierarchical => {
            let bosses = managers(file);
            let reports_to = |agent: &str, boss: &str| {
                bosses
                    .iter()
                    .any(|(a, b)| a == agent && b.as_deref() == Some(boss))
            };
            for (i, deps) in extra.iter_mut().enumerate() {
                let Some(me) = wf.steps[i].agent.as_deref() else {
                    continue;
                };
                if free(i) {
                    *deps = (0..i)
                        .filter(|&j| {
                            wf.steps[j]
                                .agent
                                .as_deref()
                                .is_some_and(|a| reports_to(a, me))
                        })
                        .collect();
                }
            }
        }
        Pattern::Supervisor => {
            for (i, deps) in extra.iter_mut().enumerate() {
                if role_of(i, &["supervisor"]) && free(i) {
                    *deps = (0..i).filter(|&j| !role_of(j, &["supervisor"])).collect();
                }
            }
        }
        Pattern::MapReduce => {
            for (i, deps) in extra.iter_mut().enumerate() {
                if role_of(i, &["reducer"]) && free(i) {
                    *deps = (0..i).filter(|&j| role_of(j, &["mapper"])).collect();
                }
            }
        }
        _ => {}
    }
    extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(src: &str) -> RelayFile {
        crate::parse(src, "t.yaml").unwrap().file
    }

    #[test]
    fn roles_match_whole_words_only() {
        assert!(role_has("Code critic", "critic"));
        assert!(!role_has("Critical thinker", "critic"));
        assert!(role_has("tier-1 responder", "tier-1"));
        assert!(role_has("RED-TEAM lead", "red-team"));
    }

    #[test]
    fn auto_selection_follows_the_priority_table() {
        let base = |roles: &[&str], deps: bool| {
            let mut y = String::from("name: t\nagents:\n");
            for (i, r) in roles.iter().enumerate() {
                y.push_str(&format!("  - {{name: a{i}, cli: claude, role: \"{r}\"}}\n"));
            }
            y.push_str("workflows:\n  - name: w\n    steps:\n");
            for i in 0..roles.len() {
                y.push_str(&format!("      - {{name: s{i}, agent: a{i}, task: x"));
                if deps && i > 0 {
                    y.push_str(&format!(", dependsOn: [s{}]", i - 1));
                }
                y.push_str("}\n");
            }
            let f = file(&y);
            choose(&f, &f.workflows[0]).pattern
        };
        assert_eq!(base(&["critic", "writer"], true), Pattern::Dag);
        assert_eq!(base(&["mapper", "reducer"], false), Pattern::MapReduce);
        assert_eq!(base(&["attacker", "defender"], false), Pattern::RedTeam);
        assert_eq!(base(&["critic", "writer"], false), Pattern::Reflection);
        assert_eq!(base(&["tier-1", "tier-2"], false), Pattern::Escalation);
        assert_eq!(base(&["auctioneer", "bidder"], false), Pattern::Auction);
        assert_eq!(base(&["primary", "backup"], false), Pattern::CircuitBreaker);
        assert_eq!(base(&["verifier", "coder"], false), Pattern::Verifier);
        assert_eq!(base(&["lead", "a", "b", "c"], false), Pattern::Hierarchical);
        assert_eq!(base(&["coordinator", "a"], false), Pattern::HubSpoke);
        assert_eq!(base(&["a", "b", "c"], false), Pattern::Pipeline);
        assert_eq!(base(&["a", "b"], false), Pattern::FanOut);
    }

    #[test]
    fn chain_and_phase_dependencies() {
        let f = file(
            "name: t\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - {name: p1, agent: a, task: x, phase: 1}\n      - {name: p1b, agent: a, task: x}\n      - {name: p2, agent: a, task: x, phase: 2}\n      - {name: p3, agent: a, task: x, phase: 3}\n",
        );
        let wf = &f.workflows[0];
        assert_eq!(
            implicit_deps(&f, wf, Pattern::Pipeline),
            [vec![], vec![0], vec![1], vec![2]]
        );
        assert_eq!(
            implicit_deps(&f, wf, Pattern::Cascade),
            [vec![], vec![], vec![0, 1], vec![2]]
        );
    }
}
