//! Scheduler benchmarks, iocore side by side with tokio and smol in one invocation.
//!
//! Run: `cargo bench --bench sched` (optional: `-- --runs 11`).
//!
//! Each row runs the same workload on iocore, on tokio's multi-thread runtime and on smol's
//! runtime (`common/smol_rt.rs`: one `async_executor::Executor` run by N threads) with the
//! same worker count (2), alternating iocore/tokio/smol for `--runs` rounds, and reports
//! medians and the ratios iocore ÷ tokio and iocore ÷ smol (< 1.0: iocore faster) with the
//! min–max of the per-round ratios. Rows marked `1t` compare a 1-thread iocore with tokio's
//! current-thread runtime and a 1-thread smol executor. Memory per parked task is measured in a
//! child process per runtime (RSS growth ÷ N), so allocator state does not leak between
//! runs. `timers` runs 100k timers (a load test: lateness is queueing delay) and 1k timers
//! (precision under light load); `timers behind a long poll` the worst lateness of timers
//! due while a task polls for 10 ms on one of the 2 workers. `run with N parked` is the scheduler's cost per task run
//! (a wake, a poll, a new deadline) while N tasks wait on far deadlines, for N from 1k to
//! 1M, and the last line its growth from 1k to 1M per runtime. Nothing here is asserted:
//! timing belongs to benchmarks, not tests.

#[path = "common/smol_rt.rs"]
mod smol_rt;
#[path = "common/stats.rs"]
mod stats;

use futures::channel::oneshot;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 2;

/// What a benchmark needs from a runtime.
trait Runtime: Send + Sync + 'static {
    fn block_on<F: Future>(&self, f: F) -> F::Output;
    /// Spawns on the runtime of the calling task.
    fn spawn<F>(f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawns from a thread outside the runtime.
    fn spawn_remote<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
    fn yield_now() -> impl Future<Output = ()> + Send;
}

impl Runtime for iocore::IoCore {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        iocore::IoCore::block_on(self, f)
    }
    fn spawn<F>(f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = iocore::spawn(f);
        async move { h.await.unwrap() }
    }
    fn spawn_remote<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = iocore::IoCore::spawn(self, f);
        async move { h.await.unwrap() }
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        iocore::time::sleep(d)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        iocore::task::yield_now()
    }
}

impl Runtime for tokio::runtime::Runtime {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio::runtime::Runtime::block_on(self, f)
    }
    fn spawn<F>(f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = tokio::spawn(f);
        async move { h.await.unwrap() }
    }
    fn spawn_remote<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let h = tokio::runtime::Runtime::spawn(self, f);
        async move { h.await.unwrap() }
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

impl Runtime for smol_rt::SmolRuntime {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        smol_rt::SmolRuntime::block_on(self, f)
    }
    fn spawn<F>(f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol_rt::spawn(f)
    }
    fn spawn_remote<F>(&self, f: F) -> impl Future<Output = F::Output> + Send + 'static
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol_rt::SmolRuntime::spawn(self, f)
    }
    async fn sleep(d: Duration) {
        async_io::Timer::after(d).await;
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
}

fn spawn_many_local<R: Runtime>(rt: &R) {
    rt.block_on(async {
        R::spawn(async {
            let handles: Vec<_> = (0..10_000).map(|i| R::spawn(async move { i })).collect();
            for h in handles {
                h.await;
            }
        })
        .await
    });
}

fn spawn_many_remote<R: Runtime>(rt: &R) {
    let handles: Vec<_> = (0..10_000).map(|i| rt.spawn_remote(async move { i })).collect();
    rt.block_on(async {
        for h in handles {
            h.await;
        }
    });
}

fn yield_many<R: Runtime>(rt: &R) {
    let handles: Vec<_> = (0..200)
        .map(|_| {
            rt.spawn_remote(async {
                for _ in 0..1000 {
                    R::yield_now().await;
                }
            })
        })
        .collect();
    rt.block_on(async {
        for h in handles {
            h.await;
        }
    });
}

fn ping_pong<R: Runtime>(rt: &R) {
    rt.block_on(async {
        R::spawn(async {
            for _ in 0..1000 {
                let (ping_tx, ping_rx) = oneshot::channel::<()>();
                let (pong_tx, pong_rx) = oneshot::channel::<()>();
                drop(R::spawn(async move {
                    ping_rx.await.unwrap();
                    pong_tx.send(()).unwrap();
                }));
                ping_tx.send(()).unwrap();
                pong_rx.await.unwrap();
            }
        })
        .await
    });
}

