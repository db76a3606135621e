//! Bad input: malformed and unresolvable addresses, out-of-range ports, zero-length and
//! huge buffers, operations after close/shutdown, and invalid builder/option values. Each
//! yields an error that names what failed (or a documented harmless result), never a
//! panic or a hang.

mod support;

use bytes::Bytes;
use iocore::net::{reunite, ConnectOptions, ListenOptions, PostError, TcpListener, TcpStream, ToSocketAddrs};
use iocore::IoCore;
use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::time::Duration;
use support::net::{listener, pair, recv_exact, recv_to_end, run, LIMIT};
use support::pattern;

/// Resolution of these can only fail; bounded in case a resolver is slow to say so.
const RESOLVE_LIMIT: Duration = Duration::from_secs(20);

async fn connect_err(addr: impl ToSocketAddrs) -> std::io::Error {
    TcpStream::connect_with(addr, ConnectOptions::new().timeout(RESOLVE_LIMIT))
        .await
        .expect_err("connect to a bad address succeeded")
}

async fn bind_err(addr: impl ToSocketAddrs) -> std::io::Error {
    iocore::time::timeout(RESOLVE_LIMIT + Duration::from_secs(5), TcpListener::bind(addr))
        .await
        .expect("bind to a bad address hangs")
        .expect_err("bind to a bad address succeeded")
}

#[test]
fn invalid_addresses_are_errors_naming_the_input() {
    run(2, LIMIT, || async {
        for bad in
            ["not an address", "127.0.0.1:99999", "[::1", "", "127.0.0.1:", "localhost:-1", "no-port-here"]
        {
            let e = connect_err(bad).await;
            eprintln!("[bad_input] connect {bad:?}: {:?}: {e}", e.kind());
            assert!(e.to_string().contains(bad), "connect error does not name {bad:?}: {e}");
            let e = connect_err(bad.to_string()).await;
            assert!(e.to_string().contains(bad), "connect (String) error does not name {bad:?}: {e}");
            let e = bind_err(bad).await;
            eprintln!("[bad_input] bind {bad:?}: {:?}: {e}", e.kind());
            assert!(e.to_string().contains(bad), "bind error does not name {bad:?}: {e}");
        }
        // The empty string names nothing; it must still say what failed.
        let e = connect_err("").await;
        assert!(e.to_string().starts_with("resolve"), "{e}");
        // An empty address list.
        let e = connect_err(Vec::<std::net::SocketAddr>::new()).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        assert!(e.to_string().contains("no socket address"), "{e}");
        let e = bind_err(Vec::<std::net::SocketAddr>::new()).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    });
}

#[test]
fn out_of_range_and_unusable_ports_are_errors_naming_the_address() {
    run(2, LIMIT, || async {
        for bad in ["127.0.0.1:65536", "127.0.0.1:100000", "127.0.0.1:-80", "localhost:65536"] {
            let e = connect_err(bad).await;
            eprintln!("[bad_input] connect {bad:?}: {:?}: {e}", e.kind());
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e:?}");
            assert!(e.to_string().contains(bad), "{e}");
            let e = bind_err(bad).await;
            assert!(e.to_string().contains(bad), "{e}");
        }
        // Port 0 is not a destination.
        let e = connect_err("127.0.0.1:0").await;
        eprintln!("[bad_input] connect 127.0.0.1:0: {:?}: {e}", e.kind());
        assert!(e.to_string().contains("127.0.0.1:0"), "{e}");
        let e = connect_err(("127.0.0.1", 0)).await;
        assert!(e.to_string().contains("127.0.0.1:0"), "{e}");
        // An address that is not local cannot be bound (nothing is sent).
        let e = bind_err("192.0.2.1:0").await;
        eprintln!("[bad_input] bind 192.0.2.1:0: {:?}: {e}", e.kind());
        assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e:?}");
        assert!(e.to_string().contains("192.0.2.1:0"), "{e}");
        // A port in use.
        let (_l, addr) = listener().await;
        let e = bind_err(addr).await;
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    });
}

#[test]
fn unresolvable_names_are_errors_naming_the_host() {
    run(2, Duration::from_secs(90), || async {
        let e = connect_err("no-such-host.invalid:80").await;
        eprintln!("[bad_input] connect no-such-host.invalid:80: {:?}: {e}", e.kind());
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        let e = connect_err(("no-such-host.invalid", 80)).await;
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        let e = connect_err(("no-such-host.invalid".to_string(), 443)).await;
        assert!(e.to_string().contains("no-such-host.invalid:443"), "{e}");
        let e = bind_err("no-such-host.invalid:0").await;
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    });
}

/// `f`, which must not hang.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    iocore::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what} with an empty buffer hangs"))
}

