//! The script language: `[[fake:CMD]]` / `[[fake:CMD=ARG]]` markers in the task text, and
//! the actions they trigger, shared by one-shot and TUI mode.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const OPEN: &str = "[[fake:";
const CLOSE: &str = "]]";

/// How the final `/exit` of a TUI turn is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ExitStyle {
    #[default]
    Plain,
    Color,
    Spinner,
    Glyph,
}

/// One parsed marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Marker {
    Say(String),
    EchoTask,
    /// Reply with the tasks this conversation was given before (`recall: a | b`).
    Recall,
    Stderr(String),
    Sleep(u64),
    Exit(i32),
    Crash,
    IgnoreTerm,
    Child(u64),
    Write {
        path: String,
        content: String,
    },
    FailOnce(String),
    Count(String),
    NoExit,
    ExitStyle(ExitStyle),
    ObeyNudge,
    WaitMessages(u32),
    Send {
        to: String,
        text: String,
    },
    Relay {
        to: String,
        text: String,
    },
    Inbox,
    /// `agent-relay task ...`: mark a checklist item.
    Task(Vec<String>),
    /// Mark done the first of these checklist items this fake has not marked yet.
    TaskNext(Vec<String>),
    Nth {
        key: String,
        options: Vec<String>,
        agent: Option<String>,
    },
    Emit(String),
    SayFor {
        agent: String,
        text: String,
    },
    ExitFor {
        agent: String,
        code: i32,
    },
    /// Report tokens used (structured one-shot output only), as one more model turn.
    Usage {
        input: u64,
        output: u64,
    },
    /// Print the CLI's own "rate or usage limit reached" message (with a reset that many
    /// seconds from now, or none) and exit 1; with a key, only on the first run with it.
    RateLimit {
        key: Option<String>,
        resets_in: Option<u64>,
    },
    /// Call a tool of the MCP server this CLI was given (`agent-relay`), as the real
    /// CLI's model would, and reply with its result: `mcp TOOL: TEXT` (or `mcp TOOL
    /// error: TEXT`).
    Mcp {
        tool: String,
        args: serde_json::Value,
    },
    /// Start the MCP server and list its tools: `mcp tools (VERSION): a, b, ...`.
    McpTools,
}

/// The CLI the fake agent plays, for what differs per CLI inside a script.
static PLAYING: std::sync::OnceLock<crate::argv::Cli> = std::sync::OnceLock::new();

/// The MCP server `agent-relay` this invocation was given, if any.
static MCP: std::sync::OnceLock<Option<crate::mcp_client::ServerCommand>> =
    std::sync::OnceLock::new();

/// Records the MCP server this invocation was given.
pub(crate) fn set_mcp(server: Option<crate::mcp_client::ServerCommand>) {
    let _ = MCP.set(server);
}

/// Records which CLI the fake agent plays.
pub(crate) fn set_cli(cli: crate::argv::Cli) {
    let _ = PLAYING.set(cli);
}

/// Each CLI's own words for a provider limit, with its reset time the way that CLI gives
/// it, and whether it prints them on stdout (else stderr).
pub(crate) fn limit_message(cli: crate::argv::Cli, resets_in: Option<u64>) -> (bool, String) {
    use crate::argv::Cli;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match (cli, resets_in) {
        (Cli::Claude, Some(s)) => (true, format!("Claude AI usage limit reached|{}", now + s)),
        (Cli::Claude, None) => (
            true,
            r#"API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#.into(),
        ),
        (Cli::Codex, Some(s)) => (
            false,
            format!("ERROR: You've hit your usage limit. Upgrade to Pro or try again in {s} seconds."),
        ),
        (Cli::Codex, None) => (false, "ERROR: exceeded retry limit, last status: 429 Too Many Requests".into()),
        (Cli::Gemini, Some(s)) => (
            false,
            format!("[API Error: You exceeded your current quota (Quota exceeded for metric generate_content_requests). Please retry in {s}s.]"),
        ),
        (Cli::Gemini, None) => (false, "[API Error: got status: 429 RESOURCE_EXHAUSTED]".into()),
        (Cli::Opencode, Some(s)) => (
            false,
            format!("AI_APICallError: Rate limit reached for requests. Please try again in {s}s."),
        ),
        (_, Some(s)) => (false, format!("Error: HTTP 429 Too Many Requests (retry after {s} seconds)")),
        (_, None) => (false, "Error: HTTP 429 Too Many Requests".into()),
    }
}

