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
    /// How a one-shot run takes its task.
    pub task_input: TaskInput,
}

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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Stdin,
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
        task_input: TaskInput::Argument,
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
        task_input: TaskInput::Argument,
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
        task_input: TaskInput::Argument,
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
        task_input: TaskInput::Argument,
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

/// The invocation for a one-shot run of `task`.
///
/// Shapes follow each CLI's non-interactive mode, with the task on stdin where the CLI
/// reads it from there (checked with the real CLIs: claude 2.1, codex 0.171, gemini 0.61,
/// opencode 1.18, aider 0.86; goose by its documentation): `claude -p`, `codex exec -`,
/// `gemini` (stdin not a terminal), `opencode run`, `aider --message-file /dev/stdin
/// --yes-always --no-git`, `goose run --no-session -i -`; and as an argument where not:
/// `droid exec TASK`, `cursor-agent --force -p TASK`.
pub fn oneshot_args(cli: Cli, model: Option<&str>, task: &str) -> OneShot {
    let p = profile(cli);
    let mut args: Vec<String> = Vec::new();
    // Cursor's CLI: `cursor-agent --force -p TASK [--model M]`.
    if cli.is_cursor() {
        args.extend(["--force".to_string(), "-p".into(), task.into()]);
        if let Some(m) = model {
            args.extend([p.model_flag.to_string(), m.into()]);
        }
        return OneShot { args, stdin: None };
    }
    match cli {
        Cli::Codex => {
            args.push("exec".into());
            args.push("--skip-git-repo-check".into());
        }
        Cli::Opencode => args.push("run".into()),
        Cli::Droid => {
            args.push("exec".into());
            args.push("--skip-permissions-unsafe".into());
        }
        Cli::Goose => args.push("run".into()),
        _ => {}
    }
    args.extend(p.bypass_flags.iter().map(|s| s.to_string()));
    if let Some(m) = model {
        args.push(p.model_flag.into());
        args.push(m.into());
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
pub fn interactive_args(cli: Cli, model: Option<&str>) -> Vec<String> {
    let p = profile(cli);
    let mut args: Vec<String> = Vec::new();
    if cli == Cli::Goose {
        args.push("session".into());
    }
    args.extend(p.bypass_flags.iter().map(|s| s.to_string()));
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
        let stdin = |cli, model, args: &[&str]| {
            let got = oneshot_args(cli, model, "do it");
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
        let droid = oneshot_args(Cli::Droid, None, "t");
        assert_eq!(droid.args, ["exec", "--skip-permissions-unsafe", "t"]);
        assert_eq!(droid.stdin, None);
        for cursor in [Cli::Cursor, Cli::CursorAgent, Cli::Agent] {
            let got = oneshot_args(cursor, Some("gpt-5"), "t");
            assert_eq!(got.args, ["--force", "-p", "t", "--model", "gpt-5"]);
            assert_eq!(got.stdin, None);
            assert_eq!(interactive_args(cursor, None), ["--force"]);
        }
    }

    #[test]
    fn the_task_is_on_stdin_exactly_where_the_profile_says() {
        for cli in Cli::ALL {
            let got = oneshot_args(cli, None, "the-task");
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
    fn interactive_args_carry_no_task() {
        assert_eq!(
            interactive_args(Cli::Claude, None),
            ["--dangerously-skip-permissions"]
        );
        assert_eq!(
            interactive_args(Cli::Gemini, Some("flash")),
            ["--yolo", "--model", "flash"]
        );
    }
}
