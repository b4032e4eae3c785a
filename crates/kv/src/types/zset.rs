//! A Redis sorted set: unique members, each with a score, kept in (score, member) order.
//!
//! Two structures, as in Redis: a map from member to score (for `ZSCORE` and to find a
//! member's entry in the order) and an ordered structure for ranks and ranges.
//!
//! ## Why a treap (Redis uses a skip list)
//!
//! Leaderboards ask "what is my rank?" (`ZRANK`) and "who is 100th to 110th?" (`ZRANGE
//! 100 110`). Both need an *order-statistic* structure: an ordered collection that also
//! knows, at each node, how many elements lie below it, so a rank or a position is found
//! in O(log n) instead of by counting. Redis gets this from a skip list whose links record
//! their span. We use a **treap**: a binary search tree on (score, member) where each node
//! also carries a random priority and the tree is a heap on priorities. Random priorities
//! keep the expected depth O(log n) whatever the insertion order (an ordinary BST fed
//! increasing scores — the usual leaderboard — degenerates into a list). Each node stores
//! its subtree size, which gives rank and select in O(log n).
//!
//! Both structures have the same expected costs; the treap is smaller to write correctly
//! without pointers: nodes live in a `Vec` and refer to each other by index, and every
//! update is two primitives, `split` (cut the tree at a key) and `merge` (join two trees
//! whose keys do not overlap). A range is located in O(log n) and then walked in order
//! with a stack, O(1) amortized per element.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

use super::ELEMENT_OVERHEAD;
use super::ops::index_range;
use crate::keyspace::Slot;

const NIL: usize = usize::MAX;

/// (score, member) order. Scores are never NaN (commands refuse them), and `-0` equals
/// `0`, as in Redis.
pub fn cmp(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

#[derive(Debug, Clone)]
struct Node {
    score: f64,
    member: Bytes,
    priority: u64,
    left: usize,
    right: usize,
    /// Nodes in this subtree, this one included.
    size: usize,
}

/// The order-statistic treap. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Treap {
    nodes: Vec<Node>,
    /// Indices of removed nodes, reused by the next inserts.
    free: Vec<usize>,
    root: Option<usize>,
}

impl Treap {
    fn root(&self) -> usize {
        self.root.unwrap_or(NIL)
    }

    fn size(&self, t: usize) -> usize {
        if t == NIL { 0 } else { self.nodes[t].size }
    }

    fn fix(&mut self, t: usize) {
        let n = &self.nodes[t];
        let size = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[t].size = size;
    }

    pub fn len(&self) -> usize {
        self.size(self.root())
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Cuts `t` in two: the nodes for which `left` holds (which must be a prefix of the
    /// order) and the rest.
    fn split(&mut self, t: usize, left: &impl Fn(&Node) -> bool) -> (usize, usize) {
        if t == NIL {
            return (NIL, NIL);
        }
        if left(&self.nodes[t]) {
            let (a, b) = self.split(self.nodes[t].right, left);
            self.nodes[t].right = a;
            self.fix(t);
            (t, b)
        } else {
            let (a, b) = self.split(self.nodes[t].left, left);
            self.nodes[t].left = b;
            self.fix(t);
            (a, t)
        }
    }

    /// Joins two trees, every key of `a` below every key of `b`.
    fn merge(&mut self, a: usize, b: usize) -> usize {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a].priority > self.nodes[b].priority {
            let r = self.merge(self.nodes[a].right, b);
            self.nodes[a].right = r;
            self.fix(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b].left);
            self.nodes[b].left = l;
            self.fix(b);
            b
        }
    }

    fn set_root(&mut self, t: usize) {
        self.root = (t != NIL).then_some(t);
    }