/// The TUI-only settings a script carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) no_exit: bool,
    pub(crate) exit_style: ExitStyle,
    pub(crate) obey_nudge: bool,
    /// Stay on after the task until this many relay messages have arrived, then `/exit`.
    pub(crate) wait_messages: Option<u32>,
}

impl Flags {
    pub(crate) fn of(markers: &[Marker]) -> Flags {
        let mut f = Flags::default();
        f.absorb(markers);
        f
    }

    /// Adds the settings of a later message on top of these.
    pub(crate) fn absorb(&mut self, markers: &[Marker]) {
        for m in markers {
            match m {
                Marker::NoExit => self.no_exit = true,
                Marker::ObeyNudge => self.obey_nudge = true,
                Marker::WaitMessages(n) => {
                    self.no_exit = true;
                    self.wait_messages = Some(*n);
                }
                Marker::ExitStyle(s) => self.exit_style = *s,
                _ => {}
            }
        }
    }
}

/// Turns the two characters `\n` into a line break.
pub(crate) fn unescape(text: &str) -> String {
    text.replace("\\n", "\n")
}

/// Finds every marker in `text`, in order. The error is the message to print.
pub(crate) fn parse(text: &str) -> Result<Vec<Marker>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let body_and_tail = &rest[start + OPEN.len()..];
        let Some(end) = body_and_tail.find(CLOSE) else {
            return Err(format!(
                "fake-agent: unterminated marker {}",
                &rest[start..]
            ));
        };
        let body = &body_and_tail[..end];
        rest = &body_and_tail[end + CLOSE.len()..];
        let (cmd, arg) = match body.split_once('=') {
            Some((c, a)) => (c, Some(a)),
            None => (body, None),
        };
        out.push(marker(cmd, arg)?);
    }
    Ok(out)
}

