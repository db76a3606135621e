//! `post_send`: a socket's lock-free queue of byte buffers and its writer hand-off.
//!
//! Any thread may push a `Bytes` ([`PostSender::post_send`]); posting never blocks and
//! never awaits. The core writes the queue with `writev` (up to [`MAX_IOV`] buffers per
//! syscall) from a small per-socket *flusher* task, started on first use (it lives next to
//! the socket, in `net::socket::flush`; this module knows no socket).
//!
//! Who may write to the socket is decided by one atomic, `writer`:
//!
//! | state     | meaning                                                         |
//! |-----------|-----------------------------------------------------------------|
//! | `IDLE`    | nobody writes; the queue is empty or about to be scheduled      |
//! | `FLUSHER` | the flusher owns the socket until the queue is empty            |
//! | `OWNER`   | the stream's owner writes directly (fast path, queue was empty) |
//!
//! A post that moves `IDLE -> FLUSHER` wakes the flusher. The owner's `send` takes
//! `IDLE -> OWNER` and writes directly; if the flusher is busy it queues its bytes behind
//! the posted ones instead. Either way, everything posted before an owner's `send` leaves
//! before it, and bytes posted by one thread leave in the order posted. When the owner
//! releases `OWNER` it re-checks the queue, and a poster re-checks after its CAS fails
//! (both `SeqCst`), so a post is never stranded.
//!
//! Closing: posts register in `inflight` before looking at `closed`, and nobody waits for
//! them: `close` settles the queue at once if no post is in flight, else the last post to
//! leave `inflight` settles it and wakes the flusher; the flusher only ends after it has
//! seen `inflight == 0` once `closed` was set. So a post either fails with its data handed
//! back, or is in the queue before the flusher's final drain (`SeqCst` on both words).
//!
//! Memory: a socket that never posts pays for the writer role, two flags and the mark
//! (24 bytes); the counts, the buffers, the flusher's waker, the waiters and the error are
//! allocated together on first use (a post, a `PostSender`, a wait, a failure). A `close`
//! or a change that finds them unallocated has nobody to wake and no post in flight: the
//! pointer is published and read `SeqCst` (`util::once_box`), and whoever allocates it
//! looks at the queue's state (`SeqCst`) only after that.
//!
//! The queue holds byte buffers for a stream and datagrams for a UDP socket: it is generic
//! over its [`Item`], and so are [`PostSender`] and the flusher.
//!
//! Files: `role` (the writer role word), `sender` ([`PostSender`], [`PostError`]), `flush`
//! (the flusher task, generic over the socket it writes to: [`Outlet`]).

mod flush;
mod role;
mod sender;

pub(crate) use flush::{ensure_flusher, IoSlices, Outlet};
pub use sender::{PostError, PostSender};

use crate::sync::lock;
use crate::util::once_box::OnceBox;
use crate::util::wait_list::{WaitKey, WaitList};
use bytes::Bytes;
use crossbeam_deque::{Injector, Steal};
use futures::task::AtomicWaker;
use role::WriterRole;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

/// Buffers per `writev`.
pub(crate) const MAX_IOV: usize = 64;
/// Default high-water mark of a socket's posted bytes, at or above which `post_send`
/// refuses data ([`Builder::post_high_water`](crate::Builder::post_high_water) changes it
/// for a core, `set_post_high_water` for one socket).
///
/// The arithmetic: a socket holds at most the mark plus one buffer per posting thread,
/// beside the kernel's own socket buffer. At 64 KiB, 10,000 clients that never read hold
/// at most 625 MiB of posted data (plus one buffer each), where 4 MiB (the old default)
/// allowed 39 GiB; a client that does read keeps the kernel's buffer (autotuned up to
/// several MiB on Linux) full long before the queue matters, so throughput does not need a
/// bigger mark.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

