//! The terminal views through the real binary in a real PTY, read back through a vt100
//! screen model: `watch` draws the steps and switches agents on a key; `attach` puts a
//! person's typing into a live agent and holds relayed messages until they detach.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use support::World;

const WAIT: Duration = Duration::from_secs(40);

/// A program in a PTY of 30 x 110, its output fed to a screen model.
struct Tty {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Tty {
    fn spawn(w: &World, args: &[&str]) -> Tty {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 30,
                cols: 110,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let probe = w.cmd();
        let mut cmd = CommandBuilder::new(probe.get_program());
        cmd.args(args);
        cmd.cwd(w.path());
        for (k, v) in probe.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.env("TERM", "xterm-256color");
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(30).unwrap(),
            std::num::NonZeroU16::new(110).unwrap(),
            0,
        )));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().process(&buf[..n]);
            }
        });
        Tty {
            child,
            writer,
            screen,
            _master: pty.master,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.contents();
            if ok(&c) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "did not exit; screen:\n{}",
                self.contents()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn quick(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("AGENT_RELAY_SETTLE_MS", "150")
        .env("AGENT_RELAY_READY_TIMEOUT_MS", "4000")
        .env("FAKE_AGENT_THINK_MS", "50")
}

const AGENTS: &str = "name: t\nagents:\n  - name: lead\n    cli: claude\n  - name: dev\n    cli: codex\nworkflows:\n  - name: main\n    steps:\n";

#[test]
fn watch_shows_the_steps_and_switches_agents_on_a_key() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: alpha, agent: lead, task: \"[[fake:say=ALPHA SAYS HI]]\"}}\n      - {{name: beta, agent: dev, dependsOn: [alpha], task: \"[[fake:say=BETA SAYS HO]]\"}}\n"),
    );
    let mut c = w.cmd();
    let o = quick(&mut c)
        .args(["run", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut tty = Tty::spawn(&w, &["watch", "last"]);
    let first = tty.wait_for("the steps and the first agent", |s| {
        s.contains("alpha") && s.contains("beta") && s.contains("ALPHA SAYS HI")
    });
    assert!(first.contains("completed"), "{first}");
    assert!(first.contains("agent: alpha (lead)"), "{first}");
    tty.keys(b"j");
    let second = tty.wait_for("the second agent", |s| s.contains("BETA SAYS HO"));
    assert!(second.contains("agent: beta (dev)"), "{second}");
    assert!(
        !second.contains("ALPHA SAYS HI"),
        "the first agent's screen is gone:\n{second}"
    );
    tty.keys(b"q");
    assert_eq!(tty.wait_exit(), 0);
}

#[test]
fn watch_off_a_terminal_prints_the_events() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: alpha, type: deterministic, command: echo hi}}\n"),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let o = w
        .cmd()
        .args(["watch", "last"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("step:completed") && out.contains("alpha"),
        "{out}"
    );
}

