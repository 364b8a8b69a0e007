//! Loading and validation never panic and always finish, on text that is nearly YAML and
//! on valid workflows with random damage done to them. Inputs are small and the number of
//! cases bounded, so this runs in a few seconds as part of the default suite.

use proptest::prelude::*;
use relay_spec::{Pattern, parse, validate};

/// Pieces that YAML, and relay.yaml in particular, is made of.
const TOKENS: &[&str] = &[
    "name: ",
    "agents:",
    "workflows:",
    "steps:",
    "swarm:",
    "pattern: ",
    "dependsOn: ",
    "coordination:",
    "barriers:",
    "waitFor: ",
    "items: ",
    "task: ",
    "agent: ",
    "cli: claude",
    "type: deterministic",
    "command: ",
    "verification: ",
    "{type: exit_code, value: ",
    "- ",
    "  ",
    "    ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    ": ",
    ", ",
    "&a ",
    "*a",
    "<<: ",
    "'",
    "\"",
    "{{",
    "}}",
    "steps.x.output",
    "item",
    "~",
    "# c",
    "|",
    ">",
    "---",
    "x",
    "y",
    "0",
    "-1",
    "256",
    "1e9",
    "true",
    "\\0",
    "\t",
    "é",
    "map-reduce",
    "auction",
    "reportsTo: ",
    "participants: ",
    "use: ",
    "permissions: ",
    "readonly",
    "{access: ",
    "type: waitFor",
    "workdir: ",
    "paths: ",
    "trajectories: ",
    "false",
    "preflight: ",
    "failIf: ",
    "regex:",
    "(",
    "humanAssistance: ",
];

fn yamlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.concat())
}

