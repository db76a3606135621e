//! The message benchmark (`benches/PROTOCOL.md`): iocore vs tokio vs smol vs a hand-written
//! mio loop ("floor"), same wire format and per-message work.
//!
//! ```text
//! cargo bench --bench msgbench -- compare --scenario all --runs 5
//! cargo bench --bench msgbench -- compare --scenario basic --runs 1 --quick
//! cargo bench --bench msgbench -- compare --scenario hog,hog1 --runs 5
//! cargo bench --bench msgbench -- compare --scenario open --rate 20000 --client iocore --runs 5
//! cargo bench --bench msgbench -- server --runtime iocore --threads 2 --port 9000
//! cargo bench --bench msgbench -- client --runtime tokio --threads 1 --port 9000 --scenario basic
//! cargo bench --bench msgbench -- help compare
//! ```
//!
//! `compare` starts each server and client as its own process (this binary), the client
//! pinned to the last CPU and the server to the others (when there are 2+ CPUs), alternates
//! server runtimes run by run, and prints markdown tables: msg/s (median of the 2-second
//! window samples), p50/p99/p99.9 latency, server CPU µs per message (utime+stime from
//! /proc, and each apart) and server context switches per message (a proxy for wakeups);
//! ratios iocore ÷ each other runtime with the min–max over the runs.

mod client;
mod open_loop;
mod proto;
mod server;
#[path = "../common/smol_rt.rs"]
mod smol_rt;
#[path = "../common/stats.rs"]
mod stats;
mod stream;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    ints: u32,
    payload: u64,
    connections: usize,
    parallel: usize,
    server_threads: usize,
    target: u64,
    /// Seconds a run lasts, for the scenarios that run for a time instead of to `target`.
    secs: f64,
    /// Adds the hog connection (benches/PROTOCOL.md, "hog").
    hog: bool,
    /// CPU time the server burns per hog message.
    hog_burn: Duration,
    /// Open loop at this many messages/s in total (0: closed loop).
    rate: f64,
    /// The server reads under an idle timeout of this many ms, reset per message (0: none).
    read_timeout_ms: u64,
}

/// The defaults: a closed loop of 100 connections, 1 message in flight each, 128-byte
/// payloads and no ints, to a million replies, 2 server workers.
const CLOSED: Scenario = Scenario {
    name: "",
    ints: 0,
    payload: 128,
    connections: 100,
    parallel: 1,
    server_threads: 2,
    target: 1_000_000,
    secs: 0.0,
    hog: false,
    hog_burn: Duration::ZERO,
    rate: 0.0,
    read_timeout_ms: 0,
};

/// 100 ping-pong connections and the hog (2 ms of CPU per message), for 5 s.
const HOG: Scenario = Scenario {
    name: "hog",
    target: u64::MAX,
    secs: 5.0,
    hog: true,
    hog_burn: Duration::from_millis(2),
    ..CLOSED
};

const SCENARIOS: &[Scenario] = &[
    Scenario { name: "basic", ints: 5, ..CLOSED },
    Scenario { name: "single", ints: 5, server_threads: 1, ..CLOSED },
    Scenario { name: "parallel", parallel: 5, target: 2_000_000, ..CLOSED },
    Scenario { name: "big", payload: 100 * 1024, connections: 200, target: 40_000, ..CLOSED },
    Scenario { name: "massive", connections: 5000, ..CLOSED },
    Scenario { name: "fanout", payload: 100, parallel: 0, target: u64::MAX, secs: 5.0, ..CLOSED },
    HOG,
    Scenario { name: "hog1", server_threads: 1, ..HOG },
    Scenario { name: "open", target: u64::MAX, secs: 5.0, rate: 20_000.0, ..CLOSED },
    // 10k connections, each read under an idle timeout reset per message. (The issue's
    // 100 ms would fire in normal operation here: with 10k connections on 2 shared cores
    // one round trip takes ~100 ms, and connecting them all takes longer. The cost measured,
    // a timer reset per message, does not depend on the duration.)
    Scenario { name: "churn", connections: 10_000, read_timeout_ms: 2_000, ..CLOSED },
];

