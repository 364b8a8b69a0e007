//! `agent-relay worker`: takes attempts from the queues of the needs it meets, claims
//! each from its run's coordinator, runs it with the same [`LocalLauncher`] as a local
//! run, and reports everything back in order under its lease's fencing token. It renews
//! the lease with every report, keeps JetStream from redelivering the offer with
//! in-progress acknowledgements, and ends an attempt the moment the coordinator says it
//! is no longer the holder, or once the coordinator has been silent longer than lease
//! and grace. A watchdog per run ends the worker's agents if the worker dies; a worker
//! that starts again ends whatever an earlier process under its name left behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use relay_broker::process::ProcessSpec;
use relay_broker::session::{Inbound, SessionSpec};
use relay_broker::watchdog::{COORDINATOR_ENV, RUN_ID_ENV, Watchdog};
use relay_broker::{Launcher, LocalLauncher};
use relay_messaging::SOCKET_ENV;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;
use crate::caps::{Need, Offer as Capabilities};
use crate::connect::{NatsError, NatsUrl};
use crate::lease::{Lost, Tenure};
use crate::names;
use crate::outbox::{Inflow, Outbox};
use crate::paths::PathMap;
use crate::wire::{
    self, AttemptId, Carried, Claim, ClaimReply, Down, DownItem, DownReply, Fence, Offer, Outcome,
    Running, Token, UpItem, Upload, UploadReply, Work, WorkerStatus,
};
use crate::{Timing, WORKER_ENV, WORKER_HOME_ENV};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Its name: its identity, one running worker per name.
    pub name: String,
    /// Attempts at once.
    pub capacity: u32,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it runs deterministic steps' shell commands.
    pub shell: bool,
    /// Its working directory: where the coordinator's project root maps to.
    pub workdir: PathBuf,
    /// This program (agents' `AGENT_RELAY_BIN`, the watchdog).
    pub self_bin: PathBuf,
    /// Grace between TERM and KILL when ending agents.
    pub kill_grace: Duration,
    /// Timing (JetStream ack wait of its own queue, polling).
    pub timing: Timing,
}

/// Largest upload sent at once (the server's default message limit is 1 MiB).
const MAX_UPLOAD: usize = 700 * 1024;
/// Size of one piece of a serialised outcome.
const PART: usize = 128 * 1024;
/// Most of a step's log files sent back per attempt.
const MAX_LOG: usize = 1024 * 1024;

struct Handle {
    run: String,
    epoch: u64,
    step: String,
    token: Token,
    started: Instant,
    lease_left: Duration,
    inflow: Inflow,
    inbound: Option<mpsc::UnboundedSender<Inbound>>,
    cancel: CancellationToken,
    /// Set when the coordinator fenced it: report nothing more.
    fenced: Option<String>,
    /// Renew at once (the connection came back).
    renew_now: bool,
}

struct RunHere {
    watchdog: Option<Watchdog>,
    bridge: Option<Bridge>,
    attempts: usize,
}

struct State {
    opts: WorkerOptions,
    client: async_nats::Client,
    instance: String,
    host: String,
    offer: Capabilities,
    slots: Arc<Semaphore>,
    attempts: Mutex<HashMap<AttemptId, Handle>>,
    runs: Mutex<HashMap<String, RunHere>>,
    pullers: Mutex<HashSet<String>>,
    stop: CancellationToken,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One line on the worker's stderr: what a person watching it wants to know.
fn say(worker: &str, what: &str) {
    eprintln!("worker {worker}: {what}");
}

/// The default name of a worker: the host's name.
pub fn default_name() -> String {
    host_name()
}

/// Why `name` cannot name a worker (it is shown in `workers`, events and logs), if so.
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty: give the worker a name (default: the host name)")
    } else if name.trim() != name {
        Some("starts or ends with white space")
    } else if name.chars().any(char::is_control) {
        Some("holds a control character")
    } else if name.len() > 128 {
        Some("is longer than 128 bytes")
    } else {
        None
    }
}

