//! Agents' mailboxes in JetStream: the messaging crate's [`Transport`] for a run whose
//! agents work on other machines.
//!
//! Every envelope is published to its recipient's subject of the mail stream (file
//! storage) and read back by that recipient's durable consumer, one per agent, in order;
//! it stays in the stream until it is settled, and only then is it acknowledged there.
//! Claims, per-sender order and retry delays are served from a working set in the
//! coordinator's memory (the messaging crate's [`InProcess`]), filled in publish order
//! as the server confirms each envelope, so the contract of the trait holds exactly and
//! each envelope is offered to an agent once. What is durable where:
//! - a server restart: the stream is on disk; publishes are retried (with the same
//!   message id, so nothing is stored twice) until the server is back;
//! - a coordinator restart: `messages.jsonl` is the truth. The resumed coordinator puts
//!   back what was left queued there, under its own instance; copies an earlier instance
//!   left in the stream are acknowledged and dropped as they arrive, so none is
//!   delivered twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use relay_messaging::transport::{Ack, BoxFuture, InProcess, Transport, TransportError};
use relay_messaging::{Envelope, MessageId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::names;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The header naming the coordinator instance that published an envelope.
const EPOCH_HEADER: &str = "Relay-Epoch";
/// Longest a publish is retried (the server restarting) before the message fails.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(120);

/// What is known of one envelope's copy in the stream.
#[derive(Debug, Default)]
struct Copy {
    /// Where its acknowledgement goes, once the consumer has delivered it.
    reply: Option<async_nats::Subject>,
    /// Settled before the consumer delivered it: acknowledge on arrival.
    settled: bool,
}

type Publish = (Envelope, oneshot::Sender<Result<(), TransportError>>);

/// Mailboxes of run `run` in JetStream. See the module docs.
pub struct NatsTransport {
    client: async_nats::Client,
    js: jetstream::Context,
    run: String,
    epoch: String,
    local: Arc<InProcess>,
    copies: Arc<Mutex<HashMap<MessageId, Copy>>>,
    readers: Mutex<std::collections::HashSet<String>>,
    ack_wait: Duration,
    publish: mpsc::UnboundedSender<Publish>,
    stop: CancellationToken,
}

impl std::fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsTransport({})", self.run)
    }
}

impl Drop for NatsTransport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn mail_stream(js: &jetstream::Context) -> Result<stream::Stream, String> {
    let config = stream::Config {
        name: names::MAIL_STREAM.into(),
        subjects: vec![names::MAIL_SUBJECTS.into()],
        // One consumer per subject (agent): an acknowledged envelope is gone.
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    };
    crate::streams::ensure(js, config)
        .await
        .map_err(|e| format!("mail stream: {e}"))
}

impl NatsTransport {
    /// Mailboxes of run `run` for coordinator instance `epoch`; `ack_wait` is how long
    /// JetStream waits before it delivers an unacknowledged copy again (held copies are
    /// kept from that with in-progress acknowledgements; an earlier coordinator's come
    /// back after it and are dropped). Spawns its tasks on the current runtime.
    pub fn new(
        client: async_nats::Client,
        run: &str,
        epoch: u64,
        ack_wait: Duration,
    ) -> NatsTransport {
        let js = jetstream::new(client.clone());
        let local = Arc::new(InProcess::new());
        let copies: Arc<Mutex<HashMap<MessageId, Copy>>> = Arc::default();
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let epoch = format!("{epoch:016x}");
        tokio::spawn(publisher(
            js.clone(),
            run.to_owned(),
            epoch.clone(),
            local.clone(),
            rx,
            stop.clone(),
        ));
        NatsTransport {
            client,
            js,
            run: run.to_owned(),
            epoch,
            local,
            copies,
            readers: Mutex::new(Default::default()),
            ack_wait,
            publish: tx,
            stop,
        }
    }

    /// Starts the reader of `agent`'s mailbox, once.
    fn read(&self, agent: &str) {
        if !lock(&self.readers).insert(agent.to_owned()) {
            return;
        }
        tokio::spawn(reader(Reader {
            js: self.js.clone(),
            client: self.client.clone(),
            run: self.run.clone(),
            agent: agent.to_owned(),
            epoch: self.epoch.clone(),
            copies: self.copies.clone(),
            ack_wait: self.ack_wait,
            stop: self.stop.clone(),
        }));
    }

    fn settle(&self, id: MessageId) {
        let reply = {
            let mut copies = lock(&self.copies);
            match copies.get_mut(&id) {
                Some(c) if c.reply.is_some() => copies.remove(&id).and_then(|c| c.reply),
                Some(c) => {
                    c.settled = true;
                    None
                }
                None => None,
            }
        };
        if let Some(reply) = reply {
            let client = self.client.clone();
            tokio::spawn(async move {
                let _ = client.publish(reply, "+ACK".into()).await;
            });
        }
    }
}

