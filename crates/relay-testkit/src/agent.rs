//! The `fake-agent` program: picks the CLI to play, checks argv, runs one-shot or TUI.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::argv::{self, Cli, Mode};
use crate::{oneshot, script, structured, tui};

fn fail(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "{msg}");
    std::process::exit(2)
}

pub(crate) fn main() -> ! {
    let mut args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv0 = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    if args.first().map(String::as_str) == Some("--sleeper") {
        sleeper(args.get(1));
    }
    let cli = if args.first().map(String::as_str) == Some("--as") {
        let Some(name) = args.get(1) else {
            fail("fake-agent: --as needs a CLI name");
        };
        let Some(cli) = Cli::from_name(name) else {
            let names: Vec<&str> = Cli::ALL.iter().map(|c| c.name()).collect();
            fail(&format!(
                "fake-agent: unknown CLI {name} (one of: {})",
                names.join(", ")
            ));
        };
        args.drain(..2);
        cli
    } else {
        argv::cli_from_argv0(&argv0).unwrap_or(Cli::Claude)
    };
    if let Some(path) = std::env::var_os("FAKE_AGENT_ARGV_LOG") {
        let line = format!("{}\t{}\n", cli.name(), argv::json_array(&args));
        let _ = script::append_line(Path::new(&path), &line);
    }
    script::set_cli(cli);
    // The MCP server the coordinator gave this CLI, found where the real one looks.
    let env = |k: &str| std::env::var(k).ok();
    match crate::mcp_client::server_of_invocation(cli.name(), &args, &env, "agent-relay") {
        Ok(server) => script::set_mcp(server),
        Err(why) => fail(&format!(
            "fake-agent({}): bad MCP server settings: {why}",
            cli.name()
        )),
    }
    let parsed = argv::parse_named(cli, &args).map(|(mode, named)| {
        crate::conversation::set(named.resume, named.start);
        mode
    });
    match parsed {
        Err(why) => fail(&format!(
            "fake-agent({}): unrecognized arguments: {} ({why})",
            cli.name(),
            argv::json_array(&args)
        )),
        Ok(Mode::OneShot(task)) => oneshot::run(cli, &task),
        Ok(Mode::OneShotStructured(task)) => structured::run(cli, &task, model_of(&args)),
        Ok(Mode::OneShotFile(path)) => match std::fs::read_to_string(&path) {
            Ok(task) if task.trim().is_empty() => {
                fail(&format!("fake-agent({}): {path} holds no task", cli.name()))
            }
            Ok(task) => oneshot::run(cli, &task),
            Err(e) => fail(&format!("fake-agent({}): {path}: {e}", cli.name())),
        },
        Ok(Mode::OneShotStdin(_)) if std::io::stdin().is_terminal() => fail(&format!(
            "fake-agent({}): the task should come on stdin, which is a terminal",
            cli.name()
        )),
        Ok(Mode::OneShotStdin(argv::Output::Structured)) => {
            structured::run(cli, &stdin_task(cli), model_of(&args))
        }
        Ok(Mode::OneShotStdin(argv::Output::Text)) => oneshot::run(cli, &stdin_task(cli)),
        // gemini reads its task from stdin when that is not a terminal.
        Ok(Mode::Interactive) if cli == Cli::Gemini && !std::io::stdin().is_terminal() => {
            oneshot::run(cli, &stdin_task(cli))
        }
        Ok(Mode::Interactive) if !std::io::stdin().is_terminal() => fail(&format!(
            "fake-agent({}): no task in the arguments and stdin is not a terminal; \
             give a one-shot task or run it in a PTY",
            cli.name()
        )),
        Ok(Mode::Interactive) => tui::run(cli),
    }
}

/// The model named on the command line, if one is.
fn model_of(args: &[String]) -> Option<String> {
    args.iter()
        .position(|a| a == "--model" || a == "-m")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--model=").map(str::to_owned))
        })
}

/// The task on stdin; none there is an error, as for the real CLIs.
fn stdin_task(cli: Cli) -> String {
    let mut task = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut task) {
        fail(&format!("fake-agent({}): reading stdin: {e}", cli.name()));
    }
    if task.trim().is_empty() {
        fail(&format!(
            "fake-agent({}): no task in the arguments and none on stdin",
            cli.name()
        ));
    }
    task
}

/// The process `[[fake:child=MS]]` leaves behind.
fn sleeper(ms: Option<&String>) -> ! {
    let ms: u64 = ms.and_then(|m| m.parse().ok()).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    std::process::exit(0)
}
