//! What the pollers write and the HTTP handlers read: the [`Board`] behind a lock, and the
//! latest event for every open page.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::history::Board;
use crate::sample::Sample;
use crate::topology::{Kind, Target, Topology};

pub struct Shared {
    board: Mutex<Board>,
    /// The latest event's JSON; each `/events` stream waits for it to change.
    events: watch::Sender<Arc<String>>,
}

impl Shared {
    pub fn new(topology: &Topology) -> Self {
        let board = Board::new(topology);
        Shared {
            board: Mutex::new(board),
            events: watch::Sender::new(Arc::new(String::new())),
        }
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        // A poller that panicked mid-record left numbers, not broken invariants.
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The servers watched so far, in order.
    pub fn targets(&self) -> Vec<Target> {
        self.board()
            .nodes
            .iter()
            .map(|n| n.target.clone())
            .collect()
    }

    /// Adds a server of `kind` at `addr`, named by how many of its kind there are
    /// (`kv-3`); returns its index and target.
    pub fn add(&self, kind: Kind, addr: &str) -> (usize, Target) {
        let mut board = self.board();
        let target = Target {
            name: format!("{}-{}", kind.as_str(), board.count(kind)),
            kind,
            addr: addr.to_owned(),
        };
        (board.add(target.clone()), target)
    }

    pub fn record(&self, index: usize, at_ms: u64, sample: Sample) {
        self.board().record(index, at_ms, sample);
    }

    /// `/api/state`: everything, with each number's history.
    pub fn state_json(&self, at_ms: u64) -> String {
        let snapshot = self.board().snapshot(at_ms, true);
        serde_json::to_string(&snapshot).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Sends the latest numbers (no history) to every open `/events` stream.
    pub fn publish(&self, at_ms: u64) {
        let snapshot = self.board().snapshot(at_ms, false);
        if let Ok(json) = serde_json::to_string(&snapshot) {
            self.events.send_replace(Arc::new(json));
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<String>> {
        self.events.subscribe()
    }
}
