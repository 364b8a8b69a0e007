//! The engine's side of agent messaging: starting a run's broker (router, board and the
//! socket in the run directory), registering the workflow's agents on their channels,
//! telling each agent who else is in the run, following each agent's state from its
//! steps, handing messages to one-shot tasks and terminal sessions, sending what agents
//! print as `->relay:` lines, posting step failures to `errorHandling.notifyChannel`, and
//! recording message events. Also the run's shared state (opened from the workflow's
//! `state:`; the board is this state) and file claims: their events, `{{state.KEY}}`
//! values, claims ending with their step, and the conflict check at a step's end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use relay_broker::session::detect::REPLY_GLYPHS;
use relay_broker::session::{Inbound, SessionEvent};
use relay_messaging::access::{Access, TOKEN_ENV};
use relay_messaging::control::Control;
use relay_messaging::{
    AgentInfo, AgentState, Broker, Delivery, MessageId, MessageState, Record, RelayLine, Router,
    RouterConfig, SOCKET_ENV, Target, Topology, lines,
};
use relay_spec::{ClaimsMode, RelayFile, WorkflowDef};
use relay_state::{Change, ChangeKind, ClaimRecord, Claims, State, StateSettings};
use tokio::sync::mpsc::{Receiver, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::events::EventKind;
use crate::plan::{NodeKind, Plan};
use crate::store::StoreError;

/// Who posts step failures to the notify channel.
pub const COORDINATOR: &str = "agent-relay";

/// The messaging of one run.
pub(crate) struct RunMessaging {
    broker: Mutex<Option<Broker>>,
    controls: Mutex<Option<UnboundedReceiver<Control>>>,
    router: Router,
    state: State,
    claims: Arc<Claims>,
    claims_mode: ClaimsMode,
    access: Access,
    socket: String,
    notify_channel: Option<String>,
    /// Steps of each agent running now.
    running: Arc<Mutex<HashMap<String, usize>>>,
    /// The task telling agents of the local files they watch.
    watcher: Option<JoinHandle<()>>,
    /// Steps of each agent not finished yet, when the plan fixes them in advance (no
    /// gate can add steps, no pool picks agents at run time); an agent with none left
    /// has ended, and messages to it fail at once.
    left: Mutex<Option<HashMap<String, usize>>>,
    events: OnceLock<JoinHandle<()>>,
    /// Terminal sessions whose agent waits for a person's answer, by step label: where
    /// the answer is typed in.
    asking: Mutex<HashMap<String, UnboundedSender<Inbound>>>,
    /// Agents' steps running now: results and questions reported through the socket.
    pub(crate) live: crate::live_steps::LiveSteps,
}

/// Ids of answers typed into sessions, counted down from the top so they never meet a
/// message's id.
static NEXT_ANSWER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The swarm channel's name when `swarm.channel` is not set: the workflow's name, made
/// a valid channel name.
pub(crate) fn default_channel(workflow: &str) -> String {
    let name: String = workflow
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.trim_matches('-').is_empty() {
        "swarm".to_owned()
    } else {
        name
    }
}

impl RunMessaging {
    /// Starts the broker of the run in `run_dir` under `topology` and registers every
    /// agent of `file` on the swarm channel and its own channels. Nodes in `done` (a
    /// resumed run's completed steps) do not count as steps still to run. The shared
    /// state is opened from `file.state` (relative database paths from `workdir`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        run_dir: &Path,
        workdir: &Path,
        run_id: &str,
        file: &RelayFile,
        wf: &WorkflowDef,
        plan: &Plan,
        topology: Topology,
        done: &HashSet<String>,
        transport: Option<Arc<dyn relay_messaging::Transport>>,
    ) -> Result<Arc<RunMessaging>, crate::EngineError> {
        let failed = |e: &dyn std::fmt::Display| StoreError {
            path: run_dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        };
        // The shared state's backend (a database file, Redis) failing is not the run
        // directory failing: it keeps its own error.
        let state = relay_state::open(&StateSettings {
            config: file.state.as_ref(),
            run_dir,
            workdir,
            workflow: &wf.name,
        })
        .await?;
        let transport = transport.unwrap_or_else(|| Arc::new(relay_messaging::InProcess::new()));
        let mut broker =
            Broker::start_with(run_dir, run_id, RouterConfig::default(), state, transport)
                .await
                .map_err(|e| failed(&e))?;
        let router = broker.router().clone();
        router.policy().set(topology);
        let state = broker.state().clone();
        let claims = broker.claims().clone();
        let access = broker.access().clone();
        let swarm_channel = file
            .swarm
            .as_ref()
            .and_then(|s| s.channel.clone())
            .unwrap_or_else(|| default_channel(&wf.name));
        let left = steps_per_agent(wf, plan, done);
        for a in &file.agents {
            let mut channels = vec![swarm_channel.clone()];
            channels.extend(a.channels.iter().filter(|c| **c != swarm_channel).cloned());
            let ended = left.as_ref().is_some_and(|l| !l.contains_key(&a.name));
            router.register(AgentInfo {
                name: a.name.clone(),
                role: a.role.clone(),
                interactive: a.is_interactive(),
                channels,
                state: if ended {
                    AgentState::Ended
                } else {
                    AgentState::Pending
                },
            });
        }
        router.add_channel(&swarm_channel);
        let notify_channel = file
            .error_handling
            .as_ref()
            .and_then(|e| e.notify_channel.clone());
        if let Some(c) = &notify_channel {
            router.add_channel(c);
        }
        // A resumed run delivers what its stopped coordinator left queued.
        broker.requeue_carried().await;
        let controls = broker.take_controls();
        let running: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let watches = crate::watch::local_watches(file);
        let watcher = (!watches.is_empty()).then(|| {
            tokio::spawn(crate::watch::run(
                COORDINATOR,
                workdir.to_path_buf(),
                watches,
                router.clone(),
                running.clone(),
            ))
        });
        Ok(Arc::new(RunMessaging {
            socket: broker.socket().display().to_string(),
            broker: Mutex::new(Some(broker)),
            controls: Mutex::new(controls),
            router,
            state,
            claims,
            claims_mode: file
                .coordination
                .as_ref()
                .map(|c| c.claims())
                .unwrap_or_default(),
            access,
            notify_channel,
            running,
            watcher,
            left: Mutex::new(left),
            events: OnceLock::new(),
            asking: Mutex::default(),
            live: crate::live_steps::LiveSteps::default(),
        }))
    }

    /// What people ask of the run through its socket (once: the driver takes it).
    pub(crate) fn take_controls(&self) -> Option<UnboundedReceiver<Control>> {
        lock(&self.controls).take()
    }

    /// The run's shared board (its state) as a section to append to a task (empty when
    /// there is nothing on it), read as it is now.
    pub(crate) async fn board_section(&self) -> String {
        let entries = match self.state.list("").await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot read the board: {e}");
                return format!("\n\n## Shared board\n(unreadable now: {e})");
            }
        };
        if entries.is_empty() {
            return String::new();
        }
        let mut text = String::from("\n\n## Shared board");
        for (key, e) in entries {
            text.push_str(&format!("\n- {key}: {}", e.value));
        }
        text
    }

    /// `task` followed by the note on `agent`'s peers, when it has any; `mcp` when the
    /// agent's CLI has the run's MCP tools.
    pub(crate) fn with_note(&self, task: &str, agent: &str, mcp: bool) -> String {
        match self.peers_note(agent, mcp) {
            Some(note) => format!("{task}\n\n{note}"),
            None => task.to_owned(),
        }
    }

    /// The variables that tell an agent (or, for `None`, a step or check of the user's)
    /// where the socket is and who it is on it.
    pub(crate) fn env(&self, agent: Option<&str>) -> Vec<(String, String)> {
        let token = match agent {
            Some(a) => self.access.agent_token(a).unwrap_or_else(|e| {
                tracing::warn!("no socket token for {a}: {e}");
                String::new()
            }),
            None => self.access.owner_token().to_owned(),
        };
        vec![
            (SOCKET_ENV.to_owned(), self.socket.clone()),
            (TOKEN_ENV.to_owned(), token),
        ]
    }

    /// Records message, state and claim events from now on in `events` (once per run).
    pub(crate) fn attach(&self, events: &UnboundedSender<EventKind>) {
        self.events.get_or_init(|| {
            let mut records = self.router.observe();
            let tx = events.clone();
            let task = tokio::spawn(async move {
                while let Some(r) = records.recv().await {
                    if tx.send(event_of(r)).is_err() {
                        return;
                    }
                }
            });
            // State and claim records are passed on as they happen (not through a task),
            // so what a step did is in the log before its end is.
            let tx = events.clone();
            self.state
                .observers()
                .sink(move |c| tx.send(state_event(c.clone())).is_ok());
            let tx = events.clone();
            self.claims.observers().sink(move |r| {
                claim_events(r.clone())
                    .into_iter()
                    .all(|e| tx.send(e).is_ok())
            });
            task
        });
    }

    /// The values of `keys` in the run's state, for `{{state.KEY}}`; keys with no
    /// value are left out (the caller names them). An error is the backend's.
    pub(crate) async fn state_values(
        &self,
        keys: &[&str],
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for k in keys {
            match self.state.get(k).await {
                Ok(Some(e)) => {
                    out.insert((*k).to_owned(), e.value);
                }
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    }

    /// The conflict check at the end of an attempt of `agent`'s step `label`, which ran
    /// in `dir` from `since_ms`: files changed there while another agent held a claim
    /// on them, each recorded as a `claim:conflict` event in `events`. Returns why the
    /// attempt fails, under `coordination.claims: enforce` with a certain conflict.
    pub(crate) async fn check_claims(
        &self,
        label: &str,
        agent: &str,
        dir: &Path,
        since_ms: u64,
        events: &UnboundedSender<EventKind>,
    ) -> Option<String> {
        let held = self.claims.others_during(agent, since_ms);
        // Nobody else claimed anything while the step ran: nothing to look at.
        if held.is_empty() {
            return None;
        }
        let patterns: Vec<String> = held.iter().map(|c| c.path.clone()).collect();
        let look = dir.to_path_buf();
        let changed = tokio::task::spawn_blocking(move || {
            relay_state::changes::changed_since(&look, &patterns, since_ms)
        })
        .await
        .unwrap_or_default();
        let now = relay_state::now_ms();
        let found = relay_state::claims::conflicts(agent, dir, &changed, &held, since_ms, now);
        for c in &found {
            let _ = events.send(EventKind::ClaimConflict {
                step: label.to_owned(),
                agent: agent.to_owned(),
                path: c.path.clone(),
                holder: c.claim.holder.clone(),
                claim: c.claim.path.clone(),
                certain: c.certain,
            });
        }
        match self.claims_mode {
            ClaimsMode::Enforce => relay_state::claims::enforce_verdict(&found),
            ClaimsMode::Report => None,
        }
    }

    /// A step of `agent` starts.
    pub(crate) async fn step_started(&self, agent: Option<&str>) {
        let Some(agent) = agent else {
            return;
        };
        *lock(&self.running).entry(agent.to_owned()).or_insert(0) += 1;
        self.router
            .set_state(agent, AgentState::Running, None)
            .await;
    }

    /// A step (`label`) of `agent` finished: the agent waits for its next step or has
    /// ended, and a failure is posted to the notify channel.
    pub(crate) async fn step_finished(
        &self,
        label: &str,
        agent: Option<&str>,
        failure: Option<&str>,
    ) {
        if let Some(agent) = agent {
            let still_running = {
                let mut running = lock(&self.running);
                let n = running.entry(agent.to_owned()).or_insert(1);
                *n = n.saturating_sub(1);
                *n > 0
            };
            let ended = {
                let mut left = lock(&self.left);
                match left.as_mut().and_then(|l| l.get_mut(agent)) {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        *n == 0
                    }
                    None => false,
                }
            };
            // Claims made from this step end with it; those made outside any step end
            // when the agent has no step running.
            self.claims.step_ended(agent, label, !still_running);
            if ended {
                self.router.set_state(agent, AgentState::Ended, None).await;
            } else if !still_running {
                self.router
                    .set_state(agent, AgentState::Pending, None)
                    .await;
            }
        }
        if let (Some(reason), Some(channel)) = (failure, &self.notify_channel) {
            let text = format!("step `{label}` failed: {reason}");
            let target = Target::Channel(channel.clone());
            if let Err(e) = self.router.send(COORDINATOR, &target, &text).await {
                tracing::warn!("cannot post to the notify channel: {e}");
            }
        }
    }

    /// The short paragraph appended to `agent`'s task: who else is in the run and how to
    /// message them. `None` when the agent is alone.
    pub(crate) fn peers_note(&self, agent: &str, mcp: bool) -> Option<String> {
        let all = self.router.agents();
        let me = all.iter().find(|a| a.name == agent)?;
        let others: Vec<String> = all
            .iter()
            .filter(|a| a.name != agent && a.state != AgentState::Ended)
            .map(|a| match &a.role {
                Some(r) => format!("{} ({r})", a.name),
                None => a.name.clone(),
            })
            .collect();
        if others.is_empty() {
            return None;
        }
        let channels: Vec<String> = me.channels.iter().map(|c| format!("#{c}")).collect();
        if mcp {
            return Some(format!(
                "Other agents in this run (you are {agent}): {}. Message them with the agent-relay \
                 MCP tools: `send` (to: NAME, a channel such as {}, or `*` for everyone), `inbox` \
                 for messages sent to you, `agents` for who is here, `board_get`/`board_set` for \
                 the shared board, `ask_human` for a question to a person; or print a line \
                 `->relay:NAME text`.",
                others.join(", "),
                channels.join(", "),
            ));
        }
        let reading = if me.interactive {
            "Messages to you arrive as lines starting `Relay message from`."
        } else {
            "`\"$AGENT_RELAY_BIN\" inbox` prints messages sent to you while you work."
        };
        Some(format!(
            "Other agents in this run (you are {agent}): {}. To message one, run \
             `\"$AGENT_RELAY_BIN\" send --to NAME \"text\"` (or `--channel NAME` for {}, `--all` \
             for everyone), or print a line `->relay:NAME text`. {reading}",
            others.join(", "),
            channels.join(", "),
        ))
    }

    /// For a one-shot agent about to start: the messages waiting for it, as a section
    /// to append to its task, and their claims, to settle once the task is handed over.
    pub(crate) async fn waiting_for_oneshot(&self, agent: &str) -> (String, Vec<Delivery>) {
        let claimed = self
            .router
            .take(agent, relay_messaging::server::INBOX_MAX, None)
            .await
            .unwrap_or_default();
        if claimed.is_empty() {
            return (String::new(), claimed);
        }
        let mut text = String::from("\n\nMessages sent to you before you started:");
        for d in &claimed {
            let e = d.envelope();
            let via = match &e.target {
                Target::Agent(_) => String::new(),
                t => format!(" to {t}"),
            };
            let body = e.text.replace('\n', "\n  ");
            text.push_str(&format!("\n- from {}{via}: {body}", e.from));
        }
        (text, claimed)
    }

    /// The feed of messages for a terminal session of `agent`: the inbox the session
    /// takes them from, and the claims behind them, settled by what the session reports.
    pub(crate) fn session_feed(&self, agent: &str) -> (Receiver<Inbound>, SessionFeed) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Inbound>(1);
        let (answers, mut answers_rx) = tokio::sync::mpsc::unbounded_channel::<Inbound>();
        let held: Arc<Mutex<HashMap<MessageId, Delivery>>> = Arc::default();
        let router = self.router.clone();
        let agent = agent.to_owned();
        let claims = held.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = tx.reserve().await else {
                    return;
                };
                let delivery = tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    Some(answer) = answers_rx.recv() => {
                        permit.send(answer);
                        continue;
                    }
                    d = router.next(&agent) => match d {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(agent, "message feed stopped: {e}");
                            return;
                        }
                    },
                };
                let inbound = Inbound {
                    id: delivery.envelope().id,
                    line: delivery.injection_line(),
                    answer: false,
                };
                lock(&claims).insert(inbound.id, delivery);
                permit.send(inbound);
            }
        });
        (
            rx,
            SessionFeed {
                held,
                task,
                router: self.router.clone(),
                answers,
            },
        )
    }

    /// The agent of the session of step `label` asked a person a question: the answer
    /// is typed in through `feed`.
    pub(crate) fn asking(&self, label: &str, feed: &SessionFeed) {
        lock(&self.asking).insert(label.to_owned(), feed.answers.clone());
    }

    /// Types `text` into the live session of step `label` as `HUMAN_ANSWER: text`, when
    /// its agent waits for an answer; whether it did.
    pub(crate) fn answer_live(&self, label: &str, text: &str) -> bool {
        let Some(tx) = lock(&self.asking).remove(label) else {
            return false;
        };
        let id = MessageId(NEXT_ANSWER_ID.fetch_sub(1, std::sync::atomic::Ordering::Relaxed));
        let line = format!("HUMAN_ANSWER: {}", text.replace(['\r', '\n'], " "));
        tx.send(Inbound {
            id,
            line,
            answer: true,
        })
        .is_ok()
    }

    /// The session of step `label` ended; whether its agent still waited for an answer.
    pub(crate) fn session_ended(&self, label: &str) -> bool {
        lock(&self.asking).remove(label).is_some()
    }

    /// A person's answer to the question `agent` asked for step `label` through the
    /// socket, after the call that asked stopped waiting: it reaches the agent as a
    /// message from `user`.
    pub(crate) async fn late_answer(&self, agent: &str, label: &str, text: &str) {
        let text = format!("HUMAN_ANSWER (to your question for step {label}): {text}");
        let to = Target::Agent(agent.to_owned());
        if let Err(e) = self.router.send("user", &to, &text).await {
            tracing::warn!("cannot pass the answer on to {agent}: {e}");
        }
    }

    /// Sends the `->relay:` lines in a one-shot agent's output.
    pub(crate) async fn relay_output(&self, agent: &str, output: &str) {
        for line in lines::scan(output, &REPLY_GLYPHS).lines {
            send_line(&self.router, agent, &line).await;
        }
    }

    /// Closes the socket and fails whatever is still queued: the run is over.
    pub(crate) async fn shutdown(&self) {
        if let Some(w) = &self.watcher {
            w.abort();
        }
        let broker = lock(&self.broker).take();
        if let Some(b) = broker {
            b.shutdown("the run ended").await;
        }
    }
}

