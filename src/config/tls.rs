//! Where the certificate and key are read from, checked at start-up.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, ServeArgs, bad};

/// Where the certificate and key are, and how long a client may take to complete a handshake.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub handshake_timeout: Duration,
}

pub(super) fn tls_settings(args: &ServeArgs) -> Result<Option<TlsSettings>, ConfigError> {
    // An empty value (`TLS_CERT_PATH=` in an env file) is the same as none.
    let given = |path: &Option<String>| {
        path.as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    };
    let (cert_path, key_path) = match (given(&args.tls_cert_path), given(&args.tls_key_path)) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(bad(
                "TLS_KEY_PATH",
                "is required with TLS_CERT_PATH (set both to serve TLS, or neither)",
            ));
        }
        (None, Some(_)) => {
            return Err(bad(
                "TLS_CERT_PATH",
                "is required with TLS_KEY_PATH (set both to serve TLS, or neither)",
            ));
        }
    };
    if !(100..=120_000).contains(&args.tls_handshake_timeout_ms) {
        return Err(bad(
            "TLS_HANDSHAKE_TIMEOUT_MS",
            "must be between 100 and 120000",
        ));
    }
    Ok(Some(TlsSettings {
        cert_path,
        key_path,
        handshake_timeout: Duration::from_millis(args.tls_handshake_timeout_ms),
    }))
}
