//! Every anomaly class of Adya's and Berenson et al.'s catalogues, run at each of the
//! four isolation levels with two or three interleaved tokio-postgres sessions, asserting
//! exactly which anomalies happen. The scenarios follow Martin Kleppmann's Hermitage
//! test suite (the same steps, on the same two-row table `test`: (1, 10), (2, 20)).
//!
//! A step that blocks is seen blocking: `pg_locks` shows one more waiting transaction
//! (as PostgreSQL's own isolation tester decides), and the scenario goes on with the
//! other session until the step completes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Outcome, Rows, query, server_at, session, waiting};
use sql::isolation::Isolation;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

const LEVELS: [Isolation; 4] = [
    Isolation::ReadUncommitted,
    Isolation::ReadCommitted,
    Isolation::RepeatableRead,
    Isolation::Serializable,
];

/// A step sent to the server: finished, or blocked on a lock.
struct Step {
    task: JoinHandle<Outcome>,
    blocked: bool,
}

impl Step {
    async fn outcome(self) -> Outcome {
        self.task.await.expect("step task")
    }
}

/// Two or three sessions and an observer that watches `pg_locks`.
struct Scenario {
    srv: sql::Running,
    observer: Arc<Client>,
    t: Vec<Arc<Client>>,
}

impl Scenario {
    /// The table `test` with (1, 10) and (2, 20); `sessions` sessions, each in a
    /// transaction at `level`, begun in one of the ways a client can choose a level.
    async fn new(level: Isolation, sessions: usize) -> Scenario {
        // The server's default is some other level: every session chooses its own.
        let srv = server_at(Isolation::ReadCommitted).await;
        let observer = session(&srv).await;
        query(
            &observer,
            "CREATE TABLE test (id INT PRIMARY KEY, value INT NOT NULL); \
             INSERT INTO test VALUES (1, 10), (2, 20)",
        )
        .await
        .expect("setup");
        let name = level.name().to_uppercase();
        let mut t = Vec::new();
        for i in 0..sessions {
            let c = session(&srv).await;
            let begin = match i {
                0 => format!("BEGIN ISOLATION LEVEL {name}"),
                1 => format!("START TRANSACTION ISOLATION LEVEL {name}"),
                _ => format!("BEGIN; SET TRANSACTION ISOLATION LEVEL {name}"),
            };
            query(&c, &begin).await.expect("begin");
            let shown = query(&c, "SHOW transaction_isolation").await;
            assert_eq!(shown, Ok(vec![vec![Some(level.name().to_string())]]));
            t.push(c);
        }
        Scenario { srv, observer, t }
    }

