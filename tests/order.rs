//! Start order on a 1-thread core: a ready task before delayed ones, delayed tasks by
//! deadline, and tasks with the same deadline in spawn order.

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{core, join, join_all, spin_until, wait_until, watchdog, HANG};

fn record(log: &Arc<Mutex<Vec<usize>>>, i: usize) -> impl std::future::Future<Output = ()> + Send + 'static {
    let log = log.clone();
    async move { log.lock().unwrap().push(i) }
}

#[test]
fn ready_then_by_delay() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let a = core.spawn(record(&log, 0));
        let b = core.spawn_after(Duration::from_millis(3), record(&log, 1));
        let c = core.spawn_after(Duration::from_millis(5), record(&log, 2));
        join_all(&core, vec![a, b, c]);
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2]);
    });
}

fn same_deadline(deadline: Instant) {
    let core = core(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..50).map(|i| core.spawn_at(deadline, record(&log, i))).collect();
    join_all(&core, handles);
    assert_eq!(*log.lock().unwrap(), (0..50).collect::<Vec<_>>());
}

#[test]
fn same_future_deadline_runs_in_spawn_order() {
    watchdog(HANG * 2, || same_deadline(Instant::now() + Duration::from_millis(10)));
}

#[test]
fn same_past_deadline_runs_in_spawn_order() {
    watchdog(HANG * 2, || same_deadline(Instant::now()));
}

/// Same deadline, spawned from inside a task on the core.
#[test]
fn same_deadline_spawned_inside_runs_in_spawn_order() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let parent = core.spawn(async move {
            let handle = iocore::Handle::current();
            let deadline = Instant::now() + Duration::from_millis(10);
            let handles: Vec<_> = (0..50).map(|i| handle.spawn_at(deadline, record(&log2, i))).collect();
            for h in handles {
                h.await.expect("task failed");
            }
        });
        join(&core, parent).expect("parent failed");
        assert_eq!(*log.lock().unwrap(), (0..50).collect::<Vec<_>>());
    });
}

/// Two tasks with the same deadline, where the first is already waiting for it when the
/// second is spawned, and the deadline passes while the only worker is busy: they must
/// still start in spawn order (docs of `Handle::spawn_at`).
#[test]
fn same_deadline_spawn_order_when_overdue() {
    watchdog(HANG * 2, || overdue(Duration::ZERO));
}

/// Like `ready_then_by_delay` (B after 3 ms, C after 5 ms) when the only worker is busy
/// past both deadlines: B, whose deadline is earlier, must still start first.
#[test]
fn deadline_order_when_overdue() {
    watchdog(HANG * 2, || overdue(Duration::from_millis(2)));
}

/// Spawns task 0 at `deadline`, waits until it sits in the deadline heap, occupies the only
/// worker, spawns task 1 at `deadline + later`, lets both deadlines pass, frees the worker.
fn overdue(later: Duration) {
    let core = core(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_millis(30);
    let first = core.spawn_at(deadline, record(&log, 0));
    // Wait until the first task is parked in the deadline heap.
    wait_until("first task parked", || core.metrics().parked_tasks == 1);
    // Occupy the only worker so that no scheduling step happens for a while.
    let (running, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (r2, rel2) = (running.clone(), release.clone());
    let blocker = core.spawn(async move {
        r2.store(true, SeqCst);
        spin_until("blocker released", || rel2.load(SeqCst));
    });
    wait_until("blocker running", || running.load(SeqCst));
    let second = core.spawn_at(deadline + later, record(&log, 1));
    while Instant::now() <= deadline + later + Duration::from_millis(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    release.store(true, SeqCst);
    join_all(&core, vec![blocker, first, second]);
    assert_eq!(*log.lock().unwrap(), vec![0, 1], "overdue delayed tasks started out of order");
}