fn scenario(name: &str) -> Result<Scenario, String> {
    SCENARIOS.iter().find(|s| s.name == name).copied().ok_or_else(|| {
        let names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        format!("unknown scenario {name:?}; one of {names:?}")
    })
}

/// `all` or a comma-separated list of scenario names.
fn scenario_list(which: &str) -> Result<Vec<Scenario>, String> {
    if which == "all" {
        return Ok(SCENARIOS.to_vec());
    }
    which.split(',').map(scenario).collect()
}

fn die(msg: &str) -> ! {
    eprintln!("msgbench: {msg}");
    std::process::exit(64);
}

#[derive(Parser)]
#[command(
    name = "msgbench",
    bin_name = "msgbench",
    about = "The message benchmark of benches/PROTOCOL.md: iocore vs tokio vs a mio loop"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Pin this process to these CPUs ("0,1").
    #[arg(long, global = true)]
    pin: Option<String>,
    /// Passed by `cargo bench` to every `harness = false` target; ignored.
    #[arg(long, global = true, hide = true)]
    bench: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the benchmark protocol until killed.
    Server(ServerArgs),
    /// Run one scenario against a running server and print its results.
    Client(ClientArgs),
    /// Run servers and clients of each runtime as child processes and print markdown tables.
    Compare(CompareArgs),
    /// Server memory per idle connection, per runtime: RSS growth ÷ connections while each
    /// connection's task waits in `recv`.
    Memory(MemoryArgs),
}

#[derive(Args)]
struct MemoryArgs {
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// Alternating rounds per runtime.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum ServerRuntime {
    Iocore,
    Tokio,
    /// tokio's current-thread runtime.
    TokioCt,
    /// smol: an `async_executor::Executor` on `--threads` threads, `async_io` sockets.
    Smol,
    /// A hand-written single-threaded mio loop.
    Floor,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClientRuntime {
    Iocore,
    Tokio,
    Smol,
}

impl ClientRuntime {
    fn name(self) -> &'static str {
        match self {
            ClientRuntime::Iocore => "iocore",
            ClientRuntime::Tokio => "tokio",
            ClientRuntime::Smol => "smol",
        }
    }
}

#[derive(Args)]
struct ServerArgs {
    #[arg(long, value_enum, default_value_t = ServerRuntime::Iocore)]
    runtime: ServerRuntime,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// Set TCP_NODELAY on every connection.
    #[arg(long)]
    nodelay: bool,
    #[arg(long, default_value_t = 8192)]
    read_size: usize,
    /// Serve the fan-out scenario (frames posted from a plain thread).
    #[arg(long)]
    fanout: bool,
    /// Burn this many µs of CPU per hog-marked message (the hog scenario).
    #[arg(long, default_value_t = 0)]
    hog_burn_us: u64,
    /// Read under an idle timeout of this many ms, reset per message (0: none; the churn
    /// scenario); an idle connection is closed.
    #[arg(long, default_value_t = 0)]
    read_timeout_ms: u64,
    /// Connections only wait in `recv` (for `memory`).
    #[arg(long)]
    idle: bool,
}

// The flags without a default override the scenario's setting.
#[derive(Args)]
struct ClientArgs {
    #[arg(long, value_enum, default_value_t = ClientRuntime::Tokio)]
    runtime: ClientRuntime,
    /// basic, single, parallel, big, massive, fanout, hog, hog1, open or churn (benches/PROTOCOL.md).
    #[arg(long, default_value = "basic", value_parser = scenario)]
    scenario: Scenario,
    /// A tenth of the target messages (a fifth of the time of fanout and hog).
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 9000)]
    port: u16,
    #[arg(long)]
    connections: Option<usize>,
    /// Messages in flight per connection.
    #[arg(long)]
    parallel: Option<usize>,
    /// Payload bytes per message.
    #[arg(long)]
    payload: Option<u64>,
    /// Ints per message.
    #[arg(long)]
    ints: Option<u32>,
    /// Replies to receive before stopping.
    #[arg(long)]
    target: Option<u64>,
    /// Open loop: send this many messages/s in total on a fixed schedule (the open
    /// scenario's default: 20000).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 8192)]
    read_size: usize,
    /// Set TCP_NODELAY on every connection.
    #[arg(long)]
    nodelay: bool,
}

