//! [`PostSender`], the thread-safe posting handle, and [`PostError`], what a refused post
//! hands back.

use super::{Item, PostQueue};
use bytes::Bytes;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why a `post_send` refused its data; the data is inside, nothing is lost.
#[derive(Clone, PartialEq, Eq)]
pub enum PostError {
    /// The socket is closed, failed, or shut down for writing (`shutdown`, even one whose
    /// wait was given up); no more data will be sent.
    Closed(Bytes),
    /// The queue has reached its high-water mark; wait for [`PostSender::ready`] and post
    /// the data again.
    WouldExceed(Bytes),
    /// A datagram larger than any UDP datagram can be (65,507 bytes of payload over IPv4,
    /// 65,527 over IPv6); posting it again will not help.
    TooLarge(Bytes),
}

impl PostError {
    /// The data that was not queued.
    pub fn into_inner(self) -> Bytes {
        match self {
            PostError::Closed(b) | PostError::WouldExceed(b) | PostError::TooLarge(b) => b,
        }
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Closed(b) => {
                write!(f, "post_send of {} bytes: the socket is closed or shut down for writing", b.len())
            }
            PostError::WouldExceed(b) => {
                write!(f, "post_send of {} bytes: queue is at its high-water mark", b.len())
            }
            PostError::TooLarge(b) => {
                write!(f, "post_send of {} bytes: too large for a UDP datagram", b.len())
            }
        }
    }
}

impl fmt::Debug for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for PostError {}

/// A thread-safe handle that queues bytes on a socket: `Clone + Send + Sync + 'static`.
///
/// Obtained from [`TcpStream::sender`](crate::net::TcpStream::sender) (or a
/// `UnixStream`'s, or a half's); for a UDP socket it is a
/// [`DatagramSender`](crate::net::DatagramSender), whose items are datagrams. Posting never
/// blocks and never awaits; the core writes the data in posting order (per thread) with
/// gathered writes (`sendmsg`), behind anything posted before. Data posted after the socket closed, or above
/// the high-water mark, is handed back inside the [`PostError`].
///
/// ```no_run
/// # async fn demo(stream: iocore::net::TcpStream) -> std::io::Result<()> {
/// let sender = stream.sender();
/// std::thread::spawn(move || {
///     for i in 0..10 {
///         sender.post_send(format!("line {i}\n")).expect("socket closed");
///     }
/// });
/// # Ok(()) }
/// ```
pub struct PostSender<T = Bytes> {
    pub(crate) queue: Arc<PostQueue<T>>,
}

impl<T> Clone for PostSender<T> {
    fn clone(&self) -> Self {
        PostSender { queue: self.queue.clone() }
    }
}

impl PostSender {
    /// Queues `data` to be sent. Empty buffers are accepted and ignored.
    ///
    /// Errors: [`PostError::Closed`] once the socket is closed; [`PostError::WouldExceed`]
    /// while the queued bytes are at or above the high-water mark. Below the mark any
    /// buffer is accepted, so the queue holds at most the mark plus one buffer per posting
    /// thread, and a post right after [`ready`](Self::ready) succeeds (unless another
    /// thread filled the queue meanwhile).
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.queue.post(data.into(), true)
    }

    /// Queues `data`, waiting for room below the high-water mark first if needed (the
    /// `post_send` → `WouldExceed` → [`ready`](Self::ready) → retry loop, done for you).
    /// Fails only with [`PostError::Closed`], the data handed back.
    ///
    /// ```no_run
    /// # async fn demo(sender: iocore::net::PostSender) -> Result<(), iocore::net::PostError> {
    /// for i in 0..1000 {
    ///     sender.send(format!("line {i}\n")).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.queue.post_waiting(data.into()).await
    }
}

impl<T: Item> PostSender<T> {
    /// Whether the socket is closed (posts will fail).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Completes once the socket is closed and done: posts are refused and everything
    /// accepted was handed to the kernel — or the socket failed (an error, an abort, the
    /// linger of a dropped stream ran out) and the rest was discarded.
    pub async fn closed(&self) {
        let mut wait = self.queue.change_wait();
        poll_fn(|cx| self.queue.poll_closed(cx, Some(&mut wait.key))).await
    }

    /// Bytes posted and not yet handed to the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued_bytes()
    }

    /// Completes once the queue is below the high-water mark (or the socket is closed).
    pub async fn ready(&self) {
        let mut wait = self.queue.change_wait();
        poll_fn(|cx| self.queue.poll_space(cx, Some(&mut wait.key))).await
    }

    /// Closes the socket at once, from any thread (to kick a client): queued data is
    /// discarded, later posts and the owner's sends fail, and for a stream the owner's
    /// receives see the end and the close sends a reset. (A UDP socket has no connection
    /// to reset: its receives go on; its owner's sends and every post fail.) Does
    /// nothing if the socket is already closed.
    pub fn abort(&self) {
        if let Some(socket) = self.queue.socket() {
            socket.abort();
        }
    }

    /// Completes when everything posted before the call (through any sender, or by the
    /// stream's owner) has been handed to the kernel; posts made meanwhile do not hold it
    /// back. Fails with the socket's error if it failed before or while waiting (data
    /// not yet written is then discarded). Like the stream's own `flush`, from any task.
    pub async fn flush(&self) -> io::Result<()> {
        self.queue.flush().await
    }

    /// Graceful close of the sending side, from any thread: later posts are refused, what
    /// was queued is delivered, then FIN. Harmless if already done (or the socket closed).
    pub async fn shutdown(&self) -> io::Result<()> {
        match self.queue.socket() {
            Some(socket) => {
                let mut wait = self.queue.change_wait();
                poll_fn(|cx| socket.poll_shutdown(cx, Some(&mut wait.key))).await
            }
            None => Ok(()),
        }
    }

    /// The remote address; `NotConnected` once the socket is closed.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.queue.socket() {
            Some(socket) => socket.peer_addr(),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "peer_addr: the socket is closed")),
        }
    }
}

impl<T: Item> fmt::Debug for PostSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostSender")
            .field("queued_bytes", &self.queued_bytes())
            .field("closed", &self.is_closed())
            .finish()
    }
}
