//! Stress: under load iocore keeps working and loses nothing.
//!
//! Every scenario has a short variant (the default, a few seconds at most) and a full one,
//! selected with `IOCORE_STRESS=full` (same test, bigger sizes):
//!
//! ```sh
//! IOCORE_STRESS=full nice -n 10 cargo test --release --test stress -- --nocapture --test-threads 1
//! ```
//!
//! Checks are counts, order and bounds only (no timing assertions). Each test prints its
//! figures (`[name] ...`) with `eprintln!`; `--nocapture` shows them. The tests of this file
//! run one at a time (they count the process's fds and load the machine).

mod support;

use bytes::Bytes;
use iocore::net::{ConnectOptions, PostError, PostSender, TcpStream};
use iocore::{task, TaskRef};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::net::{listener, pair, recv_exact, run};
use support::stress::{fds_back_to, pick, raise_nofile, rss_kib, run_child_with, seed, variant, Rng};
use support::{fd_count, parse_tagged, pattern, serial, settle_in_core, tagged, Parsed};

/// Waits (in iocore sleeps) for a plain thread to finish, then joins it.
async fn join_thread<T>(t: thread::JoinHandle<T>) -> T {
    while !t.is_finished() {
        iocore::time::sleep(Duration::from_millis(2)).await;
    }
    t.join().expect("thread panicked")
}

// ---------------------------------------------------------------------------------------
// 1. Close/wakeup storm
// ---------------------------------------------------------------------------------------

const STORM_SOCKETS: usize = 5;
const STORM_POSTERS: usize = 3;
/// Writer id of the owner task (posters are 0..3).
const OWNER: usize = 3;
const WRITERS: usize = 4;
/// Messages per writer and socket at most: keeps a socket's data (< 11 KiB) below its
/// kernel buffer, so no send ever waits and a cancelled owner never leaves half a message.
const STORM_MAX_MSGS: u32 = 40;

/// Message `seq` of a writer: a [`tagged`] message of 1-60 bytes.
fn storm_msg(writer: usize, seq: u32) -> Vec<u8> {
    tagged(writer, seq, 1 + (seq as usize * 7 + writer * 13) % 60)
}

/// What happened to one socket of the storm.
#[derive(Default)]
struct SockLog {
    /// Messages accepted (post `Ok`, `send_all` `Ok`), per writer, in sequence order.
    accepted: [AtomicU32; WRITERS],
    /// Posts refused with `Closed` (the data came back intact).
    refused: AtomicU32,
    /// The owner called `abort()` (a reset, queued data may be discarded).
    aborted: AtomicBool,
    /// End-of-stream events the peer saw: must be exactly 1.
    ends: AtomicU32,
    /// The peer's end was a reset (else an orderly EOF).
    reset: AtomicBool,
    /// What the peer received: messages per writer, errors, a truncated tail.
    received: Mutex<Option<Parsed>>,
}

struct StormSock {
    sender: PostSender,
    task: TaskRef,
    log: Arc<SockLog>,
}

#[derive(Default)]
struct StormStats {
    posts_ok: AtomicU64,
    posts_refused: AtomicU64,
    wakeups: AtomicU64,
    owner_sends: AtomicU64,
    parks_woken: AtomicU64,
    parks_expired: AtomicU64,
    closes: [AtomicU64; 4],
    cancelled: AtomicU64,
}

