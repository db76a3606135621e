//! A line-based chat server: every line a client sends goes to every other client through
//! their `PostSender`s (fan-out without a writer task per client; a client that falls
//! behind by more than its queue's high-water mark is disconnected, so one reader that
//! stops never holds up the room); `/kick NAME` disconnects a client from another
//! client's task (`PostSender::abort`); SIGINT/SIGTERM stop it gracefully.
//!
//! Run: `cargo run --release --example chat -- --port 7100`, then `nc 127.0.0.1 7100` in a
//! few terminals (the first line you type is your name). `--demo` runs the server with
//! three scripted clients in the same process, prints what each received, and exits.

use clap::Parser;
use futures::{select, FutureExt};
use iocore::net::{PostError, PostSender, TcpListener, TcpStream};
use iocore::signal::{signal, SignalKind};
use iocore::IoCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "shared/log_limit.rs"]
mod log_limit;
use log_limit::LogLimit;

/// A line-based chat server on 127.0.0.1.
#[derive(Parser)]
struct Cli {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 7100)]
    port: u16,
    /// Run three scripted clients against the server, print their transcripts, and exit.
    #[arg(long)]
    demo: bool,
}

/// Who is connected: name → the handle that posts to them.
type Room = Arc<Mutex<HashMap<String, PostSender>>>;

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let core = IoCore::builder().threads(2).build()?;
    core.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let port = if cli.demo { 0 } else { cli.port };
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        println!("chat server on {addr}");
        let room = Room::default();
        let server = serve(listener, room.clone()).fuse();
        futures::pin_mut!(server);
        if cli.demo {
            select! {
                r = server => r?,
                _ = demo(addr).fuse() => {}
            }
            return Ok(());
        }
        select! {
            r = server => r?,
            _ = interrupt.recv().fuse() => {}
            _ = terminate.recv().fuse() => {}
        }
        // Graceful: tell everyone, then close each connection after what was posted.
        for sender in room.lock().unwrap().values() {
            let _ = sender.post_send("* server shutting down\n");
            let sender = sender.clone();
            iocore::spawn(async move { sender.shutdown().await });
        }
        Ok::<_, std::io::Error>(())
    })?;
    let report = core.shutdown(Duration::from_secs(2));
    println!("stopped ({} tasks cancelled at the end of the grace period)", report.cancelled);
    Ok(())
}

async fn serve(listener: TcpListener, room: Room) -> std::io::Result<()> {
    // An accept error (out of fds, ...) is transient: the listener backs off by itself;
    // log at most once a second and keep serving.
    let mut accept_errors = LogLimit::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                iocore::spawn(client(stream, room.clone()));
            }
            Err(e) => accept_errors.log("accept", e),
        }
    }
}

/// One client: its first line is its name; then each line is broadcast or a command.
async fn client(stream: TcpStream, room: Room) {
    // Room for bursts: a reader further behind than this is disconnected (`broadcast`).
    stream.set_post_high_water(4 << 20);
    let me = stream.sender();
    let mut lines = Lines::default();
    let Some(name) = lines.next(&stream).await else { return };
    let taken = {
        let mut room = room.lock().unwrap();
        let taken = room.contains_key(&name);
        if !taken {
            room.insert(name.clone(), me.clone());
        }
        taken
    };
    if taken {
        // (Names are the room's keys: a second "sam" would take the first one's place.)
        let _ = me.post_send(format!("* the name {name} is taken\n"));
        let _ = me.shutdown().await;
        return;
    }
    broadcast(&room, &name, &format!("* {name} joined\n"));
    while let Some(line) = lines.next(&stream).await {
        if let Some(victim) = line.strip_prefix("/kick ") {
            let target = room.lock().unwrap().get(victim).cloned();
            match target {
                // Closes the victim's connection from this task: its own task sees the end.
                Some(sender) => sender.abort(),
                None => {
                    let _ = me.send(format!("* nobody called {victim}\n")).await;
                }
            }
            continue;
        }
        broadcast(&room, &name, &format!("{name}: {line}\n"));
    }
    room.lock().unwrap().remove(&name);
    broadcast(&room, &name, &format!("* {name} left\n"));
}

/// Posts `text` to everyone but `from`, without waiting: a reader whose queue is full (it
/// stopped reading, or reads far slower than the room talks) is disconnected instead of
/// holding everyone up.
fn broadcast(room: &Room, from: &str, text: &str) {
    let others: Vec<PostSender> =
        room.lock().unwrap().iter().filter(|(n, _)| n.as_str() != from).map(|(_, s)| s.clone()).collect();
    for sender in others {
        // A closed receiver is simply skipped; it leaves the room when its task ends.
        if let Err(PostError::WouldExceed(_)) = sender.post_send(text.to_owned()) {
            sender.abort();
        }
    }
}

/// Splits a stream into lines (at most 4 KiB each).
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self, stream: &TcpStream) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if self.buf.len() > 4096 {
                return None;
            }
            let mut chunk = [0u8; 1024];
            match stream.recv(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Three clients: ann and bob chat, carl is kicked by ann.
async fn demo(addr: std::net::SocketAddr) {
    let script = |name: &'static str, lines: &'static [&'static str]| async move {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.send_all(format!("{name}\n").as_bytes()).await.expect("send");
        iocore::time::sleep(Duration::from_millis(50)).await;
        for line in lines {
            s.send_all(format!("{line}\n").as_bytes()).await.expect("send");
            iocore::time::sleep(Duration::from_millis(50)).await;
        }
        iocore::time::sleep(Duration::from_millis(100)).await;
        let _ = s.shutdown().await;
        let mut got = String::new();
        let mut lines = Lines::default();
        while let Some(line) = lines.next(&s).await {
            got.push_str(&format!("    {line}\n"));
        }
        (name, got)
    };
    let carl = iocore::spawn(script("carl", &["hello from carl"]));
    iocore::time::sleep(Duration::from_millis(20)).await;
    let bob = iocore::spawn(script("bob", &["hi ann", "bye"]));
    iocore::time::sleep(Duration::from_millis(20)).await;
    let ann = iocore::spawn(script("ann", &["hello bob", "/kick carl"]));
    for h in [carl, bob, ann] {
        let (name, got) = h.await.expect("client");
        println!("{name} received:\n{got}");
    }
}
