//! A core with more workers than the CPUs its process may run on (an affinity mask or a
//! cgroup quota: one CPU, or two CPUs for three workers): while as many workers run as
//! there are CPUs, the others could only take turns with them, so a worker that readies
//! tasks runs them itself instead of waking another one (which adds no parallelism there,
//! only context switches and a second worker that runs half of the tasks out of order).
//! These tests confine their threads to one or two CPUs before they build the core
//! (threads inherit the mask), then check what the wakeups used to ensure: polls that
//! burn every CPU for long (never sleeping, so the other workers run only when the
//! kernel preempts them) do not stall timers, sockets or tasks readied by them or waiting
//! behind them; and a busy core loses no wakeup. The checks are counts and flags read
//! when the burning polls end, not timings. Tests that need two CPUs say so and pass
//! when the process has one.

mod support;

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::{allowed_cpus, burn, join_all, pin_to, spin_until, watchdog, HANG};

/// How long the burning polls hold their workers (and, unless preempted, the CPUs).
const BURN: Duration = Duration::from_millis(300);

/// The confinements the burn tests run under: (CPUs, workers). Each has one worker more
/// than CPUs, so that with every CPU burning the last worker is the role holder, waiting
/// in epoll (the watcher's seat stays empty: only a kick or a bounded wait gets it out).
const SHAPES: [(usize, usize); 2] = [(1, 2), (2, 3)];

/// A core of `workers` workers confined to the first `cpus` CPUs of the calling thread's
/// mask (the thread stays confined, and so do the workers it starts); `None` (with a
/// note) when the mask has fewer CPUs.
fn confined_core(cpus: usize, workers: usize) -> Option<IoCore> {
    let mask = allowed_cpus();
    if mask.len() < cpus {
        eprintln!("skipped {workers} workers on {cpus} CPUs: the process may use {} CPUs", mask.len());
        return None;
    }
    assert!(pin_to(&mask[..cpus]), "sched_setaffinity to CPUs {:?}", &mask[..cpus]);
    // A cgroup quota may allow fewer CPUs than the mask.
    let allowed = thread::available_parallelism().unwrap().get();
    if allowed != cpus {
        eprintln!(
            "skipped {workers} workers on {cpus} CPUs: confined to them, the process may use {allowed}"
        );
        return None;
    }
    Some(IoCore::builder().threads(workers).build().expect("build core"))
}

/// For each of [`SHAPES`], runs `rounds` rounds on a core confined that way: after a quiet
/// moment, `setup` spawns what must happen during the burn and returns a check of it;
/// then as many tasks as CPUs burn them for [`BURN`] together, the last one to start after
/// running `first` (what `setup` handed it), and the check must hold when its burn ends.
fn during_a_burn<S, F>(rounds: usize, setup: S)
where
    S: Fn(&IoCore) -> (F, Box<dyn Fn() -> Result<(), String> + Send>) + Send + Sync + 'static,
    F: FnOnce() + Send + 'static,
{
    let setup = Arc::new(setup);
    for (cpus, workers) in SHAPES {
        let setup = setup.clone();
        watchdog(HANG, move || {
            let Some(core) = confined_core(cpus, workers) else { return };
            for round in 0..rounds {
                let (first, check) = setup(&core);
                // Let the waiters park, and the other workers block in epoll or sleep.
                thread::sleep(Duration::from_millis(20));
                // The other burners start first, so that every CPU is taken when the first
                // one readies its tasks. (Started from here, one at a time: a worker that
                // starts a task while another waits in the queue kicks the role holder,
                // and its wait in epoll would then be bounded.)
                // They burn until the last one has checked, so that no CPU is left to the
                // other workers before.
                let (burning, checked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
                for n in 1..cpus {
                    let (started, done) = (burning.clone(), checked.clone());
                    drop(core.spawn(async move {
                        started.fetch_add(1, SeqCst);
                        spin_until("the last burner's check", || done.load(SeqCst));
                    }));
                    spin_until("the other burners to start", || burning.load(SeqCst) == n);
                }
                // The result comes back on a plain channel: waiting for the JoinHandle
                // from here would register a timer (its timeout), and that kicks the role
                // holder.
                let (tx, rx) = std::sync::mpsc::channel();
                drop(core.spawn(async move {
                    first();
                    burn(BURN);
                    let _ = tx.send(check());
                    checked.store(true, SeqCst);
                }));
                if let Err(what) = rx.recv_timeout(HANG).expect("burner hung") {
                    panic!(
                        "round {round}: when 300 ms burning polls ended ({workers} workers, {cpus} CPUs): {what}"
                    );
                }
                assert!(core.wait_idle(HANG), "round {round}: tasks left");
            }
        });
    }
}

#[test]
fn tasks_readied_by_a_burning_poll_run_during_it() {
    // Nothing else is pending (no timer, no socket): the other worker may wait in epoll
    // with no timeout, and only a kick gets it out.
    during_a_burn(3, |core| {
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let woken = ran.clone();
        drop(core.spawn(async move {
            rx.await.expect("sender dropped");
            woken.fetch_add(1, SeqCst);
        }));
        let spawned = ran.clone();
        let first = move || {
            tx.send(()).expect("waiter gone");
            for _ in 0..8 {
                let ran = spawned.clone();
                drop(iocore::spawn(async move {
                    ran.fetch_add(1, SeqCst);
                }));
            }
        };
        let check = move || match ran.load(SeqCst) {
            9 => Ok(()),
            n => Err(format!("{n} of 9 tasks readied by it (1 woken, 8 spawned) had run")),
        };
        (first, Box::new(check) as Box<dyn Fn() -> Result<(), String> + Send>)
    });
}

#[test]
fn timers_and_sockets_are_served_during_a_burning_poll() {
    during_a_burn(3, |core| {
        let (fired, served) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let timer = fired.clone();
        drop(core.spawn(async move {
            iocore::time::sleep(Duration::from_millis(30)).await;
            timer.store(true, SeqCst);
        }));
        let listener = core.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let done = served.clone();
        drop(core.spawn(async move {
            let (conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                got += conn.recv(&mut buf[got..]).await.expect("recv");
            }
            done.store(true, SeqCst);
        }));
        // A plain thread connects and writes during the burn.
        let first = move || {
            drop(thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                s.write_all(b"ping").expect("write");
                thread::sleep(BURN);
            }));
        };
        let check = move || match (fired.load(SeqCst), served.load(SeqCst)) {
            (true, true) => Ok(()),
            (f, s) => Err(format!("timer fired: {f}, socket served: {s}")),
        };
        (first, Box::new(check) as Box<dyn Fn() -> Result<(), String> + Send>)
    });
}

