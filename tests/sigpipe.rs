//! No write raises `SIGPIPE`, whatever the socket (TCP or Unix) and however it writes
//! (`send`, `send_all`, `send_vectored`, the `AsyncWrite` traits, `post_send` through the
//! flusher): a process that does not ignore the signal (Rust programs do by default; C
//! hosts and CLIs that restore the default action do not) would be killed by a peer that
//! went away. This file is one test, alone in its process: it installs a counting
//! handler for `SIGPIPE`, and every write must end in an error instead of the signal.

mod support;

use futures::AsyncWriteExt;
use iocore::net::{TcpListener, TcpStream, UnixStream};
use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use support::net::{run, LIMIT};

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, SeqCst);
}

/// Counts `SIGPIPE`s from now on (instead of ignoring them, as the Rust runtime does).
fn count_sigpipes() {
    // SAFETY: a zeroed sigaction with a handler address is a valid argument; the handler
    // only touches an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_sigpipe as extern "C" fn(libc::c_int) as usize;
        assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0, "sigaction");
    }
}

/// Writes with `write` until it fails (the peer is gone); returns the error.
async fn until_it_fails<F, Fut>(mut write: F) -> std::io::Error
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    for _ in 0..1000 {
        if let Err(e) = write().await {
            return e;
        }
        iocore::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("1000 writes to a peer that went away all succeeded");
}

/// A connected TCP pair whose far end (a plain socket) is already closed.
async fn tcp_to_a_closed_peer() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
    let (stream, _) = listener.accept().await.unwrap();
    drop(peer.join().unwrap());
    stream
}

/// A connected Unix pair whose far end is already closed.
fn unix_to_a_closed_peer() -> UnixStream {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    a
}

#[test]
fn no_write_raises_sigpipe() {
    count_sigpipes();
    run(2, LIMIT, || async {
        let bufs = [IoSlice::new(b"one "), IoSlice::new(b"two")];
        // TCP: each way of writing, each on a fresh connection.
        let s = tcp_to_a_closed_peer().await;
        until_it_fails(|| async { s.send(b"x").await.map(drop) }).await;
        let s = tcp_to_a_closed_peer().await;
        until_it_fails(|| async { s.send_all(b"x").await }).await;
        let s = tcp_to_a_closed_peer().await;
        until_it_fails(|| async { s.send_vectored(&bufs).await.map(drop) }).await;
        // (`AsyncWrite` takes `&mut self`: the loop of `until_it_fails`, spelled out.)
        let mut s = tcp_to_a_closed_peer().await;
        let mut failed = false;
        for _ in 0..1000 {
            if s.write_vectored(&bufs).await.is_err() {
                failed = true;
                break;
            }
            iocore::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(failed, "1000 writes to a peer that went away all succeeded");
        let s = tcp_to_a_closed_peer().await;
        until_it_fails(|| async {
            let _ = s.post_send(&b"posted"[..]);
            s.flush().await
        })
        .await;
        // Unix: the same.
        let s = unix_to_a_closed_peer();
        until_it_fails(|| async { s.send(b"x").await.map(drop) }).await;
        let s = unix_to_a_closed_peer();
        until_it_fails(|| async { s.send_vectored(&bufs).await.map(drop) }).await;
        let s = unix_to_a_closed_peer();
        until_it_fails(|| async {
            let _ = s.post_send(&b"posted"[..]);
            s.flush().await
        })
        .await;
    });
    assert_eq!(SIGPIPES.load(SeqCst), 0, "writes to a peer that went away raised SIGPIPE");
}
