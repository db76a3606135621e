//! The task allocation: a header, the scheduler handle and the future (later its output),
//! in one heap block.
//!
//! The header is what the scheduler touches; it is type-erased and reached through
//! [`RawTask`]. The typed part (`Cell<F, S>`) is only touched through the vtable, which is
//! how the task reaches its scheduler (`S: Schedule`) without this module naming it.
//! Reference counting: the scheduler holds one reference from spawn until the task
//! completes; each `JoinHandle`, `TaskRef` and `Waker` holds one more. The block is freed
//! at zero.
//!
//! [`RawTask::poll`] also maintains the task module's thread-local context: which task
//! this thread is polling (for `task::current`, `park`, and the time futures' fast path)
//! and whether that poll called `yield_now`.

use super::state::{Claim, Notify, State, CANCELLED, SIGNALED, WOKEN};
use super::{JoinError, Schedule};
use crate::sync::AtomicPtr;
use crate::time::clock::Deadline;
use crate::util::heap::{HeapSlot, NO_SLOT};
use crate::util::inbox::Linked;
use std::cell::{Cell as StdCell, UnsafeCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

pub(crate) struct Header {
    pub(crate) state: State,
    /// The reference count, above [`COST_BITS`] low bits that hold the scheduler's record
    /// of what the task's polls cost (`sched::heavy`): written only by the task's owner
    /// (the worker that polled it; ownership passes through the queues, which order the
    /// writes), read by the next one to take it. (A word of their own would cost the
    /// header 8 bytes, which for a small task is a larger malloc size class.)
    refs: AtomicU32,
    /// Slot in the sched-role's deadline heap; only the sched-role touches it.
    heap_slot: UnsafeCell<u32>,
    /// Slot in the core's table of live tasks; guarded by that table's shard lock.
    /// (With `heap_slot` it fills the word after `state` and `refs`: 4 bytes instead of the
    /// 16 an intrusive list would take.)
    pub(crate) live_slot: UnsafeCell<u32>,
    /// Link for the scheduler's front queue (an inbox).
    front_link: AtomicPtr<Header>,
    /// Written by the owner (the polling worker, or the spawner before the first push),
    /// read by the sched-role after it pops the task.
    deadline: UnsafeCell<Deadline>,
    pub(crate) id: u64,
    vtable: &'static Vtable,
    /// The `JoinHandle`'s waker; see `State::set_join_waker` for who may touch it when.
    join_waker: UnsafeCell<Option<Waker>>,
}

/// Low bits of `Header::refs` that are not the count: the task's poll cost record.
pub(crate) const COST_BITS: u32 = 5;
/// One reference in `Header::refs`.
const REF_ONE: u32 = 1 << COST_BITS;
/// The cost bits of `Header::refs`.
const COST: u32 = REF_ONE - 1;

impl Header {
    /// The scheduler's record of what the task's polls cost (`sched::heavy`), below
    /// `1 << COST_BITS`. For the task's owner.
    #[inline(always)]
    pub(crate) fn cost(&self) -> u32 {
        self.refs.load(Relaxed) & COST
    }

    /// Replaces the cost record. Only the task's owner calls this, so the bits it flips
    /// are exactly those that differ; the count beside them may change meanwhile.
    #[inline]
    pub(crate) fn set_cost(&self, cost: u32) {
        debug_assert!(cost <= COST, "a task's cost record has {COST_BITS} bits");
        let diff = (self.cost() ^ cost) & COST;
        if diff != 0 {
            self.refs.fetch_xor(diff, Relaxed);
        }
    }
}

struct Vtable {
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> bool,
    cancel: unsafe fn(NonNull<Header>),
    refuse: unsafe fn(NonNull<Header>) -> Box<dyn FnOnce()>,
    read_output: unsafe fn(NonNull<Header>, *mut ()),
    scheduler: unsafe fn(NonNull<Header>) -> *const dyn Schedule,
    dealloc: unsafe fn(NonNull<Header>),
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    scheduler: Arc<S>,
    stage: UnsafeCell<Stage<F>>,
}

/// How a poll ended, for the worker that gives the task up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Polled {
    /// The future finished (or panicked); its output is stored.
    Done,
    /// The future returned `Pending`; `yielded`: it called `yield_now` during the poll;
    /// `self_woken`: it did so with its own waker, which was not called (the worker
    /// treats the task as woken).
    Pending { yielded: bool, self_woken: bool },
}

