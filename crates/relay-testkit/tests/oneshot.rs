//! The real `fake-agent` binary in one-shot mode, invoked through CLI-named symlinks.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not these helpers.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use relay_testkit::{
    fake_agent_path, install_fake_clis, max_overlap, processes_with_env,
    wait_for_no_processes_with_env,
};

/// A scratch directory with `bin/` (the CLI symlinks) and `work/` (the agent's cwd).
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = tempfile::tempdir().unwrap();
        install_fake_clis(&root.path().join("bin")).unwrap();
        std::fs::create_dir_all(root.path().join("work")).unwrap();
        Sandbox { root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn cmd(&self, cli: &str, args: &[&str]) -> Command {
        let mut c = Command::new(self.path("bin").join(cli));
        c.args(args)
            .current_dir(self.path("work"))
            .stdin(Stdio::null())
            .env_remove("FAKE_AGENT_LOG")
            .env_remove("FAKE_AGENT_ARGV_LOG")
            .env_remove("FAKE_AGENT_STATE_DIR")
            .env_remove("AGENT_RELAY_BIN");
        c
    }

    fn run(&self, cli: &str, args: &[&str]) -> Output {
        self.cmd(cli, args).output().unwrap()
    }

    fn claude(&self, task: &str) -> Output {
        self.run("claude", &["-p", task])
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn helper_finds_the_binary_cargo_built() {
    assert_eq!(
        fake_agent_path().canonicalize().unwrap(),
        Path::new(env!("CARGO_BIN_EXE_fake-agent"))
            .canonicalize()
            .unwrap()
    );
}

#[test]
fn every_cli_accepts_its_oneshot_shape() {
    let sb = Sandbox::new();
    let log = sb.path("argv.log");
    let task = "do it [[fake:say=hello]]";
    let shapes: [(&str, &[&str]); 9] = [
        (
            "claude",
            &[
                "--dangerously-skip-permissions",
                "--model",
                "opus",
                "-p",
                task,
            ],
        ),
        (
            "codex",
            &[
                "exec",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "-m",
                "gpt",
                task,
            ],
        ),
        ("gemini", &["--yolo", "--model", "flash", "-p", task]),
        (
            "opencode",
            &["run", "--model", "a/b", "do it", "[[fake:say=hello]]"],
        ),
        ("droid", &["exec", "--skip-permissions-unsafe", task]),
        (
            "aider",
            &[
                "--yes-always",
                "--no-git",
                "--model",
                "m",
                "--message",
                task,
            ],
        ),
        (
            "goose",
            &["run", "--no-session", "--model", "m", "--text", task],
        ),
        // Flags may come after the task too.
        ("claude", &["-p", task, "--dangerously-skip-permissions"]),
        ("goose", &["run", "--text", task, "--no-session"]),
    ];
    for (cli, args) in shapes {
        let out = sb
            .cmd(cli, args)
            .env("FAKE_AGENT_ARGV_LOG", &log)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{cli} {args:?}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), format!("hello\nfake-{cli} done\n"), "{cli}");
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = logged.lines().collect();
    assert_eq!(lines.len(), shapes.len());
    assert_eq!(
        lines[0],
        "claude\t[\"--dangerously-skip-permissions\",\"--model\",\"opus\",\"-p\",\"do it [[fake:say=hello]]\"]"
    );
    assert!(lines[3].starts_with("opencode\t[\"run\","), "{}", lines[3]);
}

#[test]
fn wrong_shapes_exit_2() {
    let sb = Sandbox::new();
    let log = sb.path("argv.log");
    let cases: [(&str, &[&str]); 8] = [
        ("codex", &["-p", "x"]),
        ("claude", &["just a task"]),
        ("claude", &["--yolo", "-p", "x"]),
        ("gemini", &["x"]),
        ("opencode", &["run", "--bogus"]),
        ("aider", &["--message"]),
        ("goose", &["run", "x"]),
        ("droid", &["exec", "a", "b"]),
    ];
    for (cli, args) in cases {
        let out = sb
            .cmd(cli, args)
            .env("FAKE_AGENT_ARGV_LOG", &log)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cli} {args:?} was accepted");
        assert!(
            stderr(&out).starts_with(&format!("fake-agent({cli}): unrecognized arguments: ")),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
    // Rejected invocations are logged too, so a test can show what was sent.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.starts_with("codex\t[\"-p\",\"x\"]\n"), "{logged}");
}

#[test]
fn as_flag_and_unknown_program_name() {
    let sb = Sandbox::new();
    let bin = env!("CARGO_BIN_EXE_fake-agent");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(sb.path("work"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--as", "codex", "exec", "t"]);
    assert_eq!(stdout(&out), "fake-codex done\n");
    let out = run(&["-p", "t"]);
    assert_eq!(
        stdout(&out),
        "fake-claude done\n",
        "plays claude by default"
    );
    let out = run(&["--as", "nope", "-p", "t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown CLI nope"));
}

#[test]
fn interactive_shape_without_a_terminal_exits_2() {
    let sb = Sandbox::new();
    for (cli, args) in [
        ("claude", &["--dangerously-skip-permissions"][..]),
        ("goose", &["session"]),
    ] {
        let out = sb.run(cli, args);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("stdin is not a terminal"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn emit_passes_a_live_marker_on() {
    let sb = Sandbox::new();
    let out = sb.claude("[[fake:emit=say=hello]]");
    assert_eq!(stdout(&out), "[[fake:say=hello]]\nfake-claude done\n");
}

#[test]
fn nth_and_per_agent_markers() {
    let sb = Sandbox::new();
    let task = "[[fake:nth=k:first|second]] [[fake:say-for=nobody:hidden]]";
    assert_eq!(stdout(&sb.claude(task)), "first\nfake-claude done\n");
    assert_eq!(stdout(&sb.claude(task)), "second\nfake-claude done\n");
    assert_eq!(
        stdout(&sb.claude(task)),
        "second\nfake-claude done\n",
        "the last repeats"
    );
}

#[test]
fn say_echo_stderr_and_exit_code() {
    let sb = Sandbox::new();
    let task = "x [[fake:say=a\\nb]] [[fake:stderr=oops]][[fake:echo-task]][[fake:exit=3]][[fake:say=never]]";
    let out = sb.claude(task);
    assert_eq!(out.status.code(), Some(3));
    // The echo defuses markers so they cannot act again in whoever reads this output.
    let defused = task.replace("[[fake:", "[fake:");
    assert_eq!(stdout(&out), format!("a\nb\n{defused}\n"));
    assert_eq!(stderr(&out), "oops\n");

    let out = sb.claude("[[fake:sleep=10]][[fake:say=after]]");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "after\nfake-claude done\n");
}

#[test]
fn unknown_marker_exits_2_before_doing_anything() {
    let sb = Sandbox::new();
    let out = sb.claude("[[fake:write=made.txt]] [[fake:dance=1]]");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "fake-agent: unknown marker dance\n");
    assert!(!sb.path("work/made.txt").exists());
}

#[test]
fn write_creates_files_relative_to_cwd() {
    let sb = Sandbox::new();
    let out =
        sb.claude("[[fake:write=plain.txt]][[fake:write=deep/er/out.md:# Title\\nbody: yes]]");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(sb.path("work/plain.txt")).unwrap(),
        "written by fake-agent\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("work/deep/er/out.md")).unwrap(),
        "# Title\nbody: yes"
    );
}

#[test]
fn fail_once_fails_the_first_attempt_only() {
    let sb = Sandbox::new();
    let task = "[[fake:fail-once=build]][[fake:say=built]]";
    let first = sb.claude(task);
    assert_eq!(first.status.code(), Some(1));
    assert_eq!(stdout(&first), "failing first attempt of build\n");
    let second = sb.claude(task);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&second), "built\nfake-claude done\n");
    assert!(sb.path("work/.fake-agent-state/fail-once-build").exists());

    // A separate state dir starts over.
    let state = sb.path("state");
    let out = sb
        .cmd("codex", &["exec", task])
        .env("FAKE_AGENT_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(state.join("fail-once-build").exists());
}

#[test]
fn count_appends_one_line_per_run() {
    let sb = Sandbox::new();
    for _ in 0..3 {
        assert!(sb.claude("[[fake:count=step-a]]").status.success());
    }
    let text = std::fs::read_to_string(sb.path("work/.fake-agent-state/count-step-a")).unwrap();
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn crash_aborts_with_sigabrt() {
    let sb = Sandbox::new();
    let out = sb.claude("[[fake:say=before]][[fake:crash]][[fake:say=after]]");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    assert_eq!(stdout(&out), "before\n");
}

#[test]
fn lifecycle_log_marks_start_and_normal_end() {
    let sb = Sandbox::new();
    let log = sb.path("life.log");
    let run = |step: &str, task: &str| {
        sb.cmd("claude", &["-p", task])
            .env("FAKE_AGENT_LOG", &log)
            .env("AGENT_RELAY_STEP", step)
            .output()
            .unwrap()
    };
    run("ok", "[[fake:say=x]]");
    run("code", "[[fake:exit=4]]");
    run("boom", "[[fake:crash]]");
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert_eq!(w.len(), 3, "{l}");
            w[2].parse::<u32>().unwrap();
            (w[0].to_string(), w[1].to_string())
        })
        .collect();
    let expect = [
        ("start", "ok"),
        ("end", "ok"),
        ("start", "code"),
        ("end", "code"),
        ("start", "boom"),
    ];
    assert_eq!(events, expect.map(|(a, b)| (a.to_string(), b.to_string())));
    // The crashed step never ends.
    assert_eq!(max_overlap(&text), 1);
}

#[test]
fn concurrent_agents_write_whole_log_lines() {
    let sb = Sandbox::new();
    let log = sb.path("life.log");
    let task = "[[fake:count=started]][[fake:sleep=50]]";
    let mut children: Vec<_> = (0..3)
        .map(|i| {
            sb.cmd("claude", &["-p", task])
                .env("FAKE_AGENT_LOG", &log)
                .env("AGENT_RELAY_STEP", format!("s{i}"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    let mut expect: Vec<String> = (0..3)
        .flat_map(|i| {
            [
                format!("end s{i} {}", pids[i]),
                format!("start s{i} {}", pids[i]),
            ]
        })
        .collect();
    expect.sort_unstable();
    assert_eq!(lines, expect);
}

fn sig_ignored(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap();
    u64::from_str_radix(line.trim(), 16).unwrap()
}

fn kill(sig: &str, target: &str) {
    let ok = Command::new("kill")
        .args([sig, "--", target])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {target} failed");
}

#[test]
fn ignore_term_survives_sigterm() {
    let sb = Sandbox::new();
    let mut child = sb
        .cmd(
            "claude",
            &[
                "-p",
                "[[fake:ignore-term]][[fake:say=ready]][[fake:sleep=1500]]",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let term_and_hup = (1 << (libc::SIGTERM - 1)) | (1 << (libc::SIGHUP - 1));
    assert_eq!(sig_ignored(child.id()) & term_and_hup, term_and_hup);
    kill("-TERM", &child.id().to_string());
    kill("-HUP", &child.id().to_string());
    assert!(child.wait().unwrap().success());
    assert_eq!(lines.next().unwrap().unwrap(), "fake-claude done");

    // Without the marker SIGTERM ends it.
    let mut child = sb
        .cmd("claude", &["-p", "[[fake:say=ready]][[fake:sleep=20000]]"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    kill("-TERM", &child.id().to_string());
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[test]
fn child_outlives_the_agent_in_its_process_group() {
    let sb = Sandbox::new();
    let tag = format!("child-test-{}", std::process::id());
    let mut agent = sb
        .cmd(
            "claude",
            &["-p", "[[fake:child=60000]][[fake:say=spawned]]"],
        )
        .env("RELAY_TESTKIT_TAG", &tag)
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let leader = agent.id();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut agent.stdout.take().unwrap(), &mut out).unwrap();
    assert!(agent.wait().unwrap().success());
    assert_eq!(out, "spawned\nfake-claude done\n");

    // The grandchild may still be inside execve (no environment yet) for a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut left = processes_with_env("RELAY_TESTKIT_TAG", &tag);
    while left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        left = processes_with_env("RELAY_TESTKIT_TAG", &tag);
    }
    assert_eq!(left.len(), 1, "{left:?}");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", left[0])).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let pgid: u32 = after_name.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(
        pgid, leader,
        "the grandchild is in the agent's process group"
    );

    kill("-KILL", &format!("-{leader}"));
    assert_eq!(
        wait_for_no_processes_with_env("RELAY_TESTKIT_TAG", &tag, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
}

/// A stand-in `agent-relay` that records its argv and answers `inbox`.
fn fake_relay_bin(sb: &Sandbox, inbox_reply: &str, exit_code: i32) -> PathBuf {
    let path = sb.path("agent-relay");
    let calls = sb.path("relay-calls.log");
    let script = format!(
        "#!/bin/sh\nprintf '%s|' \"$@\" >> '{}'\necho >> '{}'\n\
         if [ \"$1\" = inbox ]; then printf '{}'; fi\n\
         if [ {exit_code} -ne 0 ]; then echo 'relay: no such agent' >&2; fi\nexit {exit_code}\n",
        calls.display(),
        calls.display(),
        inbox_reply
    );
    std::fs::write(&path, script).unwrap();
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm).unwrap();
    path
}

#[test]
fn send_relay_and_inbox_go_through_agent_relay_bin() {
    let sb = Sandbox::new();
    let bin = fake_relay_bin(&sb, "from alice: hi\\n", 0);
    let out = sb
        .cmd(
            "claude",
            &[
                "-p",
                "[[fake:send=bob:hello: there]][[fake:relay=carol:ping]][[fake:inbox]]",
            ],
        )
        .env("AGENT_RELAY_BIN", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "->relay:carol ping\nfrom alice: hi\nfake-claude done\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb.path("relay-calls.log")).unwrap(),
        "send|--to|bob|hello: there|\ninbox|--wait|10|\n"
    );
}

#[test]
fn failed_send_is_reported_and_the_script_goes_on() {
    let sb = Sandbox::new();
    let bin = fake_relay_bin(&sb, "", 3);
    let out = sb
        .cmd(
            "codex",
            &["exec", "[[fake:send=ghost:hi]][[fake:say=still here]]"],
        )
        .env("AGENT_RELAY_BIN", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "still here\nfake-codex done\n");
    assert_eq!(stderr(&out), "relay: no such agent\n");

    let out = sb.claude("[[fake:send=ghost:hi]]");
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("AGENT_RELAY_BIN is not set"));
}

#[test]
fn every_stdin_shape_reads_its_task_from_stdin() {
    let sb = Sandbox::new();
    let cases: [(&str, &[&str]); 6] = [
        ("claude", &["--dangerously-skip-permissions", "-p"]),
        ("codex", &["exec", "--skip-git-repo-check", "-"]),
        ("gemini", &["--yolo"]),
        ("opencode", &["run"]),
        ("aider", &["--yes-always", "--message-file", "/dev/stdin"]),
        ("goose", &["run", "--no-session", "-i", "-"]),
    ];
    for (cli, args) in cases {
        let mut child = sb
            .cmd(cli, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(b"[[fake:say=FROM_STDIN]]").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cli}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("FROM_STDIN"),
            "{cli}: {}",
            stdout(&out)
        );
        // Nothing on stdin is an error, as for the real CLIs.
        let out = sb.run(cli, args);
        assert_eq!(out.status.code(), Some(2), "{cli} ran without a task");
    }
}
