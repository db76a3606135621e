//! Readiness of one registered socket ([`ScheduledIo`]): the bits the kernel reported, a
//! tick that orders them against operations, and the waiters of each direction.
//!
//! The sched-role sets readiness bits from each kernel event ([`ScheduledIo::dispatch`])
//! and wakes every waiter of the direction that became ready: the direction's waiter list
//! (the `async` operations) and its single slot (the poll-based trait methods). The tick
//! of each direction (bumped by every event that concerns it) lets an operation that saw
//! `WouldBlock` clear only the readiness it observed, never a newer edge of its direction;
//! an edge of the other direction does not keep a spent readiness alive.
//!
//! An error (`EPOLLERR`) makes both directions ready, each through its own bit, and an
//! operation's `WouldBlock` clears its direction's error bit like its readiness bit: the
//! operation that reports the error consumes it in the kernel (`SO_ERROR`), so a later one
//! that finds nothing to do waits for a new edge instead of retrying forever. Only the
//! closed bits (`EPOLLRDHUP`, `EPOLLHUP`) stay: the kernel does not report them twice.

use super::waiters::{Armed, Waiter, WaiterList};
use crate::sync::{AtomicUsize, Ordering::*};
use mio::event::Event;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

const READABLE: usize = 1;
const WRITABLE: usize = 2;
const READ_CLOSED: usize = 4;
const WRITE_CLOSED: usize = 8;
const READ_ERROR: usize = 16;
const WRITE_ERROR: usize = 128;
/// The core's event queue shut down (`Driver::shut_down`): no event will come any more, so
/// every operation fails at once (and every waiter wakes to see that). Permanent. Set when
/// the core stops for a socket the driver watches, else by the first wait that finds the
/// core stopped (`Driver::watch`).
const SHUT_DOWN: usize = 256;
/// Urgent data arrived (`EPOLLPRI`: TCP's urgent byte, a Unix `MSG_OOB` byte): a read stops
/// short at its mark with more data queued behind it, so until a `WouldBlock` spends this
/// bit, a short read does not mean the buffer was drained (see `poll_transfer`).
const READ_URGENT: usize = 512;
/// The `armed` flags of the two waiter lists (see [`Armed`]): spare bits of the readiness
/// byte, never part of a direction's mask.
const READERS_ARMED: usize = 32;
const WRITERS_ARMED: usize = 64;
/// The driver watches this socket: its set of sockets that its core's shutdown must wake
/// holds it (see `Driver::watch`). Set under that set's lock, never cleared.
const WATCHED: usize = 1024;
/// The readiness bits (the low 11 bits); each direction's tick starts above them.
const READ_TICK_SHIFT: u32 = 11;
/// Where the write tick starts, and each tick's width.
const WRITE_TICK_SHIFT: u32 = READ_TICK_SHIFT + TICK_BITS;
const TICK_BITS: u32 = (usize::BITS - READ_TICK_SHIFT) / 2;
const TICK_MASK: usize = (1 << TICK_BITS) - 1;

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
            Direction::Read => READABLE | READ_CLOSED | READ_ERROR | READ_URGENT | SHUT_DOWN,
            Direction::Write => WRITABLE | WRITE_CLOSED | WRITE_ERROR | SHUT_DOWN,
        }
    }

    /// The bits a `WouldBlock` in this direction shows to be spent.
    fn spent(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_ERROR | READ_URGENT,
            Direction::Write => WRITABLE | WRITE_ERROR,
        }
    }

    fn tick_shift(self) -> u32 {
        match self {
            Direction::Read => READ_TICK_SHIFT,
            Direction::Write => WRITE_TICK_SHIFT,
        }
    }

    /// This direction's tick in a readiness word.
    fn tick(self, word: usize) -> usize {
        (word >> self.tick_shift()) & TICK_MASK
    }

    /// `word` with this direction's tick advanced by one (wrapping within its bits).
    fn bump_tick(self, word: usize) -> usize {
        let shift = self.tick_shift();
        let tick = (self.tick(word) + 1) & TICK_MASK;
        (word & !(TICK_MASK << shift)) | (tick << shift)
    }
}

/// Readiness observed by an operation: pass it back to [`ScheduledIo::clear`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ready {
    word: usize,
    dir: Direction,
}

impl Ready {
    /// Whether urgent data arrived since the last `WouldBlock` (see [`READ_URGENT`]).
    #[inline]
    pub(crate) fn urgent(self) -> bool {
        self.word & READ_URGENT != 0
    }

    /// `Err` if the socket's core had shut down (see [`ScheduledIo::shut_down`]).
    #[inline]
    pub(crate) fn check_core(self) -> std::io::Result<()> {
        if self.word & SHUT_DOWN == 0 {
            return Ok(());
        }
        Err(core_gone())
    }
}

