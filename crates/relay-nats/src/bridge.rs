//! The socket agents on a worker talk to. An agent's `agent-relay send` / `inbox` speaks
//! the run's line protocol to `AGENT_RELAY_SOCKET`; on a worker that names this bridge,
//! which passes each request line over NATS to the run's coordinator (which puts it to
//! the run's own socket: tokens, topology and `messages.jsonl` work as for a local
//! agent) and writes the reply line back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::connect::NatsError;
use crate::names;

/// Longest socket path we use (the platform's limit is a little over 100 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// Longest request line taken (the run's socket takes no more).
const MAX_LINE: usize = relay_messaging::protocol::MAX_LINE_BYTES;

/// A running bridge; dropped, it stops and removes its socket.
#[derive(Debug)]
pub struct Bridge {
    path: PathBuf,
    stop: CancellationToken,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the bridge of a run lives: `relay.sock` in `dir`, or a name derived from `dir`
/// in the temp directory when that path is too long for a socket.
pub fn socket_path(dir: &Path) -> PathBuf {
    let p = dir.join(relay_messaging::SOCKET_FILE);
    if p.as_os_str().len() <= MAX_SOCKET_PATH {
        return p;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("agent-relay-w-{h:016x}.sock"))
}

/// How long to wait for the coordinator's reply to `line`: an inbox that waits gets its
/// wait and more.
fn reply_wait(line: &[u8]) -> Duration {
    let asked = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("waitMs").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    Duration::from_millis(asked.saturating_add(10_000))
}

impl Bridge {
    /// Serves the bridge of run `run` at `path`.
    pub fn start(
        client: async_nats::Client,
        run: &str,
        path: PathBuf,
    ) -> Result<Bridge, NatsError> {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| NatsError::Io(format!("cannot serve {}: {e}", path.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let stop = CancellationToken::new();
        let subject = names::run_subject(run, "sock");
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = s.cancelled() => return,
                    c = listener.accept() => c,
                };
                let Ok((conn, _)) = conn else { continue };
                let client = client.clone();
                let subject = subject.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, mut w) = conn.into_split();
                    let mut r = BufReader::new(r);
                    let mut line = Vec::new();
                    loop {
                        line.clear();
                        let mut limited = (&mut r).take(MAX_LINE as u64 + 1);
                        let n = tokio::select! {
                            () = s.cancelled() => return,
                            n = limited.read_until(b'\n', &mut line) => n,
                        };
                        match n {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        let answer = if line.len() > MAX_LINE {
                            error_line("the request is too long")
                        } else {
                            let req = async_nats::Request::new()
                                .payload(line.clone().into())
                                .timeout(Some(reply_wait(&line)));
                            match client.send_request(subject.clone(), req).await {
                                Ok(m) => m.payload.to_vec(),
                                Err(e) => error_line(&format!(
                                    "the run's coordinator cannot be reached over NATS: {e}"
                                )),
                            }
                        };
                        let mut out = answer;
                        out.push(b'\n');
                        if w.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Bridge { path, stop })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

use tokio::io::AsyncReadExt as _;

fn error_line(message: &str) -> Vec<u8> {
    crate::wire::encode(
        &serde_json::json!({"reply": "error", "kind": "failed", "message": message}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbox_that_waits_gets_longer() {
        assert_eq!(reply_wait(br#"{"op":"send"}"#), Duration::from_secs(10));
        assert_eq!(
            reply_wait(br#"{"op":"inbox","waitMs":5000}"#),
            Duration::from_secs(15)
        );
        assert_eq!(reply_wait(b"garbage"), Duration::from_secs(10));
    }

    #[test]
    fn long_directories_get_a_short_socket() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let p = socket_path(&long);
        assert!(p.as_os_str().len() <= MAX_SOCKET_PATH + 40);
        assert_eq!(p, socket_path(&long), "stable");
        assert_eq!(socket_path(Path::new("/w")), Path::new("/w/relay.sock"));
    }
}
