//! [`JoinHandle`] (the right to a task's output) and [`JoinError`] (why there is none).

use super::raw::RawTask;
use super::state;
use super::TaskRef;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Owns the right to await a task's output. Awaiting it yields `Ok(output)`, or a
/// [`JoinError`] if the task panicked or was cancelled. Dropping it detaches the task,
/// which keeps running. Like a [`Handle`](crate::Handle), it keeps its core's shared
/// state (and its event queue's file descriptors) alive after the core is gone.
///
/// Polling it again after it returned `Ready` panics (the output was moved out): use
/// `futures::FutureExt::fuse` where a finished handle may be polled again.
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
        TaskRef::from_raw(self.raw)
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
        // SAFETY: this is the task's JoinHandle, dropping once.
        unsafe { self.raw.drop_join_waker() };
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