#[cold]
fn core_gone() -> std::io::Error {
    std::io::Error::other("the iocore core this socket was made on has shut down")
}

/// Readiness state and waiters of one registered socket.
pub(crate) struct ScheduledIo {
    /// Readiness bits, the waiter lists' `armed` flags and `WATCHED` (low 11 bits), then
    /// the read tick and the write tick (the number of events that concerned each
    /// direction, wrapping).
    readiness: AtomicUsize,
    /// `async` operations waiting to read, and the slot of the poll-based reader
    /// (`poll_read`, `poll_accept`).
    readers: WaiterList,
    /// `async` operations waiting to write (the flusher among them), and the slot of the
    /// poll-based writer (`poll_write`).
    writers: WaiterList,
}

impl ScheduledIo {
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            // Optimistic: try the syscall first; WouldBlock clears it.
            readiness: AtomicUsize::new(READABLE | WRITABLE),
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
        if event.is_priority() {
            bits |= READABLE | READ_URGENT;
        }
        if event.is_writable() {
            bits |= WRITABLE;
        }
        if event.is_read_closed() {
            bits |= READ_CLOSED;
        }
        // (mio calls a bare error "write closed" too: an ICMP error on a UDP socket, which
        // a later send need not see again. Only a hang-up closes the write side for good.)
        if event.is_write_closed() && (event.is_read_closed() || !event.is_error()) {
            bits |= WRITE_CLOSED;
        }
        if event.is_error() {
            bits |= READ_ERROR | WRITE_ERROR;
        }
        self.set(bits);
    }

    /// Adds `bits` to the readiness, advancing the tick of each direction they concern,
    /// and wakes that direction's waiters.
    fn set(&self, bits: usize) {
        self.publish(bits);
        for dir in [Direction::Read, Direction::Write] {
            if bits & dir.mask() != 0 {
                self.wake(dir);
            }
        }
    }

    /// Sets `bits` (and bumps the tick of each direction they touch) without waking.
    fn publish(&self, bits: usize) {
        // SeqCst: the waiter lists' handshake (see `waiters.rs`) needs this publication
        // ordered before their `armed` loads.
        let _ = self.readiness.fetch_update(SeqCst, SeqCst, |cur| {
            let mut word = cur | bits;
            for dir in [Direction::Read, Direction::Write] {
                if bits & dir.mask() != 0 {
                    word = dir.bump_tick(word);
                }
            }
            Some(word)
        });
    }

    /// Wakes every waiter of `dir` (the list's and its slot's).
    fn wake(&self, dir: Direction) {
        self.waiters(dir).wake_all(self.armed(dir));
    }

    /// The `armed` flag of the direction's waiter list.
    fn armed(&self, dir: Direction) -> Armed<'_> {
        match dir {
            Direction::Read => Armed::new(&self.readiness, READERS_ARMED),
            Direction::Write => Armed::new(&self.readiness, WRITERS_ARMED),
        }
    }

    /// The direction's waiters: the `async` ones and the poll-based slot.
    pub(crate) fn waiters(&self, dir: Direction) -> &WaiterList {
        match dir {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    fn ready_now(&self, dir: Direction) -> Option<Ready> {
        let word = self.readiness.load(SeqCst);
        (word & dir.mask() != 0).then_some(Ready { word, dir })
    }

    /// Ready if the socket may be ready in `dir`; otherwise registers the task: in
    /// `waiter`'s list if given (it must belong to this socket and direction, see
    /// [`Registration::waiter`]), else in the direction's single slot.
    pub(crate) fn ready_or_wait(
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
                if waiter.wait(self.armed(dir), cx.waker(), || {
                    seen = self.ready_now(dir);
                    seen.is_some()
                }) {
                    return Poll::Ready(seen.expect("ready"));
                }
                Poll::Pending
            }
            None => {
                self.waiters(dir).register_slot(self.armed(dir), cx.waker());
                match self.ready_now(dir) {
                    Some(ready) => Poll::Ready(ready),
                    None => Poll::Pending,
                }
            }
        }
    }

    /// The readiness as it is now, for an operation attempted without waiting.
    #[inline]
    pub(crate) fn snapshot(&self, dir: Direction) -> Ready {
        Ready { word: self.readiness.load(Acquire), dir }
    }

    /// The operation got `WouldBlock`: forget the readiness (and error) it saw, unless an
    /// event of its direction arrived since (then the next attempt may succeed).
    #[inline]
    pub(crate) fn clear(&self, ready: Ready) {
        let (dir, seen_tick) = (ready.dir, ready.dir.tick(ready.word));
        let spent = dir.spent();
        let _ = self.readiness.fetch_update(AcqRel, Acquire, |cur| {
            (dir.tick(cur) == seen_tick && cur & spent != 0).then_some(cur & !spent)
        });
    }

    /// Wakes every waiter (the socket is being closed or aborted), as an error would: each
    /// tries its operation once more, and must see the socket's state there (a
    /// `WouldBlock` sends it back to waiting).
    pub(crate) fn wake_all(&self) {
        self.set(READ_ERROR | WRITE_ERROR);
    }

    /// Whether the driver watches this socket (see `Driver::watch`).
    #[inline]
    pub(crate) fn watched(&self) -> bool {
        self.readiness.load(Relaxed) & WATCHED != 0
    }

    /// Records that the driver watches this socket (under its set's lock).
    pub(crate) fn set_watched(&self) {
        self.readiness.fetch_or(WATCHED, Relaxed);
    }

    /// The core's event queue had shut down when a wait on this socket began: from now on
    /// every operation fails ([`Ready::check_core`]), as after [`shut_down`](Self::shut_down).
    pub(crate) fn core_stopped(&self) {
        self.publish(SHUT_DOWN);
    }

    /// The core's event queue shut down: from now on every operation fails
    /// ([`Ready::check_core`]). The wakers of every waiter go to `wake`, for the caller to
    /// wake once it has let go of its own lock (a waker may drop a socket of the core).
    pub(crate) fn shut_down(&self, wake: &mut Vec<Waker>) {
        self.core_stopped();
        for dir in [Direction::Read, Direction::Write] {
            self.waiters(dir).take_all(self.armed(dir), wake);
        }
    }
}

