//! How envelopes travel from the router to their recipients: the `Transport` trait and
//! its in-process implementation.
//!
//! The trait speaks in ids, acknowledgements and a per-sender order, not in shared
//! memory, so that a networked implementation (NATS JetStream: a subject per recipient,
//! pull consumers, ack / nak-with-delay) can stand in for [`InProcess`] unchanged:
//!
//! - `publish` accepts an envelope; envelopes for one recipient are offered in the order
//!   of the `publish` calls, and the returned future resolves once the transport has
//!   acknowledged the envelope.
//! - `claim` / `fetch` hand an envelope to one consumer; nobody else is offered it until
//!   it is acked. An envelope is held back while an earlier envelope from the same sender
//!   to the same recipient is claimed or waiting to be retried, so a retry never lets a
//!   later message overtake an earlier one.
//! - `ack` settles a claimed envelope: done for good, or offered again after a delay.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::model::{Envelope, MessageId};

/// A boxed future, so the trait can be used as `dyn Transport`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a claimed envelope is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Finished with: delivered, read, or failed for good. Never offered again.
    Done,
    /// Not taken this time: offered again once `after` has passed.
    Retry {
        /// Delay before it is offered again.
        after: Duration,
    },
}

/// Why the transport could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The transport was shut down.
    #[error("the message transport is closed")]
    Closed,
    /// Anything else (a network transport's errors).
    #[error("message transport: {0}")]
    Other(String),
}

/// Carries envelopes to recipients' mailboxes. See the module docs for the contract.
pub trait Transport: Send + Sync + 'static {
    /// Accepts `envelope` for `envelope.to`; resolves when the transport acknowledges it.
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Waits for the next envelope of `recipient` that may be offered now and claims it.
    /// Dropping the future before it resolves claims nothing.
    fn claim<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Result<Envelope, TransportError>>;

    /// Claims, without waiting, up to `max` envelopes of `recipient` that may be offered
    /// now, oldest first.
    fn fetch<'a>(
        &'a self,
        recipient: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Envelope>, TransportError>>;

    /// Settles the claimed envelope `id` of `recipient`. Fire and forget: a networked
    /// transport sends the ack in the background.
    fn ack(&self, recipient: &str, id: MessageId, ack: Ack);

    /// Removes and returns every envelope of `recipient` that is not claimed: its agent
    /// ended and they will never be offered.
    fn drain<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Vec<Envelope>>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy)]
enum Hold {
    Ready,
    Claimed,
    RetryAt(Instant),
}

#[derive(Debug)]
struct Slot {
    env: Envelope,
    hold: Hold,
}

#[derive(Debug, Default)]
struct Mailbox {
    queue: Mutex<VecDeque<Slot>>,
    notify: Notify,
}

impl Mailbox {
    /// Claims up to `max` offerable envelopes; also when the earliest held-back retry
    /// becomes offerable, if any is waiting.
    fn take(&self, max: usize, now: Instant) -> (Vec<Envelope>, Option<Instant>) {
        let mut q = lock(&self.queue);
        let mut taken = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        let mut wake: Option<Instant> = None;
        for slot in q.iter_mut() {
            if taken.len() >= max {
                break;
            }
            let sender_blocked = blocked.contains(&slot.env.from);
            match slot.hold {
                Hold::Claimed => {
                    if !sender_blocked {
                        blocked.push(slot.env.from.clone());
                    }
                }
                Hold::RetryAt(t) if t > now => {
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                    if !sender_blocked {
                        blocked.push(slot.env.from.clone());
                    }
                }
                Hold::Ready | Hold::RetryAt(_) => {
                    if sender_blocked {
                        continue;
                    }
                    // Later envelopes of this sender may come in the same batch, in
                    // order; only claims made before this call hold them back.
                    slot.hold = Hold::Claimed;
                    taken.push(slot.env.clone());
                }
            }
        }
        (taken, wake)
    }
}

/// Mailboxes in this process's memory.
#[derive(Debug, Default)]
pub struct InProcess {
    boxes: Mutex<HashMap<String, Arc<Mailbox>>>,
}

impl InProcess {
    /// An empty transport.
    pub fn new() -> Self {
        Self::default()
    }

    fn mailbox(&self, recipient: &str) -> Arc<Mailbox> {
        let mut boxes = lock(&self.boxes);
        if let Some(mb) = boxes.get(recipient) {
            return mb.clone();
        }
        let mb = Arc::new(Mailbox::default());
        boxes.insert(recipient.to_owned(), mb.clone());
        mb
    }
}

