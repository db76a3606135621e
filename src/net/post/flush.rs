//! The flusher: the per-socket task that writes posted items (with `writev` for a stream,
//! datagram by datagram for UDP), started on the first post and ended once the queue is
//! closed (or the owner is gone) and drained. It is generic over the socket it writes to,
//! an [`Outlet`].

use super::{Item, PostQueue, SocketControl, MAX_IOV};
use crate::io::{Direction, ScheduledIo, Waiter};
use crate::runtime::Handle;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

/// A socket a flusher writes a post queue to (its [`PostSender`](super::PostSender)s
/// control it through [`SocketControl`]).
pub(crate) trait Outlet: SocketControl + Sized + 'static {
    /// What its queue holds.
    type Item: Item;
    fn queue(&self) -> &PostQueue<Self::Item>;
    /// The socket's readiness block.
    fn io(&self) -> &ScheduledIo;
    /// The core the flusher runs on.
    fn core(&self) -> &Handle;
    /// Whether every owner let go (then the flusher writes what is left and ends).
    fn owner_gone(&self) -> bool;
    /// How long a flusher whose owner is gone keeps trying (`None`: the default, 30 s).
    fn linger(&self) -> Option<Duration>;
    /// `op to PEER: error`.
    fn context_error(&self, op: &str, e: io::Error) -> io::Error;
    /// Writes from the front of `batch` once the socket may be writable; `Ok(n)`: the
    /// first `n` bytes (in [`Item::len`] units) left the queue.
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        waiter: Pin<&mut Waiter<'_>>,
        batch: &VecDeque<Self::Item>,
    ) -> Poll<io::Result<usize>>;
}

/// How long a dropped stream's flusher keeps trying when no linger is set.
const DEFAULT_LINGER: Duration = Duration::from_secs(30);
/// Writes the flusher does before yielding its worker.
const FLUSH_ROUNDS: u32 = 16;

/// Starts the socket's flusher task if it is not running yet.
pub(crate) fn ensure_flusher<S: Outlet>(sock: &Arc<S>) {
    let q = sock.queue();
    let link = || -> Weak<dyn SocketControl> { Arc::downgrade(sock) as Weak<S> };
    if q.claim_flusher_start(link) {
        /// Marks the flusher gone when its future drops (run to its end, or never polled),
        /// and counts it for the core's metrics while it lives.
        struct Gone<S: Outlet>(Arc<S>);
        impl<S: Outlet> Drop for Gone<S> {
            fn drop(&mut self) {
                self.0.queue().flusher_gone();
                self.0.core().sched.flusher_gone();
            }
        }
        sock.core().sched.flusher_started();
        let gone = Gone(sock.clone());
        let flusher = sock.core().spawn(async move {
            let gone = gone;
            flush_loop(&*gone.0).await
        });
        // Cancelled already: the core is shutting down and refused the task, and nothing
        // would ever send. (Merely finished is fine: another worker may have run the
        // flusher to its end already.)
        if let Some(Err(e)) = futures::FutureExt::now_or_never(flusher) {
            if e.is_cancelled() {
                q.close(Some(io::Error::other("post_send: the socket's core is shut down")));
            }
        }
    }
}

