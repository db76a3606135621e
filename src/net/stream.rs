//! `TcpStream`: async send/recv, `post_send`, options, and its halves.

use crate::io::{Direction, Registration, Waiter};
use crate::net::addr::{resolve, ToSocketAddrs};
use crate::net::post::{ensure_flusher, PostError, PostQueue, PostSender};
use crate::sched::Shared;
use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use socket2::{Domain, SockRef, Type};
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most buffers one `readv`/`writev` takes (Linux `IOV_MAX`); a vectored operation with
/// more transfers from the first ones, like a short transfer.
const IOV_MAX: usize = 1024;

/// One connected socket, shared by its owner(s) (stream or halves) and its flusher.
pub(crate) struct Socket {
    /// Declared first so it drops first: deregistered before the fd closes.
    pub(crate) reg: Registration,
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) post: Arc<PostQueue>,
    owners: AtomicUsize,
    /// `shutdown` sent FIN.
    fin_sent: AtomicBool,
    /// The peer, for error messages (known once connected).
    peer: OnceLock<SocketAddr>,
}

impl Socket {
    fn new(stream: mio::net::TcpStream, core: Arc<Shared>) -> io::Result<Arc<Socket>> {
        let reg = Registration::new(core, stream.as_raw_fd())?;
        crate::trace::debug_event!(fd = stream.as_raw_fd(), "socket open");
        let peer = OnceLock::new();
        if let Ok(p) = stream.peer_addr() {
            let _ = peer.set(p);
        }
        Ok(Arc::new(Socket {
            reg,
            stream,
            post: Arc::new(PostQueue::new()),
            owners: AtomicUsize::new(0),
            fin_sent: AtomicBool::new(false),
            peer,
        }))
    }

    pub(crate) fn owner_gone(&self) -> bool {
        self.owners.load(Acquire) == 0
    }

    pub(crate) fn linger(&self) -> Option<Duration> {
        SockRef::from(&self.stream).linger().ok().flatten()
    }

    /// `op to/from PEER: error`, keeping the error kind.
    pub(crate) fn context_error(&self, op: &str, e: io::Error) -> io::Error {
        let dir = if op == "recv" { "from" } else { "to" };
        match self.peer.get() {
            Some(p) => io::Error::new(e.kind(), format!("{op} {dir} {p}: {e}")),
            None => io::Error::new(e.kind(), format!("{op}: {e}")),
        }
    }

