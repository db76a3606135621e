//! An echo server: every connection gets back what it sends. On SIGINT (Ctrl-C) or
//! SIGTERM it stops accepting, lets each connection finish the message it is echoing,
//! closes them, and exits 0.
//!
//! Run: `cargo run --release --example echo_server -- [PORT]` (default 7000; 0 picks a free
//! port), then e.g. `nc 127.0.0.1 7000`. Connections idle for `--idle-timeout-secs`
//! (default 300; 0: never) are closed; `--help` lists the options.

use clap::Parser;
use futures::future::{FutureExt, Shared};
use futures::{channel::oneshot, select};
use iocore::net::{TcpListener, TcpStream};
use iocore::signal::{signal, SignalKind};
use iocore::IoCore;
use std::time::Duration;

#[path = "shared/log_limit.rs"]
mod log_limit;
use log_limit::LogLimit;

/// How long connections get to finish after a stop signal.
const GRACE: Duration = Duration::from_secs(5);

/// Resolves (with an error: the sender is dropped) when the server stops.
type Stopping = Shared<oneshot::Receiver<()>>;

/// An echo server on 127.0.0.1: every connection gets back what it sends.
#[derive(Parser)]
struct Cli {
    /// TCP port (0: any free port).
    #[arg(default_value_t = 7000)]
    port: u16,
    /// Close connections that send nothing for this many seconds (0: never); fractions
    /// are fine (0.5).
    #[arg(long, value_parser = seconds, default_value = "300")]
    idle_timeout_secs: Duration,
}

/// A duration given in (possibly fractional) seconds.
fn seconds(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

fn main() -> std::io::Result<()> {
    let Cli { port, idle_timeout_secs } = Cli::parse();
    let idle_timeout = (!idle_timeout_secs.is_zero()).then_some(idle_timeout_secs);
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
        let mut accept_errors = LogLimit::default();
        loop {
            select! {
                conn = listener.accept().fuse() => match conn {
                    Ok((stream, _)) => {
                        accepted += 1;
                        iocore::spawn(echo(stream, idle_timeout, stopping.clone()));
                    }
                    // Transient (e.g. out of fds): the listener backs off by itself; log at
                    // most once a second.
                    Err(e) => accept_errors.log("accept", e),
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

/// Echoes until the peer closes, sends nothing for `idle_timeout`, or the server stops (a
/// message being echoed is finished).
async fn echo(stream: TcpStream, idle_timeout: Option<Duration>, stopping: Stopping) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = async {
            match idle_timeout {
                Some(limit) => iocore::time::timeout(limit, stream.recv(&mut buf)).await.ok(),
                None => Some(stream.recv(&mut buf).await),
            }
        };
        let n = select! {
            r = read.fuse() => match r {
                Some(r) => r,
                None => break, // idle
            },
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
