//! `TcpListener`: ephemeral ports, `AddrInUse`, several listeners on one core, 500
//! concurrent clients, and `incoming()`. (`accept` at `EMFILE` and its recovery are
//! tested in `faults.rs`, with `connect` and `bind` at the fd limit.)

mod support;

use futures::StreamExt;
use iocore::net::{ListenOptions, TcpListener, TcpStream};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::net::{listener, recv_exact, run, LIMIT};
use support::stress::raise_nofile;

#[test]
fn bind_port_zero_gets_a_real_port() {
    run(2, LIMIT, || async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("local_addr");
        assert_ne!(a.port(), 0, "local_addr of a port-0 bind still says port 0");
        assert_eq!(a.ip(), std::net::Ipv4Addr::LOCALHOST);
        // The port is really listening.
        let accept = iocore::spawn(async move { l.accept().await.map(|(_, p)| p) });
        let c = TcpStream::connect(a).await.expect("connect to the reported port");
        assert_eq!(accept.await.expect("accept task").expect("accept"), c.local_addr().unwrap());
        // Two port-0 binds get different ports.
        let (_l1, a1) = listener().await;
        let (_l2, a2) = listener().await;
        assert_ne!(a1.port(), a2.port());
    });
}

#[test]
fn second_bind_to_a_used_port_is_addr_in_use() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let e = TcpListener::bind(addr).await.expect_err("second bind to a listening port");
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "error does not name the address: {e}");
        let e = TcpListener::bind_with(addr, ListenOptions::new().backlog(16)).await.expect_err("bind_with");
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e:?}");
        // The first listener is unaffected.
        let accept = iocore::spawn(async move { l.accept().await.map(|_| ()) });
        let _c = TcpStream::connect(addr).await.expect("connect");
        accept.await.expect("accept task").expect("accept");
    });
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    run(2, LIMIT, || async {
        let opts = ListenOptions::new().reuse_port(true);
        let l1 = TcpListener::bind_with("127.0.0.1:0", opts.clone()).await.expect("bind 1");
        let addr = l1.local_addr().unwrap();
        let l2 = TcpListener::bind_with(addr, opts).await.expect("bind 2 with reuse_port");
        assert_eq!(l2.local_addr().unwrap(), addr);
        const N: usize = 40;
        let count = Arc::new(AtomicUsize::new(0));
        let acceptors: Vec<_> = [l1, l2]
            .into_iter()
            .map(|l| {
                let count = count.clone();
                iocore::spawn(async move {
                    loop {
                        let (s, _) = l.accept().await.expect("accept");
                        count.fetch_add(1, Ordering::SeqCst);
                        s.send_all(b"!").await.expect("send");
                    }
                })
            })
            .collect();
        for _ in 0..N {
            let c = TcpStream::connect(addr).await.expect("connect");
            let mut b = [0u8; 1];
            recv_exact(&c, &mut b).await.expect("recv");
        }
        assert_eq!(count.load(Ordering::SeqCst), N);
        for a in acceptors {
            a.abort();
        }
    });
}

#[test]
fn two_listeners_on_one_core_both_work() {
    run(1, LIMIT, || async {
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for tag in [b'a', b'b'] {
            let (l, addr) = listener().await;
            addrs.push(addr);
            servers.push(iocore::spawn(async move {
                for _ in 0..20 {
                    let (s, _) = l.accept().await.expect("accept");
                    iocore::spawn(async move {
                        let mut buf = [0u8; 16];
                        let n = s.recv(&mut buf).await.expect("recv");
                        let mut reply = vec![tag];
                        reply.extend_from_slice(&buf[..n]);
                        s.send_all(&reply).await.expect("send");
                    });
                }
            }));
        }
        // Interleave clients of both listeners, several at once.
        let clients: Vec<_> = (0..40usize)
            .map(|i| {
                let addr = addrs[i % 2];
                iocore::spawn(async move {
                    let c = TcpStream::connect(addr).await.expect("connect");
                    c.send_all(&[i as u8]).await.expect("send");
                    let mut r = [0u8; 2];
                    recv_exact(&c, &mut r).await.expect("recv");
                    assert_eq!(r, [[b'a', b'b'][i % 2], i as u8]);
                })
            })
            .collect();
        for c in clients {
            c.await.expect("client");
        }
        for s in servers {
            s.await.expect("server");
        }
    });
}

#[test]
fn incoming_yields_connections() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let server = iocore::spawn(async move {
            let mut incoming = l.incoming();
            for i in 0..10u8 {
                let s = incoming.next().await.expect("incoming never ends").expect("incoming error");
                s.send_all(&[i]).await.expect("send");
            }
        });
        for i in 0..10u8 {
            let c = TcpStream::connect(addr).await.expect("connect");
            let mut b = [0u8; 1];
            recv_exact(&c, &mut b).await.expect("recv");
            assert_eq!(b[0], i);
        }
        server.await.expect("server");
    });
}

#[test]
fn five_hundred_concurrent_clients_are_all_accepted() {
    const CLIENTS: usize = 500;
    // Both ends live in this process: make sure the fd limit is not the bottleneck.
    raise_nofile(4096);
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let server = iocore::spawn(async move {
            // Keep every accepted stream open until all clients are in, so they are
            // really concurrent.
            let mut held = Vec::with_capacity(CLIENTS);
            while held.len() < CLIENTS {
                let (s, _) = l.accept().await.expect("accept");
                held.push(s);
            }
            held.len()
        });
        let connected = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let connected = connected.clone();
                iocore::spawn(async move {
                    let c = TcpStream::connect(addr).await.expect("connect");
                    connected.fetch_add(1, Ordering::SeqCst);
                    // Wait for the server to let go: EOF.
                    let mut b = [0u8; 1];
                    assert_eq!(c.recv(&mut b).await.expect("recv"), 0);
                })
            })
            .collect();
        let accepted = server.await.expect("server task");
        assert_eq!(accepted, CLIENTS);
        for c in clients {
            c.await.expect("client task");
        }
        assert_eq!(connected.load(Ordering::SeqCst), CLIENTS);
    });
}

/// Several tasks, each with an `incoming()` stream of its own on one listener, are each
/// woken: two connections are accepted by the two tasks (trial programs: one task was
/// left waiting with a connection in the backlog, 10 of 10 rounds; the stream used the
/// listener's one waker slot).
#[test]
fn incoming_streams_of_several_tasks_are_each_woken() {
    run(2, LIMIT, || async {
        for round in 0..10 {
            let (l, addr) = listener().await;
            let l = Arc::new(l);
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let l = l.clone();
                    iocore::spawn(
                        async move { l.incoming().next().await.expect("a stream never ends").map(drop) },
                    )
                })
                .collect();
            // Both wait before the connections come.
            iocore::time::sleep(std::time::Duration::from_millis(20)).await;
            let _a = TcpStream::connect(addr).await.expect("connect");
            let _b = TcpStream::connect(addr).await.expect("connect");
            for t in tasks {
                iocore::time::timeout(support::HANG, t)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: an incoming() stream was never woken"))
                    .unwrap()
                    .expect("accept");
            }
        }
    });
}
