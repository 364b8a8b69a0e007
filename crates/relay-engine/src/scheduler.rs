//! The ready-queue scheduler: a synchronous state machine that decides which steps may
//! start, given what completed, failed or is running. It does no I/O, so every decision
//! is testable without processes or time.
//!
//! A step becomes ready the moment its last dependency completes and starts as soon as a
//! concurrency slot is free (no waves, no stagger). A failure either halts the run
//! (nothing new starts; every step not yet started is skipped) or skips only the failed
//! step's transitive dependents, depending on the failure policy.

use std::collections::VecDeque;

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
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

impl StepState {
    /// Whether the step has reached a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StepState::Completed | StepState::Failed | StepState::Skipped
        )
    }
}

/// Why a step was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipCause {
    /// A step it depends on (directly or not) failed or was skipped.
    Upstream(usize),
    /// The run stopped starting new steps (after a failure, a timeout or a cancel).
    Halted,
}

/// The scheduler's state for one run.
#[derive(Debug, Clone)]
pub struct Scheduler {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    state: Vec<StepState>,
    waiting_on: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    limit: Option<usize>,
    halt_on_failure: bool,
    halted: bool,
    urgent: Vec<bool>,
}

impl Scheduler {
    /// A scheduler over steps whose dependencies are `deps[i]` (indices), allowing at most
    /// `limit` running at once, halting the run on a failure when `halt_on_failure`.
    pub fn new(deps: Vec<Vec<usize>>, limit: Option<usize>, halt_on_failure: bool) -> Self {
        let n = deps.len();
        let mut dependents = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut state = vec![StepState::Pending; n];
        let mut ready = VecDeque::new();
        for i in 0..n {
            if waiting_on[i] == 0 {
                state[i] = StepState::Ready;
                ready.push_back(i);
            }
        }
        Scheduler {
            deps,
            dependents,
            state,
            waiting_on,
            ready,
            running: 0,
            limit: limit.map(|l| l.max(1)),
            halt_on_failure,
            halted: false,
            urgent: vec![false; n],
        }
    }

    /// Like `new`, with the steps marked in `done` already completed (a resumed run):
    /// they never start, and their dependents only wait for the rest.
    pub fn with_completed(
        deps: Vec<Vec<usize>>,
        limit: Option<usize>,
        halt_on_failure: bool,
        done: &[bool],
    ) -> Self {
        let mut s = Scheduler::new(deps, limit, halt_on_failure);
        let is_done = |i: usize| done.get(i).copied().unwrap_or(false);
        s.ready.clear();
        for i in 0..s.state.len() {
            if is_done(i) {
                s.state[i] = StepState::Completed;
                continue;
            }
            s.waiting_on[i] = s.deps[i].iter().filter(|&&d| !is_done(d)).count();
            s.state[i] = if s.waiting_on[i] == 0 {
                s.ready.push_back(i);
                StepState::Ready
            } else {
                StepState::Pending
            };
        }
        s
    }

    /// Marks step `i` urgent: when ready it goes first and starts even when every slot is
    /// taken (gates: they decide on the spot and hold no slot).
    pub fn mark_urgent(&mut self, i: usize) {
        if let Some(u) = self.urgent.get_mut(i) {
            *u = true;
        }
        if self.state.get(i) == Some(&StepState::Ready) {
            self.ready.retain(|&r| r != i);
            self.ready.push_front(i);
        }
    }

    fn make_ready(&mut self, i: usize) {
        self.state[i] = StepState::Ready;
        if self.urgent[i] {
            self.ready.push_front(i);
        } else {
            self.ready.push_back(i);
        }
    }

    /// The next step to start now, if a slot is free and a step is ready. It is marked
    /// running; call repeatedly until `None`.
    pub fn next_to_start(&mut self) -> Option<usize> {
        if self.halted {
            return None;
        }
        let urgent_first = self.ready.front().is_some_and(|&i| self.urgent[i]);
        if !urgent_first && self.limit.is_some_and(|l| self.running >= l) {
            return None;
        }
        let i = self.ready.pop_front()?;
        self.state[i] = StepState::Running;
        self.running += 1;
        Some(i)
    }

    /// Records that running step `i` completed; its dependents may become ready.
    pub fn complete(&mut self, i: usize) {
        self.finish(i, StepState::Completed);
        for k in 0..self.dependents[i].len() {
            let d = self.dependents[i][k];
            self.waiting_on[d] = self.waiting_on[d].saturating_sub(1);
            if self.waiting_on[d] == 0 && self.state[d] == StepState::Pending {
                self.make_ready(d);
            }
        }
    }

