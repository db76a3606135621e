//! The message benchmark (`benches/PROTOCOL.md`): iocore vs tokio vs a hand-written
//! mio loop ("floor"), same wire format and per-message work.
//!
//! ```text
//! cargo bench --bench msgbench -- compare --scenario all --runs 5
//! cargo bench --bench msgbench -- compare --scenario basic --runs 1 --quick
//! cargo bench --bench msgbench -- server --runtime iocore --threads 2 --port 9000
//! cargo bench --bench msgbench -- client --runtime tokio --threads 1 --port 9000 --scenario basic
//! cargo bench --bench msgbench -- help compare
//! ```
//!
//! `compare` starts each server and client as its own process (this binary), the client
//! pinned to the last CPU and the server to the others (when there are 2+ CPUs), alternates
//! server runtimes run by run, and prints markdown tables: msg/s (median of the 2-second
//! window samples), p99 latency, server CPU µs per message (utime+stime from /proc) and
//! server context switches per message (a proxy for wakeups).

mod client;
mod proto;
mod server;
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
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "basic",
        ints: 5,
        payload: 128,
        connections: 100,
        parallel: 1,
        server_threads: 2,
        target: 1_000_000,
    },
    Scenario {
        name: "single",
        ints: 5,
        payload: 128,
        connections: 100,
        parallel: 1,
        server_threads: 1,
        target: 1_000_000,
    },
    Scenario {
        name: "parallel",
        ints: 0,
        payload: 128,
        connections: 100,
        parallel: 5,
        server_threads: 2,
        target: 2_000_000,
    },
    Scenario {
        name: "big",
        ints: 0,
        payload: 100 * 1024,
        connections: 200,
        parallel: 1,
        server_threads: 2,
        target: 40_000,
    },
    Scenario {
        name: "massive",
        ints: 0,
        payload: 128,
        connections: 5000,
        parallel: 1,
        server_threads: 2,
        target: 1_000_000,
    },
    Scenario {
        name: "fanout",
        ints: 0,
        payload: 100,
        connections: 100,
        parallel: 0,
        server_threads: 2,
        target: 0,
    },
];

/// Seconds a fan-out run lasts.
const FANOUT_SECS: f64 = 5.0;

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
}

#[derive(Clone, Copy, ValueEnum)]
enum ServerRuntime {
    Iocore,
    Tokio,
    /// tokio's current-thread runtime.
    TokioCt,
    /// A hand-written single-threaded mio loop.
    Floor,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClientRuntime {
    Iocore,
    Tokio,
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
}

// The flags without a default override the scenario's setting.
#[derive(Args)]
struct ClientArgs {
    #[arg(long, value_enum, default_value_t = ClientRuntime::Tokio)]
    runtime: ClientRuntime,
    /// basic, single, parallel, big, massive or fanout (benches/PROTOCOL.md).
    #[arg(long, default_value = "basic", value_parser = scenario)]
    scenario: Scenario,
    /// A tenth of the target messages (a fifth of the fan-out time).
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
    }
}

fn run_server(args: &ServerArgs) {
    let opts = server::ServerOpts {
        threads: args.threads,
        port: args.port,
        nodelay: args.nodelay,
        read_size: args.read_size,
        fanout: args.fanout,
    };
    let r = match args.runtime {
        ServerRuntime::Iocore => server::run_iocore(opts),
        ServerRuntime::Tokio => server::run_tokio(opts, false),
        ServerRuntime::TokioCt => server::run_tokio(opts, true),
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

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn run_client(args: &ClientArgs) {
    let (sc, quick) = (args.scenario, args.quick);
    let fanout = sc.name == "fanout";
    let opts = client::ClientOpts {
        threads: args.threads,
        port: args.port,
        connections: args.connections.unwrap_or(sc.connections),
        parallel: args.parallel.unwrap_or(sc.parallel),
        payload: args.payload.unwrap_or(sc.payload),
        ints: args.ints.unwrap_or(sc.ints),
        target: args.target.unwrap_or(if quick { sc.target / 10 } else { sc.target }),
        read_size: args.read_size,
        nodelay: args.nodelay,
        fanout_secs: fanout.then(|| if quick { FANOUT_SECS / 5.0 } else { FANOUT_SECS }),
    };
    let shared = client::Shared::new(opts);
    let runtime = args.runtime;
    let start = Instant::now();
    let s = shared.clone();
    std::thread::spawn(move || {
        let r = match runtime {
            ClientRuntime::Iocore => client::run_iocore(s),
            ClientRuntime::Tokio => client::run_tokio(s),
        };
        if let Err(e) = r {
            die(&format!("client: {e}"));
        }
    });
    if let Some(secs) = opts.fanout_secs {
        let s = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            s.done.store(true, Ordering::Relaxed);
        });
    }
    let mut samples = client::report(&shared, start);
    let dur = start.elapsed().as_secs_f64();
    let total = shared.received.load(Ordering::Relaxed);
    // Runs too short for a window sample (e.g. --quick) report their overall rate.
    let med = if samples.is_empty() { total as f64 / dur } else { median(&mut samples) };
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
    let per: Vec<u64> = shared.per_conn.iter().map(|c| c.load(Ordering::Relaxed)).collect();
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
    println!(
        "RESULT total={total} dur={dur:.3} med={med:.0} p99us={} fairness={:.3}",
        percentile(&lat_us, 0.99),
        pmin as f64 / pmax.max(1) as f64
    );
    std::process::exit(0);
}

