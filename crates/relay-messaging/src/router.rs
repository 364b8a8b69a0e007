//! The router: who is in the run, which channels there are, whether a sender may reach
//! a recipient, and every message's state. It turns a send into one envelope per
//! recipient, hands envelopes to the [`Transport`], and records each state change.
//!
//! Locks here are plain mutexes held for a few map operations and never across an
//! `.await`; waiting happens in the transport.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::model::{
    AgentInfo, AgentState, Envelope, MessageId, MessageState, Receipt, Record, Target, now_ms,
};
use crate::persist::Persist;
use crate::sanitize::{MAX_TEXT_BYTES, injection_line, sanitize};
use crate::topology::Topology;
use crate::transport::{Ack, BoxFuture, Transport, TransportError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The router's topology (who may message whom), replaceable while the run goes: the
/// run installs its pattern's.
#[derive(Debug, Clone, Default)]
pub struct PolicyHandle(Arc<RwLock<Topology>>);

impl PolicyHandle {
    /// Replaces the topology; messages sent from now on are checked against it.
    pub fn set(&self, topology: Topology) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = topology;
    }

    /// The topology in force.
    pub fn get(&self) -> Topology {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why a message was not accepted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No agent or channel by that name.
    #[error("{}", unknown_target(target, suggestion.as_deref(), known))]
    UnknownRecipient {
        /// What was asked for.
        target: Target,
        /// The closest known name.
        suggestion: Option<String>,
        /// Every known name of that kind.
        known: Vec<String>,
    },
    /// Nothing to send.
    #[error("the message is empty")]
    Empty,
    /// Over [`MAX_TEXT_BYTES`].
    #[error("the message is too long ({len} bytes; at most {MAX_TEXT_BYTES})")]
    TooLong {
        /// Its length.
        len: usize,
    },
}

fn unknown_target(target: &Target, suggestion: Option<&str>, known: &[String]) -> String {
    let (what, sigil) = match target {
        Target::Channel(_) => ("channel", "#"),
        _ => ("agent", ""),
    };
    let mut m = format!("no {what} `{target}` in this run");
    if let Some(s) = suggestion {
        m.push_str(&format!(" (did you mean `{sigil}{s}`?)"));
    }
    if known.is_empty() {
        m.push_str(&format!("; it has no {what}s"));
    } else {
        let list: Vec<String> = known.iter().map(|k| format!("{sigil}{k}")).collect();
        m.push_str(&format!("; {what}s: {}", list.join(", ")));
    }
    m
}

/// Why messages could not be fetched for an agent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InboxError {
    /// No such agent.
    #[error("no agent `{name}` in this run{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The closest agent name.
        suggestion: Option<String>,
    },
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Retry pacing of undelivered messages.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Delay before the first retry; doubled for each further one.
    pub retry_base: Duration,
    /// Longest delay between retries.
    pub retry_cap: Duration,
    /// Most messages waiting for one recipient; more are refused until it takes some.
    pub max_waiting: usize,
}

/// Default [`RouterConfig::max_waiting`].
pub const MAX_WAITING: usize = 10_000;

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            retry_base: Duration::from_millis(500),
            retry_cap: Duration::from_secs(10),
            max_waiting: MAX_WAITING,
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    agents: BTreeMap<String, AgentInfo>,
    channels: BTreeMap<String, BTreeSet<String>>,
}

impl Registry {
    fn unknown(&self, target: &Target) -> SendError {
        let (name, known): (&str, Vec<String>) = match target {
            Target::Channel(c) => (c, self.channels.keys().cloned().collect()),
            Target::Agent(a) => (a, self.agents.keys().cloned().collect()),
            Target::Broadcast => ("*", Vec::new()),
        };
        let suggestion = relay_spec::load::did_you_mean(name, known.iter().map(String::as_str))
            .map(str::to_owned);
        SendError::UnknownRecipient {
            target: target.clone(),
            suggestion,
            known,
        }
    }

    fn live(&self, name: &str) -> bool {
        self.agents
            .get(name)
            .is_some_and(|a| a.state != AgentState::Ended)
    }

