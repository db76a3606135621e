//! iocore futures under foreign wakers and executors: `FuturesUnordered` inside a task,
//! `futures::executor::block_on` on a plain thread, and a tokio runtime; and futures that
//! outlive the core they were made on (timers move to the default core, sockets fail).

mod support;

use futures::stream::{FuturesUnordered, StreamExt};
use iocore::{task, time};
use std::time::{Duration, Instant};
use support::{core, watchdog, HANG};

#[test]
fn sleep_inside_futures_unordered_in_a_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async {
            let start = Instant::now();
            let mut set: FuturesUnordered<_> = (0..20u64)
                .map(|i| async move {
                    let d = Duration::from_micros(250 * i);
                    time::sleep(d).await;
                    (i, d)
                })
                .collect();
            let mut done = Vec::new();
            while let Some((i, d)) = set.next().await {
                assert!(start.elapsed() >= d, "sleep {i} completed early");
                done.push(i);
            }
            done.sort_unstable();
            done
        });
        let done = core
            .block_on(time::timeout(HANG, h))
            .expect("sleeps inside FuturesUnordered never completed")
            .unwrap();
        assert_eq!(done, (0..20).collect::<Vec<_>>());
    });
}

/// `timeout` and `interval` inside `FuturesUnordered`, next to a `yield_now`.
#[test]
fn timeout_and_interval_inside_futures_unordered() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            let set: FuturesUnordered<std::pin::Pin<Box<dyn std::future::Future<Output = u8> + Send>>> =
                FuturesUnordered::new();
            set.push(Box::pin(async {
                assert!(time::timeout(Duration::from_millis(2), futures::future::pending::<()>())
                    .await
                    .is_err());
                1
            }));
            set.push(Box::pin(async {
                let n = time::interval(Duration::from_millis(1)).take(3).count().await;
                assert_eq!(n, 3);
                2
            }));
            set.push(Box::pin(async {
                task::yield_now().await;
                3
            }));
            let mut got: Vec<u8> = set.collect().await;
            got.sort_unstable();
            got
        });
        let got = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap();
        assert_eq!(got, vec![1, 2, 3]);
    });
}

/// A `select!` between a sleep and a never-ready future, in a task (task waker).
#[test]
fn sleep_in_select_in_a_task() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            let start = Instant::now();
            let slept = futures::select! {
                _ = futures::FutureExt::fuse(time::sleep(Duration::from_millis(2))) => true,
                _ = futures::FutureExt::fuse(futures::future::pending::<()>()) => false,
            };
            (slept, start.elapsed())
        });
        let (slept, elapsed) = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap();
        assert!(slept);
        assert!(elapsed >= Duration::from_millis(2));
    });
}

#[test]
fn sleep_under_futures_block_on_on_a_plain_thread() {
    watchdog(HANG * 2, || {
        let t = std::thread::spawn(|| {
            assert!(iocore::Handle::try_current().is_none());
            let start = Instant::now();
            futures::executor::block_on(time::sleep(Duration::from_millis(5)));
            start.elapsed()
        });
        assert!(t.join().unwrap() >= Duration::from_millis(5));
        // Sub-millisecond and many concurrent sleeps too.
        let start = Instant::now();
        futures::executor::block_on(async {
            let set: FuturesUnordered<_> =
                (1..=10u64).map(|i| time::sleep(Duration::from_micros(100 * i))).collect();
            set.collect::<Vec<_>>().await;
        });
        assert!(start.elapsed() >= Duration::from_millis(1));
    });
}

#[test]
fn join_handle_under_futures_block_on() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async {
            time::sleep(Duration::from_millis(2)).await;
            41 + 1
        });
        let v = std::thread::spawn(move || futures::executor::block_on(h)).join().unwrap();
        assert_eq!(v.unwrap(), 42);
        // A handle to a task that is already finished.
        let h = core.spawn(async { 7 });
        while !h.is_finished() {
            std::thread::yield_now();
        }
        assert_eq!(futures::executor::block_on(h).unwrap(), 7);
        // A handle to a parked task woken later by another thread.
        let h = core.spawn(async { task::park(None).await });
        let t = h.task();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            t.wakeup();
        });
        assert_eq!(futures::executor::block_on(h).unwrap(), task::Wake::Woken);
        waker.join().unwrap();
    });
}

