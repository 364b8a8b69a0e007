//! The seam between the engine and the machine: the engine asks a `Launcher` to run
//! processes and sessions, so scheduling can be tested with a scripted launcher and no
//! processes, while `LocalLauncher` runs real ones.

use std::future::Future;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::process::{ProcessError, ProcessOutcome, ProcessSpec, run_process};
use crate::session::{SessionError, SessionEvent, SessionOutcome, SessionSpec};

/// Runs agents and commands on behalf of the engine.
pub trait Launcher: Send + Sync + 'static {
    /// Runs a one-shot process; `spawned` is sent its process group id once it exists.
    fn run_process(
        &self,
        spec: ProcessSpec,
        cancel: CancellationToken,
        spawned: UnboundedSender<u32>,
    ) -> impl Future<Output = Result<ProcessOutcome, ProcessError>> + Send;

    /// Runs an interactive terminal session.
    fn run_session(
        &self,
        spec: SessionSpec,
        cancel: CancellationToken,
        events: UnboundedSender<SessionEvent>,
    ) -> impl Future<Output = Result<SessionOutcome, SessionError>> + Send;
}

/// Runs everything on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalLauncher;

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
    ) -> Result<SessionOutcome, SessionError> {
        crate::session::run_session(spec, cancel, events).await
    }
}
