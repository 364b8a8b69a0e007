//! Shared state and file claims end to end: the real binary, agents that run
//! `agent-relay state ...` and `claim` through the run's socket, `{{state.KEY}}` in
//! tasks and commands, every backend (memory, a real redis-server, an SQLite file),
//! resume, and claim conflicts.

#![allow(clippy::unwrap_used)]

#[path = "../crates/relay-state/tests/common/redis_server.rs"]
mod redis_server;
mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

/// Installs an agent we did not write as `codex`: it runs the first line of its task
/// (on stdin after `-`, else its last argument) as a shell script (what follows, the
/// note on its peers, is not script).
fn script_agent(w: &World) {
    let path = w.bin.join("codex");
    let _ = std::fs::remove_file(&path);
    std::fs::write(
        &path,
        "#!/bin/sh\nfor a; do t=\"$a\"; done\nif [ \"$t\" = - ]; then t=$(cat); fi\neval \"$(printf '%s\\n' \"$t\" | head -n 1)\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn agents(names: &[(&str, Option<&str>)]) -> String {
    let mut out = String::from("agents:\n");
    for (n, cwd) in names {
        out.push_str(&format!(
            "  - name: {n}\n    cli: codex\n    interactive: false\n"
        ));
        if let Some(c) = cwd {
            out.push_str(&format!("    cwd: {c}\n"));
        }
    }
    out
}

fn events_of<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Agents write and read the state with the commands; a later agent task and a
/// deterministic command get `{{state.KEY}}`; compare-and-set from four steps at once
/// loses no update; a watch wakes when another step writes; writes are events.
fn state_through_agents_and_steps(state_yaml: &str) {
    let w = World::new();
    script_agent(&w);
    let bump = r#"i=0; while [ $i -lt 5 ]; do v=$("$AGENT_RELAY_BIN" state get n); if "$AGENT_RELAY_BIN" state cas n --expect "$v" $((v+1)) >/dev/null 2>&1; then i=$((i+1)); fi; done"#;
    let yaml = format!(
        "version: \"1.0\"\nname: st\n{state_yaml}{}workflows:\n  - name: main\n    steps:\n\
         \x20     - name: writer\n        agent: alice\n        task: '\"$AGENT_RELAY_BIN\" state set plan \"the plan\" && \"$AGENT_RELAY_BIN\" state set n 0 && \"$AGENT_RELAY_BIN\" state get plan'\n\
         \x20     - {{name: b1, type: deterministic, dependsOn: [writer], command: '{bump}'}}\n\
         \x20     - {{name: b2, type: deterministic, dependsOn: [writer], command: '{bump}'}}\n\
         \x20     - {{name: b3, type: deterministic, dependsOn: [writer], command: '{bump}'}}\n\
         \x20     - {{name: b4, type: deterministic, dependsOn: [writer], command: '{bump}'}}\n\
         \x20     - name: waiter\n        agent: bob\n        dependsOn: [writer]\n        task: '\"$AGENT_RELAY_BIN\" state watch go --rev 0 --wait 60s'\n\
         \x20     - {{name: starter, type: deterministic, dependsOn: [writer], command: '\"$AGENT_RELAY_BIN\" state set go now'}}\n\
         \x20     - name: cmd\n        type: deterministic\n        dependsOn: [b1, b2, b3, b4]\n        command: 'echo plan={{{{state.plan}}}} n={{{{state.n}}}}'\n\
         \x20     - name: reader\n        agent: bob\n        dependsOn: [cmd]\n        task: 'echo \"{{{{state.plan}}}}\"'\n",
        agents(&[("alice", None), ("bob", None)]),
    );
    let f = w.write("wf.yaml", &yaml);
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    assert!(
        step(&s, "writer")["output"]
            .as_str()
            .unwrap()
            .contains("the plan")
    );
    assert_eq!(
        step(&s, "cmd")["output"].as_str().unwrap().trim(),
        "plan=the plan n=20",
        "a value with a space is one shell word, and no increment was lost"
    );
    assert_eq!(
        step(&s, "reader")["output"].as_str().unwrap().trim(),
        "the plan"
    );
    assert_eq!(step(&s, "waiter")["output"].as_str().unwrap().trim(), "now");
    let events = w.events();
    let sets = events_of(&events, "state:set");
    let plan = sets
        .iter()
        .find(|e| e["key"] == "plan")
        .expect("a state:set of plan");
    assert_eq!(plan["by"], "alice", "an agent writes as itself");
    assert_eq!(plan["value"], "the plan", "small values are in the event");
    assert!(
        sets.iter().filter(|e| e["key"] == "n").count() >= 21,
        "every write is an event"
    );
    assert!(w.leftovers().is_empty());
}

#[test]
fn memory_state_is_shared_by_agents_and_steps() {
    state_through_agents_and_steps("");
}

#[test]
fn redis_state_is_shared_by_agents_and_steps() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    state_through_agents_and_steps(&format!(
        "state: {{backend: redis, url: '{}', namespace: e2e}}\n",
        server.url()
    ));
}

