//! UDP: send_to/recv_from, connect, peek, a datagram larger than the buffer, datagrams
//! posted from threads (boundaries and per-thread order kept, nothing lost), oversized
//! posts, refused datagrams counted while the queue goes on, order of posts and owner
//! sends, delivery after drop, abort and shutdown from a sender; a connected socket's
//! receive after an ICMP error.

mod support;

use bytes::Bytes;
use iocore::net::{PostError, UdpSocket};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use support::net::{run, LIMIT};

async fn bound() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let a = s.local_addr().expect("local_addr");
    (s, a)
}

#[test]
fn send_to_recv_from_connect_and_peek() {
    run(2, LIMIT, || async {
        let (a, a_addr) = bound().await;
        let (b, b_addr) = bound().await;
        assert_eq!(a.peer_addr().unwrap_err().kind(), io::ErrorKind::NotConnected);
        b.set_recv_buffer_size(64 * 1024).expect("set_recv_buffer_size");
        assert!(b.recv_buffer_size().expect("recv_buffer_size") >= 64 * 1024);
        a.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
        a.set_broadcast(true).expect("set_broadcast");
        a.set_ttl(7).expect("set_ttl");
        assert_eq!(a.ttl().unwrap(), 7);
        assert_eq!(a.send_to(b"one", b_addr).await.expect("send_to"), 3);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.expect("recv_from");
        assert_eq!((&buf[..n], from), (&b"one"[..], a_addr));

        // Empty datagrams are datagrams.
        a.send_to(b"", b_addr).await.expect("empty");
        assert_eq!(b.recv_from(&mut buf).await.expect("recv").0, 0);

        b.connect(a_addr).await.expect("connect");
        assert_eq!(b.peer_addr().unwrap(), a_addr);
        b.send(b"two").await.expect("send");
        let (n, _) = a.peek_from(&mut buf).await.expect("peek");
        assert_eq!(&buf[..n], b"two");
        let (n, from) = a.recv_from(&mut buf).await.expect("recv after peek");
        assert_eq!((&buf[..n], from), (&b"two"[..], b_addr));
        a.send_to(b"three", b_addr).await.expect("send_to");
        let n = b.recv(&mut buf).await.expect("recv");
        assert_eq!(&buf[..n], b"three");
        assert_eq!(b.try_recv_from(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    });
}

#[test]
fn a_datagram_larger_than_the_buffer_is_a_clear_error_and_the_socket_goes_on() {
    run(1, LIMIT, || async {
        let (a, _) = bound().await;
        let (b, b_addr) = bound().await;
        a.send_to(&[9u8; 3000], b_addr).await.expect("send");
        a.send_to(b"next", b_addr).await.expect("send");
        let mut small = [0u8; 1024];
        // Peeking loses nothing: the first bytes, no error.
        let (n, _) = b.peek_from(&mut small).await.expect("peek a large datagram");
        assert_eq!(n, 1024);
        let e = b.recv_from(&mut small).await.expect_err("truncated");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("3000") && msg.contains("1024"), "{msg}");
        let (n, _) = b.recv_from(&mut small).await.expect("the next datagram");
        assert_eq!(&small[..n], b"next");
    });
}

#[test]
fn datagrams_posted_from_4_threads_keep_boundaries_order_and_count() {
    const THREADS: usize = 4;
    const PER_THREAD: u32 = 1000;
    /// Datagrams a thread may have in flight: the receiver's socket buffer holds them all,
    /// so none is dropped however slow the receiver is.
    const WINDOW: u32 = 16;
    run(2, LIMIT, || async {
        let (a, _) = bound().await;
        let (b, b_addr) = bound().await;
        let received: Arc<Vec<AtomicU32>> = Arc::new((0..THREADS).map(|_| AtomicU32::new(0)).collect());
        let posters: Vec<_> = (0..THREADS)
            .map(|tid| {
                let sender = a.sender();
                let received = received.clone();
                thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        while seq >= received[tid].load(SeqCst) + WINDOW {
                            thread::yield_now();
                        }
                        // Thread id, sequence number, then a length that varies.
                        let mut d = vec![tid as u8];
                        d.extend_from_slice(&seq.to_be_bytes());
                        d.resize(5 + (seq as usize * 7 + tid) % 200, 0xAB);
                        sender.post_send_to(d, b_addr).expect("post");
                    }
                })
            })
            .collect();
        let mut buf = vec![0u8; 65536];
        let mut total = 0;
        while total < THREADS as u32 * PER_THREAD {
            let (n, _) = b.recv_from(&mut buf).await.expect("recv");
            let tid = buf[0] as usize;
            let seq = u32::from_be_bytes(buf[1..5].try_into().unwrap());
            assert_eq!(n, 5 + (seq as usize * 7 + tid) % 200, "boundary of {tid}/{seq}");
            assert_eq!(seq, received[tid].load(SeqCst), "order of thread {tid}");
            received[tid].store(seq + 1, SeqCst);
            total += 1;
        }
        for p in posters {
            p.join().expect("poster");
        }
        assert_eq!(a.sender().failed(), 0);
    });
}