#[test]
fn timeout_under_futures_block_on() {
    watchdog(HANG * 2, || {
        let start = Instant::now();
        let r = futures::executor::block_on(time::timeout(
            Duration::from_millis(5),
            futures::future::pending::<()>(),
        ));
        assert!(r.is_err());
        assert!(start.elapsed() >= Duration::from_millis(5));
        let r = futures::executor::block_on(time::timeout(Duration::from_secs(10), async { 3 }));
        assert_eq!(r, Ok(3));
        let r = futures::executor::block_on(time::timeout(
            Duration::from_secs(10),
            time::sleep(Duration::from_millis(1)),
        ));
        assert_eq!(r, Ok(()));
    });
}

#[test]
fn sleep_inside_tokio_current_thread() {
    watchdog(HANG * 2, || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let elapsed = rt.block_on(async {
            let start = Instant::now();
            time::sleep(Duration::from_millis(3)).await;
            start.elapsed()
        });
        assert!(elapsed >= Duration::from_millis(3));
        // timeout and interval too.
        let r = rt.block_on(time::timeout(Duration::from_millis(2), futures::future::pending::<()>()));
        assert!(r.is_err());
        let n = rt.block_on(time::interval(Duration::from_millis(1)).take(3).count());
        assert_eq!(n, 3);
    });
}

/// iocore sleeps in spawned tokio tasks on a multi-thread tokio runtime, and a JoinHandle
/// awaited inside tokio.
#[test]
fn iocore_futures_in_tokio_tasks() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let h = core.spawn(async {
            time::sleep(Duration::from_millis(1)).await;
            9
        });
        let (sum, v) = rt.block_on(async move {
            let tasks: Vec<_> = (0..50u64)
                .map(|i| {
                    tokio::spawn(async move {
                        time::sleep(Duration::from_micros(100 * (i % 10))).await;
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            (sum, h.await.unwrap())
        });
        assert_eq!(sum, (0..50).sum::<u64>());
        assert_eq!(v, 9);
    });
}

/// A tokio future (a tokio oneshot channel) awaited inside an iocore task, completed from
/// a plain thread.
#[test]
fn tokio_channel_inside_iocore_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let h = core.spawn(async move { rx.await.unwrap() });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            tx.send(11).unwrap();
        });
        assert_eq!(core.block_on(time::timeout(HANG, h)).expect("hung").unwrap(), 11);
    });
}

/// A `JoinHandle` polled first under one executor's waker and then awaited under another
/// (on another thread): the completion wakes the new waker.
#[test]
fn join_handle_moves_between_executors() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(None).await });
        let t = h.task();
        let mut h = h;
        futures::executor::block_on(async {
            assert!(futures::poll!(&mut h).is_pending());
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let awaiter = std::thread::spawn(move || rt.block_on(&mut h));
        std::thread::sleep(Duration::from_millis(5));
        t.wakeup();
        assert_eq!(awaiter.join().unwrap().unwrap(), task::Wake::Woken);
    });
}

#[test]
fn timers_outlive_their_core() {
    watchdog(HANG, || {
        let core = core(2);
        let handle = core.handle();
        // Polled once (registered with this core) before the core goes, and made after.
        let mut early = Box::pin(time::sleep(Duration::from_millis(30)));
        let _enter = handle.enter();
        assert!(futures::executor::block_on(futures::future::poll_immediate(early.as_mut())).is_none());
        drop(core);
        let late = time::sleep(Duration::from_millis(5));
        // Both fire (on the process-wide default core): they used to wait forever.
        futures::executor::block_on(async {
            late.await;
            early.await;
        });
    });
}

