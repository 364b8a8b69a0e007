//! Adversarial and validation patterns. Steps that vote, debate or compete are those
//! listing `participants`, or, when no step lists any, every step without dependencies.
//!
//! - red-team: an attacker step (role attacker or red-team) that depends on a defender's
//!   step probes it; until the attacker reports `NO_FINDINGS` (or `VERDICT: pass`), the
//!   defender runs again with the findings, up to `maxIterations` (default 3).
//! - auction: a step given to the auctioneer (role auctioneer) is put up for bids: each
//!   participant (default: every other agent) answers `BID: <cost>`; the lowest bid wins
//!   (ties: the participant listed first) and the winner runs the task.
//! - consensus: each participant (default: every agent) answers the task ending with
//!   `VOTE: <choice>`; `coordination.consensusStrategy` decides (majority: more than half;
//!   unanimous: all; quorum: at least `votingThreshold` of the votes). The decision is the
//!   step's output (`{{steps.X.output}}`) and the tally a `decided` event; no decision
//!   fails the step.
//! - debate: participants state positions over `rounds` (default 2); from the second round
//!   each sees the others' previous positions. With a consensus strategy the last round is
//!   a vote; otherwise the output is every final position.
//! - competitive: every participant does the task; the fastest one that passes the step's
//!   verification wins and its output is the step's; the others' failures do not count.

use relay_spec::pattern::agent_has;
use relay_spec::{ConsensusStrategy, Pattern};

use super::Builder;
use super::verdict::{bid, tally, vote};
use crate::events::EventKind;
use crate::plan::{Gate, GateCtx, Node, NodeId, NodeRef, Resolution, RunSpec, StepIdx};

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    if b.wf.steps[i].kind() != relay_spec::StepType::Agent {
        return b.plain(i, deps);
    }
    // Who votes, debates or competes: steps that list `participants`; when no step does,
    // every step without dependencies.
    let listed_any = b.wf.steps.iter().any(|s| !s.participants.is_empty());
    let takes_part =
        !b.wf.steps[i].participants.is_empty() || (!listed_any && b.step_deps[i].is_empty());
    match b.pattern {
        Pattern::RedTeam => match super::quality::producer_of(b, i) {
            Some(p) => super::quality::review_loop(b, i, p, deps),
            None => b.plain(i, deps),
        },
        Pattern::Auction if b.agent_of(i).is_some_and(|a| agent_has(a, &["auctioneer"])) => {
            auction(b, i, deps)
        }
        Pattern::Auction => b.plain(i, deps),
        Pattern::Consensus if takes_part => {
            let voters = participants(b, i, false);
            ballot(b, i, deps, voters, 1)
        }
        Pattern::Debate if takes_part => {
            let debaters = participants(b, i, false);
            let rounds = b.wf.steps[i].debate_rounds().max(1);
            ballot(b, i, deps, debaters, rounds)
        }
        Pattern::Competitive if takes_part => competitive(b, i, deps),
        _ => b.plain(i, deps),
    }
}

/// The step's `participants`, else every agent (but the step's own when `others`).
fn participants(b: &Builder<'_>, i: usize, others: bool) -> Vec<String> {
    let listed = &b.wf.steps[i].participants;
    if !listed.is_empty() {
        return listed.clone();
    }
    let own = b.wf.steps[i].agent.as_deref();
    b.file
        .agents
        .iter()
        .filter(|a| !(others && Some(a.name.as_str()) == own))
        .map(|a| a.name.clone())
        .collect()
}

fn strategy(b: &Builder<'_>) -> (Option<ConsensusStrategy>, Option<f64>) {
    let c = b.file.coordination.as_ref();
    (
        c.and_then(|c| c.consensus_strategy),
        c.and_then(|c| c.voting_threshold),
    )
}

