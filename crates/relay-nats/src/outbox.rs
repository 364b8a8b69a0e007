//! An ordered channel that survives lost messages, sans-I/O: items are numbered, kept
//! until the other side says it has them, and sent again from the first one it lacks.
//! The other side skips what it already took (see [`crate::lease::Leases::upload`] and the
//! worker's [`Inflow`]), so each item is acted on once, in order.

use std::collections::VecDeque;

/// Items waiting to be acknowledged, oldest first.
#[derive(Debug)]
pub struct Outbox<T> {
    items: VecDeque<(u64, T, usize)>,
    next_seq: u64,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox {
            items: VecDeque::new(),
            next_seq: 0,
        }
    }
}

impl<T: Clone> Outbox<T> {
    /// Adds `item`, `size` bytes on the wire (for batching).
    pub fn push(&mut self, item: T, size: usize) -> u64 {
        let seq = self.next_seq;
        self.items.push_back((seq, item, size));
        self.next_seq += 1;
        seq
    }

    /// The oldest unacknowledged items, at most `max_bytes` together (at least one):
    /// their first sequence number and clones of them.
    pub fn batch(&self, max_bytes: usize) -> (u64, Vec<T>) {
        let first = self.items.front().map_or(self.next_seq, |(s, _, _)| *s);
        let mut total = 0;
        let mut out = Vec::new();
        for (_, item, size) in &self.items {
            if !out.is_empty() && total + size > max_bytes {
                break;
            }
            total += size;
            out.push(item.clone());
        }
        (first, out)
    }

    /// The other side has every item before `next_seq`.
    pub fn acked(&mut self, next_seq: u64) {
        while self.items.front().is_some_and(|(s, _, _)| *s < next_seq) {
            self.items.pop_front();
        }
    }

    /// Whether every item is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes every unacknowledged item out (to renumber them for a new receiver).
    pub fn take_all(&mut self) -> Vec<(T, usize)> {
        self.items.drain(..).map(|(_, t, n)| (t, n)).collect()
    }
}

/// The receiving side: which items of a batch are new.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inflow {
    next_seq: u64,
}

impl Inflow {
    /// A batch of `count` items from `seq` arrived: how many of its first items were
    /// taken before (all of them when it leaves a gap), and the next sequence expected.
    pub fn take(&mut self, seq: u64, count: usize) -> (usize, u64) {
        if seq > self.next_seq {
            return (count, self.next_seq);
        }
        let skip = usize::try_from(self.next_seq - seq)
            .unwrap_or(usize::MAX)
            .min(count);
        self.next_seq = self.next_seq.max(seq + count as u64);
        (skip, self.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacked_items_are_resent_from_the_first_missing_one() {
        let mut o = Outbox::default();
        for i in 0..5 {
            o.push(i, 10);
        }
        assert_eq!(o.batch(25), (0, vec![0, 1]));
        o.acked(2);
        assert_eq!(o.batch(1000), (2, vec![2, 3, 4]));
        // A lost ack changes nothing; a later one covers everything before it.
        o.acked(1);
        o.acked(5);
        assert!(o.is_empty());
        assert_eq!(o.batch(10), (5, vec![]));
        // One item larger than the limit still goes, alone.
        o.push(9, 100);
        assert_eq!(o.batch(10), (5, vec![9]));
    }

    #[test]
    fn the_receiver_takes_each_item_once() {
        let mut i = Inflow::default();
        assert_eq!(i.take(0, 3), (0, 3));
        assert_eq!(i.take(0, 4), (3, 4), "a resend: only the fourth is new");
        assert_eq!(i.take(6, 2), (2, 4), "a gap: nothing taken");
        assert_eq!(i.take(4, 2), (0, 6));
    }
}