fn chained_spawn<R: Runtime>(rt: &R) {
    fn chain<R: Runtime>(left: usize, done: oneshot::Sender<()>) {
        if left == 0 {
            done.send(()).unwrap();
        } else {
            drop(R::spawn(async move { chain::<R>(left - 1, done) }));
        }
    }
    rt.block_on(async {
        R::spawn(async {
            let (tx, rx) = oneshot::channel();
            chain::<R>(1000, tx);
            rx.await.unwrap();
        })
        .await
    });
}

/// One parked task of [`parked_scaling`]: a flag its waker checks.
struct Slot {
    woken: std::sync::atomic::AtomicBool,
    waker: futures::task::AtomicWaker,
}

impl Slot {
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// Counts task runs and wakes the driver when a target is reached.
struct Runs {
    done: AtomicUsize,
    target: AtomicUsize,
    waker: futures::task::AtomicWaker,
}

impl Runs {
    fn ran(&self) {
        if self.done.fetch_add(1, Ordering::AcqRel) + 1 >= self.target.load(Ordering::Acquire) {
            self.waker.wake();
        }
    }

    /// Waits until `target` runs in all were counted.
    async fn reach(&self, target: usize) {
        self.target.store(target, Ordering::Release);
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.done.load(Ordering::Acquire) >= target {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    }
}

/// Tasks woken per round, and rounds, of [`parked_scaling`].
const SCALING_WAKES: usize = 1000;
const SCALING_ROUNDS: usize = 20;

/// The scheduler's cost per task run with `n` tasks parked on far deadlines: each round
/// wakes [`SCALING_WAKES`] of them (spread over all), each runs once and parks again on a
/// new deadline; returns µs per wake-and-run. (Setting up and tearing down the `n` tasks is
/// not timed.)
fn parked_scaling<R: Runtime>(rt: &R, n: usize) -> f64 {
    let runs = Arc::new(Runs {
        done: AtomicUsize::new(0),
        target: AtomicUsize::new(usize::MAX),
        waker: Default::default(),
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slots: Vec<Arc<Slot>> =
        (0..n).map(|_| Arc::new(Slot { woken: Default::default(), waker: Default::default() })).collect();
    for (i, slot) in slots.iter().enumerate() {
        let (slot, runs, stop) = (slot.clone(), runs.clone(), stop.clone());
        drop(rt.spawn_remote(async move {
            loop {
                // A far deadline, distinct per task and per run.
                let sleep = R::sleep(Duration::from_secs(3600) + Duration::from_micros(i as u64 * 7));
                let flag = std::future::poll_fn(|cx| {
                    slot.waker.register(cx.waker());
                    if slot.woken.swap(false, Ordering::AcqRel) {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                });
                futures::future::select(std::pin::pin!(sleep), std::pin::pin!(flag)).await;
                // Read before counting: the driver sets `stop` only after counting this run,
                // so a task that read `false` is still there for the stop round's wake.
                let stopping = stop.load(Ordering::Acquire);
                runs.ran();
                if stopping {
                    return;
                }
            }
        }));
    }
    // Every task has registered its waker once it parked: count them in with one wake each.
    rt.block_on(async {
        for s in &slots {
            s.wake();
        }
        runs.reach(n).await;
    });
    let stride = (n / SCALING_WAKES).max(1);
    let start = Instant::now();
    rt.block_on(async {
        let mut expect = n;
        for round in 0..SCALING_ROUNDS {
            for k in 0..SCALING_WAKES.min(n) {
                slots[(k * stride + round) % n].wake();
            }
            expect += SCALING_WAKES.min(n);
            runs.reach(expect).await;
        }
    });
    let per_run = start.elapsed().as_secs_f64() * 1e6 / (SCALING_ROUNDS * SCALING_WAKES.min(n)) as f64;
    stop.store(true, Ordering::Release);
    rt.block_on(async {
        let before = runs.done.load(Ordering::Acquire);
        for s in &slots {
            s.wake();
        }
        runs.reach(before + n).await;
    });
    per_run
}

struct TimerStats {
    total: Duration,
    late_p50: Duration,
    late_p99: Duration,
}

fn timers<R: Runtime>(rt: &R, count: usize) -> TimerStats {
    let start = Instant::now();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let handles: Vec<_> = (0..count)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let d = Duration::from_micros(1000 + seed % 49_000);
            rt.spawn_remote(async move {
                let deadline = Instant::now() + d;
                R::sleep(d).await;
                Instant::now().saturating_duration_since(deadline)
            })
        })
        .collect();
    let mut late = rt.block_on(async {
        let mut v = Vec::with_capacity(handles.len());
        for h in handles {
            v.push(h.await);
        }
        v
    });
    let total = start.elapsed();
    late.sort();
    TimerStats { total, late_p50: late[late.len() / 2], late_p99: late[late.len() * 99 / 100] }
}

/// Timers due while another task polls for 10 ms without yielding: the worst lateness (ms)
/// of 8 timers due 0.25–3.75 ms into that poll. They stay precise only if another worker
/// keeps watching the deadlines while the role's last holder is stuck in the poll.
fn timers_behind_a_long_poll<R: Runtime>(rt: &R) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        let hog = R::spawn(async {
            R::sleep(Duration::from_millis(2)).await;
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(10) {
                std::hint::spin_loop();
            }
        });
        let timers: Vec<_> = (0..8)
            .map(|i| {
                let deadline = start + Duration::from_micros(2250 + 500 * i);
                R::spawn(async move {
                    R::sleep(deadline.saturating_duration_since(Instant::now())).await;
                    Instant::now().saturating_duration_since(deadline)
                })
            })
            .collect();
        hog.await;
        let mut worst = Duration::ZERO;
        for t in timers {
            worst = worst.max(t.await);
        }
        worst.as_secs_f64() * 1e3
    })
}