#[derive(Args)]
struct CompareArgs {
    /// `all` or a comma-separated list of scenarios.
    // `std::vec::Vec` spelled out: clap takes the parser's list as the one value (a plain
    // `Vec` would mean a repeatable flag).
    #[arg(long = "scenario", value_name = "LIST", default_value = "all", value_parser = scenario_list)]
    scenarios: std::vec::Vec<Scenario>,
    /// Runs per runtime (the tables show medians).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Shorter runs (see `client --quick`), for smoke tests.
    #[arg(long)]
    quick: bool,
    /// The open-loop rate (messages/s in total) of the open scenario.
    #[arg(long)]
    rate: Option<f64>,
    /// CPU µs the hog scenarios' server burns per hog message (default 2000; 0 runs the
    /// same shape with a 101st ordinary connection, the reference for the hog's effect).
    #[arg(long)]
    hog_burn_us: Option<u64>,
    /// The client of the servers table. (tokio's timer has 1 ms granularity: in the open
    /// scenario its sends go out up to 1 ms late, which counts as latency.)
    #[arg(long, value_enum, default_value_t = ClientRuntime::Tokio)]
    client: ClientRuntime,
    /// Pin the servers to these CPUs ("0,1") instead of all CPUs but the last (so that 2
    /// server workers get 2 CPUs on a 2-CPU machine, sharing one with the client).
    #[arg(long)]
    server_cpus: Option<String>,
    /// Pin the clients to these CPUs instead of the last CPU.
    #[arg(long)]
    client_cpus: Option<String>,
}

/// Pins this process to the CPUs in `list` ("0,1").
fn pin(list: &str) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity get valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in list.split(',').filter_map(|c| c.parse::<usize>().ok()) {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("msgbench: sched_setaffinity({list}) failed: {}", std::io::Error::last_os_error());
        }
    }
}

/// Raises the open-file limit to the hard limit (the massive scenario needs 5000+ fds).
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        // A plain `cargo bench` runs every bench target with nothing but `--bench`.
        Cli::command().print_help().expect("stdout");
        std::process::exit(if cli.bench { 0 } else { 64 });
    };
    raise_nofile();
    if let Some(cpus) = &cli.pin {
        pin(cpus);
    }
    match command {
        Cmd::Server(args) => run_server(&args),
        Cmd::Client(args) => run_client(&args),
        Cmd::Compare(args) => compare(&args),
        Cmd::Memory(args) => memory(&args),
    }
}

/// The resident set of process `pid`, in bytes.
fn rss_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(f64::NAN) * 1024.0
}

/// `msgbench memory`: for each runtime in turn, a 2-worker server whose connections wait in
/// `recv`; its RSS before and after `connections` clients connected (blocking clients in
/// this process), divided by the count.
fn memory(args: &MemoryArgs) {
    let runtimes = ["iocore", "tokio", "smol"];
    let mut per_conn: [Vec<f64>; 3] = Default::default();
    for round in 0..args.runs {
        for (i, rt) in runtimes.iter().enumerate() {
            eprintln!("[memory] run {}/{}: {rt}", round + 1, args.runs);
            let port = free_port();
            let server = ServerProc::start(rt, 2, port, &["--idle".to_string()], &None);
            let pid = server.child.id();
            let settle = || std::thread::sleep(Duration::from_millis(300));
            settle();
            let before = rss_of(pid);
            let clients: Vec<std::net::TcpStream> = (0..args.connections)
                .map(|_| {
                    std::net::TcpStream::connect(("127.0.0.1", port))
                        .unwrap_or_else(|e| die(&format!("connect: {e}")))
                })
                .collect();
            // Until every connection was accepted and its task parked: the RSS stops growing.
            let mut last = rss_of(pid);
            loop {
                settle();
                let now = rss_of(pid);
                if now == last {
                    break;
                }
                last = now;
            }
            per_conn[i].push((last - before) / args.connections as f64);
            drop(clients);
        }
    }
    println!("### Server memory per idle connection ({} connections, 2 workers)\n", args.connections);
    println!("| iocore | tokio | smol | iocore ÷ tokio | iocore ÷ smol |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.0} B | {:.0} B | {:.0} B | {} | {} |",
        stats::median(&per_conn[0]),
        stats::median(&per_conn[1]),
        stats::median(&per_conn[2]),
        stats::Ratio::of(&per_conn[0], &per_conn[1]),
        stats::Ratio::of(&per_conn[0], &per_conn[2]),
    );
    println!(
        "\nRSS growth of the server process ÷ connections, median of {} rounds. {}.",
        args.runs,
        stats::RATIO_LEGEND
    );
}