#[test]
fn close_wakeup_storm() {
    let _g = serial();
    let iterations = pick(50, 1000);
    let seed = seed("close_wakeup_storm");
    run(2, pick(Duration::from_secs(60), Duration::from_secs(600)), move || async move {
        let mut rng = Rng::new(seed);
        let (l, addr) = listener().await;
        iocore::time::sleep(Duration::from_millis(20)).await;
        let fds0 = fd_count();
        let rss0 = rss_kib();
        let start = Instant::now();
        let stats = Arc::new(StormStats::default());
        let current: Arc<Mutex<Option<Arc<Vec<StormSock>>>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));

        // Three plain threads post to the current round's sockets and wake their owners.
        let posters: Vec<_> = (0..STORM_POSTERS)
            .map(|tid| {
                let (current, stop, stats) = (current.clone(), stop.clone(), stats.clone());
                let mut rng = Rng::new(seed ^ ((tid as u64 + 1) * 0x1234_5678));
                thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        let round = current.lock().unwrap().clone();
                        if let Some(round) = round {
                            let s = &round[rng.below(STORM_SOCKETS as u64) as usize];
                            let seq = s.log.accepted[tid].load(SeqCst);
                            if seq < STORM_MAX_MSGS && !s.sender.is_closed() {
                                let m = Bytes::from(storm_msg(tid, seq));
                                match s.sender.post_send(m.clone()) {
                                    Ok(()) => {
                                        s.log.accepted[tid].store(seq + 1, SeqCst);
                                        stats.posts_ok.fetch_add(1, SeqCst);
                                    }
                                    Err(PostError::Closed(back)) => {
                                        assert_eq!(back, m, "Closed handed back other bytes");
                                        s.log.refused.fetch_add(1, SeqCst);
                                        stats.posts_refused.fetch_add(1, SeqCst);
                                    }
                                    Err(e) => panic!("post_send of a small message: {e}"),
                                }
                            }
                            if rng.one_in(2) {
                                round[rng.below(STORM_SOCKETS as u64) as usize].task.wakeup();
                                stats.wakeups.fetch_add(1, SeqCst);
                            }
                        }
                        if rng.one_in(4) {
                            thread::yield_now();
                        } else {
                            thread::sleep(Duration::from_micros(rng.below(300)));
                        }
                    }
                })
            })
            .collect();

        let mut all_logs: Vec<(usize, usize, Arc<SockLog>)> = Vec::new();
        for it in 0..iterations {
            let mut socks = Vec::new();
            let mut owners = Vec::new();
            let mut peers = Vec::new();
            let mut modes = Vec::new();
            for i in 0..STORM_SOCKETS {
                let (c, s) = futures::join!(TcpStream::connect(addr), l.accept());
                let (client, peer) = (c.expect("connect"), s.expect("accept").0);
                // The owner's posts must be accepted while the socket is open: room for all.
                client.set_post_high_water(16 << 20);
                let log = Arc::new(SockLog::default());
                // The peer reads until its one end-of-stream, then checks it is sticky.
                let plog = log.clone();
                peers.push(iocore::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        match peer.recv(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                            Err(e) => {
                                assert!(
                                    matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                                    "peer recv: {e:?}"
                                );
                                plog.reset.store(true, SeqCst);
                                break;
                            }
                        }
                    }
                    plog.ends.fetch_add(1, SeqCst);
                    // After the end: no more data, no hang.
                    match iocore::time::timeout(Duration::from_secs(5), peer.recv(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => {}
                        Ok(Ok(n)) => panic!("{n} bytes after the end of stream"),
                        Err(_) => panic!("recv after the end of stream hangs"),
                    }
                    *plog.received.lock().unwrap() = Some(parse_tagged(&data, WRITERS, storm_msg));
                }));
                let sender = client.sender();
                let mode = rng.below(4) as usize;
                modes.push(mode);
                let olog = log.clone();
                let ostats = stats.clone();
                let mut orng = Rng::new(rng.next_u64());
                let owner = iocore::spawn(async move {
                    for _ in 0..1 + orng.below(4) {
                        let d = Duration::from_micros(orng.below(4001));
                        match task::park(Some(Instant::now() + d)).await {
                            task::Wake::Expired => ostats.parks_expired.fetch_add(1, SeqCst),
                            _ => ostats.parks_woken.fetch_add(1, SeqCst),
                        };
                        let seq = olog.accepted[OWNER].load(SeqCst);
                        if seq < STORM_MAX_MSGS {
                            let m = storm_msg(OWNER, seq);
                            if orng.one_in(2) {
                                client.send_all(&m).await.expect("owner send_all on an open socket");
                            } else {
                                client.post_send(m).expect("owner post_send on an open socket");
                            }
                            olog.accepted[OWNER].store(seq + 1, SeqCst);
                            ostats.owner_sends.fetch_add(1, SeqCst);
                        }
                    }
                    ostats.closes[mode].fetch_add(1, SeqCst);
                    match mode {
                        0 => {
                            olog.aborted.store(true, SeqCst);
                            client.abort();
                        }
                        1 => drop(client),
                        2 => {
                            client.shutdown().await.expect("owner shutdown");
                            drop(client);
                        }
                        // Holds the socket until the task is cancelled.
                        _ => loop {
                            task::park(None).await;
                        },
                    }
                });
                socks.push(StormSock { sender, task: owner.task(), log: log.clone() });
                owners.push(owner);
                all_logs.push((it, i, log));
            }
            *current.lock().unwrap() = Some(Arc::new(socks));
            // Cancel some owners at a random moment (0-4 ms), wherever they are.
            iocore::time::sleep(Duration::from_micros(rng.below(4001))).await;
            for (i, h) in owners.iter().enumerate() {
                if modes[i] == 3 || rng.one_in(4) {
                    h.abort();
                }
            }
            for (i, h) in owners.into_iter().enumerate() {
                match iocore::time::timeout(Duration::from_secs(10), h).await {
                    Err(_) => panic!("round {it}: owner {i} hangs"),
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.is_cancelled() => {
                        stats.cancelled.fetch_add(1, SeqCst);
                    }
                    Ok(Err(e)) => panic!("round {it}: owner {i}: {e}"),
                }
            }
            for (i, p) in peers.into_iter().enumerate() {
                match iocore::time::timeout(Duration::from_secs(40), p).await {
                    Err(_) => panic!("round {it}: the peer of socket {i} never saw the close"),
                    Ok(r) => r.unwrap_or_else(|e| panic!("round {it}: peer {i}: {e}")),
                }
            }
        }
        stop.store(true, SeqCst);
        for p in posters {
            join_thread(p).await;
        }
        *current.lock().unwrap() = None;

        // Every socket ended exactly once; an orderly close delivered everything accepted;
        // an abort delivered a prefix.
        let (mut eofs, mut resets, mut delivered) = (0, 0, 0u64);
        for (it, i, log) in &all_logs {
            let what = format!("round {it} socket {i}");
            assert_eq!(
                log.ends.load(SeqCst),
                1,
                "{what}: end-of-stream seen {} times",
                log.ends.load(SeqCst)
            );
            let Parsed { counts: got, tail, error } =
                log.received.lock().unwrap().take().expect("peer result");
            assert!(error.is_none(), "{what}: {error:?}");
            let accepted: Vec<u32> = log.accepted.iter().map(|a| a.load(SeqCst)).collect();
            delivered += got.iter().map(|&n| n as u64).sum::<u64>();
            if log.aborted.load(SeqCst) {
                for w in 0..WRITERS {
                    assert!(
                        got[w] <= accepted[w],
                        "{what}: writer {w}: {} received > {} accepted",
                        got[w],
                        accepted[w]
                    );
                }
            } else {
                assert!(!log.reset.load(SeqCst), "{what}: reset without abort");
                assert_eq!(tail, 0, "{what}: a partial message before an orderly EOF");
                assert_eq!(
                    &got[..],
                    &accepted[..],
                    "{what}: received vs accepted per writer (orderly close)"
                );
            }
            if log.reset.load(SeqCst) {
                resets += 1;
            } else {
                eofs += 1;
            }
        }
        let fds = fds_back_to(fds0, Duration::from_secs(30)).await;
        let rss1 = rss_kib();
        let s = &stats;
        eprintln!(
            "[close_wakeup_storm] variant={} iterations={iterations} sockets={} elapsed={:?} \
             posts_ok={} posts_refused_closed={} owner_sends={} delivered_msgs={delivered} \
             wakeups={} parks_woken={} parks_expired={} closes(abort/drop/shutdown/hold)={}/{}/{}/{} \
             tasks_cancelled={} peer_eof={eofs} peer_reset={resets} fds_before={fds0} fds_after={fds} \
             rss_before_kib={rss0} rss_after_kib={rss1}",
            variant(),
            all_logs.len(),
            start.elapsed(),
            s.posts_ok.load(SeqCst),
            s.posts_refused.load(SeqCst),
            s.owner_sends.load(SeqCst),
            s.wakeups.load(SeqCst),
            s.parks_woken.load(SeqCst),
            s.parks_expired.load(SeqCst),
            s.closes[0].load(SeqCst),
            s.closes[1].load(SeqCst),
            s.closes[2].load(SeqCst),
            s.closes[3].load(SeqCst),
            s.cancelled.load(SeqCst),
        );
        assert_eq!(all_logs.len(), iterations * STORM_SOCKETS);
        assert_eq!(fds, fds0, "fd count {fds0} -> {fds} after the storm");
        drop(l);
    });
}

