//! [`UdpSocket`], and [`DatagramSender`]: datagrams posted from any thread.
//!
//! The owner sends and receives with `async` methods like a stream's, one datagram per
//! call. Any thread may also queue datagrams with `post_send_to` (or `post_send` once
//! connected): the same post queue as a stream's, holding datagrams instead of bytes, with
//! datagram boundaries kept, per-thread order kept, the same high-water backpressure, and
//! a flusher task on the socket's core that sends them. A datagram is counted against the
//! high-water mark as its payload plus [`DATAGRAM_OVERHEAD`] bytes, so empty datagrams
//! count too.
//!
//! UDP is unreliable, and so is the kernel's side of sending it: a posted datagram the
//! kernel refuses (no route, port unreachable after a `connect`, a firewall, too large for
//! the path) is dropped and counted ([`DatagramSender::failed`]) instead of failing the
//! queue; the owner's own `send_to` returns such errors.
//!
//! A received datagram larger than the buffer is reported as an `InvalidData` error
//! naming both sizes (the kernel has already discarded the excess); a 65,536-byte buffer
//! never truncates.

use crate::io::{Direction, RegisteredIo, Registration, ScheduledIo, Waiter};
use crate::net::addr::{first_that_works, ToSocketAddrs};
use crate::net::post::{ensure_flusher, Item, Outlet, PostError, PostQueue, PostSender, SocketControl};
use crate::runtime::Handle;
use crate::sync::lock;
use crate::util::wait_list::WaitKey;
use bytes::Bytes;
use socket2::SockRef;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// What a queued datagram counts against the high-water mark beyond its payload (its
/// destination and bookkeeping).
pub const DATAGRAM_OVERHEAD: usize = 32;

/// The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP header bytes).
const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6 without jumbograms (65,535 − 8 UDP header bytes).
const MAX_PAYLOAD_V6: usize = 65_527;

/// One queued datagram: its payload and, unless the socket is connected, where it goes.
/// It only names the item type of a [`DatagramSender`]; datagrams are posted with
/// [`DatagramSender::post_send_to`] and friends.
#[derive(Debug)]
pub struct Datagram {
    to: Option<SocketAddr>,
    data: Bytes,
}

impl Item for Datagram {
    fn len(&self) -> usize {
        self.data.len() + DATAGRAM_OVERHEAD
    }
    fn into_bytes(self) -> Bytes {
        self.data
    }
    fn advance(&mut self, _n: usize) {
        // A datagram leaves whole or not at all: the flusher reports whole lengths.
    }
}

/// A handle that posts datagrams on a [`UdpSocket`] from any thread: a [`PostSender`]
/// whose items are datagrams (`Clone + Send + Sync + 'static`).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let socket = iocore::net::UdpSocket::bind("127.0.0.1:0").await?;
/// let sender = socket.sender();
/// let to: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
/// std::thread::spawn(move || {
///     for i in 0..10u8 {
///         sender.post_send_to(vec![i; 100], to).expect("socket closed");
///     }
/// });
/// # Ok(()) }
/// ```
pub type DatagramSender = PostSender<Datagram>;

impl PostSender<Datagram> {
    /// Queues one datagram to `to`, without awaiting. Datagrams posted by one thread leave
    /// in order; each stays one datagram.
    ///
    /// Errors: [`PostError::TooLarge`] for a payload no UDP datagram can carry,
    /// [`PostError::WouldExceed`] at the high-water mark (wait for
    /// [`ready`](Self::ready)), [`PostError::Closed`] once the socket is closed.
    pub fn post_send_to(&self, data: impl Into<Bytes>, to: SocketAddr) -> Result<(), PostError> {
        self.queue.post(checked(data.into(), Some(to))?, true)
    }

