//! The ready-queue scheduler: a synchronous state machine over the plan's nodes that
//! decides which may start, given what completed, failed or is running. It does no I/O
//! and knows no time, so every decision is testable without processes.
//!
//! A node becomes ready the moment its last dependency completes and starts as soon as a
//! concurrency slot is free (no waves, no stagger). Urgent nodes (gates, which decide on
//! the spot) go first and take no slot. A failure either halts the run (nothing new
//! starts; every node not yet started is skipped) or skips only the failed node's
//! transitive dependents, depending on the failure policy. Every operation costs time in
//! proportion to the nodes it touches, never to the size of the plan.

use std::collections::VecDeque;

use crate::plan::NodeId;

/// Where a node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Waiting for dependencies.
    Pending,
    /// Dependencies done, waiting for a slot.
    Ready,
    /// Started and not yet finished.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully.
    Failed,
    /// Will never run.
    Skipped,
}

impl NodeState {
    /// Whether the node has reached a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            NodeState::Completed | NodeState::Failed | NodeState::Skipped
        )
    }
}

/// Why a node was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipCause {
    /// A node it depends on (directly or not) failed or was skipped.
    Upstream(NodeId),
    /// The run stopped starting new nodes (after a failure, a timeout or a cancel).
    Halted,
}

#[derive(Debug, Clone)]
struct Slot {
    deps: Vec<NodeId>,
    dependents: Vec<NodeId>,
    state: NodeState,
    waiting_on: usize,
    urgent: bool,
}

/// The scheduler's state for one run.
#[derive(Debug, Clone)]
pub struct Scheduler {
    nodes: Vec<Slot>,
    /// Urgent ready nodes, then the others, each in the order they became ready. Entries
    /// whose node is no longer `Ready` are dropped when met.
    urgent: VecDeque<NodeId>,
    ready: VecDeque<NodeId>,
    running: usize,
    limit: Option<usize>,
    halt_on_failure: bool,
    halted: bool,
}

impl Scheduler {
    /// An empty scheduler allowing at most `limit` running nodes at once (a limit of 0
    /// means 1), halting the run on a failure when `halt_on_failure`.
    pub fn new(limit: Option<usize>, halt_on_failure: bool) -> Self {
        Scheduler {
            nodes: Vec::new(),
            urgent: VecDeque::new(),
            ready: VecDeque::new(),
            running: 0,
            limit: limit.map(|l| l.max(1)),
            halt_on_failure,
            halted: false,
        }
    }

    fn slot(&self, id: NodeId) -> Option<&Slot> {
        self.nodes.get(id.index())
    }

    fn make_ready(&mut self, id: NodeId) {
        let Some(s) = self.nodes.get_mut(id.index()) else {
            return;
        };
        s.state = NodeState::Ready;
        if s.urgent {
            self.urgent.push_back(id);
        } else {
            self.ready.push_back(id);
        }
    }

    /// Adds a node that waits for `deps`; `urgent` nodes go first and take no slot.
    /// Returns its id; it is ready at once when its dependencies are complete. A
    /// dependency that names no node is never complete.
    pub fn add_node(&mut self, deps: Vec<NodeId>, urgent: bool) -> NodeId {
        let id = NodeId::new(self.nodes.len());
        let mut waiting = 0;
        for &d in &deps {
            match self.nodes.get_mut(d.index()) {
                Some(s) => {
                    if s.state != NodeState::Completed {
                        waiting += 1;
                        s.dependents.push(id);
                    }
                }
                None => waiting += 1,
            }
        }
        self.nodes.push(Slot {
            deps,
            dependents: Vec::new(),
            state: NodeState::Pending,
            waiting_on: waiting,
            urgent,
        });
        if self.halted {
            self.nodes[id.index()].state = NodeState::Skipped;
        } else if waiting == 0 {
            self.make_ready(id);
        }
        id
    }

    /// The next node to start now, if a slot is free and a node is ready. It is marked
    /// running; call repeatedly until `None`.
    pub fn next_to_start(&mut self) -> Option<NodeId> {
        if self.halted {
            return None;
        }
        while let Some(id) = self.urgent.pop_front() {
            if self.take(id) {
                return Some(id);
            }
        }
        loop {
            if self.limit.is_some_and(|l| self.running >= l) {
                return None;
            }
            let id = self.ready.pop_front()?;
            if self.take(id) {
                return Some(id);
            }
        }
    }