/// Sleeps that register with a core (from threads that entered it, as another executor's
/// would) while the core stops are all woken: an insert that landed just after the stop's
/// last wake of the core's timers used to stay there, never fired (trial programs: one
/// sleep in a few rounds, still asleep seconds after its deadline).
#[test]
fn timers_registered_while_their_core_stops_are_woken() {
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::{Context, Wake};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }
    watchdog(HANG * 2, || {
        for round in 0..30 {
            let core = core(1);
            let stop = Arc::new(AtomicBool::new(false));
            let pollers: Vec<_> = (0..2)
                .map(|_| {
                    let (handle, stop) = (core.handle(), stop.clone());
                    std::thread::spawn(move || {
                        let _enter = handle.enter();
                        let mut sleeps = Vec::new();
                        while !stop.load(SeqCst) {
                            let flag = Arc::new(Flag(AtomicBool::new(false)));
                            let mut sleep = Box::pin(time::sleep(Duration::from_millis(20)));
                            let waker = flag.clone().into();
                            assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
                            sleeps.push((sleep, flag));
                        }
                        // Each was woken by now or will be (by its core, the stop, or the
                        // default core it registered with again); a lost one never is.
                        let all_woken =
                            support::settle(HANG, || sleeps.iter().all(|(_, f)| f.0.load(SeqCst)));
                        let never = sleeps.iter().filter(|(_, f)| !f.0.load(SeqCst)).count();
                        (all_woken, never, sleeps.len())
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(300));
            core.shutdown(Duration::ZERO);
            stop.store(true, SeqCst);
            for p in pollers {
                let (all_woken, never, made) = p.join().expect("poller thread");
                assert!(all_woken, "round {round}: {never} of {made} sleeps never woken");
            }
        }
    });
}

#[test]
fn sockets_fail_once_their_core_is_gone() {
    use iocore::net::{TcpListener, TcpStream};
    use std::io::Write;
    watchdog(HANG, || {
        let core = core(2);
        let (listener, stream, mut peer) = core.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).expect("connect"));
            let (stream, _) = listener.accept().await.expect("accept");
            (listener, stream, peer.join().expect("peer"))
        });
        // A receive under another executor waits when the core goes away ...
        let waiting = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let r = futures::executor::block_on(stream.recv(&mut buf));
            (r, stream)
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(core);
        // ... and wakes with an error saying why (even though data arrives now).
        peer.write_all(b"late").expect("write");
        let (r, stream) = waiting.join().expect("the waiting thread");
        let e = r.expect_err("recv on a socket whose core is gone");
        assert!(e.to_string().contains("shut down"), "{e}");
        // Later operations fail at once, whatever the socket or the operation.
        let mut buf = [0u8; 4];
        assert!(futures::executor::block_on(stream.recv(&mut buf)).is_err());
        assert!(futures::executor::block_on(stream.send(b"x")).is_err());
        assert!(stream.try_recv(&mut buf).is_err());
        assert!(futures::executor::block_on(stream.readable()).is_err());
        assert!(futures::executor::block_on(listener.accept()).is_err());
        drop::<TcpStream>(stream);
    });
}

/// Accepts `n` connections on a socket made by a task of `core` (so no foreign waker has
/// waited on them), with their peers.
fn accepted_by_a_task(core: &iocore::IoCore, n: usize) -> Vec<(iocore::net::TcpStream, std::net::TcpStream)> {
    use iocore::net::TcpListener;
    let accepting = core.spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let peers = std::thread::spawn(move || {
            (0..n).map(|_| std::net::TcpStream::connect(addr).expect("connect")).collect::<Vec<_>>()
        });
        let mut streams = Vec::new();
        for _ in 0..n {
            streams.push(listener.accept().await.expect("accept").0);
        }
        streams.into_iter().zip(peers.join().expect("peers")).collect::<Vec<_>>()
    });
    futures::executor::block_on(accepting).expect("the accepting task")
}

#[test]
fn a_socket_first_waited_on_after_its_core_is_gone_fails() {
    use std::io::Write;
    watchdog(HANG, || {
        let core = core(2);
        let (stream, mut peer) = accepted_by_a_task(&core, 1).pop().expect("one connection");
        // Only the core's own task used the socket; the core goes away ...
        drop(core);
        // ... and the first wait (nothing to read yet) fails instead of waiting forever.
        let mut buf = [0u8; 16];
        let e = futures::executor::block_on(stream.recv(&mut buf))
            .expect_err("recv on a socket whose core is gone");
        assert!(e.to_string().contains("shut down"), "{e}");
        // From then on every operation fails at once, even with data to read.
        peer.write_all(b"late").expect("write");
        assert!(stream.try_recv(&mut buf).is_err());
        assert!(futures::executor::block_on(stream.recv(&mut buf)).is_err());
        assert!(futures::executor::block_on(stream.readable()).is_err());
    });
}

#[test]
fn foreign_waits_that_race_the_core_stopping_all_end() {
    use std::sync::{Arc, Barrier};
    watchdog(HANG * 2, || {
        for round in 0..20 {
            let core = core(2);
            let pairs = accepted_by_a_task(&core, 8);
            let start = Arc::new(Barrier::new(pairs.len() + 1));
            // Each thread's first wait on its socket begins about when the core stops: it
            // is either linked before the shutdown's walk (which wakes it) or sees the
            // core stopped; a wait that does neither hangs.
            let waiting: Vec<_> = pairs
                .into_iter()
                .enumerate()
                .map(|(i, (stream, peer))| {
                    let start = start.clone();
                    std::thread::spawn(move || {
                        start.wait();
                        for _ in 0..i {
                            std::hint::spin_loop();
                        }
                        let mut buf = [0u8; 16];
                        let r = futures::executor::block_on(stream.recv(&mut buf));
                        drop(peer);
                        r
                    })
                })
                .collect();
            start.wait();
            drop(core);
            for t in waiting {
                match t.join().expect("a waiting thread") {
                    Err(e) => assert!(e.to_string().contains("shut down"), "round {round}: {e}"),
                    Ok(n) => panic!("round {round}: recv of {n} bytes without data"),
                }
            }
        }
    });
}