#[test]
fn zero_length_buffers_are_harmless() {
    run(2, LIMIT, || async {
        let (c, p) = pair().await;
        let sender = c.sender();
        assert_eq!(bounded("send", c.send(&[])).await.unwrap(), 0);
        bounded("send_all", c.send_all(&[])).await.unwrap();
        assert_eq!(bounded("send_vectored", c.send_vectored(&[])).await.unwrap(), 0);
        let empties = [IoSlice::new(&[]), IoSlice::new(&[])];
        assert_eq!(bounded("send_vectored", c.send_vectored(&empties)).await.unwrap(), 0);
        let mut none: [IoSliceMut<'_>; 0] = [];
        assert_eq!(bounded("recv_vectored", c.recv_vectored(&mut none)).await.unwrap(), 0);
        assert_eq!(c.try_send(&[]).expect("try_send"), 0);
        c.post_send(Vec::new()).expect("post_send of nothing");
        c.post_send(Bytes::new()).expect("post_send of nothing");
        sender.post_send(Bytes::new()).expect("PostSender::post_send of nothing");
        bounded("flush", c.flush()).await.unwrap();
        assert_eq!(sender.queued_bytes(), 0);
        // With data waiting, an empty recv takes none of it.
        p.send_all(b"ping").await.unwrap();
        iocore::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(bounded("recv", c.recv(&mut [])).await.unwrap(), 0);
        assert_eq!(c.try_recv(&mut []).expect("try_recv"), 0);
        let mut b = [0u8; 4];
        recv_exact(&c, &mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        // Nothing stray was sent, and the connection is not at EOF.
        c.send_all(b"after").await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(recv_to_end(&p, 1024).await.unwrap(), b"after");
        // An empty recv at EOF is 0 as well.
        drop(p);
        assert_eq!(bounded("recv", c.recv(&mut [])).await.unwrap(), 0);
    });
}

/// `recv` documents `Ok(0)` for an empty buffer. On an idle socket it must return at once,
/// not wait for data. (Linux returns 0 from `read(fd, buf, 0)` before looking at the socket;
/// gVisor returns `EAGAIN`, so a runtime that relies on the kernel waits for the next
/// readable edge: this test hangs there until its 5 s bound.)
#[test]
fn recv_with_an_empty_buffer_on_an_idle_socket_returns_at_once() {
    run(2, LIMIT, || async {
        let (c, p) = pair().await;
        let r = iocore::time::timeout(Duration::from_secs(5), c.recv(&mut [])).await;
        assert!(matches!(r, Ok(Ok(0))), "recv(&mut []) on an idle socket: {r:?} (expected Ok(0) at once)");
        let r = c.try_recv(&mut []);
        assert!(matches!(r, Ok(0)), "try_recv(&mut []) on an idle socket: {r:?} (expected Ok(0))");
        // The connection is unaffected.
        p.send_all(b"ok").await.unwrap();
        let mut b = [0u8; 2];
        recv_exact(&c, &mut b).await.unwrap();
        assert_eq!(&b, b"ok");
    });
}

#[test]
fn huge_vectored_send_is_a_short_write_or_an_error() {
    run(2, LIMIT, || async {
        const BUF: usize = 64 << 20;
        let (c, p) = pair().await;
        let buf = pattern(9, BUF);
        // More than 2 GiB in one call (40 x 64 MiB), and more slices than IOV_MAX (2000).
        for slices in [40usize, 2000] {
            let total = slices as u128 * BUF as u128;
            let iov: Vec<IoSlice<'_>> = (0..slices).map(|_| IoSlice::new(&buf)).collect();
            let r = iocore::time::timeout(Duration::from_secs(10), c.send_vectored(&iov))
                .await
                .expect("a huge send_vectored hangs");
            eprintln!("[bad_input] send_vectored of {slices} x 64 MiB ({total} bytes): {r:?}");
            match r {
                Ok(n) => {
                    assert!((n as u128) <= total, "wrote {n} of {total} bytes");
                    assert!(n > 0, "nothing written to an empty socket");
                    // What was written is the start of the buffers, in order.
                    let mut got = vec![0u8; n];
                    recv_exact(&p, &mut got).await.expect("peer recv");
                    for (i, chunk) in got.chunks(BUF).enumerate() {
                        assert!(chunk == &buf[..chunk.len()], "slice {i}: content differs");
                    }
                }
                Err(e) => assert!(e.to_string().contains("send to"), "{e}"),
            }
        }
        c.shutdown().await.unwrap();
        assert_eq!(recv_to_end(&p, 1 << 30).await.unwrap().len(), 0, "stray bytes after the short writes");
    });
}

#[test]
fn operations_after_close_and_shutdown_are_errors() {
    run(2, LIMIT, || async {
        // After our shutdown.
        let (c, p) = pair().await;
        let peer = c.peer_addr().unwrap();
        c.shutdown().await.expect("first shutdown");
        c.shutdown().await.expect("second shutdown is harmless");
        let e = c.send(b"x").await.expect_err("send after shutdown");
        assert_eq!(e.kind(), ErrorKind::NotConnected, "{e:?}");
        assert!(e.to_string().contains(&peer.to_string()), "send error does not name the peer: {e}");
        assert!(c.send_all(b"x").await.is_err());
        assert!(c.try_send(b"x").is_err());
        let data = Bytes::from_static(b"after shutdown");
        match c.post_send(data.clone()) {
            Err(e @ PostError::Closed(_)) => {
                assert!(e.to_string().contains("14 bytes") && e.to_string().contains("closed"), "{e}");
                assert_eq!(e.into_inner(), data, "Closed handed back other bytes");
            }
            other => panic!("post_send after shutdown: {other:?}"),
        }
        c.flush().await.expect("flush after shutdown has nothing to do");
        drop(p);
        let mut b = [0u8; 4];
        for _ in 0..3 {
            assert_eq!(c.recv(&mut b).await.expect("recv after the peer closed"), 0);
        }

        // After abort: posts through a sender are refused at once, with the bytes back.
        let (c, p) = pair().await;
        let sender = c.sender();
        c.abort();
        assert!(sender.is_closed());
        let data = Bytes::from(vec![7u8; 1000]);
        match sender.post_send(data.clone()) {
            Err(PostError::Closed(b)) => assert_eq!(b, data),
            other => panic!("post_send after abort: {other:?}"),
        }
        assert!(sender.queued_bytes() == 0);
        let r = recv_to_end(&p, 1024).await;
        assert!(r.is_err() || r.as_ref().is_ok_and(|v| v.is_empty()), "{r:?}");

        // After the stream is dropped: refused once its flusher is done, bytes back.
        let (c, p) = pair().await;
        let sender = c.sender();
        drop(c);
        iocore::time::timeout(Duration::from_secs(10), sender.closed()).await.expect("closed() hangs");
        let data = Bytes::from_static(b"late");
        match sender.post_send(data.clone()) {
            Err(PostError::Closed(b)) => assert_eq!(b, data),
            other => panic!("post_send after drop: {other:?}"),
        }
        assert_eq!(recv_to_end(&p, 1024).await.unwrap(), b"");

        // After the peer reset: errors, then shutdown is still harmless.
        let (c, p) = pair().await;
        p.abort();
        let mut b = [0u8; 4];
        let r = iocore::time::timeout(Duration::from_secs(5), c.recv(&mut b)).await.expect("recv hangs");
        assert!(r.is_err(), "recv after the peer's reset: {r:?}");
        let mut failed = false;
        for _ in 0..20 {
            if c.send_all(b"x").await.is_err() {
                failed = true;
                break;
            }
            iocore::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(failed, "sends keep succeeding after the peer's reset");
        let _ = iocore::time::timeout(Duration::from_secs(5), c.shutdown()).await.expect("shutdown hangs");
        let _ = iocore::time::timeout(Duration::from_secs(5), c.shutdown()).await.expect("shutdown hangs");
        let _ = c.flush().await;

        // Halves: one dropped, the other works; shutting the send half down keeps recv.
        let (c, p) = pair().await;
        let (r, w) = c.into_split();
        drop(r);
        w.send_all(b"half").await.expect("send on the remaining half");
        w.shutdown().await.unwrap();
        w.shutdown().await.unwrap();
        assert!(w.send(b"x").await.is_err());
        assert_eq!(recv_to_end(&p, 64).await.unwrap(), b"half");
        // Mismatched halves are refused, and given back.
        let (c1, _p1) = pair().await;
        let (c2, _p2) = pair().await;
        let (r1, _w1) = c1.into_split();
        let (_r2, w2) = c2.into_split();
        let e = reunite(r1, w2).expect_err("halves of two streams");
        assert!(e.to_string().contains("not from the same socket"), "{e}");
    });
}

/// `Builder::build` documents errors for bad input; a thread-name prefix with a NUL byte
/// cannot name an OS thread, and must give an error (`InvalidInput`), not a panic from
/// inside `std::thread::Builder::spawn`.
#[test]
fn builder_thread_name_with_a_nul_byte_is_an_error_not_a_panic() {
    let r = std::panic::catch_unwind(|| IoCore::builder().threads(1).thread_name("bad\0name").build());
    match r {
        Ok(Ok(core)) => drop(core),
        Ok(Err(e)) => eprintln!("[bad_input] thread_name with NUL: {:?}: {e}", e.kind()),
        Err(p) => panic!(
            "IoCore::builder().thread_name(\"bad\\0name\").build() panicked: {:?}",
            p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned())
        ),
    }
}

#[test]
fn builder_and_option_errors_are_clear() {
    for n in [0usize, 1025, usize::MAX] {
        let e = IoCore::builder().threads(n).build().expect_err("bad thread count");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
        let text = e.to_string();
        assert!(text.contains("thread count") && text.contains(&n.to_string()), "{text}");
    }
    // An empty thread-name prefix is fine.
    let core = IoCore::builder().threads(1).thread_name("").build().expect("empty thread name");
    assert_eq!(core.block_on(core.spawn(async { 5 })).unwrap(), 5);
    drop(core);

    run(2, LIMIT, || async {
        // Extreme backlogs work.
        for backlog in [0u32, u32::MAX] {
            let l =
                TcpListener::bind_with("127.0.0.1:0", ListenOptions::new().backlog(backlog)).await.unwrap();
            let a = l.local_addr().unwrap();
            let (c, s) = futures::join!(TcpStream::connect(a), l.accept());
            c.expect("connect");
            s.expect("accept");
        }
        let (c, p) = pair().await;
        // Out-of-range option values: an error or a clamped value, never a panic.
        for ttl in [0u32, 256, u32::MAX] {
            let r = c.set_ttl(ttl);
            eprintln!("[bad_input] set_ttl({ttl}): {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().starts_with("set_ttl: "), "option error must name the option: {e}");
            }
        }
        eprintln!("[bad_input] set_recv_buffer_size(usize::MAX): {:?}", c.set_recv_buffer_size(usize::MAX));
        eprintln!("[bad_input] set_send_buffer_size(usize::MAX): {:?}", c.set_send_buffer_size(usize::MAX));
        eprintln!("[bad_input] set_keepalive(Duration::MAX): {:?}", c.set_keepalive(Some(Duration::MAX)));
        eprintln!("[bad_input] set_linger(Duration::MAX): {:?}", c.set_linger(Some(Duration::MAX)));
        c.set_linger(None).unwrap();
        // A high-water mark of 0 is treated as 1: a buffer on an empty queue still goes.
        c.set_post_high_water(0);
        c.post_send(&b"first"[..]).expect("one buffer on an empty queue");
        c.flush().await.unwrap();
        c.set_post_high_water(iocore::net::DEFAULT_HIGH_WATER);
        c.send_all(b"!").await.unwrap();
        let mut b = [0u8; 6];
        recv_exact(&p, &mut b).await.unwrap();
        assert_eq!(&b, b"first!");

        // Extreme durations: no overflow, no hang.
        let r = iocore::time::timeout(Duration::from_millis(10), iocore::time::sleep(Duration::MAX)).await;
        assert!(r.is_err(), "sleep(Duration::MAX) finished");
        assert_eq!(iocore::time::timeout(Duration::MAX, async { 3 }).await, Ok(3));
        let mut iv = iocore::time::interval(Duration::ZERO);
        for _ in 0..100 {
            iv.tick().await;
        }
        // A period too long for `Instant`: the first tick at once, the next never.
        let mut iv = iocore::time::interval(Duration::MAX);
        iv.tick().await;
        let r = iocore::time::timeout(Duration::from_millis(10), iv.tick()).await;
        assert!(r.is_err(), "interval(Duration::MAX) ticked twice");
        iv.reset();
        let r = iocore::time::timeout(Duration::from_millis(10), iv.tick()).await;
        assert!(r.is_err(), "interval(Duration::MAX) ticked after a reset");
        let far = iocore::Handle::current().spawn_after(Duration::MAX, async {});
        far.abort();
        assert!(far.await.expect_err("aborted").is_cancelled());
        let (l, a) = listener().await;
        let r = iocore::time::timeout(
            Duration::from_millis(10),
            TcpStream::connect_with(a, ConnectOptions::new().delay(Duration::MAX)),
        )
        .await;
        assert!(r.is_err(), "connect with an endless delay finished");
        // A datagram socket given to connect with is an error, not a "stream".
        let udp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        let e = TcpStream::connect_with(a, ConnectOptions::new().socket(udp)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("SOCK_STREAM"), "{e}");
        // A keepalive time Linux refuses names the option, not just the connect.
        for idle in [Duration::ZERO, Duration::from_secs(40_000)] {
            let e = TcpStream::connect_with(a, ConnectOptions::new().keepalive(idle)).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("ConnectOptions::keepalive"), "{e}");
        }
        drop(l);
    });
}
