//! Agent permissions enforced by the kernel, with real processes: each test runs `sh -c`
//! (or python3) under a Landlock sandbox built from declared rules and checks what the
//! kernel refused and what it let through.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use relay_broker::process::{ProcessError, ProcessOutcome, ProcessSpec, run_process};
use relay_broker::sandbox::{FileRules, ProjectAccess, Sandbox};
use tokio_util::sync::CancellationToken;

fn project() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::create_dir_all(p.join("out")).unwrap();
    std::fs::create_dir_all(p.join("docs")).unwrap();
    std::fs::write(p.join("README"), "readme\n").unwrap();
    std::fs::write(p.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(p.join("secret.txt"), "s3cret\n").unwrap();
    std::fs::write(p.join("docs/guide.md"), "guide\n").unwrap();
    t
}

fn files(root: &Path, project: ProjectAccess) -> FileRules {
    FileRules {
        root: root.to_path_buf(),
        project,
        read: Vec::new(),
        write: Vec::new(),
        deny: Vec::new(),
        extra: Vec::new(),
        dotfiles: true,
        agent: Some("dev".into()),
    }
}

fn sandbox(files: Option<FileRules>) -> Sandbox {
    Sandbox {
        owner: "agent dev".into(),
        files,
        exec: None,
        tcp_connect: None,
        writable: Vec::new(),
        readable: Vec::new(),
        allow_unenforced: false,
    }
}

async fn run(dir: &Path, script: &str, sandbox: Sandbox) -> Result<ProcessOutcome, ProcessError> {
    run_process(
        ProcessSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: Vec::new(),
            timeout: Some(Duration::from_secs(20)),
            stderr_path: None,
            kill_grace: Duration::from_millis(200),
            sandbox: Some(sandbox),
            usage: None,
            max_tokens: None,
            stdin: None,
        },
        CancellationToken::new(),
        |_| {},
    )
    .await
}

