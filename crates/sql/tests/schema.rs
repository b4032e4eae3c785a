//! The schema side against real clients: ALTER TABLE on tables with rows, generated
//! columns, materialized views, triggers, VACUUM, the reported server version, and all of
//! them surviving a restart (log replay and checkpoint). Each test starts its own server
//! on port 0.

mod common;

use std::process::Command;

use common::{
    code, connect, exec, lines, psql_args, psql_connection_args, run, server, server_with,
};
use tokio_postgres::{Client, SimpleQueryMessage};

/// `psql -X -A -t -c sql` against the server: (stdout, stderr).
async fn psql(port: u16, sql: &str) -> (String, String) {
    let (_, out, err) = run("psql", psql_args(port, sql)).await;
    (out, err)
}

#[tokio::test]
async fn alter_table_changes_a_table_that_has_rows() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(&c, "CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(10,2) CHECK (price >= 0));
              INSERT INTO items VALUES (1, 'pen', 2), (2, 'ink', 5), (3, 'pad', 5)").await;
    // ADD COLUMN with a default: existing rows get it; without one, NULL.
    exec(
        &c,
        "ALTER TABLE items ADD COLUMN stock INT NOT NULL DEFAULT 10",
    )
    .await;
    exec(&c, "ALTER TABLE items ADD COLUMN note TEXT").await;
    assert_eq!(
        lines(&c, "SELECT * FROM items ORDER BY id").await,
        ["1|pen|2.00|10|", "2|ink|5.00|10|", "3|pad|5.00|10|"]
    );
    assert_eq!(
        code(&c, "ALTER TABLE items ADD COLUMN sku TEXT NOT NULL").await,
        "23502"
    );
    assert_eq!(
        code(&c, "ALTER TABLE items ADD COLUMN stock INT").await,
        "42701"
    );
    // DROP COLUMN: gone from *, from column lists and from new rows.
    exec(&c, "ALTER TABLE items DROP COLUMN note").await;
    exec(&c, "INSERT INTO items VALUES (4, 'cap', 1, 3)").await;
    assert_eq!(
        lines(&c, "SELECT * FROM items WHERE id = 4").await,
        ["4|cap|1.00|3"]
    );
    assert_eq!(code(&c, "SELECT note FROM items").await, "42703");
    // RENAME COLUMN: the CHECK on it follows the new name.
    exec(&c, "ALTER TABLE items RENAME COLUMN price TO cost").await;
    assert_eq!(
        code(&c, "UPDATE items SET cost = -1 WHERE id = 1").await,
        "23514"
    );
    assert_eq!(
        lines(&c, "SELECT cost FROM items WHERE id = 2").await,
        ["5.00"]
    );
    // ADD CONSTRAINT validates the rows already there.
    assert_eq!(
        code(
            &c,
            "ALTER TABLE items ADD CONSTRAINT cheap CHECK (cost < 5)"
        )
        .await,
        "23514"
    );
    assert_eq!(
        code(&c, "ALTER TABLE items ADD UNIQUE (cost)").await,
        "23505"
    );
    exec(
        &c,
        "ALTER TABLE items ADD CONSTRAINT items_name_key UNIQUE (name)",
    )
    .await;
    assert_eq!(
        code(&c, "INSERT INTO items VALUES (5, 'pen', 1, 1)").await,
        "23505"
    );
    exec(&c, "ALTER TABLE items DROP CONSTRAINT items_name_key").await;
    exec(&c, "INSERT INTO items VALUES (5, 'pen', 1, 1)").await;
    assert_eq!(
        code(&c, "ALTER TABLE items DROP CONSTRAINT nope").await,
        "42704"
    );
    // Foreign keys added later: checked now and from now on.
    exec(&c, "CREATE TABLE orders (id INT PRIMARY KEY, item INT)").await;
    exec(&c, "INSERT INTO orders VALUES (1, 1), (2, 99)").await;
    assert_eq!(
        code(
            &c,
            "ALTER TABLE orders ADD FOREIGN KEY (item) REFERENCES items (id)"
        )
        .await,
        "23503"
    );
    exec(&c, "DELETE FROM orders WHERE id = 2").await;
    exec(
        &c,
        "ALTER TABLE orders ADD FOREIGN KEY (item) REFERENCES items (id) ON DELETE CASCADE",
    )
    .await;
    assert_eq!(code(&c, "INSERT INTO orders VALUES (3, 42)").await, "23503");
    // RENAME TO: the foreign key follows the parent's new name.
    exec(&c, "ALTER TABLE items RENAME TO products").await;
    exec(&c, "DELETE FROM products WHERE id = 1").await;
    assert!(lines(&c, "SELECT * FROM orders").await.is_empty());
    assert_eq!(code(&c, "SELECT * FROM items").await, "42P01");
    // ALTER COLUMN: defaults and NOT NULL.
    exec(&c, "ALTER TABLE orders ALTER COLUMN item SET DEFAULT 2").await;
    exec(&c, "INSERT INTO orders (id) VALUES (7)").await;
    assert_eq!(
        lines(&c, "SELECT item FROM orders WHERE id = 7").await,
        ["2"]
    );
    exec(&c, "ALTER TABLE orders ALTER COLUMN item SET NOT NULL").await;
    exec(&c, "ALTER TABLE orders ALTER COLUMN item DROP DEFAULT").await;
    assert_eq!(
        code(&c, "INSERT INTO orders (id) VALUES (8)").await,
        "23502"
    );
    assert_eq!(
        code(&c, "ALTER TABLE orders ALTER COLUMN id DROP NOT NULL").await,
        "42P16"
    );
    // DDL is transactional: a rolled-back ADD COLUMN leaves the rows as they were.
    exec(&c, "BEGIN; ALTER TABLE products ADD COLUMN tmp INT DEFAULT 1; ALTER TABLE products DROP COLUMN stock; ROLLBACK").await;
    assert_eq!(
        lines(&c, "SELECT * FROM products WHERE id = 2").await,
        ["2|ink|5.00|10"]
    );
    srv.stop().await;
}

