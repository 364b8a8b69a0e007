//! The HTTP side: routes, the token check in front of every one of them, the JSON API,
//! the live stream (server-sent events) and the actions. Handlers only move data: views
//! come from `view` and `screen`, built on blocking threads, never on the run's own.
//!
//! ```text
//! GET  /  /runs/ID  /runs/ID/steps/STEP      the page (one document; it draws by path)
//! GET  /api/runs                             runs in this directory
//! GET  /api/runs/ID                          one run (steps, graph, attempts, messages, ...)
//! GET  /api/runs/ID/steps/STEP               one step or node (outputs, stderr, attempts)
//! GET  /api/runs/ID/steps/STEP/screen        its terminal screen now
//! GET  /api/runs/stream, /api/runs/ID/stream, /api/runs/ID/steps/STEP/stream   live (SSE)
//! POST /api/runs/ID/cancel | answer {step,text} | send {to,text}
//! ```
//! Every request needs `?t=TOKEN` (or `Authorization: Bearer TOKEN`); without it: 401.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relay_engine::runs::{self, RunInfo};
use relay_engine::snapshot::StepState;
use serde::{Deserialize, Serialize};

use crate::actions::{self, ActionError};
use crate::screen::Terminal;
use crate::token::Token;
use crate::view;

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
    /// How often a live stream looks for changes.
    pub poll: Duration,
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

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(self.listener, router(self.config))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Io)
    }
}

/// The URL of `path` on `addr` with `token`.
pub fn url(addr: SocketAddr, token: &Token, path: &str) -> String {
    format!("http://{addr}{path}?t={}", token.as_str())
}

type Shared = Arc<Config>;

/// Every route, behind the token check.
pub fn router(config: Config) -> Router {
    let shared: Shared = Arc::new(config);
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

/// One row of the runs page.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    /// Run id.
    pub run_id: String,
    /// Workflow.
    pub workflow: String,
    /// Where it stands.
    pub status: runs::Standing,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took, when finished.
    pub duration_ms: Option<u64>,
    /// Steps in the workflow.
    pub steps: usize,
    /// Steps completed.
    pub done: usize,
    /// Steps failed.
    pub failed: usize,
    /// Steps running.
    pub running: usize,
}

impl From<&RunInfo> for RunRow {
    fn from(r: &RunInfo) -> Self {
        let count = |st: StepState| r.steps.iter().filter(|s| s.status == st).count();
        RunRow {
            run_id: r.run_id.clone(),
            workflow: r.workflow.clone(),
            status: r.status,
            started_at: r.started_at.clone(),
            duration_ms: r.duration_ms,
            steps: r.steps.len(),
            done: count(StepState::Completed),
            failed: count(StepState::Failed),
            running: count(StepState::Running),
        }
    }
}

fn run_rows(workdir: &Path) -> Vec<RunRow> {
    runs::list_runs(workdir).iter().map(RunRow::from).collect()
}

async fn api_runs(State(cfg): State<Shared>) -> Result<Json<Vec<RunRow>>, Failure> {
    let wd = cfg.workdir.clone();
    Ok(Json(blocking(move || run_rows(&wd)).await?))
}

async fn api_run(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<view::RunView>, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(Json(blocking(move || view::run_view(&dir)).await?))
}

async fn api_step(
    State(cfg): State<Shared>,
    UrlPath((id, step)): UrlPath<(String, String)>,
) -> Result<Json<view::StepDetail>, Failure> {
    let dir = find(&cfg, &id)?;
    blocking(move || view::step_detail(&dir, &step))
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
        let detail = view::step_detail(&dir, &step)?;
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

/// Size and change time of files: what a live stream compares between looks.
type Stamp = Vec<Option<(u64, SystemTime)>>;

fn stamp(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// Something a live stream looks at; `look` runs on a blocking thread and returns the
/// events to send (none when nothing changed).
trait Source: Send + 'static {
    fn look(&mut self) -> Vec<SseEvent>;
}

fn json_event(name: &str, value: &impl Serialize) -> Option<SseEvent> {
    SseEvent::default().event(name).json_data(value).ok()
}

struct RunsSource {
    workdir: PathBuf,
    last: Option<Stamp>,
}

impl Source for RunsSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let root = relay_engine::store::runs_root(&self.workdir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path().join("events.jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        // Runs end by their lock going away as well as by an event.
        let locks: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| Some(relay_engine::lock::lock_path(f.parent()?)))
            .collect();
        files.extend(locks);
        let now = stamp(&files);
        if self.last.as_ref() == Some(&now) {
            return vec![];
        }
        self.last = Some(now);
        json_event("runs", &run_rows(&self.workdir))
            .into_iter()
            .collect()
    }
}