    /// Queues one datagram to the connected peer (see
    /// [`UdpSocket::connect`]); otherwise as [`post_send_to`](Self::post_send_to). On a
    /// socket that is not connected the kernel refuses it: dropped and counted in
    /// [`failed`](Self::failed).
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.queue.post(checked(data.into(), None)?, true)
    }

    /// [`post_send_to`](Self::post_send_to), waiting for room below the high-water mark
    /// first if needed. Fails only with [`PostError::Closed`] or
    /// [`PostError::TooLarge`], the data handed back.
    pub async fn send_to(&self, data: impl Into<Bytes>, to: SocketAddr) -> Result<(), PostError> {
        self.queue.post_waiting(checked(data.into(), Some(to))?).await
    }

    /// [`post_send`](Self::post_send), waiting for room first if needed.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.queue.post_waiting(checked(data.into(), None)?).await
    }

    /// Posted datagrams the kernel refused (each dropped, the queue going on): no route,
    /// port unreachable on a connected socket, a firewall, no peer for `post_send`.
    pub fn failed(&self) -> usize {
        self.queue.dropped()
    }
}

/// A datagram to queue, or `TooLarge` for a payload no UDP datagram can carry.
fn checked(data: Bytes, to: Option<SocketAddr>) -> Result<Datagram, PostError> {
    let max = match to {
        Some(SocketAddr::V4(_)) => MAX_PAYLOAD_V4,
        // Connected or IPv6: the kernel knows the exact limit; this is the outer bound.
        _ => MAX_PAYLOAD_V6,
    };
    if data.len() > max {
        return Err(PostError::TooLarge(data));
    }
    Ok(Datagram { to, data })
}

/// A UDP socket on an iocore core.
///
/// ```no_run
/// use iocore::net::UdpSocket;
/// # async fn demo() -> std::io::Result<()> {
/// let socket = UdpSocket::bind("127.0.0.1:9000").await?;
/// let mut buf = [0u8; 65536];
/// loop {
///     let (n, from) = socket.recv_from(&mut buf).await?;
///     socket.send_to(&buf[..n], from).await?;
/// }
/// # }
/// ```
///
/// Dropping the socket still sends the datagrams already posted (for up to 30 s), then
/// closes; posts after the drop are refused with [`PostError::Closed`].
pub struct UdpSocket {
    udp: Arc<Udp>,
}

/// The socket shared by its owner and its flusher.
struct Udp {
    /// Declared first so it drops first: deregistered before the fd closes.
    reg: Registration,
    sock: mio::net::UdpSocket,
    post: Arc<PostQueue<Datagram>>,
    core: Handle,
    owner_gone: AtomicBool,
    /// Set by `connect`.
    peer: Mutex<Option<SocketAddr>>,
}

