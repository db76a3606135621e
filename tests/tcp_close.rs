//! Closing: the peer dropping during a large send, orderly EOF, reset by the peer,
//! operations after `shutdown()`, dropping a stream with posted data still queued, and
//! dropping one with a long linger (the close never waits).

mod support;

use bytes::Bytes;
use iocore::net::{PostError, TcpStream};
use std::io::ErrorKind;
use std::time::Duration;
use support::net::{listener, pair, recv_to_end, run, LIMIT};
use support::pattern;

const TEN_MIB: usize = 10 << 20;

/// A connected pair with 4 KiB kernel buffers (the client's send side, the peer's
/// receive side), so that little data fills them.
async fn small_buffered_pair() -> (TcpStream, TcpStream) {
    let (client, peer) = pair().await;
    client.set_send_buffer_size(4096).expect("set_send_buffer_size");
    peer.set_recv_buffer_size(4096).expect("set_recv_buffer_size");
    (client, peer)
}

#[test]
fn peer_drops_during_send_all_gives_an_error() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        // The peer reads a little, then goes away with data unread.
        let dropper = iocore::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < 64 * 1024 {
                let n = peer.recv(&mut buf).await.expect("peer recv");
                assert!(n > 0);
                got += n;
            }
        });
        let data = vec![0xA5u8; TEN_MIB];
        let r = client.send_all(&data).await;
        dropper.await.expect("dropper task");
        let e = r.expect_err("send_all of 10 MiB to a peer that closed should fail");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
            "unexpected error kind: {e:?}"
        );
        // Later sends fail too, and nothing hangs.
        let mut failed = false;
        for _ in 0..10 {
            if client.send(b"more").await.is_err() {
                failed = true;
                break;
            }
            iocore::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(failed, "sends kept succeeding on a reset connection");
    });
}

#[test]
fn peer_drops_during_posted_send_reports_through_flush_and_closed() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let sender = client.sender();
        // One 10 MiB buffer is accepted even though it is above the mark (empty queue).
        sender.post_send(vec![0x5Au8; TEN_MIB]).expect("post 10 MiB");
        let mut buf = vec![0u8; 64 * 1024];
        let n = peer.recv(&mut buf).await.expect("peer recv");
        assert!(n > 0);
        drop(peer);
        let e = client.flush().await.expect_err("flush after the peer dropped should fail");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
            "unexpected error kind: {e:?}"
        );
        sender.closed().await;
        // The flusher releases its partly written batch right after closing the queue.
        let mut settled = false;
        for _ in 0..100 {
            if sender.queued_bytes() == 0 {
                settled = true;
                break;
            }
            iocore::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(settled, "{} queued bytes never released after the failure", sender.queued_bytes());
        match sender.post_send(&b"late"[..]) {
            Err(PostError::Closed(b)) => assert_eq!(b, Bytes::from_static(b"late")),
            other => panic!("post after failure: {other:?}"),
        }
    });
}

#[test]
fn orderly_close_by_peer_is_eof() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        peer.send_all(b"last words").await.expect("peer send");
        drop(peer);
        let got = recv_to_end(&client, 1024).await.expect("recv until EOF should not fail");
        assert_eq!(got, b"last words");
        // EOF is sticky.
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            assert_eq!(client.recv(&mut buf).await.expect("recv after EOF"), 0);
        }
        // Closing our side afterwards is fine.
        client.shutdown().await.expect("shutdown after EOF");
    });
}

#[test]
fn orderly_shutdown_by_peer_is_eof_and_we_can_still_send() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        peer.shutdown().await.expect("peer shutdown");
        let mut buf = [0u8; 8];
        assert_eq!(client.recv(&mut buf).await.expect("recv EOF"), 0);
        // Half-closed: the other direction still works.
        client.send_all(b"reply").await.expect("send after peer's FIN");
        client.shutdown().await.expect("shutdown");
        assert_eq!(recv_to_end(&peer, 1024).await.expect("peer recv"), b"reply");
    });
}

