//! The iocore side of the kv server: one task per connection, replies through `post_send`.

use crate::resp::{Conn, Store};
use futures::future::FutureExt;
use futures::select;
use iocore::net::TcpListener;
use std::future::Future;
use std::sync::Arc;

/// Serves connections from `listener` forever (accept errors are logged and retried).
#[allow(dead_code)] // the entry point of tests/kv_redis_cli.rs; `main` uses `serve_until`
pub async fn serve(listener: TcpListener, store: Arc<Store>) -> std::io::Result<()> {
    serve_until(listener, store, std::future::pending::<()>().shared()).await
}

/// Serves connections until `stopping` completes: then stops accepting, and each connection
/// closes once the requests it has read are answered.
pub async fn serve_until<S>(listener: TcpListener, store: Arc<Store>, stopping: S) -> std::io::Result<()>
where
    S: Future + Clone + Unpin + Send + 'static,
{
    loop {
        let (stream, _) = select! {
            conn = listener.accept().fuse() => match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    iocore::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopping.clone().fuse() => return Ok(()),
        };
        let (store, stopping) = (store.clone(), stopping.clone());
        iocore::spawn(async move {
            let sender = stream.sender();
            let mut conn = Conn::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = select! {
                    r = stream.recv(&mut buf).fuse() => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    },
                    _ = stopping.clone().fuse() => break,
                };
                conn.input.extend_from_slice(&buf[..n]);
                let result = conn.process(&store);
                // Waits for room below the high-water mark, so a client that does not read
                // its replies cannot make the server buffer without bound.
                if sender.send(std::mem::take(&mut conn.out)).await.is_err() {
                    return;
                }
                if result.is_err() {
                    break;
                }
            }
            // Stopping, or a protocol error (its reply is queued): shutdown flushes what is
            // queued, then closes.
            let _ = stream.shutdown().await;
        });
    }
}
