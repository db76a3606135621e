//! Flat runs of work that may set off more of the same: dropping a task's joiner waker can
//! free the joining task, whose block holds its own joiner's waker, and so on; dropping a
//! future that a shut-down core refused can run a `Drop` that spawns again, refused again.
//! Done on the stack, each link nests one call deeper, and a long enough chain (100 000
//! joined tasks, a few thousand refused spawns) overflows the thread's stack.
//!
//! [`run`] does the work at once, unless a `run` is already under way on this thread (this
//! one was set off from inside it): then the work is queued, and that outermost `run`
//! does it in its loop. Only the nested case allocates.

use std::cell::RefCell;

type Work = Box<dyn FnOnce()>;

thread_local! {
    /// Work queued by nested [`run`]s on this thread (`None`: no `run` is under way).
    static QUEUED: RefCell<Option<Vec<Work>>> = const { RefCell::new(None) };
}

/// Runs `work` now, or (nested in another `run` on this thread) after that one's work;
/// see the module docs. `work` must contain its own panics (`contain::contain`): one that
/// escapes leaves the work queued behind it undone (leaked, never run).
pub(crate) fn run(work: impl FnOnce() + 'static) {
    let Ok(nested) = QUEUED.try_with(|q| q.borrow().is_some()) else {
        // The thread is exiting (its thread-locals are gone): in place.
        work();
        return;
    };
    if nested {
        // It runs later, outside the caller's scope: it keeps the core its panics count in.
        let counter = crate::contain::on_behalf_of();
        let work = move || crate::contain::counting_in_opt(counter, work);
        QUEUED.with(|q| q.borrow_mut().as_mut().expect("a run under way").push(Box::new(work)));
        return;
    }
    /// Ends the run, even if a piece of work panicked (what it left queued is leaked: its
    /// drop could panic again during the unwind).
    struct Outermost;
    impl Drop for Outermost {
        fn drop(&mut self) {
            if let Some(left) = QUEUED.with(|q| q.borrow_mut().take()) {
                std::mem::forget(left);
            }
        }
    }
    QUEUED.with(|q| *q.borrow_mut() = Some(Vec::new()));
    let _outermost = Outermost;
    work();
    while let Some(next) = QUEUED.with(|q| q.borrow_mut().as_mut().and_then(Vec::pop)) {
        next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A chain of a million nested runs costs no stack.
    #[test]
    fn a_long_chain_runs_in_a_loop() {
        fn link(left: u32, done: Rc<Cell<u32>>) {
            run(move || {
                done.set(done.get() + 1);
                if left > 0 {
                    link(left - 1, done);
                }
            });
        }
        let done = Rc::new(Cell::new(0));
        link(1_000_000, done.clone());
        assert_eq!(done.get(), 1_000_001);
    }

    /// Work queued behind a piece that panicked is not run, and later runs work again.
    #[test]
    fn a_panic_ends_the_run() {
        let ran = Rc::new(Cell::new(false));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let ran = ran.clone();
            run(move || {
                run(move || ran.set(true));
                panic!("escaped");
            })
        }));
        assert!(r.is_err());
        assert!(!ran.get());
        let again = Rc::new(Cell::new(false));
        let a = again.clone();
        run(move || a.set(true));
        assert!(again.get());
    }
}
