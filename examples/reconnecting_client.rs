//! A client that posts from another thread and reconnects with a 10 ms back-off after each
//! close. The built-in server acks and closes every 5 messages (8-byte sequence numbers) and
//! accepts only the next expected one; the client re-sends what was not acked, so every
//! message arrives exactly once, in order, over 20 connections.
//!
//! Run: `cargo run --release --example reconnecting_client`

use iocore::net::{ConnectOptions, PostSender, TcpListener, TcpStream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MESSAGES: u64 = 100;

async fn recv_u64(s: &TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match s.recv(&mut b[got..]).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(u64::from_be_bytes(b))
}

fn main() -> std::io::Result<()> {
    let core = iocore::IoCore::new()?;
    core.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = iocore::spawn(async move {
            let mut accepted = Vec::new();
            while (accepted.len() as u64) < MESSAGES {
                let (s, _) = listener.accept().await?;
                for _ in 0..5 {
                    let seq = recv_u64(&s).await?;
                    if seq == accepted.len() as u64 {
                        accepted.push(seq);
                    }
                }
                s.send_all(&(accepted.len() as u64 - 1).to_be_bytes()).await?;
                s.shutdown().await?;
                while s.recv(&mut [0u8; 512]).await? > 0 {} // until the client closes
            }
            Ok::<_, std::io::Error>(accepted)
        });

        // Unacked messages, and the current connection's sender (None while reconnecting).
        let outbox: Arc<Mutex<(VecDeque<u64>, Option<PostSender>)>> = Arc::default();
        let producer = outbox.clone();
        std::thread::spawn(move || {
            for seq in 0..MESSAGES {
                let mut o = producer.lock().unwrap();
                o.0.push_back(seq);
                if let Some(tx) = &o.1 {
                    if tx.post_send(seq.to_be_bytes().to_vec()).is_err() {
                        o.1 = None; // closed: it goes out after the reconnect
                    }
                }
                drop(o);
                std::thread::sleep(Duration::from_millis(1));
            }
        });

        let (mut acked, mut connections) = (None, 0);
        while acked != Some(MESSAGES - 1) {
            let back_off = if connections == 0 { Duration::ZERO } else { Duration::from_millis(10) };
            let s = TcpStream::connect_with(addr, ConnectOptions::new().delay(back_off)).await?;
            connections += 1;
            {
                let mut o = outbox.lock().unwrap();
                for seq in &o.0 {
                    s.post_send(seq.to_be_bytes().to_vec()).expect("fresh socket");
                }
                o.1 = Some(s.sender());
            }
            let ack = recv_u64(&s).await?;
            {
                let mut o = outbox.lock().unwrap();
                o.1 = None;
                o.0.retain(|&q| q > ack);
            }
            acked = Some(ack);
            while s.recv(&mut [0u8; 64]).await? > 0 {} // the server closes first
        }
        let accepted = server.await??;
        assert_eq!(accepted, (0..MESSAGES).collect::<Vec<_>>());
        println!("{MESSAGES} messages delivered exactly once, in order, over {connections} connections");
        Ok(())
    })
}
