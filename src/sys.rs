//! Linux specifics behind one small interface: a `timerfd` for sub-millisecond kernel waits,
//! and the stream sockets' `recv`/`send`.
//!
//! `epoll_wait` only takes milliseconds, so the sched-role arms this timer with the nearest
//! deadline (nanosecond resolution) and waits in epoll without a timeout.
//!
//! `recv` and `send` are issued as plain system calls, not through glibc's wrappers of the
//! same name: those are POSIX cancellation points, and switch asynchronous thread
//! cancellation on and off around every call (two calls into libc, ~90 instructions per
//! message for a request and its reply), which Rust threads never use.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        // SAFETY: plain syscall with constant flags.
        let fd =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TimerFd { fd })
    }

    /// Fires once after `after` (relative); `Duration::ZERO` disarms.
    pub(crate) fn set(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid fd and a fully initialised itimerspec.
        let rc = unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes an expiration so the next one produces a fresh edge.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer from our own fd.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

// `syscall` is variadic and reads every argument as a `long`: integers are passed as
// `c_long` (an `int` would leave the register's upper half unspecified).

/// `recv(fd, buf, 0)`: the bytes read (0 at end of stream), or the OS error.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `recvfrom` writes at most `buf.len()` bytes into `buf`, which is valid and
    // exclusively borrowed for the call; null address pointers ask for no peer address.
    transferred(unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd as libc::c_long,
            buf.as_mut_ptr(),
            buf.len(),
            0 as libc::c_long,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    })
}

/// `send(fd, buf, MSG_NOSIGNAL)`: the bytes written, or the OS error (`EPIPE`, not a
/// `SIGPIPE`, when the peer is gone).
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `sendto` reads at most `buf.len()` bytes from `buf`, valid for the call; a
    // null address with length 0 sends on the connected socket.
    transferred(unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd as libc::c_long,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_NOSIGNAL as libc::c_long,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::c_long,
        )
    })
}

/// `sendmsg(fd, bufs, MSG_NOSIGNAL)`: a gathered write that, like [`send`], raises no
/// `SIGPIPE` when the peer is gone (`writev` does). The bytes written, or the OS error.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: a zeroed `msghdr` is valid (no address, no control data). `IoSlice` is
    // guaranteed ABI-compatible with `iovec` on Unix, and `sendmsg` only reads the
    // `bufs.len()` buffers it points to, which are valid for the call.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
    };
    transferred(n as libc::c_long)
}

/// A byte-transfer system call's result: the count, or the OS error (`-1`, `errno`).
fn transferred(n: libc::c_long) -> io::Result<usize> {
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
