//! The one table of per-CLI knowledge: how each coding-agent CLI is invoked one-shot and
//! interactively, which flags let it work unattended, how it takes a model, what its
//! prompt looks like when it is ready for input, and how it is asked to quit.
//!
//! Everything else in the project asks this table; nothing else spells out a CLI's argv.

use relay_spec::Cli;

/// How a one-shot run of a CLI is handed its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskInput {
    /// On stdin: any size, and nothing of it in the process table. Checked against the
    /// real CLI where the profile says `verified`.
    Stdin,
    /// As an argument: the only way the CLI is known to take it. A task too big for one
    /// argument ([`ARG_TASK_MAX`]) goes into a private file the argument points to.
    Argument,
}

/// Largest task passed as one argument (Linux refuses single arguments over 128 KiB).
pub const ARG_TASK_MAX: usize = 64 * 1024;

/// The name of the private file, in the step's directory, a task too big for one
/// argument is written to; the argument names the file's path.
pub const TASK_FILE: &str = "task.md";

/// A one-shot invocation: the argv (without the program) and what goes to stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneShot {
    /// Arguments.
    pub args: Vec<String>,
    /// The task, when the CLI reads it from stdin.
    pub stdin: Option<String>,
}

/// Static facts about one agent CLI.
#[derive(Debug, Clone, Copy)]
pub struct CliProfile {
    /// The CLI this profile describes.
    pub cli: Cli,
    /// Executable name looked up on `PATH`.
    pub program: &'static str,
    /// Flags that let the CLI act without asking for permission, in both modes.
    pub bypass_flags: &'static [&'static str],
    /// The flag that selects a model (`--model`, `-m`).
    pub model_flag: &'static str,
    /// Substrings of the rendered screen that mean the TUI is ready to take input.
    pub ready_cues: &'static [&'static str],
    /// What to type to leave the interactive session.
    pub quit_command: &'static str,
    /// Glyphs a reply line may start with on screen (`●`, `•`, `✦`).
    pub reply_glyphs: &'static [&'static str],
    /// Prompt glyphs of the CLI's input line beyond the common ones (`❯ › > ┃`), each
    /// followed by a space: gemini shows `*` in YOLO mode.
    pub prompt_glyphs: &'static [&'static str],
    /// Starts of the CLI's own status rows in the conversation (timings, token counts):
    /// interface, not the agent's reply.
    pub status_rows: &'static [&'static str],
    /// Text the CLI shows while it cannot take input yet even though its prompt is drawn
    /// (gemini initialises after the first prompt, lists what is typed meanwhile as
    /// queued and merges it into one prompt): no task or message is typed while it is
    /// shown. Only text that goes away again belongs here (gemini's "Initializing..."
    /// line stays in the conversation).
    pub busy_cues: &'static [&'static str],
    /// Flags that put the CLI in its own read-only mode, used instead of the bypass flags
    /// for `readonly` agents (on top of the kernel's enforcement); empty when it has none.
    pub readonly_flags: &'static [&'static str],
    /// Interactive sessions: read-only flags when they differ from the one-shot ones.
    pub readonly_interactive_flags: Option<&'static [&'static str]>,
    /// The CLI's own state (settings, sessions, caches): writable whatever an agent's
    /// file rules say, so the CLI works. `~/` is the home directory; a trailing `/` marks
    /// a directory (created when missing).
    pub state_paths: &'static [&'static str],
    /// How the CLI reports token usage one-shot: the flags that ask for it and the shape
    /// of what it prints; `None` when it does not.
    pub usage: Option<(&'static [&'static str], UsageFormat)>,
    /// Case-insensitive regular expressions for the CLI's own "rate or usage limit
    /// reached" messages (beyond an HTTP 429, which every CLI is checked for).
    pub rate_limit_patterns: &'static [&'static str],
    /// How a one-shot run takes its task.
    pub task_input: TaskInput,
    /// How the CLI is given an MCP server for one run, without touching the user's own
    /// settings (see [`mcp_setup`]).
    pub mcp: McpWiring,
}

pub use crate::usage::UsageFormat;

