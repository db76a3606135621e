//! Faults: the peer resets in the middle of a large send, the peer half-closes, the process
//! runs out of fds (`EMFILE`) at accept and at connect, a task panics while holding a
//! socket, a task blocks its worker, and the core shuts down with thousands of live
//! connections and parked tasks. In every case: an error (never a panic or a hang), the
//! rest keeps working, and every fd is released.
//!
//! Sizes: short by default; `IOCORE_STRESS=full` for the full shutdown test. Tests of this
//! file run one at a time (they count fds).

mod support;

use bytes::Bytes;
use iocore::net::{PostError, TcpListener, TcpStream};
use iocore::task;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::net::{listener, pair, recv_exact, recv_to_end, run, LIMIT};
use support::stress::{
    fds_back_to, nofile_soft, pick, raise_nofile, rss_kib, run_child, set_nofile_soft, variant,
};
use support::{core, fd_count, fd_list, pattern, report_if_slow, serial, settle, watchdog, DropGuard};

const LARGE: usize = 32 << 20;

fn is_reset(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted)
}

#[test]
fn peer_reset_in_the_middle_of_a_large_send_all_is_an_error() {
    let _g = serial();
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let peer_addr = client.peer_addr().unwrap();
        // The peer reads 256 KiB, then resets.
        let reader = iocore::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < 256 * 1024 {
                let n = peer.recv(&mut buf).await.expect("peer recv");
                assert!(n > 0, "EOF in the middle of the send");
                got += n;
            }
            peer.abort();
            got
        });
        let data = pattern(1, LARGE);
        let r = iocore::time::timeout(Duration::from_secs(20), client.send_all(&data))
            .await
            .expect("send_all hangs after the peer's reset");
        let got = reader.await.expect("reader task");
        let e = r.expect_err("send_all of 32 MiB to a peer that reset succeeded");
        eprintln!("[peer_reset_send_all] peer read {got} bytes, then reset; send_all: {e}");
        assert!(is_reset(e.kind()), "unexpected error kind: {e:?}");
        assert!(e.to_string().contains(&peer_addr.to_string()), "error does not name the peer: {e}");
        // Later operations fail (or see the end) at once; nothing hangs.
        let again = iocore::time::timeout(Duration::from_secs(5), client.send_all(b"more")).await;
        assert!(matches!(again, Ok(Err(_))), "send after the reset: {again:?}");
        let mut buf = [0u8; 16];
        let r = iocore::time::timeout(Duration::from_secs(5), client.recv(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "recv after the reset: {r:?}");
        assert!(matches!(client.post_send(&b"late"[..]), Err(PostError::Closed(_)) | Ok(())));
    });
}

#[test]
fn peer_reset_in_the_middle_of_a_large_post_send_is_an_error() {
    let _g = serial();
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let peer_addr = client.peer_addr().unwrap();
        let sender = client.sender();
        // One big posted buffer (accepted on an empty queue whatever the high-water mark).
        sender.post_send(pattern(2, LARGE)).expect("post 32 MiB");
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < 256 * 1024 {
            let n = peer.recv(&mut buf).await.expect("peer recv");
            assert!(n > 0);
            got += n;
        }
        peer.abort();
        let e = iocore::time::timeout(Duration::from_secs(20), client.flush())
            .await
            .expect("flush hangs after the peer's reset")
            .expect_err("flush of a send the peer reset succeeded");
        eprintln!("[peer_reset_post_send] peer read {got} bytes, then reset; flush: {e}");
        assert!(is_reset(e.kind()), "unexpected error kind: {e:?}");
        assert!(e.to_string().contains(&peer_addr.to_string()), "error does not name the peer: {e}");
        iocore::time::timeout(Duration::from_secs(5), sender.closed()).await.expect("closed() hangs");
        let late = Bytes::from_static(b"late");
        match sender.post_send(late.clone()) {
            Err(PostError::Closed(b)) => assert_eq!(b, late, "Closed handed back other bytes"),
            other => panic!("post after the reset: {other:?}"),
        }
        let e = client.send(b"x").await.expect_err("send after the failure");
        assert!(is_reset(e.kind()) || e.kind() == ErrorKind::NotConnected, "{e:?}");
    });
}

