//! `writable()` + `try_send` and the cooperative budget.
//!
//! - The documented loop `loop { s.writable().await?; match s.try_send(..) { Err(WouldBlock)
//!   => continue, .. } }` must not spin while the `post_send` flusher holds the writer role
//!   (posted data waiting for room): it completes once the flusher is done, after a bounded
//!   number of `WouldBlock` results, even on a 1-worker core where the flusher can only run
//!   if the loop's task yields; nor while an owner's `send_all` is paused between its
//!   writes (it holds the role too).
//! - `readable()`/`writable()` that are always ready spend the cooperative budget, so a task
//!   looping on them lets the other tasks of a 1-worker core run.

mod support;

use bytes::Bytes;
use iocore::net::TcpStream;
use iocore::IoCore;
use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::net::{pair, LIMIT};
use support::{core, pattern, settled, wait_until, watchdog};

/// Iterations after which a spinning loop gives up (so a spin fails the test with a count
/// instead of burning a core forever). A correct runtime needs a few hundred at most.
const SPIN_CAP: u64 = 10_000_000;

/// An iocore stream on `core` and its peer, a plain blocking std stream.
fn std_peer_pair(core: &IoCore) -> (TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (peer, _) = l.accept().expect("accept");
    let s = core.block_on(async move { TcpStream::from_std(c) }).expect("from_std");
    (s, peer)
}

/// The documented loop: `writable()`, then `try_send(b"tail")`, again on `WouldBlock`.
/// Returns what the send took (`None`: gave up after `SPIN_CAP` tries) and how many
/// `WouldBlock`s it met.
async fn write_tail_when_writable(s: &TcpStream) -> (Option<usize>, u64) {
    let mut would_block = 0u64;
    loop {
        s.writable().await.expect("writable");
        match s.try_send(b"tail") {
            Ok(n) => return (Some(n), would_block),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                would_block += 1;
                if would_block >= SPIN_CAP {
                    return (None, would_block);
                }
            }
            Err(e) => panic!("try_send: {e}"),
        }
    }
}

#[test]
fn writable_try_send_loop_does_not_spin_while_the_flusher_holds_the_writer_role() {
    const POSTED: usize = 3 << 20;
    watchdog(LIMIT, || {
        let core = core(1);
        let (s, mut peer) = std_peer_pair(&core);
        s.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
        let sock = socket2::SockRef::from(&peer);
        sock.set_recv_buffer_size(256 * 1024).expect("set_recv_buffer_size");
        let sender = s.sender();
        sender.post_send(Bytes::from(pattern(7, POSTED))).expect("post_send");
        // The flusher fills the socket and waits for room (it holds the writer role).
        let queued = settled(|| sender.queued_bytes());
        assert!(queued > 0, "everything posted fit into the bounded buffers?");
        // The peer reads everything a moment later, until the stream closes.
        let reader = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0usize;
            peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            loop {
                match peer.read(&mut buf) {
                    Ok(0) => return Ok(got),
                    Ok(n) => got += n,
                    Err(e) => return Err((got, e)),
                }
            }
        });
        let looper = core.spawn(async move { write_tail_when_writable(&s).await });
        let (sent, would_block) = core.block_on(looper).expect("looping task");
        assert!(
            sent.is_some() && would_block < 10_000,
            "the writable()/try_send loop spun: {would_block} WouldBlock results (gave up at \
             {SPIN_CAP}) while the flusher held the writer role"
        );
        let got = reader.join().expect("reader thread");
        match got {
            Ok(n) => assert_eq!(n, POSTED + sent.unwrap(), "peer received {n} bytes"),
            Err((n, e)) => panic!("peer read failed after {n} bytes: {e}"),
        }
    });
}

/// The same loop while an owner's `send_all` is paused between its writes (its future kept
/// but not polled: the losing branch of a `select!`), holding the writer role: the loop
/// waits for the role instead of spinning (1.3 million `WouldBlock`s in 500 ms before).
#[test]
fn writable_try_send_loop_does_not_spin_while_a_paused_send_all_holds_the_writer_role() {
    const BIG: usize = 32 << 20;
    watchdog(LIMIT, || {
        let core = core(2);
        let (s, mut peer) = std_peer_pair(&core);
        s.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
        let s = Arc::new(s);
        // The peer reads everything, until the stream closes.
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            peer.read_to_end(&mut got).map(|_| got)
        });
        let paused = Arc::new(AtomicBool::new(false));
        let holder = core.spawn({
            let (s, paused) = (s.clone(), paused.clone());
            async move {
                let big = pattern(7, BIG);
                let mut send = std::pin::pin!(s.send_all(&big));
                assert!(futures::poll!(send.as_mut()).is_pending(), "32 MiB went at once");
                paused.store(true, SeqCst);
                // Held, not polled, while the peer drains the socket and the loop runs.
                iocore::time::sleep(Duration::from_millis(300)).await;
            }
        });
        wait_until("the send_all to pause", || paused.load(SeqCst));
        let looper = core.spawn({
            let s = s.clone();
            async move { write_tail_when_writable(&s).await }
        });
        let (sent, would_block) = core.block_on(looper).expect("looping task");
        core.block_on(holder).expect("holding task");
        let big = pattern(7, BIG);
        assert!(
            sent == Some(4) && would_block < 10_000,
            "the writable()/try_send loop spun: {would_block} WouldBlock results (gave up at \
             {SPIN_CAP}) while a paused send_all held the writer role"
        );
        drop(s);
        let got = reader.join().expect("reader thread").expect("the peer's read");
        let prefix = got.len() - 4;
        assert!(prefix < BIG && got[..prefix] == big[..prefix], "the paused send_all's prefix");
        assert_eq!(&got[prefix..], b"tail");
    });
}

/// Runs `looping` (which loops on an always-ready readiness future until the flag is set,
/// or `SPIN_CAP` iterations) on a 1-worker core, then spawns a task that sets the flag:
/// that task must get to run.
fn another_task_runs_while_one_loops_on(dir: &'static str) {
    watchdog(LIMIT, move || {
        let core = core(1);
        let (s, _peer) = core.block_on(pair());
        let s = Arc::new(s);
        let started = Arc::new(AtomicBool::new(false));
        let flag = Arc::new(AtomicBool::new(false));
        let looper = {
            let (s, started, flag) = (s.clone(), started.clone(), flag.clone());
            core.spawn(async move {
                started.store(true, SeqCst);
                let mut n = 0u64;
                while !flag.load(SeqCst) && n < SPIN_CAP {
                    match dir {
                        "readable" => s.readable().await.expect("readable"),
                        _ => s.writable().await.expect("writable"),
                    }
                    n += 1;
                }
                (flag.load(SeqCst), n)
            })
        };
        wait_until("the looping task to start", || started.load(SeqCst));
        let setter = {
            let flag = flag.clone();
            core.spawn(async move { flag.store(true, SeqCst) })
        };
        let (saw_flag, n) = core.block_on(looper).expect("looping task");
        assert!(
            saw_flag,
            "a task looping on {dir}() ran {n} iterations in one poll without letting the other \
             task of its 1-worker core run: {dir}() does not spend the cooperative budget"
        );
        core.block_on(setter).expect("setter task");
    });
}

#[test]
fn a_task_looping_on_writable_lets_other_tasks_run() {
    another_task_runs_while_one_loops_on("writable");
}

#[test]
fn a_task_looping_on_readable_lets_other_tasks_run() {
    another_task_runs_while_one_loops_on("readable");
}