impl Transport for InProcess {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), TransportError>> {
        // The envelope is queued now, at the call, so the order of calls is the order.
        let mb = self.mailbox(&envelope.to);
        lock(&mb.queue).push_back(Slot {
            env: envelope,
            hold: Hold::Ready,
        });
        mb.notify.notify_waiters();
        Box::pin(std::future::ready(Ok(())))
    }

    fn claim<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Result<Envelope, TransportError>> {
        let mb = self.mailbox(recipient);
        Box::pin(async move {
            loop {
                // Registered before looking, so a publish in between is not missed.
                let notified = mb.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let (mut taken, wake) = mb.take(1, Instant::now());
                if let Some(env) = taken.pop() {
                    return Ok(env);
                }
                match wake {
                    Some(at) => {
                        tokio::select! {
                            () = &mut notified => {}
                            () = tokio::time::sleep_until(at) => {}
                        }
                    }
                    None => notified.await,
                }
            }
        })
    }

    fn fetch<'a>(
        &'a self,
        recipient: &'a str,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Envelope>, TransportError>> {
        let (taken, _) = self.mailbox(recipient).take(max, Instant::now());
        Box::pin(std::future::ready(Ok(taken)))
    }

    fn ack(&self, recipient: &str, id: MessageId, ack: Ack) {
        let mb = self.mailbox(recipient);
        {
            let mut q = lock(&mb.queue);
            let Some(pos) = q.iter().position(|s| s.env.id == id) else {
                return;
            };
            match ack {
                Ack::Done => {
                    q.remove(pos);
                }
                Ack::Retry { after } => {
                    if let Some(slot) = q.get_mut(pos) {
                        slot.hold = Hold::RetryAt(Instant::now() + after);
                    }
                }
            }
        }
        // Settling frees the sender's next envelope.
        mb.notify.notify_waiters();
    }

    fn drain<'a>(&'a self, recipient: &'a str) -> BoxFuture<'a, Vec<Envelope>> {
        let mb = self.mailbox(recipient);
        let mut out = Vec::new();
        lock(&mb.queue).retain(|s| {
            if matches!(s.hold, Hold::Claimed) {
                true
            } else {
                out.push(s.env.clone());
                false
            }
        });
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;

    fn env(id: u64, from: &str) -> Envelope {
        Envelope {
            id: MessageId(id),
            from: from.into(),
            to: "b".into(),
            target: Target::Agent("b".into()),
            text: format!("{from}{id}"),
            ts_ms: 0,
        }
    }

    fn ids(envs: &[Envelope]) -> Vec<u64> {
        envs.iter().map(|e| e.id.0).collect()
    }

    #[tokio::test]
    async fn a_claimed_envelope_holds_back_its_senders_later_ones() {
        let t = InProcess::new();
        for (id, from) in [(1, "x"), (2, "x"), (3, "y")] {
            t.publish(env(id, from)).await.unwrap();
        }
        let first = t.claim("b").await.unwrap();
        assert_eq!(first.id.0, 1);
        // x's second message waits for the first; y's goes ahead.
        assert_eq!(ids(&t.fetch("b", 10).await.unwrap()), [3]);
        t.ack("b", MessageId(1), Ack::Done);
        assert_eq!(ids(&t.fetch("b", 10).await.unwrap()), [2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_keeps_the_order_and_waits_its_delay() {
        let t = InProcess::new();
        t.publish(env(1, "x")).await.unwrap();
        t.publish(env(2, "x")).await.unwrap();
        let e = t.claim("b").await.unwrap();
        t.ack(
            "b",
            e.id,
            Ack::Retry {
                after: Duration::from_secs(2),
            },
        );
        assert!(
            t.fetch("b", 10).await.unwrap().is_empty(),
            "2 may not overtake 1"
        );
        let started = Instant::now();
        let again = t.claim("b").await.unwrap();
        assert_eq!(again.id.0, 1);
        assert!(started.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_waiting_claim_wakes_on_publish() {
        let t = Arc::new(InProcess::new());
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.claim("b").await.unwrap() });
        tokio::task::yield_now().await;
        t.publish(env(7, "x")).await.unwrap();
        assert_eq!(waiter.await.unwrap().id.0, 7);
    }

    #[tokio::test]
    async fn drain_leaves_claimed_envelopes() {
        let t = InProcess::new();
        t.publish(env(1, "x")).await.unwrap();
        t.publish(env(2, "y")).await.unwrap();
        let claimed = t.claim("b").await.unwrap();
        assert_eq!(ids(&t.drain("b").await), [2]);
        t.ack("b", claimed.id, Ack::Done);
        assert!(t.fetch("b", 10).await.unwrap().is_empty());
    }
}