#[test]
fn peer_half_close_we_read_eof_and_can_still_send_back() {
    let _g = serial();
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        peer.send_all(b"request").await.expect("peer send");
        peer.shutdown().await.expect("peer shutdown");
        // We see the request, then EOF (sticky)...
        assert_eq!(recv_to_end(&client, 1024).await.expect("recv to EOF"), b"request");
        let mut b = [0u8; 8];
        assert_eq!(client.recv(&mut b).await.expect("recv after EOF"), 0);
        // ...and can still answer: a direct send, then posts from another thread.
        let mut want = pattern(3, 1 << 20);
        client.send_all(&want).await.expect("send after the peer's FIN");
        let sender = client.sender();
        let posted = thread::spawn(move || {
            let mut v = Vec::new();
            for i in 0..3 {
                let c = pattern(10 + i, 100_000);
                v.extend_from_slice(&c);
                // Waiting for room when the queue is at its mark (64 KiB by default).
                futures::executor::block_on(sender.send(c)).expect("post after the peer's FIN");
            }
            v
        })
        .join()
        .expect("poster");
        want.extend_from_slice(&posted);
        client.shutdown().await.expect("our shutdown");
        let got = recv_to_end(&peer, 8 << 20).await.expect("peer reads the answer");
        assert_eq!(got.len(), want.len(), "answer length");
        assert!(got == want, "answer content");
        // The half-closed peer cannot send any more; that is an error, not a panic.
        let e = peer.send(b"x").await.expect_err("send after our own shutdown");
        assert_eq!(e.kind(), ErrorKind::NotConnected, "{e:?}");
    });
}

// ---------------------------------------------------------------------------------------
// EMFILE (in a child process: the fd limit is process-wide)
// ---------------------------------------------------------------------------------------

const EMFILE_CHILD: &str = "IOCORE_FAULTS_EMFILE_CHILD";
const EMFILE_OK: &str = "FAULTS-EMFILE-CHILD-OK";