impl UdpSocket {
    /// Binds to `addr` (the first resolved address that binds). Errors name the address.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let sock = first_that_works(&addr.to_target(), "bind to", mio::net::UdpSocket::bind).await?;
        Self::from_mio(sock)
    }

    fn from_mio(sock: mio::net::UdpSocket) -> io::Result<UdpSocket> {
        let core = crate::runtime::current_or_default()?;
        let reg = Registration::new(core.clone(), sock.as_raw_fd())?;
        let peer = Mutex::new(sock.peer_addr().ok());
        let udp = Arc::new(Udp {
            reg,
            sock,
            post: Arc::new(PostQueue::new(core.sched.post_high_water)),
            core,
            owner_gone: AtomicBool::new(false),
            peer,
        });
        Ok(UdpSocket { udp })
    }

    /// Wraps a bound standard-library socket (made non-blocking) on the current core (or
    /// the default core outside any core).
    pub fn from_std(sock: std::net::UdpSocket) -> io::Result<UdpSocket> {
        sock.set_nonblocking(true)?;
        Self::from_mio(mio::net::UdpSocket::from_std(sock))
    }

    /// Turns the socket into a standard-library one (in blocking mode), leaving the core.
    /// Fails while a [`DatagramSender`] exists or posted datagrams are still queued.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        // (A flusher task holds the socket too: see `Socket::detach`.)
        if PostQueue::shares_socket(&self.udp.post, Arc::strong_count(&self.udp)) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "into_std: the socket is still shared (a DatagramSender, or posted datagrams not yet sent)",
            ));
        }
        crate::net::socket::dup_blocking(self.udp.sock.as_raw_fd())
    }

    /// Sets the default peer (`send`, `recv`, `post_send`), resolving host names off the
    /// workers; datagrams from other addresses are then filtered out by the kernel.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let peer =
            first_that_works(&addr.to_target(), "connect to", |a| self.udp.sock.connect(a).map(|()| a))
                .await?;
        *lock(&self.udp.peer) = Some(peer);
        Ok(())
    }

    /// Sends one datagram to `to`; returns its length. Sent directly when nothing is
    /// queued, otherwise queued behind the posted datagrams (and counted as sent).
    pub async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.udp.send(buf, Some(to)).await
    }

    /// Sends one datagram to the connected peer; see [`send_to`](Self::send_to).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.udp.send(buf, None).await
    }

    /// Receives one datagram: its length and sender. A datagram larger than `buf` is an
    /// `InvalidData` error naming both sizes (the excess is lost; the socket stays usable).
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.udp.recv(buf, 0).await
    }

    /// Receives one datagram from the connected peer; see [`recv_from`](Self::recv_from).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.udp.recv(buf, 0).await.map(|(n, _)| n)
    }

    /// Receives the next datagram without taking it from the queue: a later `recv_from`
    /// returns it again. Fills at most `buf.len()` bytes (no error: nothing is lost).
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.udp.recv(buf, libc::MSG_PEEK).await
    }

    /// Receives a datagram without waiting: `WouldBlock` if none is there.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.udp.recv_once(buf, 0)
    }

    /// Sends a datagram without waiting: `WouldBlock` if the socket buffer is full or
    /// posted datagrams are being sent (this one would overtake them).
    pub fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let udp = &self.udp;
        udp.post.check_failed()?;
        if !udp.post.try_lock_owner() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = udp.reg.try_io(Direction::Write, || udp.sock.send_to(buf, to));
        let r = r.map_err(|e| udp.context_error_to("send_to", Some(to), e));
        udp.post.unlock_owner();
        r
    }

    /// Completes when the socket may be readable (then try
    /// [`try_recv_from`](Self::try_recv_from)).
    pub async fn readable(&self) -> io::Result<()> {
        self.udp.reg.ready(Direction::Read, |_| Poll::Ready(())).await
    }

    /// Completes when the owner may send: posted datagrams were handed to the kernel and
    /// the socket may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        let mut wait = self.udp.post.change_wait();
        self.udp
            .reg
            .ready(Direction::Write, |cx| self.udp.post.poll_owner_turn(cx, Some(&mut wait.key)))
            .await
    }

    /// Queues a datagram to `to` from the owner; see [`DatagramSender::post_send_to`].
    pub fn post_send_to(&self, data: impl Into<Bytes>, to: SocketAddr) -> Result<(), PostError> {
        ensure_flusher(&self.udp);
        self.udp.post.post(checked(data.into(), Some(to))?, true)
    }

    /// A thread-safe [`DatagramSender`] for this socket.
    pub fn sender(&self) -> DatagramSender {
        ensure_flusher(&self.udp);
        PostSender { queue: self.udp.post.clone() }
    }

    /// Sets the high-water mark of posted bytes (default: the core's, [`Builder::post_high_water`](crate::Builder::post_high_water); each datagram counts its
    /// payload plus [`DATAGRAM_OVERHEAD`]).
    pub fn set_post_high_water(&self, bytes: usize) {
        self.udp.post.set_high_water(bytes);
    }

    /// Completes once every datagram posted so far was handed to the kernel (or the
    /// socket failed).
    pub async fn flush(&self) -> io::Result<()> {
        let target = self.udp.post.flush_target();
        let mut wait = self.udp.post.change_wait();
        poll_fn(|cx| self.udp.post.poll_flushed(cx, target, Some(&mut wait.key))).await;
        drop(wait);
        self.udp.post.check_failed()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.sock.local_addr()
    }

    /// The connected peer; `NotConnected` before [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.udp.peer_addr()
    }

    /// Sets the kernel receive buffer size (`SO_RCVBUF`, capped by `net.core.rmem_max`):
    /// datagrams that arrive while it is full are dropped by the kernel.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> io::Result<()> {
        SockRef::from(&self.udp.sock)
            .set_recv_buffer_size(bytes)
            .map_err(|e| named("set_recv_buffer_size", e))
    }

    /// The kernel receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        SockRef::from(&self.udp.sock).recv_buffer_size().map_err(|e| named("recv_buffer_size", e))
    }

    /// Sets the kernel send buffer size (`SO_SNDBUF`).
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        SockRef::from(&self.udp.sock)
            .set_send_buffer_size(bytes)
            .map_err(|e| named("set_send_buffer_size", e))
    }

    /// Sets `SO_BROADCAST` (sending to a broadcast address needs it).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.udp.sock.set_broadcast(on).map_err(|e| named("set_broadcast", e))
    }

    /// Sets the IP time-to-live of outgoing datagrams.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.udp.sock.set_ttl(ttl).map_err(|e| named("set_ttl", e))
    }

    /// The IP time-to-live of outgoing datagrams.
    pub fn ttl(&self) -> io::Result<u32> {
        self.udp.sock.ttl().map_err(|e| named("ttl", e))
    }

    /// Joins an IPv4 multicast group on the interface with address `interface`
    /// (`0.0.0.0`: the system's choice).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        let r = self.udp.sock.join_multicast_v4(&group, &interface);
        r.map_err(|e| named(&format!("join_multicast_v4 {group}"), e))
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        let r = self.udp.sock.leave_multicast_v4(&group, &interface);
        r.map_err(|e| named(&format!("leave_multicast_v4 {group}"), e))
    }

    /// Joins an IPv6 multicast group on interface index `interface` (0: any).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        let r = self.udp.sock.join_multicast_v6(&group, interface);
        r.map_err(|e| named(&format!("join_multicast_v6 {group}"), e))
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        let r = self.udp.sock.leave_multicast_v6(&group, interface);
        r.map_err(|e| named(&format!("leave_multicast_v6 {group}"), e))
    }
}