/// Runs a worker until `stop` is cancelled; then ends its attempts and returns. `ready`
/// is called with what the worker offers once it is connected, its name is its own and
/// it listens: from then on it takes attempts.
pub async fn serve(
    url: &NatsUrl,
    opts: WorkerOptions,
    stop: CancellationToken,
    ready: impl FnOnce(&Capabilities),
) -> Result<(), NatsError> {
    if opts.capacity == 0 {
        return Err(NatsError::Invalid("--capacity must be at least 1".into()));
    }
    if let Some(why) = bad_name(&opts.name) {
        return Err(NatsError::Invalid(format!("--name {:?} {why}", opts.name)));
    }
    let client = url
        .connect(&format!("agent-relay worker {}", opts.name))
        .await?;
    let js = jetstream::new(client.clone());
    let stream = crate::dispatch::work_stream(&js).await?;
    if crate::status::list(&client, Duration::from_millis(300))
        .await
        .iter()
        .any(|w| w.name == opts.name)
    {
        return Err(NatsError::NameTaken(opts.name.clone()));
    }
    // What an earlier process of this worker left behind is nobody's now.
    let home = opts.workdir.display().to_string();
    relay_broker::procscan::end_groups_with_envs(
        &[(WORKER_ENV, &opts.name), (WORKER_HOME_ENV, &home)],
        opts.kill_grace,
    )
    .await;
    let state = Arc::new(State {
        offer: Capabilities::detect(opts.labels.clone(), opts.shell),
        slots: Arc::new(Semaphore::new(opts.capacity as usize)),
        instance: format!("{:016x}", crate::dispatch::random_u64()),
        host: host_name(),
        client: client.clone(),
        attempts: Mutex::new(HashMap::new()),
        runs: Mutex::new(HashMap::new()),
        pullers: Mutex::new(HashSet::new()),
        stop: stop.clone(),
        opts,
    });
    let subscribe = |subject: String| {
        let client = client.clone();
        async move {
            client
                .subscribe(subject)
                .await
                .map_err(|e| NatsError::Unreachable {
                    url: url.to_string(),
                    why: e.to_string(),
                })
        }
    };
    let status = subscribe(names::STATUS.into()).await?;
    let down = subscribe(names::down_subject(&state.opts.name)).await?;
    let fences = subscribe("relay.run.*.fence".into()).await?;
    let mut changed = subscribe(names::QUEUES_CHANGED.into()).await?;
    tokio::spawn(answer_status(state.clone(), status));
    tokio::spawn(take_downs(state.clone(), down));
    tokio::spawn(take_fences(state.clone(), fences));
    tokio::spawn(renew_on_reconnect(state.clone()));

    let own = names::worker_queue(&state.opts.name);
    let c = crate::dispatch::queue_consumer(
        &stream,
        &own,
        &format!("worker {}", state.opts.name),
        state.opts.timing.ack_wait,
    )
    .await?;
    start_puller(&state, own, c);
    ready(&state.offer);
    let mut poll = tokio::time::interval(state.opts.timing.poll);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = poll.tick() => {}
            Some(_) = changed.next() => {}
        }
        discover(&state, &stream).await;
    }
    // Stopping: end what runs, and wait (bounded) for the ends to be reported.
    let handles: Vec<CancellationToken> = lock(&state.attempts)
        .values()
        .map(|h| h.cancel.clone())
        .collect();
    for c in handles {
        c.cancel();
    }
    let deadline = Instant::now() + state.opts.kill_grace + Duration::from_secs(5);
    while !lock(&state.attempts).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, r) in lock(&state.runs).drain() {
        if let Some(w) = r.watchdog {
            w.disarm();
        }
    }
    Ok(())
}

