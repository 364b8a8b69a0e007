//! The socket agents on a worker talk to. An agent's `agent-relay send` / `inbox` speaks
//! the run's line protocol to `AGENT_RELAY_SOCKET`; on a worker that names this bridge,
//! which passes each request line over NATS to the run's coordinator (which puts it to
//! the run's own socket: tokens, topology and `messages.jsonl` work as for a local
//! agent) and writes the reply line back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedReadHalf;
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

/// Most request lines passed on together.
const MAX_BATCH_LINES: usize = 256;

/// Most bytes of request lines passed on together (a single longer line goes alone).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One request line from `r` into `line`, without its newline; `Ok(0)` at the end. A line
/// longer than [`MAX_LINE`] comes back longer than that, cut.
async fn read_line(r: &mut BufReader<OwnedReadHalf>, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let n = (&mut *r)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(n)
}

/// One request line to the coordinator; its reply line (or an error reply).
async fn request(client: &async_nats::Client, subject: &str, line: &[u8]) -> Vec<u8> {
    let req = async_nats::Request::new()
        .payload(line.to_vec().into())
        .timeout(Some(reply_wait(line)));
    match client.send_request(subject.to_owned(), req).await {
        Ok(m) => m.payload.to_vec(),
        Err(e) => error_line(&format!(
            "the run's coordinator cannot be reached over NATS: {e}"
        )),
    }
}

/// Whether request `line` is a send (sends are passed on together; anything else alone).
fn is_send(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Op {
        op: String,
    }
    serde_json::from_slice::<Op>(line).is_ok_and(|o| o.op == "send")
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
        let batch_subject = names::run_subject(run, "socks");
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
                let batch_subject = batch_subject.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let (r, mut w) = conn.into_split();
                    let mut r = BufReader::new(r);
                    let mut carry: Option<Vec<u8>> = None;
                    loop {
                        let line = match carry.take() {
                            Some(l) => l,
                            None => {
                                let mut line = Vec::new();
                                let n = tokio::select! {
                                    () = s.cancelled() => return,
                                    n = read_line(&mut r, &mut line) => n,
                                };
                                match n {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) => line,
                                }
                            }
                        };
                        let answer = if line.len() > MAX_LINE {
                            error_line("the request is too long")
                        } else {
                            let mut lines = vec![line];
                            if is_send(&lines[0]) {
                                // Sends already written behind this one go with it.
                                let mut bytes = lines[0].len();
                                while lines.len() < MAX_BATCH_LINES
                                    && bytes < MAX_BATCH_BYTES
                                    && r.buffer().contains(&b'\n')
                                {
                                    let mut next = Vec::new();
                                    if !matches!(read_line(&mut r, &mut next).await, Ok(n) if n > 0)
                                    {
                                        break;
                                    }
                                    if next.len() > MAX_LINE || !is_send(&next) {
                                        carry = Some(next);
                                        break;
                                    }
                                    bytes += next.len() + 1;
                                    lines.push(next);
                                }
                            }
                            let answers = if lines.len() == 1 {
                                request(&client, &subject, &lines[0]).await
                            } else {
                                let ask = |subject: &str| {
                                    let req = async_nats::Request::new()
                                        .payload(lines.join(&b'\n').into())
                                        .timeout(Some(reply_wait(&lines[0])));
                                    client.send_request(subject.to_owned(), req)
                                };
                                match ask(&batch_subject).await {
                                    Ok(m) => m.payload.to_vec(),
                                    // A coordinator that takes lines one at a time only.
                                    Err(e)
                                        if e.kind()
                                            == async_nats::RequestErrorKind::NoResponders =>
                                    {
                                        let mut all = Vec::new();
                                        for (i, l) in lines.iter().enumerate() {
                                            if i > 0 {
                                                all.push(b'\n');
                                            }
                                            all.extend(request(&client, &subject, l).await);
                                        }
                                        all
                                    }
                                    Err(e) => error_line(&format!(
                                        "the run's coordinator cannot be reached over NATS: {e}"
                                    )),
                                }
                            };
                            // One reply line per request line, whatever came back.
                            let mut got: Vec<&[u8]> = answers.split(|b| *b == b'\n').collect();
                            let missing = error_line("no reply from the run's coordinator");
                            if got.len() == 1 && lines.len() > 1 {
                                // One error for all of them.
                                let one = got[0];
                                got = vec![one; lines.len()];
                            }
                            got.resize(lines.len(), &missing);
                            got.join(&b'\n')
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
