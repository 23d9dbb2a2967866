//! DKIM key pairs (RFC 6376, RFC 8463): making them and spelling their DNS records. Pure: the rows live
//! in `store::dkim`, the gRPC edge in `rpc::dkim`.
//!
//! ring signs with both algorithms but generates only ed25519 keys, so RSA keys come from mail-auth's
//! generator (the RustCrypto `rsa` crate, used for nothing else: signing is ring's everywhere).

use std::fmt;

use base64::Engine;
use mail_auth::dkim::generate::DkimKeyPair;

/// RFC 8301 §3.2: at least 1024 bits, 2048 recommended; what every major receiver expects today.
const RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    /// The name in the `dkim_keys.algorithm` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }

    pub fn from_column(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(Algorithm::Ed25519),
            "rsa" => Some(Algorithm::Rsa),
            _ => None,
        }
    }

    /// The selector a generated key gets when the operator names none: `ed-20260102`, `rsa-20260102`.
    pub fn default_selector(self, today: chrono::NaiveDate) -> String {
        let prefix = if self == Algorithm::Ed25519 { "ed" } else { "rsa" };
        format!("{prefix}-{}", today.format("%Y%m%d"))
    }
}

/// A key's private half. Its `Debug` hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Vec<u8>);

impl PrivateKey {
    pub fn new(der: Vec<u8>) -> Self {
        PrivateKey(der)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

#[derive(Debug)]
pub struct KeyPair {
    /// PKCS#8 DER (ed25519) or PKCS#1 DER (RSA), the forms mail-auth's signers load.
    pub private: PrivateKey,
    /// What the record's `p=` carries: the raw 32 octets (RFC 8463 §4.2) or SubjectPublicKeyInfo DER.
    pub public: Vec<u8>,
}

/// Makes a new key pair. RSA takes a second or so: call it off the async threads.
pub fn generate(algorithm: Algorithm) -> Result<KeyPair, String> {
    let pair = match algorithm {
        Algorithm::Ed25519 => DkimKeyPair::generate_ed25519(),
        Algorithm::Rsa => DkimKeyPair::generate_rsa(RSA_BITS),
    }
    .map_err(|e| e.to_string())?;
    let (private, public) = pair.into_inner();
    let public = match algorithm {
        Algorithm::Ed25519 => public,
        Algorithm::Rsa => rsa_spki(&public),
    };
    Ok(KeyPair { private: PrivateKey::new(private), public })
}

/// The TXT record's value, RFC 6376 §3.6.1 (RFC 8463 §4.2 for `k=ed25519`).
pub fn dns_value(algorithm: Algorithm, public: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode(public);
    let k = if algorithm == Algorithm::Ed25519 { "ed25519" } else { "rsa" };
    format!("v=DKIM1; k={k}; p={key}")
}

/// The TXT record's name, RFC 6376 §3.6.2.1.
pub fn dns_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// A selector as the operator typed it, lowercased, if it is one: dot-separated DNS labels of letters,
/// digits and inner hyphens (RFC 6376 §3.1). The `dkim_keys` table checks the same.
pub fn selector(given: &str) -> Option<String> {
    let lower = given.to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (lower.len() <= 200 && lower.split('.').all(label_ok)).then_some(lower)
}

/// RFC 6376 §3.6.1 asks for the key "in ASN.1 DER"; receivers (dkimpy, OpenDKIM) expect the
/// SubjectPublicKeyInfo that `openssl rsa -pubout` writes, so the PKCS#1 key is wrapped in one:
/// SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { 0 unused bits, RSAPublicKey } }.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ENCRYPTION: &[u8] =
        &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = RSA_ENCRYPTION.to_vec();
    body.extend(der(0x03, &bit_string));
    der(0x30, &body)
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_record_carries_the_raw_32_octet_key() {
        let pair = generate(Algorithm::Ed25519).unwrap();
        assert_eq!(pair.public.len(), 32);
        let value = dns_value(Algorithm::Ed25519, &pair.public);
        assert!(value.starts_with("v=DKIM1; k=ed25519; p="), "{value}");
        assert!(!format!("{pair:?}").contains(&format!("{:?}", &pair.private.expose()[..8])));
    }

    #[test]
    fn an_rsa_key_is_2048_bits_and_published_as_subject_public_key_info() {
        let pair = generate(Algorithm::Rsa).unwrap();
        // SEQUENCE (long form, 2 length octets), then the rsaEncryption algorithm identifier.
        assert_eq!(&pair.public[..2], &[0x30, 0x82]);
        assert_eq!(
            &pair.public[4..19],
            &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]
        );
        // 2048-bit modulus: a 294-octet SubjectPublicKeyInfo, as `openssl rsa -pubout` writes.
        assert_eq!(pair.public.len(), 294);
        assert!(
            dns_value(Algorithm::Rsa, &pair.public).starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A")
        );
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert_eq!(selector("Mail2026").as_deref(), Some("mail2026"));
        assert_eq!(selector("a.b-c").as_deref(), Some("a.b-c"));
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", "é"] {
            assert_eq!(selector(bad), None, "{bad:?}");
        }
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(Algorithm::Rsa.default_selector(day), "rsa-20260102");
    }
}
