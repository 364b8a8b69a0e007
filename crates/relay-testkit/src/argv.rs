//! Which CLI the fake plays and the argv shapes each CLI accepts.
//!
//! The shapes are strict on purpose: a coordinator that builds a wrong argv for a CLI
//! must fail against the fake the way it would against the real program.

use std::path::Path;

/// A coding-agent CLI the fake can impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cli {
    Claude,
    Codex,
    Gemini,
    Aider,
    Goose,
    Opencode,
    Droid,
}

impl Cli {
    pub(crate) const ALL: [Cli; 7] = [
        Cli::Claude,
        Cli::Codex,
        Cli::Gemini,
        Cli::Aider,
        Cli::Goose,
        Cli::Opencode,
        Cli::Droid,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
            Cli::Aider => "aider",
            Cli::Goose => "goose",
            Cli::Opencode => "opencode",
            Cli::Droid => "droid",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Cli> {
        Cli::ALL.into_iter().find(|c| c.name() == name)
    }

    /// What the first line of a reply starts with on screen.
    pub(crate) fn reply_prefix(self) -> &'static str {
        match self {
            Cli::Claude => "● ",
            Cli::Codex => "• ",
            Cli::Gemini => "✦ ",
            Cli::Opencode => "     ",
            Cli::Aider | Cli::Goose | Cli::Droid => "",
        }
    }

    /// What the following lines of a reply start with.
    pub(crate) fn continuation_prefix(self) -> &'static str {
        match self {
            Cli::Claude | Cli::Codex | Cli::Gemini => "  ",
            Cli::Opencode => "     ",
            Cli::Aider | Cli::Goose | Cli::Droid => "",
        }
    }

    pub(crate) fn prompt(self) -> &'static str {
        match self {
            Cli::Claude => "❯ ",
            _ => "> ",
        }
    }

    /// The footer text the coordinator waits for before typing.
    pub(crate) fn ready_hint(self) -> Option<&'static str> {
        match self {
            Cli::Claude | Cli::Codex => Some("? for shortcuts"),
            Cli::Gemini => Some("Type your message"),
            Cli::Opencode => Some("ctrl+p commands"),
            Cli::Aider | Cli::Goose | Cli::Droid => None,
        }
    }

    /// aider submits on a bare line feed; the others insert a newline.
    pub(crate) fn line_feed_submits(self) -> bool {
        self == Cli::Aider
    }
}

/// How a one-shot run prints its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Output {
    /// Plain text, as the CLIs print by default.
    #[default]
    Text,
    /// The CLI's structured output with token usage (claude `--output-format
    /// stream-json --verbose`, codex `exec --json`, gemini `--output-format stream-json`,
    /// opencode `run --format json`).
    Structured,
}

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Run the task and exit.
    OneShot(String),
    /// Run the task and exit, printing the CLI's structured output.
    OneShotStructured(String),
    /// Run the task read from stdin and exit, printing it so (when stdin is not a
    /// terminal; else the CLI's interactive mode, as the real ones do).
    OneShotStdin(Output),
    /// Run the task read from this file and exit.
    OneShotFile(String),
    /// Start a TUI and wait for the task to be typed.
    Interactive,
}

/// The CLI named by `argv[0]`'s file name, if it is one the fake knows.
pub(crate) fn cli_from_argv0(argv0: &str) -> Option<Cli> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    Cli::from_name(base)
}

/// Flags seen on the command line, in a form the per-CLI rules can check.
#[derive(Default)]
struct Scan {
    switches: Vec<&'static str>,
    values: Vec<(&'static str, String)>,
    positionals: Vec<String>,
}

impl Scan {
    fn has(&self, flag: &str) -> bool {
        self.switches.contains(&flag)
    }

    fn pos(&self) -> Vec<&str> {
        self.positionals.iter().map(String::as_str).collect()
    }

