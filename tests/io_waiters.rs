//! Several waiters on one socket direction: the owner's `send`, the `post_send` flusher,
//! tasks awaiting `writable()`/`readable()`, and several tasks in `recv` on a shared
//! `&TcpStream`. Each must be woken by the readiness edge that lets it proceed; no waiter
//! may overwrite another's registration and strand it.

mod support;

use bytes::Bytes;
use iocore::net::TcpStream;
use iocore::time::{sleep, timeout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::net::{pair, run, LIMIT};
use support::{pattern, polled, settled_in_core, wait_until_in_core};

/// How long a waiter may take after the edge that should wake it: only a lost wakeup
/// reaches it.
const STUCK: Duration = Duration::from_secs(10);

/// Fixed kernel buffers (no autotuning), so that a few hundred KiB fill the connection.
/// (Not smaller: a receive window below the loopback MSS makes TCP crawl.)
fn bounded_buffers(sender: &TcpStream, peer: &TcpStream) {
    sender.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
    peer.set_recv_buffer_size(256 * 1024).expect("set_recv_buffer_size");
}

/// Receives until `want` bytes arrived or nothing arrives for `STUCK`; returns the count.
async fn drain(peer: &TcpStream, want: usize) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < want {
        match timeout(STUCK, peer.recv(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => panic!("peer recv: {e}"),
            Err(_) => break,
        }
    }
    got
}

#[test]
fn owner_send_completes_after_a_post_hands_the_writer_role_to_the_flusher() {
    const OWNER_BYTES: usize = 4 << 20;
    const POSTED: usize = 16 * 1024;
    run(2, LIMIT, || async {
        let (a, peer) = pair().await;
        bounded_buffers(&a, &peer);
        let a = Arc::new(a);
        let sender = a.sender();
        let sent = Arc::new(AtomicUsize::new(0));
        // The owner sends with `send` until the socket is full (the peer does not read yet),
        // so its last `send` waits for room with its waker registered.
        let owner = {
            let (a, sent) = (a.clone(), sent.clone());
            iocore::spawn(async move {
                let data = pattern(1, OWNER_BYTES);
                let mut off = 0;
                while off < data.len() {
                    off += a.send(&data[off..]).await.expect("owner send");
                    sent.store(off, SeqCst);
                }
            })
        };
        let stuck_at = settled_in_core(|| sent.load(SeqCst)).await;
        assert!(stuck_at < OWNER_BYTES, "the owner sent everything although the peer does not read?");
        // A post from a plain thread: the writer role goes to the flusher, which waits for
        // room too.
        std::thread::spawn(move || sender.post_send(Bytes::from(pattern(2, POSTED))).expect("post_send"))
            .join()
            .expect("poster thread");
        sleep(Duration::from_millis(50)).await;
        // Now the peer reads everything.
        let reader = iocore::spawn(async move { drain(&peer, OWNER_BYTES + POSTED).await });
        if timeout(STUCK, owner).await.is_err() {
            panic!(
                "the owner's send never completed after the peer started reading (owner stuck at \
                 {stuck_at} of {OWNER_BYTES} bytes): its wakeup was lost to the flusher"
            );
        }
        let got = reader.await.expect("reader task");
        assert_eq!(got, OWNER_BYTES + POSTED, "peer received {got} bytes");
    });
}

#[test]
fn owner_send_all_completes_while_another_task_awaits_writable() {
    const OWNER_BYTES: usize = 4 << 20;
    run(2, LIMIT, || async {
        let (a, peer) = pair().await;
        bounded_buffers(&a, &peer);
        let a = Arc::new(a);
        let sent = Arc::new(AtomicUsize::new(0));
        // `send_all` in pieces, so that its progress is visible: it fills the socket and
        // waits for room.
        let owner = {
            let (a, sent) = (a.clone(), sent.clone());
            iocore::spawn(async move {
                let data = pattern(3, OWNER_BYTES);
                for chunk in data.chunks(256 * 1024) {
                    a.send_all(chunk).await.expect("owner send_all");
                    sent.fetch_add(chunk.len(), SeqCst);
                }
            })
        };
        let stuck_at = settled_in_core(|| sent.load(SeqCst)).await;
        assert!(stuck_at < OWNER_BYTES, "the owner sent everything although the peer does not read?");
        sleep(Duration::from_millis(50)).await;
        // Another task waits for the same socket to become writable.
        let polls = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (a, polls) = (a.clone(), polls.clone());
            iocore::spawn(async move { polled(&polls, a.writable()).await.expect("writable") })
        };
        wait_until_in_core("the writable() waiter to be polled", || polls.load(SeqCst) > 0).await;
        let reader = iocore::spawn(async move { drain(&peer, OWNER_BYTES).await });
        if timeout(STUCK, owner).await.is_err() {
            panic!(
                "the owner's send_all never completed after the peer started reading (stuck after \
                 {stuck_at} of {OWNER_BYTES} bytes): its wakeup was lost to the writable() waiter"
            );
        }
        timeout(STUCK, waiter).await.expect("the writable() waiter was never woken").expect("waiter task");
        let got = reader.await.expect("reader task");
        assert_eq!(got, OWNER_BYTES, "peer received {got} bytes");
    });
}