// ---------------------------------------------------------------------------------------
// 2. Reconnect storm
// ---------------------------------------------------------------------------------------

const RECONNECT_CLIENTS: usize = 10;

#[derive(Default)]
struct ReconnectServer {
    /// Per client, the sequence numbers accepted, in order.
    accepted: Vec<Mutex<Vec<u32>>>,
    /// Re-sent messages that were already accepted (their ack was lost).
    duplicates: AtomicU64,
    /// Messages that skipped ahead of the next expected one: a message was lost.
    gaps: Mutex<Vec<String>>,
    closes: [AtomicU64; 3],
    client_closes: AtomicU64,
    connections: AtomicU64,
}

/// Server side of one connection: reads `[client u32][seq u32]` messages, accepts each
/// message once (only the next expected one), acks with the client's accepted count, and
/// closes at random (drop, abort, or shutdown) after 0-8 messages.
async fn reconnect_handler(s: TcpStream, st: Arc<ReconnectServer>, mut rng: Rng) {
    st.connections.fetch_add(1, SeqCst);
    let close_after = rng.below(9);
    let mode = rng.below(3) as usize;
    let mut n = 0;
    loop {
        if n == close_after {
            st.closes[mode].fetch_add(1, SeqCst);
            match mode {
                0 => drop(s),
                1 => s.abort(),
                _ => {
                    if s.shutdown().await.is_ok() {
                        let mut sink = [0u8; 256];
                        while let Ok(1..) = s.recv(&mut sink).await {}
                    }
                }
            }
            return;
        }
        let mut m = [0u8; 8];
        if recv_exact(&s, &mut m).await.is_err() {
            st.client_closes.fetch_add(1, SeqCst);
            return;
        }
        let cid = u32::from_be_bytes(m[..4].try_into().unwrap()) as usize;
        let seq = u32::from_be_bytes(m[4..].try_into().unwrap());
        let ack = {
            let mut acc = st.accepted[cid].lock().unwrap();
            let expected = acc.len() as u32;
            if seq == expected {
                acc.push(seq);
            } else if seq < expected {
                st.duplicates.fetch_add(1, SeqCst);
            } else {
                st.gaps.lock().unwrap().push(format!("client {cid}: got {seq}, expected {expected}"));
            }
            acc.len() as u32
        };
        if s.send_all(&ack.to_be_bytes()).await.is_err() {
            return;
        }
        n += 1;
    }
}

