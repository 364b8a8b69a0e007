//! Every swarm pattern changes scheduling, data flow or control flow in a way these tests
//! observe, running the real binary with the fake agent for every CLI.

#![allow(clippy::unwrap_used)]

mod support;

use support::{World, stderr, step, summary};

/// A file with one-shot agents `(name, role)` on claude, a header and steps.
fn team(agents: &[(&str, &str)], header: &str, steps: &str) -> String {
    let mut y = format!("name: t\n{header}agents:\n");
    for (name, role) in agents {
        y.push_str(&format!(
            "  - {{name: {name}, cli: claude, role: \"{role}\", interactive: false}}\n"
        ));
    }
    y.push_str("workflows:\n  - name: main\n    steps:\n");
    y.push_str(steps);
    y
}

fn run(w: &World, yaml: &str) -> (std::process::Output, serde_json::Value) {
    let f = w.write("wf.yaml", yaml);
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    (o, s)
}

fn out(s: &serde_json::Value, name: &str) -> String {
    step(s, name)["output"].as_str().unwrap().to_string()
}

fn pattern_events(w: &World, action: &str) -> Vec<String> {
    w.events()
        .iter()
        .filter(|e| e["type"] == "pattern" && e["action"] == action)
        .map(|e| {
            format!(
                "{} {}",
                e["step"].as_str().unwrap(),
                e["detail"].as_str().unwrap()
            )
        })
        .collect()
}

fn count(w: &World, key: &str) -> usize {
    w.read(&format!("state/count-{key}")).lines().count()
}

/// Order of `start`/`end` lines of the fake agents' log, as "start:step" strings.
fn log_order(w: &World) -> Vec<String> {
    w.agent_log()
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            format!("{}:{}", p.next().unwrap_or(""), p.next().unwrap_or(""))
        })
        .collect()
}

fn before(order: &[String], a: &str, b: &str) -> bool {
    let pa = order.iter().position(|x| x == a);
    let pb = order.iter().position(|x| x == b);
    matches!((pa, pb), (Some(x), Some(y)) if x < y)
}

const ONE: &[(&str, &str)] = &[("dev", "developer")];

#[test]
fn pipeline_chains_steps_and_passes_each_output_on() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("a", "x"), ("b", "y"), ("c", "z")],
            "swarm: {pattern: pipeline}\n",
            "      - {name: s1, agent: a, task: \"[[fake:say=FROM_S1]] [[fake:sleep=100]]\"}\n      - {name: s2, agent: b, task: \"[[fake:echo-task]]\"}\n      - {name: s3, agent: c, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out(&s, "s2").contains("Input from `s1`") && out(&s, "s2").contains("FROM_S1"));
    let order = log_order(&w);
    assert!(
        before(&order, "end:s1", "start:s2") && before(&order, "end:s2", "start:s3"),
        "{order:?}"
    );
}

#[test]
fn fan_out_join_receives_every_parallel_result() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            ONE,
            "swarm: {pattern: fan-out}\n",
            "      - {name: w1, agent: dev, task: \"[[fake:say=R1]] [[fake:sleep=300]]\"}\n      - {name: w2, agent: dev, task: \"[[fake:say=R2]] [[fake:sleep=300]]\"}\n      - {name: join, agent: dev, dependsOn: [w1, w2], task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let j = out(&s, "join");
    assert!(
        j.contains("Result of `w1`") && j.contains("R1") && j.contains("R2"),
        "{j}"
    );
    assert_eq!(
        relay_testkit::max_overlap(&w.agent_log()),
        2,
        "workers ran together"
    );
}

#[test]
fn handoff_passes_the_whole_trail() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("a", "x"), ("b", "y"), ("c", "z")],
            "swarm: {pattern: handoff}\n",
            "      - {name: h1, agent: a, task: \"[[fake:say=NOTE1]]\"}\n      - {name: h2, agent: b, task: \"[[fake:say=NOTE2]]\"}\n      - {name: h3, agent: c, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = out(&s, "h3");
    assert!(
        t.contains("NOTE1") && t.contains("NOTE2"),
        "the last step sees every note: {t}"
    );
}