fn time_it(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// The three runtimes of a row, in column order.
const RUNTIMES: usize = 3;

/// Runs the closures in turn, `runs` rounds (after one warm-up round); returns each one's
/// times in ms, round by round.
fn alternate(runs: usize, mut fs: [&mut dyn FnMut(); RUNTIMES]) -> [Vec<f64>; RUNTIMES] {
    for f in fs.iter_mut() {
        f();
    }
    let mut t: [Vec<f64>; RUNTIMES] = Default::default();
    for _ in 0..runs {
        for (f, v) in fs.iter_mut().zip(t.iter_mut()) {
            v.push(time_it(*f));
        }
    }
    t
}

/// One table row: the medians of iocore, tokio and smol, then iocore ÷ tokio and iocore ÷ smol.
fn row(name: &str, unit: &str, t: &[Vec<f64>; RUNTIMES]) {
    let [io, tk, sm] = t;
    println!(
        "| {name:<26} | {:>10.3} {unit:<3} | {:>10.3} {unit:<3} | {:>10.3} {unit:<3} | {} | {} |",
        stats::median(io),
        stats::median(tk),
        stats::median(sm),
        stats::Ratio::of(io, tk),
        stats::Ratio::of(io, sm),
    );
}

fn iocore_rt(threads: usize) -> iocore::IoCore {
    iocore::IoCore::builder().threads(threads).build().expect("iocore core")
}

fn tokio_mt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(THREADS).enable_all().build().unwrap()
}

fn tokio_ct() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Child process: parks `n` tasks on one runtime and prints RSS growth per task.
fn mem_child(which: &str, n: usize) {
    fn park_all<R: Runtime>(rt: &R, n: usize) -> f64 {
        let polled = Arc::new(AtomicUsize::new(0));
        let before = rss_bytes();
        for _ in 0..n {
            let polled = polled.clone();
            drop(rt.spawn_remote(async move {
                polled.fetch_add(1, Ordering::Relaxed);
                futures::future::pending::<()>().await;
            }));
        }
        while polled.load(Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(5));
        }
        (rss_bytes() - before) as f64 / n as f64
    }
    let per_task = match which {
        "iocore" => park_all(&iocore_rt(THREADS), n),
        "smol" => park_all(&smol_rt::SmolRuntime::new(THREADS), n),
        _ => park_all(&tokio_mt(), n),
    };
    println!("{per_task}");
    std::process::exit(0);
}