thread_local! {
    /// The task this thread is polling right now (null outside a poll).
    static CURRENT: StdCell<*mut Header> = const { StdCell::new(std::ptr::null_mut()) };
    /// What `yield_now` noted during the current poll (`YIELDED`, `SELF_WOKEN` bits).
    static YIELDED: StdCell<u8> = const { StdCell::new(0) };
}

/// The task being polled on this thread, if any.
pub(crate) fn current() -> Option<RawTask> {
    let ptr = CURRENT.with(|c| c.get());
    // SAFETY: the worker polling this task holds its reference for the whole poll.
    (!ptr.is_null()).then(|| unsafe { RawTask::from_ptr(ptr) })
}

/// Bits of `YIELDED`: the task being polled yielded; it did so without waking itself.
const YIELD: u8 = 1;
const SELF_WOKEN: u8 = 2;

/// The task being polled on this thread yielded (see `Polled::Pending`); `self_woken`:
/// instead of calling its own waker, which the caller skipped.
pub(crate) fn note_yield(self_woken: bool) {
    YIELDED.with(|y| y.set(y.get() | YIELD | if self_woken { SELF_WOKEN } else { 0 }));
}

/// A type-erased pointer to a task. Copying it does not touch the reference count; the
/// code that holds one says which reference it stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct RawTask(NonNull<Header>);

// SAFETY: the header's shared fields are atomics or are guarded by the state machine
// (only the owner of a phase touches the cells), and the future/output are `Send`.
unsafe impl Send for RawTask {}
// SAFETY: as above.
unsafe impl Sync for RawTask {}

impl Linked for Header {
    fn link(&self) -> &AtomicPtr<Header> {
        &self.front_link
    }
}

impl HeapSlot for RawTask {
    unsafe fn set_slot(self, slot: u32) {
        // SAFETY: the caller has exclusive access to the slot (the trait's contract).
        unsafe { *self.header().heap_slot.get() = slot }
    }
    unsafe fn slot(self) -> u32 {
        // SAFETY: as in `set_slot`.
        unsafe { *self.header().heap_slot.get() }
    }
}