mod item {
    /// What a post queue holds: a stream's byte buffers, or datagrams. (Public in a
    /// private module: it bounds public generic types but cannot be named or implemented
    /// outside the crate.)
    pub trait Item: Send + Sync + 'static {
        /// Bytes it will occupy in the queue (the high-water mark counts these).
        fn len(&self) -> usize;
        /// The payload, handed back when a post is refused.
        fn into_bytes(self) -> bytes::Bytes;
        /// The first `n` bytes were written (`n < len()`: a short stream write).
        fn advance(&mut self, n: usize);
    }
}
pub(crate) use item::Item;

impl Item for Bytes {
    fn len(&self) -> usize {
        Bytes::len(self)
    }
    fn into_bytes(self) -> Bytes {
        self
    }
    fn advance(&mut self, n: usize) {
        let _ = self.split_to(n);
    }
}

/// What a [`PostSender`] may do to the socket behind its queue, defined here so that the
/// queue never names the socket type (the socket implements it).
pub(crate) trait SocketControl: Send + Sync {
    /// Closes at once: later operations fail, queued data is discarded, the peer and the
    /// owner see the connection end.
    fn abort(&self);
    /// The remote address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Graceful close of the sending side (flush, then FIN). `key`: the caller's place
    /// among the post queue's waiters (see [`PostQueue::change_wait`]).
    fn poll_shutdown(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<io::Result<()>>;
}

/// The shared half of a socket's send side: the queue and the writer hand-off.
///
/// Every socket has one, and most never post: what every socket needs is inline (24
/// bytes), the rest ([`InUse`]) is allocated on first use. Inline: the writer role (the
/// owner's direct writes take it, so it must exist before any flusher can be started
/// concurrently), the `closed`/`failed` flags the owner's operations check, and the mark.
pub(crate) struct PostQueue<T = Bytes> {
    writer: WriterRole,
    closed: AtomicBool,
    /// Closed with an error: queued data was discarded (the error is in [`InUse`]).
    failed: AtomicBool,
    /// Someone waits to take the writer role as the owner does (a shutdown: see
    /// `poll_lock_owner`); the owner's release wakes `changed` only then. Never reset.
    role_wanted: AtomicBool,
    high_water: AtomicUsize,
    /// Allocated by the first post, flusher, waiter or failure; never freed before the
    /// queue. A `close` that finds it absent knows that no post is in flight, nothing is
    /// queued and nobody waits: whoever allocates it later does so (`SeqCst`, see
    /// [`OnceBox`]) before its own `SeqCst` look at `closed`, `failed`, the role and the
    /// mark, so it sees every change made before that `close`'s (or changer's) look at it.
    used: OnceBox<InUse<T>>,
}

/// The parts of a [`PostQueue`] that only a queue in use needs (see its docs).
struct InUse<T> {
    /// The socket, while it is open; set when its flusher is started (every
    /// [`PostSender`] is made after that). A weak link: the queue never keeps its socket
    /// open.
    socket: OnceLock<Weak<dyn SocketControl>>,
    /// Allocated on the first post: the queue (its two cache-padded ends, then its first
    /// block of a kilobyte) would only cost memory and cache misses in a socket that only
    /// has a `PostSender` or a waiter.
    bufs: OnceLock<Box<Injector<T>>>,
    /// Bytes ever queued, and bytes that left the queue (handed to the kernel, refused, or
    /// discarded by a failure), since it was made: their difference is what is queued now
    /// (queue + flusher's batch), and a flush waits for the second to reach what the first
    /// was when it was called.
    posted_total: AtomicU64,
    consumed_total: AtomicU64,
    /// The lowest `posted_total` a flush waits for (`u64::MAX`: none), so that a write
    /// wakes the waiters only when it gets there (or below the mark), not at every write.
    flush_due: AtomicU64,
    /// The target of the poll-based flush under way (plus one; 0: none), which has no
    /// future to keep it in.
    poll_flush_target: AtomicU64,
    inflight: AtomicUsize,
    /// Why the socket closed, for later owner operations.
    error: Mutex<Option<(io::ErrorKind, String)>>,
    flusher: AtomicWaker,
    flusher_started: AtomicBool,
    /// The flusher task is gone (it ended, or was dropped unpolled): it no longer holds
    /// its reference to the socket.
    flusher_gone: AtomicBool,
    /// Everyone waiting for the queue's state to change (each re-checks its condition):
    /// room below the high-water mark (`ready`), the queue drained (`flush`, `closed`), the
    /// writer role given back to the owner (`writable`). One list, not one per condition:
    /// such waits are rare and short.
    changed: WaitList,
    /// Items the kernel refused and the flusher dropped (datagrams only).
    dropped: AtomicUsize,
}

impl<T> InUse<T> {
    /// Bytes queued now. (`consumed_total` read first: `posted_total` only grows, so the
    /// difference is never below what it was at the first load; saturating, as a write
    /// the flusher reports after a failure discarded everything counts twice.)
    fn queued(&self) -> usize {
        let consumed = self.consumed_total.load(SeqCst);
        self.posted_total.load(SeqCst).saturating_sub(consumed) as usize
    }