#[test]
fn peer_abort_surfaces_as_connection_reset() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        peer.send_all(b"some bytes").await.expect("peer send");
        // Let the data reach the client before the reset.
        iocore::time::sleep(Duration::from_millis(20)).await;
        peer.abort();
        let mut buf = [0u8; 64];
        let mut data = Vec::new();
        let mut reset = None;
        for _ in 0..20 {
            match client.recv(&mut buf).await {
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    iocore::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    reset = Some(e);
                    break;
                }
            }
        }
        let e = reset.expect("an aborted peer never surfaced as an error (only EOF/data)");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}");
        assert!(b"some bytes".starts_with(&data), "unexpected data before the reset: {data:?}");
    });
}

/// The peer's address stays known after the peer reset the connection (the kernel's
/// `getpeername` fails then): a server logging whom it lost could not name it (trial
/// programs: a bare `ENOTCONN` from `peer_addr` on the stream and on its `PostSender`).
#[test]
fn peer_addr_is_still_known_after_the_peer_resets() {
    run(2, LIMIT, || async {
        let (client, server) = pair().await;
        let expected = client.local_addr().expect("local_addr");
        let sender = server.sender();
        client.abort();
        // Wait until the server's side has seen the reset.
        let mut buf = [0u8; 8];
        let e = server.recv(&mut buf).await.expect_err("recv after the peer's reset");
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}");
        assert_eq!(server.peer_addr().expect("stream peer_addr after a reset"), expected);
        assert_eq!(sender.peer_addr().expect("sender peer_addr after a reset"), expected);
        let (recv_half, _send_half) = server.into_split();
        assert_eq!(recv_half.peer_addr().expect("half peer_addr after a reset"), expected);
    });
}

#[test]
fn peer_abort_without_data_surfaces_as_connection_reset() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        // The client is already waiting in recv when the reset arrives.
        let waiter = iocore::spawn(async move {
            let mut buf = [0u8; 64];
            let mut results = Vec::new();
            for _ in 0..5 {
                let r = client.recv(&mut buf).await;
                let stop = r.is_err();
                results.push(r.map_err(|e| e.kind()));
                if stop {
                    break;
                }
            }
            results
        });
        iocore::time::sleep(Duration::from_millis(20)).await;
        peer.abort();
        let results = waiter.await.expect("waiter task");
        assert!(
            results.contains(&Err(ErrorKind::ConnectionReset)),
            "recv results after the peer's abort: {results:?}"
        );
    });
}

#[test]
fn operations_after_shutdown() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        client.send_all(b"bye").await.expect("send");
        client.shutdown().await.expect("first shutdown");
        client.shutdown().await.expect("second shutdown is harmless");
        let e = client.send(b"x").await.expect_err("send after shutdown");
        assert_eq!(e.kind(), ErrorKind::NotConnected, "{e:?}");
        client.send_all(b"x").await.expect_err("send_all after shutdown");
        let slices = [std::io::IoSlice::new(b"x")];
        client.send_vectored(&slices).await.expect_err("send_vectored after shutdown");
        assert!(client.try_send(b"x").is_err(), "try_send after shutdown");
        assert!(matches!(client.post_send(&b"x"[..]), Err(PostError::Closed(_))));
        client.flush().await.expect("flush after shutdown");
        // The peer sees exactly the data before the shutdown, then EOF...
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        loop {
            let n = peer.recv(&mut buf).await.expect("peer recv");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"bye");
        // ...and receiving on the shut-down side still works.
        peer.send_all(b"still here").await.expect("peer send");
        drop(peer);
        assert_eq!(recv_to_end(&client, 1024).await.expect("recv after shutdown"), b"still here");
    });
}