/// Starts pulling from every queue whose need this worker meets.
async fn discover(state: &Arc<State>, stream: &jetstream::stream::Stream) {
    let mut consumers = stream.consumers();
    while let Some(Ok(info)) = consumers.next().await {
        if !info.name.starts_with("q-") || lock(&state.pullers).contains(&info.name) {
            continue;
        }
        let Some(need) = info
            .config
            .description
            .as_deref()
            .and_then(Need::from_canonical)
        else {
            continue;
        };
        if !state.offer.meets(&need) {
            continue;
        }
        if let Ok(c) = stream
            .get_consumer::<consumer::pull::Config>(&info.name)
            .await
        {
            start_puller(state, info.name.clone(), c);
        }
    }
}

fn start_puller(state: &Arc<State>, queue: String, c: consumer::Consumer<consumer::pull::Config>) {
    if !lock(&state.pullers).insert(queue) {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                () = state.stop.cancelled() => return,
                p = state.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let batch = c
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(_) => {
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match batch.next().await {
                Some(Ok(m)) => {
                    tokio::spawn(take_offer(state.clone(), m, permit));
                }
                Some(Err(_)) => {
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => drop(permit),
            }
        }
    });
}

/// One offer taken from a queue: claimed, then run, or put back, or dropped.
async fn take_offer(state: Arc<State>, m: jetstream::Message, permit: OwnedSemaphorePermit) {
    let delivered = m.info().map(|i| i.delivered).unwrap_or(1).max(1);
    let (msg, acker) = m.split();
    let offer: Offer = match wire::decode(&msg.payload) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("an unreadable offer was dropped: {e}");
            let _ = acker.ack_with(AckKind::Term).await;
            return;
        }
    };
    let claim = Claim {
        epoch: offer.epoch,
        attempt: offer.attempt.clone(),
        round: offer.round,
        worker: state.opts.name.clone(),
    };
    let req = async_nats::Request::new()
        .payload(wire::encode(&claim).into())
        .timeout(Some(Duration::from_secs(5)));
    let reply = state
        .client
        .send_request(names::run_subject(&offer.run, "claim"), req)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| wire::decode::<ClaimReply>(&r.payload));
    match reply {
        Err(_) => {
            // No coordinator answers (restarting, or gone): offer it again later,
            // less often the longer it goes on.
            let after = Duration::from_secs(u64::try_from(delivered).unwrap_or(1).min(30));
            let _ = acker.ack_with(AckKind::Nak(Some(after))).await;
        }
        Ok(ClaimReply::Wait { after_ms }) => {
            let _ = acker
                .ack_with(AckKind::Nak(Some(Duration::from_millis(after_ms))))
                .await;
        }
        Ok(ClaimReply::Refused { reason }) => {
            tracing::info!(attempt = offer.attempt, "offer refused: {reason}");
            let _ = acker.ack_with(AckKind::Term).await;
        }
        Ok(ClaimReply::Granted {
            token,
            lease_ms,
            grace_ms,
        }) => {
            let lease = (
                Duration::from_millis(lease_ms),
                Duration::from_millis(grace_ms),
            );
            say(
                &state.opts.name,
                &format!(
                    "attempt {} (step {}) granted, token {token}",
                    offer.attempt, offer.step
                ),
            );
            run_granted(&state, offer, token, lease, acker).await;
        }
    }
    drop(permit);
}

fn mkdirs(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
}

impl State {
    /// The run's watchdog and bridge, started with its first attempt here.
    fn enter_run(&self, run: &str, map: &PathMap, wants_socket: bool) -> Option<PathBuf> {
        let mut runs = lock(&self.runs);
        let here = runs.entry(run.to_owned()).or_insert_with(|| RunHere {
            watchdog: Watchdog::start(
                &self.opts.self_bin,
                &self.run_tag(run),
                self.opts.kill_grace,
            )
            .map_err(|e| tracing::warn!("no watchdog for run {run}: {e}"))
            .ok(),
            bridge: None,
            attempts: 0,
        });
        here.attempts += 1;
        if wants_socket && here.bridge.is_none() {
            let path = crate::bridge::socket_path(map.run_dir());
            here.bridge = Bridge::start(self.client.clone(), run, path)
                .map_err(|e| tracing::warn!("no socket for run {run}: {e}"))
                .ok();
        }
        here.bridge.as_ref().map(|b| b.path().to_path_buf())
    }