    fn new() -> InUse<T> {
        InUse {
            socket: OnceLock::new(),
            bufs: OnceLock::new(),
            posted_total: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
            flush_due: AtomicU64::new(u64::MAX),
            poll_flush_target: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            error: Mutex::new(None),
            flusher: AtomicWaker::new(),
            flusher_started: AtomicBool::new(false),
            flusher_gone: AtomicBool::new(false),
            changed: WaitList::default(),
            dropped: AtomicUsize::new(0),
        }
    }
}

impl<T: Item> PostQueue<T> {
    /// An empty queue (it allocates nothing until it is used).
    pub(crate) fn new(high_water: usize) -> PostQueue<T> {
        PostQueue {
            writer: WriterRole::new(),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            role_wanted: AtomicBool::new(false),
            high_water: AtomicUsize::new(high_water.max(1)),
            used: OnceBox::new(),
        }
    }

    /// The in-use part, if anything used the queue yet.
    fn in_use(&self) -> Option<&InUse<T>> {
        self.used.get()
    }

    /// The in-use part, allocated now if needed.
    fn used(&self) -> &InUse<T> {
        self.used.get_or_init(InUse::new)
    }

    /// The socket, while it is open (`None` also before its flusher was started, when no
    /// [`PostSender`] can exist yet).
    pub(crate) fn socket(&self) -> Option<Arc<dyn SocketControl>> {
        self.in_use()?.socket.get()?.upgrade()
    }

    /// Queues `data` (see the module docs for ordering and closing).
    pub(crate) fn post(&self, data: T, enforce_high_water: bool) -> Result<(), PostError> {
        if self.closed.load(SeqCst) {
            // Refused before anything is allocated (`post_registered` checks again).
            return Err(PostError::Closed(data.into_bytes()));
        }
        // Allocated before the post counts itself in flight: see `used`.
        let used = self.used();
        used.inflight.fetch_add(1, SeqCst);
        let result = self.post_registered(used, data, enforce_high_water);
        if used.inflight.fetch_sub(1, SeqCst) == 1 {
            if self.closed.load(SeqCst) {
                // The last post in flight after a close: settle the queue in its place.
                self.settle(used);
                used.flusher.wake();
            }
            // A flush waits for posts in flight too (see `poll_drained`).
            used.changed.wake_all();
        }
        result
    }

    /// Posts `item`, waiting for room below the high-water mark first if needed (for
    /// `PostSender::send` and an owner's send queued behind the flusher).
    pub(crate) async fn post_waiting(&self, item: T) -> Result<(), PostError> {
        // Room first, so a refused item never has to be rebuilt from the bytes a refusal
        // hands back. Racing posters may each pass the mark by one item, as with
        // `post_send`.
        let mut wait = self.change_wait();
        let mut item = Some(item);
        std::future::poll_fn(|cx| self.poll_post_waiting(cx, &mut wait.key, &mut item)).await
    }