#[test]
fn dropping_a_stream_still_delivers_posted_data() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let client = TcpStream::connect(addr).await.expect("connect");
        let (peer, _) = l.accept().await.expect("accept");
        // Room for all 3 MiB: the peer reads only after the drop.
        client.set_post_high_water(4 << 20);
        let sender = client.sender();
        let mut want = Vec::new();
        for i in 0..48 {
            let c = pattern(i, 64 * 1024);
            want.extend_from_slice(&c);
            client.post_send(c).expect("post_send");
        }
        // Posts from a PostSender clone after the owner is gone may be accepted or refused,
        // but never lost silently: track them.
        drop(client);
        let late = Bytes::from_static(b"after drop");
        let late_accepted = match sender.post_send(late.clone()) {
            Ok(()) => true,
            Err(PostError::Closed(b)) => {
                assert_eq!(b, late);
                false
            }
            Err(e) => panic!("unexpected {e:?}"),
        };
        // The peer only starts reading later: the data is still queued at the drop.
        iocore::time::sleep(Duration::from_millis(50)).await;
        let got = recv_to_end(&peer, 64 << 20).await.expect("peer recv");
        let mut want_late = want.clone();
        want_late.extend_from_slice(&late);
        assert!(
            got == want || (late_accepted && got == want_late),
            "dropped stream delivered {} of {} bytes (late post accepted: {late_accepted})",
            got.len(),
            want.len()
        );
        sender.closed().await;
        assert!(sender.is_closed());
    });
}

#[test]
fn dropping_a_stream_with_posts_from_another_thread_delivers_them() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        // Room for all 1 MB: the peer reads only after the drop (this is about delivery,
        // not backpressure).
        client.set_post_high_water(4 << 20);
        let sender = client.sender();
        let t = std::thread::spawn(move || {
            let mut v = Vec::new();
            for i in 0..1000u64 {
                let c = pattern(i, 1000);
                v.extend_from_slice(&c);
                sender.post_send(c).expect("post_send");
            }
            v
        });
        let want = loop {
            if t.is_finished() {
                break t.join().expect("poster");
            }
            iocore::time::sleep(Duration::from_millis(1)).await;
        };
        drop(client);
        let got = recv_to_end(&peer, 64 << 20).await.expect("peer recv");
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    });
}

#[test]
fn dropped_stream_gives_up_after_its_linger_when_the_peer_never_reads() {
    run(2, LIMIT, || async {
        // Small kernel buffers, so that the posted data cannot all be handed over.
        let (client, peer) = small_buffered_pair().await;
        client.set_linger(Some(Duration::from_secs(1))).expect("set_linger");
        let sender = client.sender();
        // Far more than the kernel buffers hold; the peer never reads.
        sender.post_send(vec![3u8; 16 << 20]).expect("post_send");
        iocore::time::sleep(Duration::from_millis(50)).await;
        assert!(
            sender.queued_bytes() > 0,
            "16 MiB went into the kernel buffers of a peer that does not read"
        );
        let start = std::time::Instant::now();
        drop(client);
        iocore::time::timeout(Duration::from_secs(8), sender.closed())
            .await
            .expect("a dropped stream kept trying to flush beyond its linger");
        assert!(start.elapsed() >= Duration::from_secs(1), "gave up after {:?}", start.elapsed());
        assert!(matches!(sender.post_send(&b"x"[..]), Err(PostError::Closed(_))));
        drop(peer);
    });
}

/// Same as above, but the stream is dropped before its flusher ever ran (so the flusher
/// knows from its first write that the owner is gone).
#[test]
fn dropped_stream_gives_up_after_its_linger_when_dropped_before_the_flusher_ran() {
    run(1, LIMIT, || async {
        let (client, peer) = small_buffered_pair().await;
        client.set_linger(Some(Duration::from_secs(1))).expect("set_linger");
        // Post and drop in one poll of a task on the only worker: the flusher cannot run
        // in between.
        let start = std::time::Instant::now();
        let sender = iocore::spawn(async move {
            let sender = client.sender();
            sender.post_send(vec![3u8; 16 << 20]).expect("post_send");
            drop(client);
            sender
        })
        .await
        .expect("task");
        iocore::time::timeout(Duration::from_secs(8), sender.closed())
            .await
            .expect("a dropped stream kept trying to flush beyond its linger");
        assert!(start.elapsed() >= Duration::from_secs(1), "gave up after {:?}", start.elapsed());
        drop(peer);
    });
}

