//! `post_send` / `PostSender`: posts from many OS threads while the owner is busy, empty
//! buffers, posting after close, the high-water mark, and ordering with the owner's sends.

mod support;

use bytes::Bytes;
use iocore::net::{PostError, PostSender, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};
use support::net::{listener, pair, recv_to_end, run, LIMIT};
use support::{parse_tagged, pattern, tagged};

const POSTERS: usize = 8;

/// Message `seq` of posting thread `tid`: a [`support::tagged`] message of 1-61 bytes.
fn thread_msg(tid: usize, seq: u32) -> Vec<u8> {
    tagged(tid, seq, 1 + (seq as usize * 7 + tid * 13) % 61)
}

/// Checks that each thread's messages arrived complete, uncorrupted, exactly once and in
/// order, and all of them.
fn check_tagged(data: &[u8], per_thread: u32) {
    let parsed = parse_tagged(data, POSTERS, thread_msg);
    if let Some(e) = parsed.error {
        panic!("{e}");
    }
    assert_eq!(parsed.tail, 0, "truncated message at the end of the stream");
    for (tid, n) in parsed.counts.iter().enumerate() {
        assert_eq!(*n, per_thread, "thread {tid}: {n} of {per_thread} messages arrived");
    }
}

#[test]
fn posts_from_8_threads_while_owner_is_blocked_in_its_poll() {
    const PER_THREAD: u32 = 2000;
    // One worker: while the owner blocks it, nothing else on the core (the flusher
    // included) can run, so every post has to wait in the queue.
    run(1, LIMIT, || async {
        let (l, addr) = listener().await;
        let owner = iocore::spawn(async move {
            let s = TcpStream::connect(addr).await.expect("connect");
            // Room for everything: this is about order while the queue cannot drain.
            s.set_post_high_water(4 << 20);
            let sender = s.sender();
            let start = Arc::new(Barrier::new(POSTERS + 1));
            let threads: Vec<_> = (0..POSTERS)
                .map(|tid| {
                    let sender = sender.clone();
                    let start = start.clone();
                    thread::spawn(move || {
                        start.wait();
                        for seq in 0..PER_THREAD {
                            sender.post_send(thread_msg(tid, seq)).expect("post_send");
                        }
                    })
                })
                .collect();
            // A long poll: block the worker while the threads post.
            start.wait();
            thread::sleep(Duration::from_millis(200));
            for t in threads {
                t.join().expect("poster thread");
            }
            let total: usize =
                (0..POSTERS).flat_map(|t| (0..PER_THREAD).map(move |s| thread_msg(t, s).len())).sum();
            let queued = sender.queued_bytes();
            assert_eq!(queued, total, "posted bytes were written while the only worker was blocked?");
            s.flush().await.expect("flush");
            assert_eq!(sender.queued_bytes(), 0, "flush completed with bytes still queued");
            s.shutdown().await.expect("shutdown");
            total
        });
        let (peer, _) = l.accept().await.expect("accept");
        let data = recv_to_end(&peer, 64 << 20).await.expect("peer recv");
        let total = owner.await.expect("owner task");
        assert_eq!(data.len(), total, "byte count differs");
        check_tagged(&data, PER_THREAD);
    });
}

