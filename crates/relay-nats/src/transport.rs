//! Agents' mailboxes in JetStream: the messaging crate's [`Transport`] for a run whose
//! agents work on other machines.
//!
//! Every envelope is published to its recipient's subject of the mail stream (file
//! storage) and read back by that recipient's durable consumer, one per agent, in order;
//! it stays in the stream until it is settled, and only then is it acknowledged there.
//! Envelopes handed over together are stored together: one stream message per recipient
//! holds all of that recipient's (a batch, up to [`MAX_BATCH`]), so a burst of sends costs
//! one publish and one server confirmation per batch, and one acknowledgement once the
//! batch's last envelope is settled (see `copies`). Under no load a batch is one envelope:
//! nothing waits to fill one.
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

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use relay_messaging::transport::{Ack, BoxFuture, InProcess, Transport, TransportError};
use relay_messaging::{Envelope, MessageId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::copies::Copies;
use crate::names;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The header naming the coordinator instance that published an envelope.
const EPOCH_HEADER: &str = "Relay-Epoch";
/// The header listing the ids of the envelopes a stream message holds: the mailbox
/// consumers deliver headers only (the coordinator has the envelopes; it reads the
/// stream back only to learn where each batch is acknowledged).
const IDS_HEADER: &str = "Relay-Ids";
/// Longest a publish is retried (the server restarting) before the message fails.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(120);
/// Most envelopes stored in one stream message.
pub const MAX_BATCH: usize = 512;
/// Most bytes of envelopes in one stream message (well under the server's usual 1 MiB
/// payload limit; a larger envelope goes alone).
const MAX_BATCH_BYTES: usize = 256 * 1024;

type Publish = (Envelope, oneshot::Sender<Result<(), TransportError>>);
type Shared = Arc<Mutex<Copies<async_nats::Subject>>>;

/// Mailboxes of run `run` in JetStream. See the module docs.
pub struct NatsTransport {
    client: async_nats::Client,
    js: jetstream::Context,
    run: String,
    epoch: String,
    local: Arc<InProcess>,
    copies: Shared,
    readers: Mutex<std::collections::HashSet<String>>,
    ack_wait: Duration,
    publish: mpsc::UnboundedSender<Publish>,
    acks: mpsc::UnboundedSender<async_nats::Subject>,
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
        NatsTransport::with_batch(client, run, epoch, ack_wait, MAX_BATCH)
    }

    /// As [`NatsTransport::new`], storing at most `batch` envelopes per stream message
    /// (1: one publish and one confirmation per envelope, for comparison).
    pub fn with_batch(
        client: async_nats::Client,
        run: &str,
        epoch: u64,
        ack_wait: Duration,
        batch: usize,
    ) -> NatsTransport {
        let js = jetstream::new(client.clone());
        let local = Arc::new(InProcess::new());
        let copies: Shared = Arc::default();
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let epoch = format!("{epoch:016x}");
        tokio::spawn(publisher(
            Publisher {
                js: js.clone(),
                run: run.to_owned(),
                epoch: epoch.clone(),
                local: local.clone(),
                copies: copies.clone(),
                batch: batch.clamp(1, MAX_BATCH),
            },
            rx,
            stop.clone(),
        ));
        let (acks, acks_rx) = mpsc::unbounded_channel();
        tokio::spawn(acker(client.clone(), acks_rx));
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
            acks,
            stop,
        }
    }

    /// Starts the reader of `agent`'s mailbox, once.
    fn read(&self, agent: &str) {
        {
            // Called for every envelope: the name is copied only the first time.
            let mut readers = lock(&self.readers);
            if readers.contains(agent) {
                return;
            }
            readers.insert(agent.to_owned());
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
        if let Some(reply) = lock(&self.copies).settled(id) {
            let _ = self.acks.send(reply);
        }
    }
}

/// Sends the acknowledgements of settled batches, in the order they were settled.
async fn acker(client: async_nats::Client, mut rx: mpsc::UnboundedReceiver<async_nats::Subject>) {
    while let Some(reply) = rx.recv().await {
        let _ = client.publish(reply, "+ACK".into()).await;
    }
}

/// What the publisher works with.
struct Publisher {
    js: jetstream::Context,
    run: String,
    epoch: String,
    local: Arc<InProcess>,
    copies: Shared,
    batch: usize,
}

/// Envelopes of one recipient stored as one stream message.
struct Batch {
    to: String,
    items: Vec<Publish>,
    payload: Vec<u8>,
}

impl Batch {
    fn first(&self) -> MessageId {
        self.items.first().map_or(MessageId(0), |(e, _)| e.id)
    }

    /// The ids of the batch's envelopes, for [`IDS_HEADER`].
    fn ids(&self) -> String {
        let ids: Vec<String> = self.items.iter().map(|(e, _)| e.id.0.to_string()).collect();
        ids.join(",")
    }
}