/// The claims behind the messages offered to one terminal session. What the session
/// reports settles them; a claim it never settled goes back to the mailbox when the
/// feed is dropped with the session's end.
pub(crate) struct SessionFeed {
    held: Arc<Mutex<HashMap<MessageId, Delivery>>>,
    task: JoinHandle<()>,
    router: Router,
    answers: UnboundedSender<Inbound>,
}

impl SessionFeed {
    /// Acts on a messaging event of the session of `agent`: settles a claim, or sends a
    /// line the agent printed for others.
    pub(crate) async fn on_event(&mut self, agent: &str, event: &SessionEvent) {
        match event {
            SessionEvent::MessageDelivered { id } => {
                if let Some(d) = lock(&self.held).remove(id) {
                    d.delivered();
                }
            }
            SessionEvent::MessageNotDelivered { id, reason } => {
                if let Some(d) = lock(&self.held).remove(id) {
                    d.retry_later(reason);
                }
            }
            SessionEvent::Relay(line) => send_line(&self.router, agent, line).await,
            _ => {}
        }
    }
}

impl Drop for SessionFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send_line(router: &Router, from: &str, line: &RelayLine) {
    // Refusals and unknown names are recorded as failed messages by the router.
    if let Err(e) = router.send(from, &line.target, &line.text).await {
        tracing::info!(from, "relay line not sent: {e}");
    }
}