    fn leave_run(&self, run: &str) {
        let mut runs = lock(&self.runs);
        let done = runs.get_mut(run).is_some_and(|r| {
            r.attempts = r.attempts.saturating_sub(1);
            r.attempts == 0
        });
        if done && let Some(w) = runs.remove(run).and_then(|r| r.watchdog) {
            w.disarm();
        }
    }

    /// The run id this worker's processes of run `run` carry: the run and the worker,
    /// so that a coordinator on the same machine ending the run's processes by their
    /// environment leaves the worker's alone (they are the worker's to end).
    fn run_tag(&self, run: &str) -> String {
        format!("{run}@{}", self.opts.name)
    }

    /// `env` as it must be on this worker.
    fn env(
        &self,
        env: Vec<(String, String)>,
        map: &PathMap,
        socket: Option<&Path>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = env
            .into_iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    "AGENT_RELAY_BIN" => self.opts.self_bin.display().to_string(),
                    k if k == SOCKET_ENV => socket
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| map.value(&v)),
                    k if k == COORDINATOR_ENV => std::process::id().to_string(),
                    k if k == RUN_ID_ENV => self.run_tag(&v),
                    _ => map.value(&v),
                };
                (k, v)
            })
            .collect();
        out.push((WORKER_ENV.to_owned(), self.opts.name.clone()));
        out.push((
            WORKER_HOME_ENV.to_owned(),
            self.opts.workdir.display().to_string(),
        ));
        out
    }
}

fn log_offset(p: Option<&Path>) -> u64 {
    p.and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

/// The text of `path` from byte `from`, at most the last [`MAX_LOG`] bytes of it.
fn read_from(path: &Path, from: u64) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let rest = &bytes[start..];
    let rest = &rest[rest.len().saturating_sub(MAX_LOG)..];
    (!rest.is_empty()).then(|| String::from_utf8_lossy(rest).into_owned())
}

fn item_size(item: &UpItem) -> usize {
    serde_json::to_vec(item).map_or(PART, |v| v.len())
}

fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PART);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    out
}

/// Arguments with the coordinator's paths of carried files (a task file an argument
/// points to) replaced by where they are on this worker.
fn carried_args(args: &[String], carried: &[Carried], map: &PathMap) -> Vec<String> {
    args.iter()
        .map(|a| {
            carried.iter().fold(a.clone(), |a, c| {
                let from = c.path.display().to_string();
                if from.is_empty() || !a.contains(&from) {
                    return a;
                }
                a.replace(&from, &map.path(&c.path).display().to_string())
            })
        })
        .collect()
}

/// `text` with the coordinator's `agent-relay` (`theirs`, its `AGENT_RELAY_BIN`) replaced
/// by this worker's: the command of the run's MCP server in a CLI's arguments, its
/// environment or its settings file.
fn own_relay_bin(text: &str, theirs: Option<&str>, mine: &Path) -> String {
    match theirs {
        Some(t) if !t.is_empty() && text.contains(t) => {
            text.replace(t, &mine.display().to_string())
        }
        _ => text.to_owned(),
    }
}