struct RunSource {
    dir: PathBuf,
    last: Option<Stamp>,
}

fn run_files(dir: &Path) -> Vec<PathBuf> {
    vec![
        dir.join("events.jsonl"),
        dir.join(relay_messaging::persist::MESSAGES_FILE),
        relay_engine::lock::lock_path(dir),
    ]
}

impl Source for RunSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let now = stamp(&run_files(&self.dir));
        if self.last.as_ref() == Some(&now) {
            return vec![];
        }
        self.last = Some(now);
        json_event("run", &view::run_view(&self.dir))
            .into_iter()
            .collect()
    }
}

struct StepSource {
    dir: PathBuf,
    step: String,
    size: (u16, u16),
    last: Option<Stamp>,
    terminal: Option<Terminal>,
}

impl Source for StepSource {
    fn look(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let now = stamp(&run_files(&self.dir));
        let mut attempts = self.terminal.as_ref().map(|t| t.view().attempt);
        if self.last.as_ref() != Some(&now) {
            self.last = Some(now);
            if let Some(d) = view::step_detail(&self.dir, &self.step) {
                attempts = d
                    .attempts
                    .iter()
                    .rev()
                    .find(|a| a.transcript)
                    .map(|a| a.attempt);
                out.extend(json_event("step", &d));
            }
        }
        let sdir = relay_engine::store::step_dir_of(&self.dir, &self.step);
        if let Some(n) =
            attempts.filter(|&n| self.terminal.as_ref().map(|t| t.view().attempt) != Some(n))
        {
            self.terminal = Some(Terminal::of_attempt(&sdir, n, self.size));
        }
        if let Some(t) = &mut self.terminal {
            let mut grew = false;
            while t.refresh().unwrap_or(false) {
                grew = true;
            }
            if grew {
                out.extend(json_event("screen", &t.view()));
            }
        }
        out
    }
}

/// The live stream of `source`: it looks every `poll` and sends what changed, for as
/// long as the page stays connected (a closed page drops the stream and the looking).
fn live(
    source: impl Source,
    poll: Duration,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (Some(source), tick, VecDeque::<SseEvent>::new());
    let stream = futures_util::stream::unfold(state, |(mut src, mut tick, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                return Some((Ok(e), (src, tick, queue)));
            }
            tick.tick().await;
            let mut s = src.take()?;
            let (back, events) = tokio::task::spawn_blocking(move || {
                let events = s.look();
                (s, events)
            })
            .await
            .ok()?;
            src = Some(back);
            queue.extend(events);
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn stream_runs(State(cfg): State<Shared>) -> impl IntoResponse {
    live(
        RunsSource {
            workdir: cfg.workdir.clone(),
            last: None,
        },
        cfg.poll,
    )
}

async fn stream_run(
    State(cfg): State<Shared>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(live(RunSource { dir, last: None }, cfg.poll).into_response())
}

async fn stream_step(
    State(cfg): State<Shared>,
    UrlPath((id, step)): UrlPath<(String, String)>,
) -> Result<Response, Failure> {
    let dir = find(&cfg, &id)?;
    Ok(live(
        StepSource {
            dir,
            step,
            size: cfg.pty_size,
            last: None,
            terminal: None,
        },
        cfg.poll,
    )
    .into_response())
}
