use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {}: {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("parsing {what}{}: {source}", at(path))]
    Pem { what: &'static str, path: Option<PathBuf>, source: rustls_pki_types::pem::Error },
    #[error("no {what} found in PEM{}", at(path))]
    Missing { what: &'static str, path: Option<PathBuf> },
    #[error("private key{} does not belong to certificate{}", at(key), at(cert))]
    KeyMismatch { cert: Option<PathBuf>, key: Option<PathBuf> },
    #[error("certificate{} and private key{} rejected: {source}", at(cert), at(key))]
    Rejected { cert: Option<PathBuf>, key: Option<PathBuf>, source: rustls::Error },
    #[error("generating self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("trusting certificate: {0}")]
    Trust(rustls::Error),
}

/// " /x/y.pem" for a file, nothing for PEM given in memory.
fn at(path: &Option<PathBuf>) -> String {
    path.as_deref().map(Path::display).map(|path| format!(" {path}")).unwrap_or_default()
}
