//! Fairness in CPU time (crate docs, "Fairness"): a task whose polls compute for more
//! than 500 µs of CPU rests after each such poll, and while it rests workers run the other
//! ready tasks first; a poll that only lasted (its thread asleep) or that moved much data
//! through sockets is not heavy; an aborted resting task is dropped in its turn.
//!
//! The checks count polls and read `Metrics::heavy_polls`; they do not time anything. The
//! ones that rely on a rest outlasting some short polls have a wide margin: a rest lasts
//! 16 times a 2 ms poll's CPU time, while a short poll takes microseconds, and they ask for
//! ten short polls per gap where turn-taking alone gives four.

mod support;

use iocore::task;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{core, in_task, serial, wait_until, watchdog, HANG};

/// Tasks whose polls are short (a counter and a yield).
const SHORT_TASKS: usize = 4;
/// Polls of each heavy task.
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

/// `SHORT_TASKS` tasks on `core` that count their polls (in `polls`) and yield, until
/// [`ShortTasks::stop`].
struct ShortTasks {
    polls: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handles: Vec<iocore::JoinHandle<()>>,
}

impl ShortTasks {
    fn spawn(core: &iocore::IoCore) -> ShortTasks {
        let polls = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..SHORT_TASKS)
            .map(|_| {
                let (polls, stop) = (polls.clone(), stop.clone());
                core.spawn(async move {
                    while !stop.load(SeqCst) {
                        polls.fetch_add(1, SeqCst);
                        task::yield_now().await;
                    }
                })
            })
            .collect();
        ShortTasks { polls, stop, handles }
    }

    fn stop(self, core: &iocore::IoCore) {
        self.stop.store(true, SeqCst);
        for h in self.handles {
            support::join(core, h).expect("short task");
        }
    }
}