fn marker(cmd: &str, arg: Option<&str>) -> Result<Marker, String> {
    let bad = |why: &str| {
        Err(format!(
            "fake-agent: bad marker [[fake:{cmd}{}]]: {why}",
            arg.map(|a| format!("={a}")).unwrap_or_default()
        ))
    };
    let number = |a: Option<&str>| a.and_then(|a| a.trim().parse::<u64>().ok());
    let split = |a: &str| -> Option<(String, String)> {
        let (to, text) = a.split_once(':')?;
        (!to.is_empty()).then(|| (to.to_string(), text.to_string()))
    };
    let key = |a: Option<&str>| a.filter(|k| !k.is_empty()).map(|k| k.replace('/', "_"));
    let takes_arg = matches!(
        cmd,
        "say"
            | "stderr"
            | "sleep"
            | "exit"
            | "child"
            | "write"
            | "fail-once"
            | "count"
            | "exit-style"
            | "wait-messages"
            | "send"
            | "task"
            | "task-next"
            | "relay"
            | "nth"
            | "nth-for"
            | "emit"
            | "say-for"
            | "exit-for"
            | "usage"
            | "rate-limit"
            | "rate-limit-once"
            | "mcp"
    );
    let no_arg = matches!(
        cmd,
        "echo-task"
            | "crash"
            | "ignore-term"
            | "no-exit"
            | "obey-nudge"
            | "inbox"
            | "recall"
            | "mcp-tools"
    );
    if !takes_arg && !no_arg {
        return Err(format!("fake-agent: unknown marker {cmd}"));
    }
    if takes_arg && arg.is_none() {
        return bad("needs =ARG");
    }
    if no_arg && arg.is_some() {
        return bad("takes no argument");
    }
    let a = arg.unwrap_or_default();
    Ok(match cmd {
        "say" => Marker::Say(unescape(a)),
        "echo-task" => Marker::EchoTask,
        "recall" => Marker::Recall,
        "stderr" => Marker::Stderr(unescape(a)),
        "sleep" => match number(arg) {
            Some(ms) => Marker::Sleep(ms),
            None => return bad("expected milliseconds"),
        },
        "exit" => match a.trim().parse::<i32>() {
            Ok(code) => Marker::Exit(code),
            Err(_) => return bad("expected an exit code"),
        },
        "crash" => Marker::Crash,
        "ignore-term" => Marker::IgnoreTerm,
        "child" => match number(arg) {
            Some(ms) => Marker::Child(ms),
            None => return bad("expected milliseconds"),
        },
        "write" => {
            let (path, content) = match a.split_once(':') {
                Some((p, c)) => (p, unescape(c)),
                None => (a, "written by fake-agent\n".to_string()),
            };
            if path.is_empty() {
                return bad("expected a path");
            }
            Marker::Write {
                path: path.to_string(),
                content,
            }
        }
        "fail-once" => match key(arg) {
            Some(k) => Marker::FailOnce(k),
            None => return bad("expected a key"),
        },
        "count" => match key(arg) {
            Some(k) => Marker::Count(k),
            None => return bad("expected a key"),
        },
        "no-exit" => Marker::NoExit,
        "exit-style" => Marker::ExitStyle(match a {
            "plain" => ExitStyle::Plain,
            "color" => ExitStyle::Color,
            "spinner" => ExitStyle::Spinner,
            "glyph" => ExitStyle::Glyph,
            _ => return bad("expected plain, color, spinner or glyph"),
        }),
        "obey-nudge" => Marker::ObeyNudge,
        "wait-messages" => match number(arg).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Marker::WaitMessages(n),
            None => return bad("expected a number of messages"),
        },
        "send" => match split(a) {
            Some((to, text)) => Marker::Send { to, text },
            None => return bad("expected NAME:TEXT"),
        },
        "task" => match a.splitn(3, ':').collect::<Vec<_>>().as_slice() {
            ["done", id] => Marker::Task(vec!["task".into(), "done".into(), (*id).into()]),
            ["blocked", id, reason] => Marker::Task(vec![
                "task".into(),
                "blocked".into(),
                (*id).into(),
                "--reason".into(),
                (*reason).into(),
            ]),
            _ => return bad("expected done:ID or blocked:ID:REASON"),
        },
        "task-next" => Marker::TaskNext(a.split(',').map(|i| i.trim().to_owned()).collect()),
        "relay" => match split(a) {
            Some((to, text)) => Marker::Relay {
                to,
                text: unescape(&text),
            },
            None => return bad("expected NAME:TEXT"),
        },
        "emit" => Marker::Emit(a.to_string()),
        "nth" => match split(a) {
            Some((k, options)) => Marker::Nth {
                key: k.replace('/', "_"),
                options: options.split('|').map(unescape).collect(),
                agent: None,
            },
            None => return bad("expected KEY:FIRST|SECOND|..."),
        },
        "nth-for" => match split(a).and_then(|(agent, rest)| Some((agent, split(&rest)?))) {
            Some((agent, (k, options))) => Marker::Nth {
                key: k.replace('/', "_"),
                options: options.split('|').map(unescape).collect(),
                agent: Some(agent),
            },
            None => return bad("expected AGENT:KEY:FIRST|SECOND|..."),
        },
        "usage" => match a
            .split_once(':')
            .and_then(|(i, o)| Some((i.trim().parse().ok()?, o.trim().parse().ok()?)))
        {
            Some((input, output)) => Marker::Usage { input, output },
            None => return bad("expected INPUT:OUTPUT token counts"),
        },
        "rate-limit" | "rate-limit-once" => {
            let (key, secs) = match (cmd, a.split_once(':')) {
                ("rate-limit", _) => (None, a),
                (_, Some((k, s))) => (Some(k.to_string()), s),
                (_, None) => (Some(a.to_string()), ""),
            };
            if key.as_deref().is_some_and(str::is_empty) {
                return bad("expected KEY or KEY:SECONDS");
            }
            let resets_in = match secs.trim() {
                "" | "none" => None,
                n => match n.parse() {
                    Ok(n) => Some(n),
                    Err(_) => return bad("expected seconds to the reset, or none"),
                },
            };
            Marker::RateLimit { key, resets_in }
        }
        "mcp" => {
            let (tool, json) = a.split_once(' ').unwrap_or((a, "{}"));
            let Ok(args) = serde_json::from_str::<serde_json::Value>(json) else {
                return bad("expected TOOL or TOOL {json arguments}");
            };
            if tool.is_empty() || !args.is_object() {
                return bad("expected TOOL or TOOL {json arguments}");
            }
            Marker::Mcp {
                tool: tool.to_string(),
                args,
            }
        }
        "mcp-tools" => Marker::McpTools,
        "say-for" => match split(a) {
            Some((agent, text)) => Marker::SayFor {
                agent,
                text: unescape(&text),
            },
            None => return bad("expected AGENT:TEXT"),
        },
        "exit-for" => match split(a).and_then(|(agent, c)| Some((agent, c.trim().parse().ok()?))) {
            Some((agent, code)) => Marker::ExitFor { agent, code },
            None => return bad("expected AGENT:CODE"),
        },
        _ => Marker::Inbox,
    })
}

