//! The list against a `VecDeque` model: pushes, pops, the writes in the middle and the
//! walks, over elements of every size class and across chunk boundaries.

use super::*;
use crate::types::list::chunk::Chunk;
use crate::types::list::entry::{read_backward, read_forward, write_entry};

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn element(tag: usize, size: usize) -> Vec<u8> {
    let mut v = format!("{tag}:").into_bytes();
    v.resize(size.max(v.len()), b'x');
    v.truncate(size);
    v
}

/// The list's structure is sound and its contents are `model`'s.
fn check(l: &List, model: &VecDeque<Vec<u8>>) {
    assert_eq!(l.len(), model.len());
    assert_eq!(l.is_empty(), model.is_empty());
    assert_eq!(l.chunks.iter().map(|c| c.count).sum::<usize>(), l.len);
    assert_eq!(l.chunks.iter().map(Chunk::cost).sum::<usize>(), l.memory());
    for c in &l.chunks {
        assert!(c.count > 0, "an empty chunk stayed in the list");
        assert!(c.start <= c.end && c.end <= c.buf.len());
        assert!(
            c.live() <= CHUNK_BYTES || c.count == 1,
            "an oversized chunk"
        );
        assert_eq!(c.entries().count(), c.count);
    }
    let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).collect();
    let first_difference = |got: Vec<&[u8]>| {
        let at = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i));
        assert_eq!(
            at,
            None,
            "{} elements, expected {}",
            got.len(),
            expected.len()
        );
    };
    first_difference(l.iter().collect());
    let mut backward: Vec<&[u8]> = l.iter().rev().collect();
    backward.reverse();
    first_difference(backward);
    assert_eq!(l.iter().len(), model.len());
    let copied: Vec<&[u8]> = l.range(0, l.len()).collect();
    assert!(copied.iter().map(|b| &b[..]).eq(expected.iter().copied()));
    let (a, b) = (l.len() / 3, l.len() * 2 / 3 + 1);
    let copied: Vec<&[u8]> = l.range(a, b).collect();
    assert!(
        copied
            .iter()
            .map(|b| &b[..])
            .eq(model.range(a..b.min(model.len())).map(Vec::as_slice))
    );
}

fn model_of(items: &[&[u8]]) -> VecDeque<Vec<u8>> {
    items.iter().map(|i| i.to_vec()).collect()
}

#[test]
fn entries_encode_their_length_both_ways() {
    for n in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
        let data = element(n, n);
        let mut buf = vec![0; entry_len(n)];
        write_entry(&mut buf, &data);
        assert_eq!(read_forward(&buf, 0), (varint_len(n), n));
        assert_eq!(read_backward(&buf, buf.len()), (varint_len(n), n));
    }
    assert_eq!(
        entry_len(2),
        4,
        "a small element costs two bytes beyond itself"
    );
}

#[test]
fn pushes_and_pops_cross_chunk_boundaries_at_both_ends() {
    let mut l = List::default();
    let mut model = VecDeque::new();
    for i in 0..5_000 {
        let v = element(i, 3 + i % 7);
        l.push(&v, i % 3 == 0);
        if i % 3 != 0 {
            model.push_back(v);
        } else {
            model.push_front(v);
        }
    }
    assert!(l.chunks.len() > 3, "the test should span chunks");
    check(&l, &model);
    for i in 0..5_000 {
        let left = i % 2 == 0;
        let expected = if left {
            model.pop_front()
        } else {
            model.pop_back()
        };
        assert_eq!(l.pop(left).as_deref(), expected.as_deref());
        if i % 500 == 0 {
            check(&l, &model);
        }
    }
    assert_eq!(l.pop(true), None);
    assert!(l.chunks.is_empty());
    assert_eq!(l.memory(), 0);
}

#[test]
fn elements_larger_than_a_chunk_get_their_own() {
    let big = element(1, CHUNK_BYTES * 3);
    let mut l = List::default();
    l.push(b"a", false);
    l.push(&big, false);
    l.push(b"b", false);
    l.push(&big, true);
    let model = model_of(&[&big, b"a", &big, b"b"]);
    check(&l, &model);
    assert_eq!(l.get(2), Some(&big[..]));
    assert_eq!(l.pop(true).as_deref(), Some(&big[..]));
    assert_eq!(l.pop(false).as_deref(), Some(&b"b"[..]));
    assert_eq!(l.pop(false).as_deref(), Some(&big[..]));
    check(&l, &model_of(&[b"a"]));
}

#[test]
fn empty_elements_are_elements() {
    let mut l = List::default();
    for _ in 0..3 {
        l.push(b"", true);
    }
    l.push(b"x", false);
    check(&l, &model_of(&[b"", b"", b"", b"x"]));
    assert_eq!(l.get(1), Some(&b""[..]));
    assert_eq!(l.remove_matching(b"", 2), 2);
    check(&l, &model_of(&[b"", b"x"]));
    assert_eq!(l.pop(true), Some(Bytes::new()));
}

/// A list of `n` numbered elements spanning several chunks.
fn numbered(n: usize) -> (List, VecDeque<Vec<u8>>) {
    let model: VecDeque<Vec<u8>> = (0..n).map(|i| element(i, 40)).collect();
    let mut l = List::default();
    for v in &model {
        l.push(v, false);
    }
    (l, model)
}