/// The one `EMFILE` test. The accept error keeps the OS error code (`raw_os_error() ==
/// Some(EMFILE)`: the documented advice for `EMFILE` is to free fds, so callers must be able
/// to tell it apart); connect and bind errors name the address and the cause; the errors
/// repeat while nothing is freed; the listener stays usable, and serves every pending
/// connection once fds are free again.
/// Runs `body` in a child process (this test binary again, running only `test`, with
/// `env_var` set), for process-wide changes such as `RLIMIT_NOFILE`: in the child, runs
/// it; in the parent, checks that the child ran it and passed, and returns its stdout
/// (in the child, an empty string).
fn in_a_child_process(test: &str, env_var: &str, body: fn()) -> String {
    if std::env::var_os(env_var).is_some() {
        body();
        println!("{EMFILE_OK}");
        return String::new();
    }
    let _g = serial();
    let (ok, out, err) = run_child(test, env_var, Duration::from_secs(90));
    assert!(ok, "child failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains(EMFILE_OK), "child did not run the test\nstdout:\n{out}\nstderr:\n{err}");
    out
}

#[test]
fn emfile_at_accept_and_connect_gives_clear_errors_then_recovers() {
    let out = in_a_child_process(
        "emfile_at_accept_and_connect_gives_clear_errors_then_recovers",
        EMFILE_CHILD,
        emfile_child,
    );
    // (libtest prints "test NAME ... " in front of the child's first line.)
    for line in out.lines().filter_map(|l| l.find("[emfile]").map(|i| &l[i..])) {
        eprintln!("{line}");
    }
}

fn emfile_child() {
    const PENDING: usize = 20;
    run(1, LIMIT, || async {
        let (l, addr) = listener().await;
        // Connections waiting in the backlog (blocking std clients; no accept needed).
        let clients: Vec<std::net::TcpStream> =
            (0..PENDING).map(|_| std::net::TcpStream::connect(addr).expect("std connect")).collect();
        let open = fd_count();
        let original = nofile_soft();
        // Room for 3 more fds; nothing else may open fds from here on.
        set_nofile_soft(open as u64 + 3);
        let accept = || async {
            iocore::time::timeout(Duration::from_secs(5), l.accept())
                .await
                .expect("accept hung (a pending connection was not seen)")
        };
        let mut accepted = Vec::new();
        let err = loop {
            match accept().await {
                Ok((s, _)) => accepted.push(s),
                Err(e) => break e,
            }
            assert!(accepted.len() <= PENDING, "never hit the fd limit");
        };
        println!(
            "[emfile] accept after {} accepts: kind={:?} raw_os_error={:?} msg={err}",
            accepted.len(),
            err.kind(),
            err.raw_os_error()
        );
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "accept at the fd limit: {err:?}");

        // connect and bind at the limit: errors that name the address and the cause.
        let e = TcpStream::connect(addr).await.expect_err("connect with no free fd");
        println!("[emfile] connect: kind={:?} raw_os_error={:?} msg={e}", e.kind(), e.raw_os_error());
        let text = e.to_string();
        assert!(text.contains(&addr.to_string()), "connect error does not name the address: {text}");
        assert!(
            e.raw_os_error() == Some(libc::EMFILE) || text.contains("os error 24"),
            "connect error does not say EMFILE: {text}"
        );
        let e = TcpListener::bind("127.0.0.1:0").await.expect_err("bind with no free fd");
        println!("[emfile] bind: kind={:?} raw_os_error={:?} msg={e}", e.kind(), e.raw_os_error());
        assert!(e.to_string().contains("127.0.0.1:0"), "bind error does not name the address: {e}");
        assert!(e.raw_os_error() == Some(libc::EMFILE) || e.to_string().contains("os error 24"), "{e}");
        // The same again: the errors are stable, nothing is stuck.
        let again = accept().await.expect_err("accept with no free fd");
        assert!(again.to_string().contains("os error 24"), "accept again at the fd limit: {again:?}");
        // And they do not spin: the listener backs off (10 ms, doubling), so a loop that
        // accepts again at once sees a handful of errors in half a second, not thousands.
        // (An upper bound: a slower machine only sees fewer.)
        let mut errors = 0;
        let _ = iocore::time::timeout(Duration::from_millis(500), async {
            loop {
                let e = l.accept().await.expect_err("accept with no free fd");
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                errors += 1;
            }
        })
        .await;
        println!("[emfile] {errors} accept errors in 500 ms of an accept loop (backing off)");
        assert!(errors <= 20, "{errors} EMFILE errors in 500 ms: the accept loop spins");
        assert!(TcpStream::connect(addr).await.is_err(), "connect with no free fd");

        // Free two fds: one accept and one connect succeed again (no new connection has
        // arrived: the accept must still see the pending ones).
        assert!(accepted.len() >= 2, "fewer than 2 accepts before EMFILE");
        accepted.truncate(accepted.len() - 2);
        let (s, _) = accept().await.expect("accept after freeing fds");
        accepted.push(s);
        let c = TcpStream::connect(addr).await.expect("connect after freeing fds");
        println!("[emfile] recovered: accept and connect succeed after freeing 2 fds");

        // Back to the original limit: every pending connection (and ours) is accepted.
        set_nofile_soft(original);
        while accepted.len() < PENDING - 2 + 1 {
            let (s, _) = accept().await.expect("accept after raising the limit");
            accepted.push(s);
        }
        for s in &accepted {
            s.send_all(b"x").await.expect("send on an accepted stream");
        }
        let mut b = [0u8; 1];
        recv_exact(&c, &mut b).await.expect("our connection was accepted and works");
        drop(accepted);
        // Two clients lost their server side when the fds were freed (EOF), the others
        // got an "x" then EOF; none sees an error.
        let mut xs = 0;
        for mut cl in clients {
            use std::io::Read;
            cl.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            cl.read_to_end(&mut buf).expect("client read");
            xs += buf.len();
        }
        assert_eq!(xs, PENDING - 2);
        println!("[emfile] after recovery: {PENDING} pending connections served, {xs} got data");
    });
}

// ---------------------------------------------------------------------------------------
// A task that panics while holding a socket
// ---------------------------------------------------------------------------------------

/// Keeps the default panic output for everything but the panics this file provokes.
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(|s| s.as_str())
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !msg.starts_with("deliberate panic") {
                default(info);
            }
        }));
    });
}

