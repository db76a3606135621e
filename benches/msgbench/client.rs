//! The benchmark client: `connections` connections, `parallel` messages in flight each, a
//! strict closed loop until `target` replies (or for `secs`); the hog scenario's extra
//! connection; and the fan-out subscriber client. One connect loop for every runtime.

use crate::open_loop;
use crate::proto::{encode, DecodeError, Msg, RecvBuf, HOG_MARK};
use crate::smol_rt::SmolRuntime;
use crate::stream::{self, BenchRuntime, BenchStream};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct ClientOpts {
    pub threads: usize,
    pub port: u16,
    pub connections: usize,
    pub parallel: usize,
    pub payload: u64,
    pub ints: u32,
    pub target: u64,
    pub read_size: usize,
    pub nodelay: bool,
    /// Fan-out: only read frames.
    pub fanout: bool,
    /// Stop after this long instead of at `target`.
    pub secs: Option<f64>,
    /// Open loop: messages per second over all connections, sent on a fixed schedule
    /// (`open_loop`) instead of one per reply.
    pub rate: Option<f64>,
    /// One more connection (index `connections`) whose messages are hog-marked: the server
    /// burns CPU on each. Its replies are not counted and its latency is not recorded.
    pub hog: bool,
}

impl ClientOpts {
    /// All connections, the hog included.
    pub fn all_connections(&self) -> usize {
        self.connections + usize::from(self.hog)
    }
}

/// Monotonic milliseconds (CLOCK_MONOTONIC, shared by client and server processes).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// State shared by all connections of one client run.
pub struct Shared {
    pub opts: ClientOpts,
    pub received: AtomicU64,
    pub done: AtomicBool,
    pub latencies_us: Mutex<Vec<u32>>,
    pub latencies_ms: Mutex<Vec<u32>>,
    /// Messages (or frames) received per connection (the hog's last).
    pub per_conn: Vec<AtomicU64>,
}

impl Shared {
    pub fn new(opts: ClientOpts) -> Arc<Shared> {
        Arc::new(Shared {
            opts,
            received: AtomicU64::new(0),
            done: AtomicBool::new(false),
            latencies_us: Mutex::default(),
            latencies_ms: Mutex::default(),
            per_conn: (0..opts.all_connections()).map(|_| AtomicU64::new(0)).collect(),
        })
    }
}

/// One connection's closed loop: the same code for every client runtime.
pub struct ClientConn {
    shared: Arc<Shared>,
    recv: RecvBuf,
    sent: VecDeque<Instant>,
    pub out: Vec<u8>,
    rng: u64,
    index: usize,
    hog: bool,
    lat_us: Vec<u32>,
    lat_ms: Vec<u32>,
}

impl ClientConn {
    pub fn new(shared: Arc<Shared>, index: usize) -> ClientConn {
        let read_size = shared.opts.read_size;
        let hog = shared.opts.hog && index == shared.opts.connections;
        ClientConn {
            shared,
            recv: RecvBuf::new(read_size),
            sent: VecDeque::new(),
            out: Vec::new(),
            rng: (index as u64 * 7919) | 1,
            hog,
            index,
            lat_us: Vec::new(),
            lat_ms: Vec::new(),
        }
    }

