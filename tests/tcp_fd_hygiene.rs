//! After 10 000 connect/accept/close cycles (closed in every way the API offers), the
//! process's open-fd count is back at its starting value, and back at the value from
//! before the core once the core is dropped.
//!
//! This file holds a single test on purpose: nothing else may open fds meanwhile.

mod support;

use iocore::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::net::{listener, recv_exact, run};
use support::{fd_count, fd_list, settle, settle_in_core};

const CYCLES: usize = 10_000;
const IN_FLIGHT: usize = 16;
const STYLES: usize = 7;
/// Sent by a client that wants the server to close first.
const CLOSE_NOW: u8 = b'C';

/// Client side of one cycle; `style` picks who closes and how.
async fn client_cycle(addr: std::net::SocketAddr, style: usize) {
    let c = TcpStream::connect(addr).await.expect("connect");
    let mut b = [0u8; 8];
    match style {
        // Client closes first, after an exchange.
        0 => {
            c.send_all(b"ping").await.expect("send");
            recv_exact(&c, &mut b[..4]).await.expect("recv");
            assert_eq!(&b[..4], b"ping");
        }
        // Server closes first: ask it to, then read to EOF.
        1 => {
            c.send_all(&[CLOSE_NOW]).await.expect("send");
            assert_eq!(c.recv(&mut b).await.expect("recv EOF"), 0);
        }
        // Reset.
        2 => c.abort(),
        // Posted data, then drop: the flusher delivers and closes.
        3 => {
            c.post_send(vec![7u8; 10_000]).expect("post_send");
            c.sender().post_send(vec![8u8; 100]).expect("post_send via sender");
        }
        // Graceful shutdown, then wait for the server's EOF.
        4 => {
            c.shutdown().await.expect("shutdown");
            assert_eq!(c.recv(&mut b).await.expect("recv EOF"), 0);
        }
        // Owned halves dropped separately, the send half with posts pending.
        5 => {
            let (r, s) = c.into_split();
            s.post_send(vec![9u8; 1000]).expect("post on half");
            drop(r);
            drop(s);
        }
        // Drop without doing anything.
        _ => drop(c),
    }
}

/// Server side: echoes up to 4 bytes of each read until EOF or error; closes at once on
/// `CLOSE_NOW`.
async fn server_cycle(s: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = s.recv(&mut buf).await {
        if buf[..n].contains(&CLOSE_NOW) {
            return;
        }
        if s.send_all(&buf[..n.min(4)]).await.is_err() {
            break;
        }
    }
}

#[test]
fn ten_thousand_cycles_leave_no_fds_behind() {
    let before_core = fd_count();
    let before_list = fd_list();
    run(2, Duration::from_secs(150), || async {
        let (l, addr) = listener().await;
        let served = Arc::new(AtomicUsize::new(0));
        let server = {
            let served = served.clone();
            iocore::spawn(async move {
                for _ in 0..CYCLES {
                    let (s, _) = l.accept().await.expect("accept");
                    let served = served.clone();
                    iocore::spawn(async move {
                        server_cycle(s).await;
                        served.fetch_add(1, Ordering::SeqCst);
                    });
                }
                // Keep the listener open until the fds are counted.
                l
            })
        };
        // Baseline with the core, the listener and the server task running.
        iocore::time::sleep(Duration::from_millis(20)).await;
        let base = fd_count();
        let base_list = fd_list();

        let mut next = 0;
        while next < CYCLES {
            let end = (next + IN_FLIGHT).min(CYCLES);
            let batch: Vec<_> = (next..end).map(|i| iocore::spawn(client_cycle(addr, i % STYLES))).collect();
            for h in batch {
                h.await.expect("client cycle");
            }
            next = end;
        }
        let l = server.await.expect("server task");
        // Server handlers finish once their peers' closes arrive.
        let all_served =
            settle_in_core(Duration::from_secs(10), || served.load(Ordering::SeqCst) == CYCLES).await;
        assert!(all_served, "only {} of {CYCLES} server handlers finished", served.load(Ordering::SeqCst));
        // Flushers of dropped streams and the core's release list may need a moment.
        let back = settle_in_core(Duration::from_secs(10), || fd_count() <= base).await;
        assert!(
            back,
            "fd count {base} -> {} after {CYCLES} cycles\nbefore: {base_list:#?}\nafter: {:#?}",
            fd_count(),
            fd_list()
        );
        assert_eq!(fd_count(), base, "fewer fds than at the start?");
        drop(l);
    });
    // With the core gone, its own fds are gone too.
    let ok = settle(Duration::from_secs(10), || fd_count() == before_core);
    assert!(
        ok,
        "fd count {before_core} -> {} after dropping the core\nbefore: {before_list:#?}\nafter: {:#?}",
        fd_count(),
        fd_list()
    );
}
