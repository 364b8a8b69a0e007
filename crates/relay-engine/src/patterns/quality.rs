//! Supervision and quality patterns:
//! - reflection: a critic step (role critic) that depends on a producer step reviews it;
//!   until the critic approves (a line `APPROVED` or `VERDICT: pass`), the producer runs
//!   again with the critic's feedback and its previous version, and the critic reviews the
//!   new version, up to `maxIterations` (default 3) on the critic step. Steps that depend
//!   on the producer wait for the approved version.
//! - review-loop: the same loop with a reviewer (role reviewer).
//! - verifier: every agent step of a non-verifier agent is checked by the verifier agent
//!   (role verifier) before anything downstream starts; a `VERDICT: fail` sends the work
//!   back with the verifier's reasons, up to `maxIterations` (default 3).
//! - supervisor: a failed worker step is restarted (a fresh attempt, a `restarted` event)
//!   up to two times; the supervisor's step without `dependsOn` waits for every worker
//!   step before it and receives a health report (output, or failure and reason).
//!
//! The loop is shared with red-team (`adversarial`).

use relay_spec::Pattern;
use relay_spec::pattern::agent_has;

use super::Builder;
use super::verdict::{approved, describe_result};
use crate::events::EventKind;
use crate::plan::{Gate, GateCtx, Node, NodeId, NodeRef, Resolution, RunSpec, StepIdx};

/// Restarts a supervisor grants a failed worker.
pub(crate) const RESTARTS: u32 = 2;

/// The keywords naming the reviewer of each reviewing pattern.
pub(crate) fn reviewer_roles(p: Pattern) -> &'static [&'static str] {
    match p {
        Pattern::Reflection => &["critic"],
        Pattern::ReviewLoop => &["reviewer", "critic"],
        Pattern::RedTeam => &["attacker", "red-team"],
        _ => &[],
    }
}

/// The producer step a reviewer step `i` reviews: its first dependency, when `i` is run by
/// a reviewing agent.
pub(crate) fn producer_of(b: &Builder<'_>, i: usize) -> Option<usize> {
    let roles = reviewer_roles(b.pattern);
    let reviewer = b.agent_of(i).is_some_and(|a| agent_has(a, roles));
    if reviewer {
        b.step_deps[i].first().copied()
    } else {
        None
    }
}

/// Makes every other step that depends on a reviewed producer also wait for its reviewer,
/// so it gets the approved version, unless the reviewer already waits for that step (two
/// reviewers of one producer; a reviewer whose producer also feeds another of its
/// dependencies): such an edge would close a cycle, and the step keeps its own order.
pub(super) fn link_reviews(b: &mut Builder<'_>, waits: &mut [Vec<StepIdx>]) {
    let pairs: Vec<(usize, usize)> = (0..b.wf.steps.len())
        .filter_map(|c| producer_of(b, c).map(|p| (c, p)))
        .collect();
    for (c, p) in pairs {
        for d in 0..b.step_deps.len() {
            if d != c
                && b.step_deps[d].contains(&p)
                && !b.step_deps[d].contains(&c)
                && !reaches(waits, c, d)
            {
                b.step_deps[d].push(c);
                waits[d].push(StepIdx(c));
            }
        }
    }
}

/// Whether step `from` waits, directly or not, for step `to` (`waits`: what each step
/// waits for, barriers expanded).
fn reaches(waits: &[Vec<StepIdx>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; waits.len()];
    let mut stack = vec![from];
    while let Some(s) = stack.pop() {
        if s == to {
            return true;
        }
        if let Some(ds) = waits.get(s)
            && !std::mem::replace(&mut seen[s], true)
        {
            stack.extend(ds.iter().map(|d| d.get()));
        }
    }
    false
}

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    match b.pattern {
        Pattern::Reflection | Pattern::ReviewLoop => match producer_of(b, i) {
            Some(p) => review_loop(b, i, p, deps),
            None => b.plain(i, deps),
        },
        Pattern::Verifier => verify(b, i, deps),
        Pattern::Supervisor => supervise(b, i, deps),
        _ => b.plain(i, deps),
    }
}

/// Reviewer step `i` of producer step `p`: a first review, then a gate that loops.
pub(crate) fn review_loop(b: &mut Builder<'_>, i: usize, p: usize, deps: Vec<NodeRef>) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let producer = b.final_id(p);
    let review = b.add(Node::run_with(
        format!("{name}#1"),
        StepIdx(i),
        deps,
        RunSpec {
            inputs: vec![(
                format!("Work of `{}` to review", b.wf.steps[p].name),
                producer.into(),
            )],
            soft: true,
            unverified: true,
            ..RunSpec::default()
        },
        false,
    ));
    let max = b.wf.steps[i].iteration_limit().max(1);
    b.add(Node::gate(
        name,
        StepIdx(i),
        vec![review.into()],
        Box::new(ReviewLoop {
            producer_step: StepIdx(p),
            reviewer_step: StepIdx(i),
            producer,
            review,
            iteration: 1,
            max,
            reviewer_agent: None,
        }),
    ))
}

/// A producer/reviewer loop: approve, or send the work back with the review.
pub(crate) struct ReviewLoop {
    pub producer_step: StepIdx,
    pub reviewer_step: StepIdx,
    pub producer: NodeId,
    pub review: NodeId,
    pub iteration: u32,
    pub max: u32,
    /// Reviewer agent when it is not the reviewer step's own (verifier).
    pub reviewer_agent: Option<String>,
}