    /// Sends `sql` on session `i` and returns once it has finished or is waiting.
    async fn step(&self, i: usize, sql: &str) -> Step {
        let before = waiting(&self.observer).await;
        let c = self.t[i].clone();
        let text = sql.to_string();
        let task = tokio::spawn(async move { query(&c, &text).await });
        for _ in 0..4_000 {
            if task.is_finished() {
                return Step {
                    task,
                    blocked: false,
                };
            }
            if waiting(&self.observer).await > before {
                return Step {
                    task,
                    blocked: true,
                };
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("step {sql:?} neither finished nor waited");
    }

    /// A step that must not block; its outcome.
    async fn run(&self, i: usize, sql: &str) -> Outcome {
        let step = self.step(i, sql).await;
        assert!(!step.blocked, "{sql:?} on T{} blocked", i + 1);
        step.outcome().await
    }

    async fn table(&self) -> Rows {
        query(&self.observer, "SELECT id, value FROM test ORDER BY id")
            .await
            .expect("read the table")
    }

    async fn stop(self) {
        drop(self.t);
        self.srv.stop().await;
    }
}

/// The single value a one-row, one-column outcome holds.
fn value(outcome: &Outcome) -> Option<i64> {
    outcome
        .as_ref()
        .ok()?
        .first()?
        .first()?
        .as_ref()?
        .parse()
        .ok()
}

fn committed(outcome: &Outcome) -> bool {
    outcome.is_ok()
}

fn row(id: i64, value: i64) -> Vec<Option<String>> {
    vec![Some(id.to_string()), Some(value.to_string())]
}

// ---- the scenarios: each returns whether the anomaly happened ----

/// G0, dirty write: two transactions' writes to x and y interleave, so the result is
/// half one, half the other. Every level makes the second writer of x wait.
async fn g0(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "UPDATE test SET value = 11 WHERE id = 1")
        .await
        .ok();
    let t2_x = s.step(1, "UPDATE test SET value = 12 WHERE id = 1").await;
    assert!(
        t2_x.blocked,
        "{level}: the second writer of a row must wait"
    );
    s.run(0, "UPDATE test SET value = 21 WHERE id = 2")
        .await
        .ok();
    s.run(0, "COMMIT").await.ok();
    t2_x.outcome().await.ok();
    s.run(1, "UPDATE test SET value = 22 WHERE id = 2")
        .await
        .ok();
    s.run(1, "COMMIT").await.ok();
    let table = s.table().await;
    s.stop().await;
    table == vec![row(1, 12), row(2, 21)]
}

/// G1a, aborted read: T2 reads a value T1 wrote and then rolled back.
async fn g1a(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "UPDATE test SET value = 101 WHERE id = 1")
        .await
        .ok();
    let read = s.step(1, "SELECT value FROM test WHERE id = 1").await;
    assert_eq!(read.blocked, level == Isolation::Serializable, "{level}");
    s.run(0, "ROLLBACK").await.ok();
    let seen = value(&read.outcome().await);
    s.run(1, "COMMIT").await.ok();
    s.stop().await;
    seen == Some(101)
}

/// G1b, intermediate read: T2 reads a value T1 overwrote before committing.
async fn g1b(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "UPDATE test SET value = 101 WHERE id = 1")
        .await
        .ok();
    let read = s.step(1, "SELECT value FROM test WHERE id = 1").await;
    assert_eq!(read.blocked, level == Isolation::Serializable, "{level}");
    s.run(0, "UPDATE test SET value = 11 WHERE id = 1")
        .await
        .ok();
    s.run(0, "COMMIT").await.ok();
    let seen = value(&read.outcome().await);
    s.run(1, "COMMIT").await.ok();
    s.stop().await;
    seen == Some(101)
}

/// G1c, circular information flow: each transaction reads what the other wrote.
async fn g1c(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "UPDATE test SET value = 11 WHERE id = 1")
        .await
        .ok();
    s.run(1, "UPDATE test SET value = 22 WHERE id = 2")
        .await
        .ok();
    let t1_reads = s.step(0, "SELECT value FROM test WHERE id = 2").await;
    assert_eq!(
        t1_reads.blocked,
        level == Isolation::Serializable,
        "{level}"
    );
    let t2_reads = s.step(1, "SELECT value FROM test WHERE id = 1").await;
    // Under serializable the two reads wait for each other: one is the deadlock victim.
    let (a, b) = if t2_reads.blocked {
        let a = t1_reads.outcome().await;
        s.run(0, "COMMIT").await.ok();
        (a, t2_reads.outcome().await)
    } else {
        let b = t2_reads.outcome().await;
        s.run(1, "COMMIT").await.ok();
        (t1_reads.outcome().await, b)
    };
    s.run(0, "COMMIT").await.ok();
    s.run(1, "COMMIT").await.ok();
    s.stop().await;
    value(&a) == Some(22) && value(&b) == Some(11)
}

