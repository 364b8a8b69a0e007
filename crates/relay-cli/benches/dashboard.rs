//! What the dashboard costs the coordinator: its CPU time over a 50-agent run of fake
//! one-shot agents, three ways, alternated: `run` alone, `run --dashboard` with nobody
//! watching, and `run --dashboard` with a headless Chromium showing the run page (live
//! stream open the whole time). CPU time is the sum over the coordinator's threads of
//! the time the scheduler ran them (`/proc/PID/task/TID/schedstat`, nanoseconds, sampled
//! every 5 ms, each thread's last reading kept), so a few milliseconds show.
//! Run with `cargo bench -p relay-cli --bench dashboard` (needs chromium on PATH).
//!
//! `DASHBOARD_BENCH_BEFORE=/path/to/agent-relay` adds a fourth way: that binary (an
//! earlier build) with Chromium watching, for a before/after in one run.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const AGENTS: usize = 50;
const ROUNDS: usize = 5;

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

/// Nanoseconds each thread of `pid` has run, by thread id, and whether it is one of the
/// dashboard's.
fn thread_cpu(pid: u32, seen: &mut std::collections::HashMap<u32, (u64, bool)>) {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = ns {
            let v = seen.entry(tid).or_insert_with(|| {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                (0, comm.trim() == "dashboard")
            });
            v.0 = v.0.max(ns);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Way {
    Alone,
    Unwatched,
    Watched,
    WatchedBefore,
    /// `run` alone while Chromium shows a blank page: what sharing the machine with a
    /// browser costs, without the dashboard.
    BesideBlank,
}

/// Runs the workflow once; the coordinator's CPU time in milliseconds, all of it and its
/// dashboard threads'.
fn once(
    dir: &Path,
    bin: &Path,
    way: Way,
    chromium: Option<&Path>,
    before: Option<&Path>,
) -> (f64, f64) {
    let exe = match (way, before) {
        (Way::WatchedBefore, Some(b)) => b.to_path_buf(),
        _ => agent_relay(),
    };
    let mut c = Command::new(exe);
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
    if !matches!(way, Way::Alone | Way::BesideBlank) {
        c.arg("--dashboard");
    }
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    // Sampled from the start: threads that end early count too.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::HashMap::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                thread_cpu(pid, &mut seen);
                std::thread::sleep(Duration::from_millis(5));
            }
            let all: u64 = seen.values().map(|v| v.0).sum();
            let dash: u64 = seen.values().filter(|v| v.1).map(|v| v.0).sum();
            (all, dash)
        })
    };
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
        (Way::Watched | Way::WatchedBefore, Some(chromium)) => {
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
        (Way::BesideBlank, Some(chromium)) => {
            let mut b = relay_testkit::chromium::Browser::launch(chromium, 1280, 900).unwrap();
            b.open("about:blank").unwrap();
            Some(b)
        }
        _ => None,
    };
    // The coordinator exits a zombie first; its threads' last readings stay.
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (all, dash) = sampler.join().unwrap();
    (all as f64 / 1e6, dash as f64 / 1e6)
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
    let before = std::env::var_os("DASHBOARD_BENCH_BEFORE").map(PathBuf::from);
    let mut ways = vec![Way::Alone, Way::Unwatched, Way::BesideBlank, Way::Watched];
    if before.is_some() {
        ways.push(Way::WatchedBefore);
    }
    let mut results: Vec<(Way, Vec<(f64, f64)>)> = ways.into_iter().map(|w| (w, vec![])).collect();
    for _ in 0..ROUNDS {
        for (way, xs) in results.iter_mut() {
            if !matches!(way, Way::Alone | Way::Unwatched) && chromium.is_none() {
                continue;
            }
            xs.push(once(
                &dir,
                &bin,
                *way,
                chromium.as_deref(),
                before.as_deref(),
            ));
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let median = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let totals = |xs: &[(f64, f64)]| xs.iter().map(|x| x.0).collect::<Vec<_>>();
    let base = mean(&totals(&results[0].1));
    let base_median = median(&totals(&results[0].1));
    println!(
        "coordinator CPU over a {AGENTS}-agent run (4 s agents), {ROUNDS} rounds, ways alternated:"
    );
    println!(
        "  {:<14} {:>9} {:>9} {:>9}  {:>18}  runs (ms)",
        "way", "mean", "vs alone", "median", "dashboard threads"
    );
    for (way, xs) in &results {
        let t = totals(xs);
        let dash = mean(&xs.iter().map(|x| x.1).collect::<Vec<_>>());
        let runs: Vec<String> = t.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "  {:<14} {:>6.1} ms {:>+8.1}% {:>6.1} ms  {:>7.1} ms {:>+6.1}%  {}",
            format!("{way:?}"),
            mean(&t),
            (mean(&t) - base) / base * 100.0,
            median(&t),
            dash,
            dash / base * 100.0,
            runs.join(", ")
        );
    }
    println!("  (run alone: mean {base:.1} ms, median {base_median:.1} ms)");
    let _ = std::fs::remove_dir_all(&dir);
}