#[tokio::test]
async fn generated_columns_are_computed_on_every_write() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE lines (id INT PRIMARY KEY, qty INT NOT NULL, price NUMERIC(8,2) NOT NULL,
              total NUMERIC(10,2) GENERATED ALWAYS AS (qty * price) STORED CHECK (total < 1000))",
    )
    .await;
    exec(
        &c,
        "INSERT INTO lines (id, qty, price) VALUES (1, 2, 3.50), (2, 1, 10)",
    )
    .await;
    exec(&c, "INSERT INTO lines VALUES (3, 4, 1, DEFAULT)").await;
    assert_eq!(
        lines(&c, "SELECT id, total FROM lines ORDER BY id").await,
        ["1|7.00", "2|10.00", "3|4.00"]
    );
    exec(&c, "UPDATE lines SET qty = 10 WHERE id = 1").await;
    assert_eq!(
        lines(&c, "SELECT total FROM lines WHERE id = 1").await,
        ["35.00"]
    );
    // The stored value is indexed and constrained like any other.
    assert_eq!(
        code(&c, "UPDATE lines SET qty = 1000 WHERE id = 2").await,
        "23514"
    );
    assert_eq!(
        code(&c, "INSERT INTO lines VALUES (4, 1, 1, 5)").await,
        "428C9"
    );
    assert_eq!(code(&c, "UPDATE lines SET total = 5").await, "428C9");
    assert_eq!(
        code(
            &c,
            "INSERT INTO lines (id, qty, price) VALUES (2, 1, 1) \
             ON CONFLICT (id) DO UPDATE SET total = 5"
        )
        .await,
        "428C9"
    );
    // An upsert's update recomputes the stored value like any other update.
    exec(
        &c,
        "INSERT INTO lines (id, qty, price) VALUES (2, 3, 1) \
         ON CONFLICT (id) DO UPDATE SET qty = EXCLUDED.qty",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT total FROM lines WHERE id = 2").await,
        ["30.00"]
    );
    exec(&c, "UPDATE lines SET qty = 1 WHERE id = 2").await;
    assert_eq!(
        code(
            &c,
            "CREATE TABLE bad (a INT, b TIMESTAMP GENERATED ALWAYS AS (now()) STORED)"
        )
        .await,
        "42P17"
    );
    assert_eq!(
        code(
            &c,
            "CREATE TABLE bad (a INT, b INT GENERATED ALWAYS AS (c + 1) STORED)"
        )
        .await,
        "42703"
    );
    // ADD COLUMN ... GENERATED computes it for the rows already there.
    exec(
        &c,
        "ALTER TABLE lines ADD COLUMN double_qty INT GENERATED ALWAYS AS (qty * 2) STORED",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT id, double_qty FROM lines ORDER BY id").await,
        ["1|20", "2|2", "3|8"]
    );
    // A NUMERIC expression stored in an integer column (the README's example).
    exec(
        &c,
        "ALTER TABLE lines ADD COLUMN cents BIGINT GENERATED ALWAYS AS (price * 100) STORED",
    )
    .await;
    assert_eq!(
        lines(&c, "SELECT id, cents FROM lines ORDER BY id").await,
        ["1|350", "2|1000", "3|100"]
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_materialized_view_is_stale_until_refreshed() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(
        &c,
        "CREATE TABLE sales (region TEXT, amount INT);
              INSERT INTO sales VALUES ('north', 10), ('north', 5), ('south', 7)",
    )
    .await;
    let created = c
        .simple_query("CREATE MATERIALIZED VIEW totals AS SELECT region, sum(amount) AS total FROM sales GROUP BY region")
        .await
        .expect("create");
    assert!(matches!(
        created.last(),
        Some(SimpleQueryMessage::CommandComplete(2))
    ));
    let view = "SELECT region, total FROM totals ORDER BY region";
    assert_eq!(lines(&c, view).await, ["north|15", "south|7"]);
    exec(&c, "INSERT INTO sales VALUES ('south', 100), ('east', 1)").await;
    // A cache: the stored result does not follow the table...
    assert_eq!(lines(&c, view).await, ["north|15", "south|7"]);
    // ...until REFRESH, which replaces it in one transaction.
    exec(&c, "REFRESH MATERIALIZED VIEW totals").await;
    assert_eq!(lines(&c, view).await, ["east|1", "north|15", "south|107"]);
    // A refresh rolled back leaves the old result.
    exec(&c, "DELETE FROM sales WHERE region = 'east'; BEGIN; REFRESH MATERIALIZED VIEW totals; ROLLBACK").await;
    assert_eq!(lines(&c, view).await, ["east|1", "north|15", "south|107"]);
    assert_eq!(
        code(&c, "INSERT INTO totals VALUES ('west', 1)").await,
        "42809"
    );
    assert_eq!(code(&c, "DELETE FROM totals").await, "42809");
    assert_eq!(code(&c, "DROP TABLE sales").await, "2BP01");
    assert_eq!(code(&c, "DROP TABLE totals").await, "42809");
    assert_eq!(code(&c, "REFRESH MATERIALIZED VIEW sales").await, "42809");
    assert_eq!(
        code(&c, "REFRESH MATERIALIZED VIEW totals WITH NO DATA").await,
        "0A000"
    );
    exec(&c, "DROP MATERIALIZED VIEW totals; DROP TABLE sales").await;
    assert_eq!(code(&c, "SELECT * FROM totals").await, "42P01");
    srv.stop().await;
}

