//! Workers over NATS against the local path, in one run, on a real nats-server on
//! loopback: dispatch latency (attempt offered → agent started on a worker, as the
//! coordinator learns it), per-step cost of a trivial remote step against the same step
//! run here, messages agent to agent across two workers (their socket bridges, the
//! coordinator's socket and router, the JetStream mailboxes) against the same traffic on
//! one machine's socket, the JetStream mailbox on its own, and coordinator and worker
//! RSS with 100 attempts running. Run with `cargo bench -p relay-cli --bench nats`
//! (needs `nats-server` and a release `fake-agent`: `cargo build --release -p relay-testkit`;
//! `BENCH_QUICK=1` for smaller sizes, `BENCH_ONLY=dispatch|messages|memory` for one part;
//! `BENCH_ONLY=remote` for the batched messages across two workers alone,
//! `BENCH_CASES=16x4,16x16` for some of its cases (connections × sends in flight),
//! `BENCH_MESSAGES=400000` for more messages per case than 40,000, and
//! `BENCH_DIRECT=1` to run those cases against the coordinator's socket itself too, with
//! the same JetStream mailboxes: the cost of the mailboxes without the workers' hops).
//! In the message cases the coordinator and each worker run on a thread and
//! single-threaded runtime of their own, as `agent-relay run` and `agent-relay worker`
//! do; the senders and the reader (the agents) share the bench's runtime. Each case
//! prints the latency from a send to its reader and from a send to its confirmation.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_broker::process::ProcessSpec;
use relay_broker::{Launcher, LocalLauncher};
use relay_messaging::protocol::{Authed, Reply, Request};
use relay_messaging::{AgentInfo, AgentState, Broker, RouterConfig, Target};
use relay_nats::async_nats;
use relay_nats::transport::NatsTransport;
use relay_nats::{RunDispatch, Timing};
use relay_testkit::nats::NatsServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

fn agent_relay() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-relay"))
}

