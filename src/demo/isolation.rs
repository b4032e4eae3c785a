//! `isolation`: the course's isolation-levels chapter, replayed with two sessions on the
//! sql server (the PostgreSQL protocol, through tokio-postgres as any client would).
//!
//! 1. The course's example: a balance of 100; T1 reads it, T2 sets 200 and commits, T1
//!    reads again — 100 under repeatable read (one snapshot for the whole transaction),
//!    200 under read committed (a new snapshot per statement).
//! 2. A dirty read under read uncommitted: T1 sees T2's 999 before T2 rolls it back.
//! 3. A phantom under read committed: T1 counts rich accounts twice and gets a different
//!    answer because T2 inserted one; under repeatable read the count holds.
//! 4. Write skew under repeatable read: two doctors each check that the other is on call
//!    and go off call; both commit and nobody is on call. Under serializable the same two
//!    transactions deadlock on their read locks and one is refused (40P01).
//! 5. Serializable making a writer wait for a reader: T2's UPDATE waits (as `pg_locks`
//!    shows) until T1, which read the row, commits.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use service::{BoxError, CancellationToken};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{Against, Trace, lab::run_id};

/// What the isolation demo observed.
#[derive(Debug, Clone, Default)]
pub struct IsolationOutcome {
    /// T1's second read of the balance in the course's example.
    pub repeatable_read_second_read: Option<i64>,
    pub read_committed_second_read: Option<i64>,
    /// Under read uncommitted: T1's read while T2's update was uncommitted, and after
    /// T2 rolled back.
    pub dirty_read: Option<i64>,
    pub after_rollback: Option<i64>,
    /// The two counts T1 made, under read committed and under repeatable read.
    pub phantom_read_committed: (Option<i64>, Option<i64>),
    pub phantom_repeatable_read: (Option<i64>, Option<i64>),
    /// Doctors still on call after both went off, under repeatable read.
    pub write_skew_on_call: Option<i64>,
    /// Under serializable: the SQLSTATE one doctor got, and who is on call after.
    pub serializable_refused: Option<String>,
    pub serializable_on_call: Option<i64>,
    /// Under serializable: the writer was seen waiting for the reader.
    pub writer_waited: bool,
}

impl fmt::Display for IsolationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        write!(
            f,
            "isolation: second read {} under repeatable read, {} under read committed; \
             dirty read {} (then {}); phantom count {}→{} read committed, {}→{} repeatable read; \
             write skew leaves {} on call (serializable: {}, {} on call); \
             serializable writer waited for the reader: {}",
            n(self.repeatable_read_second_read),
            n(self.read_committed_second_read),
            n(self.dirty_read),
            n(self.after_rollback),
            n(self.phantom_read_committed.0),
            n(self.phantom_read_committed.1),
            n(self.phantom_repeatable_read.0),
            n(self.phantom_repeatable_read.1),
            n(self.write_skew_on_call),
            self.serializable_refused.as_deref().unwrap_or("no error"),
            n(self.serializable_on_call),
            if self.writer_waited { "yes" } else { "no" },
        )
    }
}

/// Runs the scenario against an sql server started here, or `INFRALAB_SQL` (compose).
pub async fn run(against: Against, trace: &mut Trace) -> Result<IsolationOutcome, BoxError> {
    match against {
        Against::Compose => {
            let addr = std::env::var("INFRALAB_SQL")
                .unwrap_or_else(|_| format!("127.0.0.1:{}", sql::DEFAULT_PORT));
            scenario(&addr, trace).await
        }
        Against::Local => {
            let shutdown = CancellationToken::new();
            let server = sql::start(sql::Args::ephemeral(), shutdown.clone()).await?;
            trace.note(format!("sql server (in memory) on {}", server.addr()));
            let result = scenario(&server.addr().to_string(), trace).await;
            server.stop().await;
            result
        }
    }
}

/// One session: a client and the name the trace gives it.
struct Session {
    name: &'static str,
    client: Arc<Client>,
}

async fn connect(addr: &str, name: &'static str) -> Result<Session, BoxError> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or("INFRALAB_SQL must be host:port")?;
    let (client, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user=demo dbname=demo application_name={name}"),
        NoTls,
    )
    .await?;
    tokio::spawn(connection);
    Ok(Session {
        name,
        client: Arc::new(client),
    })
}

/// The outcome of one statement: the first column of its rows, or the SQLSTATE.
type Reply = Result<Vec<Option<String>>, String>;

