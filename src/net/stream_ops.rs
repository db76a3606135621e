//! The operations every byte-stream socket type offers ([`TcpStream`](super::TcpStream)
//! and [`UnixStream`](super::UnixStream)), written once: each delegates to the socket core
//! (`net::socket`), which serves both kinds. The types add what differs: connecting,
//! addresses and kind-specific options.

/// Writes, for a stream type `$t` with an `owner: Owner` field, the shared `async`
/// send/recv API, `post_send`, splitting, the common socket options, and `AsFd`/`AsRawFd`.
macro_rules! stream_ops {
    ($t:ident, unix = $unix:expr) => {
        impl $t {
            /// Puts halves from [`into_split`](Self::into_split) back together; fails (handing
            /// them back) for halves of different sockets or of another stream type.
            pub fn reunite(
                recv: $crate::net::OwnedRecvHalf,
                send: $crate::net::OwnedSendHalf,
            ) -> Result<$t, $crate::net::ReuniteError> {
                $crate::net::split::reunite_owner(recv, send, $unix).map(|owner| $t { owner })
            }

            /// Receives into `buf`; `Ok(0)` is an orderly end of stream (or an empty `buf`).
            pub fn recv<'a>(
                &'a self,
                buf: &'a mut [u8],
            ) -> impl ::std::future::Future<Output = ::std::io::Result<usize>> + Send + 'a {
                self.sock().recv(buf)
            }

            /// Sends some of `buf` and returns how much: written directly when nothing is queued,
            /// otherwise queued (all of it) behind the posted data.
            pub async fn send(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock().send(buf).await
            }

            /// Sends all of `buf` as one contiguous run (posted data does not interleave).
            #[inline]
            pub fn send_all<'a>(
                &'a self,
                buf: &'a [u8],
            ) -> impl ::std::future::Future<Output = ::std::io::Result<()>> + Send + 'a {
                self.sock().send_all(buf)
            }

            /// Completes when every byte queued so far (posted or sent) has been handed to the
            /// kernel. Posts that other threads make meanwhile do not hold it back.
            pub async fn flush(&self) -> ::std::io::Result<()> {
                self.sock().flush().await
            }

            /// Graceful close of the sending side: flushes, then sends FIN. Later sends and posts
            /// fail; receiving still works. Calling it twice is harmless.
            pub async fn shutdown(&self) -> ::std::io::Result<()> {
                self.sock().shutdown().await
            }

            /// Queues `data` to be sent by the core, without awaiting; see
            /// [`PostSender::post_send`]($crate::net::PostSender::post_send).
            pub fn post_send(&self, data: impl Into<::bytes::Bytes>) -> Result<(), $crate::net::PostError> {
                self.sock().post_send(data.into())
            }

            /// A thread-safe [`PostSender`]($crate::net::PostSender) for this socket.
            pub fn sender(&self) -> $crate::net::PostSender {
                self.sock().sender()
            }

            pub(crate) fn sock(&self) -> &::std::sync::Arc<$crate::net::socket::Socket> {
                &self.owner.0
            }

            /// Receives into several buffers with one `readv`.
            pub async fn recv_vectored(
                &self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.sock().recv_vectored(bufs).await
            }

            /// Receives without waiting: `WouldBlock` if nothing is there.
            pub fn try_recv(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.sock().try_recv(buf)
            }

            /// Completes when the socket may be readable (then try [`try_recv`](Self::try_recv)).
            /// Any number of tasks may wait at once (on a shared `&Self`); each is woken.
            pub async fn readable(&self) -> ::std::io::Result<()> {
                self.sock().readable().await
            }

            /// Sends several buffers with one `writev` (or queues them, as [`send`](Self::send)).
            pub async fn send_vectored(&self, bufs: &[::std::io::IoSlice<'_>]) -> ::std::io::Result<usize> {
                self.sock().send_vectored(bufs).await
            }

            /// Sends without waiting: `WouldBlock` if the socket is full or posted data is being
            /// flushed (this would overtake it).
            pub fn try_send(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.sock().try_send(buf)
            }

            /// Completes when the owner may write: posted data has been handed to the kernel (so
            /// a [`try_send`](Self::try_send) would not overtake it), no
            /// [`send_all`](Self::send_all) is under way (it holds the writer role from its
            /// first write to its last), and the socket may be writable. Any number of tasks
            /// may wait at once; each is woken. (A task that keeps a `send_all` of its own
            /// paused, unpolled, and awaits this would wait forever: poll both, as `join!`
            /// or `select!` in a loop do, or drop the `send_all` first. While other threads
            /// keep posting, the flusher keeps the role and this waits as long: use
            /// [`send`](Self::send), which queues behind the posts.)
            pub async fn writable(&self) -> ::std::io::Result<()> {
                self.sock().writable().await
            }

            /// Closes at once with a reset (RST), discarding queued data.
            pub fn abort(self) {
                self.sock().abort();
            }

            /// Sets the high-water mark of posted bytes (default: the core's,
            /// [`Builder::post_high_water`]($crate::Builder::post_high_water)) above which `post_send`
            /// returns [`PostError::WouldExceed`]($crate::net::PostError::WouldExceed).
            pub fn set_post_high_water(&self, bytes: usize) {
                self.sock().post.set_high_water(bytes);
            }

            /// Splits into owned halves, usable from different tasks.
            pub fn into_split(self) -> ($crate::net::OwnedRecvHalf, $crate::net::OwnedSendHalf) {
                let send =
                    $crate::net::SendHalf { hold: $crate::net::split::Hold::Owned(self.owner.clone()) };
                ($crate::net::RecvHalf { hold: $crate::net::split::Hold::Owned(self.owner) }, send)
            }

            /// Splits into borrowed halves.
            pub fn split(&mut self) -> ($crate::net::RecvHalf<'_>, $crate::net::SendHalf<'_>) {
                (
                    $crate::net::RecvHalf { hold: $crate::net::split::Hold::Borrowed(self.sock()) },
                    $crate::net::SendHalf { hold: $crate::net::split::Hold::Borrowed(self.sock()) },
                )
            }

            /// Sets `SO_LINGER`; it also bounds how long a dropped stream keeps flushing posts.
            /// The kernel counts linger in whole seconds: sub-second values round down (to 0 =
            /// close with a reset, discarding unsent data). A longer linger never makes the
            /// close wait (it would hold a worker): the stream's drop turns it off just before
            /// closing, and the kernel sends what it still holds in the background. (So does
            /// a linger set before iocore saw the socket, e.g. before `from_std`; one set
            /// behind iocore's back afterwards, through the raw fd, is not seen.)
            pub fn set_linger(&self, linger: Option<::std::time::Duration>) -> ::std::io::Result<()> {
                self.sock().set_linger(linger)
            }

            /// The `SO_LINGER` setting.
            pub fn linger(&self) -> ::std::io::Result<Option<::std::time::Duration>> {
                self.option("linger", self.opt().linger())
            }

            /// Sets the kernel receive buffer size.
            pub fn set_recv_buffer_size(&self, bytes: usize) -> ::std::io::Result<()> {
                self.option("set_recv_buffer_size", self.opt().set_recv_buffer_size(bytes))
            }

            /// The kernel receive buffer size.
            pub fn recv_buffer_size(&self) -> ::std::io::Result<usize> {
                self.option("recv_buffer_size", self.opt().recv_buffer_size())
            }

            /// Sets the kernel send buffer size.
            pub fn set_send_buffer_size(&self, bytes: usize) -> ::std::io::Result<()> {
                self.option("set_send_buffer_size", self.opt().set_send_buffer_size(bytes))
            }

            /// The kernel send buffer size.
            pub fn send_buffer_size(&self) -> ::std::io::Result<usize> {
                self.option("send_buffer_size", self.opt().send_buffer_size())
            }

            /// The socket option behind the stream.
            fn opt(&self) -> ::socket2::SockRef<'_> {
                self.sock().stream.opt()
            }

            /// Names the socket option in an error (`set_ttl: Invalid argument (os error 22)`).
            fn option<T>(&self, name: &str, r: ::std::io::Result<T>) -> ::std::io::Result<T> {
                r.map_err(|e| ::std::io::Error::new(e.kind(), format!("{name}: {e}")))
            }
        }

        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.sock().stream.as_raw_fd()
            }
        }

        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                self.sock().stream.as_fd()
            }
        }
    };
}

pub(crate) use stream_ops;