fn pct(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A size `field` of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn worker(
    url: &str,
    dir: &Path,
    name: &str,
    path: &str,
    capacity: u32,
    log: Option<&Path>,
) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let mut c = Command::new(agent_relay());
    if let Some(l) = log {
        c.env("FAKE_AGENT_LOG", l);
    }
    Proc(
        c.args(["worker", "--nats", url, "--name", name])
            .args(["--capacity", &capacity.to_string()])
            .current_dir(dir)
            .env("PATH", path)
            .env("AGENT_RELAY_KILL_GRACE_MS", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_workers(client: &async_nats::Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay_nats::status::list(client, Duration::from_millis(200))
        .await
        .len()
        < n
    {
        assert!(Instant::now() < deadline, "workers did not come up");
    }
}

fn trivial(root: &Path, run_dir: &Path, program: &str, agent: bool, i: usize) -> ProcessSpec {
    let mut env = vec![
        ("AGENT_RELAY_RUN_ID".to_string(), "bench-run".to_string()),
        (
            "AGENT_RELAY_RUN_DIR".to_string(),
            run_dir.display().to_string(),
        ),
        ("AGENT_RELAY_STEP".to_string(), format!("s{i}")),
    ];
    if agent {
        env.push(("AGENT_RELAY_NAME".to_string(), "a".to_string()));
    }
    ProcessSpec {
        program: program.into(),
        args: Vec::new(),
        cwd: root.to_path_buf(),
        env,
        timeout: None,
        stderr_path: None,
        kill_grace: Duration::from_millis(300),
        stdin: None,
        sandbox: None,
        usage: None,
        max_tokens: None,
    }
}

async fn dispatch_and_overhead(url: &str, dir: &Path, n: usize) {
    // The trivial agent is /bin/true under the name `claude`, on the worker's PATH.
    let wbin = dir.join("w-bin");
    std::fs::create_dir_all(&wbin).unwrap();
    let _ = std::os::unix::fs::symlink("/bin/true", wbin.join("claude"));
    let path = format!(
        "{}:{}",
        wbin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _w = worker(
        url,
        &dir.join("w-dispatch"),
        "bench-dispatch",
        &path,
        4,
        None,
    );
    let root = dir.join("coord");
    let run_dir = root.join(".agent-relay/runs/bench-run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let launcher = RunDispatch {
        url: relay_nats::NatsUrl::parse(url).unwrap(),
        placement: BTreeMap::new(),
        commands_on_workers: false,
        timing: Timing::default(),
    }
    .connect(root.clone())
    .await
    .unwrap();
    wait_workers(&launcher.client(), 1).await;
    let (mut started, mut remote, mut local) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n + 5 {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t0 = Instant::now();
        let spec = trivial(&root, &run_dir, "claude", true, i);
        let run = launcher.run_process(spec, CancellationToken::new(), tx);
        tokio::pin!(run);
        let mut spawned_at = None;
        let out = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(_) = rx.recv() => { spawned_at.get_or_insert_with(Instant::now); }
            }
        };
        let done = t0.elapsed();
        assert!(out.is_ok(), "{out:?}");
        let spawned = spawned_at.map_or(done, |s| s - t0);
        let t1 = Instant::now();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        LocalLauncher::default()
            .run_process(
                trivial(&root, &run_dir, "true", false, i),
                CancellationToken::new(),
                tx,
            )
            .await
            .unwrap();
        let here = t1.elapsed();
        if i >= 5 {
            // The first few warm the queue's consumer and the worker's puller.
            started.push(spawned);
            remote.push(done);
            local.push(here);
        }
    }
    println!("## dispatch ({n} trivial one-shot steps, one after another, one worker)");
    println!(
        "dispatch latency (offered -> agent started on the worker): p50 {}  p99 {}",
        ms(pct(&mut started, 0.5)),
        ms(pct(&mut started, 0.99))
    );
    let (rp50, lp50) = (pct(&mut remote, 0.5), pct(&mut local, 0.5));
    println!(
        "per step, remote: p50 {}  p99 {}   local: p50 {}  p99 {}   overhead of remote: {} per step (p50)",
        ms(rp50),
        ms(pct(&mut remote, 0.99)),
        ms(lp50),
        ms(pct(&mut local, 0.99)),
        ms(rp50.saturating_sub(lp50))
    );
}

/// Agents `a` (sending) and `b` (reading) of a broker: `senders` connections to
/// `send_sock` send `n` messages in all, each with up to `window` sends written before
/// their replies are read (1: one at a time); one reader takes them from `read_sock`
/// with `inbox`. Returns messages per second and the latency of each.
async fn socket_traffic(
    tokens: &Tokens,
    send_sock: &Path,
    read_sock: &Path,
    n: usize,
    senders: usize,
    window: usize,
) -> Traffic {
    let (tok_a, tok_b) = (tokens.a.clone(), tokens.b.clone());
    let epoch = Instant::now();
    let t0 = Instant::now();
    let per = n / senders;
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let sock = send_sock.to_path_buf();
        let tok = tok_a.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            let (mut written, mut answered) = (0, 0);
            let mut asked = std::collections::VecDeque::with_capacity(window);
            let mut confirmed = Vec::with_capacity(per);
            while answered < per {
                while written < per && written - answered < window {
                    let text = epoch.elapsed().as_nanos().to_string();
                    let req = request_line(send("a", "b", text), &tok);
                    asked.push_back(Instant::now());
                    w.write_all(&req).await.unwrap();
                    written += 1;
                }
                line.clear();
                r.read_line(&mut line).await.unwrap();
                assert!(line.contains("\"sent\""), "{line}");
                confirmed.push(asked.pop_front().unwrap().elapsed());
                answered += 1;
            }
            confirmed
        }));
    }
    let s = tokio::net::UnixStream::connect(read_sock).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut lat = Vec::with_capacity(per * senders);
    let mut line = String::new();
    let req = request_line(inbox("b", 2000, 1000), &tok_b);
    while lat.len() < per * senders {
        w.write_all(&req).await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let now = epoch.elapsed().as_nanos();
        for m in messages(&line) {
            let sent: u128 = m.text.parse().unwrap_or(0);
            lat.push(Duration::from_nanos((now.saturating_sub(sent)) as u64));
        }
    }
    let mut confirmed = Vec::with_capacity(per * senders);
    for t in tasks {
        confirmed.extend(t.await.unwrap());
    }
    let rate = lat.len() as f64 / t0.elapsed().as_secs_f64();
    Traffic {
        rate,
        lat,
        confirmed,
    }
}

