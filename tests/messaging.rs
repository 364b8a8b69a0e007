//! Agents messaging each other through the run's broker, through the real binary: fake
//! agents in real terminals send with `agent-relay send` and with `->relay:` lines, get
//! messages typed in, read them with `inbox`, and every message ends in a state recorded
//! in `messages.jsonl`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use support::{World, stderr, stdout, step, summary};

fn run(w: &World, yaml: &str) -> std::process::Output {
    w.run_live(yaml)
}

/// The run's messages, folded to their final states, as `agent-relay messages --json`
/// prints them.
fn messages(w: &World) -> Vec<serde_json::Value> {
    let o = w.run(&["messages", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn output(s: &serde_json::Value, name: &str) -> String {
    step(s, name)["output"].as_str().unwrap().to_string()
}

/// Who got a copy of the message with `text`.
fn recipients(msgs: &[serde_json::Value], text: &str) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m["text"] == text)
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn terminal_agents_reach_a_waiting_agent_by_command_and_by_relay_line() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: alice
    cli: claude
  - name: bob
    cli: codex
    role: reviewer
  - name: carol
    cli: gemini
workflows:
  - name: main
    steps:
      - name: listen
        agent: bob
        timeoutMs: 30000
        task: "Wait for two messages. [[fake:wait-messages=2]]"
      - name: by-command
        agent: alice
        timeoutMs: 30000
        task: "[[fake:send=bob:hello from alice]] [[fake:say=ALICE_SENT]]"
      - name: by-line
        agent: carol
        timeoutMs: 30000
        task: "[[fake:relay=bob:hello from carol]]"
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let heard = output(&s, "listen");
    assert!(
        heard.contains("got: Relay message from alice: hello from alice"),
        "{heard}"
    );
    assert!(
        heard.contains("got: Relay message from carol: hello from carol"),
        "{heard}"
    );
    let msgs = messages(&w);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    for m in &msgs {
        assert_eq!(m["to"], "bob");
        assert_eq!(m["state"], "delivered", "{m}");
    }
    let types: Vec<String> = w
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "message:sent").count(), 2);
    assert_eq!(
        types.iter().filter(|t| *t == "message:delivered").count(),
        2
    );
    // The human-readable listing.
    let listed = stdout(&w.run(&["messages", "last"]));
    assert!(listed.contains("delivered"), "{listed}");
    assert!(listed.contains("alice -> bob"), "{listed}");
    assert!(w.leftovers().is_empty());
}

#[test]
fn channel_and_broadcast_reach_exactly_the_intended_agents() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: hub
    cli: claude
    interactive: false
  - name: ann
    cli: codex
    channels: [ops]
  - name: ben
    cli: gemini
    channels: [ops]
  - name: dan
    cli: claude
workflows:
  - name: main
    steps:
      - name: announce
        agent: hub
        task: "[[fake:relay=#ops:ops only]] [[fake:relay=*:to everyone]]"
      - name: ann-listens
        agent: ann
        timeoutMs: 30000
        task: "[[fake:wait-messages=2]]"
      - name: ben-listens
        agent: ben
        timeoutMs: 30000
        task: "[[fake:wait-messages=2]]"
      - name: dan-listens
        agent: dan
        timeoutMs: 30000
        task: "[[fake:wait-messages=1]]"
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let msgs = messages(&w);
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(recipients(&msgs, "ops only"), set(&["ann", "ben"]));
    assert_eq!(
        recipients(&msgs, "to everyone"),
        set(&["ann", "ben", "dan"])
    );
    assert!(msgs.iter().all(|m| m["state"] == "delivered"), "{msgs:?}");
    let s = summary(&o);
    assert!(output(&s, "ann-listens").contains("Relay message from hub: [#ops] ops only"));
    assert!(
        output(&s, "dan-listens").contains("Relay message from hub: [to everyone] to everyone")
    );
    assert!(!output(&s, "dan-listens").contains("ops only"));
    assert!(w.leftovers().is_empty());
}

#[test]
fn an_agent_that_starts_later_gets_its_messages_after_its_task() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: early
    cli: claude
  - name: late
    cli: codex
  - name: batch
    cli: claude
    interactive: false
workflows:
  - name: main
    steps:
      - name: first
        agent: early
        timeoutMs: 30000
        task: "[[fake:send=late:before you started]] [[fake:send=batch:for the one-shot]]"
      - name: second
        agent: late
        dependsOn: [first]
        timeoutMs: 30000
        task: "[[fake:say=TASK_SEEN]] [[fake:wait-messages=1]]"
      - name: third
        agent: batch
        dependsOn: [first]
        task: "Summarise [[fake:echo-task]]"
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let out = output(&s, "second");
    let task = out.find("TASK_SEEN").expect("task output");
    let msg = out
        .find("got: Relay message from early: before you started")
        .unwrap_or_else(|| panic!("message not delivered: {out}"));
    assert!(task < msg, "the message came before the task: {out}");
    // A one-shot agent finds waiting messages in its task.
    let third = output(&s, "third");
    assert!(third.contains("- from early: for the one-shot"), "{third}");
    // And every task says who else is there (`early` has ended) and how to reach them.
    assert!(
        third.contains("Other agents in this run (you are batch): late."),
        "{third}"
    );
    // Its CLI has the run's MCP server, so the note names the tools.
    assert!(
        third.contains("agent-relay MCP tools: `send`") && third.contains("`->relay:NAME text`"),
        "{third}"
    );
    assert!(messages(&w).iter().all(|m| m["state"] == "delivered"));
}

#[test]
fn undeliverable_messages_fail_with_a_reason_and_failures_reach_the_notify_channel() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: sender
    cli: claude
    interactive: false
  - name: broken
    cli: codex
    interactive: false
  - name: never
    cli: codex
    interactive: false
  - name: watcher
    cli: gemini
    channels: [alerts]
