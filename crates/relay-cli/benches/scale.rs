//! How the coordinator's cost grows with the work: fan-outs of 100, 1,000 and 10,000
//! one-shot steps of a trivial agent (`/bin/echo` standing in for `claude`), eight at a
//! time, against the same commands started eight at a time by `xargs -P 8`. Per-step
//! overhead is the difference in wall time divided by the steps; coordinator CPU is the
//! difference in CPU time (user + system of everything each side waited for); peak RSS is
//! the coordinator's `VmHWM`, read from /proc while it runs.
//! Run with `cargo bench -p relay-cli --bench scale` (`SCALE_SIZES=100,1000` for some sizes,
//! `SCALE_AGENTS=100` to spread the steps over that many agents).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PARALLEL: usize = 8;

fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

/// `n` steps given round-robin to `agents` agents.
fn fanout_yaml(n: usize, agents: usize) -> String {
    let mut y = format!("name: bench\nswarm: {{maxConcurrency: {PARALLEL}}}\nagents:\n");
    for a in 0..agents {
        y.push_str(&format!(
            "  - {{name: a{a}, cli: claude, interactive: false}}\n"
        ));
    }
    y.push_str("workflows:\n  - name: main\n    steps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "      - {{name: s{i}, agent: a{}, task: step {i}}}\n",
            i % agents
        ));
    }
    y
}

/// CPU time (user + system) of every child waited for so far.
fn children_cpu() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// `VmHWM` of `pid` in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd`; its wall time, CPU time and (when `watch`) peak RSS in KiB.
fn measure(cmd: &mut Command, watch: bool) -> (Duration, Duration, u64) {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak = 0;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if watch && let Some(k) = peak_kib(pid) {
            peak = peak.max(k);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = t.elapsed();
    assert!(status.success(), "{cmd:?} failed");
    (wall, children_cpu() - cpu0, peak)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("relay-scale-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let echo = ["/bin/echo", "/usr/bin/echo"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("echo");
    let _ = std::fs::remove_file(bin.join("claude"));
    std::os::unix::fs::symlink(echo, bin.join("claude")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    println!(
        "| steps | agent-relay wall | xargs -P {PARALLEL} wall | overhead per step | coordinator CPU per step | coordinator peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    // `SCALE_SIZES=100,1000` runs only those sizes.
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    // `SCALE_AGENTS=100` spreads the steps over that many agents (default 1).
    let agents: usize = std::env::var("SCALE_AGENTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|a| *a > 0)
        .unwrap_or(1);
    println!("{agents} agent(s)");
    for n in sizes {
        let reps = if n <= 100 {
            5
        } else if n <= 1_000 {
            3
        } else {
            1
        };
        let wf = dir.join(format!("fanout-{n}.yaml"));
        std::fs::write(&wf, fanout_yaml(n, agents)).unwrap();
        let list = dir.join(format!("tasks-{n}.txt"));
        std::fs::write(
            &list,
            (0..n).map(|i| format!("step {i}\n")).collect::<String>(),
        )
        .unwrap();
        let mut relay = Vec::new();
        let mut relay_cpu = Vec::new();
        let mut peak = 0;
        let mut base = Vec::new();
        let mut base_cpu = Vec::new();
        for _ in 0..reps {
            let _ = std::fs::remove_dir_all(dir.join(".agent-relay"));
            let (w, c, p) = measure(
                Command::new(agent_relay())
                    .args(["run", wf.to_str().unwrap(), "--quiet"])
                    .current_dir(&dir)
                    .env("PATH", &path),
                true,
            );
            relay.push(w);
            relay_cpu.push(c);
            peak = peak.max(p);
            let (w, c, _) = measure(
                Command::new("sh")
                    .args([
                        "-c",
                        &format!(
                            "xargs -P {PARALLEL} -I{{}} claude --dangerously-skip-permissions -p {{}} < {} > /dev/null",
                            list.display()
                        ),
                    ])
                    .current_dir(&dir)
                    .env("PATH", &path),
                false,
            );
            base.push(w);
            base_cpu.push(c);
        }
        let (r, b) = (median(relay), median(base));
        let (rc, bc) = (median(relay_cpu), median(base_cpu));
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
        println!(
            "| {n} | {:.3} s | {:.3} s | {:.2} ms | {:.2} ms | {:.1} MB |",
            r.as_secs_f64(),
            b.as_secs_f64(),
            per(r.saturating_sub(b)),
            per(rc.saturating_sub(bc)),
            peak as f64 / 1024.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