impl RawTask {
    /// Allocates a task with two references: the scheduler's and the caller's (for the
    /// `JoinHandle`). A task with a `start` deadline starts asleep (`spawn_at`).
    pub(crate) fn new<F, S>(future: F, scheduler: Arc<S>, id: u64, start: Option<Deadline>) -> RawTask
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let cell = Box::new(Cell {
            header: Header {
                state: State::new(start.is_some()),
                refs: AtomicU32::new(2 * REF_ONE),
                heap_slot: UnsafeCell::new(NO_SLOT),
                live_slot: UnsafeCell::new(0),
                front_link: AtomicPtr::new(ptr::null_mut()),
                deadline: UnsafeCell::new(start.unwrap_or(Deadline::NEVER)),
                id,
                vtable: &Vtable {
                    poll: poll::<F, S>,
                    cancel: cancel::<F, S>,
                    refuse: refuse::<F, S>,
                    read_output: read_output::<F, S>,
                    scheduler: scheduler_of::<F, S>,
                    dealloc: dealloc::<F, S>,
                },
                join_waker: UnsafeCell::new(None),
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        RawTask(NonNull::from(Box::leak(cell)).cast())
    }

    /// # Safety
    /// `ptr` points to a live task header, kept alive by a reference the caller holds or
    /// borrows for as long as it uses the returned `RawTask`.
    pub(crate) unsafe fn from_ptr(ptr: *const Header) -> RawTask {
        RawTask(NonNull::new(ptr as *mut Header).expect("null task pointer"))
    }

    pub(crate) fn as_ptr(self) -> *mut Header {
        self.0.as_ptr()
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a RawTask is only used while some reference keeps the block alive.
        unsafe { self.0.as_ref() }
    }

    pub(crate) fn ref_inc(self) {
        let prev = self.header().refs.fetch_add(REF_ONE, Relaxed);
        if prev > u32::MAX / 2 {
            std::process::abort();
        }
    }

    /// Drops one reference, freeing the task at zero.
    pub(crate) fn ref_dec(self) {
        if self.header().refs.fetch_sub(REF_ONE, AcqRel) & !COST == REF_ONE {
            // SAFETY: that was the last reference.
            unsafe { (self.header().vtable.dealloc)(self.0) }
        }
    }

    /// The task's deadline.
    ///
    /// # Safety
    /// The caller is the task's current owner (its spawner before the first push, the
    /// worker polling it, or the sched-role holding it): nobody else touches the deadline.
    pub(crate) unsafe fn deadline(self) -> Deadline {
        // SAFETY: forwarded from the caller.
        unsafe { *self.header().deadline.get() }
    }

    /// Sets the task's deadline.
    ///
    /// # Safety
    /// As for [`deadline`](Self::deadline).
    pub(crate) unsafe fn set_deadline(self, deadline: Deadline) {
        // SAFETY: forwarded from the caller.
        unsafe { *self.header().deadline.get() = deadline }
    }

    /// Lowers the deadline of the task being polled on this thread.
    ///
    /// # Safety
    /// The caller runs inside this task's poll (so this worker owns the task).
    pub(crate) unsafe fn lower_deadline(self, deadline: Deadline) {
        // SAFETY: forwarded from the caller.
        unsafe {
            if deadline < self.deadline() {
                self.set_deadline(deadline);
            }
        }
    }

    /// A wake with extra flags; queues the task if this call took it out of `WAITING`.
    pub(crate) fn notify(self, extra: u32) {
        crate::trace::trace_event!(task = self.header().id, flags = extra, "wake");
        let state = &self.header().state;
        if state.notify(extra) == Notify::Schedule {
            self.scheduler().schedule_woken(self);
        } else if extra & CANCELLED != 0 {
            self.scheduler().aborted_queued();
        }
        // A wakeup or signal also reaches `park` futures polled under foreign wakers.
        if extra & (WOKEN | SIGNALED) != 0 && state.take_park_wakers() {
            self.scheduler().wake_parked(self);
        }
    }

    /// The scheduler this task belongs to.
    pub(crate) fn scheduler(&self) -> &dyn Schedule {
        // SAFETY: the block is alive (see `header`), the vtable matches the cell, and the
        // scheduler it points to lives in the block (an `Arc`, immutable) as long as it does.
        unsafe { &*(self.header().vtable.scheduler)(self.0) }
    }

    /// Polls the future, as this thread's current task.
    ///
    /// # Safety
    /// The caller owns the task in phase `RUNNING` (a `Claim::Run`/`Start`): nobody else
    /// polls or cancels it meanwhile.
    pub(crate) unsafe fn poll(self) -> Polled {
        let waker = ManuallyDrop::new(self.borrowed_waker());
        let mut cx = Context::from_waker(&waker);
        let outer = CURRENT.with(|c| c.replace(self.as_ptr()));
        // SAFETY: the caller is the only one polling (phase RUNNING).
        let done = unsafe { (self.header().vtable.poll)(self.0, &mut cx) };
        CURRENT.with(|c| c.set(outer));
        let noted = YIELDED.with(|y| y.replace(0));
        if done {
            Polled::Done
        } else {
            Polled::Pending { yielded: noted & YIELD != 0, self_woken: noted & SELF_WOKEN != 0 }
        }
    }

    /// Drops the future, storing `JoinError::Cancelled` as the output.
    ///
    /// # Safety
    /// The caller owns the task in phase `RUNNING` (after a `claim`), and it has not
    /// finished.
    pub(crate) unsafe fn cancel(self) {
        // SAFETY: the caller owns the task (phase RUNNING after a `Claim::Cancel`).
        unsafe { (self.header().vtable.cancel)(self.0) }
    }

    /// Stores the `Cancelled` output of a task refused before it ever ran, and hands its
    /// future back (boxed, ready to drop) for the caller to drop where it suits.
    ///
    /// # Safety
    /// The caller owns the task (it claimed it), which never ran.
    pub(crate) unsafe fn refuse(self) -> Box<dyn FnOnce()> {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.refuse)(self.0) }
    }

