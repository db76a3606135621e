//! A task that blocks its worker after the core was quiet (so the idle workers sleep deeply,
//! and starting a task wakes nobody) must not stall timers, IO or ready tasks: the
//! watching worker notices the long poll and takes over. Each round waits for quiet first,
//! then starts a task that blocks its worker for 300 ms, and checks that what was due
//! during that time happened before the block ended. The blocking task starts from a
//! deadline (`spawn_after`), so the worker that holds the sched-role readies it and runs
//! it itself, waking nobody: the case only the watcher covers. Two more cases: with nobody
//! asleep, a role holder waiting in epoll while another worker polls leaves that wait by
//! itself; and tasks queued behind a long poll are taken by a worker that is busy.

mod support;

use iocore::net::TcpListener;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::{burn, core, join, watchdog, HANG};

const BLOCK: Duration = Duration::from_millis(300);
/// Longer than the watcher's few quiet intervals (about 2 ms) before it sleeps deeply.
const QUIET: Duration = Duration::from_millis(50);
/// The blocking task's start, after the quiet period.
const START: Duration = Duration::from_millis(2);

/// Runs `rounds` rounds: quiet, then `due` spawned (it sets the flag once what it waits
/// for happened), then a task that holds its worker for `lead`, runs `first` (from
/// `due`'s caller), blocks its worker, and returns whether the flag was set by the end of
/// the block.
fn while_a_worker_blocks<F, Fut, B>(workers: usize, rounds: usize, lead: Duration, due: F)
where
    F: Fn(Arc<AtomicBool>) -> (Fut, B) + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
    B: FnOnce() + Send + 'static,
{
    watchdog(HANG, move || {
        let core = core(workers);
        for round in 0..rounds {
            thread::sleep(QUIET);
            let done = Arc::new(AtomicBool::new(false));
            let (waiting, first) = due(done.clone());
            let waiter = core.spawn(waiting);
            // Let the waiter park first.
            thread::sleep(Duration::from_millis(5));
            let blocker = core.spawn_after(START, async move {
                thread::sleep(lead);
                first();
                thread::sleep(BLOCK);
                done.load(SeqCst)
            });
            let in_time = join(&core, blocker).expect("blocker");
            join(&core, waiter).expect("waiter");
            assert!(
                in_time,
                "round {round}: with {workers} workers, what was due waited for the blocked worker"
            );
        }
    });
}

#[test]
fn a_timer_fires_while_a_worker_blocks_after_a_quiet_period() {
    for workers in [2, 4] {
        while_a_worker_blocks(workers, 3, Duration::ZERO, |done| {
            let timer = async move {
                iocore::time::sleep(Duration::from_millis(30)).await;
                done.store(true, SeqCst);
            };
            (timer, || {})
        });
    }
}

#[test]
fn a_socket_is_served_while_a_worker_blocks_after_a_quiet_period() {
    while_a_worker_blocks(2, 3, Duration::ZERO, |done| {
        let served = async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            // A plain thread connects and writes a little later, while the worker is blocked.
            let writer = thread::spawn(move || {
                thread::sleep(Duration::from_millis(30));
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                s.write_all(b"ping").expect("write");
                s
            });
            let (conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                got += conn.recv(&mut buf[got..]).await.expect("recv");
            }
            assert_eq!(&buf, b"ping");
            done.store(true, SeqCst);
            drop(writer.join());
        };
        (served, || {})
    });
}

#[test]
fn a_task_woken_from_a_worker_runs_while_that_worker_blocks() {
    // The waiter is woken from inside the blocking task's poll: from a worker, with no
    // other task ready, which wakes nobody; the watcher must still see it.
    for workers in [2, 3] {
        while_a_worker_blocks(workers, 3, Duration::ZERO, woken_by_first);
    }
}

#[test]
fn a_task_woken_during_a_long_poll_runs_while_the_other_worker_waits_in_epoll() {
    // The blocking task holds its worker for 20 ms before it wakes the waiter: meanwhile
    // the other worker takes the sched-role and blocks in epoll, so nobody sleeps, and
    // the wake (from a worker, no other task ready) kicks nobody; that worker's wait in
    // epoll must end by itself.
    while_a_worker_blocks(2, 3, Duration::from_millis(20), woken_by_first);
}

