//! Unix-domain sockets: the TCP stream API over `UnixListener`/`UnixStream` — echo,
//! `post_send` from threads in order, `PostSender` (send, abort), halves and `reunite`,
//! futures-io traits, `pair`, std conversion, bad input (missing path, path in use,
//! halves of the wrong type), and a connect that waits while the backlog is full.

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use iocore::net::{PostError, TcpStream, UnixListener, UnixStream};
use std::io;
use std::path::PathBuf;
use std::thread;
use support::net::{recv_exact, recv_to_end, run, LIMIT};
use support::{parse_tagged, tagged};

/// A fresh socket path in a directory of its own (removed with the returned guard).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("iocore-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("s.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn echo_over_a_unix_listener() {
    run(2, LIMIT, || async {
        let dir = TempDir::new("echo");
        let listener = UnixListener::bind(dir.sock()).expect("bind");
        assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(dir.sock().as_path()));
        let server = iocore::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            loop {
                let n = stream.recv(&mut buf).await.expect("recv");
                if n == 0 {
                    break;
                }
                stream.send_all(&buf[..n]).await.expect("send");
            }
        });
        let client = UnixStream::connect(dir.sock()).await.expect("connect");
        assert_eq!(client.peer_addr().unwrap().as_pathname(), Some(dir.sock().as_path()));
        let msg: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        client.send_all(&msg).await.expect("send");
        let mut back = vec![0u8; msg.len()];
        recv_exact(&client, &mut back).await.expect("echo");
        assert_eq!(back, msg);
        client.shutdown().await.expect("shutdown");
        server.await.expect("server");
    });
}

