//! Reads that the kernel ends short with more data queued behind: after TCP urgent data
//! (the read stops at the urgent mark), after a Unix `MSG_OOB` byte, and after a Unix
//! message that carried file descriptors. A short read usually means the buffer was
//! drained (iocore then waits for the next edge instead of spending a syscall on
//! `WouldBlock`); here no edge would come, and the data queued behind must still be
//! delivered (trial programs: the next `recv` waited forever).

mod support;

use iocore::net::{TcpListener, UnixStream};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;
use support::net::{run, LIMIT};
use support::HANG;

/// Receives on `$stream` (TCP or Unix) until `$want` bytes came, each `recv` bounded by
/// `HANG`.
macro_rules! receive {
    ($stream:expr, $want:expr) => {{
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < $want {
            let n = iocore::time::timeout(HANG, $stream.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("recv waited forever after {:?}", String::from_utf8_lossy(&got)))
                .expect("recv");
            assert!(n > 0, "end of stream after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        got
    }};
}

#[test]
fn data_after_tcp_urgent_data_is_delivered() {
    run(2, LIMIT, || async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let peer = std::thread::spawn(move || {
            let s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            // "hel" with its last byte urgent, then plain data.
            socket2::SockRef::from(&s).send_out_of_band(b"hel").expect("send_out_of_band");
            (&s).write_all(b"world").expect("write");
            sent_tx.send(()).unwrap();
            s
        });
        let (stream, _) = listener.accept().await.expect("accept");
        iocore::spawn_blocking(move || sent_rx.recv()).await.unwrap().unwrap();
        // Both segments are in before the first read.
        iocore::time::sleep(Duration::from_millis(50)).await;
        // (The urgent byte is not inline: a plain read skips it.)
        let got = receive!(stream, 7);
        assert_eq!(got, b"heworld");
        drop(peer.join());
    });
}

/// Sends `data` on `to` with `fd` attached (`SCM_RIGHTS`).
fn send_with_descriptor(to: &std::os::unix::net::UnixStream, data: &[u8], fd: &impl AsRawFd) {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    // SAFETY: a control buffer of the size `CMSG_SPACE` asks for, holding one `SCM_RIGHTS`
    // header and one descriptor; `sendmsg` reads the buffers for the call only.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        *(libc::CMSG_DATA(cm) as *mut libc::c_int) = fd.as_raw_fd();
        let sent = libc::sendmsg(to.as_raw_fd(), &msg, 0);
        assert_eq!(sent, data.len() as isize, "sendmsg: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn data_after_a_unix_message_with_descriptors_is_delivered() {
    run(2, LIMIT, || async {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let stream = UnixStream::from_std(b).expect("from_std");
        // "ab" with a descriptor attached, then "cd".
        let passed = std::fs::File::open("/dev/null").expect("open");
        send_with_descriptor(&a, b"ab", &passed);
        (&a).write_all(b"cd").expect("write");
        let got = receive!(stream, 4);
        assert_eq!(got, b"abcd");
        // The same through the vectored read, with the message split over two buffers.
        send_with_descriptor(&a, b"ab", &passed);
        (&a).write_all(b"cd").expect("write");
        let mut first = [0u8; 3];
        let mut second = [0u8; 8];
        let mut bufs = [std::io::IoSliceMut::new(&mut first), std::io::IoSliceMut::new(&mut second)];
        let n = iocore::time::timeout(HANG, stream.recv_vectored(&mut bufs))
            .await
            .expect("waited forever")
            .expect("recv_vectored");
        assert_eq!(n, 4);
        // The caller's slices are left as they were (a read loop reuses them).
        assert_eq!((bufs[0].len(), bufs[1].len()), (3, 8), "recv_vectored changed the caller's slices");
        assert_eq!((&first[..], &second[..1]), (&b"abc"[..], &b"d"[..]));
        drop(a);
    });
}

#[test]
fn data_after_a_unix_out_of_band_byte_is_delivered() {
    run(2, LIMIT, || async {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let stream = UnixStream::from_std(b).expect("from_std");
        // "hel" with its last byte out of band, then plain data.
        // SAFETY: `send` reads the three-byte buffer for the call.
        let oob = unsafe { libc::send(a.as_raw_fd(), b"hel".as_ptr().cast(), 3, libc::MSG_OOB) };
        if oob < 0 {
            // A kernel without Unix out-of-band data (before 5.15, or configured out).
            eprintln!("skipped: MSG_OOB on a Unix stream: {}", std::io::Error::last_os_error());
            return;
        }
        (&a).write_all(b"world").expect("write");
        iocore::time::sleep(Duration::from_millis(20)).await;
        // (The out-of-band byte is not inline: a plain read skips it.)
        let got = receive!(stream, 7);
        assert_eq!(got, b"heworld");
        drop(a);
    });
}
