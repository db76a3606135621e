//! The iocore side of the kv server: one task per connection, replies through `post_send`.

use crate::log_limit::LogLimit;
use crate::resp::{Conn, Limits, Status, Store};
use futures::future::FutureExt;
use futures::select;
use iocore::net::{TcpListener, TcpStream};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// How long a connection may stay idle by default (5 minutes).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The settings of a kv server.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Protocol limits (bulk length, arguments, query buffer).
    pub limits: Limits,
    /// Connections that send nothing for this long are closed (`None`: never), like
    /// Redis's `timeout`. A connection waiting for its client to read replies is not idle.
    pub idle_timeout: Option<Duration>,
    /// Reply bytes a connection may have queued (its `post_send` high-water mark): at the
    /// mark the server stops executing that client's commands (and reading its socket)
    /// until the client has read enough of its replies.
    pub reply_queue: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::DEFAULT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            reply_queue: iocore::net::DEFAULT_HIGH_WATER,
        }
    }
}

/// What the server has observed, for tests and monitoring.
#[derive(Debug, Default)]
pub struct Stats {
    max_queued: AtomicUsize,
    idle_closed: AtomicUsize,
}

impl Stats {
    /// The most reply bytes seen queued on one connection (sampled after each post).
    pub fn max_queued(&self) -> usize {
        self.max_queued.load(Relaxed)
    }

    /// Connections closed for being idle longer than the idle timeout.
    pub fn idle_closed(&self) -> usize {
        self.idle_closed.load(Relaxed)
    }
}

/// A kv server: its store, settings and counters, shared by its connections.
#[derive(Default)]
pub struct Server {
    /// The keys and values.
    pub store: Store,
    /// Limits and sizes.
    pub config: Config,
    /// Counters.
    pub stats: Stats,
}

impl Server {
    /// A server with an empty store and `config`.
    pub fn new(config: Config) -> Arc<Server> {
        Arc::new(Server { config, ..Server::default() })
    }
}

/// Serves connections from `listener` forever (accept errors are logged and retried).
#[allow(dead_code)] // the entry point of the tests; `main` uses `serve_until`
pub async fn serve(listener: TcpListener, server: Arc<Server>) -> std::io::Result<()> {
    serve_until(listener, server, std::future::pending::<()>().shared()).await
}

/// Serves connections until `stopping` completes: then stops accepting, and each connection
/// closes once the requests it has read are answered.
pub async fn serve_until<S>(listener: TcpListener, server: Arc<Server>, stopping: S) -> std::io::Result<()>
where
    S: Future + Clone + Unpin + Send + 'static,
{
    // Accept errors (out of fds, ...): the listener backs off by itself; log them at most
    // once a second.
    let mut accept_errors = LogLimit::default();
    loop {
        let (stream, _) = select! {
            conn = listener.accept().fuse() => match conn {
                Ok(c) => c,
                Err(e) => {
                    accept_errors.log("accept", e);
                    continue;
                }
            },
            _ = stopping.clone().fuse() => return Ok(()),
        };
        iocore::spawn(connection(stream, server.clone(), stopping.clone()));
    }
}

/// Serves one client until it closes, breaks the protocol, or the server stops.
async fn connection<S>(stream: TcpStream, server: Arc<Server>, stopping: S)
where
    S: Future + Clone + Unpin,
{
    stream.set_post_high_water(server.config.reply_queue);
    let sender = stream.sender();
    let mut conn = Conn::new(server.config.limits);
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = async {
            match server.config.idle_timeout {
                Some(limit) => iocore::time::timeout(limit, stream.recv(&mut buf)).await.ok(),
                None => Some(stream.recv(&mut buf).await),
            }
        };
        let n = select! {
            r = read.fuse() => match r {
                Some(Ok(0) | Err(_)) => return,
                Some(Ok(n)) => n,
                None => {
                    server.stats.idle_closed.fetch_add(1, Relaxed);
                    break;
                }
            },
            _ = stopping.clone().fuse() => break,
        };
        conn.feed(&buf[..n]);
        // Executes what was read, one batch of replies at a time. `send` waits while the
        // queue is at its mark, so a client that does not read its replies stops its own
        // commands (and, as the socket is not read meanwhile, TCP stops the client): the
        // queue holds at most the mark plus one batch.
        let ok = loop {
            let status = conn.process(&server.store);
            if !conn.out.is_empty() {
                if sender.send(std::mem::take(&mut conn.out)).await.is_err() {
                    return;
                }
                server.stats.max_queued.fetch_max(sender.queued_bytes(), Relaxed);
            }
            match status {
                Ok(Status::NeedInput) => break true,
                Ok(Status::OutputFull) => {}
                Err(_) => break false,
            }
        };
        if !ok {
            break;
        }
    }
    // Stopping, idle, or a protocol error (its reply is queued): shutdown flushes what is
    // queued, then closes.
    let _ = stream.shutdown().await;
}
