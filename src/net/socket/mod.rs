//! The socket core shared by a stream, its halves and its flusher: the fd and its
//! registration, the post queue, who owns it, and every operation the public types
//! (`TcpStream`, the halves, the `AsyncRead`/`AsyncWrite` impls) delegate to.
//!
//! Each `async` operation keeps a `Waiter` pinned in its future (any number of tasks may
//! wait on one direction); the `poll_*` forms without one are for the poll-based traits.
//! The flusher that writes posted data lives next door (`flush`); `send_all`'s future has
//! a file of its own (`send_all`).

mod conn;
mod send_all;

pub(crate) use conn::{Conn, Peer};
use send_all::{SendAll, SendAllState};

use crate::io::{Direction, RegisteredIo, ScheduledIo, Waiter};
use crate::net::post::{ensure_flusher, IoSlices, Outlet, PostError, PostQueue, PostSender, SocketControl};
use crate::runtime::Handle;
use crate::util::wait_list::WaitKey;
use bytes::Bytes;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::marker::PhantomPinned;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most buffers one `readv`/`writev` takes (Linux `IOV_MAX`); a vectored operation with
/// more transfers from the first ones, like a short transfer.
const IOV_MAX: usize = 1024;

pin_project_lite::pin_project! {
    /// The future of `recv`: the socket, the buffer and the waiter, nothing more. (The
    /// `async fn` chain it replaces kept a copy of its arguments per level: an idle
    /// connection's task waits in a `recv`, so its size is memory per connection.)
    pub(crate) struct Recv<'a> {
        sock: &'a Socket,
        buf: &'a mut [u8],
        #[pin]
        waiter: Waiter<'a>,
    }
}

impl std::future::Future for Recv<'_> {
    type Output = io::Result<usize>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.sock.poll_recv(cx, this.buf, Some(this.waiter))
    }
}

/// Whether a `SO_LINGER` setting would make a close wait (a second or more: the kernel
/// counts whole seconds), which the socket's drop turns off (see `Drop`).
pub(crate) fn long_linger(linger: Option<Duration>) -> bool {
    linger.is_some_and(|d| d.as_secs() > 0)
}

/// One connected socket, shared by its owner(s) (stream or halves) and its flusher.
///
/// Its readiness block is embedded (one allocation per connection, not two): registered
/// with the core's driver once the socket is in its `Arc`, deregistered by the drop before
/// the fd closes, and never dropped in place, since events fetched before the
/// deregistration may still read it; the driver keeps the allocation (through `me`) until
/// its next turn.
///
/// The sched-role may read the block (through its token) while the socket's drop runs,
/// which holds a `&mut Socket`: the socket is `!Unpin` (`_shared`), so that reference
/// claims no exclusive access (no `noalias`, and Miri's borrow models treat it like a raw
/// pointer: the same rule that lets a pinned future be woken through pointers into it
/// while it is polled). The drop never writes the block; every part of it is atomics and
/// a mutex, only ever used by shared reference.
pub(crate) struct Socket {
    pub(crate) io: ManuallyDrop<ScheduledIo>,
    /// Makes the socket `!Unpin`: see above.
    _shared: PhantomPinned,
    /// A weak reference to this socket's own allocation, handed to the driver on drop.
    me: Weak<Socket>,
    pub(crate) stream: Conn,
    pub(crate) post: Arc<PostQueue>,
    /// The core the socket lives on (its flusher runs there).
    pub(crate) core: Handle,
    /// Owners alive (the stream, or its owned halves).
    owners: AtomicU32,
    /// `shutdown` sent FIN.
    fin_sent: AtomicBool,
    /// `SO_LINGER` was set to a second or more through iocore (see `Drop`).
    lingers: AtomicBool,
    /// The peer, for error messages (given, or looked up when the socket is made: a
    /// connecting stream is given its target).
    peer: Option<Peer>,
}