fn run_server(args: &ServerArgs) {
    let opts = server::ServerOpts {
        threads: args.threads,
        port: args.port,
        nodelay: args.nodelay,
        read_size: args.read_size,
        fanout: args.fanout,
        hog_burn: Duration::from_micros(args.hog_burn_us),
        read_timeout: (args.read_timeout_ms > 0).then(|| Duration::from_millis(args.read_timeout_ms)),
        idle: args.idle,
    };
    let r = match args.runtime {
        ServerRuntime::Iocore => server::run_iocore(opts),
        ServerRuntime::Tokio => server::run_tokio(opts, false),
        ServerRuntime::TokioCt => server::run_tokio(opts, true),
        ServerRuntime::Smol => server::run_smol(opts),
        ServerRuntime::Floor => server::run_floor(opts),
    };
    if let Err(e) = r {
        die(&format!("server: {e}"));
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run_client(args: &ClientArgs) {
    let (sc, quick) = (args.scenario, args.quick);
    let fanout = sc.name == "fanout";
    let timed = sc.secs > 0.0;
    let opts = client::ClientOpts {
        threads: args.threads,
        port: args.port,
        connections: args.connections.unwrap_or(sc.connections),
        parallel: args.parallel.unwrap_or(sc.parallel),
        payload: args.payload.unwrap_or(sc.payload),
        ints: args.ints.unwrap_or(sc.ints),
        target: args.target.unwrap_or(if quick && !timed { sc.target / 10 } else { sc.target }),
        read_size: args.read_size,
        nodelay: args.nodelay,
        fanout,
        secs: timed.then(|| if quick { sc.secs / 5.0 } else { sc.secs }),
        hog: sc.hog,
        rate: args.rate.or((sc.rate > 0.0).then_some(sc.rate)),
    };
    let shared = client::Shared::new(opts);
    let runtime = args.runtime;
    let start = Instant::now();
    let s = shared.clone();
    std::thread::spawn(move || {
        let r = match runtime {
            ClientRuntime::Iocore => client::run_iocore(s),
            ClientRuntime::Tokio => client::run_tokio(s),
            ClientRuntime::Smol => client::run_smol(s),
        };
        if let Err(e) = r {
            die(&format!("client: {e}"));
        }
    });
    if let Some(secs) = opts.secs {
        let s = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            s.done.store(true, Ordering::Relaxed);
        });
    }
    let samples = client::report(&shared, start);
    let dur = start.elapsed().as_secs_f64();
    let total = shared.received.load(Ordering::Relaxed);
    // Runs too short for a window sample (e.g. --quick) report their overall rate.
    let med = if samples.is_empty() { total as f64 / dur } else { stats::median(&samples) };
    let max = samples.iter().cloned().fold(0.0, f64::max);
    println!("Total messages: {total}");
    println!("Duration: {dur:.3} s");
    println!("Message/sec(total): {:.0}", total as f64 / dur);
    println!("Message/sec(med): {med:.0}");
    println!("Message/sec(max): {max:.0}");
    let mut lat_ms = std::mem::take(&mut *shared.latencies_ms.lock().unwrap());
    let mut lat_us = std::mem::take(&mut *shared.latencies_us.lock().unwrap());
    lat_ms.sort_unstable();
    lat_us.sort_unstable();
    // Fairness among the ordinary connections (the hog, if any, is the last).
    let per: Vec<u64> =
        shared.per_conn[..opts.connections].iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let (pmin, pmax) = (per.iter().min().copied().unwrap_or(0), per.iter().max().copied().unwrap_or(0));
    if fanout {
        println!(
            "Frames per subscriber: min {pmin}, max {pmax}, min/max {:.3}",
            pmin as f64 / pmax.max(1) as f64
        );
    } else {
        println!("Latency median: {} ms", percentile(&lat_ms, 0.5));
        println!("Latency max: {} ms", lat_ms.last().copied().unwrap_or(0));
        println!(
            "Latency p50/p99/p99.9: {} / {} / {} us",
            percentile(&lat_us, 0.5),
            percentile(&lat_us, 0.99),
            percentile(&lat_us, 0.999)
        );
    }
    if opts.hog {
        println!("Hog messages: {}", shared.per_conn[opts.connections].load(Ordering::Relaxed));
    }
    println!(
        "RESULT total={total} dur={dur:.3} med={med:.0} p50us={} p99us={} p999us={} fairness={:.3} hog={}",
        percentile(&lat_us, 0.5),
        percentile(&lat_us, 0.99),
        percentile(&lat_us, 0.999),
        pmin as f64 / pmax.max(1) as f64,
        if opts.hog { shared.per_conn[opts.connections].load(Ordering::Relaxed) } else { 0 },
    );
    std::process::exit(0);
}

