//! Accepting is fair both ways (`net::accept`): a turn of the accepting task admits at
//! most a budget's worth (128) of the connections in the backlog before the ones it
//! accepted run, and under load it still admits them by the hundred per round of the
//! ready queue, not one per round. Counted on one worker, with every connection already in
//! the backlog before the accept loop starts.

mod support;

use iocore::net::{TcpListener, UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::net::{run, LIMIT};

const CONNECTIONS: usize = 300;
/// A task's cooperative budget: the most accepts of one turn.
const BUDGET: usize = 128;

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

/// At most a budget's worth of accepted connections waited for a turn of the accept loop
/// to end, and more than one (a turn admits several: one per turn starves the backlog
/// under load, see the last test).
fn check_turns(worst: usize) {
    assert!(
        (2..=BUDGET).contains(&worst),
        "{worst} accepted connections waited for the accept loop's turn to end (expected 2..={BUDGET})"
    );
}

/// A listener with [`CONNECTIONS`] connections already waiting in its backlog.
async fn flooded_listener() -> (TcpListener, Vec<std::net::TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let clients = (0..CONNECTIONS).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    // A client's `connect` returns before the server's end reaches the accept queue (the
    // final ACK is processed by the kernel a moment later): wait until all are there, or
    // an accept loop would find the queue empty and wait for each late one.
    let deadline = std::time::Instant::now() + LIMIT;
    while accept_queue_len(&listener) < CONNECTIONS {
        assert!(std::time::Instant::now() < deadline, "the backlog never held {CONNECTIONS} connections");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    (listener, clients)
}

/// Connections in a TCP listener's accept queue (`TCP_INFO` of a listening socket reports
/// it as `tcpi_unacked`).
fn accept_queue_len(listener: &TcpListener) -> usize {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed `tcp_info` is valid; `getsockopt` writes at most `len` bytes into it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "getsockopt(TCP_INFO): {}", std::io::Error::last_os_error());
        info.tcpi_unacked as usize
    }
}

#[test]
fn an_accept_loop_in_block_on_lets_each_accepted_connection_run_before_taking_more() {
    run(1, LIMIT, || async {
        let (listener, _clients) = flooded_listener().await;
        let worst = accept_all(|| async { listener.accept().await.map(|(s, _)| s) }).await;
        check_turns(worst);
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
        check_turns(worst);
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
        check_turns(worst);
    });
}

#[test]
fn accepting_keeps_up_while_the_core_is_busy() {
    // 200 tasks yield in a loop, each counting its turns; the accept loop takes the 300
    // connections in the backlog. It must be done within a few rounds of the busy tasks
    // (a budget's worth per turn: 3), not one round per connection (300).
    const BUSY: usize = 200;
    run(1, LIMIT, || async {
        use std::sync::atomic::AtomicBool;
        let (listener, _clients) = flooded_listener().await;
        let stop = Arc::new(AtomicBool::new(false));
        let turns: Arc<Vec<AtomicUsize>> = Arc::new((0..BUSY).map(|_| AtomicUsize::new(0)).collect());
        let busy: Vec<_> = (0..BUSY)
            .map(|i| {
                let (stop, turns) = (stop.clone(), turns.clone());
                iocore::spawn(async move {
                    while !stop.load(SeqCst) {
                        turns[i].fetch_add(1, SeqCst);
                        iocore::task::yield_now().await;
                    }
                })
            })
            .collect();
        // Let every busy task take its first turn.
        while turns.iter().any(|t| t.load(SeqCst) == 0) {
            iocore::task::yield_now().await;
        }
        // Rounds of the ready queue the accept loop took from its first turn to its last:
        // the fewest turns any busy task had meanwhile. (Counted inside the task: this
        // thread may be descheduled for a while before it spawns the loop or after it
        // ends, while the busy tasks go on.)
        let counted = turns.clone();
        let accepter = iocore::spawn(async move {
            let before: Vec<usize> = counted.iter().map(|t| t.load(SeqCst)).collect();
            for _ in 0..CONNECTIONS {
                let (stream, _) = listener.accept().await.expect("accept");
                drop(iocore::spawn(async move { drop(stream) }));
            }
            counted.iter().zip(&before).map(|(t, b)| t.load(SeqCst) - b).min().unwrap()
        });
        let rounds = accepter.await.expect("accept loop");
        stop.store(true, SeqCst);
        for h in busy {
            h.await.expect("busy task");
        }
        assert!(
            rounds <= 10,
            "accepting {CONNECTIONS} connections took {rounds} rounds of {BUSY} busy tasks \
             (a budget's worth per turn needs about {})",
            CONNECTIONS.div_ceil(BUDGET)
        );
    });
}
