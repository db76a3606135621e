//! Address inputs and name resolution off the worker threads.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What a socket address argument resolves from: addresses, or a host name to look up.
#[derive(Debug, Clone)]
pub enum Target {
    /// Already resolved addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// A host name (or address literal) and a port.
    Host(String, u16),
    /// A `"host:port"` string.
    HostPort(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addrs(a) if a.len() == 1 => write!(f, "{}", a[0]),
            Target::Addrs(a) => write!(f, "{a:?}"),
            Target::Host(h, p) => write!(f, "{h}:{p}"),
            Target::HostPort(s) => f.write_str(s),
        }
    }
}

/// Types that name socket addresses: `SocketAddr`, `(IpAddr, u16)`, `(&str, u16)`,
/// `"host:port"` strings, slices of addresses. Host names are resolved on the blocking pool,
/// never on a worker.
pub trait ToSocketAddrs {
    /// The target to resolve.
    fn to_target(&self) -> Target;
}

macro_rules! addr_impl {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {
            fn to_target(&self) -> Target {
                Target::Addrs(vec![SocketAddr::from(*self)])
            }
        }
    )*};
}
addr_impl!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16), (Ipv4Addr, u16), (Ipv6Addr, u16));

impl ToSocketAddrs for [SocketAddr] {
    fn to_target(&self) -> Target {
        Target::Addrs(self.to_vec())
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {
    fn to_target(&self) -> Target {
        Target::Addrs(self.clone())
    }
}

impl ToSocketAddrs for str {
    fn to_target(&self) -> Target {
        match self.parse::<SocketAddr>() {
            Ok(a) => Target::Addrs(vec![a]),
            Err(_) => Target::HostPort(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {
    fn to_target(&self) -> Target {
        self.as_str().to_target()
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_target(&self) -> Target {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Target::Addrs(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Target::Host(self.0.to_owned(), self.1),
        }
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_target(&self) -> Target {
        (self.0.as_str(), self.1).to_target()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_target(&self) -> Target {
        (**self).to_target()
    }
}

/// Resolves `target`; host names are looked up on a helper thread. Dropping the future
/// abandons the lookup (the thread finishes it and exits; nothing leaks).
pub(crate) async fn resolve(target: &Target) -> io::Result<Vec<SocketAddr>> {
    let lookup = match target {
        Target::Addrs(a) if a.is_empty() => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no socket address given"))
        }
        Target::Addrs(a) => return Ok(a.clone()),
        Target::Host(h, p) => format!("{h}:{p}"),
        Target::HostPort(s) => s.clone(),
    };
    let name = lookup.clone();
    let lookup_on_pool = crate::runtime::current_or_default()?.spawn_blocking(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&name).map(|it| it.collect::<Vec<_>>())
    });
    let addrs = lookup_on_pool
        .await
        .map_err(|e| io::Error::other(format!("resolve {lookup}: the lookup did not complete: {e}")))?
        .map_err(|e| io::Error::new(e.kind(), format!("resolve {lookup}: {e}")))?;
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("resolve {lookup}: no addresses found")));
    }
    Ok(addrs)
}

/// Resolves `target` and runs `op` on each address in turn until one succeeds (binding a
/// listener or a UDP socket, connecting a UDP socket). Otherwise the last error, as
/// `{what} {address}: {error}` with its kind kept.
pub(crate) async fn first_that_works<T>(
    target: &Target,
    what: &str,
    mut op: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in resolve(target).await? {
        match op(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(io::Error::new(e.kind(), format!("{what} {a}: {e}"))),
        }
    }
    // `resolve` returns at least one address or an error.
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what} {target}: no address"))
    }))
}
