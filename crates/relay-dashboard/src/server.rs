//! The HTTP side: routes, the token check in front of every one of them, the JSON API,
//! the live streams (server-sent events) and the actions. Handlers only move data: views
//! come from `follow`, `runs_list` and `screen`, built on blocking threads, never on the
//! run's own.
//!
//! A live stream sends the whole view once, then only what changed (`patch`). It looks
//! at the run directory when the kernel says a file that matters changed (`wake`), at
//! most once per `Config::interval` however many writes a burst makes, and reads only
//! what the files gained (`tail`). A live run is also looked at every few seconds, since
//! a coordinator that dies leaves no file event.
//!
//! ```text
//! GET  /  /runs/ID  /runs/ID/steps/STEP      the page (one document; it draws by path)
//! GET  /api/runs                             runs in this directory
//! GET  /api/runs/ID                          one run (steps, graph, attempts, messages, ...)
//! GET  /api/runs/ID/steps/STEP               one step or node (outputs, stderr, attempts)
//! GET  /api/runs/ID/steps/STEP/screen        its terminal screen now
//! GET  /api/runs/stream, /api/runs/ID/stream, /api/runs/ID/steps/STEP/stream   live (SSE)
//! POST /api/runs/ID/cancel | answer {step,text} | send {to,text}
//!      | decide {step,approved,reason?,by?} | pause {paused,by?}
//! ```
//! Streams: runs page `runs` (all rows) then `rows` ({changed, removed}); run page `run`
//! (the whole view) then `patch` (a `RunPatch`), or `run` again when the log was
//! replaced; agent page `step` (its detail, when it changed) and `screen` (a
//! `ScreenPatch`).
//! Every request needs `?t=TOKEN` (or `Authorization: Bearer TOKEN`); without it: 401.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relay_engine::runs::{self, Standing};
use serde::{Deserialize, Serialize};

use crate::actions::{self, ActionError};
use crate::follow::{self, RunModel};
use crate::patch::{self, Change};
use crate::runs_list::{RunRow, RunsList};
use crate::screen::{Sent, Terminal};
use crate::token::Token;
use crate::view::{RunView, StepDetail};
use crate::wake::{Wake, Watched};

/// The page: markup, style and script, all in the binary.
const PAGE: &str = concat!(
    include_str!("../assets/head.html"),
    "<style>",
    include_str!("../assets/style.css"),
    "</style></head><body><div id=\"app\">loading…</div><script>",
    include_str!("../assets/app.js"),
    "</script></body></html>"
);

/// What a server serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory whose `.agent-relay/runs` it shows.
    pub workdir: PathBuf,
    /// The access token.
    pub token: Token,
    /// TERM → KILL grace when cancelling.
    pub kill_grace: Duration,
    /// Terminal size of sessions, for drawing their screens.
    pub pty_size: (u16, u16),
    /// The shortest time between two looks of a live stream: a burst of writes is one
    /// look. Without change notifications, how often it looks.
    pub interval: Duration,
    /// Who approves, rejects and pauses from a page that does not say.
    pub user: String,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port is taken or not allowed.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// The token could not be made.
    #[error("cannot make an access token: {0}")]
    Token(std::io::Error),
    /// Serving failed.
    #[error("the dashboard stopped: {0}")]
    Io(std::io::Error),
}

/// A listening dashboard.
pub struct Listening {
    listener: tokio::net::TcpListener,
    config: Config,
    addr: SocketAddr,
}

impl Listening {
    /// Binds 127.0.0.1:`port` (0 for any free port).
    pub async fn bind(port: u16, config: Config) -> Result<Listening, ServeError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| ServeError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { port, source })?;
        Ok(Listening {
            listener,
            config,
            addr,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its access token.
    pub fn token(&self) -> &Token {
        &self.config.token
    }

    /// The URL of `path` (starting with `/`) with the token.
    pub fn url(&self, path: &str) -> String {
        url(self.addr, &self.config.token, path)
    }

    /// Serves until `shutdown` resolves; then every live stream takes a last look,
    /// sends what it found and a `bye`, and ends, so open pages show how the run ended.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let served = Served {
            config: self.config,
            stopping: stopping.clone(),
        };
        axum::serve(self.listener, routes(Arc::new(served)))
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop.send(true);
            })
            .await
            .map_err(ServeError::Io)
    }
}

/// The URL of `path` on `addr` with `token`.
pub fn url(addr: SocketAddr, token: &Token, path: &str) -> String {
    format!("http://{addr}{path}?t={}", token.as_str())
}

