//! The seam between the engine and the machine. The engine hands a `Launcher` one attempt
//! of one step as plain data (a [`ProcessSpec`] or a [`SessionSpec`]) and gets back plain
//! data: events as they happen, the messages the agent printed for others, what became of
//! the messages offered to it, and the outcome. Nothing live crosses it (no router, no
//! claims, no handles), so a launcher may sit on another machine; `RoundTrip` proves it by
//! sending every value through JSON before acting on it.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::{self, Receiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process::{ProcessError, ProcessOutcome, ProcessSpec, run_process};
use crate::session::{Inbound, SessionError, SessionEvent, SessionOutcome, SessionSpec};

/// Runs agents and commands on behalf of the engine.
pub trait Launcher: Send + Sync + 'static {
    /// Runs a one-shot process; `spawned` is sent its process group id once it exists.
    fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> impl Future<Output = Result<ProcessOutcome, ProcessError>> + Send;

    /// Runs an interactive terminal session; messages for the agent arrive on `inbox`.
    fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
        inbox: Option<Receiver<Inbound>>,
    ) -> impl Future<Output = Result<SessionOutcome, SessionError>> + Send;

    /// Whether this launcher can run `program` (an agent CLI): here, found on PATH.
    fn can_run(&self, program: &str) -> bool {
        crate::process::which(program).is_some()
    }

    /// Where [`can_run`](Launcher::can_run) looks, for the error of a CLI it found
    /// nowhere.
    fn looked_for_clis(&self) -> String {
        "not found on PATH".into()
    }

    /// The machine running (or that last ran) step `label`, when it is not this one.
    fn placement(&self, _label: &str) -> Option<String> {
        None
    }

    /// Why agent `agent`'s steps (running `program`) will wait before they start, when
    /// this launcher knows of nothing that can run them yet but something may still come
    /// (a worker that has not joined). `None` when they can start, or fail at once.
    fn unplaced(&self, _agent: &str, _program: &str) -> Option<String> {
        None
    }

    /// The message transport of run `run_id`, when agents' mailboxes live elsewhere
    /// than in the coordinator's memory.
    fn message_transport(&self, _run_id: &str) -> Option<Arc<dyn relay_messaging::Transport>> {
        None
    }

    /// Ends the terminals kept open between the steps of run `run`'s agents (of `agent`
    /// only, when named; see [`crate::session::Carry`]); their processes are gone when
    /// it returns. A launcher that keeps none has nothing to do.
    fn end_kept(&self, _run: &str, _agent: Option<&str>) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// Runs everything on this machine; keeps interactive agents' terminals open between
/// their steps when a session asks for it.
#[derive(Debug, Clone, Default)]
pub struct LocalLauncher {
    kept: Arc<crate::session::Kept>,
}

impl LocalLauncher {
    /// How many terminals are kept open between steps now.
    pub fn kept_open(&self) -> usize {
        self.kept.len()
    }
}

impl Launcher for LocalLauncher {
    async fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> Result<ProcessOutcome, ProcessError> {
        run_process(spec, cancel, move |pgid| {
            let _ = spawned.send(pgid);
        })
        .await
    }

    async fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
        inbox: Option<Receiver<Inbound>>,
    ) -> Result<SessionOutcome, SessionError> {
        crate::session::run_session_in(spec, cancel, events, inbox, Some(&self.kept)).await
    }

    async fn end_kept(&self, run: &str, agent: Option<&str>) {
        self.kept.end(run, agent).await;
    }
}

/// A launcher that sends every spec, event, message and outcome through JSON before the
/// launcher inside (and then the engine) acts on it: what a launcher on another machine
/// would see. A value that does not survive the trip is a bug, and panics loudly in tests.
#[derive(Debug, Clone, Default)]
pub struct RoundTrip<L>(pub L);

/// `value` serialised to JSON and read back.
fn through_json<T: Serialize + DeserializeOwned>(value: T) -> T {
    let text = serde_json::to_string(&value).expect("a launcher value serialises");
    serde_json::from_str(&text).expect("a launcher value reads back")
}