    /// [`post_waiting`](Self::post_waiting) as a poll: posts `item` (taking it) once the
    /// queue is below its mark. Keep `item` and `key` across polls.
    pub(crate) fn poll_post_waiting(
        &self,
        cx: &mut Context<'_>,
        key: &mut WaitKey,
        item: &mut Option<T>,
    ) -> Poll<Result<(), PostError>> {
        std::task::ready!(self.poll_space(cx, Some(key)));
        Poll::Ready(self.post(item.take().expect("a post polled after it completed"), false))
    }

    fn post_registered(&self, used: &InUse<T>, data: T, enforce_high_water: bool) -> Result<(), PostError> {
        if self.closed.load(SeqCst) {
            return Err(PostError::Closed(data.into_bytes()));
        }
        if data.len() == 0 {
            return Ok(());
        }
        // Refused only once the queue has reached the mark: a post that `ready()` let
        // through is accepted, and the queue holds at most the mark plus one buffer per
        // posting thread. (Checked before counting, so a refusal never inflates the count.)
        if enforce_high_water && used.queued() >= self.high_water.load(Relaxed) {
            return Err(PostError::WouldExceed(data.into_bytes()));
        }
        used.posted_total.fetch_add(data.len() as u64, SeqCst);
        used.bufs.get_or_init(Box::default).push(data);
        self.schedule();
        Ok(())
    }

    /// Makes sure someone will write what is queued.
    pub(crate) fn schedule(&self) {
        if self.writer.posted() {
            // Something was queued, so the in-use part exists (the poster made it).
            if let Some(used) = self.in_use() {
                used.flusher.wake();
            }
        }
    }

    /// `n` bytes left the queue (written, or refused).
    pub(crate) fn consumed(&self, n: usize) {
        let Some(used) = self.in_use() else {
            debug_assert!(false, "consumed from a queue nobody posted to");
            return;
        };
        let consumed = used.consumed_total.fetch_add(n as u64, SeqCst) + n as u64;
        let below_mark = used.queued() < self.high_water.load(Relaxed);
        // A flush's bytes are out: let the flushes re-check (one of them sets the mark
        // again if it must wait on). A flush that lowers it meanwhile keeps its value.
        let due = used.flush_due.load(SeqCst);
        let flushed = consumed >= due;
        if flushed {
            let _ = used.flush_due.compare_exchange(due, u64::MAX, SeqCst, SeqCst);
        }
        // Below the mark (the mark is at least 1, so this includes "drained").
        if below_mark || flushed {
            used.changed.wake_all();
        }
    }

    /// What a flush called now waits for: the bytes queued so far (posts under way
    /// counted or not: they are not before the call).
    pub(crate) fn flush_target(&self) -> u64 {
        self.in_use().map_or(0, |u| u.posted_total.load(SeqCst))
    }

    /// Ready once the bytes queued before `target` was taken have left the queue (or the
    /// socket failed and discarded them): posts that keep coming after it do not hold the
    /// flush back, as waiting for an empty queue would.
    pub(crate) fn poll_flushed(
        &self,
        cx: &mut Context<'_>,
        target: u64,
        key: Option<&mut WaitKey>,
    ) -> Poll<()> {
        let Some(used) = self.in_use() else { return Poll::Ready(()) };
        let done = || used.consumed_total.load(SeqCst) >= target || self.has_failed();
        if done() {
            return Poll::Ready(());
        }
        // (Before the re-check that registering does: a write after it sees the mark.)
        used.flush_due.fetch_min(target, SeqCst);
        self.poll_changed(cx, key, done)
    }

    /// Completes once everything queued before the call has been handed to the kernel;
    /// the socket's stored error if it failed (before, or while it waited).
    pub(crate) async fn flush(&self) -> io::Result<()> {
        let target = self.flush_target();
        let mut wait = self.change_wait();
        self.check_failed()?;
        std::future::poll_fn(|cx| self.poll_flushed(cx, target, Some(&mut wait.key))).await;
        self.check_failed()
    }

