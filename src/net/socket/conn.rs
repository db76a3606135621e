//! [`Conn`]: the connected stream socket under a socket core, TCP or Unix-domain, and
//! [`Peer`], what error messages call the other end.
//!
//! Both kinds are byte streams with the same syscalls (`recv`/`readv`/`send`/`writev`,
//! `shutdown`), so the socket core, its halves, its flusher and `post_send` serve both;
//! only addresses differ.

use socket2::SockRef;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Arc;

/// A connected stream socket.
pub(crate) enum Conn {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

/// The other end of a connection, as error messages name it. Every socket core keeps one,
/// so it is one tagged word (a `SocketAddr` takes 32 bytes): an IPv4 address and port
/// inline, an IPv6 address (28 bytes) behind a pointer, a path shared with its listener.
///
/// The word (a pointer, so that the two pointer forms keep their provenance), by its low
/// two bits: `x1`, an IPv4 peer, `ip << 32 | port << 16 | 1` (64-bit targets only; a
/// 32-bit target boxes it like an IPv6 one); `00`, a `Box<SocketAddr>` from
/// `Box::into_raw`; `10`, an `Arc<PathBuf>` from `Arc::into_raw`, plus 2. Both pointees are
/// aligned to at least 4, so a pointer's own low two bits are clear.
pub(crate) struct Peer(NonNull<u8>);

/// What a [`Peer`] holds, borrowed.
#[derive(Debug)]
enum PeerRef<'a> {
    Ip(SocketAddr),
    Path(&'a PathBuf),
}

const INLINE_V4: usize = 1;
const PATH: usize = 2;
const TAG_BITS: usize = 3;

// SAFETY: a `Peer` owns a `Box<SocketAddr>` or a count of an `Arc<PathBuf>` (or holds plain
// bits), all `Send + Sync`, and gives only shared access to them.
unsafe impl Send for Peer {}
// SAFETY: as above.
unsafe impl Sync for Peer {}

impl Peer {
    /// A TCP peer.
    pub(crate) fn ip(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) if usize::BITS >= 64 => {
                let bits = (u32::from(*a.ip()) as u64) << 32 | (a.port() as u64) << 16 | INLINE_V4 as u64;
                // No provenance: plain bits, never dereferenced. Not null (the tag bit).
                let word = std::ptr::null_mut::<u8>().wrapping_add(bits as usize);
                Peer(NonNull::new(word).expect("tagged"))
            }
            addr => {
                let ptr = Box::into_raw(Box::new(addr)).cast::<u8>();
                debug_assert_eq!(ptr as usize & TAG_BITS, 0);
                Peer(NonNull::new(ptr).expect("a box is not null"))
            }
        }
    }

    /// A Unix-domain peer: the path connected to or listened on.
    pub(crate) fn path(path: Arc<PathBuf>) -> Peer {
        let ptr = Arc::into_raw(path).cast::<u8>().cast_mut();
        debug_assert_eq!(ptr as usize & TAG_BITS, 0);
        Peer(NonNull::new(ptr.wrapping_add(PATH)).expect("an arc is not null"))
    }

    /// The IP address and port of a TCP peer (`None` for a Unix-domain one).
    pub(crate) fn ip_addr(&self) -> Option<SocketAddr> {
        match self.get() {
            PeerRef::Ip(a) => Some(a),
            PeerRef::Path(_) => None,
        }
    }

    fn get(&self) -> PeerRef<'_> {
        let word = self.0.as_ptr();
        let bits = word as usize;
        if bits & INLINE_V4 != 0 {
            let bits = bits as u64;
            let ip = std::net::Ipv4Addr::from((bits >> 32) as u32);
            return PeerRef::Ip(SocketAddr::from((ip, (bits >> 16) as u16)));
        }
        if let Some(path) = self.path_ptr() {
            // SAFETY: this peer holds a count of the `Arc` until it drops.
            return PeerRef::Path(unsafe { &*path });
        }
        // SAFETY: the tag says the word is a `Box<SocketAddr>` pointer this peer owns.
        PeerRef::Ip(unsafe { *word.cast::<SocketAddr>() })
    }

    /// The `Arc<PathBuf>` pointer (from `Arc::into_raw`) when the tag says the word holds
    /// one.
    fn path_ptr(&self) -> Option<*const PathBuf> {
        let word = self.0.as_ptr();
        (word as usize & TAG_BITS == PATH).then(|| word.wrapping_sub(PATH).cast::<PathBuf>().cast_const())
    }
}

impl Clone for Peer {
    fn clone(&self) -> Peer {
        match self.get() {
            PeerRef::Ip(a) => Peer::ip(a),
            PeerRef::Path(_) => {
                let ptr = self.path_ptr().expect("a path peer");
                // SAFETY: `ptr` came from `Arc::into_raw`, and this peer's count keeps the
                // `Arc` alive; the new count is the clone's.
                unsafe { Arc::increment_strong_count(ptr) };
                Peer(self.0)
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let word = self.0.as_ptr();
        let bits = word as usize;
        if bits & INLINE_V4 != 0 {
            return;
        }
        if let Some(path) = self.path_ptr() {
            // SAFETY: `path` came from `Arc::into_raw`; this peer's count is given back
            // once, here.
            drop(unsafe { Arc::from_raw(path) });
        } else {
            // SAFETY: the tag says the word is a pointer from `Box::into_raw` that this
            // peer owns; freed once, here.
            drop(unsafe { Box::from_raw(word.cast::<SocketAddr>()) });
        }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            PeerRef::Ip(a) => write!(f, "{a}"),
            PeerRef::Path(p) => write!(f, "{}", p.display()),
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
// exclusive access, and the socket core is shared. `read`/`write`/`write_vectored` are
// `recv` (`recvmsg` for a Unix stream: see `sys::recv_unix`)/`send`/`sendmsg` for both kinds, writes with `MSG_NOSIGNAL` (`sys`: no `SIGPIPE`,
// from a TCP or a Unix socket, even in a program that does not ignore the signal).
impl Read for &Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => crate::sys::recv(s.as_raw_fd(), buf),
            Conn::Unix(s) => crate::sys::recv_unix(s.as_raw_fd(), &mut [IoSliceMut::new(buf)]),
        }
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => (&*s).read_vectored(bufs),
            Conn::Unix(s) => crate::sys::recv_unix(s.as_raw_fd(), bufs),
        }
    }
}

impl Write for &Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::sys::send(self.as_raw_fd(), buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        crate::sys::send_vectored(self.as_raw_fd(), bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_keep_their_address_through_clone_and_drop() {
        let addrs = ["10.1.2.3:4567", "255.255.255.255:65535", "0.0.0.0:0", "[::1]:80", "[fe80::1%7]:443"];
        for a in addrs {
            let addr: SocketAddr = a.parse().unwrap();
            let peer = Peer::ip(addr);
            let copy = peer.clone();
            drop(peer);
            assert_eq!(copy.to_string(), addr.to_string());
        }
        let path = Arc::new(PathBuf::from("/tmp/some.sock"));
        let peer = Peer::path(path.clone());
        let copy = peer.clone();
        assert_eq!(Arc::strong_count(&path), 3);
        drop(peer);
        assert_eq!(copy.to_string(), "/tmp/some.sock");
        assert_eq!(format!("{copy:?}"), "Path(\"/tmp/some.sock\")");
        drop(copy);
        assert_eq!(Arc::strong_count(&path), 1);
        assert_eq!(std::mem::size_of::<Option<Peer>>(), 8);
    }
}
