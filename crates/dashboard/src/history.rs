//! The dashboard's memory: the latest sample of every server, and a bounded time series
//! per number, so the page can draw the last few minutes the moment it opens.
//!
//! Memory is bounded twice: each series is a ring of [`POINTS`] points (the oldest falls
//! off), and the poller caps how many queues, topics and groups it asks about. Nothing
//! here touches a socket: the tests feed it samples and a clock.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::sample::Sample;
use crate::topology::{Kind, Target, Topology};

/// Points kept per series: five minutes at one poll a second.
pub const POINTS: usize = 300;

/// A series no longer reported is dropped once its newest point is this old (the page's
/// five minutes).
pub const FORGET_AFTER_MS: u64 = 5 * 60 * 1000;

/// A fixed-size time series: `(unix milliseconds, value)`, oldest first.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Ring {
    points: VecDeque<(u64, f64)>,
}

impl Ring {
    pub fn push(&mut self, at_ms: u64, value: f64) {
        if self.points.len() == POINTS {
            self.points.pop_front();
        }
        self.points.push_back((at_ms, value));
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn last(&self) -> Option<(u64, f64)> {
        self.points.back().copied()
    }
}

/// One server as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub target: Target,
    /// The latest sample (numbers include the derived `*_per_sec` rates).
    #[serde(flatten)]
    pub latest: Sample,
    /// Unix ms of the latest sample (0: not polled yet).
    pub at_ms: u64,
    /// Every number's recent history; only in [`Board::snapshot`] with series.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub series: BTreeMap<String, Ring>,
    /// The previous sample's counters, to turn `*_total` into `*_per_sec`.
    #[serde(skip)]
    counters: Option<(u64, BTreeMap<String, f64>)>,
}

/// Every server's latest sample and history.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    pub nodes: Vec<Node>,
}

/// What `/api/state` and each Server-Sent Event carry.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub at_ms: u64,
    pub nodes: Vec<Node>,
}

impl Board {
    pub fn new(topology: &Topology) -> Self {
        let mut board = Board { nodes: Vec::new() };
        for target in &topology.targets {
            board.add(target.clone());
        }
        board
    }

    /// Adds a server to watch (a demo starts servers as it goes); returns its index.
    pub fn add(&mut self, target: Target) -> usize {
        self.nodes.push(Node {
            target,
            latest: Sample::default(),
            at_ms: 0,
            series: BTreeMap::new(),
            counters: None,
        });
        self.nodes.len() - 1
    }

    /// How many servers of `kind` are watched: the number the next one gets in its name.
    pub fn count(&self, kind: Kind) -> usize {
        self.nodes.iter().filter(|n| n.target.kind == kind).count()
    }

    /// Records the sample of node `index` taken at `at_ms`. A counter that grew by `d` in
    /// `t` seconds since the previous sample becomes a rate `d / t`; a counter that went
    /// down (the server restarted) starts over.
    pub fn record(&mut self, index: usize, at_ms: u64, mut sample: Sample) {
        let Some(node) = self.nodes.get_mut(index) else {
            return;
        };
        let counters: BTreeMap<String, f64> = sample
            .metrics
            .iter()
            .filter(|(name, _)| name.ends_with("_total"))
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        if let Some((then, before)) = &node.counters {
            let seconds = at_ms.saturating_sub(*then) as f64 / 1000.0;
            for (name, now) in &counters {
                let Some(was) = before.get(name) else {
                    continue;
                };
                if seconds > 0.0 && now >= was {
                    let stem = name.trim_end_matches("_total");
                    sample.set(format!("{stem}_per_sec"), (now - was) / seconds);
                }
            }
        }
        node.counters = sample.up.then_some((at_ms, counters));
        sample.set("up", if sample.up { 1.0 } else { 0.0 });
        for (name, value) in &sample.metrics {
            node.series
                .entry(name.clone())
                .or_default()
                .push(at_ms, *value);
        }
        // A queue, topic or group that went away keeps its series for as long as its
        // points would still be on the chart, then the series goes too: the names of a
        // long-lived topology come and go, and memory must not grow with them.
        let horizon = at_ms.saturating_sub(FORGET_AFTER_MS);
        node.series.retain(|name, ring| {
            sample.metrics.contains_key(name) || ring.last().is_some_and(|(t, _)| t >= horizon)
        });
        node.latest = sample;
        node.at_ms = at_ms;
    }

    /// The state at `at_ms`: with every series (for `/api/state`, so a page that just
    /// opened can draw the past), or only the latest numbers (each second's event).
    pub fn snapshot(&self, at_ms: u64, with_series: bool) -> Snapshot {
        Snapshot {
            at_ms,
            nodes: self
                .nodes
                .iter()
                .map(|n| Node {
                    series: if with_series {
                        n.series.clone()
                    } else {
                        BTreeMap::new()
                    },
                    ..n.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Board {
        let mut t = Topology::default();
        t.add(Kind::Kv, "127.0.0.1:1");
        Board::new(&t)
    }

    #[test]
    fn counters_become_rates() {
        let mut b = board();
        let mut s = Sample::up();
        s.set("commands_total", 100.0);
        b.record(0, 1_000, s.clone());
        assert!(!b.nodes[0].latest.metrics.contains_key("commands_per_sec"));
        s.set("commands_total", 350.0);
        b.record(0, 3_000, s);
        assert_eq!(b.nodes[0].latest.metrics["commands_per_sec"], 125.0);
        assert_eq!(b.nodes[0].latest.metrics["up"], 1.0);
    }

    #[test]
    fn a_server_that_goes_down_shows_down_and_restarts_its_rates() {
        let mut b = board();
        let mut s = Sample::up();
        s.set("commands_total", 100.0);
        b.record(0, 1_000, s.clone());
        b.record(0, 2_000, Sample::down("connection refused"));
        let node = &b.nodes[0];
        assert!(!node.latest.up);
        assert_eq!(node.latest.metrics["up"], 0.0);
        assert_eq!(node.series["up"].last(), Some((2_000, 0.0)));
        s.set("commands_total", 5.0);
        b.record(0, 3_000, s);
        assert!(!b.nodes[0].latest.metrics.contains_key("commands_per_sec"));
    }

    #[test]
    fn a_series_no_longer_reported_is_forgotten_after_five_minutes() {
        let mut b = board();
        let mut s = Sample::up();
        s.set("queue.jobs.ready", 3.0);
        b.record(0, 1_000, s);
        b.record(0, 2_000, Sample::up());
        assert!(
            b.nodes[0].series.contains_key("queue.jobs.ready"),
            "still on the chart"
        );
        b.record(0, 1_000 + FORGET_AFTER_MS + 1, Sample::up());
        assert!(!b.nodes[0].series.contains_key("queue.jobs.ready"));
        assert!(b.nodes[0].series.contains_key("up"));
    }

    #[test]
    fn series_are_bounded() {
        let mut b = board();
        for i in 0..(POINTS as u64 + 50) {
            let mut s = Sample::up();
            s.set("x", i as f64);
            b.record(0, i * 1000, s);
        }
        let ring = &b.nodes[0].series["x"];
        assert_eq!(ring.len(), POINTS);
        assert_eq!(
            ring.last(),
            Some(((POINTS as u64 + 49) * 1000, (POINTS + 49) as f64))
        );
        let json = serde_json::to_value(b.snapshot(0, false)).unwrap();
        assert!(json["nodes"][0].get("series").is_none());
        assert_eq!(json["nodes"][0]["name"], "kv");
        assert_eq!(json["nodes"][0]["up"], true);
    }
}