#[test]
fn set_insert_remove_and_trim_inside_and_across_chunks() {
    let (mut l, mut model) = numbered(1_000);
    assert!(l.chunks.len() >= 4);
    let boundary = l.chunks[0].count;
    // LSET: same length in place, other lengths by repacking, at a chunk's edges.
    for (i, v) in [
        (boundary - 1, element(7, 40)),
        (boundary, element(8, 3)),
        (500, element(9, CHUNK_BYTES * 2)),
        (999, Vec::new()),
    ] {
        l.set(i, &v);
        model[i] = v;
        check(&l, &model);
    }
    // LINSERT at chunk edges, in the middle, and at both ends.
    for i in [0, boundary, boundary + 1, 333, model.len()] {
        let v = element(i, 5);
        l.insert(i, &v);
        model.insert(i, v);
        check(&l, &model);
    }
    // LREM across chunks: from the left, from the right, and all.
    let dup = b"dup".to_vec();
    for i in [3, boundary - 1, boundary, 600, 900] {
        l.set(i, &dup);
        model[i] = dup.clone();
    }
    check(&l, &model);
    assert_eq!(l.remove_matching(&dup, 2), 2);
    model.remove(boundary - 1);
    model.remove(3);
    check(&l, &model);
    assert_eq!(l.remove_matching(&dup, -1), 1);
    model.remove(898);
    check(&l, &model);
    assert_eq!(l.remove_matching(&dup, 0), 2);
    model.retain(|v| *v != dup);
    check(&l, &model);
    assert_eq!(l.remove_matching(b"absent", 0), 0);
    // LTRIM inside one chunk's range and across several.
    l.keep(boundary / 2, model.len() - boundary - 3);
    model.truncate(model.len() - boundary - 3);
    model.drain(..boundary / 2);
    check(&l, &model);
    l.keep(10, 20);
    model.truncate(20);
    model.drain(..10);
    check(&l, &model);
    l.keep(5, 5);
    check(&l, &VecDeque::new());
    assert_eq!(l.memory(), 0);
}

#[test]
fn get_and_range_walk_from_either_end() {
    let (l, model) = numbered(3_000);
    for i in [0, 1, 1_499, 1_500, 2_998, 2_999] {
        assert_eq!(l.get(i), Some(&model[i][..]));
    }
    assert_eq!(l.get(3_000), None);
    let range: Vec<&[u8]> = l.range(1_234, 1_334).collect();
    let expected: Vec<&[u8]> = model.range(1_234..1_334).map(Vec::as_slice).collect();
    assert_eq!(range, expected);
    let copied: Vec<&[u8]> = l.range(1_234, 1_334).collect();
    assert_eq!(copied.iter().map(|b| &b[..]).collect::<Vec<_>>(), expected);
    let boundary = l.chunks[0].count;
    let across: Vec<&[u8]> = l.range(boundary - 2, boundary + 2).collect();
    let expected: Vec<&[u8]> = model
        .range(boundary - 2..boundary + 2)
        .map(Vec::as_slice)
        .collect();
    assert_eq!(across.iter().map(|b| &b[..]).collect::<Vec<_>>(), expected);
    assert_eq!(l.range(0, 3_000).count(), 3_000);
    assert_eq!(l.range(3_000, 3_000).count(), 0);
    assert_eq!(l.range(5, 3).count(), 0);
    assert_eq!(l.range(5, 5).count(), 0);
}

/// Random operations against a `VecDeque` model, with elements of every size class.
#[test]
fn random_operations_match_a_deque() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut l = List::default();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let sizes = [0, 1, 3, 10, 100, 1_000, 5_000, CHUNK_BYTES + 1];
    for step in 0..6_000 {
        let size =
            sizes[rng.below(sizes.len())].min(if rng.below(10) == 0 { usize::MAX } else { 100 });
        let v = element(step, size);
        match rng.below(10) {
            0..=3 => {
                let left = rng.below(2) == 0;
                l.push(&v, left);
                if left {
                    model.push_front(v);
                } else {
                    model.push_back(v);
                }
            }
            4..=5 => {
                let left = rng.below(2) == 0;
                let expected = if left {
                    model.pop_front()
                } else {
                    model.pop_back()
                };
                assert_eq!(l.pop(left).as_deref(), expected.as_deref());
            }
            6 if !model.is_empty() => {
                let i = rng.below(model.len());
                l.set(i, &v);
                model[i] = v;
            }
            7 => {
                let i = rng.below(model.len() + 1);
                l.insert(i, &v);
                model.insert(i, v);
            }
            8 if !model.is_empty() => {
                let target = model[rng.below(model.len())].clone();
                let count = rng.below(5) as i64 - 2;
                let matches: Vec<usize> =
                    (0..model.len()).filter(|&i| model[i] == target).collect();
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut doomed: Vec<usize> = if count >= 0 {
                    matches.into_iter().take(limit).collect()
                } else {
                    matches.into_iter().rev().take(limit).collect()
                };
                doomed.sort_unstable();
                for &i in doomed.iter().rev() {
                    model.remove(i);
                }
                assert_eq!(l.remove_matching(&target, count), doomed.len());
            }
            9 if rng.below(20) == 0 => {
                let a = rng.below(model.len() + 2);
                let b = rng.below(model.len() + 2).max(a);
                l.keep(a, b);
                let b = b.min(model.len());
                model.truncate(b);
                model.drain(..a.min(b));
            }
            _ => {}
        }
        if step % 50 == 0 {
            check(&l, &model);
        }
    }
    check(&l, &model);
}

#[test]
fn serializes_as_the_deque_of_bytes_it_used_to_be() {
    use bincode::Options;
    let options = || {
        bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_little_endian()
    };
    let items: VecDeque<Bytes> = (0..2_000)
        .map(|i| Bytes::from(element(i, i % 50)))
        .collect();
    let old_format = options().serialize(&items).unwrap();
    let list = List::from(items.clone());
    assert_eq!(options().serialize(&list).unwrap(), old_format);
    let back: List = options().deserialize(&old_format).unwrap();
    assert_eq!(back, list);
    assert!(back.iter().eq(items.iter().map(|b| &b[..])));
}
