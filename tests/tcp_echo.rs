//! Echo over loopback: one message, 100 KiB messages reassembled by a server reading 100
//! bytes at a time, and 100 pipelined 100 KiB messages coming back intact and in order.

mod support;

use iocore::net::TcpStream;
use support::net::{listener, pair, recv_exact, run, LIMIT};
use support::{core, pattern};

const MSG: usize = 100 * 1024;

#[test]
fn echo_one_message() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let server = iocore::spawn(async move {
            let (s, peer) = l.accept().await.expect("accept");
            assert!(peer.ip().is_loopback());
            let mut buf = [0u8; 1024];
            loop {
                let n = s.recv(&mut buf).await.expect("server recv");
                if n == 0 {
                    break;
                }
                s.send_all(&buf[..n]).await.expect("server send_all");
            }
        });
        let c = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(c.peer_addr().unwrap(), addr);
        c.send_all(b"hello, iocore").await.expect("send_all");
        let mut got = [0u8; 13];
        recv_exact(&c, &mut got).await.expect("recv echo");
        assert_eq!(&got, b"hello, iocore");
        c.shutdown().await.expect("shutdown");
        let mut rest = [0u8; 16];
        assert_eq!(c.recv(&mut rest).await.expect("recv EOF"), 0, "expected EOF after the echo");
        server.await.expect("server task");
    });
}

/// The server reads with a 100-byte buffer, reassembles each whole 100 KiB message, then
/// echoes it as one `send_all`.
async fn reassembling_server(l: iocore::net::TcpListener, messages: usize) {
    let (s, _) = l.accept().await.expect("accept");
    let mut small = [0u8; 100];
    for m in 0..messages {
        let mut msg = Vec::with_capacity(MSG);
        while msg.len() < MSG {
            let want = (MSG - msg.len()).min(small.len());
            let n = s.recv(&mut small[..want]).await.expect("server recv");
            assert!(n > 0, "EOF in the middle of message {m} after {} bytes", msg.len());
            assert!(n <= 100);
            msg.extend_from_slice(&small[..n]);
        }
        s.send_all(&msg).await.expect("server echo");
    }
    let n = s.recv(&mut small).await.expect("server final recv");
    assert_eq!(n, 0, "client sent more than {messages} messages");
}

#[test]
fn echo_100k_through_100_byte_reads() {
    run(2, LIMIT, || async {
        let (l, addr) = listener().await;
        let server = iocore::spawn(reassembling_server(l, 1));
        let c = TcpStream::connect(addr).await.expect("connect");
        let msg = pattern(1, MSG);
        c.send_all(&msg).await.expect("send_all");
        let mut back = vec![0u8; MSG];
        recv_exact(&c, &mut back).await.expect("recv echo");
        assert!(back == msg, "echoed 100 KiB message differs");
        c.shutdown().await.expect("shutdown");
        server.await.expect("server task");
    });
}

#[test]
fn echo_100_pipelined_100k_messages_in_order() {
    run(2, LIMIT, || async {
        const COUNT: usize = 100;
        let (l, addr) = listener().await;
        let server = iocore::spawn(reassembling_server(l, COUNT));
        let c = TcpStream::connect(addr).await.expect("connect");
        let (rx, tx) = c.into_split();
        // All messages are sent back to back by their own task while this one reads.
        let sender = iocore::spawn(async move {
            for i in 0..COUNT {
                let msg = vec![i as u8; MSG];
                tx.send_all(&msg).await.expect("send_all");
            }
            tx.shutdown().await.expect("shutdown");
            tx
        });
        let mut back = vec![0u8; MSG];
        let mut buf = vec![0u8; 64 * 1024];
        for i in 0..COUNT {
            let mut off = 0;
            while off < MSG {
                let want = (MSG - off).min(buf.len());
                let n = rx.recv(&mut buf[..want]).await.expect("recv");
                assert!(n > 0, "EOF in echoed message {i} after {off} bytes");
                back[off..off + n].copy_from_slice(&buf[..n]);
                off += n;
            }
            if let Some(p) = back.iter().position(|&b| b != i as u8) {
                panic!("echoed message {i}: byte {p} is {} (expected {i})", back[p]);
            }
        }
        assert_eq!(rx.recv(&mut buf).await.expect("recv EOF"), 0, "expected EOF after 100 messages");
        let tx = sender.await.expect("sender task");
        iocore::net::reunite(rx, tx).expect("reunite");
        server.await.expect("server task");
    });
}

#[test]
fn vectored_send_and_recv() {
    run(2, LIMIT, || async {
        let (c, s) = pair().await;
        let parts: [&[u8]; 3] = [b"alpha-", b"beta-", b"gamma"];
        let slices: Vec<std::io::IoSlice<'_>> = parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let n = c.send_vectored(&slices).await.expect("send_vectored");
        assert_eq!(n, 16, "a 16-byte writev on an empty socket should be complete");
        let mut out = Vec::new();
        while out.len() < 16 {
            let (mut x, mut y, mut z) = ([0u8; 6], [0u8; 5], [0u8; 5]);
            let n = {
                let mut bufs = [
                    std::io::IoSliceMut::new(&mut x),
                    std::io::IoSliceMut::new(&mut y),
                    std::io::IoSliceMut::new(&mut z),
                ];
                s.recv_vectored(&mut bufs).await.expect("recv_vectored")
            };
            assert!(n > 0, "EOF");
            let all: Vec<u8> = x.iter().chain(&y).chain(&z).copied().collect();
            out.extend_from_slice(&all[..n]);
        }
        assert_eq!(out, b"alpha-beta-gamma");
    });
}