fn auction(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let task = b.wf.steps[i].task.clone().unwrap_or_default();
    let bidders = participants(b, i, true);
    let mut bids = Vec::new();
    for agent in &bidders {
        let node = b.add(Node::run_with(
            format!("{name}:bid:{agent}"),
            StepIdx(i),
            deps.clone(),
            RunSpec {
                agent: Some(agent.clone()),
                task: Some(format!(
                    "This task is up for auction:\n\n{task}\n\nDo not do it yet. Say what it \
                     would cost you (effort, risk) and end with a line `BID: <number>`, lower \
                     is better."
                )),
                soft: true,
                unverified: true,
                retries: Some(0),
                ..RunSpec::default()
            },
            false,
        ));
        bids.push((agent.clone(), node));
    }
    let wait: Vec<NodeRef> = bids.iter().map(|(_, n)| NodeRef::Id(*n)).collect();
    b.add(Node::gate(
        name,
        StepIdx(i),
        wait,
        Box::new(Auction {
            step: StepIdx(i),
            bids,
            winner: None,
        }),
    ))
}

struct Auction {
    step: StepIdx,
    bids: Vec<(String, NodeId)>,
    /// The winner, with its node once placed.
    winner: Option<(String, Option<NodeId>)>,
}

impl Gate for Auction {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        if let Some((agent, node)) = &self.winner {
            return match node.and_then(|n| ctx.result(n)) {
                Some(r) if r.completed() => Resolution::Complete {
                    output: r.output().to_string(),
                    events: Vec::new(),
                },
                _ => Resolution::Fail {
                    reason: format!("the winner `{agent}` failed the task"),
                    events: Vec::new(),
                },
            };
        }
        let offers: Vec<(String, Option<f64>)> = self
            .bids
            .iter()
            .map(|(a, n)| (a.clone(), bid(ctx.output(*n))))
            .collect();
        let detail = offers
            .iter()
            .map(|(a, b)| {
                format!(
                    "{a}={}",
                    b.map(|x| x.to_string()).unwrap_or_else(|| "none".into())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let best = offers
            .iter()
            .filter_map(|(a, b)| b.map(|b| (a.clone(), b)))
            .fold(None::<(String, f64)>, |acc, (a, b)| match acc {
                Some((_, best)) if best <= b => acc,
                _ => Some((a, b)),
            });
        let Some((agent, _)) = best else {
            return Resolution::Fail {
                reason: format!("no valid bids ({detail})"),
                events: Vec::new(),
            };
        };
        let node = Node::run_with(
            format!("{label}:by:{agent}"),
            self.step,
            Vec::new(),
            RunSpec {
                agent: Some(agent.clone()),
                ..RunSpec::default()
            },
            true,
        );
        self.winner = Some((agent.clone(), None));
        Resolution::Expand {
            nodes: vec![node],
            wait_for: vec![NodeRef::New(0)],
            events: vec![EventKind::Pattern {
                step: label,
                action: "awarded".into(),
                detail: format!("{agent} wins (bids: {detail})"),
            }],
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let (Some((_, node)), Some(id)) = (&mut self.winner, ids.first()) {
            *node = Some(*id);
        }
    }
}

/// Votes (one round) or a debate (several): nodes per participant and round.
fn ballot(
    b: &mut Builder<'_>,
    i: usize,
    deps: Vec<NodeRef>,
    people: Vec<String>,
    rounds: u32,
) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let (strat, threshold) = strategy(b);
    let voting = rounds == 1 || strat.is_some();
    let mut first = Vec::new();
    for p in &people {
        let spec = position_spec(p, 1, rounds, voting, Vec::new());
        let label = if rounds == 1 {
            format!("{name}:vote:{p}")
        } else {
            format!("{name}:r1:{p}")
        };
        first.push((
            p.clone(),
            b.add(Node::run_with(label, StepIdx(i), deps.clone(), spec, false)),
        ));
    }
    let wait = first.iter().map(|(_, n)| NodeRef::Id(*n)).collect();
    b.add(Node::gate(
        name,
        StepIdx(i),
        wait,
        Box::new(Ballot {
            step: StepIdx(i),
            round: 1,
            rounds,
            latest: first,
            strategy: if voting {
                Some(strat.unwrap_or(ConsensusStrategy::Majority))
            } else {
                None
            },
            threshold,
        }),
    ))
}

fn position_spec(
    who: &str,
    round: u32,
    rounds: u32,
    voting: bool,
    inputs: Vec<(String, NodeRef)>,
) -> RunSpec {
    let mut context = Vec::new();
    if rounds > 1 {
        context.push((
            format!("Debate round {round} of {rounds}"),
            if round == 1 {
                "State your position and your reasons.".to_string()
            } else {
                "Answer the other positions above: keep, refine or change yours.".to_string()
            },
        ));
    }
    if voting && round == rounds {
        context.push((
            "Your vote".to_string(),
            "End your answer with a line `VOTE: <your choice>`.".to_string(),
        ));
    }
    RunSpec {
        agent: Some(who.to_string()),
        context,
        inputs,
        soft: true,
        unverified: true,
        retries: Some(0),
        ..RunSpec::default()
    }
}

struct Ballot {
    step: StepIdx,
    round: u32,
    rounds: u32,
    latest: Vec<(String, NodeId)>,
    strategy: Option<ConsensusStrategy>,
    threshold: Option<f64>,
}

impl Gate for Ballot {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        if self.round < self.rounds {
            self.round += 1;
            let r = self.round;
            let mut nodes = Vec::new();
            for (who, _) in &self.latest {
                let inputs = self
                    .latest
                    .iter()
                    .map(|(other, n)| {
                        let heading = if other == who {
                            format!("Your position in round {}", r - 1)
                        } else {
                            format!("Position of {other} in round {}", r - 1)
                        };
                        (heading, NodeRef::Id(*n))
                    })
                    .collect();
                nodes.push(Node::run_with(
                    format!("{label}:r{r}:{who}"),
                    self.step,
                    Vec::new(),
                    position_spec(who, r, self.rounds, self.strategy.is_some(), inputs),
                    false,
                ));
            }
            return Resolution::Expand {
                wait_for: (0..nodes.len()).map(NodeRef::New).collect(),
                nodes,
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "round".into(),
                    detail: format!("round {r} of {}", self.rounds),
                }],
            };
        }
        let Some(strategy) = self.strategy else {
            let output = self
                .latest
                .iter()
                .map(|(who, n)| format!("## {who}\n{}", ctx.output(*n).trim()))
                .collect::<Vec<_>>()
                .join("\n\n");
            return Resolution::Complete {
                output,
                events: Vec::new(),
            };
        };
        let votes: Vec<(String, Option<String>)> = self
            .latest
            .iter()
            .map(|(who, n)| (who.clone(), vote(ctx.output(*n))))
            .collect();
        let (decision, text) = tally(&votes, strategy, self.threshold);
        let name = match strategy {
            ConsensusStrategy::Majority => "majority",
            ConsensusStrategy::Unanimous => "unanimous",
            ConsensusStrategy::Quorum => "quorum",
        };
        match decision {
            Ok(choice) => Resolution::Complete {
                output: choice.clone(),
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "decided".into(),
                    detail: format!("{choice} by {name} ({text})"),
                }],
            },
            Err(why) => Resolution::Fail {
                reason: format!("no consensus: {why} ({text})"),
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "undecided".into(),
                    detail: format!("{why} by {name} ({text})"),
                }],
            },
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        for ((_, node), id) in self.latest.iter_mut().zip(ids) {
            *node = *id;
        }
    }
}

fn competitive(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let mut runs = Vec::new();
    for p in participants(b, i, false) {
        let node = b.add(Node::run_with(
            format!("{name}:{p}"),
            StepIdx(i),
            deps.clone(),
            RunSpec {
                agent: Some(p.clone()),
                soft: true,
                ..RunSpec::default()
            },
            false,
        ));
        runs.push((p, node));
    }
    let wait = runs.iter().map(|(_, n)| NodeRef::Id(*n)).collect();
    b.add(Node::gate(name, StepIdx(i), wait, Box::new(Race { runs })))
}

struct Race {
    runs: Vec<(String, NodeId)>,
}

impl Gate for Race {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        let best = self
            .runs
            .iter()
            .filter_map(|(who, n)| ctx.result(*n).filter(|r| r.completed()).map(|r| (who, r)))
            .min_by_key(|(_, r)| r.duration_ms);
        match best {
            Some((who, r)) => Resolution::Complete {
                output: r.output().to_string(),
                events: vec![EventKind::Pattern {
                    step: label,
                    action: "winner".into(),
                    detail: format!("{who} in {} ms", r.duration_ms),
                }],
            },
            None => Resolution::Fail {
                reason: "no competitor passed".into(),
                events: Vec::new(),
            },
        }
    }
}