    /// One receive. `waiter`: the `async` caller's place in the read waiters (`None`: the
    /// poll-based slot, for the `AsyncRead` impls).
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        self.reg
            .poll_transfer(cx, Direction::Read, want, waiter, || (&self.stream).read(buf))
            .map_err(|e| self.context_error("recv", e))
    }

    /// `poll_recv` into memory that may be uninitialised (tokio's `ReadBuf`): `read(2)` is
    /// given the raw pointer, so no `&mut [u8]` over uninitialised bytes is ever formed.
    #[cfg(feature = "tokio")]
    fn poll_recv_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let fd = self.stream.as_raw_fd();
        let ptr = buf.as_mut_ptr().cast::<libc::c_void>();
        self.reg
            .poll_transfer(cx, Direction::Read, want, None, || {
                // SAFETY: `ptr` is valid for writes of `want` bytes for the whole call, and
                // `fd` is this socket's open descriptor.
                let n = unsafe { libc::read(fd, ptr, want) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .map_err(|e| self.context_error("recv", e))
    }

    fn poll_recv_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<usize>> {
        let n = bufs.len().min(IOV_MAX);
        let bufs = &mut bufs[..n];
        let want = bufs.iter().map(|b| b.len()).sum();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        self.reg
            .poll_transfer(cx, Direction::Read, want, waiter, || (&self.stream).read_vectored(bufs))
            .map_err(|e| self.context_error("recv", e))
    }

    fn check_open(&self) -> io::Result<()> {
        if let Some(e) = self.post.error() {
            return Err(e);
        }
        if self.post.is_closed() {
            return Err(self
                .context_error("send", io::Error::new(io::ErrorKind::NotConnected, "socket is shut down")));
        }
        Ok(())
    }

    /// One send: a direct write if nothing is queued, else the bytes queue behind the
    /// posted ones (and count as sent).
    fn poll_send_vectored(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<usize>> {
        self.check_open()?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if self.post.try_lock_owner() {
            let bufs = &bufs[..bufs.len().min(IOV_MAX)];
            let want = bufs.iter().map(|b| b.len()).sum();
            let r = self
                .reg
                .poll_transfer(cx, Direction::Write, want, waiter, || (&self.stream).write_vectored(bufs));
            self.post.unlock_owner();
            return r.map_err(|e| self.context_error("send", e));
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let mut data = Vec::with_capacity(len);
        for b in bufs {
            data.extend_from_slice(b);
        }
        ensure_flusher(self);
        match self.post.post(Bytes::from(data), true) {
            Ok(()) => Poll::Ready(Ok(len)),
            Err(PostError::WouldExceed(_)) => match self.post.poll_space(cx) {
                // Space appeared meanwhile: try again on the next poll.
                Poll::Ready(()) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            },
            Err(PostError::Closed(_)) => Poll::Ready(self.check_open().map(|()| 0)),
        }
    }

    fn poll_send(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<usize>> {
        self.poll_send_vectored(cx, &[IoSlice::new(buf)], waiter)
    }

    /// Sends all of `buf` as one contiguous run: posted data cannot interleave with it.
    async fn send_all(self: &Arc<Self>, mut buf: &[u8]) -> io::Result<()> {
        self.check_open()?;
        if !self.post.try_lock_owner() {
            ensure_flusher(self);
            let data = Bytes::copy_from_slice(buf);
            return match self.post.post(data, false) {
                Ok(()) => Ok(()),
                Err(_) => self.check_open(),
            };
        }
        struct Unlock<'a>(&'a PostQueue);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.unlock_owner();
            }
        }
        let _unlock = Unlock(&self.post);
        let mut waiter = pin!(self.reg.waiter(Direction::Write));
        while !buf.is_empty() {
            let n = poll_fn(|cx| {
                self.reg.poll_transfer(cx, Direction::Write, buf.len(), Some(waiter.as_mut()), || {
                    (&self.stream).write(buf)
                })
            })
            .await
            .map_err(|e| self.context_error("send", e))?;
            if n == 0 {
                return Err(self.context_error("send", io::ErrorKind::WriteZero.into()));
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.post.error() {
            return Poll::Ready(Err(e));
        }
        self.post.poll_drained(cx).map(|()| self.post.error().map_or(Ok(()), Err))
    }

    /// Refuses new posts (accepted ones are still written), waits until everything is
    /// handed to the kernel, then sends FIN once.
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fin_sent.load(Acquire) {
            return Poll::Ready(Ok(()));
        }
        self.post.close(None);
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if self.fin_sent.swap(true, AcqRel) {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(self.stream.shutdown(Shutdown::Write).map_err(|e| self.context_error("shutdown", e)))
    }

    fn try_io<R>(&self, dir: Direction, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let ready = self.reg.io.snapshot(dir);
        let r = op();
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.reg.io.clear(ready);
        }
        r
    }
}

/// One owner of a socket (the stream, or one of its owned halves). When the last owner
/// drops, the flusher writes what is still queued and then the socket closes.
struct Owner(Arc<Socket>);

impl Owner {
    fn new(sock: Arc<Socket>) -> Owner {
        sock.owners.fetch_add(1, AcqRel);
        Owner(sock)
    }
}

impl Clone for Owner {
    fn clone(&self) -> Owner {
        Owner::new(self.0.clone())
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if self.0.owners.fetch_sub(1, AcqRel) == 1 {
            self.0.post.wake_flusher();
        }
    }
}

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
/// Dropping the stream still delivers data already posted (bounded by the linger setting,
/// 30 s if none), then closes; [`abort`](Self::abort) closes at once with a reset.
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
    owner: Owner,
}

impl TcpStream {
    pub(crate) fn from_mio(stream: mio::net::TcpStream, core: Arc<Shared>) -> io::Result<TcpStream> {
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
        Self::from_mio(mio::net::TcpStream::from_std(stream), crate::sched::current_or_default_core())
    }

    /// Receives into several buffers with one `readv`.
    pub async fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let sock = self.sock();
        let mut waiter = pin!(sock.reg.waiter(Direction::Read));
        poll_fn(|cx| sock.poll_recv_vectored(cx, bufs, Some(waiter.as_mut()))).await
    }

    /// Receives without waiting: `WouldBlock` if nothing is there.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let s = self.sock();
        s.try_io(Direction::Read, || (&s.stream).read(buf))
    }

    /// Completes when the socket may be readable (then try [`try_recv`](Self::try_recv)).
    /// Any number of tasks may wait at once (on a shared `&TcpStream`); each is woken.
    pub async fn readable(&self) -> io::Result<()> {
        let sock = self.sock();
        let mut waiter = pin!(sock.reg.waiter(Direction::Read));
        poll_fn(|cx| sock.reg.poll_readiness(cx, Direction::Read, waiter.as_mut())).await;
        Ok(())
    }

    /// Sends several buffers with one `writev` (or queues them, as [`send`](Self::send)).
    pub async fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let sock = self.sock();
        let mut waiter = pin!(sock.reg.waiter(Direction::Write));
        poll_fn(|cx| sock.poll_send_vectored(cx, bufs, Some(waiter.as_mut()))).await
    }

    /// Sends without waiting: `WouldBlock` if the socket is full or posted data is being
    /// flushed (this would overtake it).
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        let s = self.sock();
        s.check_open()?;
        if !s.post.try_lock_owner() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = s.try_io(Direction::Write, || (&s.stream).write(buf));
        s.post.unlock_owner();
        r
    }

    /// Completes when the owner may write: posted data has been handed to the kernel (so
    /// a [`try_send`](Self::try_send) would not overtake it) and the socket may be
    /// writable. Any number of tasks may wait at once; each is woken.
    pub async fn writable(&self) -> io::Result<()> {
        let sock = self.sock();
        let mut waiter = pin!(sock.reg.waiter(Direction::Write));
        poll_fn(|cx| {
            std::task::ready!(sock.post.poll_owner_turn(cx));
            sock.reg.poll_readiness(cx, Direction::Write, waiter.as_mut())
        })
        .await;
        Ok(())
    }

    /// Closes at once with a reset (RST), discarding queued data.
    pub fn abort(self) {
        let s = self.sock();
        let _ = SockRef::from(&s.stream).set_linger(Some(Duration::ZERO));
        s.post.close(Some(io::Error::new(io::ErrorKind::ConnectionAborted, "socket was aborted")));
    }

    /// Sets the high-water mark of posted bytes (default 4 MiB) above which `post_send`
    /// returns [`PostError::WouldExceed`].
    pub fn set_post_high_water(&self, bytes: usize) {
        self.sock().post.set_high_water(bytes);
    }

    /// Splits into owned halves, usable from different tasks.
    pub fn into_split(self) -> (OwnedRecvHalf, OwnedSendHalf) {
        let send = OwnedSendHalf { owner: self.owner.clone() };
        (OwnedRecvHalf { owner: self.owner }, send)
    }

    /// Splits into borrowed halves.
    pub fn split(&mut self) -> (RecvHalf<'_>, SendHalf<'_>) {
        (RecvHalf { sock: self.sock() }, SendHalf { sock: self.sock() })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().stream.peer_addr()
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
        TcpStream::from_mio(mio::net::TcpStream::from_std(std), crate::sched::current_or_default_core())?;
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
    let _ = sock.peer.set(addr);
    Ok(stream)
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

macro_rules! async_io_impls {
    (read $t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_recv(cx, buf, None)
            }
            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_recv_vectored(cx, bufs, None)
            }
        }

        /// With the `tokio` feature: tokio's read trait, for tokio-util codecs and hyper.
        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                // SAFETY: the unfilled part is only written by `read(2)`, and only the `n`
                // bytes it reports are marked initialised.
                let n = std::task::ready!(self.sock().poll_recv_uninit(cx, unsafe { buf.unfilled_mut() }))?;
                // SAFETY: `read(2)` initialised the first `n` unfilled bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    };
    (write $t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.sock().poll_send(cx, buf, None)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_send_vectored(cx, bufs, None)
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_flush(cx)
            }
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_shutdown(cx)
            }
        }

        /// With the `tokio` feature: tokio's write trait, for tokio-util codecs and hyper.
        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.sock().poll_send(cx, buf, None)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_send_vectored(cx, bufs, None)
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_flush(cx)
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_shutdown(cx)
            }
        }
    };
}