const AUDIT: &str = "
    CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL);
    CREATE TABLE audit (op TEXT, account INT, old_balance INT, new_balance INT);
    CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO audit VALUES (TG_OP_PLACEHOLDER, COALESCE(NEW.id, OLD.id), OLD.balance, NEW.balance);
        RETURN NEW;
    END $$;
    CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts
        FOR EACH ROW EXECUTE FUNCTION log_change();";

#[tokio::test]
async fn triggers_run_in_the_writing_transaction_with_new_and_old() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(&c, &AUDIT.replace("TG_OP_PLACEHOLDER", "'change'")).await;
    exec(&c, "INSERT INTO accounts VALUES (1, 100), (2, 50)").await;
    exec(
        &c,
        "UPDATE accounts SET balance = balance - 30 WHERE id = 1",
    )
    .await;
    exec(&c, "DELETE FROM accounts WHERE id = 2").await;
    assert_eq!(
        lines(&c, "SELECT account, old_balance, new_balance FROM audit").await,
        ["1||100", "2||50", "1|100|70", "2|50|"]
    );
    // Rows that COPY brings in fire the trigger as well.
    let port = srv.addr().port();
    let copied = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "test",
                "-d",
                "test",
            ])
            .args(["-X", "-c", "COPY accounts FROM STDIN"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("psql is installed");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"7\t700\n")
            .expect("write");
        child.wait_with_output().expect("psql ends")
    })
    .await
    .expect("join");
    assert_eq!(String::from_utf8_lossy(&copied.stdout).trim(), "COPY 1");
    assert_eq!(
        lines(
            &c,
            "SELECT account, new_balance FROM audit WHERE account = 7"
        )
        .await,
        ["7|700"]
    );
    exec(
        &c,
        "DELETE FROM accounts WHERE id = 7; DELETE FROM audit WHERE account = 7",
    )
    .await;
    // Same transaction: a rolled-back change leaves no audit row.
    exec(&c, "BEGIN; UPDATE accounts SET balance = 0; ROLLBACK").await;
    assert_eq!(lines(&c, "SELECT count(*) FROM audit").await, ["4"]);
    // A failing trigger statement fails the change that fired it.
    exec(
        &c,
        "ALTER TABLE audit ADD CONSTRAINT positive CHECK (new_balance IS NULL OR new_balance >= 0)",
    )
    .await;
    assert_eq!(
        code(&c, "UPDATE accounts SET balance = -5 WHERE id = 1").await,
        "23514"
    );
    assert_eq!(lines(&c, "SELECT balance FROM accounts").await, ["70"]);
    // Rows removed by a cascade fire their table's trigger too.
    exec(
        &c,
        "CREATE TABLE owners (id INT PRIMARY KEY);
              INSERT INTO owners VALUES (1);
              ALTER TABLE accounts ADD COLUMN owner INT REFERENCES owners (id) ON DELETE CASCADE;
              UPDATE accounts SET owner = 1;
              DELETE FROM owners",
    )
    .await;
    assert_eq!(
        lines(
            &c,
            "SELECT account FROM audit WHERE old_balance = 70 AND new_balance IS NULL"
        )
        .await,
        ["1"]
    );
    // A trigger that keeps firing itself is stopped.
    exec(&c, "CREATE FUNCTION again() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES ('again', NEW.account, NULL, NULL); RETURN NULL; END $$;
              CREATE TRIGGER loop AFTER INSERT ON audit FOR EACH ROW EXECUTE FUNCTION again()").await;
    assert_eq!(
        code(&c, "INSERT INTO audit VALUES ('x', 1, 1, 1)").await,
        "54001"
    );
    // The honest subset: what it does not do is refused, not ignored.
    assert_eq!(
        code(
            &c,
            "CREATE TRIGGER b BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION log_change()"
        )
        .await,
        "0A000"
    );
    assert_eq!(
        code(&c, "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id > 1 THEN RETURN NEW; END IF; END $$").await,
        "0A000"
    );
    assert_eq!(code(&c, "DROP FUNCTION log_change").await, "2BP01");
    exec(
        &c,
        "DROP TRIGGER accounts_audit ON accounts; DROP FUNCTION log_change",
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn vacuum_removes_the_versions_no_snapshot_can_see() {
    let srv = server().await;
    let port = srv.addr().port();
    let c = connect(srv.addr()).await;
    exec(&c, "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g").await;
    // A transaction that has begun holds back the versions it might still read.
    let holder = connect(srv.addr()).await;
    exec(&holder, "BEGIN; SELECT 1 FROM t LIMIT 1").await;
    exec(
        &c,
        "UPDATE t SET v = 1; UPDATE t SET v = 2 WHERE id <= 5; DELETE FROM t WHERE id = 10",
    )
    .await;
    let (_, info) = psql(port, "VACUUM VERBOSE t").await;
    assert!(
        info.contains("tuples: 0 removed, 25 remain, 16 are dead but not yet removable"),
        "{info}"
    );
    exec(&holder, "COMMIT").await;
    let (_, info) = psql(port, "VACUUM VERBOSE t").await;
    assert!(info.contains("vacuuming \"public.t\""), "{info}");
    assert!(
        info.contains("tuples: 16 removed, 9 remain, 0 are dead but not yet removable"),
        "{info}"
    );
    // What is left reads the same, through a scan and through the index.
    assert_eq!(lines(&c, "SELECT sum(v), count(*) FROM t").await, ["14|9"]);
    assert_eq!(lines(&c, "SELECT v FROM t WHERE id = 3").await, ["2"]);
    let (_, info) = psql(port, "VACUUM VERBOSE t").await;
    assert!(info.contains("tuples: 0 removed, 9 remain"), "{info}");
    exec(&c, "BEGIN").await;
    assert_eq!(code(&c, "VACUUM").await, "25001");
    exec(&c, "ROLLBACK").await;
    assert_eq!(code(&c, "VACUUM nope").await, "42P01");
    srv.stop().await;
}

#[tokio::test]
async fn clients_see_postgresql_15() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    assert_eq!(lines(&c, "SHOW server_version").await, ["15.0"]);
    // psql sets its SERVER_VERSION_* variables from the ParameterStatus it received.
    let (out, err) = psql(
        srv.addr().port(),
        "\\echo :SERVER_VERSION_NAME :SERVER_VERSION_NUM",
    )
    .await;
    assert_eq!(out.trim(), "15.0 150000", "{err}");
    srv.stop().await;
}

#[tokio::test]
async fn schema_changes_survive_restarts_through_the_log_and_checkpoints() {
    let dir = std::env::temp_dir().join(format!("infralab-sql-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = sql::Args {
        dir: Some(dir.clone()),
        ..sql::Args::ephemeral()
    };
    let srv = server_with(args.clone()).await;
    let c = connect(srv.addr()).await;
    exec(&c, &AUDIT.replace("TG_OP_PLACEHOLDER", "'change'")).await;
    exec(&c, "INSERT INTO accounts VALUES (1, 10), (2, 20);
              ALTER TABLE accounts ADD COLUMN doubled INT GENERATED ALWAYS AS (balance * 2) STORED;
              ALTER TABLE accounts ADD COLUMN note TEXT DEFAULT 'n';
              ALTER TABLE accounts DROP COLUMN note;
              ALTER TABLE accounts ADD COLUMN tag TEXT DEFAULT 't';
              CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY, a INT REFERENCES a (id));
              ALTER TABLE a ADD COLUMN b INT REFERENCES b (id);
              CREATE MATERIALIZED VIEW rich AS SELECT id, balance FROM accounts WHERE balance > 15;
              UPDATE accounts SET balance = 30 WHERE id = 1").await;
    let check = |c: Client| async move {
        assert_eq!(
            lines(&c, "SELECT * FROM accounts ORDER BY id").await,
            ["1|30|60|t", "2|20|40|t"]
        );
        // Stale, as stored: the update to account 1 came after the view.
        assert_eq!(lines(&c, "SELECT * FROM rich").await, ["2|20"]);
        // The trigger and its function are back.
        let before = lines(&c, "SELECT count(*) FROM audit").await;
        exec(&c, "UPDATE accounts SET balance = 31 WHERE id = 1").await;
        let after = lines(&c, "SELECT count(*) FROM audit").await;
        assert_ne!(before, after);
        exec(&c, "UPDATE accounts SET balance = 30 WHERE id = 1").await;
        assert_eq!(code(&c, "INSERT INTO a VALUES (1, 5)").await, "23503");
    };
    check(c).await;
    srv.stop().await;
    // 1: replayed from the log.
    let srv = server_with(args.clone()).await;
    check(connect(srv.addr()).await).await;
    srv.stop().await;
    // 2: from a checkpoint (every commit takes one), then the log after it.
    let srv = server_with(sql::Args {
        checkpoint_bytes: 1,
        ..args.clone()
    })
    .await;
    let c = connect(srv.addr()).await;
    exec(&c, "INSERT INTO b VALUES (1, NULL)").await;
    check(c).await;
    srv.stop().await;
    let srv = server_with(args.clone()).await;
    let c = connect(srv.addr()).await;
    check(c).await;
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `psql -X -c sql` in psql's default (aligned) format: stdout and stderr.
async fn psql_aligned(port: u16, sql: &str) -> (String, String) {
    let mut args = psql_connection_args(port);
    args.extend(["-c".to_string(), sql.to_string()]);
    let (_, out, err) = run("psql", args).await;
    (out, err)
}

/// The two tables the `\d` tests describe: keys, a default, a CHECK, a generated column,
/// SERIALs, a foreign key.
const DESCRIBED_TABLES: &str = "CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT NOT NULL,
        balance NUMERIC(12,2) NOT NULL DEFAULT 0 CHECK (balance >= 0),
        total INT GENERATED ALWAYS AS (id * 2) STORED, code SERIAL UNIQUE);
    CREATE TABLE transfers (id SERIAL PRIMARY KEY,
        from_id INT REFERENCES accounts(id) ON DELETE CASCADE, amount NUMERIC(12,2))";

#[tokio::test]
async fn psql_describes_tables_indexes_and_views() {
    let srv = server().await;
    let port = srv.addr().port();
    let c = connect(srv.addr()).await;
    exec(&c, DESCRIBED_TABLES).await;
    exec(&c, "CREATE INDEX tr_amount ON transfers (amount);
              CREATE UNIQUE INDEX tr_u ON transfers (from_id, amount);
              CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
              CREATE TRIGGER tr AFTER INSERT OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION f();
              CREATE MATERIALIZED VIEW mv AS SELECT id, owner FROM accounts").await;
    // The layouts below are PostgreSQL 15's own for the same schema (its owner and the
    // CHECK's cast aside).
    let (out, err) = psql_aligned(port, "\\d accounts").await;
    assert_eq!(
        out,
        r#"                                 Table "public.accounts"
 Column  |     Type      | Collation | Nullable |                Default                 
---------+---------------+-----------+----------+----------------------------------------
 id      | integer       |           | not null | 
 owner   | text          |           | not null | 
 balance | numeric(12,2) |           | not null | 0
 total   | integer       |           |          | generated always as (id * 2) stored
 code    | integer       |           | not null | nextval('accounts_code_seq'::regclass)
Indexes:
    "accounts_pkey" PRIMARY KEY, btree (id)
    "accounts_code_key" UNIQUE CONSTRAINT, btree (code)
Check constraints:
    "accounts_balance_check" CHECK (balance >= 0)
Referenced by:
    TABLE "transfers" CONSTRAINT "transfers_from_id_fkey" FOREIGN KEY (from_id) REFERENCES accounts(id) ON DELETE CASCADE
Triggers:
    tr AFTER INSERT OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION f()

"#,
        "{err}"
    );
    let (out, err) = psql_aligned(port, "\\d transfers").await;
    assert_eq!(
        out,
        r#"                                Table "public.transfers"
 Column  |     Type      | Collation | Nullable |                Default                
---------+---------------+-----------+----------+---------------------------------------
 id      | integer       |           | not null | nextval('transfers_id_seq'::regclass)
 from_id | integer       |           |          | 
 amount  | numeric(12,2) |           |          | 
Indexes:
    "transfers_pkey" PRIMARY KEY, btree (id)
    "tr_amount" btree (amount)
    "tr_u" UNIQUE, btree (from_id, amount)
Foreign-key constraints:
    "transfers_from_id_fkey" FOREIGN KEY (from_id) REFERENCES accounts(id) ON DELETE CASCADE

"#,
        "{err}"
    );
    let (out, _) = psql_aligned(port, "\\d mv").await;
    assert!(
        out.starts_with("           Materialized view \"public.mv\"\n"),
        "{out}"
    );
    assert!(
        out.contains(" owner  | text    |           |          | \n"),
        "{out}"
    );
    let (out, _) = psql(port, "\\di").await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "public|accounts_code_key|index|infralab|accounts",
            "public|accounts_pkey|index|infralab|accounts",
            "public|tr_amount|index|infralab|transfers",
            "public|tr_u|index|infralab|transfers",
            "public|transfers_pkey|index|infralab|transfers",
        ]
    );
    let (out, _) = psql(port, "\\d").await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "public|accounts|table|infralab",
            "public|mv|materialized view|infralab",
            "public|transfers|table|infralab",
        ]
    );
    let (out, _) = psql(port, "\\dt tr*").await;
    assert_eq!(out.trim(), "public|transfers|table|infralab");
    let (_, err) = psql(port, "\\d nosuch").await;
    assert_eq!(err.trim(), "Did not find any relation named \"nosuch\".");
    srv.stop().await;
}

