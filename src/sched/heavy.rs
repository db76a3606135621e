//! Heavy tasks: fairness in CPU time, not only in turns.
//!
//! The ready queue gives every ready task one poll per round. That is fair in turns but not
//! in CPU time: a task whose poll computes for 2 ms takes as much of a worker as a thousand
//! tasks whose polls take 2 µs, and each of those waits for it in every round. So a task
//! whose last measured poll computed for more than [`HEAVY_POLL`] of CPU is *heavy* until
//! a short poll: while the workers are busy, a worker that takes it from a
//! queue hands it to the heavy lane (`lane`), whose low-priority threads run it on the CPU
//! time the workers leave, and takes the next task. The lane boosts a task back to the
//! workers when it has been stalled for [`BOOST_FACTOR`] times the last heavy poll's CPU
//! time. This holds for whatever readies the task meanwhile (its own timers too), but not
//! for an abort. (The first version made a task rest for 16 times its poll's CPU time
//! whatever its next polls did: a connection that had served one heavy request then
//! served its light ones from the lane, 3x the light requests' p99 in an RPC server.)
//!
//! Measuring: the worker loop stamps the clock between polls anyway, so every poll's wall
//! time is known for free. A poll that lasted [`HEAVY_POLL`] on the wall clock may have been
//! preempted by the kernel rather than heavy (more threads than CPUs), so it only makes the
//! task *suspect*: its next polls are measured with the thread's CPU clock (two system
//! calls each, only for such polls), and only CPU time makes a task heavy. So a task's
//! first heavy poll is not known as such; from its second on, each one is, as long as no
//! more than [`MEASURED_POLLS`] short ones come between two heavy ones. Socket operations
//! are not computing: the cooperative budget bounds them per poll, and their cost is the
//! kernel's (an accept loop's turn may take a millisecond of system time, a 16 MiB `send`
//! several). Each one the poll completed allows it [`IO_OP_ALLOWANCE`] more on either
//! clock, and each KiB its stream transfers moved [`IO_KIB_ALLOWANCE`].
//!
//! The task's record of this (5 bits beside its reference count, `Header::cost`) is
//! written by the thread that polled it and read by the next one to take it; the queues'
//! release/acquire orders the two.

use crate::io::Spent;
use crate::task::raw::RawTask;
use crate::time::clock;
use std::time::Duration;

/// CPU time of one poll above which its task is heavy. Ordinary polls take microseconds; this
/// is a task computing for a good part of a millisecond. (A poll that blocks its thread
/// uses no CPU meanwhile, and does not count.)
pub(crate) const HEAVY_POLL: Duration = Duration::from_micros(500);

/// A heavy lane that has taken no task for this many times the last heavy poll's CPU time
/// boosts one to the workers, so under load the heavy tasks together get about a
/// seventeenth of a worker (at 16).
pub(crate) const BOOST_FACTOR: u32 = 16;

/// Time a poll may spend per socket operation it completed, on top of [`HEAVY_POLL`]:
/// far above what one costs (a system call, a few µs), so that only computation counts.
pub(crate) const IO_OP_ALLOWANCE: Duration = Duration::from_micros(50);

/// Time a poll may spend per KiB its stream transfers moved, on top of the above: about
/// three times what the kernel takes to copy it on loopback (a 16 MiB `send` costs
/// milliseconds of system time).
pub(crate) const IO_KIB_ALLOWANCE: Duration = Duration::from_micros(1);

/// Polls a task's measuring goes on for after one that was long (on the wall clock or in
/// CPU time): a task whose heavy polls come between up to this many short ones stays
/// measured, and is heavy after each heavy one. (A thread preempted by the kernel in an
/// ordinary poll costs this many measurements, two system calls each.)
const MEASURED_POLLS: u32 = 15;

/// The time `spent`'s socket operations are allowed (on either clock).
fn io_allowance(spent: &Spent) -> Duration {
    IO_OP_ALLOWANCE * spent.ops + IO_KIB_ALLOWANCE * (spent.bytes >> 10).min(u64::from(u32::MAX)) as u32
}

/// The cost record's low bits: how many more polls of the task to measure with the CPU clock
/// ([`MEASURED_POLLS`] after a long one; each short measured poll takes one off).
const MEASURE: u32 = 0b1111;

/// The cost record's fifth bit: the task's last measured poll was heavy, until a short
/// measured poll or a boost (`lane`) clears it.
const HEAVY: u32 = 0b1_0000;

const _: () = assert!((MEASURE | HEAVY) >> crate::task::raw::COST_BITS == 0);

/// What a worker knows before a poll: the thread's CPU time when it began, if the poll is
/// measured.
pub(crate) struct PollCost {
    cpu_start: Option<Duration>,
}

impl PollCost {
    /// Called by the owner right before it polls `task`.
    #[inline(always)]
    pub(crate) fn before(task: RawTask) -> PollCost {
        let measure = task.header().cost() & MEASURE != 0;
        PollCost { cpu_start: if measure { thread_cpu_time() } else { None } }
    }

    /// Called by the owner right after the poll (the task returned `Pending`), before it
    /// gives the task up: records whether its polls are to be measured, and whether it is
    /// heavy. `wall`: the poll's `clock::stamp` units; `heavy_poll`: [`HEAVY_POLL`] in those
    /// units; `spent`: what its socket operations did. Returns the CPU time it computed for
    /// if the poll was heavy.
    #[inline(always)]
    pub(crate) fn after(self, task: RawTask, wall: u64, heavy_poll: u64, spent: &Spent) -> Option<Duration> {
        if self.cpu_start.is_none() && wall < heavy_poll {
            return None;
        }
        self.after_long(task, wall, spent)
    }

    #[cold]
    #[inline(never)]
    fn after_long(self, task: RawTask, wall: u64, spent: &Spent) -> Option<Duration> {
        let header = task.header();
        let was = header.cost();
        let io = io_allowance(spent);
        let Some(start) = self.cpu_start else {
            if clock::duration_of(wall).saturating_sub(io) >= HEAVY_POLL {
                // Long on the wall clock: measure the next ones.
                header.set_cost((was & !MEASURE) | MEASURED_POLLS);
            }
            return None;
        };
        let cpu = thread_cpu_time().map_or(Duration::ZERO, |now| now.saturating_sub(start));
        let computing = cpu.saturating_sub(io);
        if computing < HEAVY_POLL {
            header.set_cost((was - 1) & !HEAVY);
            return None;
        }
        header.set_cost(HEAVY | MEASURED_POLLS);
        Some(computing)
    }
}

/// Whether `task` (owned by the caller, who just took it from a queue or polled it) is
/// heavy: while the workers are busy it should run on the heavy lane. (Not once it was
/// aborted: it runs only to be dropped, which should not wait.)
#[inline(always)]
pub(crate) fn is_heavy(task: RawTask) -> bool {
    task.header().cost() & HEAVY != 0 && !task.header().state.is_cancelled()
}

/// Ends `task`'s heaviness (the task is owned by the caller): it is boosted (`lane`). Its
/// polls stay measured, so its next heavy one makes it heavy again.
pub(crate) fn end_heavy(task: RawTask) {
    let header = task.header();
    header.set_cost(header.cost() & MEASURE);
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), if the clock is available.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}
