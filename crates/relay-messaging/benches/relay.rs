//! Agent messaging throughput and latency: `cargo bench -p relay-messaging --bench relay`.
//!
//! In process: one sender task and one reader task on the router, with and without the
//! `messages.jsonl` writer. Through the socket: the same over the run's unix socket with
//! the blocking client `agent-relay send` / `inbox` use. Throughput counts messages from
//! the first send to the last one read; latency is one message at a time, from just
//! before `send` to the moment the waiting reader has it. Reading a request line: what
//! the server reads each `send` and `inbox` line with, against the derived form.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_messaging::client::Client;
use relay_messaging::persist::{MESSAGES_FILE, Persist};
use relay_messaging::protocol::{Authed, Reply, Request};
use relay_messaging::{AgentInfo, AgentState, Broker, InProcess, Router, RouterConfig, Target};

/// A client of the socket at `sock`, with the run's owner token (kept beside it).
fn connect(sock: &Path) -> Client {
    Client::connect(sock)
        .unwrap()
        .with_token(relay_messaging::access::client_token(sock.parent()))
}

fn agent(name: &str) -> AgentInfo {
    AgentInfo {
        name: name.into(),
        role: None,
        interactive: false,
        channels: vec![],
        state: AgentState::Running,
    }
}

fn router(log: Option<&Path>) -> Router {
    let persist = match log {
        Some(p) => Persist::open(p).unwrap(),
        None => Persist::none(),
    };
    let r = Router::new(
        Arc::new(InProcess::new()),
        persist,
        1,
        RouterConfig::default(),
    );
    r.register(agent("a"));
    r.register(agent("b"));
    r
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn report(name: &str, n: usize, elapsed: Duration, lat: &mut [Duration]) {
    lat.sort();
    println!(
        "{name:34} {:>10.0} msgs/s   p50 {:>9}   p99 {:>9}   ({n} msgs, {} latency samples)",
        n as f64 / elapsed.as_secs_f64(),
        us(pct(lat, 0.50)),
        us(pct(lat, 0.99)),
        lat.len()
    );
}

async fn in_process_throughput(r: &Router, n: usize) -> Duration {
    let reader = {
        let r = r.clone();
        tokio::spawn(async move {
            let mut got = 0;
            while got < n {
                let batch = r
                    .take("b", 1000, Some(Duration::from_secs(5)))
                    .await
                    .unwrap();
                got += batch.len();
                for d in batch {
                    d.read();
                }
            }
        })
    };
    let target = Target::Agent("b".into());
    let started = Instant::now();
    for i in 0..n {
        r.send("a", &target, &format!("message {i}")).await.unwrap();
    }
    reader.await.unwrap();
    started.elapsed()
}

async fn in_process_latency(r: &Router, n: usize) -> Vec<Duration> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = {
        let r = r.clone();
        tokio::spawn(async move {
            for _ in 0..n {
                let d = r.next("b").await.unwrap();
                let _ = tx.send(Instant::now());
                d.read();
            }
        })
    };
    let target = Target::Agent("b".into());
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        r.send("a", &target, &format!("ping {i}")).await.unwrap();
        let got = rx.recv().await.unwrap();
        lat.push(got.duration_since(t0));
    }
    reader.await.unwrap();
    lat
}

fn send(c: &mut Client, i: usize) {
    let req = Request::Send {
        from: "a".into(),
        to: "b".into(),
        text: format!("message {i}"),
    };
    assert!(matches!(c.request(&req).unwrap(), Reply::Sent { .. }));
}

fn inbox(c: &mut Client) -> usize {
    let req = Request::Inbox {
        agent: "b".into(),
        wait_ms: Some(5000),
        max: None,
    };
    match c.request(&req).unwrap() {
        Reply::Messages { messages } => messages.len(),
        other => panic!("{other:?}"),
    }
}