    /// [`poll_flushed`](Self::poll_flushed) for the poll-based traits: the target is
    /// taken at the first poll and kept in the queue until the flush completes; every
    /// write of the owner forgets it ([`forget_poll_flush`](Self::forget_poll_flush)), so
    /// a flush given up and called again later covers what the owner wrote since (not
    /// what other threads posted meanwhile: a poll cannot tell a new flush from the old).
    pub(crate) fn poll_flushed_by_owner(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(used) = self.in_use() else { return Poll::Ready(()) };
        let mut target = used.poll_flush_target.load(Relaxed);
        if target == 0 {
            target = self.flush_target() + 1;
            used.poll_flush_target.store(target, Relaxed);
        }
        std::task::ready!(self.poll_flushed(cx, target - 1, None));
        used.poll_flush_target.store(0, Relaxed);
        Poll::Ready(())
    }

    /// The owner writes: a poll-based flush given up before must take a new target.
    #[inline]
    pub(crate) fn forget_poll_flush(&self) {
        if let Some(used) = self.in_use() {
            if used.poll_flush_target.load(Relaxed) != 0 {
                used.poll_flush_target.store(0, Relaxed);
            }
        }
    }

    /// The flusher waits to be woken (by a post, a close, the last owner's drop).
    pub(crate) fn register_flusher(&self, waker: &Waker) {
        self.used().flusher.register(waker);
    }

    /// True exactly once: the caller starts the flusher. `socket` links the queue to its
    /// socket (for the [`PostSender`]s made from now on); called the first time only.
    pub(crate) fn claim_flusher_start(&self, socket: impl FnOnce() -> Weak<dyn SocketControl>) -> bool {
        let used = self.used();
        used.socket.get_or_init(socket);
        !used.flusher_started.load(Acquire) && !used.flusher_started.swap(true, AcqRel)
    }

    /// Whether a flusher task exists (started and not gone), holding a reference to the
    /// socket.
    pub(crate) fn flusher_alive(&self) -> bool {
        self.in_use().is_some_and(|u| u.flusher_started.load(SeqCst) && !u.flusher_gone.load(SeqCst))
    }

    /// The flusher task is gone (its future dropped).
    pub(crate) fn flusher_gone(&self) {
        self.used().flusher_gone.store(true, SeqCst);
    }

    /// Whether a socket whose queue this is (`queue`: the socket's own reference to it)
    /// is shared, for `into_std`: another holder of the socket than its owner
    /// (`socket_refs`: its reference count) and a flusher task, a `PostSender`, posted
    /// data not yet handed to the kernel, or a post in flight.
    pub(crate) fn shares_socket(queue: &Arc<Self>, socket_refs: usize) -> bool {
        socket_refs > 1 + usize::from(queue.flusher_alive())
            || Arc::strong_count(queue) > 1
            || queue.queued_bytes() > 0
            || queue.posts_in_flight()
    }

    /// Whether the flusher holds the writer role.
    pub(crate) fn flusher_holds_role(&self) -> bool {
        self.writer.is_flusher()
    }

    /// The flusher, its queue empty, gives the writer role back. False: done, and the
    /// owner's `writable()` waiters are woken; true: a post raced, the role is still the
    /// flusher's and it must keep writing.
    pub(crate) fn release_flusher_role(&self) -> bool {
        if self.writer.release() {
            return true;
        }
        self.wake_changed();
        false
    }

    /// Takes the writer role for a direct owner write; false if the flusher has it.
    #[inline]
    pub(crate) fn try_lock_owner(&self) -> bool {
        self.writer.try_lock_owner()
    }

    /// [`try_lock_owner`](Self::try_lock_owner) as a guard that gives the role back when it
    /// drops: for an `async` owner operation, which may be dropped between its polls.
    pub(crate) fn try_owner_turn(&self) -> Option<OwnerTurn<'_, T>> {
        self.try_lock_owner().then(|| OwnerTurn(self))
    }

