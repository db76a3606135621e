//! Stress: every kind of waiter on the same sockets at once, with nothing lost and nothing
//! hung.
//!
//! Each round opens a few connections. On the producing side of each: the owner task
//! `send_all`s tagged messages (sometimes after `writable()`), two more tasks loop on
//! `writable()` through a shared `Arc<TcpStream>`, and 4 plain threads `post_send` tagged
//! messages (behind a small high-water mark). On the consuming side: three tasks read
//! through one shared `Arc<TcpStream>` — two in `recv`, one with `readable()` + `try_recv`
//! — appending under one async lock, so the stream order is kept. Some waiters and extra
//! readers are aborted, others detached and left to stop; then the producing side is
//! dropped, shut down, or aborted.
//!
//! Checked: no hang (every wait is bounded, and a watchdog bounds the whole); every message
//! accepted (`post_send` `Ok`, `send_all` `Ok`) arrives complete, uncorrupted and in order
//! per producer (an orderly close delivers all of them, an abort a prefix); the process's
//! fds are back to where they were once the core is shut down.
//!
//! Short by default (a few seconds); `IOCORE_STRESS=full` runs many more rounds.

mod support;

use bytes::Bytes;
use futures::lock::Mutex as AsyncMutex;
use iocore::net::{PostError, PostSender, TcpStream};
use iocore::time::{sleep, timeout};
use iocore::{task, JoinHandle};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};
use support::net::listener;
use support::stress::{pick, seed, variant, Rng};
use support::{core, fd_count, fd_list, parse_tagged, serial, settle, tagged, watchdog};

/// Posting threads (producers 0..4).
const POSTERS: usize = 4;
/// Producer id of the owner's `send_all`.
const OWNER: usize = 4;
const PRODUCERS: usize = 5;
/// Connections per round.
const CONNS: usize = 3;
/// Bound of any single wait in a round: only a hang reaches it.
const STUCK: Duration = Duration::from_secs(20);

/// Message `seq` of a producer: a [`tagged`] message; the owner's are larger.
fn msg(producer: usize, seq: u32) -> Vec<u8> {
    let max = if producer == OWNER { 6000 } else { 3000 };
    tagged(producer, seq, 1 + (seq as usize * 131 + producer * 977) % max)
}

/// Parses a consumer's bytes: per producer, messages 0, 1, 2, ... complete and intact.
/// Returns the message counts, or what is wrong. A truncated last message is allowed only
/// when `prefix` (after an abort).
fn parse(data: &[u8], prefix: bool) -> Result<Vec<u32>, String> {
    let parsed = parse_tagged(data, PRODUCERS, msg);
    if let Some(e) = parsed.error {
        return Err(e);
    }
    if parsed.tail > 0 && !prefix {
        return Err(format!("{} bytes of a truncated message before an orderly EOF", parsed.tail));
    }
    Ok(parsed.counts)
}

/// What was accepted on one connection, per producer (a message counts once its
/// `post_send`/`send_all` returned `Ok`).
#[derive(Default)]
struct Accepted([AtomicU32; PRODUCERS]);

struct PostTarget {
    sender: PostSender,
    accepted: Arc<Accepted>,
}

/// The connections the posting threads post to (`None` between rounds). A poster holds
/// the read lock for one post and its bookkeeping, so once the main task has taken the
/// write lock, the accepted counts are final.
type Current = Arc<RwLock<Option<Arc<Vec<PostTarget>>>>>;

#[derive(Default)]
struct Stats {
    posts_ok: AtomicU64,
    posts_full: AtomicU64,
    posts_closed: AtomicU64,
    owner_sends: AtomicU64,
    writable_waits: AtomicU64,
    readable_reads: AtomicU64,
    recv_reads: AtomicU64,
    aborted_tasks: AtomicU64,
    detached_tasks: AtomicU64,
    closes: [AtomicU64; 3],
    bytes: AtomicU64,
}

/// The consuming side's shared state: bytes in stream order, and how the stream ended.
#[derive(Default)]
struct Inbox {
    data: Vec<u8>,
    end: Option<Result<(), ErrorKind>>,
}

