//! The kernel event queue: one `mio::Poll` (epoll) per core, split in two halves.
//!
//! - [`Poller`] owns the `Poll`, its event buffer and a `timerfd`. Only the holder of the
//!   sched-role uses it: [`Poller::turn`] waits for events (not at all, or until a deadline,
//!   armed on the `timerfd` with nanosecond resolution since `epoll_wait` only takes
//!   milliseconds) and dispatches each to its socket's [`ScheduledIo`].
//! - [`Driver`] is the shared half: registering sockets, and the *kick* that interrupts a
//!   blocking wait (an eventfd behind `mio::Waker`). Whoever makes work for the poller's
//!   owner kicks; the owner announces a blocking wait ([`Driver::announce_block`]) and then
//!   re-checks its queues, so one of the two always sees the other (a `SeqCst` Dekker
//!   handshake) and the kick is a syscall only when someone is (about to be) blocked. A
//!   wait may be announced as *bounded* (the owner leaves it by itself within a short
//!   interval, [`Driver::waits_bounded`]): the scheduler then lets some pushers skip the
//!   kick.
//!
//! A socket's token is the address of its `ScheduledIo`: a block of its own (an
//! `Arc<ScheduledIo>`, for a `Registration`), or one embedded in the socket's allocation (a
//! stream's socket core, one allocation instead of two). The block of a closed socket is
//! not freed at once: [`Driver::deregister`] parks it (or [`Driver::retire`] a weak
//! reference that keeps the allocation around it) on a release list that the poller
//! empties at the start of its next turn, so an event fetched before the socket was
//! deregistered never points to freed memory (events of a turn are all dispatched before
//! the next turn starts).
//!
//! When its core stops ([`Driver::shut_down`]) no event will come any more, and a socket
//! waited on after that (under another executor, say) must not wait forever. The waits of
//! the core's own tasks end with the tasks, which the shutdown cancels; so the driver keeps
//! only the sockets that some other waker waited on (`watched`, see [`Driver::watch`]: a
//! foreign executor's, a `block_on`'s, a combinator's inside a task), and fails those when
//! the core stops. A later wait on any other socket of the core finds the core stopped and
//! fails the socket then. (Registering and closing a socket take no lock: a set of every
//! socket was a core-wide lock per connect and close, and ~15 bytes per connection.)

use super::readiness::ScheduledIo;
use crate::sync::lock;
use crate::sys::TimerFd;
use crate::time::clock::Deadline;
use crate::util::Padded;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

const KICK_TOKEN: Token = Token(0);
const TIMER_TOKEN: Token = Token(1);
/// Kernel events handled per turn.
const EVENTS_PER_TURN: usize = 1024;

/// `Driver::blocking`: the poller's owner is not in a blocking wait, ...
const NOT_BLOCKING: u8 = 0;
/// ... is (about to be) in one that only a kick, an event or a deadline ends, ...
const BLOCKING: u8 = 1;
/// ... or in one it leaves by itself within a short interval.
const BLOCKING_BOUNDED: u8 = 2;

/// The shared half of a core's event queue. See the module docs.
pub(crate) struct Driver {
    registry: mio::Registry,
    kicker: mio::Waker,
    /// Whether the poller's owner is in, or about to enter, a blocking wait (a kick must
    /// wake it), and whether that wait is bounded: `NOT_BLOCKING`, `BLOCKING` or
    /// `BLOCKING_BOUNDED`. (Read by every waker and worker; on a line of its own.)
    blocking: Padded<AtomicU8>,
    /// Blocks of closed sockets, freed at the start of the poller's next turn.
    released: Mutex<Vec<Released>>,
    /// `released` may hold blocks (lets a turn skip the lock when no socket closed).
    any_released: AtomicBool,
    /// The addresses of the watched blocks, and whether the driver has shut down (see
    /// the module docs). A block is in the set (and marked `watched`) from the first wait
    /// of a foreign waker on it to its deregistration, which comes before its memory can go.
    watched: Mutex<Watched>,
    /// The driver has shut down (`Watched::shut_down`, readable without the lock).
    stopped: AtomicBool,
}

#[derive(Default)]
struct Watched {
    blocks: HashSet<usize>,
    shut_down: bool,
}

