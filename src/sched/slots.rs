//! The slot table of live tasks, so that shutdown can cancel tasks that sit in no queue
//! (parked with no deadline, reachable only through their wakers).
//!
//! Sharded by task id, to keep spawns on different threads off each other's lock. Each
//! shard is a slot vector with a free list; a task keeps its slot index in its header
//! (`live_slot`, guarded by the shard's lock). That costs 4 bytes in the task instead of
//! the 16 of an intrusive list, plus 8 in the table.

use crate::sync::lock;
use crate::task::raw::RawTask;
use crate::task::Header;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Shard {
    slots: Vec<*const Header>,
    free: Vec<u32>,
}

// SAFETY: the pointers are only followed under the shard's mutex, and tasks are Send.
unsafe impl Send for Shard {}

/// See the module docs.
pub(crate) struct TaskSlots {
    shards: Box<[Mutex<Shard>]>,
}

impl TaskSlots {
    pub(crate) fn new(threads: usize) -> TaskSlots {
        let n = (threads * 4).next_power_of_two();
        TaskSlots { shards: (0..n).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, task: RawTask) -> MutexGuard<'_, Shard> {
        let i = task.header().id as usize & (self.shards.len() - 1);
        lock(&self.shards[i])
    }

    /// Adds `task` if `admit()` (evaluated under the shard lock) says so. Because
    /// [`snapshot`](Self::snapshot) takes the same locks, a caller that flips what `admit`
    /// checks and then snapshots sees every task admitted before the flip.
    pub(crate) fn insert_if(&self, task: RawTask, admit: impl FnOnce() -> bool) -> bool {
        let mut shard = self.shard(task);
        if !admit() {
            return false;
        }
        let t = task.as_ptr() as *const Header;
        let slot = match shard.free.pop() {
            Some(i) => {
                shard.slots[i as usize] = t;
                i
            }
            None => {
                let i =
                    u32::try_from(shard.slots.len()).expect("more than 4 billion live tasks in one shard");
                shard.slots.push(t);
                i
            }
        };
        // SAFETY: `live_slot` is only touched under this shard's lock, which we hold.
        unsafe { *task.header().live_slot.get() = slot };
        true
    }

    pub(crate) fn remove(&self, task: RawTask) {
        let mut shard = self.shard(task);
        // SAFETY: under the shard lock (see `insert_if`).
        let slot = unsafe { *task.header().live_slot.get() };
        shard.slots[slot as usize] = ptr::null();
        shard.free.push(slot);
        if shard.free.len() == shard.slots.len() {
            // Empty: start over (keeps indices small); give back the memory of a big burst.
            shard.slots.clear();
            shard.free.clear();
            if shard.slots.capacity() > 4096 {
                shard.slots.shrink_to(64);
                shard.free.shrink_to(64);
            }
        }
    }

    /// Every live task, each with one reference taken for the caller.
    pub(crate) fn snapshot(&self) -> Vec<RawTask> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for &t in shard.slots.iter().filter(|t| !t.is_null()) {
                // SAFETY: a task stays in the table (holding the scheduler's reference)
                // until `complete` removes it under this lock.
                let task = unsafe { RawTask::from_ptr(t) };
                task.ref_inc();
                out.push(task);
            }
        }
        out
    }
}
