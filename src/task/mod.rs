//! Tasks: spawning results ([`JoinHandle`]), remote control ([`TaskRef`]) and the
//! task-level primitives [`park`], [`yield_now`] and [`current`].
//!
//! A task is one heap block (header + future) driven by the state machine in `state.rs`.
//! Besides ordinary `Waker`s, a task can be *woken* and *signalled* through a [`TaskRef`]
//! from any thread; [`park`] is how a task waits for those:
//!
//! - **wakeups coalesce and are never lost**: a wakeup that arrives while the task is
//!   running makes its next `park` return [`Wake::Woken`] at once; several wakeups before a
//!   `park` are consumed by that one `park`;
//! - **a signal is sticky** until a `park` consumes it; N signals are consumed by one `park`,
//!   and [`Wake::Signaled`] takes precedence over `Woken` and `Expired` (the `park` that
//!   returns `Signaled` also consumes a pending wakeup);
//! - [`Wake::Expired`] only when the deadline passed with neither.
//!
//! ```
//! use iocore::{task, IoCore};
//! use std::time::{Duration, Instant};
//!
//! let core = IoCore::builder().threads(2).build()?;
//! let worker = core.spawn(async {
//!     // Sleeps until signalled, or for at most a second.
//!     task::park(Some(Instant::now() + Duration::from_secs(1))).await
//! });
//! worker.task().signal();
//! assert_eq!(core.block_on(worker).unwrap(), task::Wake::Signaled);
//! # Ok::<(), std::io::Error>(())
//! ```

pub(crate) mod raw;
pub(crate) mod state;

pub(crate) use raw::Header;

use crate::time::clock;
use crate::util::waker_map::WakerEntry;
use raw::RawTask;
use state::ParkFlag;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Owns the right to await a task's output. Awaiting it yields `Ok(output)`, or a
/// [`JoinError`] if the task panicked or was cancelled. Dropping it detaches the task,
/// which keeps running.
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves the output (`T: Send`) out of the task block.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `abort`, `is_finished` and `task`, all thread-safe.
unsafe impl<T: Send> Sync for JoinHandle<T> {}
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(raw: RawTask) -> Self {
        JoinHandle { raw, _output: PhantomData }
    }

    /// Cancels the task: its future is dropped (exactly once, by a worker, never while it
    /// is being polled) and the handle yields [`JoinError`] with `is_cancelled()`. Aborting
    /// a finished task does nothing.
    pub fn abort(&self) {
        self.raw.notify(state::CANCELLED);
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.is_done()
    }

    /// A [`TaskRef`] to wake or signal the task from anywhere.
    pub fn task(&self) -> TaskRef {
        self.raw.ref_inc();
        TaskRef { raw: self.raw }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let raw = self.raw;
        // SAFETY: this is the task's one `JoinHandle`.
        if !raw.header().state.is_done() && unsafe { raw.register_join_waker(cx.waker()) } {
            return Poll::Pending;
        }
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: the task is DONE, `out` has the task's output type, and this handle is
        // the only reader.
        unsafe { raw.read_output(&mut out as *mut _ as *mut ()) };
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.raw.ref_dec();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.raw.header().id).finish()
    }
}

enum JoinErrorKind {
    Cancelled,
    Panic(Box<dyn Any + Send + 'static>),
}

/// Why a task produced no output: it was cancelled, or it panicked.
pub struct JoinError {
    id: u64,
    kind: JoinErrorKind,
}

impl JoinError {
    pub(crate) fn cancelled(id: u64) -> Self {
        JoinError { id, kind: JoinErrorKind::Cancelled }
    }

    pub(crate) fn panic(id: u64, payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError { id, kind: JoinErrorKind::Panic(payload) }
    }

    /// The task was cancelled (`abort`, or shutdown).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, JoinErrorKind::Panic(_))
    }

