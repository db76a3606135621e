//! A Redis-protocol (RESP2 subset) key-value server on iocore: PING, ECHO, SET, GET, DEL,
//! INCR, EXISTS, with pipelining; replies go out through `post_send`.
//!
//! Run: `cargo run --release --example kv -- --port 6379` and talk to it with
//! `redis-cli -p 6379` or measure it with `redis-benchmark -p 6379 -t ping,set,get`.
//! `--runtime tokio` serves the same protocol code on tokio, for side-by-side measurement;
//! `--help` lists the options. On SIGINT or SIGTERM the iocore server stops accepting,
//! answers the requests it has read, closes its connections and exits 0.

#[path = "../shared/log_limit.rs"]
mod log_limit;
use log_limit::LogLimit;
mod resp;
mod server;

/// How long connections get to finish after SIGINT/SIGTERM.
const GRACE: Duration = Duration::from_secs(5);

use clap::{Parser, ValueEnum};
use futures::FutureExt;
use iocore::signal::{signal, SignalKind};
use resp::{Conn, Limits, Status, REPLY_BATCH};
use server::{Config, Server};
use std::sync::Arc;
use std::time::Duration;

/// A duration given in (possibly fractional) seconds.
fn seconds(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

/// A Redis-protocol (RESP2 subset) key-value server on 127.0.0.1.
///
/// Breaking a limit is a protocol error: the client gets `-ERR Protocol error: …` naming
/// the limit, and the connection is closed.
#[derive(Parser)]
struct Cli {
    /// TCP port (0: any free port).
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// Worker threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The runtime that serves the protocol code.
    #[arg(long, value_enum, default_value_t = Runtime::Iocore)]
    runtime: Runtime,
    /// Largest bulk string (one argument) in bytes; a longer one is a protocol error.
    #[arg(long, default_value_t = Limits::DEFAULT.max_bulk)]
    max_bulk_bytes: usize,
    /// Most arguments in one command; more is a protocol error.
    #[arg(long, default_value_t = Limits::DEFAULT.max_args)]
    max_args: usize,
    /// Largest query buffer per client in bytes (one incomplete command; should exceed
    /// --max-bulk-bytes); a larger one is a protocol error. After a big command an idle
    /// client's buffer shrinks back to 16 KiB.
    #[arg(long, default_value_t = Limits::DEFAULT.max_query)]
    max_query_bytes: usize,
    /// Close connections that send nothing for this many seconds (0: never), like Redis's
    /// `timeout`; fractions are fine (0.5).
    #[arg(long, value_parser = seconds, default_value = "300")]
    timeout_secs: Duration,
    /// Reply bytes queued per client before the server stops executing (and reading) that
    /// client's commands until it reads its replies.
    #[arg(long, default_value_t = iocore::net::DEFAULT_HIGH_WATER)]
    max_reply_queue_bytes: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    Iocore,
    Tokio,
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let limits =
        Limits { max_bulk: cli.max_bulk_bytes, max_args: cli.max_args, max_query: cli.max_query_bytes };
    let idle_timeout = (!cli.timeout_secs.is_zero()).then_some(cli.timeout_secs);
    let server = Server::new(Config { limits, idle_timeout, reply_queue: cli.max_reply_queue_bytes });
    match cli.runtime {
        Runtime::Iocore => serve_iocore(cli.port, cli.threads, server),
        Runtime::Tokio => serve_tokio(cli.port, cli.threads, server),
    }
}

fn serve_iocore(port: u16, threads: usize, server: Arc<Server>) -> std::io::Result<()> {
    let mut builder = iocore::IoCore::builder();
    if threads > 0 {
        builder = builder.threads(threads);
    }
    let core = builder.build()?;
    core.block_on(async {
        // Listening for the signals first: from the moment we say we listen, they stop us.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let listener = iocore::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("kv (iocore) listening on {}", listener.local_addr()?);
        let (stop, stopping) = futures::channel::oneshot::channel::<()>();
        iocore::spawn(async move {
            futures::select! {
                _ = interrupt.recv().fuse() => {}
                _ = terminate.recv().fuse() => {}
            }
            println!("stopping: no new connections");
            drop(stop);
        });
        server::serve_until(listener, server.clone(), stopping.shared()).await
    })?;
    let report = core.shutdown(GRACE);
    println!(
        "stopped: {} connections cut at the end of the grace period; {} closed idle; \
         largest reply queue {} bytes",
        report.cancelled,
        server.stats.idle_closed(),
        server.stats.max_queued()
    );
    Ok(())
}

fn serve_tokio(port: u16, threads: usize, server: Arc<Server>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("kv (tokio) listening on {}", listener.local_addr()?);
        let mut accept_errors = LogLimit::default();
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of fds and the like: tokio does not back off by itself.
                    accept_errors.log("accept", e);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            };
            let server = server.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(server.config.limits);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let read = stream.read(&mut buf);
                    let read = match server.config.idle_timeout {
                        Some(limit) => tokio::time::timeout(limit, read).await.ok(),
                        None => Some(read.await),
                    };
                    let n = match read {
                        Some(Ok(0) | Err(_)) | None => return,
                        Some(Ok(n)) => n,
                    };
                    conn.feed(&buf[..n]);
                    // One batch of replies at a time; `write_all` waits for the client.
                    loop {
                        let status = conn.process(&server.store);
                        if stream.write_all(&conn.out).await.is_err() {
                            return;
                        }
                        conn.out.clear();
                        conn.out.shrink_to(REPLY_BATCH);
                        match status {
                            Ok(Status::NeedInput) => break,
                            Ok(Status::OutputFull) => {}
                            Err(_) => return,
                        }
                    }
                }
            });
        }
    })
}