#[test]
fn cascade_phases_wait_for_the_whole_previous_phase() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            ONE,
            "swarm: {pattern: cascade}\n",
            "      - {name: p1a, agent: dev, phase: 1, task: \"[[fake:sleep=300]] [[fake:say=A]]\"}\n      - {name: p1b, agent: dev, task: \"[[fake:say=B]]\"}\n      - {name: p2, agent: dev, phase: 2, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let order = log_order(&w);
    assert!(
        before(&order, "end:p1a", "start:p2") && before(&order, "end:p1b", "start:p2"),
        "{order:?}"
    );
    assert!(
        before(&order, "start:p1b", "end:p1a"),
        "a phase runs together: {order:?}"
    );
    assert!(out(&s, "p2").contains("Input from `p1a`"));
}

#[test]
fn hub_collects_spoke_reports() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("lead", "coordinator"), ("s1", "spoke"), ("s2", "spoke")],
            "swarm: {pattern: hub-spoke}\n",
            "      - {name: part1, agent: s1, task: \"[[fake:say=PART1]] [[fake:sleep=200]]\"}\n      - {name: part2, agent: s2, task: \"[[fake:say=PART2]]\"}\n      - {name: merge, agent: lead, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = out(&s, "merge");
    assert!(
        m.contains("Report from `part1`") && m.contains("PART1") && m.contains("PART2"),
        "{m}"
    );
    assert!(before(&log_order(&w), "end:part1", "start:merge"));
}

#[test]
fn hierarchy_reports_go_up_one_level_at_a_time() {
    let w = World::new();
    let yaml = "name: t\nagents:\n  - {name: boss, cli: claude, role: lead, interactive: false}\n  - {name: vp, cli: claude, role: manager, interactive: false, reportsTo: boss}\n  - {name: dev1, cli: claude, role: dev, interactive: false, reportsTo: vp}\n  - {name: dev2, cli: claude, role: dev, interactive: false, reportsTo: vp}\nswarm: {pattern: hierarchical}\nworkflows:\n  - name: main\n    steps:\n      - {name: d1, agent: dev1, task: \"[[fake:say=DEV1]]\"}\n      - {name: d2, agent: dev2, task: \"[[fake:say=DEV2]]\"}\n      - {name: vp-report, agent: vp, task: \"[[fake:say=VP_SUMMARY]]\"}\n      - {name: final, agent: boss, task: \"[[fake:echo-task]]\"}\n";
    let (o, s) = run(&w, yaml);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let order = log_order(&w);
    assert!(
        before(&order, "end:d1", "start:vp-report") && before(&order, "end:d2", "start:vp-report")
    );
    let f = out(&s, "final");
    assert!(
        f.contains("Report from `vp-report`") && f.contains("VP_SUMMARY"),
        "{f}"
    );
    assert!(
        !f.contains("DEV1"),
        "the lead hears from its manager, not the developers: {f}"
    );
}

#[test]
fn map_reduce_runs_each_item_under_the_limit_and_reduces_all() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("m", "mapper"), ("r", "reducer")],
            "swarm: {pattern: map-reduce, maxConcurrency: 2}\n",
            "      - name: map\n        agent: m\n        items: [alpha, beta, gamma, delta]\n        task: \"[[fake:count=map]] [[fake:sleep=200]] summary of {{item}} ({{itemIndex}}) [[fake:say=MAPPED {{item}}]]\"\n      - {name: reduce, agent: r, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&w, "map"), 4, "one run per item");
    assert_eq!(
        relay_testkit::max_overlap(&w.agent_log()),
        2,
        "items run in parallel, under maxConcurrency"
    );
    let r = out(&s, "reduce");
    for item in ["alpha", "beta", "gamma", "delta"] {
        assert!(
            r.contains(&format!("MAPPED {item}")),
            "reducer lacks {item}: {r}"
        );
    }
    assert!(out(&s, "map").starts_with("### item 1: alpha"));
}

#[test]
fn map_items_can_come_from_an_upstream_output() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            ONE,
            "swarm: {pattern: map-reduce}\n",
            "      - {name: list, type: deterministic, command: \"printf 'one\\ntwo\\n'\"}\n      - name: each\n        agent: dev\n        dependsOn: [list]\n        items: \"{{steps.list.output}}\"\n        task: \"[[fake:say=DID {{item}}]]\"\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out(&s, "each").contains("DID one") && out(&s, "each").contains("DID two"));
}