/// OTV, observed transaction vanishes: T3 sees T1's write of y, then a value of x that
/// replaced T1's before its writer (T2) committed.
async fn otv(level: Isolation) -> bool {
    let s = Scenario::new(level, 3).await;
    s.run(0, "UPDATE test SET value = 11 WHERE id = 1")
        .await
        .ok();
    s.run(0, "UPDATE test SET value = 19 WHERE id = 2")
        .await
        .ok();
    let t2_x = s.step(1, "UPDATE test SET value = 12 WHERE id = 1").await;
    assert!(t2_x.blocked, "{level}: T2 waits for T1's row lock");
    s.run(0, "COMMIT").await.ok();
    t2_x.outcome().await.ok();
    let y = s.step(2, "SELECT value FROM test WHERE id = 2").await;
    let y = if y.blocked {
        y
    } else {
        // T2 writes y only after T3 read it.
        let t2_y = s.step(1, "UPDATE test SET value = 18 WHERE id = 2").await;
        let x = s.step(2, "SELECT value FROM test WHERE id = 1").await;
        let (y, x) = (y.outcome().await, x.outcome().await);
        s.run(2, "COMMIT").await.ok();
        t2_y.outcome().await.ok();
        s.run(1, "COMMIT").await.ok();
        s.stop().await;
        return value(&y) == Some(19) && value(&x) == Some(12);
    };
    s.run(1, "COMMIT").await.ok();
    y.outcome().await.ok();
    s.stop().await;
    false
}

/// PMP, predicate-many-preceders (a phantom): a predicate read misses a row another
/// transaction inserts and commits, and a second predicate read sees it.
async fn pmp(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    let first = s.run(0, "SELECT id FROM test WHERE value = 30").await;
    let insert = s.step(1, "INSERT INTO test VALUES (3, 30)").await;
    assert_eq!(insert.blocked, level == Isolation::Serializable, "{level}");
    if insert.blocked {
        // Serializable: T1's predicate lock holds the insert back until T1 ends.
        let second = s.run(0, "SELECT id FROM test WHERE value % 3 = 0").await;
        s.run(0, "COMMIT").await.ok();
        insert.outcome().await.ok();
        s.run(1, "COMMIT").await.ok();
        s.stop().await;
        return first != second;
    }
    insert.outcome().await.ok();
    s.run(1, "COMMIT").await.ok();
    let second = s.run(0, "SELECT id FROM test WHERE value % 3 = 0").await;
    s.run(0, "COMMIT").await.ok();
    s.stop().await;
    first != second
}

/// PMP with a write predicate: T1's `DELETE ... WHERE value = 30` matches nothing, T2
/// inserts such a row and commits, and T1 then sees it — its delete was decided on a
/// state without the row, its read on a state with it.
async fn pmp_write(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    let deleted = s.run(0, "DELETE FROM test WHERE value = 30").await;
    assert_eq!(deleted, Ok(Vec::new()));
    let insert = s.step(1, "INSERT INTO test VALUES (3, 30)").await;
    assert_eq!(insert.blocked, level == Isolation::Serializable, "{level}");
    let seen = if insert.blocked {
        let seen = s.run(0, "SELECT id FROM test WHERE value = 30").await;
        s.run(0, "COMMIT").await.ok();
        insert.outcome().await.ok();
        seen
    } else {
        insert.outcome().await.ok();
        s.run(1, "COMMIT").await.ok();
        let seen = s.run(0, "SELECT id FROM test WHERE value = 30").await;
        s.run(0, "COMMIT").await.ok();
        seen
    };
    s.run(1, "COMMIT").await.ok();
    s.stop().await;
    seen == Ok(vec![vec![Some("3".into())]])
}

/// P4, lost update: both read x = 10, both write 11 (a client-side increment); one
/// increment is lost if both commit.
async fn p4(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "SELECT value FROM test WHERE id = 1").await.ok();
    s.run(1, "SELECT value FROM test WHERE id = 1").await.ok();
    let t1 = s.step(0, "UPDATE test SET value = 11 WHERE id = 1").await;
    assert_eq!(t1.blocked, level == Isolation::Serializable, "{level}");
    let t2 = s.step(1, "UPDATE test SET value = 11 WHERE id = 1").await;
    let (r1, r2) = if t1.blocked {
        // Serializable: T1 waits for T2's shared lock, T2 for T1's: a deadlock.
        let r2 = t2.outcome().await;
        s.run(1, "COMMIT").await.ok();
        (t1.outcome().await, r2)
    } else {
        assert!(t2.blocked, "{level}: the second updater waits");
        let c1 = s.run(0, "COMMIT").await;
        (t1.outcome().await.and(c1), t2.outcome().await)
    };
    let c2 = s.run(1, "COMMIT").await;
    s.run(0, "COMMIT").await.ok();
    s.stop().await;
    committed(&r1) && committed(&r2) && c2.is_ok()
}

