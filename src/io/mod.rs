//! Reactor glue: registration of sockets with the core's `mio::Poll`, readiness, the
//! waiters of each socket direction, and the cooperative budget.
//!
//! Each socket is registered once, edge-triggered, for read and write, and stays registered
//! until it is closed. Its [`ScheduledIo`] is the epoll token (the pointer itself): the
//! sched-role sets readiness bits from each kernel event and wakes **every** waiter of the
//! direction that became ready. Readiness carries a *tick* (bumped by every event) so that
//! an operation that saw `WouldBlock` only clears the readiness it actually observed, never
//! a newer edge.
//!
//! Waiters: `async` operations (`recv`, `send`, `readable`, `accept`, the `post_send`
//! flusher, …) wait through a [`Waiter`] pinned in their future, linked into the
//! direction's [`WaiterList`] (see `waiters.rs`): any number of tasks may wait at once and
//! each is woken by the edge. The poll-based trait methods (`AsyncRead::poll_read`,
//! `AsyncWrite::poll_write`, `poll_accept`) have nowhere to keep a node, so each direction
//! also has one waker *slot* for them; they take `&mut self` (or are documented as
//! single-poller), so one slot per direction serves the only poller there can be.
//!
//! A closed socket's `ScheduledIo` is not freed at once: it goes to the core's release list,
//! emptied by the sched-role before its next `epoll_wait`, so an event already fetched for
//! it never points to freed memory.
//!
//! The budget: a task poll may do [`BUDGET`] socket operations; after that, operations wake
//! the task and return `Pending`, so a hot socket goes to the back of the ready queue.

mod waiters;

pub(crate) use waiters::{Waiter, WaiterList};

use crate::sched::Shared;
use futures::task::AtomicWaker;
use mio::event::Event;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Socket operations one task poll may do before yielding.
pub(crate) const BUDGET: u32 = 128;

const READABLE: usize = 1;
const WRITABLE: usize = 2;
const READ_CLOSED: usize = 4;
const WRITE_CLOSED: usize = 8;
const ERROR: usize = 16;
const BITS: usize = 0xff;
const TICK_SHIFT: usize = 8;

/// Which side of a socket an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that let an operation in this direction proceed.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }
}

/// Readiness observed by an operation: pass it back to [`ScheduledIo::clear`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    word: usize,
    dir: Direction,
}

/// Readiness state and waiters of one registered socket.
pub(crate) struct ScheduledIo {
    /// Readiness bits (low byte) and the tick of the last event (the rest).
    readiness: AtomicUsize,
    /// The poll-based reader (`poll_read`, `poll_accept`): at most one at a time.
    read_slot: AtomicWaker,
    /// The poll-based writer (`poll_write`): at most one at a time.
    write_slot: AtomicWaker,
    /// `async` operations waiting to read.
    readers: WaiterList,
    /// `async` operations waiting to write (the flusher among them).
    writers: WaiterList,
}

impl ScheduledIo {
    fn new() -> ScheduledIo {
        ScheduledIo {
            // Optimistic: try the syscall first; WouldBlock clears it.
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            read_slot: AtomicWaker::new(),
            write_slot: AtomicWaker::new(),
            readers: WaiterList::new(),
            writers: WaiterList::new(),
        }
    }

    /// Called by the sched-role for each kernel event with this token.
    pub(crate) fn dispatch(&self, event: &Event) {
        let mut bits = 0;
        if event.is_readable() {
            bits |= READABLE;
        }
        if event.is_writable() {
            bits |= WRITABLE;
        }
        if event.is_read_closed() {
            bits |= READ_CLOSED;
        }
        if event.is_write_closed() {
            bits |= WRITE_CLOSED;
        }
        if event.is_error() {
            bits |= ERROR;
        }
        // SeqCst: the waiter lists' handshake (see `waiters.rs`) needs this publication
        // ordered before their `armed` loads.
        let _ = self.readiness.fetch_update(SeqCst, SeqCst, |cur| {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1);
            Some((tick << TICK_SHIFT) | (cur & BITS) | bits)
        });
        for dir in [Direction::Read, Direction::Write] {
            if bits & dir.mask() != 0 {
                self.wake(dir);
            }
        }
    }

    /// Wakes every waiter of `dir` (the slot's and the list's).
    fn wake(&self, dir: Direction) {
        let (slot, list) = self.waiters(dir);
        if let Some(waker) = slot.take() {
            crate::contain::contain("waking a socket's poller", || waker.wake());
        }
        list.wake_all();
    }

    fn waiters(&self, dir: Direction) -> (&AtomicWaker, &WaiterList) {
        match dir {
            Direction::Read => (&self.read_slot, &self.readers),
            Direction::Write => (&self.write_slot, &self.writers),
        }
    }

    fn ready_now(&self, dir: Direction) -> Option<Ready> {
        let word = self.readiness.load(SeqCst);
        (word & dir.mask() != 0).then_some(Ready { word, dir })
    }

    /// Ready if the socket may be ready in `dir`; otherwise registers the task: in
    /// `waiter`'s list if given (it must belong to this socket and direction, see
    /// [`Registration::waiter`]), else in the direction's single slot.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        waiter: Option<Pin<&mut Waiter<'_>>>,
    ) -> Poll<Ready> {
        if let Some(ready) = self.ready_now(dir) {
            return Poll::Ready(ready);
        }
        match waiter {
            Some(waiter) => {
                let mut seen = None;
                if waiter.wait(cx.waker(), || {
                    seen = self.ready_now(dir);
                    seen.is_some()
                }) {
                    return Poll::Ready(seen.expect("ready"));
                }
                Poll::Pending
            }
            None => {
                self.waiters(dir).0.register(cx.waker());
                match self.ready_now(dir) {
                    Some(ready) => Poll::Ready(ready),
                    None => Poll::Pending,
                }
            }
        }
    }

    /// The readiness as it is now, for an operation attempted without waiting.
    pub(crate) fn snapshot(&self, dir: Direction) -> Ready {
        Ready { word: self.readiness.load(Acquire), dir }
    }

    /// The operation got `WouldBlock`: forget the readiness it saw, unless an event
    /// arrived since (then the next attempt may succeed).
    pub(crate) fn clear(&self, ready: Ready) {
        let clear = match ready.dir {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        };
        let _ = self.readiness.compare_exchange(ready.word, ready.word & !clear, AcqRel, Acquire);
    }

    /// Wakes every waiter (the socket is being closed).
    pub(crate) fn wake_all(&self) {
        self.readiness.fetch_or(ERROR, SeqCst);
        self.wake(Direction::Read);
        self.wake(Direction::Write);
    }
}

