//! The run's local endpoint: a unix socket that agents (through `agent-relay send`,
//! `inbox`, `agents`, `board`, `state`, `claim`, `release`) and deterministic steps talk
//! to, one JSON line per request and per reply (see `protocol`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use relay_state::{Ask, Cas, ClaimError, Claims, State, StateError, Watched};

use crate::access::{Access, Caller, TOKEN_ENV};
use crate::control::Controls;
use crate::model::{Target, is_name};
use crate::protocol::{Authed, ErrorKind, MAX_LINE_BYTES, Reply, Request};
use crate::router::{Delivery, InboxError, Router, SendError};
use crate::sanitize::sanitize;
use crate::transport::BoxFuture;

/// Most messages one `inbox` request takes.
pub const INBOX_MAX: usize = 1000;

/// Longest `inbox` wait a client may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// What the socket serves.
#[derive(Debug, Clone)]
pub struct Served {
    /// Messages.
    pub router: Router,
    /// The shared state (the board is this state).
    pub state: State,
    /// File claims.
    pub claims: Arc<Claims>,
    /// Who may speak.
    pub access: Access,
    /// What people ask of the run, for the engine.
    pub controls: Controls,
}

/// A listening socket and the task serving it.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// Listens on `path` (a stale socket file there is replaced; the new one is
    /// readable and writable by this user only) and serves `served`.
    pub fn bind(path: &Path, served: Served) -> std::io::Result<Server> {
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
        let task = tokio::spawn(accept_loop(listener, served, cancel.clone()));
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

/// How long a stopping server waits for replies it owes (a request carried out whose
/// answer is not written yet: the owner's `reject` that ended the run, say).
const OWED_GRACE: Duration = Duration::from_millis(500);

async fn accept_loop(listener: UnixListener, served: Served, cancel: CancellationToken) {
    let mut conns = JoinSet::new();
    // Requests read and not answered yet, over all connections.
    let owed = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve(stream, served.clone(), owed.clone()));
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
    // Replies owed are written before the connections end.
    let deadline = tokio::time::Instant::now() + OWED_GRACE;
    while owed.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    conns.shutdown().await;
}

/// One answer a connection owes, in the order of its requests.
enum Owed<'a> {
    /// A send whose copies are already handed over: its reply once they are confirmed.
    Sending(BoxFuture<'a, Reply>),
    /// A reply, with the messages it hands over (read once it is written).
    Ready(Reply, Vec<Delivery>),
    /// Everything before it is answered: the reader is told.
    Drained(oneshot::Sender<()>),
}