async fn send(session: &Session, sql: &str) -> Reply {
    match session.client.simple_query(sql).await {
        Ok(messages) => Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .collect()),
        Err(e) => Err(e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| e.to_string())),
    }
}

fn shown(reply: &Reply) -> String {
    match reply {
        Ok(rows) if rows.is_empty() => "ok".into(),
        Ok(rows) => rows
            .iter()
            .map(|v| v.as_deref().unwrap_or("NULL"))
            .collect::<Vec<_>>()
            .join(", "),
        Err(code) => format!("ERROR {code}"),
    }
}

/// Sends one statement on `session` and traces it.
async fn step(trace: &mut Trace, session: &Session, sql: &str) -> Reply {
    let start = Instant::now();
    let reply = send(session, sql).await;
    trace.step(start.elapsed(), session.name, "sql", sql, &shown(&reply));
    reply
}

/// A statement that must succeed: its SQLSTATE ends the demo otherwise.
async fn ok(trace: &mut Trace, session: &Session, sql: &str) -> Result<(), BoxError> {
    match step(trace, session, sql).await {
        Ok(_) => Ok(()),
        Err(code) => Err(format!("{sql}: SQLSTATE {code}").into()),
    }
}

fn number(reply: &Reply) -> Option<i64> {
    reply.as_ref().ok()?.first()?.as_ref()?.parse().ok()
}