/// A server child process, with CPU accounting from /proc.
struct ServerProc {
    child: Child,
}

/// A server process's CPU time (all its threads) and context switches so far.
#[derive(Clone, Copy)]
struct Usage {
    user_s: f64,
    sys_s: f64,
    switches: u64,
}

impl ServerProc {
    fn start(
        runtime: &str,
        threads: usize,
        port: u16,
        extra: &[String],
        cpus: &Option<String>,
    ) -> ServerProc {
        let exe = std::env::current_exe().expect("own path");
        let mut cmd = Command::new(exe);
        cmd.args([
            "server",
            "--runtime",
            runtime,
            "--threads",
            &threads.to_string(),
            "--port",
            &port.to_string(),
        ]);
        cmd.args(extra);
        if let Some(c) = cpus {
            cmd.args(["--pin", c]);
        }
        let mut child =
            cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| die(&format!("start server: {e}")));
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped")).read_line(&mut line).expect("server output");
        if line.trim() != "ready" {
            die(&format!("server {runtime} did not start: {line:?}"));
        }
        ServerProc { child }
    }

    /// utime and stime of `/proc/<pid>/stat` (the whole process, in clock ticks), and the
    /// voluntary + involuntary context switches of every thread.
    fn usage(&self) -> Usage {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // Fields 14 and 15 of stat(5), counted from the one after the command name.
        let seconds = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / hz;
        let mut switches = 0;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                for l in status.lines() {
                    if l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
                    {
                        switches +=
                            l.split_whitespace().last().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    }
                }
            }
        }
        Usage { user_s: seconds(11), sys_s: seconds(12), switches }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client run's numbers (per message: per reply the client counted).
#[derive(Default, Clone)]
struct RunResult {
    med: f64,
    p50us: f64,
    p99us: f64,
    p999us: f64,
    fairness: f64,
    /// The share of a CPU the hog's handler burned (its messages × the burn ÷ the run's
    /// duration; 0 without a hog).
    hog_cpu: f64,
    user_us_per_msg: f64,
    sys_us_per_msg: f64,
    switches_per_msg: f64,
}