/// G-single, read skew: T1 reads x before T2 changes x and y, and y after.
async fn g_single(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    let x = s.run(0, "SELECT value FROM test WHERE id = 1").await;
    s.run(1, "SELECT value FROM test WHERE id = 1").await.ok();
    let t2_x = s.step(1, "UPDATE test SET value = 12 WHERE id = 1").await;
    assert_eq!(t2_x.blocked, level == Isolation::Serializable, "{level}");
    if t2_x.blocked {
        // Serializable: T2 waits for T1's shared lock on x.
        let y = s.run(0, "SELECT value FROM test WHERE id = 2").await;
        s.run(0, "COMMIT").await.ok();
        t2_x.outcome().await.ok();
        s.run(1, "COMMIT").await.ok();
        s.stop().await;
        return value(&x) == Some(10) && value(&y) == Some(18);
    }
    t2_x.outcome().await.ok();
    s.run(1, "UPDATE test SET value = 18 WHERE id = 2")
        .await
        .ok();
    s.run(1, "COMMIT").await.ok();
    let y = s.run(0, "SELECT value FROM test WHERE id = 2").await;
    s.run(0, "COMMIT").await.ok();
    s.stop().await;
    value(&x) == Some(10) && value(&y) == Some(18)
}

/// G-single with a write: T1 reads x before T2's change, then deletes by a predicate
/// evaluated after it — and commits.
async fn g_single_write(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    let x = s.run(0, "SELECT value FROM test WHERE id = 1").await;
    s.run(1, "SELECT id, value FROM test").await.ok();
    let t2_x = s.step(1, "UPDATE test SET value = 12 WHERE id = 1").await;
    assert_eq!(t2_x.blocked, level == Isolation::Serializable, "{level}");
    if t2_x.blocked {
        // Serializable: T1's delete needs T2's table lock gone, T2 T1's key lock: a
        // deadlock, and T1 is the victim.
        let delete = s.run(0, "DELETE FROM test WHERE value = 20").await;
        let commit = s.run(0, "COMMIT").await;
        t2_x.outcome().await.ok();
        s.run(1, "UPDATE test SET value = 18 WHERE id = 2")
            .await
            .ok();
        s.run(1, "COMMIT").await.ok();
        s.stop().await;
        return value(&x) == Some(10) && delete == Ok(Vec::new()) && commit.is_ok();
    }
    t2_x.outcome().await.ok();
    s.run(1, "UPDATE test SET value = 18 WHERE id = 2")
        .await
        .ok();
    s.run(1, "COMMIT").await.ok();
    let delete = s
        .run(0, "DELETE FROM test WHERE value = 20 RETURNING id")
        .await;
    let commit = s.run(0, "COMMIT").await;
    s.stop().await;
    // T1 saw x before T2, but its delete ran after T2: it found no row with 20.
    value(&x) == Some(10) && delete == Ok(Vec::new()) && commit.is_ok()
}

/// G2-item, write skew: both read x and y, each writes one of them, both commit.
async fn g2_item(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "SELECT value FROM test WHERE id IN (1, 2)")
        .await
        .ok();
    s.run(1, "SELECT value FROM test WHERE id IN (1, 2)")
        .await
        .ok();
    let t1 = s.step(0, "UPDATE test SET value = 11 WHERE id = 1").await;
    assert_eq!(t1.blocked, level == Isolation::Serializable, "{level}");
    let t2 = s.step(1, "UPDATE test SET value = 21 WHERE id = 2").await;
    let (r1, r2) = if t1.blocked {
        let r2 = t2.outcome().await;
        s.run(1, "COMMIT").await.ok();
        (t1.outcome().await, r2)
    } else {
        (t1.outcome().await, t2.outcome().await)
    };
    let c1 = s.run(0, "COMMIT").await;
    let c2 = s.run(1, "COMMIT").await;
    s.stop().await;
    committed(&r1) && committed(&r2) && c1.is_ok() && c2.is_ok()
}

