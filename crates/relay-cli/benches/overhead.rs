//! Coordinator overhead, measured against the real binary:
//! start-up time of `agent-relay --version`; per-step overhead of a 20-step pipeline of a
//! trivial agent compared with spawning that agent 20 times from a shell loop; and the
//! coordinator's peak RSS. Run with `cargo bench -p relay-cli --bench overhead`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

fn stats(mut xs: Vec<Duration>) -> (Duration, Duration, Duration) {
    xs.sort();
    let median = xs[xs.len() / 2];
    let p90 = xs[xs.len() * 9 / 10];
    let mean = xs.iter().sum::<Duration>() / xs.len() as u32;
    (median, mean, p90)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn");
    let d = t.elapsed();
    assert!(st.success(), "{cmd:?} failed");
    d
}

fn pipeline_yaml(n: usize) -> String {
    let mut y = String::from(
        "name: bench\nagents:\n  - name: a\n    cli: claude\n    interactive: false\nworkflows:\n  - name: main\n    steps:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "      - name: s{i}\n        agent: a\n        task: step {i}\n"
        ));
        if i > 0 {
            y.push_str(&format!("        dependsOn: [s{}]\n", i - 1));
        }
    }
    y
}

fn main() {
    // `cargo bench` passes flags such as `--bench`; this harness takes none.
    let dir = std::env::temp_dir().join(format!("relay-bench-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // The trivial agent: /bin/echo standing in for `claude`, on both sides of the comparison.
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

    let runs = 200;
    let version: Vec<Duration> = (0..runs)
        .map(|_| time(Command::new(agent_relay()).arg("--version")))
        .collect();
    let (v_med, v_mean, v_p90) = stats(version);

    let n = 20;
    let wf = dir.join("pipeline.yaml");
    std::fs::write(&wf, pipeline_yaml(n)).unwrap();
    let reps = 30;
    let relay: Vec<Duration> = (0..reps)
        .map(|_| {
            time(
                Command::new(agent_relay())
                    .args(["run", wf.to_str().unwrap(), "--quiet"])
                    .current_dir(&dir)
                    .env("PATH", &path),
            )
        })
        .collect();
    let shell_loop = format!(
        "for i in $(seq 1 {n}); do claude --dangerously-skip-permissions -p \"step $i\" > /dev/null; done"
    );
    let shell: Vec<Duration> = (0..reps)
        .map(|_| {
            time(
                Command::new("sh")
                    .args(["-c", &shell_loop])
                    .current_dir(&dir)
                    .env("PATH", &path),
            )
        })
        .collect();
    let (r_med, _, _) = stats(relay);
    let (s_med, _, _) = stats(shell);
    let per_step = r_med.saturating_sub(s_med) / n as u32;

    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    // Linux reports ru_maxrss in KiB: the largest of all waited-for descendants, which is
    // the coordinator (the agents are /bin/echo).
    let peak_kib = usage.max_rss();

    println!(
        "agent-relay --version ({runs} runs): median {}, mean {}, p90 {}",
        ms(v_med),
        ms(v_mean),
        ms(v_p90)
    );
    println!(
        "{n}-step pipeline of /bin/echo via agent-relay ({reps} runs): median {}",
        ms(r_med)
    );
    println!(
        "same agent {n} times from a shell loop ({reps} runs): median {}",
        ms(s_med)
    );
    println!("per-step overhead: {}", ms(per_step));
    println!("coordinator peak RSS: {:.1} MB", peak_kib as f64 / 1024.0);
    let _ = std::fs::remove_dir_all(&dir);
}
