//! Workers on other machines, end to end: a real nats-server (JetStream in a temp dir,
//! random loopback port), a coordinator (`agent-relay run --nats`) whose PATH has no
//! agent CLI at all, and worker processes (`agent-relay worker`), each in its own
//! working directory with its own PATH, so what each can run differs.
//!
//! Timings are made short through the environment (leases, grace, JetStream's ack wait)
//! so lapses and redeliveries happen within seconds; nothing here asserts a duration.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use relay_testkit::nats::NatsServer;
use support::{World, agent_relay, stderr, stdout, summary};

/// The short timings every process of a test runs with.
const TIMING: &[(&str, &str)] = &[
    ("AGENT_RELAY_NATS_LEASE_MS", "1500"),
    ("AGENT_RELAY_NATS_GRACE_MS", "1500"),
    ("AGENT_RELAY_NATS_ACK_WAIT_MS", "1000"),
    ("AGENT_RELAY_NATS_POLL_MS", "200"),
    ("AGENT_RELAY_NATS_QUEUE_TIMEOUT_MS", "60000"),
];

fn system_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

/// A worker process; killed when dropped.
struct Worker {
    name: String,
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Worker {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("worker.log"))
            .unwrap();
        let mut c = Command::new(agent_relay());
        c.arg("worker").args(&self.args).current_dir(&self.dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        self.child = Some(
            c.stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a worker"),
        );
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `kill -9`: the worker gets no chance to clean up.
    fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One test's machines: the world (coordinator's directory), the server, the workers.
struct Cluster {
    workers: Vec<Worker>,
    server: NatsServer,
    /// The URL every process is given (with credentials when the server wants them).
    url: String,
    /// Environment every process of the cluster gets besides the usual (credentials).
    env: Vec<(String, String)>,
    world: World,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One cluster at a time: each is a server and several processes, and leases are short.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Cluster {
    fn new() -> Option<Cluster> {
        Cluster::with_server(&[], None)
    }

    /// A cluster whose server runs with `args`; every process is given the server's URL
    /// with `credentials@` in front of the host, when given.
    fn with_server(args: &[&str], credentials: Option<&str>) -> Option<Cluster> {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let world = World::new();
        let server = NatsServer::start_with(&world.path().join("nats"), args)?;
        let url = match credentials {
            Some(c) => server.url().replace("nats://", &format!("nats://{c}@")),
            None => server.url(),
        };
        Some(Cluster {
            workers: Vec::new(),
            server,
            url,
            env: Vec::new(),
            world,
            _turn: turn,
        })
    }

    /// A cluster whose server reads configuration `conf` (besides the usual flags), and
    /// whose processes all get `env`.
    fn with_config(conf: &str, env: &[(&str, &str)]) -> Option<Cluster> {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let world = World::new();
        let file = world.path().join("nats.conf");
        std::fs::write(&file, conf).unwrap();
        let server =
            NatsServer::start_with(&world.path().join("nats"), &["-c", file.to_str().unwrap()])?;
        Some(Cluster {
            workers: Vec::new(),
            url: server.url(),
            server,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            world,
            _turn: turn,
        })
    }

    fn common_env(&self) -> Vec<(String, String)> {
        let w = &self.world;
        let mut env: Vec<(String, String)> = vec![
            ("RELAY_TEST_TAG".into(), w.tag.clone()),
            (
                "FAKE_AGENT_LOG".into(),
                w.path().join("agents.log").display().to_string(),
            ),
            (
                "FAKE_AGENT_STATE_DIR".into(),
                w.path().join("state").display().to_string(),
            ),
            ("AGENT_RELAY_KILL_GRACE_MS".into(), "300".into()),
        ];
        env.extend(TIMING.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        env.extend(self.env.iter().cloned());
        env
    }

    /// Starts worker `name` offering `clis` (fake agents on its own PATH).
    fn worker(&mut self, name: &str, clis: &[&str], capacity: u32, extra: &[&str]) {
        let dir = self.world.path().join(format!("worker-{name}"));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for cli in clis {
            std::os::unix::fs::symlink(relay_testkit::fake_agent_path(), bin.join(cli)).unwrap();
        }
        let mut env = self.common_env();
        env.push((
            "PATH".into(),
            format!("{}:{}", bin.display(), system_path()),
        ));
        let mut args: Vec<String> = vec![
            "--nats".into(),
            self.url.clone(),
            "--name".into(),
            name.into(),
            "--capacity".into(),
            capacity.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut w = Worker {
            name: name.into(),
            dir,
            args,
            env,
            child: None,
        };
        w.spawn();
        self.workers.push(w);
    }

    fn worker_mut(&mut self, name: &str) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|w| w.name == name)
            .expect("such a worker")
    }

    /// `agent-relay workers --json`.
    fn status(&self) -> Vec<serde_json::Value> {
        let o = Command::new(agent_relay())
            .args(["workers", "--nats", &self.url, "--json", "--wait-ms", "300"])
            .envs(self.env.iter().cloned())
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap_or_default()
    }

    /// Waits until every worker started so far answers.
    fn wait_for_workers(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names: Vec<String> = self
                .status()
                .iter()
                .filter_map(|w| w["name"].as_str().map(str::to_owned))
                .collect();
            if self.workers.iter().all(|w| names.contains(&w.name)) {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.workers.iter().map(|w| w.log()).collect();
                panic!("workers did not come up; answered: {names:?}\n{logs:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `agent-relay ARGS` as the coordinator: in the world's directory, with no agent
    /// CLI on its PATH (every agent step must go to a worker).
    fn coordinator(&self, args: &[&str]) -> Command {
        let mut c = Command::new(agent_relay());
        c.args(args).current_dir(self.world.path());
        for (k, v) in self.common_env() {
            c.env(k, v);
        }
        c.env("PATH", system_path())
            .env("AGENT_RELAY_NATS", self.url.clone());
        c
    }

    fn run(&self, file: &str) -> Output {
        self.coordinator(&["run", file, "--json"])
            .output()
            .expect("run the coordinator")
    }

    fn diagnose(&self, o: &Output) -> String {
        let logs: Vec<String> = self
            .workers
            .iter()
            .map(|w| format!("--- {} ---\n{}", w.name, w.log()))
            .collect();
        format!(
            "stdout:\n{}\nstderr:\n{}\n{}",
            stdout(o),
            stderr(o),
            logs.join("\n")
        )
    }
}

/// `(step, worker)` of every agent spawned, from the run's events.
fn placements(world: &World) -> Vec<(String, String)> {
    world
        .events()
        .iter()
        .filter(|e| e["type"] == "agent:spawned")
        .map(|e| {
            (
                e["step"].as_str().unwrap_or("").to_owned(),
                e["worker"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Waits until `cond` holds, for at most `secs` seconds.
fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fan_out_spreads_over_workers_within_the_concurrency_limit() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("both", &["claude", "codex"], 2, &[]);
    c.worker("only-claude", &["claude"], 2, &[]);
    c.worker("only-codex", &["codex"], 2, &[]);
    c.wait_for_workers();
    let mut steps = String::new();
    for i in 0u32..8 {
        let agent = if i.is_multiple_of(2) { "dev" } else { "ops" };
        steps.push_str(&format!(
            "      - name: s{i}\n        agent: {agent}\n        task: \"[[fake:sleep=400]] [[fake:say=done {i}]]\"\n        verification:\n          type: output_contains\n          value: \"done {i}\"\n"
        ));
    }
    c.world.write(
        "wf.yaml",
        &support::workflow(
            "swarm:\n  pattern: dag\n  maxConcurrency: 3\n",
            &format!("    steps:\n{steps}"),
        ),
    );
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "completed");
    let overlap = relay_testkit::max_overlap(&c.world.agent_log());
    assert!(
        overlap <= 3,
        "{overlap} agents ran at once across the workers"
    );
    let placed = placements(&c.world);
    assert_eq!(placed.len(), 8, "{placed:?}");
    let used: std::collections::BTreeSet<&str> = placed.iter().map(|(_, w)| w.as_str()).collect();
    assert!(used.len() >= 2, "all on one worker: {placed:?}");
    for (step, worker) in &placed {
        let n: usize = step[1..].parse().unwrap();
        // dev is claude, ops is codex: each ran where its CLI is installed.
        let ok = if n.is_multiple_of(2) {
            worker == "both" || worker == "only-claude"
        } else {
            worker == "both" || worker == "only-codex"
        };
        assert!(ok, "{step} ran on {worker}");
    }
    // The coordinator's run directory has the outputs, as for a local run.
    let out = std::fs::read_to_string(c.world.run_dir().join("steps/s3/output.txt"));
    assert!(out.is_ok_and(|t| t.contains("done 3")));
}

#[test]
fn an_interactive_agent_on_one_worker_messages_a_one_shot_agent_on_another() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("tui", &["claude"], 2, &[]);
    c.worker("batch", &["codex"], 2, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
agents:
  - name: alice
    cli: claude
  - name: bob
    cli: codex
    interactive: false
workflows:
  - name: main
    steps:
      - name: talk
        agent: alice
        timeoutMs: 30000
        task: "[[fake:send=bob:hello from alice]] [[fake:wait-messages=1]]"
      - name: answer
        agent: bob
        timeoutMs: 30000
        task: "[[fake:send=alice:ping from bob]] [[fake:say=BOB_SENT]]"
      - name: read
        agent: bob
        dependsOn: [talk, answer]
        task: "[[fake:echo-task]]"
"#,
    );
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    // Alice's session on `tui` got bob's message typed in and answered it.
    let talk = support::step(&s, "talk");
    assert!(
        talk["output"].as_str().unwrap_or("").contains("got: "),
        "{talk}"
    );
    // Bob's later one-shot task on `batch` carried alice's message.
    let read = support::step(&s, "read");
    assert!(
        read["output"]
            .as_str()
            .unwrap_or("")
            .contains("hello from alice"),
        "{read}"
    );
    let placed = placements(&c.world);
    assert!(
        placed.iter().any(|(s, w)| s == "talk" && w == "tui"),
        "{placed:?}"
    );
    assert!(
        placed.iter().any(|(s, w)| s == "read" && w == "batch"),
        "{placed:?}"
    );
    // Every message has its states in the coordinator's messages.jsonl, each delivered
    // once.
    let log = c.world.read(&format!(
        ".agent-relay/runs/{}/messages.jsonl",
        c.world.run_dir().file_name().unwrap().to_string_lossy()
    ));
    let states: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for to in ["alice", "bob"] {
        let delivered = states
            .iter()
            .filter(|r| r["to"] == to && (r["state"] == "delivered" || r["state"] == "read"))
            .count();
        assert_eq!(delivered, 1, "messages to {to}: {log}");
    }
}

/// The run's dispatch log (`dispatch.jsonl`): events of one kind.
fn dispatch_events(world: &World, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(world.run_dir().join("dispatch.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// The worker running step `step` now, per `agent-relay workers`.
fn runner_of(c: &Cluster, step: &str) -> Option<String> {
    c.status().iter().find_map(|w| {
        w["running"]
            .as_array()?
            .iter()
            .any(|r| r["step"] == step)
            .then(|| w["name"].as_str().unwrap_or("").to_owned())
    })
}

fn group_alive(pgid: u32) -> bool {
    // Signal 0 to the group: delivered to nobody, fails once nobody is in it.
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn spawned_pgids(world: &World, step: &str, worker: &str) -> Vec<u32> {
    world
        .events()
        .iter()
        .filter(|e| e["type"] == "agent:spawned" && e["step"] == step && e["worker"] == worker)
        .filter_map(|e| e["pgid"].as_u64().map(|p| p as u32))
        .collect()
}

const ONE_SLOW_STEP: &str = r#"version: "1.0"
name: t
agents:
  - name: dev
    cli: claude
    interactive: false
workflows:
  - name: main
    steps:
      - name: slow
        agent: dev
        timeoutMs: 60000
        task: "[[fake:count=slow]] [[fake:sleep=SLEEP]] [[fake:say=slow done]]"
"#;

#[test]
fn a_worker_killed_mid_step_loses_its_attempt_to_another_after_the_grace_period() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("w1", &["claude"], 1, &[]);
    c.worker("w2", &["claude"], 1, &[]);
    c.wait_for_workers();
    c.world
        .write("wf.yaml", &ONE_SLOW_STEP.replace("SLEEP", "3000"));
    let mut coord = c
        .coordinator(&["run", "wf.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut victim = None;
    wait_until(30, "the step to start on a worker", || {
        victim = runner_of(&c, "slow");
        victim.is_some()
    });
    let victim = victim.unwrap();
    wait_until(10, "the agent to be spawned", || {
        !spawned_pgids(&c.world, "slow", &victim).is_empty()
    });
    let pgid = spawned_pgids(&c.world, "slow", &victim)[0];
    c.worker_mut(&victim).kill_hard();
    // The dead worker's watchdog ends its agent at once.
    wait_until(10, "the dead worker's agent to end", || !group_alive(pgid));
    let o = std::mem::replace(&mut coord, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    assert_eq!(support::step(&s, "slow")["status"], "completed");
    // Run twice (the killed attempt and its replacement), completed once, elsewhere.
    assert_eq!(lines_of(&c.world.path().join("state/count-slow")), 2);
    let completed = c
        .world
        .events()
        .iter()
        .filter(|e| e["type"] == "step:completed" && e["step"] == "slow")
        .count();
    assert_eq!(completed, 1);
    let redispatched = dispatch_events(&c.world, "redispatched");
    assert_eq!(redispatched.len(), 1, "{redispatched:?}");
    assert!(
        redispatched[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains(&victim),
        "{redispatched:?}"
    );
    let other = if victim == "w1" { "w2" } else { "w1" };
    assert_eq!(spawned_pgids(&c.world, "slow", other).len(), 1);
    // The dead worker comes back: nothing of its earlier life is left running.
    c.worker_mut(&victim).spawn();
    c.wait_for_workers();
    assert!(!group_alive(pgid));
    let home = c.worker_mut(&victim).dir.canonicalize().unwrap();
    assert!(
        relay_testkit::processes_with_env("AGENT_RELAY_WORKER_HOME", &home.display().to_string())
            .is_empty(),
        "the restarted worker's earlier agents are gone"
    );
}

#[test]
fn a_worker_that_lost_its_lease_has_its_result_refused() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("w1", &["claude"], 1, &[]);
    c.worker("w2", &["claude"], 1, &[]);
    c.wait_for_workers();
    // A deterministic step, run on a worker (both offer a shell); its output names the
    // worker that ran it.
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
workflows:
  - name: main
    steps:
      - name: slow
        type: deterministic
        command: "mkdir -p \"$FAKE_AGENT_STATE_DIR\"; echo $$ >> \"$FAKE_AGENT_STATE_DIR/count-slow\"; sleep 2.5; echo \"done by $AGENT_RELAY_WORKER\""
        timeoutMs: 60000
"#,
    );
    let coord = c
        .coordinator(&["run", "wf.yaml", "--json", "--commands-on-workers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sleeper = None;
    wait_until(30, "the step to start on a worker", || {
        sleeper = runner_of(&c, "slow");
        sleeper.is_some()
    });
    let sleeper = sleeper.unwrap();
    let pid = c.worker_mut(&sleeper).pid().to_string();
    // Frozen: no renewals, no in-progress acks; its command goes on and finishes.
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // Frozen until the attempt is granted again (to the other worker: this one's only
    // slot is taken), by when its command has finished.
    wait_until(30, "the attempt to be granted again", || {
        dispatch_events(&c.world, "granted")
            .iter()
            .any(|g| g["round"] == 2)
    });
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let o = coord.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    let other = if sleeper == "w1" { "w2" } else { "w1" };
    let step = support::step(&s, "slow");
    assert_eq!(step["status"], "completed");
    assert_eq!(
        step["output"].as_str().unwrap_or("").trim(),
        format!("done by {other}"),
        "only the holder's result counts"
    );
    let log = std::fs::read_to_string(c.world.run_dir().join("dispatch.jsonl")).unwrap_or_default();
    let refused = dispatch_events(&c.world, "refused");
    assert!(
        refused
            .iter()
            .any(|r| r["worker"] == sleeper.as_str() && r["token"] == 1),
        "the stale worker's report was refused:\n{log}\n{}",
        c.diagnose(&o)
    );
    let granted = dispatch_events(&c.world, "granted");
    assert!(
        granted
            .iter()
            .any(|g| g["worker"] == other && g["token"] == 2),
        "{log}"
    );
    assert_eq!(lines_of(&c.world.path().join("state/count-slow")), 2);
}

#[test]
fn a_worker_back_from_a_freeze_ends_the_attempt_it_no_longer_holds() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("w1", &["claude"], 1, &[]);
    c.worker("w2", &["claude"], 1, &[]);
    c.wait_for_workers();
    // The first attempt would run for a minute; the second finishes at once.
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
workflows:
  - name: main
    steps:
      - name: long
        type: deterministic
        command: "mkdir -p \"$FAKE_AGENT_STATE_DIR\"; f=\"$FAKE_AGENT_STATE_DIR/count-long\"; n=$(cat \"$f\" 2>/dev/null | wc -l); echo $$ >> \"$f\"; if [ \"$n\" -eq 0 ]; then sleep 60; fi; echo \"done by $AGENT_RELAY_WORKER\""
        timeoutMs: 120000
"#,
    );
    let coord = c
        .coordinator(&["run", "wf.yaml", "--json", "--commands-on-workers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = c.world.path().join("state/count-long");
    wait_until(30, "the first attempt to start", || lines_of(&count) == 1);
    let mut holder = None;
    wait_until(10, "the worker running it", || {
        holder = runner_of(&c, "long");
        holder.is_some()
    });
    let holder = holder.unwrap();
    let first: u32 = std::fs::read_to_string(&count)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = c.worker_mut(&holder).pid().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // Given away: the other worker runs the second attempt, which completes the step.
    let o = coord.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let other = if holder == "w1" { "w2" } else { "w1" };
    let s = summary(&o);
    let step = support::step(&s, "long");
    assert_eq!(
        step["output"].as_str().unwrap_or("").trim(),
        format!("done by {other}")
    );
    // The first attempt's command still sleeps on the frozen worker.
    assert!(Path::new(&format!("/proc/{first}")).exists());
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    // Thawed, the worker finds the attempt is no longer its own and ends it, long before
    // its minute is up.
    wait_until(20, "the stale attempt to be ended", || {
        !Path::new(&format!("/proc/{first}")).exists()
    });
    let log = c.worker_mut(&holder).log();
    assert!(
        log.contains("did not confirm the lease") || log.contains("refused by the coordinator"),
        "the worker says why it ended the attempt:\n{log}"
    );
    assert_eq!(lines_of(&count), 2);
}

#[test]
fn a_step_longer_than_the_ack_wait_is_not_redelivered() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("w1", &["claude"], 1, &[]);
    c.worker("w2", &["claude"], 1, &[]);
    c.wait_for_workers();
    // Five times JetStream's acknowledgement wait of these queues (1 s here).
    c.world
        .write("wf.yaml", &ONE_SLOW_STEP.replace("SLEEP", "5000"));
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    assert_eq!(lines_of(&c.world.path().join("state/count-slow")), 1);
    assert_eq!(dispatch_events(&c.world, "granted").len(), 1);
    // A redelivered offer would have been claimed by the other worker and deferred.
    assert!(dispatch_events(&c.world, "claim-deferred").is_empty());
    assert!(dispatch_events(&c.world, "redispatched").is_empty());
}

#[test]
fn the_coordinator_killed_and_resumed_runs_no_attempt_twice() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("w1", &["claude"], 2, &[]);
    c.worker("w2", &["claude"], 2, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
agents:
  - name: dev
    cli: claude
    interactive: false
workflows:
  - name: main
    steps:
      - name: a
        agent: dev
        task: "[[fake:count=a]] [[fake:say=a done]]"
      - name: b
        agent: dev
        dependsOn: [a]
        timeoutMs: 60000
        task: "[[fake:count=b]] [[fake:sleep=3000]] [[fake:say=b done]]"
      - name: c
        agent: dev
        dependsOn: [b]
        task: "[[fake:count=c]] [[fake:say=c done]]"
"#,
    );
    let mut coord = c
        .coordinator(&["run", "wf.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count_b = c.world.path().join("state/count-b");
    wait_until(30, "step b to start", || lines_of(&count_b) == 1);
    coord.kill().unwrap();
    coord.wait().unwrap();
    let first_b: u32 = std::fs::read_to_string(&count_b)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let o = c
        .coordinator(&["resume", "last", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "completed");
    let count = |k: &str| lines_of(&c.world.path().join(format!("state/count-{k}")));
    assert_eq!(count("a"), 1, "a completed before the crash and is kept");
    assert_eq!(count("b"), 2, "b was interrupted once and ran again once");
    assert_eq!(count("c"), 1);
    // The dead coordinator's attempt of b was ended on its worker.
    assert!(
        !Path::new(&format!("/proc/{first_b}")).exists() || {
            std::thread::sleep(Duration::from_secs(3));
            !Path::new(&format!("/proc/{first_b}")).exists()
        }
    );
}

#[test]
fn a_nats_server_restart_mid_run_loses_nothing() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("tui", &["claude"], 2, &[]);
    c.worker("batch", &["codex"], 2, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
agents:
  - name: alice
    cli: claude
  - name: bob
    cli: codex
    interactive: false
workflows:
  - name: main
    steps:
      - name: listen
        agent: alice
        timeoutMs: 60000
        task: "[[fake:wait-messages=1]]"
      - name: talk
        agent: bob
        timeoutMs: 60000
        task: "[[fake:count=talk]] [[fake:sleep=2500]] [[fake:send=alice:across the restart]] [[fake:say=sent]]"
      - name: after
        agent: bob
        dependsOn: [talk]
        task: "[[fake:say=after done]]"
"#,
    );
    let coord = c
        .coordinator(&["run", "wf.yaml", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(30, "bob to start", || {
        lines_of(&c.world.path().join("state/count-talk")) == 1
    });
    c.server.restart();
    let o = coord.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "completed");
    assert!(
        support::step(&s, "listen")["output"]
            .as_str()
            .unwrap_or("")
            .contains("across the restart"),
        "{s}"
    );
    assert_eq!(lines_of(&c.world.path().join("state/count-talk")), 1);
    assert!(dispatch_events(&c.world, "redispatched").is_empty());
}

#[test]
fn placement_labels_choose_the_worker_and_workers_lists_them() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("plain", &["claude"], 2, &[]);
    c.worker(
        "zoned",
        &["claude"],
        2,
        &["--label", "zone=b", "--label", "gpu=yes"],
    );
    c.wait_for_workers();
    let listing = c
        .coordinator(&["workers", "--nats", &c.url])
        .output()
        .unwrap();
    let text = stdout(&listing);
    assert!(text.contains("zoned  2/2 free"), "{text}");
    assert!(text.contains("gpu=yes,zone=b"), "{text}");
    // Each worker said what it offers once it took attempts.
    let log = c.workers[1].log();
    assert!(
        log.contains("worker `zoned` taking attempts from nats://")
            && log.contains("(capacity 2; claude; shell; labels gpu=yes,zone=b)\n"),
        "{log}"
    );
    // A second worker by a name in use is refused, and never says it takes attempts.
    let o = c
        .coordinator(&["worker", "--nats", &c.url, "--name", "plain"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a worker named `plain` is already running"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("taking attempts"), "{}", stderr(&o));
    let mut steps = String::new();
    for i in 0..4 {
        steps.push_str(&format!(
            "      - name: p{i}\n        agent: dev\n        task: \"[[fake:say=ok]]\"\n"
        ));
    }
    let steps = format!("    steps:\n{steps}");
    // The file says where its workers are and where dev runs; nothing on the command
    // line or in the environment.
    let placed_in_file = support::workflow(
        &format!("swarm:\n  pattern: dag\n  workers: {}\n", c.url),
        &steps,
    )
    .replace(
        "    cli: claude\n",
        "    cli: claude\n    placement:\n      labels: {zone: b}\n",
    );
    assert!(placed_in_file.contains("placement"), "{placed_in_file}");
    c.world.write("placed.yaml", &placed_in_file);
    let o = c
        .coordinator(&["run", "placed.yaml", "--json"])
        .env_remove("AGENT_RELAY_NATS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let placed = placements(&c.world);
    assert_eq!(placed.len(), 4);
    assert!(placed.iter().all(|(_, w)| w == "zoned"), "{placed:?}");
    // The same workers take the next run: `--place` on a file that places nothing.
    c.world.write(
        "wf.yaml",
        &support::workflow("swarm:\n  pattern: dag\n", &steps),
    );
    let o = c
        .coordinator(&["run", "wf.yaml", "--json", "--place", "dev:gpu=yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let placed = placements(&c.world);
    assert_eq!(placed.len(), 4);
    assert!(placed.iter().all(|(_, w)| w == "zoned"), "{placed:?}");
    assert!(!stderr(&o).contains("needs a worker"), "{}", stderr(&o));
    // The progress says where each step runs.
    for i in 0..4 {
        assert!(
            stderr(&o).contains(&format!("  p{i}: on worker zoned\n")),
            "{}",
            stderr(&o)
        );
    }
    // A placement no worker meets: the run says so at its start, naming what each
    // worker lacks, and the step fails when no worker has taken it in time.
    let o = c
        .coordinator(&["run", "wf.yaml", "--place", "dev:gpu=no"])
        .env("AGENT_RELAY_NATS_QUEUE_TIMEOUT_MS", "1500")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    assert!(
        err.contains(
            "warning: agent `dev` needs a worker with claude gpu=no: none of the workers \
             that answered has it (plain has no gpu label; zoned has gpu=yes); its steps wait up \
             to 1.5 s"
        ),
        "{err}"
    );
    assert!(err.contains("no worker took it within 1.5 s"), "{err}");
    // Resumed with no server given, that run says its steps now run here (where there
    // is no claude).
    let o = c
        .coordinator(&["resume", "last"])
        .env_remove("AGENT_RELAY_NATS")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        err.contains("dispatched steps to workers over NATS; resumed without a server, its steps run on this machine"),
        "{err}"
    );
    assert!(
        err.contains("(not found on PATH); nothing was run"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(4), "{err}");
    // A CLI neither this machine nor any worker has: refused before anything runs, and
    // the error says where it was looked for.
    c.world.write(
        "goose.yaml",
        &support::workflow("swarm:\n  pattern: dag\n", &steps).replace("cli: claude", "cli: goose"),
    );
    let o = c.coordinator(&["run", "goose.yaml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", c.diagnose(&o));
    assert!(
        stderr(&o).contains(
            "agent `dev` needs `goose`, which is not installed (not found on PATH here or on \
             any of the 2 workers that answered); nothing was run"
        ),
        "{}",
        stderr(&o)
    );
    // A placement for an agent the file does not have is bad input.
    let o = c
        .coordinator(&["run", "wf.yaml", "--place", "nobody:gpu=yes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no agent `nobody`"), "{}", stderr(&o));
}

/// A `droid` that proves where its task is: it finds the task file its argument names
/// and reports its size, mode and path (and fails when there is no such file).
const DROID_READS_ITS_TASK_FILE: &str = r#"#!/bin/sh
p=
for a in "$@"; do
  case "$a" in
    *task.md*) p=$(printf '%s' "$a" | sed -n 's/.*in the file \([^ ]*task\.md\).*/\1/p') ;;
  esac
done
if [ -z "$p" ] || [ ! -f "$p" ]; then echo "NO_TASK_FILE <$p>"; exit 1; fi
printf 'SIZE=%s MODE=%s FILE=%s\n' "$(wc -c < "$p" | tr -d ' ')" "$(stat -c %a "$p")" "$p"
grep -c 'Work on this' "$p" | sed 's/^/WORK=/'
"#;

#[test]
fn a_task_too_long_for_the_command_line_reaches_the_worker_in_its_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut c) = Cluster::new() else { return };
    // droid takes its task only as an argument: over 64 KiB it gets a pointer to a file.
    let bin = c.world.path().join("worker-far/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("droid"), DROID_READS_ITS_TASK_FILE).unwrap();
    std::fs::set_permissions(bin.join("droid"), std::fs::Permissions::from_mode(0o755)).unwrap();
    c.worker("far", &[], 1, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: far, cli: droid, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - name: big\n        type: deterministic\n        command: \"head -c 100000 /dev/zero | tr '\\\\0' a\"\n      - name: pointer\n        agent: far\n        dependsOn: [big]\n        task: \"Work on this: {{steps.big.output}}\"\n",
    );
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    assert!(
        placements(&c.world).contains(&("pointer".to_owned(), "far".to_owned())),
        "{:?}",
        placements(&c.world)
    );
    let out = support::step(&summary(&o), "pointer")["output"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    // The whole task, in a private file of the worker's own mirror of the run.
    let size: usize = out
        .split("SIZE=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(size > 100_000, "{out}");
    assert!(out.contains("MODE=600"), "{out}");
    assert!(out.contains("WORK=1"), "{out}");
    let worker_dir = c.world.path().join("worker-far").display().to_string();
    assert!(
        out.contains(&format!("FILE={worker_dir}/.agent-relay/remote/")),
        "{out}"
    );
}

/// Agents on a worker call the run's MCP tools: each CLI is given the server as on the
/// coordinator, with the worker's own `agent-relay` and, for gemini, its settings file
/// carried to the worker's mirror of the run; the calls reach the coordinator's socket
/// through the worker's bridge, and `report_done` ends a terminal session there.
#[test]
fn agents_on_a_worker_call_the_runs_mcp_tools() {
    let Some(mut c) = Cluster::new() else { return };
    c.worker("tools", &["claude", "codex", "gemini"], 4, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        r#"version: "1.0"
name: t
agents:
  - {name: c, cli: claude, interactive: false}
  - {name: x, cli: codex, interactive: false}
  - {name: g, cli: gemini, interactive: false}
  - {name: gt, cli: gemini}
workflows:
  - name: main
    steps:
      - {name: claude, agent: c, task: "[[fake:mcp=agents]]"}
      - {name: codex, agent: x, task: "[[fake:mcp=agents]]"}
      - {name: gemini, agent: g, task: "[[fake:mcp=agents]]"}
      - name: terminal
        agent: gt
        timeoutMs: 30000
        task: '[[fake:no-exit]] [[fake:mcp=report_done {"result": "done on a worker"}]]'
"#,
    );
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    let s = summary(&o);
    let out = |name: &str| {
        support::step(&s, name)["output"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    for name in ["claude", "codex", "gemini"] {
        assert!(
            out(name).contains("mcp agents: ") && out(name).contains("#main: c, g, gt, x"),
            "{name}: {}",
            out(name)
        );
        assert!(
            placements(&c.world).contains(&(name.to_owned(), "tools".to_owned())),
            "{:?}",
            placements(&c.world)
        );
    }
    assert_eq!(out("terminal").trim(), "done on a worker", "{s}");
}

/// A run through `c` (whose server wants credentials) works, and `secret` shows
/// nowhere: not on the coordinator's output, not in the worker's log, not in the run
/// directory, not in `workers`.
fn an_authenticated_run_works_and_hides(c: &mut Cluster, secret: &str) {
    c.worker("w1", &["claude"], 2, &[]);
    c.wait_for_workers();
    c.world.write(
        "wf.yaml",
        &support::workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"[[fake:say=authed]]\"\n",
        ),
    );
    let o = c.run("wf.yaml");
    assert_eq!(o.status.code(), Some(0), "{}", c.diagnose(&o));
    assert_eq!(
        placements(&c.world),
        vec![("a".to_owned(), "w1".to_owned())]
    );
    assert!(
        support::step(&summary(&o), "a")["output"]
            .as_str()
            .unwrap_or("")
            .contains("authed")
    );
    let listed = c
        .coordinator(&["workers", "--nats", &c.url])
        .envs(c.env.iter().cloned())
        .output()
        .unwrap();
    assert!(stdout(&listed).contains("w1"), "{}", stderr(&listed));
    let mut seen = format!(
        "{}{}{}{}{}",
        stdout(&o),
        stderr(&o),
        c.workers[0].log(),
        stdout(&listed),
        stderr(&listed)
    );
    for f in ["events.jsonl", "run.json", "dispatch.jsonl", "result.json"] {
        seen.push_str(&std::fs::read_to_string(c.world.run_dir().join(f)).unwrap_or_default());
    }
    assert!(seen.contains("authed"), "{seen}");
    assert!(!seen.contains(secret), "{seen}");
}

#[test]
fn a_server_that_wants_a_password_gets_it_and_it_never_shows() {
    let Some(mut c) = Cluster::with_server(
        &["--user", "alice", "--pass", "s3cret"],
        Some("alice:s3cret"),
    ) else {
        return;
    };
    an_authenticated_run_works_and_hides(&mut c, "s3cret");
    // A wrong password is refused: a runtime failure naming the server, not the secret.
    let wrong = c.url.replace("s3cret", "wrongpw");
    let o = c
        .coordinator(&["run", "wf.yaml", "--nats", &wrong])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("***@127.0.0.1"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrongpw"), "{}", stderr(&o));
}

#[test]
fn a_server_that_wants_a_token_gets_it_and_it_never_shows() {
    let Some(mut c) = Cluster::with_server(&["--auth", "t0ken-s3cret"], Some("t0ken-s3cret"))
    else {
        return;
    };
    an_authenticated_run_works_and_hides(&mut c, "t0ken-s3cret");
    // Without the token, or with another, the server refuses: exit 4, no token shown.
    for url in [c.server.url(), c.url.replace("t0ken-s3cret", "wrong-t0ken")] {
        let o = c
            .coordinator(&["run", "wf.yaml", "--nats", &url])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert!(!stderr(&o).contains("t0ken"), "{}", stderr(&o));
    }
    let o = c
        .coordinator(&[
            "workers",
            "--nats",
            &c.url.replace("t0ken-s3cret", "wrong-t0ken"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!stderr(&o).contains("t0ken"), "{}", stderr(&o));
}

/// Without environment variable `var` (its credentials), a run through `c` is refused
/// by the server: a runtime failure.
fn refused_without(c: &Cluster, var: &str) {
    let o = c
        .coordinator(&["run", "wf.yaml"])
        .env_remove(var)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

/// The user nkey pair of the NATS documentation's examples.
const NKEY_SEED: &str = "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY";
const NKEY_PUBLIC: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";

#[test]
fn a_server_that_lists_users_by_nkey_takes_a_seed_file_and_the_seed_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, format!("{NKEY_SEED}\n")).unwrap();
    let Some(mut c) = Cluster::with_config(
        &format!("authorization {{\n  users = [ {{ nkey: \"{NKEY_PUBLIC}\" }} ]\n}}\n"),
        &[("AGENT_RELAY_NATS_NKEY", seed.to_str().unwrap())],
    ) else {
        return;
    };
    an_authenticated_run_works_and_hides(&mut c, NKEY_SEED);
    // Without the seed the server refuses; a file that holds no seed is named as such.
    refused_without(&c, "AGENT_RELAY_NATS_NKEY");
    let junk = dir.path().join("junk.nk");
    std::fs::write(&junk, "not a seed\n").unwrap();
    let o = c
        .coordinator(&["run", "wf.yaml"])
        .env("AGENT_RELAY_NATS_NKEY", &junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("nkey seed"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("not a seed"), "{}", stderr(&o));
}

/// A test operator made offline (`tests/nats-operator/make.py`): its JWT, the accounts
/// preloaded into the server's resolver, and a user's `.creds` file.
fn operator_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/nats-operator")
        .join(name)
}

#[test]
fn a_server_run_with_an_operator_takes_a_creds_file_and_the_seed_never_shows() {
    let accounts = std::fs::read_to_string(operator_fixture("accounts.conf")).unwrap();
    let creds = operator_fixture("user.creds");
    let seed = std::fs::read_to_string(&creds)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("SU"))
        .unwrap()
        .to_owned();
    let Some(mut c) = Cluster::with_config(
        &format!(
            "operator: {}\n{accounts}",
            operator_fixture("operator.jwt").display()
        ),
        &[("AGENT_RELAY_NATS_CREDS", creds.to_str().unwrap())],
    ) else {
        return;
    };
    an_authenticated_run_works_and_hides(&mut c, &seed);
    // Without the creds file the server refuses.
    refused_without(&c, "AGENT_RELAY_NATS_CREDS");
}

#[test]
fn an_unreachable_server_is_a_runtime_failure_and_credentials_never_show() {
    let w = World::new();
    w.write(
        "wf.yaml",
        &support::workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: hi\n",
        ),
    );
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://alice:s3cret@127.0.0.1:{port}");
    let o = w.run(&["run", "wf.yaml", "--nats", &url]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("***@127.0.0.1"), "{err}");
    assert!(
        !err.contains("s3cret") && !stdout(&o).contains("s3cret"),
        "{err}"
    );
    let o = w.run(&["run", "wf.yaml", "--nats", "ftp://x"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = w.run(&["worker", "--nats", &url, "--name", "w"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(!stderr(&o).contains("s3cret"));
    // A name no one could tell apart in `workers` is refused before any connection.
    for (name, why) in [
        ("", "is empty"),
        (" w", "white space"),
        ("w\x07", "control"),
    ] {
        let o = w.run(&["worker", "--nats", &url, "--name", name]);
        assert_eq!(o.status.code(), Some(3), "{name:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{name:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("taking attempts"), "{}", stderr(&o));
    }
    let o = w.run(&["worker", "--nats", &url, "--capacity", "0"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--capacity must be at least 1"));
    assert!(!stderr(&o).contains("taking attempts"), "{}", stderr(&o));
}

#[test]
fn agents_with_worktrees_of_their_own_are_refused_before_anything_is_dispatched() {
    let w = World::new();
    let steps = "    steps:\n      - name: a\n        agent: dev\n        task: hi\n";
    w.write(
        "wf.yaml",
        &support::workflow("swarm:\n  worktrees: per-agent\n", steps),
    );
    // No server needed: the refusal comes before any connection.
    let o = w.run(&["run", "wf.yaml", "--nats", "nats://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`dev`, `ops` work in a git worktree") && err.contains("worktree: false"),
        "{err}"
    );
    assert!(
        !w.path().join(".agent-relay/runs").exists(),
        "a run was started"
    );
    // One agent's own `worktree: true`, with the server named by the file.
    w.write(
        "wf.yaml",
        &support::workflow("swarm:\n  workers: nats://127.0.0.1:9\n", steps)
            .replace("    cli: codex\n", "    cli: codex\n    worktree: true\n"),
    );
    let o = w.run(&["run", "wf.yaml"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("agent `ops` works in a git worktree"),
        "{}",
        stderr(&o)
    );
}
