//! Helpers shared by the integration tests. Each test file declares the module with one
//! line, `mod support;`, and imports what it needs.
//!
//! - here: the watchdog and bounded waits ([`HANG`], [`watchdog`], [`wait_until`],
//!   [`wait_until_in_core`], [`spin_until`], [`burn`], [`settle`], [`settle_in_core`], [`settled`],
//!   [`settled_in_core`]); cores and joins ([`core`], [`join`], [`in_task`], [`join_all`]);
//!   probes ([`DropGuard`], [`Polled`], [`CountWaker`], [`PanicOnDrop`],
//!   [`park_holding_panic_on_drop`]); the process's fds and threads ([`fd_count`],
//!   [`fd_list`], [`thread_count`], [`thread_states`], [`report_if_slow`]), its CPUs ([`allowed_cpus`], [`pin_to`]) and the
//!   per-binary [`serial`] lock; deterministic
//!   payloads ([`pattern`], [`tagged`], [`parse_tagged`]);
//! - [`examples`]: the example binaries as child processes (start, signal, wait);
//! - [`net`]: a TCP test body on a core of its own, bounded twice ([`net::run`]), loopback
//!   listeners and pairs, exact-length and to-EOF reads;
//! - [`stress`]: the short/full size switch (`IOCORE_STRESS=full`), a seeded PRNG, the RSS,
//!   `RLIMIT_NOFILE` control, an in-core wait for the fd count, and the child-process runner.
//!
//! Why `#![allow(dead_code)]` below: Cargo builds every file of `tests/` as a crate of its
//! own, and each of them compiles this module again but uses only a part of it, a different
//! part in each test. Without the attribute every test binary would warn about the helpers
//! that it does not use itself. It stands here, once for all of them, instead of on the
//! `mod support;` line of every test file.
#![allow(dead_code)]

pub mod examples;
pub mod net;
pub mod stress;

use iocore::{IoCore, JoinError, JoinHandle};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Watchdog and bounded waits
// ---------------------------------------------------------------------------------------