/// Where a script's effects go; one-shot and TUI mode print and exit differently.
pub(crate) trait Host {
    /// Prints a reply (may span lines).
    fn reply(&mut self, text: &str);
    /// Prints on stderr.
    fn stderr(&mut self, text: &str);
    /// Sleeps; a TUI wakes up early to exit on SIGTERM.
    fn sleep(&mut self, ms: u64);
    /// Ends the process normally with `code`.
    fn exit(&mut self, code: i32) -> !;
    /// Ends the process with SIGABRT.
    fn crash(&mut self) -> !;
    /// Ignores SIGTERM and SIGHUP from now on.
    fn ignore_term(&mut self);
    /// Reports tokens used by one more model turn (where the output reports usage).
    fn usage(&mut self, _input: u64, _output: u64) {}
    /// Shows the CLI's own limit message (on stdout or stderr): a one-shot CLI then exits
    /// 1; a TUI shows it and waits at its prompt, as the real ones do.
    fn limit_reached(&mut self, on_stdout: bool, text: &str) {
        if on_stdout {
            self.reply(text);
        } else {
            self.stderr(text);
        }
        self.exit(1);
    }
}

/// Runs `markers` of `task` in order.
pub(crate) fn run(markers: &[Marker], task: &str, host: &mut dyn Host) {
    // Conversations are kept only where the test named a state directory, so no run
    // leaves files in the working tree.
    let earlier = match std::env::var_os("FAKE_AGENT_STATE_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let earlier = crate::conversation::history(&dir);
            crate::conversation::remember(&dir, task);
            earlier
        }
        None => Vec::new(),
    };
    for m in markers {
        match m {
            Marker::Say(text) => host.reply(text),
            Marker::Usage { input, output } => host.usage(*input, *output),
            Marker::RateLimit { key, resets_in } => {
                if let Some(k) = key {
                    let dir = state_dir();
                    let path = dir.join(format!("rate-limit-once-{k}"));
                    let first = fs::create_dir_all(&dir)
                        .and_then(|()| OpenOptions::new().write(true).create_new(true).open(&path));
                    if first.is_err() {
                        continue;
                    }
                }
                let cli = PLAYING.get().copied().unwrap_or(crate::argv::Cli::Claude);
                let (stdout, text) = limit_message(cli, *resets_in);
                host.limit_reached(stdout, &text);
                // The turn ends at the limit.
                return;
            }
            // Echoed markers are defused so they do not act again in the next agent that
            // reads this output; `emit` passes one on on purpose.
            Marker::EchoTask => host.reply(&task.replace(OPEN, "[fake:")),
            Marker::Recall if earlier.is_empty() => host.reply("recall: (nothing)"),
            Marker::Recall => host.reply(&format!("recall: {}", earlier.join(" | "))),
            Marker::Emit(marker) => host.reply(&format!("{OPEN}{marker}{CLOSE}")),
            Marker::Stderr(text) => host.stderr(text),
            Marker::Sleep(ms) => host.sleep(*ms),
            Marker::Exit(code) => host.exit(*code),
            Marker::Crash => host.crash(),
            Marker::IgnoreTerm => host.ignore_term(),
            Marker::Child(ms) => spawn_sleeper(*ms, host),
            Marker::Write { path, content } => {
                if let Err(e) = write_file(Path::new(path), content) {
                    host.stderr(&format!("fake-agent: cannot write {path}: {e}"));
                    host.exit(1);
                }
            }
            Marker::FailOnce(key) => fail_once(key, host),
            Marker::Count(key) => {
                let path = state_dir().join(format!("count-{key}"));
                let line = format!("{}\n", std::process::id());
                if let Err(e) = append_line(&path, &line) {
                    host.stderr(&format!("fake-agent: cannot count {key}: {e}"));
                    host.exit(1);
                }
            }
            Marker::NoExit | Marker::ExitStyle(_) | Marker::ObeyNudge => {}
            // TUI settings, read from the flags.
            Marker::WaitMessages(_) => {}
            Marker::Send { to, text } => {
                let args = ["send", "--to", to.as_str(), text.as_str()];
                if let Some(out) = run_relay_tool(&args, host)
                    && !out.ok
                {
                    host.stderr(out.stderr.trim_end());
                }
            }
            Marker::Task(args) => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                if let Some(out) = run_relay_tool(&args, host)
                    && !out.ok
                {
                    host.stderr(out.stderr.trim_end());
                }
            }
            Marker::TaskNext(ids) => {
                let dir = state_dir();
                if let Some(id) = ids
                    .iter()
                    .find(|id| !dir.join(format!("task-next-{id}")).exists())
                {
                    let _ = fs::create_dir_all(&dir);
                    let _ = fs::write(dir.join(format!("task-next-{id}")), "");
                    if let Some(out) = run_relay_tool(&["task", "done", id], host)
                        && !out.ok
                    {
                        host.stderr(out.stderr.trim_end());
                    }
                }
            }
            Marker::Relay { to, text } => host.reply(&format!("->relay:{to} {text}")),
            Marker::Mcp { tool, args } => mcp_call(Some((tool, args)), host),
            Marker::McpTools => mcp_call(None, host),
            Marker::Nth { agent: Some(a), .. }
                if std::env::var("AGENT_RELAY_NAME").ok().as_deref() != Some(a.as_str()) => {}
            Marker::Nth { key, options, .. } => {
                // The n-th run with this key says the n-th option (the last one repeats).
                let path = state_dir().join(format!("nth-{key}"));
                let seen = fs::read_to_string(&path)
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                if let Err(e) = append_line(&path, &format!("{}\n", std::process::id())) {
                    host.stderr(&format!("fake-agent: cannot count {key}: {e}"));
                    host.exit(1);
                }
                if let Some(text) = options.get(seen.min(options.len().saturating_sub(1))) {
                    host.reply(text);
                }
            }
            Marker::SayFor { agent, text } => {
                if std::env::var("AGENT_RELAY_NAME").ok().as_deref() == Some(agent) {
                    host.reply(text);
                }
            }
            Marker::ExitFor { agent, code } => {
                if std::env::var("AGENT_RELAY_NAME").ok().as_deref() == Some(agent) {
                    host.exit(*code);
                }
            }
            Marker::Inbox => {
                if let Some(out) = run_relay_tool(&["inbox", "--wait", "10"], host) {
                    if !out.ok {
                        host.stderr(out.stderr.trim_end());
                    }
                    let text = out.stdout.trim_end_matches(['\n', '\r']);
                    if !text.is_empty() {
                        host.reply(text);
                    }
                }
            }
        }
    }
}