/// The receiving half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedRecvHalf {
    owner: Owner,
}

/// The sending half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedSendHalf {
    owner: Owner,
}

/// A borrowed receiving half, from [`TcpStream::split`].
#[derive(Debug)]
pub struct RecvHalf<'a> {
    sock: &'a Arc<Socket>,
}

/// A borrowed sending half, from [`TcpStream::split`].
#[derive(Debug)]
pub struct SendHalf<'a> {
    sock: &'a Arc<Socket>,
}

/// The halves given to [`reunite`] were not split from the same stream; they are inside.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedRecvHalf, pub OwnedSendHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

/// Puts owned halves back together.
pub fn reunite(recv: OwnedRecvHalf, send: OwnedSendHalf) -> Result<TcpStream, ReuniteError> {
    if Arc::ptr_eq(&recv.owner.0, &send.owner.0) {
        drop(send);
        Ok(TcpStream { owner: recv.owner })
    } else {
        Err(ReuniteError(recv, send))
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("peer", &self.0.peer.get()).finish()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        crate::trace::debug_event!(fd = self.stream.as_raw_fd(), "socket close");
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("peer", &self.peer.get()).finish()
    }
}

/// Reaches the socket behind a stream or a half.
trait AsSocket {
    fn sock(&self) -> &Arc<Socket>;
}

