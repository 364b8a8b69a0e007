//! Interactive agents: per-step overhead of a 3-step pipeline of TUI agents compared with
//! a bare-minimum PTY driver doing the same work, for the fake agent and for each fixture
//! agent whose screen differs from it (a bare prompt, a line-oriented agent, a slow one
//! behind spinners), and the coordinator's memory per live PTY session with 100 idle
//! sessions open.
//!
//! Run: `cargo build --release -p relay-testkit && cargo bench -p relay-cli --bench interactive`

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

/// Settle and Enter pause the bench runs with: the Enter pause is what codex and gemini
/// need (measured against the real CLIs); the settle is kept short for the fake agent.
const SETTLE_MS: u64 = 30;
const ENTER_MS: u64 = 100;

/// One step driven by hand: spawn the fake TUI in a PTY, wait for its ready cue, paste the
/// task, pause, Enter, wait for `/exit`, kill. The least any driver must do.
fn bare_step(fake: &Path) -> Duration {
    let t = Instant::now();
    let pty = portable_pty::native_pty_system();
    let pair = pty
        .openpty(portable_pty::PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = portable_pty::CommandBuilder::new(fake);
    cmd.args(["--as", "claude", "--dangerously-skip-permissions"]);
    cmd.env("FAKE_AGENT_THINK_MS", "0");
    cmd.env("FAKE_AGENT_QUERY_TIMEOUT_MS", "0");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let chunk = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    wait_for("? for shortcuts", &mut seen);
    writer
        .write_all(b"\x1b[200~step [[fake:say=done]]\x1b[201~")
        .unwrap();
    std::thread::sleep(Duration::from_millis(ENTER_MS));
    writer.write_all(b"\r").unwrap();
    seen.clear();
    wait_for("/exit", &mut seen);
    child.kill().unwrap();
    child.wait().unwrap();
    t.elapsed()
}

/// One step of a fixture agent driven by hand: spawn it in a PTY, wait for its prompt and
/// the same quiet moment agent-relay waits for, type the task (pasted when the agent
/// enabled bracketed paste, else as one line), pause, Enter, wait for `/exit`, kill.
fn bare_fixture_step(agent: relay_testkit::FixtureAgent, prompt: &str) -> Duration {
    let t = Instant::now();
    let pty = portable_pty::native_pty_system();
    let pair = pty
        .openpty(portable_pty::PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let argv = agent.argv();
    let mut cmd = portable_pty::CommandBuilder::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (k, v) in FIXTURE_ENV {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    while !seen.contains(prompt) {
        let chunk = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The quiet moment.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(SETTLE_MS)) {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let text = "step REPLY:done\\n/exit|";
    if seen.contains("\x1b[?2004h") {
        writer
            .write_all(format!("\x1b[200~{text}\x1b[201~").as_bytes())
            .unwrap();
    } else {
        writer.write_all(text.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(ENTER_MS));
    writer.write_all(b"\r").unwrap();
    seen.clear();
    // `/exit` on a line of its own, not the echo of the typed text.
    while !seen.contains("/exit\r\n") && !seen.contains("/exit\x1b[0m\r\n") {
        let chunk = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    t.elapsed()
}

/// The fixture agents' own pacing in both drivers: boot and spinner of the slow one.
const FIXTURE_ENV: [(&str, &str); 3] = [("BOOT_MS", "300"), ("SPIN_MS", "500"), ("THINK_MS", "0")];

/// Median wall time of `reps` runs of `wf` through agent-relay, with `env` and the
/// given settle time.
fn pipeline(
    dir: &Path,
    wf: &Path,
    path: &str,
    settle_ms: u64,
    enter_ms: u64,
    reps: usize,
) -> Duration {
    let runs: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let mut c = Command::new(agent_relay());
            c.args(["run", wf.to_str().unwrap(), "--quiet"])
                .current_dir(dir)
                .env("PATH", path)
                .env("FAKE_AGENT_THINK_MS", "0")
                .env("FAKE_AGENT_QUERY_TIMEOUT_MS", "0")
                .env("AGENT_RELAY_SETTLE_MS", settle_ms.to_string())
                .env("AGENT_RELAY_ENTER_DELAY_MS", enter_ms.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in FIXTURE_ENV {
                c.env(k, v);
            }
            let st = c.status().unwrap();
            assert!(st.success(), "pipeline {} failed", wf.display());
            t.elapsed()
        })
        .collect();
    median(runs)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// RSS (KiB) of a coordinator holding `n` idle interactive sessions.
fn idle_rss(dir: &Path, path: &str, n: usize) -> u64 {
    let run_dir = dir.join(format!("idle-{n}"));
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut y = String::from(
        "name: idle\nagents: [{name: a, cli: claude, constraints: {idleThresholdSecs: 0}}]\nworkflows:\n  - name: main\n    steps:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "      - {{name: s{i}, agent: a, task: \"[[fake:no-exit]]\"}}\n"
        ));
    }
    let idle = run_dir.join("idle.yaml");
    std::fs::write(&idle, y).unwrap();
    let mut child = Command::new(agent_relay())
        .args(["run", idle.to_str().unwrap(), "--quiet"])
        .current_dir(&run_dir)
        .env("PATH", path)
        .env("FAKE_AGENT_THINK_MS", "0")
        .env("FAKE_AGENT_QUERY_TIMEOUT_MS", "0")
        .env("AGENT_RELAY_SETTLE_MS", SETTLE_MS.to_string())
        .env("AGENT_RELAY_KILL_GRACE_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let runs = run_dir.join(".agent-relay/runs");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let delivered = std::fs::read_dir(&runs)
            .ok()
            .and_then(|mut rd| rd.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path().join("events.jsonl")).ok())
            .map(|t| t.matches("\"task:delivered\"").count())
            .unwrap_or(0);
        if delivered >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {delivered} of {n} sessions came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(pid);
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    rss
}

fn main() {
    let fake = relay_testkit::fake_agent_path();
    let dir = std::env::temp_dir().join(format!("relay-ibench-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    relay_testkit::install_fake_clis(&bin).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // 3-step interactive pipeline through agent-relay.
    let wf = dir.join("pipeline.yaml");
    std::fs::write(
        &wf,
        "name: b\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: main\n    steps:\n      - {name: s1, agent: a, task: \"step [[fake:say=done]]\"}\n      - {name: s2, agent: a, task: \"step [[fake:say=done]]\", dependsOn: [s1]}\n      - {name: s3, agent: a, task: \"step [[fake:say=done]]\", dependsOn: [s2]}\n",
    )
    .unwrap();
    let reps = 10;
    let relay: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new(agent_relay())
                .args(["run", wf.to_str().unwrap(), "--quiet"])
                .current_dir(&dir)
                .env("PATH", &path)
                .env("FAKE_AGENT_THINK_MS", "0")
                .env("FAKE_AGENT_QUERY_TIMEOUT_MS", "0")
                .env("AGENT_RELAY_SETTLE_MS", SETTLE_MS.to_string())
                .env("AGENT_RELAY_ENTER_DELAY_MS", ENTER_MS.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            t.elapsed()
        })
        .collect();
    let bare: Vec<Duration> = (0..reps * 3).map(|_| bare_step(&fake)).collect();
    let relay_step = median(relay) / 3;
    let bare_step = median(bare);
    println!(
        "3-step interactive pipeline ({reps} runs), per step: {}",
        ms(relay_step)
    );
    println!(
        "bare PTY driver, same agent and pauses ({} steps), per step: {}",
        reps * 3,
        ms(bare_step)
    );
    println!(
        "coordinator overhead per interactive step: {} (settle {SETTLE_MS} ms, Enter pause {ENTER_MS} ms in both)",
        ms(relay_step.saturating_sub(bare_step))
    );

    // The fixture agents, each installed as `claude`, through agent-relay and by hand.
    let fx = dir.join("fixture");
    let fx_bin = fx.join("bin");
    std::fs::create_dir_all(&fx_bin).unwrap();
    let fx_path = format!(
        "{}:{}",
        fx_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let fx_wf = fx.join("pipeline.yaml");
    std::fs::write(
        &fx_wf,
        "name: b\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: main\n    steps:\n      - {name: s1, agent: a, task: \"step REPLY:done\\\\n/exit|\"}\n      - {name: s2, agent: a, task: \"step REPLY:done\\\\n/exit|\", dependsOn: [s1]}\n      - {name: s3, agent: a, task: \"step REPLY:done\\\\n/exit|\", dependsOn: [s2]}\n",
    )
    .unwrap();
    for (agent, prompt) in [
        (relay_testkit::FixtureAgent::BarePrompt, "\u{276f} "),
        (relay_testkit::FixtureAgent::LineOriented, "> "),
        (relay_testkit::FixtureAgent::SlowSpinner, "\u{203a} "),
    ] {
        agent.install_as(&fx_bin, "claude").unwrap();
        let reps = 5;
        let whole = pipeline(&fx, &fx_wf, &fx_path, SETTLE_MS, ENTER_MS, reps);
        let defaults = relay_broker::session::SessionTiming::default();
        let (d_settle, d_enter) = (
            defaults.settle.as_millis() as u64,
            defaults.enter_delay.as_millis() as u64,
        );
        let whole_default = pipeline(&fx, &fx_wf, &fx_path, d_settle, d_enter, 3);
        let bare = median(
            (0..reps * 3)
                .map(|_| bare_fixture_step(agent, prompt))
                .collect(),
        );
        let step = whole / 3;
        println!(
            "{}: 3-step pipeline {} ({} per step; with the default settle {d_settle} ms and Enter pause {d_enter} ms: {}), bare PTY driver per step {}, overhead per step {}",
            agent.name(),
            ms(whole),
            ms(step),
            ms(whole_default),
            ms(bare),
            ms(step.saturating_sub(bare))
        );
    }

    // Idle sessions: the coordinator's memory with 1 and with 100 live PTY sessions.
    let one = idle_rss(&dir, &path, 1);
    let hundred = idle_rss(&dir, &path, 100);
    println!(
        "coordinator RSS: {:.1} MB with 1 idle session, {:.1} MB with 100: {:.0} KB per extra session",
        one as f64 / 1024.0,
        hundred as f64 / 1024.0,
        hundred.saturating_sub(one) as f64 / 99.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
