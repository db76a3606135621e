//! Unix-domain stream sockets: [`UnixListener`] and [`UnixStream`].
//!
//! A `UnixStream` is served by the same socket core as a `TcpStream` (`net::socket`), so
//! it has the same API: `async` send/recv (vectored too), `post_send` and [`PostSender`]
//! from any thread, split halves, `futures::io` traits (and tokio's with the `tokio`
//! feature). Only addresses differ: paths, or unnamed. Errors name the path.
//!
//! [`PostSender`]: crate::net::PostSender

use crate::io::{Registration, Waiter};
use crate::net::accept::Acceptor;
use crate::net::socket::{Conn, Owner, Peer, Socket};
use crate::runtime::Handle;
use futures::Stream;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// `op PATH: error`, keeping the error kind.
fn at_path(op: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// A Unix-domain stream connection on an iocore core: the [`TcpStream`] API over a local
/// socket.
///
/// ```no_run
/// use iocore::net::UnixStream;
/// # async fn demo() -> std::io::Result<()> {
/// let stream = UnixStream::connect("/run/app.sock").await?;
/// stream.send_all(b"ping\n").await?;
/// let mut buf = [0u8; 64];
/// let n = stream.recv(&mut buf).await?;
/// println!("got {:?}", &buf[..n]);
/// # Ok(()) }
/// ```
///
/// [`TcpStream`]: crate::net::TcpStream
pub struct UnixStream {
    pub(crate) owner: Owner,
}

impl UnixStream {
    fn from_mio(stream: mio::net::UnixStream, core: Handle, peer: Option<Peer>) -> io::Result<UnixStream> {
        let sock = Socket::new(Conn::Unix(stream), core, peer)?;
        Ok(UnixStream { owner: Owner::new(sock) })
    }

    /// Connects to the socket at `path`. Errors name the path. While the listener's
    /// backlog is full the connect waits for room, as a blocking `connect` does (the
    /// kernel reports no readiness for that, so it tries again after 1 ms, then after
    /// longer pauses up to 50 ms): put a `timeout` around it to bound the wait.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let connect = async {
            let mut pause = std::time::Duration::from_millis(1);
            let stream = loop {
                match mio::net::UnixStream::connect(path) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        crate::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_millis(50));
                    }
                    r => break r?,
                }
            };
            let peer = Peer::path(Arc::new(path.to_path_buf()));
            let stream = Self::from_mio(stream, crate::runtime::current_or_default()?, Some(peer))?;
            stream.sock().connected().await?;
            Ok(stream)
        };
        connect.await.map_err(|e| at_path("connect to", path, e))
    }

    /// A connected pair of streams (`socketpair`), both on the current core (or the
    /// default core outside any core).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) =
            mio::net::UnixStream::pair().map_err(|e| io::Error::new(e.kind(), format!("socketpair: {e}")))?;
        let core = crate::runtime::current_or_default()?;
        Ok((Self::from_mio(a, core.clone(), None)?, Self::from_mio(b, core, None)?))
    }

    /// Wraps a connected standard-library stream (made non-blocking) on the current core
    /// (or the default core outside any core).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Self::from_mio(mio::net::UnixStream::from_std(stream), crate::runtime::current_or_default()?, None)
    }

    /// Turns the stream into a standard-library one (in blocking mode) for the same
    /// connection, leaving the core. Fails (handing nothing over, the stream is dropped)
    /// when the socket is still shared — a `PostSender`, the other half, or posted data
    /// still queued: call [`flush`](Self::flush) and drop the senders first.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.sock().detach()
    }

    /// The remote address (often unnamed: only sockets bound to a path have one).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.unix().peer_addr().map_err(|e| io::Error::new(e.kind(), format!("peer_addr: {e}")))
    }

    /// The local address (unnamed unless bound to a path).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.unix().local_addr().map_err(|e| io::Error::new(e.kind(), format!("local_addr: {e}")))
    }

    fn unix(&self) -> &mio::net::UnixStream {
        match &self.sock().stream {
            Conn::Unix(s) => s,
            // A `UnixStream` is only ever made over a `Conn::Unix` (see `from_mio`).
            Conn::Tcp(_) => unreachable!("a UnixStream over a TCP socket"),
        }
    }
}

