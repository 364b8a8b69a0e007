//! The coordinator's launcher: each attempt that needs an agent CLI (or, when asked, a
//! shell) is offered on the JetStream work queue of its need, granted to the first
//! worker that claims it, and followed through that worker's uploads until its outcome
//! is in. Everything else (rehearsals, commands by default, checks of steps that ran
//! here) runs on this machine through [`LocalLauncher`]. The lease book
//! ([`crate::lease::Leases`]) decides every claim, upload and lapse; this module only
//! moves messages.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use relay_broker::process::{ProcessEnd, ProcessError, ProcessOutcome, ProcessSpec};
use relay_broker::session::{Inbound, SessionError, SessionEvent, SessionOutcome, SessionSpec};
use relay_broker::watchdog::RUN_ID_ENV;
use relay_broker::{Launcher, LocalLauncher};
use relay_messaging::{MessageId, SOCKET_ENV};
use tokio::sync::mpsc::{self, Receiver, UnboundedReceiver, UnboundedSender};
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

use crate::Timing;
use crate::caps::Need;
use crate::connect::{NatsError, NatsUrl};
use crate::lease::{Cancelled, Change, Leases, Report, TICK, Taken};
use crate::names;
use crate::outbox::Outbox;
use crate::paths::env_of;
use crate::wire::{
    self, AttemptId, Carried, Claim, ClaimReply, Down, DownItem, DownReply, Fence, Offer, Outcome,
    Places, Token, UpItem, Upload, UploadReply, Work, WorkerStatus,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Largest offer put on a queue (the server's default message limit is 1 MiB).
const MAX_OFFER: usize = 900 * 1024;
/// Most of a step's output carried to a worker for a check that reads it.
const MAX_CARRIED: usize = 512 * 1024;

/// How the coordinator dispatches.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    /// The coordinator's working directory (the project root workers map to theirs).
    pub root: PathBuf,
    /// Labels each agent's worker must carry, by agent name.
    pub placement: BTreeMap<String, BTreeMap<String, String>>,
    /// Deterministic steps run on workers offering a shell, not here.
    pub commands_on_workers: bool,
    /// Timing.
    pub timing: Timing,
}

/// How a run dispatches to workers, before it connects.
#[derive(Debug, Clone)]
pub struct RunDispatch {
    /// The server.
    pub url: NatsUrl,
    /// Labels each agent's worker must carry, by agent name.
    pub placement: BTreeMap<String, BTreeMap<String, String>>,
    /// Deterministic steps run on workers offering a shell.
    pub commands_on_workers: bool,
    /// Timing.
    pub timing: Timing,
}

impl RunDispatch {
    /// Connects the dispatching launcher of a run whose project root is `root`.
    pub async fn connect(&self, root: PathBuf) -> Result<NatsLauncher, NatsError> {
        NatsLauncher::connect(
            &self.url,
            DispatchOptions {
                root,
                placement: self.placement.clone(),
                commands_on_workers: self.commands_on_workers,
                timing: self.timing.clone(),
            },
        )
        .await
    }
}

/// Runs attempts on workers over NATS (and the rest here). See the module docs.
#[derive(Clone)]
pub struct NatsLauncher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsLauncher({})", self.inner.url)
    }
}

/// What arrives for an attempt being followed.
#[derive(Debug)]
enum Arrival {
    Granted { worker: String, token: Token },
    Items(Vec<UpItem>),
    Failed(String),
}

struct Link {
    tx: UnboundedSender<Arrival>,
    offer: Offer,
    need: Need,
}

/// The run this launcher serves (one per coordinator), set up on its first attempt.
struct RunLink {
    run: String,
    run_dir: PathBuf,
    log: Mutex<Option<std::fs::File>>,
}

