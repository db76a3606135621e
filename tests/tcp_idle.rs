//! An idle connected socket causes no busy polling: a task waiting in `recv` on a quiet
//! connection is polled only a handful of times, and still wakes when data arrives.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::net::{pair, recv_exact, run, LIMIT};
use support::polled;

fn idle_recv_is_not_busy_polled(threads: usize) {
    run(threads, LIMIT, || async {
        let (client, server) = pair().await;
        let polls = Arc::new(AtomicUsize::new(0));
        let reader = iocore::spawn(polled(&polls, async move {
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            loop {
                let n = server.recv(&mut buf).await.expect("recv");
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }));
        iocore::time::sleep(Duration::from_millis(20)).await;
        let idle_polls = polls.load(Ordering::SeqCst);
        assert!(idle_polls >= 1, "the reader task was never polled");
        assert!(idle_polls <= 5, "an idle recv was polled {idle_polls} times in 20 ms (busy polling)");
        // A second quiet period: still no polls at all.
        iocore::time::sleep(Duration::from_millis(20)).await;
        let idle_polls2 = polls.load(Ordering::SeqCst);
        assert!(idle_polls2 <= 5, "an idle recv was polled {idle_polls2} times in 40 ms (busy polling)");

        client.send_all(b"wake up").await.expect("send_all");
        client.shutdown().await.expect("shutdown");
        let got = reader.await.expect("reader task");
        assert_eq!(got, b"wake up");
        let total = polls.load(Ordering::SeqCst);
        assert!(total > idle_polls2, "data arrived without the reader being polled again");
    });
}

#[test]
fn idle_recv_is_not_busy_polled_1_thread() {
    idle_recv_is_not_busy_polled(1);
}

#[test]
fn idle_recv_is_not_busy_polled_2_threads() {
    idle_recv_is_not_busy_polled(2);
}

#[test]
fn readable_waits_and_try_recv_would_block_when_empty() {
    run(2, LIMIT, || async {
        let (client, server) = pair().await;
        let mut buf = [0u8; 32];
        // Nothing there: WouldBlock, not 0 and not a wait.
        let e = server.try_recv(&mut buf).expect_err("try_recv on an empty socket");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e:?}");
        // readable() does not complete while nothing arrives.
        let r = iocore::time::timeout(Duration::from_millis(30), server.readable()).await;
        assert!(r.is_err(), "readable() completed on an idle socket after a WouldBlock");
        client.send_all(b"data").await.expect("send");
        let mut got = Vec::new();
        for _ in 0..100 {
            iocore::time::timeout(Duration::from_secs(5), server.readable())
                .await
                .expect("readable() never completed after data arrived")
                .expect("readable");
            match server.try_recv(&mut buf) {
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= 4 {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("try_recv: {e}"),
            }
        }
        assert_eq!(got, b"data");
        // try_send / writable on a fresh socket.
        server.writable().await.expect("writable");
        let n = server.try_send(b"back").expect("try_send on an empty socket");
        assert_eq!(n, 4);
        let mut back = [0u8; 4];
        recv_exact(&client, &mut back).await.expect("recv");
        assert_eq!(&back, b"back");
    });
}

#[test]
fn try_send_would_block_when_full_and_writable_waits_for_the_peer() {
    run(2, LIMIT, || async {
        let (client, server) = pair().await;
        let chunk = vec![1u8; 64 * 1024];
        let mut sent = 0usize;
        // Fill the socket (the peer does not read) until writable() stays pending: right
        // after a WouldBlock the kernel may still move data on to the peer's buffer.
        let mut blocked = false;
        for _ in 0..50 {
            loop {
                match client.try_send(&chunk) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("try_send: {e}"),
                }
                assert!(sent < 512 << 20, "never filled the socket");
            }
            if iocore::time::timeout(Duration::from_millis(200), client.writable()).await.is_err() {
                blocked = true;
                break;
            }
        }
        assert!(blocked, "writable() kept completing on a socket whose peer never reads");
        // The peer drains everything; writable() then completes.
        let reader = iocore::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0usize;
            loop {
                let n = server.recv(&mut buf).await.expect("recv");
                if n == 0 {
                    return got;
                }
                got += n;
            }
        });
        iocore::time::timeout(Duration::from_secs(10), client.writable())
            .await
            .expect("writable() never completed after the peer read")
            .expect("writable");
        client.shutdown().await.expect("shutdown");
        assert_eq!(reader.await.expect("reader"), sent);
    });
}