/// G2, anti-dependency cycle with predicates: both read `value % 3 = 0` (nothing), each
/// inserts a row that matches the other's predicate, both commit.
async fn g2(level: Isolation) -> bool {
    let s = Scenario::new(level, 2).await;
    s.run(0, "SELECT id FROM test WHERE value % 3 = 0")
        .await
        .ok();
    s.run(1, "SELECT id FROM test WHERE value % 3 = 0")
        .await
        .ok();
    let t1 = s.step(0, "INSERT INTO test VALUES (3, 30)").await;
    assert_eq!(t1.blocked, level == Isolation::Serializable, "{level}");
    let t2 = s.step(1, "INSERT INTO test VALUES (4, 42)").await;
    let (r1, r2) = if t1.blocked {
        let r2 = t2.outcome().await;
        s.run(1, "COMMIT").await.ok();
        (t1.outcome().await, r2)
    } else {
        (t1.outcome().await, t2.outcome().await)
    };
    let c1 = s.run(0, "COMMIT").await;
    let c2 = s.run(1, "COMMIT").await;
    s.stop().await;
    committed(&r1) && committed(&r2) && c1.is_ok() && c2.is_ok()
}

/// Runs `scenario` at every level and checks which levels let the anomaly through.
macro_rules! anomaly {
    ($test:ident, $scenario:ident, $allowed:expr) => {
        #[tokio::test]
        async fn $test() {
            let mut happened = Vec::new();
            for level in LEVELS {
                happened.push($scenario(level).await);
            }
            assert_eq!(
                happened,
                $allowed,
                "{}: happened at [read uncommitted, read committed, repeatable read, serializable]",
                stringify!($scenario)
            );
        }
    };
}

anomaly!(
    g0_dirty_write_is_prevented_at_every_level,
    g0,
    [false, false, false, false]
);
anomaly!(
    g1a_aborted_read_only_under_read_uncommitted,
    g1a,
    [true, false, false, false]
);
anomaly!(
    g1b_intermediate_read_only_under_read_uncommitted,
    g1b,
    [true, false, false, false]
);
anomaly!(
    g1c_circular_information_flow_only_under_read_uncommitted,
    g1c,
    [true, false, false, false]
);
anomaly!(
    otv_observed_transaction_vanishes_only_under_read_uncommitted,
    otv,
    [true, false, false, false]
);
anomaly!(
    pmp_phantom_read_up_to_read_committed,
    pmp,
    [true, true, false, false]
);
anomaly!(
    pmp_write_predicate_up_to_read_committed,
    pmp_write,
    [true, true, false, false]
);
anomaly!(
    p4_lost_update_up_to_read_committed,
    p4,
    [true, true, false, false]
);
anomaly!(
    g_single_read_skew_up_to_read_committed,
    g_single,
    [true, true, false, false]
);
anomaly!(
    g_single_write_skew_of_a_delete_up_to_read_committed,
    g_single_write,
    [true, true, false, false]
);
anomaly!(
    g2_item_write_skew_up_to_repeatable_read,
    g2_item,
    [true, true, true, false]
);
anomaly!(
    g2_predicate_anti_dependency_cycle_up_to_repeatable_read,
    g2,
    [true, true, true, false]
);

// ---- choosing the level, and the course's example ----

/// The course's example: balance 100; T1 reads it, T2 sets 200 and commits, T1 reads
/// again. Returns T1's second read. `setup` chooses T1's level and begins its
/// transaction, in one of the ways a client can.
async fn course_example(srv: &sql::Running, setup: &[&str]) -> (Outcome, Outcome) {
    let t1 = session(srv).await;
    let t2 = session(srv).await;
    query(
        &t1,
        "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT); \
         INSERT INTO accounts VALUES (1, 100)",
    )
    .await
    .expect("setup");
    for s in setup {
        query(&t1, s).await.expect("choose the level");
    }
    let shown = query(&t1, "SHOW transaction_isolation").await;
    let first = query(&t1, "SELECT balance FROM accounts WHERE id = 1").await;
    assert_eq!(first, Ok(common::cell("100")));
    query(&t2, "UPDATE accounts SET balance = 200 WHERE id = 1")
        .await
        .expect("T2 commits");
    let again = query(&t1, "SELECT balance FROM accounts WHERE id = 1").await;
    query(&t1, "COMMIT").await.expect("commit");
    (shown, again)
}