struct Inner {
    url: NatsUrl,
    client: async_nats::Client,
    js: jetstream::Context,
    opts: DispatchOptions,
    /// This coordinator instance; offers and leases of another are not ours.
    epoch: u64,
    local: LocalLauncher,
    workers: Mutex<Vec<WorkerStatus>>,
    run: OnceCell<Arc<RunLink>>,
    leases: Mutex<Leases>,
    links: Mutex<HashMap<AttemptId, Link>>,
    next: AtomicU64,
    queues: tokio::sync::Mutex<std::collections::HashSet<String>>,
    /// Which worker ran each step label last (checks go where the files are).
    ran_on: Mutex<HashMap<String, String>>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A random 64-bit number from the kernel (coordinator instances, worker instances).
pub(crate) fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

/// Where an attempt runs.
enum Place {
    Here,
    Queue(Need),
    Worker(String),
}

/// Makes sure the work stream exists (file storage, a work queue).
pub(crate) async fn work_stream(js: &jetstream::Context) -> Result<stream::Stream, NatsError> {
    let config = stream::Config {
        name: names::WORK_STREAM.into(),
        subjects: vec![names::WORK_SUBJECTS.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        // Offers of runs long gone do not pile up.
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    };
    crate::streams::ensure(js, config)
        .await
        .map_err(|e| NatsError::JetStream(format!("work stream: {e}")))
}

/// Makes sure the pull consumer of queue `queue` exists.
pub(crate) async fn queue_consumer(
    stream: &stream::Stream,
    queue: &str,
    description: &str,
    ack_wait: Duration,
) -> Result<consumer::Consumer<consumer::pull::Config>, NatsError> {
    stream
        .get_or_create_consumer(
            queue,
            consumer::pull::Config {
                durable_name: Some(queue.to_owned()),
                description: Some(description.to_owned()),
                filter_subject: names::work_subject(queue),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| NatsError::JetStream(format!("queue {queue}: {e}")))
}

impl NatsLauncher {
    /// Connects to `url` and learns which workers are up.
    pub async fn connect(url: &NatsUrl, opts: DispatchOptions) -> Result<NatsLauncher, NatsError> {
        let client = url.connect("agent-relay coordinator").await?;
        let js = jetstream::new(client.clone());
        work_stream(&js).await?;
        let workers = crate::status::list(&client, Duration::from_millis(500)).await;
        let inner = Arc::new(Inner {
            url: url.clone(),
            client,
            js,
            leases: Mutex::new(Leases::new(opts.timing.lease.clone())),
            opts,
            epoch: random_u64(),
            local: LocalLauncher::default(),
            workers: Mutex::new(workers),
            run: OnceCell::new(),
            links: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            queues: tokio::sync::Mutex::new(Default::default()),
            ran_on: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
        });
        Ok(NatsLauncher { inner })
    }

    /// The workers that answered when this launcher connected.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        lock(&self.inner.workers).clone()
    }

    /// Whether `program` can run: here, or on a worker that answered.
    pub fn offers_program(&self, program: &str) -> bool {
        relay_broker::process::which(program).is_some()
            || lock(&self.inner.workers)
                .iter()
                .any(|w| w.offer.clis.iter().any(|c| c == program))
    }

    /// The worker running (or that last ran) step `label`, if one did.
    pub fn worker_of(&self, label: &str) -> Option<String> {
        lock(&self.inner.ran_on).get(label).cloned()
    }

    /// The client (for the message transport).
    pub fn client(&self) -> async_nats::Client {
        self.inner.client.clone()
    }

    /// This coordinator instance.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// What an attempt of agent `agent` running `program` needs of its worker.
    fn agent_need(&self, agent: &str, program: &str) -> Need {
        Need {
            cli: Some(program.to_owned()),
            labels: self
                .inner
                .opts
                .placement
                .get(agent)
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn place(&self, program: &str, env: &[(String, String)]) -> Place {
        let o = &self.inner.opts;
        if runs_here(program) {
            return Place::Here;
        }
        if env_of(env, "AGENT_RELAY_STEP_OUTPUT_FILE").is_some() {
            // A custom check: where the step's files are.
            return match env_of(env, "AGENT_RELAY_STEP").and_then(|s| self.worker_of(s)) {
                Some(w) => Place::Worker(w),
                None => Place::Here,
            };
        }
        match env_of(env, "AGENT_RELAY_NAME") {
            Some(agent) if program != "sh" => Place::Queue(self.agent_need(agent, program)),
            _ if o.commands_on_workers => Place::Queue(Need {
                cli: None,
                labels: BTreeMap::new(),
            }),
            _ => Place::Here,
        }
    }

    /// Sets up the run on its first remote attempt: the service answering workers, the
    /// fence that ends what an earlier coordinator of the run left on workers, the log.
    async fn run_link(&self, env: &[(String, String)]) -> Result<Arc<RunLink>, String> {
        let run = env_of(env, RUN_ID_ENV)
            .ok_or("the attempt carries no run id")?
            .to_owned();
        let run_dir = PathBuf::from(env_of(env, "AGENT_RELAY_RUN_DIR").unwrap_or("."));
        let socket = env_of(env, SOCKET_ENV).map(PathBuf::from);
        let inner = self.inner.clone();
        self.inner
            .run
            .get_or_try_init(|| async move {
                let link = Arc::new(RunLink {
                    log: Mutex::new(open_log(&run_dir)),
                    run: run.clone(),
                    run_dir,
                });
                start_service(&inner, &link, socket).await?;
                fence(&inner, &run).await;
                Ok::<_, String>(link)
            })
            .await
            .cloned()
    }

    async fn dispatch(
        &self,
        work: Work,
        env: &[(String, String)],
        place: Place,
    ) -> Result<
        (
            AttemptId,
            UnboundedReceiver<Arrival>,
            watch::Sender<Option<(String, Token)>>,
        ),
        String,
    > {
        let run = self.run_link(env).await?;
        let inner = &self.inner;
        let step = env_of(env, "AGENT_RELAY_STEP").unwrap_or("").to_owned();
        let (need, queue) = match place {
            Place::Queue(need) => {
                let q = need.queue();
                (need, q)
            }
            Place::Worker(w) => (
                Need {
                    cli: Some(format!("worker {w}")),
                    labels: BTreeMap::new(),
                },
                names::worker_queue(&w),
            ),
            Place::Here => return Err("not a remote attempt".into()),
        };
        self.ensure_queue(&queue, &need).await?;
        let attempt = format!("{}/{}", run.run, inner.next.fetch_add(1, Ordering::Relaxed));
        let mut carried = Vec::new();
        if let Some(f) = env_of(env, "AGENT_RELAY_STEP_OUTPUT_FILE") {
            let text = tokio::fs::read_to_string(f).await.unwrap_or_default();
            let mut cut = text.len().min(MAX_CARRIED);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            carried.push(Carried {
                path: f.into(),
                text: text[..cut].to_owned(),
            });
        }
        // The MCP settings file of the agent's CLI (gemini's), written in the step's
        // directory here.
        for key in relay_broker::cli_table::MCP_FILE_ENVS {
            if let Some(f) = env_of(env, key).filter(|f| Path::new(f).starts_with(&run.run_dir)) {
                let text = tokio::fs::read_to_string(f)
                    .await
                    .map_err(|e| format!("cannot read the MCP settings {f}: {e}"))?;
                carried.push(Carried {
                    path: f.into(),
                    text,
                });
            }
        }
        if let Work::Process(spec) = &work {
            // A task too big for the command line is in a file the argument names: the
            // worker needs the file, whole.
            for path in task_files(&spec.args, &run.run_dir) {
                let text = tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|e| format!("cannot read the task file {}: {e}", path.display()))?;
                carried.push(Carried { path, text });
            }
        }
        let offer = Offer {
            run: run.run.clone(),
            epoch: inner.epoch,
            attempt: attempt.clone(),
            round: 1,
            step: step.clone(),
            work,
            places: Places {
                root: inner.opts.root.clone(),
                run_dir: run.run_dir.clone(),
            },
            carried,
        };
        let payload = wire::encode(&offer);
        if payload.len() > MAX_OFFER {
            return Err(format!(
                "the attempt is too large to send to a worker ({} bytes; at most {MAX_OFFER})",
                payload.len()
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&inner.leases).offer(&attempt, Instant::now());
        lock(&inner.links).insert(
            attempt.clone(),
            Link {
                tx,
                offer,
                need: need.clone(),
            },
        );
        note(
            &run,
            serde_json::json!({"event": "offered", "attempt": attempt, "step": step, "need": need.describe()}),
        );
        if let Err(e) = publish_offer(inner, &queue, payload).await {
            self.finish(&attempt);
            return Err(e);
        }
        let (holder, _) = watch::channel(None);
        Ok((attempt, rx, holder))
    }

    async fn ensure_queue(&self, queue: &str, need: &Need) -> Result<(), String> {
        let mut known = self.inner.queues.lock().await;
        if known.contains(queue) {
            return Ok(());
        }
        let stream = work_stream(&self.inner.js)
            .await
            .map_err(|e| e.to_string())?;
        queue_consumer(
            &stream,
            queue,
            &need.canonical(),
            self.inner.opts.timing.ack_wait,
        )
        .await
        .map_err(|e| e.to_string())?;
        known.insert(queue.to_owned());
        drop(known);
        // Workers look for new queues now rather than at their next poll.
        let _ = self
            .inner
            .client
            .publish(names::QUEUES_CHANGED, queue.to_owned().into())
            .await;
        Ok(())
    }

    fn finish(&self, attempt: &str) {
        lock(&self.inner.leases).forget(attempt);
        lock(&self.inner.links).remove(attempt);
    }

    /// Follows a remote attempt to its outcome: passes its events on, sends it what the
    /// session is offered, and cancels it with `cancel`.
    async fn follow(
        &self,
        attempt: &AttemptId,
        mut rx: UnboundedReceiver<Arrival>,
        holder: watch::Sender<Option<(String, Token)>>,
        cancel: &CancellationToken,
        mut on_item: impl FnMut(UpItem),
        down: UnboundedSender<DownItem>,
    ) -> Result<Outcome, FollowEnd> {
        let mut text = String::new();
        let mut cancel_sent = false;
        loop {
            tokio::select! {
                () = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let c = lock(&self.inner.leases).cancel(attempt);
                    match c {
                        Cancelled::WasQueued => return Err(FollowEnd::CancelledQueued),
                        Cancelled::TellHolder { .. } => { let _ = down.send(DownItem::Cancel); }
                        Cancelled::Nothing => {}
                    }
                }
                a = rx.recv() => match a {
                    None => return Err(FollowEnd::Failed("the coordinator stopped following the attempt".into())),
                    Some(Arrival::Failed(why)) => return Err(FollowEnd::Failed(why)),
                    Some(Arrival::Granted { worker, token }) => {
                        if let Some(step) = self.link_step(attempt) {
                            lock(&self.inner.ran_on).insert(step, worker.clone());
                        }
                        let _ = holder.send(Some((worker, token)));
                        if cancel_sent {
                            let _ = down.send(DownItem::Cancel);
                        }
                    }
                    Some(Arrival::Items(items)) => {
                        for item in items {
                            match item {
                                UpItem::OutcomePart(p) => text.push_str(&p),
                                UpItem::OutcomeEnd => {
                                    return wire::decode::<Outcome>(text.as_bytes())
                                        .map_err(|e| FollowEnd::Failed(format!("the worker's outcome cannot be read: {e}")));
                                }
                                UpItem::Log { path, text } => append_log(&path, &text).await,
                                other => on_item(other),
                            }
                        }
                    }
                },
            }
        }
    }

    fn link_step(&self, attempt: &str) -> Option<String> {
        lock(&self.inner.links)
            .get(attempt)
            .map(|l| l.offer.step.clone())
    }
}

/// How following an attempt ended without an outcome.
enum FollowEnd {
    CancelledQueued,
    Failed(String),
}

async fn append_log(path: &Path, text: &str) {
    let path = path.to_path_buf();
    let text = text.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path);
        if let Ok(mut f) = f {
            let _ = f.write_all(text.as_bytes());
        }
    })
    .await;
}

/// The run's dispatch log: `dispatch.jsonl` in the run directory, one line per offer,
/// grant, lapse, re-dispatch and refused result.
pub const DISPATCH_LOG: &str = "dispatch.jsonl";

fn open_log(run_dir: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(run_dir.join(DISPATCH_LOG))
        .ok()
}

fn note(run: &RunLink, mut line: serde_json::Value) {
    if let Some(o) = line.as_object_mut() {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        o.insert("tsMs".into(), ms.into());
    }
    if let Some(f) = lock(&run.log).as_mut() {
        let _ = writeln!(f, "{line}");
    }
}

async fn publish_offer(inner: &Inner, queue: &str, payload: Vec<u8>) -> Result<(), String> {
    let subject = names::work_subject(queue);
    // The server may be restarting: try for a while before failing the attempt.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = match inner
            .js
            .publish(subject.clone(), payload.clone().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("cannot put the attempt on queue {queue}: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Tells workers that this instance coordinates `run` now; waits (briefly) until the
/// workers that answered have ended what an earlier coordinator left running.
async fn fence(inner: &Inner, run: &str) {
    let expected = crate::status::list(&inner.client, Duration::from_millis(300))
        .await
        .len();
    if expected == 0 {
        return;
    }
    let inbox = inner.client.new_inbox();
    let Ok(mut sub) = inner.client.subscribe(inbox.clone()).await else {
        return;
    };
    let f = Fence {
        run: run.to_owned(),
        epoch: inner.epoch,
    };
    if inner
        .client
        .publish_with_reply(
            names::run_subject(run, "fence"),
            inbox,
            wire::encode(&f).into(),
        )
        .await
        .is_err()
    {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    while got < expected {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(_)) => got += 1,
            _ => break,
        }
    }
}

/// Starts the tasks answering workers about run `link.run`.
async fn start_service(
    inner: &Arc<Inner>,
    link: &Arc<RunLink>,
    socket: Option<PathBuf>,
) -> Result<(), String> {
    let sub = |what: &'static str| {
        let client = inner.client.clone();
        let subject = names::run_subject(&link.run, what);
        async move {
            client
                .subscribe(subject)
                .await
                .map_err(|e| format!("cannot listen for workers: {e}"))
        }
    };
    let mut claims = sub("claim").await?;
    let mut uploads = sub("up").await?;
    if let Some(sock) = socket {
        crate::pipe::serve(inner.client.clone(), &link.run, sock, inner.stop.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    // Listening before any offer goes out: the server has the subscriptions.
    crate::connect::round_trip(&inner.client)
        .await
        .map_err(|e| format!("cannot listen for workers: {e}"))?;
    let weak = Arc::downgrade(inner);
    let stop = inner.stop.clone();
    let l = link.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                m = claims.next() => {
                    let (Some(m), Some(inner)) = (m, weak.upgrade()) else { return };
                    on_claim(&inner, &l, m).await;
                }
                m = uploads.next() => {
                    let (Some(m), Some(inner)) = (m, weak.upgrade()) else { return };
                    on_upload(&inner, &l, m).await;
                }
                _ = tick.tick() => {
                    let Some(inner) = weak.upgrade() else { return };
                    on_tick(&inner, &l).await;
                }
            }
        }
    });
    Ok(())
}