/// One client: `iterations` connections (then more until everything is acked), each after
/// a 0-2 ms back-off; adds 1-4 new messages per connection, (re-)sends every unacked one,
/// and drops what the server acked.
async fn reconnect_client(
    addr: SocketAddr,
    cid: u32,
    iterations: usize,
    mut rng: Rng,
    connect_resets: Arc<AtomicU64>,
) -> (u32, u64) {
    let mut next = 0u32;
    let mut pending: VecDeque<u32> = VecDeque::new();
    let mut last_ack = 0u32;
    let mut conns = 0u64;
    for c in 0.. {
        if c >= iterations && pending.is_empty() {
            break;
        }
        assert!(
            c < iterations + 500,
            "client {cid}: {} messages still unacked after {c} connections",
            pending.len()
        );
        if c < iterations {
            for _ in 0..1 + rng.below(4) {
                pending.push_back(next);
                next += 1;
            }
        }
        let delay = Duration::from_micros(if c == 0 { 0 } else { rng.below(2001) });
        conns += 1;
        let s = match TcpStream::connect_with(addr, ConnectOptions::new().delay(delay).nodelay(true)).await {
            Ok(s) => s,
            // The server accepted and reset the connection before the connect completed
            // here: a close like any other.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                connect_resets.fetch_add(1, SeqCst);
                continue;
            }
            Err(e) => panic!("client {cid}: connect {c}: {e}"),
        };
        let mut wire = Vec::new();
        for &q in &pending {
            wire.extend_from_slice(&cid.to_be_bytes());
            wire.extend_from_slice(&q.to_be_bytes());
        }
        // Sent directly or posted: both must keep the order.
        let sent = if rng.one_in(2) { s.send_all(&wire).await.is_ok() } else { s.post_send(wire).is_ok() };
        if !sent {
            continue;
        }
        loop {
            let mut a = [0u8; 4];
            match recv_exact(&s, &mut a).await {
                Ok(()) => {
                    let ack = u32::from_be_bytes(a);
                    assert!(
                        ack >= last_ack && ack <= next,
                        "client {cid}: ack {ack} after {last_ack} (sent up to {next})"
                    );
                    last_ack = ack;
                    while pending.front().is_some_and(|&q| q < ack) {
                        pending.pop_front();
                    }
                    if pending.is_empty() {
                        // Everything acked: close our side, wait for the server's end.
                        if s.shutdown().await.is_ok() {
                            let mut sink = [0u8; 64];
                            while let Ok(1..) = s.recv(&mut sink).await {}
                        }
                        break;
                    }
                }
                // The server closed (EOF or reset): reconnect.
                Err(_) => break,
            }
        }
    }
    (next, conns)
}

