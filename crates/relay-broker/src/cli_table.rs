//! The one table of per-CLI knowledge: how each coding-agent CLI is invoked one-shot and
//! interactively, which flags let it work unattended, how it takes a model, what its
//! prompt looks like when it is ready for input, and how it is asked to quit.
//!
//! Everything else in the project asks this table; nothing else spells out a CLI's argv.

use relay_spec::Cli;

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

/// argv (without the program) for a one-shot run of `task`.
///
/// Shapes follow each CLI's non-interactive mode: `claude -p TASK`, `codex exec TASK`,
/// `gemini -p TASK`, `opencode run TASK`, `droid exec TASK`,
/// `aider --message TASK --yes-always --no-git`, `goose run --text TASK --no-session`.
pub fn oneshot_args(cli: Cli, model: Option<&str>, task: &str, how: Invocation) -> Vec<String> {
    let p = profile(cli);
    let mut args: Vec<String> = Vec::new();
    // Cursor's CLI: `cursor-agent --force -p TASK [--model M]`.
    if cli.is_cursor() {
        args.extend(permission_flags(p, how, false));
        args.extend(["-p".to_string(), task.into()]);
        if let Some(m) = model {
            args.extend([p.model_flag.to_string(), m.into()]);
        }
        return args;
    }
    match cli {
        Cli::Codex => {
            args.push("exec".into());
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
    args.extend(permission_flags(p, how, false));
    args.extend(usage_flags(p, how));
    if let Some(m) = model {
        args.push(p.model_flag.into());
        args.push(m.into());
    }
    match cli {
        Cli::Claude | Cli::Gemini => {
            args.push("-p".into());
            args.push(task.into());
        }
        Cli::Aider => {
            args.push("--message".into());
            args.push(task.into());
        }
        Cli::Goose => {
            args.push("--no-session".into());
            args.push("--text".into());
            args.push(task.into());
        }
        Cli::Codex | Cli::Opencode | Cli::Droid => args.push(task.into()),
        // Handled above.
        Cli::Cursor | Cli::CursorAgent | Cli::Agent => {}
    }
    args
}

/// argv (without the program) for an interactive session; the task is typed in later.
pub fn interactive_args(cli: Cli, model: Option<&str>, how: Invocation) -> Vec<String> {
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
    args
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            oneshot_args(Cli::Claude, Some("opus"), "do it", Invocation::default()),
            [
                "--dangerously-skip-permissions",
                "--model",
                "opus",
                "-p",
                "do it"
            ]
        );
        assert_eq!(
            oneshot_args(Cli::Codex, None, "t", Invocation::default()),
            [
                "exec",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "t"
            ]
        );
        assert_eq!(
            oneshot_args(Cli::Gemini, None, "t", Invocation::default()),
            ["--yolo", "-p", "t"]
        );
        assert_eq!(
            oneshot_args(Cli::Opencode, None, "t", Invocation::default()),
            ["run", "t"]
        );
        assert_eq!(
            oneshot_args(Cli::Aider, None, "t", Invocation::default()),
            ["--yes-always", "--no-git", "--message", "t"]
        );
        assert_eq!(
            oneshot_args(Cli::Goose, None, "t", Invocation::default()),
            ["run", "--no-session", "--text", "t"]
        );
        assert_eq!(
            oneshot_args(Cli::Droid, None, "t", Invocation::default()),
            ["exec", "--skip-permissions-unsafe", "t"]
        );
        for cursor in [Cli::Cursor, Cli::CursorAgent, Cli::Agent] {
            assert_eq!(
                oneshot_args(cursor, Some("gpt-5"), "t", Invocation::default()),
                ["--force", "-p", "t", "--model", "gpt-5"]
            );
            assert_eq!(
                interactive_args(cursor, None, Invocation::default()),
                ["--force"]
            );
        }
    }

    #[test]
    fn readonly_agents_get_each_clis_own_read_only_mode_and_usage_its_structured_output() {
        let ro = Invocation {
            readonly: true,
            usage: false,
        };
        assert_eq!(
            oneshot_args(Cli::Claude, None, "t", ro),
            ["--permission-mode", "plan", "-p", "t"]
        );
        assert_eq!(
            oneshot_args(Cli::Codex, None, "t", ro),
            [
                "exec",
                "--skip-git-repo-check",
                "--sandbox",
                "read-only",
                "t"
            ]
        );
        assert_eq!(
            interactive_args(Cli::Codex, None, ro),
            ["--sandbox", "read-only", "--ask-for-approval", "never"]
        );
        assert_eq!(
            oneshot_args(Cli::Gemini, None, "t", ro),
            ["--approval-mode", "plan", "-p", "t"]
        );
        assert_eq!(oneshot_args(Cli::Droid, None, "t", ro), ["exec", "t"]);
        let usage = Invocation {
            readonly: false,
            usage: true,
        };
        assert_eq!(
            oneshot_args(Cli::Claude, None, "t", usage),
            [
                "--dangerously-skip-permissions",
                "--output-format",
                "stream-json",
                "--verbose",
                "-p",
                "t"
            ]
        );
        assert_eq!(
            oneshot_args(Cli::Opencode, None, "t", usage),
            ["run", "--format", "json", "t"]
        );
        assert_eq!(usage_format(Cli::Aider, usage), None);
        assert_eq!(
            usage_format(Cli::Codex, usage),
            Some(UsageFormat::CodexJson)
        );
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