    pub(crate) fn claim(self) -> Claim {
        self.header().state.claim()
    }

    /// Moves the output into `dst` (a `*mut Poll<Result<T, JoinError>>`).
    ///
    /// # Safety
    /// The task is `DONE`, `dst` points to the right type, and only the `JoinHandle` calls.
    pub(crate) unsafe fn read_output(self, dst: *mut ()) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.header().vtable.read_output)(self.0, dst) }
    }

    /// Wakes the stored `JoinHandle` waker. A foreign waker that panics is contained (see
    /// `contain`).
    ///
    /// # Safety
    /// The caller's `State::complete` just moved the task to `DONE` and reported
    /// `JOIN_WAKER` set: the handle no longer writes the slot.
    pub(crate) unsafe fn wake_join(self) {
        // SAFETY: the task is DONE with JOIN_WAKER set: the handle no longer writes the slot.
        if let Some(w) = unsafe { &*self.header().join_waker.get() } {
            crate::contain::contain("waking a JoinHandle", || w.wake_by_ref());
        }
    }

    /// The `JoinHandle` side of the waker protocol. Returns false if the task completed
    /// meanwhile (the caller should read the output).
    ///
    /// # Safety
    /// Only the task's `JoinHandle` calls this (it alone writes the waker slot).
    pub(crate) unsafe fn register_join_waker(self, waker: &Waker) -> bool {
        let state = &self.header().state;
        if state.has_join_waker() {
            // SAFETY: JOIN_WAKER is set, so the slot holds our earlier waker and nobody
            // writes it; a completer may only read it concurrently.
            let same =
                unsafe { &*self.header().join_waker.get() }.as_ref().is_some_and(|w| w.will_wake(waker));
            if same {
                return true;
            }
            if !state.unset_join_waker() {
                return false;
            }
        }
        // SAFETY: JOIN_WAKER is clear and the task is not DONE: only this handle uses the slot.
        unsafe { *self.header().join_waker.get() = Some(waker.clone()) };
        state.set_join_waker()
    }

    /// The `JoinHandle` goes away: drop the waker it registered now, unless the task is
    /// done (then the block keeps it until it is freed). A join given up (a `timeout`
    /// around it) must not keep the waiting task alive while this one runs on.
    ///
    /// # Safety
    /// Only the task's `JoinHandle` calls this, once, as it drops.
    pub(crate) unsafe fn drop_join_waker(self) {
        let state = &self.header().state;
        if state.has_join_waker() && state.unset_join_waker() {
            // SAFETY: we just cleared JOIN_WAKER and the task is not DONE: only this
            // handle uses the slot (as in `register_join_waker`).
            let waker = unsafe { (*self.header().join_waker.get()).take() };
            drop_waker_flat(waker);
        }
    }

    /// A waker for this task that does not own a reference (for polling it).
    fn borrowed_waker(self) -> Waker {
        // SAFETY: the vtable's functions implement the RawWaker contract on a task pointer.
        unsafe { Waker::from_raw(RawWaker::new(self.0.as_ptr() as *const (), &WAKER_VTABLE)) }
    }

    /// If `waker` is this runtime's waker, the task it wakes.
    pub(crate) fn from_waker(waker: &Waker) -> Option<RawTask> {
        if ptr::eq(waker.vtable(), &WAKER_VTABLE) {
            // SAFETY: an iocore waker's data is a task pointer, alive while the waker is.
            Some(unsafe { RawTask::from_ptr(waker.data() as *const Header) })
        } else {
            None
        }
    }
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