#[test]
fn reconnect_storm() {
    let _g = serial();
    let iterations = pick(50, 1000);
    let seed = seed("reconnect_storm");
    run(2, pick(Duration::from_secs(60), Duration::from_secs(600)), move || async move {
        let mut rng = Rng::new(seed);
        let (l, addr) = listener().await;
        iocore::time::sleep(Duration::from_millis(20)).await;
        let fds0 = fd_count();
        let start = Instant::now();
        let st = Arc::new(ReconnectServer {
            accepted: (0..RECONNECT_CLIENTS).map(|_| Mutex::new(Vec::new())).collect(),
            ..Default::default()
        });
        let handlers = Arc::new(AtomicUsize::new(0));
        let server = {
            let (st, handlers) = (st.clone(), handlers.clone());
            let mut srng = Rng::new(rng.next_u64());
            iocore::spawn(async move {
                loop {
                    let (s, _) = l.accept().await.expect("accept");
                    let (st, handlers) = (st.clone(), handlers.clone());
                    handlers.fetch_add(1, SeqCst);
                    let r = Rng::new(srng.next_u64());
                    iocore::spawn(async move {
                        reconnect_handler(s, st, r).await;
                        handlers.fetch_sub(1, SeqCst);
                    });
                }
            })
        };
        let connect_resets = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..RECONNECT_CLIENTS)
            .map(|cid| {
                let r = Rng::new(rng.next_u64());
                iocore::spawn(reconnect_client(addr, cid as u32, iterations, r, connect_resets.clone()))
            })
            .collect();
        let mut sent = Vec::new();
        let mut conns = 0;
        for c in clients {
            let (n, k) = c.await.expect("client task");
            sent.push(n);
            conns += k;
        }
        let elapsed = start.elapsed();
        let gaps = st.gaps.lock().unwrap().clone();
        assert!(gaps.is_empty(), "messages lost (a later one arrived first): {gaps:?}");
        for (cid, &n) in sent.iter().enumerate() {
            let acc = st.accepted[cid].lock().unwrap();
            assert_eq!(acc.len() as u32, n, "client {cid}: {} of {n} messages accepted", acc.len());
            assert!(acc.iter().copied().eq(0..n), "client {cid}: accepted out of order or twice");
        }
        // Handlers finish once their connections end.
        settle_in_core(Duration::from_secs(10), || handlers.load(SeqCst) == 0).await;
        assert_eq!(handlers.load(SeqCst), 0, "server handlers still running");
        server.abort();
        let _ = server.await;
        let fds = fds_back_to(fds0 - 1, Duration::from_secs(30)).await;
        eprintln!(
            "[reconnect_storm] variant={} clients={RECONNECT_CLIENTS} iterations={iterations} \
             connections={conns} server_connections={} messages={} duplicates_resent={} \
             server_closes(drop/abort/shutdown)={}/{}/{} client_closes={} connects_reset={} elapsed={elapsed:?} \
             fds_before={fds0} fds_after={} (listener closed)",
            variant(),
            st.connections.load(SeqCst),
            sent.iter().map(|&n| n as u64).sum::<u64>(),
            st.duplicates.load(SeqCst),
            st.closes[0].load(SeqCst),
            st.closes[1].load(SeqCst),
            st.closes[2].load(SeqCst),
            st.client_closes.load(SeqCst),
            connect_resets.load(SeqCst),
            fds,
        );
        assert_eq!(fds, fds0 - 1, "fd count {fds0} -> {fds} (+ the listener closed)");
    });
}

// ---------------------------------------------------------------------------------------
// 3. Many connections held open
// ---------------------------------------------------------------------------------------

/// Set (to the server's address) in the child process that holds the client ends.
const HELD_CHILD: &str = "IOCORE_STRESS_HELD_CLIENTS_OF";

/// `conns` connections held open, one echoed message per second each for `secs` seconds,
/// then all closed. The client ends live in a child process (this test binary again), so
/// that each process needs about `conns` fds (the hard `RLIMIT_NOFILE` may be 20000).
#[test]
fn many_connections_held_open() {
    let conns = pick(500usize, 10_000);
    let secs = pick(2u32, 30);
    if let Ok(addr) = std::env::var(HELD_CHILD) {
        held_clients(addr.parse().expect("server address"), conns, secs);
        return;
    }
    let _g = serial();
    let limit = raise_nofile((conns + 512) as u64);
    assert!(limit as usize >= conns + 512, "RLIMIT_NOFILE {limit} is too low for {conns} connections");
    run(2, Duration::from_secs(secs as u64 + 240), move || async move {
        let (l, addr) = listener().await;
        iocore::time::sleep(Duration::from_millis(20)).await;
        let fds0 = fd_count();
        let rss0 = rss_kib();
        let start = Instant::now();
        let echoed = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let handlers_done = Arc::new(AtomicUsize::new(0));
        let server = {
            let (echoed, accepted, done) = (echoed.clone(), accepted.clone(), handlers_done.clone());
            iocore::spawn(async move {
                for _ in 0..conns {
                    let (s, _) = l.accept().await.expect("accept");
                    accepted.fetch_add(1, SeqCst);
                    let (echoed, done) = (echoed.clone(), done.clone());
                    iocore::spawn(async move {
                        let mut m = [0u8; 8];
                        while recv_exact(&s, &mut m).await.is_ok() {
                            s.send_all(&m).await.expect("server echo");
                            echoed.fetch_add(1, SeqCst);
                        }
                        done.fetch_add(1, SeqCst);
                    });
                }
                l
            })
        };
        // The clients: this test again, in a child process.
        let child = thread::spawn(move || {
            run_child_with(
                "many_connections_held_open",
                HELD_CHILD,
                &addr.to_string(),
                Duration::from_secs(secs as u64 + 180),
            )
        });
        // Measure while every connection is open and busy.
        let (mut fds_during, mut rss_during) = (0, 0);
        while !child.is_finished() {
            iocore::time::sleep(Duration::from_millis(50)).await;
            if accepted.load(SeqCst) == conns && fds_during == 0 {
                iocore::time::sleep(Duration::from_secs(secs as u64) / 2).await;
                fds_during = fd_count();
                rss_during = rss_kib();
            }
        }
        let (ok, out, err) = join_thread(child).await;
        assert!(ok, "client process failed\nstdout:\n{out}\nstderr:\n{err}");
        let l = server.await.expect("acceptor");
        settle_in_core(Duration::from_secs(30), || handlers_done.load(SeqCst) == conns).await;
        let elapsed = start.elapsed();
        let fds = fds_back_to(fds0, Duration::from_secs(60)).await;
        let rss1 = rss_kib();
        for line in out.lines().filter_map(|l| l.find("[held-clients]").map(|i| &l[i..])) {
            eprintln!("{line}");
        }
        let total = echoed.load(SeqCst);
        eprintln!(
            "[many_connections_held_open] variant={} connections={conns} secs={secs} \
             echoed={total} elapsed={elapsed:?} server_fds_before={fds0} server_fds_during={fds_during} \
             server_fds_after={fds} server_rss_before_kib={rss0} server_rss_during_kib={rss_during} \
             server_rss_after_kib={rss1} handlers_done={}",
            variant(),
            handlers_done.load(SeqCst),
        );
        assert!(
            out.contains(&format!("round_trips={}", conns as u64 * secs as u64)),
            "client report:\n{out}"
        );
        assert_eq!(total, conns as u64 * secs as u64, "messages echoed");
        assert!(fds_during >= fds0 + conns, "{conns} connections but server fds {fds0} -> {fds_during}");
        assert_eq!(handlers_done.load(SeqCst), conns, "server handlers that saw the close");
        assert_eq!(fds, fds0, "fd count {fds0} -> {fds} after closing every connection");
        drop(l);
    });
}