/// What the handlers share: the configuration, and word that the server is stopping.
struct Served {
    config: Config,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl std::ops::Deref for Served {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

type Shared = Arc<Served>;

/// Every route, behind the token check (its streams are never told to stop).
pub fn router(config: Config) -> Router {
    let (_, stopping) = tokio::sync::watch::channel(false);
    routes(Arc::new(Served { config, stopping }))
}

fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/runs/{id}", get(page))
        .route("/runs/{id}/steps/{step}", get(page))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/stream", get(stream_runs))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/runs/{id}/stream", get(stream_run))
        .route("/api/runs/{id}/steps/{step}", get(api_step))
        .route("/api/runs/{id}/steps/{step}/screen", get(api_screen))
        .route("/api/runs/{id}/steps/{step}/stream", get(stream_step))
        .route("/api/runs/{id}/cancel", post(act_cancel))
        .route("/api/runs/{id}/answer", post(act_answer))
        .route("/api/runs/{id}/send", post(act_send))
        .route("/api/runs/{id}/decide", post(act_decide))
        .route("/api/runs/{id}/pause", post(act_pause))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Refuses a request without the token; marks every answer uncacheable and keeps the
/// token (in the URL) out of referrers.
async fn guard(State(cfg): State<Shared>, req: Request, next: Next) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !cfg.token.admits(req.uri().query(), auth) {
        return (
            StatusCode::UNAUTHORIZED,
            "this dashboard needs its access token: open the URL `agent-relay serve` printed\n",
        )
            .into_response();
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    res
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// An error a person reads, with its status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({"error": self.1}))).into_response()
    }
}

impl From<ActionError> for Failure {
    fn from(e: ActionError) -> Self {
        let code = match &e {
            ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
            ActionError::NotLive(_) => StatusCode::CONFLICT,
            ActionError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(code, e.to_string())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    })
}

fn find(cfg: &Config, id: &str) -> Result<PathBuf, Failure> {
    runs::find_run(&cfg.workdir, id).map_err(|e| Failure(StatusCode::NOT_FOUND, e.to_string()))
}

fn run_rows(workdir: &std::path::Path) -> Vec<RunRow> {
    RunsList::read(workdir).rows()
}

async fn api_runs(State(cfg): State<Shared>) -> Result<Json<Vec<RunRow>>, Failure> {
    let wd = cfg.workdir.clone();
    Ok(Json(blocking(move || run_rows(&wd)).await?))
}

async fn api_run(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<RunView>, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(Json(blocking(move || follow::run_view(&dir)).await?))
}

async fn api_step(
    State(cfg): State<Shared>,
    UrlPath((id, step)): UrlPath<(String, String)>,
) -> Result<Json<StepDetail>, Failure> {
    let dir = find(&cfg, &id)?;
    blocking(move || follow::step_detail(&dir, &step))
        .await?
        .map(Json)
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no such step in this run".into()))
}

#[derive(Deserialize)]
struct ScreenQuery {
    attempt: Option<u32>,
}

async fn api_screen(
    State(cfg): State<Shared>,
    UrlPath((id, step)): UrlPath<(String, String)>,
    Query(q): Query<ScreenQuery>,
) -> Result<Response, Failure> {
    let dir = find(&cfg, &id)?;
    let size = cfg.pty_size;
    let shown = blocking(move || {
        let detail = follow::step_detail(&dir, &step)?;
        let attempt = q.attempt.unwrap_or(detail.attempts.len() as u32).max(1);
        let mut t = Terminal::of_attempt(
            &relay_engine::store::step_dir_of(&dir, &step),
            attempt,
            size,
        );
        while t.refresh().unwrap_or(false) {}
        Some(t.view())
    })
    .await?;
    shown
        .map(|v| Json(v).into_response())
        .ok_or_else(|| Failure(StatusCode::NOT_FOUND, "no such step in this run".into()))
}

#[derive(Deserialize)]
struct AnswerBody {
    step: String,
    text: String,
}

#[derive(Deserialize)]
struct SendBody {
    to: String,
    text: String,
}

#[derive(Deserialize)]
struct DecideBody {
    step: String,
    approved: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

#[derive(Deserialize)]
struct PauseBody {
    paused: bool,
    #[serde(default)]
    by: Option<String>,
}

/// The name a decision is recorded under: the page's, else the server's user.
fn who(cfg: &Config, by: Option<String>) -> String {
    by.map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| cfg.user.clone())
}

fn done(message: String) -> Json<serde_json::Value> {
    Json(serde_json::json!({"ok": message}))
}

async fn act_cancel(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(done(actions::cancel(&dir, cfg.kill_grace).await?))
}

async fn act_answer(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<AnswerBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(done(actions::answer(&dir, body.step, body.text).await?))
}