#[test]
fn a_task_that_panics_while_holding_a_socket_closes_it_and_frees_the_fd() {
    let _g = serial();
    quiet_deliberate_panics();
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        // Warm-up, so lazily created state is in the baseline.
        drop(futures::join!(TcpStream::connect(addr), l.accept()));
        iocore::time::sleep(Duration::from_millis(20)).await;
        let fds0 = fd_count();
        let before = fd_list();
        const ROUNDS: u64 = 30;
        let mut delivered = 0;
        for i in 0..ROUNDS {
            let (c, p) = futures::join!(TcpStream::connect(addr), l.accept());
            let (c, p) = (c.expect("connect"), p.expect("accept").0);
            let data = pattern(100 + i, 64 * 1024);
            let sent = data.clone();
            let h = iocore::spawn(async move {
                match i % 3 {
                    0 => c.post_send(data).expect("post"),
                    1 => c.send_all(&data).await.expect("send_all"),
                    _ => {
                        let (r, w) = c.into_split();
                        w.sender().post_send(data).expect("post on a half");
                        let _hold = (r, w);
                        task::yield_now().await;
                        panic!("deliberate panic {i} while holding both halves");
                    }
                }
                if i % 2 == 0 {
                    task::yield_now().await;
                }
                panic!("deliberate panic {i} while holding a socket");
            });
            let e = h.await.expect_err("the task panicked");
            assert!(e.is_panic(), "{e}");
            assert!(e.to_string().contains("deliberate panic"), "{e}");
            // The stream was dropped while unwinding: the peer gets what was sent, then EOF.
            let got = iocore::time::timeout(Duration::from_secs(10), recv_to_end(&p, 1 << 20))
                .await
                .unwrap_or_else(|_| panic!("round {i}: the peer never saw the panicked task's socket close"))
                .unwrap_or_else(|e| panic!("round {i}: peer: {e}"));
            assert!(got == sent, "round {i}: the peer got {} of {} bytes", got.len(), sent.len());
            delivered += got.len();
        }
        // A panicking task holding a listener releases its port.
        let l2 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a2 = l2.local_addr().unwrap();
        let h = iocore::spawn(async move {
            let _l = l2;
            panic!("deliberate panic while holding a listener");
        });
        assert!(h.await.expect_err("panicked").is_panic());
        TcpListener::bind(a2).await.expect("the panicked task's port is free again");
        let fds = fds_back_to(fds0, Duration::from_secs(10)).await;
        eprintln!(
            "[panicking_task] rounds={ROUNDS} bytes_delivered={delivered} fds_before={fds0} fds_after={fds}"
        );
        assert_eq!(fds, fds0, "fds leaked by panicked tasks\nbefore: {before:#?}\nafter: {:#?}", fd_list());
    });
}

// ---------------------------------------------------------------------------------------
// A task that blocks its worker
// ---------------------------------------------------------------------------------------

#[test]
fn a_task_blocking_its_worker_does_not_stop_other_connections_or_timers() {
    let _g = serial();
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let acceptor = iocore::spawn(async move {
            loop {
                let (s, _) = l.accept().await.expect("accept");
                iocore::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = s.recv(&mut buf).await {
                        if s.send_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let echoes = Arc::new(AtomicU64::new(0));
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4u64)
            .map(|i| {
                let (echoes, stop) = (echoes.clone(), stop.clone());
                iocore::spawn(async move {
                    let c = TcpStream::connect(addr).await.expect("connect");
                    let mut k = 0u64;
                    while !stop.load(SeqCst) {
                        let m = pattern(i << 32 | k, 64);
                        c.send_all(&m).await.expect("client send");
                        let mut back = [0u8; 64];
                        recv_exact(&c, &mut back).await.expect("client recv");
                        assert_eq!(&back[..], &m[..]);
                        echoes.fetch_add(1, SeqCst);
                        k += 1;
                    }
                })
            })
            .collect();
        let ticker = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            iocore::spawn(async move {
                let mut iv = iocore::time::interval(Duration::from_millis(2));
                while !stop.load(SeqCst) {
                    iv.tick().await;
                    ticks.fetch_add(1, SeqCst);
                }
            })
        };
        while echoes.load(SeqCst) < 100 || ticks.load(SeqCst) < 5 {
            iocore::time::sleep(Duration::from_millis(5)).await;
        }
        for round in 0..3 {
            let (e, t) = (echoes.clone(), ticks.clone());
            let blocker = iocore::spawn(async move {
                let (e0, t0) = (e.load(SeqCst), t.load(SeqCst));
                thread::sleep(Duration::from_millis(200));
                (e.load(SeqCst) - e0, t.load(SeqCst) - t0)
            });
            let (de, dt) = blocker.await.expect("blocker");
            eprintln!(
                "[blocking_task] round {round}: while one of 2 workers slept 200 ms: {de} echo round trips, {dt} timer ticks (2 ms interval)"
            );
            assert!(de > 0, "round {round}: no echo round trip completed while one worker was blocked");
            assert!(dt > 0, "round {round}: no timer fired while one worker was blocked");
        }
        stop.store(true, SeqCst);
        for c in clients {
            c.await.expect("client");
        }
        ticker.await.expect("ticker");
        acceptor.abort();
    });
}

