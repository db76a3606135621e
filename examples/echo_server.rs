//! An echo server: every connection gets back what it sends.
//!
//! Run: `cargo run --release --example echo_server -- [PORT]` (default 7000), then e.g.
//! `nc 127.0.0.1 7000`. Stop it with Ctrl-C.

use iocore::net::TcpListener;
use iocore::IoCore;

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7000);
    let core = IoCore::new()?;
    core.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("echo server on {}", listener.local_addr()?);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Transient (e.g. out of fds): back off briefly and keep serving.
                    eprintln!("{e}");
                    iocore::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            iocore::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.recv(&mut buf).await {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Err(e) = stream.send_all(&buf[..n]).await {
                                eprintln!("{peer}: {e}");
                                break;
                            }
                        }
                        Err(e) => {
                            eprintln!("{peer}: {e}");
                            break;
                        }
                    }
                }
            });
        }
    })
}
