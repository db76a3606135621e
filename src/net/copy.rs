//! [`copy_bidirectional`]: the proxy pattern — copy both ways between two streams (TCP or
//! Unix, in any mix), passing each half-close on.

use crate::net::socket::Socket;
use crate::net::{TcpStream, UnixStream};
use futures::future::Either;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    copy_both(a.socket().0, b.socket().0, None).await
}

/// Both directions at once (see [`copy_bidirectional`]), noting progress in `activity`.
async fn copy_both(a: &Arc<Socket>, b: &Arc<Socket>, activity: Option<&Activity>) -> io::Result<(u64, u64)> {
    futures::try_join!(copy_until_end(a, b, activity), copy_until_end(b, a, activity))
}

/// [`copy_bidirectional`] that gives up once nothing has moved either way for `idle`: it
/// fails with `TimedOut`, ending both directions (abort the two sides, as after any
/// error). Moving means a read that returned data, or a chunk of up to 64 KiB that was
/// fully sent; so a peer that reads slower than 64 KiB per `idle` counts as idle too.
///
/// ```no_run
/// use iocore::net::{copy_bidirectional_idle_timeout, TcpStream, UnixStream};
/// use std::time::Duration;
/// # async fn demo(client: TcpStream) -> std::io::Result<()> {
/// let upstream = UnixStream::connect("/run/app.sock").await?;
/// let copied = copy_bidirectional_idle_timeout(&client, &upstream, Duration::from_secs(60)).await;
/// if copied.is_err() {
///     client.abort();
///     upstream.abort();
/// }
/// # Ok(())
/// # }
/// ```
pub async fn copy_bidirectional_idle_timeout(
    a: &impl ByteStream,
    b: &impl ByteStream,
    idle: Duration,
) -> io::Result<(u64, u64)> {
    let activity = Activity { start: Instant::now(), last: AtomicU64::new(0) };
    let copy = pin!(copy_both(a.socket().0, b.socket().0, Some(&activity)));
    let watch = pin!(async {
        loop {
            // (No deadline past the clock's range: then nothing is ever idle long enough.)
            let Some(due) = activity.last().checked_add(idle) else {
                return std::future::pending().await;
            };
            if due <= Instant::now() {
                let e = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("copy: nothing moved either way for {idle:?}"),
                );
                return Err(e);
            }
            crate::time::sleep_until(due).await;
        }
    });
    match futures::future::select(copy, watch).await {
        Either::Left((copied, _)) | Either::Right((copied, _)) => copied,
    }
}

/// When a copy last moved data (for [`copy_bidirectional_idle_timeout`]).
struct Activity {
    start: Instant,
    /// Nanoseconds from `start`.
    last: AtomicU64,
}

impl Activity {
    fn moved(&self) {
        self.last.store(self.start.elapsed().as_nanos() as u64, Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Relaxed))
    }
}

/// One direction: `from` until its end, into `to`, then FIN on `to`; notes each read and
/// each chunk sent in `activity`.
async fn copy_until_end(
    from: &Arc<Socket>,
    to: &Arc<Socket>,
    activity: Option<&Activity>,
) -> io::Result<u64> {
    let moved = || {
        if let Some(a) = activity {
            a.moved();
        }
    };
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.recv(&mut buf).await?;
        moved();
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        to.send_all(&buf[..n]).await?;
        moved();
        total += n as u64;
    }
}