#[test]
fn posts_from_4_threads_arrive_whole_and_in_order_per_thread() {
    const THREADS: usize = 4;
    const PER_THREAD: u32 = 2000;
    fn msg(tid: usize, seq: u32) -> Vec<u8> {
        tagged(tid, seq, 1 + (seq as usize * 7 + tid * 13) % 61)
    }
    run(2, LIMIT, || async {
        let (a, b) = UnixStream::pair().expect("pair");
        let posters: Vec<_> = (0..THREADS)
            .map(|tid| {
                let sender = a.sender();
                thread::spawn(move || {
                    for seq in 0..PER_THREAD {
                        let mut data = bytes::Bytes::from(msg(tid, seq));
                        loop {
                            match sender.post_send(data) {
                                Ok(()) => break,
                                Err(PostError::WouldExceed(d)) => {
                                    data = d;
                                    thread::yield_now();
                                }
                                Err(e) => panic!("post: {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let reader = iocore::spawn(async move { recv_to_end(&b, 64 << 20).await.expect("recv") });
        for p in posters {
            p.join().expect("poster");
        }
        a.flush().await.expect("flush");
        drop(a);
        let data = reader.await.expect("reader");
        let parsed = parse_tagged(&data, THREADS, msg);
        assert!(parsed.error.is_none(), "{:?}", parsed.error);
        assert_eq!(parsed.counts, vec![PER_THREAD; THREADS]);
    });
}

#[test]
fn post_sender_send_waits_for_room_and_abort_ends_the_peer() {
    run(2, LIMIT, || async {
        let (a, b) = UnixStream::pair().expect("pair");
        a.set_post_high_water(1024);
        let sender = a.sender();
        let reader = iocore::spawn(async move {
            let mut total = 0usize;
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = b.recv(&mut buf).await {
                total += n;
            }
            total
        });
        for _ in 0..200 {
            sender.send(vec![7u8; 4096]).await.expect("send waits for room, then queues");
        }
        a.flush().await.expect("flush");
        // A Unix socket has no IP peer: a clear error, not a panic.
        assert_eq!(sender.peer_addr().unwrap_err().kind(), io::ErrorKind::Unsupported);
        sender.abort();
        // The owner's operations now fail (its receives see the end) ...
        assert!(a.send(b"x").await.is_err());
        assert_eq!(a.recv(&mut [0u8; 16]).await.expect("end of stream"), 0);
        // ... so the owner lets go, and the peer's reader ends.
        drop(a);
        let got = reader.await.expect("reader");
        assert!(got <= 200 * 4096, "got {got}");
    });
}

#[test]
fn halves_work_from_two_tasks_and_reunite_only_as_unix_streams() {
    run(2, LIMIT, || async {
        let (a, b) = UnixStream::pair().expect("pair");
        let (rx, tx) = b.into_split();
        let echo = iocore::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = rx.recv(&mut buf).await.expect("recv");
            tx.send_all(&buf[..n]).await.expect("send");
            (rx, tx)
        });
        a.send_all(b"half").await.expect("send");
        let mut back = [0u8; 4];
        recv_exact(&a, &mut back).await.expect("recv");
        assert_eq!(&back, b"half");
        let (rx, tx) = echo.await.expect("echo");
        assert_eq!(rx.peer_addr().unwrap_err().kind(), io::ErrorKind::Unsupported);
        // Halves of a Unix stream do not make a TcpStream ...
        let err = TcpStream::reunite(rx, tx).expect_err("unix halves as a TcpStream");
        // ... but reunite as a UnixStream.
        let b = UnixStream::reunite(err.0, err.1).expect("reunite");
        b.send_all(b"again").await.expect("send");
        let mut back = [0u8; 5];
        recv_exact(&a, &mut back).await.expect("recv");
        assert_eq!(&back, b"again");
    });
}

#[test]
fn futures_io_traits_and_incoming() {
    run(2, LIMIT, || async {
        let dir = TempDir::new("traits");
        let listener = UnixListener::bind(dir.sock()).expect("bind");
        let server = iocore::spawn(async move {
            let mut incoming = listener.incoming();
            let mut stream = incoming.next().await.expect("never ends").expect("accept");
            let mut line = [0u8; 5];
            stream.read_exact(&mut line).await.expect("read");
            stream.write_all(&line).await.expect("write");
            stream.close().await.expect("close");
        });
        let mut client = UnixStream::connect(dir.sock()).await.expect("connect");
        client.write_all(b"hello").await.expect("write");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("read to end");
        assert_eq!(back, b"hello");
        server.await.expect("server");
    });
}

#[test]
fn std_conversion_round_trip() {
    run(1, LIMIT, || async {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("std pair");
        let a = UnixStream::from_std(a).expect("from_std");
        a.send_all(b"to std").await.expect("send");
        let b = UnixStream::from_std(b).expect("from_std");
        let mut buf = [0u8; 6];
        recv_exact(&b, &mut buf).await.expect("recv");
        let mut b = b.into_std().expect("into_std");
        assert!(!b.local_addr().unwrap().is_unnamed() || b.local_addr().unwrap().as_pathname().is_none());
        use std::io::Write;
        b.write_all(b"from std").expect("blocking write");
        let mut buf = [0u8; 8];
        recv_exact(&a, &mut buf).await.expect("recv");
        assert_eq!(&buf, b"from std");
        // A stream with a live sender is shared: into_std refuses.
        let _sender = a.sender();
        assert_eq!(a.into_std().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    });
}

#[test]
fn bad_paths_give_errors_that_name_the_path() {
    run(1, LIMIT, || async {
        let dir = TempDir::new("bad");
        let missing = dir.0.join("missing.sock");
        let e = UnixStream::connect(&missing).await.expect_err("connect to a missing path");
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

        let _first = UnixListener::bind(dir.sock()).expect("bind");
        let e = UnixListener::bind(dir.sock()).expect_err("bind to a path in use");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains(&*dir.sock().to_string_lossy()), "{e}");

        let e = UnixListener::bind(dir.0.join("no/such/dir/x.sock")).expect_err("bind in a missing dir");
        assert!(e.to_string().contains("no/such/dir"), "{e}");

        // A plain file is not a socket.
        let file = dir.0.join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = UnixStream::connect(&file).await.expect_err("connect to a file");
        assert!(e.to_string().contains("plain"), "{e}");
    });
}

#[test]
fn a_listener_with_a_closed_peer_keeps_accepting() {
    run(2, LIMIT, || async {
        let dir = TempDir::new("keep");
        let listener = UnixListener::bind(dir.sock()).expect("bind");
        for i in 0..20u8 {
            let c = UnixStream::connect(dir.sock()).await.expect("connect");
            if i % 2 == 0 {
                drop(c);
                let (s, _) = listener.accept().await.expect("accept");
                assert_eq!(s.recv(&mut [0u8; 4]).await.expect("eof"), 0);
            } else {
                c.send_all(&[i]).await.expect("send");
                let (s, _) = listener.accept().await.expect("accept");
                let mut b = [0u8; 1];
                recv_exact(&s, &mut b).await.expect("recv");
                assert_eq!(b[0], i);
            }
        }
    });
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_io_traits_on_a_unix_stream() {
    run(1, LIMIT, || async {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        tokio::io::AsyncWriteExt::write_all(&mut a, b"tokio").await.expect("write");
        tokio::io::AsyncWriteExt::shutdown(&mut a).await.expect("shutdown");
        let mut back = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut back).await.expect("read");
        assert_eq!(back, b"tokio");
    });
}

/// A plain listener at `path` with a backlog of one (`listen(fd, 1)`), never accepting
/// by itself.
fn listener_with_backlog_1(path: &std::path::Path) -> std::os::unix::net::UnixListener {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain socket calls on a fresh fd with a zeroed, filled-in sockaddr_un (the
    // path is short: it comes from the temp dir); the fd is handed to the std listener,
    // which owns it from then on.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len(), "path too long");
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        assert_eq!(libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len), 0, "bind");
        assert_eq!(libc::listen(fd, 1), 0, "listen");
        std::os::unix::net::UnixListener::from_raw_fd(fd)
    }
}

#[test]
fn connect_waits_while_the_listeners_backlog_is_full() {
    let dir = TempDir::new("backlog");
    let path = dir.sock();
    let listener = listener_with_backlog_1(&path);
    run(2, LIMIT, move || async move {
        // Fill the backlog: connects that succeed without an accept.
        let mut held = Vec::new();
        loop {
            match iocore::time::timeout(std::time::Duration::from_millis(100), UnixStream::connect(&path))
                .await
            {
                Ok(r) => held.push(r.expect("a connect with room in the backlog")),
                // Waiting: the backlog is full (it used to fail at once with `WouldBlock`).
                Err(_) => break,
            }
            assert!(held.len() < 100, "a backlog of 1 took 100 connections");
        }
        // Accepting one makes room: a waiting connect then completes.
        let waiting = iocore::spawn({
            let path = path.clone();
            async move { UnixStream::connect(&path).await }
        });
        iocore::time::sleep(std::time::Duration::from_millis(20)).await;
        let accepted = iocore::spawn_blocking(move || listener.accept().map(|(s, _)| (s, listener)))
            .await
            .unwrap()
            .expect("accept");
        waiting.await.unwrap().expect("the connect that waited for room");
        drop((held, accepted));
    });
}