/// A request line as our clients write it (`agent-relay send`, the MCP server: see
/// `relay_messaging::client`), so the coordinator reads it as it reads theirs.
fn request_line(request: Request, token: &str) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Authed {
        request,
        token: Some(token.to_owned()),
    })
    .unwrap();
    line.push(b'\n');
    line
}

fn send(from: &str, to: &str, text: String) -> Request {
    Request::Send {
        from: from.into(),
        to: to.into(),
        text,
    }
}

fn inbox(agent: &str, wait_ms: u64, max: usize) -> Request {
    Request::Inbox {
        agent: agent.into(),
        wait_ms: Some(wait_ms),
        max: Some(max),
    }
}

/// The messages of an `inbox` reply line, read as our clients read it.
fn messages(line: &str) -> Vec<relay_messaging::Envelope> {
    match serde_json::from_str(line).unwrap() {
        Reply::Messages { messages } => messages,
        other => panic!("not messages: {other:?}"),
    }
}

/// One message at a time from `a` (on `send_sock`) to `b` (on `read_sock`, already
/// waiting with `inbox`): the latency of each, nothing queued behind it.
async fn one_at_a_time(
    tokens: &Tokens,
    send_sock: &Path,
    read_sock: &Path,
    k: usize,
) -> Vec<Duration> {
    let (tok_a, tok_b) = (tokens.a.clone(), tokens.b.clone());
    let (took_tx, mut took) = tokio::sync::mpsc::unbounded_channel::<()>();
    let reader = {
        let sock = read_sock.to_path_buf();
        tokio::spawn(async move {
            let s = tokio::net::UnixStream::connect(&sock).await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut line = String::new();
            let mut got = Vec::with_capacity(k);
            let req = request_line(inbox("b", 5000, 1), &tok_b);
            while got.len() < k {
                w.write_all(&req).await.unwrap();
                line.clear();
                r.read_line(&mut line).await.unwrap();
                for _ in messages(&line) {
                    got.push(Instant::now());
                    let _ = took_tx.send(());
                }
            }
            got
        })
    };
    // Let the reader's first `inbox` be waiting before the first send.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = tokio::net::UnixStream::connect(send_sock).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    let mut sent = Vec::with_capacity(k);
    for _ in 0..k {
        sent.push(Instant::now());
        w.write_all(&request_line(send("a", "b", "ping".into()), &tok_a))
            .await
            .unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        // The next one only once this one has been taken.
        took.recv().await.unwrap();
    }
    let got = reader.await.unwrap();
    sent.iter()
        .zip(&got)
        .map(|(s, g)| g.saturating_duration_since(*s))
        .collect()
}

/// What [`socket_traffic`] measured: messages per second, each message's latency from
/// its send to its reader, and each send's from its request to its confirmation.
struct Traffic {
    rate: f64,
    lat: Vec<Duration>,
    confirmed: Vec<Duration>,
}

impl Traffic {
    fn report(mut self, what: &str) {
        println!(
            "{what}: {:.0} msg/s  latency p50 {}  p99 {}  (sent confirmed p50 {}  p99 {})",
            self.rate,
            ms(pct(&mut self.lat, 0.5)),
            ms(pct(&mut self.lat, 0.99)),
            ms(pct(&mut self.confirmed, 0.5)),
            ms(pct(&mut self.confirmed, 0.99))
        );
    }
}