impl fmt::Debug for ScheduledIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledIo").field("readiness", &self.readiness.load(Relaxed)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(io: &ScheduledIo) -> bool {
        io.ready_now(Direction::Read).is_some()
    }

    #[test]
    fn would_block_clears_the_readiness_it_saw() {
        let io = ScheduledIo::new();
        let seen = io.snapshot(Direction::Read);
        io.clear(seen);
        assert!(!readable(&io));
        assert!(io.ready_now(Direction::Write).is_some(), "the other direction was cleared too");
    }

    #[test]
    fn a_newer_edge_of_the_same_direction_survives_the_clear() {
        let io = ScheduledIo::new();
        let seen = io.snapshot(Direction::Read);
        io.set(READABLE);
        io.clear(seen);
        assert!(readable(&io), "a read edge that came after the attempt was forgotten");
    }

    #[test]
    fn an_edge_of_the_other_direction_does_not_keep_a_spent_readiness() {
        let io = ScheduledIo::new();
        let seen = io.snapshot(Direction::Read);
        io.set(WRITABLE);
        io.clear(seen);
        assert!(!readable(&io), "a write edge kept the spent read readiness alive");
        let seen = io.snapshot(Direction::Write);
        io.set(READABLE);
        io.clear(seen);
        assert!(io.ready_now(Direction::Write).is_none());
        assert!(readable(&io));
    }

    #[test]
    fn an_error_is_spent_by_a_would_block_of_each_direction() {
        let io = ScheduledIo::new();
        for dir in [Direction::Read, Direction::Write] {
            let seen = io.snapshot(dir);
            io.clear(seen);
        }
        io.set(READ_ERROR | WRITE_ERROR);
        let seen = io.snapshot(Direction::Read);
        io.clear(seen);
        assert!(!readable(&io), "a spent error kept the read side ready (a retry loop would spin)");
        assert!(io.ready_now(Direction::Write).is_some(), "the write side lost an error it has not seen");
        let seen = io.snapshot(Direction::Write);
        io.set(READ_ERROR | WRITE_ERROR);
        io.clear(seen);
        assert!(io.ready_now(Direction::Write).is_some(), "a newer error was forgotten");
    }

    #[test]
    fn closed_bits_stay() {
        let io = ScheduledIo::new();
        io.set(READ_CLOSED);
        let seen = io.snapshot(Direction::Read);
        io.clear(seen);
        assert!(readable(&io), "the end of the stream is reported once: it must stay");
    }

    #[test]
    fn ticks_wrap_within_their_bits() {
        let mut word = READABLE;
        for _ in 0..3 {
            word = Direction::Write.bump_tick(word);
        }
        assert_eq!(Direction::Write.tick(word), 3);
        assert_eq!(Direction::Read.tick(word), 0);
        let full = TICK_MASK << READ_TICK_SHIFT | READABLE;
        let wrapped = Direction::Read.bump_tick(full);
        assert_eq!(Direction::Read.tick(wrapped), 0);
        assert_eq!(Direction::Write.tick(wrapped), 0, "the read tick overflowed into the write tick");
        assert_eq!(wrapped & ((1 << READ_TICK_SHIFT) - 1), READABLE);
    }
}
