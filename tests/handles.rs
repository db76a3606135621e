//! The small handles users reach for: `TaskRef::abort`, `Handle::enter` (its guards
//! dropped in any order), `AsFd`/`AsRawFd` on sockets, unwind safety of `IoCore`/`Handle`,
//! and what `TaskRef::wakeup` does (and does not) end.

use iocore::net::{TcpListener, TcpStream};
use iocore::{task, time, Handle, IoCore};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

mod support;

use support::HANG;

#[test]
fn taskref_abort_cancels_a_parked_task() {
    let core = IoCore::builder().threads(1).build().unwrap();
    let h = core.spawn(async { task::park(None).await });
    let t = h.task();
    t.abort();
    let err = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(t.is_finished());
    t.abort(); // harmless on a finished task
}

#[test]
fn a_wakeup_ends_a_park_but_not_a_sleep() {
    let core = IoCore::builder().threads(2).build().unwrap();
    let sleeper = core.spawn(async {
        let start = Instant::now();
        time::sleep(Duration::from_millis(200)).await;
        start.elapsed()
    });
    let parker = core.spawn(async { task::park(Some(Instant::now() + HANG)).await });
    std::thread::sleep(Duration::from_millis(10));
    sleeper.task().wakeup();
    parker.task().wakeup();
    assert_eq!(core.block_on(parker).unwrap(), task::Wake::Woken);
    let slept = core.block_on(sleeper).unwrap();
    assert!(slept >= Duration::from_millis(200), "the wakeup cut the sleep short: {slept:?}");
}

#[test]
fn enter_makes_a_core_current_on_any_thread() {
    let core = IoCore::builder().threads(3).build().unwrap();
    let handle = core.handle();
    assert!(Handle::try_current().is_none());
    // Inside another runtime's task, sockets, timers and spawns go to the entered core.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (workers, answer) = rt.block_on(async move {
        let _guard = handle.enter();
        let current = Handle::current();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let echo = iocore::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            let n = s.recv(&mut buf).await.unwrap();
            s.send_all(&buf[..n]).await.unwrap();
        });
        let c = TcpStream::connect(addr).await.unwrap();
        c.send_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        let n = c.recv(&mut buf).await.unwrap();
        time::sleep(Duration::from_millis(1)).await;
        echo.await.unwrap();
        (current.metrics().workers, buf[..n].to_vec())
    });
    assert_eq!(workers, 3);
    assert_eq!(answer, b"ping");
    // The guard restored the previous (empty) context.
    assert!(Handle::try_current().is_none());
}

#[test]
fn enter_guards_may_be_dropped_in_any_order() {
    let (a, b) =
        (IoCore::builder().threads(1).build().unwrap(), IoCore::builder().threads(2).build().unwrap());
    let workers = || Handle::try_current().map(|h| h.metrics().workers);
    let guard_a = a.handle().enter();
    let guard_b = b.handle().enter();
    assert_eq!(workers(), Some(2));
    // Out of order: b stays current (it used to be a, whose guard is gone) ...
    drop(guard_a);
    assert_eq!(workers(), Some(2), "the core of a dropped guard is current");
    // ... and then none is.
    drop(guard_b);
    assert_eq!(workers(), None, "a core stayed current after every guard was dropped");
    // In order, as before.
    let guard_a = a.handle().enter();
    let guard_b = b.handle().enter();
    drop(guard_b);
    assert_eq!(workers(), Some(1));
    drop(guard_a);
    assert_eq!(workers(), None);
}

#[test]
fn sockets_expose_their_fd() {
    let core = IoCore::builder().threads(1).build().unwrap();
    core.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(listener.as_raw_fd() >= 0);
        let bound = socket2::SockRef::from(&listener).local_addr().unwrap().as_socket().unwrap();
        assert_eq!(bound, addr);
        let (c, s) = futures::join!(TcpStream::connect(addr), listener.accept());
        let (c, (s, _)) = (c.unwrap(), s.unwrap());
        assert_eq!(c.as_fd().as_raw_fd(), c.as_raw_fd());
        let peer = socket2::SockRef::from(&c).peer_addr().unwrap().as_socket().unwrap();
        assert_eq!(peer, addr);
        assert_ne!(s.as_raw_fd(), c.as_raw_fd());
    });
}

#[test]
fn core_and_handle_are_unwind_safe() {
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &T) {}
    let core = IoCore::builder().threads(1).build().unwrap();
    unwind_safe(&core);
    unwind_safe(&core.handle());
    // And usable after a caught panic that went through a reference to them.
    let handle = core.handle();
    let r = std::panic::catch_unwind(|| {
        let _ = handle.metrics();
        panic!("caught");
    });
    assert!(r.is_err());
    assert_eq!(core.block_on(core.spawn(async { 7 })).unwrap(), 7);
}

#[test]
fn streams_and_listeners_convert_into_std() {
    use std::io::{Read, Write};
    let core = IoCore::builder().threads(1).build().unwrap();
    let (std_listener, addr) = core.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener.into_std().unwrap(), addr)
    });
    // The std listener accepts in blocking mode; the client is an iocore stream turned std.
    let client = core.block_on(async { TcpStream::connect(addr).await.unwrap() });
    let (mut server, _) = std_listener.accept().unwrap();
    let mut client = client.into_std().unwrap();
    client.write_all(b"over std").unwrap();
    let mut buf = [0u8; 8];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over std");
    // A stream still shared with a PostSender does not convert.
    let shared = core.block_on(async { TcpStream::connect(addr).await.unwrap() });
    let _sender = shared.sender();
    let e = shared.into_std().unwrap_err();
    assert!(e.to_string().contains("into_std"), "{e}");
    drop(std_listener.accept().unwrap());
    // One that posted, flushed and dropped its senders does (its flusher task is still
    // there; it used to count as sharing the stream), and the connection goes on.
    let posted = core.block_on(async {
        let s = TcpStream::connect(addr).await.unwrap();
        let sender = s.sender();
        sender.post_send(&b"posted "[..]).unwrap();
        s.flush().await.unwrap();
        drop(sender);
        s
    });
    let (mut server, _) = std_listener.accept().unwrap();
    let mut posted = posted.into_std().expect("into_std after flush with no sender left");
    // Give the flusher time to end (it closes iocore's descriptor, not the connection).
    std::thread::sleep(std::time::Duration::from_millis(50));
    posted.write_all(b"then std").unwrap();
    drop(posted);
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"posted then std");
}
