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

/// `recvmsg(fd, bufs, 0)` for a Unix stream, reading on past messages that carried file
/// descriptors: Linux ends a read after such a message even with more data queued behind
/// it (iocore takes no descriptors, so the kernel closes them and flags `MSG_CTRUNC`), and
/// a read that stopped there would look like a drained buffer. The bytes read (0 at end
/// of stream), or the OS error.
pub(crate) fn recv_unix(fd: RawFd, bufs: &mut [std::io::IoSliceMut<'_>]) -> io::Result<usize> {
    // SAFETY: `IoSliceMut` is guaranteed ABI-compatible with `iovec` on Unix; the buffers
    // are valid for writes and exclusively borrowed for the call.
    unsafe { recv_unix_iovecs(fd, std::slice::from_raw_parts_mut(bufs.as_mut_ptr().cast(), bufs.len())) }
}

/// [`recv_unix`] into `len` bytes at `ptr`, which may be uninitialised (tokio's `ReadBuf`).
#[cfg(feature = "tokio")]
///
/// # Safety
/// `ptr` is valid for writes of `len` bytes for the whole call.
pub(crate) unsafe fn recv_unix_raw(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    let mut iov = [libc::iovec { iov_base: ptr.cast(), iov_len: len }];
    // SAFETY: forwarded from the caller.
    unsafe { recv_unix_iovecs(fd, &mut iov) }
}

/// The loop of [`recv_unix`]. `iov` is left as it is: a read on past a message with
/// descriptors advances a copy of it.
///
/// # Safety
/// Each of `iov`'s buffers is valid for writes for the whole call.
unsafe fn recv_unix_iovecs(fd: RawFd, iov: &mut [libc::iovec]) -> io::Result<usize> {
    // SAFETY: forwarded from the caller.
    let (n, truncated) = unsafe { recvmsg_iovecs(fd, iov) }?;
    if !truncated || n == 0 {
        return Ok(n);
    }
    // Rare: a copy of the buffers, past what the first read took.
    let mut rest: Vec<libc::iovec> = iov.to_vec();
    let (mut first, mut total) = (0, 0);
    let mut n = n;
    loop {
        total += n;
        let mut left = n;
        while first < rest.len() && left >= rest[first].iov_len {
            left -= rest[first].iov_len;
            first += 1;
        }
        if first == rest.len() {
            return Ok(total);
        }
        // SAFETY: `left` is less than this buffer's length: the pointer stays inside it.
        rest[first].iov_base = unsafe { rest[first].iov_base.cast::<u8>().add(left) }.cast();
        rest[first].iov_len -= left;
        // SAFETY: `rest` points into the caller's buffers (the caller's promise).
        match unsafe { recvmsg_iovecs(fd, &mut rest[first..]) } {
            Ok((more, truncated)) if more > 0 && truncated => n = more,
            Ok((more, _)) => return Ok(total + more),
            // What the first reads took is reported; a `WouldBlock` comes again next time
            // (as would most errors; a reset reported once would read as an end of stream).
            Err(_) => return Ok(total),
        }
    }
}

/// One `recvmsg` into `iov` without a control buffer: the bytes read, and whether a
/// message with descriptors ended the read (`MSG_CTRUNC`).
///
/// # Safety
/// Each of `iov`'s buffers is valid for writes for the whole call.
unsafe fn recvmsg_iovecs(fd: RawFd, iov: &mut [libc::iovec]) -> io::Result<(usize, bool)> {
    // SAFETY: a zeroed `msghdr` is valid (no address, no control buffer); `recvmsg` writes
    // only into `iov`'s buffers (the caller's promise).
    let (n, flags) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        let n = libc::syscall(
            libc::SYS_recvmsg,
            fd as libc::c_long,
            &mut msg as *mut libc::msghdr,
            0 as libc::c_long,
        );
        (n, msg.msg_flags)
    };
    transferred(n).map(|n| (n, flags & libc::MSG_CTRUNC != 0))
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
