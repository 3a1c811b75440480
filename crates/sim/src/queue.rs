//! The simulated clock: a queue of events ordered by time, ties broken by insertion order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use neuroshard_node::Timestamp;

/// Events waiting for their time; `pop` advances the clock to the next one.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    now: Timestamp,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<E> {
    at: Timestamp,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest time, then the earliest insertion.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            now: Timestamp::ZERO,
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The simulated time of the event last popped.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Schedules `event` at `at` (never before now: the past is clamped to now).
    pub fn push(&mut self, at: Timestamp, event: E) {
        let at = at.max(self.now);
        self.heap.push(Entry {
            at,
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    /// The next event, advancing the clock to its time.
    pub fn pop(&mut self) -> Option<(Timestamp, E)> {
        let entry = self.heap.pop()?;
        self.now = entry.at;
        Some((entry.at, entry.event))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion() {
        let mut queue = EventQueue::new();
        queue.push(Timestamp(5), "b");
        queue.push(Timestamp(1), "a");
        queue.push(Timestamp(5), "c");
        assert_eq!(queue.pop(), Some((Timestamp(1), "a")));
        assert_eq!(queue.now(), Timestamp(1));
        queue.push(Timestamp(0), "late");
        assert_eq!(queue.pop(), Some((Timestamp(1), "late")));
        assert_eq!(queue.pop(), Some((Timestamp(5), "b")));
        assert_eq!(queue.pop(), Some((Timestamp(5), "c")));
        assert!(queue.pop().is_none() && queue.is_empty());
    }
}