/// Publishes envelopes in the order they were handed over, many in flight at once; each
/// joins the working set once the server has it.
async fn publisher(
    js: jetstream::Context,
    run: String,
    epoch: String,
    local: Arc<InProcess>,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    stop: CancellationToken,
) {
    if let Err(e) = mail_stream(&js).await {
        tracing::warn!("{e}");
    }
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<(
        Envelope,
        oneshot::Sender<Result<(), TransportError>>,
        Result<jetstream::context::PublishAckFuture, String>,
    )>();
    let send = move |env: &Envelope| {
        let js = js.clone();
        let subject = names::mail_subject(&run, &env.to);
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{run}-{epoch}-{}", env.id.0).as_str(),
        );
        headers.insert(EPOCH_HEADER, epoch.as_str());
        let payload = serde_json::to_vec(env).unwrap_or_default();
        async move {
            js.publish_with_headers(subject, headers, payload.into())
                .await
                .map_err(|e| e.to_string())
        }
    };
    // Confirmations are awaited in order, while later envelopes are already sent.
    let confirm = {
        let local = local.clone();
        let send = send.clone();
        tokio::spawn(async move {
            while let Some((env, done, sent)) = acks_rx.recv().await {
                let mut res = match sent {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
                while res.is_err() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    res = match send(&env).await {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                }
                let res = match res {
                    Ok(()) => {
                        let _ = local.publish(env).await;
                        Ok(())
                    }
                    Err(e) => Err(TransportError::Other(format!(
                        "the NATS server did not take the message: {e}"
                    ))),
                };
                let _ = done.send(res);
            }
        })
    };
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => break,
            i = rx.recv() => i,
        };
        let Some((env, done)) = item else { break };
        let sent = send(&env).await;
        if acks_tx.send((env, done, sent)).is_err() {
            break;
        }
    }
    drop(acks_tx);
    let _ = confirm.await;
}

/// Reads `agent`'s durable consumer: notes where each copy's acknowledgement goes,
/// acknowledges copies already settled and those of earlier coordinators, and keeps
/// held copies from redelivery.
/// What the reader of one mailbox works with.
struct Reader {
    js: jetstream::Context,
    client: async_nats::Client,
    run: String,
    agent: String,
    epoch: String,
    copies: Arc<Mutex<HashMap<MessageId, Copy>>>,
    ack_wait: Duration,
    stop: CancellationToken,
}

async fn reader(r: Reader) {
    let Reader {
        js,
        client,
        run,
        agent,
        epoch,
        copies,
        ack_wait,
        stop,
    } = r;
    let name = names::mail_consumer(&run, &agent);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let consumer = match mail_stream(&js).await {
            Ok(s) => s
                .get_or_create_consumer(
                    &name,
                    consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        filter_subject: names::mail_subject(&run, &agent),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait,
                        max_ack_pending: 20_000,
                        inactive_threshold: Duration::from_secs(24 * 3600),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    continue;
                }
            },
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let mut keep = tokio::time::interval(ack_wait / 3);
        loop {
            let m = tokio::select! {
                () = stop.cancelled() => return,
                m = messages.next() => m,
                _ = keep.tick() => {
                    let held: Vec<async_nats::Subject> = lock(&copies)
                        .values()
                        .filter_map(|c| c.reply.clone())
                        .collect();
                    for r in held {
                        let _ = client.publish(r, "+WPI".into()).await;
                    }
                    continue;
                }
            };
            let m = match m {
                Some(Ok(m)) => m,
                // The server went away or the consumer was lost: set up again.
                Some(Err(_)) | None => break,
            };
            let Some(reply) = m.message.reply.clone() else {
                continue;
            };
            let mine = m
                .message
                .headers
                .as_ref()
                .and_then(|h| h.get(EPOCH_HEADER))
                .is_some_and(|v| v.as_str() == epoch);
            let id = serde_json::from_slice::<Envelope>(&m.message.payload)
                .ok()
                .map(|e| e.id);
            let ack_now = match (mine, id) {
                (true, Some(id)) => {
                    let mut copies = lock(&copies);
                    match copies.get_mut(&id) {
                        Some(c) if c.settled => {
                            copies.remove(&id);
                            true
                        }
                        Some(c) => {
                            c.reply = Some(reply.clone());
                            false
                        }
                        // Settled and forgotten, or a redelivery of one.
                        None => true,
                    }
                }
                // An earlier coordinator's copy (messages.jsonl put it back), or
                // unreadable.
                _ => true,
            };
            if ack_now {
                let _ = client.publish(reply, "+ACK".into()).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Transport for NatsTransport {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
        self.read(&envelope.to);
        lock(&self.copies).insert(envelope.id, Copy::default());
        let (tx, rx) = oneshot::channel();
        // Handed over now, at the call: the order of calls is the order.
        let sent = self.publish.send((envelope, tx)).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(TransportError::Closed);
            }
            rx.await.unwrap_or(Err(TransportError::Closed))
        })
    }

    fn claim<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Result<Envelope, TransportError>> {
        self.read(recipient);
        self.local.claim(recipient)
    }

    fn fetch<'a>(
        &'a self,
        recipient: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Envelope>, TransportError>> {
        self.local.fetch(recipient, max)
    }

    fn ack(&self, recipient: &str, id: MessageId, ack: Ack) {
        self.local.ack(recipient, id, ack);
        if ack == Ack::Done {
            self.settle(id);
        }
    }

    fn drain<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Vec<Envelope>> {
        Box::pin(async move {
            let drained = self.local.drain(recipient).await;
            for e in &drained {
                self.settle(e.id);
            }
            drained
        })
    }
}
