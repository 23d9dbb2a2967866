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