const PROFILES: [CliProfile; 10] = [
    CliProfile {
        cli: Cli::Claude,
        program: "claude",
        bypass_flags: &["--dangerously-skip-permissions"],
        model_flag: "--model",
        ready_cues: &["bypass permissions on", "? for shortcuts"],
        quit_command: "/exit",
        status_rows: &["✻ "],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &["●"],
        readonly_flags: &["--permission-mode", "plan"],
        readonly_interactive_flags: None,
        state_paths: &[
            "~/.claude/",
            "~/.claude.json",
            "~/.claude.json.backup",
            "~/.cache/",
            "~/.npm/",
        ],
        usage: Some((
            &["--output-format", "stream-json", "--verbose"],
            UsageFormat::ClaudeStream,
        )),
        rate_limit_patterns: &[
            r"usage limit reached",
            r"(5-hour|weekly|session) limit reached",
            r"rate[_ ]limit(ed|_error)?\b",
        ],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::ClaudeConfigArg,
    },
    CliProfile {
        cli: Cli::Codex,
        program: "codex",
        bypass_flags: &["--dangerously-bypass-approvals-and-sandbox"],
        model_flag: "--model",
        ready_cues: &["? for shortcuts"],
        quit_command: "/exit",
        status_rows: &["Worked for "],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &["•"],
        readonly_flags: &["--sandbox", "read-only"],
        readonly_interactive_flags: Some(&[
            "--sandbox",
            "read-only",
            "--ask-for-approval",
            "never",
        ]),
        state_paths: &["~/.codex/", "~/.cache/"],
        usage: Some((&["--json"], UsageFormat::CodexJson)),
        rate_limit_patterns: &[
            r"you've hit your usage limit",
            r"rate limit (reached|exceeded)",
            r"too many requests",
        ],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::CodexOverrides,
    },
    CliProfile {
        cli: Cli::Gemini,
        program: "gemini",
        bypass_flags: &["--yolo"],
        model_flag: "--model",
        ready_cues: &["Type your message"],
        quit_command: "/quit",
        status_rows: &["? for shortcuts", "YOLO Ctrl+Y"],
        busy_cues: &["Queued (press"],
        prompt_glyphs: &["*"],
        reply_glyphs: &["✦"],
        readonly_flags: &["--approval-mode", "plan"],
        readonly_interactive_flags: None,
        state_paths: &["~/.gemini/", "~/.cache/", "~/.npm/"],
        usage: Some((
            &["--output-format", "stream-json"],
            UsageFormat::GeminiStream,
        )),
        rate_limit_patterns: &[r"quota exceeded", r"resource[_ ]exhausted", r"rate limit"],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::GeminiSystemSettings,
    },
    CliProfile {
        cli: Cli::Aider,
        program: "aider",
        bypass_flags: &["--yes-always", "--no-git"],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/exit",
        status_rows: &["Tokens: "],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &["--yes-always", "--no-git", "--dry-run"],
        readonly_interactive_flags: None,
        state_paths: &["~/.aider/", "~/.cache/"],
        usage: None,
        rate_limit_patterns: &[r"ratelimiterror", r"rate limit"],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::Unsupported,
    },
    CliProfile {
        cli: Cli::Goose,
        program: "goose",
        bypass_flags: &[],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/exit",
        status_rows: &[],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &[],
        readonly_interactive_flags: None,
        state_paths: &[
            "~/.config/goose/",
            "~/.local/share/goose/",
            "~/.local/state/goose/",
            "~/.cache/",
        ],
        usage: None,
        rate_limit_patterns: &[r"rate limit"],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::GooseExtension,
    },
    CliProfile {
        cli: Cli::Opencode,
        program: "opencode",
        bypass_flags: &[],
        model_flag: "--model",
        ready_cues: &["ctrl+p commands"],
        quit_command: "/exit",
        status_rows: &["▣ "],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &["--agent", "plan"],
        readonly_interactive_flags: None,
        state_paths: &[
            "~/.config/opencode/",
            "~/.local/share/opencode/",
            "~/.local/state/opencode/",
            "~/.cache/",
        ],
        usage: Some((&["--format", "json"], UsageFormat::OpencodeJson)),
        rate_limit_patterns: &[r"rate limit", r"too many requests"],
        task_input: TaskInput::Stdin,
        mcp: McpWiring::OpencodeConfigContent,
    },
    CliProfile {
        cli: Cli::Droid,
        program: "droid",
        bypass_flags: &[],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/exit",
        status_rows: &[],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &[],
        readonly_interactive_flags: None,
        state_paths: &["~/.factory/", "~/.cache/"],
        usage: None,
        rate_limit_patterns: &[r"rate limit"],
        task_input: TaskInput::Argument,
        mcp: McpWiring::Unsupported,
    },
    // Cursor's CLI, under each name the format accepts for it.
    CliProfile {
        cli: Cli::Cursor,
        program: "cursor-agent",
        bypass_flags: &["--force"],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/quit",
        status_rows: &[],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &[],
        readonly_interactive_flags: None,
        state_paths: &["~/.cursor/", "~/.config/cursor/", "~/.cache/"],
        usage: None,
        rate_limit_patterns: &[r"rate limit", r"usage limit"],
        task_input: TaskInput::Argument,
        mcp: McpWiring::Unsupported,
    },
    // Cursor's CLI, under each name the format accepts for it.
    CliProfile {
        cli: Cli::CursorAgent,
        program: "cursor-agent",
        bypass_flags: &["--force"],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/quit",
        status_rows: &[],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &[],
        readonly_interactive_flags: None,
        state_paths: &["~/.cursor/", "~/.config/cursor/", "~/.cache/"],
        usage: None,
        rate_limit_patterns: &[r"rate limit", r"usage limit"],
        task_input: TaskInput::Argument,
        mcp: McpWiring::Unsupported,
    },
    // Cursor's CLI, under each name the format accepts for it.
    CliProfile {
        cli: Cli::Agent,
        program: "cursor-agent",
        bypass_flags: &["--force"],
        model_flag: "--model",
        ready_cues: &[],
        quit_command: "/quit",
        status_rows: &[],
        busy_cues: &[],
        prompt_glyphs: &[],
        reply_glyphs: &[],
        readonly_flags: &[],
        readonly_interactive_flags: None,
        state_paths: &["~/.cursor/", "~/.config/cursor/", "~/.cache/"],
        usage: None,
        rate_limit_patterns: &[r"rate limit", r"usage limit"],
        task_input: TaskInput::Argument,
        mcp: McpWiring::Unsupported,
    },
];