/// The bench's nats-server, for the CPU it uses.
static SERVER_PID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// Time on a CPU so far, in nanoseconds, of each thread of this process (by name) and
/// of the whole of process `server` (as `nats-server`).
fn cpu_by_part(server: Option<u32>) -> BTreeMap<String, u64> {
    fn ran(task: &Path) -> u64 {
        std::fs::read_to_string(task.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
    let mut parts = BTreeMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        *parts.entry(name.trim().to_owned()).or_insert(0) += ran(&t.path());
    }
    if let Some(pid) = server {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten();
        let sum = tasks.flatten().map(|t| ran(&t.path())).sum();
        parts.insert("nats-server".into(), sum);
    }
    parts
}

/// CPU per message of each part between two [`cpu_by_part`] readings, `n` messages apart.
fn cpu_report(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, n: usize) -> String {
    let mut parts: Vec<String> = after
        .iter()
        .filter_map(|(name, t)| {
            let used = t.saturating_sub(before.get(name).copied().unwrap_or(0));
            let per = used as f64 / 1000.0 / n.max(1) as f64;
            (per >= 0.05).then(|| format!("{name} {per:.1}"))
        })
        .collect();
    let total: u64 = after
        .iter()
        .map(|(name, t)| t.saturating_sub(before.get(name).copied().unwrap_or(0)))
        .sum();
    parts.push(format!(
        "total {:.1}",
        total as f64 / 1000.0 / n.max(1) as f64
    ));
    format!("CPU µs per message: {}", parts.join(", "))
}

/// The agents' tokens of a coordinator's run.
struct Tokens {
    a: String,
    b: String,
}

/// A part of the system on a thread with a single-threaded runtime of its own, as the
/// process it stands for has (`agent-relay run` and `agent-relay worker` run on one
/// thread): stopped and joined when dropped.
struct Apart {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Apart {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `part` on a thread of its own; it hands back what the bench needs of it and
/// then waits until it is told to stop.
fn apart<T, F, Fut>(name: &str, part: F) -> (Apart, T)
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>, tokio::sync::oneshot::Receiver<()>) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(part(tx, stopped));
        })
        .unwrap();
    let handed = rx.recv().unwrap();
    (
        Apart {
            stop: Some(stop),
            thread: Some(thread),
        },
        handed,
    )
}