/// Generous bound for anything that should take milliseconds: only a hang reaches it.
pub const HANG: Duration = Duration::from_secs(20);

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`.
/// A panic inside `f` is propagated as is.
pub fn watchdog<F: FnOnce() + Send + 'static>(limit: Duration, f: F) {
    let (tx, rx) = mpsc::channel::<()>();
    let t = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("spawn test body");
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(()) => unreachable!("body exited without reporting"),
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?}: the runtime hangs")
        }
    }
}

/// The end of a bounded wait.
struct Limit(Instant);

impl Limit {
    fn after(limit: Duration) -> Limit {
        Limit(Instant::now() + limit)
    }

    /// One step of a polling loop: `Some(true)` once `cond` holds, `Some(false)` once the
    /// time is up, `None` to poll again (after a pause).
    fn check(&self, cond: &mut impl FnMut() -> bool) -> Option<bool> {
        if cond() {
            Some(true)
        } else {
            (Instant::now() >= self.0).then_some(false)
        }
    }
}

/// Polls `cond` (in real time, every `every`) until it holds or `limit` passes; returns
/// whether it held.
fn poll_until(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let limit = Limit::after(limit);
    loop {
        if let Some(held) = limit.check(&mut cond) {
            return held;
        }
        thread::sleep(every);
    }
}

/// Polls `cond` until it holds; panics with `what` after [`HANG`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(poll_until(HANG, Duration::from_micros(200), cond), "timed out waiting for: {what}");
}

/// Waits (polling every 10 ms, in real time) until `cond` holds or `limit` passes;
/// returns whether it held. For conditions that may legitimately take a while (fds closed
/// by the kernel, threads exiting), checked by the caller.
pub fn settle(limit: Duration, cond: impl FnMut() -> bool) -> bool {
    poll_until(limit, Duration::from_millis(10), cond)
}

/// [`settle`] inside a core: polls every 5 ms with iocore sleeps, so that the core's
/// workers keep running.
pub async fn settle_in_core(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let limit = Limit::after(limit);
    loop {
        if let Some(held) = limit.check(&mut cond) {
            return held;
        }
        iocore::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`wait_until`] inside a core (iocore sleeps); panics with `what` after [`HANG`].
pub async fn wait_until_in_core(what: &str, cond: impl FnMut() -> bool) {
    assert!(settle_in_core(HANG, cond).await, "timed out waiting for: {what}");
}

/// Keeps the calling thread busy for `d` (a CPU-bound workload that never yields: a
/// test's load, not a measurement).
pub fn burn(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Spins (without sleeping; usable inside a task that must not yield) until `cond` holds;
/// panics with `what` after [`HANG`].
pub fn spin_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out spinning for: {what}");
        std::hint::spin_loop();
        thread::yield_now();
    }
}

/// How many samples, 10 ms apart, a value must stay the same to count as settled.
const STEADY: u32 = 10;
/// Samples after which a value that keeps changing fails the test (10 s).
const STEADY_MAX: u32 = 1000;

/// The last sample of a value and for how many samples it has not changed.
struct Steady {
    last: usize,
    same: u32,
}

impl Steady {
    /// Takes a sample; returns it once it is the same as the previous [`STEADY`] ones.
    fn sample(&mut self, v: usize) -> Option<usize> {
        if v == self.last {
            self.same += 1;
            return (self.same == STEADY).then_some(v);
        }
        self.same = 0;
        self.last = v;
        None
    }
}

/// Waits (real time) until `value()` has not changed for 100 ms (e.g. stuck on a full
/// socket) and returns it; panics after 10 s.
pub fn settled(value: impl Fn() -> usize) -> usize {
    let mut s = Steady { last: value(), same: 0 };
    for _ in 0..STEADY_MAX {
        thread::sleep(Duration::from_millis(10));
        if let Some(v) = s.sample(value()) {
            return v;
        }
    }
    panic!("value never settled (last {})", s.last);
}

/// [`settled`] inside a core (iocore sleeps).
pub async fn settled_in_core(value: impl Fn() -> usize) -> usize {
    let mut s = Steady { last: value(), same: 0 };
    for _ in 0..STEADY_MAX {
        iocore::time::sleep(Duration::from_millis(10)).await;
        if let Some(v) = s.sample(value()) {
            return v;
        }
    }
    panic!("value never settled (last {})", s.last);
}

// ---------------------------------------------------------------------------------------
// Cores and joins
// ---------------------------------------------------------------------------------------

/// A core with `threads` workers.
pub fn core(threads: usize) -> IoCore {
    IoCore::builder().threads(threads).build().expect("build core")
}

/// Waits for `h` from outside the core (`block_on`); panics if it takes longer than
/// [`HANG`].
pub fn join<T: Send + 'static>(core: &IoCore, h: JoinHandle<T>) -> Result<T, JoinError> {
    core.block_on(iocore::time::timeout(HANG, h)).expect("task hung")
}

/// Runs `fut` as a task of `core` and returns its output ([`join`]: bounded by [`HANG`]).
pub fn in_task<T: Send + 'static>(core: &IoCore, fut: impl Future<Output = T> + Send + 'static) -> T {
    join(core, core.spawn(fut)).expect("task failed")
}

/// Waits for every handle, in order, from outside the core; panics if one fails or if
/// they take longer than [`HANG`] together.
pub fn join_all<T: Send + 'static>(core: &IoCore, handles: Vec<JoinHandle<T>>) -> Vec<T> {
    core.block_on(iocore::time::timeout(HANG, async move {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.expect("task failed"));
        }
        out
    }))
    .expect("tasks did not finish")
}

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

/// Increments its counter exactly when dropped.
pub struct DropGuard(pub Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts the polls of the wrapped future, after each poll: once the count is non-zero,
/// the future has been polled (and so has registered its waker).
pub struct Polled<F> {
    polls: Arc<AtomicUsize>,
    inner: Pin<Box<F>>,
}

/// `f`, counting its polls in `polls`.
pub fn polled<F: Future>(polls: &Arc<AtomicUsize>, f: F) -> Polled<F> {
    Polled { polls: polls.clone(), inner: Box::pin(f) }
}

impl<F: Future> Future for Polled<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let r = self.inner.as_mut().poll(cx);
        self.polls.fetch_add(1, Ordering::SeqCst);
        r
    }
}

/// Panics when dropped.
pub struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop dropped (expected by the test)");
    }
}

/// A task body that parks (no deadline) holding a [`PanicOnDrop`]: cancelling the task
/// panics in its future's drop.
pub async fn park_holding_panic_on_drop() {
    let _p = PanicOnDrop;
    iocore::task::park(None).await;
}

/// A foreign waker that counts its wakes (its `Arc`'s strong count shows who holds it).
#[derive(Default)]
pub struct CountWaker(pub AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------------------

/// Number of open file descriptors of this process (entries of /proc/self/fd; the
/// directory handle used to list it is counted the same way every time).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
}

/// The open fds with what they point to, for failure messages.
pub fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            format!("{} -> {}", e.file_name().to_string_lossy(), target)
        })
        .collect();
    v.sort();
    v
}

/// Number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("read /proc/self/task").count()
}

/// The CPUs the calling thread may run on (empty if the mask cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Confines the calling thread (and the threads it starts later) to `cpus`; false if the
/// kernel refused.
pub fn pin_to(cpus: &[usize]) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (the
    // indices come from `allowed_cpus`, below CPU_SETSIZE); sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Each thread of this process: name, scheduler state and the syscall it is in (number
/// and first argument, from `/proc/self/task/*/syscall`), for reports on a stall.
pub fn thread_states() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let p = e.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            let comm = read("comm");
            let stat = read("stat");
            // The state is the field after the parenthesised name.
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')).unwrap_or('?');
            let sys: Vec<String> = read("syscall").split_whitespace().take(2).map(str::to_string).collect();
            format!("{}:{}:{}:{}", e.file_name().to_string_lossy(), comm.trim(), state, sys.join(" "))
        })
        .collect();
    v.sort();
    v
}

/// While the returned guard lives, a thread prints `sample()` and every thread's state
/// (see [`thread_states`]) once a second, starting after `after`: evidence for a stall
/// that only shows under load (the guard stops it, so a fast run prints nothing).
pub fn report_if_slow(
    what: &'static str,
    after: Duration,
    sample: impl Fn() -> String + Send + 'static,
) -> impl Drop {
    struct Stop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Stop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    thread::spawn(move || {
        let t = Instant::now();
        let mut next = after;
        loop {
            while t.elapsed() < next {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            eprintln!("[{what}] still running after {:?}: {}", t.elapsed(), sample());
            eprintln!("[{what}] threads: {}", thread_states().join(" | "));
            next += Duration::from_secs(1);
        }
    });
    Stop(stop)
}

/// Tests of one binary that count fds or load the machine take this lock, so they run
/// one at a time whatever `--test-threads` says.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------

/// `len` deterministic, position-dependent bytes for `seed` (so that loss, reordering and
/// corruption are visible), 8 at a time (fast enough for 64 MiB in a debug build).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Length of a [`tagged`] message's header: `[id u8][seq u32 BE][len u16 BE]`.
pub const TAG_HEADER: usize = 7;

/// Message `seq` of writer `id`: `[id u8][seq u32 BE][len u16 BE]` and `len` bytes of
/// [`pattern`], so that a message lost, duplicated, reordered or corrupted is visible.
pub fn tagged(id: usize, seq: u32, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(TAG_HEADER + len);
    m.push(u8::try_from(id).expect("writer id fits a byte"));
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&u16::try_from(len).expect("message length fits 16 bits").to_be_bytes());
    m.extend_from_slice(&pattern(((id as u64) << 32) | seq as u64, len));
    m
}

/// What [`parse_tagged`] found in a stream of tagged messages.
#[derive(Debug)]
pub struct Parsed {
    /// Complete, intact messages per writer (each writer's are 0, 1, 2, ...).
    pub counts: Vec<u32>,
    /// Length of a truncated message at the end.
    pub tail: usize,
    /// The first thing wrong (the parse stops there): a bad writer id, a message out of
    /// sequence (lost, duplicated or reordered), or a corrupted one.
    pub error: Option<String>,
}

/// Parses a stream of tagged messages of `writers` writers, where `msg(id, seq)` is the
/// message `seq` of writer `id`: per writer, the messages must arrive complete, intact,
/// exactly once and in order.
pub fn parse_tagged(data: &[u8], writers: usize, msg: impl Fn(usize, u32) -> Vec<u8>) -> Parsed {
    let mut next = vec![0u32; writers];
    let mut off = 0;
    let error = loop {
        if data.len() - off < TAG_HEADER {
            break None;
        }
        let id = data[off] as usize;
        if id >= writers {
            break Some(format!("bad writer id {id} at byte {off}: the stream is corrupted"));
        }
        let seq = u32::from_be_bytes(data[off + 1..off + 5].try_into().unwrap());
        if seq != next[id] {
            break Some(format!(
                "writer {id}: message {seq} where {} was expected (lost, duplicated or reordered)",
                next[id]
            ));
        }
        let whole = msg(id, seq);
        if data.len() - off < whole.len() {
            break None;
        }
        if data[off..off + whole.len()] != whole[..] {
            break Some(format!("writer {id}: message {seq} is corrupted"));
        }
        next[id] += 1;
        off += whole.len();
    };
    let tail = if error.is_some() { 0 } else { data.len() - off };
    Parsed { counts: next, tail, error }
}
