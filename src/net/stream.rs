//! [`TcpStream`]: connecting, the owner's send/recv API, `post_send`, socket options.
//!
//! Every operation delegates to the socket core (`net::socket`); the halves (`split`)
//! offer the same operations for one direction each.

use crate::net::addr::{resolve, ToSocketAddrs};
use crate::net::socket::{Conn, Owner, Peer, Socket};
use crate::runtime::Handle;
use socket2::{Domain, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Options for [`TcpStream::connect_with`].
#[derive(Debug, Default)]
pub struct ConnectOptions {
    delay: Option<Duration>,
    timeout: Option<Duration>,
    nodelay: bool,
    keepalive: Option<Duration>,
    socket: Option<socket2::Socket>,
}

impl ConnectOptions {
    /// Default options: no delay, no timeout, Nagle on, no keepalive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Do not start before `delay` has passed (for reconnect back-off).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Give up after `timeout` (resolution and all attempts, counted from the end of the
    /// `delay`), with `TimedOut`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Set `TCP_NODELAY` on the connected socket.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Enable TCP keepalive with this idle time: whole seconds from 1 to 32767 (Linux's
    /// range; outside it the connect fails with `InvalidInput` naming this option).
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// Connect with this pre-configured socket (used for the first address tried; it is
    /// switched to non-blocking mode). A socket that is not a stream socket is an
    /// `InvalidInput` error.
    pub fn socket(mut self, socket: socket2::Socket) -> Self {
        self.socket = Some(socket);
        self
    }
}

/// A TCP connection on an iocore core.
///
/// Receive with [`recv`](Self::recv) (or `futures::io::AsyncRead`), send with
/// [`send`](Self::send)/[`send_all`](Self::send_all) (or `AsyncWrite`), or hand a
/// [`PostSender`](crate::net::PostSender) to any thread with [`sender`](Self::sender) and
/// [`post_send`](Self::post_send) bytes without awaiting. Everything posted before an
/// owner's `send` leaves before it.
///
/// Dropping the stream (with its halves) still delivers data already posted (bounded by
/// the linger setting, 30 s if none), then closes; posts after the drop are refused with
/// [`PostError::Closed`](crate::net::PostError::Closed). [`abort`](Self::abort) closes at once with a reset.
///
/// ```no_run
/// use iocore::net::TcpStream;
/// # async fn demo() -> std::io::Result<()> {
/// let stream = TcpStream::connect("127.0.0.1:7000").await?;
/// stream.send_all(b"hello").await?;
/// let mut buf = [0u8; 1024];
/// let n = stream.recv(&mut buf).await?;
/// println!("got {:?}", &buf[..n]);
/// # Ok(()) }
/// ```
pub struct TcpStream {
    pub(crate) owner: Owner,
}

impl TcpStream {
    /// A stream on `core`; `peer` when already known (from `accept`), else looked up.
    pub(crate) fn from_mio(
        stream: mio::net::TcpStream,
        core: Handle,
        peer: Option<SocketAddr>,
    ) -> io::Result<TcpStream> {
        let sock = Socket::new(Conn::Tcp(stream), core, peer.map(Peer::ip))?;
        Ok(TcpStream { owner: Owner::new(sock) })
    }

    /// Connects to `addr`, trying every resolved address in order. Host names are resolved
    /// off the workers. Errors name the address(es) tried.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        Self::connect_with(addr, ConnectOptions::new()).await
    }

    /// Connects with [`ConnectOptions`] (delay, timeout, nodelay, keepalive, socket).
    pub async fn connect_with(addr: impl ToSocketAddrs, mut opts: ConnectOptions) -> io::Result<TcpStream> {
        let target = addr.to_target();
        if let Some(delay) = opts.delay {
            crate::time::sleep(delay).await;
        }
        let timeout = opts.timeout;
        let attempt = async {
            let addrs = resolve(&target).await?;
            let mut last = None;
            for a in &addrs {
                match connect_one(*a, &mut opts).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            let e = last.expect("at least one address");
            let tried = if addrs.len() == 1 {
                addrs[0].to_string()
            } else {
                format!(
                    "{target} (tried {})",
                    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            Err(io::Error::new(e.kind(), format!("connect to {tried}: {e}")))
        };
        match timeout {
            None => attempt.await,
            Some(t) => crate::time::timeout(t, attempt).await.unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {target}: timed out after {t:?}"),
                ))
            }),
        }
    }

    /// Wraps a connected standard-library stream (made non-blocking) on the current core
    /// (or the default core outside any core).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        let stream = Self::from_mio(
            mio::net::TcpStream::from_std(stream),
            crate::runtime::current_or_default()?,
            None,
        )?;
        stream.sock().adopt_linger();
        Ok(stream)
    }

    /// Turns the stream into a standard-library one (in blocking mode) for the same
    /// connection, leaving the core. Fails (handing nothing over, the stream is dropped)
    /// when the socket is still shared — a `PostSender`, the other half, or posted data
    /// still queued: call [`flush`](Self::flush) and drop the senders first.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.sock().detach()
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let addr = self.option("local_addr", self.opt().local_addr())?;
        addr.as_socket().ok_or_else(|| io::Error::other("local_addr: not an IP socket"))
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.option("set_nodelay", self.opt().set_nodelay(nodelay))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.option("nodelay", self.opt().nodelay())
    }

    /// Enables TCP keepalive with this idle time, or disables it with `None`.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        match idle {
            None => self.option("set_keepalive", self.opt().set_keepalive(false)),
            Some(t) => self.option(
                "set_tcp_keepalive",
                self.opt().set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(t)),
            ),
        }
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.option("set_ttl", self.opt().set_ttl(ttl))
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.option("ttl", self.opt().ttl())
    }
}

async fn connect_one(addr: SocketAddr, opts: &mut ConnectOptions) -> io::Result<TcpStream> {
    let given = opts.socket.is_some();
    let socket = match opts.socket.take() {
        Some(s) => {
            // A datagram (or any other) socket would "connect" and then fail strangely.
            if s.r#type()? != Type::STREAM {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "ConnectOptions::socket: not a stream (SOCK_STREAM) socket",
                ));
            }
            s
        }
        None => socket2::Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?,
    };
    socket.set_nonblocking(true)?;
    if opts.nodelay {
        socket.set_nodelay(true)?;
    }
    if let Some(idle) = opts.keepalive {
        socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle)).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ConnectOptions::keepalive({idle:?}): the idle time must be 1 to 32767 whole seconds ({e})"),
            )
        })?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std: std::net::TcpStream = socket.into();
    // The target names the peer in error messages (not connected yet: nothing to look up).
    let stream = TcpStream::from_mio(
        mio::net::TcpStream::from_std(std),
        crate::runtime::current_or_default()?,
        Some(addr),
    )?;
    if given {
        stream.sock().adopt_linger();
    }
    stream.sock().connected().await?;
    Ok(stream)
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

crate::net::stream_ops::stream_ops!(TcpStream, unix = false);