/// The handed-over envelopes grouped into batches: per recipient, in the order they were
/// handed over; a batch ends at `max` envelopes or [`MAX_BATCH_BYTES`].
fn batches(items: Vec<Publish>, max: usize) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for (env, done) in items {
        // Our envelopes have no maps with non-string keys: this cannot fail.
        let bytes = serde_json::to_vec(&env).unwrap_or_default();
        let fits =
            |b: &Batch| b.items.len() < max && b.payload.len() + bytes.len() < MAX_BATCH_BYTES;
        let at = match open.get(&env.to) {
            Some(&i) if fits(&out[i]) => i,
            _ => {
                out.push(Batch {
                    to: env.to.clone(),
                    items: Vec::new(),
                    payload: vec![b'['],
                });
                open.insert(env.to.clone(), out.len() - 1);
                out.len() - 1
            }
        };
        let b = &mut out[at];
        if b.payload.len() > 1 {
            b.payload.push(b',');
        }
        b.payload.extend_from_slice(&bytes);
        b.items.push((env, done));
    }
    for b in &mut out {
        b.payload.push(b']');
    }
    out
}

/// Publishes envelopes in the order they were handed over: whatever has been handed over
/// while the previous batches were sent goes out together, one stream message per
/// recipient, many in flight at once; each joins the working set once the server has it.
async fn publisher(
    p: Publisher,
    mut rx: mpsc::UnboundedReceiver<Publish>,
    stop: CancellationToken,
) {
    if let Err(e) = mail_stream(&p.js).await {
        tracing::warn!("{e}");
    }
    type Sent = Result<jetstream::context::PublishAckFuture, String>;
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<(Batch, Sent)>();
    let send = {
        let (js, run, epoch) = (p.js.clone(), p.run.clone(), p.epoch.clone());
        move |b: &Batch| {
            let js = js.clone();
            let subject = names::mail_subject(&run, &b.to);
            let mut headers = HeaderMap::new();
            // The first envelope's id names the batch: a retry stores nothing twice.
            headers.insert(
                "Nats-Msg-Id",
                format!("{run}-{epoch}-{}", b.first().0).as_str(),
            );
            headers.insert(EPOCH_HEADER, epoch.as_str());
            headers.insert(IDS_HEADER, b.ids().as_str());
            let payload = b.payload.clone();
            async move {
                js.publish_with_headers(subject, headers, payload.into())
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    };
    // Confirmations are awaited in order, while later batches are already sent.
    let confirm = {
        let (local, copies) = (p.local.clone(), p.copies.clone());
        let send = send.clone();
        tokio::spawn(async move {
            while let Some((batch, sent)) = acks_rx.recv().await {
                let mut res = match sent {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
                while res.is_err() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    res = match send(&batch).await {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                }
                match res {
                    Ok(()) => {
                        for (env, done) in batch.items {
                            let _ = local.publish(env).await;
                            let _ = done.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        for (env, done) in batch.items {
                            lock(&copies).forget(env.id);
                            let _ = done.send(Err(TransportError::Other(format!(
                                "the NATS server did not take the message: {e}"
                            ))));
                        }
                    }
                }
            }
        })
    };
    'run: loop {
        let item = tokio::select! {
            () = stop.cancelled() => break,
            i = rx.recv() => i,
        };
        let Some(first) = item else { break };
        let mut items = vec![first];
        while items.len() < MAX_BATCH * 4 {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        for b in batches(items, p.batch) {
            let sent = send(&b).await;
            if acks_tx.send((b, sent)).is_err() {
                break 'run;
            }
        }
    }
    drop(acks_tx);
    let _ = confirm.await;
}

/// The ids of the envelopes a stream message holds (a batch, or one envelope).
fn ids_of(payload: &[u8]) -> Option<Vec<MessageId>> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: MessageId,
    }
    match serde_json::from_slice::<Vec<Id>>(payload) {
        Ok(v) => Some(v.into_iter().map(|i| i.id).collect()),
        Err(_) => serde_json::from_slice::<Id>(payload)
            .ok()
            .map(|i| vec![i.id]),
    }
}

/// What the reader of one mailbox works with.
struct Reader {
    js: jetstream::Context,
    client: async_nats::Client,
    run: String,
    agent: String,
    epoch: String,
    copies: Shared,
    ack_wait: Duration,
    stop: CancellationToken,
}

/// Reads `agent`'s durable consumer: notes where each batch's acknowledgement goes,
/// acknowledges batches already settled and those of earlier coordinators, and keeps
/// held batches from redelivery.
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
                        headers_only: true,
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
                    let held = lock(&copies).held();
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
            let headers = m.message.headers.as_ref();
            let mine = headers
                .and_then(|h| h.get(EPOCH_HEADER))
                .is_some_and(|v| v.as_str() == epoch);
            let ids = match headers.and_then(|h| h.get(IDS_HEADER)) {
                Some(v) => v
                    .as_str()
                    .split(',')
                    .map(|i| i.parse().map(MessageId))
                    .collect::<Result<Vec<_>, _>>()
                    .ok(),
                // A consumer made before deliveries were headers only.
                None => ids_of(&m.message.payload),
            };
            let ack_now = match (mine, ids) {
                (true, Some(ids)) => lock(&copies).arrived(&ids, reply.clone()).is_some(),
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
        lock(&self.copies).sent(envelope.id);
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