fn mem_per_task(which: &str, n: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--mem-child", which, &n.to_string()])
        .output()
        .expect("run memory child");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--mem-child") {
        mem_child(&args[i + 1], args[i + 2].parse().unwrap());
    }
    let runs =
        args.iter().position(|a| a == "--runs").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(7);
    // `--only NAME`: just the rows whose name contains NAME (e.g. `parked`, `timers`).
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1).cloned());
    let want = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));

    let io2 = iocore_rt(THREADS);
    let tk2 = tokio_mt();
    let sm2 = smol_rt::SmolRuntime::new(THREADS);
    let io1 = iocore_rt(1);
    let tk1 = tokio_ct();
    let sm1 = smol_rt::SmolRuntime::new(1);
    println!(
        "iocore vs tokio vs smol, {THREADS} workers (`1t`: 1-thread iocore vs tokio current-thread vs \
         1-thread smol), median of {runs} alternating rounds\n"
    );
    println!("| benchmark                  |     iocore     |     tokio      |      smol      | iocore ÷ tokio | iocore ÷ smol |");
    println!("|----------------------------|----------------|----------------|----------------|----------------|---------------|");
    macro_rules! bench {
        ($name:literal, $f:ident) => {{
            if !want($name) {
                // skipped by --only
            } else {
                row($name, "ms", &alternate(runs, [&mut || $f(&io2), &mut || $f(&tk2), &mut || $f(&sm2)]));
                row(
                    concat!($name, " 1t"),
                    "ms",
                    &alternate(runs, [&mut || $f(&io1), &mut || $f(&tk1), &mut || $f(&sm1)]),
                );
            }
        }};
    }
    bench!("spawn_many_local", spawn_many_local);
    bench!("spawn_many_remote", spawn_many_remote);
    bench!("yield_many", yield_many);
    bench!("ping_pong", ping_pong);
    bench!("chained_spawn", chained_spawn);

    for (count, label) in [(100_000, "100k"), (1_000, "1k")].into_iter().filter(|_| want("timers")) {
        let mut t: [Vec<TimerStats>; RUNTIMES] = Default::default();
        for _ in 0..runs.min(3) {
            t[0].push(timers(&io2, count));
            t[1].push(timers(&tk2, count));
            t[2].push(timers(&sm2, count));
        }
        let ms = |f: fn(&TimerStats) -> Duration| {
            t.each_ref().map(|v| v.iter().map(|s| f(s).as_secs_f64() * 1e3).collect::<Vec<_>>())
        };
        row(&format!("timers {label} total"), "ms", &ms(|s| s.total));
        row(&format!("timers {label} lateness p50"), "ms", &ms(|s| s.late_p50));
        row(&format!("timers {label} lateness p99"), "ms", &ms(|s| s.late_p99));
    }
    if want("timers behind a long poll") {
        let mut t: [Vec<f64>; RUNTIMES] = Default::default();
        for _ in 0..runs.max(5) {
            t[0].push(timers_behind_a_long_poll(&io2));
            t[1].push(timers_behind_a_long_poll(&tk2));
            t[2].push(timers_behind_a_long_poll(&sm2));
        }
        row("timers behind a long poll", "ms", &t);
    }
    drop((io1, tk1, sm1));

    // Scheduler scaling: µs per wake-and-run with N tasks parked on deadlines.
    let mut per_size = Vec::new();
    for (n, label) in [(1_000, "1k"), (10_000, "10k"), (100_000, "100k"), (1_000_000, "1M")]
        .into_iter()
        .filter(|_| want("run with parked"))
    {
        let mut t: [Vec<f64>; RUNTIMES] = Default::default();
        for _ in 0..runs.min(3) {
            t[0].push(parked_scaling(&io2, n));
            t[1].push(parked_scaling(&tk2, n));
            t[2].push(parked_scaling(&sm2, n));
        }
        row(&format!("run with {label} parked"), "µs", &t);
        per_size.push(t.map(|v| stats::median(&v)));
    }
    drop((io2, tk2, sm2));

    if want("memory per parked task") {
        let n = 500_000;
        row("memory per parked task", "B", &["iocore", "tokio", "smol"].map(|rt| vec![mem_per_task(rt, n)]));
    }
    println!("\n{}", stats::RATIO_LEGEND);
    if let (Some(first), Some(last)) = (per_size.first(), per_size.last()) {
        println!(
            "\nScaling, cost per run with 1M ÷ with 1k parked tasks: iocore {:.2}, tokio {:.2}, smol {:.2}",
            last[0] / first[0],
            last[1] / first[1],
            last[2] / first[2]
        );
    }
}
