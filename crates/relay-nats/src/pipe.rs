//! The coordinator's end of the workers' socket bridges (bridge.rs): each
//! agent connection on a worker gets a connection of its own to the run's socket, its
//! requests (`run.<id>.pipe.<conn>`, one or several request lines each) written to it in
//! the order they came and answered in turn, each request's reply lines to its reply
//! subject. The next requests are written while earlier ones are still being answered.
//! An empty message without a reply subject says the agent's connection ended; one not
//! used for [`IDLE`] is closed too (a worker that went away says nothing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::connect::NatsError;
use crate::names;
use crate::wire::{error_line, repeat};

/// How long a connection to the run's socket is kept with nothing asked of it.
pub const IDLE: Duration = Duration::from_secs(120);

/// Most bytes of requests written to the run's socket at once.
const MAX_WRITE: usize = 256 * 1024;

/// One request of an agent connection: its lines and where its reply lines go.
struct Request {
    lines: bytes::Bytes,
    reply: async_nats::Subject,
}

/// An agent connection's end here.
struct Conn {
    requests: mpsc::UnboundedSender<Request>,
    done: tokio::sync::watch::Receiver<bool>,
}

/// Listens for the requests of agents on workers of run `run` and answers them from the
/// run's socket at `socket`, until `stop`. Once this returns the server has the
/// subscription: a worker's first request finds a responder.
pub async fn serve(
    client: async_nats::Client,
    run: &str,
    socket: PathBuf,
    stop: CancellationToken,
) -> Result<(), NatsError> {
    let mut requests = client
        .subscribe(format!("{}.*", names::run_subject(run, "pipe")))
        .await
        .map_err(|e| NatsError::JetStream(format!("cannot listen for workers: {e}")))?;
    crate::connect::round_trip(&client)
        .await
        .map_err(|e| NatsError::JetStream(format!("cannot listen for workers: {e}")))?;
    let socket: Arc<Path> = socket.into();
    tokio::spawn(async move {
        let mut conns: HashMap<String, Conn> = HashMap::new();
        let mut opened = 0usize;
        loop {
            let m = tokio::select! {
                () = stop.cancelled() => return,
                m = requests.next() => m,
            };
            let Some(m) = m else { return };
            let Some(conn) = m.subject.rsplit('.').next() else {
                continue;
            };
            let Some(reply) = m.reply else {
                // The agent's connection ended: this end closes once it has answered.
                conns.remove(conn);
                continue;
            };
            let mut req = Request {
                lines: m.payload,
                reply,
            };
            if let Some(c) = conns.get(conn) {
                match c.requests.send(req) {
                    Ok(()) => continue,
                    // Closed for idleness just now: a new one, after it.
                    Err(e) => req = e.0,
                }
            }
            let before = conns.remove(conn).map(|c| c.done);
            let c = open(client.clone(), socket.clone(), before, stop.clone());
            let _ = c.requests.send(req);
            conns.insert(conn.to_owned(), c);
            opened += 1;
            if opened.is_multiple_of(256) {
                conns.retain(|_, c| !c.requests.is_closed());
            }
        }
    });
    Ok(())
}

/// Starts the end of one agent connection: a connection to `socket`, once the earlier
/// end of the same agent connection (`before`) has answered everything it took.
fn open(
    client: async_nats::Client,
    socket: Arc<Path>,
    before: Option<tokio::sync::watch::Receiver<bool>>,
    stop: CancellationToken,
) -> Conn {
    let (tx, rx) = mpsc::unbounded_channel();
    let (done_tx, done) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if let Some(mut b) = before {
            let _ = b.wait_for(|d| *d).await;
        }
        run_conn(client, &socket, rx, stop).await;
        let _ = done_tx.send(true);
    });
    Conn { requests: tx, done }
}

async fn run_conn(
    client: async_nats::Client,
    socket: &Path,
    mut rx: mpsc::UnboundedReceiver<Request>,
    stop: CancellationToken,
) {
    let (r, mut w) = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s.into_split(),
        Err(e) => {
            let why = format!("the run's socket cannot be reached: {e}");
            rx.close();
            while let Some(req) = rx.recv().await {
                fail(&client, req.reply, count(&req.lines), &why).await;
            }
            return;
        }
    };
    let (asked_tx, asked_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_replies(client.clone(), r, asked_rx));
    let mut out = Vec::new();
    let mut batch = Vec::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            n = tokio::time::timeout(IDLE, rx.recv()) => n,
        };
        let first = match next {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                // Nothing asked for a while: take no more; what came meanwhile is
                // still answered.
                rx.close();
                continue;
            }
        };
        // Everything already here goes in one write.
        out.clear();
        batch.clear();
        push(&mut out, &mut batch, first);
        while out.len() < MAX_WRITE {
            match rx.try_recv() {
                Ok(r) => push(&mut out, &mut batch, r),
                Err(_) => break,
            }
        }
        if let Err(e) = write(&mut w, &out).await {
            let why = format!("the run's socket failed: {e}");
            for (n, reply) in batch.drain(..) {
                fail(&client, reply, n, &why).await;
            }
            continue;
        }
        for asked in batch.drain(..) {
            let _ = asked_tx.send(asked);
        }
    }
    drop(asked_tx);
    let _ = reader.await;
}

fn push(out: &mut Vec<u8>, batch: &mut Vec<(usize, async_nats::Subject)>, r: Request) {
    out.extend_from_slice(&r.lines);
    out.push(b'\n');
    batch.push((count(&r.lines), r.reply));
}

async fn write(w: &mut OwnedWriteHalf, out: &[u8]) -> std::io::Result<()> {
    w.write_all(out).await
}

/// The reply lines of each request written, in turn, to its reply subject.
async fn read_replies(
    client: async_nats::Client,
    r: OwnedReadHalf,
    mut asked: mpsc::UnboundedReceiver<(usize, async_nats::Subject)>,
) {
    let mut r = BufReader::new(r);
    let mut broken: Option<String> = None;
    while let Some((n, reply)) = asked.recv().await {
        if let Some(why) = &broken {
            fail(&client, reply, n, why).await;
            continue;
        }
        let mut out = Vec::new();
        for i in 0..n {
            if i > 0 {
                out.push(b'\n');
            }
            let at = out.len();
            match r.read_until(b'\n', &mut out).await {
                Ok(_) if out.last() == Some(&b'\n') => {
                    out.pop();
                }
                res => {
                    out.truncate(at);
                    let why = match res {
                        Err(e) => format!("the run's socket failed: {e}"),
                        Ok(_) => "the run's socket closed before it answered".to_owned(),
                    };
                    out.extend_from_slice(&repeat(&error_line(&why), n - i));
                    broken = Some(why);
                    break;
                }
            }
        }
        let _ = client.publish(reply, out.into()).await;
    }
}

/// How many request lines `lines` holds.
fn count(lines: &[u8]) -> usize {
    lines.iter().filter(|b| **b == b'\n').count() + 1
}

async fn fail(client: &async_nats::Client, reply: async_nats::Subject, n: usize, why: &str) {
    let _ = client
        .publish(reply, repeat(&error_line(why), n).into())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_counted() {
        assert_eq!(count(b"{}"), 1);
        assert_eq!(count(b"{}\n{}\n{}"), 3);
    }
}