workflows:
  - name: main
    onError: continue
    steps:
      - name: send
        agent: sender
        task: "[[fake:send=never:you will not see this]]"
      - name: breaks
        agent: broken
        dependsOn: [send]
        task: "[[fake:exit=1]]"
      - name: skipped
        agent: never
        dependsOn: [breaks]
        task: "never runs"
      - name: watch
        agent: watcher
        timeoutMs: 30000
        task: "[[fake:wait-messages=1]]"
errorHandling:
  notifyChannel: alerts
"#,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let msgs = messages(&w);
    let lost = msgs
        .iter()
        .find(|m| m["text"] == "you will not see this")
        .expect("recorded");
    assert_eq!(lost["state"], "failed", "{lost}");
    assert!(
        lost["reason"].as_str().unwrap().contains("the run ended"),
        "{lost}"
    );
    let s = summary(&o);
    let watched = output(&s, "watch");
    assert!(
        watched.contains("Relay message from agent-relay: [#alerts] step `breaks` failed"),
        "{watched}"
    );
}

#[test]
fn unknown_recipients_and_unreachable_runs_are_clear_errors() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: writer
    cli: claude
    interactive: false
  - name: reviewer
    cli: codex
    interactive: false
workflows:
  - name: main
    steps:
      - name: probe
        type: deterministic
        command: |
          "$AGENT_RELAY_BIN" send --to reviewr hi; echo "to=$?"
          "$AGENT_RELAY_BIN" send --channel nope hi; echo "channel=$?"
          "$AGENT_RELAY_BIN" board set plan "step one"; "$AGENT_RELAY_BIN" board get plan
          "$AGENT_RELAY_BIN" agents
      - name: typo
        agent: writer
        task: "[[fake:send=reviwer:hello]]"
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let probe = output(&s, "probe");
    assert!(probe.contains("to=3"), "{probe}");
    assert!(probe.contains("channel=3"), "{probe}");
    assert!(probe.contains("step one"), "the board: {probe}");
    // Everyone is on the swarm channel, named after the workflow.
    assert!(
        probe.contains("reviewer") && probe.contains("#main"),
        "agents: {probe}"
    );
    let log = std::fs::read_to_string(w.run_dir().join("steps/probe/stderr.log")).unwrap();
    assert!(
        log.contains("no agent `reviewr` in this run (did you mean `reviewer`?)"),
        "{log}"
    );
    assert!(log.contains("no channel `#nope`"), "{log}");
    let typo = std::fs::read_to_string(w.run_dir().join("steps/typo/stderr.log")).unwrap();
    assert!(typo.contains("did you mean `reviewer`?"), "{typo}");
    // Refused sends are on record too, as messages and as events.
    let msgs = messages(&w);
    assert!(
        msgs.iter()
            .any(|m| m["to"] == "reviwer" && m["state"] == "failed")
    );
    assert!(
        w.events()
            .iter()
            .any(|e| e["type"] == "message:failed" && e["to"] == "reviwer"),
        "a failure event"
    );
    let board: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.run_dir().join("board.json")).unwrap())
            .unwrap();
    // The board is the shared state: entries by `NAMESPACE:KEY` (the workflow's name).
    assert_eq!(
        board["entries"]["main:plan"]["value"], "step one",
        "{board}"
    );
    assert_eq!(board["entries"]["main:plan"]["by"], "probe", "{board}");

    // Outside a run.
    let gone = w.path().join("no-such.sock");
    let o = w
        .cmd()
        .env("AGENT_RELAY_SOCKET", &gone)
        .args(["send", "--to", "x", "hi"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains(&gone.display().to_string()),
        "{}",
        stderr(&o)
    );
    let o = w
        .cmd()
        .env_remove("AGENT_RELAY_SOCKET")
        .args(["inbox", "--as", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("AGENT_RELAY_SOCKET"), "{}", stderr(&o));
}

#[test]
fn a_one_shot_agent_reads_messages_with_inbox_while_it_runs() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - name: rd
    cli: codex
    interactive: false
workflows:
  - name: main
    steps:
      - name: read
        agent: rd
        timeoutMs: 30000
        task: "[[fake:inbox]]"
      - name: poke
        type: deterministic
        timeoutMs: 30000
        command: |
          until "$AGENT_RELAY_BIN" agents | grep -q '^rd *running'; do sleep 0.02; done
          "$AGENT_RELAY_BIN" send --to rd "$(printf 'via inbox \033[2J\tcleared')"
"#,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let out = output(&s, "read");
    // What an agent sends cannot drive the terminal it is read on: the escape is gone
    // by the time it is stored, the tab is a space.
    assert!(out.contains("from poke: via inbox  cleared"), "{out:?}");
    assert!(output(&s, "poke").contains("sent m1 to rd"));
    let msgs = messages(&w);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["state"], "read", "{msgs:?}");
    assert_eq!(msgs[0]["text"], "via inbox  cleared", "{msgs:?}");
    // A log that holds one anyway (written by something else) is listed with the
    // escape as text.
    let log = w
        .path()
        .join(format!(".agent-relay/runs/{}/messages.jsonl", w.run_id()));
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(raw.contains("via inbox  cleared"), "{raw}");
    std::fs::write(
        &log,
        raw.replace("inbox  cleared", "inbox \\u001b[2J\\tcleared"),
    )
    .unwrap();
    let listed = stdout(&w.run(&["messages", "last"]));
    assert!(
        listed.contains("via inbox \\u{1b}[2J\tcleared"),
        "{listed:?}"
    );
    assert!(!listed.contains('\u{1b}'), "{listed:?}");
}