/// The profile of `cli`.
pub fn profile(cli: Cli) -> &'static CliProfile {
    // The table holds one entry per variant; the fallback is unreachable by construction.
    PROFILES
        .iter()
        .find(|p| p.cli == cli)
        .unwrap_or(&PROFILES[0])
}

/// How a CLI is told of one more MCP server (stdio), for one invocation only; the
/// user's own servers and settings stay as they are. The server learns the run and who
/// it speaks for from the environment the CLI passes on to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpWiring {
    /// claude: `--mcp-config JSON` (a file or the JSON itself), `{"mcpServers": {NAME:
    /// {"type": "stdio", "command", "args"}}}`, added to the user's servers (no
    /// `--strict-mcp-config`). Claude passes its whole environment on; its tools are
    /// named `mcp__NAME__TOOL` (`mcp__agent-relay__send`), and it shows the model a
    /// result's `structuredContent` rather than its text when both are there (checked
    /// with claude 2.1.197).
    ClaudeConfigArg,
    /// codex: `-c mcp_servers.NAME.command="..."`, `-c mcp_servers.NAME.args=[...]` and
    /// `-c mcp_servers.NAME.env_vars=[...]` (TOML values) on top of
    /// `~/.codex/config.toml`. Codex gives MCP servers only a few variables of its
    /// choosing plus those `env_vars` names. Codex 0.171 offers the model the server's
    /// tools as a Responses `namespace` tool `mcp__agent_relay` (the `-` made `_`)
    /// holding `send`, `inbox`, ...; results come back prefixed `Wall time: ...
    /// Output:`.
    CodexOverrides,
    /// gemini: `GEMINI_CLI_SYSTEM_SETTINGS_PATH` pointing at a settings file in the
    /// step's directory with `{"mcpServers": {NAME: {"command", "args", "trust":
    /// true}}}`; gemini merges `mcpServers` of the system, user and workspace settings
    /// (shallow merge), so the user's `~/.gemini` is read as before. A system settings
    /// file of the machine (`/etc/gemini-cli/settings.json`) is not read for these
    /// agents. Gemini passes its environment on unless its redaction is switched on.
    /// Gemini 0.61 names the tools `mcp_NAME_TOOL` (`mcp_agent-relay_send`) and wraps
    /// results in `<untrusted_context>`.
    GeminiSystemSettings,
    /// opencode: `OPENCODE_CONFIG_CONTENT`, inline JSON `{"mcp": {NAME: {"type": "local",
    /// "command": [...], "enabled": true}}}` merged last over the user's config (and
    /// over `OPENCODE_CONFIG`, which stays the user's; opencode 1.18 reads
    /// `OPENCODE_CONFIG_CONTENT` after every other config file). Its tools are named
    /// `NAME_TOOL` (`agent-relay_send`).
    OpencodeConfigContent,
    /// goose: `--with-extension "COMMAND ARGS"` for `run` and `session` (by goose's
    /// documentation; not checked against the real CLI).
    GooseExtension,
    /// No way known that leaves the user's settings alone (aider has no MCP client;
    /// Cursor's CLI and droid read MCP servers only from files in the project or the
    /// home directory).
    Unsupported,
}