    /// Marks ready node `id` running; false when it is no longer ready (a stale entry).
    fn take(&mut self, id: NodeId) -> bool {
        match self.nodes.get_mut(id.index()) {
            Some(s) if s.state == NodeState::Ready => {
                s.state = NodeState::Running;
                self.running += 1;
                true
            }
            _ => false,
        }
    }

    /// Records that node `id` completed (running, or not started at all: a node a
    /// resumed run keeps); its dependents may become ready.
    pub fn complete(&mut self, id: NodeId) {
        if !self.finish(id, NodeState::Completed) {
            return;
        }
        let dependents = std::mem::take(&mut self.nodes[id.index()].dependents);
        for &d in &dependents {
            let s = &mut self.nodes[d.index()];
            s.waiting_on = s.waiting_on.saturating_sub(1);
            if s.waiting_on == 0 && s.state == NodeState::Pending {
                self.make_ready(d);
            }
        }
        self.nodes[id.index()].dependents = dependents;
    }

    /// Puts running node `id` back to waiting, now on `more` as well (a gate that
    /// expanded into new nodes and decides again once they are done).
    pub fn wait_again(&mut self, id: NodeId, more: &[NodeId]) {
        let Some(s) = self.nodes.get(id.index()) else {
            return;
        };
        if s.state == NodeState::Running {
            self.running -= 1;
        }
        let mut waiting = 0;
        for &d in more {
            match self.nodes.get_mut(d.index()) {
                Some(dep) if dep.state == NodeState::Completed => {}
                Some(dep) => {
                    waiting += 1;
                    dep.dependents.push(id);
                }
                None => waiting += 1,
            }
        }
        let s = &mut self.nodes[id.index()];
        s.deps.extend_from_slice(more);
        s.waiting_on = waiting;
        s.state = NodeState::Pending;
        if self.halted {
            s.state = NodeState::Skipped;
        } else if waiting == 0 {
            self.make_ready(id);
        }
    }

    /// Starts accepting nodes again after a halt (a saga's compensations run after the
    /// failure that halted the run).
    pub fn unhalt(&mut self) {
        self.halted = false;
    }

    /// Records that node `id` failed; returns the nodes skipped because of it.
    pub fn fail(&mut self, id: NodeId) -> Vec<(NodeId, SkipCause)> {
        if !self.finish(id, NodeState::Failed) {
            return Vec::new();
        }
        if self.halt_on_failure {
            self.halt()
        } else {
            self.skip_dependents_of(id)
        }
    }

    /// Stops starting nodes; every node not yet started is skipped and returned.
    pub fn halt(&mut self) -> Vec<(NodeId, SkipCause)> {
        self.halted = true;
        self.urgent.clear();
        self.ready.clear();
        let mut skipped = Vec::new();
        for (i, s) in self.nodes.iter_mut().enumerate() {
            if matches!(s.state, NodeState::Pending | NodeState::Ready) {
                s.state = NodeState::Skipped;
                skipped.push((NodeId::new(i), SkipCause::Halted));
            }
        }
        skipped
    }

    fn skip_dependents_of(&mut self, root: NodeId) -> Vec<(NodeId, SkipCause)> {
        let mut skipped = Vec::new();
        let mut queue: VecDeque<NodeId> = self.nodes[root.index()]
            .dependents
            .iter()
            .copied()
            .collect();
        while let Some(d) = queue.pop_front() {
            let s = &mut self.nodes[d.index()];
            if matches!(s.state, NodeState::Pending | NodeState::Ready) {
                s.state = NodeState::Skipped;
                skipped.push((d, SkipCause::Upstream(root)));
                queue.extend(s.dependents.iter().copied());
            }
        }
        skipped
    }