async fn run_granted(
    state: &Arc<State>,
    offer: Offer,
    token: Token,
    (ttl, grace): (Duration, Duration),
    acker: jetstream::message::Acker,
) {
    let map = PathMap::new(&offer.places, &state.opts.workdir, &offer.run);
    mkdirs(map.run_dir());
    let env = match &offer.work {
        Work::Process(s) => &s.env,
        Work::Session(s) => &s.env,
    };
    let theirs = crate::paths::env_of(env, "AGENT_RELAY_BIN");
    let mine = state.opts.self_bin.clone();
    let own = |t: &str| own_relay_bin(t, theirs, &mine);
    for c in &offer.carried {
        let p = map.path(&c.path);
        if let Some(d) = p.parent() {
            mkdirs(d);
        }
        // Private, as on the coordinator (a task, a step's output, MCP settings).
        let _ = relay_messaging::access::write_private(&p, own(&c.text).as_bytes());
    }
    let own_env = |env: &[(String, String)]| -> Vec<(String, String)> {
        env.iter().map(|(k, v)| (k.clone(), own(v))).collect()
    };
    let wants_socket = match &offer.work {
        Work::Process(s) => s.env.iter().any(|(k, _)| k == SOCKET_ENV),
        Work::Session(s) => s.env.iter().any(|(k, _)| k == SOCKET_ENV),
    };
    let socket = state.enter_run(&offer.run, &map, wants_socket);
    let cancel = CancellationToken::new();
    let (inbound_tx, inbound_rx) = mpsc::unbounded_channel::<Inbound>();
    let is_session = matches!(offer.work, Work::Session(_));
    lock(&state.attempts).insert(
        offer.attempt.clone(),
        Handle {
            run: offer.run.clone(),
            epoch: offer.epoch,
            step: offer.step.clone(),
            token,
            started: Instant::now(),
            lease_left: ttl,
            inflow: Inflow::default(),
            inbound: is_session.then_some(inbound_tx),
            cancel: cancel.clone(),
            fenced: None,
            renew_now: false,
        },
    );
    let (items_tx, mut items_rx) = mpsc::unbounded_channel::<UpItem>();
    let mut logs: Vec<(PathBuf, PathBuf, u64)> = Vec::new();
    let task = match offer.work.clone() {
        Work::Process(spec) => {
            let args: Vec<String> = spec.args.iter().map(|a| own(a)).collect();
            let spec = ProcessSpec {
                args: carried_args(&args, &offer.carried, &map),
                cwd: map.path(&spec.cwd),
                stderr_path: spec.stderr_path.as_ref().map(|p| map.path(p)),
                env: state.env(own_env(&spec.env), &map, socket.as_deref()),
                sandbox: spec.sandbox.clone().map(|s| map.sandbox(s)),
                ..spec.clone()
            };
            if let (Some(theirs), Some(mine)) = (offer_stderr(&offer), spec.stderr_path.clone()) {
                if let Some(d) = mine.parent() {
                    mkdirs(d);
                }
                logs.push((theirs, mine.clone(), log_offset(Some(&mine))));
            }
            let cancel = cancel.clone();
            let items = items_tx.clone();
            tokio::spawn(async move {
                let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
                let fwd = tokio::spawn(async move {
                    while let Some(p) = rx.recv().await {
                        let _ = items.send(UpItem::Spawned(p));
                    }
                });
                let r = LocalLauncher::default().run_process(spec, cancel, tx).await;
                let _ = fwd.await;
                Outcome::Process(r)
            })
        }
        Work::Session(spec) => {
            let theirs = spec.transcript_path.clone();
            let spec = SessionSpec {
                argv: spec.argv.iter().map(|a| own(a)).collect(),
                cwd: map.path(&spec.cwd),
                transcript_path: map.path(&spec.transcript_path),
                env: state.env(own_env(&spec.env), &map, socket.as_deref()),
                sandbox: spec.sandbox.clone().map(|s| map.sandbox(s)),
                ..spec.clone()
            };
            if let Some(d) = spec.transcript_path.parent() {
                mkdirs(d);
            }
            logs.push((theirs, spec.transcript_path.clone(), 0));
            let cancel = cancel.clone();
            let items = items_tx.clone();
            let mut inbound_rx = inbound_rx;
            tokio::spawn(async move {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let fwd = tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        let _ = items.send(UpItem::Session(ev));
                    }
                });
                // The session takes one message at a time; the rest wait here.
                let (in_tx, in_rx) = mpsc::channel::<Inbound>(1);
                let feeder = tokio::spawn(async move {
                    while let Some(m) = inbound_rx.recv().await {
                        if in_tx.send(m).await.is_err() {
                            return;
                        }
                    }
                });
                let r = LocalLauncher::default()
                    .run_session(spec, cancel, tx, Some(in_rx))
                    .await;
                feeder.abort();
                let _ = fwd.await;
                Outcome::Session(r)
            })
        }
    };
    drop(items_tx);
    report(
        state,
        &offer,
        token,
        ttl,
        grace,
        task,
        &mut items_rx,
        &logs,
        acker,
        &cancel,
    )
    .await;
    lock(&state.attempts).remove(&offer.attempt);
    state.leave_run(&offer.run);
}

