//! Terminal sessions kept open between the steps of one agent (`session: resume`).
//!
//! A session whose spec carries a [`Carry`] and that ends with its task done (`/exit`, or
//! the agent's reported result) while its CLI still runs is not ended: it is put here,
//! under its run and agent, and a keeper task goes on reading its output (answering the
//! terminal's queries, so the app never blocks) until the agent's next step takes it, the
//! run ends it ([`Kept::end`]), or its process exits by itself. Whoever takes it types
//! the next task into the same terminal, so the agent keeps its whole context.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use relay_spec::Cli;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::driver::{Action, Driver, Terminal};
use super::{Link, SessionSpec, pty};

/// Keeping an interactive agent's terminal open for its next step: plain data in a
/// [`SessionSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carry {
    /// The run the agent belongs to.
    pub run: String,
    /// The agent.
    pub agent: String,
    /// Whether this session continues the terminal the agent's earlier step left open,
    /// when there is one that fits; else a new process is started, as always.
    pub take: bool,
}

/// What must match for a kept terminal to take a step: the same program, directory,
/// permissions and size. The directory a step's permissions keep readable (its own, for
/// its task file) differs from step to step: a continued session is given its task file
/// in the directory of the step it was started for ([`Held::home`]).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fit {
    program: Option<String>,
    cli: Option<Cli>,
    cwd: PathBuf,
    sandbox: Option<crate::sandbox::Sandbox>,
    size: (u16, u16),
}

impl Fit {
    pub(super) fn of(spec: &SessionSpec) -> Fit {
        Fit {
            program: spec.argv.first().cloned(),
            cli: spec.cli,
            cwd: spec.cwd.clone(),
            sandbox: spec.sandbox.clone().map(|mut s| {
                s.readable.clear();
                s
            }),
            size: spec.size,
        }
    }
}

/// A live session between two steps.
pub(super) struct Held {
    pub(super) pty: pty::Pty,
    pub(super) driver: Driver,
    /// How long its group is given between polite signals and `KILL` when it is ended.
    pub(super) grace: Duration,
    /// The directory of the transcript of the step it was started for, which its
    /// permissions keep readable: where the task file of a long task goes.
    pub(super) home: PathBuf,
}

/// Where a keeper hands its session over.
type Handover = oneshot::Sender<Held>;

struct Keeper {
    fit: Fit,
    /// Sent a handover: give the session there; dropped: end it.
    command: oneshot::Sender<Handover>,
    done: JoinHandle<()>,
}

/// The terminals kept open, by run and agent. Every one left is ended when this is
/// dropped (the keeper tasks see their command channel close).
#[derive(Default)]
pub struct Kept {
    open: Mutex<HashMap<(String, String), Keeper>>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("open", &self.lock().len())
            .finish()
    }
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Keeper>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The terminal `carry`'s agent left open, when it fits `fit` and its CLI still
    /// runs. One that does not fit stays for a step it does fit.
    pub(super) async fn take(&self, carry: &Carry, fit: &Fit) -> Option<Held> {
        let key = (carry.run.clone(), carry.agent.clone());
        let keeper = {
            let mut open = self.lock();
            if open.get(&key).is_none_or(|k| k.fit != *fit) {
                return None;
            }
            open.remove(&key)?
        };
        let (tx, rx) = oneshot::channel();
        if keeper.command.send(tx).is_err() {
            // Its process exited while it was kept.
            let _ = keeper.done.await;
            return None;
        }
        let held = rx.await.ok()?;
        let _ = keeper.done.await;
        // Its process may have died a moment ago, before the keeper heard of it.
        let pgid = held.pty.pgid;
        let alive = tokio::task::spawn_blocking(move || crate::group::group_alive(pgid))
            .await
            .unwrap_or(false);
        if !alive {
            end_held(held).await;
            return None;
        }
        Some(held)
    }

    /// Keeps `held` open for `carry`'s agent; a terminal it kept before is ended.
    pub(super) fn put(&self, carry: &Carry, fit: Fit, held: Held) {
        let (command, rx) = oneshot::channel();
        let done = tokio::spawn(keep(held, rx));
        let old = self.lock().insert(
            (carry.run.clone(), carry.agent.clone()),
            Keeper { fit, command, done },
        );
        // Dropping its command channel ends it.
        drop(old);
    }

    /// Ends the terminals kept for run `run` (for `agent` only, when named); their
    /// process groups are gone when this returns.
    pub async fn end(&self, run: &str, agent: Option<&str>) {
        let ending: Vec<Keeper> = {
            let mut open = self.lock();
            let keys: Vec<(String, String)> = open
                .keys()
                .filter(|(r, a)| r == run && agent.is_none_or(|x| x == a))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| open.remove(k)).collect()
        };
        for keeper in ending {
            drop(keeper.command);
            let _ = keeper.done.await;
        }
    }

    /// How many terminals are kept open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no terminal is kept open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Holds a session between two steps: its output keeps being read (terminal queries
/// answered) until it is taken, ended, or its process exits.
async fn keep(mut held: Held, mut command: oneshot::Receiver<Handover>) {
    loop {
        tokio::select! {
            biased;
            c = &mut command => {
                if let Ok(reply) = c
                    && !held.pty.exit.has_exited()
                {
                    match reply.send(held) {
                        Ok(()) => return,
                        Err(back) => held = back,
                    }
                }
                end_held(held).await;
                return;
            }
            _ = held.pty.exit.wait() => {
                end_held(held).await;
                return;
            }
            chunk = held.pty.output.recv() => {
                if let Some(bytes) = chunk {
                    for action in held.driver.on_output(&bytes, Instant::now()) {
                        if let Action::Terminal(Terminal::Write(w)) = action {
                            held.pty.write(w);
                        }
                    }
                }
            }
        }
    }
}

/// Ends a held session's group and its terminal.
pub(super) async fn end_held(mut held: Held) {
    let (events, _) = mpsc::unbounded_channel();
    let mut link = Link::new(None, events.clone());
    let pgid = held.pty.pgid;
    if held.pty.exit.has_exited() {
        super::end_leftovers(pgid, held.grace).await;
    } else {
        super::end_group(
            &mut held.pty,
            &mut held.driver,
            &events,
            &mut link,
            held.grace,
        )
        .await;
    }
    if !super::group_gone_within(pgid, super::AFTER_KILL).await {
        tracing::warn!(pgid, "processes of a kept session's group outlived KILL");
    }
    held.pty.shutdown(super::AFTER_KILL).await;
}
