use super::*;
use crate::record::Record;

fn rec(value: &str, ts: i64) -> Record {
    Record {
        key: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        timestamp: ts,
        headers: vec![],
    }
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn values(log: &mut Log, from: u64) -> Vec<(u64, String)> {
    let bytes = log.read(from, usize::MAX >> 1, u64::MAX).unwrap();
    record::decode_batches(&bytes, from, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.record.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn read_all(log: &mut Log) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = log.start_offset();
    while offset < log.end_offset() {
        let got = values(log, offset);
        offset = got.last().unwrap().0 + 1;
        out.extend(got);
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("infralab-stream-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn unwritten_appends_reach_the_file_in_one_flush_or_before_a_read() {
    let dir = tmp("tail");
    let (mut log, _) = Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
    let on_disk = || {
        std::fs::metadata(dir.join(format!("{:020}.log", 0)))
            .unwrap()
            .len()
    };
    let a = log.append_records_unwritten(&[rec("a", 0)], 0).unwrap();
    let b = log
        .append_records_unwritten(&[rec("b", 1), rec("c", 2)], 2)
        .unwrap();
    assert_eq!((a.base_offset, b.base_offset, b.last_offset), (0, 1, 2));
    assert_eq!(log.end_offset(), 3, "offsets are assigned at append");
    assert_eq!(on_disk(), 0, "nothing written yet");
    assert!(log.flush().unwrap());
    assert_eq!(on_disk(), log.size(), "both batches in one flush");
    assert!(!log.flush().unwrap(), "nothing left to write");
    log.append_records_unwritten(&[rec("d", 3)], 3).unwrap();
    // A reader never misses an appended record: reading writes the tail first.
    assert_eq!(values(&mut log, 2), [(2, "c".into()), (3, "d".into())]);
    assert_eq!(on_disk(), log.size());
    // A tail past TAIL_LIMIT is written by the next append, not held in memory.
    let big = "x".repeat(1000);
    for i in 0..(TAIL_LIMIT / 1000 + 2) {
        log.append_records_unwritten(&[rec(&big, 4 + i as i64)], 4)
            .unwrap();
    }
    assert!(on_disk() > (TAIL_LIMIT as u64), "{}", on_disk());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn appends_get_consecutive_offsets_and_segments_roll_by_size() {
    let dir = tmp("roll");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    for i in 0..100 {
        let a = log.append_records(&[rec(&format!("m{i}"), i)], i).unwrap();
        assert_eq!((a.base_offset, a.last_offset), (i as u64, i as u64));
    }
    let batch = log
        .append_records(&[rec("x", 100), rec("y", 100), rec("z", 100)], 100)
        .unwrap();
    assert_eq!((batch.base_offset, batch.last_offset), (100, 102));
    assert!(log.segment_count() > 3, "rolled at 1 KiB");
    assert!(log.size() > 0);
    let all = read_all(&mut log);
    assert_eq!(all.len(), 103);
    for (i, (offset, value)) in all.iter().enumerate().take(100) {
        assert_eq!(
            (*offset, value.as_str()),
            (i as u64, format!("m{i}").as_str())
        );
    }
    // A record limit stops the read early: 3 single-record batches, not the segment.
    let three = log.read(10, 1 << 20, 3).unwrap();
    let got = record::decode_batches(&three, 10, usize::MAX).unwrap();
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    // Reading from the middle of a batch starts at that record.
    assert_eq!(values(&mut log, 101)[0], (101, "y".to_string()));
    // Each segment's file is named by its base offset.
    for base in log.segment_bases() {
        assert!(dir.join(format!("{base:020}.log")).exists());
    }
    // Reopening finds the same log.
    let end = log.end_offset();
    drop(log);
    let (mut log, recovery) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(log.end_offset(), end);
    assert_eq!(read_all(&mut log).len(), 103);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_scan_across_chunks_without_an_index() {
    let dir = tmp("scan");
    let config = LogConfig {
        index_interval_bytes: u64::MAX,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    for i in 0..500 {
        // Odd sizes, so headers straddle the 8 KiB read chunks.
        log.append_records(&[rec(&"v".repeat(i % 97), i as i64)], 0)
            .unwrap();
    }
    for offset in [0, 1, 77, 250, 499] {
        let got = values(&mut log, offset);
        assert_eq!(got[0].0, offset);
        assert_eq!(got[0].1.len(), offset as usize % 97);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reads_into_a_reused_buffer_match_fresh_reads() {
    let dir = tmp("reuse");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    for i in 0..300 {
        // Batches of 1 to 4 records of varied sizes.
        let batch: Vec<Record> = (0..=(i % 4))
            .map(|j| rec(&"r".repeat((i * 7 + j) % 150), i as i64))
            .collect();
        log.append_records(&batch, i as i64).unwrap();
    }
    // One buffer for every read, left dirty by the one before (big reads first).
    let mut buf = BytesMut::new();
    for (offset, max_bytes, count) in [
        (0, 1 << 20, u64::MAX),
        (5, 100, 1),
        (333, 1 << 20, 50),
        (100, 300, 7),
        (log.end_offset() - 1, 1 << 20, 100),
        (log.end_offset(), 1 << 20, 100),
        (17, 1 << 20, 3),
    ] {
        let fresh = log.read(offset, max_bytes, count).unwrap();
        let views = log.views(offset).unwrap();
        let range = read_views_into(&views, offset, max_bytes, count, &mut buf).unwrap();
        assert_eq!(&buf[range], &fresh[..], "offset {offset} count {count}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rolls_by_time() {
    let dir = tmp("roll-time");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    log.append_records(&[rec("a", 0)], 0).unwrap();
    log.append_records(&[rec("b", 999)], 999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append_records(&[rec("c", 1000)], 1000).unwrap();
    assert_eq!(log.segment_bases(), [0, 2]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn out_of_range_reads_name_the_valid_range() {
    let dir = tmp("range");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    log.append_records(&[rec("a", 0), rec("b", 0)], 0).unwrap();
    assert!(
        log.read(2, 100, u64::MAX).unwrap().is_empty(),
        "at the end: nothing yet"
    );
    let err = log.read(3, 100, u64::MAX).unwrap_err();
    assert_eq!(
        err.to_string(),
        "offset 3 is out of range: the log holds offsets 0 to 2 (the end offset is the next one to be written)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_by_size_and_time_deletes_whole_segments() {
    let dir = tmp("retention");
    let config = LogConfig {
        retention_bytes: 2048,
        retention_ms: 10_000,
        ..small()
    };
    let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    for i in 0..200 {
        log.append_records(&[rec(&format!("{i:040}"), i)], i)
            .unwrap();
    }
    let before = log.segment_count();
    let deleted = log.apply_retention(200).unwrap();
    assert!(!deleted.is_empty());
    assert_eq!(log.segment_count(), before - deleted.len());
    assert!(log.size() <= 2048 + 1024, "size {}", log.size());
    let start = log.start_offset();
    assert!(start > 0);
    assert!(!dir.join(format!("{:020}.log", deleted[0])).exists());
    assert!(matches!(
        log.read(start - 1, 100, u64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&mut log).first().unwrap().0, start);

    // Time: everything is older than 10 s at t=1_000_000: all data goes, the log
    // stays writable at the same end offset.
    let end = log.end_offset();
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.start_offset(), log.end_offset()), (end, end));
    assert_eq!(log.size(), 0);
    let a = log
        .append_records(&[rec("new", 1_000_000)], 1_000_000)
        .unwrap();
    assert_eq!(a.base_offset, end);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lookup_by_timestamp() {
    let dir = tmp("time");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    for i in 0..100i64 {
        log.append_records(&[rec("v", i * 10), rec("w", i * 10 + 5)], i * 10)
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(5).unwrap(), Some((1, 5)));
    assert_eq!(log.offset_for_timestamp(6).unwrap(), Some((2, 10)));
    assert_eq!(log.offset_for_timestamp(500).unwrap(), Some((100, 500)));
    assert_eq!(log.offset_for_timestamp(995).unwrap(), Some((199, 995)));
    assert_eq!(log.offset_for_timestamp(996).unwrap(), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recovery_truncates_a_torn_tail_and_rebuilds_the_index() {
    let dir = tmp("torn");
    let (mut log, _) = Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
    for i in 0..50 {
        log.append_records(&[rec(&format!("{i:0100}"), i)], i)
            .unwrap();
    }
    let good_size = log.size();
    drop(log);
    let path = dir.join(format!("{:020}.log", 0));
    // A torn write: half a batch header at the end.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 1]);
    std::fs::write(&path, &bytes).unwrap();
    let (log, recovery) = Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
    assert_eq!(recovery.truncated_bytes, 11);
    assert_eq!(log.size(), good_size);
    assert_eq!(log.end_offset(), 50);
    drop(log);

    // A corrupt last batch (one flipped byte): the CRC catches it, the batch goes.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // And a mismatched index: garbage.
    std::fs::write(dir.join(format!("{:020}.index", 0)), [1u8; 16]).unwrap();
    let (mut log, recovery) =
        Log::open(&dir, LogConfig::default(), DiskOptions::default(), 0).unwrap();
    assert!(recovery.truncated_bytes > 0);
    assert_eq!(recovery.indexes_rebuilt, 1);
    assert_eq!(log.end_offset(), 49);
    let all = read_all(&mut log);
    assert_eq!(all.len(), 49);
    assert_eq!(all[48], (48, format!("{:0100}", 48)));
    // Appends continue from the truncation point.
    assert_eq!(
        log.append_records(&[rec("next", 0)], 0)
            .unwrap()
            .base_offset,
        49
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Index entries reach the index file 256 at a time, and all of them when the
/// segment rolls; after a crash the held-back ones are rebuilt from the log without
/// counting as a repair.
#[test]
fn index_entries_are_written_in_groups_and_whole_at_roll() {
    let dir = tmp("index-groups");
    let config = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let index_len = |log: &Log, i: usize| {
        let (_, index) = crate::segment::file_names(&dir, log.segments[i].base_offset());
        std::fs::metadata(index).unwrap().len() as usize
    };
    let (mut log, _) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    for i in 0..100 {
        log.append_records(&[rec("v", i)], i).unwrap();
    }
    assert_eq!(
        log.active().index_entries(),
        99,
        "one entry per batch but the first"
    );
    assert_eq!(index_len(&log, 0), 0, "held back");
    drop(log); // a crash: nothing synced
    let (mut log, recovery) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    assert_eq!(recovery.indexes_rebuilt, 0, "a lagging index is no repair");
    assert_eq!(index_len(&log, 0), 99 * 16, "rebuilt from the log");
    for i in 100..400 {
        log.append_records(&[rec("v", i)], i).unwrap();
    }
    assert_eq!(index_len(&log, 0), 99 * 16 + 4096, "one group of 256");
    log.roll(400).unwrap();
    assert_eq!(index_len(&log, 0), 399 * 16, "all of it at the roll");
    drop(log);
    let (mut log, recovery) = Log::open(&dir, config, DiskOptions::default(), 0).unwrap();
    assert_eq!(recovery.indexes_rebuilt, 0);
    assert_eq!(values(&mut log, 250)[0], (250, "v".to_string()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn older_segments_with_a_bad_index_are_rebuilt() {
    let dir = tmp("old-index");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    for i in 0..100 {
        log.append_records(&[rec(&format!("{i:030}"), i)], i)
            .unwrap();
    }
    let bases = log.segment_bases();
    drop(log);
    std::fs::write(dir.join(format!("{:020}.index", bases[0])), [7u8; 32]).unwrap();
    let (mut log, recovery) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    assert_eq!(recovery.indexes_rebuilt, 1);
    assert_eq!(read_all(&mut log).len(), 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn appends_batches_as_received_and_rejects_bad_ones() {
    let dir = tmp("raw");
    let (mut log, _) = Log::open(&dir, small(), DiskOptions::default(), 0).unwrap();
    let mut two = record::encode_batch(&[rec("a", 1), rec("b", 2)]);
    two.extend_from_slice(&record::encode_batch(&[rec("c", 3)]));
    let a = log.append(&two, 0).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!(values(&mut log, 0).len(), 3);
    let mut bad = record::encode_batch(&[rec("d", 4)]);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(
        log.append(&bad, 0),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let huge = record::encode_batch(&[rec(&"x".repeat(2000), 0)]);
    assert!(matches!(
        log.append(&huge, 0),
        Err(LogError::TooLarge { .. })
    ));
    assert_eq!(log.end_offset(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}
