//! A blocking client of the run's socket, for the `agent-relay` commands (short-lived
//! processes with no async runtime) and for tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{MAX_LINE_BYTES, Reply, Request};

/// Extra time a reply may take beyond what the request itself waits.
const REPLY_GRACE: Duration = Duration::from_secs(30);

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket path.
    #[error("no run is reachable at {}: {source}", path.display())]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The connection broke.
    #[error("lost the connection to the run at {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The run took the request but gave no reply in time.
    #[error(
        "the run at {} gave no reply within {} s (is its coordinator stopped or overloaded?)",
        path.display(),
        waited.as_secs()
    )]
    NoAnswer {
        /// The socket path.
        path: PathBuf,
        /// How long the reply was waited for.
        waited: Duration,
    },
    /// The run answered something unreadable.
    #[error("unexpected answer from the run: {0}")]
    Protocol(String),
}

/// A connection to a run's socket.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    token: Option<String>,
    grace: Duration,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Unreachable {
            path: path.to_path_buf(),
            source,
        })?;
        let writer = stream.try_clone().map_err(|source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            token: None,
            grace: REPLY_GRACE,
        })
    }

    /// Presents `token` with every request from now on.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// Waits `grace` for a reply beyond what the request itself waits (30 s unless set).
    pub fn with_reply_grace(mut self, grace: Duration) -> Client {
        self.grace = grace;
        self
    }

    /// Sends `req` and reads its reply.
    pub fn request(&mut self, req: &Request) -> Result<Reply, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let waits = match req {
            Request::Inbox { wait_ms, .. }
            | Request::Claim { wait_ms, .. }
            | Request::Ask { wait_ms, .. } => Duration::from_millis(wait_ms.unwrap_or(0)),
            Request::StateWatch { wait_ms, .. } => Duration::from_millis(*wait_ms),
            _ => Duration::ZERO,
        };
        let waited = waits + self.grace;
        self.reader
            .get_ref()
            .set_read_timeout(Some(waited))
            .map_err(io)?;
        self.writer
            .set_write_timeout(Some(self.grace))
            .map_err(io)?;
        let timed_out = |source: std::io::Error, waited: Duration| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                ClientError::NoAnswer {
                    path: self.path.clone(),
                    waited,
                }
            } else {
                io(source)
            }
        };
        let authed = crate::protocol::Authed {
            request: req.clone(),
            token: self.token.clone(),
        };
        let mut line =
            serde_json::to_vec(&authed).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| timed_out(e, self.grace))?;
        let mut answer = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 * 64)
            .read_until(b'\n', &mut answer)
            .map_err(|e| timed_out(e, waited))?;
        if n == 0 {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the run closed the connection",
            )));
        }
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_takes_a_request_and_never_answers_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Accepts and reads, never answers.
        let held = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 256];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut c = Client::connect(&path)
            .unwrap()
            .with_reply_grace(Duration::from_millis(200));
        let e = c.request(&Request::Agents).unwrap_err();
        assert!(matches!(e, ClientError::NoAnswer { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("gave no reply") && text.contains("silent.sock"),
            "{text}"
        );
        drop(c);
        held.join().unwrap();
    }
}