/// Starts the MCP server this CLI was given and calls `call` (a tool and its
/// arguments), or lists the tools; replies with what came back.
fn mcp_call(call: Option<(&String, &serde_json::Value)>, host: &mut dyn Host) {
    let Some(Some(server)) = MCP.get() else {
        host.stderr("fake-agent: no MCP server `agent-relay` was given to this CLI");
        host.reply("mcp: no server");
        return;
    };
    let done = crate::mcp_client::McpClient::start(server, "2025-06-18").and_then(|mut c| {
        let names = c.tool_names()?;
        match call {
            None => Ok(format!(
                "mcp tools ({}): {}",
                c.initialized["protocolVersion"].as_str().unwrap_or("?"),
                names.join(", ")
            )),
            Some((tool, args)) => {
                if !names.contains(tool) {
                    return Ok(format!(
                        "mcp {tool} error: no such tool (tools: {})",
                        names.join(", ")
                    ));
                }
                let r = c.call(tool, args.clone())?;
                let how = if r.is_error { " error" } else { "" };
                Ok(format!("mcp {tool}{how}: {}", r.text))
            }
        }
    });
    match done {
        Ok(text) => host.reply(&text),
        Err(e) => {
            host.stderr(&format!("fake-agent: MCP server failed: {e}"));
            host.reply(&format!("mcp failed: {e}"));
        }
    }
}

