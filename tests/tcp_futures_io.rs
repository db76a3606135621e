//! `futures::io` interop: `copy` through a proxy, `read_exact`/`write_all`, owned halves
//! used from two tasks, borrowed halves, and `reunite`.

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use iocore::net::{reunite, TcpStream};
use support::net::{listener, pair, recv_exact, run, LIMIT};
use support::pattern;

#[test]
fn copy_through_a_proxy() {
    const LEN: usize = 3 << 20;
    run(2, LIMIT, || async {
        // A -> proxy -> B.
        let (bl, baddr) = listener().await;
        let (pl, paddr) = listener().await;
        let proxy = iocore::spawn(async move {
            let (mut from_a, _) = pl.accept().await.expect("proxy accept");
            let mut to_b = TcpStream::connect(baddr).await.expect("proxy connect");
            let n = futures::io::copy(&mut from_a, &mut to_b).await.expect("copy");
            to_b.close().await.expect("close");
            n
        });
        let b = iocore::spawn(async move {
            let (mut s, _) = bl.accept().await.expect("B accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.expect("B read_to_end");
            got
        });
        let data = pattern(42, LEN);
        let mut a = TcpStream::connect(paddr).await.expect("A connect");
        a.write_all(&data).await.expect("A write_all");
        a.close().await.expect("A close");
        assert_eq!(proxy.await.expect("proxy task"), LEN as u64);
        let got = b.await.expect("B task");
        assert_eq!(got.len(), LEN);
        assert!(got == data, "data changed on its way through the proxy");
    });
}

#[test]
fn read_exact_write_all_round_trip() {
    run(2, LIMIT, || async {
        let (mut client, mut server) = pair().await;
        let echo = iocore::spawn(async move {
            let mut len = [0u8; 4];
            loop {
                match server.read_exact(&mut len).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => panic!("server read_exact: {e}"),
                }
                let mut msg = vec![0u8; u32::from_be_bytes(len) as usize];
                server.read_exact(&mut msg).await.expect("server read_exact body");
                server.write_all(&len).await.expect("server write_all");
                server.write_all(&msg).await.expect("server write_all body");
                server.flush().await.expect("server flush");
            }
            server.close().await.expect("server close");
        });
        for (i, size) in [1usize, 100, 4096, 65_536, 300_000].into_iter().enumerate() {
            let msg = pattern(i as u64, size);
            client.write_all(&(size as u32).to_be_bytes()).await.expect("write_all len");
            client.write_all(&msg).await.expect("write_all");
            client.flush().await.expect("flush");
            let mut len = [0u8; 4];
            client.read_exact(&mut len).await.expect("read_exact len");
            assert_eq!(u32::from_be_bytes(len) as usize, size);
            let mut back = vec![0u8; size];
            client.read_exact(&mut back).await.expect("read_exact");
            assert!(back == msg, "message {i} ({size} bytes) differs");
        }
        client.close().await.expect("close");
        // Closing twice is harmless; writes after close fail.
        client.close().await.expect("second close");
        assert!(client.write_all(b"x").await.is_err(), "write after close succeeded");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read_to_end");
        assert!(rest.is_empty());
        echo.await.expect("echo task");
    });
}

#[test]
fn owned_halves_from_two_tasks_full_duplex() {
    const LEN: usize = 4 << 20;
    run(2, LIMIT, || async {
        let (client, server) = pair().await;
        let (client_local, server_local) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        // The server echoes with its own halves, also from two tasks, through a channel-free
        // `copy` from its read half to its write half.
        let (mut sr, mut sw) = server.into_split();
        let echo = iocore::spawn(async move {
            let n = futures::io::copy(&mut sr, &mut sw).await.expect("server copy");
            sw.close().await.expect("server close");
            (n, sr, sw)
        });
        let (mut r, mut w) = client.into_split();
        let data = pattern(9, LEN);
        let to_send = data.clone();
        let writer = iocore::spawn(async move {
            for chunk in to_send.chunks(10_000) {
                w.write_all(chunk).await.expect("write_all");
            }
            w.close().await.expect("close");
            w
        });
        let reader = iocore::spawn(async move {
            let mut got = Vec::with_capacity(LEN);
            r.read_to_end(&mut got).await.expect("read_to_end");
            (got, r)
        });
        let w = writer.await.expect("writer task");
        let (got, r) = reader.await.expect("reader task");
        assert_eq!(got.len(), LEN);
        assert!(got == data, "full-duplex echo differs");
        let (n, sr, sw) = echo.await.expect("echo task");
        assert_eq!(n, LEN as u64);
        // Halves of the same stream reunite.
        let client = reunite(r, w).expect("reunite own halves");
        let server = reunite(sr, sw).expect("reunite server halves");
        assert_eq!(client.local_addr().unwrap(), client_local);
        assert_eq!(server.local_addr().unwrap(), server_local);
    });
}

#[test]
fn reunited_stream_works_and_mismatched_reunite_fails() {
    run(2, LIMIT, || async {
        let (c1, s1) = pair().await;
        let (c2, s2) = pair().await;
        let (r1, w1) = c1.into_split();
        let (r2, w2) = c2.into_split();
        // Mismatched: the halves come back inside the error, unharmed.
        let err = reunite(r1, w2).expect_err("reunite of halves from two streams");
        assert!(!err.to_string().is_empty());
        let iocore::net::ReuniteError(r1, w2) = err;
        w2.send_all(b"two").await.expect("send on returned half");
        let mut b = [0u8; 3];
        recv_exact(&s2, &mut b).await.expect("recv");
        assert_eq!(&b, b"two");
        s1.send_all(b"one").await.expect("send");
        recv_exact(&r1, &mut b).await.expect("recv on returned half");
        assert_eq!(&b, b"one");
        // The right pairs reunite into working streams.
        let c1 = reunite(r1, w1).expect("reunite 1");
        let c2 = reunite(r2, w2).expect("reunite 2");
        c1.send_all(b"111").await.expect("send 1");
        c2.send_all(b"222").await.expect("send 2");
        recv_exact(&s1, &mut b).await.expect("recv 1");
        assert_eq!(&b, b"111");
        recv_exact(&s2, &mut b).await.expect("recv 2");
        assert_eq!(&b, b"222");
        // Dropping one half keeps the socket open for the other.
        let (r1, w1) = c1.into_split();
        drop(r1);
        w1.send_all(b"xyz").await.expect("send after dropping the read half");
        recv_exact(&s1, &mut b).await.expect("recv");
        assert_eq!(&b, b"xyz");
        drop(w1);
        assert_eq!(s1.recv(&mut b).await.expect("EOF once both halves are gone"), 0);
    });
}

#[test]
fn borrowed_halves_in_one_task() {
    const LEN: usize = 2 << 20;
    run(2, LIMIT, || async {
        let (mut client, server) = pair().await;
        let echo = iocore::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                let n = server.recv(&mut buf).await.expect("server recv");
                if n == 0 {
                    break;
                }
                server.send_all(&buf[..n]).await.expect("server send");
            }
        });
        let data = pattern(3, LEN);
        let got = {
            let (mut r, mut w) = TcpStream::split(&mut client);
            let write = async {
                w.write_all(&data).await.expect("write_all");
                w.close().await.expect("close");
            };
            let read = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.expect("read_to_end");
                got
            };
            futures::join!(write, read).1
        };
        assert!(got == data, "echo through borrowed halves differs");
        echo.await.expect("echo task");
        // The stream is whole again after the borrow.
        assert!(client.send_all(b"x").await.is_err(), "send after close succeeded");
    });
}
