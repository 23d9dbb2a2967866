use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::{TlsError, pem};

/// Server-side TLS of one process; cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A certificate chain (leaf first) and its PKCS#8, PKCS#1 or SEC1 key; a key that does not belong to
    /// the leaf certificate is refused here rather than at the first handshake.
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let chain = pem::certificates(cert_chain_pem.as_bytes(), None)?;
        let key = pem::private_key(key_pem.as_bytes(), None)?;
        Self::new(chain, key, None)
    }

    /// Like [`ServerTls::from_pem`], reading both files once, with errors that name the file.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
        };
        let chain = pem::certificates(&read("certificate", cert)?, Some(cert))?;
        let key_der = pem::private_key(&read("private key", key)?, Some(key))?;
        Self::new(chain, key_der, Some((cert, key)))
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        files: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        let cert = files.map(|(cert, _)| cert.to_path_buf());
        let key_path = files.map(|(_, key)| key.to_path_buf());
        // TLS 1.2 and 1.3 with rustls' safe defaults; no client certificates.
        let config = ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rejected { cert: cert.clone(), key: key_path.clone(), source })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch { cert: cert.clone(), key: key_path.clone() }
                }
                source => TlsError::Rejected { cert: cert.clone(), key: key_path.clone(), source },
            })?;
        Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// Runs the server handshake. It has no time limit of its own: the caller bounds it.
    pub async fn accept<IO: AsyncRead + AsyncWrite + Unpin>(&self, io: IO) -> std::io::Result<TlsStream<IO>> {
        self.acceptor.accept(io).await
    }
}

/// What a TLS session negotiated, for the Received: header (RFC 5321 §4.4, RFC 3848) and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// "TLSv1.3" or "TLSv1.2".
    pub version: String,
    /// As rustls names it, e.g. "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
}

