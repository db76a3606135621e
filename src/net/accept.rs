//! Accepting connections, shared by [`TcpListener`](super::TcpListener) and
//! [`UnixListener`](super::UnixListener): the two rules that keep a listener a fair and
//! quiet citizen.
//!
//! - **A budget's worth per turn.** An accept is one socket operation of the accepting
//!   task's cooperative budget, like a `recv`: a turn accepts what the backlog holds, up
//!   to 128 connections, and then goes to the back of the ready queue, behind the
//!   connections it spawned. A connection waiting in the backlog is a client waiting for
//!   service like the others: each turn of the listener admits up to a budget of them,
//!   and a connect flood adds at most that many tasks to each round. (Accepting one
//!   connection per turn, as iocore did before, admitted one client per round of *all*
//!   connections: with 7,400 busy connections, 14 a second, and a quarter of a 10k
//!   benchmark's clients were never served.)
//! - **Back-off when out of resources.** `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM` are
//!   returned as the OS reported them (so the caller can log them), and the next accept
//!   waits 10 ms first, doubling while the error repeats, up to 320 ms; a success resets
//!   it. A server that logs each error therefore logs a few lines per second at most,
//!   and new connections wait in the kernel's backlog instead of spinning the accept loop.

use crate::io::{Direction, RegisteredIo, Registration, Waiter};
use crate::sync::lock;
use crate::time::Sleep;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

/// The first back-off after a resource error.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_millis(320);

/// A listening socket's registration and its back-off state.
pub(crate) struct Acceptor {
    pub(crate) reg: Registration,
    /// Set while resource errors repeat: only then is `backoff` locked (an accept in good
    /// times touches no lock).
    troubled: AtomicBool,
    backoff: Mutex<Backoff>,
}

#[derive(Default)]
struct Backoff {
    /// The wait before the next accept, while the process is out of resources.
    wait: Option<Sleep>,
    /// The last back-off (doubled on the next resource error).
    last: Option<Duration>,
}

impl Acceptor {
    pub(crate) fn new(reg: Registration) -> Acceptor {
        Acceptor { reg, troubled: AtomicBool::new(false), backoff: Mutex::new(Backoff::default()) }
    }

    /// Accepts with `op` (the listener's `accept` syscall); any number of tasks may wait.
    /// A place among the listener's waiters, for an `incoming()` stream to keep (boxed, so
    /// the stream stays `Unpin`): each such stream is woken, like each `accept`.
    pub(crate) fn boxed_waiter(&self) -> Pin<Box<Waiter<'_>>> {
        Box::pin(self.reg.waiter(Direction::Read))
    }

    pub(crate) async fn accept<T>(&self, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        let mut waiter = pin!(self.reg.waiter(Direction::Read));
        poll_fn(|cx| self.poll_accept(cx, Some(waiter.as_mut()), &mut op)).await
    }

    /// One attempt: waits out a back-off, then for a connection (`waiter`: the `async`
    /// caller's place in the read waiters; `None`: the poll-based slot).
    pub(crate) fn poll_accept<T>(
        &self,
        cx: &mut Context<'_>,
        waiter: Option<Pin<&mut Waiter<'_>>>,
        op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        if self.poll_backoff(cx).is_pending() {
            return Poll::Pending;
        }
        let r = std::task::ready!(self.reg.poll_io(cx, Direction::Read, waiter, op));
        match &r {
            Ok(_) => {
                if self.troubled.load(Relaxed) {
                    lock(&self.backoff).last = None;
                    self.troubled.store(false, Relaxed);
                }
            }
            Err(e) if out_of_resources(e) => {
                let mut b = lock(&self.backoff);
                let wait = b.last.map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF));
                b.last = Some(wait);
                b.wait = Some(crate::time::sleep(wait));
                self.troubled.store(true, Relaxed);
            }
            Err(_) => {}
        }
        Poll::Ready(r)
    }

    /// Ready when no back-off is running (or it has passed).
    fn poll_backoff(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.troubled.load(Relaxed) {
            return Poll::Ready(());
        }
        let mut b = lock(&self.backoff);
        let Some(wait) = b.wait.as_mut() else {
            return Poll::Ready(());
        };
        std::task::ready!(Pin::new(wait).poll(cx));
        b.wait = None;
        Poll::Ready(())
    }
}

/// The errors that mean the process or the system is out of something an accept needs.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
