//! The quick-start demo: an iocore echo server and an iocore load client in one process.
//!
//! Run: `cargo run --release --example echo` (optional: `-- SECONDS CONNECTIONS`).
//!
//! 100 connections each keep one 128-byte message in flight for ~5 seconds over loopback;
//! the server sends back whatever it receives and the client checks that every reply is its
//! message. Prints messages/s and latency every second, then a summary.

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;

#[path = "shared/log_limit.rs"]
mod log_limit;
use log_limit::LogLimit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MESSAGE_LEN: usize = 128;

/// Message `seq`: its number, then a filler pattern.
fn message(seq: u64) -> [u8; MESSAGE_LEN] {
    let mut m = [0xA5; MESSAGE_LEN];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn percentile(v: &mut [u32], p: f64) -> u32 {
    v.sort_unstable();
    v.get(((v.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut number = |what: &str, default: u64| match args.next() {
        None => default,
        Some(a) => a.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("echo: {what}: expected a number, got {a:?}\nusage: echo [SECONDS [CONNECTIONS]]");
            std::process::exit(2)
        }),
    };
    let seconds = number("SECONDS", 5);
    let connections = number("CONNECTIONS", 100) as usize;
    let core = IoCore::new()?;
    println!("iocore echo demo: {} workers, {connections} connections, {seconds} s", core.metrics().workers);

    // The server: one task per connection sends back what it receives.
    let listener = core.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    core.spawn(async move {
        // An accept error (out of fds, ...) is transient: the listener backs off by itself;
        // log at most once a second and keep serving.
        let mut accept_errors = LogLimit::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_errors.log("echo server: accept", e);
                    continue;
                }
            };
            iocore::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.recv(&mut buf).await {
                    if stream.send_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });

    // The client: one task per connection sends a message, waits for all of it to come back.
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            let (count, stop, latencies) = (count.clone(), stop.clone(), latencies.clone());
            core.spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                let mut seq = i as u64;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let msg = message(seq);
                    stream.send_all(&msg).await?;
                    let mut reply = [0u8; MESSAGE_LEN];
                    let mut got = 0;
                    while got < MESSAGE_LEN {
                        match stream.recv(&mut reply[got..]).await? {
                            0 => return Err(std::io::Error::other("server closed the connection")),
                            n => got += n,
                        }
                    }
                    assert_eq!(reply, msg, "the reply is not the message sent");
                    latencies.lock().unwrap().push(sent.elapsed().as_micros() as u32);
                    count.fetch_add(1, Ordering::Relaxed);
                    seq += connections as u64;
                }
                Ok::<_, std::io::Error>(())
            })
        })
        .collect();

    let start = Instant::now();
    let mut last = 0;
    let mut all = Vec::new();
    for s in 1..=seconds {
        std::thread::sleep((start + Duration::from_secs(s)).saturating_duration_since(Instant::now()));
        let now = count.load(Ordering::Relaxed);
        let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
        println!(
            "[{s:>2}s] {:>9} msg/s   latency p50 {:>5} µs   p99 {:>6} µs",
            now - last,
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99)
        );
        all.append(&mut lat);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for c in clients {
        core.block_on(c).expect("client task panicked")?;
    }
    let total = count.load(Ordering::Relaxed);
    println!(
        "total {total} messages in {elapsed:.1} s: {:.0} msg/s, latency p50 {} µs, p99 {} µs, p99.9 {} µs",
        total as f64 / elapsed,
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.99),
        percentile(&mut all, 0.999)
    );
    Ok(())
}
