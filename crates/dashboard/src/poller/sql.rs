//! The sql server, over the PostgreSQL protocol, as psql would ask it.

use tokio_postgres::{Client, NoTls};

use crate::sample::Sample;

/// One connection kept between polls.
#[derive(Default)]
pub struct SqlProbe {
    client: Option<Client>,
}

impl SqlProbe {
    /// `SELECT 1`: the server answers queries (a dropped connection is dialled again).
    pub async fn poll(&mut self, addr: &str, password: Option<&str>) -> Sample {
        let client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match connect(addr, password).await {
                Ok(c) => c,
                Err(e) => return Sample::down(e.to_string()),
            },
        };
        match client.simple_query("SELECT 1").await {
            Ok(_) => {
                self.client = Some(client);
                Sample::up()
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
