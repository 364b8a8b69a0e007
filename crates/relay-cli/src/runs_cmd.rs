//! Commands about runs on disk: `resume`, `runs`, `status`, `logs [--follow]`, `cancel`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use relay_engine::runs::{self, CancelOutcome, RunInfo, RunsError};

use crate::commands::{Job, Output, execute, workdir};
use crate::{EXIT_INVALID, EXIT_RUNTIME};

/// `status` options.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Run id, a unique prefix of one, or `last`.
    pub run_id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `logs` options.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Run id, a unique prefix of one, or `last`.
    pub run_id: String,
    /// Only this step's events, then its output and stderr.
    pub step: Option<String>,
    /// Keep printing new events until the run ends.
    #[arg(short, long)]
    pub follow: bool,
}

fn locate(id: &str) -> Result<PathBuf, ExitCode> {
    let wd = workdir()?;
    runs::find_run(&wd, id).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

/// `agent-relay resume RUN_ID`.
pub fn resume(id: &str, out: Output) -> ExitCode {
    let dir = match locate(id) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let plan = match runs::prepare_resume(&dir) {
        Ok(p) => p,
        Err(RunsError::AlreadyCompleted(run)) => {
            eprintln!("run {run} already completed; nothing to resume");
            if out.json
                && let Ok(text) = std::fs::read_to_string(dir.join("result.json"))
            {
                println!("{}", text.trim());
            }
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Some(path) = &plan.source_changed {
        eprintln!(
            "warning: {path} changed since this run started; resuming the workflow as it was run"
        );
    }
    for (line, why) in &plan.bad_lines {
        eprintln!("warning: events.jsonl line {line} is unreadable and was skipped ({why})");
    }
    let wd = match workdir() {
        Ok(d) => d,
        Err(c) => return c,
    };
    eprintln!(
        "resuming run {} ({} step{} already completed)",
        plan.resume.run_id,
        plan.resume.completed.len(),
        if plan.resume.completed.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    execute(
        Job {
            loaded: plan.loaded,
            workflow: Some(plan.workflow),
            vars: plan.vars,
            rehearse: plan.rehearse,
            resume: Some(plan.resume),
            workdir: wd,
        },
        out,
    )
}

fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
    }
}

/// `agent-relay runs`.
pub fn list(json: bool) -> ExitCode {
    let wd = match workdir() {
        Ok(d) => d,
        Err(c) => return c,
    };
    let all = runs::list_runs(&wd);
    if json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if all.is_empty() {
        eprintln!("no runs in {}", wd.display());
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<24} {:<20} {:<12} {:<25} DURATION",
        "RUN ID", "WORKFLOW", "STATUS", "STARTED"
    );
    for r in all {
        println!(
            "{:<24} {:<20} {:<12} {:<25} {}",
            r.run_id,
            r.workflow,
            r.status,
            r.started_at.as_deref().unwrap_or("-"),
            duration(r.duration_ms)
        );
    }
    ExitCode::SUCCESS
}

fn print_status(info: &RunInfo) {
    println!(
        "run {}  workflow `{}`  {}",
        info.run_id, info.workflow, info.status
    );
    if let Some(pid) = info.pid {
        println!("coordinator pid {pid}");
    }
    if let Some(r) = &info.reason {
        println!("reason: {r}");
    }
    let width = info.steps.iter().map(|s| s.name.len()).max().unwrap_or(4);
    for s in &info.steps {
        let mut detail = String::new();
        if s.attempts > 1 {
            detail.push_str(&format!(" attempts {}", s.attempts));
        }
        if let Some(c) = s.exit_code {
            detail.push_str(&format!(" exit {c}"));
        }
        if s.status == "completed" || s.status == "failed" {
            detail.push_str(&format!(" {}", duration(Some(s.duration_ms))));
        }
        if let Some(r) = &s.reason {
            detail.push_str(&format!("  {r}"));
        }
        println!("  {:width$}  {:<9}{detail}", s.name, s.status);
    }
}

/// `agent-relay status RUN_ID`.
pub fn status(args: StatusArgs) -> ExitCode {
    let dir = match locate(&args.run_id) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let info = runs::run_info(&dir);
    for (line, why) in &info.bad_lines {
        eprintln!("warning: events.jsonl line {line} is unreadable and was skipped ({why})");
    }
    if args.json {
        println!("{}", serde_json::to_string(&info).unwrap_or_default());
    } else {
        print_status(&info);
    }
    ExitCode::SUCCESS
}

/// One event line for humans: time, type, step, then the remaining fields.
fn describe(line: &str, step: Option<&str>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let obj = v.as_object()?;
    if let Some(want) = step
        && obj.get("step").and_then(|s| s.as_str()) != Some(want)
    {
        return None;
    }
    let ts = obj.get("ts").and_then(|t| t.as_str()).unwrap_or("");
    let time = ts.split('T').nth(1).unwrap_or(ts).trim_end_matches('Z');
    let kind = obj.get("type").and_then(|t| t.as_str()).unwrap_or("?");
    let mut text = format!("{time}  {kind:<22}");
    if let Some(s) = obj.get("step").and_then(|s| s.as_str()) {
        text.push_str(&format!(" {s}"));
    }
    for (k, val) in obj {
        if matches!(k.as_str(), "ts" | "type" | "step") || val.is_null() {
            continue;
        }
        let shown = match val {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("  {k}={shown}"));
    }
    Some(text)
}

fn print_step_files(dir: &Path, step: &str) {
    let sdir = dir
        .join("steps")
        .join(relay_engine::store::step_dir_name(step));
    for (title, file) in [("output", "output.txt"), ("stderr", "stderr.log")] {
        if let Ok(text) = std::fs::read_to_string(sdir.join(file))
            && !text.trim().is_empty()
        {
            println!("--- {step} {title} ---");
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
}

/// `agent-relay logs RUN_ID [STEP] [--follow]`.
pub fn logs(args: LogsArgs) -> ExitCode {
    let dir = match locate(&args.run_id) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let path = dir.join("events.jsonl");
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let mut pending = String::new();
    let mut offset = 0u64;
    let stdout = std::io::stdout();
    loop {
        let mut chunk = String::new();
        if file.seek(SeekFrom::Start(offset)).is_ok() && file.read_to_string(&mut chunk).is_ok() {
            offset += chunk.len() as u64;
            pending.push_str(&chunk);
        }
        // Only whole lines: a line still being written is kept for the next read.
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            if let Some(text) = describe(line.trim_end(), args.step.as_deref()) {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
        if !args.follow {
            break;
        }
        let info = runs::run_info(&dir);
        if info.status != "running" && pending.is_empty() {
            // One more read catches events written between the last read and the check.
            let mut rest = String::new();
            if file.seek(SeekFrom::Start(offset)).is_ok()
                && file.read_to_string(&mut rest).is_ok()
                && !rest.is_empty()
            {
                offset += rest.len() as u64;
                pending.push_str(&rest);
                continue;
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(step) = &args.step {
        print_step_files(&dir, step);
    }
    ExitCode::SUCCESS
}

/// `agent-relay cancel RUN_ID`.
pub fn cancel(id: &str) -> ExitCode {
    let dir = match locate(id) {
        Ok(d) => d,
        Err(c) => return c,
    };
    let rt = match crate::commands::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let grace = relay_engine::Settings::from_env().kill_grace;
    match rt.block_on(runs::cancel(&dir, grace)) {
        Ok(CancelOutcome::Stopped(pid)) => {
            eprintln!("cancelled: the coordinator (pid {pid}) ended its agents and stopped");
            ExitCode::SUCCESS
        }
        Ok(CancelOutcome::Requested(pid)) => {
            eprintln!("cancel requested: the coordinator (pid {pid}) is still finishing");
            ExitCode::SUCCESS
        }
        Ok(CancelOutcome::Marked) => {
            eprintln!(
                "no coordinator was running; the run is marked cancelled and its leftover processes were ended"
            );
            ExitCode::SUCCESS
        }
        Ok(CancelOutcome::AlreadyFinished(status)) => {
            eprintln!("the run already finished ({status}); nothing to cancel");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot cancel: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