    /// The recipients of `target` from `from`: the agent itself, or the live members
    /// (channel) or live agents (broadcast) other than the sender.
    fn recipients(&self, from: &str, target: &Target) -> Result<Vec<String>, SendError> {
        match target {
            Target::Agent(a) if self.agents.contains_key(a) => Ok(vec![a.clone()]),
            Target::Channel(c) => match self.channels.get(c) {
                Some(members) => Ok(members
                    .iter()
                    .filter(|m| *m != from && self.live(m))
                    .cloned()
                    .collect()),
                None => Err(self.unknown(target)),
            },
            Target::Broadcast => Ok(self
                .agents
                .keys()
                .filter(|a| *a != from && self.live(a))
                .cloned()
                .collect()),
            Target::Agent(_) => Err(self.unknown(target)),
        }
    }
}

struct Inner {
    transport: Arc<dyn Transport>,
    registry: Mutex<Registry>,
    policy: PolicyHandle,
    next_id: AtomicU64,
    persist: Persist,
    observers: Mutex<Vec<UnboundedSender<Record>>>,
    /// Whether anyone observes: checked without the lock on every record.
    observed: AtomicBool,
    attempts: Mutex<HashMap<MessageId, u32>>,
    /// Whether any message has been retried, so settling need not take the lock.
    retried: AtomicBool,
    /// Messages queued and not settled yet, per recipient.
    waiting: Mutex<HashMap<String, usize>>,
    cfg: RouterConfig,
}

/// The run's message router. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Router")
    }
}

impl Router {
    /// A router over `transport`, recording to `persist`, numbering messages from
    /// `first_id`.
    pub fn new(
        transport: Arc<dyn Transport>,
        persist: Persist,
        first_id: u64,
        cfg: RouterConfig,
    ) -> Router {
        Router {
            inner: Arc::new(Inner {
                transport,
                registry: Mutex::new(Registry::default()),
                policy: PolicyHandle::default(),
                next_id: AtomicU64::new(first_id.max(1)),
                persist,
                observers: Mutex::new(Vec::new()),
                observed: AtomicBool::new(false),
                attempts: Mutex::new(HashMap::new()),
                retried: AtomicBool::new(false),
                waiting: Mutex::new(HashMap::new()),
                cfg,
            }),
        }
    }

    /// The policy handle: set it to change who may message whom.
    pub fn policy(&self) -> PolicyHandle {
        self.inner.policy.clone()
    }

    /// Adds an agent (or replaces what is known about it) and puts it on its channels.
    pub fn register(&self, info: AgentInfo) {
        let mut reg = lock(&self.inner.registry);
        for c in &info.channels {
            reg.channels
                .entry(c.clone())
                .or_default()
                .insert(info.name.clone());
        }
        reg.agents.insert(info.name.clone(), info);
    }

    /// Makes sure channel `name` exists, members or not.
    pub fn add_channel(&self, name: &str) {
        lock(&self.inner.registry)
            .channels
            .entry(name.to_owned())
            .or_default();
    }

    /// Every agent, by name.
    pub fn agents(&self) -> Vec<AgentInfo> {
        lock(&self.inner.registry)
            .agents
            .values()
            .cloned()
            .collect()
    }

    /// Every channel with its members.
    pub fn channels(&self) -> BTreeMap<String, Vec<String>> {
        lock(&self.inner.registry)
            .channels
            .iter()
            .map(|(c, m)| (c.clone(), m.iter().cloned().collect()))
            .collect()
    }

    /// The state of agent `name`, if it is known.
    pub fn state(&self, name: &str) -> Option<AgentState> {
        lock(&self.inner.registry).agents.get(name).map(|a| a.state)
    }