async fn act_send(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<SendBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(done(actions::send(&dir, body.to, body.text).await?))
}

async fn act_decide(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<DecideBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let dir = find(&cfg, &id)?;
    let by = who(&cfg, body.by);
    Ok(done(
        actions::decide(&dir, body.step, body.approved, by, body.reason).await?,
    ))
}

async fn act_pause(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<PauseBody>,
) -> Result<Json<serde_json::Value>, Failure> {
    let dir = find(&cfg, &id)?;
    let by = who(&cfg, body.by);
    Ok(done(actions::pause(&dir, body.paused, by).await?))
}

/// Something a live stream follows. `look` runs on a blocking thread and returns the
/// events to send (none when nothing changed).
trait Source: Send + 'static {
    fn look(&mut self) -> Vec<SseEvent>;
    /// The directories whose changes matter now.
    fn watched(&self) -> Vec<Watched>;
    /// Whether it may change without a file event telling (a live run's coordinator can
    /// die without a word).
    fn live(&self) -> bool;
}

fn json_event(name: &str, value: &impl Serialize) -> Option<SseEvent> {
    SseEvent::default().event(name).json_data(value).ok()
}

/// The runs page: every row first, then the rows that changed.
struct RunsSource {
    workdir: PathBuf,
    list: Option<RunsList>,
    watched: Vec<Watched>,
}

impl RunsSource {
    fn new(workdir: PathBuf) -> RunsSource {
        let dot = workdir.join(".agent-relay");
        let root = relay_engine::store::runs_root(&workdir);
        let watched = vec![
            Watched::only(workdir.clone(), &[".agent-relay"]),
            Watched::only(dot, &["runs"]),
            Watched::all(root),
        ];
        RunsSource {
            workdir,
            list: None,
            watched,
        }
    }
}

impl Source for RunsSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let out = match &mut self.list {
            None => {
                let list = RunsList::read(&self.workdir);
                let e = json_event("runs", &list.rows());
                self.list = Some(list);
                e
            }
            Some(list) => {
                let change = list.refresh();
                if change.is_empty() {
                    None
                } else {
                    json_event("rows", &change)
                }
            }
        };
        // Every run directory, listed or not yet (its log may not be there yet).
        let root = relay_engine::store::runs_root(&self.workdir);
        self.watched.truncate(3);
        if let Ok(rd) = std::fs::read_dir(&root) {
            self.watched.extend(
                rd.flatten()
                    .map(|e| Watched::only(e.path(), &["events.jsonl", "lock"])),
            );
        }
        out.into_iter().collect()
    }

    fn watched(&self) -> Vec<Watched> {
        self.watched.clone()
    }

    fn live(&self) -> bool {
        self.list.as_ref().is_some_and(RunsList::any_live)
    }
}

/// A run page: the whole view first, then what changed.
struct RunSource {
    dir: PathBuf,
    model: Option<RunModel>,
    last: Option<RunView>,
}

impl Source for RunSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let changed = match &mut self.model {
            Some(m) => m.refresh(),
            None => {
                self.model = Some(RunModel::open(&self.dir));
                true
            }
        };
        let Some(model) = self.model.as_ref().filter(|_| changed) else {
            return vec![];
        };
        let new = model.view();
        let event = match self.last.as_ref().map(|old| patch::diff(old, &new)) {
            None | Some(Change::Full) => json_event("run", &new),
            Some(Change::Patch(p)) => json_event("patch", &p),
            Some(Change::None) => None,
        };
        self.last = Some(new);
        event.into_iter().collect()
    }

    fn watched(&self) -> Vec<Watched> {
        vec![Watched::only(self.dir.clone(), &follow::FOLLOWED)]
    }

    fn live(&self) -> bool {
        self.last
            .as_ref()
            .is_none_or(|v| v.status == Standing::Running)
    }
}

/// An agent page: its detail when it changed, its terminal as it changes.
struct StepSource {
    dir: PathBuf,
    step: String,
    size: (u16, u16),
    model: Option<RunModel>,
    last: Option<StepDetail>,
    terminal: Option<Terminal>,
    sent: Sent,
}

impl StepSource {
    fn new(dir: PathBuf, step: String, size: (u16, u16)) -> StepSource {
        StepSource {
            dir,
            step,
            size,
            model: None,
            last: None,
            terminal: None,
            sent: Sent::default(),
        }
    }
}

