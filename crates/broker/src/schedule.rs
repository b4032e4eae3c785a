//! A timetable of messages: "message 7 is due at t=1500". Delays and visibility timeouts
//! are both a question of *which message is due next*, so both are a sorted set of
//! `(due time, message id)`: the earliest is first, and popping everything due is a walk
//! from the front that stops at the first entry still in the future.

use std::collections::BTreeSet;

use crate::clock::Millis;
use crate::message::MessageId;

#[derive(Debug, Default, Clone)]
pub struct Schedule {
    entries: BTreeSet<(Millis, MessageId)>,
}

impl Schedule {
    pub fn insert(&mut self, due: Millis, id: MessageId) {
        self.entries.insert((due, id));
    }

    pub fn remove(&mut self, due: Millis, id: MessageId) {
        self.entries.remove(&(due, id));
    }

    /// The earliest entry due at or before `now`, removed.
    pub fn pop_due(&mut self, now: Millis) -> Option<MessageId> {
        let &(due, id) = self.entries.first()?;
        (due <= now).then(|| {
            self.entries.pop_first();
            id
        })
    }

    /// When the next entry falls due.
    pub fn next_due(&self) -> Option<Millis> {
        self.entries.first().map(|&(due, _)| due)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_due_order_and_only_when_due() {
        let mut s = Schedule::default();
        s.insert(300, 1);
        s.insert(100, 2);
        s.insert(100, 3);
        assert_eq!(s.next_due(), Some(100));
        assert_eq!(s.pop_due(99), None);
        assert_eq!(s.pop_due(100), Some(2));
        assert_eq!(s.pop_due(100), Some(3));
        assert_eq!(s.pop_due(299), None);
        s.remove(300, 1);
        assert!(s.is_empty());
    }
}