#[test]
fn scatter_gather_gathers_every_leaf() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            ONE,
            "swarm: {pattern: scatter-gather}\n",
            "      - {name: q1, agent: dev, task: \"[[fake:say=ANS1]]\"}\n      - {name: q2, agent: dev, task: \"[[fake:say=ANS2]]\"}\n      - {name: gather, agent: dev, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let g = out(&s, "gather");
    assert!(g.contains("ANS1") && g.contains("ANS2"), "{g}");
}

fn reflection_yaml(pattern: &str, role: &str, verdicts: &str, max: u32) -> String {
    team(
        &[("writer", "writer"), ("judge", role)],
        &format!("swarm: {{pattern: {pattern}}}\n"),
        &format!(
            "      - {{name: draft, agent: writer, task: \"[[fake:count=draft]] [[fake:echo-task]]\"}}\n      - {{name: critique, agent: judge, dependsOn: [draft], maxIterations: {max}, task: \"[[fake:nth=crit:{verdicts}]]\"}}\n      - {{name: publish, agent: writer, dependsOn: [draft], task: \"publishing {{{{steps.draft.output}}}} [[fake:echo-task]]\"}}\n"
        ),
    )
}

#[test]
fn reflection_reruns_the_producer_with_feedback_until_approved() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &reflection_yaml(
            "reflection",
            "critic",
            "VERDICT: fail - add tests|VERDICT: pass",
            3,
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&w, "draft"), 2, "the producer ran again once");
    let d = out(&s, "draft");
    assert!(
        d.contains("Feedback to address") && d.contains("add tests"),
        "second draft saw the feedback: {d}"
    );
    assert_eq!(pattern_events(&w, "rejected").len(), 1);
    assert_eq!(pattern_events(&w, "approved").len(), 1);
    // Steps after the producer get the approved version.
    assert!(out(&s, "publish").contains("Feedback to address"));
    assert!(before(&log_order(&w), "end:critique#2", "start:publish"));
}

#[test]
fn review_loop_gives_up_after_max_iterations() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &reflection_yaml("review-loop", "reviewer", "VERDICT: fail - no", 2),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(count(&w, "draft"), 2);
    assert!(
        step(&s, "critique")["reason"]
            .as_str()
            .unwrap()
            .contains("not approved after 2")
    );
    assert_eq!(step(&s, "publish")["status"], "skipped");
}

#[test]
fn verifier_gates_each_producer_step() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("coder", "developer"), ("checker", "verifier")],
            "swarm: {pattern: verifier}\n",
            "      - {name: build, agent: coder, task: \"[[fake:count=build]] [[fake:echo-task]] [[fake:emit=nth-for=checker:ver:VERDICT: fail - missing docs|VERDICT: pass]]\"}\n      - {name: ship, agent: coder, dependsOn: [build], task: \"[[fake:say=SHIPPED]] [[fake:emit=say-for=checker:VERDICT: pass]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&w, "build"), 2, "rejected once, so built twice");
    assert!(
        out(&s, "build").contains("missing docs"),
        "the rebuild saw the verifier's reasons"
    );
    let order = log_order(&w);
    assert!(
        before(&order, "end:build:verify#2", "start:ship#1"),
        "downstream waits for approval: {order:?}"
    );
}

#[test]
fn red_team_defender_answers_findings_until_none() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("blue", "defender"), ("red", "attacker")],
            "swarm: {pattern: red-team}\n",
            "      - {name: harden, agent: blue, task: \"[[fake:count=harden]] [[fake:echo-task]]\"}\n      - {name: attack, agent: red, dependsOn: [harden], task: \"[[fake:nth=atk:Found: SQL injection in login|NO_FINDINGS]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&w, "harden"), 2);
    assert!(out(&s, "harden").contains("SQL injection"));
}

#[test]
fn auction_gives_the_task_to_the_lowest_bid() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[
                ("house", "auctioneer"),
                ("alice", "bidder"),
                ("bob", "bidder"),
            ],
            "swarm: {pattern: auction}\n",
            "      - {name: job, agent: house, task: \"Fix the bug. [[fake:say-for=alice:BID: 30]] [[fake:say-for=bob:BID: 12]] [[fake:say-for=alice:DONE_BY_ALICE]] [[fake:say-for=bob:DONE_BY_BOB]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(pattern_events(&w, "awarded")[0].contains("bob wins"));
    let r = out(&s, "job");
    assert!(
        r.contains("DONE_BY_BOB") && !r.contains("DONE_BY_ALICE"),
        "{r}"
    );
}

