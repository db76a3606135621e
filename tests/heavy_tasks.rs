//! Fairness in CPU time (crate docs, "Fairness"): a task whose polls compute for more
//! than 500 µs of CPU rests after each such poll, and while it rests workers run the other
//! ready tasks first; a poll that only lasted (its thread asleep) or that did many socket
//! operations is not heavy.
//!
//! The checks count polls and read `Metrics::heavy_polls`; they do not time anything. The
//! one that relies on the rest outlasting some short polls has a wide margin: a rest lasts
//! 16 times a 2 ms poll's CPU time, while a short poll takes microseconds, and the test
//! asks for ten short polls per gap where turn-taking alone gives four.

mod support;

use iocore::task;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{core, in_task, serial, watchdog, HANG};

/// Tasks whose polls are short (a counter and a yield).
const SHORT_TASKS: usize = 4;
/// Polls of the heavy task.
const HEAVY_POLLS: usize = 12;
/// CPU time each of its polls computes for.
const HEAVY_WORK: Duration = Duration::from_millis(2);

/// Keeps the calling thread computing until it has used `d` of CPU time (its thread's CPU
/// clock: a preempted thread keeps computing when it runs again).
fn compute_for(d: Duration) {
    let cpu = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid timespec to write to.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    let start = cpu();
    while cpu() - start < d {
        std::hint::spin_loop();
    }
}

/// Runs `SHORT_TASKS` tasks that count their polls and yield, and a task that computes for
/// `HEAVY_WORK` in each of `HEAVY_POLLS` polls (yielding between them), on a core with
/// `threads` workers. Returns the short polls counted between each two heavy polls, and
/// the core's `heavy_polls`.
fn short_polls_between_heavy_ones(threads: usize) -> (Vec<usize>, u64) {
    let core = core(threads);
    let short_polls = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let shorts: Vec<_> = (0..SHORT_TASKS)
        .map(|_| {
            let (polls, stop) = (short_polls.clone(), stop.clone());
            core.spawn(async move {
                while !stop.load(SeqCst) {
                    polls.fetch_add(1, SeqCst);
                    task::yield_now().await;
                }
            })
        })
        .collect();
    let polls = short_polls.clone();
    let seen = in_task(&core, async move {
        let mut seen = Vec::with_capacity(HEAVY_POLLS);
        for _ in 0..HEAVY_POLLS {
            seen.push(polls.load(SeqCst));
            compute_for(HEAVY_WORK);
            task::yield_now().await;
        }
        seen
    });
    stop.store(true, SeqCst);
    for h in shorts {
        support::join(&core, h).expect("short task");
    }
    let heavy = core.metrics().heavy_polls;
    (seen.windows(2).map(|w| w[1] - w[0]).collect(), heavy)
}

#[test]
fn a_task_whose_polls_compute_gives_its_turns_to_tasks_with_short_polls() {
    let _serial = serial();
    watchdog(HANG * 2, || {
        for threads in [1, 2] {
            let (gaps, heavy) = short_polls_between_heavy_ones(threads);
            // The first heavy poll only makes the task suspect; its later ones are measured
            // with the CPU clock, and each is counted (its last poll computes nothing).
            assert_eq!(heavy, HEAVY_POLLS as u64 - 1, "{threads} worker(s): heavy polls counted");
            // (It finished: the rest is bounded, or this test would hang.) With one worker,
            // taking turns, the short tasks poll once each between two heavy polls; resting,
            // the heavy task waits ~32 ms after each: thousands of short polls. (With two,
            // the other worker runs short polls during each heavy one anyway.)
            if threads == 1 {
                let mut rested = gaps[1..].to_vec();
                rested.sort_unstable();
                let median = rested[rested.len() / 2];
                assert!(
                    median >= 10 * SHORT_TASKS,
                    "{median} short polls between two heavy ones (median; all gaps: {gaps:?}); \
                     taking turns gives {SHORT_TASKS}"
                );
            }
        }
    });
}

#[test]
fn resting_tasks_take_turns_among_themselves() {
    // Two heavy tasks and nothing else on one worker: both rest all the time, and run in
    // turn (a resting task taken first does not give its turn to another resting one).
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heavy: Vec<_> = (0..2)
            .map(|id| {
                let order = order.clone();
                core.spawn(async move {
                    for _ in 0..HEAVY_POLLS {
                        order.lock().unwrap().push(id);
                        compute_for(HEAVY_WORK);
                        task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in heavy {
            support::join(&core, h).expect("heavy task");
        }
        let order = order.lock().unwrap().clone();
        let longest_run = order.chunk_by(|a, b| a == b).map(<[_]>::len).max().unwrap();
        assert!(longest_run <= 2, "one task ran {longest_run} polls in a row: {order:?}");
    });
}

#[test]
fn a_poll_that_blocks_its_thread_without_computing_is_not_heavy() {
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(1);
        in_task(&core, async {
            for _ in 0..6 {
                // Long on the wall clock (the task is measured after the first), not in CPU.
                std::thread::sleep(Duration::from_millis(3));
                task::yield_now().await;
            }
        });
        assert_eq!(core.metrics().heavy_polls, 0, "sleeping in a poll counted as computing");
    });
}

#[test]
fn heavy_polls_between_short_ones_are_still_counted() {
    // A task whose heavy polls alternate with short ones (awaiting something between two
    // computations) stays measured: each heavy poll but the first makes it rest.
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(1);
        in_task(&core, async {
            for _ in 0..6 {
                compute_for(HEAVY_WORK);
                task::yield_now().await;
                task::yield_now().await;
            }
        });
        assert_eq!(core.metrics().heavy_polls, 5);
    });
}