    /// Gives the writer role back, to the flusher if posts arrived meanwhile; else wakes
    /// whoever waits for it (a shutdown: see `poll_lock_owner`).
    pub(crate) fn unlock_owner(&self) {
        if self.writer.release() {
            // A post marked the role pending, so the in-use part exists (the poster made
            // it before its read-modify-write of the role, which ours read).
            if let Some(used) = self.in_use() {
                used.flusher.wake();
            }
        } else if self.role_wanted.load(SeqCst) && self.role_wanted.swap(false, SeqCst) {
            // (SeqCst after the release's read-modify-write, against the waiter's flag
            // then re-check: one of the two sees the other.) Cleared as every waiter is
            // woken: one that still finds the role taken sets it again before it waits.
            self.wake_changed();
        }
    }

    /// Takes the writer role as the owner does, waiting while the flusher or the owner
    /// holds it; release it with `unlock_owner`.
    pub(crate) fn poll_lock_owner(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<()> {
        if self.try_lock_owner() {
            return Poll::Ready(());
        }
        self.role_wanted.store(true, SeqCst);
        self.poll_changed(cx, key, || self.try_lock_owner())
    }

    /// Whether posted buffers wait in the queue.
    pub(crate) fn has_bufs(&self) -> bool {
        self.in_use().and_then(|u| u.bufs.get()).is_some_and(|b| !b.is_empty())
    }

    /// Takes the next queued buffer.
    pub(crate) fn pop(&self) -> Option<T> {
        steal(self.in_use()?.bufs.get()?)
    }

    /// Bytes posted and not yet handed to the kernel.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.in_use().map_or(0, InUse::queued)
    }

    /// The flusher dropped an item the kernel refused.
    pub(crate) fn count_dropped(&self) {
        self.used().dropped.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self) -> usize {
        self.in_use().map_or(0, |u| u.dropped.load(Relaxed))
    }

    pub(crate) fn high_water(&self) -> usize {
        self.high_water.load(SeqCst)
    }