    fn value(&self, flags: &[&str]) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(f, _)| flags.contains(f))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `args` into known switches, known valued flags (`--f v` or `--f=v`) and
/// positionals. Anything else that looks like a flag is an error.
fn scan(
    args: &[String],
    switches: &[&'static str],
    valued: &[&'static str],
) -> Result<Scan, String> {
    let mut out = Scan::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(&s) = switches.iter().find(|&&s| s == arg) {
            out.switches.push(s);
            continue;
        }
        if let Some(&f) = valued.iter().find(|&&f| f == arg) {
            let Some(v) = args.get(i) else {
                return Err(format!("{f} needs a value"));
            };
            i += 1;
            out.values.push((f, v.clone()));
            continue;
        }
        if let Some((name, v)) = arg.split_once('=')
            && let Some(&f) = valued.iter().find(|&&f| f == name && f.starts_with("--"))
        {
            out.values.push((f, v.to_string()));
            continue;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            return Err(format!("unknown flag {arg}"));
        }
        out.positionals.push(arg.clone());
    }
    Ok(out)
}

/// The conversation a command line names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Named {
    /// An earlier conversation to continue.
    pub(crate) resume: Option<String>,
    /// The id of the new one.
    pub(crate) start: Option<String>,
}

/// Checks `args` (without the program name) against `cli`'s shapes.
#[cfg(test)]
pub(crate) fn parse(cli: Cli, args: &[String]) -> Result<Mode, String> {
    parse_named(cli, args).map(|(mode, _)| mode)
}

/// [`parse`], and the conversation the command line names.
pub(crate) fn parse_named(cli: Cli, args: &[String]) -> Result<(Mode, Named), String> {
    let mut named = Named::default();
    let mode = parse_into(cli, args, &mut named)?;
    Ok((mode, named))
}

fn parse_into(cli: Cli, args: &[String], named: &mut Named) -> Result<Mode, String> {
    const MODEL: [&str; 2] = ["--model", "-m"];
    let exec_only = |s: &Scan, flag: &str, sub: &str| -> Result<(), String> {
        if s.has(flag) {
            Err(format!("{flag} is only valid with `{sub}`"))
        } else {
            Ok(())
        }
    };
    let one = |task: &str, out: Output| match out {
        Output::Text => Mode::OneShot(task.to_string()),
        Output::Structured => Mode::OneShotStructured(task.to_string()),
    };
    let choice = |v: Option<&str>, allowed: &[&str], flag: &str| -> Result<(), String> {
        match v {
            Some(x) if !allowed.contains(&x) => Err(format!(
                "{flag} takes one of {}, not {x}",
                allowed.join("|")
            )),
            _ => Ok(()),
        }
    };
    match cli {
        Cli::Claude => {
            let s = scan(
                args,
                &[
                    "--dangerously-skip-permissions",
                    "-p",
                    "--print",
                    "--verbose",
                ],
                &[
                    "--model",
                    "--output-format",
                    "--permission-mode",
                    "--resume",
                    "-r",
                    "--session-id",
                    "--mcp-config",
                ],
            )?;
            named.resume = s.value(&["--resume", "-r"]).map(str::to_string);
            named.start = s.value(&["--session-id"]).map(str::to_string);
            choice(
                s.value(&["--permission-mode"]),
                &["default", "acceptEdits", "plan", "bypassPermissions"],
                "--permission-mode",
            )?;
            let format = s.value(&["--output-format"]);
            choice(format, &["text", "json", "stream-json"], "--output-format")?;
            let print = s.has("-p") || s.has("--print");
            if format == Some("stream-json") && !s.has("--verbose") {
                return Err("--output-format stream-json needs --verbose with -p".into());
            }
            let out = if format == Some("stream-json") {
                Output::Structured
            } else {
                Output::Text
            };
            match (print, s.pos().as_slice()) {
                (true, [task]) => Ok(one(task, out)),
                (false, []) => Ok(Mode::Interactive),
                (true, []) => Ok(Mode::OneShotStdin(out)),
                (true, _) => Err("more than one task given".into()),
                (false, _) => Err("a task needs -p".into()),
            }
        }
        Cli::Codex => {
            let s = scan(
                args,
                &[
                    "--skip-git-repo-check",
                    "--dangerously-bypass-approvals-and-sandbox",
                    "--json",
                ],
                &[
                    "--model",
                    "-m",
                    "--sandbox",
                    "-s",
                    "--ask-for-approval",
                    "-a",
                    "-c",
                    "--config",
                ],
            )?;
            choice(
                s.value(&["--sandbox", "-s"]),
                &["read-only", "workspace-write", "danger-full-access"],
                "--sandbox",
            )?;
            let out = if s.has("--json") {
                Output::Structured
            } else {
                Output::Text
            };
            match s.pos().as_slice() {
                ["exec", "resume", ..] if s.value(&["--sandbox", "-s"]).is_some() => {
                    // As codex 0.171.0 says: `exec resume` takes no `--sandbox`.
                    Err("unexpected argument '--sandbox' for `exec resume`".into())
                }
                ["exec", "resume", id, "-"] => {
                    named.resume = Some(id.to_string());
                    Ok(Mode::OneShotStdin(out))
                }
                ["exec", "resume", id, task] => {
                    named.resume = Some(id.to_string());
                    Ok(one(task, out))
                }
                ["exec", _] if s.value(&["--ask-for-approval", "-a"]).is_some() => {
                    Err("--ask-for-approval is not valid with `exec`".into())
                }
                ["exec", "-"] => Ok(Mode::OneShotStdin(out)),
                ["exec", task] => Ok(one(task, out)),
                [] => {
                    exec_only(&s, "--skip-git-repo-check", "exec")?;
                    exec_only(&s, "--json", "exec")?;
                    Ok(Mode::Interactive)
                }
                _ => Err("expected `exec TASK`, `exec -` or no positional".into()),
            }
        }
        Cli::Gemini => {
            let s = scan(
                args,
                &["--yolo"],
                &[
                    "--model",
                    "-m",
                    "-p",
                    "--output-format",
                    "-o",
                    "--approval-mode",
                    "--resume",
                    "-r",
                    "--session-id",
                ],
            )?;
            named.resume = s.value(&["--resume", "-r"]).map(str::to_string);
            named.start = s.value(&["--session-id"]).map(str::to_string);
            choice(
                s.value(&["--approval-mode"]),
                &["default", "auto_edit", "yolo", "plan"],
                "--approval-mode",
            )?;
            let format = s.value(&["--output-format", "-o"]);
            choice(format, &["text", "json", "stream-json"], "--output-format")?;
            let out = if format == Some("stream-json") {
                Output::Structured
            } else {
                Output::Text
            };
            match (s.value(&["-p"]), s.pos().as_slice()) {
                (Some(task), []) => Ok(one(task, out)),
                // Like gemini: no task and stdin not a terminal reads the task from it
                // (the structured output is only for such a run).
                (None, []) if out == Output::Structured => Ok(Mode::OneShotStdin(out)),
                (None, []) => Ok(Mode::Interactive),
                _ => Err("unexpected positional; the task goes after -p".into()),
            }
        }
        Cli::Opencode => {
            let s = scan(
                args,
                &[],
                &["--model", "-m", "--format", "--agent", "--session", "-s"],
            )?;
            named.resume = s.value(&["--session", "-s"]).map(str::to_string);
            let format = s.value(&["--format"]);
            choice(format, &["default", "json"], "--format")?;
            let out = if format == Some("json") {
                Output::Structured
            } else {
                Output::Text
            };
            match s.pos().as_slice() {
                ["run", rest @ ..] if !rest.is_empty() => Ok(one(&rest.join(" "), out)),
                ["run"] => Ok(Mode::OneShotStdin(out)),
                [] => Ok(Mode::Interactive),
                _ => Err("expected `run [TASK...]` or no positional".into()),
            }
        }
        Cli::Droid => {
            let s = scan(args, &["--skip-permissions-unsafe"], &MODEL)?;
            match s.pos().as_slice() {
                ["exec", task] => Ok(Mode::OneShot(task.to_string())),
                [] => {
                    exec_only(&s, "--skip-permissions-unsafe", "exec")?;
                    Ok(Mode::Interactive)
                }
                _ => Err("expected `exec TASK` or no positional".into()),
            }
        }
        Cli::Aider => {
            let s = scan(
                args,
                &["--yes-always", "--no-git", "--dry-run"],
                &["--model", "--message", "--message-file"],
            )?;
            if !s.positionals.is_empty() {
                return Err("unexpected positional".into());
            }
            Ok(
                match (s.value(&["--message"]), s.value(&["--message-file"])) {
                    (Some(_), Some(_)) => return Err("--message and --message-file".into()),
                    (Some(task), None) => Mode::OneShot(task.to_string()),
                    (None, Some(file)) => Mode::OneShotFile(file.to_string()),
                    (None, None) => Mode::Interactive,
                },
            )
        }
        Cli::Goose => {
            let s = scan(
                args,
                &["--no-session"],
                &[
                    "--model",
                    "--text",
                    "-i",
                    "--instructions",
                    "--with-extension",
                ],
            )?;
            let file = s.value(&["-i", "--instructions"]);
            match (s.pos().as_slice(), s.value(&["--text"]), file) {
                (["run"], Some(task), None) => Ok(Mode::OneShot(task.to_string())),
                (["run"], None, Some("-")) => Ok(Mode::OneShotStdin(Output::Text)),
                (["run"], None, Some(f)) => Ok(Mode::OneShotFile(f.to_string())),
                (["run"], None, None) => Err("`run` needs --text TASK or -i FILE".into()),
                (["session"], None, None) => {
                    exec_only(&s, "--no-session", "run")?;
                    Ok(Mode::Interactive)
                }
                _ => Err("expected `run --text TASK`, `run -i FILE` or `session`".into()),
            }
        }
    }
}

/// `args` as a JSON array of strings.
pub(crate) fn json_array(args: &[String]) -> String {
    let mut out = String::from("[");
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, a);
    }
    out.push(']');
    out
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cli: Cli, args: &[&str]) -> Result<Mode, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(cli, &args)
    }

    fn one(task: &str) -> Result<Mode, String> {
        Ok(Mode::OneShot(task.into()))
    }

    #[test]
    fn conversations_named_on_the_command_line() {
        use Cli::*;
        let n = |cli, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            parse_named(cli, &args).map(|(m, named)| (m, named.resume, named.start))
        };
        let stdin = Mode::OneShotStdin(Output::Structured);
        assert_eq!(
            n(
                Claude,
                &[
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--resume",
                    "S",
                    "-p"
                ]
            ),
            Ok((stdin.clone(), Some("S".into()), None))
        );
        assert_eq!(
            n(Claude, &["--session-id", "U"]),
            Ok((Mode::Interactive, None, Some("U".into())))
        );
        assert_eq!(
            n(
                Codex,
                &[
                    "exec",
                    "resume",
                    "--skip-git-repo-check",
                    "--json",
                    "T",
                    "-"
                ]
            ),
            Ok((stdin.clone(), Some("T".into()), None))
        );
        assert!(
            n(
                Codex,
                &["exec", "resume", "--sandbox", "read-only", "T", "-"]
            )
            .is_err()
        );
        assert_eq!(
            n(
                Codex,
                &[
                    "exec",
                    "resume",
                    "-c",
                    "sandbox_mode=\"read-only\"",
                    "T",
                    "-"
                ]
            ),
            Ok((Mode::OneShotStdin(Output::Text), Some("T".into()), None))
        );
        assert_eq!(
            n(
                Gemini,
                &["--yolo", "--output-format", "stream-json", "--resume", "G"]
            ),
            Ok((stdin.clone(), Some("G".into()), None))
        );
        assert_eq!(
            n(Opencode, &["run", "--format", "json", "--session", "ses_1"]),
            Ok((stdin, Some("ses_1".into()), None))
        );
    }

    #[test]
    fn oneshot_shapes_of_every_cli() {
        use Cli::*;
        assert_eq!(
            p(
                Claude,
                &["--dangerously-skip-permissions", "--model", "o", "-p", "t"]
            ),
            one("t")
        );
        assert_eq!(p(Claude, &["-p", "--model=o", "t"]), one("t"));
        assert_eq!(p(Claude, &["t", "--print"]), one("t"));
        assert_eq!(
            p(
                Codex,
                &[
                    "exec",
                    "--skip-git-repo-check",
                    "--dangerously-bypass-approvals-and-sandbox",
                    "-m",
                    "x",
                    "t"
                ]
            ),
            one("t")
        );
        assert_eq!(p(Gemini, &["--yolo", "-p", "t", "-m", "f"]), one("t"));
        assert_eq!(p(Opencode, &["run", "-m", "a/b", "a", "b"]), one("a b"));
        assert_eq!(
            p(Droid, &["exec", "--skip-permissions-unsafe", "t"]),
            one("t")
        );
        let stdin = Ok(Mode::OneShotStdin(Output::Text));
        assert_eq!(p(Claude, &["--dangerously-skip-permissions", "-p"]), stdin);
        assert_eq!(p(Codex, &["exec", "--skip-git-repo-check", "-"]), stdin);
        assert_eq!(p(Opencode, &["run", "-m", "a/b"]), stdin);
        assert_eq!(p(Goose, &["run", "--no-session", "-i", "-"]), stdin);
        assert_eq!(
            p(Aider, &["--yes-always", "--message-file", "/dev/stdin"]),
            Ok(Mode::OneShotFile("/dev/stdin".into()))
        );
        assert_eq!(
            p(
                Aider,
                &["--yes-always", "--no-git", "--model", "m", "--message", "t"]
            ),
            one("t")
        );
        assert_eq!(
            p(
                Goose,
                &["run", "--no-session", "--text", "t", "--model", "m"]
            ),
            one("t")
        );
    }

    #[test]
    fn interactive_shapes_of_every_cli() {
        use Cli::*;
        let i = Ok(Mode::Interactive);
        assert_eq!(p(Claude, &["--dangerously-skip-permissions"]), i);
        assert_eq!(p(Codex, &["--dangerously-bypass-approvals-and-sandbox"]), i);
        assert_eq!(p(Gemini, &["--yolo", "--model", "f"]), i);
        assert_eq!(p(Aider, &["--yes-always", "--no-git"]), i);
        assert_eq!(p(Goose, &["session"]), i);
        assert_eq!(p(Opencode, &[]), i);
        assert_eq!(p(Droid, &[]), i);
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        use Cli::*;
        for (cli, args) in [
            (Codex, &["-p", "x"][..]),
            (Codex, &["x"]),
            (Codex, &["--skip-git-repo-check"]),
            (Claude, &["task"]),
            (Claude, &["-p", "a", "b"]),
            (Claude, &["--yolo", "-p", "t"]),
            (Gemini, &["t"]),
            (Gemini, &["-p"]),
            (Opencode, &["t"]),
            (Droid, &["--skip-permissions-unsafe"]),
            (Aider, &["--message"]),
            (Aider, &["--message", "a", "--message-file", "b"]),
            (Aider, &["file.py"]),
            (Goose, &[]),
            (Goose, &["run", "t"]),
            (Goose, &["session", "--text", "t"]),
        ] {
            assert!(p(cli, args).is_err(), "{cli:?} {args:?} was accepted");
        }
    }

    #[test]
    fn argv0_selects_the_cli() {
        assert_eq!(cli_from_argv0("/tmp/x/codex"), Some(Cli::Codex));
        assert_eq!(cli_from_argv0("gemini"), Some(Cli::Gemini));
        assert_eq!(cli_from_argv0("/bin/fake-agent"), None);
    }

    #[test]
    fn json_escaping() {
        let args = vec!["a\"b".to_string(), "c\\d\ne\u{1}".into(), "ü".into()];
        assert_eq!(json_array(&args), r#"["a\"b","c\\d\ne\u0001","ü"]"#);
        assert_eq!(json_array(&[]), "[]");
    }
}
