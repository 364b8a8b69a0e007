//! Commands about runs on disk: `resume`, `runs`, `status`, `logs [--follow]`, `cancel`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use relay_engine::Checked;
use relay_engine::runs::{self, CancelOutcome, RunInfo, RunsError, Standing};
use relay_engine::snapshot::StepState;

use crate::error::{CliError, CliResult, Exit};
use crate::execute::{Job, Output, execute, workdir};

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

fn locate(id: &str) -> CliResult<PathBuf> {
    let wd = workdir()?;
    Ok(runs::find_run(&wd, id)?)
}

/// `agent-relay resume RUN_ID`.
pub fn resume(id: &str, out: Output, nats: &crate::workers::NatsArgs) -> CliResult {
    let dir = locate(id)?;
    let plan = match runs::prepare_resume(&dir) {
        Ok(p) => p,
        Err(RunsError::AlreadyCompleted(run)) => {
            eprintln!("run {run} already completed; nothing to resume");
            if out.json
                && let Ok(text) = std::fs::read_to_string(dir.join("result.json"))
            {
                println!("{}", text.trim());
            }
            return Ok(Exit::Success);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &plan.source_changed {
        eprintln!(
            "warning: {path} changed since this run started; resuming the workflow as it was run"
        );
    }
    for (line, why) in &plan.bad_lines {
        eprintln!("warning: events.jsonl line {line} is unreadable and was skipped ({why})");
    }
    let wd = workdir()?;
    let checked = match Checked::new(plan.loaded, Some(&plan.workflow)) {
        Ok((checked, _)) => checked,
        Err(failed) => {
            let (loaded, report) = *failed;
            return Err(crate::diagnostics::invalid(
                &loaded,
                &report,
                "the stored workflow cannot be resumed",
            ));
        }
    };
    let kept = plan
        .resume
        .completed
        .values()
        .filter(|s| s.status == relay_engine::StepStatus::Completed)
        .count();
    eprintln!(
        "resuming run {} ({} step{} already completed)",
        plan.resume.run_id,
        kept,
        if kept == 1 { "" } else { "s" }
    );
    let nats = nats.resolve(&checked.loaded().file)?;
    if nats.is_none() && dir.join(relay_nats::DISPATCH_LOG).exists() {
        eprintln!(
            "warning: run {} dispatched steps to workers over NATS; resumed without a \
             server, its steps run on this machine (give AGENT_RELAY_NATS=URL, or `run \
             --resume {} --nats URL`)",
            plan.resume.run_id, plan.resume.run_id
        );
    }
    execute(
        Job {
            checked,
            vars: plan.vars,
            rehearse: plan.rehearse,
            allow_unenforced: plan.allow_unenforced,
            resume: Some(plan.resume),
            workdir: wd,
            dashboard: None,
            nats,
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
pub fn list(json: bool) -> CliResult {
    let wd = workdir()?;
    let all = runs::list_runs(&wd);
    if json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
        return Ok(Exit::Success);
    }
    if all.is_empty() {
        eprintln!("no runs in {}", wd.display());
        return Ok(Exit::Success);
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
            r.status.as_str(),
            r.started_at.as_deref().unwrap_or("-"),
            duration(r.duration_ms)
        );
    }
    Ok(Exit::Success)
}

fn print_status(info: &RunInfo) {
    println!(
        "run {}  workflow `{}`  {}",
        info.run_id,
        info.workflow,
        info.status.as_str()
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
        if matches!(s.status, StepState::Completed | StepState::Failed) {
            detail.push_str(&format!(" {}", duration(Some(s.duration_ms))));
        }
        if let Some(u) = &s.usage {
            detail.push_str(&format!(" {}", crate::progress::spending(u, s.cost_usd)));
        }
        if let Some(ms) = s.parked_until_ms.filter(|_| s.status == StepState::Parked) {
            let now = relay_engine::run::park::wall_now_ms();
            detail.push_str(&format!(
                "  parked until {}",
                relay_engine::run::park::show(ms, now)
            ));
        }
        if let Some(r) = &s.reason {
            detail.push_str(&format!("  {r}"));
        }
        println!("  {:width$}  {:<9}{detail}", s.name, step_state(s.status));
    }
}

fn step_state(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "pending",
        StepState::Running => "running",
        StepState::Parked => "parked",
        StepState::Completed => "completed",
        StepState::Failed => "failed",
        StepState::Skipped => "skipped",
    }
}

/// `agent-relay status RUN_ID`.
pub fn status(args: StatusArgs) -> CliResult {
    let dir = locate(&args.run_id)?;
    let info = runs::run_info(&dir);
    for (line, why) in &info.bad_lines {
        eprintln!("warning: events.jsonl line {line} is unreadable and was skipped ({why})");
    }
    if args.json {
        println!("{}", serde_json::to_string(&info).unwrap_or_default());
    } else {
        print_status(&info);
    }
    Ok(Exit::Success)
}

/// One event line for humans: time, type, step, then the remaining fields.
/// Refuses a step the run has not heard of (one a live run may still start is let
/// through when following).
fn known_step(dir: &Path, step: &str, follow: bool) -> CliResult<()> {
    let replay = relay_engine::snapshot::Snapshot::load(dir).unwrap_or_default();
    let known = || {
        replay
            .step_order
            .iter()
            .map(String::as_str)
            .chain(replay.steps.keys().map(String::as_str))
    };
    if known().any(|s| s == step) || (follow && runs::run_info(dir).status == Standing::Running) {
        return Ok(());
    }
    let run_id = replay.run_id.as_deref().unwrap_or("this run");
    let mut msg = format!("run {run_id} has no step `{step}`");
    if let Some(b) = relay_spec::load::did_you_mean(step, known()) {
        msg.push_str(&format!(" (did you mean `{b}`?)"));
    }
    Err(CliError::invalid(msg))
}

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
    let sdir = relay_engine::store::step_dir_of(dir, step);
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
pub fn logs(args: LogsArgs) -> CliResult {
    let dir = locate(&args.run_id)?;
    if let Some(step) = &args.step {
        known_step(&dir, step, args.follow)?;
    }
    let path = dir.join("events.jsonl");
    let mut file = std::fs::File::open(&path)
        .map_err(|e| CliError::runtime(format!("cannot read {}: {e}", path.display())))?;
    let mut pending = String::new();
    let mut offset = 0u64;
    let stdout = std::io::stdout();
    let mut shown = 0usize;
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
                shown += 1;
            }
        }
        if !args.follow {
            break;
        }
        let info = runs::run_info(&dir);
        if info.status != Standing::Running && pending.is_empty() {
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
        if shown == 0 {
            eprintln!("step `{step}` has no events: it did not start in this run");
        }
        print_step_files(&dir, step);
    }
    Ok(Exit::Success)
}

