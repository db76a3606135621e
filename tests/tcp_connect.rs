//! `connect` errors and `ConnectOptions`: refused ports, unknown hosts, timeouts and the
//! reconnect delay.

mod support;

use iocore::net::{ConnectOptions, ListenOptions, TcpListener, TcpStream};
use std::io::ErrorKind;
use std::time::{Duration, Instant};
use support::net::{listener, pair, recv_exact, run, LIMIT};

/// A loopback port with nothing listening on it.
async fn closed_port() -> std::net::SocketAddr {
    let (l, addr) = listener().await;
    drop(l);
    addr
}

#[test]
fn closed_port_is_connection_refused_naming_the_address() {
    run(2, LIMIT, || async {
        let addr = closed_port().await;
        let e = TcpStream::connect(addr).await.expect_err("connect to a closed port");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{}", addr.port())),
            "error does not name the address: {text}"
        );
        // The same through a "host:port" string and with options.
        let e = TcpStream::connect(format!("127.0.0.1:{}", addr.port())).await.expect_err("connect str");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{}", addr.port())), "{e}");
        let e = TcpStream::connect_with(
            addr,
            ConnectOptions::new().timeout(Duration::from_secs(5)).nodelay(true),
        )
        .await
        .expect_err("connect_with");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{}", addr.port())), "{e}");
    });
}

#[test]
fn every_address_is_tried_and_named() {
    run(2, LIMIT, || async {
        let (l, good) = listener().await;
        let bad = closed_port().await;
        // The first address is refused; the second works.
        let accept = iocore::spawn(async move { l.accept().await.map(|_| ()) });
        let s = TcpStream::connect(vec![bad, good]).await.expect("second address should be used");
        assert_eq!(s.peer_addr().unwrap(), good);
        accept.await.expect("accept task").expect("accept");
        // All refused: the error names both.
        let bad2 = closed_port().await;
        let e = TcpStream::connect(vec![bad, bad2]).await.expect_err("all refused");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&bad.to_string()) && text.contains(&bad2.to_string()), "{text}");
        // No address at all.
        let e = TcpStream::connect(Vec::<std::net::SocketAddr>::new()).await.expect_err("no address");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    });
}

#[test]
fn unknown_host_names_the_host() {
    // Generous: without a reachable DNS server the system resolver may take a while.
    run(2, Duration::from_secs(60), || async {
        let e = TcpStream::connect("no-such-host.invalid:80").await.expect_err("resolve an invalid name");
        let text = e.to_string();
        assert!(text.contains("no-such-host.invalid"), "error does not name the host: {text}");
        let e = TcpStream::connect(("no-such-host.invalid", 80)).await.expect_err("resolve (host, port)");
        assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
        // A malformed target (no port) is an error too, not a panic.
        let e = TcpStream::connect("no-port-here").await.expect_err("no port");
        assert!(e.to_string().contains("no-port-here"), "{e}");
    });
}

#[test]
fn timeout_fires_with_timed_out_when_the_backlog_is_full() {
    run(2, LIMIT, || async {
        // A listener that never accepts, with a backlog of 1: once its queue is full, the
        // kernel drops further SYNs and a connect cannot complete.
        let l = TcpListener::bind_with("127.0.0.1:0", ListenOptions::new().backlog(1)).await.expect("bind");
        let addr = l.local_addr().unwrap();
        // Fill the backlog: connects succeed at once until it is full; the first that
        // does not complete within a generous second shows that it is.
        let mut held = Vec::new();
        let mut full = false;
        for _ in 0..64 {
            match TcpStream::connect_with(addr, ConnectOptions::new().timeout(Duration::from_secs(1))).await {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
                    full = true;
                    break;
                }
            }
        }
        assert!(full, "64 connects to a listener with backlog 1 that never accepts all succeeded");
        assert!(!held.is_empty(), "not even the first connection fit in the backlog");
        // Now the timeout under test.
        let start = Instant::now();
        let e = TcpStream::connect_with(addr, ConnectOptions::new().timeout(Duration::from_millis(100)))
            .await
            .expect_err("connect to a full backlog");
        let elapsed = start.elapsed();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
        assert!(elapsed >= Duration::from_millis(100), "timed out after only {elapsed:?}");
        assert!(e.to_string().contains(&addr.to_string()), "error does not name the address: {e}");
        drop(l);
    });
}