fn message_states(w: &World) -> Vec<String> {
    let o = w.run(&["messages", "last", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["state"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn attach_types_into_the_agent_and_holds_messages_until_detach() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: talk, agent: lead, task: \"[[fake:say=READY FOR YOU]] [[fake:wait-messages=1]]\"}}\n"),
    );
    let mut c = w.cmd();
    let run = quick(&mut c)
        .args(["run", f.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !w
        .events_if_any()
        .iter()
        .any(|e| e["type"] == "task:delivered")
    {
        assert!(Instant::now() < deadline, "the task was not delivered");
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut tty = Tty::spawn(&w, &["attach", "last", "talk"]);
    tty.wait_for("the agent's screen", |s| s.contains("READY FOR YOU"));

    // A message sent while a person is attached waits.
    let sent = w.run(&[
        "send",
        "--run",
        "last",
        "--to",
        "lead",
        "note from the queue",
    ]);
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // What the person types reaches the agent: it acts on the marker typed.
    tty.keys(b"[[fake:say=PERSON WAS HERE]]");
    std::thread::sleep(Duration::from_millis(100));
    tty.keys(b"\r");
    tty.wait_for("the agent's answer to the person", |s| {
        s.contains("PERSON WAS HERE")
    });
    // Ten settle times of a quiet agent: a message not held would be typed in by now. (The
    // pause only gives a broken hold its chance to show; a working one passes anyway.)
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        message_states(&w),
        vec!["queued"],
        "held while the person is attached"
    );
    assert!(
        !tty.contents().contains("got: Relay message"),
        "{}",
        tty.contents()
    );

    tty.keys(&[0x1d]);
    assert_eq!(tty.wait_exit(), 0);
    let o = run.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = s["steps"][0]["output"].as_str().unwrap();
    assert!(
        out.contains("got: Relay message from user: note from the queue"),
        "{out}"
    );
    assert_eq!(message_states(&w), vec!["delivered"]);
}

#[test]
fn attach_refuses_what_has_no_live_terminal() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: alpha, type: deterministic, command: echo hi}}\n"),
    );
    assert_eq!(w.run(&["run", f.to_str().unwrap()]).status.code(), Some(0));
    let o = w.run(&["attach", "last", "alpha"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not running"));
    let o = w.run(&["attach", "nope", "alpha"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn run_on_a_terminal_shows_a_live_block_that_collapses_into_the_summary() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: waiting-step, type: deterministic, command: \"while [ ! -f go ]; do sleep 0.05; done\"}}\n"),
    );
    let mut tty = Tty::spawn(&w, &["run", f.to_str().unwrap()]);
    let live = tty.wait_for("the live block", |s| s.contains("[0/1] 1 running"));
    assert!(live.contains("waiting-step"), "{live}");
    std::fs::write(w.path().join("go"), "").unwrap();
    assert_eq!(tty.wait_exit(), 0);
    let end = tty.wait_for("the summary", |s| s.contains("completed, 0 failed"));
    assert!(!end.contains("1 running"), "the block is gone:\n{end}");

    // Piped, the same run prints plain lines and no terminal control.
    let _ = std::fs::remove_file(w.path().join("go"));
    std::fs::write(w.path().join("go"), "").unwrap();
    let o = w.run(&["run", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ok    waiting-step completed"), "{err}");
    assert!(!err.contains('\x1b') && !err.contains("running"), "{err}");
}

#[test]
fn watch_pauses_unpauses_and_approves_with_keys() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &format!("{AGENTS}      - {{name: hold, type: deterministic, command: \"while [ ! -f go ]; do sleep 0.05; done\"}}\n      - {{name: deploy, type: deterministic, dependsOn: [hold], command: \"echo deployed > deployed.txt\", approval: required}}\n"),
    );
    let mut c = w.cmd();
    let mut run = quick(&mut c)
        .args(["run", f.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let has = |kind: &str| {
        w.events_if_any()
            .iter()
            .filter(|e| e["type"] == kind)
            .count()
    };
    let deadline = Instant::now() + WAIT;
    while has("step:started") == 0 {
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut tty = Tty::spawn(&w, &["watch", "last"]);
    tty.wait_for("the running step", |s| s.contains("hold running"));
    tty.keys(b"p");
    tty.wait_for("the paused run", |s| s.contains("running (paused)"));
    assert_eq!(has("run:paused"), 1);
    tty.keys(b"p");
    tty.wait_for("the unpaused run", |s| {
        !s.contains("(paused)") && s.contains("unpaused")
    });
    assert_eq!(has("run:unpaused"), 1);

    std::fs::write(w.path().join("go"), "").unwrap();
    tty.wait_for("the approval", |s| s.contains("deploy waits for approval"));
    assert!(!w.path().join("deployed.txt").exists());
    tty.keys(b"y");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish; screen:\n{}",
            tty.contents()
        );
        std::thread::sleep(Duration::from_millis(30));
    };
    assert_eq!(status.code(), Some(0));
    assert!(w.path().join("deployed.txt").exists(), "deploy ran");
    let decided: Vec<_> = w
        .events_if_any()
        .into_iter()
        .filter(|e| e["type"] == "approval:decided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["approved"], true);
    tty.keys(b"q");
    assert_eq!(tty.wait_exit(), 0);
}
