//! A reactor's deadlines: a min-heap of `(when, token)` that drives `epoll_wait`'s
//! timeout. A deadline that moves earlier gets a new entry; entries that no longer
//! match their connection are skipped when they come due, and the heap is compacted
//! when closed connections' entries outnumber the open ones, so it stays bounded by
//! the connections open, not by how many came and went.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::driver::conn::Token;

/// The smallest heap worth compacting.
const MIN_COMPACT: usize = 1024;

/// Pending deadlines.
#[derive(Debug)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(u64, Token)>>,
    compact_at: usize,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            compact_at: MIN_COMPACT,
        }
    }
}

impl Timers {
    /// Adds a deadline for `token`.
    pub fn push(&mut self, when: u64, token: Token) {
        self.heap.push(Reverse((when, token)));
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns an entry that is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, Token)> {
        match self.heap.peek() {
            Some(Reverse((when, _))) if *when <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Once the heap has doubled since the last compaction, keeps only the entries
    /// whose token `live` still names an open connection.
    pub fn compact(&mut self, live: impl Fn(Token) -> bool) {
        if self.heap.len() < self.compact_at {
            return;
        }
        self.heap.retain(|Reverse((_, token))| live(*token));
        self.compact_at = (self.heap.len() * 2).max(MIN_COMPACT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_in_order() {
        let mut t = Timers::default();
        t.push(30, Token::new(1, 0));
        t.push(10, Token::new(2, 0));
        t.push(20, Token::new(3, 0));
        assert_eq!(t.next(), Some(10));
        assert_eq!(t.pop_due(15), Some((10, Token::new(2, 0))));
        assert_eq!(t.pop_due(15), None);
        assert_eq!(t.pop_due(30), Some((20, Token::new(3, 0))));
        assert_eq!(t.pop_due(30), Some((30, Token::new(1, 0))));
        assert!(t.is_empty());
    }

    #[test]
    fn compaction_keeps_only_live_tokens() {
        let mut t = Timers::default();
        for i in 0..5000u32 {
            t.push(u64::from(i), Token::new(i, 0));
        }
        t.compact(|tok| tok.index() % 100 == 0);
        assert_eq!(t.len(), 50);
        // Below the new threshold nothing is dropped.
        t.push(1, Token::new(7, 0));
        t.compact(|_| false);
        assert_eq!(t.len(), 51);
    }
}
