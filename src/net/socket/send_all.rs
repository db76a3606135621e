//! `send_all`'s future: the owner's write of a whole buffer as one contiguous run.

use super::Socket;
use crate::io::{Direction, RegisteredIo, Waiter};
use crate::net::post::{ensure_flusher, ChangeWait};
use bytes::Bytes;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// The future of `send_all` (see there). Holds the writer role from its first write to
    /// its last (posted data cannot interleave), and gives it back when it ends or is
    /// dropped.
    pub(crate) struct SendAll<'a> {
        pub(super) sock: &'a Arc<Socket>,
        pub(super) buf: &'a [u8],
        pub(super) state: SendAllState<'a>,
        #[pin]
        pub(super) waiter: Waiter<'a>,
    }

    impl PinnedDrop for SendAll<'_> {
        fn drop(this: Pin<&mut Self>) {
            if let SendAllState::Writing = this.state {
                this.sock.post.unlock_owner();
            }
        }
    }
}

pub(super) enum SendAllState<'a> {
    /// Not polled yet.
    Start,
    /// Holds the writer role: writes directly.
    Writing,
    /// The flusher held the role: `data` (a copy of the buffer) goes behind the posts.
    Queued {
        data: Option<Bytes>,
        wait: ChangeWait<'a, Bytes>,
    },
    Done,
}

impl std::future::Future for SendAll<'_> {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let sock = *this.sock;
        loop {
            match this.state {
                SendAllState::Start => {
                    if let Err(e) = sock.check_open() {
                        *this.state = SendAllState::Done;
                        return Poll::Ready(Err(e));
                    }
                    *this.state = if sock.post.try_lock_owner() {
                        SendAllState::Writing
                    } else {
                        ensure_flusher(sock);
                        SendAllState::Queued {
                            data: Some(Bytes::copy_from_slice(this.buf)),
                            wait: sock.post.change_wait(),
                        }
                    };
                }
                SendAllState::Writing => {
                    let r = loop {
                        let buf = *this.buf;
                        if buf.is_empty() {
                            break Ok(());
                        }
                        let r = sock.poll_transfer(
                            cx,
                            Direction::Write,
                            buf.len(),
                            Some(this.waiter.as_mut()),
                            || {
                                // Aborted meanwhile (`kick` woke this waiter): stop here.
                                sock.post.check_failed().and_then(|()| (&sock.stream).write(buf))
                            },
                        );
                        match std::task::ready!(r) {
                            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                            Ok(n) => *this.buf = &buf[n..],
                            Err(e) => break Err(e),
                        }
                    };
                    *this.state = SendAllState::Done;
                    sock.post.unlock_owner();
                    return Poll::Ready(r.map_err(|e| sock.context_error("send", e)));
                }
                SendAllState::Queued { data, wait } => {
                    let r = std::task::ready!(sock.post.poll_post_waiting(cx, &mut wait.key, data));
                    *this.state = SendAllState::Done;
                    return Poll::Ready(match r {
                        Ok(()) => Ok(()),
                        Err(_) => sock.check_open(),
                    });
                }
                SendAllState::Done => panic!("`send_all` polled after it completed"),
            }
        }
    }
}
