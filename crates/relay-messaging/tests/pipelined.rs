//! Sends written back to back on one connection of the run's socket, before any reply is
//! read: handed to the transport in the order written, their confirmations awaited
//! together, the replies in the order of the requests; a request of another kind waits
//! until everything before it is answered.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_messaging::transport::{Ack, BoxFuture, InProcess, Transport, TransportError};
use relay_messaging::{AgentInfo, AgentState, Broker, Envelope, MessageId, RouterConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

/// Mailboxes whose publishes are confirmed only once `gate` of them are waiting for it
/// (as a server confirms a batch): a client that waits for each reply before sending the
/// next would wait for ever.
struct Gated {
    inner: InProcess,
    gate: usize,
    waiting: Mutex<Vec<oneshot::Sender<()>>>,
}

impl Transport for Gated {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
        let queued = self.inner.publish(envelope);
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.waiting.lock().unwrap();
            w.push(tx);
            if w.len() >= self.gate {
                for t in w.drain(..) {
                    let _ = t.send(());
                }
            }
        }
        Box::pin(async move {
            let _ = rx.await;
            queued.await
        })
    }

    fn claim<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Result<Envelope, TransportError>> {
        self.inner.claim(recipient)
    }

    fn fetch<'a>(
        &'a self,
        recipient: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Envelope>, TransportError>> {
        self.inner.fetch(recipient, max)
    }

    fn ack(&self, recipient: &str, id: MessageId, ack: Ack) {
        self.inner.ack(recipient, id, ack);
    }

    fn drain<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Vec<Envelope>> {
        self.inner.drain(recipient)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_written_back_to_back_are_confirmed_together_and_answered_in_order() {
    const N: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(Gated {
        inner: InProcess::new(),
        gate: N,
        waiting: Mutex::new(Vec::new()),
    });
    let b = Broker::start_with_transport(dir.path(), "pipe", RouterConfig::default(), t)
        .await
        .unwrap();
    for a in ["a", "b"] {
        b.router().register(AgentInfo {
            name: a.into(),
            role: None,
            interactive: false,
            channels: Vec::new(),
            state: AgentState::Running,
        });
    }
    let token = b.access().agent_token("a").unwrap();
    let token_b = b.access().agent_token("b").unwrap();
    let s = tokio::net::UnixStream::connect(b.socket()).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut lines = String::new();
    for i in 0..N {
        let req = serde_json::json!({"op": "send", "from": "a", "to": "b", "text": format!("m{i}"), "token": token});
        lines.push_str(&format!("{req}\n"));
    }
    // An inbox behind them: carried out once the sends before it are answered.
    let inbox = serde_json::json!({"op": "inbox", "agent": "b", "max": 100, "token": token_b});
    lines.push_str(&format!("{inbox}\n"));
    w.write_all(lines.as_bytes()).await.unwrap();
    let mut r = BufReader::new(r);
    let mut replies = Vec::new();
    for _ in 0..=N {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("a reply: the sends were not confirmed together")
            .unwrap();
        replies.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    let ids: Vec<u64> = replies[..N]
        .iter()
        .map(|v| {
            assert_eq!(v["reply"], "sent", "{v}");
            v["receipts"][0]["id"].as_u64().unwrap()
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids out of order: {ids:?}"
    );
    let texts: Vec<&str> = replies[N]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
    b.shutdown("done").await;
}