async fn scenario(addr: &str, trace: &mut Trace) -> Result<IsolationOutcome, BoxError> {
    let t1 = connect(addr, "T1").await?;
    let t2 = connect(addr, "T2").await?;
    let watcher = connect(addr, "watcher").await?;
    let id = run_id();
    let accounts = format!("accounts_{id}");
    let doctors = format!("doctors_{id}");
    let mut out = IsolationOutcome::default();

    ok(
        trace,
        &t1,
        &format!("CREATE TABLE {accounts} (id INT PRIMARY KEY, balance INT NOT NULL)"),
    )
    .await?;
    ok(
        trace,
        &t1,
        &format!("INSERT INTO {accounts} VALUES (1, 100)"),
    )
    .await?;
    let balance = format!("SELECT balance FROM {accounts} WHERE id = 1");

    for (level, second) in [
        ("REPEATABLE READ", &mut out.repeatable_read_second_read),
        ("READ COMMITTED", &mut out.read_committed_second_read),
    ] {
        trace.section(&format!("The course's example under {level}"));
        ok(
            trace,
            &t2,
            &format!("UPDATE {accounts} SET balance = 100 WHERE id = 1"),
        )
        .await?;
        ok(trace, &t1, &format!("BEGIN ISOLATION LEVEL {level}")).await?;
        ok(trace, &t1, &balance).await?;
        ok(
            trace,
            &t2,
            &format!("UPDATE {accounts} SET balance = 200 WHERE id = 1"),
        )
        .await?;
        *second = number(&step(trace, &t1, &balance).await);
        ok(trace, &t1, "COMMIT").await?;
        trace.note(match level {
            "REPEATABLE READ" => "T1 still reads 100: its snapshot was taken by its first read",
            _ => "T1 now reads 200: every statement takes a new snapshot",
        });
    }

    trace.section("A dirty read under READ UNCOMMITTED");
    ok(trace, &t2, "BEGIN").await?;
    ok(
        trace,
        &t2,
        &format!("UPDATE {accounts} SET balance = 999 WHERE id = 1"),
    )
    .await?;
    ok(trace, &t1, "BEGIN ISOLATION LEVEL READ UNCOMMITTED").await?;
    out.dirty_read = number(&step(trace, &t1, &balance).await);
    ok(trace, &t2, "ROLLBACK").await?;
    out.after_rollback = number(&step(trace, &t1, &balance).await);
    ok(trace, &t1, "COMMIT").await?;
    trace.note("T1 saw 999, a value that never existed once T2 rolled back (G1a)");

    let rich = format!("SELECT count(*) FROM {accounts} WHERE balance >= 100");
    for (n, level) in [(2, "READ COMMITTED"), (3, "REPEATABLE READ")] {
        trace.section(&format!("A phantom? Counting twice under {level}"));
        ok(trace, &t1, &format!("BEGIN ISOLATION LEVEL {level}")).await?;
        let first = number(&step(trace, &t1, &rich).await);
        ok(
            trace,
            &t2,
            &format!("INSERT INTO {accounts} VALUES ({n}, 500)"),
        )
        .await?;
        let second = number(&step(trace, &t1, &rich).await);
        ok(trace, &t1, "COMMIT").await?;
        if level == "READ COMMITTED" {
            out.phantom_read_committed = (first, second);
            trace.note("a row appeared between two identical reads: a phantom");
        } else {
            out.phantom_repeatable_read = (first, second);
            trace.note("the snapshot cannot grow new rows: no phantom under snapshot isolation");
        }
    }

    ok(
        trace,
        &t1,
        &format!("CREATE TABLE {doctors} (name TEXT PRIMARY KEY, on_call BOOLEAN NOT NULL)"),
    )
    .await?;
    let on_call = format!("SELECT count(*) FROM {doctors} WHERE on_call");
    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        trace.section(&format!(
            "Write skew: two doctors go off call under {level}"
        ));
        ok(trace, &t1, &format!("DELETE FROM {doctors}")).await?;
        ok(
            trace,
            &t1,
            &format!("INSERT INTO {doctors} VALUES ('alice', true), ('bob', true)"),
        )
        .await?;
        ok(trace, &t1, &format!("BEGIN ISOLATION LEVEL {level}")).await?;
        ok(trace, &t2, &format!("BEGIN ISOLATION LEVEL {level}")).await?;
        ok(trace, &t1, &on_call).await?;
        ok(trace, &t2, &on_call).await?;
        trace.note("each sees two doctors on call, so each may leave");
        // Under serializable T1's update waits for T2's read lock, and T2's for T1's.
        let alice = format!("UPDATE {doctors} SET on_call = false WHERE name = 'alice'");
        let t1_update = {
            let sql = alice.clone();
            let client = t1.client.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                (
                    send(&Session { name: "T1", client }, &sql).await,
                    start.elapsed(),
                )
            })
        };
        let blocked = wait_for_blocked(&watcher, &t1_update).await;
        if blocked {
            trace.note("T1's update waits: T2 holds a read lock on the doctors it counted");
        }
        let t2_reply = step(
            trace,
            &t2,
            &format!("UPDATE {doctors} SET on_call = false WHERE name = 'bob'"),
        )
        .await;
        let (t1_reply, took) = t1_update.await?;
        trace.step(took, "T1", "sql", &alice, &shown(&t1_reply));
        for (session, reply) in [(&t1, &t1_reply), (&t2, &t2_reply)] {
            let end = if reply.is_ok() { "COMMIT" } else { "ROLLBACK" };
            ok(trace, session, end).await?;
            if let Err(code) = reply {
                out.serializable_refused = Some(code.clone());
            }
        }
        let left = number(&step(trace, &watcher, &on_call).await);
        if level == "REPEATABLE READ" {
            out.write_skew_on_call = left;
            trace
                .note("both committed: nobody is on call, which neither transaction allowed alone");
        } else {
            out.serializable_on_call = left;
            trace.note("the deadlock's victim was refused: one doctor stays on call");
        }
    }

    trace.section("SERIALIZABLE: a writer waits for a reader");
    ok(trace, &t1, "BEGIN ISOLATION LEVEL SERIALIZABLE").await?;
    ok(trace, &t1, &balance).await?;
    let update = format!("UPDATE {accounts} SET balance = 300 WHERE id = 1");
    let t2_update = {
        let sql = update.clone();
        let client = t2.client.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            (
                send(&Session { name: "T2", client }, &sql).await,
                start.elapsed(),
            )
        })
    };
    out.writer_waited = wait_for_blocked(&watcher, &t2_update).await;
    ok(
        trace,
        &watcher,
        "SELECT count(*) FROM pg_locks WHERE NOT granted",
    )
    .await?;
    trace.note("T2 waits: T1 read the row, and its shared lock lasts until it ends");
    ok(trace, &t1, "COMMIT").await?;
    let (reply, took) = t2_update.await?;
    trace.step(took, "T2", "sql", &update, &shown(&reply));
    trace.note("T1 committed, its locks went, and T2's update ran");

    for table in [&accounts, &doctors] {
        send(&t1, &format!("DROP TABLE {table}")).await.ok();
    }
    Ok(out)
}

/// Waits until `task` has finished or a transaction is seen waiting in `pg_locks`;
/// true if it is waiting.
async fn wait_for_blocked<T>(watcher: &Session, task: &tokio::task::JoinHandle<T>) -> bool {
    for _ in 0..2_000 {
        if task.is_finished() {
            return false;
        }
        let waiting = send(watcher, "SELECT count(*) FROM pg_locks WHERE NOT granted").await;
        if number(&waiting).unwrap_or(0) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}
