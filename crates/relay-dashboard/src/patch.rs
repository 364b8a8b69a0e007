//! What a live page is sent after the first full view: only what changed between two
//! views of a run (pure). Steps, attempts and messages are sent one by one when they
//! changed; what waits for a person as a whole list when it changed; the graph's drawing
//! only when its shape changed (steps, edges, nodes), since the page recolours boxes from
//! the steps it is sent.

use std::collections::HashMap;

use relay_engine::runs::Standing;
use relay_engine::trajectory::Decision;
use relay_messaging::persist::MessageSummary;
use serde::Serialize;

use crate::view::{Approval, AttemptSpan, Question, RunView, StepView};

/// What is said about the run as a whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Where it stands.
    pub status: Standing,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took or has been going.
    pub duration_ms: Option<u64>,
    /// The pattern in effect.
    pub pattern: Option<String>,
    /// Whether it is paused.
    pub paused: bool,
}

impl Head {
    /// The head of `run`.
    pub fn of(run: &RunView) -> Head {
        Head {
            run_id: run.run_id.clone(),
            workflow: run.workflow.clone(),
            status: run.status,
            reason: run.reason.clone(),
            started_at: run.started_at.clone(),
            duration_ms: run.duration_ms,
            pattern: run.pattern.clone(),
            paused: run.paused,
        }
    }
}

/// An attempt at its place on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptAt {
    /// Its index among the run's attempts.
    pub index: usize,
    /// The attempt.
    #[serde(flatten)]
    pub span: AttemptSpan,
}

/// Decisions added to the trajectory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appended<T> {
    /// Index of the first one.
    pub from: usize,
    /// They.
    pub items: Vec<T>,
}

/// The changes between two views of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPatch {
    /// The head, when any of it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
    /// Steps that changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepView>,
    /// Attempts that started or changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptAt>,
    /// Messages that were sent or changed state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageSummary>,
    /// Open questions, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub questions: Option<Vec<Question>>,
    /// Steps waiting for approval, when they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<Approval>>,
    /// Decisions added to the trajectory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trajectory: Option<Appended<Decision>>,
    /// The graph's new drawing, when its shape changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_svg: Option<String>,
}

/// How a newer view differs from the one a page has.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing to send.
    None,
    /// Send these changes.
    Patch(Box<RunPatch>),
    /// The newer view does not continue the older one (the log was replaced): send it
    /// whole.
    Full,
}

/// The graph's shape: what its drawing depends on apart from states.
fn shape(run: &RunView) -> Vec<(&str, &[String], Vec<&str>)> {
    run.steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.as_slice(),
                s.nodes.iter().map(|n| n.label.as_str()).collect(),
            )
        })
        .collect()
}

