//! The iocore side of the kv server: one task per connection, replies through `post_send`.

use crate::resp::{Conn, Store};
use iocore::net::{PostError, TcpListener};
use std::sync::Arc;

/// Serves connections from `listener` forever (accept errors are logged and retried).
pub async fn serve(listener: TcpListener, store: Arc<Store>) -> std::io::Result<()> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                iocore::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let store = store.clone();
        iocore::spawn(async move {
            let sender = stream.sender();
            let mut conn = Conn::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match stream.recv(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                conn.input.extend_from_slice(&buf[..n]);
                let result = conn.process(&store);
                let mut reply = bytes::Bytes::from(std::mem::take(&mut conn.out));
                loop {
                    match sender.post_send(reply) {
                        Ok(()) => break,
                        Err(PostError::WouldExceed(back)) => {
                            reply = back;
                            sender.ready().await;
                        }
                        Err(PostError::Closed(_)) => return,
                    }
                }
                if result.is_err() {
                    // The error reply is queued; shutdown flushes it, then closes.
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        });
    }
}
