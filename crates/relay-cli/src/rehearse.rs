//! The rehearsal agent: what `run --rehearse` starts in place of every agent CLI. It does
//! no thinking; it acknowledges its task and satisfies the step's verification where it
//! can (prints the expected text, writes the expected file, exits with the expected code),
//! marks a checklist done, approves reviews (`VERDICT: pass`), votes yes and bids when
//! asked, so a workflow's wiring can be tried end to end without tokens or installed CLIs.

use std::process::ExitCode;

pub fn main(cli: &str, task: &str) -> ExitCode {
    let agent = std::env::var("AGENT_RELAY_NAME").unwrap_or_else(|_| "agent".into());
    let step = std::env::var("AGENT_RELAY_STEP").unwrap_or_else(|_| "step".into());
    let first: String = task
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(160)
        .collect();
    // A check that matches the whole output gets exactly the line it wants.
    if std::env::var_os("AGENT_RELAY_REHEARSE_ONLY").is_some()
        && let Ok(text) = std::env::var("AGENT_RELAY_REHEARSE_SAY")
    {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    println!("[rehearsal {cli}] {agent} did step `{step}`: {first}");
    if let Ok(text) = std::env::var("AGENT_RELAY_REHEARSE_SAY") {
        println!("{text}");
    }
    if let Ok(path) = std::env::var("AGENT_RELAY_REHEARSE_WRITE") {
        let p = std::path::Path::new(&path);
        // A rehearsal touches nothing outside the step's directory.
        let escapes = p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        if escapes {
            eprintln!(
                "rehearsal agent: not writing {path}: a rehearsal writes only inside the step's directory"
            );
            return ExitCode::from(1);
        }
        if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Err(e) = std::fs::write(p, format!("rehearsal output of step `{step}`\n")) {
            eprintln!("rehearsal agent: cannot write {path}: {e}");
            return ExitCode::from(1);
        }
    }
    // Patterns read decisions from lines of a fixed form; a rehearsal always agrees, so
    // loops approve, votes agree and auctions have a bid.
    if task.contains("VOTE:") {
        println!("VOTE: yes");
    }
    if task.contains("BID:") {
        println!("BID: 10");
    }
    // A checklist is marked done item by item, as an agent would.
    if let Ok(items) = std::env::var("AGENT_RELAY_REHEARSE_TASKS") {
        for item in items.split(',').filter(|i| !i.is_empty()) {
            let mark = relay_messaging::protocol::Request::Mark {
                step: step.clone(),
                item: item.to_owned(),
                blocked: false,
                note: Some("rehearsal".into()),
            };
            if let Err(e) = crate::messaging::Endpoint::from_env().ask(&mark) {
                eprintln!(
                    "rehearsal agent: cannot mark `{item}` done: {}",
                    e.headline.unwrap_or_default()
                );
            }
        }
    }
    println!("VERDICT: pass");
    match std::env::var("AGENT_RELAY_REHEARSE_EXIT_CODE")
        .ok()
        .and_then(|c| c.trim().parse::<u8>().ok())
    {
        Some(code) => ExitCode::from(code),
        None => ExitCode::SUCCESS,
    }
}
