//! `agent-relay mcp`: a stdio MCP server for one agent of a live run. The CLI that runs
//! the agent starts it (agent-relay tells each CLI how, see `relay_broker::cli_table`);
//! it learns the run and who it speaks for from the environment every agent gets
//! (`AGENT_RELAY_SOCKET`, `AGENT_RELAY_TOKEN`, `AGENT_RELAY_NAME`, `AGENT_RELAY_STEP`)
//! and answers with the run's socket.
//!
//! `protocol.rs` is the MCP state machine (pure), `tools.rs` the tools and their socket
//! requests; this file is the I/O: newline-delimited JSON-RPC on stdin and stdout, one
//! connection to the socket.

mod protocol;
mod tools;

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use clap::Args;
use relay_messaging::client::{Client, ClientError};
use relay_messaging::protocol::{Reply, Request};
use relay_messaging::{SOCKET_ENV, socket_path};

use crate::error::{CliError, CliResult, Exit};

/// `mcp` options.
#[derive(Args, Debug)]
pub struct McpArgs {
    /// The run's socket (default: $AGENT_RELAY_SOCKET).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A live run in this directory instead: its id, a unique prefix, or `last`
    /// (the server then speaks as the run's owner unless $AGENT_RELAY_TOKEN says else).
    #[arg(long, value_name = "RUN_ID")]
    run: Option<String>,
    /// Speak as this agent (default: $AGENT_RELAY_NAME).
    #[arg(long = "as", value_name = "NAME")]
    agent: Option<String>,
    /// The step `ask_human` and `report_done` are for (default: $AGENT_RELAY_STEP).
    #[arg(long, value_name = "STEP")]
    step: Option<String>,
}

/// Longest line taken from the client.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// The run's socket, with one connection kept open and made again when it breaks.
struct Socket {
    path: PathBuf,
    token: Option<String>,
    client: Option<Client>,
}

impl tools::Backend for Socket {
    fn request(&mut self, req: &Request) -> Result<Reply, String> {
        for _ in 0..2 {
            let client = match self.client.take() {
                Some(c) => c,
                None => Client::connect(&self.path)
                    .map(|c| c.with_token(self.token.clone()))
                    .map_err(|e| format!("{e} (is the run still going?)"))?,
            };
            let mut client = client;
            match client.request(req) {
                Ok(r) => {
                    self.client = Some(client);
                    return Ok(r);
                }
                // A connection the run closed (it was idle, or the run restarted its
                // socket): once more on a new one.
                Err(ClientError::Io { .. }) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!(
            "lost the connection to the run at {}",
            self.path.display()
        ))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `agent-relay mcp`.
pub fn mcp(args: McpArgs) -> CliResult {
    let (path, run_dir) = if let Some(id) = &args.run {
        let wd = crate::cwd::workdir()?;
        let dir = relay_engine::runs::find_run(&wd, id)?;
        let run_id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (socket_path(&dir, &run_id), Some(dir))
    } else if let Some(p) = args
        .socket
        .clone()
        .or_else(|| env(SOCKET_ENV).map(PathBuf::from))
    {
        (p, env("AGENT_RELAY_RUN_DIR").map(PathBuf::from))
    } else {
        return Err(CliError::runtime(format!(
            "no run to serve: {SOCKET_ENV} is not set (every agent of a run has it; from elsewhere \
             pass --run RUN_ID or --socket PATH)"
        )));
    };
    let me = tools::Me {
        agent: args.agent.or_else(|| env("AGENT_RELAY_NAME")),
        step: args.step.or_else(|| env("AGENT_RELAY_STEP")),
    };
    // An agent's server speaks with the agent's token, never with the owner's from the
    // run directory (a CLI that keeps the token from its MCP servers gets errors that
    // say so, not the owner's rights).
    let token = match env(relay_messaging::access::TOKEN_ENV).filter(|t| !t.is_empty()) {
        Some(t) => Some(t),
        None if env("AGENT_RELAY_NAME").is_some() => None,
        None => relay_messaging::access::client_token(run_dir.as_deref()),
    };
    let mut socket = Socket {
        token,
        path,
        client: None,
    };
    let instructions = format!(
        "Tools of the agent-relay run {}{}: message the other agents (send, inbox, agents), use the \
         run's shared board (board_get, board_set), ask a person (ask_human) and report your step's \
         result when you are finished (report_done).",
        env("AGENT_RELAY_RUN_ID").unwrap_or_else(|| "you are part of".into()),
        me.agent
            .as_deref()
            .map(|a| format!(" (you are {a})"))
            .unwrap_or_default(),
    );
    let mut session = protocol::Protocol::new(
        "agent-relay",
        env!("CARGO_PKG_VERSION"),
        instructions,
        tools::definitions(),
    );
    serve(&mut session, &me, &mut socket)
}

/// Answers the client on stdin/stdout until it closes stdin.
fn serve(
    session: &mut protocol::Protocol,
    me: &tools::Me,
    backend: &mut dyn tools::Backend,
) -> CliResult {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| CliError::runtime(format!("cannot read from the MCP client: {e}")))?;
        if n == 0 {
            return Ok(Exit::Success);
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let answer = if n > MAX_LINE {
            // The rest of an overlong line is read and dropped with it.
            while !line.ends_with(b"\n") {
                line.clear();
                let more = (&mut input)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .unwrap_or(0);
                if more == 0 {
                    break;
                }
            }
            Some(serde_json::json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32600, "message": format!("message longer than {MAX_LINE} bytes")}}))
        } else {
            match session.handle(text.trim_end()) {
                protocol::Handled::Reply(v) => Some(v),
                protocol::Handled::Nothing => None,
                protocol::Handled::Call {
                    id,
                    name,
                    arguments,
                } => {
                    let result = tools::call(&name, &arguments, me, backend);
                    Some(session.tool_result(id, result))
                }
            }
        };
        if let Some(v) = answer {
            let mut out = stdout.lock();
            let written = serde_json::to_writer(&mut out, &v)
                .map_err(std::io::Error::other)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            if written.is_err() {
                // The client is gone.
                return Ok(Exit::Success);
            }
        }
    }
}