#[test]
fn posts_from_8_threads_while_the_flusher_runs() {
    const PER_THREAD: u32 = 20_000;
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        client.set_post_high_water(64 * 1024);
        let sender = client.sender();
        let threads: Vec<_> = (0..POSTERS)
            .map(|tid| {
                let sender = sender.clone();
                thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        let mut msg = Bytes::from(thread_msg(tid, seq));
                        loop {
                            match sender.post_send(msg) {
                                Ok(()) => break,
                                Err(PostError::WouldExceed(b)) => {
                                    msg = b;
                                    futures::executor::block_on(sender.ready());
                                }
                                Err(e) => panic!("post_send: {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let reader = iocore::spawn(async move { recv_to_end(&peer, 256 << 20).await.expect("peer recv") });
        // Join the posters without blocking the runtime.
        let joined = iocore::spawn(async move {
            for t in threads {
                while !t.is_finished() {
                    iocore::time::sleep(Duration::from_millis(2)).await;
                }
                t.join().expect("poster thread");
            }
        });
        joined.await.expect("join task");
        client.shutdown().await.expect("shutdown");
        let data = reader.await.expect("reader task");
        check_tagged(&data, PER_THREAD);
    });
}

#[test]
fn empty_buffers_are_harmless() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let sender = client.sender();
        // 1000 empty buffers before any real data.
        for i in 0..1000 {
            match i % 4 {
                0 => client.post_send(Bytes::new()).expect("empty post"),
                1 => sender.post_send(Vec::new()).expect("empty post"),
                2 => sender.post_send(&b""[..]).expect("empty post"),
                _ => sender.post_send(Bytes::from_static(b"")).expect("empty post"),
            }
        }
        assert_eq!(sender.queued_bytes(), 0);
        sender.post_send(&b"first"[..]).expect("post first");
        // 300 empty buffers between two messages.
        for _ in 0..300 {
            sender.post_send(Bytes::new()).expect("empty post");
        }
        sender.post_send(&b"second"[..]).expect("post second");
        // An owner send with 300 empty slices between two non-empty ones.
        let empty: &[u8] = &[];
        let mut slices = vec![std::io::IoSlice::new(b"third")];
        slices.extend((0..300).map(|_| std::io::IoSlice::new(empty)));
        slices.push(std::io::IoSlice::new(b"fourth"));
        let mut sent = 0;
        let want = "thirdfourth".len();
        let mut data = b"thirdfourth".to_vec();
        while sent < want {
            let n = if sent == 0 {
                client.send_vectored(&slices).await.expect("send_vectored")
            } else {
                client.send(&data[sent..]).await.expect("send")
            };
            assert!(n > 0, "send_vectored wrote nothing");
            sent += n;
        }
        // Empty sends from the owner, too.
        assert_eq!(client.send(&[]).await.expect("empty send"), 0);
        client.send_all(&[]).await.expect("empty send_all");
        for _ in 0..300 {
            sender.post_send(Bytes::new()).expect("empty post");
        }
        client.shutdown().await.expect("shutdown");
        let got = recv_to_end(&peer, 1 << 20).await.expect("peer recv");
        data.splice(0..0, b"firstsecond".iter().copied());
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&data));
    });
}

#[test]
fn post_after_shutdown_returns_closed_with_the_data() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let sender = client.sender();
        sender.post_send(&b"before"[..]).expect("post before shutdown");
        client.shutdown().await.expect("shutdown");
        assert!(sender.is_closed(), "sender not closed after shutdown");
        sender.closed().await;
        let data = Bytes::from(pattern(7, 1000));
        match sender.post_send(data.clone()) {
            Err(PostError::Closed(b)) => assert_eq!(b, data, "Closed did not hand the data back intact"),
            other => panic!("post after shutdown: {other:?}"),
        }
        match client.post_send(&b"via stream"[..]) {
            Err(e @ PostError::Closed(_)) => assert_eq!(e.into_inner(), Bytes::from_static(b"via stream")),
            other => panic!("post after shutdown: {other:?}"),
        }
        let got = recv_to_end(&peer, 1 << 20).await.expect("peer recv");
        assert_eq!(got, b"before");
    });
}

#[test]
fn post_after_peer_closed_returns_closed_with_the_data() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let sender = client.sender();
        drop(peer);
        let mut buf = [0u8; 16];
        assert_eq!(client.recv(&mut buf).await.expect("recv EOF"), 0);
        // Writing to a closed peer fails (RST, then EPIPE) and closes the post queue.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut i = 0u64;
        let refused = loop {
            let data = Bytes::from(pattern(i, 100));
            match sender.post_send(data.clone()) {
                Ok(()) => {}
                Err(PostError::Closed(b)) => {
                    assert_eq!(b, data, "Closed did not hand the data back intact");
                    break b;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert!(Instant::now() < deadline, "posting to a closed peer never failed");
            i += 1;
            iocore::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(refused.len(), 100);
        assert!(sender.is_closed());
        sender.closed().await;
        assert!(client.flush().await.is_err(), "flush after a failed write should report the error");
        assert!(client.send(b"x").await.is_err(), "send after a failed write should fail");
        assert!(client.send_all(b"x").await.is_err(), "send_all after a failed write should fail");
    });
}

