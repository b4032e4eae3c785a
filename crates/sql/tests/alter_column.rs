//! `ALTER TABLE ... ALTER COLUMN` on a table with rows, with tokio-postgres: TYPE (with
//! and without USING; the rows rewritten, 42804 where PostgreSQL needs USING, the
//! conversion's own errors undoing the statement), SET/DROP DEFAULT, SET/DROP NOT NULL,
//! RENAME COLUMN and RENAME TO; and the result surviving a restart.

mod common;

use common::{code, connect, exec, lines, server, server_with};
use tokio_postgres::Client;

/// The error of `sql` as "SQLSTATE: message (hint)".
async fn error(c: &Client, sql: &str) -> String {
    let e = c.batch_execute(sql).await.expect_err(sql);
    let db = e.as_db_error().expect("a server error");
    format!(
        "{}: {}{}",
        db.code().code(),
        db.message(),
        db.hint().map(|h| format!(" ({h})")).unwrap_or_default()
    )
}

/// The column's type as a client sees it (the Describe of a query that reads it).
async fn column_type(c: &Client, table: &str, column: &str) -> String {
    let stmt = c
        .prepare(&format!("SELECT {column} FROM {table}"))
        .await
        .expect("prepare");
    stmt.columns()[0].type_().name().to_string()
}

#[tokio::test]
async fn alter_column_type_rewrites_rows_and_refuses_what_cannot_be_cast() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE items (id INT PRIMARY KEY, code TEXT, price NUMERIC(10,2), qty INT CHECK (qty < 1000));
         INSERT INTO items VALUES (1, ' 10', 2.50, 7), (2, '20', 5.25, 8), (3, NULL, 5.75, 9)",
    )
    .await;

    // Numeric to integer is an assignment cast: values are rounded, as PostgreSQL does.
    exec(&c, "ALTER TABLE items ALTER COLUMN price TYPE INT").await;
    assert_eq!(column_type(&c, "items", "price").await, "int4");
    assert_eq!(
        lines(&c, "SELECT id, price FROM items ORDER BY id").await,
        ["1|3", "2|5", "3|6"]
    );
    // The rows now hold integers: arithmetic and comparisons are integer ones.
    assert_eq!(
        lines(
            &c,
            "SELECT price / 2 FROM items WHERE price > 4 ORDER BY id"
        )
        .await,
        ["2", "3"]
    );

    // Text to integer needs USING: 42804 with PostgreSQL's wording and hint.
    assert_eq!(
        error(&c, "ALTER TABLE items ALTER COLUMN code TYPE INTEGER").await,
        "42804: column \"code\" cannot be cast automatically to type integer \
         (You might need to specify \"USING code::integer\".)"
    );
    assert_eq!(
        error(
            &c,
            "ALTER TABLE items ALTER COLUMN code TYPE INTEGER USING code || ''"
        )
        .await,
        "42804: result of USING clause for column \"code\" cannot be cast automatically \
         to type integer (You might need to add an explicit cast.)"
    );
    exec(
        &c,
        "ALTER TABLE items ALTER COLUMN code SET DATA TYPE BIGINT USING code::bigint",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT id, code, code + 1 FROM items ORDER BY id").await,
        ["1|10|11", "2|20|21", "3||"]
    );
    let n: i64 = c
        .query_one("SELECT code FROM items WHERE id = $1", &[&2i32])
        .await
        .expect("typed read")
        .get(0);
    assert_eq!(n, 20);

    // USING sees the old row: a computed conversion.
    exec(
        &c,
        "ALTER TABLE items ALTER COLUMN qty TYPE NUMERIC(8,1) USING qty * 1.5",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT qty FROM items ORDER BY id").await,
        ["10.5", "12.0", "13.5"]
    );
    // The CHECK is rechecked on the converted rows.
    assert_eq!(
        code(
            &c,
            "ALTER TABLE items ALTER COLUMN qty TYPE INT USING qty * 100"
        )
        .await,
        "23514"
    );

    // A value the conversion refuses fails the whole statement; nothing changed.
    exec(&c, "CREATE TABLE tags (id INT PRIMARY KEY, label TEXT)").await;
    exec(&c, "INSERT INTO tags VALUES (1, '5'), (2, 'five')").await;
    assert_eq!(
        code(
            &c,
            "ALTER TABLE tags ALTER COLUMN label TYPE INT USING label::int"
        )
        .await,
        "22P02"
    );
    exec(&c, "INSERT INTO tags VALUES (3, 'still text')").await;
    assert_eq!(
        lines(&c, "SELECT label FROM tags ORDER BY id").await,
        ["5", "five", "still text"]
    );
    // Integer to boolean: no assignment cast.
    exec(&c, "CREATE TABLE flags (id INT PRIMARY KEY, on_off INT)").await;
    assert_eq!(
        code(&c, "ALTER TABLE flags ALTER COLUMN on_off TYPE BOOLEAN").await,
        "42804"
    );
    // A shorter VARCHAR that a value does not fit: 22001.
    assert_eq!(
        code(&c, "ALTER TABLE tags ALTER COLUMN label TYPE VARCHAR(4)").await,
        "22001"
    );
    // Distinct keys that become equal break a unique index.
    exec(
        &c,
        "CREATE TABLE m (v DOUBLE PRECISION UNIQUE); INSERT INTO m VALUES (1.2), (1.4)",
    )
    .await;
    assert_eq!(
        code(&c, "ALTER TABLE m ALTER COLUMN v TYPE INT").await,
        "23505"
    );
    assert_eq!(
        lines(&c, "SELECT v FROM m ORDER BY v").await,
        ["1.2", "1.4"]
    );

    // In a transaction block, ROLLBACK puts the old values and type back.
    exec(
        &c,
        "BEGIN; ALTER TABLE tags ALTER COLUMN id TYPE TEXT; INSERT INTO tags VALUES ('x', 'y')",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT id FROM tags ORDER BY id").await,
        ["1", "2", "3", "x"]
    );
    exec(&c, "ROLLBACK").await;
    assert_eq!(
        lines(&c, "SELECT id + 1 FROM tags ORDER BY id").await,
        ["2", "3", "4"]
    );
    // The primary key index was rebuilt both times: lookups by key still work.
    assert_eq!(
        lines(&c, "SELECT label FROM tags WHERE id = 2").await,
        ["five"]
    );
    srv.stop().await;
}

