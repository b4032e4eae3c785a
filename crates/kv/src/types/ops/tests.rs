//! Collection writes through the keyspace's one write path: what they journal, that
//! replaying the journal rebuilds them, and that a failed write leaves nothing behind.

use bytes::Bytes;
use proto::CommandError;

use super::*;
use crate::keyspace::{Change, Keyspace, Mutation, Outcome};
use crate::types::edit::Edit;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn run(ks: &mut Keyspace, op: Op) -> Result<Outcome, CommandError> {
    ks.apply(0, Mutation::Collection(op), 0)
}

#[test]
fn writes_are_journaled_and_an_emptied_collection_deletes_its_key() {
    let mut ks = Keyspace::new(true);
    let sadd = Op::SAdd {
        key: b("s"),
        members: vec![b("a"), b("b")],
    };
    assert_eq!(run(&mut ks, sadd), Ok(Outcome::Integer(2)));
    for member in ["a", "b"] {
        let srem = Op::SRem {
            key: b("s"),
            members: vec![b(member)],
        };
        assert_eq!(run(&mut ks, srem), Ok(Outcome::Integer(1)));
    }
    // A no-op write journals nothing.
    let srem = Op::SRem {
        key: b("s"),
        members: vec![b("zz")],
    };
    assert_eq!(run(&mut ks, srem), Ok(Outcome::Integer(0)));
    let (changes, _) = ks.drain_changes();
    let edit = |edit| Change::Edit {
        db: 0,
        key: b("s"),
        edit,
    };
    assert_eq!(
        changes,
        vec![
            edit(Edit::SetAdd(vec![b("a"), b("b")])),
            edit(Edit::SetRemove(vec![b("a")])),
            Change::Remove { db: 0, key: b("s") },
        ]
    );
    assert_eq!(ks.type_of(0, &b("s"), 0), "none");
    assert_eq!(ks.used_memory(), 0);
}

/// Runs a script of commands on a journaling keyspace and replays its journal onto a
/// fresh one: both must hold the same data after every step.
#[test]
fn replaying_the_journal_rebuilds_every_collection() {
    let bs = |items: &[&str]| items.iter().map(|s| b(s)).collect::<Vec<_>>();
    let push = |left, items: &[&str]| Op::Push {
        key: b("l"),
        values: bs(items),
        left,
        only_if_exists: false,
    };
    let pop = |key: &str, left, count| Op::Pop {
        key: b(key),
        left,
        count,
    };
    let lset = |index, value: &str| Op::LSet {
        key: b("l"),
        index,
        value: b(value),
    };
    let hset = |pairs: &[(&str, &str)], only_if_new| Op::HSet {
        key: b("h"),
        pairs: pairs.iter().map(|(f, v)| (b(f), b(v))).collect(),
        only_if_new,
    };
    let hfloat = |delta| Op::HIncrByFloat {
        key: b("h"),
        field: b("f5"),
        delta,
    };
    let zadd = |flags, pairs: &[(f64, &str)]| Op::ZAdd {
        key: b("z"),
        flags,
        pairs: pairs.iter().map(|(s, m)| (*s, b(m))).collect(),
    };
    let zpop = |max, count| Op::ZPop {
        key: b("z"),
        max,
        count,
    };
    let spop = |count, seed| Op::SPop {
        key: b("s"),
        count,
        seed,
    };
    let gt_ch = ZAddFlags {
        gt: true,
        ch: true,
        ..ZAddFlags::default()
    };
    let incr = ZAddFlags {
        incr: true,
        ..ZAddFlags::default()
    };
    let script: Vec<Mutation> = [
        push(false, &["a", "b", "c", "d", "e", "f"]),
        push(true, &["x", "y"]),
        pop("l", true, None),
        pop("l", false, Some(2)),
        lset(1, "B"),
        lset(-1, "E"),
        Op::LTrim {
            key: b("l"),
            start: 1,
            stop: -2,
        },
        Op::LInsert {
            key: b("l"),
            before: true,
            pivot: b("B"),
            value: b("ins"),
        },
        Op::LRem {
            key: b("l"),
            count: 0,
            value: b("ins"),
        },
        Op::Push {
            key: b("l2"),
            values: bs(&["only"]),
            left: false,
            only_if_exists: false,
        },
        Op::LMove {
            from: b("l"),
            to: b("l2"),
            from_left: true,
            to_left: false,
        },
        Op::LMove {
            from: b("l2"),
            to: b("l"),
            from_left: false,
            to_left: true,
        },
        hset(&[("f1", "v1"), ("f2", "v2"), ("f3", "3")], false),
        hset(&[("f1", "no")], true),
        hset(&[("f4", "v4")], true),
        Op::HDel {
            key: b("h"),
            fields: bs(&["f2", "nope"]),
        },
        Op::HIncrBy {
            key: b("h"),
            field: b("f3"),
            delta: 4,
        },
        hfloat(1.5),
        hfloat(0.1),
        Op::SAdd {
            key: b("s"),
            members: bs(&["a", "b", "c", "d", "e", "f", "g"]),
        },
        Op::SRem {
            key: b("s"),
            members: bs(&["a", "zz"]),
        },
        Op::SMove {
            from: b("s"),
            to: b("s2"),
            member: b("b"),
        },
        spop(None, 7),
        spop(Some(2), 99),
        Op::SStore {
            dest: b("s3"),
            keys: bs(&["s", "s2"]),
            algebra: Algebra::Union,
        },
        zadd(ZAddFlags::default(), &[(1.0, "a"), (2.0, "b"), (3.0, "c")]),
        zadd(ZAddFlags::default(), &[(4.0, "d"), (5.0, "e"), (6.0, "f")]),
        zadd(gt_ch, &[(10.0, "a"), (0.0, "b")]),
        zadd(incr, &[(2.5, "c")]),
        zadd(incr, &[(1.0, "new")]),
        Op::ZRem {
            key: b("z"),
            members: bs(&["d", "zz"]),
        },
        zpop(false, None),
        zpop(true, Some(2)),
        Op::ZRemRangeByRank {
            key: b("z"),
            start: 0,
            stop: 0,
        },
        pop("l2", false, Some(10)),
    ]
    .into_iter()
    .map(Mutation::Collection)
    .chain([
        Mutation::Expire {
            key: b("z"),
            at: 5000,
            condition: Default::default(),
        },
        Mutation::Persist { key: b("z") },
        Mutation::Expire {
            key: b("h"),
            at: 5000,
            condition: Default::default(),
        },
    ])
    .collect();
    let mut primary = Keyspace::new(true);
    let mut replica = Keyspace::new(true);
    for (step, mutation) in script.into_iter().enumerate() {
        let line = format!("{mutation:?}");
        let _ = primary.apply(0, mutation, 1000 + step as u64);
        let (changes, _) = primary.drain_changes();
        for change in changes {
            replica.replay(change);
        }
        replica.drain_changes();
        assert_eq!(replica.dataset(0), primary.dataset(0), "after {line}");
    }
    // l, h, s, s3, z (l2 was emptied by its pops, s2 by nothing: it holds "b").
    assert_eq!(primary.snapshot(0).len(), 1 + 6);
    assert_eq!(
        primary.ttl(0, &b("h"), 0),
        crate::keyspace::TtlState::At(5000)
    );
}