/// Answers the socket requests agents on workers make for run `run` (see
/// [`crate::bridge`]) by putting them to the run's own socket at `socket`, until `stop`.
pub async fn relay_socket(
    client: async_nats::Client,
    run: &str,
    socket: PathBuf,
    stop: CancellationToken,
) -> Result<(), NatsError> {
    crate::pipe::serve(client, run, socket, stop).await
}

/// The task files (see [`relay_broker::cli_table::TASK_FILE`]) under `run_dir` that
/// arguments `args` name.
fn task_files(args: &[String], run_dir: &Path) -> Vec<PathBuf> {
    let dir = run_dir.display().to_string();
    let mut out = Vec::new();
    if dir.is_empty() {
        return out;
    }
    for a in args {
        for (at, _) in a.match_indices(&dir) {
            let rest = &a[at..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(['.', ',', ';', ':']);
            let p = Path::new(path);
            if p.file_name()
                .is_some_and(|f| f == relay_broker::cli_table::TASK_FILE)
                && !out.iter().any(|o: &PathBuf| o == p)
            {
                out.push(p.to_path_buf());
            }
        }
    }
    out
}

async fn respond(inner: &Inner, m: &async_nats::Message, body: Vec<u8>) {
    if let Some(reply) = m.reply.clone() {
        let _ = inner.client.publish(reply, body.into()).await;
    }
}

async fn on_claim(inner: &Inner, run: &RunLink, m: async_nats::Message) {
    let reply = match wire::decode::<Claim>(&m.payload) {
        Err(e) => ClaimReply::Refused {
            reason: format!("unreadable claim: {e}"),
        },
        Ok(c) if c.epoch != inner.epoch => ClaimReply::Refused {
            reason: "offered by an earlier coordinator of this run".into(),
        },
        Ok(c) => {
            let r = lock(&inner.leases).claim(&c.attempt, c.round, &c.worker, Instant::now());
            if let ClaimReply::Wait { after_ms } = &r {
                note(
                    run,
                    serde_json::json!({"event": "claim-deferred", "attempt": c.attempt, "worker": c.worker, "afterMs": after_ms}),
                );
            }
            if let ClaimReply::Granted { token, .. } = &r {
                note(
                    run,
                    serde_json::json!({"event": "granted", "attempt": c.attempt, "worker": c.worker, "token": token, "round": c.round}),
                );
                if let Some(l) = lock(&inner.links).get(&c.attempt) {
                    let _ = l.tx.send(Arrival::Granted {
                        worker: c.worker.clone(),
                        token: *token,
                    });
                }
            }
            r
        }
    };
    respond(inner, &m, wire::encode(&reply)).await;
}

async fn on_upload(inner: &Inner, run: &RunLink, m: async_nats::Message) {
    let reply = match wire::decode::<Upload>(&m.payload) {
        Err(e) => UploadReply::Fenced {
            reason: format!("unreadable upload: {e}"),
        },
        Ok(u) if u.epoch != inner.epoch => UploadReply::Fenced {
            reason: "the run has another coordinator now".into(),
        },
        Ok(u) => {
            let last = u.items.iter().any(|i| matches!(i, UpItem::OutcomeEnd));
            let report = Report {
                worker: &u.worker,
                token: u.token,
                seq: u.seq,
                count: u.items.len(),
                last,
            };
            let taken = lock(&inner.leases).upload(&u.attempt, report, Instant::now());
            match taken {
                Taken::Items { skip, reply } => {
                    if skip < u.items.len()
                        && let Some(l) = lock(&inner.links).get(&u.attempt)
                    {
                        let new: Vec<UpItem> = u.items.into_iter().skip(skip).collect();
                        let _ = l.tx.send(Arrival::Items(new));
                    }
                    reply
                }
                Taken::Refused { reply } => {
                    let why = match &reply {
                        UploadReply::Fenced { reason } => reason.clone(),
                        UploadReply::Ack { .. } => String::new(),
                    };
                    // A result, events, or a bare renewal from a worker that is no
                    // longer the holder: none of it counts.
                    let what = if last {
                        "result"
                    } else if u.items.is_empty() {
                        "renewal"
                    } else {
                        "events"
                    };
                    note(
                        run,
                        serde_json::json!({"event": "refused", "what": what, "attempt": u.attempt, "worker": u.worker, "token": u.token, "reason": why}),
                    );
                    reply
                }
            }
        }
    };
    respond(inner, &m, wire::encode(&reply)).await;
}

async fn on_tick(inner: &Inner, run: &RunLink) {
    let changes = lock(&inner.leases).tick(Instant::now());
    for c in changes {
        match c {
            Change::Lapsed { attempt, worker } => note(
                run,
                serde_json::json!({"event": "lapsed", "attempt": attempt, "worker": worker}),
            ),
            Change::Failed { attempt, reason } => {
                note(
                    run,
                    serde_json::json!({"event": "failed", "attempt": attempt, "reason": reason}),
                );
                if let Some(l) = lock(&inner.links).get(&attempt) {
                    let _ = l.tx.send(Arrival::Failed(reason));
                }
            }
            Change::Redispatch {
                attempt,
                round,
                reason,
            } => {
                note(
                    run,
                    serde_json::json!({"event": "redispatched", "attempt": attempt, "round": round, "reason": reason}),
                );
                let again = lock(&inner.links).get_mut(&attempt).map(|l| {
                    l.offer.round = round;
                    (l.need.queue(), wire::encode(&l.offer), l.tx.clone())
                });
                if let Some((queue, payload, tx)) = again
                    && let Err(e) = publish_offer(inner, &queue, payload).await
                {
                    let _ = tx.send(Arrival::Failed(e));
                }
            }
        }
    }
}

/// Sends the coordinator's items for one attempt to whoever holds it, in order, again
/// after a lost reply; messages not yet settled go to a new holder again.
async fn down_pump(
    client: async_nats::Client,
    attempt: AttemptId,
    mut holder: watch::Receiver<Option<(String, Token)>>,
    mut items: UnboundedReceiver<DownItem>,
    mut settled: UnboundedReceiver<MessageId>,
) {
    let mut outbox: Outbox<DownItem> = Outbox::default();
    let mut unsettled: BTreeMap<MessageId, Inbound> = BTreeMap::new();
    let mut cancelled = false;
    let mut current: Option<(String, Token)> = None;
    let mut retry = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            changed = holder.changed() => {
                if changed.is_err() { return; }
                let now = holder.borrow_and_update().clone();
                if now != current {
                    // A new holder starts from nothing: everything unsettled again.
                    current = now;
                    outbox = Outbox::default();
                    for m in unsettled.values() {
                        outbox.push(DownItem::Inbound(m.clone()), m.line.len() + 64);
                    }
                    if cancelled {
                        outbox.push(DownItem::Cancel, 16);
                    }
                }
            }
            item = items.recv() => match item {
                None => return,
                Some(item) => {
                    let size = match &item {
                        DownItem::Inbound(m) => {
                            unsettled.insert(m.id, m.clone());
                            m.line.len() + 64
                        }
                        DownItem::Cancel => { cancelled = true; 16 }
                    };
                    outbox.push(item, size);
                }
            },
            Some(id) = settled.recv() => { unsettled.remove(&id); }
            _ = retry.tick() => {}
        }
        let Some((worker, token)) = current.clone() else {
            continue;
        };
        if outbox.is_empty() {
            continue;
        }
        let (seq, batch) = outbox.batch(256 * 1024);
        let down = Down {
            attempt: attempt.clone(),
            token,
            seq,
            items: batch,
        };
        let req = async_nats::Request::new()
            .payload(wire::encode(&down).into())
            .timeout(Some(Duration::from_secs(2)));
        if let Ok(reply) = client.send_request(names::down_subject(&worker), req).await
            && let Ok(DownReply::Ack { next_seq }) = wire::decode::<DownReply>(&reply.payload)
        {
            outbox.acked(next_seq);
        }
    }
}