/// A reader in `recv`, holding the inbox lock while it waits (so appends keep the order).
async fn recv_reader(c: Arc<TcpStream>, inbox: Arc<AsyncMutex<Inbox>>, stats: Arc<Stats>, mut rng: Rng) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut g = inbox.lock().await;
        if g.end.is_some() {
            return;
        }
        let len = 1 + rng.below(buf.len() as u64) as usize;
        match c.recv(&mut buf[..len]).await {
            Ok(0) => g.end = Some(Ok(())),
            Ok(n) => {
                g.data.extend_from_slice(&buf[..n]);
                stats.recv_reads.fetch_add(1, SeqCst);
            }
            Err(e) => g.end = Some(Err(e.kind())),
        }
        drop(g);
        if rng.one_in(64) {
            // A slow moment: the producing side fills up.
            sleep(Duration::from_micros(rng.below(2000))).await;
        } else if rng.one_in(4) {
            task::yield_now().await;
        }
    }
}

/// A reader with `readable()` + `try_recv`.
async fn readable_reader(c: Arc<TcpStream>, inbox: Arc<AsyncMutex<Inbox>>, stats: Arc<Stats>) {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        c.readable().await.expect("readable");
        let mut g = inbox.lock().await;
        if g.end.is_some() {
            return;
        }
        match c.try_recv(&mut buf) {
            Ok(0) => g.end = Some(Ok(())),
            Ok(n) => {
                g.data.extend_from_slice(&buf[..n]);
                stats.readable_reads.fetch_add(1, SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => g.end = Some(Err(e.kind())),
        }
    }
}

/// The producing side's owner: `send_all` of its tagged messages until told to stop.
async fn owner_writer(
    p: Arc<TcpStream>,
    accepted: Arc<Accepted>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    mut rng: Rng,
) {
    while !stop.load(SeqCst) {
        if rng.one_in(3) {
            p.writable().await.expect("owner writable");
        }
        let seq = accepted.0[OWNER].load(SeqCst);
        p.send_all(&msg(OWNER, seq)).await.expect("owner send_all on an open socket");
        accepted.0[OWNER].store(seq + 1, SeqCst);
        stats.owner_sends.fetch_add(1, SeqCst);
        match rng.below(4) {
            0 | 1 => sleep(Duration::from_micros(rng.below(300))).await,
            2 => task::yield_now().await,
            _ => {}
        }
    }
}

/// Another task waiting for the producing side to become writable, until told to stop.
async fn writable_waiter(p: Arc<TcpStream>, stop: Arc<AtomicBool>, stats: Arc<Stats>, mut rng: Rng) {
    while !stop.load(SeqCst) {
        p.writable().await.expect("writable");
        stats.writable_waits.fetch_add(1, SeqCst);
        sleep(Duration::from_micros(50 + rng.below(300))).await;
    }
}

/// A task that must finish (a hang is a failure, named by `what`).
async fn finish<T>(h: JoinHandle<T>, what: &str) -> Result<T, iocore::JoinError> {
    match timeout(STUCK, h).await {
        Ok(r) => r,
        Err(_) => panic!("{what} hangs"),
    }
}

/// Aborts `h` (and waits until its future is gone), or detaches it to stop by itself.
async fn abort_or_detach(h: JoinHandle<()>, abort: bool, stats: &Stats, what: &str) {
    if abort {
        h.abort();
        stats.aborted_tasks.fetch_add(1, SeqCst);
        match finish(h, what).await {
            Ok(()) => {}
            Err(e) if e.is_cancelled() => {}
            Err(e) => panic!("{what}: {e}"),
        }
    } else {
        stats.detached_tasks.fetch_add(1, SeqCst);
        drop(h);
    }
}

fn poster(tid: usize, current: Current, stop: Arc<AtomicBool>, stats: Arc<Stats>, seed: u64) {
    let mut rng = Rng::new(seed ^ ((tid as u64 + 1) * 0x9E37_79B9));
    while !stop.load(SeqCst) {
        {
            let g = current.read().unwrap();
            if let Some(round) = g.as_ref() {
                let t = &round[rng.below(round.len() as u64) as usize];
                let seq = t.accepted.0[tid].load(SeqCst);
                let m = Bytes::from(msg(tid, seq));
                match t.sender.post_send(m.clone()) {
                    Ok(()) => {
                        t.accepted.0[tid].store(seq + 1, SeqCst);
                        stats.posts_ok.fetch_add(1, SeqCst);
                    }
                    Err(PostError::WouldExceed(back)) => {
                        assert_eq!(back, m, "WouldExceed handed back other bytes");
                        stats.posts_full.fetch_add(1, SeqCst);
                    }
                    Err(PostError::Closed(back)) => {
                        assert_eq!(back, m, "Closed handed back other bytes");
                        stats.posts_closed.fetch_add(1, SeqCst);
                    }
                    Err(e @ PostError::TooLarge(_)) => panic!("a stream post refused as a datagram: {e}"),
                }
            }
        }
        if rng.one_in(3) {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(rng.below(150)));
        }
    }
}

