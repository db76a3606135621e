//! `Metrics` and `wait_idle` stay consistent under concurrency:
//!
//! - while threads hammer the front queue (delayed spawns, wakeups of tasks parked with a
//!   deadline), a reader never sees an impossible `front_queue_depth` or `ready_queue_depth`
//!   (a counter bumped after the push it counts can underflow to ~2^64), nor more parked
//!   tasks than tasks ever spawned;
//! - `wait_idle()` returning true means every task has finished: each `JoinHandle` says
//!   `is_finished()` right after it.

mod support;

use iocore::{task, Metrics};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::{allowed_cpus, core, pin_to, serial, wait_until, watchdog, HANG};

/// Moves the calling thread to the idle scheduling class (best effort).
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread with a valid parameter.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}

/// Impossible metric snapshots seen by the storm's reader.
static BAD_READS: AtomicUsize = AtomicUsize::new(0);

/// No test here queues anywhere near this many tasks.
const DEPTH_BOUND: usize = 1_000_000;

#[test]
fn metrics_read_during_a_front_queue_storm_stay_within_bounds() {
    const HAMMERS: usize = 6;
    const PARKERS: usize = 64;
    let run_for = Duration::from_millis(1500);
    let _serial = serial();
    watchdog(HANG * 2, move || {
        // Everything on one CPU (the workers inherit this thread's affinity), the pushing
        // threads at idle priority: the workers and the reader (which sleeps a little now
        // and then) preempt a pusher at random points, sometimes between its push and the
        // count's update, and then get to drain the queue and read the count while the
        // pusher waits. (Otherwise that race is a few nanoseconds wide.)
        let cpus = allowed_cpus();
        let cpu = cpus.first().copied();
        if let Some(cpu) = cpu {
            pin_to(&[cpu]);
        }
        let core = core(2);
        let spawned = Arc::new(AtomicU64::new(0));
        // Tasks that park with a far deadline (so they sit in the deadline heap) and
        // park again each time they are woken.
        let stop = Arc::new(AtomicBool::new(false));
        let parkers: Vec<_> = (0..PARKERS)
            .map(|_| {
                let stop = stop.clone();
                spawned.fetch_add(1, SeqCst);
                core.spawn(async move {
                    while !stop.load(SeqCst) {
                        task::park(Some(Instant::now() + Duration::from_secs(3600))).await;
                    }
                })
            })
            .collect();
        let refs: Vec<_> = parkers.iter().map(|h| h.task()).collect();
        let refs = Arc::new(refs);
        let end = Instant::now() + run_for;
        let bad: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (handle, spawned, bad, reads) = (core.handle(), spawned.clone(), bad.clone(), reads.clone());
            thread::spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(&[cpu]);
                }
                while Instant::now() < end {
                    // Spawn count first: the metrics read after it can only be lower.
                    let spawned_before = spawned.load(SeqCst);
                    let m: Metrics = handle.metrics();
                    let spawned_after = spawned.load(SeqCst);
                    let nr = reads.fetch_add(1, SeqCst);
                    if nr % 10 == 0 {
                        thread::sleep(Duration::from_micros(20));
                    }
                    let mut problems = Vec::new();
                    if m.front_queue_depth >= DEPTH_BOUND {
                        problems.push(format!("front_queue_depth = {}", m.front_queue_depth));
                    }
                    if m.ready_queue_depth >= DEPTH_BOUND {
                        problems.push(format!("ready_queue_depth = {}", m.ready_queue_depth));
                    }
                    if m.parked_tasks as u64 > spawned_after.max(spawned_before) {
                        problems.push(format!(
                            "parked_tasks = {} with only {spawned_after} tasks ever spawned",
                            m.parked_tasks
                        ));
                    }
                    if m.live_tasks as u64 > spawned_after {
                        problems.push(format!(
                            "live_tasks = {} with only {spawned_after} tasks ever spawned",
                            m.live_tasks
                        ));
                    }
                    if !problems.is_empty() {
                        BAD_READS.fetch_add(1, SeqCst);
                        let mut b = bad.lock().unwrap();
                        if b.len() < 10 {
                            b.push(problems.join(", "));
                        }
                    }
                }
            })
        };
        let hammers: Vec<_> = (0..HAMMERS)
            .map(|i| {
                let (handle, spawned, refs) = (core.handle(), spawned.clone(), refs.clone());
                thread::spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to(&[cpu]);
                    }
                    idle_priority();
                    let mut n = 0u64;
                    while Instant::now() < end {
                        // A delayed spawn goes through the front queue...
                        spawned.fetch_add(1, SeqCst);
                        drop(handle.spawn_after(Duration::from_micros(n % 50), async {}));
                        // ...and so does the wakeup of a task parked with a deadline.
                        for k in 0..4 {
                            refs[(i * 7 + n as usize * 4 + k) % refs.len()].wakeup();
                        }
                        n += 1;
                        if n % 64 == 0 {
                            // Keep the number of pending delayed tasks bounded.
                            while handle.metrics().live_tasks > PARKERS + 20_000 && Instant::now() < end {
                                thread::yield_now();
                            }
                        }
                    }
                    n
                })
            })
            .collect();
        let mut ops = 0;
        for h in hammers {
            ops += h.join().expect("hammer thread");
        }
        reader.join().expect("reader thread");
        stop.store(true, SeqCst);
        for r in refs.iter() {
            r.wakeup();
        }
        assert!(core.wait_idle(HANG), "tasks did not finish");
        let bad = bad.lock().unwrap();
        eprintln!(
            "[metrics storm] {ops} spawn+wakeup rounds, {} metric reads, {} impossible",
            reads.load(SeqCst),
            BAD_READS.load(SeqCst)
        );
        assert!(bad.is_empty(), "impossible metrics seen during the storm: {bad:#?}");
        // A task that finished with a deadline-heap entry hands it to the sched-role through
        // the front queue before it leaves the live count: the role drains it right after.
        wait_until("the front queue to drain", || core.metrics().front_queue_depth == 0);
        let m = core.metrics();
        assert_eq!(m.parked_tasks, 0, "{m:?}");
        assert_eq!(m.live_tasks, 0, "{m:?}");
    });
}

