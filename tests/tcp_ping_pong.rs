//! 300 fresh connections, each with 10 pipelined length-prefixed messages of 1 B .. 64 KiB,
//! echoed by the server: every byte comes back, zero errors, on a 2-thread core.

mod support;

use iocore::net::TcpStream;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::net::{listener, recv_exact, run, Recv, LIMIT};
use support::pattern;

const CONNECTIONS: usize = 300;
const MESSAGES: usize = 10;
/// Connections in flight at once.
const BATCH: usize = 30;
const MAX_LEN: usize = 64 * 1024;

/// Message sizes: always includes 1 byte and 64 KiB, the rest spread in between.
fn size_of(conn: usize, msg: usize) -> usize {
    match (conn + msg) % 10 {
        0 => 1,
        1 => MAX_LEN,
        _ => {
            1 + (pattern((conn * 31 + msg) as u64, 4).iter().fold(0usize, |a, &b| a * 256 + b as usize)
                % MAX_LEN)
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Echoes frames until EOF; returns the number of frames.
async fn echo_frames(s: TcpStream) -> io::Result<usize> {
    let mut frames = 0;
    loop {
        let mut hdr = [0u8; 4];
        let n = s.recv(&mut hdr[..1]).await?;
        if n == 0 {
            return Ok(frames);
        }
        recv_exact(&s, &mut hdr[1..]).await?;
        let len = u32::from_be_bytes(hdr) as usize;
        if len == 0 || len > MAX_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
        }
        let mut payload = vec![0u8; len];
        recv_exact(&s, &mut payload).await?;
        s.send_all(&frame(&payload)).await?;
        frames += 1;
    }
}

/// Checks the 10 echoed frames.
async fn check_echoes<R: Recv>(rx: &R, payloads: &[Vec<u8>]) -> io::Result<()> {
    for (m, p) in payloads.iter().enumerate() {
        let mut hdr = [0u8; 4];
        recv_exact(rx, &mut hdr).await?;
        let len = u32::from_be_bytes(hdr) as usize;
        if len != p.len() {
            return Err(io::Error::other(format!("message {m}: length {len}, expected {}", p.len())));
        }
        let mut back = vec![0u8; len];
        recv_exact(rx, &mut back).await?;
        if &back != p {
            return Err(io::Error::other(format!("message {m}: echoed content differs")));
        }
    }
    Ok(())
}

/// One client connection: sends 10 frames back to back (posted on even connections,
/// `send_all` from a separate task on odd ones), reads and checks the 10 echoes, closes.
async fn client(addr: std::net::SocketAddr, conn: usize) -> io::Result<()> {
    let s = TcpStream::connect(addr).await?;
    let payloads: Vec<Vec<u8>> =
        (0..MESSAGES).map(|m| pattern((conn * MESSAGES + m) as u64, size_of(conn, m))).collect();
    let s = if conn % 2 == 0 {
        // Posted, waiting for room below the high-water mark when the queue is full.
        let tx = s.sender();
        for p in &payloads {
            tx.send(frame(p)).await.map_err(|e| io::Error::other(format!("post: {e}")))?;
        }
        check_echoes(&s, &payloads).await?;
        s
    } else {
        let (rx, tx) = s.into_split();
        let frames: Vec<Vec<u8>> = payloads.iter().map(|p| frame(p)).collect();
        let writer = iocore::spawn(async move {
            for f in &frames {
                tx.send_all(f).await?;
            }
            Ok::<_, io::Error>(tx)
        });
        check_echoes(&rx, &payloads).await?;
        let tx = writer.await.map_err(|e| io::Error::other(format!("writer task: {e}")))??;
        iocore::net::reunite(rx, tx).map_err(|e| io::Error::other(e.to_string()))?
    };
    s.shutdown().await?;
    let mut rest = [0u8; 1];
    let n = s.recv(&mut rest).await?;
    if n != 0 {
        return Err(io::Error::other("extra data after the 10 echoes"));
    }
    Ok(())
}

#[test]
fn ping_pong_300_connections() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let served = Arc::new(AtomicUsize::new(0));
        let served2 = served.clone();
        let server = iocore::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..CONNECTIONS {
                let (s, _) = l.accept().await.expect("accept");
                let served = served2.clone();
                handlers.push(iocore::spawn(async move {
                    let n = echo_frames(s).await.expect("server connection");
                    assert_eq!(n, MESSAGES);
                    served.fetch_add(1, Ordering::SeqCst);
                }));
            }
            for h in handlers {
                h.await.expect("server handler");
            }
        });
        for batch in 0..CONNECTIONS / BATCH {
            let clients: Vec<_> =
                (0..BATCH).map(|i| iocore::spawn(client(addr, batch * BATCH + i))).collect();
            for (i, c) in clients.into_iter().enumerate() {
                let conn = batch * BATCH + i;
                c.await.expect("client task").unwrap_or_else(|e| panic!("connection {conn}: {e}"));
            }
        }
        server.await.expect("server task");
        assert_eq!(served.load(Ordering::SeqCst), CONNECTIONS);
    });
}
