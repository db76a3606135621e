//! The halves of a byte stream ([`TcpStream`] or [`UnixStream`](crate::net::UnixStream)):
//! owned (`into_split`, usable from different tasks, `'static`) and borrowed (`split`). Each offers the operations of
//! one direction and delegates them to the socket core; an owned half is a half whose
//! lifetime is `'static` because it owns its share of the socket.

use crate::net::post::{PostError, PostSender};
use crate::net::socket::{Owner, Socket};
use crate::net::TcpStream;
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What keeps a half's socket alive: a share of ownership, or a borrow of the stream.
pub(crate) enum Hold<'a> {
    Owned(Owner),
    Borrowed(&'a Arc<Socket>),
}

impl Hold<'_> {
    fn sock(&self) -> &Arc<Socket> {
        match self {
            Hold::Owned(owner) => &owner.0,
            Hold::Borrowed(sock) => sock,
        }
    }
}

/// The receiving half of a [`TcpStream`] or [`UnixStream`](crate::net::UnixStream): owned
/// ([`OwnedRecvHalf`], from `into_split`) or borrowed (from `split`).
pub struct RecvHalf<'a> {
    pub(crate) hold: Hold<'a>,
}

/// The sending half of a [`TcpStream`] or [`UnixStream`](crate::net::UnixStream): owned
/// ([`OwnedSendHalf`], from `into_split`) or borrowed (from `split`).
pub struct SendHalf<'a> {
    pub(crate) hold: Hold<'a>,
}

/// A receiving half that owns its share of the socket, from `into_split`.
pub type OwnedRecvHalf = RecvHalf<'static>;

/// A sending half that owns its share of the socket, from `into_split`.
/// When both owned halves are dropped, the socket closes (after posted data is written).
pub type OwnedSendHalf = SendHalf<'static>;

impl RecvHalf<'_> {
    /// Receives into `buf`; `Ok(0)` is an orderly end of stream. See [`TcpStream::recv`].
    pub fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        self.hold.sock().recv(buf)
    }

    /// Closes the connection at once (both halves): see [`PostSender::abort`].
    pub fn abort(&self) {
        self.hold.sock().kick();
    }

    /// The remote IP address; `Unsupported` for a Unix-domain socket (its peer is rarely
    /// named: use [`UnixStream::peer_addr`](crate::net::UnixStream::peer_addr)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.hold.sock().peer_addr()
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        self.hold.sock()
    }
}

impl SendHalf<'_> {
    /// Sends some of `buf`. See [`TcpStream::send`].
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.hold.sock().send(buf).await
    }

    /// Sends all of `buf` as one run. See [`TcpStream::send_all`].
    pub fn send_all<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + Send + 'a {
        self.hold.sock().send_all(buf)
    }

    /// Waits until everything queued so far reached the kernel. See [`TcpStream::flush`].
    pub async fn flush(&self) -> io::Result<()> {
        self.hold.sock().flush().await
    }

    /// Flushes, then sends FIN. See [`TcpStream::shutdown`].
    pub async fn shutdown(&self) -> io::Result<()> {
        self.hold.sock().shutdown().await
    }

    /// Queues `data` without awaiting. See [`PostSender::post_send`].
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.hold.sock().post_send(data.into())
    }

    /// A thread-safe [`PostSender`] for this socket.
    pub fn sender(&self) -> PostSender {
        self.hold.sock().sender()
    }

    /// Closes the connection at once (both halves): see [`PostSender::abort`].
    pub fn abort(&self) {
        self.hold.sock().kick();
    }

    /// Sets `SO_LINGER` (see [`TcpStream::set_linger`]).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.hold.sock().set_linger(linger)
    }

    /// The remote IP address; `Unsupported` for a Unix-domain socket (its peer is rarely
    /// named: use [`UnixStream::peer_addr`](crate::net::UnixStream::peer_addr)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.hold.sock().peer_addr()
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        self.hold.sock()
    }
}

impl fmt::Debug for RecvHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvHalf").field("socket", self.sock()).finish()
    }
}

impl fmt::Debug for SendHalf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendHalf").field("socket", self.sock()).finish()
    }
}

/// The halves given to [`reunite`] were not split from the same stream (or were
/// borrowed); they are inside.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedRecvHalf, pub OwnedSendHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reunite: the halves are not from the same socket (or not of this stream type)")
    }
}

impl std::error::Error for ReuniteError {}

/// Puts owned halves of a [`TcpStream`] back together: [`TcpStream::reunite`].
pub fn reunite(recv: OwnedRecvHalf, send: OwnedSendHalf) -> Result<TcpStream, ReuniteError> {
    TcpStream::reunite(recv, send)
}

/// The owner inside two owned halves of the same socket of the expected kind.
pub(crate) fn reunite_owner(
    recv: OwnedRecvHalf,
    send: OwnedSendHalf,
    unix: bool,
) -> Result<Owner, ReuniteError> {
    match (recv.hold, send.hold) {
        (Hold::Owned(r), Hold::Owned(s)) if Arc::ptr_eq(&r.0, &s.0) && r.0.stream.is_unix() == unix => {
            drop(s);
            Ok(r)
        }
        (r, s) => Err(ReuniteError(RecvHalf { hold: r }, SendHalf { hold: s })),
    }
}
