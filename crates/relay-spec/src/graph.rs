//! What each step of a workflow waits for, in one place: its `dependsOn` (steps and
//! barriers), the dependencies its swarm pattern implies, barrier expansion, cycles and
//! the order steps can be planned in. Validation and the engine's planner both read it,
//! so "what does step X wait for" has one answer.
//!
//! Names resolve to a step first: a `dependsOn` entry that names both a step and a
//! barrier means the step (validation reports the clash as an error).

use std::collections::HashMap;

use crate::types::{Pattern, RelayFile, WorkflowDef};

/// The position of a step in its workflow's `steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepIdx(pub usize);

/// The position of a barrier in `coordination.barriers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BarrierIdx(pub usize);

impl StepIdx {
    /// The plain index.
    pub fn get(self) -> usize {
        self.0
    }
}

impl BarrierIdx {
    /// The plain index.
    pub fn get(self) -> usize {
        self.0
    }
}

/// A `dependsOn` entry that names neither a step of the workflow nor a barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// The step whose `dependsOn` holds it.
    pub step: StepIdx,
    /// Its position in that `dependsOn`.
    pub entry: usize,
    /// The name as written.
    pub name: String,
}

/// The dependency graph of one workflow.
#[derive(Debug, Clone)]
pub struct StepGraph {
    /// Steps each step depends on directly: `dependsOn` steps plus implied ones.
    deps: Vec<Vec<StepIdx>>,
    /// Barriers each step names in `dependsOn`, first mention first.
    barriers: Vec<Vec<BarrierIdx>>,
    /// For every barrier of the file, the steps of this workflow it waits for.
    barrier_waits: Vec<Vec<StepIdx>>,
    /// Everything each step waits for: `deps` plus the steps of its barriers.
    full: Vec<Vec<StepIdx>>,
    unresolved: Vec<Unresolved>,
    order: Vec<StepIdx>,
    /// Position of each step in `order`.
    rank: Vec<usize>,
    cycle: Option<Vec<StepIdx>>,
}

fn sorted_unique(mut v: Vec<StepIdx>) -> Vec<StepIdx> {
    v.sort_unstable();
    v.dedup();
    v
}

impl StepGraph {
    /// The graph of `wf` under the pattern that is in effect for it.
    pub fn for_workflow(file: &RelayFile, wf: &WorkflowDef) -> StepGraph {
        StepGraph::new(file, wf, crate::pattern::choose(file, wf).pattern)
    }