struct Conn {
    /// The producing side (taken out to be closed).
    p: Option<Arc<TcpStream>>,
    accepted: Arc<Accepted>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    waiters: Vec<JoinHandle<()>>,
    /// The primary `recv` reader (never aborted), then the extra readers.
    readers: Vec<JoinHandle<()>>,
    inbox: Arc<AsyncMutex<Inbox>>,
    /// Keeps the consuming side open until the readers are done.
    c: Arc<TcpStream>,
}

/// One round: opens `CONNS` connections, lets everything run for a moment, closes them
/// in random ways, and checks what arrived.
async fn round(r: usize, rng: &mut Rng, current: &Current, stats: &Arc<Stats>) {
    let (l, addr) = listener().await;
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let (p, c) = futures::join!(TcpStream::connect(addr), l.accept());
        let (p, c) = (p.expect("connect"), c.expect("accept").0);
        if rng.one_in(2) {
            // Bounded buffers (not below the loopback MSS: TCP would crawl), so that the
            // writers wait for room.
            p.set_send_buffer_size(64 * 1024).expect("set_send_buffer_size");
            c.set_recv_buffer_size(128 * 1024).expect("set_recv_buffer_size");
        }
        p.set_post_high_water([16 * 1024, 64 * 1024, 256 * 1024][rng.below(3) as usize]);
        let (p, c) = (Arc::new(p), Arc::new(c));
        let accepted = Arc::new(Accepted::default());
        let stop = Arc::new(AtomicBool::new(false));
        let inbox = Arc::new(AsyncMutex::new(Inbox::default()));
        let readers = vec![
            iocore::spawn(recv_reader(c.clone(), inbox.clone(), stats.clone(), Rng::new(rng.next_u64()))),
            iocore::spawn(recv_reader(c.clone(), inbox.clone(), stats.clone(), Rng::new(rng.next_u64()))),
            iocore::spawn(readable_reader(c.clone(), inbox.clone(), stats.clone())),
        ];
        let writer = iocore::spawn(owner_writer(
            p.clone(),
            accepted.clone(),
            stop.clone(),
            stats.clone(),
            Rng::new(rng.next_u64()),
        ));
        let waiters = (0..2)
            .map(|_| {
                iocore::spawn(writable_waiter(
                    p.clone(),
                    stop.clone(),
                    stats.clone(),
                    Rng::new(rng.next_u64()),
                ))
            })
            .collect();
        conns.push(Conn { p: Some(p), accepted, stop, writer: Some(writer), waiters, readers, inbox, c });
    }
    let targets = conns
        .iter()
        .map(|c| PostTarget { sender: c.p.as_ref().unwrap().sender(), accepted: c.accepted.clone() })
        .collect();
    *current.write().unwrap() = Some(Arc::new(targets));

    sleep(Duration::from_millis(5 + rng.below(25))).await;
    // Abort some extra readers mid-stream (the primary reader always stays).
    for conn in &mut conns {
        for h in conn.readers.iter().skip(1) {
            if rng.one_in(3) {
                h.abort();
                stats.aborted_tasks.fetch_add(1, SeqCst);
            }
        }
    }
    sleep(Duration::from_millis(rng.below(10))).await;

    // Close each producing side.
    let mut modes = Vec::new();
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.stop.store(true, SeqCst);
        let writer = conn.writer.take().expect("writer");
        finish(writer, &format!("round {r} conn {i}: the owner's send_all")).await.expect("owner writer");
        for (k, w) in std::mem::take(&mut conn.waiters).into_iter().enumerate() {
            abort_or_detach(w, rng.one_in(2), stats, &format!("round {r} conn {i}: writable() waiter {k}"))
                .await;
        }
        // Detached waiters stop by themselves; then the owner is the only one left.
        let p = conn.p.take().expect("producing side");
        let t0 = Instant::now();
        while Arc::strong_count(&p) > 1 {
            assert!(t0.elapsed() < STUCK, "round {r} conn {i}: a detached writable() waiter never stopped");
            sleep(Duration::from_micros(200)).await;
        }
        let p = Arc::into_inner(p).expect("sole owner");
        let mode = rng.below(3) as usize;
        stats.closes[mode].fetch_add(1, SeqCst);
        match mode {
            0 => drop(p),
            1 => {
                timeout(STUCK, p.shutdown())
                    .await
                    .unwrap_or_else(|_| panic!("round {r} conn {i}: shutdown (flush) hangs"))
                    .expect("shutdown");
                drop(p);
            }
            _ => p.abort(),
        }
        modes.push(mode);
    }
    // From here on, no post is accepted for this round: the counts are final.
    *current.write().unwrap() = None;

    for (i, conn) in conns.into_iter().enumerate() {
        for (k, h) in conn.readers.into_iter().enumerate() {
            match finish(h, &format!("round {r} conn {i}: consumer reader {k} (the end never came)")).await {
                Ok(()) => {}
                Err(e) if e.is_cancelled() => {}
                Err(e) => panic!("round {r} conn {i}: reader {k}: {e}"),
            }
        }
        drop(conn.c);
        let inbox = conn.inbox.lock().await;
        let aborted = modes[i] == 2;
        let end = inbox.end.expect("the primary reader saw the end");
        if !aborted {
            assert_eq!(end, Ok(()), "round {r} conn {i}: an orderly close ended with a reset");
        }
        let got = parse(&inbox.data, aborted).unwrap_or_else(|e| panic!("round {r} conn {i}: {e}"));
        stats.bytes.fetch_add(inbox.data.len() as u64, SeqCst);
        let accepted: Vec<u32> = conn.accepted.0.iter().map(|a| a.load(SeqCst)).collect();
        if aborted {
            for p in 0..PRODUCERS {
                assert!(
                    got[p] <= accepted[p],
                    "round {r} conn {i}: producer {p}: {} received > {} accepted",
                    got[p],
                    accepted[p]
                );
            }
        } else {
            assert_eq!(
                &got[..],
                &accepted[..],
                "round {r} conn {i}: messages received vs accepted per producer (orderly close, \
                 mode {})",
                modes[i]
            );
        }
    }
}