/// Serves one connection. Requests are carried out in order, each once the one before
/// it is done, except that sends follow each other without waiting: a client that
/// writes several sends before reading the replies has them numbered in its order and
/// confirmed together. Replies come in the order of the requests.
async fn serve(stream: UnixStream, served: Served, owed: Arc<AtomicUsize>) {
    let (read, mut write) = stream.into_split();
    let owing = owed.clone();
    let (owed_tx, mut owed_rx) = mpsc::unbounded_channel::<Owed<'_>>();
    let served = &served;
    let reading = async move {
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
            // Every request line gets one reply; the writer counts it off.
            owing.fetch_add(1, Ordering::AcqRel);
            if n > MAX_LINE_BYTES {
                let _ = owed_tx.send(Owed::Ready(
                    bad(format!("request longer than {MAX_LINE_BYTES} bytes")),
                    Vec::new(),
                ));
                return;
            }
            let owed = match Authed::from_line(&line) {
                Ok(a) => match served.access.caller(a.token.as_deref()) {
                    Some(caller) => match a.request {
                        Request::Send { from, to, text } => {
                            match start_send(&from, &to, &text, &caller, served) {
                                Ok(f) => Owed::Sending(f),
                                Err(r) => Owed::Ready(r, Vec::new()),
                            }
                        }
                        request => {
                            // Carried out once everything before it is done.
                            let (tx, rx) = oneshot::channel();
                            if owed_tx.send(Owed::Drained(tx)).is_err() || rx.await.is_err() {
                                return;
                            }
                            let (reply, claimed) = handle(request, &caller, served).await;
                            Owed::Ready(reply, claimed)
                        }
                    },
                    None => Owed::Ready(
                        unauthorized(format!(
                            "this run's socket needs a valid token: agents and steps of the run have one in \
                             {TOKEN_ENV}; from outside, `--run RUN_ID` reads the run's own"
                        )),
                        Vec::new(),
                    ),
                },
                Err(e) => Owed::Ready(bad(format!("not a request: {e}")), Vec::new()),
            };
            if owed_tx.send(owed).is_err() {
                return;
            }
        }
    };
    let writing = async move {
        // Replies already due go out in one write: a connection that sends without
        // waiting gets its confirmations together, not one system call each.
        let mut carry: Option<Owed<'_>> = None;
        let mut out = Vec::new();
        loop {
            let first = match carry.take() {
                Some(o) => o,
                None => match owed_rx.recv().await {
                    Some(o) => o,
                    None => return,
                },
            };
            let mut claimed = Vec::new();
            let mut pushed = Ok(());
            match first {
                Owed::Sending(f) => pushed = pushed.and(push_reply(&mut out, &f.await)),
                Owed::Ready(reply, c) => {
                    pushed = pushed.and(push_reply(&mut out, &reply));
                    claimed = c;
                }
                Owed::Drained(tx) => {
                    let _ = tx.send(());
                    continue;
                }
            }
            while let Ok(next) = owed_rx.try_recv() {
                match next {
                    Owed::Sending(mut f) => match ready_now(&mut f) {
                        Some(reply) => pushed = pushed.and(push_reply(&mut out, &reply)),
                        None => {
                            carry = Some(Owed::Sending(f));
                            break;
                        }
                    },
                    Owed::Ready(reply, c) => {
                        pushed = pushed.and(push_reply(&mut out, &reply));
                        claimed.extend(c);
                    }
                    d @ Owed::Drained(_) => {
                        carry = Some(d);
                        break;
                    }
                }
            }
            let written = match pushed {
                Ok(()) => write.write_all(&out).await.and(write.flush().await),
                Err(e) => Err(std::io::Error::other(e)),
            };
            let replies = out.iter().filter(|b| **b == b'\n').count();
            let _ = owed.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(replies))
            });
            out.clear();
            if written.is_err() {
                // The client is gone; `claimed` is dropped and its messages go back.
                return;
            }
            for d in claimed {
                d.read();
            }
        }
    };
    // A client gone (a reply cannot be written) ends the connection at once; a client that
    // stopped writing still gets every reply it is owed.
    tokio::pin!(writing);
    tokio::select! {
        () = &mut writing => return,
        () = reading => {}
    }
    writing.await;
}

/// `reply` as a line at the end of `out`.
fn push_reply(out: &mut Vec<u8>, reply: &Reply) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, reply)?;
    out.push(b'\n');
    Ok(())
}

/// The reply of a send whose confirmation is already in, without waiting for it.
fn ready_now(f: &mut BoxFuture<'_, Reply>) -> Option<Reply> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(reply) => Some(reply),
        std::task::Poll::Pending => None,
    }
}

fn unauthorized(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::Unauthorized,
        message,
    }
}

fn state_error(e: &StateError) -> Reply {
    if e.is_bad_input() {
        bad(e.to_string())
    } else {
        Reply::Error {
            kind: ErrorKind::Failed,
            message: e.to_string(),
        }
    }
}

/// Who a write is recorded as: an agent always as itself, whatever it says; the owner
/// as whoever it names, else `user`.
fn writer(caller: &Caller, by: Option<String>) -> Result<String, Reply> {
    if let Some(by) = by.as_deref().filter(|b| !is_name(b)) {
        return Err(bad(format!("`{by}` is not a valid name")));
    }
    Ok(match caller {
        Caller::Agent(a) => a.clone(),
        Caller::Owner => by.unwrap_or_else(|| "user".to_owned()),
    })
}

fn bad(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::BadRequest,
        message,
    }
}

