//! `agent-relay mcp` from inside real runs: the fake agent, playing each CLI, starts the
//! MCP server it was given the way that CLI would (claude `--mcp-config`, codex `-c
//! mcp_servers...` with only the variables named in `env_vars`, gemini a system
//! settings file, opencode `OPENCODE_CONFIG_CONTENT`) and calls its tools; a
//! deterministic step speaks the protocol to it line by line.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::{World, stderr, stdout, step, summary};

fn run(w: &World, yaml: &str) -> std::process::Output {
    w.run_live(yaml)
}

fn output(s: &serde_json::Value, name: &str) -> String {
    step(s, name)["output"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const TOOLS: &str =
    "mcp tools (2025-06-18): send, inbox, agents, board_get, board_set, ask_human, report_done";

#[test]
fn every_cli_that_takes_mcp_servers_is_given_the_runs_tools_and_mcp_false_turns_it_off() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
agents:
  - {name: c, cli: claude, interactive: false}
  - {name: x, cli: codex, interactive: false}
  - {name: g, cli: gemini, interactive: false}
  - {name: o, cli: opencode, interactive: false}
  - {name: off, cli: claude, interactive: false, mcp: false}
  - {name: a, cli: aider, interactive: false}
  - {name: t, cli: claude}
workflows:
  - name: main
    steps:
      - {name: claude, agent: c, task: "[[fake:mcp-tools]] [[fake:echo-task]]"}
      - {name: codex, agent: x, task: "[[fake:mcp-tools]]"}
      - {name: gemini, agent: g, task: "[[fake:mcp-tools]]"}
      - {name: opencode, agent: o, task: "[[fake:mcp-tools]]"}
      - {name: off, agent: off, task: "[[fake:mcp-tools]] [[fake:echo-task]]"}
      - {name: aider, agent: a, task: "[[fake:mcp-tools]]"}
      - {name: terminal, agent: t, timeoutMs: 30000, task: "[[fake:mcp-tools]]"}
"#,
    );
    let s = summary(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for name in ["claude", "codex", "gemini", "opencode", "terminal"] {
        assert!(
            output(&s, name).contains(TOOLS),
            "{name}: {}",
            output(&s, name)
        );
    }
    // The note on the other agents names the tools, or the commands without them.
    let claude = output(&s, "claude");
    assert!(claude.contains("agent-relay MCP tools: `send`"), "{claude}");
    assert!(!claude.contains("send --to NAME"), "{claude}");
    let off = output(&s, "off");
    assert!(
        off.contains("send --to NAME") && !off.contains("MCP tools"),
        "{off}"
    );
    for name in ["off", "aider"] {
        assert!(
            output(&s, name).contains("mcp: no server"),
            "{name}: {}",
            output(&s, name)
        );
    }
    assert!(w.leftovers().is_empty(), "processes left behind");
}

#[test]
fn agents_message_each_other_and_use_the_board_through_mcp_tools() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
swarm:
  pattern: dag
agents:
  - {name: alice, cli: codex, interactive: false}
  - {name: bob, cli: claude, interactive: false}
workflows:
  - name: main
    steps:
      - name: listen
        agent: bob
        task: '[[fake:mcp=inbox {"wait_seconds": 20}]]'
      - name: talk
        agent: alice
        task: >-
          [[fake:sleep=1500]]
          [[fake:mcp=send {"to": "bobb", "text": "typo"}]]
          [[fake:mcp=send {"to": "bob", "text": "hello over mcp"}]]
          [[fake:mcp=board_set {"key": "plan", "value": "v1"}]]
          [[fake:mcp=board_get {"key": "plan"}]]
          [[fake:mcp=board_get {"key": "nothing"}]]
          [[fake:mcp=agents]]
"#,
    );
    let s = summary(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let talk = output(&s, "talk");
    assert!(
        talk.contains("mcp send error: unknown recipient:") && talk.contains("did you mean `bob`"),
        "{talk}"
    );
    assert!(talk.contains("mcp send: sent message"), "{talk}");
    assert!(talk.contains("mcp board_get: v1"), "{talk}");
    assert!(
        talk.contains("mcp board_get error: no value for `nothing`"),
        "{talk}"
    );
    assert!(talk.contains("mcp agents: alice"), "{talk}");
    let listen = output(&s, "listen");
    assert!(
        listen.contains("mcp inbox: [m") && listen.contains("from alice: hello over mcp"),
        "{listen}"
    );
    // The message is in the run's record, read by bob.
    let m = w.run(&["messages", "last", "--json"]);
    let msgs: serde_json::Value = serde_json::from_str(&stdout(&m)).unwrap();
    let hello: Vec<&serde_json::Value> = msgs
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["text"] == "hello over mcp")
        .collect();
    assert_eq!(hello.len(), 1, "{msgs}");
    assert_eq!(
        (&hello[0]["from"], &hello[0]["to"], &hello[0]["state"]),
        (&"alice".into(), &"bob".into(), &"read".into()),
        "{msgs}"
    );
    // The board entry is recorded as alice's.
    assert!(
        w.events()
            .iter()
            .any(|e| e["type"] == "state:set" && e["key"] == "plan" && e["by"] == "alice"),
        "no board write by alice"
    );
}

