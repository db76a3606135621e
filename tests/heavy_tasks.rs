//! Fairness in CPU time (crate docs, "Fairness"): a task whose poll computes for more than
//! 500 µs of CPU is heavy until a short poll, and while the workers are busy it runs on
//! the heavy lane (idle-class threads), boosted back to a worker when the lane stalls;
//! with time to spare, the workers run it themselves. A poll that only lasted (its thread
//! asleep) or that moved much data through sockets is not heavy; an aborted heavy task is
//! not polled again.
//!
//! The checks count polls and CPU time and read `Metrics`; they do not time anything. The
//! ones about turns have a wide margin: they ask for ten short polls per gap where
//! turn-taking alone gives four.

mod support;

use iocore::task;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{core, in_task, serial, wait_until, watchdog, HANG};

#[test]
fn a_starved_lane_gives_its_tasks_to_the_workers_in_turn() {
    // Everything on one CPU (the core's threads inherit this thread's affinity), one worker
    // kept busy by short tasks, so its lane thread gets a sliver of the CPU, and 20 tasks
    // computing 5 ms a poll. When the lane has taken no task for 16 times a heavy poll
    // (80 ms), its front task is boosted to the worker: every task keeps running (none
    // starves), but the worker runs a heavy poll only once per boost, however many heavy
    // tasks there are, so the short tasks get thousands of polls between two of them.
    const HEAVIES: usize = 20;
    const POLLS: usize = 4;
    let _serial = serial();
    watchdog(HANG * 2, || {
        if !lane_is_lower() {
            return;
        }
        pin_to_one_cpu();
        let core = core(1);
        let shorts = ShortTasks::spawn(&core);
        // The short polls counted at each heavy poll on the worker, after each task's
        // first two (the first makes it suspect, the second, measured, makes it heavy).
        let marks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heavy: Vec<_> = (0..HEAVIES)
            .map(|_| {
                let (marks, short_polls) = (marks.clone(), shorts.polls.clone());
                core.spawn(async move {
                    for i in 0..POLLS {
                        if i >= 2 && !on_lane() {
                            marks.lock().unwrap().push(short_polls.load(SeqCst));
                        }
                        compute_for(Duration::from_millis(5));
                        task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in heavy {
            support::join(&core, h).expect("heavy task");
        }
        shorts.stop(&core);
        assert!(core.metrics().lane_polls > 0, "no poll ran on the heavy lane");
        let marks = marks.lock().unwrap().clone();
        assert!(marks.len() >= 2, "no boosted poll: the lane ran all {} heavy polls", HEAVIES * (POLLS - 2));
        let gaps: Vec<usize> = marks.windows(2).map(|w| w[1] - w[0]).collect();
        let median = median(&gaps);
        // Taking turns on the worker, the 20 tasks would leave the short tasks one poll
        // each between two heavy polls.
        assert!(
            median >= 10 * SHORT_TASKS,
            "{median} short polls between two boosted heavy polls (median; all: {gaps:?})"
        );
    });
}

#[test]
fn a_task_readied_on_the_lane_runs_while_the_workers_are_idle() {
    // Short tasks keep two workers busy, so a task computing 5 ms a poll goes to the heavy
    // lane. Then the short tasks end (the workers go idle) while the heavy task is in a
    // poll on the lane, and that poll readies another task: it must run. (A lane thread
    // once took the shortcut of a worker that runs what it readies itself, which it never
    // does: the readied task waited for an unrelated event, forever.)
    let _serial = serial();
    watchdog(HANG, || {
        let core = core(2);
        let shorts = ShortTasks::spawn(&core);
        let (tx, rx) = futures::channel::oneshot::channel::<bool>();
        let (on_lane_now, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (now, go) = (on_lane_now.clone(), release.clone());
        drop(core.spawn(async move {
            loop {
                // Each poll computes 5 ms; on the lane, it also waits there (computing) for
                // the release, and then readies the receiver from the lane thread.
                compute_for(Duration::from_millis(5));
                if on_lane() {
                    now.store(true, SeqCst);
                    while !go.load(SeqCst) {
                        compute_for(Duration::from_micros(200));
                    }
                    let _ = tx.send(on_lane());
                    return;
                }
                task::yield_now().await;
            }
        }));
        wait_until("a poll on the heavy lane", || on_lane_now.load(SeqCst));
        shorts.stop(&core);
        release.store(true, SeqCst);
        let sent_on_lane = support::in_task(&core, async { rx.await.expect("sender") });
        assert!(sent_on_lane);
    });
}

#[test]
fn a_heavy_task_on_an_idle_core_keeps_its_share_beside_busy_threads_elsewhere() {
    // One CPU, shared by an ordinary thread outside the core that computes all the time (as
    // another process would) and an otherwise idle one-worker core running a task that
    // computes 2 ms a poll. The workers have time to spare, so the task runs on the worker
    // and gets about half the CPU, not the crumbs a lowest-priority lane thread gets.
    let _serial = serial();
    watchdog(HANG, || {
        pin_to_one_cpu();
        let core = core(1);
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = thread_cpu();
                while !stop.load(SeqCst) {
                    compute_for(Duration::from_micros(100));
                }
                thread_cpu() - start
            })
        };
        let polls = Arc::new(AtomicUsize::new(0));
        let heavy = {
            let (stop, polls) = (stop.clone(), polls.clone());
            core.spawn(async move {
                while !stop.load(SeqCst) {
                    compute_for(Duration::from_millis(2));
                    polls.fetch_add(1, SeqCst);
                    task::yield_now().await;
                }
            })
        };
        std::thread::sleep(Duration::from_millis(400));
        stop.store(true, SeqCst);
        let spinner_cpu = spinner.join().expect("spinner");
        support::join(&core, heavy).expect("heavy task");
        let heavy_cpu = Duration::from_millis(2) * polls.load(SeqCst) as u32;
        assert!(
            heavy_cpu * 4 >= spinner_cpu,
            "the heavy task computed {heavy_cpu:?} while the thread beside it computed {spinner_cpu:?}"
        );
    });
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write to.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Whether the calling thread runs on a heavy lane.
fn on_lane() -> bool {
    std::thread::current().name().is_some_and(|n| n.contains("-lane-"))
}

/// Whether the heavy lane's threads (nice 19) run at a lower priority than this process's
/// threads: not when the whole test runs under `nice`, which leaves nothing lower.
fn lane_is_lower() -> bool {
    // SAFETY: a plain system call on the calling process.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice > 0 {
        eprintln!("skipped: the process runs at nice {nice}, so the heavy lane is not lower");
    }
    nice <= 0
}

#[test]
fn shutdown_cancels_the_tasks_on_the_heavy_lane() {
    // Three tasks that compute 5 ms a poll forever, on one CPU with one worker (so one
    // lane thread): one runs on the lane, the others wait for it. Shutdown must cancel all
    // three, join every thread (the lane's too), and leak nothing.
    let _serial = serial();
    watchdog(HANG, || {
        pin_to_one_cpu();
        let core = core(1);
        for _ in 0..3 {
            drop(core.spawn(async {
                loop {
                    compute_for(Duration::from_millis(5));
                    task::yield_now().await;
                }
            }));
        }
        wait_until("polls on the heavy lane", || core.metrics().lane_polls >= 3);
        let report = core.shutdown(Duration::ZERO);
        assert_eq!(report.cancelled, 3, "{report:?}");
        assert_eq!(report.leaked, 0, "{report:?}");
        assert_eq!(report.unjoined_workers, 0, "{report:?}");
    });
}

/// Restricts the calling thread (and the threads it starts from now on) to one of the CPUs
/// it may run on.
fn pin_to_one_cpu() {
    // SAFETY: `set` is a valid cpu_set_t, read and written by the calls that take it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set), 0);
        let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)).expect("a CPU");
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0);
    }
}

