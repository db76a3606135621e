//! TCP test bodies: a core of their own under a double bound, loopback listeners and
//! connected pairs, exact-length and to-EOF reads.

use super::watchdog;
use iocore::net::{TcpListener, TcpStream};
use iocore::{Builder, IoCore};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// The default bound of a test body.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Builds a core with `threads` workers and runs `body` under `core.block_on`, bounded
/// twice: by `iocore::time::timeout(limit)` inside the runtime, and by the [`watchdog`]
/// (`limit` + 15 s) outside it, which still fires if the runtime itself is stuck. Then
/// shuts the core down and checks that no task leaked. A panic in the body is propagated.
pub fn run<F, Fut>(threads: usize, limit: Duration, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    run_on(IoCore::builder().threads(threads), limit, body);
}

/// [`run`] on a core built by `builder`.
pub fn run_on<F, Fut>(builder: Builder, limit: Duration, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    watchdog(limit + Duration::from_secs(15), move || {
        let core = builder.build().expect("build core");
        let r = core.block_on(iocore::time::timeout(limit, body()));
        if r.is_err() {
            panic!("test body did not finish within {limit:?} (iocore timeout)");
        }
        let report = core.shutdown(Duration::from_secs(5));
        assert_eq!(report.leaked, 0, "tasks leaked at shutdown: {report:?}");
    });
}

/// A listener on 127.0.0.1 with an OS-chosen port, and its address.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let a = l.local_addr().expect("local_addr");
    (l, a)
}

/// A connected pair `(client, server)` on loopback.
pub async fn pair() -> (TcpStream, TcpStream) {
    let (l, a) = listener().await;
    let (c, s) = futures::join!(TcpStream::connect(a), l.accept());
    (c.expect("connect"), s.expect("accept").0)
}

/// Something with an async `recv` (a stream or a receiving half).
pub trait Recv: Sync {
    /// Forwards to the type's own `recv`.
    fn recv_some<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + Send + 'a;
}

macro_rules! impl_recv {
    ($($t:ty),*) => {$(
        impl Recv for $t {
            fn recv_some<'a>(
                &'a self,
                buf: &'a mut [u8],
            ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
                self.recv(buf)
            }
        }
    )*};
}
impl_recv!(TcpStream, iocore::net::UnixStream, iocore::net::RecvHalf<'_>);

/// Receives exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
pub async fn recv_exact<R: Recv>(s: &R, buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let n = s.recv_some(&mut buf[off..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF after {off} of {} bytes", buf.len()),
            ));
        }
        off += n;
    }
    Ok(())
}

/// Receives until EOF (bounded by `max` bytes).
pub async fn recv_to_end<R: Recv>(s: &R, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.recv_some(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        assert!(out.len() <= max, "received more than {max} bytes");
    }
}
