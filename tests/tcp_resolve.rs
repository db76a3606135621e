//! Name resolution: `localhost:PORT` connects, and connect futures dropped during
//! resolution leak no file descriptors or threads.
//!
//! The tests of this file count the process's fds, so they run one at a time.

mod support;

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::time::Duration;
use support::net::{recv_exact, run, run_on, LIMIT};
use support::{fd_count, fd_list, serial, settle, thread_count};

#[test]
fn localhost_name_connects() {
    let _g = serial();
    run(2, LIMIT, || async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().unwrap().port();
        let server = iocore::spawn(async move {
            for _ in 0..3 {
                let (s, _) = l.accept().await.expect("accept");
                s.send_all(b"hi").await.expect("send");
            }
        });
        for s in [
            TcpStream::connect(format!("localhost:{port}")).await.expect("connect localhost:PORT"),
            TcpStream::connect(("localhost", port)).await.expect("connect (localhost, PORT)"),
            TcpStream::connect(("localhost".to_string(), port)).await.expect("connect (String, PORT)"),
        ] {
            assert!(s.peer_addr().unwrap().ip().is_loopback());
            assert_eq!(s.peer_addr().unwrap().port(), port);
            let mut buf = [0u8; 2];
            recv_exact(&s, &mut buf).await.expect("recv");
            assert_eq!(&buf, b"hi");
        }
        server.await.expect("server task");
        // Binding by name works too.
        let l2 = TcpListener::bind("localhost:0").await.expect("bind localhost:0");
        assert!(l2.local_addr().unwrap().ip().is_loopback());
    });
}

#[test]
fn dropping_connect_during_resolution_leaks_nothing() {
    let _g = serial();
    // The core's own fds are part of the baseline: measure inside the running core.
    // Lookups run on the blocking pool, whose idle threads exit after the keep-alive:
    // a short one, so that the thread count settles within the test.
    let builder = IoCore::builder().threads(2).blocking_keep_alive(Duration::from_millis(20));
    run_on(builder, LIMIT, || async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().unwrap().port();
        // Accept and drop whatever connects, so completed connects close too.
        let acceptor = iocore::spawn(async move {
            loop {
                match l.accept().await {
                    Ok((s, _)) => drop(s),
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        // Warm up: one full resolution so lazily opened resolver state is in the baseline.
        drop(TcpStream::connect(format!("localhost:{port}")).await.expect("warm-up connect"));
        iocore::time::sleep(Duration::from_millis(50)).await;
        let fds0 = fd_count();
        let threads0 = thread_count();
        let before = fd_list();

        let mut dropped = 0;
        for i in 0..300u64 {
            // Zero or a few microseconds: mostly dropped while the resolver thread runs.
            let t = Duration::from_micros(i % 5 * 20);
            match iocore::time::timeout(t, TcpStream::connect(format!("localhost:{port}"))).await {
                Err(_) => dropped += 1,
                Ok(Ok(s)) => drop(s),
                Ok(Err(e)) => panic!("connect localhost: {e}"),
            }
        }
        assert!(dropped > 0, "no connect was dropped during resolution");
        // Also drop futures that were polled once and never again.
        for _ in 0..100 {
            let mut f = Box::pin(TcpStream::connect(format!("localhost:{port}")));
            // Usually pending (the resolver thread is still at work); dropped either way.
            let _ = futures::poll!(f.as_mut());
            drop(f);
        }
        // Resolver threads finish their lookups and exit; sockets close.
        let ok = settle(Duration::from_secs(10), || fd_count() <= fds0 && thread_count() <= threads0);
        assert!(
            ok,
            "fds {} -> {}, threads {threads0} -> {}\nbefore: {before:#?}\nafter: {:#?}",
            fds0,
            fd_count(),
            thread_count(),
            fd_list()
        );
        acceptor.abort();
    });
}
