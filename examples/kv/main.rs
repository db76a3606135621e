//! A Redis-protocol (RESP2 subset) key-value server on iocore: PING, ECHO, SET, GET, DEL,
//! INCR, EXISTS, with pipelining; replies go out through `post_send`.
//!
//! Run: `cargo run --release --example kv -- --port 6379` and talk to it with
//! `redis-cli -p 6379` or measure it with `redis-benchmark -p 6379 -t ping,set,get`.
//! `--runtime tokio` serves the same protocol code on tokio, for side-by-side measurement.

mod resp;
mod server;

use resp::{Conn, Store};
use std::sync::Arc;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(6379);
    let threads: usize = arg("--threads").and_then(|p| p.parse().ok()).unwrap_or(0);
    let store = Arc::new(Store::default());
    match arg("--runtime").as_deref().unwrap_or("iocore") {
        "tokio" => serve_tokio(port, threads, store),
        _ => serve_iocore(port, threads, store),
    }
}

fn serve_iocore(port: u16, threads: usize, store: Arc<Store>) -> std::io::Result<()> {
    let mut builder = iocore::IoCore::builder();
    if threads > 0 {
        builder = builder.threads(threads);
    }
    let core = builder.build()?;
    core.block_on(async {
        let listener = iocore::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("kv (iocore) listening on {}", listener.local_addr()?);
        server::serve(listener, store).await
    })
}

fn serve_tokio(port: u16, threads: usize, store: Arc<Store>) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("kv (tokio) listening on {}", listener.local_addr()?);
        loop {
            let (mut stream, _) = listener.accept().await?;
            let store = store.clone();
            tokio::spawn(async move {
                let mut conn = Conn::default();
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    conn.input.extend_from_slice(&buf[..n]);
                    let result = conn.process(&store);
                    if stream.write_all(&conn.out).await.is_err() || result.is_err() {
                        return;
                    }
                    conn.out.clear();
                }
            });
        }
    })
}
