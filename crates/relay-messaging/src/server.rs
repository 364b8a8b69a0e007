//! The run's local endpoint: a unix socket that agents (through `agent-relay send`,
//! `inbox`, `agents`, `board`) and deterministic steps talk to, one JSON line per request
//! and per reply (see `protocol`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::access::{Access, Caller, TOKEN_ENV};
use crate::board::Board;
use crate::control::Controls;
use crate::model::{Target, is_name};
use crate::protocol::{Authed, ErrorKind, MAX_LINE_BYTES, Reply, Request};
use crate::router::{Delivery, InboxError, Router, SendError};

/// Most messages one `inbox` request takes.
pub const INBOX_MAX: usize = 1000;

/// Longest `inbox` wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// A listening socket and the task serving it.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Listens on `path` (a stale socket file there is replaced; the new one is
    /// readable and writable by this user only) and serves `router` and `board`.
    pub fn bind(
        path: &Path,
        router: Router,
        board: Board,
        access: Access,
        controls: Controls,
    ) -> std::io::Result<Server> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(
            listener,
            Shared {
                router,
                board,
                access,
                controls,
            },
            cancel.clone(),
        ));
        Ok(Server {
            path: path.to_path_buf(),
            cancel,
            task,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, ends every connection (messages a waiting `inbox` had claimed go
    /// back to their mailboxes) and removes the socket file.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

/// What every connection of a run's socket shares.
#[derive(Clone)]
struct Shared {
    router: Router,
    board: Board,
    access: Access,
    controls: Controls,
}

async fn accept_loop(listener: UnixListener, shared: Shared, cancel: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!("relay socket accept failed: {e}");
                    // Out of file descriptors and the like: don't spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn serve(stream: UnixStream, shared: Shared) {
    let Shared {
        router,
        board,
        access,
        controls,
    } = shared;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if n > MAX_LINE_BYTES {
            let _ = write_reply(
                &mut write,
                &bad(format!("request longer than {MAX_LINE_BYTES} bytes")),
            )
            .await;
            return;
        }
        let (reply, claimed) = match serde_json::from_slice::<Authed>(&line) {
            Ok(a) => match access.caller(a.token.as_deref()) {
                Some(caller) => handle(a.request, &caller, &router, &board, &controls).await,
                None => (
                    unauthorized(format!(
                        "this run's socket needs a valid token: agents and steps of the run have one in \
                         {TOKEN_ENV}; from outside, `--run RUN_ID` reads the run's own"
                    )),
                    Vec::new(),
                ),
            },
            Err(e) => (bad(format!("not a request: {e}")), Vec::new()),
        };
        if write_reply(&mut write, &reply).await.is_err() {
            // The client is gone; `claimed` is dropped and its messages go back.
            return;
        }
        for d in claimed {
            d.read();
        }
    }
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}

fn unauthorized(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::Unauthorized,
        message,
    }
}

fn bad(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::BadRequest,
        message,
    }
}

/// Carries out one request. Messages an `inbox` took are returned unsettled: they
/// count as read only once the reply is written.
async fn handle(
    req: Request,
    caller: &Caller,
    router: &Router,
    board: &Board,
    controls: &Controls,
) -> (Reply, Vec<Delivery>) {
    let reply = match req {
        Request::Send { from, to, text } => {
            // The sender's name is typed into other agents' terminals.
            if !is_name(&from) {
                return (
                    bad(format!("`{from}` is not a valid sender name")),
                    Vec::new(),
                );
            }
            if !caller.may_act_as(&from) {
                return (
                    unauthorized(format!("this token may not send as `{from}`")),
                    Vec::new(),
                );
            }
            let Some(target) = Target::parse(&to) else {
                return (
                    bad(format!("`{to}` is not an agent name, a #channel or *")),
                    Vec::new(),
                );
            };
            match router.send(&from, &target, &text).await {
                Ok(receipts) => Reply::Sent { receipts },
                Err(e @ SendError::UnknownRecipient { .. }) => Reply::Error {
                    kind: ErrorKind::UnknownRecipient,
                    message: e.to_string(),
                },
                Err(e) => bad(e.to_string()),
            }
        }
        Request::Inbox {
            agent,
            wait_ms,
            max,
        } => {
            if !caller.may_act_as(&agent) {
                return (
                    unauthorized(format!("this token may not read the inbox of `{agent}`")),
                    Vec::new(),
                );
            }
            let wait = wait_ms.map(|ms| Duration::from_millis(ms).min(MAX_WAIT));
            let max = max.unwrap_or(INBOX_MAX).clamp(1, INBOX_MAX);
            return match router.take(&agent, max, wait).await {
                Ok(claimed) => (
                    Reply::Messages {
                        messages: claimed.iter().map(|d| d.envelope().clone()).collect(),
                    },
                    claimed,
                ),
                Err(e @ InboxError::UnknownAgent { .. }) => (
                    Reply::Error {
                        kind: ErrorKind::UnknownAgent,
                        message: e.to_string(),
                    },
                    Vec::new(),
                ),
                Err(e) => (
                    Reply::Error {
                        kind: ErrorKind::Failed,
                        message: e.to_string(),
                    },
                    Vec::new(),
                ),
            };
        }
        Request::Agents => Reply::Agents {
            agents: router.agents(),
            channels: router.channels(),
        },
        Request::BoardGet { key } => Reply::Value {
            entry: board.get(&key),
            key,
        },
        Request::BoardSet { key, value, by } => {
            if let Some(by) = by.as_deref().filter(|b| !is_name(b)) {
                return (bad(format!("`{by}` is not a valid name")), Vec::new());
            }
            // An agent writes as itself, whatever it claims.
            let by = match caller {
                Caller::Agent(a) => Some(a.clone()),
                Caller::Owner => by,
            };
            match board
                .set(&key, &value, by.as_deref().unwrap_or("user"))
                .await
            {
                Ok(()) => Reply::Stored { key },
                Err(e @ crate::board::BoardError::Io { .. }) => Reply::Error {
                    kind: ErrorKind::Failed,
                    message: e.to_string(),
                },
                Err(e) => bad(e.to_string()),
            }
        }
        Request::BoardList => Reply::Board {
            entries: board.list(),
        },
        Request::Answer { step, text } => {
            if *caller != Caller::Owner {
                return (
                    unauthorized("only the run's owner answers questions".into()),
                    Vec::new(),
                );
            }
            match controls.answer(step.clone(), text).await {
                Ok(()) => Reply::Answered { step },
                Err(why) => bad(why),
            }
        }
        Request::Decide {
            step,
            approved,
            by,
            reason,
        } => {
            if *caller != Caller::Owner {
                return (
                    unauthorized("only the run's owner approves or rejects steps".into()),
                    Vec::new(),
                );
            }
            match controls.decide(step.clone(), approved, by, reason).await {
                Ok(()) => Reply::Decided { step, approved },
                Err(why) => bad(why),
            }
        }
        Request::Pause { paused, by } => {
            if *caller != Caller::Owner {
                return (
                    unauthorized("only the run's owner pauses the run".into()),
                    Vec::new(),
                );
            }
            match controls.pause(paused, by).await {
                Ok(()) => Reply::Paused { paused },
                Err(why) => bad(why),
            }
        }
    };
    (reply, Vec::new())
}
