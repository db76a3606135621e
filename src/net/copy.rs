//! [`copy_bidirectional`]: the proxy pattern — copy both ways between two streams (TCP or
//! Unix, in any mix), passing each half-close on.

use crate::net::socket::Socket;
use crate::net::{TcpStream, UnixStream};
use std::io;
use std::sync::Arc;

/// A connected byte stream of this crate, [`TcpStream`] or [`UnixStream`]: what
/// [`copy_bidirectional`] copies between (a TCP front for a service on a Unix socket, say).
/// Sealed: implemented by those two only.
pub trait ByteStream: sealed::Stream {}

impl ByteStream for TcpStream {}
impl ByteStream for UnixStream {}

mod sealed {
    use super::{Arc, Socket};

    /// How a [`ByteStream`](super::ByteStream) shows its socket core to this module.
    pub trait Stream {
        fn socket(&self) -> Core<'_>;
    }

    /// A stream's socket core (the type is public only so that the sealed trait may name
    /// it; nothing outside the crate can reach it).
    #[derive(Debug)]
    pub struct Core<'a>(pub(super) &'a Arc<Socket>);

    impl Stream for super::TcpStream {
        fn socket(&self) -> Core<'_> {
            Core(self.sock())
        }
    }

    impl Stream for super::UnixStream {
        fn socket(&self) -> Core<'_> {
            Core(self.sock())
        }
    }
}

/// Bytes one direction copies per read.
const CHUNK: usize = 64 * 1024;

/// Copies data from `a` to `b` and from `b` to `a` at once, until both directions have
/// ended. When one side's stream ends (it half-closed), the other side's sending half is
/// shut down (FIN) after everything read was sent, so half-closes pass through. Returns the
/// bytes copied `(a → b, b → a)`. The first error (naming the peer and operation) ends
/// both directions.
///
/// An error is not passed on by itself: dropping the two streams closes them normally, so
/// the other side would see a clean end of stream (FIN) even after, say, the upstream
/// reset the connection midway. A proxy should `abort` the other side on an error, as
/// below, so that a truncated stream does not look complete.
///
/// ```no_run
/// use iocore::net::{copy_bidirectional, TcpListener, TcpStream};
/// # async fn demo() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (client, _) = listener.accept().await?;
///     iocore::spawn(async move {
///         let upstream = TcpStream::connect("127.0.0.1:9090").await?;
///         let copied = copy_bidirectional(&client, &upstream).await;
///         if copied.is_err() {
///             // Pass the failure on as a reset (both sides), not as a clean end.
///             client.abort();
///             upstream.abort();
///         }
///         copied
///     });
/// }
/// # }
/// ```
pub async fn copy_bidirectional(a: &impl ByteStream, b: &impl ByteStream) -> io::Result<(u64, u64)> {
    let (a, b) = (a.socket().0, b.socket().0);
    futures::try_join!(copy_until_end(a, b), copy_until_end(b, a))
}

/// One direction: `from` until its end, into `to`, then FIN on `to`.
async fn copy_until_end(from: &Arc<Socket>, to: &Arc<Socket>) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.recv(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        to.send_all(&buf[..n]).await?;
        total += n as u64;
    }
}
