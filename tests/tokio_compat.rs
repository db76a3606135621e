//! The `tokio` feature: tokio's `AsyncRead`/`AsyncWrite` on iocore streams, so tokio-util
//! codecs run on iocore. Run with `cargo test --features tokio --test tokio_compat`.
#![cfg(feature = "tokio")]

use futures::{SinkExt, StreamExt};
use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Framed, LinesCodec};

#[test]
fn framed_lines_codec_round_trip() {
    let core = IoCore::builder().threads(2).build().unwrap();
    core.block_on(iocore::time::timeout(Duration::from_secs(20), async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = iocore::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut lines = Framed::new(stream, LinesCodec::new());
            while let Some(line) = lines.next().await {
                let line = line.unwrap();
                lines.send(line.to_uppercase()).await.unwrap();
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut lines = Framed::new(stream, LinesCodec::new());
        for i in 0..100 {
            lines.send(format!("line number {i}")).await.unwrap();
            assert_eq!(lines.next().await.unwrap().unwrap(), format!("LINE NUMBER {i}"));
        }
        drop(lines);
        server.await.unwrap();
    }))
    .expect("timed out");
}

#[test]
fn tokio_read_exact_write_all_and_shutdown() {
    let core = IoCore::builder().threads(1).build().unwrap();
    core.block_on(iocore::time::timeout(Duration::from_secs(20), async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = iocore::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            AsyncReadExt::read_to_end(&mut stream, &mut all).await.unwrap();
            all
        });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        AsyncWriteExt::write_all(&mut stream, &data).await.unwrap();
        AsyncWriteExt::shutdown(&mut stream).await.unwrap();
        assert_eq!(server.await.unwrap(), data);
    }))
    .expect("timed out");
}