/// The child process of `many_connections_held_open`: the client ends.
fn held_clients(addr: SocketAddr, conns: usize, secs: u32) {
    let limit = raise_nofile((conns + 512) as u64);
    assert!(limit as usize >= conns + 512, "RLIMIT_NOFILE {limit} is too low for {conns} connections");
    run(2, Duration::from_secs(secs as u64 + 120), move || async move {
        let fds0 = fd_count();
        let rss0 = rss_kib();
        let start = Instant::now();
        // Connect in waves of 256.
        let mut streams = Vec::with_capacity(conns);
        while streams.len() < conns {
            let wave = (conns - streams.len()).min(256);
            let hs: Vec<_> = (0..wave).map(|_| iocore::spawn(TcpStream::connect(addr))).collect();
            for h in hs {
                streams.push(h.await.expect("connect task").expect("connect"));
            }
        }
        let connected_in = start.elapsed();
        // One message per second per connection, phases spread over the second.
        let t0 = Instant::now() + Duration::from_millis(100);
        let ok = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let ok = ok.clone();
                let phase = Duration::from_micros((i as u64 * 1_000_000) / conns as u64);
                iocore::spawn(async move {
                    let mut tick = iocore::time::interval_at(t0 + phase, Duration::from_secs(1));
                    for k in 0..secs {
                        tick.tick().await;
                        let mut m = [0u8; 8];
                        m[..4].copy_from_slice(&(i as u32).to_be_bytes());
                        m[4..].copy_from_slice(&k.to_be_bytes());
                        s.send_all(&m).await.expect("client send");
                        let mut back = [0u8; 8];
                        recv_exact(&s, &mut back).await.expect("client recv");
                        assert_eq!(back, m, "connection {i}: echo differs");
                        ok.fetch_add(1, SeqCst);
                    }
                    s
                })
            })
            .collect();
        iocore::time::sleep(Duration::from_millis(100) + Duration::from_secs(secs as u64) / 2).await;
        let fds_during = fd_count();
        let rss_during = rss_kib();
        let mut streams = Vec::with_capacity(conns);
        for c in clients {
            streams.push(c.await.expect("client task"));
        }
        drop(streams);
        let fds = fds_back_to(fds0, Duration::from_secs(30)).await;
        println!(
            "[held-clients] connections={conns} connected_in={connected_in:?} round_trips={} \
             elapsed={:?} client_fds_before={fds0} client_fds_during={fds_during} client_fds_after={fds} \
             client_rss_before_kib={rss0} client_rss_during_kib={rss_during} client_rss_after_kib={}",
            ok.load(SeqCst),
            start.elapsed(),
            rss_kib(),
        );
        assert_eq!(fds, fds0, "client fds {fds0} -> {fds}");
    });
}

