//! Sockets: TCP ([`TcpListener`], [`TcpStream`]), Unix-domain ([`UnixListener`],
//! [`UnixStream`]) and the thread-safe [`PostSender`].
//!
//! Sockets register once with their core's kernel queue (edge-triggered) and stay there
//! until closed; operations try the syscall first and wait for readiness only on
//! `WouldBlock` (see `io`). A socket made inside a task (or `block_on`) lives on that core;
//! elsewhere on the process-wide default core.
//!
//! Sending has two doors that keep one order: the owner's `send`/`send_all` (direct writes
//! when nothing is queued), and `post_send` from any thread (queued, written by the core
//! with `writev`). Everything posted before an owner's send leaves before it. See `post`.

//!
//! Files: `accept` (fair accepting with back-off, for both listeners), `addr` (address
//! inputs, name resolution), `copy` ([`copy_bidirectional`] between any two [`ByteStream`]s, with an idle timeout or without), `listener`, `socket` (the socket core
//! shared by a stream, its halves and its flusher; the flusher), `stream` (the
//! [`TcpStream`] API), `split` (the halves), `io_traits` (`AsyncRead`/`AsyncWrite`),
//! `post` (the post queue and [`PostSender`]), `stream_ops` (the API both stream types
//! share), `unix` (Unix-domain sockets), `udp` ([`UdpSocket`], [`DatagramSender`]).

mod accept;
mod addr;
mod copy;
mod io_traits;
mod listener;
mod post;
mod socket;
mod split;
mod stream;
mod stream_ops;
mod udp;
mod unix;

pub use addr::{Target, ToSocketAddrs};
pub use copy::{copy_bidirectional, copy_bidirectional_idle_timeout, ByteStream};
pub use listener::{Incoming, ListenOptions, TcpListener};
pub use post::{PostError, PostSender, DEFAULT_HIGH_WATER};
pub use split::{reunite, OwnedRecvHalf, OwnedSendHalf, RecvHalf, ReuniteError, SendHalf};
pub use stream::{ConnectOptions, TcpStream};
pub use udp::{Datagram, DatagramSender, UdpSocket, DATAGRAM_OVERHEAD};
pub use unix::{UnixIncoming, UnixListener, UnixStream};
