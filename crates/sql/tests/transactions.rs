//! Savepoints and multi-statement queries, with tokio-postgres and psycopg 3.

mod common;

use common::{cell, query, rows, server_at, session};
use sql::isolation::Isolation;

#[tokio::test]
async fn savepoints_undo_part_of_a_transaction_and_rescue_a_failed_one() {
    let srv = server_at(Isolation::RepeatableRead).await;
    let c = session(&srv).await;
    rows(&c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // Outside a block there is nothing to mark.
    assert_eq!(query(&c, "SAVEPOINT a").await, Err("25P01".into()));
    assert_eq!(
        query(&c, "ROLLBACK TO SAVEPOINT a").await,
        Err("25P01".into())
    );

    rows(&c, "BEGIN").await;
    rows(&c, "INSERT INTO t VALUES (1)").await;
    rows(&c, "SAVEPOINT a").await;
    rows(&c, "INSERT INTO t VALUES (2)").await;
    rows(&c, "SAVEPOINT b").await;
    rows(&c, "INSERT INTO t VALUES (3)").await;
    // Back to a: 2 and 3 are undone, and b (made after a) is gone.
    rows(&c, "ROLLBACK TO SAVEPOINT a").await;
    assert_eq!(rows(&c, "SELECT id FROM t ORDER BY id").await, cell("1"));
    assert_eq!(query(&c, "RELEASE SAVEPOINT b").await, Err("3B001".into()));
    assert_eq!(query(&c, "SELECT 1").await, Err("25P02".into()));
    // The savepoint stays after ROLLBACK TO, so the failed block can go back to it.
    rows(&c, "ROLLBACK TO a").await;
    rows(&c, "INSERT INTO t VALUES (4)").await;
    // An error: the block fails, ROLLBACK TO makes it usable again.
    rows(&c, "SAVEPOINT c").await;
    assert_eq!(
        query(&c, "INSERT INTO t VALUES (1)").await,
        Err("23505".into())
    );
    assert_eq!(query(&c, "SELECT 1").await, Err("25P02".into()));
    rows(&c, "ROLLBACK TO SAVEPOINT c").await;
    rows(&c, "INSERT INTO t VALUES (5)").await;
    rows(&c, "RELEASE SAVEPOINT a").await;
    assert_eq!(query(&c, "ROLLBACK TO c").await, Err("3B001".into()));
    rows(&c, "ROLLBACK").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("0"));

    rows(&c, "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT s; INSERT INTO t VALUES (2); ROLLBACK TO s; INSERT INTO t VALUES (3); COMMIT").await;
    let other = session(&srv).await;
    assert_eq!(
        rows(&other, "SELECT id FROM t ORDER BY id").await,
        vec![vec![Some("1".into())], vec![Some("3".into())]]
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_multi_statement_query_is_one_implicit_transaction() {
    let srv = server_at(Isolation::ReadCommitted).await;
    let c = session(&srv).await;
    rows(&c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    // The second INSERT fails: the first is rolled back with it.
    assert_eq!(
        query(&c, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)").await,
        Err("23505".into())
    );
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("0"));
    rows(&c, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)").await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("2"));
    // Explicit control inside: COMMIT ends the block, the rest is a new implicit one.
    assert_eq!(
        query(&c, "BEGIN; INSERT INTO t VALUES (3); COMMIT; INSERT INTO t VALUES (4); INSERT INTO t VALUES (4)").await,
        Err("23505".into())
    );
    assert_eq!(rows(&c, "SELECT id FROM t WHERE id > 2").await, cell("3"));
    // BEGIN turns the implicit transaction into a block that stays open.
    rows(
        &c,
        "INSERT INTO t VALUES (5); BEGIN; INSERT INTO t VALUES (6)",
    )
    .await;
    let other = session(&srv).await;
    assert_eq!(
        rows(&other, "SELECT count(*) FROM t WHERE id > 4").await,
        cell("0")
    );
    rows(&c, "ROLLBACK").await;
    assert_eq!(
        rows(&c, "SELECT count(*) FROM t WHERE id > 4").await,
        cell("0")
    );
    srv.stop().await;
}

#[tokio::test]
async fn psycopg_nested_transactions_use_savepoints() {
    let srv = server_at(Isolation::RepeatableRead).await;
    let port = srv.addr().port();
    let out = common::python(format!(
        r#"
import psycopg
with psycopg.connect("host=127.0.0.1 port={port} user=test dbname=test") as conn:
    conn.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    conn.commit()
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES (1)")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO t VALUES (2)")
                conn.execute("INSERT INTO t VALUES (1)")
        except psycopg.errors.UniqueViolation:
            print("inner rolled back", conn.info.transaction_status.name)
        conn.execute("INSERT INTO t VALUES (3)")
    print(conn.execute("SELECT id FROM t ORDER BY id").fetchall())
    print(conn.execute("SHOW transaction_isolation").fetchone()[0])
"#
    ))
    .await;
    assert_eq!(
        out,
        "inner rolled back INTRANS\n[(1,), (3,)]\nrepeatable read"
    );
    srv.stop().await;
}

/// The extended protocol by hand: the frontend messages tokio-postgres never sends in this
/// order (several Executes before one Sync), and the backend's replies as message types.
mod wire {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Parse (unnamed, no parameter types), Bind (unnamed portal, no parameters), Execute.
    pub fn parse_bind_execute(sql: &str) -> Vec<u8> {
        let mut parse = vec![0u8];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        let mut out = message(b'P', &parse);
        out.extend(message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
        out.extend(message(b'E', &[0, 0, 0, 0, 0]));
        out
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }

    pub fn flush() -> Vec<u8> {
        message(b'H', &[])
    }

    /// A started connection, ready for queries.
    pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let params = b"user\0test\0database\0test\0\0";
        let mut startup = Vec::new();
        startup.extend_from_slice(&((8 + params.len()) as u32).to_be_bytes());
        startup.extend_from_slice(&196608u32.to_be_bytes());
        startup.extend_from_slice(params);
        s.write_all(&startup).await.expect("startup");
        read_until(&mut s, b'Z').await;
        s
    }

    /// Backend messages up to and including one of type `last`: each as its type byte,
    /// an ErrorResponse as `E` followed by its SQLSTATE.
    pub async fn read_until(s: &mut TcpStream, last: u8) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let kind = s.read_u8().await.expect("message type");
            let len = s.read_u32().await.expect("length") as usize;
            let mut body = vec![0u8; len - 4];
            s.read_exact(&mut body).await.expect("body");
            let mut entry = (kind as char).to_string();
            if kind == b'E' {
                // Fields: a type byte, then a NUL-terminated string; 'C' is the SQLSTATE.
                let mut fields = body.split(|&b| b == 0);
                while let Some(f) = fields.next().filter(|f| !f.is_empty()) {
                    if f[0] == b'C' {
                        entry.push_str(&String::from_utf8_lossy(&f[1..]));
                    }
                }
            }
            seen.push(entry);
            if kind == last {
                return seen;
            }
        }
    }

    pub async fn send(s: &mut TcpStream, bytes: &[u8]) {
        s.write_all(bytes).await.expect("send");
    }
}

