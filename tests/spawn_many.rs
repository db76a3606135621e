//! 100k spawned tasks all complete and join, with spawns from outside the core and from
//! inside a task, on 1, 2 and 4 worker threads.

mod support;

use iocore::{task, time, IoCore, JoinHandle};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::{core, watchdog, HANG};

const TASKS: usize = 100_000;

fn expected_sum() -> u64 {
    (0..TASKS as u64).sum()
}

/// Each task bumps `ran` and returns its index; every 16th task yields once first so
/// that some tasks are polled more than once.
async fn work(i: usize, ran: Arc<AtomicUsize>) -> u64 {
    if i % 16 == 0 {
        task::yield_now().await;
    }
    ran.fetch_add(1, SeqCst);
    i as u64
}

/// Awaits every handle and adds up the outputs.
async fn sum_of(handles: Vec<JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for h in handles {
        sum += h.await.expect("task failed");
    }
    sum
}

/// Every task ran once and was joined.
fn assert_all_ran(sum: u64, ran: &AtomicUsize) {
    assert_eq!(sum, expected_sum());
    assert_eq!(ran.load(SeqCst), TASKS);
}

/// With every task joined, the core is idle and shuts down with nothing to cancel.
fn assert_idle_then_clean_shutdown(core: IoCore) {
    assert!(core.wait_idle(HANG), "tasks still live after all joined");
    let report = core.shutdown(HANG);
    assert_eq!(report.leaked, 0);
    assert_eq!(report.cancelled, 0);
}

fn spawn_from_outside(threads: usize) {
    watchdog(HANG * 3, move || {
        let core = core(threads);
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..TASKS).map(|i| core.spawn(work(i, ran.clone()))).collect();
        let sum =
            core.block_on(time::timeout(HANG * 2, sum_of(handles))).expect("joining 100k tasks timed out");
        assert_all_ran(sum, &ran);
        assert_idle_then_clean_shutdown(core);
    });
}

fn spawn_from_inside(threads: usize) {
    watchdog(HANG * 3, move || {
        let core = core(threads);
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let parent = core.spawn(async move {
            let handles: Vec<_> = (0..TASKS).map(|i| iocore::spawn(work(i, ran2.clone()))).collect();
            sum_of(handles).await
        });
        let sum = core
            .block_on(time::timeout(HANG * 2, parent))
            .expect("joining 100k tasks timed out")
            .expect("parent task failed");
        assert_all_ran(sum, &ran);
        assert_idle_then_clean_shutdown(core);
    });
}

/// Spawns from several tasks at once (concurrent inside spawns on different workers).
fn spawn_from_many_tasks(threads: usize) {
    watchdog(HANG * 3, move || {
        let core = core(threads);
        let ran = Arc::new(AtomicUsize::new(0));
        const SPAWNERS: usize = 10;
        let parents: Vec<_> = (0..SPAWNERS)
            .map(|p| {
                let ran = ran.clone();
                core.spawn(async move {
                    let per = TASKS / SPAWNERS;
                    let handles: Vec<_> =
                        (p * per..(p + 1) * per).map(|i| iocore::spawn(work(i, ran.clone()))).collect();
                    sum_of(handles).await
                })
            })
            .collect();
        let sum =
            core.block_on(time::timeout(HANG * 2, sum_of(parents))).expect("joining 100k tasks timed out");
        assert_all_ran(sum, &ran);
    });
}

#[test]
fn outside_1_thread() {
    spawn_from_outside(1);
}

#[test]
fn outside_2_threads() {
    spawn_from_outside(2);
}

#[test]
fn outside_4_threads() {
    spawn_from_outside(4);
}

#[test]
fn inside_1_thread() {
    spawn_from_inside(1);
}

#[test]
fn inside_2_threads() {
    spawn_from_inside(2);
}

#[test]
fn inside_4_threads() {
    spawn_from_inside(4);
}

#[test]
fn many_spawner_tasks_2_threads() {
    spawn_from_many_tasks(2);
}

#[test]
fn many_spawner_tasks_4_threads() {
    spawn_from_many_tasks(4);
}
