//! The blocking pool: threads for closures that block (file IO, name resolution, a
//! synchronous library call, heavy CPU work), so that they never stall a worker.
//!
//! Closures run in FIFO order. A submission wakes an idle thread if there is one, else
//! starts a new thread while fewer than `max_threads` exist (else it waits in the queue).
//! A thread that finds no work for `keep_alive` exits, so the pool shrinks back to zero
//! when unused. A panicking closure is caught by the caller's wrapper (see
//! `Scheduler::spawn_blocking`), so a pool thread never dies of it.
//!
//! Shutdown stops idle threads; closures already running cannot be interrupted and are
//! left to finish on their (detached) threads — the shutdown report counts them.

use crate::sync::lock;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// A closure for the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// See the module docs.
pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued or the pool shuts down.
    work: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Jobs running now.
    running: usize,
    shutdown: bool,
}

/// What the pool holds now, for metrics and the shutdown report.
pub(crate) struct PoolCounts {
    pub(crate) threads: usize,
    pub(crate) running: usize,
    pub(crate) queued: usize,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, thread_name: String) -> BlockingPool {
        BlockingPool {
            state: Mutex::new(PoolState::default()),
            work: Condvar::new(),
            max_threads,
            keep_alive,
            thread_name,
        }
    }

    /// Queues `job`; starts a thread for it if none is idle and the pool may grow. Fails
    /// only when the pool is shut down, or no thread exists and none can be started.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.shutdown {
            return Err(io::Error::other("the blocking pool is shut down"));
        }
        st.queue.push_back(job);
        if st.idle >= st.queue.len() {
            drop(st);
            self.work.notify_one();
            return Ok(());
        }
        if st.threads >= self.max_threads {
            // Waits for a busy thread to come back for it.
            return Ok(());
        }
        st.threads += 1;
        let name = format!("{}-{}", self.thread_name, st.threads);
        drop(st);
        let pool = self.clone();
        if let Err(e) = thread::Builder::new().name(name).spawn(move || pool.work_loop()) {
            let mut st = lock(&self.state);
            st.threads -= 1;
            if st.threads == 0 {
                // Nobody will ever run it: hand the failure back instead of losing the job.
                st.queue.pop_back();
                return Err(io::Error::new(e.kind(), format!("cannot start a blocking thread: {e}")));
            }
        }
        Ok(())
    }

    /// The body of a pool thread.
    fn work_loop(self: Arc<Self>) {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.queue.pop_front() {
                st.running += 1;
                drop(st);
                // The caller's wrapper catches the closure's panic; this guard is for a
                // wrapper's own failure, which must not take the thread's count with it.
                crate::contain::contain("running a blocking closure", job);
                st = lock(&self.state);
                st.running -= 1;
                continue;
            }
            if st.shutdown {
                break;
            }
            st.idle += 1;
            let (next, timeout) =
                self.work.wait_timeout(st, self.keep_alive).unwrap_or_else(|e| e.into_inner());
            st = next;
            st.idle -= 1;
            if timeout.timed_out() && st.queue.is_empty() {
                break;
            }
        }
        st.threads -= 1;
    }

    /// Stops accepting jobs and lets idle threads exit; running closures finish on their
    /// own. Jobs still queued are dropped (their tasks see the pool gone).
    pub(crate) fn shut_down(&self) {
        let dropped = {
            let mut st = lock(&self.state);
            st.shutdown = true;
            std::mem::take(&mut st.queue)
        };
        self.work.notify_all();
        // One at a time: a closure whose drop panicked would otherwise leave the rest to
        // the unwind, and a second panic there aborts the process.
        for job in dropped {
            crate::contain::contain("dropping a queued blocking closure", || drop(job));
        }
    }

    pub(crate) fn counts(&self) -> PoolCounts {
        let st = lock(&self.state);
        PoolCounts { threads: st.threads, running: st.running, queued: st.queue.len() }
    }
}