    /// The graph of `wf` under `pattern`.
    pub fn new(file: &RelayFile, wf: &WorkflowDef, pattern: Pattern) -> StepGraph {
        let n = wf.steps.len();
        let mut index: HashMap<&str, StepIdx> = HashMap::with_capacity(n);
        for (i, s) in wf.steps.iter().enumerate() {
            // The first of duplicate names wins; validation reports the duplicate.
            index.entry(s.name.as_str()).or_insert(StepIdx(i));
        }
        let file_barriers = file
            .coordination
            .as_ref()
            .map(|c| c.barriers.as_slice())
            .unwrap_or_default();
        let mut barrier_index: HashMap<&str, BarrierIdx> = HashMap::new();
        for (b, bar) in file_barriers.iter().enumerate() {
            barrier_index
                .entry(bar.name.as_str())
                .or_insert(BarrierIdx(b));
        }
        let barrier_waits: Vec<Vec<StepIdx>> = file_barriers
            .iter()
            .map(|b| {
                sorted_unique(
                    b.wait_for
                        .iter()
                        .filter_map(|w| index.get(w.as_str()).copied())
                        .collect(),
                )
            })
            .collect();
        let implicit = crate::pattern::implicit_deps(file, wf, pattern);

        let mut deps: Vec<Vec<StepIdx>> = Vec::with_capacity(n);
        let mut barriers = Vec::with_capacity(n);
        let mut full = Vec::with_capacity(n);
        let mut unresolved = Vec::new();
        for (i, s) in wf.steps.iter().enumerate() {
            let mut d: Vec<StepIdx> = Vec::with_capacity(s.depends_on.len());
            let mut bs: Vec<BarrierIdx> = Vec::new();
            for (e, name) in s.depends_on.iter().enumerate() {
                if let Some(&j) = index.get(name.as_str()) {
                    d.push(j);
                } else if let Some(&b) = barrier_index.get(name.as_str()) {
                    if !bs.contains(&b) {
                        bs.push(b);
                    }
                } else {
                    unresolved.push(Unresolved {
                        step: StepIdx(i),
                        entry: e,
                        name: name.clone(),
                    });
                }
            }
            d.extend(implicit[i].iter().map(|&j| StepIdx(j)));
            // A group's member with no `dependsOn` waits for what its group waits for
            // (the group stands before its members).
            if s.depends_on.is_empty()
                && let Some(g) = s.group.as_deref().and_then(|g| index.get(g))
                && let Some(gd) = deps.get(g.0)
            {
                d.extend(gd.iter().copied());
            }
            let d = sorted_unique(d);
            let mut f = d.clone();
            // The group waits for its members: steps after it see them upstream.
            if s.is_group() {
                f.extend(
                    wf.steps
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| m.group.as_deref() == Some(s.name.as_str()))
                        .map(|(j, _)| StepIdx(j)),
                );
            }
            for b in &bs {
                f.extend(barrier_waits[b.0].iter().copied());
            }
            deps.push(d);
            barriers.push(bs);
            full.push(sorted_unique(f));
        }
        let cycle = find_cycle(&full);
        let order = plan_order(&full);
        let mut rank = vec![0; n];
        for (r, s) in order.iter().enumerate() {
            rank[s.0] = r;
        }
        StepGraph {
            deps,
            barriers,
            barrier_waits,
            full,
            unresolved,
            order,
            rank,
            cycle,
        }
    }

    /// How many steps the workflow has.
    pub fn len(&self) -> usize {
        self.deps.len()
    }

    /// Whether the workflow has no steps.
    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    /// The steps `i` depends on directly (its `dependsOn` steps and those its pattern
    /// implies), without the steps of the barriers it names.
    pub fn deps(&self, i: StepIdx) -> &[StepIdx] {
        &self.deps[i.0]
    }

    /// The barriers `i` names in `dependsOn`, in the order first named.
    pub fn barrier_deps(&self, i: StepIdx) -> &[BarrierIdx] {
        &self.barriers[i.0]
    }

    /// The steps of this workflow barrier `b` waits for.
    pub fn barrier_waits(&self, b: BarrierIdx) -> &[StepIdx] {
        self.barrier_waits
            .get(b.0)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every step `i` waits for directly: its dependencies and its barriers' steps.
    pub fn waits_for(&self, i: StepIdx) -> &[StepIdx] {
        &self.full[i.0]
    }

    /// `dependsOn` entries that name neither a step nor a barrier.
    pub fn unresolved(&self) -> &[Unresolved] {
        &self.unresolved
    }

    /// A dependency cycle, in execution order (each step waits for the one before it, the
    /// first for the last), if there is one.
    pub fn cycle(&self) -> Option<&[StepIdx]> {
        self.cycle.as_deref()
    }

    /// Every step once, each after everything it waits for, in passes over the
    /// declaration order: a pass places, in declaration order, each step whose
    /// dependencies are already placed. Steps on or after a cycle come last, in
    /// declaration order.
    pub fn order(&self) -> &[StepIdx] {
        &self.order
    }

    /// Whether `candidate` is (transitively) upstream of `of`: `of` cannot start before
    /// `candidate` completes. Cheap for direct dependencies; otherwise a search that skips
    /// every step planned before `candidate`.
    pub fn upstream(&self, of: StepIdx, candidate: StepIdx) -> bool {
        if of == candidate || self.rank[candidate.0] >= self.rank[of.0] {
            return false;
        }
        if self.full[of.0].binary_search(&candidate).is_ok() {
            return true;
        }
        let floor = self.rank[candidate.0];
        let mut seen = vec![false; self.len()];
        let mut stack = vec![of];
        seen[of.0] = true;
        while let Some(s) = stack.pop() {
            for &d in &self.full[s.0] {
                if d == candidate {
                    return true;
                }
                // A step planned before `candidate` cannot wait for it.
                if !seen[d.0] && self.rank[d.0] > floor {
                    seen[d.0] = true;
                    stack.push(d);
                }
            }
        }
        false
    }

    /// `upstream` for many pairs at once, in time linear in the graph for every 64
    /// distinct candidates that are not direct dependencies.
    pub fn upstream_all(&self, queries: &[(StepIdx, StepIdx)]) -> Vec<bool> {
        let mut answers = vec![false; queries.len()];
        // Candidates that need more than a look at the direct dependencies, numbered.
        let mut targets: HashMap<StepIdx, usize> = HashMap::new();
        let mut pending: Vec<usize> = Vec::new();
        for (q, &(of, cand)) in queries.iter().enumerate() {
            if of == cand || self.rank[cand.0] >= self.rank[of.0] {
                continue;
            }
            if self.full[of.0].binary_search(&cand).is_ok() {
                answers[q] = true;
                continue;
            }
            let next = targets.len();
            targets.entry(cand).or_insert(next);
            pending.push(q);
        }
        if pending.is_empty() {
            return answers;
        }
        let mut by_number: Vec<StepIdx> = vec![StepIdx(0); targets.len()];
        for (&t, &k) in &targets {
            by_number[k] = t;
        }
        // For a chunk of 64 candidates, one pass in plan order gives every step the set
        // of chunk candidates it (transitively) waits for, as a bit mask.
        for (chunk_no, chunk) in by_number.chunks(64).enumerate() {
            let mut mask = vec![0u64; self.len()];
            let own: HashMap<StepIdx, u64> = chunk
                .iter()
                .enumerate()
                .map(|(bit, &t)| (t, 1u64 << bit))
                .collect();
            for &s in &self.order {
                let mut m = 0u64;
                for &d in &self.full[s.0] {
                    m |= mask[d.0] | own.get(&d).copied().unwrap_or(0);
                }
                mask[s.0] = m;
            }
            for &q in &pending {
                let (of, cand) = queries[q];
                let k = targets[&cand];
                if k / 64 == chunk_no && mask[of.0] & (1u64 << (k % 64)) != 0 {
                    answers[q] = true;
                }
            }
        }
        answers
    }
}

