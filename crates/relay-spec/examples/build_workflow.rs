//! A workflow built in Rust with `RelayFile::builder`, printed as relay.yaml:
//!
//! ```text
//! cargo run -p relay-spec --example build_workflow > ship.yaml
//! agent-relay run ship.yaml --rehearse
//! cargo run -p relay-spec --example build_workflow | agent-relay run - --rehearse
//! ```
//!
//! (`tests/sdk.rs` validates what it prints with the binary.)

use std::process::ExitCode;

use relay_spec::{Agent, Cli, OnError, Pattern, RelayFile, Step, Verification};

/// The workflow: a deterministic step per check, an agent's plan, a review of both.
pub fn workflow() -> RelayFile {
    let checks = ["lint", "test"];
    let mut b = RelayFile::builder("rust-built")
        .description("Checks built from a Rust array, a plan, a review")
        .pattern(Pattern::Dag)
        .max_concurrency(2)
        .timeout_ms(600_000)
        .variable("feature", "a /health endpoint")
        .agent(
            Agent::builder("planner", Cli::Claude)
                .role("planner")
                .interactive(false),
        )
        .agent(
            Agent::builder("reviewer", Cli::Codex)
                .role("reviewer")
                .retries(1)
                .interactive(false),
        )
        .step(
            Step::builder("plan")
                .agent("planner")
                .task("Plan how to add {{feature}}.\nEnd with the line PLAN_READY.")
                .verification(Verification::output_contains("PLAN_READY")),
        );
    for check in checks {
        b = b.step(
            Step::builder(check)
                .command(format!("echo {check}: ok"))
                .depends_on(["plan"]),
        );
    }
    b.step(
        Step::builder("review")
            .agent("reviewer")
            .task("Review the plan:\n{{steps.plan.output}}")
            .depends_on(checks),
    )
    .on_error(OnError::Retry, Some(1), Some(100))
    .build()
}

#[allow(dead_code)]
fn main() -> ExitCode {
    match workflow().to_yaml() {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
