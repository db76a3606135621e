//! Helpers shared by the `tcp_*` integration tests: a hard watchdog (so that a runtime
//! hang fails the test instead of blocking it), exact-length reads, deterministic payloads
//! and the process's open-fd count.
#![allow(dead_code)]

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The default bound of a test body.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Builds a core with `threads` workers and runs `body` under `core.block_on`, bounded
/// twice: by `iocore::time::timeout(limit)` inside the runtime, and by a watchdog thread
/// outside it (which still fires if the runtime itself is stuck). A panic in the body is
/// propagated.
pub fn run<F, Fut>(threads: usize, limit: Duration, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel::<()>();
    let t = thread::Builder::new()
        .name("tcp-test-body".into())
        .spawn(move || {
            let core = IoCore::builder().threads(threads).build().expect("build core");
            let r = core.block_on(iocore::time::timeout(limit, body()));
            if r.is_err() {
                panic!("test body did not finish within {limit:?} (iocore timeout)");
            }
            let report = core.shutdown(Duration::from_secs(5));
            assert_eq!(report.leaked, 0, "tasks leaked at shutdown: {report:?}");
            let _ = tx.send(());
        })
        .expect("spawn test body thread");
    match rx.recv_timeout(limit + Duration::from_secs(15)) {
        Ok(()) => t.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(()) => unreachable!("body exited without reporting"),
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?} + 15 s: the runtime hangs")
        }
    }
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
impl_recv!(TcpStream, iocore::net::RecvHalf<'_>);

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

/// Deterministic, position-dependent bytes (so that reordering or loss is visible).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Number of open file descriptors of this process (entries of /proc/self/fd; the
/// directory handle used to list it is counted the same way every time).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// The open fds with what they point to, for failure messages.
pub fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            format!("{} -> {}", e.file_name().to_string_lossy(), target)
        })
        .collect();
    v.sort();
    v
}

/// Number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("read /proc/self/task").count()
}

/// Waits (polling, in real time) until `f` is true or `limit` passes; returns the last value.
pub fn settle(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