#[test]
fn zero_timeout_never_hangs() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        // With a zero timeout the connect may still win if it completes on its first poll;
        // otherwise it must fail with TimedOut.
        for _ in 0..20 {
            match TcpStream::connect_with(addr, ConnectOptions::new().timeout(Duration::ZERO)).await {
                Ok(s) => drop(s),
                Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}"),
            }
        }
        // The same through name resolution (a resolver thread).
        for _ in 0..20 {
            match TcpStream::connect_with(
                format!("localhost:{}", addr.port()),
                ConnectOptions::new().timeout(Duration::from_nanos(1)),
            )
            .await
            {
                Ok(s) => drop(s),
                Err(e) => assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}"),
            }
        }
        drop(l);
    });
}

#[test]
fn delay_is_respected() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let accepts = iocore::spawn(async move {
            for _ in 0..2 {
                l.accept().await.expect("accept");
            }
        });
        let start = Instant::now();
        let s = TcpStream::connect_with(addr, ConnectOptions::new().delay(Duration::from_millis(50)))
            .await
            .expect("connect with delay");
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(50), "connected after {elapsed:?}, before the 50 ms delay");
        drop(s);
        // A delay before a refused connect: the error comes after the delay.
        let bad = closed_port().await;
        let start = Instant::now();
        let e = TcpStream::connect_with(bad, ConnectOptions::new().delay(Duration::from_millis(30)))
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Delay with other options.
        let start = Instant::now();
        let s = TcpStream::connect_with(
            addr,
            ConnectOptions::new()
                .delay(Duration::from_millis(20))
                .timeout(Duration::from_secs(5))
                .nodelay(true)
                .keepalive(Duration::from_secs(60)),
        )
        .await
        .expect("connect with options");
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(s.nodelay().expect("nodelay"), "nodelay option not applied");
        accepts.await.expect("accept task");
    });
}

#[test]
fn preconfigured_socket_is_used() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let accept = iocore::spawn(async move { l.accept().await.expect("accept").1 });
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        sock.bind(&local.into()).expect("bind");
        let bound = sock.local_addr().unwrap().as_socket().unwrap();
        let s = TcpStream::connect_with(addr, ConnectOptions::new().socket(sock)).await.expect("connect");
        assert_eq!(s.local_addr().unwrap(), bound, "the given socket was not used");
        assert_eq!(accept.await.expect("accept task"), bound);
    });
}

#[test]
fn socket_options_round_trip() {
    run(2, LIMIT, || async {
        let (c, s) = pair().await;
        assert_eq!(c.peer_addr().unwrap(), s.local_addr().unwrap());
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
        c.set_nodelay(true).expect("set_nodelay");
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).expect("set_nodelay");
        assert!(!c.nodelay().unwrap());
        c.set_keepalive(Some(Duration::from_secs(30))).expect("set_keepalive");
        c.set_keepalive(None).expect("disable keepalive");
        c.set_linger(Some(Duration::from_secs(1))).expect("set_linger");
        assert_eq!(c.linger().unwrap(), Some(Duration::from_secs(1)));
        c.set_linger(None).expect("clear linger");
        assert_eq!(c.linger().unwrap(), None);
        c.set_ttl(42).expect("set_ttl");
        assert_eq!(c.ttl().unwrap(), 42);
        c.set_recv_buffer_size(64 * 1024).expect("set_recv_buffer_size");
        assert!(c.recv_buffer_size().unwrap() >= 64 * 1024);
        c.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
        assert!(c.send_buffer_size().unwrap() >= 64 * 1024);
        // Still a working connection.
        c.send_all(b"ok").await.expect("send");
        let mut b = [0u8; 2];
        recv_exact(&s, &mut b).await.expect("recv");
        assert_eq!(&b, b"ok");
        assert!(format!("{c:?}").contains(&c.local_addr().unwrap().to_string()));
    });
}

#[test]
fn from_std_streams_and_listeners() {
    run(2, LIMIT, || async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("std bind");
        let addr = std_listener.local_addr().unwrap();
        let l = TcpListener::from_std(std_listener).expect("TcpListener::from_std");
        assert_eq!(l.local_addr().unwrap(), addr);
        let accept = iocore::spawn(async move { l.accept().await.expect("accept").0 });
        let std_client = std::net::TcpStream::connect(addr).expect("std connect");
        let c = TcpStream::from_std(std_client).expect("TcpStream::from_std");
        let s = accept.await.expect("accept task");
        c.send_all(b"from std").await.expect("send");
        let mut b = [0u8; 8];
        recv_exact(&s, &mut b).await.expect("recv");
        assert_eq!(&b, b"from std");
        // A stream wrapped from std waits (does not block the worker) when empty.
        let r = iocore::time::timeout(Duration::from_millis(20), c.recv(&mut b)).await;
        assert!(r.is_err(), "recv on an idle from_std stream returned {r:?}");
    });
}