    pub(crate) fn set_high_water(&self, bytes: usize) {
        self.high_water.store(bytes.max(1), SeqCst);
        self.wake_changed();
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// The error that closed the socket, if it failed. (Asked before every owner write:
    /// inlined, with the rare failed case out of line.)
    #[inline]
    pub(crate) fn error(&self) -> Option<io::Error> {
        if !self.has_failed() {
            return None;
        }
        self.stored_error()
    }

    /// `Err` with the error that closed the socket, if it failed (see [`error`](Self::error)).
    #[inline]
    pub(crate) fn check_failed(&self) -> io::Result<()> {
        self.error().map_or(Ok(()), Err)
    }

    #[cold]
    fn stored_error(&self) -> Option<io::Error> {
        // `close` stored the error before it set `failed`.
        let e = lock(&self.in_use()?.error);
        e.as_ref().map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    /// Stops accepting posts; never waits (see the module docs for posts in flight).
    ///
    /// Without an error the close is graceful: what is queued is still written. With an
    /// error (abort, write failure, flusher gone) the socket has *failed*: queued data is
    /// discarded and owner operations return that error.
    pub(crate) fn close(&self, error: Option<io::Error>) {
        if let Some(e) = &error {
            let mut slot = lock(&self.used().error);
            slot.get_or_insert((e.kind(), e.to_string()));
            self.failed.store(true, SeqCst);
        }
        self.closed.store(true, SeqCst);
        // Not in use: no post is in flight, nothing is queued, no flusher runs and nobody
        // waits; whoever uses the queue from now on sees `closed` (see `used`).
        let Some(used) = self.in_use() else { return };
        if used.inflight.load(SeqCst) == 0 {
            self.settle(used);
        }
        used.flusher.wake();
        used.changed.wake_all();
    }

    /// After a close with no post in flight: a failed socket discards what is queued.
    /// (Idempotent: `close` and the last post in flight may both call it.)
    fn settle(&self, used: &InUse<T>) {
        if self.has_failed() {
            while self.pop().is_some() {}
            // Everything still queued (here or in a flusher's batch) is discarded. (No post
            // is in flight, and none comes after the close: `posted_total` is final.)
            used.consumed_total.fetch_max(used.posted_total.load(SeqCst), SeqCst);
            used.changed.wake_all();
        }
    }

    /// Wakes the waiters of `changed` after a change of the inline state (with none in
    /// use, nobody waits yet, and a later waiter sees the change: see `used`).
    fn wake_changed(&self) {
        if let Some(used) = self.in_use() {
            used.changed.wake_all();
        }
    }

    /// Ready if `ready` holds; else waits in `changed` (allocating the in-use part: a
    /// condition that holds costs nothing), under `key` if the caller keeps one (an
    /// `async` wait: [`change_wait`](Self::change_wait)), else anonymously (see
    /// `util::wait_list`).
    fn poll_changed(
        &self,
        cx: &mut Context<'_>,
        key: Option<&mut WaitKey>,
        mut ready: impl FnMut() -> bool,
    ) -> Poll<()> {
        if ready() {
            return Poll::Ready(());
        }
        self.used().changed.poll_until(key, cx.waker(), ready)
    }

    /// A place in the queue's waiters for an `async` wait, given back when it drops (a
    /// wait given up must not keep its task alive until the next change).
    pub(crate) fn change_wait(&self) -> ChangeWait<'_, T> {
        ChangeWait { queue: self, key: WaitKey::default() }
    }

    /// Whether a post is between its `closed` check and its push.
    pub(crate) fn posts_in_flight(&self) -> bool {
        self.in_use().is_some_and(|u| u.inflight.load(SeqCst) != 0)
    }

    /// Ready when the owner may write directly: nobody holds the writer role (neither the
    /// flusher nor an owner's `send_all` paused between its writes), or the queue is
    /// closed (the owner's write fails at once). A `writable()` + `try_send` loop waits
    /// here instead of spinning on a readiness that its `WouldBlock` never clears.
    pub(crate) fn poll_owner_turn(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<()> {
        let turn = || !self.writer.is_held() || self.is_closed();
        if turn() {
            return Poll::Ready(());
        }
        // An owner gives the role back without waking anyone unless this is set.
        self.role_wanted.store(true, SeqCst);
        self.poll_changed(cx, key, turn)
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(SeqCst)
    }

    pub(crate) fn poll_drained(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<()> {
        // Posts in flight first: once none is, every accepted post is counted in `posted_total`.
        self.poll_changed(cx, key, || {
            (!self.posts_in_flight() && self.queued_bytes() == 0) || self.has_failed()
        })
    }

    pub(crate) fn poll_space(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<()> {
        self.poll_changed(cx, key, || self.queued_bytes() < self.high_water() || self.is_closed())
    }

    /// Ready once the queue is closed and done with: everything accepted was handed to
    /// the kernel, or the socket failed (and discarded the rest).
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>, key: Option<&mut WaitKey>) -> Poll<()> {
        self.poll_changed(cx, key, || {
            self.is_closed() && ((!self.posts_in_flight() && self.queued_bytes() == 0) || self.has_failed())
        })
    }
}

fn steal<T>(q: &Injector<T>) -> Option<T> {
    loop {
        match q.steal() {
            Steal::Success(b) => return Some(b),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

/// The owner's hold on the writer role (from [`PostQueue::try_owner_turn`]), given back
/// when it drops.
pub(crate) struct OwnerTurn<'a, T: Item>(&'a PostQueue<T>);

impl<T: Item> Drop for OwnerTurn<'_, T> {
    fn drop(&mut self) {
        self.0.unlock_owner();
    }
}

/// An `async` wait's place in a queue's waiters (from [`PostQueue::change_wait`]): pass
/// `Some(&mut wait.key)` to the `poll_*` waits; the entry goes when this drops.
pub(crate) struct ChangeWait<'a, T: Item> {
    queue: &'a PostQueue<T>,
    pub(crate) key: WaitKey,
}

impl<T: Item> Drop for ChangeWait<'_, T> {
    fn drop(&mut self) {
        if let Some(used) = self.queue.in_use() {
            used.changed.forget(&mut self.key);
        }
    }
}
