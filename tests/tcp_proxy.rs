//! `net::copy_bidirectional`: a proxy between a client and a server passes data both ways,
//! in order, and passes each half-close on.

mod support;

use iocore::net::{copy_bidirectional, TcpListener, TcpStream};
use std::net::SocketAddr;
use support::net::{listener, recv_to_end, run, LIMIT};

/// A server listener, and a proxy task that forwards its first client to that server;
/// returns the server listener, the proxy's address, and the proxy's result.
async fn proxied() -> (TcpListener, SocketAddr, iocore::JoinHandle<std::io::Result<(u64, u64)>>) {
    let (server, server_addr) = listener().await;
    let (proxy, proxy_addr) = listener().await;
    let proxy_task = iocore::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let upstream = TcpStream::connect(server_addr).await.unwrap();
        copy_bidirectional(&client, &upstream).await
    });
    (server, proxy_addr, proxy_task)
}

/// Spawns an upstream server task on `listener` (TCP or Unix): it accepts one connection,
/// reads the request to its end (the client's half-close, passed on by the proxy), checks
/// it, answers `reply` and closes.
macro_rules! serve_once {
    ($listener:expr, $request:expr, $reply:expr) => {{
        let (listener, request, reply) = ($listener, $request.clone(), $reply.clone());
        iocore::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            assert_eq!(recv_to_end(&s, 1 << 20).await.unwrap(), request, "upstream got a different request");
            s.send_all(&reply).await.unwrap();
            s.shutdown().await.unwrap();
        })
    }};
}

/// A client of the proxy at `proxy_addr`: sends `request`, half-closes, and checks that the
/// reply is `reply` and that the proxy reports both byte counts.
async fn round_trip(
    proxy_addr: SocketAddr,
    request: &[u8],
    reply: &[u8],
    proxy_task: iocore::JoinHandle<std::io::Result<(u64, u64)>>,
) {
    let client = TcpStream::connect(proxy_addr).await.unwrap();
    client.send_all(request).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(recv_to_end(&client, 1 << 20).await.unwrap(), reply, "the client got a different reply");
    let (up, down) = proxy_task.await.unwrap().expect("proxy");
    assert_eq!((up, down), (request.len() as u64, reply.len() as u64));
}

#[test]
fn a_proxy_copies_both_ways_and_passes_half_closes_on() {
    run(2, LIMIT, || async {
        let (server, proxy_addr, proxy_task) = proxied().await;
        let request = support::pattern(1, 300_000);
        let reply = support::pattern(2, 500_000);
        let server_task = serve_once!(server, request, reply);
        round_trip(proxy_addr, &request, &reply, proxy_task).await;
        server_task.await.unwrap();
    });
}

#[test]
fn a_proxy_reports_a_reset_naming_the_peer() {
    run(2, LIMIT, || async {
        let (server, proxy_addr, proxy_task) = proxied().await;
        let server_addr = server.local_addr().unwrap();
        let server_task = iocore::spawn(async move {
            let (s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 4];
            let _ = s.recv(&mut buf).await;
            s.abort();
        });
        let client = TcpStream::connect(proxy_addr).await.unwrap();
        client.send_all(b"hello").await.unwrap();
        server_task.await.unwrap();
        let err = proxy_task.await.unwrap().expect_err("a reset must be an error");
        assert!(err.to_string().contains(&server_addr.to_string()), "{err}");
        drop(client);
    });
}

/// A TCP front for a service on a Unix socket: `copy_bidirectional` takes any mix of TCP
/// and Unix streams.
#[test]
fn a_proxy_between_tcp_and_a_unix_socket() {
    run(2, LIMIT, || async {
        let dir = std::env::temp_dir().join(format!("iocore-proxy-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("upstream.sock");
        let _ = std::fs::remove_file(&path);
        let upstream_listener = iocore::net::UnixListener::bind(&path).expect("bind unix");
        let (proxy, proxy_addr) = listener().await;
        let upstream_path = path.clone();
        let proxy_task = iocore::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = iocore::net::UnixStream::connect(&upstream_path).await.unwrap();
            copy_bidirectional(&client, &upstream).await
        });
        let request = support::pattern(3, 200_000);
        let reply = support::pattern(4, 400_000);
        let server_task = serve_once!(upstream_listener, request, reply);
        round_trip(proxy_addr, &request, &reply, proxy_task).await;
        server_task.await.unwrap();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
    });
}

/// With an idle timeout, a proxied connection on which nothing moves either way ends with
/// `TimedOut`; one that keeps moving data is copied to its end as without it.
#[test]
fn a_proxy_with_an_idle_timeout_ends_silent_connections_only() {
    use iocore::net::copy_bidirectional_idle_timeout;
    use std::time::Duration;
    run(2, LIMIT, || async {
        // Silent: the client and the server connect and say nothing.
        let (server, server_addr) = listener().await;
        let (proxy, proxy_addr) = listener().await;
        let silent = iocore::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = TcpStream::connect(server_addr).await.unwrap();
            copy_bidirectional_idle_timeout(&client, &upstream, Duration::from_millis(50)).await
        });
        let client = TcpStream::connect(proxy_addr).await.unwrap();
        let (s, _) = server.accept().await.unwrap();
        let err = silent.await.unwrap().expect_err("a silent connection must time out");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("nothing moved"), "{err}");
        drop((client, s));

        // Busy: a request and a reply, with a timeout far longer than any step takes.
        let (server, server_addr) = listener().await;
        let (proxy, proxy_addr) = listener().await;
        let busy = iocore::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = TcpStream::connect(server_addr).await.unwrap();
            copy_bidirectional_idle_timeout(&client, &upstream, LIMIT).await
        });
        let request = support::pattern(5, 300_000);
        let reply = support::pattern(6, 300_000);
        let server_task = serve_once!(server, request, reply);
        round_trip(proxy_addr, &request, &reply, busy).await;
        server_task.await.unwrap();
    });
}
