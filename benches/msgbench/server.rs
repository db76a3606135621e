//! The benchmark servers: iocore, tokio (multi-thread or current-thread), smol and the
//! "floor", a hand-written single-threaded mio loop. Same per-message work in all of them
//! (`proto::ServerConn`), same read size, one send per read, no socket options unless
//! `--nodelay`; the runtimes share one accept loop and one connection loop
//! (`stream::BenchRuntime`).

use crate::proto::{encode, DecodeError, Msg, ServerConn};
use crate::smol_rt::SmolRuntime;
use crate::stream::{self, BenchRuntime, BenchStream};
use bytes::Bytes;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ServerOpts {
    pub threads: usize,
    pub port: u16,
    pub nodelay: bool,
    pub read_size: usize,
    pub fanout: bool,
    /// CPU time burnt per hog-marked message (`proto::HOG_MARK`); zero: none.
    pub hog_burn: Duration,
    /// Each read waits under this idle timeout, reset per message (the timeout-churn
    /// scenario); a connection idle for longer is closed.
    pub read_timeout: Option<Duration>,
    /// Connections only wait in `recv` with a 16-byte buffer (the idle-memory measurement).
    pub idle: bool,
}

impl ServerOpts {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn conn(&self) -> ServerConn {
        ServerConn::new(self.read_size, self.hog_burn)
    }
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

/// One connection: read (under the idle timeout, if any), decode and validate, send every
/// reply of that read at once.
async fn serve_conn<R: BenchRuntime>(
    mut stream: R::Stream,
    mut conn: ServerConn,
    read_timeout: Option<Duration>,
) {
    loop {
        let read = stream.recv(conn.recv.space());
        let got = match read_timeout {
            None => read.await,
            Some(d) => match R::timeout(d, read).await {
                Some(r) => r,
                None => return,
            },
        };
        let n = match got {
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

/// An idle connection: waits in `recv` (a 16-byte buffer inside the task) until it ends.
async fn wait_idle(mut stream: impl BenchStream) {
    let mut buf = [0u8; 16];
    while let Ok(1..) = stream.recv(&mut buf).await {}
}

/// Accepts until the process is killed: every connection gets `serve_conn`, or in the
/// fan-out scenario goes to `subscribe`.
async fn accept_loop<R: BenchRuntime>(
    o: &ServerOpts,
    mut subscribe: impl FnMut(R::Stream),
) -> io::Result<()> {
    let listener = R::bind(o.addr()).await?;
    println!("ready");
    loop {
        let stream = match R::accept(&listener).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                R::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if o.nodelay {
            R::set_nodelay(&stream)?;
        }
        if o.fanout {
            subscribe(stream);
        } else if o.idle {
            drop(R::spawn(wait_idle(stream)));
        } else {
            drop(R::spawn(serve_conn::<R>(stream, o.conn(), o.read_timeout)));
        }
    }
}

pub fn run_iocore(o: ServerOpts) -> io::Result<()> {
    let core = iocore::IoCore::builder().threads(o.threads).build()?;
    let subscribers: Arc<Mutex<Vec<iocore::net::PostSender>>> = Arc::default();
    if o.fanout {
        let subs = subscribers.clone();
        std::thread::spawn(move || publish_iocore(&subs));
    }
    core.block_on(accept_loop::<stream::Iocore>(&o, |stream| {
        stream.set_post_high_water(FANOUT_QUEUE_FRAMES * 128);
        subscribers.lock().unwrap().push(stream.sender());
        // Keep the stream open until the subscriber leaves.
        iocore::spawn(async move {
            let mut b = [0u8; 64];
            while let Ok(1..) = stream.recv(&mut b).await {}
        });
    }))
}

/// Frames of queue per subscriber in the fan-out scenario (all runtimes).
pub const FANOUT_QUEUE_FRAMES: usize = 1024;

fn publish_iocore(subs: &Mutex<Vec<iocore::net::PostSender>>) {
    publish(subs, iocore::net::PostSender::is_closed, |s, frame| {
        // The fast path posts without a future; at the high-water mark, `send` waits for
        // room (a closed subscriber is dropped from the list by `publish`).
        if let Err(iocore::net::PostError::WouldExceed(frame)) = s.post_send(frame) {
            let _ = futures::executor::block_on(s.send(frame));
        }
    });
}

/// The fan-out publisher thread: the frame to every subscriber in turn, as fast as `send`
/// lets it, forever; closed subscribers leave the list after each round.
fn publish<S: Clone>(subs: &Mutex<Vec<S>>, is_closed: fn(&S) -> bool, send: impl Fn(&S, Bytes)) {
    let frame = fanout_frame();
    loop {
        let list = subs.lock().unwrap().clone();
        if list.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for s in &list {
            send(s, frame.clone());
        }
        subs.lock().unwrap().retain(|s| !is_closed(s));
    }
}

pub fn run_tokio(o: ServerOpts, current_thread: bool) -> io::Result<()> {
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(o.threads).enable_all().build()?
    };
    rt.block_on(serve_with_channels::<stream::Tokio>(&o))
}

pub fn run_smol(o: ServerOpts) -> io::Result<()> {
    SmolRuntime::new(o.threads).block_on(serve_with_channels::<stream::Smol>(&o))
}

/// The accept loop of tokio and smol, whose fan-out is the idiomatic one: one bounded
/// channel and one writer task per subscriber (`tokio::sync::mpsc` works on any executor,
/// so both runtimes run the same channel code).
async fn serve_with_channels<R: BenchRuntime>(o: &ServerOpts) -> io::Result<()> {
    let subscribers: Arc<Mutex<Vec<tokio::sync::mpsc::Sender<Bytes>>>> = Arc::default();
    if o.fanout {
        let subs = subscribers.clone();
        std::thread::spawn(move || publish_channels(&subs));
    }
    accept_loop::<R>(o, |stream| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(FANOUT_QUEUE_FRAMES);
        subscribers.lock().unwrap().push(tx);
        drop(R::spawn(channel_writer(rx, stream)));
    })
    .await
}

/// The idiomatic writer task: batch what is queued into one write.
async fn channel_writer(mut rx: tokio::sync::mpsc::Receiver<Bytes>, mut stream: impl BenchStream) {
    let mut batch = Vec::with_capacity(64);
    let mut out = Vec::with_capacity(64 * 128);
    while rx.recv_many(&mut batch, 64).await > 0 {
        out.clear();
        for b in batch.drain(..) {
            out.extend_from_slice(&b);
        }
        if stream.send_all(&out).await.is_err() {
            return;
        }
    }
}

fn publish_channels(subs: &Mutex<Vec<tokio::sync::mpsc::Sender<Bytes>>>) {
    publish(subs, tokio::sync::mpsc::Sender::is_closed, |s, frame| {
        let _ = s.blocking_send(frame);
    });
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
    let mut listener = TcpListener::bind(o.addr())?;
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
                            conns[i] = Some(Conn { stream, proto: o.conn(), pending: Vec::new() });
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