/// The MCP server to give a CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// The server's name (`agent-relay`): claude prefixes its tools with it.
    pub name: String,
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The environment variables the server needs from the CLI's environment.
    pub env: Vec<String>,
    /// Values a CLI that keeps secrets from its MCP servers' environment must be given in
    /// the server's own settings: gemini drops every variable whose name looks like a
    /// secret (`TOKEN`, `KEY`, ...) and expands `$VAR` only from what is left.
    pub secrets: Vec<(String, String)>,
}

/// What an invocation needs for an MCP server: arguments to add (see
/// [`insert_mcp_args`]), environment variables, and a file to write first (its path and
/// contents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpSetup {
    /// Arguments.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// A file to write before the CLI starts.
    pub file: Option<(std::path::PathBuf, String)>,
}

/// The environment variables that name a file an MCP setup wrote ([`McpSetup::file`]):
/// a launcher on another machine needs that file there too.
pub const MCP_FILE_ENVS: &[&str] = &["GEMINI_CLI_SYSTEM_SETTINGS_PATH"];

/// How `cli` is given `server`, with any file it needs placed in `dir` (the step's
/// directory); `None` when the CLI cannot be given one.
pub fn mcp_setup(cli: Cli, server: &McpServer, dir: &std::path::Path) -> Option<McpSetup> {
    use serde_json::json;
    let name = &server.name;
    let mut full = vec![server.command.clone()];
    full.extend(server.args.iter().cloned());
    Some(match profile(cli).mcp {
        McpWiring::Unsupported => return None,
        McpWiring::ClaudeConfigArg => {
            let config = json!({"mcpServers": {name.as_str(): {
                "type": "stdio", "command": server.command, "args": server.args}}});
            McpSetup {
                args: vec!["--mcp-config".into(), config.to_string()],
                ..McpSetup::default()
            }
        }
        McpWiring::CodexOverrides => {
            // JSON strings and arrays of strings are TOML values too.
            let command = serde_json::Value::String(server.command.clone()).to_string();
            McpSetup {
                args: vec![
                    "-c".into(),
                    format!("mcp_servers.{name}.command={command}"),
                    "-c".into(),
                    format!("mcp_servers.{name}.args={}", json!(server.args)),
                    "-c".into(),
                    format!("mcp_servers.{name}.env_vars={}", json!(server.env)),
                ],
                ..McpSetup::default()
            }
        }
        McpWiring::GeminiSystemSettings => {
            let path = dir.join("gemini-settings.json");
            let env: serde_json::Map<String, serde_json::Value> = server
                .secrets
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let config = json!({"mcpServers": {name.as_str(): {
                "command": server.command, "args": server.args, "trust": true, "env": env}}});
            McpSetup {
                args: Vec::new(),
                env: vec![(MCP_FILE_ENVS[0].into(), path.display().to_string())],
                file: Some((path, config.to_string())),
            }
        }
        McpWiring::OpencodeConfigContent => {
            let config = json!({"$schema": "https://opencode.ai/config.json",
                "mcp": {name.as_str(): {"type": "local", "command": full, "enabled": true}}});
            McpSetup {
                env: vec![("OPENCODE_CONFIG_CONTENT".into(), config.to_string())],
                ..McpSetup::default()
            }
        }
        McpWiring::GooseExtension => {
            let line: Vec<String> = full
                .iter()
                .map(|a| relay_spec::template::shell_quote(a))
                .collect();
            McpSetup {
                args: vec!["--with-extension".into(), line.join(" ")],
                ..McpSetup::default()
            }
        }
    })
}

/// How a CLI is asked to run, beyond its task and model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Invocation {
    /// In its own read-only mode (its read-only flags instead of its bypass flags).
    pub readonly: bool,
    /// With structured output that reports token usage (one-shot), where it has one.
    pub usage: bool,
}

/// The permission flags of `cli` for `how`: its bypass flags, or its read-only flags.
fn permission_flags(p: &CliProfile, how: Invocation, interactive: bool) -> Vec<String> {
    let flags: &[&str] = match (how.readonly, interactive) {
        (false, _) => p.bypass_flags,
        (true, true) => p.readonly_interactive_flags.unwrap_or(p.readonly_flags),
        (true, false) => p.readonly_flags,
    };
    flags.iter().map(|s| s.to_string()).collect()
}

