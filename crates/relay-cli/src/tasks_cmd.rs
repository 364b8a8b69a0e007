//! `agent-relay task done|blocked ID` (an agent marks an item of its step's checklist,
//! over the run's socket) and `agent-relay tasks [RUN_ID] [STEP]` (the checklists of a
//! run and their marks, from its events).

use std::collections::BTreeMap;
use std::path::Path;

use clap::{Args, Subcommand};
use relay_engine::events::EventKind;
use relay_messaging::protocol::{Reply, Request};

use crate::error::{CliError, CliResult, Exit};
use crate::messaging::{Endpoint, runs_named, unexpected};

/// `task` options.
#[derive(Args, Debug)]
pub struct TaskArgs {
    #[command(subcommand)]
    op: TaskOp,
    /// The step whose checklist it is (default: $AGENT_RELAY_STEP, which every agent has).
    #[arg(long, global = true)]
    step: Option<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Subcommand, Debug)]
enum TaskOp {
    /// Mark an item done.
    Done {
        /// The item's id.
        id: String,
        /// How it was done.
        #[arg(long)]
        note: Option<String>,
    },
    /// Mark an item blocked: it cannot be done without a person; the step ends blocked
    /// and the run waits for a person (exit 2).
    Blocked {
        /// The item's id.
        id: String,
        /// Why it cannot be done.
        #[arg(long, required = true)]
        reason: String,
    },
}

/// `agent-relay task done|blocked ID`.
pub fn task(args: TaskArgs) -> CliResult {
    let step = match args.step.or_else(|| std::env::var("AGENT_RELAY_STEP").ok()) {
        Some(s) if !s.is_empty() => s,
        _ => {
            return Err(CliError::new(
                Exit::Invalid,
                "which step? give --step STEP (agents have it in $AGENT_RELAY_STEP)",
            ));
        }
    };
    let (item, blocked, note) = match args.op {
        TaskOp::Done { id, note } => (id, false, note),
        TaskOp::Blocked { id, reason } => (id, true, Some(reason)),
    };
    match args.endpoint.ask(&Request::Mark {
        step,
        item,
        blocked,
        note,
    })? {
        Reply::Marked { step, item } => {
            let how = if blocked { "blocked" } else { "done" };
            eprintln!("{step}: `{item}` marked {how}");
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

/// One step's checklist as its events tell it.
#[derive(Debug, Default, serde::Serialize)]
struct List {
    items: Vec<relay_spec::ChecklistItem>,
    marks: BTreeMap<String, serde_json::Value>,
}

/// The checklists of the run in `dir`, by step.
fn lists(dir: &Path) -> BTreeMap<String, List> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let mut out: BTreeMap<String, List> = BTreeMap::new();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<relay_engine::events::Event>(l).ok())
    {
        match e.kind {
            EventKind::ChecklistItems { step, items } => out.entry(step).or_default().items = items,
            EventKind::ChecklistMarked {
                step,
                item,
                blocked,
                note,
                by,
            } => {
                let mark = serde_json::json!({
                    "status": if blocked { "blocked" } else { "done" },
                    "note": note,
                    "by": by,
                });
                out.entry(step).or_default().marks.insert(item, mark);
            }
            _ => {}
        }
    }
    out
}

/// `agent-relay tasks [RUN_ID] [STEP]`: each checklist item with its state.
pub fn tasks(run_id: Option<String>, step: Option<String>, json: bool) -> CliResult {
    let mut all = Vec::new();
    for (run, dir) in runs_named(run_id.as_deref())? {
        for (label, list) in lists(&dir) {
            if step.as_ref().is_some_and(|s| *s != label) {
                continue;
            }
            for item in &list.items {
                let mark = list.marks.get(&item.id);
                all.push(serde_json::json!({
                    "runId": run,
                    "step": label,
                    "id": item.id,
                    "title": item.title,
                    "status": mark.map_or("open".into(), |m| m["status"].clone()),
                    "note": mark.map(|m| m["note"].clone()),
                }));
            }
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(all));
        return Ok(Exit::Success);
    }
    if all.is_empty() {
        eprintln!("no checklist in these runs");
    }
    for t in &all {
        let box_ = match t["status"].as_str() {
            Some("done") => "[x]",
            Some("blocked") => "[!]",
            _ => "[ ]",
        };
        let note = t["note"]
            .as_str()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        println!(
            "{}  {}  {box_} {}  {}{note}",
            t["runId"].as_str().unwrap_or(""),
            t["step"].as_str().unwrap_or(""),
            t["id"].as_str().unwrap_or(""),
            t["title"].as_str().unwrap_or(""),
        );
    }
    Ok(Exit::Success)
}