/// A structurally valid workflow: steps depend only on earlier steps, references name
/// dependencies, `items` appear only under the patterns that use them.
#[derive(Debug, Clone)]
struct Spec {
    agents: Vec<(String, &'static str, Option<usize>)>,
    pattern: Option<Pattern>,
    steps: Vec<StepSpec>,
    barrier: bool,
}

#[derive(Debug, Clone)]
struct StepSpec {
    agent: usize,
    deterministic: bool,
    deps: Vec<usize>,
    uses_output: bool,
    items: bool,
    exit_code: Option<u8>,
}

const ROLES: &[&str] = &[
    "worker",
    "lead",
    "critic",
    "mapper",
    "reducer",
    "auctioneer",
    "tier-1",
    "tier-2",
    "supervisor",
    "hub",
    "verifier",
    "primary",
    "fallback",
    "attacker",
    "defender",
];

const PATTERNS: &[Pattern] = &[
    Pattern::Dag,
    Pattern::FanOut,
    Pattern::Pipeline,
    Pattern::HubSpoke,
    Pattern::Consensus,
    Pattern::Mesh,
    Pattern::Handoff,
    Pattern::Debate,
    Pattern::Hierarchical,
    Pattern::MapReduce,
    Pattern::ScatterGather,
    Pattern::Supervisor,
    Pattern::Reflection,
    Pattern::Verifier,
    Pattern::RedTeam,
    Pattern::Auction,
    Pattern::Escalation,
    Pattern::Saga,
    Pattern::CircuitBreaker,
    Pattern::Blackboard,
    Pattern::Swarm,
    Pattern::Competitive,
    Pattern::ReviewLoop,
];

fn spec() -> impl Strategy<Value = Spec> {
    let agents = prop::collection::vec((prop::sample::select(ROLES), any::<bool>()), 2..5);
    let pattern = prop::option::of(prop::sample::select(PATTERNS));
    let steps = prop::collection::vec(
        (
            0usize..5,
            any::<bool>(),
            prop::collection::vec(0usize..12, 0..3),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(any::<u8>()),
        ),
        1..12,
    );
    (agents, pattern, steps, any::<bool>()).prop_map(|(agents, pattern, steps, barrier)| {
        let n_agents = agents.len();
        let agents = agents
            .into_iter()
            .enumerate()
            .map(|(i, (role, reports))| {
                // Only to an earlier agent, so no chain comes back.
                (format!("agent{i}"), role, (reports && i > 0).then(|| i - 1))
            })
            .collect();
        let item_pattern = matches!(pattern, Some(Pattern::MapReduce | Pattern::ScatterGather));
        let steps = steps
            .into_iter()
            .enumerate()
            .map(|(i, (agent, deterministic, deps, uses, items, code))| {
                let mut deps: Vec<usize> = deps.into_iter().filter(|&d| d < i).collect();
                deps.sort_unstable();
                deps.dedup();
                StepSpec {
                    agent: agent % n_agents,
                    deterministic,
                    uses_output: uses && !deps.is_empty(),
                    deps,
                    items: items && item_pattern,
                    exit_code: code,
                }
            })
            .collect();
        Spec {
            agents,
            pattern,
            steps,
            barrier,
        }
    })
}

fn render(spec: &Spec) -> String {
    let mut y = String::from("version: \"1.0\"\nname: fuzz\n");
    if let Some(p) = spec.pattern {
        y.push_str(&format!(
            "swarm:\n  pattern: {}\n  maxConcurrency: 2\n",
            p.as_str()
        ));
    }
    y.push_str("agents:\n");
    for (name, role, boss) in &spec.agents {
        y.push_str(&format!(
            "  - name: {name}\n    cli: claude\n    role: {role}\n"
        ));
        if let Some(b) = boss {
            y.push_str(&format!("    reportsTo: agent{b}\n"));
        }
    }
    if spec.barrier {
        y.push_str("coordination:\n  barriers:\n    - name: gate\n      waitFor: [s0]\n");
    }
    y.push_str("workflows:\n  - name: main\n    steps:\n");
    for (i, s) in spec.steps.iter().enumerate() {
        y.push_str(&format!("      - name: s{i}\n"));
        let mut text = format!("work {i}");
        if s.uses_output {
            text.push_str(&format!(" on {{{{steps.s{}.output}}}}", s.deps[0]));
        }
        if s.items {
            text.push_str(" for {{item}}");
            y.push_str("        items: [a, b]\n");
        }
        if s.deterministic {
            y.push_str(&format!(
                "        type: deterministic\n        command: 'echo {text}'\n"
            ));
        } else {
            y.push_str(&format!(
                "        agent: agent{}\n        task: '{text}'\n",
                s.agent
            ));
        }
        let mut deps: Vec<String> = s.deps.iter().map(|d| format!("s{d}")).collect();
        if spec.barrier && i > 0 && deps.is_empty() {
            deps.push("gate".into());
        }
        if !deps.is_empty() {
            y.push_str(&format!("        dependsOn: [{}]\n", deps.join(", ")));
        }
        if let Some(c) = s.exit_code {
            y.push_str(&format!(
                "        verification: {{type: exit_code, value: {c}}}\n"
            ));
        }
    }
    y
}

/// Ways of damaging a file: by line, by byte, by token.
#[derive(Debug, Clone)]
enum Damage {
    DropLine(usize),
    DupLine(usize),
    SwapLines(usize, usize),
    Insert(usize, &'static str),
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::DropLine),
        any::<usize>().prop_map(Damage::DupLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapLines(a, b)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(a, t)| Damage::Insert(a, t)),
        any::<usize>().prop_map(Damage::Truncate),
    ]
}

fn apply(text: &str, d: &Damage) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len().max(1);
    match *d {
        Damage::DropLine(i) => {
            if !lines.is_empty() {
                lines.remove(i % n);
            }
        }
        Damage::DupLine(i) => {
            if let Some(&l) = lines.get(i % n) {
                lines.insert(i % n, l);
            }
        }
        Damage::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        Damage::Insert(at, t) => {
            let mut s = text.to_string();
            let mut at = at % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.insert_str(at, t);
            return s;
        }
        Damage::Truncate(at) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            return text[..at].to_string();
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Loads and validates `text` the way `agent-relay validate` does.
fn check(text: &str) {
    if let Ok(loaded) = parse(text, "fuzz.yaml") {
        let report = validate(&loaded, None);
        for d in &report.diagnostics {
            // Every message renders, and stays readable in size.
            assert!(d.render("fuzz.yaml").len() < 4096, "{d:?}");
        }
        let _ = validate(&loaded, Some("main"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn nearly_yaml_never_panics(text in yamlish()) {
        check(&text);
    }

    #[test]
    fn generated_workflows_are_valid_and_survive_damage(
        spec in spec(),
        damages in prop::collection::vec(damage(), 1..4),
    ) {
        let text = render(&spec);
        let loaded = parse(&text, "fuzz.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let report = validate(&loaded, None);
        let errors: Vec<String> = report.errors().map(|d| d.message.clone()).collect();
        prop_assert!(errors.is_empty(), "{errors:?}\n{text}");
        let mut damaged = text;
        for d in &damages {
            damaged = apply(&damaged, d);
            check(&damaged);
        }
    }
}
