//! UDP and Unix-domain sockets, and datagrams posted from plain threads.
//!
//! A UDP "metrics collector" receives datagrams; four plain OS threads (no runtime, no
//! `await`) post 10,000 samples each through a `DatagramSender`, with backpressure, and the
//! collector checks that every sample arrived whole and in each thread's order. Then a
//! Unix-domain echo over a socket file, with a reply posted from another thread.
//!
//! Run: `cargo run --release --example datagrams`

use iocore::net::{DatagramSender, UdpSocket, UnixListener, UnixStream};
use iocore::IoCore;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

const THREADS: u8 = 4;
const PER_THREAD: u32 = 10_000;
/// Samples a thread may have in flight before it waits for the collector: loopback UDP
/// drops what overflows the receiver's socket buffer (the kernel counts each small
/// datagram as ~1 KB there), and 4 × 16 keeps far below the default 208 KB.
const WINDOW: u32 = 16;

fn main() -> std::io::Result<()> {
    let core = IoCore::new()?;
    core.block_on(udp_collector())?;
    core.block_on(unix_echo())?;
    Ok(())
}

async fn udp_collector() -> std::io::Result<()> {
    let collector = UdpSocket::bind("127.0.0.1:0").await?;
    let to = collector.local_addr()?;
    // One socket for the posters; each thread gets a clone of its sender.
    let client = UdpSocket::bind("127.0.0.1:0").await?;
    let acked: Arc<Vec<AtomicU32>> = Arc::new((0..THREADS).map(|_| AtomicU32::new(0)).collect());
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|id| {
            let sender: DatagramSender = client.sender();
            let acked = acked.clone();
            std::thread::spawn(move || post_samples(id, &sender, to, &acked))
        })
        .collect();

    let mut next = vec![0u32; THREADS as usize];
    let mut buf = [0u8; 65536];
    for _ in 0..THREADS as u32 * PER_THREAD {
        let (n, _) = collector.recv_from(&mut buf).await?;
        let (id, seq) = (buf[0] as usize, u32::from_be_bytes(buf[1..5].try_into().unwrap()));
        assert_eq!(n, 5 + (seq % 100) as usize, "a sample arrived cut or merged");
        assert_eq!(seq, next[id], "thread {id}'s samples out of order");
        next[id] += 1;
        acked[id].store(next[id], Ordering::Release);
    }
    for t in threads {
        t.join().expect("poster thread");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "udp: {} datagrams posted from {THREADS} plain threads, all received whole and in order in {:.1} ms ({:.0} k/s)",
        THREADS as u32 * PER_THREAD,
        secs * 1e3,
        THREADS as f64 * PER_THREAD as f64 / secs / 1e3
    );
    Ok(())
}

/// A plain thread: posts its samples (thread id, sequence number, a varying length).
fn post_samples(id: u8, sender: &DatagramSender, to: SocketAddr, acked: &[AtomicU32]) {
    for seq in 0..PER_THREAD {
        while seq >= acked[id as usize].load(Ordering::Acquire) + WINDOW {
            std::thread::yield_now();
        }
        let mut sample = vec![id];
        sample.extend_from_slice(&seq.to_be_bytes());
        sample.resize(5 + (seq % 100) as usize, b'.');
        // Never awaits; refused data comes back inside the error (here: only if closed).
        sender.post_send_to(sample, to).expect("the socket is open");
    }
}

async fn unix_echo() -> std::io::Result<()> {
    let dir = std::env::temp_dir().join(format!("iocore-datagrams-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("echo.sock");
    let listener = UnixListener::bind(&path)?;
    let server = iocore::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut buf = [0u8; 1024];
        let n = stream.recv(&mut buf).await?;
        // The reply is posted from a plain thread: the same PostSender as for TCP.
        let sender = stream.sender();
        let reply = buf[..n].to_ascii_uppercase();
        std::thread::spawn(move || sender.post_send(reply)).join().expect("thread").ok();
        stream.flush().await?;
        Ok::<_, std::io::Error>(())
    });
    let client = UnixStream::connect(&path).await?;
    client.send_all(b"hello over a unix socket").await?;
    let mut buf = [0u8; 1024];
    let n = client.recv(&mut buf).await?;
    println!("unix: {} -> {:?}", path.display(), String::from_utf8_lossy(&buf[..n]));
    server.await.expect("server task")?;
    let missing = dir.join("missing.sock");
    let e = UnixStream::connect(&missing).await.expect_err("nobody listens there");
    println!("unix: a missing path is a clear error: {e}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
