//! An HTTP/1.1 server with hyper 1.x on iocore: `GET /` answers "Hello, World!", `POST /echo`
//! echoes the request body. Shows the glue hyper needs (executor, timer, IO) in `server.rs`.
//!
//! Run: `cargo run --release --features tokio --example http -- --port 8080`, then
//! `curl http://127.0.0.1:8080/` or `curl --data-binary @file http://127.0.0.1:8080/echo`,
//! or measure it with `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//! `--runtime tokio` serves the same hyper service on tokio, for side-by-side measurement;
//! `--threads N` sets the worker threads of either runtime (default: one per CPU);
//! `--help` lists the options.

mod server;

use clap::{Parser, ValueEnum};

/// hyper 1.x HTTP/1.1 server on 127.0.0.1: `GET /` says hello, `POST /echo` echoes the body.
#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Worker threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The runtime that serves the hyper service.
    #[arg(long, value_enum, default_value_t = Runtime::Iocore)]
    runtime: Runtime,
}

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    Iocore,
    Tokio,
}

fn main() -> std::io::Result<()> {
    let Cli { port, threads, runtime } = Cli::parse();
    match runtime {
        Runtime::Iocore => serve_iocore(port, threads),
        Runtime::Tokio => serve_tokio(port, threads),
    }
}

fn serve_iocore(port: u16, threads: usize) -> std::io::Result<()> {
    let mut builder = iocore::IoCore::builder();
    if threads > 0 {
        builder = builder.threads(threads);
    }
    let core = builder.build()?;
    core.block_on(async {
        let listener = iocore::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("http (hyper on iocore) listening on http://{}", listener.local_addr()?);
        server::serve(listener, server::http1()).await
    })
}

fn serve_tokio(port: u16, threads: usize) -> std::io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("http (hyper on tokio) listening on http://{}", listener.local_addr()?);
        server::serve_tokio(listener).await
    })
}
