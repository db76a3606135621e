//! The quick-start demo: an iocore echo server and an iocore load client in one process.
//!
//! Run: `cargo run --release --example echo` (optional: `-- SECONDS CONNECTIONS`).
//!
//! 100 connections each keep one message of the benchmark protocol in flight (5 ints and a
//! 128-byte payload, validated on both sides) for ~5 seconds over loopback. Prints
//! messages/s and latency every second, then a summary.

#[path = "msgbench/proto.rs"]
#[allow(dead_code)]
mod proto;

use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use proto::{encode, Msg, RecvBuf, ServerConn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn message(seq: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let m = Msg { timestamp_ms: 0, int_count: 5, int_value: seq as u32, payload_len: 128 };
    encode(&m, &mut v);
    v
}

fn percentile(v: &mut [u32], p: f64) -> u32 {
    v.sort_unstable();
    v.get(((v.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0)
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let core = IoCore::new()?;
    println!("iocore echo demo: {} workers, {connections} connections, {seconds} s", core.metrics().workers);

    let listener = core.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    core.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            iocore::spawn(async move {
                let mut conn = ServerConn::new(8192);
                while let Ok(n @ 1..) = stream.recv(conn.recv.space()).await {
                    match conn.on_read(n) {
                        Ok(out) if !out.is_empty() => {
                            if stream.send_all(out).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => return eprintln!("server: {e}"),
                    }
                }
            });
        }
    });

    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            let (count, stop, latencies) = (count.clone(), stop.clone(), latencies.clone());
            core.spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                let mut recv = RecvBuf::new(8192);
                let mut seq = i as u64;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    stream.send_all(&message(seq)).await?;
                    let mut got = 0;
                    while got == 0 {
                        let n = stream.recv(recv.space()).await?;
                        if n == 0 {
                            return Err(std::io::Error::other("server closed the connection"));
                        }
                        recv.filled(n, |m| {
                            assert_eq!(m.int_value, seq as u32, "reply to another message");
                            got += 1;
                        })
                        .map_err(std::io::Error::other)?;
                    }
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
