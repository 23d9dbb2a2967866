use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::{TlsError, pem};

/// For tests and for clients that must trust a self-signed server: a client config trusting exactly the
/// certificates in this PEM (and no public roots), offering TLS 1.2 and 1.3, without a client certificate.
pub fn client_config_trusting(cert_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates(cert_pem.as_bytes(), None)? {
        roots.add(cert).map_err(TlsError::Trust)?;
    }
    let config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Trust)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// For clients that authenticate a server by its name against the system's trusted roots (RFC 6125),
/// as a mail client does: the roots the platform keeps (Debian's `/etc/ssl/certs`). A root the
/// platform lists but rustls cannot parse is skipped; none at all is an error.
pub fn client_config_system_roots() -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Missing { what: "trusted root certificate in the system's store", path: None });
    }
    let config = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Trust)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// RFC 7435 opportunistic security, the way MTAs talk to each other by default (Postfix's
/// `smtp_tls_security_level = may`): encrypt when the peer offers STARTTLS, without authenticating its
/// certificate, because nothing says which name it should carry. Handshake signatures are still checked,
/// so the session key is bound to the key the peer presented. (DANE and MTA-STS would authenticate.)
pub fn opportunistic_client_config() -> Arc<ClientConfig> {
    let provider = crate::provider();
    let verifier = Arc::new(AnyCertificate { algorithms: provider.signature_verification_algorithms });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct AnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_trusted() {
        let error = client_config_trusting("hello").unwrap_err();
        assert!(matches!(error, TlsError::Missing { what: "certificate", .. }), "{error:?}");
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let error = client_config_trusting(not_der).unwrap_err();
        assert!(matches!(error, TlsError::Trust(_)), "{error:?}");
    }
}