    /// Moves node `id` to final state `to`; false when it is unknown or already final.
    fn finish(&mut self, id: NodeId, to: NodeState) -> bool {
        let Some(s) = self.nodes.get_mut(id.index()) else {
            return false;
        };
        match s.state {
            NodeState::Running => self.running -= 1,
            NodeState::Pending | NodeState::Ready => {}
            NodeState::Completed | NodeState::Failed | NodeState::Skipped => return false,
        }
        s.state = to;
        true
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Whether nothing runs and nothing more can start.
    pub fn is_done(&self) -> bool {
        self.running == 0
            && (self.halted
                || (!self.urgent.iter().any(|&i| self.is_ready(i))
                    && !self.ready.iter().any(|&i| self.is_ready(i))))
    }

    fn is_ready(&self, id: NodeId) -> bool {
        self.slot(id).is_some_and(|s| s.state == NodeState::Ready)
    }

    /// Whether the run stopped starting nodes.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// The state of node `id` (`Skipped` for an unknown id).
    pub fn state(&self, id: NodeId) -> NodeState {
        self.slot(id).map_or(NodeState::Skipped, |s| s.state)
    }

    /// The direct dependencies of node `id`.
    pub fn deps(&self, id: NodeId) -> &[NodeId] {
        self.slot(id).map_or(&[], |s| &s.deps)
    }

    /// Nodes that were never reached (e.g. a dependency never finished); marks them
    /// skipped.
    pub fn skip_unreached(&mut self) -> Vec<(NodeId, SkipCause)> {
        self.halt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(i: usize) -> NodeId {
        NodeId::new(i)
    }

    fn ids(v: &[usize]) -> Vec<NodeId> {
        v.iter().map(|&i| n(i)).collect()
    }

    fn with(deps: Vec<Vec<usize>>, limit: Option<usize>, halt: bool) -> Scheduler {
        let mut s = Scheduler::new(limit, halt);
        for d in deps {
            s.add_node(ids(&d), false);
        }
        s
    }

    fn drain(s: &mut Scheduler) -> Vec<NodeId> {
        std::iter::from_fn(|| s.next_to_start()).collect()
    }

    #[test]
    fn independent_nodes_start_together_up_to_the_limit() {
        let mut s = with(vec![vec![]; 9], Some(3), true);
        assert_eq!(drain(&mut s), ids(&[0, 1, 2]));
        s.complete(n(1));
        assert_eq!(
            drain(&mut s),
            ids(&[3]),
            "a freed slot is filled at once, not in waves"
        );
        assert_eq!(s.running(), 3);
    }

    #[test]
    fn a_node_waits_for_all_its_dependencies() {
        let mut s = with(vec![vec![], vec![], vec![0, 1]], None, true);
        assert_eq!(drain(&mut s), ids(&[0, 1]));
        s.complete(n(0));
        assert_eq!(drain(&mut s), Vec::<NodeId>::new());
        s.complete(n(1));
        assert_eq!(drain(&mut s), ids(&[2]));
        s.complete(n(2));
        assert!(s.is_done());
    }

    #[test]
    fn halting_failure_skips_everything_not_started() {
        // 0 -> 1, and 2 independent but not yet started because of the limit.
        let mut s = with(vec![vec![], vec![0], vec![]], Some(1), true);
        assert_eq!(drain(&mut s), ids(&[0]));
        let skipped = s.fail(n(0));
        assert_eq!(
            skipped,
            [(n(1), SkipCause::Halted), (n(2), SkipCause::Halted)]
        );
        assert!(s.is_done());
    }

    #[test]
    fn non_halting_failure_skips_only_dependents() {
        // 0 -> 1 -> 2, 3 independent.
        let mut s = with(vec![vec![], vec![0], vec![1], vec![]], None, false);
        assert_eq!(drain(&mut s), ids(&[0, 3]));
        let skipped = s.fail(n(0));
        assert_eq!(
            skipped,
            [
                (n(1), SkipCause::Upstream(n(0))),
                (n(2), SkipCause::Upstream(n(0)))
            ]
        );
        assert!(!s.is_done());
        s.complete(n(3));
        assert!(s.is_done());
        assert_eq!(s.state(n(3)), NodeState::Completed);
    }

    #[test]
    fn nodes_completed_before_they_start_never_start() {
        // 0 -> 1 -> 2, 3 independent; 0 and 3 were completed by an earlier run.
        let mut s = with(vec![vec![], vec![0], vec![1], vec![]], None, true);
        s.complete(n(0));
        s.complete(n(3));
        assert_eq!(drain(&mut s), ids(&[1]));
        s.complete(n(1));
        assert_eq!(drain(&mut s), ids(&[2]));
        s.complete(n(2));
        assert!(s.is_done());
    }

    #[test]
    fn added_nodes_and_gates_that_wait_again() {
        // 0 -> gate 1; the gate expands into 2 and 3 and decides again after them.
        let mut s = with(vec![vec![], vec![0]], Some(2), true);
        assert_eq!(drain(&mut s), ids(&[0]));
        s.complete(n(0));
        assert_eq!(drain(&mut s), ids(&[1]));
        let a = s.add_node(ids(&[0]), false);
        let b = s.add_node(vec![a], false);
        s.wait_again(n(1), &[a, b]);
        assert_eq!(drain(&mut s), [a]);
        s.complete(a);
        assert_eq!(drain(&mut s), [b]);
        s.complete(b);
        assert_eq!(drain(&mut s), ids(&[1]), "the gate decides again");
        s.complete(n(1));
        assert!(s.is_done());
    }

    #[test]
    fn urgent_nodes_go_first_and_need_no_slot() {
        // 0 and 1 independent, limit 1; 2 is an urgent gate after 0.
        let mut s = Scheduler::new(Some(1), true);
        s.add_node(vec![], false);
        s.add_node(vec![], false);
        s.add_node(ids(&[0]), true);
        assert_eq!(drain(&mut s), ids(&[0]));
        s.complete(n(0));
        assert_eq!(s.next_to_start(), Some(n(2)), "the gate jumps the queue");
        assert_eq!(
            s.next_to_start(),
            None,
            "the limit still holds for the rest"
        );
        s.complete(n(2));
        assert_eq!(drain(&mut s), ids(&[1]));
    }

    #[test]
    fn a_dependency_on_no_node_is_never_reached() {
        let mut s = with(vec![vec![], vec![7]], None, true);
        assert_eq!(drain(&mut s), ids(&[0]));
        s.complete(n(0));
        assert!(s.is_done());
        assert_eq!(s.skip_unreached(), [(n(1), SkipCause::Halted)]);
    }

    #[test]
    fn a_limit_of_zero_still_runs_one_at_a_time() {
        let mut s = with(vec![vec![]; 2], Some(0), true);
        assert_eq!(drain(&mut s), ids(&[0]));
    }

    fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..14).prop_flat_map(|n| {
            proptest::collection::vec(
                proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                n,
            )
            .prop_map(move |raw| {
                raw.into_iter()
                    .enumerate()
                    .map(|(i, picks)| {
                        let mut d: Vec<usize> = if i == 0 {
                            vec![]
                        } else {
                            picks.iter().map(|p| p.index(i)).collect()
                        };
                        d.sort_unstable();
                        d.dedup();
                        d
                    })
                    .collect()
            })
        })
    }

