//! TLS on iocore streams with `futures-rustls` (rustls, ring provider) over the futures-io
//! traits: a certificate generated with rcgen at test time, handshakes, a 1 MiB echo both
//! ways, and clients that must refuse the server (untrusted certificate, wrong name).

mod support;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use futures_rustls::{TlsAcceptor, TlsConnector};
use iocore::net::{TcpListener, TcpStream};
use iocore::IoCore;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use support::net::listener;
use support::{core, pattern};

const MIB: usize = 1 << 20;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `localhost` and its key.
fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    (ck.cert.der().clone(), key)
}

fn acceptor(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> TlsAcceptor {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A connector trusting exactly `roots`.
fn connector(roots: &[CertificateDer<'static>]) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn run<T>(core: &IoCore, test: impl Future<Output = T>) -> T {
    core.block_on(iocore::time::timeout(Duration::from_secs(60), test)).expect("test timed out")
}

/// A TLS echo server for one connection: the handshake's result, then (if it succeeded)
/// the number of bytes echoed until the client's close_notify.
fn serve_one(listener: TcpListener, acceptor: TlsAcceptor) -> iocore::JoinHandle<io::Result<u64>> {
    iocore::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let tls = acceptor.accept(stream).await?;
        let (mut r, mut w) = tls.split();
        let n = futures::io::copy(&mut r, &mut w).await?;
        w.close().await?;
        Ok(n)
    })
}

/// [`serve_one`] with `cert` and `key` on an ephemeral port, and a plain TCP stream
/// connected to it.
async fn serve_one_and_connect(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (iocore::JoinHandle<io::Result<u64>>, TcpStream) {
    let (l, addr) = listener().await;
    let server = serve_one(l, acceptor(cert, key));
    (server, TcpStream::connect(addr).await.unwrap())
}

#[test]
fn handshake_and_echo_1_mib_both_ways() {
    let core = core(2);
    let (cert, key) = self_signed();
    run(&core, async {
        let (server, stream) = serve_one_and_connect(cert.clone(), key).await;
        let tls = connector(&[cert])
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await
            .expect("handshake");
        let (_, session) = tls.get_ref();
        assert!(session.protocol_version().is_some());
        assert!(session.negotiated_cipher_suite().is_some());

        // Send and receive at once (neither side could buffer 1 MiB on its own).
        let sent = pattern(1, MIB);
        let (mut r, mut w) = tls.split();
        let write = async {
            for chunk in sent.chunks(16 * 1024 + 5) {
                w.write_all(chunk).await.unwrap();
            }
            w.close().await.unwrap(); // close_notify, then FIN
        };
        let read = async {
            let mut got = Vec::with_capacity(MIB);
            r.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = futures::join!(write, read);
        assert_eq!(got.len(), MIB);
        assert!(got == sent, "echoed data differs");
        assert_eq!(server.await.unwrap().unwrap(), MIB as u64);
    });
}

/// Many small round trips on one session, server and client tasks on different workers.
#[test]
fn small_messages_round_trip() {
    let core = core(2);
    let (cert, key) = self_signed();
    run(&core, async {
        let (server, stream) = serve_one_and_connect(cert.clone(), key).await;
        let mut tls =
            connector(&[cert]).connect(ServerName::try_from("localhost").unwrap(), stream).await.unwrap();
        let mut total = 0;
        for i in 0..200usize {
            let msg = format!("message {i} {}", "x".repeat(i));
            tls.write_all(msg.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            let mut back = vec![0u8; msg.len()];
            tls.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg.as_bytes());
            total += msg.len();
        }
        tls.close().await.unwrap();
        assert_eq!(server.await.unwrap().unwrap(), total as u64);
    });
}

/// A client expecting `name` and trusting `roots` must fail the handshake with an error
/// (no panic, no hang), and the server must see the failed handshake as an error too.
fn refused(roots: Vec<CertificateDer<'static>>, name: &'static str) -> (io::Error, io::Error) {
    let core = core(2);
    let (cert, key) = self_signed();
    run(&core, async {
        let (server, stream) = serve_one_and_connect(cert, key).await;
        let client = connector(&roots).connect(ServerName::try_from(name).unwrap(), stream).await;
        let Err(client_err) = client else { panic!("the client must refuse the handshake") };
        let server_err = server.await.expect("server task must not panic").expect_err("server handshake");
        (client_err, server_err)
    })
}

#[test]
fn untrusted_certificate_fails_the_handshake() {
    // Trusts a different self-signed certificate only.
    let (other, _) = self_signed();
    let (client, server) = refused(vec![other], "localhost");
    assert_eq!(client.kind(), io::ErrorKind::InvalidData, "{client}");
    assert!(client.to_string().contains("invalid peer certificate"), "{client}");
    // The client told the server why (a fatal alert).
    assert!(server.to_string().contains("alert"), "{server}");

    // Trusts nothing at all.
    let (client, server) = refused(Vec::new(), "localhost");
    assert_eq!(client.kind(), io::ErrorKind::InvalidData, "{client}");
    assert!(client.to_string().contains("UnknownIssuer"), "{client}");
    assert!(server.to_string().contains("alert"), "{server}");
}

#[test]
fn wrong_server_name_fails_the_handshake() {
    // The certificate is trusted but issued for `localhost`, not this name.
    let core = core(1);
    let (cert, key) = self_signed();
    run(&core, async {
        let (server, stream) = serve_one_and_connect(cert.clone(), key).await;
        let client = connector(&[cert]).connect(ServerName::try_from("example.com").unwrap(), stream).await;
        let Err(err) = client else { panic!("a wrong name must be refused") };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not valid for name"), "{err}");
        assert!(server.await.unwrap().is_err());
    });
}

/// Dropping the connection mid-session (no close_notify) is an error for the reader,
/// not a silent end of stream.
#[test]
fn truncation_without_close_notify_is_an_error() {
    let core = core(2);
    let (cert, key) = self_signed();
    run(&core, async {
        let (listener, addr) = listener().await;
        let acceptor = acceptor(cert.clone(), key);
        let server = iocore::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(stream).await.unwrap();
            tls.write_all(b"partial").await.unwrap();
            tls.flush().await.unwrap();
            // Drop the TLS session and the socket without close_notify.
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut tls =
            connector(&[cert]).connect(ServerName::try_from("localhost").unwrap(), stream).await.unwrap();
        server.await.unwrap();
        let mut got = Vec::new();
        let err = tls.read_to_end(&mut got).await.expect_err("truncation must be reported");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(got, b"partial");
    });
}
