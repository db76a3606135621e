//! The list of live tasks, so that shutdown can cancel tasks that sit in no queue (parked
//! with no deadline, reachable only through their wakers).
//!
//! An intrusive doubly linked list, sharded by task id to keep spawns on different threads
//! off each other's lock. The links live in the task header and are only touched under the
//! shard's lock.

use crate::task::raw::RawTask;
use crate::task::Header;
use std::ptr;
use std::sync::Mutex;

struct Shard {
    head: *const Header,
}

// SAFETY: the pointers are only followed under the shard's mutex, and tasks are Send.
unsafe impl Send for Shard {}

pub(crate) struct LiveList {
    shards: Box<[Mutex<Shard>]>,
}

const PREV: usize = 0;
const NEXT: usize = 1;

fn links(task: *const Header) -> *mut [*const Header; 2] {
    // SAFETY: callers hold the shard lock and a live task pointer.
    unsafe { (*task).live_links.get() }
}

impl LiveList {
    pub(crate) fn new(threads: usize) -> LiveList {
        let n = (threads * 4).next_power_of_two();
        LiveList { shards: (0..n).map(|_| Mutex::new(Shard { head: ptr::null() })).collect() }
    }

    fn shard(&self, task: RawTask) -> std::sync::MutexGuard<'_, Shard> {
        let i = task.header().id as usize & (self.shards.len() - 1);
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Links `task` if `admit()` (evaluated under the shard lock) says so. Because
    /// [`snapshot`](Self::snapshot) takes the same locks, a caller that flips what `admit`
    /// checks and then snapshots sees every task admitted before the flip.
    pub(crate) fn insert_if(&self, task: RawTask, admit: impl FnOnce() -> bool) -> bool {
        let mut shard = self.shard(task);
        if !admit() {
            return false;
        }
        let t = task.as_ptr() as *const Header;
        // SAFETY: under the shard lock; `t` and the old head are live tasks of this shard.
        unsafe {
            *links(t) = [ptr::null(), shard.head];
            if !shard.head.is_null() {
                (*links(shard.head))[PREV] = t;
            }
        }
        shard.head = t;
        true
    }

    pub(crate) fn remove(&self, task: RawTask) {
        let mut shard = self.shard(task);
        let t = task.as_ptr() as *const Header;
        // SAFETY: under the shard lock; `t` is in this shard's list, so are its neighbours.
        unsafe {
            let [prev, next] = *links(t);
            if prev.is_null() {
                shard.head = next;
            } else {
                (*links(prev))[NEXT] = next;
            }
            if !next.is_null() {
                (*links(next))[PREV] = prev;
            }
            *links(t) = [ptr::null(); 2];
        }
    }

    /// Every live task, each with one reference taken for the caller.
    pub(crate) fn snapshot(&self) -> Vec<RawTask> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let mut t = shard.head;
            while !t.is_null() {
                let task = RawTask::from_ptr(t);
                task.ref_inc();
                out.push(task);
                // SAFETY: under the shard lock.
                t = unsafe { (*links(t))[NEXT] };
            }
        }
        out
    }
}