fn write_file(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, content)
}

/// `$FAKE_AGENT_STATE_DIR`, or `.fake-agent-state` in the working directory.
pub(crate) fn state_dir() -> PathBuf {
    std::env::var_os("FAKE_AGENT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".fake-agent-state"))
}

fn fail_once(key: &str, host: &mut dyn Host) {
    let dir = state_dir();
    let path = dir.join(format!("fail-once-{key}"));
    let created = fs::create_dir_all(&dir)
        .and_then(|()| OpenOptions::new().write(true).create_new(true).open(&path));
    match created {
        Ok(_) => {
            host.reply(&format!("failing first attempt of {key}"));
            host.exit(1);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            host.stderr(&format!(
                "fake-agent: cannot record {}: {e}",
                path.display()
            ));
            host.exit(1);
        }
    }
}

/// Appends `line` with a single `write(2)` on an `O_APPEND` file, so lines written by
/// concurrent agents never interleave. Creates the parent directory.
pub(crate) fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(line.as_bytes())
}

/// Appends `start|end <AGENT_RELAY_STEP> <pid>` to `$FAKE_AGENT_LOG`, if set.
pub(crate) fn log_lifecycle(event: &str) {
    if let Some(path) = std::env::var_os("FAKE_AGENT_LOG") {
        let step = std::env::var("AGENT_RELAY_STEP").unwrap_or_else(|_| "-".into());
        let line = format!("{event} {step} {}\n", std::process::id());
        // Logging must not change the agent's behaviour, so a failure is ignored.
        let _ = append_line(Path::new(&path), &line);
    }
}

