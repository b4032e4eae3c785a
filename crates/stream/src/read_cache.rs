//! The batches fetches read lately, kept in memory: a read-through batch cache.
//!
//! A fetch `pread`s whole batches out of a segment file. When many consumers read the
//! same part of a partition — consumer groups fanning out over one topic, a group that
//! re-reads from its committed offset after a rebalance, a lagging consumer following
//! another — each of them would copy the same bytes out of the page cache again, a
//! system call and a kernel copy per fetch. Redpanda keeps a *batch cache* for this
//! (record batches recently written or read, in memory, evicted under memory pressure);
//! Kafka leans on the page cache and `sendfile`, which a RESP reply (values framed
//! between `$len` headers) cannot use. Here: the last few runs of batches that were read,
//! in a small, bounded cache shared by all partitions; a fetch those batches answer in
//! full is served from memory, its values handed to the socket as slices of the cached
//! bytes (see `commands::fetch`).
//!
//! Correct because written batches never change: a segment is append-only; retention
//! deletes whole segments (a fetch below the partition's start is refused before the
//! cache is asked), and a torn tail is cut only when the log is opened. A run is keyed
//! by its partition (a `Weak`, so a deleted topic's partition cannot be mistaken for a
//! new one at the same address) and holds whole batches from some offset on.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::lock;
use crate::record::BatchHeader;
use crate::topic::Partition;

/// Bytes the cache holds at most, all partitions together.
const BUDGET: usize = 16 << 20;

/// A run longer than this is not kept (a fetch with a huge `MAXBYTES`).
const LARGEST_RUN: usize = 4 << 20;

/// Runs kept at most (each lookup scans them all).
const MAX_RUNS: usize = 32;

/// Reads remembered by where they started, to admit a run only when it is read again.
const SEEN: usize = 64;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ReadCache {
    runs: Mutex<Runs>,
    /// Fetches answered from memory, for INFO.
    hits: AtomicU64,
}

#[derive(Debug, Default)]
struct Runs {
    runs: Vec<Run>,
    /// Where recent uncached reads started: `(partition, first batch's base offset)`.
    seen: std::collections::VecDeque<(usize, u64)>,
    bytes: usize,
    /// Ticks on every hit and insert, for evicting the least recently used run.
    clock: u64,
}

#[derive(Debug)]
struct Run {
    partition: Weak<Partition>,
    /// Base offset of the first batch and last offset of the last.
    first: u64,
    last: u64,
    batches: Bytes,
    used: u64,
}

impl ReadCache {
    /// Whole batches of `p` from the one that holds `offset`, exactly as
    /// [`crate::segment::SegmentView::read_into`] would read them (as many as hold
    /// `max_records` records from `offset`, at most `max_bytes` but at least one batch),
    /// if a cached run holds all of them; `None` otherwise, or when a run ends before the
    /// answer does (the segment may hold more batches after it than the run).
    ///
    /// The caller checks that `offset` is not below the partition's start.
    pub fn get(
        &self,
        p: &Arc<Partition>,
        offset: u64,
        max_bytes: usize,
        max_records: u64,
    ) -> Option<(Bytes, Range<usize>)> {
        let mut runs = lock(&self.runs);
        let Runs { runs, clock, .. } = &mut *runs;
        let run = runs.iter_mut().find(|r| {
            r.first <= offset
                && offset <= r.last
                && std::ptr::eq(r.partition.as_ptr(), Arc::as_ptr(p))
        })?;
        let range = select(&run.batches, offset, max_bytes, max_records)?;
        *clock += 1;
        run.used = *clock;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some((run.batches.clone(), range))
    }

    /// Fetches answered from memory so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        lock(&self.runs).bytes
    }

    /// Offers `batches` (whole batches of `p`, as a fetch just read them from the file).
    /// They are kept only if a read started at the same batch before: a lone consumer
    /// tailing a partition reads each batch once, and copying every read into the cache
    /// would only cost it; a second reader of the same place means more may follow. Kept
    /// runs are copies (the caller's buffer is reused for the next read); the least
    /// recently used runs are evicted to stay in budget.
    pub fn offer(&self, p: &Arc<Partition>, batches: &[u8]) {
        if batches.is_empty() || batches.len() > LARGEST_RUN {
            return;
        }
        let Some((first, last)) = extent(batches) else {
            return;
        };
        let mut runs = lock(&self.runs);
        let runs = &mut *runs;
        let target = Arc::as_ptr(p);
        let key = (target as usize, first);
        match runs.seen.iter().position(|&k| k == key) {
            Some(i) => {
                runs.seen.remove(i);
            }
            None => {
                if runs.seen.len() == SEEN {
                    runs.seen.pop_front();
                }
                runs.seen.push_back(key);
                return;
            }
        }
        // Forget runs of partitions that are gone, and any run this one covers.
        runs.runs.retain(|r| {
            let covered = std::ptr::eq(r.partition.as_ptr(), target)
                && first <= r.first
                && r.last <= last
                && r.batches.len() <= batches.len();
            r.partition.strong_count() > 0 && !covered
        });
        runs.bytes = runs.runs.iter().map(|r| r.batches.len()).sum();
        while !runs.runs.is_empty()
            && (runs.bytes + batches.len() > BUDGET || runs.runs.len() >= MAX_RUNS)
        {
            let oldest = runs
                .runs
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.used)
                .map_or(0, |(i, _)| i);
            let gone = runs.runs.swap_remove(oldest);
            runs.bytes -= gone.batches.len();
        }
        runs.clock += 1;
        runs.bytes += batches.len();
        runs.runs.push(Run {
            partition: Arc::downgrade(p),
            first,
            last,
            batches: Bytes::copy_from_slice(batches),
            used: runs.clock,
        });
    }
}

