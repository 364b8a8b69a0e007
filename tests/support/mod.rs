//! Shared set-up of the end-to-end tests: a scratch working directory, the fake agent
//! installed under every CLI name first on PATH, and the real `agent-relay` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One test's world.
pub struct World {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    /// Unique value of `RELAY_TEST_TAG`, inherited by every process the run starts.
    pub tag: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        relay_testkit::install_fake_clis(&bin).unwrap();
        let tag = format!(
            "{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        World { dir, bin, tag }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    /// `agent-relay` with the fake CLIs first on PATH, run in the scratch directory.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(agent_relay());
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.current_dir(self.path())
            .env("PATH", path)
            .env("RELAY_TEST_TAG", &self.tag)
            .env("FAKE_AGENT_LOG", self.path().join("agents.log"))
            .env("FAKE_AGENT_STATE_DIR", self.path().join("state"))
            .env("AGENT_RELAY_KILL_GRACE_MS", "300")
            // Every spec, event and outcome crosses the launcher seam as JSON, as it would
            // to a launcher on another machine.
            .env("AGENT_RELAY_LAUNCHER", "roundtrip");
        c
    }

    /// `sh -c` with the same environment, and `$AGENT_RELAY` naming the binary.
    pub fn shell(&self) -> Command {
        let relay = self.cmd();
        let mut c = Command::new("sh");
        for (k, v) in relay.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.current_dir(self.path())
            .env("AGENT_RELAY", agent_relay())
            .arg("-c");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run agent-relay")
    }

    /// `agent-relay run --json` of `yaml` (written as `wf.yaml`) with the short session
    /// timings the terminal tests use: settling 150 ms, the ready wait 4 s, the fake
    /// agents thinking 50 ms.
    pub fn run_live(&self, yaml: &str) -> Output {
        let f = self.write("wf.yaml", yaml);
        self.cmd()
            .env("AGENT_RELAY_SETTLE_MS", "150")
            .env("AGENT_RELAY_READY_TIMEOUT_MS", "4000")
            .env("FAKE_AGENT_THINK_MS", "50")
            .args(["run", f.to_str().unwrap(), "--json"])
            .output()
            .expect("run agent-relay")
    }

    /// Starts `agent-relay ARGS` in the background, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start agent-relay")
    }

    /// Lines the fake agents logged (`start STEP PID` / `end STEP PID`).
    pub fn agent_log(&self) -> String {
        self.read("agents.log")
    }

    /// Waits until no process carrying this world's tag is alive; returns the survivors.
    pub fn leftovers(&self) -> Vec<u32> {
        relay_testkit::wait_for_no_processes_with_env(
            "RELAY_TEST_TAG",
            &self.tag,
            Duration::from_secs(5),
        )
    }

    /// The single run directory under `.agent-relay/runs`.
    pub fn run_dir(&self) -> PathBuf {
        let root = self.path().join(".agent-relay/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs.pop().expect("a run directory")
    }

    /// The id of the single run (its directory's name).
    pub fn run_id(&self) -> String {
        self.run_dir()
            .file_name()
            .expect("a run directory has a name")
            .to_string_lossy()
            .into_owned()
    }

    /// Whether a run's own directory exists (not just the `runs` folder).
    pub fn has_run_dir(&self) -> bool {
        std::fs::read_dir(self.path().join(".agent-relay/runs"))
            .map(|mut r| r.next().is_some())
            .unwrap_or(false)
    }

    /// The run's events, or none while no run directory exists yet.
    pub fn events_if_any(&self) -> Vec<serde_json::Value> {
        if !self.has_run_dir() {
            return Vec::new();
        }
        std::fs::read_to_string(self.run_dir().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Event types recorded in the run's log, in order.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.run_dir().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("event line is JSON"))
            .collect()
    }
}

pub fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--json` summary of a run.
pub fn summary(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

/// The summary entry of step `name`.
pub fn step<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["steps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {s}"))
}

/// A workflow with one non-interactive agent per CLI given, and `steps` as YAML.
pub fn workflow(header: &str, steps: &str) -> String {
    format!(
        "version: \"1.0\"\nname: t\n{header}agents:\n  - name: dev\n    cli: claude\n    interactive: false\n  - name: ops\n    cli: codex\n    interactive: false\nworkflows:\n  - name: main\n{steps}"
    )
}
