//! Where names and references stand in a workflow file, read by a second, lenient pass
//! over the source so validation messages can point at the offending text. Every field
//! is optional: a missing position only costs a location in a message.

use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::diagnostic::Pos;

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
    #[serde(default)]
    paths: Vec<PathAt>,
    error_handling: Option<ErrorHandlingAt>,
    integrations: Option<IntegrationsAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct PathAt {
    name: At,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorHandlingAt {
    repair_agent: At,
    #[serde(default)]
    protect: Vec<Loc>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct IntegrationsAt {
    #[serde(default)]
    subscriptions: Vec<NamedAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct NamedAt {
    name: At,
}

type At = Option<Loc>;

/// Where a value stands in the source, kept small: a map has a few dozen of these per
/// step, and a workflow may have tens of thousands of steps.
#[derive(Debug, Clone, Copy)]
struct Loc {
    /// Line, from 1; 0 when the parser gave none.
    line: u32,
    /// Column, from 1.
    column: u32,
}

impl<'de> serde::Deserialize<'de> for Loc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<IgnoredAny>::deserialize(d)?;
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(
            Pos::from_location(&s.referenced).map_or(Loc { line: 0, column: 0 }, |p| Loc {
                line: small(p.line),
                column: small(p.column),
            }),
        )
    }
}

impl Loc {
    fn pos(self) -> Option<Pos> {
        (self.line > 0).then(|| Pos {
            line: u64::from(self.line),
            column: u64::from(self.column),
        })
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentAt {
    name: At,
    reports_to: At,
    workdir: At,
    cwd: At,
    permissions: Option<Spanned<PermissionsAt>>,
    #[serde(default)]
    subscriptions: Vec<Loc>,
}

/// `permissions` is a name or a mapping; a mapping's `profile` has its own position.
#[derive(Debug, Clone, Default)]
struct PermissionsAt {
    profile: Option<Pos>,
}

impl<'de> serde::Deserialize<'de> for PermissionsAt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PermissionsAt;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name or a mapping")
            }
            fn visit_str<E>(self, _: &str) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_unit<E>(self) -> Result<PermissionsAt, E> {
                Ok(PermissionsAt::default())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PermissionsAt, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PermissionsAt::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PermissionsAt, A::Error> {
                let mut out = PermissionsAt::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "profile" {
                        let v: Spanned<IgnoredAny> = map.next_value()?;
                        out.profile = Pos::from_location(&v.referenced);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwarmAt {
    max_concurrency: At,
    timeout_ms: At,
    resolver: At,
    #[serde(default)]
    worktree_include: Vec<Loc>,
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
    wait_for: Vec<Loc>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct WorkflowAt {
    name: At,
    #[serde(default)]
    steps: Vec<StepAt>,
    #[serde(default)]
    preflight: Vec<PreflightAt>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreflightAt {
    command: At,
    fail_if: At,
    success_if: At,
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
    workdir: At,
    #[serde(rename = "use")]
    use_: At,
    wait_for: At,
    branch: At,
    integration: At,
    action: At,
    params: At,
    #[serde(rename = "if")]
    if_: At,
    #[serde(alias = "skip_if")]
    skip_if: At,
    #[serde(alias = "output_var")]
    output_var: At,
    #[serde(rename = "loop")]
    loop_: At,
    until: At,
    #[serde(alias = "break_if")]
    break_if: At,
    approval: At,
    session: At,
    #[serde(alias = "result_from")]
    result_from: At,
    timeout_ms: At,
    max_iterations: At,
    #[serde(default)]
    steps: Vec<StepAt>,
    #[serde(default)]
    depends_on: Vec<Loc>,
    #[serde(default)]
    participants: Vec<Loc>,
    #[serde(default)]
    escalate_to: Vec<Loc>,
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
    /// The step's `workdir`.
    Workdir,
    /// The step's `use`.
    Use,
    /// The step's `waitFor`.
    WaitFor,
    /// The step's `branch`.
    Branch,
    /// The step's `integration`.
    Integration,
    /// The step's `action`.
    Action,
    /// The step's `params`.
    Params,
    /// The step's `if`.
    If,
    /// The step's `skipIf`.
    SkipIf,
    /// The step's `outputVar`.
    OutputVar,
    /// The step's `loop`.
    Loop,
    /// The step's `until`.
    Until,
    /// The step's `breakIf`.
    BreakIf,
    /// The step's `approval`.
    Approval,
    /// The step's `session`.
    Session,
    /// The step's `steps` (a group).
    Steps,
    /// The step's `resultFrom`.
    ResultFrom,
    /// The step's `timeoutMs`.
    TimeoutMs,
    /// The step's `maxIterations`.
    MaxIterations,
}

/// Which part of an agent a position is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentField {
    /// The agent's `name`.
    Name,
    /// Its `reportsTo`.
    ReportsTo,
    /// Its `workdir`.
    Workdir,
    /// Its `cwd`.
    Cwd,
    /// Its `permissions`.
    Permissions,
    /// The `profile` inside its `permissions`.
    PermissionsProfile,
    /// The n-th entry of its `subscriptions`.
    Subscription(usize),
}

/// Which part of a preflight check a position is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightField {
    /// Its `command`.
    Command,
    /// Its `failIf`.
    FailIf,
    /// Its `successIf`.
    SuccessIf,
}

fn at(s: &At) -> Option<Pos> {
    s.and_then(Loc::pos)
}

fn nth(v: &[Loc], i: usize) -> Option<Pos> {
    v.get(i).copied().and_then(Loc::pos)
}

impl SourceMap {
    /// Where agent number `i` is named.
    pub fn agent(&self, i: usize) -> Option<Pos> {
        self.agents.get(i).and_then(|a| at(&a.name))
    }

    /// Where agent number `i` names the agent it reports to (else where it is named).
    pub fn agent_reports_to(&self, i: usize) -> Option<Pos> {
        self.agent_field(i, AgentField::ReportsTo)
    }

    /// Where `field` of agent number `i` stands; where the agent is named when the field
    /// itself cannot be found.
    pub fn agent_field(&self, i: usize, field: AgentField) -> Option<Pos> {
        let a = self.agents.get(i)?;
        let perms = a.permissions.as_ref();
        let exact = match field {
            AgentField::Name => None,
            AgentField::ReportsTo => at(&a.reports_to),
            AgentField::Workdir => at(&a.workdir),
            AgentField::Cwd => at(&a.cwd),
            AgentField::Permissions => perms.and_then(|p| Pos::from_location(&p.referenced)),
            AgentField::PermissionsProfile => perms.and_then(|p| {
                p.value
                    .profile
                    .or_else(|| Pos::from_location(&p.referenced))
            }),
            AgentField::Subscription(k) => nth(&a.subscriptions, k),
        };
        exact.or(at(&a.name))
    }

    /// Where entry `p` of `paths` is named.
    pub fn path(&self, p: usize) -> Option<Pos> {
        self.paths.get(p).and_then(|x| at(&x.name))
    }

    /// Where `errorHandling.repairAgent` is set.
    pub fn repair_agent(&self) -> Option<Pos> {
        self.error_handling
            .as_ref()
            .and_then(|e| at(&e.repair_agent))
    }

    /// Where entry `k` of `errorHandling.protect` stands.
    pub fn protect(&self, k: usize) -> Option<Pos> {
        self.error_handling
            .as_ref()
            .and_then(|e| nth(&e.protect, k))
    }

    /// Where subscription `k` of `integrations.subscriptions` is named.
    pub fn subscription(&self, k: usize) -> Option<Pos> {
        self.integrations
            .as_ref()
            .and_then(|i| i.subscriptions.get(k))
            .and_then(|s| at(&s.name))
    }

    /// Where `field` of preflight check `k` of workflow `w` stands (else where the
    /// workflow is named).
    pub fn preflight(&self, w: usize, k: usize, field: PreflightField) -> Option<Pos> {
        let wf = self.workflows.get(w)?;
        let exact = wf.preflight.get(k).and_then(|p| match field {
            PreflightField::Command => at(&p.command),
            PreflightField::FailIf => at(&p.fail_if).or(at(&p.command)),
            PreflightField::SuccessIf => at(&p.success_if).or(at(&p.command)),
        });
        exact.or(at(&wf.name))
    }

    /// Where workflow number `w` is named.
    pub fn workflow(&self, w: usize) -> Option<Pos> {
        self.workflows.get(w).and_then(|wf| at(&wf.name))
    }

    /// Where `swarm.maxConcurrency` is set.
    pub fn max_concurrency(&self) -> Option<Pos> {
        self.swarm.as_ref().and_then(|s| at(&s.max_concurrency))
    }

    /// Where `swarm.timeoutMs` is set.
    pub fn swarm_timeout(&self) -> Option<Pos> {
        self.swarm.as_ref().and_then(|s| at(&s.timeout_ms))
    }

    /// Where `swarm.resolver` is set.
    pub fn resolver(&self) -> Option<Pos> {
        self.swarm.as_ref().and_then(|s| at(&s.resolver))
    }

    /// Where entry `k` of `swarm.worktreeInclude` stands.
    pub fn worktree_include(&self, k: usize) -> Option<Pos> {
        self.swarm
            .as_ref()
            .and_then(|s| nth(&s.worktree_include, k))
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

    /// Moves the nested steps of every group of workflow `w` out to stand right after
    /// it, as loading does with the steps themselves (`groups.rs`), so indexes keep matching.
    pub(crate) fn flatten_groups(&mut self, w: usize) {
        let Some(wf) = self.workflows.get_mut(w) else {
            return;
        };
        let steps = std::mem::take(&mut wf.steps);
        for mut step in steps {
            let nested = std::mem::take(&mut step.steps);
            wf.steps.push(step);
            wf.steps.extend(nested);
        }
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
            StepField::Workdir => at(&step.workdir),
            StepField::Use => at(&step.use_),
            StepField::WaitFor => at(&step.wait_for),
            StepField::Branch => at(&step.branch),
            StepField::Integration => at(&step.integration),
            StepField::Action => at(&step.action),
            StepField::Params => at(&step.params),
            StepField::If => at(&step.if_),
            StepField::SkipIf => at(&step.skip_if),
            StepField::OutputVar => at(&step.output_var),
            StepField::Loop => at(&step.loop_),
            StepField::Until => at(&step.until),
            StepField::BreakIf => at(&step.break_if),
            StepField::Approval => at(&step.approval),
            StepField::Session => at(&step.session),
            StepField::Steps => step.steps.first().and_then(|n| at(&n.name)),
            StepField::ResultFrom => at(&step.result_from),
            StepField::TimeoutMs => at(&step.timeout_ms),
            StepField::MaxIterations => at(&step.max_iterations),
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

    #[test]
    fn finds_timeouts_and_iteration_bounds() {
        let l = crate::parse(
            "name: x\nswarm: {timeoutMs: 5}\nagents: [{name: bob, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - name: a\n        agent: bob\n        task: go\n        timeoutMs: 1\n        maxIterations: 2\n",
            "w.yaml",
        )
        .unwrap();
        let m = &l.map;
        assert_eq!(m.swarm_timeout().map(|p| p.line), Some(2));
        assert_eq!(m.step(0, 0, StepField::TimeoutMs).map(|p| p.line), Some(10));
        assert_eq!(
            m.step(0, 0, StepField::MaxIterations).map(|p| p.line),
            Some(11)
        );
    }
}
