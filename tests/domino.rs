//! With N workers, N tasks that each block their worker on a shared `std::sync::Barrier(N)`
//! all complete: every ready task must reach a free worker, even when the workers that are
//! already busy can never come back to the ready queue.

mod support;

use iocore::time;
use std::sync::{Arc, Barrier};
use support::{core, join, join_all, watchdog, HANG};

async fn blocker(barrier: Arc<Barrier>) {
    barrier.wait();
}

fn from_outside(n: usize, rounds: usize) {
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let barrier = Arc::new(Barrier::new(n));
            let handles: Vec<_> = (0..n).map(|_| core.spawn(blocker(barrier.clone()))).collect();
            join_all(&core, handles);
        }
    });
}

/// A parent task spawns the N blocking tasks, then awaits them.
fn from_inside(n: usize, rounds: usize) {
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let parent = core.spawn(async move {
                let barrier = Arc::new(Barrier::new(n));
                let handles: Vec<_> = (0..n).map(|_| iocore::spawn(blocker(barrier.clone()))).collect();
                for h in handles {
                    h.await.expect("task failed");
                }
            });
            join(&core, parent).expect("parent failed");
        }
    });
}

/// A parent task spawns N-1 blocking tasks and then blocks on the barrier itself, so the
/// worker that did the spawning is taken right away.
fn from_inside_parent_blocks(n: usize, rounds: usize) {
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let parent = core.spawn(async move {
                let barrier = Arc::new(Barrier::new(n));
                let handles: Vec<_> = (1..n).map(|_| iocore::spawn(blocker(barrier.clone()))).collect();
                barrier.wait();
                for h in handles {
                    h.await.expect("task failed");
                }
            });
            join(&core, parent).expect("parent failed");
        }
    });
}

/// Chained: task i spawns task i+1 and then blocks; the last one releases everybody.
fn chain(n: usize, rounds: usize) {
    fn link(
        i: usize,
        n: usize,
        barrier: Arc<Barrier>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let next = (i + 1 < n).then(|| iocore::spawn(link(i + 1, n, barrier.clone())));
            barrier.wait();
            if let Some(next) = next {
                next.await.expect("task failed");
            }
        })
    }
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let head = core.spawn(link(0, n, Arc::new(Barrier::new(n))));
            join(&core, head).expect("task failed");
        }
    });
}

#[test]
fn outside_2_workers() {
    from_outside(2, 200);
}

#[test]
fn outside_4_workers() {
    from_outside(4, 200);
}

#[test]
fn inside_2_workers() {
    from_inside(2, 200);
}

#[test]
fn inside_4_workers() {
    from_inside(4, 200);
}

#[test]
fn inside_parent_blocks_2_workers() {
    from_inside_parent_blocks(2, 200);
}

#[test]
fn inside_parent_blocks_4_workers() {
    from_inside_parent_blocks(4, 200);
}

#[test]
fn chain_2_workers() {
    chain(2, 200);
}

#[test]
fn chain_4_workers() {
    chain(4, 200);
}

/// Each task sleeps (a different short time) before blocking: the deadlines must still be
/// fired while the other workers are blocked in the barrier.
fn after_sleep(n: usize, rounds: usize) {
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let barrier = Arc::new(Barrier::new(n));
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let barrier = barrier.clone();
                    core.spawn(async move {
                        time::sleep(std::time::Duration::from_micros(200 * i as u64)).await;
                        barrier.wait();
                    })
                })
                .collect();
            join_all(&core, handles);
        }
    });
}

/// The last of the N tasks is spawned with `spawn_after`.
fn last_delayed(n: usize, rounds: usize) {
    watchdog(HANG * 2, move || {
        let core = core(n);
        for _ in 0..rounds {
            let barrier = Arc::new(Barrier::new(n));
            let mut handles: Vec<_> = (1..n).map(|_| core.spawn(blocker(barrier.clone()))).collect();
            handles.push(core.spawn_after(std::time::Duration::from_millis(1), blocker(barrier.clone())));
            join_all(&core, handles);
        }
    });
}

#[test]
fn after_sleep_2_workers() {
    after_sleep(2, 50);
}

#[test]
fn after_sleep_4_workers() {
    after_sleep(4, 50);
}

#[test]
fn last_delayed_2_workers() {
    last_delayed(2, 50);
}

#[test]
fn last_delayed_4_workers() {
    last_delayed(4, 50);
}