#[test]
fn a_failed_write_leaves_no_trace() {
    let mut ks = Keyspace::new(true);
    let bad = Op::HIncrByFloat {
        key: b("h"),
        field: b("f"),
        delta: f64::INFINITY,
    };
    assert!(run(&mut ks, bad).is_err());
    assert_eq!(ks.type_of(0, &b("h"), 0), "none");
    assert!(ks.drain_changes().0.is_empty());
    let set = Mutation::Set {
        key: b("str"),
        value: b("v"),
        condition: crate::keyspace::Condition::Always,
        ttl: crate::keyspace::Ttl::Clear,
        get: false,
    };
    ks.apply(0, set, 0).unwrap();
    let push = Op::Push {
        key: b("str"),
        values: vec![b("x")],
        left: true,
        only_if_exists: false,
    };
    assert_eq!(run(&mut ks, push), Err(CommandError::WrongType));
    // LMOVE checks the destination's type before popping anything.
    let rpush = Op::Push {
        key: b("l"),
        values: vec![b("x")],
        left: false,
        only_if_exists: false,
    };
    run(&mut ks, rpush).unwrap();
    let lmove = Op::LMove {
        from: b("l"),
        to: b("str"),
        from_left: true,
        to_left: true,
    };
    assert_eq!(run(&mut ks, lmove), Err(CommandError::WrongType));
    assert_eq!(ks.type_of(0, &b("l"), 0), "list");
}

#[test]
fn index_ranges_follow_redis() {
    assert_eq!(index_range(0, -1, 5), (0, 5));
    assert_eq!(index_range(-2, -1, 5), (3, 5));
    assert_eq!(index_range(-100, 1, 5), (0, 2));
    assert_eq!(index_range(3, 1, 5), (0, 0));
    assert_eq!(index_range(5, 10, 5), (0, 0));
    assert_eq!(index_range(0, -1, 0), (0, 0));
}