fn spawn_pump(
    inner: &Inner,
    attempt: &AttemptId,
    holder: &watch::Sender<Option<(String, Token)>>,
) -> (
    UnboundedSender<DownItem>,
    UnboundedSender<MessageId>,
    tokio::task::JoinHandle<()>,
) {
    let (items_tx, items_rx) = mpsc::unbounded_channel();
    let (settled_tx, settled_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(down_pump(
        inner.client.clone(),
        attempt.clone(),
        holder.subscribe(),
        items_rx,
        settled_rx,
    ));
    (items_tx, settled_tx, task)
}

fn cancelled_process() -> ProcessOutcome {
    ProcessOutcome {
        end: ProcessEnd::Cancelled,
        exit_code: None,
        signal: None,
        stdout: String::new(),
        dropped: 0,
        pgid: 0,
        usage: None,
        model: None,
        session: None,
    }
}

impl Launcher for NatsLauncher {
    async fn end_kept(&self, run: &str, agent: Option<&str>) {
        self.inner.local.end_kept(run, agent).await;
    }

    fn can_run(&self, program: &str) -> bool {
        self.offers_program(program)
    }

    fn placement(&self, label: &str) -> Option<String> {
        self.worker_of(label)
    }

    fn looked_for_clis(&self) -> String {
        match lock(&self.inner.workers).len() {
            0 => "not found on PATH here, and no worker answered".into(),
            1 => "not found on PATH here or on the worker that answered".into(),
            n => format!("not found on PATH here or on any of the {n} workers that answered"),
        }
    }

    fn unplaced(&self, agent: &str, program: &str) -> Option<String> {
        if runs_here(program) {
            return None;
        }
        unplaced(
            agent,
            &self.agent_need(agent, program),
            &lock(&self.inner.workers),
            self.inner.opts.timing.lease.queue_timeout,
        )
    }

    fn message_transport(&self, run_id: &str) -> Option<Arc<dyn relay_messaging::Transport>> {
        Some(Arc::new(crate::transport::NatsTransport::new(
            self.inner.client.clone(),
            run_id,
            self.inner.epoch,
            self.inner.opts.timing.ack_wait,
        )))
    }

    async fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> Result<ProcessOutcome, ProcessError> {
        let place = self.place(&spec.program, &spec.env);
        if matches!(place, Place::Here) {
            return self.inner.local.run_process(spec, cancel, spawned).await;
        }
        let program = spec.program.clone();
        let env = spec.env.clone();
        let failed = |reason: String| ProcessError::Spawn {
            program: program.clone(),
            reason,
        };
        let (attempt, rx, holder) = self
            .dispatch(Work::Process(spec), &env, place)
            .await
            .map_err(failed)?;
        let (down, _settled, pump) = spawn_pump(&self.inner, &attempt, &holder);
        let res = self
            .follow(
                &attempt,
                rx,
                holder,
                &cancel,
                |item| {
                    if let UpItem::Spawned(pgid) = item {
                        let _ = spawned.send(pgid);
                    }
                },
                down,
            )
            .await;
        pump.abort();
        self.finish(&attempt);
        match res {
            Ok(Outcome::Process(r)) => r,
            Ok(Outcome::Session(_)) => Err(failed("the worker answered with a session".into())),
            Err(FollowEnd::CancelledQueued) => Ok(cancelled_process()),
            Err(FollowEnd::Failed(why)) => Err(failed(why)),
        }
    }

    async fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
        inbox: Option<Receiver<Inbound>>,
    ) -> Result<SessionOutcome, SessionError> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let place = self.place(&program, &spec.env);
        if matches!(place, Place::Here) {
            return self
                .inner
                .local
                .run_session(spec, cancel, events, inbox)
                .await;
        }
        let env = spec.env.clone();
        let failed = |reason: String| SessionError::Spawn {
            program: program.clone(),
            reason,
        };
        // A terminal is kept open between steps only where the coordinator can end it.
        let spec = SessionSpec {
            carry: None,
            ..spec
        };
        let (attempt, rx, holder) = self
            .dispatch(Work::Session(spec), &env, place)
            .await
            .map_err(failed)?;
        let (down, settled, pump) = spawn_pump(&self.inner, &attempt, &holder);
        // Messages offered to the session travel to its worker.
        let forward = inbox.map(|mut inbox| {
            let down = down.clone();
            tokio::spawn(async move {
                while let Some(m) = inbox.recv().await {
                    if down.send(DownItem::Inbound(m)).is_err() {
                        return;
                    }
                }
            })
        });
        let res = self
            .follow(
                &attempt,
                rx,
                holder,
                &cancel,
                |item| {
                    if let UpItem::Session(ev) = item {
                        if let SessionEvent::MessageDelivered { id }
                        | SessionEvent::MessageNotDelivered { id, .. } = &ev
                        {
                            let _ = settled.send(*id);
                        }
                        let _ = events.send(ev);
                    }
                },
                down,
            )
            .await;
        pump.abort();
        if let Some(f) = forward {
            f.abort();
        }
        self.finish(&attempt);
        match res {
            Ok(Outcome::Session(r)) => r,
            Ok(Outcome::Process(_)) => Err(failed("the worker answered with a process".into())),
            Err(FollowEnd::CancelledQueued) => Ok(SessionOutcome {
                end: relay_broker::session::SessionEnd::Cancelled,
                exit_code: None,
                output: String::new(),
            }),
            Err(FollowEnd::Failed(why)) => Err(failed(why)),
        }
    }
}

