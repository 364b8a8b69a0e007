//! The run state's side of checklists (`verification: {type: checklist}`): an agent
//! marks the items of its running step done or blocked (`agent-relay task`), the marks
//! are events (a resumed run keeps them), and an attempt that ends is judged on them:
//! complete only when every item is done; items still open fail it (retryable: the next
//! attempt's task says which); an item blocked fails it for good and stops the run for a
//! person (`needs_human`, exit 2).

use std::collections::BTreeMap;

use super::{Attempts, Effect, Kind, RunState, Stop};
use crate::events::EventKind;
use crate::job::StepJob;
use crate::outcome::StepOutcome;

pub use crate::outcome::{Mark, Marks};

/// What an attempt's checklist says about it.
pub(super) enum Judged {
    /// Every item is done (or there is no checklist): the outcome stands.
    Stands(StepOutcome),
    /// An item is blocked: the step fails and the run stops for a person.
    Blocked(StepOutcome),
}

impl RunState<'_> {
    /// Whether `agent` (`None`: the run's owner) may mark `item` of node `label`: the
    /// node runs, has that item, and is the agent's.
    pub fn check_mark(&self, label: &str, item: &str, agent: Option<&str>) -> Result<(), String> {
        let running: Vec<(&str, &StepJob)> = self
            .nodes
            .0
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Run {
                    attempts: Attempts::Running { job, .. },
                    ..
                } if !job.checklist.is_empty() => Some((n.label.as_str(), job.as_ref())),
                _ => None,
            })
            .collect();
        let Some((_, job)) = running.iter().find(|(l, _)| *l == label) else {
            let names: Vec<String> = running.iter().map(|(l, _)| format!("`{l}`")).collect();
            return Err(if names.is_empty() {
                format!("step `{label}` has no checklist running (no step has)")
            } else {
                format!(
                    "step `{label}` has no checklist running (these have: {})",
                    names.join(", ")
                )
            });
        };
        if let (Some(who), Some(owner)) = (agent, job.agent().map(|a| a.name.as_str()))
            && who != owner
        {
            return Err(format!(
                "`{who}` may not mark the checklist of step `{label}`; it is `{owner}`'s"
            ));
        }
        if job.checklist.iter().any(|i| i.id == item) {
            return Ok(());
        }
        let ids: Vec<&str> = job.checklist.iter().map(|i| i.id.as_str()).collect();
        let hint = relay_spec::suggest::did_you_mean(item, ids.iter().copied())
            .map(|b| format!(" (did you mean `{b}`?)"))
            .unwrap_or_default();
        Err(format!(
            "step `{label}` has no checklist item `{item}`{hint}; its items are {}",
            ids.join(", ")
        ))
    }

    /// Records a mark (checked first with [`RunState::check_mark`]).
    pub(super) fn mark(
        &mut self,
        label: String,
        item: String,
        mark: Mark,
        by: String,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Record(EventKind::ChecklistMarked {
            step: label.clone(),
            item: item.clone(),
            blocked: mark.blocked,
            note: mark.note.clone(),
            by,
        }));
        self.marks.entry(label).or_default().insert(item, mark);
    }

    /// The marks of node `label`, item by item.
    pub fn marks_of(&self, label: &str) -> Option<&BTreeMap<String, Mark>> {
        self.marks.get(label)
    }

    /// Judges an ended attempt of node `label` on its checklist.
    pub(super) fn judge_checklist(
        &self,
        label: &str,
        job: &StepJob,
        outcome: StepOutcome,
    ) -> Judged {
        if job.checklist.is_empty() {
            return Judged::Stands(outcome);
        }
        let marks = self.marks.get(label);
        let mark = |id: &str| marks.and_then(|m| m.get(id));
        let blocked = job
            .checklist
            .iter()
            .find_map(|i| mark(&i.id).filter(|m| m.blocked).map(|m| (i, m)));
        let (output, exit_code) = match (outcome, blocked) {
            (StepOutcome::Completed { output, exit_code }, None) => (output, exit_code),
            (
                StepOutcome::Completed { output, exit_code }
                | StepOutcome::Failed {
                    output, exit_code, ..
                },
                Some((item, m)),
            ) => {
                let why = m.note.as_deref().unwrap_or("no reason given");
                return Judged::Blocked(StepOutcome::Failed {
                    output,
                    reason: format!("blocked: checklist item `{}`: {why}", item.id),
                    exit_code,
                    retryable: false,
                });
            }
            (other, _) => return Judged::Stands(other),
        };
        let open: Vec<String> = job
            .checklist
            .iter()
            .filter(|i| mark(&i.id).is_none())
            .map(|i| {
                if i.title.is_empty() {
                    format!("`{}`", i.id)
                } else {
                    format!("`{}` ({})", i.id, i.title)
                }
            })
            .collect();
        if open.is_empty() {
            return Judged::Stands(StepOutcome::Completed { output, exit_code });
        }
        Judged::Stands(StepOutcome::Failed {
            output,
            reason: format!(
                "checklist items not marked done: {} (mark each with `\"$AGENT_RELAY_BIN\" task done ID`)",
                open.join(", ")
            ),
            exit_code,
            retryable: true,
        })
    }

    /// A step ended blocked: nothing new starts; a person decides.
    pub(super) fn stop_blocked(&mut self, label: &str, reason: &str, out: &mut Vec<Effect>) {
        if self.stop.is_none() {
            self.stop = Some(Stop::NeedsHuman(format!("step `{label}` is {reason}")));
            let skipped = self.sched.halt();
            self.record_skips(&skipped, out);
        }
    }
}
