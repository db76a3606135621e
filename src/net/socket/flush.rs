//! The flusher: the per-socket task that writes posted data with `writev`, started on
//! the first post and ended once the queue is closed (or the owner is gone) and drained.

use super::Socket;
use crate::io::Direction;
use crate::net::post::{PostQueue, MAX_IOV};
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice, Write};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

/// How long a dropped stream's flusher keeps trying when no linger is set.
const DEFAULT_LINGER: Duration = Duration::from_secs(30);
/// Writes the flusher does before yielding its worker.
const FLUSH_ROUNDS: u32 = 16;

/// Starts the socket's flusher task if it is not running yet.
pub(crate) fn ensure_flusher(sock: &Arc<Socket>) {
    let q = &sock.post;
    if q.claim_flusher_start() {
        let flusher = sock.core.spawn(flush_loop(sock.clone()));
        if flusher.is_finished() {
            // The core is shutting down and refused the task: nothing would ever send.
            q.close(Some(io::Error::other("post_send: the socket's core is shut down")));
        }
    }
}

/// The flusher: whenever it holds the `FLUSHER` role, writes the queue until it is empty,
/// then releases the role. It exits (dropping its reference to the socket, which closes
/// it if the owner is gone) once the owner is gone and everything is written, when the
/// queue is closed, or on a write error.
async fn flush_loop(sock: Arc<Socket>) {
    /// However the flusher ends (even cancelled by a shutdown), the socket has failed for
    /// posting: later posts get their data back instead of queueing for nobody.
    struct FailOnExit<'a>(&'a PostQueue);
    impl Drop for FailOnExit<'_> {
        fn drop(&mut self) {
            self.0.close(Some(io::Error::new(io::ErrorKind::NotConnected, "socket is closed")));
        }
    }
    let q = &sock.post;
    let fail = FailOnExit(q);
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    // Set once the owner is gone: the deadline (linger) for writing what is left.
    let mut give_up: Option<crate::time::Sleep> = None;
    let mut rounds = 0u32;
    let mut waiter = pin!(sock.reg.waiter(Direction::Write));
    loop {
        if !wait_scheduled(&sock).await {
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
                    Poll::Pending
                } else {
                    Poll::Ready(!q.has_bufs() && !q.flusher_holds_role())
                }
            })
            .await;
            if settled {
                // Everything accepted was written: a clean end, not a failure.
                std::mem::forget(fail);
                return;
            }
            q.schedule();
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
            let want = batch.iter().map(|b| b.len()).sum();
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
                sock.reg.poll_transfer(cx, Direction::Write, want, Some(waiter.as_mut()), || {
                    write_batch(&sock, &batch)
                })
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
async fn wait_scheduled(sock: &Socket) -> bool {
    let q = &sock.post;
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
fn advance(batch: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let front = batch.front_mut().expect("wrote more than the batch");
        if n >= front.len() {
            n -= front.len();
            batch.pop_front();
        } else {
            let _ = front.split_to(n);
            n = 0;
        }
    }
}

fn write_batch(sock: &Socket, batch: &VecDeque<Bytes>) -> io::Result<usize> {
    let slices: IoSlices<'_> = batch.iter().map(|b| IoSlice::new(b)).collect();
    (&sock.stream).write_vectored(&slices)
}

/// Up to [`MAX_IOV`] `IoSlice`s on the stack, so a `writev` allocates nothing.
struct IoSlices<'a> {
    len: usize,
    items: [IoSlice<'a>; MAX_IOV],
}

impl<'a> FromIterator<IoSlice<'a>> for IoSlices<'a> {
    fn from_iter<I: IntoIterator<Item = IoSlice<'a>>>(iter: I) -> Self {
        let mut s = IoSlices { len: 0, items: [IoSlice::new(&[]); MAX_IOV] };
        for item in iter.into_iter().take(MAX_IOV) {
            s.items[s.len] = item;
            s.len += 1;
        }
        s
    }
}

impl<'a> std::ops::Deref for IoSlices<'a> {
    type Target = [IoSlice<'a>];
    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}
