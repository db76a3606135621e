//! `net::copy_bidirectional`: a proxy between a client and a server passes data both ways,
//! in order, and passes each half-close on.

use iocore::net::{copy_bidirectional, TcpListener, TcpStream};
use iocore::IoCore;
use std::time::Duration;

const HANG: Duration = Duration::from_secs(20);

async fn recv_to_end(s: &TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.recv(&mut buf).await.expect("recv");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_proxy_copies_both_ways_and_passes_half_closes_on() {
    let core = IoCore::builder().threads(2).build().unwrap();
    core.block_on(iocore::time::timeout(HANG, async {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let request: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let reply: Vec<u8> = (0..500_000u32).map(|i| (i % 241) as u8).collect();
        // The server reads the whole request (until the client's half-close reaches it),
        // then answers and closes.
        let (req2, rep2) = (request.clone(), reply.clone());
        let server_task = iocore::spawn(async move {
            let (s, _) = server.accept().await.unwrap();
            assert_eq!(recv_to_end(&s).await, req2, "the server got a different request");
            s.send_all(&rep2).await.unwrap();
            s.shutdown().await.unwrap();
        });
        let proxy_task = iocore::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = TcpStream::connect(server_addr).await.unwrap();
            copy_bidirectional(&client, &upstream).await
        });
        let client = TcpStream::connect(proxy_addr).await.unwrap();
        client.send_all(&request).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(recv_to_end(&client).await, reply, "the client got a different reply");
        server_task.await.unwrap();
        let (up, down) = proxy_task.await.unwrap().expect("proxy");
        assert_eq!((up, down), (request.len() as u64, reply.len() as u64));
    }))
    .expect("the proxy hung");
}

#[test]
fn a_proxy_reports_a_reset_naming_the_peer() {
    let core = IoCore::builder().threads(2).build().unwrap();
    core.block_on(iocore::time::timeout(HANG, async {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let server_task = iocore::spawn(async move {
            let (s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 4];
            let _ = s.recv(&mut buf).await;
            s.abort();
        });
        let proxy_task = iocore::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = TcpStream::connect(server_addr).await.unwrap();
            copy_bidirectional(&client, &upstream).await
        });
        let client = TcpStream::connect(proxy_addr).await.unwrap();
        client.send_all(b"hello").await.unwrap();
        server_task.await.unwrap();
        let err = proxy_task.await.unwrap().expect_err("a reset must be an error");
        assert!(err.to_string().contains(&server_addr.to_string()), "{err}");
        drop(client);
    }))
    .expect("the proxy hung");
}
