//! The hyper side of the `http` example, shared with `tests/http_hyper.rs`: the service
//! (runtime-neutral), the glue hyper 1.x needs to run on iocore (an [`Executor`], a
//! [`Timer`]; the IO is `hyper_util::rt::TokioIo` over an iocore `TcpStream`, which
//! implements tokio's IO traits with the `tokio` feature) and the accept loops of both
//! runtimes.

use crate::log_limit::LogLimit;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::rt::{Executor, Sleep, Timer};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The default limit of a request body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// What the service may fail with (a body that could not be read).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The service: `GET /` says hello, `POST /echo` returns the request body, anything else
/// is a 404. A body over `max_body` bytes gets 413 Payload Too Large, at once when its
/// `Content-Length` says so, else once that much has arrived (then the connection closes:
/// the rest of the body is not read).
pub async fn handle(req: Request<Incoming>, max_body: usize) -> Result<Response<Full<Bytes>>, Error> {
    let reply = |status: StatusCode, body: Bytes| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Full::new(body))
            .expect("a valid response")
    };
    let too_large = || {
        let mut resp = reply(StatusCode::PAYLOAD_TOO_LARGE, Bytes::from_static(b"request body too large\n"));
        resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        resp
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body as u64) {
        return Ok(too_large());
    }
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => reply(StatusCode::OK, Bytes::from_static(b"Hello, World!")),
        (&Method::POST, "/echo") => match Limited::new(req.into_body(), max_body).collect().await {
            Ok(body) => reply(StatusCode::OK, body.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => too_large(),
            Err(e) => return Err(e),
        },
        _ => reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    })
}

/// `hyper::rt::Executor` on iocore: futures hyper (or anyone generic over `Executor`)
/// hands over become iocore tasks.
#[derive(Clone, Debug)]
pub struct IoCoreExecutor(iocore::Handle);

impl IoCoreExecutor {
    /// An executor spawning on the current core.
    ///
    /// # Panics
    /// Outside a core (inside a task or `IoCore::block_on` is fine).
    pub fn current() -> Self {
        IoCoreExecutor(iocore::Handle::current())
    }
}

impl<F> Executor<F> for IoCoreExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        drop(self.0.spawn(future)); // detached
    }
}

/// `hyper::rt::Timer` on iocore: hyper's timeouts (e.g. `header_read_timeout`) become
/// iocore sleeps, i.e. deadlines of the connection's task.
#[derive(Clone, Copy, Debug, Default)]
pub struct IoCoreTimer;

/// An `iocore::time::Sleep` as a `hyper::rt::Sleep` (which must be `Send + Sync`; iocore's
/// `Sleep` is, and `Unpin` too).
struct IoCoreSleep(iocore::time::Sleep);

impl Future for IoCoreSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Sleep for IoCoreSleep {}

impl Timer for IoCoreTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(IoCoreSleep(iocore::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(IoCoreSleep(iocore::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<IoCoreSleep>() {
            Some(ours) => ours.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The HTTP/1.1 connection settings, with the iocore timer (hyper's default 30 s header
/// read timeout needs one).
pub fn http1() -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(IoCoreTimer).keep_alive(true);
    http
}

/// Serves `listener` forever on iocore: one task per connection; request bodies over
/// `max_body` bytes get 413.
pub async fn serve(
    listener: iocore::net::TcpListener,
    http: http1::Builder,
    max_body: usize,
) -> io::Result<()> {
    let exec = IoCoreExecutor::current();
    // Out of file descriptors and the like: the listener backs off by itself; log at most
    // once a second.
    let mut accept_errors = LogLimit::default();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                accept_errors.log("accept", e);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), service_fn(move |req| handle(req, max_body)));
        exec.execute(async move {
            if let Err(e) = conn.await {
                log_conn_error(&e);
            }
        });
    }
}

/// The same service on tokio (for side-by-side measurement), with the same settings and
/// tokio's timer.
#[allow(dead_code)] // the integration test uses only the iocore side
pub async fn serve_tokio(listener: tokio::net::TcpListener, max_body: usize) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(stream), service_fn(move |req| handle(req, max_body)));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log_conn_error(&e);
            }
        });
    }
}

/// Connection errors worth a line: not clients that hang up mid-request (load generators
/// do that at the end of every run) or miss the header timeout.
fn log_conn_error(e: &hyper::Error) {
    if !(e.is_incomplete_message() || e.is_timeout() || e.is_canceled()) {
        eprintln!("connection: {e}");
    }
}