#[test]
fn wait_idle_true_means_every_join_handle_is_finished() {
    const ROUNDS: usize = 20_000;
    let _serial = serial();
    watchdog(HANG * 2, || {
        let core = core(2);
        let mut unfinished = 0;
        let mut first = None;
        for round in 0..ROUNDS {
            let handles: Vec<_> = (0..(1 + round % 4))
                .map(|i| {
                    core.spawn(async move {
                        // A little work of varying length.
                        let mut x = round as u64 ^ i as u64;
                        for _ in 0..(round % 7) * 50 {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        }
                        std::hint::black_box(x)
                    })
                })
                .collect();
            assert!(core.wait_idle(HANG), "round {round}: the core never became idle");
            let n = handles.iter().filter(|h| !h.is_finished()).count();
            if n > 0 {
                unfinished += n;
                first.get_or_insert(round);
            }
        }
        assert_eq!(
            unfinished, 0,
            "wait_idle() returned true while {unfinished} JoinHandles (over {ROUNDS} rounds, first in \
             round {first:?}) still said !is_finished()"
        );
    });
}

/// The runtime's own socket flushers are counted apart from the user's tasks: a socket
/// that posted keeps a flusher until it closes, and `live_tasks` used to count it (trial
/// programs: `live_tasks` 1 with no task of the user's alive).
#[test]
fn flushers_are_counted_apart_from_user_tasks() {
    watchdog(HANG, || {
        let core = core(2);
        let (server, client) = core.block_on(async {
            let (c, s) = support::net::pair().await;
            s.post_send(&b"hello"[..]).expect("post");
            let mut b = [0u8; 5];
            support::net::recv_exact(&c, &mut b).await.expect("recv");
            s.flush().await.expect("flush");
            (s, c)
        });
        let counts = || {
            let m = core.metrics();
            (m.live_tasks, m.flusher_tasks)
        };
        // (The block_on's own tasks finish a moment after it returned.)
        support::settle(HANG, || counts() == (0, 1));
        assert_eq!(counts(), (0, 1), "user tasks and flushers with one idle posted-to socket");
        drop((server, client));
        support::settle(HANG, || counts() == (0, 0));
        assert_eq!(counts(), (0, 0), "after the socket closed");
        assert!(core.wait_idle(HANG));
    });
}