#[tokio::test]
async fn every_way_of_choosing_the_level_takes_effect() {
    for (level, other, expected) in [
        (Isolation::ReadCommitted, Isolation::RepeatableRead, "200"),
        (Isolation::RepeatableRead, Isolation::ReadCommitted, "100"),
    ] {
        let name = level.name();
        let upper = name.to_uppercase();
        let ways: Vec<Vec<String>> = vec![
            vec![
                format!("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {upper}"),
                "BEGIN".into(),
            ],
            vec![
                format!("SET default_transaction_isolation = '{name}'"),
                "BEGIN".into(),
            ],
            vec![
                format!("SET SESSION TRANSACTION ISOLATION LEVEL {upper}"),
                "START TRANSACTION".into(),
            ],
            vec![format!("BEGIN ISOLATION LEVEL {upper}")],
            vec![format!("START TRANSACTION ISOLATION LEVEL {upper}")],
            vec![
                "BEGIN".into(),
                format!("SET TRANSACTION ISOLATION LEVEL {upper}"),
            ],
            vec![
                "BEGIN".into(),
                format!("SET transaction_isolation = '{name}'"),
            ],
        ];
        for way in ways {
            let srv = server_at(other).await;
            let setup: Vec<&str> = way.iter().map(String::as_str).collect();
            let (shown, again) = course_example(&srv, &setup).await;
            assert_eq!(shown, Ok(common::cell(name)), "{way:?}");
            assert_eq!(again, Ok(common::cell(expected)), "{way:?}");
            srv.stop().await;
        }
        // --default-isolation, as the flag is parsed.
        let args = <sql::Args as clap::Parser>::parse_from([
            "sql",
            "--port",
            "0",
            "--default-isolation",
            &name.replace(' ', "-"),
        ]);
        let srv = sql::start(args, service::CancellationToken::new())
            .await
            .expect("start");
        let (shown, again) = course_example(&srv, &["BEGIN"]).await;
        assert_eq!(shown, Ok(common::cell(name)));
        assert_eq!(again, Ok(common::cell(expected)));
        srv.stop().await;
    }
}