/// What `sh -c` printed: one line per probe, `ok` or `denied`.
async fn probe(dir: &Path, probes: &[(&str, &str)], sandbox: Sandbox) -> Vec<(String, String)> {
    let script: String = probes
        .iter()
        .map(|(name, cmd)| {
            format!("if ( {cmd} ) >/dev/null 2>&1; then echo '{name} ok'; else echo '{name} denied'; fi\n")
        })
        .collect();
    let out = run(dir, &script, sandbox).await.expect("runs");
    assert_eq!(out.exit_code, Some(0), "{}", out.stdout);
    out.stdout
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn verdict(results: &[(String, String)], name: &str) -> String {
    results
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no probe {name} in {results:?}"))
}

#[tokio::test]
async fn a_readonly_agent_cannot_write_and_the_file_is_unchanged() {
    let t = project();
    let p = t.path();
    let r = probe(
        p,
        &[
            ("read", "cat README"),
            ("overwrite", "echo changed > README"),
            ("append", "echo more >> src/main.rs"),
            ("create", "touch new.txt"),
            ("truncate", ": > README"),
            ("remove", "rm docs/guide.md"),
            ("tmp", "touch \"$TMPDIR/probe\" && rm \"$TMPDIR/probe\""),
        ],
        sandbox(Some(files(p, ProjectAccess::Read))),
    )
    .await;
    assert_eq!(verdict(&r, "read"), "ok");
    for denied in ["overwrite", "append", "create", "truncate", "remove"] {
        assert_eq!(verdict(&r, denied), "denied", "{denied}: {r:?}");
    }
    assert_eq!(verdict(&r, "tmp"), "ok", "temp directories stay writable");
    assert_eq!(
        std::fs::read_to_string(p.join("README")).unwrap(),
        "readme\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("src/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert!(p.join("docs/guide.md").exists() && !p.join("new.txt").exists());
}

#[tokio::test]
async fn a_denied_glob_is_unreadable_and_the_rest_stays_usable() {
    let t = project();
    let p = t.path();
    let mut f = files(p, ProjectAccess::Write);
    f.deny = vec!["secret.txt".into(), "docs/**".into()];
    let r = probe(
        p,
        &[
            ("secret", "cat secret.txt"),
            ("secret-write", "echo x > secret.txt"),
            ("docs", "cat docs/guide.md"),
            ("readme", "cat README"),
            ("src-write", "echo '// more' >> src/main.rs"),
            ("src-new", "touch src/new.rs"),
        ],
        sandbox(Some(f)),
    )
    .await;
    for denied in ["secret", "secret-write", "docs"] {
        assert_eq!(verdict(&r, denied), "denied", "{denied}: {r:?}");
    }
    for ok in ["readme", "src-write", "src-new"] {
        assert_eq!(verdict(&r, ok), "ok", "{ok}: {r:?}");
    }
    assert_eq!(
        std::fs::read_to_string(p.join("secret.txt")).unwrap(),
        "s3cret\n"
    );
}

#[tokio::test]
async fn restricted_with_one_writable_directory() {
    let t = project();
    let p = t.path();
    let mut f = files(p, ProjectAccess::None);
    f.write = vec!["out/**".into()];
    f.read = vec!["docs/**".into()];
    let r = probe(
        p,
        &[
            ("out-write", "echo report > out/report.md"),
            ("out-read", "cat out/report.md"),
            ("docs-read", "cat docs/guide.md"),
            ("docs-write", "echo x >> docs/guide.md"),
            ("readme-read", "cat README"),
            ("src-write", "echo x >> src/main.rs"),
            ("system-read", "cat /etc/hostname || cat /etc/passwd"),
        ],
        sandbox(Some(f)),
    )
    .await;
    for ok in ["out-write", "out-read", "docs-read", "system-read"] {
        assert_eq!(verdict(&r, ok), "ok", "{ok}: {r:?}");
    }
    for denied in ["docs-write", "readme-read", "src-write"] {
        assert_eq!(verdict(&r, denied), "denied", "{denied}: {r:?}");
    }
    assert_eq!(
        std::fs::read_to_string(p.join("out/report.md")).unwrap(),
        "report\n"
    );
}

#[tokio::test]
async fn exec_refuses_programs_not_listed() {
    let t = project();
    let p = t.path();
    let mut s = sandbox(None);
    s.exec = Some(vec!["cat".into()]);
    let r = probe(
        p,
        &[("cat", "cat README"), ("ls", "ls"), ("builtin", "echo hi")],
        s,
    )
    .await;
    assert_eq!(verdict(&r, "cat"), "ok", "{r:?}");
    assert_eq!(verdict(&r, "builtin"), "ok", "{r:?}");
    assert_eq!(verdict(&r, "ls"), "denied", "{r:?}");
}

#[tokio::test]
async fn network_false_blocks_a_loopback_connect_and_an_allowed_port_works() {
    if relay_broker::process::which("python3").is_none() {
        assert!(std::env::var_os("CI").is_none(), "python3 is needed in CI");
        eprintln!("skipped: no python3");
        return;
    }
    let t = project();
    let p = t.path();
    let blocked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (bp, ap) = (
        blocked.local_addr().unwrap().port(),
        allowed.local_addr().unwrap().port(),
    );
    let connect = |port: u16| {
        format!(
            "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)\""
        )
    };
    let mut s = sandbox(None);
    s.tcp_connect = Some(vec![ap]);
    let (c1, c2) = (connect(bp), connect(ap));
    let r = probe(p, &[("blocked", c1.as_str()), ("allowed", c2.as_str())], s).await;
    assert_eq!(verdict(&r, "blocked"), "denied", "{r:?}");
    assert_eq!(verdict(&r, "allowed"), "ok", "{r:?}");
    // Without the sandbox both connect: the refusal was the kernel's.
    let mut none = sandbox(None);
    none.tcp_connect = None;
    let c1 = connect(bp);
    let r = probe(p, &[("blocked", c1.as_str())], none).await;
    assert_eq!(verdict(&r, "blocked"), "ok");
}

#[tokio::test]
async fn dotfiles_deny_and_make_read_only_per_agent_too() {
    let t = project();
    let p = t.path();
    std::fs::write(p.join(".agentignore"), "# keep out\nsecret.txt\n").unwrap();
    std::fs::write(p.join(".dev.agentreadonly"), "/docs/\n").unwrap();
    let r = probe(
        p,
        &[
            ("secret", "cat secret.txt"),
            ("docs-read", "cat docs/guide.md"),
            ("docs-write", "echo x >> docs/guide.md"),
            ("src-write", "echo x >> src/main.rs"),
            ("rules-write", "echo '' > .agentignore"),
        ],
        sandbox(Some(files(p, ProjectAccess::Write))),
    )
    .await;
    assert_eq!(verdict(&r, "secret"), "denied", "{r:?}");
    assert_eq!(verdict(&r, "docs-read"), "ok", "{r:?}");
    assert_eq!(verdict(&r, "docs-write"), "denied", "{r:?}");
    assert_eq!(verdict(&r, "src-write"), "ok", "{r:?}");
    assert_eq!(
        verdict(&r, "rules-write"),
        "denied",
        "the rules are not the agent's to change"
    );
    // With `inherit: false` the dotfiles do not apply.
    let mut f = files(p, ProjectAccess::Write);
    f.dotfiles = false;
    let r = probe(p, &[("secret", "cat secret.txt")], sandbox(Some(f))).await;
    assert_eq!(verdict(&r, "secret"), "ok");
}

#[tokio::test]
async fn children_of_the_agent_are_confined_too() {
    let t = project();
    let p = t.path();
    let out = run(
        p,
        "sh -c 'sh -c \"echo deep > README\"' 2>/dev/null; cat README",
        sandbox(Some(files(p, ProjectAccess::Read))),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout, "readme\n");
}
