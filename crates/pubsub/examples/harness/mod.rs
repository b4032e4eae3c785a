//! What the pub/sub load examples share: sending a pipeline of `PUBLISH`es and waiting for
//! their replies.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes the pipelined commands in `out` (then empties it) and reads `count` one-line
/// replies (`:N\r\n`) into `replies`.
pub async fn pipeline(
    publisher: &mut TcpStream,
    out: &mut BytesMut,
    replies: &mut BytesMut,
    count: u64,
) {
    publisher.write_all(out).await.unwrap();
    out.clear();
    let mut lines = 0;
    while lines < count {
        if let Some(pos) = replies.iter().position(|&b| b == b'\n') {
            replies.advance(pos + 1);
            lines += 1;
        } else {
            assert!(
                publisher.read_buf(replies).await.unwrap() > 0,
                "the server closed the publisher"
            );
        }
    }
}
