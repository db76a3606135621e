//! hyper 1.x on iocore: the `http` example's server (`examples/http/server.rs`) in-process,
//! driven by a hyper HTTP/1.1 client that also runs on iocore. Needs the `tokio` feature
//! (hyper's IO goes through `hyper_util::rt::TokioIo`):
//! `cargo test --features tokio --test http_hyper`.
#![cfg(feature = "tokio")]

#[path = "../examples/shared/log_limit.rs"]
mod log_limit;
#[path = "../examples/http/server.rs"]
mod server;
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::rt::{Executor, Timer};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use server::{IoCoreExecutor, IoCoreTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{core, pattern};

const LIMIT: Duration = Duration::from_secs(30);

/// A core serving the example's service on an ephemeral port, with the default body limit.
fn start(http: hyper::server::conn::http1::Builder) -> (IoCore, SocketAddr) {
    start_with(http, server::DEFAULT_MAX_BODY)
}

/// [`start`] with a body limit of `max_body` bytes.
fn start_with(http: hyper::server::conn::http1::Builder, max_body: usize) -> (IoCore, SocketAddr) {
    let core = core(2);
    let listener = core.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(core.spawn(server::serve(listener, http, max_body)));
    (core, addr)
}

fn run<T>(core: &IoCore, test: impl Future<Output = T>) -> T {
    core.block_on(iocore::time::timeout(LIMIT, test)).expect("test timed out")
}

/// An HTTP/1.1 client connection over an iocore stream; hyper's connection future runs as
/// an iocore task (through the executor).
async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    IoCoreExecutor::current().execute(async move {
        if let Err(e) = conn.await {
            panic!("client connection failed: {e}");
        }
    });
    sender
}

async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    body: Bytes,
) -> (StatusCode, Bytes) {
    sender.ready().await.expect("connection still usable");
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost")
        .body(Full::new(body))
        .unwrap();
    let resp = sender.send_request(req).await.expect("a response");
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[test]
fn get_root_says_hello() {
    let (core, addr) = start(server::http1());
    run(&core, async {
        let mut sender = connect(addr).await;
        let (status, body) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"Hello, World!");
        let (status, _) = request(&mut sender, Method::GET, "/nope", Bytes::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

#[test]
fn post_echo_returns_a_100_kib_body() {
    let (core, addr) = start(server::http1());
    run(&core, async {
        let mut sender = connect(addr).await;
        let data = Bytes::from(pattern(7, 100 * 1024));
        let (status, body) = request(&mut sender, Method::POST, "/echo", data.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), data.len());
        assert!(body == data, "echoed body differs");
    });
}

#[test]
fn fifty_sequential_requests_on_one_keep_alive_connection() {
    let (core, addr) = start(server::http1());
    run(&core, async {
        let mut sender = connect(addr).await;
        for i in 0..50u32 {
            if i % 2 == 0 {
                let (status, body) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
                assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, World!"[..]), "request {i}");
            } else {
                let data = Bytes::from(pattern(i.into(), 100 + i as usize * 97));
                let (status, body) = request(&mut sender, Method::POST, "/echo", data.clone()).await;
                assert_eq!((status, body), (StatusCode::OK, data), "request {i}");
            }
        }
        // All 50 went over the one connection: it is still open and usable.
        assert!(!sender.is_closed());
    });
}

#[test]
fn twenty_concurrent_connections() {
    let (core, addr) = start(server::http1());
    run(&core, async {
        let clients: Vec<_> = (0..20u8)
            .map(|c| {
                iocore::spawn(async move {
                    let mut sender = connect(addr).await;
                    for r in 0..5u8 {
                        let data =
                            Bytes::from(pattern((c ^ r).into(), 1000 + c as usize * 1000 + r as usize));
                        let (status, body) = request(&mut sender, Method::POST, "/echo", data.clone()).await;
                        assert_eq!((status, body), (StatusCode::OK, data), "client {c} request {r}");
                        let (status, body) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
                        assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, World!"[..]));
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("client task");
        }
    });
}

/// hyper's header read timeout runs on the iocore timer: a client that never finishes
/// its request head is disconnected.
#[test]
fn header_read_timeout_uses_the_iocore_timer() {
    let mut http = server::http1();
    http.header_read_timeout(Duration::from_millis(200));
    let (core, addr) = start(http);
    run(&core, async {
        // Before the connect: the server's timer may start as soon as it accepts, which
        // can come before `connect` returns here (CI saw a close 0.2 ms "early" from a
        // start taken after it).
        let start = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match stream.recv(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // a 408 response, if any, then the close
            }
        }
        assert!(start.elapsed() >= Duration::from_millis(200), "closed early: {:?}", start.elapsed());
        // A complete request on a fresh connection still works with that setting.
        let mut sender = connect(addr).await;
        let (status, _) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
    });
}

/// Sends `request` on a fresh connection; the response up to the server's close (a reset
/// counts as the close: the server does not read the rest of a refused body).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.send_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.recv(&mut buf).await {
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Bodies over the limit get 413, whether their length is declared or chunked; a body at
/// the limit is echoed, and the connection (a keep-alive one) serves on.
#[test]
fn bodies_over_the_limit_get_413() {
    const LIMIT_BYTES: usize = 1000;
    let (core, addr) = start_with(server::http1(), LIMIT_BYTES);
    run(&core, async {
        let mut sender = connect(addr).await;
        let data = Bytes::from(pattern(5, LIMIT_BYTES));
        let (status, body) = request(&mut sender, Method::POST, "/echo", data.clone()).await;
        assert_eq!((status, body), (StatusCode::OK, data));

        let declared = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
            LIMIT_BYTES + 1,
            "a".repeat(LIMIT_BYTES + 1)
        );
        let resp = raw(addr, declared.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        // Chunked: no length up front; refused once more than the limit has arrived.
        let chunk = "b".repeat(600);
        let chunked = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
        );
        let resp = raw(addr, chunked.as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        // The first connection is still served.
        let (status, body) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, World!"[..]));
    });
}

/// The timer adapter by itself: sleep, sleep_until, and reset (later, then earlier).
#[test]
fn timer_adapter_sleeps_and_resets() {
    let core = core(1);
    run(&core, async {
        let start = Instant::now();
        IoCoreTimer.sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));

        let start = Instant::now();
        let mut sleep = IoCoreTimer.sleep_until(start + Duration::from_secs(3600));
        IoCoreTimer.reset(&mut sleep, start + Duration::from_millis(30));
        sleep.as_mut().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(30) && waited < Duration::from_secs(3600));

        // Reset after completion re-arms it.
        let again = Instant::now();
        IoCoreTimer.reset(&mut sleep, again + Duration::from_millis(10));
        sleep.await;
        assert!(again.elapsed() >= Duration::from_millis(10));
    });
}

/// The tokio side of the example serves the same service (checked with a tokio client).
#[test]
fn the_same_service_on_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(server::serve_tokio(listener, server::DEFAULT_MAX_BODY));
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let (status, body) = request(&mut sender, Method::GET, "/", Bytes::new()).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"Hello, World!"[..]));
        let data = Bytes::from(pattern(3, 100 * 1024));
        let (status, body) = request(&mut sender, Method::POST, "/echo", data.clone()).await;
        assert_eq!((status, body), (StatusCode::OK, data));
    });
}