/// A task stuck in a poll past the shutdown's cancel wait (counted `leaked`) goes on after
/// the core stopped and waits on its socket with its own waker: the wait fails, so the
/// task ends (nothing would poll it again).
#[test]
fn a_task_that_goes_on_after_its_core_stopped_fails_its_socket_wait() {
    use std::sync::mpsc;
    watchdog(HANG * 2, || {
        let core = core(2);
        let (release, stuck) = mpsc::channel::<()>();
        let (ready_tx, ready) = mpsc::channel();
        let h = core.spawn(async move {
            let listener = iocore::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).expect("connect"));
            let (stream, _) = listener.accept().await.expect("accept");
            ready_tx.send(peer.join().expect("peer")).expect("test body");
            // Blocks its worker past the cancel wait, then goes on in the same poll.
            let _ = stuck.recv_timeout(HANG);
            let mut buf = [0u8; 16];
            stream.recv(&mut buf).await.map_err(|e| e.to_string())
        });
        let _peer = ready.recv_timeout(HANG).expect("the task made its socket");
        let report = core.shutdown(Duration::ZERO);
        assert_eq!(report.leaked, 1, "{report:?}");
        release.send(()).expect("the stuck task");
        match futures::executor::block_on(time::timeout(HANG, h)) {
            Ok(Ok(Err(e))) => assert!(e.contains("shut down"), "{e}"),
            Ok(other) => panic!("the task's result: {other:?}"),
            Err(_) => panic!("the task waited on its socket after its core stopped, forever"),
        }
    });
}

/// A task of one core waits on a socket of another: that core's stop wakes it (its waker
/// is foreign there), and the wait fails.
#[test]
fn a_task_of_another_core_is_woken_when_the_sockets_core_stops() {
    watchdog(HANG, || {
        let (a, b) = (core(1), core(1));
        let (stream, _peer) = accepted_by_a_task(&b, 1).pop().expect("one connection");
        let (started_tx, started) = std::sync::mpsc::channel();
        let h = a.spawn(async move {
            let mut buf = [0u8; 16];
            let recv = stream.recv(&mut buf);
            started_tx.send(()).expect("test body");
            recv.await.map_err(|e| e.to_string())
        });
        started.recv_timeout(HANG).expect("the task started");
        std::thread::sleep(Duration::from_millis(50));
        drop(b);
        match a.block_on(time::timeout(HANG, h)) {
            Ok(Ok(Err(e))) => assert!(e.contains("shut down"), "{e}"),
            Ok(other) => panic!("the task's result: {other:?}"),
            Err(_) => panic!("the other core's task was not woken by the socket's core stopping"),
        }
    });
}

#[test]
fn a_waker_may_drop_a_socket_of_the_stopping_core() {
    use futures::task::ArcWake;
    use iocore::net::{TcpListener, TcpStream};
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    /// A foreign waker whose `wake` drops another socket of the same core on the spot.
    struct DropOnWake(Mutex<Option<TcpStream>>);
    impl ArcWake for DropOnWake {
        fn wake_by_ref(me: &Arc<Self>) {
            drop(me.0.lock().unwrap().take());
        }
    }

    watchdog(HANG, || {
        let core = core(2);
        let (watched, other, _peers) = core.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let peers = std::thread::spawn(move || {
                let a = std::net::TcpStream::connect(addr).expect("connect");
                let b = std::net::TcpStream::connect(addr).expect("connect");
                (a, b)
            });
            let (watched, _) = listener.accept().await.expect("accept");
            let (other, _) = listener.accept().await.expect("accept");
            (watched, other, peers.join().expect("peers"))
        });
        let on_wake = Arc::new(DropOnWake(Mutex::new(Some(other))));
        let waker = futures::task::waker(on_wake.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 16];
        let mut recv = std::pin::pin!(watched.recv(&mut buf));
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        // The stopping core wakes the receive; its waker drops `other`, whose
        // deregistration must not wait for the core's own walk over its sockets.
        drop(core);
        assert!(on_wake.0.lock().unwrap().is_none(), "the waker ran");
        match recv.as_mut().poll(&mut cx) {
            Poll::Ready(Err(e)) => assert!(e.to_string().contains("shut down"), "{e}"),
            other => panic!("recv after its core stopped: {other:?}"),
        }
    });
}