impl Source for StepSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let changed = match &mut self.model {
            Some(m) => m.refresh(),
            None => {
                self.model = Some(RunModel::open_states(&self.dir));
                true
            }
        };
        // Until its terminal is found, a transcript appearing is news too.
        if (changed || self.terminal.is_none())
            && let Some(d) = self.model.as_ref().and_then(|m| m.step_detail(&self.step))
            && self.last.as_ref() != Some(&d)
        {
            out.extend(json_event("step", &d));
            self.last = Some(d);
        }
        let want = self.last.as_ref().and_then(|d| {
            d.attempts
                .iter()
                .rev()
                .find(|a| a.transcript)
                .map(|a| a.attempt)
        });
        if let Some(n) = want.filter(|&n| self.terminal.as_ref().map(Terminal::attempt) != Some(n))
        {
            let sdir = relay_engine::store::step_dir_of(&self.dir, &self.step);
            self.terminal = Some(Terminal::of_attempt(&sdir, n, self.size));
        }
        if let Some(t) = &mut self.terminal {
            while t.refresh().unwrap_or(false) {}
            if let Some(p) = t.patch(&mut self.sent) {
                out.extend(json_event("screen", &p));
            }
        }
        out
    }

    fn watched(&self) -> Vec<Watched> {
        vec![
            Watched::only(self.dir.clone(), &follow::FOLLOWED),
            Watched::all(relay_engine::store::step_dir_of(&self.dir, &self.step)),
        ]
    }

    fn live(&self) -> bool {
        self.last.as_ref().is_none_or(|d| d.live)
    }
}

/// How often a live run is looked at with no file event: a coordinator that dies
/// leaves none.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// How long a finished run's stream waits with no file event before it looks anyway.
const IDLE: Duration = Duration::from_secs(60);

/// A live stream's state between two events sent.
struct Follow<S> {
    src: Option<S>,
    wake: Wake,
    queue: VecDeque<SseEvent>,
    last_look: Option<tokio::time::Instant>,
    /// A watch was added after the last look: look again without waiting for news.
    again: bool,
    /// The server is stopping: one last look, then the stream ends.
    ending: bool,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// The live stream of `source`: it looks when something it watches changed (at most
/// once per `interval`) and sends what changed, for as long as the page stays connected
/// (a closed page drops the stream, its watches and the looking).
fn live(
    source: impl Source,
    interval: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut wake = Wake::new(interval);
    for w in source.watched() {
        wake.watch(&w);
    }
    let state = Follow {
        src: Some(source),
        wake,
        queue: VecDeque::new(),
        last_look: None,
        again: false,
        ending: false,
        stopping,
    };
    let stream = futures_util::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(e) = st.queue.pop_front() {
                return Some((Ok(e), st));
            }
            if st.ending {
                return None;
            }
            if let Some(last) = st.last_look {
                if !st.again {
                    let quiet = if st.src.as_ref()?.live() {
                        HEARTBEAT
                    } else {
                        IDLE
                    };
                    let stopping = &mut st.stopping;
                    let stop = async {
                        // A server that never stops drops its sender: wait for ever.
                        if stopping.wait_for(|s| *s).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    };
                    tokio::select! {
                        _ = st.wake.changed(tokio::time::Instant::now() + quiet) => {}
                        _ = stop => st.ending = true,
                    }
                }
                if !st.ending {
                    // A burst of writes is one look.
                    tokio::time::sleep_until(last + interval).await;
                }
                st.wake.drain();
            }
            let mut s = st.src.take()?;
            let (s, events) = tokio::task::spawn_blocking(move || {
                let events = s.look();
                (s, events)
            })
            .await
            .ok()?;
            st.again = false;
            for w in s.watched() {
                st.again |= st.wake.watch(&w);
            }
            st.src = Some(s);
            st.queue.extend(events);
            if st.ending {
                // The last look of a stopping server, then word that nothing follows.
                st.queue.extend(json_event("bye", &serde_json::json!({})));
            }
            st.last_look = Some(tokio::time::Instant::now());
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn stream_runs(State(cfg): State<Shared>) -> impl IntoResponse {
    live(
        RunsSource::new(cfg.workdir.clone()),
        cfg.interval,
        cfg.stopping.clone(),
    )
}

async fn stream_run(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Failure> {
    let dir = find(&cfg, &id)?;
    let src = RunSource {
        dir,
        model: None,
        last: None,
    };
    Ok(live(src, cfg.interval, cfg.stopping.clone()).into_response())
}

async fn stream_step(
    State(cfg): State<Shared>,
    UrlPath((id, step)): UrlPath<(String, String)>,
) -> Result<Response, Failure> {
    let dir = find(&cfg, &id)?;
    let src = StepSource::new(dir, step, cfg.pty_size);
    Ok(live(src, cfg.interval, cfg.stopping.clone()).into_response())
}