/// The facts of a stream whose handshake has completed.
pub fn facts<IO>(stream: &TlsStream<IO>) -> TlsFacts {
    let (_, connection) = stream.get_ref();
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        // Neither is reachable once the handshake is done with safe-default versions.
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = match connection.negotiated_cipher_suite() {
        Some(suite) => suite.suite().as_str().map_or_else(|| format!("{:?}", suite.suite()), str::to_owned),
        None => "unknown".to_owned(),
    };
    TlsFacts { version, cipher }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use rustls::ClientConfig;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::{client_config_trusting, self_signed};

    pub(crate) fn localhost_pem() -> crate::CertifiedKeyPem {
        self_signed(&["localhost".to_owned()]).unwrap()
    }

    pub(crate) async fn connect(
        config: Arc<ClientConfig>,
        name: &str,
        io: DuplexStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<DuplexStream>> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        TlsConnector::from(config).connect(name, io).await
    }

    /// Handshakes both ends over an in-memory pipe and echoes a line each way.
    async fn handshake_and_echo(server: &ServerTls, client: Arc<ClientConfig>, name: &str) -> TlsFacts {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = server.clone();
        let serving = tokio::spawn(async move {
            let mut stream = server.accept(server_io).await.unwrap();
            let mut line = [0u8; 6];
            stream.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"ping\r\n");
            stream.write_all(b"pong\r\n").await.unwrap();
            stream.flush().await.unwrap();
            facts(&stream)
        });
        let mut client = connect(client, name, client_io).await.unwrap();
        client.write_all(b"ping\r\n").await.unwrap();
        client.flush().await.unwrap();
        let mut line = [0u8; 6];
        client.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"pong\r\n");
        serving.await.unwrap()
    }

    #[tokio::test]
    async fn a_client_trusting_the_self_signed_certificate_talks_tls13() {
        let pem = localhost_pem();
        let server = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let facts = handshake_and_echo(&server, client_config_trusting(&pem.cert_pem).unwrap(), "localhost").await;
        assert_eq!(facts.version, "TLSv1.3");
        assert!(facts.cipher.starts_with("TLS13_"), "{}", facts.cipher);
    }

    #[tokio::test]
    async fn the_loopback_addresses_are_in_the_certificate() {
        let pem = localhost_pem();
        let server = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        for ip in ["127.0.0.1", "::1"] {
            handshake_and_echo(&server, client_config_trusting(&pem.cert_pem).unwrap(), ip).await;
        }
    }

    #[tokio::test]
    async fn a_tls12_only_client_is_served() {
        let pem = localhost_pem();
        let server = ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(crate::pem::certificates(pem.cert_pem.as_bytes(), None).unwrap().remove(0)).unwrap();
        let client = ClientConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let facts = handshake_and_echo(&server, Arc::new(client), "localhost").await;
        assert_eq!(facts.version, "TLSv1.2");
        assert!(facts.cipher.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{}", facts.cipher);
    }

    fn certificate_error(error: &std::io::Error) -> Option<&rustls::CertificateError> {
        match error.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(why) => Some(why),
            _ => None,
        }
    }

    /// The client's handshake error; the server's side must fail too.
    async fn failed_handshake(server_pem: &crate::CertifiedKeyPem, trusted: &str, name: &str) -> std::io::Error {
        let server = ServerTls::from_pem(&server_pem.cert_pem, &server_pem.key_pem).unwrap();
        let (client_io, server_io) = tokio::io::duplex(4096);
        let serving = tokio::spawn(async move { server.accept(server_io).await.map(drop) });
        let client = connect(client_config_trusting(trusted).unwrap(), name, client_io).await;
        let served = serving.await.unwrap();
        assert!(served.is_err(), "the server must see the handshake fail");
        client.map(drop).unwrap_err()
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_certificate_fails_the_handshake() {
        // A different subject too, or webpki finds an anchor of the same name and reports BadSignature.
        let other = self_signed(&["stranger.test".to_owned()]).unwrap();
        let error = failed_handshake(&localhost_pem(), &other.cert_pem, "localhost").await;
        assert_eq!(certificate_error(&error), Some(&rustls::CertificateError::UnknownIssuer), "{error}");
    }

    #[tokio::test]
    async fn a_client_asking_for_another_name_fails_the_handshake() {
        let pem = localhost_pem();
        let error = failed_handshake(&pem, &pem.cert_pem, "mx.other.test").await;
        let why = certificate_error(&error);
        assert!(matches!(why, Some(rustls::CertificateError::NotValidForNameContext { .. })), "{error}");
    }

    #[tokio::test]
    async fn from_pem_files_reads_certificate_and_key() {
        let pem = localhost_pem();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pem.cert_pem).unwrap();
        std::fs::write(&key, &pem.key_pem).unwrap();
        let server = ServerTls::from_pem_files(&cert, &key).unwrap();
        handshake_and_echo(&server, client_config_trusting(&pem.cert_pem).unwrap(), "localhost").await;
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let pem = localhost_pem();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("missing-key.pem"));
        std::fs::write(&cert, &pem.cert_pem).unwrap();
        let error = ServerTls::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(&error, TlsError::Read { what: "private key", path, .. } if *path == key), "{error:?}");
        assert!(error.to_string().starts_with(&format!("reading private key {}: ", key.display())), "{error}");
    }

    #[test]
    fn garbage_pem_is_refused() {
        let pem = localhost_pem();
        let error = ServerTls::from_pem("not a certificate", &pem.key_pem).unwrap_err();
        assert!(matches!(error, TlsError::Missing { what: "certificate", path: None }), "{error:?}");
        assert_eq!(error.to_string(), "no certificate found in PEM");

        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let error = ServerTls::from_pem(broken, &pem.key_pem).unwrap_err();
        assert!(matches!(error, TlsError::Pem { what: "certificate", .. }), "{error:?}");

        // A PEM certificate is not a key: the key file names the problem.
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pem.cert_pem).unwrap();
        std::fs::write(&key, &pem.cert_pem).unwrap();
        let error = ServerTls::from_pem_files(&cert, &key).unwrap_err();
        assert_eq!(error.to_string(), format!("no private key found in PEM {}", key.display()));
    }

    #[test]
    fn a_certificate_whose_der_is_not_a_certificate_is_rejected() {
        let pem = localhost_pem();
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let error = ServerTls::from_pem(not_der, &pem.key_pem).unwrap_err();
        assert!(matches!(error, TlsError::Rejected { .. }), "{error:?}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let (one, two) = (localhost_pem(), localhost_pem());
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &one.cert_pem).unwrap();
        std::fs::write(&key, &two.key_pem).unwrap();
        let error = ServerTls::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error:?}");
        let expected = format!("private key {} does not belong to certificate {}", key.display(), cert.display());
        assert_eq!(error.to_string(), expected);
    }

    /// ring loads SEC1 ("EC PRIVATE KEY") keys too; this is the PKCS#8 key of a generated certificate with
    /// its inner ECPrivateKey taken out (RFC 5208 §5: version, algorithm, privateKey OCTET STRING).
    #[test]
    fn a_sec1_key_is_accepted() {
        let pem = localhost_pem();
        let pkcs8 = match crate::pem::private_key(pem.key_pem.as_bytes(), None).unwrap() {
            PrivateKeyDer::Pkcs8(key) => key.secret_pkcs8_der().to_vec(),
            other => panic!("expected PKCS#8, got {other:?}"),
        };
        let (_, body, _) = der_element(&pkcs8);
        let (_, _version, rest) = der_element(body);
        let (_, _algorithm, rest) = der_element(rest);
        let (tag, sec1, _) = der_element(rest);
        assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
        let sec1_pem = format!("-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n", base64(sec1));
        assert!(matches!(crate::pem::private_key(sec1_pem.as_bytes(), None), Ok(PrivateKeyDer::Sec1(_))));
        ServerTls::from_pem(&pem.cert_pem, &sec1_pem).unwrap();
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
            for i in 0..4 {
                let sextet = (n >> (18 - 6 * i)) & 0x3f;
                out.push(if i <= chunk.len() { char::from(ALPHABET[sextet as usize]) } else { '=' });
            }
        }
        out
    }

    /// Tag, content and what follows of the DER element at the start of `der` (definite lengths only).
    fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, header) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            (der[2..2 + n].iter().fold(0usize, |len, byte| len << 8 | *byte as usize), 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }
}
