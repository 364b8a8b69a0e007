//! `--events-json`: every event of the run as one JSON object per line on stdout (the
//! lines of the run's `events.jsonl`), for programs that drive `agent-relay` (the SDKs).
//! With `--json` the summary follows as the last line.
//!
//! Writing to a pipe can block when the reader is slow, so the lines are written by a
//! thread of their own, never on the async runtime; the run waits for it to drain before
//! the summary is printed, so the summary is always last.

use std::io::Write;

use relay_engine::events::Event;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The thread writing event lines, and how to wait for it.
pub struct Writer {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Waits until every event line passed on has been written (the events' sender, the
    /// engine, must have closed its channel first).
    pub async fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Passes `events` on to the returned receiver and writes each as a JSON line on stdout.
/// When the thread cannot be started the events are passed on unwritten and a warning
/// says so.
pub fn tee(mut events: UnboundedReceiver<Event>) -> (UnboundedReceiver<Event>, Writer) {
    let (tx, rx) = unbounded_channel();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let thread = std::thread::Builder::new()
        .name("events-json".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            for line in lines_rx {
                let mut out = stdout.lock();
                // A reader that went away must not stop the run; its lines are dropped.
                let _ = writeln!(out, "{line}").and_then(|_| out.flush());
            }
        });
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("warning: --events-json: cannot start the writer: {e}");
            None
        }
    };
    let writing = thread.is_some();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if writing {
                match serde_json::to_string(&e) {
                    Ok(line) => {
                        let _ = lines_tx.send(line);
                    }
                    Err(err) => eprintln!("warning: cannot encode an event: {err}"),
                }
            }
            if tx.send(e).is_err() {
                break;
            }
        }
        // Dropping `lines_tx` here ends the writer once it has written everything.
    });
    (rx, Writer { thread })
}