impl Socket {
    /// A socket core for `stream`, registered with `core`'s kernel queue. `peer` names
    /// the other end in error messages (a TCP stream's is looked up when not given).
    pub(crate) fn new(stream: Conn, core: Handle, peer: Option<Peer>) -> io::Result<Arc<Socket>> {
        let peer = peer.or_else(|| stream.peer_ip().ok().map(Peer::ip));
        let sock = Arc::new_cyclic(|me| Socket {
            io: ManuallyDrop::new(ScheduledIo::new()),
            _shared: PhantomPinned,
            me: me.clone(),
            stream,
            post: Arc::new(PostQueue::new(core.sched.post_high_water)),
            core,
            owners: AtomicU32::new(0),
            fin_sent: AtomicBool::new(false),
            lingers: AtomicBool::new(false),
            peer,
        });
        // Registered at its final address. On failure the drop deregisters (a no-op) and
        // closes the fd, as before.
        sock.core.driver().register_embedded(sock.stream.as_raw_fd(), &sock.io)?;
        crate::trace::debug_event!(fd = sock.stream.as_raw_fd(), "socket open");
        Ok(sock)
    }

    pub(crate) fn owner_gone(&self) -> bool {
        self.owners.load(Acquire) == 0
    }

    pub(crate) fn linger(&self) -> Option<Duration> {
        self.stream.opt().linger().ok().flatten()
    }

    /// For a socket iocore did not make (adopted with `from_std`, given to `connect_with`,
    /// accepted from an adopted listener): notes a long `SO_LINGER` set before, so that
    /// the drop turns it off (see `Drop`).
    pub(crate) fn adopt_linger(&self) {
        if long_linger(self.linger()) {
            self.lingers.store(true, Relaxed);
        }
    }

    /// `op to/from PEER: error`, keeping the error kind.
    pub(crate) fn context_error(&self, op: &str, e: io::Error) -> io::Error {
        let dir = if op == "recv" { "from" } else { "to" };
        match &self.peer {
            Some(p) => io::Error::new(e.kind(), format!("{op} {dir} {p}: {e}")),
            None => io::Error::new(e.kind(), format!("{op}: {e}")),
        }
    }