#[test]
fn oversized_datagrams_are_refused_with_their_data() {
    run(1, LIMIT, || async {
        let (a, _) = bound().await;
        let (_b, b_addr) = bound().await;
        let big = Bytes::from(vec![1u8; 70_000]);
        match a.sender().post_send_to(big.clone(), b_addr) {
            Err(PostError::TooLarge(back)) => assert_eq!(back, big),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let e = a.send_to(&big, b_addr).await.expect_err("EMSGSIZE");
        assert!(e.to_string().contains(&b_addr.to_string()), "{e}");
        // The socket still works.
        a.send_to(b"ok", b_addr).await.expect("send");
    });
}

#[test]
fn datagrams_the_kernel_refuses_are_counted_and_the_queue_goes_on() {
    run(1, LIMIT, || async {
        // A port with nobody on it: after the first datagram, the kernel reports "port
        // unreachable" on the connected socket.
        let closed_addr = {
            let (s, addr) = bound().await;
            drop(s);
            addr
        };
        let (a, _) = bound().await;
        a.connect(closed_addr).await.expect("connect");
        let sender = a.sender();
        for _ in 0..1000 {
            sender.send(&b"ping"[..]).await.expect("posts keep being accepted");
            a.flush().await.expect("flush");
            if sender.failed() > 0 {
                break;
            }
            iocore::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(sender.failed() > 0, "no datagram was refused");
        assert!(!sender.is_closed());
        // The owner's own send reports the refusal, naming the address.
        let mut saw_error = None;
        for _ in 0..1000 {
            if let Err(e) = a.send(b"x").await {
                saw_error = Some(e);
                break;
            }
            iocore::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let e = saw_error.expect("a refused send");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(e.to_string().contains(&closed_addr.to_string()), "{e}");
    });
}

#[test]
fn posts_before_an_owner_send_leave_before_it() {
    run(2, LIMIT, || async {
        let (a, _) = bound().await;
        let (b, b_addr) = bound().await;
        for round in 0..50u8 {
            a.post_send_to(vec![round, 0], b_addr).expect("post");
            a.send_to(&[round, 1], b_addr).await.expect("send");
            let mut buf = [0u8; 8];
            for part in 0..2 {
                let (n, _) = b.recv_from(&mut buf).await.expect("recv");
                assert_eq!(&buf[..n], &[round, part]);
            }
        }
    });
}

#[test]
fn dropping_the_socket_still_sends_what_was_posted() {
    run(2, LIMIT, || async {
        let (a, _) = bound().await;
        let (b, b_addr) = bound().await;
        let sender = a.sender();
        for i in 0..10u8 {
            sender.post_send_to(vec![i], b_addr).expect("post");
        }
        drop(a);
        match sender.post_send_to(vec![99], b_addr) {
            Err(PostError::Closed(back)) => assert_eq!(&back[..], &[99]),
            other => panic!("a post after the drop: {other:?}"),
        }
        let mut buf = [0u8; 8];
        for i in 0..10u8 {
            let (n, _) = b.recv_from(&mut buf).await.expect("recv");
            assert_eq!(&buf[..n], &[i]);
        }
        sender.closed().await;
    });
}

#[test]
fn abort_and_shutdown_from_a_sender() {
    run(1, LIMIT, || async {
        let (a, _) = bound().await;
        let (_b, b_addr) = bound().await;
        let sender = a.sender();
        sender.post_send_to(vec![1], b_addr).expect("post");
        sender.shutdown().await.expect("shutdown");
        assert!(matches!(sender.post_send_to(vec![2], b_addr), Err(PostError::Closed(_))));

        let (c, _) = bound().await;
        let sender = c.sender();
        sender.abort();
        assert!(matches!(sender.post_send_to(vec![3], b_addr), Err(PostError::Closed(_))));
        let e = c.send_to(b"x", b_addr).await.expect_err("send after abort");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
    });
}

#[test]
fn bad_addresses_give_errors_that_name_them() {
    run(1, LIMIT, || async {
        let e = UdpSocket::bind("127.0.0.1:99999").await.expect_err("bad port");
        assert!(e.to_string().contains("99999"), "{e}");
        let e = UdpSocket::bind("203.0.113.1:0").await.expect_err("not a local address");
        assert!(e.to_string().contains("203.0.113.1"), "{e}");
        let (a, _) = bound().await;
        // An IPv6 destination on an IPv4 socket.
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let e = a.send_to(b"x", v6).await.expect_err("family mismatch");
        assert!(e.to_string().contains("[::1]:9"), "{e}");
    });
}

#[test]
fn a_receive_after_an_icmp_error_waits_again() {
    run(2, LIMIT, || async {
        // A port nobody listens on: the datagram draws an ICMP "port unreachable".
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let dead = closed.local_addr().expect("local_addr");
        drop(closed);
        let (s, _) = bound().await;
        s.connect(dead).await.expect("connect");
        s.send(b"ping").await.expect("send");
        // Let the kernel queue report the error (EPOLLERR) before anyone receives.
        iocore::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 64];
        // The error is reported once (the kernel forgets it as it reports it) ...
        let e = s.recv(&mut buf).await.expect_err("a datagram from a closed port");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        // ... then a receive waits for a datagram: a timeout around it fires (it used to
        // retry forever inside one poll, where no timeout could end it).
        for _ in 0..3 {
            let r = iocore::time::timeout(std::time::Duration::from_millis(20), s.recv(&mut buf)).await;
            assert!(r.is_err(), "a receive after the error finished: {r:?}");
        }
    });
}

/// A `send_to` dropped while it waits (here: the cooperative budget ran out) gives the
/// writer role back: a later `writable()` completes and `try_send_to` goes out (review:
/// the role stayed taken for good, and `writable()` then waited forever).
#[test]
fn a_send_dropped_while_it_waits_gives_the_writer_role_back() {
    use futures::FutureExt;
    run(2, LIMIT, || async {
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
        let to = b.local_addr().unwrap();
        let mut dropped_while_waiting = false;
        for _ in 0..10_000 {
            match a.send_to(b"x", to).now_or_never() {
                Some(r) => {
                    r.expect("send_to");
                }
                None => {
                    dropped_while_waiting = true;
                    break;
                }
            }
        }
        assert!(dropped_while_waiting, "no send_to ever waited");
        iocore::task::yield_now().await;
        iocore::time::timeout(support::HANG, a.writable())
            .await
            .expect("writable() waited forever")
            .expect("writable");
        a.try_send_to(b"y", to).expect("try_send_to after the dropped send");
    });
}

/// The owner's send while the flusher holds the writer role queues behind the posts and
/// leaves the role alone (review of this session's fix: a guard built and dropped at once
/// gave the flusher's role away, so posted datagrams stayed queued and an owner's send
/// below a small mark waited forever). 20 rounds: it failed in 19 of 20.
#[test]
fn an_owner_send_behind_the_flusher_leaves_it_the_writer_role() {
    run(2, LIMIT, || async {
        for round in 0..20 {
            let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
            let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
            let to = b.local_addr().unwrap();
            a.set_post_high_water(1);
            a.sender().post_send_to(&b"posted"[..], to).expect("post_send_to");
            iocore::time::timeout(support::HANG, a.send_to(b"owner", to))
                .await
                .unwrap_or_else(|_| panic!("round {round}: the owner's send waited forever"))
                .expect("send_to");
            let mut buf = [0u8; 16];
            for want in [&b"posted"[..], &b"owner"[..]] {
                let (n, _) = iocore::time::timeout(support::HANG, b.recv_from(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: {want:?} never arrived"))
                    .expect("recv_from");
                assert_eq!(&buf[..n], want, "round {round}: out of order");
            }
        }
    });
}
