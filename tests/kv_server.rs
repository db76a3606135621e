//! The kv example's server (`examples/kv/server.rs`) in-process, driven by blocking std
//! clients: memory per client under pipelining, protocol limits, idle timeouts. Bounds are
//! checked by counts and outcomes, never by timing.

#[path = "../examples/shared/log_limit.rs"]
mod log_limit;
#[path = "../examples/kv/resp.rs"]
#[allow(dead_code)]
mod resp;
#[path = "../examples/kv/server.rs"]
mod server;
mod support;

use iocore::net::TcpListener;
use iocore::IoCore;
use resp::{encode, Limits, REPLY_BATCH};
use server::{Config, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use support::{pattern, settle, HANG};

/// A core serving a kv server with `config` on an ephemeral port.
fn start(config: Config) -> (IoCore, Arc<Server>, SocketAddr) {
    let core = IoCore::builder().threads(2).build().unwrap();
    let listener = core.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(config);
    drop(core.spawn(server::serve(listener, server.clone())));
    (core, server, addr)
}

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    s
}

fn read_exact(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    s.read_exact(&mut got).unwrap();
    got
}

/// `$len\r\nvalue\r\n`
fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", v.len()).into_bytes();
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
    out
}

/// A client pipelines 200 GETs of a 256 KiB value (50 MiB of replies) in one small write
/// and does not read: the server queues at most its mark plus one batch (one reply), not
/// all the replies of what it read. Then the client reads every reply, in order.
#[test]
fn a_client_that_does_not_read_costs_the_mark_plus_one_batch() {
    const MARK: usize = 256 << 10;
    const VALUE: usize = 256 << 10;
    const GETS: usize = 200;
    let (_core, server, addr) = start(Config { reply_queue: MARK, ..Config::default() });
    let mut c = client(addr);
    let value = pattern(1, VALUE);
    c.write_all(&encode(&[&b"SET"[..], b"big", &value])).unwrap();
    assert_eq!(read_exact(&mut c, 5), b"+OK\r\n");

    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..GETS {
        request.extend(encode(&["GET", "big"]));
        request.extend(encode(&["ECHO", &i.to_string()]));
        expected.extend(bulk(&value));
        expected.extend(bulk(i.to_string().as_bytes()));
    }
    c.write_all(&request).unwrap();
    // The server fills the socket buffers, then its queue up to the mark, and stops there.
    assert!(settle(HANG, || server.stats.max_queued() >= MARK), "the queue never reached the mark");
    std::thread::sleep(Duration::from_millis(300)); // room to overshoot, if it would
    let bound = MARK + REPLY_BATCH + VALUE + 64;
    let seen = server.stats.max_queued();
    assert!(seen <= bound, "queued {seen} bytes for one client; bound {bound}");

    let got = read_exact(&mut c, expected.len());
    assert!(got == expected, "replies differ from the expected ones, in order");
}

/// Reads until the server closes; what it sent. A reset counts as the close: a server
/// that closes with unread input sends one, which may come after its last reply.
fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Over the socket, each broken limit gets its error reply, then the server closes that
/// connection; a command within the limits is served.
#[test]
fn a_broken_limit_gets_an_error_naming_it_then_a_close() {
    let limits = Limits { max_bulk: 1000, max_args: 10, max_query: 8192 };
    let (_core, _server, addr) = start(Config { limits, ..Config::default() });
    // The query buffer: one incomplete command of 9 KB, with no argument over the limits.
    let mut args = vec![b"EXISTS".to_vec()];
    args.resize(10, vec![b'z'; 1000]);
    let huge = encode(&args);
    let huge = &huge[..huge.len() - 1];
    let cases: [(&[u8], &str); 3] =
        [(b"*1\r\n$1001\r\n", "--max-bulk-bytes"), (b"*11\r\n", "--max-args"), (huge, "--max-query-bytes")];
    for (input, flag) in cases {
        let mut c = client(addr);
        c.write_all(input).unwrap();
        let reply = String::from_utf8_lossy(&read_to_end(&mut c)).to_string();
        assert!(reply.starts_with("-ERR Protocol error: ") && reply.contains(flag), "{flag}: {reply}");
        assert_eq!(reply.matches("\r\n").count(), 1, "one reply, then the close: {reply}");
    }
    // At the limits: 10 arguments, one of 1000 bytes, sent in pieces.
    let mut args = vec![b"SET".to_vec(), b"k".to_vec(), vec![b'v'; 1000]];
    let set = encode(&args);
    let mut c = client(addr);
    for piece in set.chunks(100) {
        c.write_all(piece).unwrap();
    }
    assert_eq!(read_exact(&mut c, 5), b"+OK\r\n");
    args = vec![b"EXISTS".to_vec()];
    args.resize(10, b"k".to_vec());
    c.write_all(&encode(&args)).unwrap();
    assert_eq!(read_exact(&mut c, 4), b":9\r\n");
}

/// With a 500 ms idle timeout, a connection that sends nothing is closed by the server
/// (the client sees the end), while one that sends a PING every 50 ms for 1.5 s is served
/// throughout. Counts and outcomes only: the margins are 10x.
#[test]
fn idle_connections_are_closed_and_active_ones_are_not() {
    let config = Config { idle_timeout: Some(Duration::from_millis(500)), ..Config::default() };
    let (_core, server, addr) = start(config);
    let mut idle = client(addr);
    let mut active = client(addr);
    for _ in 0..30 {
        active.write_all(b"PING\r\n").unwrap();
        assert_eq!(read_exact(&mut active, 7), b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read_to_end(&mut idle), b"", "the idle connection got bytes instead of a close");
    active.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_exact(&mut active, 7), b"+PONG\r\n");
    assert_eq!(server.stats.idle_closed(), 1);
}
