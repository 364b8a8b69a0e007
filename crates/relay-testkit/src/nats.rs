//! A real nats-server for tests: JetStream in a directory of the test's, on a random
//! loopback port, stopped when the guard is dropped. Tests skip (saying so) when the
//! binary is absent, unless `CI` is set, where its absence is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary, or `None` when it is not installed and `CI` is not set (the
/// caller skips). Panics when it is missing under `CI`.
pub fn nats_server_bin() -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = dirs
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is not installed, and CI must run these tests (.ci/run installs it)"
        );
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
    }
    found
}

/// A running nats-server with JetStream; stopped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one keeping JetStream's files in `dir`; `None` when the binary is absent
    /// (see [`nats_server_bin`]).
    pub fn start(dir: &Path) -> Option<NatsServer> {
        NatsServer::start_with(dir, &[])
    }

    /// As [`NatsServer::start`], with more arguments for nats-server (`--user U --pass P`,
    /// `--auth TOKEN`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Option<NatsServer> {
        let bin = nats_server_bin()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut s = NatsServer {
            bin,
            port,
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("the server's directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("the server's log");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (kill -9: the store is what a crash leaves).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