fn consensus(strategy: &str, threshold: &str, votes: [&str; 3]) -> String {
    team(
        &[("a", "voter"), ("b", "voter"), ("c", "voter")],
        &format!(
            "swarm: {{pattern: consensus}}\ncoordination: {{consensusStrategy: {strategy}{threshold}}}\n"
        ),
        &format!(
            "      - {{name: decide, agent: a, task: \"Ship it? [[fake:say-for=a:VOTE: {}]] [[fake:say-for=b:VOTE: {}]] [[fake:say-for=c:VOTE: {}]]\"}}\n      - {{name: act, agent: a, dependsOn: [decide], task: \"[[fake:say=decision={{{{steps.decide.output}}}}]]\"}}\n",
            votes[0], votes[1], votes[2]
        ),
    )
}

#[test]
fn consensus_majority_unanimous_and_quorum_decide_split_votes() {
    let w = World::new();
    let (o, s) = run(&w, &consensus("majority", "", ["yes", "yes", "no"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(out(&s, "decide"), "yes");
    assert!(
        out(&s, "act").contains("decision=yes"),
        "the decision is available downstream"
    );
    assert!(pattern_events(&w, "decided")[0].contains("yes=2, no=1"));

    let w = World::new();
    let (o, s) = run(&w, &consensus("unanimous", "", ["yes", "yes", "no"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        step(&s, "decide")["reason"]
            .as_str()
            .unwrap()
            .contains("not unanimous")
    );
    assert_eq!(step(&s, "act")["status"], "skipped");

    let w = World::new();
    let (o, _) = run(
        &w,
        &consensus("quorum", ", votingThreshold: 0.6", ["yes", "yes", "no"]),
    );
    assert_eq!(o.status.code(), Some(0), "2/3 reaches 0.6");
    let w = World::new();
    let (o, _) = run(
        &w,
        &consensus("quorum", ", votingThreshold: 0.7", ["yes", "yes", "no"]),
    );
    assert_eq!(o.status.code(), Some(1), "2/3 misses 0.7");
}

#[test]
fn debate_shows_each_side_the_others_positions() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("pro", "debater"), ("con", "debater")],
            "swarm: {pattern: debate}\n",
            "      - {name: argue, agent: pro, rounds: 2, task: \"Tabs or spaces? [[fake:say-for=pro:PRO_SAYS_TABS]] [[fake:say-for=con:CON_SAYS_SPACES]] [[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = out(&s, "argue");
    assert!(a.contains("## pro") && a.contains("## con"), "{a}");
    assert!(
        a.contains("Position of con in round 1"),
        "round 2 saw the other side: {a}"
    );
}

#[test]
fn competitive_keeps_the_fastest_passing_entry() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("fast", "x"), ("slow", "y"), ("broken", "z")],
            "swarm: {pattern: competitive}\n",
            "      - {name: race, agent: fast, task: \"[[fake:exit-for=broken:1]] [[fake:say-for=slow:SLOW_ENTRY]] [[fake:say-for=fast:FAST_ENTRY]] [[fake:say-for=slow:zz]] [[fake:sleep=50]]\", verification: {type: output_contains, value: ENTRY}}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(pattern_events(&w, "winner").len() == 1);
    assert!(out(&s, "race").contains("_ENTRY"), "a passing entry won");
}

#[test]
fn escalation_reaches_tier_two_only_after_tier_one_fails() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("cheap", "tier-1"), ("smart", "tier-2")],
            "swarm: {pattern: escalation}\n",
            "      - {name: hard, agent: cheap, task: \"[[fake:exit-for=cheap:1]] [[fake:say-for=smart:SOLVED_BY_SMART]]\"}\n      - {name: easy, agent: cheap, task: \"[[fake:count=easy]] [[fake:say=EASY]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out(&s, "hard").contains("SOLVED_BY_SMART"));
    let ev = pattern_events(&w, "escalated");
    assert_eq!(ev.len(), 1, "only the hard step escalated: {ev:?}");
    assert!(ev[0].contains("cheap -> smart"));
    assert_eq!(count(&w, "easy"), 1);
}