/// A cycle in `deps` (each entry the steps that entry waits for), in execution order.
fn find_cycle(deps: &[Vec<StepIdx>]) -> Option<Vec<StepIdx>> {
    // Iterative DFS with colours; the grey stack is the cycle when a grey node is met.
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let n = deps.len();
    let mut colour = vec![WHITE; n];
    for start in 0..n {
        if colour[start] != WHITE {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = GREY;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&d) = deps[node].get(*next) {
                *next += 1;
                match colour[d.0] {
                    WHITE => {
                        colour[d.0] = GREY;
                        stack.push((d.0, 0));
                    }
                    GREY => {
                        let at = stack.iter().position(|(x, _)| *x == d.0).unwrap_or(0);
                        let mut cycle: Vec<StepIdx> =
                            stack[at..].iter().map(|(x, _)| StepIdx(*x)).collect();
                        // The stack runs from dependents to dependencies; report it the
                        // way it would run.
                        cycle.reverse();
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                colour[node] = BLACK;
                stack.pop();
            }
        }
    }
    None
}

/// The planning order described at [`StepGraph::order`] for any dependency lists (the
/// planner adds its own edges), computed without repeated passes:
/// a step lands in the pass of its latest dependency declared before it, or one pass after
/// its latest dependency declared after it.
pub fn plan_order(deps: &[Vec<StepIdx>]) -> Vec<StepIdx> {
    let n = deps.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (i, ds) in deps.iter().enumerate() {
        waiting[i] = ds.len();
        for d in ds {
            dependents[d.0].push(i);
        }
    }
    let mut pass = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut placed = vec![false; n];
    while let Some(d) = ready.pop() {
        placed[d] = true;
        for &i in &dependents[d] {
            let p = if d < i { pass[d] } else { pass[d] + 1 };
            pass[i] = pass[i].max(p);
            waiting[i] -= 1;
            if waiting[i] == 0 {
                ready.push(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| placed[i]).collect();
    order.sort_by_key(|&i| (pass[i], i));
    order.extend((0..n).filter(|&i| !placed[i]));
    order.into_iter().map(StepIdx).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(src: &str) -> RelayFile {
        crate::parse(src, "t.yaml").expect("parses").file
    }

    fn idx(v: &[usize]) -> Vec<StepIdx> {
        v.iter().copied().map(StepIdx).collect()
    }

    /// The planner's original algorithm, kept here as the reference `order` must match.
    fn passes(deps: &[Vec<StepIdx>]) -> Vec<StepIdx> {
        let n = deps.len();
        let mut placed = vec![false; n];
        let mut order = Vec::new();
        while order.len() < n {
            let before = order.len();
            for i in 0..n {
                if !placed[i] && deps[i].iter().all(|d| placed[d.0]) {
                    placed[i] = true;
                    order.push(StepIdx(i));
                }
            }
            if order.len() == before {
                order.extend((0..n).filter(|&i| !placed[i]).map(StepIdx));
                break;
            }
        }
        order
    }

    const HEAD: &str = "name: t\nagents: [{name: a, cli: claude}]\n";

    #[test]
    fn barrier_names_expand_to_their_steps() {
        let f = file(&format!(
            "{HEAD}coordination:\n  barriers:\n    - {{name: gate, waitFor: [x, y]}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: x, agent: a, task: t}}\n      - {{name: y, agent: a, task: t}}\n      - {{name: z, agent: a, task: t, dependsOn: [gate]}}\n"
        ));
        let g = StepGraph::new(&f, &f.workflows[0], Pattern::Dag);
        assert_eq!(g.deps(StepIdx(2)), &[] as &[StepIdx]);
        assert_eq!(g.barrier_deps(StepIdx(2)), &[BarrierIdx(0)]);
        assert_eq!(g.barrier_waits(BarrierIdx(0)), idx(&[0, 1]).as_slice());
        assert_eq!(g.waits_for(StepIdx(2)), idx(&[0, 1]).as_slice());
        assert!(g.upstream(StepIdx(2), StepIdx(1)));
        assert!(!g.upstream(StepIdx(1), StepIdx(2)));
    }

    #[test]
    fn pattern_dependencies_are_included() {
        let f = file(&format!(
            "{HEAD}workflows:\n  - name: w\n    steps:\n      - {{name: p, agent: a, task: t}}\n      - {{name: q, agent: a, task: t}}\n      - {{name: r, agent: a, task: t}}\n"
        ));
        let g = StepGraph::new(&f, &f.workflows[0], Pattern::Pipeline);
        assert_eq!(g.deps(StepIdx(2)), &[StepIdx(1)]);
        assert!(g.upstream(StepIdx(2), StepIdx(0)));
        let g = StepGraph::new(&f, &f.workflows[0], Pattern::FanOut);
        assert!(!g.upstream(StepIdx(2), StepIdx(0)));
    }

    #[test]
    fn a_cycle_is_named_in_execution_order() {
        let f = file(&format!(
            "{HEAD}workflows:\n  - name: w\n    steps:\n      - {{name: a, agent: a, task: t, dependsOn: [c]}}\n      - {{name: b, agent: a, task: t, dependsOn: [a]}}\n      - {{name: c, agent: a, task: t, dependsOn: [b]}}\n      - {{name: d, agent: a, task: t}}\n"
        ));
        let g = StepGraph::for_workflow(&f, &f.workflows[0]);
        let cycle = g.cycle().expect("a cycle");
        assert_eq!(cycle.len(), 3);
        // Each step in the list waits for the one before it.
        for w in 0..3 {
            let (before, after) = (cycle[w], cycle[(w + 1) % 3]);
            assert!(g.waits_for(after).contains(&before), "{cycle:?}");
        }
        // The independent step is planned; the cycle comes last in declaration order.
        assert_eq!(g.order(), idx(&[3, 0, 1, 2]).as_slice());
    }

    #[test]
    fn unresolved_names_are_listed() {
        let f = file(&format!(
            "{HEAD}workflows:\n  - name: w\n    steps:\n      - {{name: a, agent: a, task: t, dependsOn: [ghost]}}\n"
        ));
        let g = StepGraph::for_workflow(&f, &f.workflows[0]);
        assert_eq!(
            g.unresolved(),
            &[Unresolved {
                step: StepIdx(0),
                entry: 0,
                name: "ghost".into()
            }]
        );
    }

    #[test]
    fn many_candidates_are_answered_across_chunks() {
        // A chain of 300 steps declared last-first; every pair is asked about at once, so
        // the candidates span several 64-wide chunks.
        let n = 300;
        let mut y = format!("{HEAD}workflows:\n  - name: w\n    steps:\n");
        for i in (0..n).rev() {
            y.push_str(&format!("      - {{name: s{i}, agent: a, task: t"));
            if i > 0 {
                y.push_str(&format!(", dependsOn: [s{}]", i - 1));
            }
            y.push_str("}\n");
        }
        let f = file(&y);
        let g = StepGraph::for_workflow(&f, &f.workflows[0]);
        // Declared position p holds s{n-1-p}.
        let at = |i: usize| StepIdx(n - 1 - i);
        let mut pairs = Vec::new();
        for a in (0..n).step_by(7) {
            for b in 0..n {
                pairs.push((at(a), at(b)));
            }
        }
        let answers = g.upstream_all(&pairs);
        for (k, &(of, cand)) in pairs.iter().enumerate() {
            let (a, b) = (n - 1 - of.0, n - 1 - cand.0);
            assert_eq!(answers[k], b < a, "s{b} upstream of s{a}");
        }
        assert_eq!(g.order().first(), Some(&at(0)));
    }

    proptest::proptest! {
        /// On random DAGs: `order` is the planner's order, and both upstream queries agree
        /// with a plain transitive closure.
        #[test]
        fn order_and_reachability_match_the_definitions(
            n in 1usize..24,
            edges in proptest::collection::vec((0usize..24, 0usize..24), 0..60),
        ) {
            // Edges from a later-declared step to an earlier one or the reverse, but never
            // both ways round a cycle: orient by a fixed permutation.
            let perm: Vec<usize> = (0..n).map(|i| (i * 7 + 3) % n).collect();
            let mut deps = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if perm[a] > perm[b] {
                    deps[a].push(StepIdx(b));
                }
            }
            let deps: Vec<Vec<StepIdx>> = deps.into_iter().map(sorted_unique).collect();
            let order = plan_order(&deps);
            proptest::prop_assert_eq!(&order, &passes(&deps));
            proptest::prop_assert!(find_cycle(&deps).is_none());

            let mut rank = vec![0; n];
            for (r, s) in order.iter().enumerate() {
                rank[s.0] = r;
            }
            let g = StepGraph {
                deps: deps.clone(),
                barriers: vec![Vec::new(); n],
                barrier_waits: Vec::new(),
                full: deps.clone(),
                unresolved: Vec::new(),
                order,
                rank,
                cycle: None,
            };
            let mut closure = vec![vec![false; n]; n];
            for &s in g.order() {
                for &d in &deps[s.0] {
                    let below = closure[d.0].clone();
                    let row = &mut closure[s.0];
                    row[d.0] = true;
                    for (cell, via) in row.iter_mut().zip(below) {
                        *cell |= via;
                    }
                }
            }
            let pairs: Vec<(StepIdx, StepIdx)> = (0..n)
                .flat_map(|a| (0..n).map(move |b| (StepIdx(a), StepIdx(b))))
                .collect();
            let all = g.upstream_all(&pairs);
            for (k, &(a, b)) in pairs.iter().enumerate() {
                proptest::prop_assert_eq!(g.upstream(a, b), closure[a.0][b.0]);
                proptest::prop_assert_eq!(all[k], closure[a.0][b.0]);
            }
        }
    }
}