fn named(op: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op}: {e}"))
}

impl Udp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        (*lock(&self.peer))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "peer_addr: not connected"))
    }

    /// `op to ADDR: error` (the connected peer when `to` is `None`).
    fn context_error_to(&self, op: &str, to: Option<SocketAddr>, e: io::Error) -> io::Error {
        match to.or(*lock(&self.peer)) {
            Some(a) => io::Error::new(e.kind(), format!("{op} {a}: {e}")),
            None => io::Error::new(e.kind(), format!("{op}: {e}")),
        }
    }

    fn send_one(&self, buf: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        match to {
            Some(a) => self.sock.send_to(buf, a),
            None => self.sock.send(buf),
        }
    }

    /// The owner's send: direct when it may write, else queued behind the posts.
    async fn send(self: &Arc<Self>, buf: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
        self.post.check_failed()?;
        if let Some(turn) = self.post.try_owner_turn() {
            // (Held across the wait: a send dropped while it waits gives the role back.)
            let mut waiter = pin!(self.reg.waiter(Direction::Write));
            let r = poll_fn(|cx| {
                self.reg.poll_io(cx, Direction::Write, Some(waiter.as_mut()), || self.send_one(buf, to))
            })
            .await;
            drop(turn);
            return r.map_err(|e| self.context_error_to("send_to", to, e));
        }
        ensure_flusher(self);
        let datagram = checked(Bytes::copy_from_slice(buf), to).map_err(|e| {
            let e = io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
            self.context_error_to("send_to", to, e)
        })?;
        match self.post.post_waiting(datagram).await {
            Ok(()) => Ok(buf.len()),
            Err(_) => Err(self.post.error().unwrap_or_else(|| {
                self.context_error_to(
                    "send_to",
                    to,
                    io::Error::new(io::ErrorKind::NotConnected, "socket is closed"),
                )
            })),
        }
    }

    async fn recv(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<(usize, SocketAddr)> {
        let mut waiter = pin!(self.reg.waiter(Direction::Read));
        poll_fn(|cx| self.poll_recv(cx, buf, flags, waiter.as_mut())).await
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        flags: libc::c_int,
        waiter: Pin<&mut Waiter<'_>>,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let cap = buf.len();
        let got = std::task::ready!(self
            .reg
            .poll_io(cx, Direction::Read, Some(waiter), || self.recv_raw(buf, flags)));
        Poll::Ready(self.received(cap, flags, got))
    }

    fn recv_once(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<(usize, SocketAddr)> {
        let cap = buf.len();
        match self.reg.try_io(Direction::Read, || self.recv_raw(buf, flags)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            got => self.received(cap, flags, got),
        }
    }

    /// One `recvfrom` with `MSG_TRUNC`: the datagram's real length and its sender.
    fn recv_raw(&self, buf: &mut [u8], flags: libc::c_int) -> io::Result<(usize, SocketAddr)> {
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the kernel only writes
        // initialised bytes into it, so `buf` stays initialised.
        let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        let (len, from) = SockRef::from(&self.sock).recv_from_with_flags(uninit, flags | libc::MSG_TRUNC)?;
        let from =
            from.as_socket().ok_or_else(|| io::Error::other("recv_from: sender is not an IP address"))?;
        Ok((len, from))
    }

    /// A receive's result for the caller: errors name the operation (and the peer, if
    /// connected); a datagram longer than the `cap`-byte buffer is an error unless peeked.
    fn received(
        &self,
        cap: usize,
        flags: libc::c_int,
        got: io::Result<(usize, SocketAddr)>,
    ) -> io::Result<(usize, SocketAddr)> {
        let (len, from) = got.map_err(|e| self.context_error_to("recv_from", None, e))?;
        if len <= cap {
            return Ok((len, from));
        }
        if flags & libc::MSG_PEEK != 0 {
            // Still queued in full: nothing lost.
            return Ok((cap, from));
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("recv_from {from}: a {len}-byte datagram did not fit the {cap}-byte buffer (truncated)"),
        ))
    }
}