    /// Inserts a (score, member) that is not present.
    pub fn insert(&mut self, score: f64, member: Bytes) {
        let (l, r) = self.split(self.root(), &|n| {
            cmp((n.score, &n.member), (score, &member)) == Ordering::Less
        });
        let node = Node {
            score,
            member,
            priority: rand::random(),
            left: NIL,
            right: NIL,
            size: 1,
        };
        let t = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        let l = self.merge(l, t);
        let root = self.merge(l, r);
        self.set_root(root);
    }

    /// Removes a (score, member) that is present.
    pub fn remove(&mut self, score: f64, member: &[u8]) {
        let key = (score, member);
        let (l, r) = self.split(self.root(), &|n| cmp((n.score, &n.member), key).is_lt());
        let (mid, r) = self.split(r, &|n| cmp((n.score, &n.member), key).is_le());
        if mid != NIL {
            self.nodes[mid].member = Bytes::new();
            self.free.push(mid);
        }
        let root = self.merge(l, r);
        self.set_root(root);
        if self.root.is_none() {
            self.nodes.clear();
            self.free.clear();
        }
    }

    /// How many elements satisfy `below`, a predicate true for a prefix of the order
    /// (for example "score < 10"): the rank of the first element that does not.
    pub fn count_below(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        let (mut t, mut rank) = (self.root(), 0);
        while t != NIL {
            let n = &self.nodes[t];
            if below(n.score, &n.member) {
                rank += self.size(n.left) + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        rank
    }

    /// 0-based rank of a present (score, member).
    pub fn rank(&self, score: f64, member: &[u8]) -> usize {
        self.count_below(|s, m| cmp((s, m), (score, member)).is_lt())
    }

    /// Elements from position `start` (0 = lowest; with `rev`, 0 = highest) onward, in
    /// order: O(log n) to find the start, then O(1) amortized per element.
    pub fn iter_from(&self, start: usize, rev: bool) -> Iter<'_> {
        // Children in walking order: `near` first, then `far`.
        let near = |n: &Node| if rev { n.right } else { n.left };
        let mut stack = Vec::new();
        let (mut t, mut k) = (self.root(), start);
        while t != NIL {
            let n = &self.nodes[t];
            let before = self.size(near(n));
            match k.cmp(&before) {
                Ordering::Less => {
                    stack.push(t);
                    t = near(n);
                }
                Ordering::Equal => {
                    stack.push(t);
                    break;
                }
                Ordering::Greater => {
                    k -= before + 1;
                    t = if rev { n.left } else { n.right };
                }
            }
        }
        Iter {
            treap: self,
            stack,
            rev,
        }
    }
}

/// An in-order walk (see [`Treap::iter_from`]).
pub struct Iter<'a> {
    treap: &'a Treap,
    stack: Vec<usize>,
    rev: bool,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (f64, &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.stack.pop()?;
        let nodes = &self.treap.nodes;
        let n = &nodes[t];
        let mut c = if self.rev { n.left } else { n.right };
        while c != NIL {
            self.stack.push(c);
            c = if self.rev {
                nodes[c].right
            } else {
                nodes[c].left
            };
        }
        Some((n.score, &n.member))
    }
}

