//! Who gets in: connections turned away before a session starts — over `--maxclients`,
//! and, in protected mode, clients on other hosts while no password is set.
//!
//! Protected mode is the rule every infralab server shares ([`service::protected`],
//! after Redis's): a server bound to a non-loopback address with no password answers
//! only clients on its own host, so exposing a database is a decision (`--password`, or
//! knowingly `--protected-mode no`), never an accident of `--bind 0.0.0.0`.
//!
//! A refused PostgreSQL client must still be *told* why, and libpq shows a server's
//! error only once it has sent its startup packet: to an SSLRequest it expects a single
//! `S` or `N` byte (an error there is reported as "received invalid response to SSL
//! negotiation"). So a refusal speaks just enough of the protocol — `N` to SSL and GSS
//! encryption requests, then read the startup packet — and answers it with a FATAL
//! ErrorResponse, as PostgreSQL itself refuses a client its `pg_hba.conf` does not allow
//! (28000) or one too many (53300). Reading is bounded in bytes and time: a refused
//! client gets no more of the server than that.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// PostgreSQL's limit on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_PACKET: usize = 10_000;
/// How long a refused client may take to send its startup packet.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// The error a client on another host gets from a server in protected mode.
pub fn protected_mode_message(peer: std::net::IpAddr) -> String {
    format!(
        "no connection from host \"{peer}\": infralab sql is in protected mode because no \
         password is set, so only clients on this host (the loopback interface) are accepted. \
         To accept this client, restart the server with --password <password> (or the \
         INFRALAB_REQUIREPASS environment variable) and connect with that password; or, \
         only on a trusted network, restart it with --protected-mode no."
    )
}

/// Over `--maxclients`: PostgreSQL's words.
pub const TOO_MANY_CLIENTS: &str = "sorry, too many clients already";

/// Turns a connection away with a FATAL error (`code`, `message`) once the client has
/// sent its startup packet, then closes it.
pub async fn refuse(mut socket: TcpStream, code: &str, message: &str) {
    let greeted = tokio::time::timeout(STARTUP_TIMEOUT, read_startup(&mut socket)).await;
    if !matches!(greeted, Ok(Ok(true))) {
        return; // garbage, too slow, or a CancelRequest: close without a word
    }
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut reply = vec![b'E'];
    reply.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    reply.extend_from_slice(&fields);
    let _ = socket.write_all(&reply).await;
    let _ = socket.shutdown().await;
}

/// Reads up to the startup packet, declining encryption on the way. `Ok(true)` when the
/// client is now waiting for the server's answer to its startup packet.
async fn read_startup(socket: &mut TcpStream) -> std::io::Result<bool> {
    // At most one SSL and one GSS request precede the startup packet.
    for _ in 0..3 {
        let mut head = [0u8; 8];
        socket.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if !(8..=MAX_STARTUP_PACKET).contains(&len) {
            return Ok(false);
        }
        match code {
            SSL_REQUEST | GSSENC_REQUEST if len == 8 => socket.write_all(b"N").await?,
            CANCEL_REQUEST => return Ok(false),
            _ => {
                let mut rest = vec![0u8; len - 8];
                socket.read_exact(&mut rest).await?;
                return Ok(true);
            }
        }
    }
    Ok(false)
}
