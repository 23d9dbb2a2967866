//! PEM text to the DER types rustls takes, with errors that say which file was at fault.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// Every certificate in `pem`, leaf first; other sections (a key in the same file) are skipped.
pub(crate) fn certificates(pem: &[u8], path: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "certificate";
    let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|source| TlsError::Pem {
        what,
        path: path.map(Path::to_path_buf),
        source,
    })?;
    if chain.is_empty() {
        return Err(TlsError::Missing { what, path: path.map(Path::to_path_buf) });
    }
    Ok(chain)
}

/// The first PKCS#8, PKCS#1 or SEC1 private key in `pem`.
pub(crate) fn private_key(pem: &[u8], path: Option<&Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "private key";
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::Missing { what, path: path.map(Path::to_path_buf) },
        source => TlsError::Pem { what, path: path.map(Path::to_path_buf), source },
    })
}