// ---------------------------------------------------------------------------------------
// Shutdown with many live connections and parked tasks
// ---------------------------------------------------------------------------------------

#[test]
fn shutdown_with_many_live_connections_and_parked_tasks_closes_every_fd() {
    let _g = serial();
    let conns = pick(500usize, 5000);
    const PARKED: usize = 10_000;
    let limit = raise_nofile((2 * conns + 512) as u64);
    assert!(limit as usize >= 2 * conns + 512, "RLIMIT_NOFILE {limit} too low for {conns} connections");
    watchdog(Duration::from_secs(180), move || {
        let fds0 = fd_count();
        let rss0 = rss_kib();
        let core = core(2);
        let conn_drops = Arc::new(AtomicUsize::new(0));
        let parked_drops = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let (cd, pd, rx) = (conn_drops.clone(), parked_drops.clone(), received.clone());
        core.block_on(iocore::time::timeout(Duration::from_secs(120), async move {
            let (l, addr) = listener().await;
            let mut made = 0;
            while made < conns {
                let wave = (conns - made).min(256);
                let hs: Vec<_> = (0..wave).map(|_| iocore::spawn(TcpStream::connect(addr))).collect();
                for h in hs {
                    let c = h.await.expect("connect task").expect("connect");
                    let (s, _) = l.accept().await.expect("accept");
                    // Server side: reads whatever comes, forever.
                    let (g, rx) = (DropGuard(cd.clone()), rx.clone());
                    iocore::spawn(async move {
                        let _g = g;
                        let mut buf = [0u8; 1024];
                        while let Ok(n @ 1..) = s.recv(&mut buf).await {
                            rx.fetch_add(n, SeqCst);
                        }
                    });
                    // Client side: posts a little, then waits for a reply that never comes.
                    let g = DropGuard(cd.clone());
                    iocore::spawn(async move {
                        let _g = g;
                        c.post_send(&b"hello"[..]).expect("post");
                        let mut b = [0u8; 16];
                        let _ = c.recv(&mut b).await;
                    });
                }
                made += wave;
            }
            // The listener is held by a parked task too.
            iocore::spawn(async move {
                let _l = l;
                task::park(None).await;
            });
            for _ in 0..PARKED {
                let g = DropGuard(pd.clone());
                iocore::spawn(async move {
                    let _g = g;
                    loop {
                        task::park(None).await;
                    }
                });
            }
            while rx.load(SeqCst) < 5 * conns {
                iocore::time::sleep(Duration::from_millis(10)).await;
            }
        }))
        .expect("setting up the connections timed out");
        let m = core.metrics();
        let fds_live = fd_count();
        let rss_live = rss_kib();
        let t = Instant::now();
        let handle = core.handle();
        let watch = report_if_slow("shutdown_many", Duration::from_secs(2), move || {
            format!("{:?}", handle.metrics())
        });
        let report = core.shutdown(Duration::from_millis(100));
        drop(watch);
        let took = t.elapsed();
        let closed = settle(Duration::from_secs(20), || fd_count() <= fds0);
        eprintln!(
            "[shutdown_many] variant={} connections={conns} parked_tasks={PARKED} live_tasks={} \
             parked_metric={} report={report:?} shutdown_took={took:?} fds_before_core={fds0} \
             fds_live={fds_live} fds_after={} rss_before_kib={rss0} rss_live_kib={rss_live} rss_after_kib={}",
            variant(),
            m.live_tasks,
            m.parked_tasks,
            fd_count(),
            rss_kib(),
        );
        assert_eq!(report.leaked, 0, "{report:?}");
        assert_eq!(report.unjoined_workers, 0, "{report:?}");
        assert!(report.cancelled >= (2 * conns + PARKED + 1) as u64, "{report:?}");
        assert_eq!(parked_drops.load(SeqCst), PARKED, "parked tasks dropped");
        assert_eq!(conn_drops.load(SeqCst), 2 * conns, "connection tasks dropped");
        assert!(fds_live >= fds0 + 2 * conns, "fds {fds0} -> {fds_live} with {conns} connections");
        assert!(closed, "fd count {fds0} -> {} after shutdown", fd_count());
        assert_eq!(fd_count(), fds0);
    });
}