/// Steps still to run per agent, when the plan fixes them; `None` when gates or the
/// swarm pool decide at run time.
fn steps_per_agent(
    wf: &WorkflowDef,
    plan: &Plan,
    done: &HashSet<String>,
) -> Option<HashMap<String, usize>> {
    let mut left = HashMap::new();
    for node in &plan.nodes {
        let NodeKind::Run(spec) = &node.kind else {
            return None;
        };
        if spec.pooled || spec.breaker.is_some() {
            return None;
        }
        if done.contains(&node.label) {
            continue;
        }
        let agent = spec
            .agent
            .clone()
            .or_else(|| wf.steps.get(node.step.get()).and_then(|s| s.agent.clone()));
        if let Some(a) = agent {
            *left.entry(a).or_insert(0) += 1;
        }
    }
    Some(left)
}

fn state_event(c: Change) -> EventKind {
    match c.kind {
        ChangeKind::Set {
            value,
            bytes,
            rev,
            ttl_ms,
        } => EventKind::StateSet {
            key: c.key,
            by: c.by,
            rev,
            value,
            bytes,
            ttl_ms,
        },
        ChangeKind::Deleted => EventKind::StateDeleted {
            key: c.key,
            by: c.by,
        },
    }
}

/// One event per holder (and, for ended claims, per way they ended).
fn claim_events(r: ClaimRecord) -> Vec<EventKind> {
    let mut out: Vec<EventKind> = Vec::new();
    match r {
        ClaimRecord::Granted(claims) => {
            let mut by: BTreeMap<(String, Option<String>, Option<u64>), Vec<String>> =
                BTreeMap::new();
            for c in claims {
                let ttl = c.expires_ms.map(|e| e.saturating_sub(c.since_ms));
                by.entry((c.holder, c.step, ttl)).or_default().push(c.path);
            }
            for ((agent, step, ttl_ms), paths) in by {
                out.push(EventKind::ClaimGranted {
                    agent,
                    paths,
                    step,
                    ttl_ms,
                });
            }
        }
        ClaimRecord::Ended(claims) => {
            let mut by: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
            for c in claims {
                let why = c.end.map_or("released", |e| e.as_str());
                by.entry((c.holder, why)).or_default().push(c.path);
            }
            for ((agent, why), paths) in by {
                out.push(EventKind::ClaimReleased {
                    agent,
                    paths,
                    why: why.to_owned(),
                });
            }
        }
    }
    out
}

fn event_of(r: Record) -> EventKind {
    let id = r.id.0;
    match r.state {
        MessageState::Queued => EventKind::MessageSent {
            id,
            from: r.from,
            to: r.to,
            target: r.target.map(|t| t.to_string()).unwrap_or_default(),
        },
        MessageState::Delivered => EventKind::MessageDelivered {
            id,
            from: r.from,
            to: r.to,
        },
        MessageState::Read => EventKind::MessageRead {
            id,
            from: r.from,
            to: r.to,
        },
        MessageState::Failed => EventKind::MessageFailed {
            id,
            from: r.from,
            to: r.to,
            reason: r.reason.unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_channel_is_the_workflow_name() {
        assert_eq!(default_channel("ship"), "ship");
        assert_eq!(default_channel("build and test"), "build-and-test");
        assert_eq!(default_channel("!!"), "swarm");
    }
}
