//! An HTTP/1.1 server with hyper 1.x on iocore: `GET /` answers "Hello, World!", `POST /echo`
//! echoes the request body. Shows the glue hyper needs (executor, timer, IO) in `server.rs`.
//!
//! Run: `cargo run --release --features tokio --example http -- --port 8080`, then
//! `curl http://127.0.0.1:8080/` or `curl --data-binary @file http://127.0.0.1:8080/echo`,
//! or measure it with `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//! `--runtime tokio` serves the same hyper service on tokio, for side-by-side measurement;
//! `--threads N` sets the worker threads of either runtime (default: one per CPU);
//! `--help` lists the options; request bodies over `--max-body-bytes` (default 1 MiB) get
//! 413 Payload Too Large. On SIGINT or SIGTERM the iocore server stops accepting,
//! lets in-flight requests finish (5 s grace), and exits 0.

#[path = "../shared/log_limit.rs"]
mod log_limit;
mod server;

use clap::{Parser, ValueEnum};
use futures::FutureExt;
use iocore::signal::{signal, SignalKind};

/// How long in-flight requests get after SIGINT/SIGTERM.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// hyper 1.x HTTP/1.1 server on 127.0.0.1: `GET /` says hello, `POST /echo` echoes the body.
#[derive(Parser)]
struct Cli {
    /// TCP port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The runtime that serves the hyper service.
    #[arg(long, value_enum, default_value_t = Runtime::Iocore)]
    runtime: Runtime,
    /// Largest request body in bytes; a larger one gets 413 Payload Too Large.
    #[arg(long, default_value_t = server::DEFAULT_MAX_BODY)]
    max_body_bytes: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    Iocore,
    Tokio,
}

fn main() -> std::io::Result<()> {
    let Cli { port, threads, runtime, max_body_bytes } = Cli::parse();
    match runtime {
        Runtime::Iocore => serve_iocore(port, threads, max_body_bytes),
        Runtime::Tokio => serve_tokio(port, threads, max_body_bytes),
    }
}

fn serve_iocore(port: u16, threads: usize, max_body: usize) -> std::io::Result<()> {
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
        println!("http (hyper on iocore) listening on http://{}", listener.local_addr()?);
        // Dropping the accept loop closes the listener; connections keep being served.
        futures::select! {
            served = server::serve(listener, server::http1(), max_body).fuse() => served?,
            _ = interrupt.recv().fuse() => {}
            _ = terminate.recv().fuse() => {}
        }
        println!("stopping: no new connections");
        Ok::<_, std::io::Error>(())
    })?;
    // In-flight requests finish within the grace period; idle keep-alive connections are
    // closed at its end.
    let report = core.shutdown(GRACE);
    println!("stopped: {} tasks cancelled at the end of the grace period", report.cancelled);
    Ok(())
}

fn serve_tokio(port: u16, threads: usize, max_body: usize) -> std::io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("http (hyper on tokio) listening on http://{}", listener.local_addr()?);
        server::serve_tokio(listener, max_body).await
    })
}
