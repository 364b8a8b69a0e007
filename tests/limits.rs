//! Limits enforced in code, end to end with the real binary and the fake agent: agent
//! permissions by the kernel (Landlock) and the refusal where they cannot be enforced,
//! token budgets and `maxTokens` from each CLI's structured output, and rate-limit
//! parking (reset, unpark, and a coordinator crash while parked).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{World, stderr, stdout, step, summary};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(w: &World, args: &[&str]) -> Child {
    w.cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn of_type(w: &World, t: &str) -> Vec<serde_json::Value> {
    w.events_if_any()
        .into_iter()
        .filter(|e| e["type"] == t)
        .collect()
}

/// One agent per CLI that reports usage, each with `permissions` as given.
fn agents(perms: &str) -> String {
    let mut y = String::from("agents:\n");
    for (name, cli, model) in [
        ("dev", "claude", "claude-sonnet-4-5"),
        ("ops", "codex", "gpt-5"),
        ("gem", "gemini", "gemini-2.5-pro"),
        ("oc", "opencode", "anthropic/claude-sonnet-4-5"),
    ] {
        y.push_str(&format!(
            "  - {{name: {name}, cli: {cli}, model: {model}, interactive: false{perms}}}\n"
        ));
    }
    y
}

fn cli_of(agent: &str) -> &'static str {
    match agent {
        "dev" => "claude",
        "ops" => "codex",
        "gem" => "gemini",
        _ => "opencode",
    }
}

fn wf(header: &str, perms: &str, steps: &str) -> String {
    format!(
        "version: \"1.0\"\nname: t\n{header}{}workflows:\n  - name: main\n    steps:\n{steps}",
        agents(perms)
    )
}

// ---- permissions ------------------------------------------------------------------------

