//! The sql server, over the PostgreSQL protocol, as psql would ask it.

use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

use crate::sample::Sample;

/// One connection kept between polls.
#[derive(Default)]
pub struct SqlProbe {
    client: Option<Client>,
}

/// What one poll asks, in one round trip (a multi-statement simple query): lock waits
/// now; transactions ended (PostgreSQL's `pg_stat_database`); infralab's aborts by cause.
const QUERY: &str = "SELECT count(*) FROM pg_locks WHERE NOT granted; \
                     SELECT * FROM pg_stat_database; \
                     SELECT * FROM infralab_stat_aborts";

impl SqlProbe {
    /// `pg_locks`' waits (transactions blocked on another's row lock), commits and
    /// rollbacks as counters (the history makes `xact_per_sec` of `xact_total`), and
    /// each abort cause's count (a dropped connection is dialled again).
    pub async fn poll(&mut self, addr: &str, password: Option<&str>) -> Sample {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match connect(addr, password).await {
                Ok(c) => c,
                Err(e) => return Sample::down(e.to_string()),
            },
        };
        match client.simple_query(QUERY).await {
            Ok(messages) => {
                self.client = Some(client);
                sample(&messages)
            }
            Err(e) => Sample::down(e.to_string()),
        }
    }
}

/// A row's `column`; `try_get` because `get` panics on a column the server did not send.
fn text<'a>(row: &'a SimpleQueryRow, column: &str) -> Option<&'a str> {
    row.try_get(column).ok().flatten()
}

/// The rows of the three answers as metrics, each row recognised by its columns.
fn sample(messages: &[SimpleQueryMessage]) -> Sample {
    let mut s = Sample::up();
    let number = |row: &SimpleQueryRow, column: &str| text(row, column)?.parse::<f64>().ok();
    for m in messages {
        let SimpleQueryMessage::Row(row) = m else {
            continue;
        };
        let has = |column: &str| row.columns().iter().any(|c| c.name() == column);
        if has("xact_commit") {
            let commits = number(row, "xact_commit").unwrap_or(0.0);
            let rollbacks = number(row, "xact_rollback").unwrap_or(0.0);
            s.set("xact_commit_total", commits);
            s.set("xact_rollback_total", rollbacks);
            s.set("xact_total", commits + rollbacks);
        } else if has("cause") {
            if let (Some(cause), Some(n)) = (text(row, "cause"), number(row, "count")) {
                s.set(format!("abort.{cause}_total"), n);
            }
        } else if let Some(waits) = number(row, "count") {
            s.set("lock_waits", waits);
        }
    }
    s
}

async fn connect(addr: &str, password: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "7432"));
    let mut config = format!(
        "host={host} port={port} user=dashboard dbname=postgres application_name=dashboard connect_timeout=2"
    );
    if let Some(password) = password {
        config.push_str(&format!(" password='{}'", password.replace('\'', "\\'")));
    }
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
