//! TLS on iocore with `futures-rustls` (rustls, ring provider) over iocore's futures-io
//! streams: a TLS echo server and its clients in one process, with a self-signed
//! certificate generated at startup by rcgen. A trusting client exchanges a few messages
//! and a 1 MiB round trip; a client that does not trust the certificate is refused.
//!
//! Run: `cargo run --release --example tls_echo`

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::{TlsAcceptor, TlsConnector};
use iocore::net::{TcpListener, TcpStream};
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const CLIENTS: usize = 2;

fn main() -> Result<()> {
    // The certificate and key, made now: nothing is read from disk.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    println!("generated a self-signed certificate for \"localhost\" ({} bytes DER)", cert.len());

    // ring, chosen explicitly (rustls is built without aws-lc-rs here).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let trusting = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let untrusting = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();

    let core = iocore::IoCore::builder().threads(2).build()?;
    core.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("TLS echo server on {addr}");
        let server = iocore::spawn(serve(listener, TlsAcceptor::from(Arc::new(server_config))));

        trusting_client(addr, TlsConnector::from(Arc::new(trusting))).await?;
        untrusting_client(addr, TlsConnector::from(Arc::new(untrusting))).await?;

        server.await.map_err(|e| format!("server task: {e}"))?
    })
}

/// Accepts `CLIENTS` connections, each echoed by its own task until the client closes.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> Result<()> {
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        let (stream, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        conns.push(iocore::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(e) => return println!("server: handshake with {peer} failed: {e}"),
            };
            let (mut r, mut w) = tls.split();
            match futures::io::copy(&mut r, &mut w).await {
                Ok(n) => {
                    let _ = w.close().await; // close_notify, then FIN
                    println!("server: echoed {n} bytes to {peer}, closed");
                }
                Err(e) => println!("server: connection with {peer} failed: {e}"),
            }
        }));
    }
    for c in conns {
        c.await.map_err(|e| format!("connection task: {e}"))?;
    }
    Ok(())
}

async fn trusting_client(addr: SocketAddr, connector: TlsConnector) -> Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let mut tls = connector.connect(ServerName::try_from("localhost")?, stream).await?;
    let (_, session) = tls.get_ref();
    println!(
        "client: handshake done: {:?}, {:?}",
        session.protocol_version().ok_or("no protocol version")?,
        session.negotiated_cipher_suite().ok_or("no cipher suite")?.suite()
    );

    for msg in ["hello over TLS", "on iocore", "with futures-rustls"] {
        tls.write_all(msg.as_bytes()).await?;
        tls.flush().await?;
        let mut back = vec![0u8; msg.len()];
        tls.read_exact(&mut back).await?;
        println!("client: sent {msg:?}, got back {:?}", String::from_utf8_lossy(&back));
    }

    // 1 MiB both ways at once: send it all while reading the echo.
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let start = Instant::now();
    let (mut r, mut w) = tls.split();
    let send = async {
        w.write_all(&data).await?;
        w.close().await // close_notify, then FIN
    };
    let mut echoed = Vec::with_capacity(data.len());
    let (sent, received) = futures::join!(send, r.read_to_end(&mut echoed));
    sent?;
    received?;
    let took = start.elapsed();
    if echoed[..] != data[..] {
        return Err("the 1 MiB echo came back different".into());
    }
    // The three messages above came back already; only the 1 MiB is left in `echoed`.
    println!(
        "client: 1 MiB echoed and verified in {:.1} ms ({:.0} MiB/s each way)",
        took.as_secs_f64() * 1e3,
        1.0 / took.as_secs_f64()
    );
    Ok(())
}

async fn untrusting_client(addr: SocketAddr, connector: TlsConnector) -> Result<()> {
    let stream = TcpStream::connect(addr).await?;
    match connector.connect(ServerName::try_from("localhost")?, stream).await {
        Ok(_) => Err("a client without the certificate in its roots completed the handshake".into()),
        Err(e) => {
            println!("untrusting client: handshake refused as expected: {e}");
            Ok(())
        }
    }
}