/// Base offset of the first batch and last offset of the last; `None` if `batches` do
/// not parse as whole batches.
fn extent(batches: &[u8]) -> Option<(u64, u64)> {
    let first = BatchHeader::parse(batches).ok()?.base_offset;
    let mut at = 0;
    let mut last = first;
    while at < batches.len() {
        let h = BatchHeader::parse(&batches[at..]).ok()?;
        last = h.last_offset();
        at += h.size;
    }
    (at == batches.len()).then_some((first, last))
}

/// The batches of `run` a read of (`offset`, `max_bytes`, `max_records`) returns: from
/// the first batch whose last offset is `offset` or later, whole batches while they hold
/// fewer than `max_records` records from `offset` on and fit in `max_bytes` (the first
/// always fits). `None` if the run ends before the answer does.
fn select(run: &[u8], offset: u64, max_bytes: usize, max_records: u64) -> Option<Range<usize>> {
    if BatchHeader::parse(run).ok()?.base_offset > offset {
        // The batch that holds `offset` is before the run.
        return None;
    }
    let mut start = 0;
    let first = loop {
        let h = BatchHeader::parse(run.get(start..)?).ok()?;
        if h.last_offset() >= offset {
            break h;
        }
        start += h.size;
    };
    let limit = max_bytes.max(first.size);
    let (mut end, mut records) = (start, 0);
    while records < max_records {
        if end == run.len() {
            return None;
        }
        let h = BatchHeader::parse(&run[end..]).ok()?;
        if end - start + h.size > limit {
            break;
        }
        records += h.next_offset().saturating_sub(offset.max(h.base_offset));
        end += h.size;
    }
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Log, LogConfig};
    use crate::record::Record;

    /// Whatever part of the log a run holds, an answer from it is the log's own answer.
    #[test]
    fn runs_answer_exactly_as_the_log_reads() {
        let dir =
            std::env::temp_dir().join(format!("infralab-stream-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, _) = Log::open(
            &dir,
            LogConfig::default(),
            crate::log::DiskOptions::default(),
            0,
        )
        .unwrap();
        for i in 0..120usize {
            // Batches of 1 to 4 records of varied sizes.
            let batch: Vec<Record> = (0..=(i % 4))
                .map(|j| Record {
                    value: Some(Bytes::from(vec![b'v'; (i * 7 + j) % 300])),
                    timestamp: i as i64,
                    ..Record::default()
                })
                .collect();
            log.append_records(&batch, i as i64).unwrap();
        }
        let end = log.end_offset();
        let all = log.read(0, usize::MAX, u64::MAX).unwrap();
        let mut boundaries = vec![0];
        while *boundaries.last().unwrap() < all.len() {
            let at = *boundaries.last().unwrap();
            boundaries.push(at + BatchHeader::parse(&all[at..]).unwrap().size);
        }
        let (mut answered, mut declined) = (0, 0);
        for (i, &from) in boundaries.iter().enumerate().step_by(7) {
            for &to in boundaries[i + 1..].iter().step_by(11) {
                let run = &all[from..to];
                let (first, last) = extent(run).unwrap();
                for offset in first.saturating_sub(1)..=(last + 1).min(end - 1) {
                    for max_bytes in [1, 200, 1000, 4000, 1 << 20] {
                        for count in [1, 2, 5, 30, u64::MAX] {
                            let Some(range) = select(run, offset, max_bytes, count) else {
                                declined += 1;
                                continue;
                            };
                            let expected = log.read(offset, max_bytes, count).unwrap();
                            assert_eq!(
                                &run[range],
                                &expected[..],
                                "run {from}..{to}, offset {offset}, max_bytes {max_bytes}, count {count}"
                            );
                            answered += 1;
                        }
                    }
                }
            }
        }
        assert!(
            answered > 1000 && declined > 100,
            "{answered} answered, {declined} declined"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
