use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use crate::{ServerTls, TlsFacts};

/// A connection that may be upgraded to TLS in place (STARTTLS, RFC 3207 / RFC 2595), or start in TLS
/// (465/993/995).
///
/// The upgrade must move the plain stream into the handshake and only gets `&mut self`, so the enum has
/// a third state, [`MaybeTls::Poisoned`], which it holds while the handshake runs and keeps if the
/// handshake fails: the plain stream is gone with the failed handshake, and every read or write on a
/// poisoned connection is an error. Callers build only `Plain` and `Tls`.
#[derive(Debug)]
pub enum MaybeTls<IO> {
    Plain(IO),
    Tls(Box<TlsStream<IO>>),
    /// During an upgrade and after a failed one; the caller closes the connection.
    Poisoned,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> MaybeTls<IO> {
    /// Runs the server handshake over a Plain stream; error if already TLS. On error the stream is
    /// unusable (caller closes).
    ///
    /// The caller must have flushed its STARTTLS reply and must drop any plaintext it buffered after
    /// the STARTTLS command (RFC 3207 §4.2), since it was not protected by TLS.
    pub async fn upgrade(&mut self, tls: &ServerTls) -> io::Result<TlsFacts> {
        let plain = match std::mem::replace(self, MaybeTls::Poisoned) {
            MaybeTls::Plain(plain) => plain,
            already => {
                *self = already;
                let why = if self.is_tls() { "connection is already TLS" } else { "connection is poisoned" };
                return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
            }
        };
        let stream = tls.accept(plain).await?;
        let facts = crate::facts(&stream);
        *self = MaybeTls::Tls(Box::new(stream));
        Ok(facts)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// What the TLS session negotiated; `None` before TLS.
    pub fn facts(&self) -> Option<TlsFacts> {
        match self {
            MaybeTls::Tls(stream) => Some(crate::facts(stream)),
            MaybeTls::Plain(_) | MaybeTls::Poisoned => None,
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection lost in a failed TLS upgrade")
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTls::Poisoned => Poll::Ready(Err(poisoned())),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Tls(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTls::Poisoned => Poll::Ready(Err(poisoned())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeTls::Poisoned => Poll::Ready(Err(poisoned())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(io) => io.is_write_vectored(),
            MaybeTls::Tls(io) => io.is_write_vectored(),
            MaybeTls::Poisoned => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_flush(cx),
            MaybeTls::Poisoned => Poll::Ready(Err(poisoned())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTls::Tls(io) => Pin::new(io).poll_shutdown(cx),
            // Nothing is left to shut down.
            MaybeTls::Poisoned => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::client_config_trusting;
    use crate::server::tests::{connect, localhost_pem};

    /// One line, read a byte at a time so nothing after it (a TLS record) is consumed.
    async fn read_line(io: &mut (impl AsyncRead + Unpin)) -> String {
        let mut line = Vec::new();
        while !line.ends_with(b"\n") {
            line.push(io.read_u8().await.unwrap());
        }
        String::from_utf8(line).unwrap()
    }

    /// Server half of a STARTTLS exchange: greeting, STARTTLS, "go ahead", handshake.
    async fn starttls_server(tls: &ServerTls, conn: &mut MaybeTls<tokio::io::DuplexStream>) -> io::Result<TlsFacts> {
        conn.write_all(b"220 ready\r\n").await?;
        assert_eq!(read_line(conn).await, "STARTTLS\r\n");
        conn.write_all(b"220 go ahead\r\n").await?;
        conn.flush().await?;
        conn.upgrade(tls).await
    }

    #[tokio::test]
    async fn starttls_after_a_plaintext_exchange_upgrades_in_place() {
        let pem = localhost_pem();
        let tls = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let (mut client_io, server_io) = tokio::io::duplex(4096);
        let serving = tokio::spawn(async move {
            let mut conn = MaybeTls::Plain(server_io);
            assert!(!conn.is_tls() && conn.facts().is_none());
            let facts = starttls_server(&tls, &mut conn).await.unwrap();
            assert_eq!(read_line(&mut conn).await, "EHLO client.test\r\n");
            conn.write_all(b"250 secure\r\n").await.unwrap();
            conn.flush().await.unwrap();
            assert!(conn.is_tls());
            assert_eq!(conn.facts(), Some(facts.clone()));
            let again = conn.upgrade(&tls).await.unwrap_err();
            assert_eq!(again.kind(), io::ErrorKind::InvalidInput);
            assert!(conn.is_tls(), "a refused second upgrade must keep the session");
            conn.write_all(b"221 bye\r\n").await.unwrap();
            conn.shutdown().await.unwrap();
            facts
        });
        assert_eq!(read_line(&mut client_io).await, "220 ready\r\n");
        client_io.write_all(b"STARTTLS\r\n").await.unwrap();
        assert_eq!(read_line(&mut client_io).await, "220 go ahead\r\n");
        let mut client = connect(client_config_trusting(&pem.cert_pem).unwrap(), "localhost", client_io).await.unwrap();
        client.write_all(b"EHLO client.test\r\n").await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(read_line(&mut client).await, "250 secure\r\n");
        let mut rest = String::new();
        client.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "221 bye\r\n");
        let facts = serving.await.unwrap();
        assert_eq!(facts.version, "TLSv1.3");
    }

    #[tokio::test]
    async fn a_failed_upgrade_leaves_a_connection_that_only_errors() {
        let pem = localhost_pem();
        let tls = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let stranger = crate::self_signed(&["stranger.test".to_owned()]).unwrap();
        let (mut client_io, server_io) = tokio::io::duplex(4096);
        let serving = tokio::spawn(async move {
            let mut conn = MaybeTls::Plain(server_io);
            assert!(starttls_server(&tls, &mut conn).await.is_err());
            assert!(!conn.is_tls() && conn.facts().is_none());
            let mut byte = [0u8; 1];
            assert_eq!(conn.read(&mut byte).await.unwrap_err().kind(), io::ErrorKind::NotConnected);
            assert!(conn.write_all(b"x").await.is_err());
            assert!(conn.upgrade(&tls).await.is_err());
        });
        assert_eq!(read_line(&mut client_io).await, "220 ready\r\n");
        client_io.write_all(b"STARTTLS\r\n").await.unwrap();
        assert_eq!(read_line(&mut client_io).await, "220 go ahead\r\n");
        let client = connect(client_config_trusting(&stranger.cert_pem).unwrap(), "localhost", client_io).await;
        assert!(client.is_err());
        serving.await.unwrap();
    }
}
