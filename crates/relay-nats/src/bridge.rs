//! The socket agents on a worker talk to. An agent's `agent-relay send` / `inbox` speaks
//! the run's line protocol to `AGENT_RELAY_SOCKET`; on a worker that names this bridge,
//! which passes the request lines of each connection over NATS to the run's coordinator
//! (see [`crate::pipe`]: it puts them to the run's own socket on a connection of their
//! own, so tokens, topology and `messages.jsonl` work as for a local agent) and writes
//! the reply lines back, in order.
//!
//! A connection's requests are pipelined: sends written back to back go as one NATS
//! message, and the next ones go out while earlier ones are still being answered (up to
//! [`IN_FLIGHT`] at once); the coordinator answers a connection's requests in turn.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::connect::NatsError;
use crate::names;
use crate::wire::{error_line, repeat};

/// Longest socket path we use (the platform's limit is a little over 100 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// Longest request line taken (the run's socket takes no more).
const MAX_LINE: usize = relay_messaging::protocol::MAX_LINE_BYTES;

/// Most request lines passed on together.
const MAX_BATCH_LINES: usize = 256;

/// Most bytes of request lines passed on together (a single longer line goes alone).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Most requests of one connection passed on and not yet answered.
pub const IN_FLIGHT: usize = 64;

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

/// Whether request `line` is a send (sends are passed on together; anything else alone).
fn is_send(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Op<'a> {
        #[serde(borrow)]
        op: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Op>(line).is_ok_and(|o| o.op == "send")
}

/// How long to wait for the coordinator's reply to `line`: an inbox that waits gets its
/// wait and more.
fn reply_wait(line: &[u8]) -> Duration {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wait {
        wait_ms: Option<u64>,
    }
    let asked = if line.windows(8).any(|w| w == b"\"waitMs\"") {
        serde_json::from_slice::<Wait>(line)
            .ok()
            .and_then(|w| w.wait_ms)
            .unwrap_or(0)
    } else {
        0
    };
    Duration::from_millis(asked.saturating_add(10_000))
}

/// A request of one connection, in the order of the connection, for the writer.
enum Pending {
    /// Answered here (or not passed on): these reply lines.
    Now(Vec<u8>),
    /// Passed on as request `seq` of `count` lines; answered by `deadline` or failed.
    Asked {
        seq: u64,
        count: usize,
        deadline: Instant,
    },
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
        let pipe = names::run_subject(run, "pipe");
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = s.cancelled() => return,
                    c = listener.accept() => c,
                };
                let Ok((conn, _)) = conn else { continue };
                tokio::spawn(serve_conn(client.clone(), pipe.clone(), conn, s.clone()));
            }
        });
        Ok(Bridge { path, stop })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One agent connection: its request lines to `pipe.<conn>` (each request's reply to
/// `<inbox>.<seq>`), an empty message once it ends; the replies written back in order.
async fn serve_conn(
    client: async_nats::Client,
    pipe: String,
    conn: tokio::net::UnixStream,
    stop: CancellationToken,
) {
    let (r, mut w) = conn.into_split();
    let inbox = client.new_inbox();
    let conn_token = inbox.rsplit('.').next().unwrap_or("c").to_owned();
    let subject = format!("{pipe}.{conn_token}");
    let replies = match client.subscribe(format!("{inbox}.*")).await {
        Ok(s) => s,
        Err(e) => {
            let _ = w
                .write_all(&line_of(&error_line(&format!(
                    "the run's coordinator cannot be reached over NATS: {e}"
                ))))
                .await;
            return;
        }
    };
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let writer = tokio::spawn(write_replies(w, rx, replies, stop.clone()));
    let mut r = BufReader::new(r);
    let mut carry: Option<Vec<u8>> = None;
    let mut seq: u64 = 0;
    loop {
        let line = match carry.take() {
            Some(l) => l,
            None => {
                let mut line = Vec::new();
                let n = tokio::select! {
                    () = stop.cancelled() => break,
                    n = read_line(&mut r, &mut line) => n,
                };
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => line,
                }
            }
        };
        let pending = if line.len() > MAX_LINE {
            Pending::Now(error_line("the request is too long"))
        } else {
            let wait = reply_wait(&line);
            let mut payload = line;
            let mut count = 1;
            if is_send(&payload) {
                // Sends already written behind this one go with it.
                while count < MAX_BATCH_LINES
                    && payload.len() < MAX_BATCH_BYTES
                    && r.buffer().contains(&b'\n')
                {
                    let mut next = Vec::new();
                    if !matches!(read_line(&mut r, &mut next).await, Ok(n) if n > 0) {
                        break;
                    }
                    if next.len() > MAX_LINE || !is_send(&next) {
                        carry = Some(next);
                        break;
                    }
                    payload.push(b'\n');
                    payload.extend_from_slice(&next);
                    count += 1;
                }
            }
            seq += 1;
            let reply = format!("{inbox}.{seq}");
            match client
                .publish_with_reply(subject.clone(), reply, payload.into())
                .await
            {
                Ok(()) => Pending::Asked {
                    seq,
                    count,
                    deadline: Instant::now() + wait,
                },
                Err(e) => Pending::Now(repeat(
                    &error_line(&format!(
                        "the run's coordinator cannot be reached over NATS: {e}"
                    )),
                    count,
                )),
            }
        };
        if tx.send(pending).await.is_err() {
            break;
        }
    }
    // The connection ended (or the bridge stops): the coordinator's end can close once
    // it has answered what came before.
    let _ = client.publish(subject, "".into()).await;
    drop(tx);
    let _ = writer.await;
}