#[test]
fn posted_data_keeps_flowing_while_a_task_awaits_writable() {
    const POSTED: usize = 3 << 20;
    run(2, LIMIT, || async {
        let (a, peer) = pair().await;
        bounded_buffers(&a, &peer);
        let a = Arc::new(a);
        let sender = a.sender();
        sender.post_send(Bytes::from(pattern(5, POSTED))).expect("post_send");
        // The flusher fills the socket and waits for room.
        let queued = settled_in_core(|| sender.queued_bytes()).await;
        assert!(queued > 0, "3 MiB went into the bounded buffers?");
        // Another task waits for the socket to become writable.
        let polls = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let a = a.clone();
            let polls = polls.clone();
            iocore::spawn(async move { polled(&polls, a.writable()).await.expect("writable") })
        };
        wait_until_in_core("the writable() waiter to be polled", || polls.load(SeqCst) > 0).await;
        let got = drain(&peer, POSTED).await;
        assert_eq!(
            got, POSTED,
            "posted data stalled: only {got} of {POSTED} bytes arrived while a task awaited \
             writable() (the flusher's wakeup was lost)"
        );
        timeout(STUCK, waiter).await.expect("the writable() waiter was never woken").expect("waiter task");
    });
}

#[test]
fn two_tasks_awaiting_readable_on_a_shared_stream_are_both_woken() {
    run(2, LIMIT, || async {
        let (a, peer) = pair().await;
        let a = Arc::new(a);
        // Consume the optimistic initial readiness, so readable() really waits.
        let mut b = [0u8; 16];
        let e = a.try_recv(&mut b).expect_err("nothing was sent yet");
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let polls: Vec<_> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let waiters: Vec<_> = polls
            .iter()
            .map(|p| {
                let (a, p) = (a.clone(), p.clone());
                iocore::spawn(async move { polled(&p, a.readable()).await.expect("readable") })
            })
            .collect();
        wait_until_in_core("both readable() waiters to be polled", || {
            polls.iter().all(|p| p.load(SeqCst) > 0)
        })
        .await;
        peer.send_all(b"data for both").await.expect("peer send");
        for (i, w) in waiters.into_iter().enumerate() {
            match timeout(STUCK, w).await {
                Ok(r) => r.expect("waiter task"),
                Err(_) => panic!("readable() waiter {i} was never woken although data arrived"),
            }
        }
    });
}

#[test]
fn two_tasks_in_recv_on_a_shared_stream_both_get_data() {
    run(2, LIMIT, || async {
        let (a, peer) = pair().await;
        let a = Arc::new(a);
        let polls: Vec<_> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let done: Arc<Vec<AtomicBool>> = Arc::new((0..2).map(|_| AtomicBool::new(false)).collect());
        let readers: Vec<_> = polls
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (a, p, done) = (a.clone(), p.clone(), done.clone());
                iocore::spawn(async move {
                    // One byte at most: each message feeds exactly one reader.
                    let mut b = [0u8; 1];
                    let n = polled(&p, a.recv(&mut b)).await.expect("recv");
                    done[i].store(true, SeqCst);
                    (n, b[0])
                })
            })
            .collect();
        wait_until_in_core("both recv calls to be polled", || polls.iter().all(|p| p.load(SeqCst) > 0)).await;
        peer.send_all(b"1").await.expect("peer send 1");
        let first = timeout(STUCK, async {
            wait_until_in_core("one reader to get the first message", || done.iter().any(|d| d.load(SeqCst)))
                .await
        })
        .await;
        assert!(first.is_ok(), "neither reader was woken by the first message");
        peer.send_all(b"2").await.expect("peer send 2");
        let mut got = Vec::new();
        for (i, r) in readers.into_iter().enumerate() {
            match timeout(STUCK, r).await {
                Ok(r) => got.push(r.expect("reader task")),
                Err(_) => panic!(
                    "reader {i} in recv was never woken although a second message arrived (its \
                     waker was overwritten by the other reader's)"
                ),
            }
        }
        got.sort_unstable();
        assert_eq!(got, vec![(1, b'1'), (1, b'2')]);
    });
}
