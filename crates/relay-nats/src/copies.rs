//! Pure: what the coordinator knows of the copies its envelopes have in the mail stream.
//!
//! Envelopes are stored in batches: one stream message holds the envelopes of one
//! recipient that were handed over together (one publish and one server confirmation
//! for all of them, instead of one each). A batch is acknowledged in the stream, and so
//! removed from it, once every envelope in it is settled; until then it is held (kept
//! from redelivery with in-progress acknowledgements). `R` is where a batch's
//! acknowledgement goes (a reply subject).

use std::collections::HashMap;

use relay_messaging::MessageId;

/// One envelope of ours.
#[derive(Debug, Default)]
struct Copy {
    /// The batch that holds it, once the stream delivered that batch.
    batch: Option<u64>,
    /// Settled before its batch arrived.
    settled: bool,
}

/// A delivered batch with envelopes not settled yet.
#[derive(Debug)]
struct Batch<R> {
    reply: R,
    left: usize,
}

/// The copies of one coordinator instance. See the module docs.
#[derive(Debug)]
pub struct Copies<R> {
    envelopes: HashMap<MessageId, Copy>,
    batches: HashMap<u64, Batch<R>>,
    next: u64,
}

impl<R> Default for Copies<R> {
    fn default() -> Self {
        Copies {
            envelopes: HashMap::new(),
            batches: HashMap::new(),
            next: 0,
        }
    }
}

impl<R: Clone> Copies<R> {
    /// Envelope `id` is being published by us.
    pub fn sent(&mut self, id: MessageId) {
        self.envelopes.insert(id, Copy::default());
    }

    /// Envelope `id` never reached the stream: nothing will arrive for it.
    pub fn forget(&mut self, id: MessageId) {
        self.envelopes.remove(&id);
    }

    /// The stream delivered a batch of ours holding `ids`, acknowledged at `reply`.
    /// Returns where to acknowledge at once: every envelope in it is already settled
    /// (or forgotten: a redelivery after it was acknowledged).
    pub fn arrived(&mut self, ids: &[MessageId], reply: R) -> Option<R> {
        // A redelivery of a batch still held: its acknowledgement goes to the new
        // delivery from now on.
        if let Some(k) = ids
            .iter()
            .find_map(|id| self.envelopes.get(id).and_then(|c| c.batch))
            && let Some(b) = self.batches.get_mut(&k)
        {
            b.reply = reply;
            return None;
        }
        let key = self.next;
        self.next += 1;
        let mut left = 0;
        for id in ids {
            match self.envelopes.get_mut(id) {
                Some(c) if c.settled => {
                    self.envelopes.remove(id);
                }
                Some(c) => {
                    c.batch = Some(key);
                    left += 1;
                }
                None => {}
            }
        }
        if left == 0 {
            return Some(reply);
        }
        self.batches.insert(key, Batch { reply, left });
        None
    }

    /// Envelope `id` is settled (read, failed, drained). Returns where to acknowledge
    /// when that was the last unsettled envelope of a delivered batch.
    pub fn settled(&mut self, id: MessageId) -> Option<R> {
        let c = self.envelopes.get_mut(&id)?;
        let Some(k) = c.batch else {
            c.settled = true;
            return None;
        };
        self.envelopes.remove(&id);
        let b = self.batches.get_mut(&k)?;
        b.left = b.left.saturating_sub(1);
        if b.left > 0 {
            return None;
        }
        self.batches.remove(&k).map(|b| b.reply)
    }

    /// Where the held batches are acknowledged (for in-progress acknowledgements).
    pub fn held(&self) -> Vec<R> {
        self.batches.values().map(|b| b.reply.clone()).collect()
    }

    /// Envelopes known (sent and not yet settled in a delivered batch).
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// No envelope known.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(xs: &[u64]) -> Vec<MessageId> {
        xs.iter().map(|x| MessageId(*x)).collect()
    }

    #[test]
    fn a_batch_is_acknowledged_once_its_last_envelope_is_settled() {
        let mut c = Copies::default();
        for i in 1..=3 {
            c.sent(MessageId(i));
        }
        assert_eq!(c.arrived(&ids(&[1, 2, 3]), "r1"), None);
        assert_eq!(c.held(), ["r1"]);
        assert_eq!(c.settled(MessageId(2)), None);
        assert_eq!(c.settled(MessageId(1)), None);
        assert_eq!(c.settled(MessageId(3)), Some("r1"));
        assert!(c.held().is_empty());
        assert!(c.is_empty());
        // Settling again is nothing.
        assert_eq!(c.settled(MessageId(3)), None);
    }

    #[test]
    fn envelopes_settled_before_their_batch_arrives_are_acknowledged_on_arrival() {
        let mut c = Copies::default();
        c.sent(MessageId(1));
        c.sent(MessageId(2));
        assert_eq!(c.settled(MessageId(1)), None);
        assert_eq!(c.settled(MessageId(2)), None);
        assert_eq!(c.arrived(&ids(&[1, 2]), "r"), Some("r"));
        assert!(c.is_empty());
        // Partly settled: held for the rest.
        c.sent(MessageId(3));
        c.sent(MessageId(4));
        c.settled(MessageId(3));
        assert_eq!(c.arrived(&ids(&[3, 4]), "s"), None);
        assert_eq!(c.settled(MessageId(4)), Some("s"));
    }

    #[test]
    fn a_redelivered_batch_is_acknowledged_at_its_new_delivery_and_only_once() {
        let mut c = Copies::default();
        c.sent(MessageId(1));
        c.sent(MessageId(2));
        assert_eq!(c.arrived(&ids(&[1, 2]), "first"), None);
        assert_eq!(c.arrived(&ids(&[1, 2]), "again"), None);
        assert_eq!(c.held(), ["again"]);
        c.settled(MessageId(1));
        assert_eq!(c.settled(MessageId(2)), Some("again"));
        // Delivered once more after it was acknowledged: acknowledge, nothing held.
        assert_eq!(c.arrived(&ids(&[1, 2]), "late"), Some("late"));
        assert!(c.held().is_empty());
    }

    #[test]
    fn unknown_envelopes_are_acknowledged_at_once() {
        let mut c: Copies<&str> = Copies::default();
        assert_eq!(c.arrived(&ids(&[7]), "x"), Some("x"));
        c.sent(MessageId(8));
        c.forget(MessageId(8));
        assert!(c.is_empty());
    }
}