#[test]
fn would_exceed_hands_data_back_and_ready_completes_when_peer_reads() {
    const CHUNK: usize = 256;
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        client.set_send_buffer_size(4096).expect("set_send_buffer_size");
        client.set_post_high_water(1024);
        let sender = client.sender();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut posted = 0usize;
        let mut would_exceed = 0;
        // The peer does not read: post until the kernel buffers are full and the queue
        // stays above its mark (a WouldExceed while the flusher can still write is
        // transient: ready() completes, and the refused chunk is posted again).
        let refused = loop {
            let chunk = Bytes::from(pattern(chunks.len() as u64, CHUNK));
            match sender.post_send(chunk.clone()) {
                Ok(()) => {
                    chunks.push(chunk);
                    posted += CHUNK;
                }
                Err(PostError::WouldExceed(b)) => {
                    assert_eq!(b, chunk, "WouldExceed did not hand the data back intact");
                    would_exceed += 1;
                    let q = sender.queued_bytes();
                    assert!(q <= 1024 + CHUNK, "WouldExceed with {q} bytes queued");
                    // Stuck for a while (not just a flusher that has not run yet).
                    if iocore::time::timeout(Duration::from_millis(300), sender.ready()).await.is_err() {
                        break b;
                    }
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
            assert!(posted < 64 << 20, "posted 64 MiB to a peer that does not read without WouldExceed");
        };
        assert!(would_exceed >= 1);
        // Still stuck: nobody reads.
        assert!(sender.queued_bytes() >= 1024 - CHUNK, "queued {} bytes", sender.queued_bytes());
        let early = iocore::time::timeout(Duration::from_millis(50), sender.ready()).await;
        assert!(early.is_err(), "ready() completed although nobody reads and the queue is full");

        let reader = iocore::spawn(async move { recv_to_end(&peer, 256 << 20).await.expect("peer recv") });
        iocore::time::timeout(Duration::from_secs(10), sender.ready())
            .await
            .expect("ready() did not complete once the peer reads");
        let mut again = refused;
        loop {
            match sender.post_send(again) {
                Ok(()) => break,
                Err(PostError::WouldExceed(b)) => {
                    again = b;
                    sender.ready().await;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        chunks.push(Bytes::from(pattern(chunks.len() as u64, CHUNK)));
        client.shutdown().await.expect("shutdown");
        let got = reader.await.expect("reader task");
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(got.len(), want.len(), "byte count differs");
        assert!(got == want, "content differs");
    });
}

#[test]
fn posted_data_leaves_before_a_later_send_all() {
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        client.set_post_high_water(4 << 20);
        let reader = iocore::spawn(async move { recv_to_end(&peer, 256 << 20).await.expect("peer recv") });
        let mut want = Vec::new();
        // Owner posts (enough to keep the flusher busy), then send_all.
        for i in 0..64 {
            let c = pattern(i, 16 * 1024);
            want.extend_from_slice(&c);
            client.post_send(c).expect("post_send");
        }
        let b = vec![b'B'; 256 * 1024];
        client.send_all(&b).await.expect("send_all");
        want.extend_from_slice(&b);
        // Another thread posts; after it is done, the owner sends.
        let sender: PostSender = client.sender();
        let posted = thread::spawn(move || {
            let mut v = Vec::new();
            for i in 0..64 {
                let c = pattern(1000 + i, 8 * 1024);
                v.extend_from_slice(&c);
                sender.post_send(c).expect("post_send");
            }
            v
        })
        .join()
        .expect("poster thread");
        want.extend_from_slice(&posted);
        let c = vec![b'C'; 100 * 1024];
        let mut off = 0;
        while off < c.len() {
            off += client.send(&c[off..]).await.expect("send");
        }
        want.extend_from_slice(&c);
        client.post_send(&b"tail"[..]).expect("post tail");
        want.extend_from_slice(b"tail");
        client.shutdown().await.expect("shutdown");
        let got = reader.await.expect("reader task");
        assert_eq!(got.len(), want.len(), "byte count differs");
        if let Some(p) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!(
                "streams differ at byte {p} of {}: posted data and owner sends were reordered",
                want.len()
            );
        }
    });
}

#[test]
fn flusher_started_by_other_thread_posts_keeps_order_with_owner_send_all() {
    // Posts race with the owner's send_all; the owner's bytes must stay contiguous and
    // each poster's bytes must stay in order.
    run(2, LIMIT, || async {
        let (client, peer) = pair().await;
        let reader = iocore::spawn(async move { recv_to_end(&peer, 256 << 20).await.expect("peer recv") });
        let sender = client.sender();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let poster = thread::spawn(move || {
            let mut n = 0u32;
            while !stop2.load(Ordering::SeqCst) && n < 50_000 {
                let mut m = vec![b'p'];
                m.extend_from_slice(&n.to_be_bytes());
                if let Err(PostError::WouldExceed(_)) = sender.post_send(m) {
                    futures::executor::block_on(sender.ready());
                    continue;
                }
                n += 1;
            }
            n
        });
        let block = |i: u32| -> Vec<u8> {
            let mut m = vec![b'o'];
            m.extend_from_slice(&i.to_be_bytes());
            m.extend_from_slice(&[b'o'; 995]);
            m
        };
        for i in 0..200u32 {
            client.send_all(&block(i)).await.expect("send_all");
        }
        stop.store(true, Ordering::SeqCst);
        let posts = loop {
            if poster.is_finished() {
                break poster.join().expect("poster thread");
            }
            iocore::time::sleep(Duration::from_millis(1)).await;
        };
        client.shutdown().await.expect("shutdown");
        let got = reader.await.expect("reader task");
        let (mut p_next, mut o_next, mut off) = (0u32, 0u32, 0usize);
        while off < got.len() {
            let tag = got[off];
            let n = u32::from_be_bytes(got[off + 1..off + 5].try_into().expect("truncated"));
            match tag {
                b'p' => {
                    assert_eq!(n, p_next, "posted message out of order");
                    p_next += 1;
                    off += 5;
                }
                b'o' => {
                    assert_eq!(n, o_next, "owner block out of order");
                    assert!(got[off..off + 1000] == block(n)[..], "owner block {n} was split or corrupted");
                    o_next += 1;
                    off += 1000;
                }
                t => panic!("corrupted stream at byte {off}: tag {t}"),
            }
        }
        assert_eq!(p_next, posts);
        assert_eq!(o_next, 200);
    });
}