/// Tasks whose polls are short (a counter and a yield).
const SHORT_TASKS: usize = 4;
/// Polls of each heavy task.
const HEAVY_POLLS: usize = 12;
/// CPU time each of its polls computes for.
const HEAVY_WORK: Duration = Duration::from_millis(2);

/// Keeps the calling thread computing until it has used `d` of CPU time (its thread's CPU
/// clock: a preempted thread keeps computing when it runs again).
fn compute_for(d: Duration) {
    let start = thread_cpu();
    while thread_cpu() - start < d {
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
            // taking turns, the short tasks poll once each between two heavy polls; heavy,
            // the heavy task runs on the heavy lane, beside the worker or on the CPU time
            // it leaves: thousands of short polls. (With two, the other worker runs short
            // polls during each heavy one anyway.)
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
fn several_heavy_tasks_in_a_row_all_leave_the_worker() {
    // Three heavy tasks, often next to each other in the ready queue: a worker that takes
    // one hands it to the heavy lane and takes the next, so none of them runs between the
    // short tasks' turns (except when the stalled lane boosts one).
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
fn heavy_tasks_keep_running_together() {
    // Two heavy tasks and nothing else on one worker: both are heavy all the time; one goes to
    // the heavy lane while the other is ready, the other then runs on the worker (which has
    // nothing else to do), and so on. Neither waits for the other to finish: when the first
    // is done, the other has run most of its polls too. (Once, a heavy task taken first
    // gave its turn to the other one, which then ran through its whole rest; later, the
    // one on the worker ran all its polls while the other waited on the lane.)
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
        // The polls of the other task before the last poll of the first one to finish.
        let first_done = order.iter().rposition(|&id| id != order[order.len() - 1]).expect("both ran");
        let other = order[first_done];
        let others_polls = order[..first_done].iter().filter(|&&id| id != other).count();
        assert!(
            others_polls >= HEAVY_POLLS / 2,
            "task {} ran {others_polls} of {HEAVY_POLLS} polls while task {other} ran all of its: {order:?}",
            1 - other
        );
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
    // computations) stays measured: each heavy poll but the first is counted.
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
fn an_aborted_heavy_task_is_not_polled_again() {
    // A task that computes for 20 ms a poll is heavy, and runs on the heavy lane,
    // while short tasks keep the one worker busy. Aborted, it must be dropped after the
    // poll in progress (if any), not polled again, and not kept waiting on the lane.
    let _serial = serial();
    watchdog(HANG, || {
        struct Dropped(Arc<AtomicUsize>, Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                // The heavy polls begun when the task was dropped (+1, so never 0).
                self.1.store(self.0.load(SeqCst) + 1, SeqCst);
            }
        }
        let core = core(1);
        let shorts = ShortTasks::spawn(&core);
        let (heavy_polls, dropped_at) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let guard = Dropped(heavy_polls.clone(), dropped_at.clone());
        let polls = heavy_polls.clone();
        let heavy = core.spawn(async move {
            let _guard = guard;
            loop {
                polls.fetch_add(1, SeqCst);
                compute_for(Duration::from_millis(20));
                task::yield_now().await;
            }
        });
        // After its third poll it is heavy (the second made it so).
        wait_until("three heavy polls", || heavy_polls.load(SeqCst) >= 3);
        let aborted_at = heavy_polls.load(SeqCst);
        heavy.abort();
        wait_until("the aborted task dropped", || dropped_at.load(SeqCst) != 0);
        shorts.stop(&core);
        let polled_after = dropped_at.load(SeqCst) - 1 - aborted_at;
        assert!(polled_after == 0, "the aborted task was polled {polled_after} more time(s)");
        assert!(core.metrics().lane_polls > 0, "the heavy task never ran on the heavy lane");
    });
}

#[test]
fn a_heavy_task_keeps_a_worker_that_has_little_else_to_do() {
    // One worker: a task computing 1 ms a poll beside a 1 ms `interval`. The interval's
    // task is ready only at its ticks; the rest of the time the heavy task is the only
    // work, and it runs (on the worker, which has time to spare, or on the lane): about
    // one heavy poll per tick. (A worker that waited for other work before running a
    // heavy task gave it one poll per rest, ~17 ticks.)
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