/// A closed socket's block, kept until the poller's next turn.
enum Released {
    /// A block of its own.
    Block(#[allow(dead_code)] Arc<ScheduledIo>),
    /// The allocation a block is embedded in: its value is dropped already (the block in
    /// it is never dropped, see [`Driver::retire`]), the weak reference keeps its memory.
    Cell(#[allow(dead_code)] Weak<dyn Send + Sync>),
}

/// The half of a core's event queue that waits and dispatches; owned by the sched-role.
pub(crate) struct Poller {
    poll: Poll,
    events: Events,
    timerfd: TimerFd,
    /// The deadline the timerfd is armed for (`NEVER`: disarmed).
    armed: Deadline,
}

/// A new event queue: the poller (for the sched-role) and the shared driver.
pub(crate) fn new() -> io::Result<(Poller, Driver)> {
    let poll = Poll::new()?;
    let kicker = mio::Waker::new(poll.registry(), KICK_TOKEN)?;
    let timerfd = TimerFd::new()?;
    poll.registry().register(
        &mut mio::unix::SourceFd(&timerfd.as_raw_fd()),
        TIMER_TOKEN,
        Interest::READABLE,
    )?;
    let registry = poll.registry().try_clone()?;
    let poller =
        Poller { poll, events: Events::with_capacity(EVENTS_PER_TURN), timerfd, armed: Deadline::NEVER };
    let driver = Driver {
        registry,
        kicker,
        blocking: Padded(AtomicU8::new(NOT_BLOCKING)),
        released: Mutex::new(Vec::new()),
        any_released: AtomicBool::new(false),
        watched: Mutex::new(Watched::default()),
        stopped: AtomicBool::new(false),
    };
    Ok((poller, driver))
}

impl Driver {
    /// Registers `fd`, edge-triggered for read and write; returns its readiness block.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Arc<ScheduledIo>> {
        let io = Arc::new(ScheduledIo::new());
        self.register_embedded(fd, &io)?;
        Ok(io)
    }

    /// Registers `fd`, edge-triggered for read and write, with `io` for its readiness: a
    /// block embedded in a larger allocation, which must stay at its address (and not be
    /// dropped) until [`retire`](Self::retire)d.
    pub(crate) fn register_embedded(&self, fd: RawFd, io: &ScheduledIo) -> io::Result<()> {
        if self.stopped.load(SeqCst) {
            return Err(io::Error::other("register: the iocore core has shut down"));
        }
        let token = Token(io as *const ScheduledIo as usize);
        self.registry.register(
            &mut mio::unix::SourceFd(&fd),
            token,
            // (Priority: urgent data makes reads stop short; see `ScheduledIo::dispatch`.)
            Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
        )?;
        Ok(())
    }

    /// A wait on `io` has just linked a waker, which `own` says is one of the core's own
    /// tasks' (the core's shutdown cancels those tasks, ending their waits). A foreign
    /// waker must be woken when the core stops: the first one puts `io` in the watched set.
    /// Returns true if the core has stopped: `io` fails from now on, and the caller must
    /// look at its readiness again (the shutdown may have missed the waker linked just
    /// now). Called after the link, so that a shutdown either finds the waker or is seen
    /// here. (An own task sees the stop too: one stuck in a poll past the shutdown's
    /// cancel wait may go on after the stop, and nothing will cancel it any more.)
    #[inline]
    pub(crate) fn watch(&self, io: &ScheduledIo, own: bool) -> bool {
        if own {
            if self.stopped.load(SeqCst) {
                io.core_stopped();
                return true;
            }
            return false;
        }
        if io.watched() {
            return false;
        }
        self.watch_slow(io)
    }

    #[cold]
    fn watch_slow(&self, io: &ScheduledIo) -> bool {
        let mut watched = lock(&self.watched);
        if watched.shut_down {
            io.core_stopped();
            return true;
        }
        if !io.watched() {
            watched.blocks.insert(io as *const ScheduledIo as usize);
            io.set_watched();
        }
        false
    }

    /// The core stopped: no event will be fetched any more. Every watched socket fails
    /// from now on (its waiters wake to see that), every other one at its next wait
    /// ([`watch`](Self::watch)), and every registration fails.
    pub(crate) fn shut_down(&self) {
        self.stopped.store(true, SeqCst);
        let mut wake = Vec::new();
        {
            let mut watched = lock(&self.watched);
            watched.shut_down = true;
            for &addr in &watched.blocks {
                // SAFETY: `addr` is the address of a watched block: it stays in the set
                // until its deregistration (`deregister_fd`, which takes this lock), and its
                // memory lives at least until then (the owner deregisters before it lets
                // go, and the release list keeps it longer). Blocks are only used by shared
                // reference (atomics and a mutex inside).
                let io = unsafe { &*(addr as *const ScheduledIo) };
                io.shut_down(&mut wake);
            }
        }
        // Outside the lock: a waker may drop a socket of this core on the spot, and its
        // deregistration takes the lock.
        for waker in wake {
            crate::contain::contain("waking a socket waiter", || waker.wake());
        }
    }

    /// Deregisters `fd` (call before closing it), wakes every waiter of `io`, and hands
    /// `io` to the poller for release.
    pub(crate) fn deregister(&self, fd: RawFd, io: &Arc<ScheduledIo>) {
        self.deregister_fd(fd, io);
        self.release(Released::Block(io.clone()));
    }

    /// [`deregister`](Self::deregister) for a block registered with
    /// [`register_embedded`](Self::register_embedded), from the drop of the value that
    /// embeds it (before the fd closes): `cell` is a weak reference to that value's
    /// allocation, which the poller drops at its next turn, freeing the memory. The block
    /// is never dropped in place: after this it holds nothing to drop (no waiter can be
    /// linked, since waiters borrow the value, and the wake emptied the poll-based slots),
    /// and events fetched before the deregistration may still read it until then.
    pub(crate) fn retire(&self, fd: RawFd, io: &ScheduledIo, cell: Weak<dyn Send + Sync>) {
        self.deregister_fd(fd, io);
        self.release(Released::Cell(cell));
    }

    fn deregister_fd(&self, fd: RawFd, io: &ScheduledIo) {
        // (Nothing waits on a socket being closed, so nothing marks it watched meanwhile.)
        if io.watched() {
            lock(&self.watched).blocks.remove(&(io as *const ScheduledIo as usize));
        }
        let _ = self.registry.deregister(&mut mio::unix::SourceFd(&fd));
        io.wake_all();
    }

    fn release(&self, block: Released) {
        lock(&self.released).push(block);
        self.any_released.store(true, SeqCst);
    }

    /// The poller's owner is about to block (`bounded`: it will pass [`Poller::turn`] a
    /// short `max_wait`): after this, re-check for work before waiting (a pusher that
    /// misses the announcement was seen by the re-check).
    pub(crate) fn announce_block(&self, bounded: bool) {
        self.blocking.store(if bounded { BLOCKING_BOUNDED } else { BLOCKING }, SeqCst);
        fence(SeqCst);
    }

    /// Whether the poller's owner is (about to be) blocked in a wait.
    pub(crate) fn is_blocking(&self) -> bool {
        self.blocking.load(SeqCst) != NOT_BLOCKING
    }

    /// Whether the poller's owner is (about to be) blocked in a wait it leaves by itself
    /// within a short interval. For a caller that has just issued a `SeqCst` fence.
    pub(crate) fn waits_bounded(&self) -> bool {
        self.blocking.load(SeqCst) == BLOCKING_BOUNDED
    }

    /// Interrupts the poller's blocking wait, if it is (about to be) in one.
    pub(crate) fn kick(&self) {
        fence(SeqCst);
        self.kick_fenced();
    }

    /// [`kick`](Self::kick) for a caller that has just issued a `SeqCst` fence.
    pub(crate) fn kick_fenced(&self) {
        if self.is_blocking() && self.blocking.swap(NOT_BLOCKING, SeqCst) != NOT_BLOCKING {
            // A failed write means the eventfd is already signalled: nothing is lost.
            let _ = self.kicker.wake();
        }
    }

    /// Interrupts the poller's next or current wait unconditionally (shutdown).
    pub(crate) fn kick_always(&self) {
        let _ = self.kicker.wake();
    }
}

impl Poller {
    /// One turn: frees the blocks of sockets closed before it, waits for events — not at
    /// all (`None`), or until `deadline` (`NEVER`: until an event or a kick), and at most
    /// `max_wait` (rounded up to whole milliseconds by `epoll_wait`; the deadline stays
    /// armed on the timerfd) — and dispatches them. A blocking wait must follow
    /// [`Driver::announce_block`].
    #[inline]
    pub(crate) fn turn(&mut self, driver: &Driver, wait: Option<Deadline>, max_wait: Option<Duration>) {
        // Sockets closed before this point are deregistered: no event fetched from now on
        // can name them, and events fetched earlier were dispatched in earlier turns.
        // A load first: the common turn (no socket closed) does no read-modify-write.
        if driver.any_released.load(SeqCst) && driver.any_released.swap(false, SeqCst) {
            lock(&driver.released).clear();
        }
        let timeout = match (wait.map(|deadline| self.arm(deadline)), max_wait) {
            (None, _) => Some(Duration::ZERO),
            (Some(None), max) => max,
            (Some(Some(t)), max) => Some(max.map_or(t, |m| t.min(m))),
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            debug_assert_eq!(e.kind(), io::ErrorKind::Interrupted, "epoll_wait failed: {e}");
        }
        driver.blocking.store(NOT_BLOCKING, SeqCst);
        for event in self.events.iter() {
            match event.token() {
                KICK_TOKEN => {}
                TIMER_TOKEN => {
                    self.timerfd.drain();
                    self.armed = Deadline::NEVER;
                }
                Token(ptr) => {
                    // SAFETY: tokens other than the two above are addresses of the
                    // `ScheduledIo` blocks of registered sockets (in an `Arc` of their own,
                    // or embedded and never dropped in place, see `register_embedded`); a
                    // closed socket's block is only freed at the start of a later turn (see
                    // the module docs), after this loop, and all its state is atomics and a
                    // mutex, only ever shared by reference.
                    let io = unsafe { &*(ptr as *const ScheduledIo) };
                    io.dispatch(event);
                }
            }
        }
    }

    /// Arms the timerfd for `deadline`; returns the epoll timeout to use.
    fn arm(&mut self, deadline: Deadline) -> Option<Duration> {
        if deadline.is_never() {
            return None;
        }
        let now = Deadline::now();
        if deadline <= now {
            return Some(Duration::ZERO);
        }
        if self.armed != deadline {
            if self.timerfd.set(deadline.since(now)).is_err() {
                // Fall back to epoll's millisecond timeout, rounded up by mio.
                return Some(deadline.since(now));
            }
            self.armed = deadline;
        }
        None
    }
}