#[test]
fn circuit_breaker_opens_after_repeated_primary_failures() {
    let w = World::new();
    let mut steps = String::new();
    for i in 1..=4 {
        steps.push_str(&format!(
            "      - {{name: s{i}, agent: main, task: \"[[fake:exit-for=main:1]] [[fake:say=ok]]\"}}\n"
        ));
    }
    let (o, s) = run(
        &w,
        &team(
            &[("main", "primary"), ("spare", "backup")],
            "swarm: {pattern: circuit-breaker, maxConcurrency: 1}\n",
            &steps,
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(pattern_events(&w, "opened").len(), 1);
    // s1 and s2 tried the primary and fell back; after the breaker opened, s3 and s4 went
    // straight to the fallback without trying the primary.
    let fallbacks = pattern_events(&w, "fallback");
    let direct: Vec<&String> = fallbacks
        .iter()
        .filter(|e| e.contains("breaker open"))
        .collect();
    let after_failure: Vec<&String> = fallbacks
        .iter()
        .filter(|e| e.contains("main failed"))
        .collect();
    assert_eq!(after_failure.len(), 2, "{fallbacks:?}");
    assert_eq!(direct.len(), 2, "{fallbacks:?}");
    assert!(
        direct
            .iter()
            .all(|e| e.starts_with("s3") || e.starts_with("s4")),
        "{fallbacks:?}"
    );
    for i in 1..=4 {
        assert_eq!(step(&s, &format!("s{i}"))["status"], "completed");
    }
}

#[test]
fn saga_compensates_completed_steps_in_reverse_order() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            ONE,
            "swarm: {pattern: saga}\n",
            "      - {name: reserve, type: deterministic, command: \"echo reserved\", compensate: \"echo undo-reserve >> saga.log\"}\n      - {name: charge, type: deterministic, dependsOn: [reserve], command: \"echo charged\", compensate: \"echo undo-charge >> saga.log\"}\n      - {name: ship, type: deterministic, dependsOn: [charge], command: \"exit 1\", compensate: \"echo undo-ship >> saga.log\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(step(&s, "ship")["status"], "failed");
    assert_eq!(
        w.read("saga.log"),
        "undo-charge\nundo-reserve\n",
        "reverse order, only completed steps"
    );
    assert_eq!(pattern_events(&w, "compensating").len(), 1);
}

#[test]
fn supervisor_restarts_a_failed_worker_and_gets_a_health_report() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("worker", "developer"), ("boss", "supervisor")],
            "swarm: {pattern: supervisor}\n",
            "      - {name: job, agent: worker, task: \"[[fake:count=job]] [[fake:fail-once=job]] [[fake:say=JOB_OK]]\"}\n      - {name: watch, agent: boss, task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&w, "job"), 2);
    assert_eq!(pattern_events(&w, "restarted").len(), 1);
    assert!(
        out(&s, "watch").contains("Health of worker step `job`")
            && out(&s, "watch").contains("JOB_OK")
    );
}

