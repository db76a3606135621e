//! Fairness: two tasks looping on `yield_now` on a 2-worker core do not starve 1000 short
//! tasks spawned after they started; every short task completes before either looper
//! finishes its 100k yields.

mod support;

use iocore::{task, time, IoCore, JoinHandle};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::{core, join, serial, spin_until, wait_until, watchdog, HANG};

const YIELDS: usize = 100_000;
const SHORT: usize = 1000;

struct Counters {
    started: AtomicUsize,
    short_done: AtomicUsize,
}

/// A looper: announces it started, yields 100k times, returns how many short tasks had
/// completed by then.
async fn looper(c: Arc<Counters>) -> usize {
    c.started.fetch_add(1, SeqCst);
    for _ in 0..YIELDS {
        task::yield_now().await;
    }
    c.short_done.load(SeqCst)
}

/// A short task: yields once (so it goes behind the loopers once), then counts itself.
async fn short(c: Arc<Counters>) {
    task::yield_now().await;
    c.short_done.fetch_add(1, SeqCst);
}

fn check(core: &IoCore, c: &Counters, loopers: Vec<JoinHandle<usize>>, shorts: Vec<JoinHandle<()>>) {
    let seen = core
        .block_on(time::timeout(HANG, async move {
            let mut seen = Vec::new();
            for l in loopers {
                seen.push(l.await.expect("looper failed"));
            }
            for s in shorts {
                s.await.expect("short task failed");
            }
            seen
        }))
        .expect("tasks did not finish");
    assert_eq!(c.short_done.load(SeqCst), SHORT);
    assert_eq!(
        seen,
        vec![SHORT, SHORT],
        "a looping task finished before every short task completed (short tasks starved)"
    );
}

/// Starts two loopers on a 2-worker core, has `spawn_shorts` spawn the short tasks, and
/// checks that none was starved. (The tests load the machine: they take the `serial` lock.)
fn loopers_do_not_starve<F>(spawn_shorts: F)
where
    F: FnOnce(&IoCore, &Arc<Counters>) -> Vec<JoinHandle<()>> + Send + 'static,
{
    let _serial = serial();
    watchdog(HANG * 2, move || {
        let core = core(2);
        let c = Arc::new(Counters { started: AtomicUsize::new(0), short_done: AtomicUsize::new(0) });
        let loopers = (0..2).map(|_| core.spawn(looper(c.clone()))).collect();
        let shorts = spawn_shorts(&core, &c);
        check(&core, &c, loopers, shorts);
    });
}

#[test]
fn short_tasks_spawned_from_outside_are_not_starved() {
    loopers_do_not_starve(|core, c| {
        wait_until("both loopers started", || c.started.load(SeqCst) == 2);
        (0..SHORT).map(|_| core.spawn(short(c.clone()))).collect()
    });
}

#[test]
fn short_tasks_spawned_from_a_task_are_not_starved() {
    loopers_do_not_starve(|core, c| {
        let c2 = c.clone();
        let spawner = core.spawn(async move {
            // Wait (cooperatively) until both loopers run.
            while c2.started.load(SeqCst) < 2 {
                task::yield_now().await;
            }
            (0..SHORT).map(|_| iocore::spawn(short(c2.clone()))).collect::<Vec<_>>()
        });
        join(core, spawner).expect("spawner failed")
    });
}

/// The same with the spawner itself one of the busy tasks: it spawns one short task per
/// yield, from inside the core, while two loopers run.
#[test]
fn short_tasks_spawned_between_yields_are_not_starved() {
    loopers_do_not_starve(|core, c| {
        let c2 = c.clone();
        let spawner = core.spawn(async move {
            spin_until("both loopers started", || c2.started.load(SeqCst) == 2);
            let mut shorts = Vec::with_capacity(SHORT);
            for _ in 0..SHORT {
                shorts.push(iocore::spawn(short(c2.clone())));
                task::yield_now().await;
            }
            shorts
        });
        join(core, spawner).expect("spawner failed")
    });
}

/// On a one-worker core, two tasks that keep waking each other (a ping-pong over
/// channels, no yields: each wake readies the other into the worker's own batch) do not
/// starve a task spawned from another thread: it runs while they still play.
#[test]
fn a_ping_pong_on_one_worker_does_not_starve_a_task_spawned_from_outside() {
    use futures::channel::mpsc;
    use futures::{SinkExt, StreamExt};
    const ROUNDS: usize = 200_000;
    watchdog(HANG, || {
        let core = core(1);
        let (mut to_b, mut b_in) = mpsc::channel::<usize>(1);
        let (mut to_a, mut a_in) = mpsc::channel::<usize>(1);
        let outside_ran = Arc::new(AtomicUsize::new(0));
        let a = {
            let outside_ran = outside_ran.clone();
            core.spawn(async move {
                for i in 0..ROUNDS {
                    to_b.send(i).await.unwrap();
                    a_in.next().await.unwrap();
                    if outside_ran.load(SeqCst) == 1 {
                        return Some(i);
                    }
                }
                None
            })
        };
        let b = core.spawn(async move {
            while let Some(i) = b_in.next().await {
                if to_a.send(i).await.is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let flag = outside_ran.clone();
        let outside = core.spawn(async move { flag.store(1, SeqCst) });
        join(&core, outside).unwrap();
        let stopped_at = join(&core, a).unwrap();
        assert!(stopped_at.is_some(), "the task from outside ran only after {ROUNDS} rounds");
        join(&core, b).unwrap();
    });
}
