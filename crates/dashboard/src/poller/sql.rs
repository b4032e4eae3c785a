//! The sql server, over the PostgreSQL protocol, as psql would ask it.

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::sample::Sample;

/// One connection kept between polls.
#[derive(Default)]
pub struct SqlProbe {
    client: Option<Client>,
}

impl SqlProbe {
    /// `pg_locks`' waits now: transactions blocked on another's row lock (a dropped
    /// connection is dialled again).
    pub async fn poll(&mut self, addr: &str, password: Option<&str>) -> Sample {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match connect(addr, password).await {
                Ok(c) => c,
                Err(e) => return Sample::down(e.to_string()),
            },
        };
        match client
            .simple_query("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .await
        {
            Ok(messages) => {
                self.client = Some(client);
                let mut s = Sample::up();
                let waits = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => row.get(0)?.parse::<f64>().ok(),
                    _ => None,
                });
                if let Some(waits) = waits {
                    s.set("lock_waits", waits);
                }
                s
            }
            Err(e) => Sample::down(e.to_string()),
        }
    }
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
