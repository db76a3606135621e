//! [`TcpStream`]: connecting, the owner's send/recv API, `post_send`, socket options.
//!
//! Every operation delegates to the socket core (`net::socket`); the halves (`split`)
//! offer the same operations for one direction each.

use crate::io::Direction;
use crate::net::addr::{resolve, ToSocketAddrs};
use crate::net::post::{PostError, PostSender};
use crate::net::socket::{Owner, Socket};
use crate::net::split::{Hold, OwnedRecvHalf, OwnedSendHalf, RecvHalf, SendHalf};
use crate::runtime::Handle;
use bytes::Bytes;
use socket2::{Domain, SockRef, Type};
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

/// Options for [`TcpStream::connect_with`].
#[derive(Debug, Default)]
pub struct ConnectOptions {
    delay: Option<Duration>,
    timeout: Option<Duration>,
    nodelay: bool,
    keepalive: Option<Duration>,
    socket: Option<socket2::Socket>,
}

impl ConnectOptions {
    /// Default options: no delay, no timeout, Nagle on, no keepalive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Do not start before `delay` has passed (for reconnect back-off).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Give up after `timeout` (resolution and all attempts), with `TimedOut`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Set `TCP_NODELAY` on the connected socket.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Enable TCP keepalive with this idle time.
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// Connect with this pre-configured socket (used for the first address tried; it is
    /// switched to non-blocking mode).
    pub fn socket(mut self, socket: socket2::Socket) -> Self {
        self.socket = Some(socket);
        self
    }
}

/// A TCP connection on an iocore core.
///
/// Receive with [`recv`](Self::recv) (or `futures::io::AsyncRead`), send with
/// [`send`](Self::send)/[`send_all`](Self::send_all) (or `AsyncWrite`), or hand a
/// [`PostSender`] to any thread with [`sender`](Self::sender) and
/// [`post_send`](Self::post_send) bytes without awaiting. Everything posted before an
/// owner's `send` leaves before it.
///
/// Dropping the stream (with its halves) still delivers data already posted (bounded by
/// the linger setting, 30 s if none), then closes; posts after the drop are refused with
/// [`PostError::Closed`]. [`abort`](Self::abort) closes at once with a reset.
///
/// ```no_run
/// use iocore::net::TcpStream;
/// # async fn demo() -> std::io::Result<()> {
/// let stream = TcpStream::connect("127.0.0.1:7000").await?;
/// stream.send_all(b"hello").await?;
/// let mut buf = [0u8; 1024];
/// let n = stream.recv(&mut buf).await?;
/// println!("got {:?}", &buf[..n]);
/// # Ok(()) }
/// ```
pub struct TcpStream {
    pub(crate) owner: Owner,
}

impl TcpStream {
    pub(crate) fn from_mio(stream: mio::net::TcpStream, core: Handle) -> io::Result<TcpStream> {
        Ok(TcpStream { owner: Owner::new(Socket::new(stream, core)?) })
    }