impl fmt::Debug for ScheduledIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledIo").field("readiness", &self.readiness.load(Relaxed)).finish()
    }
}

/// A socket's membership in a core's kernel queue. Deregisters (and defers the release of
/// the `ScheduledIo`) on drop; drop it before closing the fd.
pub(crate) struct Registration {
    pub(crate) io: Arc<ScheduledIo>,
    pub(crate) core: Arc<Shared>,
    fd: RawFd,
}

impl Registration {
    /// Registers `fd` with `core`, edge-triggered for read and write.
    pub(crate) fn new(core: Arc<Shared>, fd: RawFd) -> io::Result<Registration> {
        let io = Arc::new(ScheduledIo::new());
        let token = mio::Token(Arc::as_ptr(&io) as usize);
        core.registry.register(
            &mut mio::unix::SourceFd(&fd),
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        Ok(Registration { io, core, fd })
    }

    /// A waiter for an `async` operation on this socket in `dir`: pin it in the future
    /// and pass it to [`poll_io`](Self::poll_io) and friends.
    pub(crate) fn waiter(&self, dir: Direction) -> Waiter<'_> {
        Waiter::new(self.io.waiters(dir).1)
    }

    /// Completes when the socket may be ready in `dir` (`readable()`/`writable()`).
    /// Charges the cooperative budget like any other socket operation.
    pub(crate) fn poll_readiness(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        waiter: Pin<&mut Waiter<'_>>,
    ) -> Poll<()> {
        if budget_exhausted(cx) {
            return Poll::Pending;
        }
        let ready = self.io.poll_ready(cx, dir, Some(waiter));
        if ready.is_ready() {
            spend_budget();
        }
        ready.map(|_| ())
    }

    /// Waits until an operation in `dir` may proceed, then runs `op`; on `WouldBlock`
    /// clears the readiness and waits again. Charges the cooperative budget. `waiter`:
    /// the `async` caller's place in the direction's list (`None`: the poll-based slot).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut waiter: Option<Pin<&mut Waiter<'_>>>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if budget_exhausted(cx) {
            return Poll::Pending;
        }
        loop {
            let ready = match self.io.poll_ready(cx, dir, waiter.as_mut().map(|w| w.as_mut())) {
                Poll::Ready(r) => r,
                Poll::Pending => return Poll::Pending,
            };
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(ready),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => {
                    spend_budget();
                    return Poll::Ready(r);
                }
            }
        }
    }

    /// [`poll_io`](Self::poll_io) for a transfer of up to `want` bytes. A short transfer
    /// (`0 < n < want` for reads, `n < want` for writes) means the kernel buffer was
    /// drained (or filled), so the readiness it used is cleared now: the next operation
    /// waits for a new edge instead of spending a syscall on `WouldBlock`. An edge that
    /// arrived meanwhile bumped the tick, and is kept.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        want: usize,
        waiter: Option<Pin<&mut Waiter<'_>>>,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let mut seen = None;
        let r = self.poll_io(cx, dir, waiter, || {
            seen = Some(self.io.snapshot(dir));
            op()
        });
        if let (Poll::Ready(Ok(n)), Some(ready)) = (&r, seen) {
            let short = match dir {
                Direction::Read => *n > 0 && *n < want,
                Direction::Write => *n < want,
            };
            if short {
                self.io.clear(ready);
            }
        }
        r
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = self.core.registry.deregister(&mut mio::unix::SourceFd(&self.fd));
        self.io.wake_all();
        self.core.release_io(self.io.clone());
    }
}

thread_local! {
    static BUDGET_LEFT: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Gives the task about to be polled on this thread a fresh budget; `None` lifts it.
pub(crate) fn reset_budget(budget: Option<u32>) {
    BUDGET_LEFT.with(|b| b.set(budget.unwrap_or(u32::MAX)));
}

fn budget_exhausted(cx: &Context<'_>) -> bool {
    let empty = BUDGET_LEFT.with(|b| b.get() == 0);
    if empty {
        cx.waker().wake_by_ref();
    }
    empty
}

fn spend_budget() {
    BUDGET_LEFT.with(|b| {
        let left = b.get();
        if left != u32::MAX {
            b.set(left.saturating_sub(1));
        }
    });
}