/// Runs `SHORT_TASKS` tasks that count their polls and yield, and `heavies` tasks that
/// compute for `HEAVY_WORK` in each of `HEAVY_POLLS` polls (yielding between them), on a
/// core with `threads` workers. Returns the short polls counted between each two polls of
/// a heavy task (each task's in turn), and the core's `heavy_polls`.
fn short_polls_between_heavy_ones(threads: usize, heavies: usize) -> (Vec<usize>, u64) {
    let core = core(threads);
    let shorts = ShortTasks::spawn(&core);
    let heavy: Vec<_> = (0..heavies)
        .map(|_| {
            let polls = shorts.polls.clone();
            core.spawn(async move {
                let mut seen = Vec::with_capacity(HEAVY_POLLS);
                for _ in 0..HEAVY_POLLS {
                    seen.push(polls.load(SeqCst));
                    compute_for(HEAVY_WORK);
                    task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    let seen = support::join_all(&core, heavy);
    shorts.stop(&core);
    let gaps = seen.iter().flat_map(|s| s.windows(2).map(|w| w[1] - w[0]).skip(1)).collect();
    (gaps, core.metrics().heavy_polls)
}

/// The median of `gaps`.
fn median(gaps: &[usize]) -> usize {
    let mut sorted = gaps.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[test]
fn a_task_whose_polls_compute_gives_its_turns_to_tasks_with_short_polls() {
    let _serial = serial();
    watchdog(HANG * 2, || {
        for threads in [1, 2] {
            let (gaps, heavy) = short_polls_between_heavy_ones(threads, 1);
            // The first heavy poll only makes the task suspect (the gaps leave out the one
            // after it); its later ones are measured with the CPU clock, and each is counted
            // (its last poll computes nothing).
            assert_eq!(heavy, HEAVY_POLLS as u64 - 1, "{threads} worker(s): heavy polls counted");
            // (It finished: the rest is bounded, or this test would hang.) With one worker,
            // taking turns, the short tasks poll once each between two heavy polls; resting,
            // the heavy task waits ~32 ms after each: thousands of short polls. (With two,
            // the other worker runs short polls during each heavy one anyway.)
            if threads == 1 {
                let median = median(&gaps);
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
fn several_resting_tasks_in_a_row_are_all_passed_over() {
    // Three heavy tasks, often next to each other in the ready queue (their rests end
    // together): a worker that takes one looks past the others to a short task, so each
    // of them waits out its rest.
    let _serial = serial();
    watchdog(HANG * 2, || {
        let (gaps, heavy) = short_polls_between_heavy_ones(1, 3);
        assert_eq!(heavy, 3 * (HEAVY_POLLS as u64 - 1));
        let median = median(&gaps);
        assert!(
            median >= 10 * SHORT_TASKS,
            "{median} short polls between two heavy ones (median; all gaps: {gaps:?}); taking \
             turns gives {SHORT_TASKS} or fewer"
        );
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
                for _ in 0..4 {
                    task::yield_now().await;
                }
            }
        });
        assert_eq!(core.metrics().heavy_polls, 5);
    });
}

#[test]
fn moving_large_buffers_through_sockets_is_not_computing() {
    // Sends and posts (written by the socket's flusher task) of 16 MiB cost the kernel
    // milliseconds each: they are allowed for, not counted as computing.
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(1);
        // (Made here: filling 16 MiB is computing.)
        let chunk = bytes::Bytes::from(vec![7u8; 16 << 20]);
        let sent = in_task(&core, async move {
            let (listener, addr) = support::net::listener().await;
            let reader = std::thread::spawn(move || {
                let mut peer = std::net::TcpStream::connect(addr).expect("connect");
                std::io::copy(&mut peer, &mut std::io::sink()).expect("read")
            });
            let (stream, _) = listener.accept().await.expect("accept");
            for _ in 0..4 {
                stream.send_all(&chunk).await.expect("send");
            }
            stream.set_post_high_water(128 << 20);
            for _ in 0..4 {
                stream.post_send(chunk.clone()).expect("post");
            }
            stream.flush().await.expect("flush");
            reader
        });
        // (Joined here, not in the task: the core's one worker closes the socket.)
        assert_eq!(sent.join().expect("reader"), 128 << 20);
        assert_eq!(core.metrics().heavy_polls, 0, "socket transfers counted as computing");
    });
}

#[test]
fn an_aborted_resting_task_is_dropped_in_its_turn() {
    // A task that computes for 20 ms a poll rests 320 ms after each; aborted while it
    // rests, it must be dropped when its turn comes, not after its rest.
    let _serial = serial();
    watchdog(HANG, || {
        struct Dropped(Arc<AtomicUsize>, Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                // The short polls counted when the task was dropped (+1, so never 0).
                self.1.store(self.0.load(SeqCst) + 1, SeqCst);
            }
        }
        let core = core(1);
        let shorts = ShortTasks::spawn(&core);
        let short_polls = shorts.polls.clone();
        let (heavy_polls, dropped_at) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let guard = Dropped(short_polls.clone(), dropped_at.clone());
        let polls = heavy_polls.clone();
        let heavy = core.spawn(async move {
            let _guard = guard;
            loop {
                polls.fetch_add(1, SeqCst);
                compute_for(Duration::from_millis(20));
                task::yield_now().await;
            }
        });
        // After its third poll it rests (the second made it so).
        wait_until("three heavy polls", || heavy_polls.load(SeqCst) >= 3);
        let aborted_at = short_polls.load(SeqCst);
        heavy.abort();
        wait_until("the aborted task dropped", || dropped_at.load(SeqCst) != 0);
        shorts.stop(&core);
        let waited = dropped_at.load(SeqCst) - 1 - aborted_at;
        // In its turn: a round of the short tasks or so. After its rest: ~320 ms of them.
        assert!(waited < 10_000, "{waited} short polls ran between the abort and the drop");
    });
}

#[test]
fn a_resting_task_keeps_a_worker_that_has_little_else_to_do() {
    // One worker: a task computing 1 ms a poll beside a 1 ms `interval`. The interval's
    // task is ready only at its ticks; the rest of the time the heavy task, resting or not,
    // is the only work, and it runs: about one heavy poll per tick. (A worker that waited
    // for other work before running a resting task gave it one poll per rest, ~17 ticks.)
    const TICKS: usize = 100;
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(1);
        let heavy_runs = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (runs, halt) = (heavy_runs.clone(), stop.clone());
        let heavy = core.spawn(async move {
            while !halt.load(SeqCst) {
                runs.fetch_add(1, SeqCst);
                compute_for(Duration::from_millis(1));
                task::yield_now().await;
            }
        });
        let runs = heavy_runs.clone();
        let during = in_task(&core, async move {
            let mut ticks = iocore::time::interval(Duration::from_millis(1));
            ticks.tick().await;
            let before = runs.load(SeqCst);
            for _ in 0..TICKS {
                ticks.tick().await;
            }
            runs.load(SeqCst) - before
        });
        stop.store(true, SeqCst);
        support::join(&core, heavy).expect("heavy task");
        assert!(during >= TICKS / 4, "the heavy task ran {during} times during {TICKS} ticks");
    });
}