#[test]
fn a_readonly_agent_cannot_write_and_runs_in_its_clis_own_read_only_mode() {
    let w = World::new();
    w.write("keep.txt", "original\n");
    let f = w.write(
        "wf.yaml",
        &wf(
            "",
            ", permissions: readonly",
            "      - {name: w, agent: dev, task: \"[[fake:write=keep.txt:changed]] [[fake:say=wrote]]\"}\n",
        ),
    );
    // The CLI's own state directory stays writable: the argv is logged there.
    let home = w.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    let argv_log = home.join(".claude/argv.log");
    let o = w
        .cmd()
        .env("HOME", &home)
        .env("FAKE_AGENT_ARGV_LOG", &argv_log)
        .args(["run", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(w.read("keep.txt"), "original\n", "the file is unchanged");
    let log = std::fs::read_to_string(w.run_dir().join("steps/w/stderr.log")).unwrap_or_default();
    assert!(
        log.contains("cannot write keep.txt") && log.contains("Permission denied"),
        "the write was denied by the kernel: {log}"
    );
    let argv = std::fs::read_to_string(&argv_log).unwrap_or_default();
    assert!(
        argv.contains("\"--permission-mode\",\"plan\""),
        "claude's own read-only mode: {argv}"
    );
    let sandboxed = of_type(&w, "agent:sandboxed");
    assert_eq!(sandboxed.len(), 1, "the rules applied are recorded");
    assert!(sandboxed[0]["rules"].to_string().contains("read"));
}

#[test]
fn rules_the_kernel_cannot_enforce_refuse_the_run_unless_allowed() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &wf(
            "",
            ", permissions: {access: readonly, network: false}",
            "      - {name: a, agent: dev, task: \"[[fake:say=ran]]\"}\n",
        ),
    );
    let f = f.to_str().unwrap();
    // A kernel without Landlock, simulated.
    let o = w
        .cmd()
        .env("AGENT_RELAY_LANDLOCK_ABI", "0")
        .args(["run", f])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("agent `dev`"), "{err}");
    assert!(err.contains("--allow-unenforced"), "{err}");
    assert!(w.agent_log().is_empty(), "no agent started");
    // Landlock without TCP rules (ABI 3): only the network rule is refused.
    let o = w
        .cmd()
        .env("AGENT_RELAY_LANDLOCK_ABI", "3")
        .args(["run", f])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("network"), "{}", stderr(&o));
    // With --allow-unenforced it runs, saying what is not enforced.
    let o = w
        .cmd()
        .env("AGENT_RELAY_LANDLOCK_ABI", "0")
        .args(["run", f, "--allow-unenforced"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("not enforced"), "{}", stderr(&o));
    // A rehearsal is not refused: it prints what would be enforced.
    let o = w
        .cmd()
        .env("AGENT_RELAY_LANDLOCK_ABI", "0")
        .args(["run", f, "--rehearse"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("would run with"), "{}", stderr(&o));
}

#[test]
fn validate_explain_prints_each_agents_effective_permissions() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\npermission_profiles:\n  reviewer: {access: readonly, files: {deny: [\".env\"]}}\nagents:\n  - {name: rev, cli: claude, interactive: false, permissions: reviewer}\n  - {name: dev, cli: codex, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: rev, task: t}\n      - {name: b, agent: dev, task: t}\n      - {name: c, type: deterministic, command: \"true\", permissions: {access: readonly}}\n",
    );
    let o = w.run(&["validate", f.to_str().unwrap(), "--explain"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("permissions (this kernel:"), "{text}");
    assert!(
        text.contains("agent `rev` (preset readonly + profile reviewer)"),
        "{text}"
    );
    assert!(text.contains(".env"), "{text}");
    assert!(text.contains("agent `dev`"), "{text}");
    assert!(text.contains("step `c`"), "{text}");
}

// ---- tokens, cost and budgets -----------------------------------------------------------

#[test]
fn each_cli_reports_its_tokens_and_the_summary_shows_tokens_and_cost_per_step() {
    let w = World::new();
    let mut steps = String::new();
    for a in ["dev", "ops", "gem", "oc"] {
        steps.push_str(&format!(
            "      - {{name: s-{a}, agent: {a}, task: \"[[fake:usage=1000:200]] [[fake:say=done-{a}]]\"}}\n"
        ));
    }
    let f = w.write("wf.yaml", &wf("", "", &steps));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    for a in ["dev", "ops", "gem", "oc"] {
        let st = step(&s, &format!("s-{a}"));
        assert_eq!(st["usage"]["input"], 1000, "{a}: {st}");
        assert_eq!(st["usage"]["output"], 200, "{a}: {st}");
        // The reply is the output, not the CLI's JSON (codex's is its last message).
        let out = st["output"].as_str().unwrap();
        assert!(!out.contains("{\""), "{a}: {out}");
        assert!(
            out.contains(&format!(
                "fake-{} done",
                st["name"].as_str().map(|_| cli_of(a)).unwrap()
            )),
            "{a}: {out}"
        );
    }
    // claude-sonnet-4-5: $3 in, $15 out per million.
    let cost = step(&s, "s-dev")["costUsd"].as_f64().unwrap();
    assert!((cost - 0.006).abs() < 1e-9, "{cost}");
    assert_eq!(s["usage"]["input"], 4000);
    assert!(s["costUsd"].as_f64().unwrap() > cost);
    assert_eq!(of_type(&w, "step:usage").len(), 4);
    // The human summary says it too.
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("1200 tokens (1000 in, 200 out), $0.0060"),
        "{}",
        stderr(&o)
    );
    let st = w.run(&["status", "last"]);
    assert!(stdout(&st).contains("1200 tokens"), "{}", stdout(&st));
}

#[test]
fn a_user_price_prices_a_model_and_prices_lists_it() {
    let w = World::new();
    let o = w.run(&[
        "prices", "set", "my-model", "--input", "10", "--output", "100",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listed = stdout(&w.run(&["prices"]));
    assert!(listed.contains("my-model"), "{listed}");
    assert!(listed.contains("claude-sonnet-4"), "{listed}");
    let bad = w.run(&["prices", "set", "x", "--input", "-1", "--output", "1"]);
    assert_eq!(bad.status.code(), Some(3));
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: a, cli: codex, model: my-model-2, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: s, agent: a, task: \"[[fake:usage=1000:100]]\"}\n",
    );
    let s = summary(&w.run(&["run", f.to_str().unwrap(), "--json"]));
    let cost = step(&s, "s")["costUsd"].as_f64().unwrap();
    assert!((cost - 0.02).abs() < 1e-9, "{cost}");
}

#[test]
fn no_attempt_starts_once_the_token_budget_is_spent() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &wf(
            "swarm: {pattern: pipeline, tokenBudget: 2000}\n",
            "",
            "      - {name: one, agent: dev, task: \"[[fake:usage=1000:200]]\"}\n      - {name: two, agent: ops, dependsOn: [one], task: \"[[fake:usage=1000:200]]\"}\n      - {name: three, agent: gem, dependsOn: [two], task: \"[[fake:count=three]]\"}\n      - {name: four, agent: oc, dependsOn: [three], task: x}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "two")["status"], "completed");
    let three = step(&s, "three");
    assert_eq!(three["status"], "failed");
    assert!(
        three["reason"]
            .as_str()
            .unwrap()
            .contains("token budget exhausted (2400 of 2000 tokens used)"),
        "{three}"
    );
    assert_eq!(step(&s, "four")["status"], "skipped");
    assert!(
        w.read("state/count-three").is_empty(),
        "three never started"
    );
}

#[test]
fn an_agent_past_its_max_tokens_is_stopped_and_judged_on_what_it_produced() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: a, cli: claude, interactive: false, constraints: {maxTokens: 500}}\nworkflows:\n  - name: main\n    onError: continue\n    steps:\n      - {name: judged, agent: a, task: \"[[fake:say=PART-DONE]] [[fake:usage=400:200]] [[fake:sleep=30000]] [[fake:say=late]]\", verification: {type: output_contains, value: PART-DONE}}\n      - {name: plain, agent: a, task: \"[[fake:usage=400:200]] [[fake:sleep=30000]]\"}\n",
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    let judged = step(&s, "judged");
    assert_eq!(judged["status"], "completed", "{judged}");
    assert!(!judged["output"].as_str().unwrap().contains("late"));
    let plain = step(&s, "plain");
    assert_eq!(plain["status"], "failed");
    assert!(
        plain["reason"]
            .as_str()
            .unwrap()
            .contains("stopped after passing its maxTokens (500)"),
        "{plain}"
    );
    let limits = of_type(&w, "step:token-limit");
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert_eq!(limits[0]["used"], 600);
    assert!(w.leftovers().is_empty());
}

// ---- rate limits ------------------------------------------------------------------------

#[test]
fn a_rate_limited_step_parks_until_the_reset_and_spends_no_retry_for_each_cli() {
    let w = World::new();
    let mut steps = String::new();
    for a in ["dev", "ops", "gem", "oc"] {
        steps.push_str(&format!(
            "      - {{name: s-{a}, agent: {a}, retries: 0, task: \"[[fake:rate-limit-once={a}:2]] [[fake:say=after-{a}]]\"}}\n"
        ));
    }
    let f = w.write("wf.yaml", &wf("", "", &steps));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    for a in ["dev", "ops", "gem", "oc"] {
        let st = step(&s, &format!("s-{a}"));
        assert_eq!(st["status"], "completed", "{st}");
        assert_eq!(st["attempts"], 2, "{st}");
        // codex's output is its last message.
        if a != "ops" {
            let out = st["output"].as_str().unwrap();
            assert!(out.contains(&format!("after-{a}")), "{a}: {out}");
        }
    }
    let parked = of_type(&w, "step:parked");
    assert_eq!(parked.len(), 4, "{parked:?}");
    for p in &parked {
        let until = p["untilMs"].as_u64().unwrap();
        let ts = p["until"].as_str().unwrap();
        assert!(ts.ends_with('Z') && until > 0, "{p}");
    }
    assert!(of_type(&w, "step:retrying").is_empty(), "no retry spent");
}

#[test]
fn an_interactive_agent_stopped_at_a_limit_parks_instead_of_being_nudged() {
    // The fake TUIs show the limit and wait at their prompt, as the real ones do.
    let w = World::new();
    let mut steps = String::new();
    for a in ["dev", "ops", "gem", "oc"] {
        steps.push_str(&format!(
            "      - {{name: s-{a}, agent: {a}, retries: 0, task: \"[[fake:rate-limit-once={a}:2]] [[fake:say=after-{a}]]\"}}\n"
        ));
    }
    let yaml = wf("", "", &steps).replace("interactive: false", "interactive: true");
    let f = w.write("wf.yaml", &yaml);
    let o = w
        .cmd()
        .env("AGENT_RELAY_SETTLE_MS", "150")
        .env("AGENT_RELAY_IDLE_MS", "600")
        .env("FAKE_AGENT_THINK_MS", "50")
        .args(["run", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    for a in ["dev", "ops", "gem", "oc"] {
        let st = step(&s, &format!("s-{a}"));
        assert_eq!(st["status"], "completed", "{st}");
        assert_eq!(st["attempts"], 2, "{st}");
        let out = st["output"].as_str().unwrap();
        assert!(out.contains(&format!("after-{a}")), "{a}: {out}");
    }
    let parked = of_type(&w, "step:parked");
    assert_eq!(parked.len(), 4, "{parked:?}");
    assert!(of_type(&w, "step:retrying").is_empty(), "no retry spent");
    assert!(of_type(&w, "step:nudged").is_empty(), "no nudge typed");
    assert!(w.leftovers().is_empty());
}

#[test]
fn a_limit_without_a_reset_time_backs_off() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &wf(
            "",
            "",
            "      - {name: s, agent: ops, task: \"[[fake:rate-limit-once=k]] [[fake:say=ok]]\"}\n",
        ),
    );
    let o = w
        .cmd()
        .env("AGENT_RELAY_PARK_BACKOFF_MS", "300")
        .args(["run", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("parked until"), "{}", stderr(&o));
    assert_eq!(of_type(&w, "step:parked").len(), 1);
}

fn parked_run(w: &World) -> (Child, String) {
    let f = w.write(
        "wf.yaml",
        &wf(
            "",
            "",
            "      - {name: s, agent: dev, task: \"[[fake:rate-limit-once=k:3600]] [[fake:say=ok]]\"}\n      - {name: t, agent: dev, dependsOn: [s], task: \"[[fake:say=next]]\"}\n",
        ),
    );
    let child = spawn(w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for("the step to park", || !of_type(w, "step:parked").is_empty());
    let id = w.run_id();
    (child, id)
}

#[test]
fn unpark_resumes_a_parked_run_at_once_and_status_shows_until_when() {
    let w = World::new();
    let (child, id) = parked_run(&w);
    let st = w.run(&["status", &id]);
    assert!(stdout(&st).contains("parked until"), "{}", stdout(&st));
    let o = w.run(&["unpark", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(step(&s, "t")["status"], "completed");
    assert_eq!(of_type(&w, "run:unparked").len(), 1);
    // Nothing is parked any more: unpark says so.
    let o = w.run(&["unpark", &id]);
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn a_parked_run_survives_a_coordinator_crash_and_resume_parks_it_again() {
    let w = World::new();
    let (mut child, id) = parked_run(&w);
    let until = of_type(&w, "step:parked")[0]["untilMs"].clone();
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let resumed = spawn(&w, &["resume", &id, "--json"]);
    wait_for("the step to park again", || {
        of_type(&w, "step:parked").len() >= 2
    });
    let again = of_type(&w, "step:parked");
    assert_eq!(again[1]["untilMs"], until, "parked until the same moment");
    let o = w.run(&["unpark", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = resumed.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(step(&summary(&out), "s")["status"], "completed");
    assert!(w.leftovers().is_empty());
}
