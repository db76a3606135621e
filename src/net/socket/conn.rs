//! [`Conn`]: the connected stream socket under a socket core, TCP or Unix-domain, and
//! [`Peer`], what error messages call the other end.
//!
//! Both kinds are byte streams with the same syscalls (`read`/`readv`/`write`/`writev`,
//! `shutdown`), so the socket core, its halves, its flusher and `post_send` serve both;
//! only addresses differ.

use socket2::SockRef;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

/// A connected stream socket.
pub(crate) enum Conn {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

/// The other end of a connection, as error messages name it. Every socket core keeps one,
/// so it is compact: 16 bytes (a `SocketAddr` takes 32), an IPv4 address inline, an IPv6
/// address (28 bytes) behind a pointer, a path shared with its listener.
#[derive(Clone, Debug)]
pub(crate) enum Peer {
    /// A TCP peer over IPv4.
    V4(SocketAddrV4),
    /// A TCP peer over IPv6.
    V6(Box<SocketAddrV6>),
    /// A Unix-domain socket: the path connected to or listened on.
    Path(Arc<PathBuf>),
}

impl Peer {
    /// A TCP peer.
    pub(crate) fn ip(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) => Peer::V4(a),
            SocketAddr::V6(a) => Peer::V6(Box::new(a)),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::V4(a) => write!(f, "{a}"),
            Peer::V6(a) => write!(f, "{a}"),
            Peer::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Conn {
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self, Conn::Unix(_))
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(how),
            Conn::Unix(s) => s.shutdown(how),
        }
    }

    /// The remote IP address; a Unix socket has none (`Unsupported`).
    pub(crate) fn peer_ip(&self) -> io::Result<SocketAddr> {
        match self {
            Conn::Tcp(s) => s.peer_addr(),
            Conn::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "peer_addr: a Unix-domain socket has no IP address (use UnixStream::peer_addr)",
            )),
        }
    }

    /// Socket options common to both kinds (`SO_LINGER`, `SO_ERROR`, buffer sizes).
    pub(crate) fn opt(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

// `Read`/`Write` on a shared reference, as mio and std offer them: the syscalls need no
// exclusive access, and the socket core is shared.
impl Read for &Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => (&*s).read(buf),
            Conn::Unix(s) => (&*s).read(buf),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => (&*s).read_vectored(bufs),
            Conn::Unix(s) => (&*s).read_vectored(bufs),
        }
    }
}

impl Write for &Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => (&*s).write(buf),
            Conn::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => (&*s).write_vectored(bufs),
            Conn::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}
