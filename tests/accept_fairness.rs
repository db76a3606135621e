//! Accepting is fair: each accepted connection ends the accepting task's turn, so under a
//! connect flood the connections already accepted are served before more are taken from
//! the backlog (`net::accept`). Counted on one worker, with every connection already in
//! the backlog before the accept loop starts.

mod support;

use iocore::net::{TcpListener, UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::net::{run, LIMIT};

const CONNECTIONS: usize = 60;

/// Accepted connections whose task has not run yet, at most, over the accept loop.
struct Backlog {
    accepted: AtomicUsize,
    served: AtomicUsize,
    worst: AtomicUsize,
}

impl Backlog {
    fn new() -> Arc<Backlog> {
        Arc::new(Backlog {
            accepted: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            worst: AtomicUsize::new(0),
        })
    }

    fn accepted(&self) {
        let waiting = self.accepted.fetch_add(1, SeqCst) + 1 - self.served.load(SeqCst);
        self.worst.fetch_max(waiting, SeqCst);
    }
}

/// Accepts [`CONNECTIONS`] connections with `accept`, spawning a task for each; returns the
/// most accepted connections whose task had not run yet.
async fn accept_all<S, F>(mut accept: impl FnMut() -> F) -> usize
where
    S: Send + 'static,
    F: std::future::Future<Output = std::io::Result<S>>,
{
    let backlog = Backlog::new();
    let mut handles = Vec::new();
    for _ in 0..CONNECTIONS {
        let stream = accept().await.expect("accept");
        backlog.accepted();
        let b = backlog.clone();
        handles.push(iocore::spawn(async move {
            b.served.fetch_add(1, SeqCst);
            drop(stream);
        }));
    }
    for h in handles {
        h.await.expect("handler");
    }
    backlog.worst.load(SeqCst)
}

/// A listener with [`CONNECTIONS`] connections already waiting in its backlog.
async fn flooded_listener() -> (TcpListener, Vec<std::net::TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let clients = (0..CONNECTIONS).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    (listener, clients)
}

#[test]
fn an_accept_loop_in_block_on_lets_each_accepted_connection_run_before_taking_more() {
    run(1, LIMIT, || async {
        let (listener, _clients) = flooded_listener().await;
        let worst = accept_all(|| async { listener.accept().await.map(|(s, _)| s) }).await;
        // A budget's worth per turn (the old rule) would leave all 60 waiting.
        assert!(worst <= 2, "{worst} accepted connections waited for the accept loop's turn to end");
    });
}

#[test]
fn an_accept_loop_in_a_task_lets_each_accepted_connection_run_before_taking_more() {
    run(1, LIMIT, || async {
        let (listener, _clients) = flooded_listener().await;
        let worst =
            iocore::spawn(
                async move { accept_all(|| async { listener.accept().await.map(|(s, _)| s) }).await },
            )
            .await
            .expect("accept task");
        assert!(worst <= 2, "{worst} accepted connections waited for the accept loop's turn to end");
    });
}

#[test]
fn a_unix_accept_loop_is_fair_too() {
    run(1, LIMIT, || async {
        let dir = std::env::temp_dir().join(format!("iocore-accept-fair-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            clients.push(UnixStream::connect(&path).await.expect("connect"));
        }
        let worst = accept_all(|| async { listener.accept().await.map(|(s, _)| s) }).await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(worst <= 2, "{worst} accepted connections waited for the accept loop's turn to end");
    });
}
