//! The thin async loop of a run: it turns what happens (a cancel, events from running
//! attempts, an attempt's end, a deadline) into inputs of the [`RunState`] and carries out
//! the effects it answers with, in order. Every event is in the log before anything is
//! acted on. A cancel takes priority over everything else. If the run directory stops
//! accepting writes, running attempts are ended before the error is returned, so nothing
//! is left running.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use relay_broker::Launcher;
use relay_messaging::control::Control;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::log::EventLog;
use super::state::{Effect, Input, RunState};
use crate::events::EventKind;
use crate::exec::{Shared, run_attempt};
use crate::outcome::{RunSummary, StepOutcome};
use crate::plan::NodeId;
use crate::store::{StoreError, write_atomic};

/// Why the run was cancelled, in words.
pub(crate) type CancelReason = Box<dyn Fn() -> String + Send + Sync>;

/// Drives `state` to its end. `cancel` stops the run (with the words `why` gives);
/// `events` carries what running attempts report.
pub(crate) async fn drive<L: Launcher>(
    shared: Arc<Shared<L>>,
    mut state: RunState<'_>,
    log: &mut EventLog,
    cancel: &CancellationToken,
    why: CancelReason,
    mut events: UnboundedReceiver<EventKind>,
) -> Result<RunSummary, StoreError> {
    let attempts_cancel = CancellationToken::new();
    let mut controls = shared.messaging.take_controls();
    let mut tasks: JoinSet<StepOutcome> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, (NodeId, u32)> = HashMap::new();
    // What a resumed run already spent counts against its budget.
    let mut pending: Vec<Input> = log
        .snapshot
        .steps
        .iter()
        .filter_map(|(label, r)| {
            r.usage.map(|usage| Input::Usage {
                step: label.clone(),
                usage,
                cost_usd: r.cost_usd,
            })
        })
        .collect();
    let result = async {
        let mut effects = Vec::new();
        for p in pending.drain(..) {
            effects.extend(state.handle(p, Instant::now()));
        }
        effects.extend(state.handle(Input::Start, Instant::now()));
        let mut cancel_seen = false;
        loop {
            for effect in effects.drain(..) {
                if let Effect::Record(kind) = effect {
                    log.push(kind);
                    continue;
                }
                // Nothing is acted on before the log has what led to it.
                log.flush().await?;
                match effect {
                    Effect::Record(_) => {}
                    Effect::StoreOutput { label, output } => {
                        let dir = log.store.step_dir(&label).await?;
                        write_atomic(&dir.join("output.txt"), output.as_bytes()).await?;
                    }
                    Effect::NodeStarted { agent, .. } => {
                        shared.messaging.step_started(agent.as_deref()).await;
                    }
                    Effect::Launch(launch) => {
                        let node = (launch.job.node, launch.attempt);
                        let handle = tasks.spawn(run_attempt(
                            shared.clone(),
                            launch,
                            attempts_cancel.clone(),
                        ));
                        running.insert(handle.id(), node);
                    }
                    Effect::CancelRunning => attempts_cancel.cancel(),
                    Effect::NodeEnded {
                        label,
                        agent,
                        failure,
                    } => {
                        shared
                            .messaging
                            .step_finished(&label, agent.as_deref(), failure.as_deref())
                            .await;
                    }
                    Effect::Finish(summary) => {
                        while let Ok(kind) = events.try_recv() {
                            log.push(kind);
                        }
                        log.flush().await?;
                        log.write_snapshot().await?;
                        log.write_trajectory_summary().await?;
                        log.store.write_json("result.json", &summary).await?;
                        return Ok(summary);
                    }
                }
            }
            log.flush().await?;
            log.write_snapshot_if_due(Instant::now()).await?;
            let deadline = state.next_deadline();
            let snapshot_due = log.snapshot_due();
            let input = tokio::select! {
                biased;
                () = cancel.cancelled(), if !cancel_seen => {
                    cancel_seen = true;
                    Input::Cancel { reason: why() }
                }
                Some(kind) = events.recv() => {
                    note_for_state(&kind, &mut pending);
                    log.push(kind);
                    continue;
                }
                Some(joined) = tasks.join_next_with_id() => {
                    // Every event an attempt sent before it returned is recorded first.
                    while let Ok(kind) = events.try_recv() {
                        note_for_state(&kind, &mut pending);
                        log.push(kind);
                    }
                    log.flush().await?;
                    let (id, outcome) = match joined {
                        Ok((id, outcome)) => (id, outcome),
                        Err(e) => (e.id(), StepOutcome::Broken { why: format!("a step task failed: {e}") }),
                    };
                    let Some((node, attempt)) = running.remove(&id) else {
                        continue;
                    };
                    Input::AttemptDone { node, attempt, outcome }
                }
                Some(c) = next_control(&mut controls) => match c {
                    Control::Answer { step, text, reply } => {
                        if state.open_question(&step).is_some() {
                            let _ = reply.send(Ok(()));
                            Input::Answer { step, text }
                        } else if shared.messaging.answer_live(&step, &text) {
                            // Typed into the live session; the attempt goes on.
                            let _ = reply.send(Ok(()));
                            log.push(EventKind::QuestionAnswered { step, answer: text });
                            continue;
                        } else if let Some(late) = asked_answer(&shared, &step, &text) {
                            // Asked through the socket (`ask_human`): back to the call
                            // that waits, or to the agent as a message.
                            let _ = reply.send(Ok(()));
                            if let Some(agent) = late {
                                shared.messaging.late_answer(&agent, &step, &text).await;
                            }
                            log.push(EventKind::QuestionAnswered { step, answer: text });
                            continue;
                        } else {
                            let mut open: Vec<String> = state
                                .open_questions()
                                .iter()
                                .map(|(l, _)| format!("`{l}`"))
                                .collect();
                            open.extend(shared.messaging.live.asking().iter().map(|l| format!("`{l}`")));
                            let _ = reply.send(Err(if open.is_empty() {
                                format!("step `{step}` has no question waiting (no step has)")
                            } else {
                                format!(
                                    "step `{step}` has no question waiting (these have: {})",
                                    open.join(", ")
                                )
                            }));
                            continue;
                        }
                    }
                    Control::Decide { step, approved, by, reason, reply } => {
                        match state.check_decision(&step, &by) {
                            Ok(()) => {
                                let _ = reply.send(Ok(()));
                                Input::Decide { step, approved, by, reason }
                            }
                            Err(why) => {
                                let _ = reply.send(Err(why));
                                continue;
                            }
                        }
                    }
                    Control::Pause { paused, by, reply } => {
                        if state.stop().is_some() {
                            let _ = reply.send(Err("the run is stopping".into()));
                            continue;
                        }
                        if state.is_paused() == paused {
                            let _ = reply.send(Err(if paused {
                                "the run is already paused".to_string()
                            } else {
                                "the run is not paused".to_string()
                            }));
                            continue;
                        }
                        let _ = reply.send(Ok(()));
                        if paused { Input::Pause { by } } else { Input::Unpause { by } }
                    }
                    Control::Mark { step, item, blocked, note, agent, reply } => {
                        // A terminal kept from an earlier step names that step.
                        let step = shared.messaging.live.resolve(&step, agent.as_deref());
                        match state.check_mark(&step, &item, agent.as_deref()) {
                            Ok(()) => {
                                let _ = reply.send(Ok(()));
                                Input::Mark {
                                    step,
                                    item,
                                    mark: crate::run::state::Mark { blocked, note },
                                    by: agent.unwrap_or_else(|| "owner".into()),
                                }
                            }
                            Err(why) => {
                                let _ = reply.send(Err(why));
                                continue;
                            }
                        }
                    }
                    Control::Ask { step, agent, question, reply } => {
                        // A terminal kept from an earlier step names that step.
                        let step = shared.messaging.live.resolve(&step, agent.as_deref());
                        match shared.messaging.live.ask(&step, agent.as_deref()) {
                            Ok(wait) => {
                                let _ = reply.send(Ok(wait));
                                log.push(EventKind::QuestionAsked { step, question });
                            }
                            Err(why) => {
                                let _ = reply.send(Err(why));
                            }
                        }
                        continue;
                    }
                    Control::Done { step, agent, text, reply } => {
                        // A terminal kept from an earlier step names that step.
                        let step = shared.messaging.live.resolve(&step, agent.as_deref());
                        match shared.messaging.live.report(&step, agent.as_deref(), text) {
                            Ok(ended) => {
                                let _ = reply.send(Ok(ended));
                                if ended {
                                    log.push(EventKind::AgentExitRequested { step });
                                }
                            }
                            Err(why) => {
                                let _ = reply.send(Err(why));
                            }
                        }
                        continue;
                    }
                    Control::Unpark { reply } => {
                        let parked: Vec<String> =
                            state.parked_steps().into_iter().map(|(l, _)| l).collect();
                        if parked.is_empty() {
                            let _ = reply.send(Err("no step of this run is parked".into()));
                            continue;
                        }
                        let _ = reply.send(Ok(parked));
                        Input::Unpark
                    }
                },
                () = sleep_until(deadline) => Input::Tick,
                () = sleep_until(snapshot_due) => {
                    log.write_snapshot().await?;
                    continue;
                }
            };
            // Spending and conversations are known to the state before anything else happens.
            for p in pending.drain(..) {
                effects.extend(state.handle(p, Instant::now()));
            }
            effects.extend(state.handle(input, Instant::now()));
        }
    }
    .await;
    if result.is_err() {
        // The run directory is failing us: end every running agent before giving up.
        attempts_cancel.cancel();
        while tasks.join_next().await.is_some() {}
    }
    result
}

/// The state's input for an event it must know of: spending, and the conversation an
/// agent works in.
fn note_for_state(kind: &EventKind, pending: &mut Vec<Input>) {
    match kind {
        EventKind::StepUsage {
            step,
            usage,
            cost_usd,
            ..
        } => pending.push(Input::Usage {
            step: step.clone(),
            usage: *usage,
            cost_usd: *cost_usd,
        }),
        EventKind::AgentSession { agent, session, .. } => pending.push(Input::Session {
            agent: agent.clone(),
            session: session.clone(),
        }),
        _ => {}
    }
}

async fn next_control(controls: &mut Option<UnboundedReceiver<Control>>) -> Option<Control> {
    match controls {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Hands a person's answer to a question asked through the socket for `step`: `None`
/// when nobody asked one; `Some(None)` when the call that asked took it; `Some(agent)`
/// when that call stopped waiting and the answer goes to the agent as a message.
fn asked_answer<L: Launcher>(shared: &Shared<L>, step: &str, text: &str) -> Option<Option<String>> {
    use crate::live_steps::Answered;
    match shared.messaging.live.answer(step, text) {
        Answered::Returned => Some(None),
        Answered::Late { agent } => Some(Some(agent)),
        Answered::NotAsked => None,
    }
}