    /// The panic payload, to resume it with `std::panic::resume_unwind`.
    ///
    /// # Panics
    /// If the task was cancelled rather than panicking; use [`try_into_panic`](Self::try_into_panic)
    /// to check first.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect("JoinError::into_panic called on a cancelled task's error")
    }

    /// The panic payload, or the error back if the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.kind {
            JoinErrorKind::Panic(p) => Ok(p),
            JoinErrorKind::Cancelled => Err(self),
        }
    }

    /// The id of the task (as in [`TaskRef::id`]).
    pub fn id(&self) -> u64 {
        self.id
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
        .unwrap_or("(non-string panic payload)")
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JoinErrorKind::Cancelled => write!(f, "task {} was cancelled", self.id),
            JoinErrorKind::Panic(p) => {
                write!(f, "task {} panicked: {}", self.id, panic_message(&**p))
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

/// A thread-safe reference to a task, to wake or signal it from anywhere.
///
/// Holding one keeps the task's memory (not the task) alive; it is cheap to clone.
pub struct TaskRef {
    raw: RawTask,
}

impl TaskRef {
    /// Wakes the task: it is polled again soon, and its next [`park`] returns
    /// [`Wake::Woken`]. Wakeups coalesce; one that arrives while the task runs is kept.
    /// A task spawned with `spawn_at` starts at once (that wakeup is consumed by the start).
    pub fn wakeup(&self) {
        self.raw.notify(state::WOKEN);
    }

    /// Signals the task: like [`wakeup`](Self::wakeup), but the signal is sticky until a
    /// [`park`] consumes it, and takes precedence there (`park` returns [`Wake::Signaled`]).
    pub fn signal(&self) {
        self.raw.notify(state::SIGNALED);
    }

    /// A process-wide unique id of the task.
    pub fn id(&self) -> u64 {
        self.raw.header().id
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.is_done()
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        self.raw.ref_inc();
        TaskRef { raw: self.raw }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        self.raw.ref_dec();
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for TaskRef {}

impl std::hash::Hash for TaskRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef").field("id", &self.id()).finish()
    }
}

/// The task being polled on this thread.
///
/// # Panics
/// Outside an iocore task (e.g. in `block_on`, or on a plain thread).
pub fn current() -> TaskRef {
    let raw = crate::sched::current_task()
        .expect("iocore::task::current() called outside an iocore task; call it inside a spawned task");
    raw.ref_inc();
    TaskRef { raw }
}

/// Yields: the task goes to the back of the ready queue, behind everything already ready
/// and behind whatever the next schedule step makes ready (kernel events, expired
/// deadlines), so a CPU-bound loop that yields cannot starve timers or sockets.
/// Works under any executor (it wakes itself once and returns `Pending` once).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        if crate::sched::current_task().is_some() {
            // Inside an iocore task: it runs again only after the next schedule step has
            // looked at the kernel events and the deadlines.
            crate::sched::note_yield();
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Why [`park`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wake {
    /// The task was signalled ([`TaskRef::signal`]); takes precedence over the others.
    Signaled,
    /// The task was woken ([`TaskRef::wakeup`]).
    Woken,
    /// The deadline passed with neither.
    Expired,
}

/// Sleeps until the task is woken or signalled through a [`TaskRef`], or until `deadline`
/// (`None`: no deadline). See the [module docs](self) for the exact semantics.
///
/// `park` is a task-level primitive, but it works wherever the task polls it: directly, in
/// `select!`/`join!`, or under a sub-executor with its own wakers (`FuturesUnordered`,
/// `join_all`). Under the task's own waker it allocates nothing; under a foreign waker it
/// registers that waker with the core, for the wakeup and for the deadline, until it
/// completes or is dropped.
///
/// # Panics
/// When polled outside an iocore task.
pub fn park(deadline: Option<Instant>) -> Park {
    Park { deadline: deadline.map(clock::to_ns), wakeup: None, timer: None }
}

/// Future returned by [`park`].
#[must_use = "futures do nothing unless awaited"]
pub struct Park {
    deadline: Option<u64>,
    /// Under a foreign waker: that waker, registered for the task's next wakeup/signal.
    wakeup: Option<WakerEntry>,
    /// Under a foreign waker: the slow-path timer for the deadline.
    timer: Option<WakerEntry>,
}

impl Future for Park {
    type Output = Wake;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Wake> {
        let task = crate::sched::current_task()
            .expect("iocore::task::park awaited outside an iocore task; spawn the code as a task");
        let state = &task.header().state;
        if RawTask::from_waker(cx.waker()) != Some(task) {
            // A foreign waker would not be woken by the task's wakeup: register it, then
            // publish that (the flags are re-checked below, after the publication).
            let fresh = self.wakeup.as_ref().is_some_and(|w| w.refresh(cx.waker()));
            if !fresh {
                self.wakeup = Some(task.header().shared.add_park_waker(task, cx.waker().clone()));
            }
            state.set_park_wakers();
        }
        match state.take_park_flags() {
            Some(ParkFlag::Signaled) => return self.finish(Wake::Signaled),
            Some(ParkFlag::Woken) => return self.finish(Wake::Woken),
            None => {}
        }
        if let Some(deadline) = self.deadline {
            if clock::now_ns() >= deadline {
                return self.finish(Wake::Expired);
            }
            let this = &mut *self;
            crate::time::wake_at(cx, deadline, &mut this.timer);
        }
        Poll::Pending
    }
}

impl Park {
    /// Releases any foreign registration and returns `why`.
    fn finish(&mut self, why: Wake) -> Poll<Wake> {
        self.wakeup = None;
        self.timer = None;
        Poll::Ready(why)
    }
}

impl fmt::Debug for Park {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Park").field("deadline", &self.deadline).finish()
    }
}