/// Set by the parent of [`out_of_fds_without_a_core_errors_then_recovers`] in its child.
const NO_CORE_CHILD: &str = "IOCORE_TEST_NO_CORE_EMFILE_CHILD";

/// In a process with no core yet and only two free fds, whatever needs the process-wide
/// default core (which needs more) fails with an error, not a panic: `UnixStream::pair`
/// (whose `socketpair` succeeds), `signal`; a `sleep` under another executor still
/// completes (a plain thread fires it). Once fds are free again the same calls work: a
/// failed start is not kept (a failed signal set-up used to be, for the life of the
/// process).
#[test]
fn out_of_fds_without_a_core_errors_then_recovers() {
    in_a_child_process("out_of_fds_without_a_core_errors_then_recovers", NO_CORE_CHILD, no_core_child);
}

fn no_core_child() {
    use iocore::signal::{signal, SignalKind};
    let original = nofile_soft();
    set_nofile_soft(fd_count() as u64 + 2);
    let pair = iocore::net::UnixStream::pair();
    let e = pair.expect_err("a pair on a default core that cannot start");
    assert!(e.to_string().contains("default core"), "{e}");
    let e = signal(SignalKind::user_defined1()).expect_err("a signal with no fds");
    assert!(e.to_string().contains("signal"), "{e}");
    let start = Instant::now();
    futures::executor::block_on(iocore::time::sleep(Duration::from_millis(20)));
    assert!(start.elapsed() >= Duration::from_millis(20), "the sleep ended early");
    set_nofile_soft(original);
    iocore::net::UnixStream::pair().expect("a pair once fds are free");
    signal(SignalKind::user_defined1()).expect("a signal once fds are free");
    futures::executor::block_on(iocore::time::sleep(Duration::from_millis(1)));
}

/// Set by the parent of [`a_sleep_outside_any_core_completes_when_no_thread_can_start`].
const NO_THREADS_CHILD: &str = "IOCORE_TEST_NO_THREADS_CHILD";

/// In a process that can start no thread (and so no core, not even the timer thread of
/// last resort), a `sleep` under another executor still completes: it is polled again
/// until its deadline (review: it was never woken again).
#[test]
fn a_sleep_outside_any_core_completes_when_no_thread_can_start() {
    in_a_child_process(
        "a_sleep_outside_any_core_completes_when_no_thread_can_start",
        NO_THREADS_CHILD,
        no_threads_child,
    );
}

fn no_threads_child() {
    // A watchdog, started while threads still can be.
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(20));
        eprintln!("the sleep never completed");
        std::process::exit(3);
    });
    // No thread can start from here on: a process limit of zero, which binds only a
    // process that is not root (so a root one gives that up, in this child only).
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &lim), 0, "setrlimit");
        if libc::getuid() == 0 {
            assert_eq!(libc::setgid(65534), 0, "setgid");
            assert_eq!(libc::setuid(65534), 0, "setuid");
        }
    }
    assert!(thread::Builder::new().spawn(|| {}).is_err(), "threads can still start");
    iocore::net::UnixStream::pair().expect_err("a default core started without threads");
    let start = Instant::now();
    futures::executor::block_on(iocore::time::sleep(Duration::from_millis(20)));
    assert!(start.elapsed() >= Duration::from_millis(20), "the sleep ended early");
}