// The waker functions: `data` is a task pointer whose reference the waker owns (or, for a
// borrowed waker, the polling worker's).

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: see above.
    unsafe { RawTask::from_ptr(data as *const Header) }.ref_inc();
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: see above; the waker's reference is consumed here.
    let task = unsafe { RawTask::from_ptr(data as *const Header) };
    task.notify(0);
    task.ref_dec();
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: see above.
    unsafe { RawTask::from_ptr(data as *const Header) }.notify(0);
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: see above.
    unsafe { RawTask::from_ptr(data as *const Header) }.ref_dec();
}

/// # Safety
/// `ptr` points to a live `Cell<F, S>` owned by the caller in phase RUNNING.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: `Cell` is `repr(C)` with the header first, so the pointers coincide.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

unsafe fn poll<F: Future, S>(ptr: NonNull<Header>, cx: &mut Context<'_>) -> bool {
    // SAFETY: the caller owns the task (RUNNING), so the stage is ours alone.
    let cell = unsafe { cell::<F, S>(ptr) };
    let stage = cell.stage.get();
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above.
        match unsafe { &mut *stage } {
            // SAFETY: the future lives inside its heap block and is never moved.
            Stage::Running(fut) => unsafe { Pin::new_unchecked(fut) }.poll(cx),
            _ => unreachable!("polled a task that already finished"),
        }
    }));
    let output = match result {
        Ok(Poll::Pending) => return false,
        Ok(Poll::Ready(v)) => Ok(v),
        Err(panic) => Err(JoinError::panic(cell.header.id, panic)),
    };
    // SAFETY: as above.
    unsafe { finish::<F>(stage, output) };
    true
}

/// Drops the future (a panic in its destructor is contained and counted; the output is
/// still stored).
unsafe fn finish<F: Future>(stage: *mut Stage<F>, output: Result<F::Output, JoinError>) {
    // SAFETY: the caller owns the stage.
    crate::contain::contain("dropping a task's future", || unsafe { *stage = Stage::Consumed });
    // SAFETY: as above. (If the drop panicked, the future is leaked in part, never
    // dropped twice: the stage is overwritten without dropping it again.)
    unsafe { ptr::write(stage, Stage::Finished(output)) };
}

unsafe fn cancel<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the caller owns the task.
    let cell = unsafe { cell::<F, S>(ptr) };
    let id = cell.header.id;
    // SAFETY: as above.
    unsafe { finish::<F>(cell.stage.get(), Err(JoinError::cancelled(id))) };
}

unsafe fn refuse<F: Future + 'static, S>(ptr: NonNull<Header>) -> Box<dyn FnOnce()> {
    // SAFETY: the caller owns the task.
    let cell = unsafe { cell::<F, S>(ptr) };
    let cancelled = Stage::Finished(Err(JoinError::cancelled(cell.header.id)));
    // SAFETY: as above: nobody else touches the stage.
    match std::mem::replace(unsafe { &mut *cell.stage.get() }, cancelled) {
        Stage::Running(future) => Box::new(move || drop(future)),
        _ => unreachable!("a refused task never ran"),
    }
}

unsafe fn read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut ()) {
    // SAFETY: the task is DONE; only the JoinHandle reads the stage now.
    let cell = unsafe { cell::<F, S>(ptr) };
    // SAFETY: as above.
    let stage = unsafe { &mut *cell.stage.get() };
    match std::mem::replace(stage, Stage::Consumed) {
        Stage::Finished(out) => {
            // SAFETY: the caller passes a `*mut Poll<Result<F::Output, JoinError>>`.
            unsafe { *(dst as *mut Poll<Result<F::Output, JoinError>>) = Poll::Ready(out) }
        }
        _ => panic!("JoinHandle polled after it returned Ready"),
    }
}