/// A send checked and handed to the router (see [`Router::submit`]): its reply once the
/// copies are confirmed, or the refusal.
fn start_send<'a>(
    from: &str,
    to: &str,
    text: &str,
    caller: &Caller,
    served: &'a Served,
) -> Result<BoxFuture<'a, Reply>, Reply> {
    // The sender's name is typed into other agents' terminals.
    if !is_name(from) {
        return Err(bad(format!("`{from}` is not a valid sender name")));
    }
    if !caller.may_act_as(from) {
        return Err(unauthorized(format!("this token may not send as `{from}`")));
    }
    let Some(target) = Target::parse(to) else {
        return Err(bad(format!("`{to}` is not an agent name, a #channel or *")));
    };
    let sent = served.router.submit(from, &target, text);
    Ok(Box::pin(async move {
        match sent.await {
            Ok(receipts) => Reply::Sent { receipts },
            Err(e @ SendError::UnknownRecipient { .. }) => Reply::Error {
                kind: ErrorKind::UnknownRecipient,
                message: e.to_string(),
            },
            Err(e) => bad(e.to_string()),
        }
    }))
}

/// Carries out one request. Messages an `inbox` took are returned unsettled: they
/// count as read only once the reply is written.
async fn handle(req: Request, caller: &Caller, served: &Served) -> (Reply, Vec<Delivery>) {
    let router = &served.router;
    let reply = match req {
        Request::Send { from, to, text } => match start_send(&from, &to, &text, caller, served) {
            Ok(f) => f.await,
            Err(r) => r,
        },
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
            claims: served.claims.active(),
        },
        Request::BoardGet { key } | Request::StateGet { key } => {
            match served.state.get(&key).await {
                Ok(entry) => Reply::Value { key, entry },
                Err(e) => state_error(&e),
            }
        }
        Request::BoardSet { key, value, by } => {
            let by = match writer(caller, by) {
                Ok(by) => by,
                Err(r) => return (r, Vec::new()),
            };
            match served.state.set(&key, &sanitize(&value), &by, None).await {
                Ok(_) => Reply::Stored { key },
                Err(e) => state_error(&e),
            }
        }
        Request::BoardList => match served.state.list("").await {
            Ok(entries) => Reply::Board { entries },
            Err(e) => state_error(&e),
        },
        Request::StateList { prefix } => {
            match served.state.list(prefix.as_deref().unwrap_or("")).await {
                Ok(entries) => Reply::Board { entries },
                Err(e) => state_error(&e),
            }
        }
        Request::StateSet {
            key,
            value,
            by,
            ttl_ms,
        } => {
            let by = match writer(caller, by) {
                Ok(by) => by,
                Err(r) => return (r, Vec::new()),
            };
            let ttl = ttl_ms.map(Duration::from_millis);
            match served.state.set(&key, &sanitize(&value), &by, ttl).await {
                Ok(entry) => Reply::Written { key, entry },
                Err(e) => state_error(&e),
            }
        }
        Request::StateCas {
            key,
            expected,
            value,
            by,
            ttl_ms,
        } => {
            let by = match writer(caller, by) {
                Ok(by) => by,
                Err(r) => return (r, Vec::new()),
            };
            let ttl = ttl_ms.map(Duration::from_millis);
            // Values are stored sanitised; the expectation is compared the same way.
            let expected = expected.as_deref().map(sanitize);
            let cas = served
                .state
                .cas(&key, expected.as_deref(), &sanitize(&value), &by, ttl)
                .await;
            match cas {
                Ok(Cas::Swapped { entry }) => Reply::Written { key, entry },
                Ok(Cas::Mismatch { current }) => Reply::Mismatch { key, current },
                Err(e) => state_error(&e),
            }
        }
        Request::StateDelete { key, by } => {
            let by = match writer(caller, by) {
                Ok(by) => by,
                Err(r) => return (r, Vec::new()),
            };
            match served.state.delete(&key, &by).await {
                Ok(existed) => Reply::Deleted { key, existed },
                Err(e) => state_error(&e),
            }
        }
        Request::StateWatch { key, rev, wait_ms } => {
            let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
            match served.state.watch(&key, rev, wait).await {
                Ok(Watched::Changed { entry }) => Reply::Watched {
                    key,
                    changed: true,
                    entry,
                },
                Ok(Watched::TimedOut { entry }) => Reply::Watched {
                    key,
                    changed: false,
                    entry,
                },
                Err(e) => state_error(&e),
            }
        }
        Request::Claim {
            agent,
            step,
            dir,
            paths,
            ttl_ms,
            wait_ms,
        } => {
            if !is_name(&agent) {
                return (bad(format!("`{agent}` is not a valid name")), Vec::new());
            }
            if !caller.may_act_as(&agent) {
                return (
                    unauthorized(format!("this token may not claim for `{agent}`")),
                    Vec::new(),
                );
            }
            let dir = dir.map(std::path::PathBuf::from);
            let ask = Ask {
                holder: &agent,
                step: step.as_deref(),
                dir: dir.as_deref(),
                paths: &paths,
                ttl: ttl_ms.filter(|t| *t > 0).map(Duration::from_millis),
            };
            let wait = Duration::from_millis(wait_ms.unwrap_or(0)).min(MAX_WAIT);
            match served.claims.claim(&ask, wait).await {
                Ok(claims) => Reply::Claimed { claims },
                Err(ClaimError::Held(r)) => Reply::Refused { held: r.held },
                Err(e @ ClaimError::Full) => Reply::Error {
                    kind: ErrorKind::Failed,
                    message: e.to_string(),
                },
                Err(e) => bad(e.to_string()),
            }
        }
        Request::Answer { step, text } => {
            if *caller != Caller::Owner {
                return (
                    unauthorized("only the run's owner answers questions".into()),
                    Vec::new(),
                );
            }
            match served.controls.answer(step.clone(), text).await {
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
            match served
                .controls
                .decide(step.clone(), approved, by, reason)
                .await
            {
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
            match served.controls.pause(paused, by).await {
                Ok(()) => Reply::Paused { paused },
                Err(why) => bad(why),
            }
        }
        Request::Release { agent, paths } => {
            if !caller.may_act_as(&agent) {
                return (
                    unauthorized(format!("this token may not release claims of `{agent}`")),
                    Vec::new(),
                );
            }
            match served.claims.release(&agent, paths.as_deref()) {
                Ok(claims) => Reply::Released { claims },
                Err(e) => bad(e.to_string()),
            }
        }
        Request::Unpark => {
            if *caller != Caller::Owner {
                return (
                    unauthorized("only the run's owner unparks it".into()),
                    Vec::new(),
                );
            }
            match served.controls.unpark().await {
                Ok(steps) => Reply::Unparked { steps },
                Err(why) => bad(why),
            }
        }
        Request::Mark {
            step,
            item,
            blocked,
            note,
        } => {
            let agent = match caller {
                Caller::Owner => None,
                Caller::Agent(name) => Some(name.clone()),
            };
            let m = crate::control::MarkRequest {
                step: step.clone(),
                item: item.clone(),
                blocked,
                note,
                agent,
            };
            match served.controls.mark(m).await {
                Ok(()) => Reply::Marked { step, item },
                Err(why) => bad(why),
            }
        }
        Request::Ask {
            step,
            question,
            wait_ms,
        } => {
            let question = sanitize(&question);
            if question.trim().is_empty() {
                return (bad("the question is empty".into()), Vec::new());
            }
            let agent = match caller {
                Caller::Owner => None,
                Caller::Agent(name) => Some(name.clone()),
            };
            match served.controls.ask(step.clone(), agent, question).await {
                Ok(answer) => {
                    let wait = Duration::from_millis(wait_ms.unwrap_or(0)).min(MAX_WAIT);
                    // An answer that comes after the wait reaches the agent as a message.
                    let answer = tokio::time::timeout(wait, answer)
                        .await
                        .ok()
                        .and_then(Result::ok);
                    Reply::Asked { step, answer }
                }
                Err(why) => bad(why),
            }
        }
        Request::Done { step, text } => {
            let agent = match caller {
                Caller::Owner => None,
                Caller::Agent(name) => Some(name.clone()),
            };
            match served
                .controls
                .done(step.clone(), agent, sanitize(&text))
                .await
            {
                Ok(ended) => Reply::Done { step, ended },
                Err(why) => bad(why),
            }
        }
    };
    (reply, Vec::new())
}
