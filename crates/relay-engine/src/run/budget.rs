//! The run's spending, pure: tokens and dollars per workflow step and for the whole run,
//! against `swarm.tokenBudget` and `swarm.costBudget` (our extension, in US dollars).
//! Once either is spent, no attempt starts (the state fails the node with the reason);
//! attempts already running finish.

use relay_broker::usage::Usage;

/// What a step or the run spent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// Tokens by kind.
    pub usage: Usage,
    /// Dollars, for the attempts whose model has a price.
    pub cost_usd: Option<f64>,
}

impl Spent {
    fn add(&mut self, usage: &Usage, cost: Option<f64>) {
        self.usage = self.usage.plus(usage);
        if let Some(c) = cost {
            self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + c);
        }
    }
}

/// The run's budget and what has been spent, per step (by index) and in all.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    tokens: Option<u64>,
    cost_usd: Option<f64>,
    total: Spent,
    steps: Vec<Spent>,
}

impl Budget {
    /// A budget of `tokens` and `cost_usd` (either may be absent) over `steps` steps.
    pub fn new(tokens: Option<u64>, cost_usd: Option<f64>, steps: usize) -> Budget {
        Budget {
            tokens,
            cost_usd,
            total: Spent::default(),
            steps: vec![Spent::default(); steps],
        }
    }

    /// Step `step` (an index; `None` for spending outside any step) spent `usage`.
    pub fn record(&mut self, step: Option<usize>, usage: &Usage, cost: Option<f64>) {
        self.total.add(usage, cost);
        if let Some(s) = step.and_then(|i| self.steps.get_mut(i)) {
            s.add(usage, cost);
        }
    }

    /// Why no attempt may start any more, if the budget is spent.
    pub fn exhausted(&self) -> Option<String> {
        let used = self.total.usage.total();
        if let Some(max) = self.tokens
            && used >= max
        {
            return Some(format!(
                "token budget exhausted ({used} of {max} tokens used)"
            ));
        }
        if let (Some(max), Some(spent)) = (self.cost_usd, self.total.cost_usd)
            && spent >= max
        {
            return Some(format!(
                "cost budget exhausted (${spent:.4} of ${max:.2} spent)"
            ));
        }
        None
    }

    /// What step `step` spent, if it spent anything.
    pub fn of_step(&self, step: usize) -> Option<Spent> {
        self.steps.get(step).copied().filter(|s| !s.usage.is_zero())
    }

    /// What the run spent.
    pub fn total(&self) -> Spent {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(input: u64, output: u64) -> Usage {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    #[test]
    fn spending_adds_up_per_step_and_in_all() {
        let mut b = Budget::new(Some(1000), None, 2);
        b.record(Some(0), &u(100, 50), Some(0.5));
        b.record(Some(0), &u(10, 5), None);
        b.record(Some(1), &u(300, 0), Some(0.25));
        assert_eq!(b.of_step(0).unwrap().usage.total(), 165);
        assert_eq!(b.of_step(0).unwrap().cost_usd, Some(0.5));
        assert_eq!(b.total().usage.total(), 465);
        assert_eq!(b.total().cost_usd, Some(0.75));
        assert_eq!(b.exhausted(), None);
        b.record(Some(1), &u(500, 35), None);
        assert_eq!(
            b.exhausted().as_deref(),
            Some("token budget exhausted (1000 of 1000 tokens used)")
        );
    }

    #[test]
    fn a_cost_budget_counts_dollars_and_no_budget_is_never_spent() {
        let mut b = Budget::new(None, Some(1.0), 1);
        b.record(Some(0), &u(1, 1), Some(0.6));
        assert_eq!(b.exhausted(), None);
        b.record(Some(0), &u(1, 1), Some(0.4));
        assert!(b.exhausted().unwrap().starts_with("cost budget exhausted"));
        let mut none = Budget::new(None, None, 1);
        none.record(Some(0), &u(u64::MAX, u64::MAX), Some(1e12));
        assert_eq!(none.exhausted(), None);
        assert_eq!(none.of_step(5), None);
    }
}