    /// Appends one message to `out`; its latency will count from `at`.
    pub fn push_message(&mut self, at: Instant) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let o = &self.shared.opts;
        let (int_count, int_value) = if self.hog { (1, HOG_MARK) } else { (o.ints, self.rng as u32) };
        let m = Msg { timestamp_ms: now_ms(), int_count, int_value, payload_len: o.payload };
        encode(&m, &mut self.out);
        self.sent.push_back(at);
    }

    /// The first send: `parallel` messages.
    pub fn start(&mut self) -> &[u8] {
        self.out.clear();
        for _ in 0..self.shared.opts.parallel {
            self.push_message(Instant::now());
        }
        &self.out
    }

    /// After a read of `n` bytes: the new messages to send (one per reply), and whether to stop.
    pub fn on_read(&mut self, n: usize) -> Result<bool, DecodeError> {
        self.out.clear();
        let mut replies = 0u32;
        let (sent, lat_us, lat_ms) = (&mut self.sent, &mut self.lat_us, &mut self.lat_ms);
        let mut bad_time = false;
        self.recv.filled(n, |m| {
            let now = now_ms();
            bad_time |= m.timestamp_ms > now;
            lat_ms.push((now - m.timestamp_ms.min(now)) as u32);
            if let Some(t) = sent.pop_front() {
                lat_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            replies += 1;
        })?;
        if bad_time {
            return Err(DecodeError::Invalid("timestamp from the future".into()));
        }
        self.shared.per_conn[self.index].fetch_add(replies as u64, Ordering::Relaxed);
        if self.hog {
            self.lat_us.clear();
            self.lat_ms.clear();
        } else {
            self.shared.latencies_us.lock().unwrap().append(&mut self.lat_us);
            self.shared.latencies_ms.lock().unwrap().append(&mut self.lat_ms);
            self.shared.received.fetch_add(replies as u64, Ordering::Relaxed);
        }
        if self.shared.received.load(Ordering::Relaxed) >= self.shared.opts.target {
            self.shared.done.store(true, Ordering::Relaxed);
            return Ok(true);
        }
        // The closed loop answers every reply with a new message; the open loop sends on
        // its schedule instead.
        if self.shared.opts.rate.is_none() {
            for _ in 0..replies {
                self.push_message(Instant::now());
            }
        }
        Ok(self.shared.done.load(Ordering::Relaxed))
    }

    /// Fan-out: validate and count frames only.
    pub fn on_frames(&mut self, n: usize) -> Result<(), DecodeError> {
        let mut frames = 0u64;
        self.recv.filled(n, |_| frames += 1)?;
        self.shared.per_conn[self.index].fetch_add(frames, Ordering::Relaxed);
        self.shared.received.fetch_add(frames, Ordering::Relaxed);
        Ok(())
    }

    pub fn space(&mut self) -> &mut [u8] {
        self.recv.space()
    }

    /// This connection's place among the client's connections.
    pub fn index(&self) -> usize {
        self.index
    }

    /// True once the run is over.
    pub fn done(&self) -> bool {
        self.shared.done.load(Ordering::Relaxed)
    }
}

pub fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("client: {e}");
    std::process::exit(2);
}

/// One connection's closed loop (or, for fan-out, read-and-count loop; or the open loop),
/// on any runtime.
async fn drive<R: BenchRuntime>(mut s: R::Stream, mut c: ClientConn) {
    let o = c.shared.opts;
    if let Some(rate) = o.rate {
        return open_loop::drive::<R>(s, c, rate, o.connections).await;
    }
    let fanout = o.fanout;
    if !fanout {
        s.send_all(c.start()).await.unwrap_or_else(|e| fail(e));
    }
    while !c.shared.done.load(Ordering::Relaxed) {
        let n = s.recv(c.space()).await.unwrap_or_else(|e| fail(e));
        if n == 0 {
            fail("server closed the connection");
        }
        if fanout {
            c.on_frames(n).unwrap_or_else(|e| fail(e));
            continue;
        }
        if c.on_read(n).unwrap_or_else(|e| fail(e)) {
            return;
        }
        if !c.out.is_empty() {
            s.send_all(&c.out).await.unwrap_or_else(|e| fail(e));
        }
    }
}

/// Opens every connection as its own task and runs its loop; returns when all are done.
async fn connect_all<R: BenchRuntime>(shared: Arc<Shared>) {
    let o = shared.opts;
    let addr = SocketAddr::from(([127, 0, 0, 1], o.port));
    let tasks: Vec<_> = (0..o.all_connections())
        .map(|i| {
            let shared = shared.clone();
            R::spawn(async move {
                let s = R::connect(addr).await.unwrap_or_else(|e| fail(e));
                if o.nodelay {
                    R::set_nodelay(&s).unwrap_or_else(|e| fail(e));
                }
                drive::<R>(s, ClientConn::new(shared, i)).await
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

pub fn run_iocore(shared: Arc<Shared>) -> io::Result<()> {
    let core = iocore::IoCore::builder().threads(shared.opts.threads).build()?;
    core.block_on(connect_all::<stream::Iocore>(shared));
    Ok(())
}

pub fn run_tokio(shared: Arc<Shared>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(shared.opts.threads)
        .enable_all()
        .build()?;
    rt.block_on(connect_all::<stream::Tokio>(shared));
    Ok(())
}

pub fn run_smol(shared: Arc<Shared>) -> io::Result<()> {
    SmolRuntime::new(shared.opts.threads).block_on(connect_all::<stream::Smol>(shared));
    Ok(())
}

/// Samples messages/s over the last 2 s every 100 ms until `done`; returns the samples.
pub fn report(shared: &Shared, start: Instant) -> Vec<f64> {
    let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut samples = Vec::new();
    let window = Duration::from_secs(2);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let count = shared.received.load(Ordering::Relaxed);
        history.push_back((now, count));
        while history.len() > 1 && now - history[0].0 > window {
            history.pop_front();
        }
        let (t0, c0) = history[0];
        if now - start >= Duration::from_millis(500) && now > t0 {
            samples.push((count - c0) as f64 / (now - t0).as_secs_f64());
        }
        if shared.done.load(Ordering::Relaxed) {
            return samples;
        }
    }
}
