//! Steering a live run from another terminal: `approve` and `reject` a step waiting for
//! approval, `pause` and `unpause` the run, and `approvals` (what waits for a decision).

use std::path::Path;

use clap::Args;
use relay_engine::events::EventKind;
use relay_messaging::protocol::{Reply, Request};

use crate::error::{CliResult, Exit};
use crate::messaging::{Endpoint, runs_named, unexpected, waiting};

/// `approve` / `reject` options.
#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The run: its id, a unique prefix, or `last`.
    pub run_id: String,
    /// The step waiting for approval.
    pub step: String,
    /// Why (recorded with the decision).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who decides (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

/// The user a decision is recorded for.
pub(crate) fn user(explicit: Option<String>) -> String {
    explicit
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "user".into())
}

/// `agent-relay approve|reject RUN_ID STEP [--reason R]`.
pub fn decide(args: DecideArgs, approved: bool) -> CliResult {
    let endpoint = Endpoint::for_run(args.run_id);
    match endpoint.ask(&Request::Decide {
        step: args.step,
        approved,
        by: user(args.by),
        reason: args.reason,
    })? {
        Reply::Decided { step, approved } => {
            if approved {
                eprintln!("approved: step `{step}` starts");
            } else {
                eprintln!("rejected: step `{step}` fails and does not run");
            }
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

/// `agent-relay pause|unpause RUN_ID`.
pub fn pause(run_id: String, paused: bool) -> CliResult {
    let endpoint = Endpoint::for_run(run_id);
    match endpoint.ask(&Request::Pause {
        paused,
        by: user(None),
    })? {
        Reply::Paused { paused: true } => {
            eprintln!("paused: no new step starts until `agent-relay unpause`; running ones go on");
            Ok(Exit::Success)
        }
        Reply::Paused { paused: false } => {
            eprintln!("unpaused: steps start again");
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

/// The steps of the run in `dir` waiting for approval: (step, approvers).
fn open_approvals(dir: &Path) -> Vec<(String, Vec<String>)> {
    waiting(dir, |kind, open| match kind {
        EventKind::ApprovalRequested {
            step, approvers, ..
        } => {
            open.retain(|(s, _)| *s != step);
            open.push((step, approvers));
        }
        EventKind::ApprovalDecided { step, .. } => open.retain(|(s, _)| *s != step),
        _ => {}
    })
}

/// `agent-relay approvals [RUN_ID]`: steps waiting for approval, in one run or in every
/// live run of this directory.
pub fn approvals(run_id: Option<String>, json: bool) -> CliResult {
    let mut all = Vec::new();
    for (run, dir) in runs_named(run_id.as_deref())? {
        for (step, approvers) in open_approvals(&dir) {
            all.push(serde_json::json!({"runId": run, "step": step, "approvers": approvers}));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(all));
        return Ok(Exit::Success);
    }
    if all.is_empty() {
        eprintln!("no step waits for approval");
    }
    for a in &all {
        let (run, step) = (
            a["runId"].as_str().unwrap_or(""),
            a["step"].as_str().unwrap_or(""),
        );
        let who: Vec<&str> = a["approvers"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let who = if who.is_empty() {
            String::new()
        } else {
            format!(" (approvers: {})", who.join(", "))
        };
        println!(
            "{run}  {step}{who}\n  decide with: agent-relay approve {run} {step}  |  agent-relay reject {run} {step} --reason \"...\""
        );
    }
    Ok(Exit::Success)
}