impl RunResult {
    fn cpu_us_per_msg(&self) -> f64 {
        self.user_us_per_msg + self.sys_us_per_msg
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run_pair(
    sc: &Scenario,
    server_rt: &str,
    client_rt: &str,
    quick: bool,
    cpus: &(Option<String>, Option<String>),
) -> RunResult {
    let port = free_port();
    let mut extra = Vec::new();
    if sc.name == "fanout" {
        extra.push("--fanout".to_string());
    }
    if sc.hog {
        extra.extend(["--hog-burn-us".to_string(), sc.hog_burn.as_micros().to_string()]);
    }
    if sc.read_timeout_ms > 0 {
        extra.extend(["--read-timeout-ms".to_string(), sc.read_timeout_ms.to_string()]);
    }
    let server = ServerProc::start(server_rt, sc.server_threads, port, &extra, &cpus.0);
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "client",
        "--runtime",
        client_rt,
        "--threads",
        "1",
        "--port",
        &port.to_string(),
        "--scenario",
        sc.name,
    ]);
    if quick {
        cmd.arg("--quick");
    }
    if sc.rate > 0.0 {
        cmd.args(["--rate", &sc.rate.to_string()]);
    }
    if let Some(c) = &cpus.1 {
        cmd.args(["--pin", c]);
    }
    let u0 = server.usage();
    let out = cmd.output().unwrap_or_else(|e| die(&format!("run client: {e}")));
    let u1 = server.usage();
    drop(server);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        die(&format!(
            "client failed against {server_rt} server ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let result = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| die("client printed no RESULT"));
    let kv: HashMap<&str, f64> = result
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap_or(0.0)))
        .collect();
    let total = kv["total"].max(1.0);
    RunResult {
        med: kv["med"],
        p50us: kv["p50us"],
        p99us: kv["p99us"],
        p999us: kv["p999us"],
        fairness: kv["fairness"],
        hog_cpu: kv.get("hog").copied().unwrap_or(0.0) * sc.hog_burn.as_secs_f64() / kv["dur"].max(1e-9),
        user_us_per_msg: (u1.user_s - u0.user_s) * 1e6 / total,
        sys_us_per_msg: (u1.sys_s - u0.sys_s) * 1e6 / total,
        switches_per_msg: (u1.switches - u0.switches) as f64 / total,
    }
}

/// One runtime's runs of one scenario, in run order (round i of every runtime ran together).
struct Runs {
    runtime: &'static str,
    runs: Vec<RunResult>,
}

impl Runs {
    fn values(&self, f: fn(&RunResult) -> f64) -> Vec<f64> {
        self.runs.iter().map(f).collect()
    }

    fn med(&self, f: fn(&RunResult) -> f64) -> f64 {
        stats::median(&self.values(f))
    }

    /// The `iocore ÷ this` cells for `metrics` ("—" in iocore's own row).
    fn ratios(&self, iocore: &Runs, metrics: &[fn(&RunResult) -> f64]) -> String {
        let cell = |f: &fn(&RunResult) -> f64| {
            if std::ptr::eq(self, iocore) {
                "—".to_string()
            } else {
                stats::Ratio::of(&iocore.values(*f), &self.values(*f)).to_string()
            }
        };
        metrics.iter().map(cell).collect::<Vec<_>>().join(" | ")
    }
}