// ---------------------------------------------------------------------------------------
// 4. Connect/accept churn
// ---------------------------------------------------------------------------------------

#[test]
fn connect_accept_churn() {
    let _g = serial();
    let total = pick(2_000usize, 100_000);
    const IN_FLIGHT: usize = 32;
    run(2, pick(Duration::from_secs(60), Duration::from_secs(900)), move || async move {
        let (l, addr) = listener().await;
        iocore::time::sleep(Duration::from_millis(20)).await;
        let fds0 = fd_count();
        let rss0 = rss_kib();
        let start = Instant::now();
        let served = Arc::new(AtomicUsize::new(0));
        let server = {
            let served = served.clone();
            iocore::spawn(async move {
                for _ in 0..total {
                    let (s, _) = l.accept().await.expect("accept");
                    let served = served.clone();
                    iocore::spawn(async move {
                        let mut b = [0u8; 1];
                        recv_exact(&s, &mut b).await.expect("server recv");
                        s.send_all(&b).await.expect("server send");
                        // The server closes first.
                        drop(s);
                        served.fetch_add(1, SeqCst);
                    });
                }
                l
            })
        };
        let done = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|w| {
                let done = done.clone();
                iocore::spawn(async move {
                    let mut i = w;
                    while i < total {
                        let c = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {i}: {e}"));
                        let b = [(i % 251) as u8];
                        c.send_all(&b).await.expect("client send");
                        let mut back = [0u8; 1];
                        recv_exact(&c, &mut back).await.expect("client recv");
                        assert_eq!(back, b);
                        let mut eof = [0u8; 1];
                        assert_eq!(c.recv(&mut eof).await.expect("client EOF"), 0);
                        done.fetch_add(1, SeqCst);
                        i += IN_FLIGHT;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("client worker");
        }
        let l = server.await.expect("acceptor");
        settle_in_core(Duration::from_secs(30), || served.load(SeqCst) == total).await;
        let elapsed = start.elapsed();
        let fds = fds_back_to(fds0, Duration::from_secs(30)).await;
        let rss1 = rss_kib();
        eprintln!(
            "[connect_accept_churn] variant={} connections={total} in_flight={IN_FLIGHT} completed={} \
             served={} elapsed={elapsed:?} rate={:.0}/s fds_before={fds0} fds_after={fds} \
             rss_before_kib={rss0} rss_after_kib={rss1}",
            variant(),
            done.load(SeqCst),
            served.load(SeqCst),
            total as f64 / elapsed.as_secs_f64(),
        );
        assert_eq!(done.load(SeqCst), total);
        assert_eq!(served.load(SeqCst), total);
        assert_eq!(fds, fds0, "fd count {fds0} -> {fds} after {total} connections");
        drop(l);
    });
}

// ---------------------------------------------------------------------------------------
// 5. One big message each way
// ---------------------------------------------------------------------------------------

#[test]
fn one_big_message_each_way() {
    let _g = serial();
    let size = pick(8usize << 20, 64 << 20);
    run(2, pick(Duration::from_secs(60), Duration::from_secs(300)), move || async move {
        let (c, s) = pair().await;
        let rss0 = rss_kib();
        let start = Instant::now();
        let up = Arc::new(pattern(1, size));
        let down = Arc::new(pattern(2, size));
        let end = |stream: TcpStream, out: Arc<Vec<u8>>, want: Arc<Vec<u8>>, who: &'static str| async move {
            let mut got = vec![0u8; want.len()];
            let (sent, recvd) = futures::join!(stream.send_all(&out), recv_exact(&stream, &mut got));
            sent.unwrap_or_else(|e| panic!("{who} send_all: {e}"));
            recvd.unwrap_or_else(|e| panic!("{who} recv: {e}"));
            assert!(got == *want, "{who}: received bytes differ from what was sent");
            stream
        };
        let a = iocore::spawn(end(c, up.clone(), down.clone(), "client"));
        let b = iocore::spawn(end(s, down, up, "server"));
        let (c, s) = (a.await.expect("client task"), b.await.expect("server task"));
        let elapsed = start.elapsed();
        // Nothing more follows, in either direction.
        c.shutdown().await.expect("shutdown");
        let mut x = [0u8; 1];
        assert_eq!(s.recv(&mut x).await.expect("server EOF"), 0);
        eprintln!(
            "[one_big_message_each_way] variant={} bytes_each_way={size} elapsed={elapsed:?} \
             throughput={:.0} MiB/s (both ways) rss_before_kib={rss0} rss_after_kib={}",
            variant(),
            (2 * size) as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
            rss_kib(),
        );
    });
}

// ---------------------------------------------------------------------------------------
// 6. Slow reader, paced producer
// ---------------------------------------------------------------------------------------

#[test]
fn slow_reader_paces_the_producer() {
    let _g = serial();
    const HIGH_WATER: usize = 256 * 1024;
    const CHUNK: usize = 16 * 1024;
    let secs = pick(1u64, 10);
    run(2, Duration::from_secs(secs + 60), move || async move {
        let (client, peer) = pair().await;
        // Default kernel buffers: they fill within milliseconds at this rate, then the posted
        // queue holds the backlog. (Shrinking them to 4 KiB makes gVisor's netstack stall for
        // seconds on window updates, with plain std sockets too.)
        client.set_post_high_water(HIGH_WATER);
        let sender = client.sender();
        let slow_until = Instant::now() + Duration::from_secs(secs);
        let chunk = |seq: u64| {
            let mut c = pattern(seq + 7, CHUNK);
            c[..8].copy_from_slice(&seq.to_be_bytes());
            c
        };

        // Producer thread: posts 16 KiB chunks as fast as it is allowed.
        let producer = {
            let sender = sender.clone();
            thread::spawn(move || {
                let (mut accepted, mut would_exceed, mut max_queued) = (0u64, 0u64, 0usize);
                // Refusals right after `ready()` completed: the producer spinning.
                let mut refused_after_ready = 0u64;
                while Instant::now() < slow_until {
                    let mut data = Bytes::from(chunk(accepted));
                    let mut waited = false;
                    loop {
                        match sender.post_send(data) {
                            Ok(()) => break,
                            Err(PostError::WouldExceed(back)) => {
                                would_exceed += 1;
                                if waited {
                                    refused_after_ready += 1;
                                }
                                data = back;
                                futures::executor::block_on(sender.ready());
                                waited = true;
                            }
                            Err(e) => panic!("post_send: {e}"),
                        }
                    }
                    accepted += 1;
                    let q = sender.queued_bytes();
                    max_queued = max_queued.max(q);
                    assert!(
                        q <= HIGH_WATER + CHUNK,
                        "queued {q} bytes > high-water {HIGH_WATER} + one chunk"
                    );
                }
                (accepted, would_exceed, refused_after_ready, max_queued)
            })
        };

        // Reader: 1 KiB per 1 ms tick until the end of the slow phase, then everything.
        let reader = {
            let sender = sender.clone();
            iocore::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                let mut tick = iocore::time::interval(Duration::from_millis(1));
                let (mut ticks, mut max_queued, mut eof) = (0u64, 0usize, false);
                while Instant::now() < slow_until {
                    tick.tick().await;
                    ticks += 1;
                    let n = peer.recv(&mut buf[..1024]).await.expect("slow recv");
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let q = sender.queued_bytes();
                    max_queued = max_queued.max(q);
                    assert!(
                        q <= HIGH_WATER + CHUNK,
                        "queued {q} bytes > high-water {HIGH_WATER} + one chunk"
                    );
                }
                let slow_bytes = got.len();
                while !eof {
                    let n = peer.recv(&mut buf).await.expect("fast recv");
                    eof = n == 0;
                    got.extend_from_slice(&buf[..n]);
                }
                (got, slow_bytes, ticks, max_queued)
            })
        };

        let (accepted, would_exceed, refused_after_ready, max_q_producer) = join_thread(producer).await;
        client.shutdown().await.expect("shutdown (flush, then FIN)");
        let (got, slow_bytes, ticks, max_q_reader) = reader.await.expect("reader task");
        eprintln!(
            "[slow_reader_paces_the_producer] variant={} slow_phase={secs}s high_water={HIGH_WATER} \
             chunk={CHUNK} accepted_chunks={accepted} would_exceed={would_exceed} \
             refused_again_right_after_ready={refused_after_ready} \
             max_queued_seen(producer/reader)={max_q_producer}/{max_q_reader} reader_ticks={ticks} \
             bytes_read_slowly={slow_bytes} bytes_total={}",
            variant(),
            got.len(),
        );
        assert!(would_exceed > 0, "the producer was never paced (no WouldExceed)");
        assert_eq!(got.len() as u64, accepted * CHUNK as u64, "bytes received vs accepted");
        for (i, c) in got.chunks(CHUNK).enumerate() {
            assert!(c == &chunk(i as u64)[..], "chunk {i} differs (lost, reordered or corrupted)");
        }
        // Pacing must be a wait, not a spin: with one producer, once `ready()` completes the
        // refused buffer should go (at most one wasted retry per chunk is tolerated).
        assert!(
            refused_after_ready <= accepted,
            "the producer spins: {refused_after_ready} post_send refusals right after ready() completed \
             ({accepted} chunks accepted). ready() completes once queued < high-water, but post_send \
             refuses while queued + len > high-water, so the documented WouldExceed -> ready() -> retry \
             loop busy-waits for as long as the reader needs to drain one buffer"
        );
    });
}
