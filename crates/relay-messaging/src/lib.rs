//! Agent messaging: the embedded broker of a run.
//!
//! ```text
//!  agent-relay send / inbox / board / state / claim ──► unix socket (server.rs) ──┐
//!  `->relay:` lines a session or a one-shot agent printed ─────────┤
//!                                                                   ▼
//!        Router (router.rs): registry, channels, policy, ids ──► messages.jsonl (persist.rs)
//!                                                                   │ one envelope per recipient
//!                                                                   ▼
//!        Transport (transport.rs; InProcess now, a networked one later)
//!                                                                   │ claim / ack
//!                                                                   ▼
//!        terminal sessions (typed in, confirmed on screen) · one-shot tasks · `inbox`
//! ```
//!
//! A message for several recipients becomes one envelope per recipient, each with its own
//! id and state: `queued`, then `delivered` (typed into a terminal and confirmed, or put
//! in a one-shot task), `read` (taken with `inbox`) or `failed` with a reason. Every
//! change is a line of `messages.jsonl`.
//!
//! The same socket serves the run's shared state (`relay-state`; the board is that
//! state) and its file claims, so agents reach Redis or SQLite through the broker and
//! need no credentials of their own.

pub mod access;
pub mod client;
pub mod control;
pub mod lines;
pub mod model;
pub mod persist;
pub mod protocol;
pub mod router;
pub mod sanitize;
pub mod server;
pub mod topology;
pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use lines::RelayLine;
pub use model::{
    AgentInfo, AgentState, Envelope, MessageId, MessageState, Receipt, Record, Target,
};
pub use relay_state::{Claims, Entry, State};
pub use router::{Delivery, InboxError, PolicyHandle, Router, RouterConfig, SendError, feed};
pub use topology::Topology;
pub use transport::{InProcess, Transport};

/// The environment variable that tells agents and steps where the run's socket is.
pub const SOCKET_ENV: &str = "AGENT_RELAY_SOCKET";

/// The socket file name in the run directory.
pub const SOCKET_FILE: &str = "relay.sock";

/// Longest socket path the platform takes (`sun_path` less its terminating NUL), with
/// some room to spare.
const MAX_SOCKET_PATH: usize = 100;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A file of the run directory could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The run's state could not be opened.
    #[error(transparent)]
    State(#[from] relay_state::StateError),
}

/// Where the socket of the run `run_id` in `run_dir` lives: `relay.sock` in the run
/// directory, or in the temp directory when that path is too long for a socket.
pub fn socket_path(run_dir: &Path, run_id: &str) -> PathBuf {
    let p = run_dir.join(SOCKET_FILE);
    if p.as_os_str().len() <= MAX_SOCKET_PATH {
        p
    } else {
        std::env::temp_dir().join(format!("agent-relay-{run_id}.sock"))
    }
}

/// A run's broker: the router, the shared state, the claims, and the socket serving them.
#[derive(Debug)]
pub struct Broker {
    router: Router,
    state: State,
    claims: Arc<Claims>,
    access: access::Access,
    server: server::Server,
    /// Messages an earlier coordinator of the run left queued, to put back once the
    /// run's agents are registered.
    carried: Vec<Envelope>,
    /// What people ask of the run through the socket, for the engine.
    controls: Option<tokio::sync::mpsc::UnboundedReceiver<control::Control>>,
}

impl Broker {
    /// Starts the broker of the run in `run_dir` with its state in memory, kept in the
    /// run directory (see [`Broker::start_with`]).
    pub async fn start(
        run_dir: &Path,
        run_id: &str,
        cfg: RouterConfig,
    ) -> Result<Broker, BrokerError> {
        let path = run_dir.join(relay_state::memory::BOARD_FILE);
        let store = relay_state::memory::MemoryStore::open(&path, "run")?;
        let state = State::new(relay_state::Backend::Memory(store), "run", None);
        Broker::start_with(run_dir, run_id, cfg, state, Arc::new(InProcess::new())).await
    }

    /// [`Broker::start`] with mailboxes in `transport` rather than in this process.
    pub async fn start_with_transport(
        run_dir: &Path,
        run_id: &str,
        cfg: RouterConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Broker, BrokerError> {
        let path = run_dir.join(relay_state::memory::BOARD_FILE);
        let store = relay_state::memory::MemoryStore::open(&path, "run")?;
        let state = State::new(relay_state::Backend::Memory(store), "run", None);
        Broker::start_with(run_dir, run_id, cfg, state, transport).await
    }

    /// Starts the broker of the run in `run_dir`: the message log (ids go on from where
    /// a stopped coordinator left them, and the messages it left queued are kept for
    /// [`Broker::requeue_carried`]), the shared `state`, the claims, the socket, and the
    /// mailboxes in `transport` (in this process, or over the network).
    pub async fn start_with(
        run_dir: &Path,
        run_id: &str,
        cfg: RouterConfig,
        state: State,
        transport: Arc<dyn Transport>,
    ) -> Result<Broker, BrokerError> {
        let log_path = run_dir.join(persist::MESSAGES_FILE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BrokerError::Io { path, source }
        };
        let earlier = {
            let p = log_path.clone();
            tokio::task::spawn_blocking(move || persist::read_log(&p))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(io(&log_path))?
        };
        let persist = persist::Persist::open(&log_path).map_err(io(&log_path))?;
        let carried = earlier
            .messages
            .iter()
            .filter(|m| !m.state.is_final())
            .map(|m| Envelope {
                id: m.id,
                from: m.from.clone(),
                to: m.to.clone(),
                target: m.target.clone().unwrap_or(Target::Agent(m.to.clone())),
                text: m.text.clone(),
                ts_ms: m.sent_ms,
            })
            .collect();
        let first_id = earlier.messages.last().map_or(1, |m| m.id.0 + 1);
        let router = Router::new(transport, persist, first_id, cfg);
        let claims = Arc::new(Claims::new());
        let token_path = run_dir.join(access::TOKEN_FILE);
        let access = access::Access::create(run_dir).map_err(io(&token_path))?;
        let sock = socket_path(run_dir, run_id);
        let (controls, control_rx) = control::Controls::channel();
        let served = server::Served {
            router: router.clone(),
            state: state.clone(),
            claims: claims.clone(),
            access: access.clone(),
            controls,
        };
        let server = server::Server::bind(&sock, served).map_err(io(&sock))?;
        Ok(Broker {
            router,
            state,
            claims,
            access,
            server,
            carried,
            controls: Some(control_rx),
        })
    }

    /// Puts the messages an earlier coordinator left queued back in their recipients'
    /// mailboxes (or fails them, for recipients that have ended). Call once the run's
    /// agents are registered.
    pub async fn requeue_carried(&mut self) {
        for env in std::mem::take(&mut self.carried) {
            self.router.requeue(env).await;
        }
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The shared state (the board is this state).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The file claims.
    pub fn claims(&self) -> &Arc<Claims> {
        &self.claims
    }

    /// What people ask of the run (once; the engine takes it).
    pub fn take_controls(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<control::Control>> {
        self.controls.take()
    }

    /// Who may speak on the socket.
    pub fn access(&self) -> &access::Access {
        &self.access
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        self.server.path()
    }

    /// Closes the socket, fails what is still queued with `reason` ("the run ended"),
    /// and waits until the log has everything.
    pub async fn shutdown(self, reason: &str) {
        self.server.shutdown().await;
        self.claims.run_ended();
        self.router.shutdown(reason).await;
    }
}