#[tokio::test]
async fn the_default_is_repeatable_read_and_misuse_is_refused() {
    let srv = sql::start(
        <sql::Args as clap::Parser>::parse_from(["sql", "--port", "0"]),
        service::CancellationToken::new(),
    )
    .await
    .expect("start");
    let c = session(&srv).await;
    let show = "SHOW transaction_isolation";
    assert_eq!(query(&c, show).await, Ok(common::cell("repeatable read")));
    assert_eq!(
        query(&c, "SHOW default_transaction_isolation").await,
        Ok(common::cell("repeatable read"))
    );
    // Too late: the transaction's first query has run (PostgreSQL's 25001).
    query(&c, "BEGIN").await.expect("begin");
    query(&c, "SELECT 1").await.expect("a query");
    assert_eq!(
        query(&c, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").await,
        Err("25001".into())
    );
    query(&c, "ROLLBACK").await.expect("rollback");
    // Outside a block SET TRANSACTION changes nothing (PostgreSQL warns).
    query(&c, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .expect("set");
    assert_eq!(query(&c, show).await, Ok(common::cell("repeatable read")));
    assert_eq!(
        query(&c, "SET default_transaction_isolation = 'chaos'").await,
        Err("22023".into())
    );
    // A block's level does not outlive it.
    query(
        &c,
        "BEGIN ISOLATION LEVEL READ UNCOMMITTED; SHOW transaction_isolation; COMMIT",
    )
    .await
    .expect("a block");
    assert_eq!(query(&c, show).await, Ok(common::cell("repeatable read")));
    srv.stop().await;
}

#[tokio::test]
async fn psql_sets_and_shows_the_level() {
    let srv = server_at(Isolation::RepeatableRead).await;
    let out = common::psql(
        &srv,
        &[
            "SHOW transaction_isolation",
            "BEGIN ISOLATION LEVEL SERIALIZABLE; SHOW transaction_isolation; COMMIT",
            "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
            "SHOW transaction_isolation",
        ],
    )
    .await;
    assert_eq!(
        out.lines()
            .filter(|l| !l.is_empty() && *l != "BEGIN" && *l != "COMMIT" && *l != "SET")
            .collect::<Vec<_>>(),
        ["repeatable read", "serializable", "read uncommitted"]
    );
    srv.stop().await;
}

// ---- concurrency stress: read-modify-write transfers at each level ----

const ACCOUNTS: i64 = 100;
const START_BALANCE: i64 = 1_000;

/// One transfer as a client would write it: read both balances, compute, write both.
/// Returns false if the server refused it with 40001 or 40P01 (to be retried).
async fn transfer(c: &Client, from: i64, to: i64, amount: i64) -> bool {
    let balance = |id: i64| format!("SELECT balance FROM accounts WHERE id = {id}");
    let attempt = async {
        query(c, "BEGIN").await?;
        let a = query(c, &balance(from)).await?;
        let b = query(c, &balance(to)).await?;
        let (Some(a), Some(b)) = (value(&Ok(a)), value(&Ok(b))) else {
            return Err("no such account".to_string());
        };
        query(
            c,
            &format!(
                "UPDATE accounts SET balance = {} WHERE id = {from}",
                a - amount
            ),
        )
        .await?;
        query(
            c,
            &format!(
                "UPDATE accounts SET balance = {} WHERE id = {to}",
                b + amount
            ),
        )
        .await?;
        query(c, "COMMIT").await
    };
    match attempt.await {
        Ok(_) => true,
        Err(code) if code == "40001" || code == "40P01" => {
            query(c, "ROLLBACK")
                .await
                .expect("rollback after a conflict");
            false
        }
        Err(other) => panic!("transfer failed: {other}"),
    }
}

/// 8 clients transfer for `run` between 100 accounts at `level`; returns the total
/// afterwards, the transfers committed and the retries.
async fn transfers(level: Isolation, run: Duration) -> (i64, u64, u64) {
    let srv = server_at(level).await;
    let setup = session(&srv).await;
    let values: Vec<String> = (1..=ACCOUNTS)
        .map(|i| format!("({i}, {START_BALANCE})"))
        .collect();
    query(
        &setup,
        &format!(
            "CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL); \
             INSERT INTO accounts VALUES {}",
            values.join(", ")
        ),
    )
    .await
    .expect("setup");
    let deadline = tokio::time::Instant::now() + run;
    let mut clients = Vec::new();
    for worker in 0..8i64 {
        let c = session(&srv).await;
        clients.push(tokio::spawn(async move {
            let (mut done, mut retries) = (0u64, 0u64);
            let mut n = worker;
            while tokio::time::Instant::now() < deadline {
                n = (n * 7919 + 104_729) % 1_000_003;
                let from = n % ACCOUNTS + 1;
                let to = (n / ACCOUNTS) % ACCOUNTS + 1;
                if from == to {
                    continue;
                }
                if transfer(&c, from, to, 1 + n % 10).await {
                    done += 1;
                } else {
                    retries += 1;
                }
            }
            (done, retries)
        }));
    }
    let (mut done, mut retries) = (0, 0);
    for c in clients {
        let (d, r) = c.await.expect("client");
        done += d;
        retries += r;
    }
    let total = value(&query(&setup, "SELECT sum(balance) FROM accounts").await).expect("a sum");
    srv.stop().await;
    (total, done, retries)
}

#[tokio::test]
async fn transfers_conserve_money_from_repeatable_read_up() {
    let expected = ACCOUNTS * START_BALANCE;
    for level in LEVELS {
        let (total, done, retries) = transfers(level, Duration::from_millis(1_500)).await;
        println!(
            "{level:>16}: {done} transfers, {retries} retried (40001/40P01), total {total} \
             (drift {:+})",
            total - expected
        );
        assert!(done > 0, "{level}: no transfer committed");
        if level >= Isolation::RepeatableRead {
            assert_eq!(total, expected, "{level} must conserve the total");
        }
    }
}