    /// One receive. `waiter`: the `async` caller's place in the read waiters (`None`: the
    /// poll-based slot, for the `AsyncRead` impls).
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        self.poll_transfer(cx, Direction::Read, want, waiter, || (&self.stream).read(buf))
            .map_err(|e| self.context_error("recv", e))
    }

    /// `poll_recv` into memory that may be uninitialised (tokio's `ReadBuf`): `read(2)` is
    /// given the raw pointer, so no `&mut [u8]` over uninitialised bytes is ever formed.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_recv_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let fd = self.stream.as_raw_fd();
        let ptr = buf.as_mut_ptr().cast::<u8>();
        let unix = matches!(self.stream, Conn::Unix(_));
        self.poll_transfer(cx, Direction::Read, want, None, || {
            if unix {
                // SAFETY: `ptr` is valid for writes of `want` bytes for the whole call.
                return unsafe { crate::sys::recv_unix_raw(fd, ptr, want) };
            }
            // SAFETY: `ptr` is valid for writes of `want` bytes for the whole call, and
            // `fd` is this socket's open descriptor.
            let n = unsafe { libc::read(fd, ptr.cast(), want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })
        .map_err(|e| self.context_error("recv", e))
    }

    pub(crate) fn poll_recv_vectored(
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
        self.poll_transfer(cx, Direction::Read, want, waiter, || (&self.stream).read_vectored(bufs))
            .map_err(|e| self.context_error("recv", e))
    }

    pub(crate) fn check_open(&self) -> io::Result<()> {
        self.post.check_failed()?;
        if self.post.is_closed() {
            return Err(self
                .context_error("send", io::Error::new(io::ErrorKind::NotConnected, "socket is shut down")));
        }
        Ok(())
    }

    /// One send: a direct write if nothing is queued, else the bytes queue behind the
    /// posted ones (and count as sent). `waiter` and `key`: an `async` caller's places in
    /// the write waiters and in the queue's waiters (`None`: the poll-based traits).
    pub(crate) fn poll_send_vectored(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
        waiter: Option<Pin<&mut Waiter<'_>>>,
        key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<usize>> {
        self.check_open()?;
        self.post.forget_poll_flush();
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if self.post.try_lock_owner() {
            let bufs = &bufs[..bufs.len().min(IOV_MAX)];
            let want = bufs.iter().map(|b| b.len()).sum();
            // Aborted meanwhile (`kick` woke this waiter): stop here.
            let r = self.poll_transfer(cx, Direction::Write, want, waiter, || {
                self.post.check_failed().and_then(|()| (&self.stream).write_vectored(bufs))
            });
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
            Err(PostError::WouldExceed(_)) => match self.post.poll_space(cx, key) {
                // Space appeared meanwhile: try again on the next poll.
                Poll::Ready(()) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            },
            Err(PostError::Closed(_) | PostError::TooLarge(_)) => Poll::Ready(self.check_open().map(|()| 0)),
        }
    }

    /// One send, for the poll-based traits.
    pub(crate) fn poll_send(self: &Arc<Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send_vectored(cx, &[IoSlice::new(buf)], None, None)
    }

    /// Sends all of `buf` as one contiguous run: posted data cannot interleave with it.
    /// While the flusher writes, `buf` is queued behind the posts in one piece, once the
    /// queue is below its high-water mark (so a peer that does not read holds the sender,
    /// not memory). An abort ends it with the abort's error, however much is left.
    #[inline]
    pub(crate) fn send_all<'a>(self: &'a Arc<Self>, buf: &'a [u8]) -> SendAll<'a> {
        self.post.forget_poll_flush();
        SendAll { sock: self, buf, state: SendAllState::Start, waiter: self.io.waiter(Direction::Write) }
    }

    /// Waits until everything posted, and every post still in flight, was handed to the
    /// kernel (a shutdown: no post can come after it). `key`: an `async` caller's place
    /// among the queue's waiters (`None`: the poll-based traits).
    fn poll_drained(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<io::Result<()>> {
        self.post.check_failed()?;
        self.post.poll_drained(cx, key).map(|()| self.post.check_failed())
    }

    /// The poll-based traits' flush: waits until what was queued at its first poll was
    /// handed to the kernel (see `PostQueue::poll_flushed_by_owner`).
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.post.check_failed()?;
        self.post.poll_flushed_by_owner(cx).map(|()| self.post.check_failed())
    }

    /// Refuses new posts (accepted ones are still written), waits until everything posted
    /// is handed to the kernel, then sends FIN once. `after_owner`: also wait for an
    /// owner's `send_all` under way (it holds the writer role between its writes), and
    /// send FIN holding the role (so no write can follow it): for a `PostSender`'s
    /// shutdown from elsewhere. Not for the owner's own, which must not wait for a
    /// `send_all` it may hold paused (a `timeout` around it, say): that would never end.
    /// `key`: an `async` caller's place among the queue's waiters.
    pub(crate) fn poll_shutdown(
        &self,
        cx: &mut Context<'_>,
        after_owner: bool,
        mut key: Option<&mut WaitKey>,
    ) -> Poll<io::Result<()>> {
        if self.fin_sent.load(Acquire) {
            return Poll::Ready(Ok(()));
        }
        self.post.close(None);
        match self.poll_drained(cx, key.as_deref_mut()) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if after_owner {
            std::task::ready!(self.post.poll_lock_owner(cx, key));
        }
        let r = self.post.check_failed().and_then(|()| {
            if self.fin_sent.swap(true, AcqRel) {
                return Ok(());
            }
            self.stream.shutdown(Shutdown::Write).map_err(|e| self.context_error("shutdown", e))
        });
        if after_owner {
            self.post.unlock_owner();
        }
        Poll::Ready(r)
    }

    // The operations the public types delegate to (their docs say what each does).

    pub(crate) fn recv<'a>(&'a self, buf: &'a mut [u8]) -> Recv<'a> {
        Recv { sock: self, buf, waiter: self.io.waiter(Direction::Read) }
    }

    pub(crate) async fn recv_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut waiter = pin!(self.io.waiter(Direction::Read));
        poll_fn(|cx| self.poll_recv_vectored(cx, bufs, Some(waiter.as_mut()))).await
    }

    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.io.try_io(Direction::Read, || (&self.stream).read(buf))
    }

    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.ready(Direction::Read, |_| Poll::Ready(())).await
    }

    pub(crate) async fn send(self: &Arc<Self>, buf: &[u8]) -> io::Result<usize> {
        self.send_vectored(&[IoSlice::new(buf)]).await
    }

    pub(crate) async fn send_vectored(self: &Arc<Self>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut waiter = pin!(self.io.waiter(Direction::Write));
        let mut wait = self.post.change_wait();
        poll_fn(|cx| self.poll_send_vectored(cx, bufs, Some(waiter.as_mut()), Some(&mut wait.key))).await
    }

    pub(crate) fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.check_open()?;
        self.post.forget_poll_flush();
        if !self.post.try_lock_owner() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let r = self.io.try_io(Direction::Write, || (&self.stream).write(buf));
        self.post.unlock_owner();
        r
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        let mut wait = self.post.change_wait();
        self.ready(Direction::Write, |cx| self.post.poll_owner_turn(cx, Some(&mut wait.key))).await
    }

    /// Waits until every byte queued when it was called was handed to the kernel (posts
    /// that keep coming from other threads do not hold it back).
    pub(crate) async fn flush(&self) -> io::Result<()> {
        self.post.flush().await
    }

    pub(crate) async fn shutdown(&self) -> io::Result<()> {
        let mut wait = self.post.change_wait();
        poll_fn(|cx| self.poll_shutdown(cx, false, Some(&mut wait.key))).await
    }

    pub(crate) fn post_send(self: &Arc<Self>, data: Bytes) -> Result<(), PostError> {
        self.post.forget_poll_flush();
        ensure_flusher(self);
        self.post.post(data, true)
    }

    pub(crate) fn sender(self: &Arc<Self>) -> PostSender {
        ensure_flusher(self);
        PostSender { queue: self.post.clone() }
    }

    /// Closes at once with a reset (RST) when the fd closes, discarding queued data; later
    /// sends and posts fail.
    pub(crate) fn abort(&self) {
        self.lingers.store(false, Relaxed);
        let _ = self.stream.opt().set_linger(Some(Duration::ZERO));
        let what = match &self.peer {
            Some(p) => format!("the connection with {p} was aborted (`abort`)"),
            None => "the socket was aborted (`abort`)".to_string(),
        };
        self.post.close(Some(io::Error::new(io::ErrorKind::ConnectionAborted, what)));
    }

    /// [`abort`](Self::abort) while the owner still holds the socket (from a `PostSender`
    /// or a half): also ends the owner's receives (they see the end of the stream), so the
    /// owner lets go and the close resets the connection.
    pub(crate) fn kick(&self) {
        self.abort();
        let _ = self.stream.shutdown(Shutdown::Read);
        self.io.wake_all();
    }

    /// The remote IP address (`Unsupported` for a Unix-domain socket): the one recorded
    /// when the connection was made, so it stays known after a reset (when the kernel's
    /// `getpeername` fails with `ENOTCONN`).
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.peer.as_ref().and_then(Peer::ip_addr) {
            Some(addr) => Ok(addr),
            None => self.stream.peer_ip().map_err(|e| io::Error::new(e.kind(), format!("peer_addr: {e}"))),
        }
    }

    pub(crate) fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.stream
            .opt()
            .set_linger(linger)
            .map_err(|e| io::Error::new(e.kind(), format!("set_linger: {e}")))?;
        // The drop turns a long linger off (see `Drop`).
        self.lingers.store(long_linger(linger), Relaxed);
        Ok(())
    }

    /// A standard-library socket (in blocking mode) on a duplicate of the fd, for an
    /// owner's `into_std`; the caller then drops its owner, closing iocore's descriptor.
    /// Fails while the socket is shared (a `PostSender`, the other half, posted data not
    /// yet sent), handing nothing over.
    pub(crate) fn detach<T: FromRawFd>(self: &Arc<Self>) -> io::Result<T> {
        // Shared: the other half, a `PostSender`, posted data not yet handed to the kernel.
        // (A flusher task holds the socket too; it ends by itself once the owner is gone
        // and nothing is queued, closing iocore's descriptor, not the connection.)
        if PostQueue::shares_socket(&self.post, Arc::strong_count(self)) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "into_std: the stream is still shared (a PostSender, or posted data not yet sent)",
            ));
        }
        dup_blocking(self.stream.as_raw_fd())
    }

    /// Waits until a non-blocking `connect` finished; its error if it failed.
    pub(crate) async fn connected(&self) -> io::Result<()> {
        let mut waiter = pin!(self.io.waiter(Direction::Write));
        poll_fn(|cx| {
            self.poll_io(cx, Direction::Write, Some(waiter.as_mut()), || {
                if let Some(e) = self.stream.opt().take_error()? {
                    return Err(e);
                }
                match self.stream.opt().peer_addr() {
                    Ok(_) => Ok(()),
                    // Not connected yet: a spurious wakeup; wait for the next edge.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }
}

impl RegisteredIo for Socket {
    fn block(&self) -> &ScheduledIo {
        &self.io
    }

    fn core(&self) -> &Handle {
        &self.core
    }
}

impl SocketControl for Socket {
    fn abort(&self) {
        self.kick();
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Socket::peer_addr(self)
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<io::Result<()>> {
        Socket::poll_shutdown(self, cx, true, key)
    }
}

impl Outlet for Socket {
    type Item = Bytes;

    fn queue(&self) -> &PostQueue {
        &self.post
    }

    fn io(&self) -> &ScheduledIo {
        &self.io
    }

    fn core(&self) -> &Handle {
        &self.core
    }

    fn owner_gone(&self) -> bool {
        Socket::owner_gone(self)
    }

    fn linger(&self) -> Option<Duration> {
        Socket::linger(self)
    }

    fn context_error(&self, op: &str, e: io::Error) -> io::Error {
        Socket::context_error(self, op, e)
    }

    /// One `writev` of the batch's first buffers.
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        waiter: Pin<&mut Waiter<'_>>,
        batch: &std::collections::VecDeque<Bytes>,
    ) -> Poll<io::Result<usize>> {
        let want = batch.iter().map(|b| b.len()).sum();
        self.poll_transfer(cx, Direction::Write, want, Some(waiter), || {
            let slices: IoSlices<'_> = batch.iter().map(|b| IoSlice::new(b)).collect();
            (&self.stream).write_vectored(&slices)
        })
    }
}

/// One owner of a socket (the stream, or one of its owned halves). When the last owner
/// drops, later posts are refused, the flusher writes what is still queued, and then the
/// socket closes.
pub(crate) struct Owner(pub(crate) Arc<Socket>);

impl Owner {
    pub(crate) fn new(sock: Arc<Socket>) -> Owner {
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
            // The last owner is gone: posts from now on are refused (their data handed
            // back), and the flusher delivers what was accepted, then the socket closes.
            // (Closing here, not when the flusher next finds its queue empty: a thread
            // that keeps posting would otherwise keep a dropped socket open.)
            self.0.post.close(None);
        }
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("peer", &self.0.peer).finish()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // A linger of a second or more makes close(2) wait, even on a non-blocking socket,
        // until the kernel has sent everything or the linger passed: on a worker, that
        // would freeze the core for up to the linger. The flusher has already used it to
        // bound its writing of posted data; what the kernel still holds goes out after
        // the close, as without a linger.
        if self.lingers.load(Relaxed) {
            let _ = self.stream.opt().set_linger(None);
        }
        // Before the fields drop: deregistered before the fd closes (with `stream`).
        let me: Weak<Socket> = std::mem::take(&mut self.me);
        self.core.driver().retire(self.stream.as_raw_fd(), &self.io, me);
        crate::trace::debug_event!(fd = self.stream.as_raw_fd(), "socket close");
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("peer", &self.peer).finish()
    }
}

/// A standard-library socket on a duplicate of `fd` (close-on-exec), in blocking mode.
pub(crate) fn dup_blocking<T: FromRawFd>(fd: RawFd) -> io::Result<T> {
    // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` on a descriptor the caller keeps open.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    socket2::SockRef::from(&owned).set_nonblocking(false)?;
    // SAFETY: ownership of the descriptor moves from `owned` to the new value.
    Ok(unsafe { T::from_raw_fd(owned.into_raw_fd()) })
}