/// A sorted set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "Vec<(Bytes, f64)>")]
pub struct ZSet {
    /// member → score, ordered by (hash of member, member) for `ZSCAN`.
    scores: BTreeMap<Slot, f64>,
    order: Treap,
    bytes: usize,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.scores == other.scores
    }
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &Bytes) -> Option<f64> {
        self.scores.get(&Slot::new(member.clone())).copied()
    }

    /// Sets a member's score (adding the member if new); `true` if it is new.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        let slot = Slot::new(member.clone());
        match self.scores.get_key_value(&slot) {
            Some((stored, &old)) => {
                if old != score {
                    // Re-insert the member's own bytes, not `member`: a caller may pass a
                    // slice of a connection's read buffer, and keeping that would pin the
                    // whole buffer for as long as the member lives.
                    let stored = stored.key().clone();
                    self.order.remove(old, &stored);
                    self.order.insert(score, stored);
                    if let Some(old) = self.scores.get_mut(&slot) {
                        *old = score;
                    }
                }
                false
            }
            None => {
                self.bytes += 2 * member.len() + 2 * ELEMENT_OVERHEAD;
                self.scores.insert(slot, score);
                self.order.insert(score, member);
                true
            }
        }
    }

    /// `true` if the member was there.
    pub fn remove(&mut self, member: &Bytes) -> bool {
        match self.scores.remove(&Slot::new(member.clone())) {
            Some(score) => {
                self.order.remove(score, member);
                self.bytes -= 2 * member.len() + 2 * ELEMENT_OVERHEAD;
                true
            }
            None => false,
        }
    }

    /// 0-based rank, lowest score first (or highest with `rev`).
    pub fn rank(&self, member: &Bytes, rev: bool) -> Option<usize> {
        let score = self.score(member)?;
        let rank = self.order.rank(score, member);
        Some(if rev { self.len() - 1 - rank } else { rank })
    }

    pub fn order(&self) -> &Treap {
        &self.order
    }

    pub fn slots(&self) -> &BTreeMap<Slot, f64> {
        &self.scores
    }

    pub fn memory(&self) -> usize {
        self.bytes
    }
}

impl From<Vec<(Bytes, f64)>> for ZSet {
    fn from(pairs: Vec<(Bytes, f64)>) -> Self {
        let mut z = ZSet::default();
        for (member, score) in pairs {
            z.insert(member, score);
        }
        z
    }
}

/// On disk and in `DUMP`: (member, score) pairs; both structures are rebuilt on load.
impl Serialize for ZSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.scores.iter().map(|(slot, score)| (slot.key(), score)))
    }
}

/// One end of a score range: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    pub fn parse(text: &[u8]) -> Option<ScoreBound> {
        let (exclusive, rest) = match text.strip_prefix(b"(") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let value = proto::args::parse_f64(rest)?;
        Some(ScoreBound { value, exclusive })
    }

    /// Is `score` below this bound used as a minimum?
    pub fn below_min(self, score: f64) -> bool {
        if self.exclusive {
            score <= self.value
        } else {
            score < self.value
        }
    }

    /// Is `score` within this bound used as a maximum?
    pub fn within_max(self, score: f64) -> bool {
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// One end of a lexicographic range: `[a`, `(a`, `-`, `+`.
#[derive(Debug, Clone, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl LexBound {
    pub fn parse(text: &Bytes) -> Option<LexBound> {
        match text.first()? {
            b'-' if text.len() == 1 => Some(LexBound::NegInf),
            b'+' if text.len() == 1 => Some(LexBound::PosInf),
            b'[' => Some(LexBound::Inclusive(text.slice(1..))),
            b'(' => Some(LexBound::Exclusive(text.slice(1..))),
            _ => None,
        }
    }

    /// Is `m` below this bound used as a minimum?
    pub fn below_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(b) => m < &b[..],
            LexBound::Exclusive(b) => m <= &b[..],
        }
    }

    /// Is `m` within this bound used as a maximum?
    pub fn within_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(b) => m <= &b[..],
            LexBound::Exclusive(b) => m < &b[..],
        }
    }
}