/// Closing (graceful `shutdown()`, or dropping the stream) while another thread keeps
/// posting: every post either fails with `Closed` (data handed back) or is delivered
/// before the FIN. Nothing accepted is silently dropped.
fn close_racing_with_posts_loses_nothing_accepted(by_drop: bool) {
    run(2, LIMIT, move || async move {
        for round in 0..600u64 {
            let (client, peer) = pair().await;
            let sender = client.sender();
            let poster = thread::spawn(move || {
                let mut accepted = 0u32;
                for seq in 0..1_000_000u32 {
                    match sender.post_send(seq.to_be_bytes().to_vec()) {
                        Ok(()) => accepted += 1,
                        Err(PostError::Closed(b)) => {
                            assert_eq!(&b[..], &seq.to_be_bytes());
                            return accepted;
                        }
                        // Refused, so not posted: stop here (the close comes anyway).
                        Err(e @ (PostError::WouldExceed(_) | PostError::TooLarge(_))) => {
                            assert!(matches!(e, PostError::WouldExceed(_)), "{e}");
                            return accepted;
                        }
                    }
                    if seq % 64 == 0 {
                        thread::yield_now();
                    }
                }
                accepted
            });
            let reader = iocore::spawn(async move { recv_to_end(&peer, 64 << 20).await.expect("peer recv") });
            iocore::time::sleep(Duration::from_micros(100 + round % 20 * 100)).await;
            if by_drop {
                drop(client);
            } else {
                client.shutdown().await.expect("shutdown");
            }
            let accepted = loop {
                if poster.is_finished() {
                    break poster.join().expect("poster");
                }
                iocore::time::sleep(Duration::from_millis(1)).await;
            };
            let got = reader.await.expect("reader");
            assert_eq!(got.len() % 4, 0);
            let seqs: Vec<u32> = got.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
            for (i, s) in seqs.iter().enumerate() {
                assert_eq!(*s, i as u32, "round {round}: message {i} is {s}");
            }
            assert_eq!(
                seqs.len() as u32,
                accepted,
                "round {round}: {accepted} posts were accepted but only {} delivered before the FIN",
                seqs.len()
            );
        }
    });
}

#[test]
fn shutdown_racing_with_posts_loses_nothing_accepted() {
    close_racing_with_posts_loses_nothing_accepted(false);
}

#[test]
fn drop_racing_with_posts_loses_nothing_accepted() {
    close_racing_with_posts_loses_nothing_accepted(true);
}

/// Posts 40 KiB buffers from inside the only worker's task (so the flusher cannot run in
/// between) until one is refused; returns how many were accepted.
async fn posts_accepted_before_the_mark(stream: iocore::net::TcpStream) -> usize {
    iocore::spawn(async move {
        let mut accepted = 0;
        while accepted < 100 {
            match stream.post_send(vec![0u8; 40 * 1024]) {
                Ok(()) => accepted += 1,
                Err(PostError::WouldExceed(back)) => {
                    assert_eq!(back.len(), 40 * 1024);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        accepted
    })
    .await
    .expect("poster")
}

#[test]
fn the_default_mark_is_64_kib_and_a_builder_sets_a_core_wide_one() {
    assert_eq!(iocore::net::DEFAULT_HIGH_WATER, 64 * 1024);
    // 64 KiB: 40 KiB and 80 KiB are below it when posted; 120 KiB is not.
    run(1, LIMIT, || async {
        let (client, _peer) = pair().await;
        assert_eq!(posts_accepted_before_the_mark(client).await, 2);
    });
    let builder = iocore::IoCore::builder().threads(1).post_high_water(200 * 1024);
    support::net::run_on(builder, LIMIT, || async {
        let (client, _peer) = pair().await;
        // 0, 40, ..., 160 KiB queued are below 200 KiB: five posts, the sixth is refused.
        assert_eq!(posts_accepted_before_the_mark(client).await, 5);
    });
}