fn offer_stderr(offer: &Offer) -> Option<PathBuf> {
    match &offer.work {
        Work::Process(s) => s.stderr_path.clone(),
        Work::Session(_) => None,
    }
}

/// Sends the attempt's items, renews its lease and its offer's ack wait, until the
/// outcome is acknowledged or the lease is lost.
#[allow(clippy::too_many_arguments)]
async fn report(
    state: &Arc<State>,
    offer: &Offer,
    token: Token,
    ttl: Duration,
    grace: Duration,
    mut task: tokio::task::JoinHandle<Outcome>,
    items: &mut mpsc::UnboundedReceiver<UpItem>,
    logs: &[(PathBuf, PathBuf, u64)],
    acker: jetstream::message::Acker,
    cancel: &CancellationToken,
) {
    let mut outbox: Outbox<UpItem> = Outbox::default();
    let mut tenure = Tenure::new(ttl, grace, Instant::now());
    let mut finished = false;
    let mut lost: Option<Lost> = None;
    let mut last_word_said = false;
    let progress_every = state.opts.timing.ack_wait.min(ttl) / 3;
    let mut progress = tokio::time::interval(progress_every.max(Duration::from_millis(50)));
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let subject = names::run_subject(&offer.run, "up");
    loop {
        tokio::select! {
            r = &mut task, if !finished => {
                // Everything the attempt sent comes before its outcome.
                while let Ok(i) = items.try_recv() {
                    let n = item_size(&i);
                    outbox.push(i, n);
                }
                for (theirs, mine, from) in logs {
                    if let Some(text) = read_from(mine, *from) {
                        for p in pieces(&text) {
                            let i = UpItem::Log { path: theirs.clone(), text: p };
                            let n = item_size(&i);
                            outbox.push(i, n);
                        }
                    }
                }
                let outcome = match r {
                    Ok(o) => o,
                    Err(e) => Outcome::Process(Err(relay_broker::process::ProcessError::Spawn {
                        program: "worker".into(),
                        reason: format!("the attempt's task failed: {e}"),
                    })),
                };
                let text = String::from_utf8_lossy(&wire::encode(&outcome)).into_owned();
                for p in pieces(&text) {
                    let i = UpItem::OutcomePart(p);
                    let n = item_size(&i);
                    outbox.push(i, n);
                }
                outbox.push(UpItem::OutcomeEnd, 16);
                finished = true;
            }
            Some(i) = items.recv() => {
                let n = item_size(&i);
                outbox.push(i, n);
            }
            _ = progress.tick() => {
                if lost.is_none() {
                    let _ = acker.ack_with(AckKind::Progress).await;
                }
            }
            _ = tick.tick() => {}
        }
        let (fenced, renew_now) = lock(&state.attempts)
            .get_mut(&offer.attempt)
            .map_or((None, false), |h| {
                (h.fenced.clone(), std::mem::take(&mut h.renew_now))
            });
        if let Some(why) = fenced {
            lost.get_or_insert(Lost::Fenced(why));
        }
        match &lost {
            Some(Lost::Fenced(_)) => {
                cancel.cancel();
                if finished {
                    // Not acknowledged: whoever holds the attempt now owns the offer.
                    return;
                }
                continue;
            }
            Some(Lost::Silent(_)) => {
                // The coordinator has the last word: end the agent, then report its
                // outcome once more; it is refused unless we still hold the lease.
                cancel.cancel();
                if !finished {
                    continue;
                }
                if last_word_said {
                    return;
                }
                last_word_said = true;
            }
            None => {}
        }
        let now = Instant::now();
        if outbox.is_empty() && finished {
            let _ = acker.ack().await;
            say(
                &state.opts.name,
                &format!("attempt {} reported", offer.attempt),
            );
            return;
        }
        if outbox.is_empty() && !renew_now && !tenure.renew_due(now) {
            if lost.is_none()
                && let Some(l) = tenure.lost(now)
            {
                say(&state.opts.name, &format!("attempt {}: {l}", offer.attempt));
                lost = Some(l);
            }
            continue;
        }
        let (seq, batch) = outbox.batch(MAX_UPLOAD);
        let up = Upload {
            epoch: offer.epoch,
            attempt: offer.attempt.clone(),
            token,
            worker: state.opts.name.clone(),
            seq,
            items: batch,
        };
        tenure.sent(now);
        let req = async_nats::Request::new()
            .payload(wire::encode(&up).into())
            .timeout(Some(
                (ttl / 3).clamp(Duration::from_millis(200), Duration::from_secs(5)),
            ));
        let reply = state
            .client
            .send_request(subject.clone(), req)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| wire::decode::<UploadReply>(&r.payload));
        match reply {
            Ok(UploadReply::Ack { next_seq, lease_ms }) => {
                // Still ours after all (the coordinator is the judge of that).
                if matches!(lost, Some(Lost::Silent(_))) {
                    lost = None;
                }
                outbox.acked(next_seq);
                let ttl = Duration::from_millis(lease_ms);
                tenure.confirmed(Instant::now(), ttl);
                if let Some(h) = lock(&state.attempts).get_mut(&offer.attempt) {
                    h.lease_left = ttl;
                }
            }
            Ok(UploadReply::Fenced { reason }) => {
                say(
                    &state.opts.name,
                    &format!(
                        "attempt {}: refused by the coordinator: {reason}",
                        offer.attempt
                    ),
                );
                lost = Some(Lost::Fenced(reason));
            }
            Err(_) => {
                // Silent past lease and grace: the coordinator has given the attempt
                // away (or failed it) by now.
                if lost.is_none()
                    && let Some(l) = tenure.lost(Instant::now())
                {
                    say(&state.opts.name, &format!("attempt {}: {l}", offer.attempt));
                    lost = Some(l);
                }
            }
        }
    }
}

