//! An echo server: every connection gets back what it sends. On SIGINT (Ctrl-C) or
//! SIGTERM it stops accepting, lets each connection finish the message it is echoing,
//! closes them, and exits 0.
//!
//! Run: `cargo run --release --example echo_server -- [PORT]` (default 7000; 0 picks a free
//! port), then e.g. `nc 127.0.0.1 7000`.

use futures::future::{FutureExt, Shared};
use futures::{channel::oneshot, select};
use iocore::net::{TcpListener, TcpStream};
use iocore::signal::{signal, SignalKind};
use iocore::IoCore;
use std::time::Duration;

/// How long connections get to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(5);

/// Resolves (with an error: the sender is dropped) when the server stops.
type Stopping = Shared<oneshot::Receiver<()>>;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7000);
    let core = IoCore::new()?;
    let accepted = core.block_on(async {
        // Listening for the signals first: from the moment we say we listen, they stop us.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("echo server on {}", listener.local_addr()?);
        let (stop, stopping) = oneshot::channel::<()>();
        let stopping = stopping.shared();
        let mut accepted = 0u64;
        loop {
            select! {
                conn = listener.accept().fuse() => match conn {
                    Ok((stream, _)) => {
                        accepted += 1;
                        iocore::spawn(echo(stream, stopping.clone()));
                    }
                    Err(e) => {
                        // Transient (e.g. out of fds): back off briefly and keep serving.
                        eprintln!("{e}");
                        iocore::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = interrupt.recv().fuse() => break,
                _ = terminate.recv().fuse() => break,
            }
        }
        println!("stopping: no new connections; {accepted} accepted");
        drop(stop);
        Ok::<_, std::io::Error>(accepted)
    })?;
    let report = core.shutdown(GRACE);
    println!(
        "stopped: {accepted} connections served, {} cut at the end of the grace period",
        report.cancelled
    );
    Ok(())
}

/// Echoes until the peer closes or the server stops (a message being echoed is finished).
async fn echo(stream: TcpStream, stopping: Stopping) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = select! {
            r = stream.recv(&mut buf).fuse() => r,
            _ = stopping.clone() => break,
        };
        match n {
            Ok(0) => break,
            Ok(n) => {
                if let Err(e) = stream.send_all(&buf[..n]).await {
                    eprintln!("{peer}: {e}");
                    break;
                }
            }
            Err(e) => {
                eprintln!("{peer}: {e}");
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
}