/// Starts `fake-agent --sleeper MS` in this process group and lets it run on unwaited,
/// like a build or dev server an agent leaves behind. Its stdio is /dev/null so it does
/// not hold the agent's output pipe open.
fn spawn_sleeper(ms: u64, host: &mut dyn Host) {
    let spawned = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("--sleeper")
            .arg(ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    });
    match spawned {
        // Dropping a Child neither waits for nor kills it.
        Ok(child) => drop(child),
        Err(e) => host.stderr(&format!("fake-agent: cannot spawn child: {e}")),
    }
}

struct ToolOutput {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `$AGENT_RELAY_BIN ARGS...` to completion. Waiting goes through `host.sleep` so
/// a TUI can still exit on SIGTERM meanwhile. `None` if it could not be started.
fn run_relay_tool(args: &[&str], host: &mut dyn Host) -> Option<ToolOutput> {
    let Some(bin) = std::env::var_os("AGENT_RELAY_BIN") else {
        host.stderr("fake-agent: AGENT_RELAY_BIN is not set");
        return None;
    };
    let mut child = match Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            host.stderr(&format!(
                "fake-agent: cannot run {}: {e}",
                Path::new(&bin).display()
            ));
            return None;
        }
    };
    let stdout = drain(&mut child, true);
    let stderr = drain(&mut child, false);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => host.sleep(10),
            Err(_) => break None,
        }
    };
    Some(ToolOutput {
        ok: status.is_some_and(|s| s.success()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads a child's stdout or stderr on a thread, so a full pipe never blocks it.
fn drain(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<String> {
    let pipe: Option<Box<dyn Read + Send>> = if stdout {
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>)
    } else {
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>)
    };
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_order_with_free_text_around() {
        let m = parse("do [[fake:say=a: b]] then [[fake:sleep=5]][[fake:echo-task]] end").unwrap();
        assert_eq!(
            m,
            [
                Marker::Say("a: b".into()),
                Marker::Sleep(5),
                Marker::EchoTask
            ]
        );
        assert_eq!(parse("no markers [fake:say=x]").unwrap(), []);
    }

    #[test]
    fn arguments_keep_colons_spaces_and_equals() {
        assert_eq!(
            parse("[[fake:write=out/a.txt:k=v: x\\ny]]").unwrap(),
            [Marker::Write {
                path: "out/a.txt".into(),
                content: "k=v: x\ny".into()
            }]
        );
        assert_eq!(
            parse("[[fake:write=a.txt]]").unwrap(),
            [Marker::Write {
                path: "a.txt".into(),
                content: "written by fake-agent\n".into()
            }]
        );
        assert_eq!(
            parse("[[fake:send=bob:hi: there]]").unwrap(),
            [Marker::Send {
                to: "bob".into(),
                text: "hi: there".into()
            }]
        );
        assert_eq!(
            parse("[[fake:say=one\\ntwo]]").unwrap(),
            [Marker::Say("one\ntwo".into())]
        );
    }

    #[test]
    fn unknown_and_malformed_markers_are_errors() {
        assert_eq!(
            parse("[[fake:dance]]").unwrap_err(),
            "fake-agent: unknown marker dance"
        );
        assert_eq!(
            parse("[[fake:dance=x]]").unwrap_err(),
            "fake-agent: unknown marker dance"
        );
        for bad in [
            "[[fake:sleep=soon]]",
            "[[fake:exit]]",
            "[[fake:crash=1]]",
            "[[fake:exit-style=bold]]",
            "[[fake:send=nobody]]",
            "[[fake:say=unterminated",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn flags_collect_tui_settings() {
        let m = parse("[[fake:no-exit]][[fake:exit-style=glyph]][[fake:obey-nudge]]").unwrap();
        assert_eq!(
            Flags::of(&m),
            Flags {
                no_exit: true,
                exit_style: ExitStyle::Glyph,
                obey_nudge: true,
                wait_messages: None,
            }
        );
        assert_eq!(Flags::of(&[]), Flags::default());
    }
}