/// The flusher: whenever it holds the `FLUSHER` role, writes the queue until it is empty,
/// then releases the role. It exits (dropping its reference to the socket, which closes
/// it if the owner is gone) once the owner is gone and everything is written, when the
/// queue is closed, or on a write error.
async fn flush_loop<S: Outlet>(sock: &S) {
    /// However the flusher ends (even cancelled by a shutdown), the socket has failed for
    /// posting: later posts get their data back instead of queueing for nobody.
    struct FailOnExit<'a, T: Item>(&'a PostQueue<T>);
    impl<T: Item> Drop for FailOnExit<'_, T> {
        fn drop(&mut self) {
            self.0.close(Some(io::Error::new(io::ErrorKind::NotConnected, "socket is closed")));
        }
    }
    let q = sock.queue();
    let fail = FailOnExit(q);
    let mut batch: VecDeque<S::Item> = VecDeque::new();
    // Set once the owner is gone: the deadline (linger) for writing what is left.
    let mut give_up: Option<crate::time::Sleep> = None;
    let mut rounds = 0u32;
    let mut waiter = pin!(sock.io().waiter(Direction::Write));
    loop {
        if !wait_scheduled(sock).await {
            if q.has_failed() {
                return;
            }
            // Closed, or the owner is gone, with nothing scheduled: refuse new posts, then
            // write whatever was accepted before that (posts racing with the close: the
            // last of them wakes us).
            q.close(None);
            let settled = poll_fn(|cx| {
                q.register_flusher(cx.waker());
                if q.posts_in_flight() {
                    return Poll::Pending;
                }
                if !q.has_bufs() && !q.flusher_holds_role() {
                    return Poll::Ready(true);
                }
                // Buffers wait: take the role (or mark it pending for the owner, whose
                // release hands it over and wakes us; until then, wait).
                q.schedule();
                if q.flusher_holds_role() {
                    Poll::Ready(false)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if settled {
                // Everything accepted was written: a clean end, not a failure.
                std::mem::forget(fail);
                return;
            }
            continue;
        }
        // Holding FLUSHER: write until the queue is empty.
        loop {
            while batch.len() < MAX_IOV {
                match q.pop() {
                    Some(b) => batch.push_back(b),
                    None => break,
                }
            }
            if batch.is_empty() {
                if q.release_flusher_role() {
                    // A post raced with the release: still ours, keep writing.
                    continue;
                }
                break;
            }
            let result = poll_fn(|cx| {
                // Woken by `close` (abort) and by the last owner's drop, even while the
                // write waits for room.
                q.register_flusher(cx.waker());
                if q.has_failed() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "socket was aborted",
                    )));
                }
                if give_up.is_none() && sock.owner_gone() {
                    let linger = sock.linger().unwrap_or(DEFAULT_LINGER);
                    give_up = Some(crate::time::sleep(linger));
                }
                if let Some(deadline) = give_up.as_mut() {
                    if std::pin::Pin::new(deadline).poll(cx).is_ready() {
                        let e =
                            io::Error::new(io::ErrorKind::TimedOut, "linger time elapsed with data unsent");
                        return Poll::Ready(Err(e));
                    }
                }
                sock.poll_write(cx, waiter.as_mut(), &batch)
            })
            .await;
            match result {
                Ok(n) => {
                    q.consumed(n);
                    advance(&mut batch, n);
                }
                Err(e) => {
                    q.close(Some(sock.context_error("send", e)));
                    return;
                }
            }
            rounds += 1;
            if rounds % FLUSH_ROUNDS == 0 {
                crate::task::yield_now().await;
            }
        }
    }
}

/// Waits until the flusher holds the `FLUSHER` role (true), or has nothing scheduled while
/// the queue is closed or failed, or the owner is gone (false).
async fn wait_scheduled<S: Outlet>(sock: &S) -> bool {
    let q = sock.queue();
    poll_fn(|cx| {
        q.register_flusher(cx.waker());
        if q.has_failed() {
            Poll::Ready(false)
        } else if q.flusher_holds_role() {
            Poll::Ready(true)
        } else if q.is_closed() || sock.owner_gone() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Drops the first `n` written bytes from the batch.
fn advance<T: Item>(batch: &mut VecDeque<T>, mut n: usize) {
    while n > 0 {
        let Some(front) = batch.front_mut() else {
            debug_assert!(false, "wrote more than the batch");
            return;
        };
        if n >= front.len() {
            n -= front.len();
            batch.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

/// Up to [`MAX_IOV`] `IoSlice`s on the stack, so a `writev` allocates nothing.
pub(crate) struct IoSlices<'a> {
    len: usize,
    items: [io::IoSlice<'a>; MAX_IOV],
}

impl<'a> FromIterator<io::IoSlice<'a>> for IoSlices<'a> {
    fn from_iter<I: IntoIterator<Item = io::IoSlice<'a>>>(iter: I) -> Self {
        let mut s = IoSlices { len: 0, items: [io::IoSlice::new(&[]); MAX_IOV] };
        for item in iter.into_iter().take(MAX_IOV) {
            s.items[s.len] = item;
            s.len += 1;
        }
        s
    }
}

impl<'a> std::ops::Deref for IoSlices<'a> {
    type Target = [io::IoSlice<'a>];
    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}