#[test]
fn mixed_waiters_posts_aborts_and_drops_on_shared_sockets() {
    let _g = serial();
    let rounds = pick(20, 2000);
    let seed = seed("stress_mixed");
    let limit = pick(Duration::from_secs(90), Duration::from_secs(1800));
    watchdog(limit, move || {
        let fds0 = fd_count();
        let start = Instant::now();
        let stats = Arc::new(Stats::default());
        let current: Current = Arc::new(RwLock::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let posters: Vec<_> = (0..POSTERS)
            .map(|tid| {
                let (current, stop, stats) = (current.clone(), stop.clone(), stats.clone());
                thread::spawn(move || poster(tid, current, stop, stats, seed))
            })
            .collect();
        let core = core(2);
        {
            let (stats, current) = (stats.clone(), current.clone());
            core.block_on(async move {
                let mut rng = Rng::new(seed);
                for r in 0..rounds {
                    round(r, &mut rng, &current, &stats).await;
                }
            });
        }
        stop.store(true, SeqCst);
        for p in posters {
            p.join().expect("poster thread");
        }
        let report = core.shutdown(Duration::from_secs(10));
        assert_eq!(report.leaked, 0, "tasks leaked at shutdown: {report:?}");
        let back = settle(Duration::from_secs(10), || fd_count() <= fds0);
        let fds1 = fd_count();
        let s = &stats;
        eprintln!(
            "[stress_mixed] variant={} rounds={rounds} elapsed={:?} posts_ok={} posts_full={} \
             posts_closed={} owner_sends={} writable_waits={} recv_reads={} readable_reads={} \
             aborted_tasks={} detached_tasks={} closes(drop/shutdown/abort)={}/{}/{} bytes={} \
             fds_before={fds0} fds_after={fds1}",
            variant(),
            start.elapsed(),
            s.posts_ok.load(SeqCst),
            s.posts_full.load(SeqCst),
            s.posts_closed.load(SeqCst),
            s.owner_sends.load(SeqCst),
            s.writable_waits.load(SeqCst),
            s.recv_reads.load(SeqCst),
            s.readable_reads.load(SeqCst),
            s.aborted_tasks.load(SeqCst),
            s.detached_tasks.load(SeqCst),
            s.closes[0].load(SeqCst),
            s.closes[1].load(SeqCst),
            s.closes[2].load(SeqCst),
            s.bytes.load(SeqCst),
        );
        assert!(back, "fd count {fds0} -> {fds1} after the core was shut down: {:#?}", fd_list());
        assert!(s.posts_ok.load(SeqCst) > 0 && s.owner_sends.load(SeqCst) > 0, "nothing was sent");
    });
}