/// `\d+`: psql asks for each column's storage, compression, statistics target and
/// comment too, and for a materialized view's query; the layout is PostgreSQL 15's.
#[tokio::test]
async fn psql_describes_a_table_verbosely() {
    let srv = server().await;
    let port = srv.addr().port();
    let c = connect(srv.addr()).await;
    exec(&c, DESCRIBED_TABLES).await;
    exec(
        &c,
        "CREATE MATERIALIZED VIEW mv AS SELECT id, owner FROM accounts",
    )
    .await;
    // PostgreSQL 15's output for the same schema (the CHECK's cast aside).
    let (out, err) = psql_aligned(port, "\\d+ accounts").await;
    assert_eq!(
        out,
        r#"                                                            Table "public.accounts"
 Column  |     Type      | Collation | Nullable |                Default                 | Storage  | Compression | Stats target | Description 
---------+---------------+-----------+----------+----------------------------------------+----------+-------------+--------------+-------------
 id      | integer       |           | not null |                                        | plain    |             |              | 
 owner   | text          |           | not null |                                        | extended |             |              | 
 balance | numeric(12,2) |           | not null | 0                                      | main     |             |              | 
 total   | integer       |           |          | generated always as (id * 2) stored    | plain    |             |              | 
 code    | integer       |           | not null | nextval('accounts_code_seq'::regclass) | plain    |             |              | 
Indexes:
    "accounts_pkey" PRIMARY KEY, btree (id)
    "accounts_code_key" UNIQUE CONSTRAINT, btree (code)
Check constraints:
    "accounts_balance_check" CHECK (balance >= 0)
Referenced by:
    TABLE "transfers" CONSTRAINT "transfers_from_id_fkey" FOREIGN KEY (from_id) REFERENCES accounts(id) ON DELETE CASCADE
Access method: heap

"#,
        "{err}"
    );
    let (out, err) = psql_aligned(port, "\\d+ transfers").await;
    assert_eq!(
        out,
        r#"                                                          Table "public.transfers"
 Column  |     Type      | Collation | Nullable |                Default                | Storage | Compression | Stats target | Description 
---------+---------------+-----------+----------+---------------------------------------+---------+-------------+--------------+-------------
 id      | integer       |           | not null | nextval('transfers_id_seq'::regclass) | plain   |             |              | 
 from_id | integer       |           |          |                                       | plain   |             |              | 
 amount  | numeric(12,2) |           |          |                                       | main    |             |              | 
Indexes:
    "transfers_pkey" PRIMARY KEY, btree (id)
Foreign-key constraints:
    "transfers_from_id_fkey" FOREIGN KEY (from_id) REFERENCES accounts(id) ON DELETE CASCADE
Access method: heap

"#,
        "{err}"
    );
    // A materialized view: its columns, then its query (as this server prints it).
    let (out, err) = psql_aligned(port, "\\d+ mv").await;
    assert!(
        out.starts_with(
            r#"                                      Materialized view "public.mv"
 Column |  Type   | Collation | Nullable | Default | Storage  | Compression | Stats target | Description 
--------+---------+-----------+----------+---------+----------+-------------+--------------+-------------
 id     | integer |           |          |         | plain    |             |              | 
 owner  | text    |           |          |         | extended |             |              | 
View definition:
 SELECT id, owner FROM accounts;
Access method: heap
"#
        ),
        "{out}{err}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn on_update_cascade_drop_index_and_drop_cascade() {
    let srv = server().await;
    let c = connect(srv.addr()).await;
    exec(&c, "CREATE TABLE parents (code TEXT PRIMARY KEY);
              CREATE TABLE kids (id INT PRIMARY KEY, parent TEXT REFERENCES parents (code) ON UPDATE CASCADE ON DELETE SET NULL);
              CREATE TABLE pets (id INT PRIMARY KEY, owner TEXT REFERENCES parents (code) ON UPDATE SET NULL);
              CREATE TABLE strict (id INT PRIMARY KEY, parent TEXT REFERENCES parents (code));
              INSERT INTO parents VALUES ('a'), ('b');
              INSERT INTO kids VALUES (1, 'a'), (2, 'a'), (3, 'b');
              INSERT INTO pets VALUES (1, 'a')").await;
    exec(&c, "UPDATE parents SET code = 'z' WHERE code = 'a'").await;
    assert_eq!(
        lines(&c, "SELECT id, parent FROM kids ORDER BY id").await,
        ["1|z", "2|z", "3|b"]
    );
    assert_eq!(lines(&c, "SELECT owner FROM pets").await, [""]);
    exec(&c, "INSERT INTO strict VALUES (1, 'b')").await;
    assert_eq!(
        code(&c, "UPDATE parents SET code = 'y' WHERE code = 'b'").await,
        "23503"
    );
    assert_eq!(
        lines(&c, "SELECT parent FROM kids WHERE id = 3").await,
        ["b"]
    );
    // DROP INDEX: plain indexes only; a constraint's index goes with the constraint.
    exec(&c, "CREATE INDEX kids_parent ON kids (parent)").await;
    assert_eq!(code(&c, "DROP INDEX kids_pkey").await, "2BP01");
    exec(
        &c,
        "DROP INDEX kids_parent; DROP INDEX IF EXISTS kids_parent",
    )
    .await;
    assert_eq!(code(&c, "DROP INDEX kids_parent").await, "42704");
    assert_eq!(
        lines(&c, "SELECT count(*) FROM kids WHERE parent = 'z'").await,
        ["2"]
    );
    // DROP TABLE ... CASCADE removes the referencing constraints and dependent views.
    exec(
        &c,
        "CREATE MATERIALIZED VIEW kid_count AS SELECT count(*) AS n FROM kids",
    )
    .await;
    assert_eq!(code(&c, "DROP TABLE parents").await, "2BP01");
    exec(
        &c,
        "BEGIN; DROP TABLE kids CASCADE; DROP TABLE parents CASCADE; ROLLBACK",
    )
    .await;
    assert_eq!(lines(&c, "SELECT n FROM kid_count").await, ["3"]);
    exec(&c, "DROP TABLE parents CASCADE").await;
    exec(&c, "INSERT INTO kids VALUES (4, 'nobody')").await;
    exec(&c, "DROP TABLE kids CASCADE").await;
    assert_eq!(code(&c, "SELECT * FROM kid_count").await, "42P01");
    srv.stop().await;
}
