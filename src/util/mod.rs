//! Generic containers the runtime is built from; they know nothing of tasks, sockets or
//! the scheduler.
//!
//! - `inbox`: the lock-free MPSC intrusive queue with take-all behind the front queue;
//! - `heap`: the binary min-heap with O(log n) removal behind the deadline heap (`SlotHeap`);
//! - `waker_map`: keyed wakers with owned registrations (slow-path timers, `park` under a
//!   foreign waker).

pub(crate) mod heap;
pub(crate) mod inbox;
pub(crate) mod waker_map;
