//! What can go wrong before a server serves, said so that a newcomer knows what to do:
//! a port someone else holds, and a data directory another server has open.

use std::path::Path;

use service::BoxError;

/// The ports of `infralab up`'s listeners — each server's default port plus `offset` —
/// after checking, before anything is created on disk, that every one is free: a second
/// `up` (or `up` beside the compose topology) then fails with the name of the first busy
/// server and leaves no `./data/...` directories behind.
///
/// The listeners are bound and dropped at once; the servers bind again right after. (A
/// port taken in between still fails cleanly, only later.)
pub async fn free_ports<const N: usize>(
    bind: &str,
    offset: u16,
    defaults: [(&str, u16); N],
) -> Result<[u16; N], BoxError> {
    let mut ports = [0; N];
    for (port, (name, default)) in ports.iter_mut().zip(defaults) {
        *port = offset_port(name, default, offset)?;
        service::listener::bind(
            name,
            bind,
            *port,
            service::settings::DEFAULT_TCP_BACKLOG,
            "--port-offset N",
        )
        .await?;
    }
    Ok(ports)
}

/// `default + offset`, or an error naming the server that would land past port 65535.
fn offset_port(name: &str, default: u16, offset: u16) -> Result<u16, BoxError> {
    default.checked_add(offset).ok_or_else(|| {
        format!("--port-offset {offset} puts {name} (default port {default}) past port 65535")
            .into()
    })
}

/// The message `infralab` prints for a server that could not start.
///
/// sled (kv's checkpoint, the broker's store) takes an exclusive lock on its directory and
/// reports a second opener only as `IO error: could not acquire lock on "DIR/db": ...
/// WouldBlock`. That is always another server using the same `--dir`: say so.
pub fn explain(error: &BoxError) -> String {
    let text = error.to_string();
    let Some((_, rest)) = text.split_once("could not acquire lock on \"") else {
        return text;
    };
    let Some((lock_file, _)) = rest.split_once('"') else {
        return text;
    };
    let dir = Path::new(lock_file)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new(lock_file));
    format!(
        "another server is using {} (it holds the directory's lock): stop it, or give this \
         one another --dir",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sled_lock_error_names_the_directory() {
        let sled = "IO error: could not acquire lock on \"./data/kv/db\": Os { code: 11, \
                    kind: WouldBlock, message: \"Resource temporarily unavailable\" }";
        assert_eq!(
            explain(&sled.into()),
            "another server is using ./data/kv (it holds the directory's lock): stop it, or \
             give this one another --dir"
        );
        assert_eq!(explain(&"something else".into()), "something else");
    }

    #[test]
    fn an_offset_past_the_last_port_is_refused() {
        assert_eq!(offset_port("kv", 7379, 10).unwrap(), 7389);
        let err = offset_port("stream (Kafka protocol)", 9092, 60_000).unwrap_err();
        assert!(err.to_string().contains("stream (Kafka protocol)"), "{err}");
    }
}
