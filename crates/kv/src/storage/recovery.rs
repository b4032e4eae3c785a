//! Recovery: replaying the journal after the checkpoint into memory at startup.
//!
//! The checkpoint holds the dataset as of a position in the journal; every change after
//! that position is only in the journal files. So a start loads the checkpoint and then
//! replays those files in order. The one judgement here is what a damaged record means:
//! at the very end of the journal it is a write a crash cut short, which nobody was
//! answered for, and is cut off; anywhere else it is not a crash's work, and starting
//! anyway would drop acknowledged writes (steps 2 and 3 of the parent module's docs).
//! The tests below crash, tear and damage whole data directories and restart them.

use std::path::Path;

use tracing::warn;

use super::checkpoint::Position;
use super::journal;
use crate::keyspace::Keyspace;

/// Replays the journal after `from` into `keyspace`: every file from `from`'s on, in
/// order. Damage in the last record of the last file is a torn tail, truncated. Damage
/// followed by valid records (later in the file, or in a later file) is an error naming
/// the file and byte — unless `load_truncated` (`--load-truncated`), which truncates there
/// anyway, keeping a copy of the damaged file and setting later files aside. Returns the
/// number of changes replayed and the last file's generation.
pub(super) fn replay(
    journal_dir: &Path,
    from: Position,
    keyspace: &mut Keyspace,
    load_truncated: bool,
) -> std::io::Result<(usize, Option<u64>)> {
    let generations = journal::generations(journal_dir)?;
    let mut replayed = 0;
    for (i, &generation) in generations.iter().enumerate() {
        if generation < from.generation {
            // Folded, but a crash came before its deletion.
            journal::remove(journal_dir, generation)?;
            continue;
        }
        let start = if generation == from.generation {
            from.offset
        } else {
            0
        };
        let mut reader = journal::Reader::open(journal_dir, generation, start)?;
        while let Some((change, _)) = reader.next_change()? {
            keyspace.replay(change);
            replayed += 1;
        }
        // Keep the keyspace's own journal from growing while a long one is replayed.
        keyspace.drain_changes();
        let Some(damage) = reader.damage() else {
            continue;
        };
        let at = reader.offset();
        let path = journal::path(journal_dir, generation);
        let later = &generations[i + 1..];
        let follows = match later.first() {
            Some(_) => Some(0),
            None => journal::valid_record_after(journal_dir, generation, reader.damaged_at())?,
        };
        let Some(valid_at) = follows else {
            warn!(
                "journal file {}: {damage} at byte {at}, the last record: a torn tail (a write cut short by a crash), truncating it",
                path.display()
            );
            journal::truncate(journal_dir, generation, at)?;
            continue;
        };
        let followed_by = if later.is_empty() {
            format!("a valid record at byte {valid_at}")
        } else {
            format!("{} later journal file(s)", later.len())
        };
        if !load_truncated {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "journal file {} is damaged at byte {at} ({damage}), followed by {followed_by}: \
                     not a torn tail. Refusing to start rather than drop the writes after it; \
                     restore the file, or start with --load-truncated to drop everything from \
                     byte {at} on",
                    path.display()
                ),
            ));
        }
        let copy = path.with_extension("kvj.damaged");
        std::fs::copy(&path, &copy)?;
        warn!(
            "journal file {}: {damage} at byte {at}, followed by {followed_by}; \
             --load-truncated: dropping everything from there on (the file as it was is kept as {})",
            path.display(),
            copy.display()
        );
        journal::truncate(journal_dir, generation, at)?;
        for &dropped in later {
            let aside = journal::set_aside(journal_dir, dropped)?;
            warn!(
                "--load-truncated: journal file set aside as {}",
                aside.display()
            );
        }
        return Ok((replayed, Some(generation)));
    }
    Ok((replayed, generations.last().copied()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use bytes::Bytes;

    use super::*;
    use crate::codec;
    use crate::keyspace::Change;
    use crate::storage::checkpoint::{self, Files};
    use crate::storage::journal::Appender;
    use crate::storage::{FOLD_THRESHOLD, Fsync, Storage};
    use crate::types::edit::Edit;
    use crate::value::{Entry, Value};

    const NOW: u64 = 1_700_000_000_000;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(db: usize, key: &str, value: &str) -> Change {
        Change::Put {
            db,
            key: b(key),
            entry: Entry::new(Value::String(b(value).into()), None),
        }
    }

    fn push(key: &str, left: bool, value: &str) -> Change {
        Change::Edit {
            db: 0,
            key: b(key),
            edit: Edit::ListPush {
                left,
                values: vec![b(value)],
            },
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kv-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Applies changes to the keyspace as the server does, and hands them to storage.
    async fn write(ks: &mut Keyspace, storage: &Storage, changes: Vec<Change>) {
        for change in changes {
            ks.replay(change);
        }
        let seq = ks.journal().seq();
        storage.append(ks.changes(), seq);
        ks.clear_changes();
        storage.durable(seq).await;
    }

    /// A mix of changes to every type, with those that are not idempotent if replayed
    /// twice (pushes, pops, swaps), spread over databases.
    fn workload(round: usize) -> Vec<Change> {
        let mut changes = Vec::new();
        for i in 0..50 {
            changes.push(put(i % 3, &format!("k{}", i % 20), &format!("{round}-{i}")));
            changes.push(push("l", i.is_multiple_of(2), &format!("{round}-{i}")));
            let member = b(&format!("m{}", i % 7));
            let edit = match i % 5 {
                0 => Edit::HashPut(vec![(member, b(&format!("{round}")))]),
                1 => Edit::SetAdd(vec![member]),
                2 => Edit::ZAdd(vec![(member, (round * i) as f64)]),
                3 => Edit::ListPop {
                    left: round.is_multiple_of(2),
                    count: 1,
                },
                _ => Edit::SetRemove(vec![member]),
            };
            let key = ["h", "s", "z", "l", "s"][i % 5];
            changes.push(Change::Edit {
                db: 0,
                key: b(key),
                edit,
            });
        }
        changes.push(Change::SwapDb { a: 1, b: 2 });
        if round % 3 == 2 {
            changes.push(Change::FlushDb { db: 2 });
        }
        changes
    }

    /// Where a journal file's records end.
    fn records_end(journal_dir: &Path, generation: u64) -> u64 {
        let mut reader = journal::Reader::open(journal_dir, generation, 0).unwrap();
        while reader.next_change().unwrap().is_some() {}
        assert_eq!(reader.damage(), None);
        reader.offset()
    }

    fn open(dir: &Path, threshold: u64) -> (Keyspace, Storage) {
        let mut ks = Keyspace::new(true);
        let storage =
            Storage::open_with(dir, Fsync::Always, false, &mut ks, NOW, threshold).unwrap();
        (ks, storage)
    }

    /// A list stored by format 2 (a record per element) is still read, and pushes, pops
    /// and LSETs fold into it as records per element; a new list is paged.
    #[tokio::test]
    async fn a_format_2_list_is_read_and_edited_in_place() {
        use codec::{Body, Record, element_key, element_prefix, encode_record, list_position};
        let dir = temp_dir("format2-list");
        let origin = codec::LIST_ORIGIN;
        {
            let db = sled::open(&dir).unwrap();
            let list = Body::List {
                head: origin,
                tail: origin + 2,
            };
            let record = encode_record(&Record {
                expires_at: None,
                body: list,
            });
            db.open_tree("t0").unwrap().insert("l", record).unwrap();
            let elements = db.open_tree("e0").unwrap();
            for (i, value) in ["a", "b"].into_iter().enumerate() {
                let at = element_key(&element_prefix(b"l"), &list_position(origin + i as u64));
                elements.insert(at, value).unwrap();
            }
            db.flush().unwrap();
        }
        let list_of = |ks: &mut Keyspace, key: &str| match ks.value(0, &b(key), NOW) {
            Some(Value::List(list)) => list.iter().map(|e| e.to_vec()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(list_of(&mut ks, "l"), [b"a", b"b"]);
        let set = Change::Edit {
            db: 0,
            key: b("l"),
            edit: Edit::ListSet {
                index: 1,
                value: b("B"),
            },
        };
        let pop = Change::Edit {
            db: 0,
            key: b("l"),
            edit: Edit::ListPop {
                left: true,
                count: 1,
            },
        };
        let changes = vec![push("l", true, "z"), push("l", false, "c"), set, pop];
        write(
            &mut ks,
            &storage,
            [changes, vec![push("new", false, "x")]].concat(),
        )
        .await;
        storage.close().await;
        // l: z a b c after the pushes; LSET 1 turns a into B; LPOP takes z.
        let expected = [b"B".to_vec(), b"b".to_vec(), b"c".to_vec()];
        // Three element records for "l", one page for "new".
        assert_eq!(checkpoint::count_elements(&dir).unwrap(), 3 + 1);
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(list_of(&mut ks, "l"), expected);
        assert_eq!(list_of(&mut ks, "new"), [b"x"]);
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_crash_replays_the_journal_over_the_folded_checkpoint() {
        let dir = temp_dir("crash");
        // A small threshold: the journal is folded in the background many times.
        let (mut ks, storage) = open(&dir, 4096);
        for round in 0..20 {
            write(&mut ks, &storage, workload(round)).await;
            if round == 10 {
                storage.sync().await;
            }
        }
        let expected = ks.dataset(NOW);
        storage.stop(true).await;
        assert!(
            !journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );

        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.dataset(NOW), expected);
        // A clean stop folds everything: the next start replays nothing.
        storage.close().await;
        assert!(
            journal::generations(&journal::directory(&dir))
                .unwrap()
                .is_empty()
        );
        let (ks, storage) = open(&dir, 4096);
        assert_eq!(ks.dataset(NOW), expected);
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A crash after a fold but before its file was deleted: the checkpoint's position
    /// says the file is folded, so it is not replayed (the pushes would be doubled).
    #[tokio::test]
    async fn a_folded_file_left_behind_is_not_replayed() {
        let dir = temp_dir("folded");
        let journal_dir = journal::directory(&dir);
        std::fs::create_dir_all(&journal_dir).unwrap();
        let pushes = 2 * checkpoint::FOLD_CHUNK + 10;
        let mut records = Vec::new();
        for i in 0..pushes {
            codec::append_journal_record(&mut records, &push("l", false, &i.to_string()));
        }
        let mut appender = Appender::create(&journal_dir, 1).unwrap();
        appender.append(&records).unwrap();
        appender.finish().unwrap();
        {
            let mut files = Files::open(&dir).unwrap();
            assert_eq!(files.fold(&journal_dir, 1).unwrap(), pushes);
            let next = Position {
                generation: 2,
                offset: 0,
            };
            assert_eq!(files.position(), next);
            files.db.flush().unwrap();
        }
        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).unwrap();
        let Some(Value::List(list)) = ks.value(0, &b("l"), NOW) else {
            panic!("no list");
        };
        assert_eq!(list.len(), pushes);
        storage.close().await;
        assert!(journal::generations(&journal_dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_and_damage_elsewhere_refuses_to_start() {
        let dir = temp_dir("torn");
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        write(&mut ks, &storage, workload(0)).await;
        let expected = ks.dataset(NOW);
        storage.stop(true).await;

        // The crash cut the last record short: its header and half its payload.
        let journal_dir = journal::directory(&dir);
        let last = *journal::generations(&journal_dir).unwrap().last().unwrap();
        let path = journal_dir.join(format!("{last:020}.kvj"));
        let good_len = records_end(&journal_dir, last);
        let mut record = Vec::new();
        codec::append_journal_record(&mut record, &put(0, "torn", "never acknowledged"));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = good_len as usize;
        // Half a record where the records end (the zeros written ahead follow it).
        bytes[at..at + record.len() / 2].copy_from_slice(&record[..record.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();

        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        assert_eq!(ks.dataset(NOW), expected);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        // Writes after the restart go to a new file.
        write(&mut ks, &storage, workload(1)).await;
        storage.stop(true).await;
        let newest = *journal::generations(&journal_dir).unwrap().last().unwrap();
        assert_eq!(newest, last + 1);

        // Damage in a file that is not the last is not a torn tail.
        let path = journal_dir.join(format!("{newest:020}.kvj"));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = records_end(&journal_dir, newest) as usize / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        Appender::create(&journal_dir, newest + 1).unwrap();
        let mut ks = Keyspace::new(true);
        assert!(Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A flipped byte in the middle of the last file, with valid records after it, is
    /// not a torn tail: kv refuses to start and names the file and the byte; with
    /// `--load-truncated` it starts with the records before the damage, keeping a copy.
    #[tokio::test]
    async fn damage_in_the_middle_refuses_to_start_unless_load_truncated() {
        let dir = temp_dir("middle");
        let (mut ks, storage) = open(&dir, FOLD_THRESHOLD);
        for round in 0..4 {
            write(&mut ks, &storage, workload(round)).await;
        }
        storage.stop(true).await;
        let journal_dir = journal::directory(&dir);
        let last = *journal::generations(&journal_dir).unwrap().last().unwrap();
        let path = journal::path(&journal_dir, last);
        let end = records_end(&journal_dir, last);
        // The record holding the middle byte, and where it starts.
        let middle = end / 2;
        // The record holding the middle byte, where it starts, and what the records
        // before it make.
        let mut prefix = Keyspace::new(true);
        let mut reader = journal::Reader::open(&journal_dir, last, 0).unwrap();
        let mut record_start = reader.offset();
        while let Some((change, next)) = reader.next_change().unwrap() {
            if next > middle {
                break;
            }
            prefix.replay(change);
            record_start = next;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[middle as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let mut ks = Keyspace::new(true);
        let refused = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW)
            .err()
            .expect("a journal damaged in the middle must not load")
            .to_string();
        assert!(refused.contains(&path.display().to_string()), "{refused}");
        assert!(
            refused.contains(&format!("byte {record_start} ")),
            "{refused}"
        );
        assert!(refused.contains("--load-truncated"), "{refused}");
        // Nothing was truncated or folded by the refusal.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, true, &mut ks, NOW).unwrap();
        storage.close().await;
        assert_eq!(
            std::fs::read(path.with_extension("kvj.damaged")).unwrap(),
            bytes
        );
        // What the records before the damage make, and nothing after.
        let mut ks = Keyspace::new(true);
        let storage = Storage::open(&dir, Fsync::Always, false, &mut ks, NOW).unwrap();
        assert_eq!(ks.dataset(NOW), prefix.dataset(NOW));
        storage.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