unsafe fn scheduler_of<F: Future, S: Schedule>(ptr: NonNull<Header>) -> *const dyn Schedule {
    // SAFETY: the caller passes a live block; the scheduler field is never written.
    let cell = unsafe { cell::<F, S>(ptr) };
    Arc::as_ptr(&cell.scheduler) as *const dyn Schedule
}

unsafe fn dealloc<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the last reference is gone; the block came from `Box<Cell<F, S>>`.
    let mut cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    // The output (or a future never polled to the end) is user code: drop it contained,
    // so that a panicking `Drop` cannot unwind out of whoever dropped the last reference
    // (often a worker finishing the task). Then free the block.
    let stage = std::mem::replace(cell.stage.get_mut(), Stage::Consumed);
    let join_waker = cell.header.join_waker.get_mut().take();
    crate::contain::counting_in(cell.scheduler.contained_panics(), || {
        crate::contain::contain("dropping a task's output", || drop(stage));
        // The joiner's waker may hold the last reference to the joining task, whose block
        // holds its own joiner's waker, and so on: a chain of tasks each awaiting the next
        // (100 000 deep overflowed a worker's stack). Dropped flat.
        drop_waker_flat(join_waker);
    });
}

/// Drops `waker` flat (`util::flat`): a chain of drops, each freeing a task whose block
/// holds the next waker, costs no stack however long. A waker whose drop panics is
/// contained.
fn drop_waker_flat(waker: Option<Waker>) {
    if let Some(waker) = waker {
        crate::util::flat::run(move || {
            crate::contain::contain("dropping a JoinHandle's waker", || drop(waker));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// A scheduler for a task that is never polled or woken: only its references move.
    struct Unscheduled(Arc<AtomicU64>);

    impl Schedule for Unscheduled {
        fn schedule_woken(&self, _: RawTask) {
            unreachable!("the task is never woken")
        }
        fn aborted_queued(&self) {}
        fn add_timer(&self, _: Deadline, _: Waker) -> crate::util::waker_map::WakerEntry {
            unreachable!("the task is never polled")
        }
        fn add_park_waker(&self, _: RawTask, _: Waker) -> crate::util::waker_map::WakerEntry {
            unreachable!("the task is never polled")
        }
        fn wake_parked(&self, _: RawTask) {}
        fn contained_panics(&self) -> &Arc<AtomicU64> {
            &self.0
        }
    }

    /// Sets its flag when the task's future is dropped (the block is freed).
    struct Freed(Arc<AtomicBool>);

    impl Drop for Freed {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    #[test]
    fn the_cost_record_and_the_reference_count_share_their_word_without_mixing() {
        let freed = Arc::new(AtomicBool::new(false));
        let guard = Freed(freed.clone());
        let future = async move { drop(guard) };
        let task = RawTask::new(future, Arc::new(Unscheduled(Arc::default())), 1, None);
        assert_eq!(task.header().cost(), 0);
        // Other threads take and drop references while the owner rewrites the record.
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(move || {
                    for _ in 0..20_000 {
                        task.ref_inc();
                        task.ref_dec();
                    }
                });
            }
            for i in 0..20_000u32 {
                task.header().set_cost(i % (1 << COST_BITS));
                assert_eq!(task.header().cost(), i % (1 << COST_BITS));
            }
        });
        task.header().set_cost((1 << COST_BITS) - 1);
        task.ref_dec();
        assert!(!freed.load(SeqCst), "one reference is left");
        assert_eq!(task.header().cost(), (1 << COST_BITS) - 1);
        task.ref_dec();
        assert!(freed.load(SeqCst), "the last reference frees the task whatever its record");
    }
}