    /// Receives a copy of every record from now on.
    pub fn observe(&self) -> UnboundedReceiver<Record> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.observers).push(tx);
        self.inner.observed.store(true, Ordering::Release);
        rx
    }

    fn emit(&self, rec: Record) {
        {
            let mut w = lock(&self.inner.waiting);
            if rec.state == MessageState::Queued {
                *w.entry(rec.to.clone()).or_insert(0) += 1;
            } else if rec.text.is_none()
                && let Some(n) = w.get_mut(&rec.to)
            {
                // A later state of a queued message: it no longer waits.
                *n = n.saturating_sub(1);
            }
        }
        if self.inner.observed.load(Ordering::Acquire) {
            let mut obs = lock(&self.inner.observers);
            obs.retain(|o| o.send(rec.clone()).is_ok());
        }
        self.inner.persist.write(rec);
    }

    /// Sends `text` from `from` to `target`. Each recipient's copy is queued, or failed
    /// at once (refused by the policy, recipient ended) with the reason in its receipt;
    /// a target that does not exist is an error, and is recorded as a failed message.
    pub async fn send(
        &self,
        from: &str,
        target: &Target,
        text: &str,
    ) -> Result<Vec<Receipt>, SendError> {
        self.submit(from, target, text).await
    }

    /// [`Router::send`] in two halves: the copies are numbered, recorded and handed to
    /// the transport before this returns, so the order of calls is the order of the
    /// messages whatever order the futures are awaited in; the future resolves once the
    /// transport has confirmed them. Many sends can so wait for their confirmations
    /// together (a connection that sends without waiting for each reply).
    pub fn submit<'a>(
        &'a self,
        from: &str,
        target: &Target,
        text: &str,
    ) -> BoxFuture<'a, Result<Vec<Receipt>, SendError>> {
        let done = |r| -> BoxFuture<'a, Result<Vec<Receipt>, SendError>> {
            Box::pin(std::future::ready(r))
        };
        let text = sanitize(text);
        if text.is_empty() {
            return done(Err(SendError::Empty));
        }
        if text.len() > MAX_TEXT_BYTES {
            return done(Err(SendError::TooLong { len: text.len() }));
        }
        let policy = self.inner.policy.get();
        let mut receipts = Vec::new();
        let mut published = Vec::new();
        {
            // Ids are taken and envelopes published under the lock, so the order of ids
            // is the order in every mailbox.
            let reg = lock(&self.inner.registry);
            let envelope = |to: &str| Envelope {
                id: MessageId(self.inner.next_id.fetch_add(1, Ordering::Relaxed)),
                from: from.to_owned(),
                to: to.to_owned(),
                target: target.clone(),
                text: text.clone(),
                ts_ms: now_ms(),
            };
            let recipients = match reg.recipients(from, target) {
                Ok(r) => r,
                Err(e) => {
                    let env = envelope(&target.to_string());
                    self.emit(Record::first(
                        &env,
                        MessageState::Failed,
                        Some(e.to_string()),
                    ));
                    return done(Err(e));
                }
            };
            if recipients.is_empty() {
                let env = envelope(&target.to_string());
                let reason = match target {
                    Target::Channel(c) => format!("nobody else is on #{c}"),
                    _ => "no other agent is in the run".to_owned(),
                };
                receipts.push(failed_receipt(&env, &reason));
                self.emit(Record::first(&env, MessageState::Failed, Some(reason)));
                return done(Ok(receipts));
            }
            for to in recipients {
                let env = envelope(&to);
                let waiting = lock(&self.inner.waiting).get(&to).copied().unwrap_or(0);
                let refusal = if let Err(why) = policy.check(from, &to) {
                    Some(format!(
                        "refused by the topology rule `{}`: {why}",
                        policy.rule()
                    ))
                } else if !reg.live(&to) {
                    Some(format!("`{to}` has ended"))
                } else if waiting >= self.inner.cfg.max_waiting {
                    Some(format!(
                        "`{to}` already has {waiting} messages waiting; no more are accepted until it takes some"
                    ))
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    receipts.push(failed_receipt(&env, &reason));
                    self.emit(Record::first(&env, MessageState::Failed, Some(reason)));
                    continue;
                }
                // Recorded before the recipient can see it, so `queued` always comes
                // first in the log.
                self.emit(Record::first(&env, MessageState::Queued, None));
                receipts.push(Receipt {
                    id: env.id,
                    to: to.clone(),
                    state: MessageState::Queued,
                    reason: None,
                });
                published.push((env.id, to, self.inner.transport.publish(env)));
            }
        }
        let from = from.to_owned();
        Box::pin(async move {
            for (id, to, fut) in published {
                if let Err(e) = fut.await {
                    let reason = e.to_string();
                    if let Some(r) = receipts.iter_mut().find(|r| r.id == id) {
                        r.state = MessageState::Failed;
                        r.reason = Some(reason.clone());
                    }
                    self.emit(Record {
                        ts_ms: now_ms(),
                        id,
                        state: MessageState::Failed,
                        from: from.clone(),
                        to,
                        target: None,
                        text: None,
                        reason: Some(reason),
                    });
                }
            }
            Ok(receipts)
        })
    }

    /// Puts back a message an earlier coordinator of this run accepted and never
    /// settled (it is already `queued` in the log, under its own id): into its
    /// recipient's mailbox while the recipient lives, failed with the reason otherwise.
    pub async fn requeue(&self, env: Envelope) {
        let refusal = {
            let reg = lock(&self.inner.registry);
            if !reg.agents.contains_key(&env.to) {
                Some(format!("`{}` is not in the run any more", env.to))
            } else if !reg.live(&env.to) {
                Some(format!("`{}` has ended", env.to))
            } else {
                None
            }
        };
        let reason = match refusal {
            Some(r) => Some(r),
            None => {
                let (id, from, to) = (env.id, env.from.clone(), env.to.clone());
                *lock(&self.inner.waiting).entry(to.clone()).or_insert(0) += 1;
                match self.inner.transport.publish(env).await {
                    Ok(()) => return,
                    Err(e) => {
                        self.emit(Record {
                            ts_ms: now_ms(),
                            id,
                            state: MessageState::Failed,
                            from,
                            to,
                            target: None,
                            text: None,
                            reason: Some(e.to_string()),
                        });
                        return;
                    }
                }
            }
        };
        self.emit(Record::change(&env, MessageState::Failed, reason));
    }

    fn check_agent(&self, agent: &str) -> Result<(), InboxError> {
        let reg = lock(&self.inner.registry);
        if reg.agents.contains_key(agent) {
            return Ok(());
        }
        Err(InboxError::UnknownAgent {
            name: agent.to_owned(),
            suggestion: relay_spec::load::did_you_mean(
                agent,
                reg.agents.keys().map(String::as_str),
            )
            .map(str::to_owned),
        })
    }

    fn delivery(&self, env: Envelope) -> Delivery {
        Delivery {
            env,
            router: self.clone(),
            settled: false,
        }
    }

    /// Waits for the next message for `agent` and claims it.
    pub async fn next(&self, agent: &str) -> Result<Delivery, InboxError> {
        self.check_agent(agent)?;
        let env = self.inner.transport.claim(agent).await?;
        Ok(self.delivery(env))
    }

    /// Claims the messages waiting for `agent`, up to `max`; with `wait`, waits that
    /// long for the first one when none is waiting.
    pub async fn take(
        &self,
        agent: &str,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>, InboxError> {
        self.check_agent(agent)?;
        let t = &self.inner.transport;
        let mut envs = t.fetch(agent, max).await?;
        if envs.is_empty()
            && let Some(wait) = wait
            && let Ok(first) = tokio::time::timeout(wait, t.claim(agent)).await
        {
            envs.push(first?);
            envs.extend(t.fetch(agent, max.saturating_sub(1)).await?);
        }
        Ok(envs.into_iter().map(|e| self.delivery(e)).collect())
    }

    /// Moves `agent` to `state`. When it ends, every message still waiting for it fails
    /// with `reason` (default: it ended before the message could be delivered).
    pub async fn set_state(&self, agent: &str, state: AgentState, reason: Option<&str>) {
        {
            let mut reg = lock(&self.inner.registry);
            let Some(a) = reg.agents.get_mut(agent) else {
                return;
            };
            a.state = state;
        }
        if state != AgentState::Ended {
            return;
        }
        let reason = reason
            .map(str::to_owned)
            .unwrap_or_else(|| format!("`{agent}` ended before the message could be delivered"));
        for env in self.inner.transport.drain(agent).await {
            self.forget_attempts(env.id);
            self.emit(Record::change(
                &env,
                MessageState::Failed,
                Some(reason.clone()),
            ));
        }
    }

    /// Ends every agent that has not ended (the run is over): what still waits fails
    /// with `reason`. Then waits until the log has everything.
    pub async fn shutdown(&self, reason: &str) {
        let names: Vec<String> = lock(&self.inner.registry)
            .agents
            .values()
            .filter(|a| a.state != AgentState::Ended)
            .map(|a| a.name.clone())
            .collect();
        for name in names {
            let why = format!("{reason} before `{name}` got the message");
            self.set_state(&name, AgentState::Ended, Some(&why)).await;
        }
        self.sync().await;
    }

    /// Resolves once every record so far is in the log file.
    pub async fn sync(&self) {
        self.inner.persist.sync().await;
    }

    fn forget_attempts(&self, id: MessageId) {
        if self.inner.retried.load(Ordering::Acquire) {
            lock(&self.inner.attempts).remove(&id);
        }
    }

    fn settle(&self, env: &Envelope, state: MessageState, reason: Option<String>) {
        self.forget_attempts(env.id);
        self.inner.transport.ack(&env.to, env.id, Ack::Done);
        self.emit(Record::change(env, state, reason));
    }

    /// A claimed message goes back to its mailbox: offered again after `backoff` (when
    /// it was tried), or failed when its recipient has ended meanwhile.
    fn release(&self, env: &Envelope, tried: Option<&str>) {
        if self.state(&env.to) == Some(AgentState::Ended) {
            let mut reason = format!("`{}` ended before the message could be delivered", env.to);
            if let Some(why) = tried {
                reason.push_str(&format!(" (last attempt: {why})"));
            }
            self.settle(env, MessageState::Failed, Some(reason));
            return;
        }
        let after = match tried {
            None => Duration::ZERO,
            Some(_) => {
                self.inner.retried.store(true, Ordering::Release);
                let mut attempts = lock(&self.inner.attempts);
                let n = attempts.entry(env.id).or_insert(0);
                *n += 1;
                let cfg = &self.inner.cfg;
                cfg.retry_base
                    .saturating_mul(1 << (*n - 1).min(16))
                    .min(cfg.retry_cap)
            }
        };
        self.inner
            .transport
            .ack(&env.to, env.id, Ack::Retry { after });
    }
}