#[test]
fn blackboard_steps_see_what_others_posted() {
    let w = World::new();
    let (o, s) = run(
        &w,
        &team(
            &[("scout", "shared-workspace"), ("builder", "builder")],
            "swarm: {pattern: blackboard}\n",
            "      - {name: post, type: deterministic, command: '\"$AGENT_RELAY_BIN\" board set slow-test test_big_upload'}\n      - {name: use, agent: builder, dependsOn: [post], task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let u = out(&s, "use");
    assert!(
        u.contains("## Shared board") && u.contains("slow-test: test_big_upload"),
        "{u}"
    );
    assert!(
        w.run_dir().join("board.json").exists(),
        "the board is kept in the run directory"
    );
}

/// The final state and reason of the message `from` sent to `to` in the last run.
fn message_fate(w: &World, from: &str, to: &str) -> (String, String) {
    let o = w.run(&["messages", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == from && m["to"] == to)
        .unwrap_or_else(|| panic!("no message {from} -> {to}: {all}"))
        .clone();
    (
        m["state"].as_str().unwrap_or("").to_string(),
        m["reason"].as_str().unwrap_or("").to_string(),
    )
}

fn talking_spokes(pattern: &str) -> String {
    team(
        &[("lead", "coordinator"), ("s1", "spoke"), ("s2", "spoke")],
        &format!("swarm: {{pattern: {pattern}}}\n"),
        "      - {name: a, agent: s1, task: \"[[fake:send=s2:psst]] [[fake:send=lead:report]]\"}\n      - {name: b, agent: s2, dependsOn: [a], task: \"[[fake:echo-task]]\"}\n      - {name: c, agent: lead, dependsOn: [a], task: \"[[fake:echo-task]]\"}\n",
    )
}

#[test]
fn hub_spoke_refuses_spoke_to_spoke_messages_that_mesh_allows() {
    let w = World::new();
    let (o, _) = run(&w, &talking_spokes("hub-spoke"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (state, reason) = message_fate(&w, "s1", "s2");
    assert_eq!(state, "failed");
    assert!(reason.contains("hub-spoke"), "{reason}");
    assert_ne!(
        message_fate(&w, "s1", "lead").0,
        "failed",
        "spokes may reach the hub"
    );

    let w = World::new();
    let (o, s) = run(&w, &talking_spokes("mesh"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(
        message_fate(&w, "s1", "s2").0,
        "failed",
        "mesh lets any agent message any other"
    );
    assert!(
        out(&s, "b").contains("psst"),
        "the message reached s2's next step"
    );
}

#[test]
fn swarm_agents_pull_steps_from_one_queue() {
    let w = World::new();
    let mut steps = String::new();
    for i in 1..=6 {
        steps.push_str(&format!(
            "      - {{name: t{i}, agent: bee1, task: \"[[fake:sleep=150]] [[fake:say-for=bee1:BY_BEE1]] [[fake:say-for=bee2:BY_BEE2]]\"}}\n"
        ));
    }
    let (o, s) = run(
        &w,
        &team(
            &[("bee1", "swarm-agent"), ("bee2", "swarm-agent")],
            "swarm: {pattern: swarm}\n",
            &steps,
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        relay_testkit::max_overlap(&w.agent_log()),
        2,
        "one step per swarm agent at a time"
    );
    let by2 = (1..=6)
        .filter(|i| out(&s, &format!("t{i}")).contains("BY_BEE2"))
        .count();
    assert!(
        (2..=4).contains(&by2),
        "both agents pulled work ({by2} of 6 by bee2)"
    );
}

#[test]
fn barrier_waits_for_all_and_fails_dependents_at_its_timeout() {
    let w = World::new();
    let yaml = |timeout: u32, slow: u32| {
        team(
            ONE,
            &format!(
                "coordination:\n  barriers:\n    - {{name: reviews-done, waitFor: [r1, r2], timeoutMs: {timeout}}}\n"
            ),
            &format!(
                "      - {{name: r1, agent: dev, task: \"[[fake:sleep={slow}]]\"}}\n      - {{name: r2, agent: dev, task: \"[[fake:sleep=50]]\"}}\n      - {{name: merge, agent: dev, dependsOn: [reviews-done], task: x}}\n"
            ),
        )
    };
    let (o, _) = run(&w, &yaml(10_000, 200));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let order = log_order(&w);
    assert!(before(&order, "end:r1", "start:merge") && before(&order, "end:r2", "start:merge"));

    let w = World::new();
    let (o, s) = run(&w, &yaml(300, 3000));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(step(&s, "merge")["status"], "skipped");
    assert!(!w.agent_log().contains("start merge"));
    assert_eq!(pattern_events(&w, "timed-out").len(), 1);
}

#[test]
fn explain_prints_the_chosen_pattern_and_plan() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &team(
            &[("writer", "writer"), ("judge", "critic")],
            "",
            "      - {name: draft, agent: writer, task: x}\n      - {name: critique, agent: judge, task: y}\n",
        ),
    );
    for cmd in ["run", "validate"] {
        let o = w.run(&[cmd, f.to_str().unwrap(), "--explain"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = support::stdout(&o);
        assert!(
            text.contains("pattern: reflection (auto-selected: an agent with role critic)"),
            "{text}"
        );
        assert!(text.contains("draft: run"), "{text}");
    }
    assert!(
        w.agent_log().is_empty() && !w.has_run_dir(),
        "explain runs nothing"
    );
}