    /// Adds a step that waits for `deps` (a plan growing at run time: a pattern expanding a
    /// step). Returns its index; it is ready at once when its dependencies are complete.
    pub fn add_step(&mut self, deps: Vec<usize>) -> usize {
        let i = self.state.len();
        let waiting = deps
            .iter()
            .filter(|&&d| self.state.get(d) != Some(&StepState::Completed))
            .count();
        for &d in &deps {
            if let Some(ds) = self.dependents.get_mut(d) {
                ds.push(i);
            }
        }
        self.deps.push(deps);
        self.dependents.push(Vec::new());
        self.waiting_on.push(waiting);
        self.urgent.push(false);
        if self.halted {
            self.state.push(StepState::Skipped);
        } else if waiting == 0 {
            self.state.push(StepState::Ready);
            self.ready.push_back(i);
        } else {
            self.state.push(StepState::Pending);
        }
        i
    }

    /// Puts running step `i` back to waiting, now on `more` as well (a gate that expanded
    /// into new steps and decides again once they are done).
    pub fn wait_again(&mut self, i: usize, more: &[usize]) {
        if self.state[i] == StepState::Running {
            self.running -= 1;
        }
        let mut waiting = 0;
        for &d in more {
            if self.state[d] != StepState::Completed {
                waiting += 1;
                self.dependents[d].push(i);
            }
            self.deps[i].push(d);
        }
        self.waiting_on[i] = waiting;
        if self.halted {
            self.state[i] = StepState::Skipped;
        } else if waiting == 0 {
            self.make_ready(i);
        } else {
            self.state[i] = StepState::Pending;
        }
    }

    /// Starts accepting steps again after a halt (a saga's compensations run after the
    /// failure that halted the run).
    pub fn unhalt(&mut self) {
        self.halted = false;
    }

    /// Records that running step `i` failed; returns the steps skipped because of it.
    pub fn fail(&mut self, i: usize) -> Vec<(usize, SkipCause)> {
        self.finish(i, StepState::Failed);
        if self.halt_on_failure {
            self.halt()
        } else {
            self.skip_dependents_of(i)
        }
    }

    /// Stops starting steps; every step not yet started is skipped and returned.
    pub fn halt(&mut self) -> Vec<(usize, SkipCause)> {
        self.halted = true;
        self.ready.clear();
        let mut skipped = Vec::new();
        for i in 0..self.state.len() {
            if matches!(self.state[i], StepState::Pending | StepState::Ready) {
                self.state[i] = StepState::Skipped;
                skipped.push((i, SkipCause::Halted));
            }
        }
        skipped
    }

    fn skip_dependents_of(&mut self, root: usize) -> Vec<(usize, SkipCause)> {
        let mut skipped = Vec::new();
        let mut queue: VecDeque<usize> = self.dependents[root].iter().copied().collect();
        while let Some(d) = queue.pop_front() {
            if matches!(self.state[d], StepState::Pending | StepState::Ready) {
                self.state[d] = StepState::Skipped;
                self.ready.retain(|&r| r != d);
                skipped.push((d, SkipCause::Upstream(root)));
                queue.extend(self.dependents[d].iter().copied());
            }
        }
        skipped
    }

    fn finish(&mut self, i: usize, to: StepState) {
        if self.state[i] == StepState::Running {
            self.running -= 1;
        }
        self.state[i] = to;
    }

    /// Number of steps (grows with `add_step`).
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Steps running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Whether nothing runs and nothing more can start.
    pub fn is_done(&self) -> bool {
        self.running == 0 && (self.halted || self.ready.is_empty())
    }

    /// The state of step `i`.
    pub fn state(&self, i: usize) -> StepState {
        self.state[i]
    }

