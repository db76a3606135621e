//! What the benchmark needs from a runtime, as two traits, so that one connection loop, one
//! accept loop and one connect loop serve every runtime: `BenchStream` (the two socket
//! calls per message) and `BenchRuntime` (listen, accept, connect, spawn, sleep). Static
//! dispatch onto each runtime's own calls: no adapter in the path.

use crate::smol_rt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) trait BenchStream {
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
    fn send_all(&mut self, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

/// One runtime's sockets, tasks and timer, called from inside that runtime.
pub(crate) trait BenchRuntime: 'static {
    type Stream: BenchStream + Send + 'static;
    type Listener;
    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>>;
    fn accept(l: &Self::Listener) -> impl Future<Output = io::Result<Self::Stream>>;
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn set_nodelay(s: &Self::Stream) -> io::Result<()>;
    /// Spawns a task; the returned future waits for it (dropping it detaches the task).
    fn spawn(f: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> + Send + 'static;
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
    /// `f`, or `None` if it takes longer than `d` (the runtime's own `timeout`).
    fn timeout<F: Future + Send>(d: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send;
}

impl BenchStream for iocore::net::TcpStream {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        iocore::net::TcpStream::recv(self, buf).await
    }
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        iocore::net::TcpStream::send_all(self, buf).await
    }
}

impl BenchStream for tokio::net::TcpStream {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf).await
    }
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, buf).await
    }
}

impl BenchStream for async_io::Async<std::net::TcpStream> {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        futures_lite::AsyncReadExt::read(self, buf).await
    }
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        futures_lite::AsyncWriteExt::write_all(self, buf).await
    }
}

pub(crate) struct Iocore;

impl BenchRuntime for Iocore {
    type Stream = iocore::net::TcpStream;
    type Listener = iocore::net::TcpListener;
    async fn bind(addr: SocketAddr) -> io::Result<Self::Listener> {
        iocore::net::TcpListener::bind(addr).await
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        iocore::net::TcpStream::connect(addr)
    }
    fn set_nodelay(s: &Self::Stream) -> io::Result<()> {
        s.set_nodelay(true)
    }
    fn spawn(f: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> + Send + 'static {
        let h = iocore::spawn(f);
        async move { h.await.expect("benchmark task") }
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        iocore::time::sleep(d)
    }
    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        iocore::time::timeout(d, f).await.ok()
    }
}

pub(crate) struct Tokio;

impl BenchRuntime for Tokio {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    async fn bind(addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        tokio::net::TcpStream::connect(addr)
    }
    fn set_nodelay(s: &Self::Stream) -> io::Result<()> {
        s.set_nodelay(true)
    }
    fn spawn(f: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> + Send + 'static {
        let h = tokio::spawn(f);
        async move { h.await.expect("benchmark task") }
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        tokio::time::timeout(d, f).await.ok()
    }
}

/// smol: `async_io::Async` sockets on a `smol_rt::SmolRuntime`.
pub(crate) struct Smol;

impl BenchRuntime for Smol {
    type Stream = async_io::Async<std::net::TcpStream>;
    type Listener = async_io::Async<std::net::TcpListener>;
    async fn bind(addr: SocketAddr) -> io::Result<Self::Listener> {
        async_io::Async::<std::net::TcpListener>::bind(addr)
    }
    async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
        Ok(l.accept().await?.0)
    }
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        async_io::Async::<std::net::TcpStream>::connect(addr)
    }
    fn set_nodelay(s: &Self::Stream) -> io::Result<()> {
        s.get_ref().set_nodelay(true)
    }
    fn spawn(f: impl Future<Output = ()> + Send + 'static) -> impl Future<Output = ()> + Send + 'static {
        smol_rt::spawn(f)
    }
    async fn sleep(d: Duration) {
        async_io::Timer::after(d).await;
    }
    async fn timeout<F: Future + Send>(d: Duration, f: F) -> Option<F::Output> {
        // smol's way: race the future against a timer.
        futures_lite::future::or(async { Some(f.await) }, async {
            async_io::Timer::after(d).await;
            None
        })
        .await
    }
}