/// `agent-relay cancel RUN_ID`.
pub fn cancel(id: &str) -> CliResult {
    let dir = locate(id)?;
    let rt = crate::execute::runtime()?;
    let grace = relay_engine::Settings::from_env().kill_grace;
    let outcome = rt
        .block_on(runs::cancel(&dir, grace))
        .map_err(|e| CliError::runtime(format!("cannot cancel: {e}")))?;
    match outcome {
        CancelOutcome::Stopped(pid) => {
            eprintln!("cancelled: the coordinator (pid {pid}) ended its agents and stopped");
        }
        CancelOutcome::Requested(pid) => {
            if relay_broker::procfs::stat(pid).is_some_and(|s| s.state == 'T') {
                // Stopped (SIGSTOP, a debugger): it takes the request only once it runs.
                return Err(CliError::runtime(format!(
                    "the coordinator (pid {pid}) is stopped, so it cannot end the run: continue it \
                     (`kill -CONT {pid}`) and it cancels, or kill it (`kill -9 {pid}`) and run \
                     `agent-relay cancel {id}` again"
                )));
            }
            eprintln!("cancel requested: the coordinator (pid {pid}) is still finishing");
        }
        CancelOutcome::Marked => eprintln!(
            "no coordinator was running; the run is marked cancelled and its leftover processes were ended"
        ),
        CancelOutcome::AlreadyFinished(status) => eprintln!(
            "the run already finished ({}); nothing to cancel",
            status.as_str()
        ),
    }
    Ok(Exit::Success)
}

/// `agent-relay trajectory RUN_ID`: every decision the run made, with reasons.
pub fn trajectory(id: &str, json: bool) -> CliResult {
    let dir = locate(id)?;
    let path = dir.join(relay_engine::trajectory::FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let off = std::fs::read_to_string(dir.join("workflow.yaml"))
                .ok()
                .and_then(|src| relay_spec::parse(&src, "workflow.yaml").ok())
                .is_some_and(|l| !l.file.trajectories_enabled());
            return Err(CliError::new(
                Exit::Failed,
                if off {
                    "this run kept no trajectory (its workflow sets `trajectories: false`)".into()
                } else {
                    format!(
                        "this run has no trajectory file ({} is missing)",
                        path.display()
                    )
                },
            ));
        }
        Err(e) => {
            return Err(CliError::runtime(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let decisions = relay_engine::trajectory::parse(&text);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decisions).unwrap_or_default()
        );
    } else {
        let run_id = runs::run_info(&dir).run_id;
        print!("{}", relay_engine::trajectory::summary(&run_id, &decisions));
    }
    Ok(Exit::Success)
}