fn failed_receipt(env: &Envelope, reason: &str) -> Receipt {
    Receipt {
        id: env.id,
        to: env.to.clone(),
        state: MessageState::Failed,
        reason: Some(reason.to_owned()),
    }
}

/// A message claimed for one recipient. Settle it with [`Delivery::delivered`],
/// [`Delivery::read`] or [`Delivery::retry_later`]; dropped unsettled, it goes back to
/// its mailbox untouched, so a message is never lost with whoever held it.
#[derive(Debug)]
pub struct Delivery {
    env: Envelope,
    router: Router,
    settled: bool,
}

impl Delivery {
    /// The message.
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// The one line typed into a terminal agent for it.
    pub fn injection_line(&self) -> String {
        injection_line(&self.env.from, &self.env.target, &self.env.text)
    }

    /// The recipient has it (typed in and confirmed, or put in its task).
    pub fn delivered(mut self) {
        self.settled = true;
        self.router.settle(&self.env, MessageState::Delivered, None);
    }

    /// The recipient took it with `inbox`.
    pub fn read(mut self) {
        self.settled = true;
        self.router.settle(&self.env, MessageState::Read, None);
    }

    /// Delivery did not work this time (`why`); it stays queued and is offered again
    /// after a growing delay, as long as its recipient lives.
    pub fn retry_later(mut self, why: &str) {
        self.settled = true;
        self.router.release(&self.env, Some(why));
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.settled {
            self.router.release(&self.env, None);
        }
    }
}

/// Feeds `agent`'s messages, one at a time, into a channel for a terminal session: a
/// message is claimed only once the channel has room for it, so at most one waits in
/// the channel. The task ends when the receiver is dropped; whatever it held goes back
/// to the mailbox.
pub fn feed(router: Router, agent: String) -> (mpsc::Receiver<Delivery>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            let delivery = tokio::select! {
                () = tx.closed() => return,
                d = router.next(&agent) => match d {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(agent, "message feed stopped: {e}");
                        return;
                    }
                },
            };
            permit.send(delivery);
        }
    });
    (rx, task)
}
