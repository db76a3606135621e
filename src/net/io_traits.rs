//! `futures::io::{AsyncRead, AsyncWrite}` (and, with the `tokio` feature, tokio's IO
//! traits) for [`TcpStream`], [`UnixStream`] and their halves.
//!
//! These are the poll-based forms: each direction has one waker slot for them (the traits
//! take `&mut self`, so there is one poller per object), while the `async` methods wait in
//! the direction's waiter list. One macro writes the same delegations for each type.

use crate::net::split::{RecvHalf, SendHalf};
use crate::net::{TcpStream, UnixStream};
use futures::io::{AsyncRead, AsyncWrite};
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};

macro_rules! async_io_impls {
    (read $t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_recv(cx, buf, None)
            }
            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_recv_vectored(cx, bufs, None)
            }
        }

        /// With the `tokio` feature: tokio's read trait, for tokio-util codecs and hyper.
        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                // SAFETY: the unfilled part is only written by `read(2)`, and only the `n`
                // bytes it reports are marked initialised.
                let n = std::task::ready!(self.sock().poll_recv_uninit(cx, unsafe { buf.unfilled_mut() }))?;
                // SAFETY: `read(2)` initialised the first `n` unfilled bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    };
    (write $t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.sock().poll_send(cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.sock().poll_send_vectored(cx, bufs, None, None)
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_flush(cx)
            }
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.sock().poll_shutdown(cx, false, None)
            }
        }

        /// With the `tokio` feature: tokio's write trait, for tokio-util codecs and hyper.
        #[cfg(feature = "tokio")]
        impl tokio::io::AsyncWrite for $t {
            // The same operations as the `futures` impl above.
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write(self, cx, buf)
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                AsyncWrite::poll_write_vectored(self, cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                true
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_flush(self, cx)
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                AsyncWrite::poll_close(self, cx)
            }
        }
    };
}

async_io_impls!(read TcpStream);
async_io_impls!(write TcpStream);
async_io_impls!(read UnixStream);
async_io_impls!(write UnixStream);
async_io_impls!(read RecvHalf<'_>);
async_io_impls!(write SendHalf<'_>);
