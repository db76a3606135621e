//! `TcpListener`: bind, accept, incoming.

use crate::io::{Registration, Waiter};
use crate::net::accept::Acceptor;
use crate::net::addr::{first_that_works, ToSocketAddrs};
use crate::net::TcpStream;
use crate::runtime::Handle;
use futures::Stream;
use socket2::{Domain, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Options for [`TcpListener::bind_with`].
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    backlog: Option<u32>,
    reuse_port: bool,
    ipv6_only: Option<bool>,
}

impl ListenOptions {
    /// Defaults: backlog = the system maximum, no `SO_REUSEPORT`, the system's IPv6-only default.
    pub fn new() -> Self {
        Self::default()
    }

    /// The accept backlog (capped by the kernel at `net.core.somaxconn`).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// Sets `SO_REUSEPORT`, so several listeners can share a port.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets `IPV6_V6ONLY` on an IPv6 listener.
    pub fn ipv6_only(mut self, on: bool) -> Self {
        self.ipv6_only = Some(on);
        self
    }
}

/// A TCP listening socket on an iocore core.
///
/// ```no_run
/// use iocore::net::TcpListener;
/// # async fn demo() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// println!("listening on {}", listener.local_addr()?);
/// loop {
///     let (stream, peer) = listener.accept().await?;
///     iocore::spawn(async move {
///         let mut buf = [0u8; 4096];
///         while let Ok(n @ 1..) = stream.recv(&mut buf).await {
///             if stream.send_all(&buf[..n]).await.is_err() {
///                 break;
///             }
///         }
///         drop(peer);
///     });
/// }
/// # }
/// ```
///
/// `accept` returns transient errors (`EMFILE`, `ENFILE`, `ECONNABORTED`, `ENOBUFS`) as
/// the OS reports them (check `raw_os_error()`), and the listener stays usable: log the
/// error and accept again. After an error that means the process is out of resources
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) the next accept backs off first (10 ms,
/// doubling while the error repeats, up to 320 ms), so such a loop neither spins nor
/// floods the log.
///
/// Accepting is fair: an accept is one operation of the task's cooperative budget, so a
/// turn of the accepting task admits what the kernel's backlog holds, up to 128
/// connections, and its next turn comes after the connections it spawned have run. Under
/// a connect flood each round adds at most that many connections; under load new clients
/// are still admitted by the hundred per round, not one.
pub struct TcpListener {
    acceptor: Acceptor,
    /// The core accepted streams live on.
    core: Handle,
    listener: mio::net::TcpListener,
    local: SocketAddr,
    /// Adopted with a long `SO_LINGER`, which accepted streams inherit (see
    /// `Socket::adopt_linger`).
    lingering: bool,
}

impl TcpListener {
    /// Binds to `addr` (the first resolved address that binds), with `SO_REUSEADDR`.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with(addr, ListenOptions::new()).await
    }

    /// Binds with [`ListenOptions`].
    pub async fn bind_with(addr: impl ToSocketAddrs, opts: ListenOptions) -> io::Result<TcpListener> {
        first_that_works(&addr.to_target(), "bind to", |a| Self::bind_one(a, &opts)).await
    }

    fn bind_one(addr: SocketAddr, opts: &ListenOptions) -> io::Result<TcpListener> {
        let socket = socket2::Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
        socket.set_nonblocking(true)?;
        socket.set_reuse_address(true)?;
        if opts.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if let (Some(v6only), SocketAddr::V6(_)) = (opts.ipv6_only, addr) {
            socket.set_only_v6(v6only)?;
        }
        socket.bind(&addr.into())?;
        let backlog = opts.backlog.map_or(i32::MAX, |b| b.min(i32::MAX as u32) as i32);
        socket.listen(backlog)?;
        let std: std::net::TcpListener = socket.into();
        Self::from_mio(mio::net::TcpListener::from_std(std))
    }

    fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        let local = listener.local_addr()?;
        let core = crate::runtime::current_or_default()?;
        let reg = Registration::new(core.clone(), listener.as_raw_fd())?;
        Ok(TcpListener { acceptor: Acceptor::new(reg), core, listener, local, lingering: false })
    }

    /// Wraps a bound standard-library listener (made non-blocking).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let lingering =
            crate::net::socket::long_linger(socket2::SockRef::from(&listener).linger().ok().flatten());
        let mut listener = Self::from_mio(mio::net::TcpListener::from_std(listener))?;
        listener.lingering = lingering;
        Ok(listener)
    }

    /// An accepted connection as a stream on the listener's core.
    fn adopt(&self, stream: mio::net::TcpStream, peer: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_mio(stream, self.core.clone(), Some(peer))?;
        if self.lingering {
            stream.sock().adopt_linger();
        }
        Ok(stream)
    }

    /// Turns the listener into a standard-library one (in blocking mode) on the same
    /// socket, leaving the core.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        crate::net::socket::dup_blocking(self.listener.as_raw_fd())
    }

    /// Accepts a connection. The stream lives on the listener's core.
    /// Any number of tasks may accept on one listener at once; each is woken.
    ///
    /// Fair and quiet by default (see the type's docs): up to a budget's worth of accepts
    /// per turn of the accepting task, and a back-off after resource errors.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.acceptor.accept(|| self.listener.accept()).await?;
        Ok((self.adopt(stream, peer)?, peer))
    }

    /// Polls for a connection. Only the last task to poll is woken when a connection
    /// arrives (one waker slot): for several accepting tasks, use [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.poll_accept_as(cx, None)
    }

    /// `poll_accept` as a waiter of its own (`None`: the one waker slot).
    fn poll_accept_as(
        &self,
        cx: &mut Context<'_>,
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, peer) =
            std::task::ready!(self.acceptor.poll_accept(cx, waiter, || self.listener.accept()))?;
        Poll::Ready(self.adopt(stream, peer).map(|s| (s, peer)))
    }

    /// The local address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// A `Stream` of accepted connections (errors included; it never ends). Any number of
    /// tasks may each poll a stream of their own (or `accept`) on one listener; each is
    /// woken.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self, waiter: self.acceptor.boxed_waiter() }
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd stays open as long as `self` lives.
        unsafe { BorrowedFd::borrow_raw(self.listener.as_raw_fd()) }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.local).finish()
    }
}

/// The stream of [`TcpListener::incoming`].
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    /// Its place among the listener's waiters: any number of streams (and `accept`s) may
    /// wait at once; each is woken.
    waiter: Pin<Box<Waiter<'a>>>,
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").field("listener", self.listener).finish_non_exhaustive()
    }
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let listener = this.listener;
        listener.poll_accept_as(cx, Some(this.waiter.as_mut())).map(|r| Some(r.map(|(s, _)| s)))
    }
}