    /// The direct dependencies of step `i`.
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// Steps that were never reached (e.g. a dependency never finished); marks them skipped.
    pub fn skip_unreached(&mut self) -> Vec<(usize, SkipCause)> {
        self.halt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(s: &mut Scheduler) -> Vec<usize> {
        std::iter::from_fn(|| s.next_to_start()).collect()
    }

    #[test]
    fn independent_steps_start_together_up_to_the_limit() {
        let mut s = Scheduler::new(vec![vec![]; 9], Some(3), true);
        assert_eq!(drain(&mut s), [0, 1, 2]);
        s.complete(1);
        assert_eq!(
            drain(&mut s),
            [3],
            "a freed slot is filled at once, not in waves"
        );
        assert_eq!(s.running(), 3);
    }

    #[test]
    fn a_step_waits_for_all_its_dependencies() {
        let mut s = Scheduler::new(vec![vec![], vec![], vec![0, 1]], None, true);
        assert_eq!(drain(&mut s), [0, 1]);
        s.complete(0);
        assert_eq!(drain(&mut s), Vec::<usize>::new());
        s.complete(1);
        assert_eq!(drain(&mut s), [2]);
        s.complete(2);
        assert!(s.is_done());
    }

    #[test]
    fn halting_failure_skips_everything_not_started() {
        // 0 -> 1, and 2 independent but not yet started because of the limit.
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![]], Some(1), true);
        assert_eq!(drain(&mut s), [0]);
        let skipped = s.fail(0);
        assert_eq!(skipped, [(1, SkipCause::Halted), (2, SkipCause::Halted)]);
        assert!(s.is_done());
    }

    #[test]
    fn non_halting_failure_skips_only_dependents() {
        // 0 -> 1 -> 2, 3 independent.
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![1], vec![]], None, false);
        assert_eq!(drain(&mut s), [0, 3]);
        let skipped = s.fail(0);
        assert_eq!(
            skipped,
            [(1, SkipCause::Upstream(0)), (2, SkipCause::Upstream(0))]
        );
        assert!(!s.is_done());
        s.complete(3);
        assert!(s.is_done());
        assert_eq!(s.state(3), StepState::Completed);
    }

    #[test]
    fn completed_steps_of_a_resumed_run_never_start() {
        // 0 -> 1 -> 2, 3 independent; 0 and 3 were completed before.
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        let mut s = Scheduler::with_completed(deps, None, true, &[true, false, false, true]);
        assert_eq!(drain(&mut s), [1]);
        s.complete(1);
        assert_eq!(drain(&mut s), [2]);
        s.complete(2);
        assert!(s.is_done());
    }

    #[test]
    fn added_steps_and_gates_that_wait_again() {
        // 0 -> gate 1; the gate expands into 2 and 3 and decides again after them.
        let mut s = Scheduler::new(vec![vec![], vec![0]], Some(2), true);
        assert_eq!(drain(&mut s), [0]);
        s.complete(0);
        assert_eq!(drain(&mut s), [1]);
        let a = s.add_step(vec![0]);
        let b = s.add_step(vec![a]);
        s.wait_again(1, &[a, b]);
        assert_eq!(drain(&mut s), [a]);
        s.complete(a);
        assert_eq!(drain(&mut s), [b]);
        s.complete(b);
        assert_eq!(drain(&mut s), [1], "the gate decides again");
        s.complete(1);
        assert!(s.is_done());
    }

    #[test]
    fn urgent_steps_go_first_and_need_no_slot() {
        // 0 and 1 independent, limit 1; 2 is an urgent gate after 0.
        let mut s = Scheduler::new(vec![vec![], vec![], vec![0]], Some(1), true);
        s.mark_urgent(2);
        assert_eq!(drain(&mut s), [0]);
        s.complete(0);
        assert_eq!(s.next_to_start(), Some(2), "the gate jumps the queue");
        assert_eq!(
            s.next_to_start(),
            None,
            "the limit still holds for the rest"
        );
        s.complete(2);
        assert_eq!(drain(&mut s), [1]);
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
        /// Whatever the order of completions and failures: a step never starts before its
        /// dependencies completed, never starts twice, the limit is never exceeded, and
        /// every step ends in a final state.
        #[test]
        fn scheduler_invariants(
            deps in dag(),
            limit in proptest::option::of(1usize..5),
            halt in any::<bool>(),
            outcomes in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 64),
        ) {
            let n = deps.len();
            let mut s = Scheduler::new(deps.clone(), limit, halt);
            let mut started = vec![0u32; n];
            let mut running: Vec<usize> = Vec::new();
            let mut k = 0;
            loop {
                while let Some(i) = s.next_to_start() {
                    started[i] += 1;
                    prop_assert_eq!(started[i], 1, "step {} started twice", i);
                    for &d in &deps[i] {
                        prop_assert_eq!(s.state(d), StepState::Completed, "step {} started before {}", i, d);
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
            for i in 0..n {
                prop_assert!(s.state(i).is_final(), "step {} left in {:?}", i, s.state(i));
            }
        }
    }
}