/// A coordinator's broker for run `run` (its mailboxes on JetStream at `url`, at most
/// `batch` envelopes per stream message, with its end of the workers' pipes; else in
/// process): its agents' tokens and its socket.
fn coordinator(url: Option<&str>, dir: &Path, run: &str, batch: usize) -> (Apart, Tokens, PathBuf) {
    let (url, dir, run) = (url.map(str::to_owned), dir.to_path_buf(), run.to_owned());
    let (part, (tokens, sock)) = apart("coordinator", move |tx, stopped| async move {
        let client = match &url {
            Some(u) => Some(async_nats::connect(u.as_str()).await.unwrap()),
            None => None,
        };
        let transport = client.as_ref().map(|c| {
            Arc::new(NatsTransport::with_batch(
                c.clone(),
                &run,
                7,
                Duration::from_secs(30),
                batch,
            )) as Arc<dyn relay_messaging::Transport>
        });
        let b = broker(&dir, &run, transport).await;
        if let Some(c) = client {
            relay_nats::dispatch::relay_socket(
                c,
                &run,
                b.socket().to_path_buf(),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        }
        let tokens = Tokens {
            a: b.access().agent_token("a").unwrap(),
            b: b.access().agent_token("b").unwrap(),
        };
        tx.send((tokens, b.socket().to_path_buf())).unwrap();
        let _ = stopped.await;
        b.shutdown("done").await;
    });
    (part, tokens, sock)
}

/// A worker's socket bridge for run `run` at `path`.
fn worker_bridge(name: &str, url: &str, run: &str, path: PathBuf) -> (Apart, PathBuf) {
    let (url, run) = (url.to_owned(), run.to_owned());
    apart(name, move |tx, stopped| async move {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let bridge = relay_nats::bridge::Bridge::start(client, &run, path).unwrap();
        tx.send(bridge.path().to_path_buf()).unwrap();
        let _ = stopped.await;
        drop(bridge);
    })
}

async fn broker(
    dir: &Path,
    run: &str,
    transport: Option<Arc<dyn relay_messaging::Transport>>,
) -> Broker {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = RouterConfig {
        max_waiting: 1_000_000,
        ..RouterConfig::default()
    };
    let b = match transport {
        Some(t) => Broker::start_with_transport(dir, run, cfg, t)
            .await
            .unwrap(),
        None => Broker::start(dir, run, cfg).await.unwrap(),
    };
    for a in ["a", "b"] {
        b.router().register(AgentInfo {
            name: a.into(),
            role: None,
            interactive: false,
            channels: Vec::new(),
            state: AgentState::Running,
        });
    }
    b
}

async fn messaging(url: &str, dir: &Path, n: usize) {
    println!("## messages agent to agent ({n} messages, 16 sending connections, one reader)");
    // Local: both agents on the coordinator's machine, its socket, in-process mailboxes.
    let (local, tokens, sock) = coordinator(None, &dir.join("m-local"), "m-local", 1);
    socket_traffic(&tokens, &sock, &sock, n, 16, 1)
        .await
        .report("local socket, in-process mailboxes");
    socket_traffic(&tokens, &sock, &sock, n, 16, WINDOW)
        .await
        .report(&format!(
            "local socket, in-process mailboxes, {WINDOW} sends in flight per connection"
        ));
    let mut one = one_at_a_time(&tokens, &sock, &sock, n / 20).await;
    println!(
        "local socket, one message at a time ({}): latency p50 {}  p99 {}",
        n / 20,
        ms(pct(&mut one, 0.5)),
        ms(pct(&mut one, 0.99))
    );
    drop(local);
    // Across two workers: a's worker bridge -> NATS -> the coordinator's socket and
    // router -> JetStream mailbox -> b's worker bridge.
    for batch in [1, relay_nats::transport::MAX_BATCH] {
        remote_traffic(url, dir, n, batch).await;
    }
    let coord = async_nats::connect(url).await.unwrap();

    // The JetStream mailbox on its own: the router sends, another task takes.
    for (name, run, t) in [
        ("in-process", "m-raw-0", None),
        (
            "JetStream (one envelope per stream message)",
            "m-raw-1",
            Some(Arc::new(NatsTransport::with_batch(
                coord.clone(),
                "m-raw-1",
                8,
                Duration::from_secs(30),
                1,
            )) as Arc<dyn relay_messaging::Transport>),
        ),
        (
            "JetStream (batched)",
            "m-raw-b",
            Some(Arc::new(NatsTransport::new(
                coord.clone(),
                "m-raw-b",
                9,
                Duration::from_secs(30),
            )) as Arc<dyn relay_messaging::Transport>),
        ),
    ] {
        let b = broker(&dir.join(run), run, t).await;
        let r = b.router().clone();
        let epoch = Instant::now();
        let t0 = Instant::now();
        let senders: Vec<_> = (0..16)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move {
                    for _ in 0..n / 16 {
                        let text = epoch.elapsed().as_nanos().to_string();
                        r.send("a", &Target::Agent("b".into()), &text)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        let n = n / 16 * 16;
        let mut lat = Vec::with_capacity(n);
        while lat.len() < n {
            for d in r
                .take("b", 1000, Some(Duration::from_secs(2)))
                .await
                .unwrap()
            {
                let sent: u128 = d.envelope().text.parse().unwrap_or(0);
                lat.push(Duration::from_nanos(
                    (epoch.elapsed().as_nanos().saturating_sub(sent)) as u64,
                ));
                d.read();
            }
        }
        for s in senders {
            s.await.unwrap();
        }
        println!(
            "router and {name} mailbox alone (16 sending tasks, send -> take): {:.0} msg/s  latency p50 {}  p99 {}",
            n as f64 / t0.elapsed().as_secs_f64(),
            ms(pct(&mut lat, 0.5)),
            ms(pct(&mut lat, 0.99))
        );
        b.shutdown("done").await;
    }
}

/// Sends in flight per connection for the pipelined cases.
const WINDOW: usize = 64;

/// Across two workers: a's worker bridge -> NATS -> the coordinator's socket and router
/// -> JetStream mailbox (at most `batch` envelopes per stream message) -> b's worker
/// bridge. The coordinator and each worker run on a thread and runtime of their own.
async fn remote_traffic(url: &str, dir: &Path, n: usize, batch: usize) {
    let run = format!("m-remote-{batch}");
    let (coord, tokens, sock) = coordinator(Some(url), &dir.join(&run), &run, batch);
    let (w1, p1) = worker_bridge("worker-1", url, &run, dir.join(format!("w1-{batch}.sock")));
    let (w2, p2) = worker_bridge("worker-2", url, &run, dir.join(format!("w2-{batch}.sock")));
    let per = if batch == 1 {
        "one envelope per stream message"
    } else {
        "envelopes batched per stream message"
    };
    let chosen = chosen_cases();
    let cases: &[(usize, usize)] = if let Some(c) = &chosen {
        c
    } else if batch == 1 {
        &[(16, 1), (64, 1), (16, WINDOW)]
    } else {
        &[
            (16, 1),
            (64, 1),
            (16, 4),
            (16, 16),
            (16, WINDOW),
            (64, WINDOW),
        ]
    };
    if std::env::var_os("BENCH_DIRECT").is_some() {
        for &(conns, window) in cases {
            socket_traffic(&tokens, &sock, &sock, n, conns, window)
                .await
                .report(&format!("the run's socket directly, JetStream mailboxes: {conns} sending connections, {window} in flight each"));
        }
    }
    for &(conns, window) in cases {
        let before = cpu_by_part(SERVER_PID.get().copied().flatten());
        socket_traffic(&tokens, &p1, &p2, n, conns, window)
            .await
            .report(&format!(
                "two workers over NATS, {per}: {conns} sending connections, {window} in flight each"
            ));
        let after = cpu_by_part(SERVER_PID.get().copied().flatten());
        println!("  {}", cpu_report(&before, &after, n));
    }
    let mut one = one_at_a_time(&tokens, &p1, &p2, n / 20).await;
    println!(
        "two workers over NATS, {per}: one message at a time ({}): latency p50 {}  p99 {}",
        n / 20,
        ms(pct(&mut one, 0.5)),
        ms(pct(&mut one, 0.99))
    );
    drop((w1, w2, coord));
}

/// The cases named by `BENCH_CASES` (`16x4,16x16`: connections × sends in flight), if set.
fn chosen_cases() -> Option<Vec<(usize, usize)>> {
    let v = std::env::var("BENCH_CASES").ok()?;
    Some(
        v.split(',')
            .filter_map(|c| {
                let (a, b) = c.trim().split_once('x')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect(),
    )
}

fn wide_workflow(n: usize) -> String {
    let mut y = String::from(
        "name: wide\nswarm:\n  pattern: dag\n  maxConcurrency: 100\nagents:\n  - name: a\n    cli: claude\n    interactive: false\nworkflows:\n  - name: main\n    steps:\n",
    );
    for i in 0..n {
        y.push_str(&format!(
            "      - name: s{i}\n        agent: a\n        task: \"[[fake:sleep=6000]]\"\n"
        ));
    }
    y
}

fn running_agents(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let starts = text.lines().filter(|l| l.starts_with("start ")).count();
    let ends = text.lines().filter(|l| l.starts_with("end ")).count();
    starts.saturating_sub(ends)
}

/// Coordinator (and worker) RSS once 100 attempts run, remote and local.
fn memory(url: &str, dir: &Path) {
    println!("## memory with 100 attempts running (one-shot fake agents sleeping)");
    let fbin = dir.join("fake-bin");
    relay_testkit::install_fake_clis(&fbin).unwrap();
    let with_fakes = format!(
        "{}:{}",
        fbin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for remote in [false, true] {
        let root = dir.join(if remote { "rss-remote" } else { "rss-local" });
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("wf.yaml"), wide_workflow(100)).unwrap();
        let log = root.join("agents.log");
        let workers: Vec<Proc> = if remote {
            ["rss-w1", "rss-w2"]
                .iter()
                .map(|n| worker(url, &root.join(n), n, &with_fakes, 50, Some(&log)))
                .collect()
        } else {
            Vec::new()
        };
        let mut cmd = Command::new(agent_relay());
        cmd.args(["run", "wf.yaml", "--quiet"])
            .current_dir(&root)
            .env("FAKE_AGENT_LOG", &log)
            .env("AGENT_RELAY_KILL_GRACE_MS", "300")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if remote {
            cmd.args(["--nats", url])
                .env("PATH", std::env::var("PATH").unwrap_or_default());
            std::thread::sleep(Duration::from_secs(2));
        } else {
            cmd.env("PATH", &with_fakes);
        }
        let mut coord = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut peak = (0, Vec::new());
        while Instant::now() < deadline {
            let running = running_agents(&log);
            if running >= 100 {
                peak = (
                    rss_kib(coord.id()),
                    workers.iter().map(|w| rss_kib(w.0.id())).collect(),
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let st = coord.wait().unwrap();
        let which = if remote {
            "over NATS, 2 workers x 50"
        } else {
            "local"
        };
        println!(
            "{which}: coordinator RSS {} MiB{}  (run exit {:?})",
            peak.0 / 1024,
            if peak.1.is_empty() {
                String::new()
            } else {
                format!(
                    ", workers {}",
                    peak.1
                        .iter()
                        .map(|k| format!("{} MiB", k / 1024))
                        .collect::<Vec<_>>()
                        .join(" + ")
                )
            },
            st.code()
        );
    }
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let dir = std::env::temp_dir().join(format!("relay-bench-nats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(server) = NatsServer::start(&dir.join("js")) else {
        return;
    };
    let url = server.url();
    let _ = SERVER_PID.set(server.pid());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "nats-server on {url}; sizes {}",
        if quick { "quick" } else { "full" }
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let part = |p: &str| only.is_empty() || only == p;
    if part("dispatch") {
        rt.block_on(dispatch_and_overhead(
            &url,
            &dir,
            if quick { 30 } else { 200 },
        ));
    }
    if only == "remote" {
        // Only the batched path across two workers (`BENCH_CASES` picks the cases).
        let n = std::env::var("BENCH_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 4_000 } else { 40_000 });
        rt.block_on(remote_traffic(
            &url,
            &dir,
            n,
            relay_nats::transport::MAX_BATCH,
        ));
    }
    if part("messages") {
        rt.block_on(messaging(&url, &dir, if quick { 4_000 } else { 40_000 }));
    }
    if only == "remote" || part("messages") {
        // The server's garbage collector is what its tail latency depends on most.
        println!(
            "nats-server (GOGC={}): peak RSS {} MiB",
            std::env::var("GOGC").unwrap_or_else(|_| "100, the default".into()),
            server.pid().map_or(0, |p| status_kib(p, "VmHWM:")) / 1024
        );
    }
    if part("memory") {
        memory(&url, &dir);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