/// A waiter on a oneshot channel, and the blocking task's first action: the send.
fn woken_by_first(done: Arc<AtomicBool>) -> (impl std::future::Future<Output = ()>, impl FnOnce()) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let woken = async move {
        rx.await.expect("sender dropped");
        done.store(true, SeqCst);
    };
    (woken, move || tx.send(()).expect("waiter gone"))
}

#[test]
fn tasks_waiting_behind_a_long_poll_are_taken_by_a_busy_worker() {
    // One task spawns, in one poll: a blocker, 8 quick tasks, and a flood of short busy
    // tasks. Its worker takes the blocker with a batch behind it (the quick tasks among
    // them) and blocks; the other worker stays busy with the flood, so it never runs out
    // of work (an idle worker steals anyway). It must still take the batch stuck behind
    // the blocker, so the quick tasks finish before the block ends.
    const QUICK: usize = 8;
    const FLOOD: usize = 30_000;
    const FLOOD_WORK: Duration = Duration::from_micros(20);
    watchdog(HANG, || {
        let core = core(2);
        for round in 0..3 {
            let quick_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let starter = {
                let quick_done = quick_done.clone();
                core.spawn(async move {
                    let blocker = {
                        let quick_done = quick_done.clone();
                        iocore::spawn(async move {
                            thread::sleep(BLOCK);
                            quick_done.load(SeqCst)
                        })
                    };
                    for _ in 0..QUICK {
                        let quick_done = quick_done.clone();
                        drop(iocore::spawn(async move {
                            quick_done.fetch_add(1, SeqCst);
                        }));
                    }
                    for _ in 0..FLOOD {
                        drop(iocore::spawn(async { burn(FLOOD_WORK) }));
                    }
                    blocker.await.expect("blocker")
                })
            };
            let done_in_time = join(&core, starter).expect("starter");
            assert_eq!(
                done_in_time, QUICK,
                "round {round}: tasks queued behind a 300 ms poll waited for it while the other \
                 worker was busy"
            );
            // Let the flood drain before the next round.
            assert!(core.wait_idle(HANG), "the flood did not drain");
        }
    });
}

/// The output of a detached task that finished while it still had a deadline entry (it
/// awaited a `timeout` and was woken before it) is dropped outside the sched-role: while
/// that drop blocks its thread, a timer still fires (the watcher takes the role). Before,
/// the role holder dropped it inside its step, and no timer fired and no kernel event was
/// turned for the whole drop (review: 0 ticks of a 1 ms sleep loop during a 200 ms drop).
#[test]
fn a_slow_output_drop_does_not_hold_the_sched_role() {
    use std::sync::mpsc;
    /// Far beyond any scheduling delay; only a stuck timer reaches it.
    const GIVE_UP: Duration = Duration::from_secs(5);
    struct WaitsForATimer {
        fired: Arc<AtomicBool>,
        saw: mpsc::Sender<bool>,
    }
    impl Drop for WaitsForATimer {
        fn drop(&mut self) {
            // Blocks this thread until the other task's timer fired (or gives up).
            let start = std::time::Instant::now();
            while !self.fired.load(SeqCst) && start.elapsed() < GIVE_UP {
                thread::sleep(Duration::from_millis(1));
            }
            let _ = self.saw.send(self.fired.load(SeqCst));
        }
    }
    watchdog(HANG, || {
        let core = core(2);
        for round in 0..3 {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            let (saw_tx, saw) = mpsc::channel();
            let fired = Arc::new(AtomicBool::new(false));
            let output = WaitsForATimer { fired: fired.clone(), saw: saw_tx };
            // Detached: the scheduler's last reference drops the output.
            drop(core.spawn(async move {
                let _ = iocore::time::timeout(Duration::from_secs(60), rx).await;
                output
            }));
            thread::sleep(Duration::from_millis(20));
            // The timer: armed only once the drop has begun (it is in the channel's way).
            let f = fired.clone();
            core.spawn(async move {
                iocore::time::sleep(Duration::from_millis(5)).await;
                f.store(true, SeqCst);
            });
            tx.send(()).expect("the task waits");
            assert!(
                saw.recv_timeout(HANG).expect("the output was dropped"),
                "round {round}: no timer fired while a finished task's output was being dropped"
            );
        }
        core.shutdown(Duration::from_secs(1));
    });
}
