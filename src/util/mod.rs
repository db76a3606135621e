//! Generic containers the runtime is built from; they know nothing of tasks, sockets or
//! the scheduler.
//!
//! - `inbox`: the lock-free MPSC intrusive queue with take-all behind the front queue;
//! - `wheel`: the parked tasks by deadline (`TimerWheel`): a hierarchical timing wheel for
//!   far deadlines in front of `heap`, the binary min-heap with O(log n) removal
//!   (`SlotHeap`) that orders the near ones exactly;
//! - `waker_map`: keyed wakers with owned registrations (slow-path timers, `park` under a
//!   foreign waker);
//! - `wait_list`: wakers waiting for a condition, woken all at once (post queues, signals);
//! - `flat`: work that may set off more of the same, run in a loop instead of nested
//!   on the stack (chains of drops);
//! - `once_box`: a value boxed on first use behind one atomic pointer (a post queue's
//!   parts that only a queue in use needs);
//! - [`Padded`]: a value on a cache line of its own.

pub(crate) mod flat;
pub(crate) mod heap;
pub(crate) mod inbox;
pub(crate) mod once_box;
pub(crate) mod wait_list;
pub(crate) mod waker_map;
pub(crate) mod wheel;

/// A value on a cache line of its own (128 bytes: two lines, for the adjacent-line
/// prefetcher), so that fields written by different threads at different rates do not
/// slow each other down (false sharing).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
