//! What the last writes touched, for the observers that react to a change instead of
//! storing it: keyspace notifications and `CLIENT TRACKING`'s invalidations.
//!
//! The journal already describes every change; while an observer is on, it also notes
//! each change's key here, lightly (a key, not the new value), and whether the key was
//! removed because its deadline passed. The server drains the notes after each command,
//! under the same lock, so an observer sees exactly what the command did, in order, and
//! a key deleted by lazy or active expiry is reported like any other change.

use bytes::Bytes;

use super::Change;

/// One thing a change touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// A key was written, edited, given a deadline, or removed (`removed`), perhaps
    /// because its deadline passed (`expired`).
    Key {
        db: usize,
        key: Bytes,
        removed: bool,
        expired: bool,
    },
    /// Every key of a database (`FLUSHDB`, or `None`: of all of them, `FLUSHALL`), or of
    /// two (`SWAPDB`): too many to name one by one.
    Databases,
    /// A read looked for a key that is not there (a keyspace notification's `keymiss`;
    /// nothing changed).
    Miss { db: usize, key: Bytes },
}

/// The notes, and whether anyone reads them.
#[derive(Debug, Default)]
pub struct Touches {
    observed: bool,
    notes: Vec<Touch>,
}

impl Touches {
    pub fn is_observed(&self) -> bool {
        self.observed
    }

    pub fn set_observed(&mut self, on: bool) {
        self.observed = on;
        if !on {
            self.notes.clear();
        }
    }

    /// Notes what `change` touched (`expired`: it removes a key whose deadline passed).
    pub(super) fn note(&mut self, change: &Change, expired: bool) {
        if !self.observed {
            return;
        }
        match change {
            Change::Put { db, key, .. }
            | Change::Edit { db, key, .. }
            | Change::Expire { db, key, .. } => self.notes.push(Touch::Key {
                db: *db,
                key: key.clone(),
                removed: false,
                expired: false,
            }),
            Change::Remove { db, key } => self.notes.push(Touch::Key {
                db: *db,
                key: key.clone(),
                removed: true,
                expired,
            }),
            Change::FlushDb { .. } | Change::FlushAll | Change::SwapDb { .. } => {
                self.notes.push(Touch::Databases)
            }
            Change::Transaction(changes) => changes.iter().for_each(|c| self.note(c, expired)),
            Change::TransactionStart { .. } => {}
        }
    }

    /// A read missed `key` (noted while observed).
    pub(super) fn miss(&mut self, db: usize, key: &Bytes) {
        if self.observed {
            self.notes.push(Touch::Miss {
                db,
                key: key.clone(),
            });
        }
    }

    /// Takes the notes made since the last call.
    pub fn take(&mut self) -> Vec<Touch> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_only_while_observed_and_marks_expiries() {
        let key = Bytes::from_static(b"k");
        let remove = Change::Remove {
            db: 2,
            key: key.clone(),
        };
        let mut t = Touches::default();
        t.note(&remove, false);
        assert!(t.take().is_empty(), "nobody observes: nothing noted");
        t.set_observed(true);
        t.note(&remove, true);
        t.note(&Change::Transaction(vec![Change::FlushAll]), false);
        assert_eq!(
            t.take(),
            vec![
                Touch::Key {
                    db: 2,
                    key,
                    removed: true,
                    expired: true
                },
                Touch::Databases
            ]
        );
        assert!(t.take().is_empty());
    }
}
