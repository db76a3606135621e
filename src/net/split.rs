//! The halves of a [`TcpStream`]: owned ([`TcpStream::into_split`], usable from
//! different tasks) and borrowed ([`TcpStream::split`]). Each offers the operations of one
//! direction and delegates them to the socket core.

use crate::net::post::{PostError, PostSender};
use crate::net::socket::{Owner, Socket};
use crate::net::TcpStream;
use bytes::Bytes;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// The receiving half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedRecvHalf {
    pub(crate) owner: Owner,
}

/// The sending half of a [`TcpStream`], from [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedSendHalf {
    pub(crate) owner: Owner,
}

/// A borrowed receiving half, from [`TcpStream::split`].
#[derive(Debug)]
pub struct RecvHalf<'a> {
    pub(crate) sock: &'a Arc<Socket>,
}

/// A borrowed sending half, from [`TcpStream::split`].
#[derive(Debug)]
pub struct SendHalf<'a> {
    pub(crate) sock: &'a Arc<Socket>,
}

impl OwnedRecvHalf {
    /// Receives into `buf`; `Ok(0)` is an orderly end of stream (or an empty `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock().recv(buf).await
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        &self.owner.0
    }
}

impl OwnedSendHalf {
    /// Sends some of `buf` and returns how much (see [`TcpStream::send`]).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().send(buf).await
    }

    /// Sends all of `buf` as one contiguous run (posted data does not interleave).
    pub async fn send_all(&self, buf: &[u8]) -> io::Result<()> {
        self.sock().send_all(buf).await
    }

    /// Completes when every byte queued so far has been handed to the kernel.
    pub async fn flush(&self) -> io::Result<()> {
        self.sock().flush().await
    }

    /// Graceful close of the sending side: flushes, then sends FIN.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.sock().shutdown().await
    }

    /// Queues `data` to be sent by the core, without awaiting; see
    /// [`PostSender::post_send`].
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.sock().post_send(data.into())
    }

    /// A thread-safe [`PostSender`] for this socket.
    pub fn sender(&self) -> PostSender {
        self.sock().sender()
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        &self.owner.0
    }
}

impl RecvHalf<'_> {
    /// Receives into `buf`; `Ok(0)` is an orderly end of stream (or an empty `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock().recv(buf).await
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        self.sock
    }
}

impl SendHalf<'_> {
    /// Sends some of `buf` and returns how much (see [`TcpStream::send`]).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().send(buf).await
    }

    /// Sends all of `buf` as one contiguous run (posted data does not interleave).
    pub async fn send_all(&self, buf: &[u8]) -> io::Result<()> {
        self.sock().send_all(buf).await
    }

    /// Completes when every byte queued so far has been handed to the kernel.
    pub async fn flush(&self) -> io::Result<()> {
        self.sock().flush().await
    }

    /// Graceful close of the sending side: flushes, then sends FIN.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.sock().shutdown().await
    }

    /// Queues `data` to be sent by the core, without awaiting; see
    /// [`PostSender::post_send`].
    pub fn post_send(&self, data: impl Into<Bytes>) -> Result<(), PostError> {
        self.sock().post_send(data.into())
    }

    /// A thread-safe [`PostSender`] for this socket.
    pub fn sender(&self) -> PostSender {
        self.sock().sender()
    }

    pub(crate) fn sock(&self) -> &Arc<Socket> {
        self.sock
    }
}

impl OwnedRecvHalf {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }
}

impl OwnedSendHalf {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }
}

/// The halves given to [`reunite`] were not split from the same stream; they are inside.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedRecvHalf, pub OwnedSendHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

/// Puts owned halves back together.
pub fn reunite(recv: OwnedRecvHalf, send: OwnedSendHalf) -> Result<TcpStream, ReuniteError> {
    if Arc::ptr_eq(&recv.owner.0, &send.owner.0) {
        drop(send);
        Ok(TcpStream { owner: recv.owner })
    } else {
        Err(ReuniteError(recv, send))
    }
}
