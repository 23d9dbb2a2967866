use crate::TlsError;

/// A certificate and key in PEM, e.g. freshly generated.
pub struct CertifiedKeyPem {
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKeyPem").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// Self-signed certificate for these DNS names (and 127.0.0.1 / ::1 as IP SANs), for `mailbus dev` and
/// tests. The key is ECDSA P-256.
pub fn self_signed(names: &[String]) -> Result<CertifiedKeyPem, TlsError> {
    let mut sans = names.to_vec();
    for ip in ["127.0.0.1", "::1"] {
        if !sans.iter().any(|name| name == ip) {
            sans.push(ip.to_owned());
        }
    }
    // rcgen turns names that parse as IP addresses into IP SANs, the rest into DNS SANs.
    let mut params = rcgen::CertificateParams::new(sans)?;
    // Clients match names against the SANs only (RFC 6125 §6.4.4). The CN is for people, and keeps two
    // generated certificates from sharing a subject: a client trusting the other one then reports an
    // unknown issuer instead of a bad signature.
    let subject = names.first().map_or("mailbus self-signed", String::as_str);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, subject);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKeyPem { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_certificate_and_a_pkcs8_key() {
        let pem = self_signed(&["mx.example.test".to_owned()]).unwrap();
        assert!(pem.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", pem.cert_pem);
        assert!(pem.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(!format!("{pem:?}").contains("PRIVATE KEY"), "Debug must not show the key");
    }

    #[test]
    fn an_invalid_name_is_an_error() {
        let error = self_signed(&["bücher.example".to_owned()]).unwrap_err();
        assert!(matches!(error, TlsError::Generate(_)), "{error}");
    }
}
