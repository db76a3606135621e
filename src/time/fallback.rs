//! The timers of last resort. A time future polled outside any core registers with the
//! process-wide default core; when that core cannot start (the process is out of file
//! descriptors for a moment, say), its timer goes here instead, and a plain thread (it
//! needs no file descriptor) fires it at its deadline. Later polls try the default core
//! again.

use crate::sync::{lock, TryOnce};
use crate::time::clock::Deadline;
use crate::util::waker_map::{WakerEntry, WakerMap};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;

/// The timers, and the bell that tells their thread about a new one.
struct Fallback {
    timers: Arc<WakerMap>,
    bell: Mutex<()>,
    rung: Condvar,
}

/// Registers `waker` to be woken at `deadline` by the fallback thread. If even that thread
/// cannot start, the waker is woken at once (its future polls again, and tries again: a
/// busy retry, for as long as the process can start no thread).
pub(crate) fn add_timer(deadline: Deadline, waker: Waker) -> WakerEntry {
    static FALLBACK: TryOnce<Arc<Fallback>> = TryOnce::new();
    let started = FALLBACK.get_or_try_init(|| {
        let fallback = Arc::new(Fallback {
            timers: Arc::new(WakerMap::new()),
            bell: Mutex::new(()),
            rung: Condvar::new(),
        });
        let runs = fallback.clone();
        std::thread::Builder::new().name("iocore-fallback-timers".into()).spawn(move || runs.run())?;
        Ok::<_, std::io::Error>(fallback)
    });
    match started {
        Ok(fallback) => {
            // Under the bell's lock: the thread looks at the first deadline under it.
            let _bell = lock(&fallback.bell);
            let entry = fallback.timers.insert(deadline.as_nanos(), waker);
            fallback.rung.notify_one();
            entry
        }
        Err(_) => {
            // Nothing can fire a timer (no thread can start): a poll again now, which tries
            // again. (The entry is woken at once, so it is not kept as registered.)
            let map = Arc::new(WakerMap::new());
            let entry = map.insert(deadline.as_nanos(), waker);
            map.wake_up_to(u64::MAX);
            entry
        }
    }
}

impl Fallback {
    /// The thread: fires what is due, then sleeps until the first deadline or the bell.
    fn run(&self) {
        loop {
            self.timers.wake_up_to(Deadline::now().as_nanos());
            let bell = lock(&self.bell);
            let _bell = match self.timers.first_group() {
                Some(first) => {
                    let wait = Deadline::from_nanos(first).since(Deadline::now());
                    self.rung.wait_timeout(bell, wait).map(|(b, _)| b).unwrap_or_else(|e| e.into_inner().0)
                }
                None => self.rung.wait(bell).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
