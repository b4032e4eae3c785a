//! A network link with a fixed one-way delay, for demos that need distance.
//!
//! On loopback a replica is microseconds from its primary, so asynchronous replication
//! never visibly lags and synchronous replication looks free. Real replicas sit in another
//! rack, zone or region, milliseconds away. This relay puts that distance back: it accepts
//! connections, connects each to `target`, and forwards every chunk of bytes in both
//! directions once `delay` has passed since it arrived — in order, like one TCP path with
//! that latency (and unlimited bandwidth).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

/// Chunks in flight per direction; a sender that outruns this waits (TCP's window does the
/// same), so the relay's memory is bounded by `IN_FLIGHT` × its read buffer.
const IN_FLIGHT: usize = 1024;

/// The relay, listening on [`SlowLink::addr`]; stopped (with every link) when dropped.
pub struct SlowLink {
    addr: SocketAddr,
    task: AbortHandle,
}

impl SlowLink {
    /// Starts a relay on a free loopback port to `target`, delaying each direction by `delay`.
    pub async fn start(target: &str, delay: Duration) -> std::io::Result<SlowLink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            // Dropped with this task: aborting the relay aborts every link.
            let mut links = JoinSet::new();
            while let Ok((near, _)) = listener.accept().await {
                let target = target.clone();
                links.spawn(async move {
                    let Ok(far) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = (near.set_nodelay(true), far.set_nodelay(true));
                    let (near_read, near_write) = near.into_split();
                    let (far_read, far_write) = far.into_split();
                    tokio::join!(
                        forward(near_read, far_write, delay),
                        forward(far_read, near_write, delay)
                    );
                });
            }
        })
        .abort_handle();
        Ok(SlowLink { addr, task })
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let due = Instant::now() + delay;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
