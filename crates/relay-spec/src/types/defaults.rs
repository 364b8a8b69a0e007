//! Every default of the format in one list. The types' accessors apply them, so each
//! reader of a file (validation, the planner, the runner) applies the same ones.

use std::time::Duration;

/// Idle time before the first nudge when `nudgeAfterMs` is not set.
pub const DEFAULT_NUDGE_AFTER: Duration = Duration::from_millis(120_000);
/// Further idle time before force-release when `escalateAfterMs` is not set.
pub const DEFAULT_ESCALATE_AFTER: Duration = Duration::from_millis(120_000);
/// Nudges before escalation when `maxNudges` is not set.
pub const DEFAULT_MAX_NUDGES: u32 = 1;
/// Bound on a `custom` verification command when `timeoutMs` is not set.
pub const DEFAULT_VERIFICATION_TIMEOUT: Duration = Duration::from_millis(60_000);
/// Quiet time before an interactive agent counts as idle when `idleThresholdSecs` is not set.
pub const DEFAULT_IDLE_THRESHOLD: Duration = Duration::from_secs(30);
/// Producer/reviewer rounds when `maxIterations` is not set.
pub const DEFAULT_MAX_ITERATIONS: u32 = 3;
/// Debate rounds when `rounds` is not set.
pub const DEFAULT_DEBATE_ROUNDS: u32 = 2;
/// Share of votes a quorum needs when `votingThreshold` is not set.
pub const DEFAULT_VOTING_THRESHOLD: f64 = 0.5;
/// How long the runner looks for evidence of completion after an agent exits 0 without
/// signalling, when `completionGracePeriodMs` is not set.
pub const DEFAULT_COMPLETION_GRACE: Duration = Duration::from_millis(5_000);
/// The branch a worktree starts from when `baseBranch` is not set.
pub const DEFAULT_BASE_BRANCH: &str = "HEAD";
/// Where worktrees go when a worktree step sets no `path`: this, then the step's name.
pub const DEFAULT_WORKTREE_DIR: &str = ".worktrees";

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}
