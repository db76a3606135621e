//! The IO layer: the kernel event queue, socket readiness and the tasks waiting on it.
//!
//! - `driver`: the `mio::Poll` (epoll), its kicker, the `timerfd` for sub-ms waits, the
//!   dispatch of events to sockets and the deferred release of closed sockets' blocks. The
//!   [`Poller`] half is owned by whoever holds the sched-role; the [`Driver`] half is shared.
//! - `readiness`: one socket's readiness bits and waiters ([`ScheduledIo`]).
//! - `waiters`: the intrusive waiter list of one socket direction.
//! - `registration`: a socket's membership in the queue and its waiting operations.
//! - `budget`: the cooperative budget of socket operations per task poll.
//!
//! Each socket is registered once, edge-triggered, for read and write, and stays registered
//! until it is closed. This layer knows nothing of tasks or the scheduler: it wakes
//! `Waker`s (which of them are the core's own tasks', whose waits its shutdown ends, the
//! core says: `Handle::owns_waker`).

mod budget;
mod driver;
mod readiness;
mod registration;
mod waiters;

pub(crate) use budget::{reset as reset_budget, turn_ended, Spent, BUDGET};
pub(crate) use driver::{new as driver_pair, Driver, Poller};
pub(crate) use readiness::{Direction, ScheduledIo};
pub(crate) use registration::{RegisteredIo, Registration};
pub(crate) use waiters::Waiter;
