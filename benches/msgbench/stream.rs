//! The two socket calls the benchmark makes, as a trait, so that one connection loop serves
//! every runtime. Static dispatch onto each runtime's own calls: no adapter in the path.

use std::io;

pub(crate) trait BenchStream {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()>;
}

impl BenchStream for iocore::net::TcpStream {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        iocore::net::TcpStream::recv(self, buf).await
    }
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        iocore::net::TcpStream::send_all(self, buf).await
    }
}

impl BenchStream for tokio::net::TcpStream {
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::io::AsyncReadExt::read(self, buf).await
    }
    async fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, buf).await
    }
}