/// Whether `program` always runs on this machine: a path is the rehearsal agent (this
/// binary) or a program of this machine.
fn runs_here(program: &str) -> bool {
    program.contains('/')
}

/// Why agent `agent`'s attempts, which need `need`, will wait on their queue: none of
/// `workers` (those that answered when the run connected) meets it. Says what each
/// lacks, and how long an attempt waits for a worker that does.
fn unplaced(
    agent: &str,
    need: &Need,
    workers: &[WorkerStatus],
    queue_timeout: Duration,
) -> Option<String> {
    if workers.iter().any(|w| w.offer.meets(need)) {
        return None;
    }
    let seen = if workers.is_empty() {
        "no worker answered when the run started".to_owned()
    } else {
        let each: Vec<String> = workers
            .iter()
            .map(|w| format!("{} has {}", w.name, w.offer.lacks(need).join(", ")))
            .collect();
        format!(
            "none of the workers that answered has it ({})",
            each.join("; ")
        )
    };
    Some(format!(
        "agent `{agent}` needs a worker with {}: {seen}; its steps wait up to {} for one \
         to join (`agent-relay workers` lists them)",
        need.describe(),
        crate::lease::seconds(queue_timeout)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_no_worker_can_run_is_said_with_what_each_lacks() {
        let worker = |name: &str, clis: &[&str], labels: &[(&str, &str)]| WorkerStatus {
            name: name.into(),
            instance: "i".into(),
            host: "h".into(),
            pid: 1,
            capacity: 2,
            free: 2,
            offer: crate::caps::Offer {
                clis: clis.iter().map(|c| (*c).to_owned()).collect(),
                shell: true,
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            running: Vec::new(),
        };
        let need = Need {
            cli: Some("claude".into()),
            labels: [("gpu".to_owned(), "yes".to_owned())].into(),
        };
        let wait = Duration::from_secs(600);
        let w1 = worker("w1", &[], &[]);
        let w2 = worker("w2", &["claude"], &[("gpu", "no")]);
        let why = unplaced("builder", &need, &[w1.clone(), w2.clone()], wait).unwrap();
        assert_eq!(
            why,
            "agent `builder` needs a worker with claude gpu=yes: none of the workers that \
             answered has it (w1 has no claude, no gpu label; w2 has gpu=no); its steps wait \
             up to 600 s for one to join (`agent-relay workers` lists them)"
        );
        let why = unplaced("builder", &need, &[], wait).unwrap();
        assert!(
            why.contains("no worker answered when the run started"),
            "{why}"
        );
        // One worker that meets it is enough.
        let w3 = worker("w3", &["claude", "codex"], &[("gpu", "yes"), ("zone", "a")]);
        assert_eq!(unplaced("builder", &need, &[w1, w2, w3], wait), None);
    }

    #[test]
    fn the_task_file_an_argument_points_to_is_found() {
        let run = Path::new("/p/.agent-relay/runs/r1");
        let args = vec![
            "exec".to_string(),
            "Your task is too long for the command line; it is in the file \
             /p/.agent-relay/runs/r1/steps/s/task.md. Read that file and do what it says."
                .to_string(),
        ];
        assert_eq!(
            task_files(&args, run),
            [PathBuf::from("/p/.agent-relay/runs/r1/steps/s/task.md")]
        );
        // Other files of the run, and task files elsewhere, are not carried.
        let other = vec![
            "/p/.agent-relay/runs/r1/steps/s/output.txt".to_string(),
            "/elsewhere/task.md".to_string(),
        ];
        assert!(task_files(&other, run).is_empty());
    }
}
