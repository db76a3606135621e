//! Helpers shared by the integration tests: a watchdog so that a hang fails the test
//! instead of blocking forever, drop guards, and bounded waits.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound for anything that should take milliseconds: only a hang reaches it.
pub const HANG: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`.
/// A panic inside `f` is propagated as is.
pub fn watchdog<F: FnOnce() + Send + 'static>(limit: Duration, f: F) {
    let (tx, rx) = mpsc::channel::<()>();
    let t = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("spawn test body");
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(()) => unreachable!("body exited without reporting"),
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?}: the runtime hangs")
        }
    }
}

/// Increments its counter exactly when dropped.
pub struct DropGuard(pub Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `cond` until it holds; panics with `what` after [`HANG`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        thread::sleep(Duration::from_micros(200));
    }
}

/// Spins (without sleeping; usable inside a task that must not yield) until `cond` holds;
/// panics with `what` after [`HANG`].
pub fn spin_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out spinning for: {what}");
        std::hint::spin_loop();
        thread::yield_now();
    }
}