#[tokio::test]
async fn executes_before_one_sync_are_one_implicit_transaction() {
    let srv = server_at(Isolation::ReadCommitted).await;
    let c = session(&srv).await;
    rows(&c, "CREATE TABLE t (id INT PRIMARY KEY)").await;
    let mut raw = wire::connect(srv.addr()).await;

    // Until Sync, the first INSERT is not committed: another session does not see it.
    let mut batch = wire::parse_bind_execute("INSERT INTO t VALUES (1)");
    batch.extend(wire::flush());
    wire::send(&mut raw, &batch).await;
    // ParseComplete, BindComplete, CommandComplete.
    assert_eq!(wire::read_until(&mut raw, b'C').await, ["1", "2", "C"]);
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("0"));
    wire::send(&mut raw, &wire::sync()).await;
    assert_eq!(wire::read_until(&mut raw, b'Z').await, ["Z"]);
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("1"));

    // The second Execute fails: the first (which succeeded) is rolled back with it, and
    // the third is skipped up to the Sync.
    let mut batch = wire::parse_bind_execute("INSERT INTO t VALUES (2)");
    batch.extend(wire::parse_bind_execute("INSERT INTO t VALUES (1)"));
    batch.extend(wire::parse_bind_execute("INSERT INTO t VALUES (3)"));
    batch.extend(wire::sync());
    wire::send(&mut raw, &batch).await;
    assert_eq!(
        wire::read_until(&mut raw, b'Z').await,
        ["1", "2", "C", "1", "2", "E23505", "Z"]
    );
    assert_eq!(rows(&c, "SELECT id FROM t ORDER BY id").await, cell("1"));

    // Both succeed: one commit at the Sync.
    let mut batch = wire::parse_bind_execute("INSERT INTO t VALUES (2)");
    batch.extend(wire::parse_bind_execute("INSERT INTO t VALUES (3)"));
    batch.extend(wire::sync());
    wire::send(&mut raw, &batch).await;
    assert_eq!(
        wire::read_until(&mut raw, b'Z').await,
        ["1", "2", "C", "1", "2", "C", "Z"]
    );
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("3"));

    // An explicit block is not ended by Sync; the connection still works afterwards.
    let mut batch = wire::parse_bind_execute("BEGIN");
    batch.extend(wire::parse_bind_execute("INSERT INTO t VALUES (4)"));
    batch.extend(wire::sync());
    wire::send(&mut raw, &batch).await;
    wire::read_until(&mut raw, b'Z').await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("3"));
    let mut batch = wire::parse_bind_execute("COMMIT");
    batch.extend(wire::sync());
    wire::send(&mut raw, &batch).await;
    wire::read_until(&mut raw, b'Z').await;
    assert_eq!(rows(&c, "SELECT count(*) FROM t").await, cell("4"));
    srv.stop().await;
}