fn socket_throughput(sock: &Path, n: usize) -> Duration {
    let reader = {
        let s = sock.to_path_buf();
        std::thread::spawn(move || {
            let mut c = connect(&s);
            let mut got = 0;
            while got < n {
                got += inbox(&mut c);
            }
        })
    };
    let mut c = connect(sock);
    let started = Instant::now();
    for i in 0..n {
        send(&mut c, i);
    }
    reader.join().unwrap();
    started.elapsed()
}

fn socket_latency(sock: &Path, n: usize) -> Vec<Duration> {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let s = sock.to_path_buf();
        std::thread::spawn(move || {
            let mut c = connect(&s);
            let mut got = 0;
            while got < n {
                let k = inbox(&mut c);
                let at = Instant::now();
                for _ in 0..k {
                    tx.send(at).unwrap();
                }
                got += k;
            }
        })
    };
    let mut c = connect(sock);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        send(&mut c, i);
        lat.push(rx.recv().unwrap().duration_since(t0));
    }
    reader.join().unwrap();
    lat
}

/// Nanoseconds per read of `line`: the derived `Authed`, then [`Authed::from_line`].
fn parse(line: &[u8]) -> (f64, f64) {
    const N: u32 = 200_000;
    let time = |f: &dyn Fn(&[u8]) -> Authed| {
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(f(std::hint::black_box(line)));
        }
        t.elapsed().as_secs_f64() * 1e9 / f64::from(N)
    };
    let derived = time(&|l| serde_json::from_slice::<Authed>(l).unwrap());
    let fast = time(&|l| Authed::from_line(l).unwrap());
    (derived, fast)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 200_000;
    const LAT: usize = 20_000;
    const SOCK_N: usize = 50_000;
    const SOCK_LAT: usize = 5_000;
    println!(
        "agent messaging ({} cores, {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    rt.block_on(async {
        let r = router(None);
        let t = in_process_throughput(&r, N).await;
        let mut lat = in_process_latency(&r, LAT).await;
        report("in process, no log", N, t, &mut lat);

        let r = router(Some(&dir.path().join(MESSAGES_FILE)));
        let t = in_process_throughput(&r, N).await;
        // The writer thread trails the router; how far, when the last message is read.
        let read_at = Instant::now();
        r.sync().await;
        let behind = read_at.elapsed();
        let mut lat = in_process_latency(&r, LAT).await;
        report("in process, messages.jsonl", N, t, &mut lat);
        println!(
            "{:34} every record on disk {:.1} ms after the last read",
            "",
            behind.as_secs_f64() * 1e3
        );
    });
    let sock_dir = tempfile::tempdir().unwrap();
    let broker = rt.block_on(async {
        let b = Broker::start(sock_dir.path(), "bench", RouterConfig::default())
            .await
            .unwrap();
        b.router().register(agent("a"));
        b.router().register(agent("b"));
        b
    });
    let sock = broker.socket().to_path_buf();
    let t = socket_throughput(&sock, SOCK_N);
    let mut lat = socket_latency(&sock, SOCK_LAT);
    report("unix socket, messages.jsonl", SOCK_N, t, &mut lat);
    rt.block_on(broker.shutdown("the benchmark ended"));
    // As long as the run's tokens.
    let token = "0123456789abcdef".repeat(2);
    for (what, line) in [
        (
            "send",
            format!(
                r#"{{"op":"send","from":"sender-3","to":"reader","text":"message 12345 from sender-3","token":"{token}"}}"#
            ),
        ),
        (
            "inbox",
            format!(
                r#"{{"op":"inbox","agent":"reader","waitMs":5000,"max":512,"token":"{token}"}}"#
            ),
        ),
        (
            "state-set, read the derived way",
            format!(
                r#"{{"op":"state-set","key":"progress/sender-3","value":"step 12 of 40, tests passing","token":"{token}"}}"#
            ),
        ),
    ] {
        let (derived, fast) = parse(line.as_bytes());
        println!(
            "reading a request line ({what}, {} bytes): derived {derived:.0} ns, from_line {fast:.0} ns",
            line.len()
        );
    }
}