/// A server child process, with CPU accounting from /proc.
struct ServerProc {
    child: Child,
}

impl ServerProc {
    fn start(runtime: &str, threads: usize, port: u16, fanout: bool, cpus: &Option<String>) -> ServerProc {
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
        if fanout {
            cmd.arg("--fanout");
        }
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

    /// (CPU seconds, context switches) so far.
    fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
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
        (ticks as f64 / hz, switches)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default, Clone)]
struct RunResult {
    med: f64,
    p99us: f64,
    fairness: f64,
    cpu_us_per_msg: f64,
    switches_per_msg: f64,
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
    let fanout = sc.name == "fanout";
    let server = ServerProc::start(server_rt, sc.server_threads, port, fanout, &cpus.0);
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
    if let Some(c) = &cpus.1 {
        cmd.args(["--pin", c]);
    }
    let (cpu0, sw0) = server.usage();
    let out = cmd.output().unwrap_or_else(|e| die(&format!("run client: {e}")));
    let (cpu1, sw1) = server.usage();
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
        p99us: kv["p99us"],
        fairness: kv["fairness"],
        cpu_us_per_msg: (cpu1 - cpu0) * 1e6 / total,
        switches_per_msg: (sw1 - sw0) as f64 / total,
    }
}

fn med_of(rs: &[RunResult], f: fn(&RunResult) -> f64) -> f64 {
    median(&mut rs.iter().map(f).collect::<Vec<_>>())
}

fn compare(args: &CompareArgs) {
    let (runs, quick, scenarios) = (args.runs, args.quick, &args.scenarios);
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpus = if ncpu >= 2 {
        (
            Some((0..ncpu - 1).map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
            Some((ncpu - 1).to_string()),
        )
    } else {
        (None, None)
    };
    println!(
        "msgbench compare: {runs} run(s) per runtime{}, {ncpu} CPUs (server pinned to {:?}, client to {:?})\n",
        if quick { ", --quick" } else { "" },
        cpus.0,
        cpus.1
    );
    let mut table1 = Vec::new();
    let mut table2 = Vec::new();
    for sc in scenarios {
        let tokio_rt = if sc.server_threads == 1 { "tokio-ct" } else { "tokio" };
        let mut servers = vec!["iocore", tokio_rt];
        if sc.server_threads == 1 {
            servers.push("floor");
        }
        let mut results: HashMap<&str, Vec<RunResult>> = HashMap::new();
        for run in 0..runs {
            for rt in &servers {
                eprintln!("[{}] run {}/{runs}: {rt} server, tokio client", sc.name, run + 1);
                results.entry(rt).or_default().push(run_pair(sc, rt, "tokio", quick, &cpus));
            }
        }
        table1.push((
            sc.name,
            servers.iter().map(|rt| (rt.to_string(), results[rt].clone())).collect::<Vec<_>>(),
        ));
        let mut clients: HashMap<&str, Vec<RunResult>> = HashMap::new();
        for run in 0..runs {
            for crt in ["iocore", "tokio"] {
                eprintln!("[{}] run {}/{runs}: tokio server, {crt} client", sc.name, run + 1);
                clients.entry(crt).or_default().push(run_pair(sc, tokio_rt, crt, quick, &cpus));
            }
        }
        table2.push((sc.name, clients));
    }
    println!("### Servers (client: tokio, 1 thread)\n");
    println!("| scenario | iocore msg/s | tokio msg/s | ratio | iocore p99 µs | tokio p99 µs | iocore CPU µs/msg | tokio CPU µs/msg | iocore ctxsw/msg | tokio ctxsw/msg | floor msg/s | floor CPU µs/msg | fairness io/tk |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, rows) in &table1 {
        let get =
            |rt: &str| rows.iter().find(|(r, _)| r.starts_with(rt)).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
        let (io, tk, fl) = (get("iocore"), get("tokio"), get("floor"));
        let (io_med, tk_med) = (med_of(io, |r| r.med), med_of(tk, |r| r.med));
        let floor = if fl.is_empty() { "—".to_string() } else { format!("{:.0}", med_of(fl, |r| r.med)) };
        let floor_cpu = if fl.is_empty() {
            "—".to_string()
        } else {
            format!("{:.2}", med_of(fl, |r| r.cpu_us_per_msg))
        };
        println!(
            "| {name} | {io_med:.0} | {tk_med:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {:.3} | {:.3} | {floor} | {floor_cpu} | {:.2}/{:.2} |",
            io_med / tk_med.max(1.0),
            med_of(io, |r| r.p99us),
            med_of(tk, |r| r.p99us),
            med_of(io, |r| r.cpu_us_per_msg),
            med_of(tk, |r| r.cpu_us_per_msg),
            med_of(io, |r| r.switches_per_msg),
            med_of(tk, |r| r.switches_per_msg),
            med_of(io, |r| r.fairness),
            med_of(tk, |r| r.fairness),
        );
    }
    println!("\n### Clients (server: tokio)\n");
    println!(
        "| scenario | iocore client msg/s | tokio client msg/s | ratio | iocore p99 µs | tokio p99 µs |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, c) in &table2 {
        let (io, tk) = (&c["iocore"], &c["tokio"]);
        let (a, b) = (med_of(io, |r| r.med), med_of(tk, |r| r.med));
        println!(
            "| {name} | {a:.0} | {b:.0} | {:.2} | {:.0} | {:.0} |",
            a / b.max(1.0),
            med_of(io, |r| r.p99us),
            med_of(tk, |r| r.p99us)
        );
    }
}
