//! A person at an agent's terminal (`agent-relay attach`): each session listens on a
//! unix socket beside its transcript (`attempt-N.attach`). One person at a time connects;
//! the session greets them with one byte (ACK) and writes whatever they type to the PTY.
//! While someone is connected the session offers the agent no relayed messages: they
//! stay queued and are typed in after the person leaves. What the agent shows, the
//! person reads from the transcript, so a slow reader never holds up the session.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The byte a session greets an attached person with.
pub const GREETING: u8 = 0x06;

/// Longest socket path the kernel takes (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the session whose transcript is `transcript` takes a person: beside it, or in
/// the temp directory (named after the transcript's path) when that path is too long.
pub fn socket_path(transcript: &Path) -> PathBuf {
    let beside = transcript.with_extension("attach");
    if beside.as_os_str().len() <= MAX_SOCKET_PATH {
        return beside;
    }
    let full = std::path::absolute(transcript).unwrap_or_else(|_| transcript.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in full.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("agent-relay-attach-{h:016x}.sock"))
}

/// What the attach point saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A person connected.
    Attached,
    /// They typed these bytes.
    Typed(Vec<u8>),
    /// They left.
    Detached,
}

/// The session's listening socket and the person connected to it, if any.
pub struct AttachPoint {
    listener: UnixListener,
    path: PathBuf,
    person: Option<UnixStream>,
    buf: Vec<u8>,
}

impl AttachPoint {
    /// Listens at [`socket_path`] of `transcript` (a stale socket there is replaced);
    /// only the user may connect.
    pub fn open(transcript: &Path) -> std::io::Result<AttachPoint> {
        use std::os::unix::fs::PermissionsExt;
        let path = socket_path(transcript);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(AttachPoint {
            listener,
            path,
            person: None,
            buf: vec![0; 4096],
        })
    }

    /// Whether a person is connected.
    pub fn attached(&self) -> bool {
        self.person.is_some()
    }

    /// The next thing that happens: a person connects (while nobody is), types, or leaves.
    pub async fn next(&mut self) -> Seen {
        loop {
            match &mut self.person {
                None => match self.listener.accept().await {
                    Ok((mut s, _)) => {
                        if s.write_all(&[GREETING]).await.is_ok() {
                            self.person = Some(s);
                            return Seen::Attached;
                        }
                    }
                    Err(_) => std::future::pending::<()>().await,
                },
                Some(s) => match s.read(&mut self.buf).await {
                    Ok(0) | Err(_) => {
                        self.person = None;
                        return Seen::Detached;
                    }
                    Ok(n) => return Seen::Typed(self.buf[..n].to_vec()),
                },
            }
        }
    }
}

impl Drop for AttachPoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sits_beside_the_transcript_unless_the_path_is_too_long() {
        assert_eq!(
            socket_path(Path::new("/r/steps/s/attempt-2.pty")),
            PathBuf::from("/r/steps/s/attempt-2.attach")
        );
        let long = format!("/{}/attempt-1.pty", "d".repeat(120));
        let p = socket_path(Path::new(&long));
        assert!(p.as_os_str().len() <= MAX_SOCKET_PATH, "{}", p.display());
        assert_eq!(p, socket_path(Path::new(&long)), "the same name every time");
        assert_ne!(
            p,
            socket_path(Path::new(&format!("/{}/attempt-2.pty", "d".repeat(120))))
        );
    }

    #[tokio::test]
    async fn one_person_at_a_time_is_greeted_heard_and_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("attempt-1.pty");
        let mut point = AttachPoint::open(&transcript).unwrap();
        let path = socket_path(&transcript);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let mut person = UnixStream::connect(&path).await.unwrap();
        assert_eq!(point.next().await, Seen::Attached);
        assert!(point.attached());
        let mut greeting = [0u8; 1];
        person.read_exact(&mut greeting).await.unwrap();
        assert_eq!(greeting[0], GREETING);
        person.write_all(b"hello\r").await.unwrap();
        assert_eq!(point.next().await, Seen::Typed(b"hello\r".to_vec()));
        drop(person);
        assert_eq!(point.next().await, Seen::Detached);
        assert!(!point.attached());
        drop(point);
        assert!(!path.exists(), "the socket goes with the session");
    }
}