async fn answer_status(state: Arc<State>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply else { continue };
        let running: Vec<Running> = lock(&state.attempts)
            .iter()
            .map(|(id, h)| Running {
                run: h.run.clone(),
                attempt: id.clone(),
                step: h.step.clone(),
                token: h.token,
                age_ms: u64::try_from(h.started.elapsed().as_millis()).unwrap_or(u64::MAX),
                lease_left_ms: u64::try_from(h.lease_left.as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        let status = WorkerStatus {
            name: state.opts.name.clone(),
            instance: state.instance.clone(),
            host: state.host.clone(),
            pid: std::process::id(),
            capacity: state.opts.capacity,
            // Running attempts, not free permits: an idle queue's pull holds one.
            free: state
                .opts
                .capacity
                .saturating_sub(u32::try_from(running.len()).unwrap_or(u32::MAX)),
            offer: state.offer.clone(),
            running,
        };
        let _ = state
            .client
            .publish(reply, wire::encode(&status).into())
            .await;
    }
}

async fn take_downs(state: Arc<State>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let Some(reply) = m.reply else { continue };
        let answer = match wire::decode::<Down>(&m.payload) {
            Err(_) => DownReply::Unknown,
            Ok(d) => {
                let mut attempts = lock(&state.attempts);
                match attempts.get_mut(&d.attempt) {
                    Some(h) if h.token == d.token => {
                        let (skip, next_seq) = h.inflow.take(d.seq, d.items.len());
                        for item in d.items.into_iter().skip(skip) {
                            match item {
                                DownItem::Cancel => h.cancel.cancel(),
                                DownItem::Inbound(i) => {
                                    if let Some(tx) = &h.inbound {
                                        let _ = tx.send(i);
                                    }
                                }
                            }
                        }
                        DownReply::Ack { next_seq }
                    }
                    _ => DownReply::Unknown,
                }
            }
        };
        let _ = state
            .client
            .publish(reply, wire::encode(&answer).into())
            .await;
    }
}

/// A new coordinator of a run: what this worker runs for another instance of it ends.
async fn take_fences(state: Arc<State>, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        let Ok(f) = wire::decode::<Fence>(&m.payload) else {
            continue;
        };
        let ended: Vec<AttemptId> = {
            let mut attempts = lock(&state.attempts);
            attempts
                .iter_mut()
                .filter(|(_, h)| h.run == f.run && h.epoch != f.epoch)
                .map(|(id, h)| {
                    h.fenced = Some("the run has a new coordinator".into());
                    h.cancel.cancel();
                    id.clone()
                })
                .collect()
        };
        let state = state.clone();
        tokio::spawn(async move {
            // Answer once they are gone (bounded), so the new coordinator starts clean.
            let deadline = Instant::now() + state.opts.kill_grace + Duration::from_secs(3);
            while Instant::now() < deadline
                && ended
                    .iter()
                    .any(|id| lock(&state.attempts).contains_key(id))
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Some(reply) = m.reply {
                let _ = state.client.publish(reply, Vec::new().into()).await;
            }
        });
    }
}

