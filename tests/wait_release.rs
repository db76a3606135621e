//! Waits that are given up release their waker at once: a post queue's `ready`, `closed`,
//! `send`, `flush` and `shutdown`, and a stream's `send`, `send_vectored` and `send_all`
//! behind the flusher, on a socket whose peer does not read, the owner's
//! `writable` while the flusher writes, and a signal listener. (A `timeout` around a wait, or a `select!`
//! that took another branch, must not keep its task alive until a change that may never
//! come: racing `ctrl_c()` in each of 20 000 tasks kept every one of them, 4 KB each.)

mod support;

use iocore::net::{TcpListener, TcpStream};
use iocore::signal::{signal, SignalKind};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;
use support::net::{run, LIMIT};
use support::CountWaker;

/// Polls `fut` once with a fresh counting waker (it must be pending), drops it, and says
/// whether anything still holds that waker.
fn waker_kept_after_drop(fut: impl Future) -> bool {
    let count = Arc::new(CountWaker::default());
    let waker = Waker::from(count.clone());
    let mut fut = Box::pin(fut);
    assert!(fut.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "the wait was not pending");
    drop(fut);
    drop(waker);
    // (A wake under way holds the waker for a moment: the flusher wakes the queue's
    // waiters as it writes. A waker kept stays kept.)
    !support::settle(Duration::from_secs(1), || Arc::strong_count(&count) == 1)
}

/// A stream whose peer does not read, with a post queue above its mark and the flusher
/// holding the writer role; and the peer, to keep open.
async fn stuck_stream() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
    let (stream, _) = listener.accept().await.unwrap();
    // A small kernel buffer, so that 16 MiB cannot all go in.
    stream.set_send_buffer_size(16 * 1024).unwrap();
    stream.set_post_high_water(1024);
    stream.post_send(vec![0u8; 16 << 20]).unwrap();
    (stream, peer.join().unwrap())
}

#[test]
fn given_up_waits_release_their_wakers() {
    run(2, LIMIT, || async {
        let (stream, peer) = stuck_stream().await;
        let sender = stream.sender();
        for _ in 0..3 {
            assert!(!waker_kept_after_drop(sender.ready()), "PostSender::ready kept its waker");
            assert!(!waker_kept_after_drop(sender.closed()), "PostSender::closed kept its waker");
            assert!(!waker_kept_after_drop(stream.flush()), "TcpStream::flush kept its waker");
            assert!(!waker_kept_after_drop(stream.writable()), "TcpStream::writable kept its waker");
            assert!(!waker_kept_after_drop(sender.send(vec![1u8; 10])), "PostSender::send kept its waker");
            assert!(!waker_kept_after_drop(stream.send(b"abc")), "TcpStream::send kept its waker");
            let bufs = [std::io::IoSlice::new(b"abc")];
            assert!(
                !waker_kept_after_drop(stream.send_vectored(&bufs)),
                "TcpStream::send_vectored kept its waker"
            );
            assert!(!waker_kept_after_drop(stream.send_all(b"abc")), "TcpStream::send_all kept its waker");
        }
        // Last: a shutdown closes the queue (the flush it waits for never ends here).
        for _ in 0..3 {
            assert!(!waker_kept_after_drop(stream.shutdown()), "TcpStream::shutdown kept its waker");
            assert!(!waker_kept_after_drop(sender.shutdown()), "PostSender::shutdown kept its waker");
        }
        drop((stream, peer));
    });
}

#[test]
fn dropped_signal_listeners_release_their_wakers() {
    run(1, LIMIT, || async {
        for _ in 0..3 {
            // (A listener keeps its last waker while it lives: it is still listening.)
            let mut hangups = signal(SignalKind::user_defined2()).unwrap();
            let count = Arc::new(CountWaker::default());
            let waker = Waker::from(count.clone());
            assert!(hangups.poll_recv(&mut Context::from_waker(&waker)).is_pending());
            drop(hangups);
            drop(waker);
            assert_eq!(Arc::strong_count(&count), 1, "a dropped Signal kept its waker");
            assert!(!waker_kept_after_drop(iocore::signal::ctrl_c()), "a dropped ctrl_c() kept its waker");
        }
    });
}