    /// Connects to `addr`, trying every resolved address in order. Host names are resolved
    /// off the workers. Errors name the address(es) tried.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        Self::connect_with(addr, ConnectOptions::new()).await
    }

    /// Connects with [`ConnectOptions`] (delay, timeout, nodelay, keepalive, socket).
    pub async fn connect_with(addr: impl ToSocketAddrs, mut opts: ConnectOptions) -> io::Result<TcpStream> {
        let target = addr.to_target();
        if let Some(delay) = opts.delay {
            crate::time::sleep(delay).await;
        }
        let timeout = opts.timeout;
        let attempt = async {
            let addrs = resolve(&target).await?;
            let mut last = None;
            for a in &addrs {
                match connect_one(*a, &mut opts).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            let e = last.expect("at least one address");
            let tried = if addrs.len() == 1 {
                addrs[0].to_string()
            } else {
                format!(
                    "{target} (tried {})",
                    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            Err(io::Error::new(e.kind(), format!("connect to {tried}: {e}")))
        };
        match timeout {
            None => attempt.await,
            Some(t) => crate::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {target}: timed out after {t:?}"),
                ))
            }),
        }
    }

    /// Wraps a connected standard-library stream (made non-blocking) on the current core
    /// (or the default core outside any core).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Self::from_mio(mio::net::TcpStream::from_std(stream), crate::runtime::current_or_default())
    }

    /// Turns the stream into a standard-library one (in blocking mode) for the same
    /// connection, leaving the core. Fails (handing nothing over, the stream is dropped)
    /// when the socket is still shared — a `PostSender`, the other half, or posted data
    /// still queued: call [`flush`](Self::flush) and drop the senders first.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let sock = self.sock();
        // Shared: the flusher (started by a post or `sender()`) holds the socket too.
        if Arc::strong_count(sock) > 1 || sock.post.queued_bytes() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "into_std: the stream is still shared (a PostSender, or posted data not yet sent)",
            ));
        }
        let std: std::net::TcpStream = dup_std(sock.stream.as_raw_fd())?;
        std.set_nonblocking(false)?;
        // Dropping `self` deregisters and closes iocore's descriptor; the duplicate stays.
        drop(self);
        Ok(std)
    }

    /// Receives into `buf`; `Ok(0)` is an orderly end of stream (or an empty `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock().recv(buf).await
    }

    /// Sends some of `buf` and returns how much: written directly when nothing is queued,
    /// otherwise queued (all of it) behind the posted data.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().send(buf).await
    }

    /// Sends all of `buf` as one contiguous run (posted data does not interleave).
    pub async fn send_all(&self, buf: &[u8]) -> io::Result<()> {
        self.sock().send_all(buf).await
    }

    /// Completes when every byte queued so far (posted or sent) has been handed to the
    /// kernel.
    pub async fn flush(&self) -> io::Result<()> {
        self.sock().flush().await
    }

    /// Graceful close of the sending side: flushes, then sends FIN. Later sends and posts
    /// fail; receiving still works. Calling it twice is harmless.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.sock().shutdown().await
    }

    /// Queues `data` to be sent by the core, without awaiting; see
    /// [`PostSender::post_send`].
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.sock().post_send(data.into())
    }

    /// A thread-safe [`PostSender`] for this socket.
    pub fn sender(&self) -> PostSender {
        self.sock().sender()
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        &self.owner.0
    }

    /// Receives into several buffers with one `readv`.
    pub async fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.sock().recv_vectored(bufs).await
    }

    /// Receives without waiting: `WouldBlock` if nothing is there.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock().try_recv(buf)
    }

    /// Completes when the socket may be readable (then try [`try_recv`](Self::try_recv)).
    /// Any number of tasks may wait at once (on a shared `&TcpStream`); each is woken.
    pub async fn readable(&self) -> io::Result<()> {
        self.sock().readable().await
    }

    /// Sends several buffers with one `writev` (or queues them, as [`send`](Self::send)).
    pub async fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.sock().send_vectored(bufs).await
    }

    /// Sends without waiting: `WouldBlock` if the socket is full or posted data is being
    /// flushed (this would overtake it).
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().try_send(buf)
    }

    /// Completes when the owner may write: posted data has been handed to the kernel (so
    /// a [`try_send`](Self::try_send) would not overtake it) and the socket may be
    /// writable. Any number of tasks may wait at once; each is woken.
    pub async fn writable(&self) -> io::Result<()> {
        self.sock().writable().await
    }

    /// Closes at once with a reset (RST), discarding queued data.
    pub fn abort(self) {
        self.sock().abort();
    }

    /// Sets the high-water mark of posted bytes (default 4 MiB) above which `post_send`
    /// returns [`PostError::WouldExceed`].
    pub fn set_post_high_water(&self, bytes: usize) {
        self.sock().post.set_high_water(bytes);
    }

    /// Splits into owned halves, usable from different tasks.
    pub fn into_split(self) -> (OwnedRecvHalf, OwnedSendHalf) {
        let send = SendHalf { hold: Hold::Owned(self.owner.clone()) };
        (RecvHalf { hold: Hold::Owned(self.owner) }, send)
    }

    /// Splits into borrowed halves.
    pub fn split(&mut self) -> (RecvHalf<'_>, SendHalf<'_>) {
        (RecvHalf { hold: Hold::Borrowed(self.sock()) }, SendHalf { hold: Hold::Borrowed(self.sock()) })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock().stream.local_addr()
    }

    fn opt(&self) -> SockRef<'_> {
        SockRef::from(&self.sock().stream)
    }

    /// Names the socket option in an error (`set_ttl: Invalid argument (os error 22)`).
    fn option<T>(&self, name: &str, r: io::Result<T>) -> io::Result<T> {
        r.map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.option("set_nodelay", self.opt().set_nodelay(nodelay))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.option("nodelay", self.opt().nodelay())
    }

    /// Enables TCP keepalive with this idle time, or disables it with `None`.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        match idle {
            None => self.option("set_keepalive", self.opt().set_keepalive(false)),
            Some(t) => self.option(
                "set_tcp_keepalive",
                self.opt().set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(t)),
            ),
        }
    }

    /// Sets `SO_LINGER`; it also bounds how long a dropped stream keeps flushing posts.
    /// The kernel counts linger in whole seconds: sub-second values round down (to 0 =
    /// close with a reset, discarding unsent data).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.option("set_linger", self.opt().set_linger(linger))
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.option("linger", self.opt().linger())
    }

    /// Sets the kernel receive buffer size.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.option("set_recv_buffer_size", self.opt().set_recv_buffer_size(bytes))
    }

    /// The kernel receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.option("recv_buffer_size", self.opt().recv_buffer_size())
    }

    /// Sets the kernel send buffer size.
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.option("set_send_buffer_size", self.opt().set_send_buffer_size(bytes))
    }

    /// The kernel send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.option("send_buffer_size", self.opt().send_buffer_size())
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.option("set_ttl", self.opt().set_ttl(ttl))
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.option("ttl", self.opt().ttl())
    }
}

async fn connect_one(addr: SocketAddr, opts: &mut ConnectOptions) -> io::Result<TcpStream> {
    let socket = match opts.socket.take() {
        Some(s) => s,
        None => socket2::Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?,
    };
    socket.set_nonblocking(true)?;
    if opts.nodelay {
        socket.set_nodelay(true)?;
    }
    if let Some(idle) = opts.keepalive {
        socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std: std::net::TcpStream = socket.into();
    let stream =
        TcpStream::from_mio(mio::net::TcpStream::from_std(std), crate::runtime::current_or_default())?;
    let sock = stream.sock().clone();
    let mut waiter = pin!(sock.reg.waiter(Direction::Write));
    poll_fn(|cx| {
        sock.reg.poll_io(cx, Direction::Write, Some(waiter.as_mut()), || {
            if let Some(e) = sock.stream.take_error()? {
                return Err(e);
            }
            match sock.stream.peer_addr() {
                Ok(_) => Ok(()),
                // Not connected yet: a spurious wakeup; wait for the next edge.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            }
        })
    })
    .await?;
    sock.set_peer(addr);
    Ok(stream)
}

/// A standard-library stream on a duplicate of `fd` (close-on-exec).
pub(crate) fn dup_std<T: FromRawFd>(fd: RawFd) -> io::Result<T> {
    // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` on a descriptor the caller keeps open.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    Ok(unsafe { T::from_raw_fd(dup) })
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock().stream.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd stays open as long as `self` (an owner of the socket) lives.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