/// The reply lines of each request of `rx`, in its order, written to `w`.
async fn write_replies(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Pending>,
    mut replies: async_nats::Subscriber,
    stop: CancellationToken,
) {
    // Replies that came before the one waited for (not expected: they are sent in turn).
    let mut early: HashMap<u64, async_nats::Message> = HashMap::new();
    let mut out = Vec::new();
    loop {
        let pending = tokio::select! {
            () = stop.cancelled() => return,
            p = rx.recv() => p,
        };
        let Some(pending) = pending else { return };
        let answer = match pending {
            Pending::Now(lines) => lines,
            Pending::Asked {
                seq,
                count,
                deadline,
            } => {
                let got = loop {
                    if let Some(m) = early.remove(&seq) {
                        break Some(m);
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep_until(deadline) => break None,
                        m = replies.next() => {
                            let Some(m) = m else { break None };
                            match m.subject.rsplit('.').next().and_then(|s| s.parse::<u64>().ok()) {
                                Some(s) if s == seq => break Some(m),
                                Some(s) if s > seq && early.len() < IN_FLIGHT => {
                                    early.insert(s, m);
                                }
                                // One already given up on.
                                _ => {}
                            }
                        }
                    }
                };
                answers(got, count)
            }
        };
        out.clear();
        out.extend_from_slice(&answer);
        out.push(b'\n');
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Exactly `count` reply lines from the coordinator's reply `got`, whatever came back.
fn answers(got: Option<async_nats::Message>, count: usize) -> Vec<u8> {
    let Some(m) = got else {
        return repeat(&error_line("no reply from the run's coordinator"), count);
    };
    if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return repeat(
            &error_line("the run's coordinator is not listening (has the run ended?)"),
            count,
        );
    }
    let mut lines: Vec<&[u8]> = m.payload.split(|b| *b == b'\n').collect();
    if lines.len() == count {
        return m.payload.to_vec();
    }
    let missing = error_line("no reply from the run's coordinator");
    if lines.len() == 1 {
        // One error for all of them.
        return repeat(lines[0], count);
    }
    lines.resize(count, &missing);
    lines.join(&b'\n')
}

fn line_of(reply: &[u8]) -> Vec<u8> {
    let mut out = reply.to_vec();
    out.push(b'\n');
    out
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
        assert_eq!(reply_wait(br#"{"waitMs":"x"}"#), Duration::from_secs(10));
    }

    #[test]
    fn sends_are_told_apart() {
        assert!(is_send(br#"{"op":"send","to":"b"}"#));
        assert!(is_send(br#"{"to":"b","op":"s\u0065nd"}"#));
        assert!(!is_send(br#"{"op":"inbox"}"#));
        assert!(!is_send(b"not json"));
    }

    #[test]
    fn every_request_line_gets_one_reply_line() {
        assert_eq!(repeat(b"x", 3), b"x\nx\nx");
        let none = answers(None, 2);
        assert_eq!(none.split(|b| *b == b'\n').count(), 2);
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