/// Runs `sc` with each of `runtimes` in turn, `runs` rounds; `pair` picks (server, client).
fn alternate(
    sc: &Scenario,
    runtimes: &[&'static str],
    runs: usize,
    pair: impl Fn(&'static str) -> (&'static str, &'static str),
    mut run: impl FnMut(&Scenario, &str, &str) -> RunResult,
) -> Vec<Runs> {
    let mut out: Vec<Runs> = runtimes.iter().map(|&runtime| Runs { runtime, runs: Vec::new() }).collect();
    for round in 0..runs {
        for r in out.iter_mut() {
            let (server, client) = pair(r.runtime);
            eprintln!("[{}] run {}/{runs}: {server} server, {client} client", sc.name, round + 1);
            r.runs.push(run(sc, server, client));
        }
    }
    out
}

/// A table column: one number of every run, shown as the median.
#[derive(Clone, Copy)]
struct Metric {
    header: &'static str,
    get: fn(&RunResult) -> f64,
    decimals: usize,
}

/// A markdown table, a row per scenario and runtime: the medians of `cols`, then
/// iocore ÷ this runtime for each of `ratios` (iocore is each scenario's first row).
fn print_table(
    title: &str,
    role: &str,
    tables: &[(&Scenario, Vec<Runs>)],
    cols: &[Metric],
    ratios: &[Metric],
) {
    let headers: Vec<&str> = cols.iter().map(|c| c.header).collect();
    let ratio_headers: Vec<&str> = ratios.iter().map(|c| c.header).collect();
    println!("### {title}\n");
    println!(
        "| scenario | server workers | {role} | {} | iocore ÷ this: {} |",
        headers.join(" | "),
        ratio_headers.join(" | ")
    );
    println!("|{}", "---|".repeat(3 + cols.len() + ratios.len()));
    for (sc, rows) in tables {
        for r in rows {
            let cells: Vec<String> =
                cols.iter().map(|c| format!("{:.*}", c.decimals, r.med(c.get))).collect();
            let getters: Vec<_> = ratios.iter().map(|c| c.get).collect();
            println!(
                "| {} | {} | {} | {} | {} |",
                sc.name,
                sc.server_threads,
                r.runtime,
                cells.join(" | "),
                r.ratios(&rows[0], &getters)
            );
        }
    }
    println!();
}

fn compare(args: &CompareArgs) {
    let (runs, quick) = (args.runs, args.quick);
    // `--rate` sets the open-loop scenarios' rate.
    let scenarios: Vec<Scenario> = args
        .scenarios
        .iter()
        .map(|&sc| match args.rate {
            Some(rate) if sc.rate > 0.0 => Scenario { rate, ..sc },
            _ => sc,
        })
        .map(|sc| match args.hog_burn_us {
            Some(us) if sc.hog => Scenario { hog_burn: Duration::from_micros(us), ..sc },
            _ => sc,
        })
        .collect();
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (server_cpus, client_cpus) = if ncpu >= 2 {
        (
            Some((0..ncpu - 1).map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
            Some((ncpu - 1).to_string()),
        )
    } else {
        (None, None)
    };
    let cpus = (args.server_cpus.clone().or(server_cpus), args.client_cpus.clone().or(client_cpus));
    println!(
        "msgbench compare: {runs} run(s) per runtime{}, {ncpu} CPUs (server pinned to {:?}, client to {:?})\n",
        if quick { ", --quick" } else { "" },
        cpus.0,
        cpus.1
    );
    let run = |sc: &Scenario, server: &str, client: &str| run_pair(sc, server, client, quick, &cpus);
    let mut server_tables = Vec::new();
    let mut client_tables = Vec::new();
    for sc in &scenarios {
        let tokio_rt = if sc.server_threads == 1 { "tokio-ct" } else { "tokio" };
        let mut servers = vec!["iocore", tokio_rt, "smol"];
        if sc.server_threads == 1 {
            servers.push("floor");
        }
        server_tables.push((sc, alternate(sc, &servers, runs, |rt| (rt, args.client.name()), run)));
        // The hog scenarios are about the server's scheduling: no client table.
        if !sc.hog {
            let clients = ["iocore", "tokio", "smol"];
            client_tables.push((sc, alternate(sc, &clients, runs, |rt| (tokio_rt, rt), run)));
        }
    }
    let m = |header, get, decimals| Metric { header, get, decimals };
    let msgs = m("msg/s", |r: &RunResult| r.med, 0);
    let (p50, p99, p999) =
        (m("p50 µs", |r| r.p50us, 0), m("p99 µs", |r| r.p99us, 0), m("p99.9 µs", |r| r.p999us, 0));
    let cpu = m("CPU µs/msg", RunResult::cpu_us_per_msg, 2);
    let mut columns = vec![
        msgs,
        p50,
        p99,
        p999,
        cpu,
        m("user µs/msg", |r| r.user_us_per_msg, 2),
        m("sys µs/msg", |r| r.sys_us_per_msg, 2),
        m("ctxsw/msg", |r| r.switches_per_msg, 3),
        m("fairness", |r| r.fairness, 2),
    ];
    if scenarios.iter().any(|sc| sc.hog) {
        // What the hog got: a fair scheduler must not buy the others' latency by starving it.
        columns.push(m("hog CPU %", |r| r.hog_cpu * 100.0, 1));
    }
    print_table(
        &format!("Servers (client: {}, 1 thread)", args.client.name()),
        "server",
        &server_tables,
        &columns,
        &[msgs, cpu, p99],
    );
    if !client_tables.is_empty() {
        print_table("Clients (server: tokio)", "client", &client_tables, &[msgs, p50, p99], &[msgs, p99]);
    }
    println!("Cells: medians of the runs. {}.", stats::RATIO_LEGEND);
}