#[test]
fn database_state_is_shared_by_agents_and_steps() {
    state_through_agents_and_steps("state: {backend: database, url: state/db.sqlite}\n");
}

#[test]
fn a_resumed_run_keeps_its_memory_state() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: a, type: deterministic, command: '\"$AGENT_RELAY_BIN\" state set k kept'}\n      - {name: b, agent: dev, dependsOn: [a], task: \"[[fake:fail-once=b]][[fake:echo-task]] got {{state.k}}\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(summary(&o)["status"], "failed", "{}", stderr(&o));
    let id = w.run_id();
    let o = w.run(&["resume", &id, "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    assert!(
        step(&s, "b")["output"]
            .as_str()
            .unwrap()
            .contains("got kept"),
        "{s}"
    );
    let started: Vec<_> = w
        .events()
        .into_iter()
        .filter(|e| e["type"] == "step:started" && e["step"] == "a")
        .collect();
    assert_eq!(started.len(), 1, "a ran once; its write was kept");
}

#[test]
fn a_missing_state_key_fails_the_step_and_names_it() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: a, type: deterministic, command: 'echo {{state.nobody}}'}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert!(
        step(&s, "a")["reason"]
            .as_str()
            .unwrap()
            .contains("no value for {{state.nobody}}"),
        "{s}"
    );
}

const RACE: &str = r#"R="$AGENT_RELAY_BIN"
if "$R" claim shared.txt 2>"err.$AGENT_RELAY_NAME"; then
  "$R" state set winner "$AGENT_RELAY_NAME"
  "$R" agents
  "$R" state watch refused --rev 0 --wait 60s >/dev/null
  echo "$AGENT_RELAY_NAME" >> order.txt
  "$R" release shared.txt
else
  echo "refused: $(cat "err.$AGENT_RELAY_NAME")"
  "$R" state set refused "$AGENT_RELAY_NAME"
  "$R" claim shared.txt --wait 60s
  echo "$AGENT_RELAY_NAME" >> order.txt
fi
"#;

#[test]
fn two_agents_race_for_one_file_and_one_waits() {
    let w = World::new();
    script_agent(&w);
    w.write("race.sh", RACE);
    let yaml = format!(
        "version: \"1.0\"\nname: race\n{}workflows:\n  - name: main\n    steps:\n      - {{name: a, agent: alice, task: sh race.sh}}\n      - {{name: b, agent: bob, task: sh race.sh}}\n",
        agents(&[("alice", None), ("bob", None)]),
    );
    let f = w.write("wf.yaml", &yaml);
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let order = w.read("order.txt");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 2, "{order:?}");
    let (winner, loser) = (order[0], order[1]);
    let step_of = |agent: &str| if agent == "alice" { "a" } else { "b" };
    let lost = step(&s, step_of(loser))["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        lost.contains(&format!("`shared.txt` is held by {winner}")),
        "the refusal names the holder: {lost}"
    );
    let won = step(&s, step_of(winner))["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        won.contains("claims shared.txt"),
        "agents shows the claim: {won}"
    );
    // In the events: the winner's claim, its release, then the waiting loser's claim.
    let events = w.events();
    let at = |kind: &str, agent: &str| {
        events
            .iter()
            .position(|e| e["type"] == kind && e["agent"] == agent)
            .unwrap_or_else(|| panic!("no {kind} of {agent}"))
    };
    assert!(at("claim:granted", winner) < at("claim:released", winner));
    assert!(at("claim:released", winner) < at("claim:granted", loser));
    assert!(w.leftovers().is_empty());
}