impl Gate for ReviewLoop {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        let produced = ctx.result(self.producer).is_some_and(|r| r.completed());
        let review = ctx.output(self.review).to_string();
        if produced && approved(&review) {
            return Resolution::Complete {
                output: if self.reviewer_agent.is_some() {
                    ctx.output(self.producer).to_string()
                } else {
                    review
                },
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "approved".into(),
                    detail: format!("iteration {}", self.iteration),
                }],
            };
        }
        let why = if produced {
            "the review did not approve"
        } else {
            "the work failed"
        };
        if self.iteration >= self.max {
            return Resolution::Fail {
                reason: format!("not approved after {} iteration(s): {why}", self.iteration),
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "rejected".into(),
                    detail: format!("iteration {}; giving up", self.iteration),
                }],
            };
        }
        self.iteration += 1;
        let k = self.iteration;
        let base = ctx
            .label(self.producer)
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        let producer = Node::run_with(
            format!("{base}#{k}"),
            self.producer_step,
            Vec::new(),
            RunSpec {
                inputs: vec![
                    ("Your previous version".into(), self.producer.into()),
                    ("Feedback to address".into(), self.review.into()),
                ],
                ..RunSpec::default()
            },
            true,
        );
        let reviewer_label = ctx
            .label(self.review)
            .split('#')
            .next()
            .unwrap_or_default()
            .to_string();
        let review = Node::run_with(
            format!("{reviewer_label}#{k}"),
            self.reviewer_step,
            vec![NodeRef::New(0)],
            RunSpec {
                agent: self.reviewer_agent.clone(),
                task: self.reviewer_agent.as_ref().map(|_| verify_task(&base)),
                inputs: vec![("Work to review".into(), NodeRef::New(0))],
                soft: true,
                unverified: true,
                retries: self.reviewer_agent.as_ref().map(|_| 0),
                ..RunSpec::default()
            },
            false,
        );
        Resolution::Expand {
            nodes: vec![producer, review],
            wait_for: vec![NodeRef::New(1)],
            events: vec![EventKind::Pattern {
                step: label,
                action: "rejected".into(),
                detail: format!("{why}; iteration {k} of {}", self.max),
            }],
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let [producer, review] = ids {
            self.producer = *producer;
            self.review = *review;
        }
    }
}

fn verify_task(step: &str) -> String {
    format!(
        "Verify the work of step `{step}` shown below. Check it is correct and complete. \
         Answer with a line `VERDICT: pass`, or `VERDICT: fail` followed by what must change."
    )
}

fn verify(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let verifier = b
        .file
        .agents
        .iter()
        .find(|a| agent_has(a, &["verifier"]))
        .map(|a| a.name.clone());
    let own_is_verifier = b.agent_of(i).is_some_and(|a| agent_has(a, &["verifier"]));
    let Some(verifier) = verifier.filter(|_| !own_is_verifier && b.agent_of(i).is_some()) else {
        return b.plain(i, deps);
    };
    let name = b.wf.steps[i].name.clone();
    let producer = b.soft_attempt(i, deps);
    let review = b.add(Node::run_with(
        format!("{name}:verify#1"),
        StepIdx(i),
        vec![producer.into()],
        RunSpec {
            agent: Some(verifier.clone()),
            task: Some(verify_task(&name)),
            inputs: vec![("Work to verify".into(), producer.into())],
            soft: true,
            unverified: true,
            retries: Some(0),
            ..RunSpec::default()
        },
        false,
    ));
    let max = b.wf.steps[i].iteration_limit().max(1);
    b.add(Node::gate(
        name,
        StepIdx(i),
        vec![review.into()],
        Box::new(ReviewLoop {
            producer_step: StepIdx(i),
            reviewer_step: StepIdx(i),
            producer,
            review,
            iteration: 1,
            max,
            reviewer_agent: Some(verifier),
        }),
    ))
}

fn supervise(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let is_supervisor = b.agent_of(i).is_some_and(|a| agent_has(a, &["supervisor"]));
    if is_supervisor {
        let label = b.wf.steps[i].name.clone();
        let inputs = b.step_deps[i]
            .iter()
            .map(|&d| {
                (
                    format!("Health of worker step `{}`", b.wf.steps[d].name),
                    b.final_of(d),
                )
            })
            .collect();
        return b.add(Node::run_with(
            label,
            StepIdx(i),
            deps,
            RunSpec {
                inputs,
                ..RunSpec::default()
            },
            true,
        ));
    }
    let name = b.wf.steps[i].name.clone();
    let first = b.soft_attempt(i, deps);
    b.add(Node::gate(
        name,
        StepIdx(i),
        vec![first.into()],
        Box::new(Restart {
            step: StepIdx(i),
            last: first,
            restarts: 0,
        }),
    ))
}

struct Restart {
    step: StepIdx,
    last: NodeId,
    restarts: u32,
}

impl Gate for Restart {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        if ctx.result(self.last).is_some_and(|r| r.completed()) {
            return Resolution::Complete {
                output: ctx.output(self.last).to_string(),
                events: Vec::new(),
            };
        }
        let why = describe_result(ctx, self.last);
        if self.restarts >= RESTARTS {
            return Resolution::Fail {
                reason: format!(
                    "failed after {} restart(s): {}",
                    self.restarts,
                    why.lines().next().unwrap_or("")
                ),
                events: Vec::new(),
            };
        }
        self.restarts += 1;
        let node = Node::run_with(
            format!("{label}#{}", self.restarts + 1),
            self.step,
            Vec::new(),
            RunSpec {
                soft: true,
                ..RunSpec::default()
            },
            true,
        );
        Resolution::Expand {
            nodes: vec![node],
            wait_for: vec![NodeRef::New(0)],
            events: vec![EventKind::Pattern {
                step: label,
                action: "restarted".into(),
                detail: format!(
                    "restart {} of {RESTARTS} after: {}",
                    self.restarts,
                    why.lines().next().unwrap_or("")
                ),
            }],
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let Some(id) = ids.first() {
            self.last = *id;
        }
    }
}