macro_rules! as_socket {
    ($t:ty, $s:ident => $get:expr) => {
        impl AsSocket for $t {
            fn sock(&self) -> &Arc<Socket> {
                let $s = self;
                $get
            }
        }
    };
}

macro_rules! recv_half {
    ($t:ty) => {
        impl $t {
            /// Receives into `buf`; `Ok(0)` is an orderly end of stream (or an empty `buf`).
            pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
                let sock = self.sock();
                let mut waiter = pin!(sock.reg.waiter(Direction::Read));
                poll_fn(|cx| sock.poll_recv(cx, buf, Some(waiter.as_mut()))).await
            }
        }
        async_io_impls!(read $t);
    };
}

macro_rules! send_half {
    ($t:ty) => {
        impl $t {
            /// Sends some of `buf` and returns how much: written directly when nothing is
            /// queued, otherwise queued (all of it) behind the posted data.
            pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
                let sock = self.sock();
                let mut waiter = pin!(sock.reg.waiter(Direction::Write));
                poll_fn(|cx| sock.poll_send(cx, buf, Some(waiter.as_mut()))).await
            }
            /// Sends all of `buf` as one contiguous run (posted data does not interleave).
            pub async fn send_all(&self, buf: &[u8]) -> io::Result<()> {
                self.sock().send_all(buf).await
            }
            /// Completes when every byte queued so far (posted or sent) has been handed to
            /// the kernel.
            pub async fn flush(&self) -> io::Result<()> {
                poll_fn(|cx| self.sock().poll_flush(cx)).await
            }
            /// Graceful close of the sending side: flushes, then sends FIN. Later sends and
            /// posts fail; receiving still works. Calling it twice is harmless.
            pub async fn shutdown(&self) -> io::Result<()> {
                poll_fn(|cx| self.sock().poll_shutdown(cx)).await
            }
            /// Queues `data` to be sent by the core, without awaiting; see
            /// [`PostSender::post_send`].
            pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
                ensure_flusher(self.sock());
                self.sock().post.post(data.into(), true)
            }
            /// A thread-safe [`PostSender`] for this socket.
            pub fn sender(&self) -> PostSender {
                ensure_flusher(self.sock());
                PostSender { queue: self.sock().post.clone() }
            }
        }
        async_io_impls!(write $t);
    };
}

as_socket!(TcpStream, s => &s.owner.0);
as_socket!(OwnedRecvHalf, s => &s.owner.0);
as_socket!(OwnedSendHalf, s => &s.owner.0);
as_socket!(RecvHalf<'_>, s => s.sock);
as_socket!(SendHalf<'_>, s => s.sock);
recv_half!(TcpStream);
send_half!(TcpStream);
recv_half!(OwnedRecvHalf);
send_half!(OwnedSendHalf);
recv_half!(RecvHalf<'_>);
send_half!(SendHalf<'_>);
