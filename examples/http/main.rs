//! An HTTP/1.1 server with hyper 1.x on iocore: `GET /` answers "Hello, World!", `POST /echo`
//! echoes the request body. Shows the glue hyper needs (executor, timer, IO) in `server.rs`.
//!
//! Run: `cargo run --release --features tokio --example http -- --port 8080`, then
//! `curl http://127.0.0.1:8080/` or `curl --data-binary @file http://127.0.0.1:8080/echo`,
//! or measure it with `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//! `--runtime tokio` serves the same hyper service on tokio, for side-by-side measurement;
//! `--threads N` sets the worker threads of either runtime (default: one per CPU).

mod server;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(8080);
    let threads: usize = arg("--threads").and_then(|p| p.parse().ok()).unwrap_or(0);
    match arg("--runtime").as_deref().unwrap_or("iocore") {
        "iocore" => serve_iocore(port, threads),
        "tokio" => serve_tokio(port, threads),
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("unknown --runtime {other:?} (iocore or tokio)"),
        )),
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