/// Alice claims x.txt in her directory; Bob, working in his, edits his x.txt while she
/// holds it.
fn conflict_workflow(mode: &str) -> String {
    format!(
        "version: \"1.0\"\nname: clash\ncoordination: {{claims: {mode}}}\n{}workflows:\n  - name: main\n    steps:\n\
         \x20     - name: hold\n        agent: alice\n        task: '\"$AGENT_RELAY_BIN\" claim x.txt && \"$AGENT_RELAY_BIN\" state set claimed yes && \"$AGENT_RELAY_BIN\" state watch edited --rev 0 --wait 60s'\n\
         \x20     - name: edit\n        agent: bob\n        task: '\"$AGENT_RELAY_BIN\" state watch claimed --rev 0 --wait 60s && echo mine > x.txt && \"$AGENT_RELAY_BIN\" state set edited yes'\n",
        agents(&[("alice", Some("wa")), ("bob", Some("wb"))]),
    )
}

#[test]
fn editing_a_file_another_agent_claimed_is_a_conflict_event() {
    let w = World::new();
    script_agent(&w);
    std::fs::create_dir_all(w.path().join("wa")).unwrap();
    std::fs::create_dir_all(w.path().join("wb")).unwrap();
    let f = w.write("wf.yaml", &conflict_workflow("report"));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(summary(&o)["status"], "completed", "{}", stderr(&o));
    let events = w.events();
    let conflicts = events_of(&events, "claim:conflict");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = conflicts[0];
    assert_eq!(
        (
            &c["step"],
            &c["agent"],
            &c["path"],
            &c["holder"],
            &c["certain"]
        ),
        (
            &"edit".into(),
            &"bob".into(),
            &"x.txt".into(),
            &"alice".into(),
            &true.into()
        )
    );
    assert!(
        !events_of(&events, "claim:released").is_empty(),
        "alice's claim ended with her step"
    );
}

#[test]
fn with_claims_enforced_the_editing_step_fails() {
    let w = World::new();
    script_agent(&w);
    std::fs::create_dir_all(w.path().join("wa")).unwrap();
    std::fs::create_dir_all(w.path().join("wb")).unwrap();
    let f = w.write("wf.yaml", &conflict_workflow("enforce"));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "edit")["status"], "failed");
    assert!(
        step(&s, "edit")["reason"]
            .as_str()
            .unwrap()
            .contains("`x.txt` (claimed by alice)"),
        "{s}"
    );
    assert_eq!(step(&s, "hold")["status"], "completed");
}

#[test]
fn state_and_claim_commands_need_a_run_and_good_input() {
    let w = World::new();
    let mut c = w.cmd();
    c.env_remove("AGENT_RELAY_SOCKET")
        .args(["state", "get", "k"]);
    assert_eq!(c.output().unwrap().status.code(), Some(4), "no run");
    let mut c = w.cmd();
    c.args(["claim", "../outside"]);
    assert_eq!(c.output().unwrap().status.code(), Some(3), "bad path");
    let mut c = w.cmd();
    c.args(["state", "set", "k", "v", "--ttl", "soon"]);
    assert_eq!(c.output().unwrap().status.code(), Some(3), "bad duration");
}

#[test]
fn a_state_url_that_does_not_fit_its_backend_is_refused_before_the_run() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "state:\n  backend: redis\n  url: garbage\n",
            "    steps:\n      - name: a\n        agent: dev\n        task: x\n",
        ),
    );
    for cmd in ["validate", "run"] {
        let o = w.run(&[cmd, f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("state.url `garbage`: a redis url starts with redis://"),
            "{cmd}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("cannot write"), "{}", stderr(&o));
    }
    assert!(!w.has_run_dir(), "nothing was run");
    assert!(w.agent_log().is_empty());
}

#[test]
fn a_state_server_that_is_down_is_named_as_the_state_not_the_run_directory() {
    let w = World::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = w.write(
        "wf.yaml",
        &workflow(
            &format!("state:\n  backend: redis\n  url: redis://127.0.0.1:{port}\n"),
            "    steps:\n      - name: a\n        agent: dev\n        task: x\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("redis state"), "{err}");
    assert!(err.contains("nothing was run"), "{err}");
    assert!(!err.contains("cannot write"), "{err}");
    assert!(w.agent_log().is_empty());
    // The step never started, and its log says so rather than printing nothing.
    let o = w.run(&["logs", "last", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("step `a` has no events: it did not start"),
        "{}",
        stderr(&o)
    );
}