/// What changed from `old` to `new`.
pub fn diff(old: &RunView, new: &RunView) -> Change {
    let names = |r: &RunView| r.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let continues = new.run_id == old.run_id
        && names(new) == names(old)
        && new.attempts.len() >= old.attempts.len()
        && new.messages.len() >= old.messages.len()
        && new.trajectory.len() >= old.trajectory.len()
        && new.trajectory[..old.trajectory.len()] == old.trajectory[..];
    if !continues {
        return Change::Full;
    }
    let mut p = RunPatch::default();
    let head = Head::of(new);
    if head != Head::of(old) {
        p.head = Some(head);
    }
    p.steps = new
        .steps
        .iter()
        .zip(&old.steps)
        .filter(|(n, o)| n != o)
        .map(|(n, _)| n.clone())
        .collect();
    p.attempts = new
        .attempts
        .iter()
        .enumerate()
        .filter(|(i, a)| old.attempts.get(*i) != Some(a))
        .map(|(index, a)| AttemptAt {
            index,
            span: a.clone(),
        })
        .collect();
    let before: HashMap<_, &MessageSummary> = old.messages.iter().map(|m| (m.id, m)).collect();
    p.messages = new
        .messages
        .iter()
        .filter(|m| before.get(&m.id) != Some(m))
        .cloned()
        .collect();
    if new.questions != old.questions {
        p.questions = Some(new.questions.clone());
    }
    if new.approvals != old.approvals {
        p.approvals = Some(new.approvals.clone());
    }
    if new.trajectory.len() > old.trajectory.len() {
        p.trajectory = Some(Appended {
            from: old.trajectory.len(),
            items: new.trajectory[old.trajectory.len()..].to_vec(),
        });
    }
    if shape(new) != shape(old) {
        p.graph_svg = Some(new.graph_svg.clone());
    }
    if p == RunPatch::default() {
        Change::None
    } else {
        Change::Patch(Box::new(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{AttemptEnd, NodeView};
    use relay_engine::snapshot::StepState;
    use relay_messaging::{MessageId, MessageState};

    fn step(name: &str, status: StepState) -> StepView {
        StepView {
            name: name.into(),
            status,
            attempts: 0,
            exit_code: None,
            duration_ms: 0,
            reason: None,
            agent: None,
            depends_on: vec![],
            nodes: vec![],
            verification: None,
        }
    }

    fn msg(id: u64, state: MessageState) -> MessageSummary {
        MessageSummary {
            id: MessageId(id),
            from: "a".into(),
            to: "b".into(),
            target: None,
            text: format!("m{id}"),
            state,
            reason: None,
            sent_ms: 1,
            updated_ms: 1,
        }
    }

    fn run(steps: Vec<StepView>) -> RunView {
        RunView {
            run_id: "r".into(),
            workflow: "w".into(),
            status: Standing::Running,
            reason: None,
            started_at: None,
            duration_ms: Some(10),
            pattern: None,
            steps,
            attempts: vec![],
            messages: vec![],
            questions: vec![],
            approvals: vec![],
            paused: false,
            trajectory: vec![],
            graph_svg: "<svg/>".into(),
        }
    }

    fn patch(c: Change) -> RunPatch {
        match c {
            Change::Patch(p) => *p,
            other => panic!("expected a patch, got {other:?}"),
        }
    }

    #[test]
    fn an_unchanged_run_sends_nothing() {
        let a = run(vec![step("a", StepState::Pending)]);
        assert_eq!(diff(&a, &a.clone()), Change::None);
    }

    #[test]
    fn only_the_step_that_changed_is_sent_and_the_drawing_stays() {
        let old = run(vec![
            step("a", StepState::Running),
            step("b", StepState::Pending),
        ]);
        let mut new = old.clone();
        new.steps[0].status = StepState::Completed;
        new.graph_svg = "<svg>recoloured</svg>".into();
        let p = patch(diff(&old, &new));
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].name, "a");
        assert_eq!(p.head, None, "the head did not change");
        assert_eq!(
            p.graph_svg, None,
            "the page recolours; the shape is the same"
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["steps"],
            "nothing else goes over the wire: {json}"
        );
    }

    #[test]
    fn a_new_node_redraws_the_graph() {
        let old = run(vec![step("a", StepState::Running)]);
        let mut new = old.clone();
        new.steps[0].nodes.push(NodeView {
            label: "a#2".into(),
            status: StepState::Running,
            attempts: 1,
        });
        new.graph_svg = "<svg>with a chip</svg>".into();
        let p = patch(diff(&old, &new));
        assert_eq!(p.graph_svg.as_deref(), Some("<svg>with a chip</svg>"));
    }

    #[test]
    fn attempts_messages_and_decisions_go_by_what_is_new_or_changed() {
        let span = |end| AttemptSpan {
            node: "a".into(),
            attempt: 1,
            start_ms: 0,
            end_ms: None,
            end,
            reason: None,
        };
        let mut old = run(vec![step("a", StepState::Running)]);
        old.attempts = vec![span(AttemptEnd::Running)];
        old.messages = vec![
            msg(1, MessageState::Delivered),
            msg(2, MessageState::Queued),
        ];
        let mut new = old.clone();
        new.attempts[0].end = AttemptEnd::Completed;
        new.attempts.push(span(AttemptEnd::Running));
        new.messages[1].state = MessageState::Delivered;
        new.messages.push(msg(3, MessageState::Queued));
        new.trajectory.push(Decision {
            ts: "t".into(),
            step: "a".into(),
            decision: "retry".into(),
            reason: "r".into(),
            evidence: String::new(),
        });
        new.duration_ms = Some(20);
        let p = patch(diff(&old, &new));
        assert_eq!(
            p.attempts.iter().map(|a| a.index).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(
            p.messages.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(p.trajectory.as_ref().map(|t| t.from), Some(0));
        assert_eq!(p.head.map(|h| h.duration_ms), Some(Some(20)));
        assert!(p.steps.is_empty());
    }

    #[test]
    fn what_waits_for_a_person_goes_whole_when_it_changes() {
        let old = run(vec![step("a", StepState::Pending)]);
        let mut new = old.clone();
        new.approvals.push(Approval {
            step: "a".into(),
            approvers: vec![],
            timeout_ms: None,
        });
        new.paused = true;
        let p = patch(diff(&old, &new));
        assert_eq!(p.approvals.map(|a| a.len()), Some(1));
        assert!(p.head.unwrap().paused);
        assert_eq!(p.questions, None);
    }

    #[test]
    fn a_view_that_does_not_continue_the_last_is_sent_whole() {
        let old = run(vec![step("a", StepState::Completed)]);
        let mut other = old.clone();
        other.steps.push(step("b", StepState::Pending));
        assert_eq!(diff(&old, &other), Change::Full);
        let mut shorter = old.clone();
        shorter.run_id = "r2".into();
        assert_eq!(diff(&old, &shorter), Change::Full);
    }
}