/// A parsed range; for scores and lex, the first bound is the minimum.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// The elements of `range`, in order (reversed with `rev`), after skipping `offset` and
/// taking at most `limit` (negative: all). Locating the start is O(log n); each element
/// after it is O(1) amortized.
pub fn select<'a>(
    z: &'a ZSet,
    range: &Range,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(f64, &'a Bytes)> {
    if offset < 0 {
        return Vec::new();
    }
    let offset = offset as usize;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let order = z.order();
    let len = z.len();
    match range {
        Range::Rank(start, stop) => {
            let (a, b) = index_range(*start, *stop, len);
            order.iter_from(a, rev).take(b - a).collect()
        }
        Range::Score(min, max) => {
            let (min, max) = (*min, *max);
            if rev {
                let first = len - order.count_below(|s, _| max.within_max(s));
                order
                    .iter_from(first + offset, true)
                    .take_while(|(s, _)| !min.below_min(*s))
                    .take(limit)
                    .collect()
            } else {
                let first = order.count_below(|s, _| min.below_min(s));
                order
                    .iter_from(first + offset, false)
                    .take_while(|(s, _)| max.within_max(*s))
                    .take(limit)
                    .collect()
            }
        }
        Range::Lex(min, max) => {
            if rev {
                let first = len - order.count_below(|_, m| max.within_max(m));
                order
                    .iter_from(first + offset, true)
                    .take_while(|(_, m)| !min.below_min(m))
                    .take(limit)
                    .collect()
            } else {
                let first = order.count_below(|_, m| min.below_min(m));
                order
                    .iter_from(first + offset, false)
                    .take_while(|(_, m)| max.within_max(m))
                    .take(limit)
                    .collect()
            }
        }
    }
}

/// Formats a score as Redis 7.0 replies it where it is text (`ZSCAN`): `%.17g`, as
/// [`proto::frame::format_double`] writes every double, except that `-0` reads `0`.
pub fn format_score(v: f64) -> String {
    proto::frame::format_double(reply_score(v))
}

/// A score as Redis reads it back: it stores small sorted sets' integral scores as
/// integers, so `-0` comes back as `0`.
pub fn reply_score(v: f64) -> f64 {
    if v == 0.0 { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn scores_print_like_redis() {
        assert_eq!(format_score(1500.0), "1500");
        assert_eq!(format_score(2.5), "2.5");
        assert_eq!(format_score(-2.5), "-2.5");
        assert_eq!(format_score(0.1), "0.10000000000000001");
        assert_eq!(format_score(1e20), "1e+20");
        assert_eq!(format_score(1e16), "10000000000000000");
        assert_eq!(format_score(1e17), "1e+17");
        assert_eq!(format_score(0.0001), "0.0001");
        assert_eq!(format_score(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_score(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_score(123.456), "123.456");
    }

    #[test]
    fn ranks_and_ranges_agree_with_a_sorted_vector() {
        let mut z = ZSet::default();
        let mut model: Vec<(f64, Bytes)> = Vec::new();
        for i in 0..2_000u64 {
            let member = b(&format!("m{}", (i * 7919) % 1_000));
            let score = ((i * 31) % 97) as f64;
            z.insert(member.clone(), score);
            model.retain(|(_, m)| *m != member);
            model.push((score, member));
            if i % 3 == 0 {
                let victim = b(&format!("m{}", (i * 13) % 1_000));
                z.remove(&victim);
                model.retain(|(_, m)| *m != victim);
            }
        }
        model.sort_by(|a, b| cmp((a.0, &a.1), (b.0, &b.1)));
        assert_eq!(z.len(), model.len());
        assert_eq!(z.order().len(), model.len());
        for (rank, (_, m)) in model.iter().enumerate() {
            assert_eq!(z.rank(m, false), Some(rank));
            assert_eq!(z.rank(m, true), Some(model.len() - 1 - rank));
        }
        let walked: Vec<_> = z
            .order()
            .iter_from(10, false)
            .map(|(_, m)| m.clone())
            .collect();
        let expected: Vec<_> = model[10..].iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(walked, expected);
        let back: Vec<_> = z
            .order()
            .iter_from(3, true)
            .map(|(_, m)| m.clone())
            .collect();
        let expected: Vec<_> = model.iter().rev().skip(3).map(|(_, m)| m.clone()).collect();
        assert_eq!(back, expected);
        let below_50 = model.iter().filter(|(s, _)| *s < 50.0).count();
        assert_eq!(z.order().count_below(|s, _| s < 50.0), below_50);
    }
}
