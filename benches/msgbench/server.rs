//! The benchmark servers: iocore, tokio (multi-thread or current-thread) and the "floor",
//! a hand-written single-threaded mio loop. Same per-message work in all of them
//! (`proto::ServerConn`), same read size, one send per read, no socket options unless
//! `--nodelay`.

use crate::proto::{encode, DecodeError, Msg, ServerConn};
use crate::stream::BenchStream;
use bytes::Bytes;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ServerOpts {
    pub threads: usize,
    pub port: u16,
    pub nodelay: bool,
    pub read_size: usize,
    pub fanout: bool,
}

/// Bad frames seen (a bad header, or content that does not match the pattern): each
/// closed its connection; printed on exit.
pub static PROTOCOL_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Handles a decode error: the connection that sent the bad frame is closed, with a
/// message, and counted; the server keeps serving the others. (A runtime that corrupted
/// data would show up here and in the clients' own checks.)
fn on_decode_error(e: DecodeError) {
    PROTOCOL_ERRORS.fetch_add(1, Ordering::Relaxed);
    eprintln!("server: {e}; closing that connection");
}

/// The fan-out frame: 128 bytes (no ints, 100-byte payload).
pub fn fanout_frame() -> Bytes {
    let mut v = Vec::new();
    encode(&Msg { timestamp_ms: 0, int_count: 0, int_value: 0, payload_len: 100 }, &mut v);
    Bytes::from(v)
}

/// One connection: read, decode and validate, send every reply of that read at once.
async fn serve_conn(mut stream: impl BenchStream, read_size: usize) {
    let mut conn = ServerConn::new(read_size);
    loop {
        let n = match stream.recv(conn.recv.space()).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match conn.on_read(n) {
            Ok([]) => {}
            Ok(out) => {
                if stream.send_all(out).await.is_err() {
                    return;
                }
            }
            Err(e) => return on_decode_error(e),
        }
    }
}

pub fn run_iocore(o: ServerOpts) -> io::Result<()> {
    use iocore::net::TcpListener;
    let core = iocore::IoCore::builder().threads(o.threads).build()?;
    let subscribers: Arc<Mutex<Vec<iocore::net::PostSender>>> = Arc::default();
    if o.fanout {
        let subs = subscribers.clone();
        std::thread::spawn(move || publish_iocore(&subs));
    }
    core.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", o.port)).await?;
        println!("ready");
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    iocore::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if o.nodelay {
                stream.set_nodelay(true)?;
            }
            if o.fanout {
                stream.set_post_high_water(FANOUT_QUEUE_FRAMES * 128);
                subscribers.lock().unwrap().push(stream.sender());
                // Keep the stream open until the subscriber leaves.
                iocore::spawn(async move {
                    let mut b = [0u8; 64];
                    while let Ok(1..) = stream.recv(&mut b).await {}
                });
                continue;
            }
            iocore::spawn(serve_conn(stream, o.read_size));
        }
    })
}

/// Frames of queue per subscriber in the fan-out scenario (both runtimes).
pub const FANOUT_QUEUE_FRAMES: usize = 1024;

fn publish_iocore(subs: &Mutex<Vec<iocore::net::PostSender>>) {
    let frame = fanout_frame();
    loop {
        let list = subs.lock().unwrap().clone();
        if list.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for s in &list {
            // The fast path posts without a future; at the high-water mark, `send` waits for
            // room (a closed subscriber is dropped from the list below).
            if let Err(iocore::net::PostError::WouldExceed(frame)) = s.post_send(frame.clone()) {
                let _ = futures::executor::block_on(s.send(frame));
            }
        }
        subs.lock().unwrap().retain(|s| !s.is_closed());
    }
}

pub fn run_tokio(o: ServerOpts, current_thread: bool) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(o.threads).enable_all().build()?
    };
    let subscribers: Arc<Mutex<Vec<tokio::sync::mpsc::Sender<Bytes>>>> = Arc::default();
    if o.fanout {
        let subs = subscribers.clone();
        std::thread::spawn(move || publish_tokio(&subs));
    }
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", o.port)).await?;
        println!("ready");
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if o.nodelay {
                stream.set_nodelay(true)?;
            }
            if o.fanout {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(FANOUT_QUEUE_FRAMES);
                subscribers.lock().unwrap().push(tx);
                tokio::spawn(async move {
                    // The idiomatic writer task: batch what is queued into one write.
                    let mut batch = Vec::with_capacity(64);
                    let mut out = Vec::with_capacity(64 * 128);
                    while rx.recv_many(&mut batch, 64).await > 0 {
                        out.clear();
                        for b in batch.drain(..) {
                            out.extend_from_slice(&b);
                        }
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
                continue;
            }
            tokio::spawn(serve_conn(stream, o.read_size));
        }
    })
}

fn publish_tokio(subs: &Mutex<Vec<tokio::sync::mpsc::Sender<Bytes>>>) {
    let frame = fanout_frame();
    loop {
        let list = subs.lock().unwrap().clone();
        if list.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for s in &list {
            let _ = s.blocking_send(frame.clone());
        }
        subs.lock().unwrap().retain(|s| !s.is_closed());
    }
}

/// The floor: one thread, one epoll loop, no runtime. Reads until `WouldBlock` in
/// `read_size` pieces, one write per read; output that does not fit waits for writability.
pub fn run_floor(o: ServerOpts) -> io::Result<()> {
    use mio::net::TcpListener;
    use mio::{Events, Interest, Poll, Token};
    struct Conn {
        stream: mio::net::TcpStream,
        proto: ServerConn,
        pending: Vec<u8>,
    }
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(format!("127.0.0.1:{}", o.port).parse().expect("address"))?;
    const LISTENER: Token = Token(usize::MAX);
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    println!("ready");
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if o.nodelay {
                                stream.set_nodelay(true)?;
                            }
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                stream,
                                proto: ServerConn::new(o.read_size),
                                pending: Vec::new(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns[i].as_mut() else { continue };
            let mut close = false;
            if !c.pending.is_empty() && ev.is_writable() {
                match c.stream.write(&c.pending) {
                    Ok(n) => {
                        c.pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
            }
            while !close {
                let n = match c.stream.read(c.proto.recv.space()) {
                    Ok(0) => {
                        close = true;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        close = true;
                        break;
                    }
                };
                let out = match c.proto.on_read(n) {
                    Ok(out) => out,
                    Err(e) => {
                        on_decode_error(e);
                        close = true;
                        break;
                    }
                };
                if out.is_empty() {
                    continue;
                }
                if !c.pending.is_empty() {
                    c.pending.extend_from_slice(out);
                    continue;
                }
                match c.stream.write(out) {
                    Ok(k) if k == out.len() => {}
                    Ok(k) => c.pending.extend_from_slice(&out[k..]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.pending.extend_from_slice(out),
                    Err(_) => close = true,
                }
            }
            if close {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(i);
            }
        }
    }
}
