//! Where names and references stand in a workflow file, read by a second, lenient pass
//! over the source so validation messages can point at the offending text. Every field
//! is optional: a missing position only costs a location in a message.

use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::load::Pos;

/// Positions of names and references in the source.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceMap {
    #[serde(default)]
    agents: Vec<AgentAt>,
    #[serde(default)]
    workflows: Vec<WorkflowAt>,
    swarm: Option<SwarmAt>,
    coordination: Option<CoordinationAt>,
}

type At = Option<Spanned<IgnoredAny>>;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentAt {
    name: At,
    reports_to: At,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwarmAt {
    max_concurrency: At,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct CoordinationAt {
    #[serde(default)]
    barriers: Vec<BarrierAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BarrierAt {
    name: At,
    #[serde(default)]
    wait_for: Vec<Spanned<IgnoredAny>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct WorkflowAt {
    name: At,
    #[serde(default)]
    steps: Vec<StepAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepAt {
    name: At,
    agent: At,
    task: At,
    command: At,
    cwd: At,
    items: At,
    compensate: At,
    #[serde(default)]
    depends_on: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    participants: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    escalate_to: Vec<Spanned<IgnoredAny>>,
    verification: Option<VerificationAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct VerificationAt {
    #[serde(rename = "type")]
    kind: At,
    value: At,
}

/// Which part of a step a position is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepField {
    /// The step's `name`.
    Name,
    /// The step's `agent`.
    Agent,
    /// The step's `task`.
    Task,
    /// The step's `command`.
    Command,
    /// The step's `cwd`.
    Cwd,
    /// The step's `items`.
    Items,
    /// The step's `compensate`.
    Compensate,
    /// The n-th entry of `dependsOn`.
    DependsOn(usize),
    /// The n-th entry of `participants`.
    Participant(usize),
    /// The n-th entry of `escalateTo`.
    EscalateTo(usize),
    /// The verification's `type`.
    VerificationType,
    /// The verification's `value`.
    VerificationValue,
}

fn at(s: &At) -> Option<Pos> {
    s.as_ref().and_then(|s| Pos::from_location(&s.referenced))
}

fn nth(v: &[Spanned<IgnoredAny>], i: usize) -> Option<Pos> {
    v.get(i).and_then(|d| Pos::from_location(&d.referenced))
}

impl SourceMap {
    /// Where agent number `i` is named.
    pub fn agent(&self, i: usize) -> Option<Pos> {
        self.agents.get(i).and_then(|a| at(&a.name))
    }

    /// Where agent number `i` names the agent it reports to (else where it is named).
    pub fn agent_reports_to(&self, i: usize) -> Option<Pos> {
        let a = self.agents.get(i)?;
        at(&a.reports_to).or(at(&a.name))
    }

    /// Where workflow number `w` is named.
    pub fn workflow(&self, w: usize) -> Option<Pos> {
        self.workflows.get(w).and_then(|wf| at(&wf.name))
    }

    /// Where `swarm.maxConcurrency` is set.
    pub fn max_concurrency(&self) -> Option<Pos> {
        self.swarm.as_ref().and_then(|s| at(&s.max_concurrency))
    }

    /// Where barrier number `b` is named.
    pub fn barrier(&self, b: usize) -> Option<Pos> {
        self.coordination
            .as_ref()
            .and_then(|c| c.barriers.get(b))
            .and_then(|b| at(&b.name))
    }

    /// Where entry `i` of barrier `b`'s `waitFor` stands (else where the barrier is named).
    pub fn barrier_wait(&self, b: usize, i: usize) -> Option<Pos> {
        let bar = self.coordination.as_ref()?.barriers.get(b)?;
        nth(&bar.wait_for, i).or(at(&bar.name))
    }

    /// Where `field` of step `s` of workflow `w` stands; where the step is named when the
    /// field itself cannot be found.
    pub fn step(&self, w: usize, s: usize, field: StepField) -> Option<Pos> {
        let step = self.workflows.get(w)?.steps.get(s)?;
        let v = step.verification.as_ref();
        let exact = match field {
            StepField::Name => None,
            StepField::Agent => at(&step.agent),
            StepField::Task => at(&step.task),
            StepField::Command => at(&step.command),
            StepField::Cwd => at(&step.cwd),
            StepField::Items => at(&step.items),
            StepField::Compensate => at(&step.compensate),
            StepField::DependsOn(i) => nth(&step.depends_on, i),
            StepField::Participant(i) => nth(&step.participants, i),
            StepField::EscalateTo(i) => nth(&step.escalate_to, i),
            StepField::VerificationType => v.and_then(|v| at(&v.kind)),
            StepField::VerificationValue => v.and_then(|v| at(&v.value).or(at(&v.kind))),
        };
        exact.or(at(&step.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_step_agent_and_file_level_fields() {
        let l = crate::parse(
            "name: x\nswarm:\n  maxConcurrency: 2\nagents:\n  - name: bob\n    cli: claude\n    reportsTo: boss\ncoordination:\n  barriers:\n    - name: gate\n      waitFor: [a]\nworkflows:\n  - name: w\n    steps:\n      - name: a\n        agent: bob\n        dependsOn: [zz]\n        participants: [p, q]\n        compensate: undo\n        task: go\n",
            "w.yaml",
        )
        .unwrap();
        let m = &l.map;
        assert_eq!(
            m.step(0, 0, StepField::Name),
            Some(Pos {
                line: 15,
                column: 15
            })
        );
        assert_eq!(m.step(0, 0, StepField::Agent).map(|p| p.line), Some(16));
        assert_eq!(
            m.step(0, 0, StepField::DependsOn(0)).map(|p| p.line),
            Some(17)
        );
        assert_eq!(
            m.step(0, 0, StepField::Participant(1)),
            Some(Pos {
                line: 18,
                column: 27
            })
        );
        assert_eq!(
            m.step(0, 0, StepField::Compensate).map(|p| p.line),
            Some(19)
        );
        // A field that is not there falls back to the step's name.
        assert_eq!(m.step(0, 0, StepField::Items).map(|p| p.line), Some(15));
        assert_eq!(m.max_concurrency().map(|p| p.line), Some(3));
        assert_eq!(m.agent_reports_to(0).map(|p| p.line), Some(7));
        assert_eq!(m.barrier(0).map(|p| p.line), Some(10));
        assert_eq!(m.barrier_wait(0, 0).map(|p| p.line), Some(11));
        assert_eq!(m.workflow(0).map(|p| p.line), Some(13));
    }
}