#[test]
fn report_done_ends_an_interactive_step_with_its_result() {
    let w = World::new();
    let started = Instant::now();
    let o = run(
        &w,
        r#"name: t
agents:
  - {name: dev, cli: claude}
  - {name: quick, cli: gemini, interactive: false}
workflows:
  - name: main
    steps:
      - name: work
        agent: dev
        timeoutMs: 60000
        task: '[[fake:no-exit]] [[fake:say=working]] [[fake:mcp=report_done {"result": "the answer is 42"}]]'
      - name: after
        agent: quick
        dependsOn: [work]
        task: 'got: {{steps.work.output}} [[fake:echo-task]] [[fake:mcp=report_done {"result": "one-shot result"}]]'
"#,
    );
    let s = summary(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(step(&s, "work")["status"], "completed");
    assert_eq!(output(&s, "work"), "the answer is 42");
    // A one-shot agent's report is its output too.
    assert_eq!(output(&s, "after"), "one-shot result");
    // Ended by the report, long before the step's timeout, and recorded as an exit.
    assert!(started.elapsed() < Duration::from_secs(40));
    let exits: Vec<serde_json::Value> = w
        .events()
        .into_iter()
        .filter(|e| e["type"] == "agent:exit-requested" && e["step"] == "work")
        .collect();
    assert!(!exits.is_empty(), "no exit recorded");
    assert!(w.leftovers().is_empty(), "processes left behind");
}

/// What `agent-relay questions --json` lists once it lists `question`.
fn listed_once(w: &World, question: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = w.run(&["questions", "--json"]);
        if stdout(&q).contains(question) {
            return stdout(&q);
        }
        assert!(Instant::now() < deadline, "`{question}` never showed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_question_left_open_goes_with_the_step_that_asked_it() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        r#"name: t
agents:
  - {name: dev, cli: codex, interactive: false}
workflows:
  - name: main
    steps:
      - name: ask
        agent: dev
        task: '[[fake:mcp=ask_human {"question": "left open?", "wait_seconds": 0}]]'
      - name: hold
        agent: dev
        dependsOn: [ask]
        task: '[[fake:mcp=ask_human {"question": "still here?", "wait_seconds": 30}]]'
"#,
    );
    let child = w.spawn(&["run", f.to_str().unwrap(), "--json"]);
    let listed = listed_once(&w, "still here?");
    // `ask` completed without an answer: its question is not waiting any more.
    assert!(!listed.contains("left open?"), "{listed}");
    let a = w.run(&["answer", "last", "ask", "late"]);
    assert_eq!(a.status.code(), Some(3), "{}", stdout(&a));
    assert!(stderr(&a).contains("`hold`"), "{}", stderr(&a));
    let a = w.run(&["answer", "last", "hold", "yes"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(output(&s, "hold").starts_with("mcp ask_human: yes\n"));
}

#[test]
fn ask_human_returns_the_answer_or_passes_a_late_one_on_as_a_message() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        r#"name: t
agents:
  - {name: dev, cli: codex, interactive: false}
workflows:
  - name: main
    steps:
      - name: plan
        agent: dev
        task: '[[fake:mcp=ask_human {"question": "which port?", "wait_seconds": 30}]]'
      - name: later
        agent: dev
        dependsOn: [plan]
        task: '[[fake:mcp=ask_human {"question": "which db?", "wait_seconds": 0}]] [[fake:mcp=inbox {"wait_seconds": 30}]]'
"#,
    );
    let child = w.spawn(&["run", f.to_str().unwrap(), "--json"]);
    // Wait for the question to show, then answer it as a person would.
    listed_once(&w, "which port?");
    let a = w.run(&["answer", "last", "plan", "8080"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    // A question whose call stopped waiting: the answer comes as a message.
    let listed = listed_once(&w, "which db?");
    assert!(!listed.contains("which port?"), "{listed}");
    let a = w.run(&["answer", "last", "later", "postgres"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let o = child.wait_with_output().unwrap();
    let s = summary(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan = output(&s, "plan");
    assert!(plan.starts_with("mcp ask_human: 8080\n"), "{plan}");
    let later = output(&s, "later");
    assert!(later.contains("mcp ask_human: No answer yet"), "{later}");
    assert!(
        later.contains("from user: HUMAN_ANSWER (to your question for step later): postgres"),
        "{later}"
    );
    let events = w.events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "question:answered" && e["answer"] == "8080"),
        "no answer recorded"
    );
}

#[test]
fn the_protocol_spoken_line_by_line_from_a_step() {
    let w = World::new();
    let o = run(
        &w,
        r#"name: t
agents:
  - {name: bob, cli: claude}
workflows:
  - name: main
    steps:
      - name: speak
        type: deterministic
        command: |
          printf '%s\n' \
            '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01","capabilities":{}}}' \
            '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
            '{"jsonrpc":"2.0","id":2,"method":"ping"}' \
            '{"jsonrpc":"2.0","id":3,"method":"tools/list"}' \
            '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"agents","arguments":{}}}' \
            '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"report_done","arguments":{"result":"x"}}}' \
            '{"jsonrpc":"2.0","id":6,"method":"nope"}' \
            'not json' \
            | "$AGENT_RELAY_BIN" mcp
"#,
    );
    let s = summary(&o);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = output(&s, "speak")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0]["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(lines[0]["result"]["serverInfo"]["name"], "agent-relay");
    assert_eq!(lines[1]["result"], serde_json::json!({}));
    assert_eq!(lines[2]["result"]["tools"].as_array().unwrap().len(), 7);
    assert_eq!(lines[3]["result"]["isError"], false);
    assert!(
        lines[3]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("bob"),
        "{}",
        lines[3]
    );
    // A deterministic step is not an agent's step: report_done is refused with why.
    assert_eq!(lines[4]["result"]["isError"], true, "{}", lines[4]);
    assert!(
        lines[4]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("is not running"),
        "{}",
        lines[4]
    );
    assert_eq!(lines[5]["error"]["code"], -32601);
    assert_eq!(lines[6]["error"]["code"], -32700);
}
