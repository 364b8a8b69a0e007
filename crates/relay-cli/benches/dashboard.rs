//! What the dashboard costs the coordinator: its CPU time (user + system, from
//! /proc/PID/stat) over a 50-agent run of fake one-shot agents, three ways, alternated:
//! `run` alone, `run --dashboard` with nobody watching, and `run --dashboard` with a
//! headless Chromium showing the run page (live stream open the whole time). Run with
//! `cargo bench -p relay-cli --bench dashboard` (needs chromium on PATH).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const AGENTS: usize = 50;
const ROUNDS: usize = 3;

fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

fn workflow() -> String {
    let mut y = String::from("name: bench\nswarm:\n  pattern: dag\nagents:\n");
    for i in 0..AGENTS {
        y.push_str(&format!(
            "  - {{name: a{i}, cli: codex, interactive: false}}\n"
        ));
    }
    y.push_str("workflows:\n  - name: main\n    steps:\n");
    for i in 0..AGENTS {
        y.push_str(&format!(
            "      - {{name: s{i}, agent: a{i}, task: \"[[fake:sleep=4000]] [[fake:say=done {i}]]\"}}\n"
        ));
    }
    y
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[derive(Clone, Copy, Debug)]
enum Way {
    Alone,
    Unwatched,
    Watched,
}

/// Runs the workflow once; the coordinator's CPU time in milliseconds.
fn once(dir: &Path, bin: &Path, way: Way, chromium: Option<&Path>) -> f64 {
    let mut c = Command::new(agent_relay());
    c.current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["run", "wf.yaml", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !matches!(way, Way::Alone) {
        c.arg("--dashboard");
    }
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard of this run: ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let _browser = match (way, chromium) {
        (Way::Watched, Some(chromium)) => {
            let url = rx.recv_timeout(Duration::from_secs(20)).unwrap();
            let mut b = relay_testkit::chromium::Browser::launch(chromium, 1280, 900).unwrap();
            b.open(&url).unwrap();
            b.wait_for(
                "document.querySelectorAll('#steps tr').length > 0",
                Duration::from_secs(20),
            )
            .unwrap();
            Some(b)
        }
        _ => None,
    };
    let mut last = 0;
    loop {
        if let Some(t) = cpu_ticks(pid) {
            last = t;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // /proc counts in clock ticks of 10 ms (USER_HZ is 100 on Linux).
    last as f64 * 10.0
}

fn main() {
    let dir = std::env::temp_dir().join(format!("relay-bench-dash-{}", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    relay_testkit::install_fake_clis(&bin).unwrap();
    std::fs::write(dir.join("wf.yaml"), workflow()).unwrap();
    let chromium = relay_testkit::chromium::chromium_path();
    if chromium.is_none() {
        eprintln!("no chromium on PATH: the watched runs are skipped");
    }
    let mut results: Vec<(Way, Vec<f64>)> = vec![
        (Way::Alone, vec![]),
        (Way::Unwatched, vec![]),
        (Way::Watched, vec![]),
    ];
    for _ in 0..ROUNDS {
        for (way, xs) in results.iter_mut() {
            if matches!(way, Way::Watched) && chromium.is_none() {
                continue;
            }
            xs.push(once(&dir, &bin, *way, chromium.as_deref()));
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let base = mean(&results[0].1);
    println!("coordinator CPU over a {AGENTS}-agent run (4 s agents), mean of {ROUNDS}:");
    for (way, xs) in &results {
        let m = mean(xs);
        println!(
            "  {:<10} {:>7.1} ms  ({:+.1}% vs run alone)  runs: {:?}",
            format!("{way:?}"),
            m,
            (m - base) / base * 100.0,
            xs
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
