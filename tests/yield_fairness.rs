//! CPU-bound tasks that yield (`task::yield_now`) do not starve the sched-role: a
//! scheduler step (kernel events, deadlines) runs between two polls of a yielding task, so
//! a timer that fires while two such tasks keep a 2-worker core busy is served after at
//! most a couple of their polls.
//!
//! The checks are structural (counters and ticket order), not timings: each hog poll reads
//! `Metrics::sched_steps` and takes a ticket from a shared sequence when it starts. The
//! timer check runs several rounds and looks at the best one, so that a worker thread
//! preempted by the OS at the wrong moment cannot fail it.

mod support;

use iocore::{task, time, Handle};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{core, serial, wait_until, watchdog, HANG};

/// Polls per hog.
const POLLS: usize = 200;
/// Work per hog poll (a busy spin: the workload, not a measurement).
const WORK: Duration = Duration::from_millis(1);

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn a_scheduler_step_runs_between_two_polls_of_a_yielding_task() {
    let _serial = serial();
    watchdog(HANG * 2, || {
        let core = core(2);
        let hogs: Vec<_> = (0..2)
            .map(|_| {
                let h: Handle = core.handle();
                core.spawn(async move {
                    let mut steps = Vec::with_capacity(POLLS);
                    for _ in 0..POLLS {
                        // The start of a poll (the first, or the one after the yield).
                        steps.push(h.metrics().sched_steps);
                        spin(WORK);
                        task::yield_now().await;
                    }
                    steps
                })
            })
            .collect();
        for (i, h) in hogs.into_iter().enumerate() {
            let steps = core.block_on(time::timeout(HANG, h)).expect("hog hung").expect("hog task");
            let without: usize = steps.windows(2).filter(|w| w[1] <= w[0]).count();
            assert_eq!(
                without,
                0,
                "hog {i}: {without} of {} consecutive polls had no scheduler step between them \
                 (sched_steps at each poll: {:?}...)",
                POLLS - 1,
                &steps[..steps.len().min(80)]
            );
        }
    });
}

#[test]
fn a_timer_fires_within_a_couple_of_polls_of_yielding_hogs() {
    let _serial = serial();
    watchdog(HANG * 2, || {
        let core = core(2);
        let mut lates = Vec::new();
        for _round in 0..4 {
            let base = Instant::now();
            let seq = Arc::new(AtomicU64::new(0));
            // Nanoseconds after `base` of the sleeper's deadline (0: not set yet).
            let deadline_ns = Arc::new(AtomicU64::new(0));
            let polls = Arc::new(AtomicU64::new(0));
            let hogs: Vec<_> = (0..2)
                .map(|_| {
                    let (seq, deadline_ns, polls) = (seq.clone(), deadline_ns.clone(), polls.clone());
                    core.spawn(async move {
                        // (ticket, started after the sleeper's deadline)
                        let mut log = Vec::with_capacity(POLLS);
                        for _ in 0..POLLS {
                            let ticket = seq.fetch_add(1, SeqCst);
                            let d = deadline_ns.load(SeqCst);
                            let after = d != 0 && base.elapsed().as_nanos() as u64 >= d;
                            log.push((ticket, after));
                            polls.fetch_add(1, SeqCst);
                            spin(WORK);
                            task::yield_now().await;
                        }
                        log
                    })
                })
                .collect();
            wait_until("the hogs to be running", || polls.load(SeqCst) >= 6);
            let sleeper = {
                let (seq, deadline_ns) = (seq.clone(), deadline_ns.clone());
                core.spawn(async move {
                    let deadline = Instant::now() + Duration::from_millis(5);
                    deadline_ns.store((deadline - base).as_nanos() as u64, SeqCst);
                    time::sleep_until(deadline).await;
                    seq.fetch_add(1, SeqCst)
                })
            };
            let woke = core.block_on(time::timeout(HANG, sleeper)).expect("sleeper hung").expect("sleeper");
            let mut late = 0;
            let mut total = 0;
            for h in hogs {
                let log = core.block_on(time::timeout(HANG, h)).expect("hog hung").expect("hog task");
                total += log.len();
                late += log.iter().filter(|(t, after)| *after && *t < woke).count();
            }
            lates.push((late, total));
        }
        let best = lates.iter().map(|(late, _)| *late).min().unwrap();
        assert!(
            best <= 2,
            "in every round, more than 2 hog polls started after the sleeper's deadline and \
             before it was polled (late polls, of all hog polls, per round: {lates:?}): the timer \
             waited behind the yielding tasks"
        );
    });
}