impl SocketControl for Udp {
    /// Discards what is queued; later posts and the owner's sends fail.
    fn abort(&self) {
        self.post.close(Some(io::Error::new(io::ErrorKind::ConnectionAborted, "socket was aborted")));
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Udp::peer_addr(self)
    }

    /// Refuses later posts and waits until what was queued is sent (UDP has no FIN).
    fn poll_shutdown(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<io::Result<()>> {
        self.post.close(None);
        std::task::ready!(self.post.poll_drained(cx, key));
        Poll::Ready(self.post.check_failed())
    }
}

impl Outlet for Udp {
    type Item = Datagram;

    fn queue(&self) -> &PostQueue<Datagram> {
        &self.post
    }

    fn io(&self) -> &ScheduledIo {
        &self.reg
    }

    fn core(&self) -> &Handle {
        &self.core
    }

    fn owner_gone(&self) -> bool {
        self.owner_gone.load(Acquire)
    }

    fn linger(&self) -> Option<Duration> {
        None
    }

    fn context_error(&self, op: &str, e: io::Error) -> io::Error {
        self.context_error_to(op, None, e)
    }

    /// Sends datagrams from the front of the batch until the socket is full. A datagram
    /// the kernel refuses is dropped and counted; only a full socket waits.
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        waiter: Pin<&mut Waiter<'_>>,
        batch: &VecDeque<Datagram>,
    ) -> Poll<io::Result<usize>> {
        self.reg.poll_io(cx, Direction::Write, Some(waiter), || {
            let mut done = 0;
            for d in batch {
                match self.send_one(&d.data, d.to) {
                    Ok(_) => {}
                    // Full (or interrupted): report what left; with nothing sent, the
                    // error makes `poll_io` wait (or retry).
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                        return if done > 0 { Ok(done) } else { Err(e) };
                    }
                    Err(_e) => {
                        self.post.count_dropped();
                        crate::trace::debug_event!(error = %_e, to = ?d.to, "posted datagram dropped");
                    }
                }
                done += d.len();
            }
            Ok(done)
        })
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        // The owner is gone: later posts are refused; the flusher sends what was accepted.
        self.udp.owner_gone.store(true, Release);
        self.udp.post.close(None);
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.udp.sock.as_raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.udp.sock.as_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