#[tokio::test]
async fn alter_column_defaults_not_null_and_renames() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT DEFAULT 5); INSERT INTO t (id, a) VALUES (1, 'x')",
    )
    .await;
    exec(&c, "ALTER TABLE t ALTER COLUMN a SET DEFAULT 'dflt'").await;
    exec(&c, "ALTER TABLE t ALTER COLUMN b DROP DEFAULT").await;
    exec(&c, "INSERT INTO t (id) VALUES (2)").await;
    assert_eq!(
        lines(&c, "SELECT id, a, b FROM t ORDER BY id").await,
        ["1|x|5", "2|dflt|"]
    );
    // SET NOT NULL checks the rows first.
    assert_eq!(
        error(&c, "ALTER TABLE t ALTER COLUMN b SET NOT NULL").await,
        "23502: column \"b\" of relation \"t\" contains null values"
    );
    exec(&c, "ALTER TABLE t ALTER COLUMN a SET NOT NULL").await;
    assert_eq!(code(&c, "INSERT INTO t VALUES (3, NULL, 1)").await, "23502");
    exec(&c, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL").await;
    exec(&c, "INSERT INTO t VALUES (3, NULL, 1)").await;
    assert_eq!(
        code(&c, "ALTER TABLE t ALTER COLUMN id DROP NOT NULL").await,
        "42P16"
    );
    exec(&c, "ALTER TABLE t RENAME COLUMN a TO label").await;
    exec(&c, "ALTER TABLE t RENAME TO things").await;
    assert_eq!(
        lines(&c, "SELECT label FROM things WHERE id = 1").await,
        ["x"]
    );
    assert_eq!(code(&c, "SELECT a FROM things").await, "42703");
    assert_eq!(code(&c, "SELECT * FROM t").await, "42P01");
    srv.stop().await;
}

#[tokio::test]
async fn a_changed_column_type_survives_a_restart() {
    let dir = testkit::temp_dir("sql-alter-type");
    let args = || sql::Args {
        dir: Some(dir.clone()),
        ..sql::Args::ephemeral()
    };
    let srv = server_with(args()).await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, '41'), (2, '1')",
    )
    .await;
    exec(&c, "ALTER TABLE t ALTER COLUMN v TYPE INT USING v::int + 1").await;
    exec(&c, "INSERT INTO t VALUES (3, 7)").await;
    srv.stop().await;
    let srv = server_with(args()).await;
    let c = connect(srv.addr()).await;
    assert_eq!(
        lines(&c, "SELECT v * 2 FROM t ORDER BY v").await,
        ["4", "14", "84"]
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