/// `abort` closes at once with a reset and discards queued data, even while the flusher
/// is waiting for room in a full socket.
#[test]
fn abort_discards_posted_data_even_while_the_flusher_waits_for_room() {
    run(2, LIMIT, || async {
        const POSTED: usize = 16 << 20;
        let (client, peer) = small_buffered_pair().await;
        let sender = client.sender();
        sender.post_send(vec![4u8; POSTED]).expect("post_send");
        // The peer does not read yet: the flusher is now waiting for writability.
        iocore::time::sleep(Duration::from_millis(50)).await;
        assert!(sender.queued_bytes() > 0);
        client.abort();
        assert!(sender.is_closed(), "abort did not close the post queue");
        // The peer sees what was already in flight, then the reset; not the whole 16 MiB.
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        let err = loop {
            match iocore::time::timeout(Duration::from_secs(5), peer.recv(&mut buf)).await {
                Err(_) => panic!("no reset within 5 s of abort ({got} bytes received)"),
                Ok(Ok(0)) => panic!("orderly EOF after abort ({got} bytes received), expected a reset"),
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
        assert!(got < POSTED, "all {got} posted bytes were still delivered after abort");
    });
}

/// `abort` closes the socket at once (the peer's sends then fail), even while the
/// flusher is waiting for room in a socket whose peer does not read.
#[test]
fn abort_closes_at_once_even_while_the_flusher_waits_for_room() {
    run(2, LIMIT, || async {
        let (client, peer) = small_buffered_pair().await;
        let sender = client.sender();
        sender.post_send(vec![4u8; 16 << 20]).expect("post_send");
        iocore::time::sleep(Duration::from_millis(50)).await;
        assert!(sender.queued_bytes() > 0);
        client.abort();
        // The peer never reads. Once the client's socket is closed with a reset, the
        // peer's own sends fail.
        let mut failed = None;
        for _ in 0..200 {
            if let Err(e) = peer.send_all(b"are you there?").await {
                failed = Some(e);
                break;
            }
            iocore::time::sleep(Duration::from_millis(10)).await;
        }
        let e = failed.expect("2 s after abort the peer can still send: the aborted socket is still open");
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "unexpected error kind: {e:?}"
        );
    });
}

#[test]
fn dropping_a_stream_with_a_long_linger_does_not_hold_its_worker() {
    // The close runs where the stream is dropped: here on the `block_on` thread, in a
    // task on a worker, which a close that waited for the linger would hold for 5 s.
    run(1, LIMIT, || async {
        let (client, peer) = small_buffered_pair().await;
        client.set_linger(Some(Duration::from_secs(5))).expect("set_linger");
        drop_full_and_check(client, peer).await;
    });
}

/// The same with the linger set before iocore saw the socket: on a standard stream
/// adopted with `from_std`, and inherited from a listener adopted with `from_std`.
#[test]
fn dropping_an_adopted_stream_with_a_long_linger_does_not_hold_its_worker() {
    run(1, LIMIT, || async {
        let linger =
            |s: socket2::SockRef<'_>| s.set_linger(Some(Duration::from_secs(5))).expect("set_linger");
        // Adopted with a linger.
        let (other, peer) = small_buffered_pair().await;
        let std = other.into_std().expect("into_std");
        linger(socket2::SockRef::from(&std));
        let client = TcpStream::from_std(std).expect("from_std");
        drop_full_and_check(client, peer).await;
        // Accepted from a listener adopted with a linger.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        linger(socket2::SockRef::from(&std_listener));
        let listener = iocore::net::TcpListener::from_std(std_listener).expect("from_std");
        let peer = TcpStream::connect(listener.local_addr().unwrap()).await.expect("connect");
        let (client, _) = listener.accept().await.expect("accept");
        client.set_send_buffer_size(4096).expect("set_send_buffer_size");
        peer.set_recv_buffer_size(4096).expect("set_recv_buffer_size");
        drop_full_and_check(client, peer).await;
    });
}

/// Fills `client`'s kernel buffers (unsent data is what makes a lingering close wait),
/// drops it, and checks that the drop did not wait and that `peer` gets every byte.
async fn drop_full_and_check(client: TcpStream, peer: TcpStream) {
    let chunk = vec![7u8; 4096];
    let mut sent = 0;
    loop {
        match client.try_send(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    let start = std::time::Instant::now();
    drop(client);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "the drop held the worker for {took:?} (linger 5 s)");
    // Nothing is lost: the kernel sends what it held, then the end of the stream.
    let got = recv_to_end(&peer, 64 << 20).await.expect("the peer reads to the end");
    assert_eq!(got.len(), sent, "bytes accepted before the drop");
}
