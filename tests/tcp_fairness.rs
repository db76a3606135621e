//! Fairness on a 1-thread core: one connection is blasted with data by an OS thread and
//! read as fast as possible, while 50 ping-pong connections each complete 100 round trips.
//! The ping-pongs must all finish while the blaster is still running (no starvation), and
//! the blaster's reader must keep receiving meanwhile.

mod support;

use iocore::net::TcpStream;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::net::{listener, recv_exact, run, LIMIT};

const PINGERS: usize = 50;
const ROUNDS: usize = 100;

#[test]
fn ping_pongs_finish_while_a_blaster_runs() {
    run(1, LIMIT, || async {
        let blaster_running = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let blasted = Arc::new(AtomicU64::new(0));

        // The blaster: a plain OS thread writing as fast as it can (bounded in time).
        let (bl, baddr) = listener().await;
        let blaster = {
            let (running, stop) = (blaster_running.clone(), stop.clone());
            thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(baddr).expect("blaster connect");
                let chunk = vec![0xB1u8; 64 * 1024];
                let end = Instant::now() + Duration::from_secs(25);
                let mut written = 0u64;
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    s.write_all(&chunk).expect("blaster write");
                    written += chunk.len() as u64;
                }
                running.store(false, Ordering::SeqCst);
                written
            })
        };
        let (bs, _) = bl.accept().await.expect("accept blaster");
        let reader = {
            let blasted = blasted.clone();
            iocore::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = bs.recv(&mut buf).await.expect("blaster recv");
                    if n == 0 {
                        break;
                    }
                    blasted.fetch_add(n as u64, Ordering::SeqCst);
                }
            })
        };
        // Make sure the blast is on before the ping-pongs start.
        while blasted.load(Ordering::SeqCst) < 1 << 20 {
            iocore::time::sleep(Duration::from_millis(1)).await;
        }

        // The echo server, on the same core.
        let (el, eaddr) = listener().await;
        let echo = iocore::spawn(async move {
            for _ in 0..PINGERS {
                let (s, _) = el.accept().await.expect("accept pinger");
                iocore::spawn(async move {
                    let mut m = [0u8; 16];
                    while recv_exact(&s, &mut m).await.is_ok() {
                        s.send_all(&m).await.expect("echo send");
                    }
                });
            }
        });

        let finished_while_running = Arc::new(AtomicUsize::new(0));
        let pingers: Vec<_> = (0..PINGERS)
            .map(|p| {
                let (running, done) = (blaster_running.clone(), finished_while_running.clone());
                iocore::spawn(async move {
                    let c = TcpStream::connect(eaddr).await.expect("pinger connect");
                    c.set_nodelay(true).expect("nodelay");
                    for r in 0..ROUNDS {
                        let mut m = [0u8; 16];
                        m[..8].copy_from_slice(&(p as u64).to_be_bytes());
                        m[8..].copy_from_slice(&(r as u64).to_be_bytes());
                        c.send_all(&m).await.expect("ping");
                        let mut back = [0u8; 16];
                        recv_exact(&c, &mut back).await.expect("pong");
                        assert_eq!(back, m, "pinger {p} round {r}: wrong pong");
                    }
                    if running.load(Ordering::SeqCst) {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for p in pingers {
            p.await.expect("pinger task");
        }
        echo.await.expect("echo task");
        let all_done_while_running = finished_while_running.load(Ordering::SeqCst);

        // The blaster's reader is still receiving now.
        let at_finish = blasted.load(Ordering::SeqCst);
        let still_running = blaster_running.load(Ordering::SeqCst);
        let mut grew = false;
        for _ in 0..100 {
            iocore::time::sleep(Duration::from_millis(10)).await;
            if blasted.load(Ordering::SeqCst) > at_finish {
                grew = true;
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let written = blaster.join().expect("blaster thread");
        reader.await.expect("reader task");

        assert!(still_running, "the blaster stopped (time bound) before the ping-pongs finished");
        assert_eq!(
            all_done_while_running, PINGERS,
            "only {all_done_while_running} of {PINGERS} ping-pong connections finished while the blaster ran"
        );
        assert!(grew, "the blaster's reader received nothing after the ping-pongs finished");
        assert_eq!(blasted.load(Ordering::SeqCst), written, "the reader lost blasted bytes");
    });
}
