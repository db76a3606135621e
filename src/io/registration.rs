//! [`Registration`]: a socket's membership in a core's kernel queue, and the operations
//! that wait on it (try the syscall, wait for readiness on `WouldBlock`, charge the budget),
//! which every registered socket has ([`RegisteredIo`]).

use super::budget;
use super::readiness::{Direction, Ready, ScheduledIo};
use super::waiters::Waiter;
use crate::runtime::Handle;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A socket's membership in a core's kernel queue. Deregisters (and defers the release of
/// the `ScheduledIo`) on drop; drop it before closing the fd.
pub(crate) struct Registration {
    pub(crate) io: Arc<ScheduledIo>,
    core: Handle,
    fd: RawFd,
}

impl Registration {
    /// Registers `fd` with `core`'s kernel queue, edge-triggered for read and write.
    pub(crate) fn new(core: Handle, fd: RawFd) -> io::Result<Registration> {
        let io = core.driver().register(fd)?;
        Ok(Registration { io, core, fd })
    }
}

impl RegisteredIo for Registration {
    fn block(&self) -> &ScheduledIo {
        &self.io
    }

    fn core(&self) -> &Handle {
        &self.core
    }
}

impl std::ops::Deref for Registration {
    type Target = ScheduledIo;

    fn deref(&self) -> &ScheduledIo {
        &self.io
    }
}

/// A socket registered with a core's kernel queue: its readiness block and that core.
/// The waiting operations are provided: a wait tells the core's driver about a waker its
/// shutdown would not end (see `Driver::watch`).
pub(crate) trait RegisteredIo {
    /// The socket's readiness block.
    fn block(&self) -> &ScheduledIo;

    /// The core whose kernel queue the socket is registered with.
    fn core(&self) -> &Handle;

    /// [`ScheduledIo::ready_or_wait`], telling the driver about a waker that is not one of
    /// the core's own tasks'.
    fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<Ready> {
        let io = self.block();
        let r = io.ready_or_wait(cx, dir, waiter);
        if r.is_pending() {
            let core = self.core();
            if core.driver().watch(io, core.owns_waker(cx.waker())) {
                // The core had stopped (the socket says so now): the wait fails at once.
                return Poll::Ready(io.snapshot(dir));
            }
        }
        r
    }

    /// Completes when the socket may be ready in `dir` (`readable()`/`writable()`), or
    /// fails if its core shut down. Charges the cooperative budget like any other socket
    /// operation.
    fn poll_readiness(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        waiter: Pin<&mut Waiter<'_>>,
    ) -> Poll<io::Result<()>> {
        if budget::exhausted(cx) {
            return Poll::Pending;
        }
        let ready = std::task::ready!(self.poll_ready(cx, dir, Some(waiter)));
        budget::spend();
        Poll::Ready(ready.check_core())
    }

    /// Completes once `gate` is ready (e.g. the owner's turn to write; `|_| Poll::Ready(())`
    /// for none) and then the socket may be ready in `dir`: `readable()`/`writable()`.
    async fn ready(
        &self,
        dir: Direction,
        mut gate: impl FnMut(&mut Context<'_>) -> Poll<()>,
    ) -> io::Result<()> {
        let mut waiter = std::pin::pin!(self.block().waiter(dir));
        std::future::poll_fn(|cx| {
            std::task::ready!(gate(cx));
            self.poll_readiness(cx, dir, waiter.as_mut())
        })
        .await
    }

    /// Waits until an operation in `dir` may proceed, then runs `op`; on `WouldBlock`
    /// clears the readiness and waits again. Charges the cooperative budget. `waiter`:
    /// the `async` caller's place in the direction's list (`None`: the poll-based slot).
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut waiter: Option<Pin<&mut Waiter<'_>>>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if budget::exhausted(cx) {
            return Poll::Pending;
        }
        loop {
            let ready = match self.poll_ready(cx, dir, waiter.as_mut().map(|w| w.as_mut())) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            };
            if let Err(e) = ready.check_core() {
                return Poll::Ready(Err(e));
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.block().clear(ready),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => {
                    budget::spend();
                    return Poll::Ready(r);
                }
            }
        }
    }

    /// [`poll_io`](Self::poll_io) for a transfer of up to `want` bytes. A short transfer
    /// (`0 < n < want` for reads, `n < want` for writes) means the kernel buffer was
    /// drained (or filled), so the readiness it used is cleared now: the next operation
    /// waits for a new edge instead of spending a syscall on `WouldBlock`. An edge that
    /// arrived meanwhile bumped the tick, and is kept. Not after urgent data, where a read
    /// stops short at the urgent mark (nor does a Unix stream's read after a message that
    /// carried file descriptors: `sys::recv_unix` reads on past it).
    fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        want: usize,
        waiter: Option<Pin<&mut Waiter<'_>>>,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let io = self.block();
        let mut seen = None;
        let r = self.poll_io(cx, dir, waiter, || {
            seen = Some(io.snapshot(dir));
            op()
        });
        if let (Poll::Ready(Ok(n)), Some(ready)) = (&r, seen) {
            budget::moved(*n);
            let short = match dir {
                // (After urgent data a read stops short at its mark, data queued behind.)
                Direction::Read => *n > 0 && *n < want && !ready.urgent(),
                Direction::Write => *n < want,
            };
            if short {
                io.clear(ready);
            }
        }
        r
    }
}

// The operations of a registered socket that do not wait, on its readiness block: a
// `Registration` reaches them through `Deref`, a socket core that holds its block inline
// directly.
impl ScheduledIo {
    /// A waiter for an `async` operation on this socket in `dir`: pin it in the future
    /// and pass it to [`RegisteredIo::poll_io`] and friends.
    pub(crate) fn waiter(&self, dir: Direction) -> Waiter<'_> {
        Waiter::new(self.waiters(dir))
    }

    /// Runs `op` once without waiting (`try_recv`, `try_send`); on `WouldBlock` clears the
    /// readiness it saw, so the next `readable()`/`writable()` waits for a new edge instead
    /// of completing at once (a `writable()` + `try_send` loop would spin).
    pub(crate) fn try_io<R>(&self, dir: Direction, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        let ready = self.snapshot(dir);
        ready.check_core()?;
        let r = op();
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.clear(ready);
        }
        r
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.core.driver().deregister(self.fd, &self.io);
    }
}