/// After a reconnect, every lease is renewed at once, so the worker learns which of
/// its attempts are still its own (the others are fenced and end).
async fn renew_on_reconnect(state: Arc<State>) {
    let mut was = state.client.connection_state();
    let mut every = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = state.stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = state.client.connection_state();
        if now == async_nats::connection::State::Connected
            && was != async_nats::connection::State::Connected
        {
            tracing::info!("reconnected to NATS; renewing every lease");
            for h in lock(&state.attempts).values_mut() {
                h.renew_now = true;
            }
        }
        was = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_names_must_be_printable_and_not_blank() {
        for ok in ["gpu-box", "host.example.com", "a b", "w*>", "名前"] {
            assert_eq!(bad_name(ok), None, "{ok}");
        }
        assert!(bad_name("").unwrap().contains("empty"));
        assert!(bad_name("   ").unwrap().contains("empty"));
        assert!(bad_name(" w").unwrap().contains("white space"));
        assert!(bad_name("w\x1b[2J").unwrap().contains("control"));
        assert!(bad_name(&"w".repeat(129)).unwrap().contains("128"));
    }

    #[test]
    fn the_coordinators_agent_relay_is_replaced_by_the_workers() {
        let mine = Path::new("/opt/worker/agent-relay");
        let theirs = Some("/home/me/bin/agent-relay");
        let config = r#"{"mcpServers":{"agent-relay":{"command":"/home/me/bin/agent-relay","args":["mcp"]}}}"#;
        assert_eq!(
            own_relay_bin(config, theirs, mine),
            r#"{"mcpServers":{"agent-relay":{"command":"/opt/worker/agent-relay","args":["mcp"]}}}"#
        );
        assert_eq!(
            own_relay_bin(
                r#"mcp_servers.agent-relay.command="/home/me/bin/agent-relay""#,
                theirs,
                mine
            ),
            r#"mcp_servers.agent-relay.command="/opt/worker/agent-relay""#
        );
        // Nothing else changes, nor does anything without a coordinator's path to go by.
        assert_eq!(own_relay_bin("exec", theirs, mine), "exec");
        assert_eq!(own_relay_bin(config, None, mine), config);
        assert_eq!(own_relay_bin(config, Some(""), mine), config);
    }
}
