//! Reactor glue: registration of sockets with the core's `mio::Poll`, readiness, and the
//! cooperative budget.
//!
//! Each socket is registered once, edge-triggered, for read and write, and stays registered
//! until it is closed. Its [`ScheduledIo`] is the epoll token (the pointer itself): the
//! sched-role sets readiness bits from each kernel event and wakes the reader and the
//! writer. Readiness carries a *tick* (bumped by every event) so that an operation that
//! saw `WouldBlock` only clears the readiness it actually observed, never a newer edge.
//!
//! A closed socket's `ScheduledIo` is not freed at once: it goes to the core's release list,
//! emptied by the sched-role before its next `epoll_wait`, so an event already fetched for
//! it never points to freed memory.
//!
//! The budget: a task poll may do [`BUDGET`] socket operations; after that, operations wake
//! the task and return `Pending`, so a hot socket goes to the back of the ready queue.

use crate::sched::Shared;
use futures::task::AtomicWaker;
use mio::event::Event;
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

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

/// Readiness state of one registered socket.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl ScheduledIo {
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
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
            let tick = (cur >> TICK_SHIFT).wrapping_add(1);
            Some((tick << TICK_SHIFT) | (cur & BITS) | bits)
        });
        if bits & Direction::Read.mask() != 0 {
            self.reader.wake();
        }
        if bits & Direction::Write.mask() != 0 {
            self.writer.wake();
        }
    }

    /// Ready if the socket may be ready in `dir`; otherwise registers the waker.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<Ready> {
        let word = self.readiness.load(Acquire);
        if word & dir.mask() != 0 {
            return Poll::Ready(Ready { word, dir });
        }
        let slot = match dir {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        };
        slot.register(cx.waker());
        let word = self.readiness.load(Acquire);
        if word & dir.mask() != 0 {
            return Poll::Ready(Ready { word, dir });
        }
        Poll::Pending
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

    /// Wakes both waiters (the socket is being closed).
    pub(crate) fn wake_all(&self) {
        self.readiness.fetch_or(ERROR, AcqRel);
        self.reader.wake();
        self.writer.wake();
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
        let io = Arc::new(ScheduledIo {
            // Optimistic: try the syscall first; WouldBlock clears it.
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        });
        let token = mio::Token(Arc::as_ptr(&io) as usize);
        core.registry.register(
            &mut mio::unix::SourceFd(&fd),
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        Ok(Registration { io, core, fd })
    }

    /// Waits until an operation in `dir` may proceed, then runs `op`; on `WouldBlock`
    /// clears the readiness and waits again. Charges the cooperative budget.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if budget_exhausted(cx) {
            return Poll::Pending;
        }
        loop {
            let ready = match self.io.poll_ready(cx, dir) {
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
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let mut seen = None;
        let r = self.poll_io(cx, dir, || {
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

/// Wakers waiting for a condition (queue drained, space available, closed): woken all at once.
#[derive(Debug, Default)]
pub(crate) struct WaitList(Mutex<Vec<Waker>>);

impl WaitList {
    pub(crate) fn register(&self, waker: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    pub(crate) fn wake_all(&self) {
        let list = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for w in list {
            w.wake();
        }
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
