//! A reconnecting client: messages are posted from another OS thread; the server closes the
//! connection after every 5 messages (acking the last one); the client reconnects after a
//! 10 ms back-off and re-sends only what was not acked. Every message must be accepted
//! exactly once, in order.
//!
//! Protocol: a message is an 8-byte big-endian sequence number. The server reads 5 of
//! them, accepting a message only if it is the next expected one, replies with the last
//! accepted sequence number (8 bytes), shuts down its side, discards whatever else arrives
//! until EOF, and closes.

mod support;

use iocore::net::{ConnectOptions, PostError, PostSender, TcpStream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::net::{listener, recv_exact, run, LIMIT};

const MESSAGES: u64 = 100;
const PER_CONNECTION: u64 = 5;
const CONNECTIONS: u64 = MESSAGES / PER_CONNECTION;
const BACKOFF: Duration = Duration::from_millis(10);

/// What the producer thread and the connection task share: the unacked messages (in
/// order) and the sender of the current connection, if any.
#[derive(Default)]
struct Outbox {
    pending: VecDeque<u64>,
    sender: Option<PostSender>,
}

struct ServerLog {
    accepted: Vec<u64>,
    /// (connection, got, expected) for every message that was not the next expected one.
    rejected: Vec<(u64, u64, u64)>,
}

#[test]
fn reconnecting_client_delivers_every_message_exactly_once_in_order() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let server = iocore::spawn(async move {
            let mut log = ServerLog { accepted: Vec::new(), rejected: Vec::new() };
            let mut expected = 0u64;
            for conn in 0..CONNECTIONS {
                let (s, _) = l.accept().await.expect("accept");
                for _ in 0..PER_CONNECTION {
                    let mut m = [0u8; 8];
                    recv_exact(&s, &mut m).await.unwrap_or_else(|e| panic!("connection {conn}: {e}"));
                    let seq = u64::from_be_bytes(m);
                    if seq == expected {
                        log.accepted.push(seq);
                        expected += 1;
                    } else {
                        log.rejected.push((conn, seq, expected));
                    }
                }
                let ack = expected.wrapping_sub(1);
                s.send_all(&ack.to_be_bytes()).await.expect("send ack");
                s.shutdown().await.expect("server shutdown");
                // Discard what the client posted after the 5th message, until its EOF.
                let mut sink = [0u8; 4096];
                while s.recv(&mut sink).await.expect("server drain") > 0 {}
            }
            log
        });

        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let producer = {
            let outbox = outbox.clone();
            thread::spawn(move || {
                for seq in 0..MESSAGES {
                    {
                        let mut o = outbox.lock().unwrap();
                        o.pending.push_back(seq);
                        if let Some(tx) = &o.sender {
                            match tx.post_send(seq.to_be_bytes().to_vec()) {
                                Ok(()) => {}
                                // The connection is gone: the message stays pending and
                                // goes out after the reconnect.
                                Err(PostError::Closed(b)) => {
                                    assert_eq!(&b[..], &seq.to_be_bytes());
                                    o.sender = None;
                                }
                                Err(e) => panic!("post_send: {e}"),
                            }
                        }
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            })
        };

        let start = Instant::now();
        let mut connections = 0u64;
        let mut last_ack = None;
        while last_ack != Some(MESSAGES - 1) {
            assert!(connections < CONNECTIONS, "the client needed more than {CONNECTIONS} connections");
            let opts =
                if connections == 0 { ConnectOptions::new() } else { ConnectOptions::new().delay(BACKOFF) };
            let attempt = Instant::now();
            let s = TcpStream::connect_with(addr, opts).await.expect("connect");
            if connections > 0 {
                assert!(attempt.elapsed() >= BACKOFF, "reconnected after {:?}", attempt.elapsed());
            }
            connections += 1;
            {
                // Re-send everything unacked, then let the producer post directly, all
                // under one lock so the order cannot change.
                let mut o = outbox.lock().unwrap();
                for seq in &o.pending {
                    s.post_send(seq.to_be_bytes().to_vec()).expect("re-send");
                }
                o.sender = Some(s.sender());
            }
            let mut ack = [0u8; 8];
            recv_exact(&s, &mut ack).await.expect("recv ack");
            let ack = u64::from_be_bytes(ack);
            {
                let mut o = outbox.lock().unwrap();
                o.sender = None;
                o.pending.retain(|&q| q > ack);
            }
            if let Some(prev) = last_ack {
                assert!(ack > prev, "ack went from {prev} to {ack}");
            }
            last_ack = Some(ack);
            // The server closes; wait for its EOF, then close our side.
            let mut sink = [0u8; 64];
            while s.recv(&mut sink).await.expect("client drain") > 0 {}
            drop(s);
        }
        let elapsed = start.elapsed();
        producer.join().expect("producer thread");
        let log = server.await.expect("server task");
        assert!(
            log.rejected.is_empty(),
            "out-of-sequence messages (conn, got, expected): {:?}",
            log.rejected
        );
        assert_eq!(log.accepted, (0..MESSAGES).collect::<Vec<_>>(), "accepted sequence");
        assert_eq!(connections, CONNECTIONS);
        assert!(elapsed >= BACKOFF * (CONNECTIONS as u32 - 1), "20 connections with back-off in {elapsed:?}");
        assert!(outbox.lock().unwrap().pending.is_empty());
    });
}