#[test]
fn tasks_and_connections_all_finish_with_more_workers_than_cpus() {
    // Ping-pong pairs of tasks over channels, and echo connections to a plain-thread
    // client: every round trip completes, whatever worker readies whom.
    const PAIRS: usize = 50;
    const ROUNDS: usize = 200;
    const CONNS: usize = 16;
    const MSGS: usize = 200;
    watchdog(HANG, || {
        for (cpus, workers) in [(1, 2), (1, 3), (2, 5)] {
            let Some(core) = confined_core(cpus, workers) else { continue };
            let mut handles = Vec::new();
            for _ in 0..PAIRS {
                let (a_tx, mut a_rx) = futures::channel::mpsc::channel::<usize>(1);
                let (mut b_tx, mut b_rx) = futures::channel::mpsc::channel::<usize>(1);
                let mut a_tx2 = a_tx.clone();
                handles.push(core.spawn(async move {
                    use futures::{SinkExt, StreamExt};
                    for i in 0..ROUNDS {
                        b_tx.send(i).await.expect("send");
                        assert_eq!(a_rx.next().await, Some(i));
                    }
                    ROUNDS
                }));
                handles.push(core.spawn(async move {
                    use futures::{SinkExt, StreamExt};
                    let mut n = 0;
                    while let Some(i) = b_rx.next().await {
                        a_tx2.send(i).await.expect("reply");
                        n += 1;
                    }
                    n
                }));
                drop(a_tx);
            }
            let listener = core.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let acceptor = core.spawn(async move {
                for _ in 0..CONNS {
                    let (conn, _) = listener.accept().await.expect("accept");
                    drop(iocore::spawn(echo(conn)));
                }
                0
            });
            let clients: Vec<_> = (0..CONNS)
                .map(|c| {
                    thread::spawn(move || {
                        let mut s = std::net::TcpStream::connect(addr).expect("connect");
                        let mut buf = [0u8; 8];
                        for m in 0..MSGS {
                            let v = (c * MSGS + m) as u64;
                            s.write_all(&v.to_le_bytes()).expect("write");
                            s.read_exact(&mut buf).expect("read");
                            assert_eq!(u64::from_le_bytes(buf), v, "echo {c}/{m}");
                        }
                        MSGS
                    })
                })
                .collect();
            let tasks = join_all(&core, handles);
            assert!(
                tasks.iter().all(|&n| n == ROUNDS),
                "{workers} workers on {cpus} CPUs: a ping-pong lost rounds"
            );
            join_all(&core, vec![acceptor]);
            let echoed: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
            assert_eq!(echoed, CONNS * MSGS, "{workers} workers on {cpus} CPUs: echoes");
        }
    });
}

async fn echo(conn: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match conn.recv(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.send_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