/// iocore sockets also work outside any core, under another executor (they live on the
/// process-wide default core).
#[test]
fn echo_outside_any_core() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = futures::executor::block_on(async {
            let (l, addr) = listener().await;
            let server = async {
                let (s, _) = l.accept().await.expect("accept");
                let mut buf = [0u8; 5];
                recv_exact(&s, &mut buf).await.expect("server recv");
                s.send_all(&buf).await.expect("server send");
            };
            let client = async {
                let c = TcpStream::connect(addr).await.expect("connect");
                c.send_all(b"plain").await.expect("send");
                let mut back = [0u8; 5];
                recv_exact(&c, &mut back).await.expect("recv");
                back
            };
            let ((), back) = futures::join!(server, client);
            back
        });
        let _ = tx.send(r);
    });
    let back = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("echo outside a core hung");
    assert_eq!(&back, b"plain");
}

/// A stream made on one core can be used from a task of another core.
#[test]
fn stream_used_from_another_core() {
    run(1, LIMIT, || async {
        let (c, s) = pair().await;
        let other = core(1);
        let h = other.spawn(async move {
            let mut buf = [0u8; 4];
            recv_exact(&s, &mut buf).await.expect("recv on the other core");
            s.send_all(&buf).await.expect("send on the other core");
            buf
        });
        // Give the other core's task time to park in recv first.
        iocore::time::sleep(std::time::Duration::from_millis(10)).await;
        c.send_all(b"ping").await.expect("send");
        let mut back = [0u8; 4];
        recv_exact(&c, &mut back).await.expect("recv");
        assert_eq!(&back, b"ping");
        assert_eq!(&h.await.expect("other core task"), b"ping");
        other.shutdown(std::time::Duration::from_secs(5));
    });
}

/// `writev` takes at most IOV_MAX (1024) slices, so a vectored send of more slices is
/// short although the socket has room; the next send must not wait for a writability
/// edge that never comes.
#[test]
fn send_vectored_with_more_slices_than_iov_max() {
    run(2, LIMIT, || async {
        const SLICES: usize = 2000;
        let (c, s) = pair().await;
        let data = pattern(11, SLICES * 10);
        let slices: Vec<std::io::IoSlice<'_>> = data.chunks(10).map(std::io::IoSlice::new).collect();
        let n = iocore::time::timeout(std::time::Duration::from_secs(5), c.send_vectored(&slices))
            .await
            .expect("send_vectored hung")
            .expect("send_vectored");
        assert!(n > 0 && n <= data.len());
        // Let everything sent so far be acknowledged: no writability event is pending.
        iocore::time::sleep(std::time::Duration::from_millis(20)).await;
        // The rest (20 KB fits the socket buffers; the peer reads afterwards), with plain
        // sends; each must complete promptly.
        let mut off = n;
        while off < data.len() {
            off += iocore::time::timeout(std::time::Duration::from_secs(5), c.send(&data[off..]))
                .await
                .unwrap_or_else(|_| {
                    panic!("send hung after a {n}-byte vectored send of {} bytes", data.len())
                })
                .expect("send");
        }
        let mut got = vec![0u8; SLICES * 10];
        recv_exact(&s, &mut got).await.expect("peer recv");
        assert!(got == data);
    });
}

/// `readv` fills at most IOV_MAX (1024) slices, so a vectored recv of more slices is
/// short although more data is waiting; the next recv must still see that data.
#[test]
fn recv_vectored_with_more_slices_than_iov_max() {
    run(2, LIMIT, || async {
        const SLICES: usize = 2000;
        let (c, s) = pair().await;
        let data = pattern(12, SLICES * 10);
        c.send_all(&data).await.expect("send_all");
        // Let all of it arrive before reading.
        iocore::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut bufs = vec![[0u8; 10]; SLICES];
        let n = {
            let mut slices: Vec<std::io::IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| std::io::IoSliceMut::new(&mut b[..])).collect();
            iocore::time::timeout(std::time::Duration::from_secs(5), s.recv_vectored(&mut slices))
                .await
                .expect("recv_vectored hung")
                .expect("recv_vectored")
        };
        assert!(n > 0);
        let mut got: Vec<u8> = bufs.concat();
        got.truncate(n);
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < data.len() {
            let m = iocore::time::timeout(std::time::Duration::from_secs(5), s.recv(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "recv hung with {} of {} bytes received (after a {n}-byte recv_vectored)",
                        got.len(),
                        data.len()
                    )
                })
                .expect("recv");
            assert!(m > 0, "EOF");
            got.extend_from_slice(&buf[..m]);
        }
        assert!(got == data);
    });
}