/// The flags that make `cli` report usage one-shot, when asked for and it has them.
fn usage_flags(p: &CliProfile, how: Invocation) -> Vec<String> {
    match (how.usage, p.usage) {
        (true, Some((flags, _))) => flags.iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The shape of `cli`'s one-shot output under `how`: structured (with usage), or text.
pub fn usage_format(cli: Cli, how: Invocation) -> Option<UsageFormat> {
    profile(cli).usage.filter(|_| how.usage).map(|(_, f)| f)
}

/// The invocation for a one-shot run of `task`.
///
/// Shapes follow each CLI's non-interactive mode, with the task on stdin where the CLI
/// reads it from there (checked with the real CLIs: claude 2.1, codex 0.171, gemini 0.61,
/// opencode 1.18, aider 0.86; goose by its documentation): `claude -p`, `codex exec -`,
/// `gemini` (stdin not a terminal), `opencode run`, `aider --message-file /dev/stdin
/// --yes-always --no-git`, `goose run --no-session -i -`; and as an argument where not:
/// `droid exec TASK`, `cursor-agent --force -p TASK`.
/// `how` picks the permission flags (bypass, or the CLI's read-only mode) and whether the
/// CLI is asked for its structured output with token usage.
pub fn oneshot_args(cli: Cli, model: Option<&str>, task: &str, how: Invocation) -> OneShot {
    oneshot_args_in(cli, model, task, how, None)
}

/// Which CLIs continue a conversation, and how: one-shot from the session id their
/// structured output names ([`crate::usage::Meter::session`]); interactively only where
/// a new session can be given an id of ours to resume later.
///
/// | CLI | one-shot | interactive |
/// |---|---|---|
/// | claude | `-p --resume ID` | `--session-id UUID`, then `--resume UUID` |
/// | codex | `exec resume [flags] ID -` | no (its TUI names no id) |
/// | gemini | `--resume ID` | no (0.61.0: a terminal started with `--session-id` and resumed with `--resume` is not sent the earlier turn, and redraws its `/exit`) |
/// | opencode | `run --session ID` | no |
/// | Cursor | `--resume ID -p` (from its documentation; not checked here) | no |
/// | aider, goose, droid | no | no |
///
/// Checked against claude 2.1.197, codex 0.171.0, gemini 0.61.0 and opencode 1.18.33:
/// the second run names the same id and the model is sent the first turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSupport {
    /// One-shot runs resume a session by its id.
    pub oneshot: bool,
    /// Interactive sessions start with an id given to them, and resume it.
    pub interactive: bool,
}

/// What `cli` can do with conversations.
pub fn session_support(cli: Cli) -> SessionSupport {
    match cli {
        Cli::Claude => SessionSupport {
            oneshot: true,
            interactive: true,
        },
        Cli::Codex | Cli::Gemini | Cli::Opencode | Cli::Cursor | Cli::CursorAgent | Cli::Agent => {
            SessionSupport {
                oneshot: true,
                interactive: false,
            }
        }
        Cli::Aider | Cli::Goose | Cli::Droid => SessionSupport {
            oneshot: false,
            interactive: false,
        },
    }
}

/// The conversation an interactive session is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionArg<'a> {
    /// A new conversation with this id (a UUID), so a later step can resume it.
    Start(&'a str),
    /// The conversation with this id, continued.
    Resume(&'a str),
}

/// [`oneshot_args`], continuing the conversation `resume` when the CLI can (see
/// [`session_support`]; ignored where it cannot).
pub fn oneshot_args_in(
    cli: Cli,
    model: Option<&str>,
    task: &str,
    how: Invocation,
    resume: Option<&str>,
) -> OneShot {
    let resume = resume.filter(|_| session_support(cli).oneshot);
    let p = profile(cli);
    let mut args: Vec<String> = Vec::new();
    // Cursor's CLI: `cursor-agent --force -p TASK [--model M]`.
    if cli.is_cursor() {
        args.extend(permission_flags(p, how, false));
        if let Some(id) = resume {
            args.extend(["--resume".to_string(), id.into()]);
        }
        args.extend(["-p".to_string(), task.into()]);
        if let Some(m) = model {
            args.extend([p.model_flag.to_string(), m.into()]);
        }
        return OneShot { args, stdin: None };
    }
    match cli {
        Cli::Codex => {
            args.push("exec".into());
            if resume.is_some() {
                args.push("resume".into());
            }
            args.push("--skip-git-repo-check".into());
        }
        Cli::Opencode => args.push("run".into()),
        Cli::Droid => {
            args.push("exec".into());
            // `droid exec` is read-only unless told otherwise.
            if !how.readonly {
                args.push("--skip-permissions-unsafe".into());
            }
        }
        Cli::Goose => args.push("run".into()),
        _ => {}
    }
    if cli == Cli::Codex && resume.is_some() && how.readonly {
        // `codex exec resume` takes no `--sandbox`; the same setting as configuration.
        args.extend(["-c".into(), "sandbox_mode=\"read-only\"".into()]);
    } else {
        args.extend(permission_flags(p, how, false));
    }
    args.extend(usage_flags(p, how));
    if let Some(m) = model {
        args.push(p.model_flag.into());
        args.push(m.into());
    }
    if let Some(id) = resume {
        match cli {
            Cli::Claude | Cli::Gemini => args.extend(["--resume".into(), id.into()]),
            Cli::Opencode => args.extend(["--session".into(), id.into()]),
            // `codex exec resume [flags] ID -`: the id comes before the prompt.
            Cli::Codex => args.push(id.into()),
            _ => {}
        }
    }
    match cli {
        Cli::Claude => args.push("-p".into()),
        Cli::Codex => args.push("-".into()),
        Cli::Aider => {
            args.push("--message-file".into());
            args.push("/dev/stdin".into());
        }
        Cli::Goose => {
            args.push("--no-session".into());
            args.push("-i".into());
            args.push("-".into());
        }
        Cli::Droid => args.push(task.into()),
        Cli::Gemini | Cli::Opencode => {}
        // Handled above.
        Cli::Cursor | Cli::CursorAgent | Cli::Agent => {}
    }
    let stdin = (p.task_input == TaskInput::Stdin).then(|| task.to_string());
    OneShot { args, stdin }
}

/// argv (without the program) for an interactive session; the task is typed in later.
pub fn interactive_args(cli: Cli, model: Option<&str>, how: Invocation) -> Vec<String> {
    interactive_args_in(cli, model, how, None)
}

/// [`interactive_args`] in the conversation `session` (claude; ignored by the others,
/// see [`session_support`]).
pub fn interactive_args_in(
    cli: Cli,
    model: Option<&str>,
    how: Invocation,
    session: Option<SessionArg<'_>>,
) -> Vec<String> {
    let session = session.filter(|_| session_support(cli).interactive);
    let p = profile(cli);
    let mut args: Vec<String> = Vec::new();
    if cli == Cli::Goose {
        args.push("session".into());
    }
    args.extend(permission_flags(p, how, true));
    if let Some(m) = model {
        args.push(p.model_flag.into());
        args.push(m.into());
    }
    match session {
        Some(SessionArg::Start(id)) => args.extend(["--session-id".into(), id.into()]),
        Some(SessionArg::Resume(id)) => args.extend(["--resume".into(), id.into()]),
        None => {}
    }
    args
}

/// Puts the MCP arguments `mcp` into `args` (an argv without the program) where `cli`
/// takes them: after the subcommand (`codex exec`, `goose run`, `goose session`), else
/// first, so they are followed by a flag (claude's `--mcp-config` takes several values).
pub fn insert_mcp_args(cli: Cli, args: &mut Vec<String>, mcp: Vec<String>) {
    let at = match cli {
        Cli::Codex if args.first().is_some_and(|a| a == "exec") => 1,
        Cli::Goose if !args.is_empty() => 1,
        _ => 0,
    };
    args.splice(at..at, mcp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_continued_in_each_clis_own_shape() {
        let d = Invocation {
            readonly: false,
            usage: true,
        };
        let resumed = |cli| oneshot_args_in(cli, None, "t", d, Some("ID")).args;
        assert_eq!(
            resumed(Cli::Claude),
            [
                "--dangerously-skip-permissions",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "ID",
                "-p"
            ]
        );
        assert_eq!(
            resumed(Cli::Codex),
            [
                "exec",
                "resume",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "--json",
                "ID",
                "-"
            ]
        );
        assert_eq!(
            resumed(Cli::Gemini),
            ["--yolo", "--output-format", "stream-json", "--resume", "ID"]
        );
        assert_eq!(
            resumed(Cli::Opencode),
            ["run", "--format", "json", "--session", "ID"]
        );
        assert_eq!(
            resumed(Cli::Cursor),
            ["--force", "--resume", "ID", "-p", "t"]
        );
        // Where a CLI cannot, the run is a new conversation, as without `resume`.
        for cli in [Cli::Aider, Cli::Goose, Cli::Droid] {
            assert_eq!(
                resumed(cli),
                oneshot_args(cli, None, "t", d).args,
                "{cli:?}"
            );
        }
        let ro = Invocation {
            readonly: true,
            usage: false,
        };
        assert_eq!(
            oneshot_args_in(Cli::Codex, None, "t", ro, Some("ID")).args,
            [
                "exec",
                "resume",
                "--skip-git-repo-check",
                "-c",
                "sandbox_mode=\"read-only\"",
                "ID",
                "-"
            ]
        );
        let i = |cli, s| interactive_args_in(cli, None, Invocation::default(), Some(s));
        assert_eq!(
            i(Cli::Claude, SessionArg::Start("U")),
            ["--dangerously-skip-permissions", "--session-id", "U"]
        );
        assert_eq!(
            i(Cli::Claude, SessionArg::Resume("U")),
            ["--dangerously-skip-permissions", "--resume", "U"]
        );
        assert_eq!(
            i(Cli::Gemini, SessionArg::Resume("U")),
            interactive_args(Cli::Gemini, None, Invocation::default())
        );
        assert_eq!(
            i(Cli::Codex, SessionArg::Resume("U")),
            interactive_args(Cli::Codex, None, Invocation::default())
        );
    }

    #[test]
    fn every_cli_has_a_profile_of_its_own() {
        for cli in Cli::ALL {
            assert_eq!(profile(cli).cli, cli);
            let program = if cli.is_cursor() {
                "cursor-agent"
            } else {
                cli.as_str()
            };
            assert_eq!(profile(cli).program, program);
        }
    }

    #[test]
    fn oneshot_shapes_match_the_cli_modes() {
        let d = Invocation::default();
        let stdin = |cli, model, args: &[&str]| {
            let got = oneshot_args(cli, model, "do it", d);
            assert_eq!(got.args, args, "{cli:?}");
            assert_eq!(
                got.stdin.as_deref(),
                Some("do it"),
                "{cli:?}: task on stdin"
            );
        };
        stdin(
            Cli::Claude,
            Some("opus"),
            &["--dangerously-skip-permissions", "--model", "opus", "-p"],
        );
        stdin(
            Cli::Codex,
            None,
            &[
                "exec",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "-",
            ],
        );
        stdin(Cli::Gemini, None, &["--yolo"]);
        stdin(Cli::Opencode, None, &["run"]);
        stdin(
            Cli::Aider,
            None,
            &["--yes-always", "--no-git", "--message-file", "/dev/stdin"],
        );
        stdin(Cli::Goose, None, &["run", "--no-session", "-i", "-"]);
        let droid = oneshot_args(Cli::Droid, None, "t", d);
        assert_eq!(droid.args, ["exec", "--skip-permissions-unsafe", "t"]);
        assert_eq!(droid.stdin, None);
        for cursor in [Cli::Cursor, Cli::CursorAgent, Cli::Agent] {
            let got = oneshot_args(cursor, Some("gpt-5"), "t", d);
            assert_eq!(got.args, ["--force", "-p", "t", "--model", "gpt-5"]);
            assert_eq!(got.stdin, None);
            assert_eq!(interactive_args(cursor, None, d), ["--force"]);
        }
    }

    #[test]
    fn readonly_agents_get_each_clis_own_read_only_mode_and_usage_its_structured_output() {
        let ro = Invocation {
            readonly: true,
            usage: false,
        };
        assert_eq!(
            oneshot_args(Cli::Claude, None, "t", ro).args,
            ["--permission-mode", "plan", "-p"]
        );
        assert_eq!(
            oneshot_args(Cli::Codex, None, "t", ro).args,
            [
                "exec",
                "--skip-git-repo-check",
                "--sandbox",
                "read-only",
                "-"
            ]
        );
        assert_eq!(
            interactive_args(Cli::Codex, None, ro),
            ["--sandbox", "read-only", "--ask-for-approval", "never"]
        );
        assert_eq!(
            oneshot_args(Cli::Gemini, None, "t", ro).args,
            ["--approval-mode", "plan"]
        );
        assert_eq!(oneshot_args(Cli::Droid, None, "t", ro).args, ["exec", "t"]);
        let usage = Invocation {
            readonly: false,
            usage: true,
        };
        assert_eq!(
            oneshot_args(Cli::Claude, None, "t", usage).args,
            [
                "--dangerously-skip-permissions",
                "--output-format",
                "stream-json",
                "--verbose",
                "-p",
            ]
        );
        assert_eq!(
            oneshot_args(Cli::Opencode, None, "t", usage).args,
            ["run", "--format", "json"]
        );
        assert_eq!(usage_format(Cli::Aider, usage), None);
        assert_eq!(
            usage_format(Cli::Codex, usage),
            Some(UsageFormat::CodexJson)
        );
    }

    #[test]
    fn the_task_is_on_stdin_exactly_where_the_profile_says() {
        for cli in Cli::ALL {
            let got = oneshot_args(cli, None, "the-task", Invocation::default());
            let on_stdin = profile(cli).task_input == TaskInput::Stdin;
            assert_eq!(got.stdin.is_some(), on_stdin, "{cli:?}");
            assert_eq!(
                got.args.iter().any(|a| a == "the-task"),
                !on_stdin,
                "{cli:?}: the task is in argv only when not on stdin"
            );
        }
    }

    #[test]
    fn mcp_servers_are_given_each_cli_its_own_way() {
        let server = McpServer {
            name: "agent-relay".into(),
            command: "/bin/agent-relay".into(),
            args: vec!["mcp".into()],
            env: vec!["AGENT_RELAY_SOCKET".into(), "AGENT_RELAY_TOKEN".into()],
            secrets: vec![("AGENT_RELAY_TOKEN".into(), "t0k".into())],
        };
        let dir = std::path::Path::new("/s");
        let claude = mcp_setup(Cli::Claude, &server, dir).unwrap();
        assert_eq!(claude.args[0], "--mcp-config");
        assert_eq!(claude.file, None);
        let v: serde_json::Value = serde_json::from_str(&claude.args[1]).unwrap();
        assert_eq!(
            v["mcpServers"]["agent-relay"]["command"],
            "/bin/agent-relay"
        );
        assert_eq!(v["mcpServers"]["agent-relay"]["args"][0], "mcp");
        let codex = mcp_setup(Cli::Codex, &server, dir).unwrap();
        assert_eq!(
            codex.args,
            [
                "-c",
                r#"mcp_servers.agent-relay.command="/bin/agent-relay""#,
                "-c",
                r#"mcp_servers.agent-relay.args=["mcp"]"#,
                "-c",
                r#"mcp_servers.agent-relay.env_vars=["AGENT_RELAY_SOCKET","AGENT_RELAY_TOKEN"]"#,
            ]
        );
        let mut one = oneshot_args(Cli::Codex, None, "t", Invocation::default()).args;
        insert_mcp_args(Cli::Codex, &mut one, codex.args.clone());
        assert_eq!(one[..2], ["exec", "-c"]);
        let gemini = mcp_setup(Cli::Gemini, &server, dir).unwrap();
        assert_eq!(
            gemini.env,
            [(
                "GEMINI_CLI_SYSTEM_SETTINGS_PATH".to_string(),
                "/s/gemini-settings.json".to_string()
            )]
        );
        let v: serde_json::Value = serde_json::from_str(&gemini.file.unwrap().1).unwrap();
        assert_eq!(v["mcpServers"]["agent-relay"]["trust"], true);
        // gemini keeps the token from its MCP servers unless their settings name it.
        assert_eq!(
            v["mcpServers"]["agent-relay"]["env"]["AGENT_RELAY_TOKEN"],
            "t0k"
        );
        let opencode = mcp_setup(Cli::Opencode, &server, dir).unwrap();
        assert_eq!(opencode.env[0].0, "OPENCODE_CONFIG_CONTENT");
        let v: serde_json::Value = serde_json::from_str(&opencode.env[0].1).unwrap();
        assert_eq!(
            v["mcp"]["agent-relay"]["command"],
            serde_json::json!(["/bin/agent-relay", "mcp"])
        );
        let goose = mcp_setup(Cli::Goose, &server, dir).unwrap();
        assert_eq!(goose.args, ["--with-extension", "/bin/agent-relay mcp"]);
        let mut run = vec!["run".to_string(), "-i".into(), "-".into()];
        insert_mcp_args(Cli::Goose, &mut run, goose.args);
        assert_eq!(run[..2], ["run", "--with-extension"]);
        for cli in [
            Cli::Aider,
            Cli::Droid,
            Cli::Cursor,
            Cli::CursorAgent,
            Cli::Agent,
        ] {
            assert_eq!(mcp_setup(cli, &server, dir), None, "{cli:?}");
        }
    }

    #[test]
    fn interactive_args_carry_no_task() {
        assert_eq!(
            interactive_args(Cli::Claude, None, Invocation::default()),
            ["--dangerously-skip-permissions"]
        );
        assert_eq!(
            interactive_args(Cli::Gemini, Some("flash"), Invocation::default()),
            ["--yolo", "--model", "flash"]
        );
    }
}
