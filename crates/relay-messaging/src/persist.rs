//! `messages.jsonl`: every state change of every message, one JSON line each, appended
//! by a writer thread so that senders never wait for the disk; and reading the file
//! back into each message's final state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use crate::model::{MessageId, MessageState, Record, Target};

/// The file name in the run directory.
pub const MESSAGES_FILE: &str = "messages.jsonl";

#[derive(Debug)]
enum Op {
    Write(Record),
    Sync(oneshot::Sender<()>),
}

/// Appends records to a log file on a thread of its own.
#[derive(Debug, Clone)]
pub struct Persist {
    tx: Option<UnboundedSender<Op>>,
}

impl Persist {
    /// Appends to `path` (created if needed). The thread ends when the last clone is
    /// dropped, after writing everything it was given.
    pub fn open(path: &Path) -> std::io::Result<Persist> {
        use std::os::unix::fs::OpenOptionsExt;
        // Messages are private to the user, whatever the umask.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = unbounded_channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("relay-messages-log".into())
            .spawn(move || write_loop(file, &path, rx))?;
        Ok(Persist { tx: Some(tx) })
    }

    /// Keeps nothing (tests and benchmarks of the routing alone).
    pub fn none() -> Persist {
        Persist { tx: None }
    }

    /// Queues `record` for the file.
    pub fn write(&self, record: Record) {
        if let Some(tx) = &self.tx {
            // The thread only stops when every sender is gone, so this cannot fail.
            let _ = tx.send(Op::Write(record));
        }
    }

    /// Resolves once everything queued before it is in the file.
    pub async fn sync(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send(Op::Sync(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn write_loop(file: File, path: &Path, mut rx: UnboundedReceiver<Op>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut failed = false;
    let mut line = Vec::with_capacity(256);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Write what has piled up, then flush once: one syscall for a burst.
        while let Some(op) = next {
            match op {
                Op::Write(rec) => {
                    line.clear();
                    if serde_json::to_writer(&mut line, &rec).is_ok() {
                        line.push(b'\n');
                        if let Err(e) = out.write_all(&line)
                            && !failed
                        {
                            failed = true;
                            tracing::error!(path = %path.display(), "cannot write the message log: {e}");
                        }
                    }
                }
                Op::Sync(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush()
            && !failed
        {
            failed = true;
            tracing::error!(path = %path.display(), "cannot write the message log: {e}");
        }
        // Let the next records pile up for a moment rather than being woken for each
        // one: waking this thread costs the sender more than writing a line costs here.
        std::thread::sleep(PAUSE);
    }
}

/// How long the writer lets records pile up after each write; a record reaches the file
/// at most this late (a [`Persist::sync`] waits for it).
const PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// A message as the log tells it: its first record, folded with every later change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSummary {
    /// Its id.
    pub id: MessageId,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// How it was addressed.
    pub target: Option<Target>,
    /// The text.
    pub text: String,
    /// Its latest state.
    pub state: MessageState,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was sent (ms since the epoch).
    pub sent_ms: u64,
    /// When it last changed (ms since the epoch).
    pub updated_ms: u64,
}

/// What reading a log found.
#[derive(Debug, Default)]
pub struct LogContents {
    /// Every message, by id.
    pub messages: Vec<MessageSummary>,
    /// Lines that could not be read (1-based line number, why).
    pub bad_lines: Vec<(usize, String)>,
}

/// Messages folded from their records one at a time: each message's first record, with
/// every later change applied (a final state is never undone by a record after it).
#[derive(Debug, Default, Clone)]
pub struct MessageBook {
    by_id: BTreeMap<MessageId, MessageSummary>,
}

impl MessageBook {
    /// Applies one record; the id of the message it changed.
    pub fn apply(&mut self, rec: Record) -> MessageId {
        let entry = self.by_id.entry(rec.id).or_insert_with(|| MessageSummary {
            id: rec.id,
            from: rec.from.clone(),
            to: rec.to.clone(),
            target: None,
            text: String::new(),
            state: rec.state,
            reason: None,
            sent_ms: rec.ts_ms,
            updated_ms: rec.ts_ms,
        });
        if let Some(t) = rec.target {
            entry.target = Some(t);
        }
        if let Some(t) = rec.text {
            entry.text = t;
        }
        if !entry.state.is_final() || rec.state.is_final() {
            entry.state = rec.state;
            entry.reason = rec.reason;
        }
        entry.updated_ms = entry.updated_ms.max(rec.ts_ms);
        rec.id
    }

    /// Applies one line of the log; why it could not be read otherwise.
    pub fn apply_line(&mut self, line: &str) -> Result<Option<MessageId>, serde_json::Error> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let rec: Record = serde_json::from_str(line)?;
        Ok(Some(self.apply(rec)))
    }

    /// Every message, by id.
    pub fn messages(&self) -> impl Iterator<Item = &MessageSummary> {
        self.by_id.values()
    }

    /// How many messages there are.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Reads `path` into each message's latest state, by id. A missing file is an empty log.
pub fn read_log(path: &Path) -> std::io::Result<LogContents> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogContents::default()),
        Err(e) => return Err(e),
    };
    let mut book = MessageBook::default();
    let mut bad_lines = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        if let Err(e) = book.apply_line(&line?) {
            bad_lines.push((n + 1, e.to_string()));
        }
    }
    Ok(LogContents {
        messages: book.by_id.into_values().collect(),
        bad_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Envelope;

    #[tokio::test]
    async fn records_fold_into_final_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MESSAGES_FILE);
        let p = Persist::open(&path).unwrap();
        let env = |id: u64| Envelope {
            id: MessageId(id),
            from: "a".into(),
            to: "b".into(),
            target: Target::Agent("b".into()),
            text: format!("text {id}"),
            ts_ms: 10,
        };
        p.write(Record::first(&env(1), MessageState::Queued, None));
        p.write(Record::first(&env(2), MessageState::Queued, None));
        p.write(Record::change(&env(1), MessageState::Delivered, None));
        p.write(Record::change(
            &env(2),
            MessageState::Failed,
            Some("b ended".into()),
        ));
        p.sync().await;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"not json\n"))
            .unwrap();
        let log = read_log(&path).unwrap();
        assert_eq!(log.bad_lines.len(), 1);
        let states: Vec<_> = log.messages.iter().map(|m| (m.id.0, m.state)).collect();
        assert_eq!(
            states,
            [(1, MessageState::Delivered), (2, MessageState::Failed)]
        );
        assert_eq!(log.messages[1].reason.as_deref(), Some("b ended"));
        assert_eq!(log.messages[0].text, "text 1");
    }
}