/// A new sender whose values reach `out` through JSON, and the task forwarding them; it
/// ends once every copy of the sender is gone.
fn relay_unbounded<T: Serialize + DeserializeOwned + Send + 'static>(
    out: UnboundedSender<T>,
) -> (UnboundedSender<T>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<T>();
    let task = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if out.send(through_json(v)).is_err() {
                return;
            }
        }
    });
    (tx, task)
}

/// Waits until every event sent before the outcome has been passed on, as a launcher
/// on another machine sends its events before its outcome.
async fn flushed(task: JoinHandle<()>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
}

impl<L: Launcher> Launcher for RoundTrip<L> {
    async fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> Result<ProcessOutcome, ProcessError> {
        let (spawned, task) = relay_unbounded(spawned);
        let outcome = self
            .0
            .run_process(through_json(spec), cancel, spawned)
            .await;
        flushed(task).await;
        through_json(outcome)
    }

    async fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
        inbox: Option<Receiver<Inbound>>,
    ) -> Result<SessionOutcome, SessionError> {
        let (events, task) = relay_unbounded(events);
        let inbox = inbox.map(|mut rx| {
            let (tx, out) = mpsc::channel::<Inbound>(1);
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if tx.send(through_json(m)).await.is_err() {
                        return;
                    }
                }
            });
            out
        });
        let outcome = self
            .0
            .run_session(through_json(spec), cancel, events, inbox)
            .await;
        flushed(task).await;
        through_json(outcome)
    }

    fn can_run(&self, program: &str) -> bool {
        self.0.can_run(program)
    }

    fn placement(&self, label: &str) -> Option<String> {
        self.0.placement(label)
    }

    fn unplaced(&self, agent: &str, program: &str) -> Option<String> {
        self.0.unplaced(agent, program)
    }

    fn looked_for_clis(&self) -> String {
        self.0.looked_for_clis()
    }

    fn message_transport(&self, run_id: &str) -> Option<Arc<dyn relay_messaging::Transport>> {
        self.0.message_transport(run_id)
    }

    async fn end_kept(&self, run: &str, agent: Option<&str>) {
        self.0.end_kept(run, agent).await;
    }
}

/// The launchers the binary can run with, chosen at start: local, or local behind the
/// JSON round trip (`AGENT_RELAY_LAUNCHER=roundtrip`, used by the end-to-end tests).
#[derive(Debug, Clone)]
pub enum AnyLauncher {
    /// [`LocalLauncher`].
    Local(LocalLauncher),
    /// [`LocalLauncher`] behind [`RoundTrip`].
    RoundTrip(RoundTrip<LocalLauncher>),
}

impl AnyLauncher {
    /// The launcher named by `name` (`local`, `roundtrip`); `None` for an unknown name.
    pub fn named(name: &str) -> Option<AnyLauncher> {
        match name {
            "" | "local" => Some(AnyLauncher::Local(LocalLauncher::default())),
            "roundtrip" => Some(AnyLauncher::RoundTrip(RoundTrip(LocalLauncher::default()))),
            _ => None,
        }
    }
}

impl Launcher for AnyLauncher {
    async fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> Result<ProcessOutcome, ProcessError> {
        match self {
            AnyLauncher::Local(l) => l.run_process(spec, cancel, spawned).await,
            AnyLauncher::RoundTrip(l) => l.run_process(spec, cancel, spawned).await,
        }
    }

    async fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
        inbox: Option<Receiver<Inbound>>,
    ) -> Result<SessionOutcome, SessionError> {
        match self {
            AnyLauncher::Local(l) => l.run_session(spec, cancel, events, inbox).await,
            AnyLauncher::RoundTrip(l) => l.run_session(spec, cancel, events, inbox).await,
        }
    }

    async fn end_kept(&self, run: &str, agent: Option<&str>) {
        match self {
            AnyLauncher::Local(l) => l.end_kept(run, agent).await,
            AnyLauncher::RoundTrip(l) => l.end_kept(run, agent).await,
        }
    }
}