    proptest! {
        /// Whatever the order of completions and failures: a node never starts before its
        /// dependencies completed, never starts twice, the limit is never exceeded, and
        /// every node ends in a final state.
        #[test]
        fn scheduler_invariants(
            deps in dag(),
            limit in proptest::option::of(1usize..5),
            halt in any::<bool>(),
            outcomes in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 64),
        ) {
            let count = deps.len();
            let mut s = with(deps.clone(), limit, halt);
            let mut started = vec![0u32; count];
            let mut running: Vec<NodeId> = Vec::new();
            let mut k = 0;
            loop {
                while let Some(i) = s.next_to_start() {
                    started[i.index()] += 1;
                    prop_assert_eq!(started[i.index()], 1, "node {} started twice", i);
                    for &d in &deps[i.index()] {
                        prop_assert_eq!(s.state(n(d)), NodeState::Completed, "node {} started before {}", i, d);
                    }
                    running.push(i);
                    if let Some(l) = limit {
                        prop_assert!(running.len() <= l);
                    }
                }
                if running.is_empty() {
                    break;
                }
                let (pick, ok) = outcomes[k % outcomes.len()];
                k += 1;
                let i = running.remove(pick.index(running.len()));
                if ok { s.complete(i); } else { s.fail(i); }
            }
            prop_assert!(s.is_done());
            for i in 0..count {
                prop_assert!(s.state(n(i)).is_final(), "node {} left in {:?}", i, s.state(n(i)));
            }
        }
    }
}