crate::net::stream_ops::stream_ops!(UnixStream, unix = true);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

/// A Unix-domain listening socket on an iocore core.
///
/// Binding fails if the path exists (remove a stale socket file first); the file stays
/// after the listener is dropped, as with the standard library.
///
/// ```no_run
/// use iocore::net::UnixListener;
/// # async fn demo() -> std::io::Result<()> {
/// let listener = UnixListener::bind("/tmp/echo.sock")?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     iocore::spawn(async move {
///         let mut buf = [0u8; 4096];
///         while let Ok(n @ 1..) = stream.recv(&mut buf).await {
///             if stream.send_all(&buf[..n]).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # }
/// ```
pub struct UnixListener {
    acceptor: Acceptor,
    /// The core accepted streams live on.
    core: Handle,
    listener: mio::net::UnixListener,
    /// The bound path, naming accepted streams' peer in error messages.
    path: Arc<PathBuf>,
}

impl UnixListener {
    /// Binds to `path` and listens, on the current core (or the default core outside
    /// any core). Errors name the path.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let listener = mio::net::UnixListener::bind(path).map_err(|e| at_path("bind to", path, e))?;
        Self::from_mio(listener, Arc::new(path.to_path_buf()))
    }

    fn from_mio(listener: mio::net::UnixListener, path: Arc<PathBuf>) -> io::Result<UnixListener> {
        let core = crate::runtime::current_or_default()?;
        let reg = Registration::new(core.clone(), listener.as_raw_fd())?;
        Ok(UnixListener { acceptor: Acceptor::new(reg), core, listener, path })
    }

    /// Wraps a bound standard-library listener (made non-blocking).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        let path = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf));
        let path = Arc::new(path.unwrap_or_else(|| PathBuf::from("(unnamed)")));
        Self::from_mio(mio::net::UnixListener::from_std(listener), path)
    }

    /// Turns the listener into a standard-library one (in blocking mode) on the same
    /// socket, leaving the core.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        crate::net::socket::dup_blocking(self.listener.as_raw_fd())
    }

    /// Accepts a connection. The stream lives on the listener's core. Any number of tasks
    /// may accept on one listener at once; each is woken. Fair and quiet like
    /// [`TcpListener::accept`](crate::net::TcpListener::accept): a budget's worth per turn, a
    /// back-off after resource errors (which are returned as the OS reported them).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self.acceptor.accept(|| self.listener.accept()).await?;
        Ok((self.stream(stream)?, addr))
    }

    /// Polls for a connection. Only the last task to poll is woken when a connection
    /// arrives (one waker slot): for several accepting tasks, use [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.poll_accept_as(cx, None)
    }

    /// `poll_accept` as a waiter of its own (`None`: the one waker slot).
    fn poll_accept_as(
        &self,
        cx: &mut Context<'_>,
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (stream, addr) =
            std::task::ready!(self.acceptor.poll_accept(cx, waiter, || self.listener.accept()))?;
        Poll::Ready(self.stream(stream).map(|s| (s, addr)))
    }

    /// An accepted stream, on the listener's core, its peer named by the listener's path.
    fn stream(&self, stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        UnixStream::from_mio(stream, self.core.clone(), Some(Peer::path(self.path.clone())))
    }

    /// The local address (the bound path).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| at_path("local_addr of", &self.path, e))
    }

    /// A `Stream` of accepted connections (errors included; it never ends). Any number of
    /// tasks may each poll a stream of their own (or `accept`) on one listener; each is
    /// woken.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self, waiter: self.acceptor.boxed_waiter() }
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener").field("path", &self.path).finish()
    }
}

/// The stream of [`UnixListener::incoming`].
#[must_use = "streams do nothing unless polled"]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
    /// Its place among the listener's waiters: any number of streams (and `accept`s) may
    /// wait at once; each is woken.
    waiter: Pin<Box<Waiter<'a>>>,
}

impl fmt::Debug for UnixIncoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixIncoming").field("listener", self.listener).finish_non_exhaustive()
    }
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let listener = this.listener;
        listener.poll_accept_as(cx, Some(this.waiter.as_mut())).map(|r| Some(r.map(|(s, _)| s)))
    }
}
