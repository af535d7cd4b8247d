//! TLS termination: the listener speaks only https and wss when a certificate and key are
//! configured, and the certificate can be replaced while serving.
//!
//! - [`load`] reads and checks the PEM files; [`expiry`] reads the certificate's `notAfter`.
//! - [`Certificates`] holds the serving certificate in an [`ArcSwap`]: every handshake takes
//!   the one current at that moment, so [`Certificates::reload`] (on SIGHUP) changes what new
//!   connections see while every open connection keeps the session it has. A reload that
//!   fails keeps the old certificate.
//! - [`accept`] is the handshake in front of the HTTP/1 service, bounded by a timeout.

pub mod accept;
pub mod expiry;
pub mod load;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aisocial_actors::meter;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

pub use load::LoadError;

use crate::config::tls::TlsSettings;

static EXPIRY: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_tls_certificate_expiry_timestamp_seconds",
        "notAfter of the certificate being served, in seconds since the Unix epoch.",
    )
});

static RELOADS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    let reloads = meter::labelled_counter(
        "aisocial_tls_reloads_total",
        "Certificate reloads (SIGHUP), by result: ok, or failed (the old certificate stays).",
        &["result"],
    );
    for result in ["ok", "failed"] {
        reloads.with_label_values(&[result]);
    }
    reloads
});

/// The serving certificate, swapped whole on reload.
#[derive(Debug)]
pub struct Certificates {
    settings: TlsSettings,
    /// Read by every handshake, written only by a successful reload: a lock-free load keeps
    /// handshakes from ever waiting on a reload reading files.
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    /// Reads the certificate and key; fails (naming the file) when either is unusable.
    pub fn load(settings: TlsSettings) -> Result<Arc<Self>, LoadError> {
        let loaded = load::load(&settings.cert_path, &settings.key_path)?;
        EXPIRY.set(loaded.not_after);
        LazyLock::force(&RELOADS);
        accept::register_metrics();
        Ok(Arc::new(Self {
            settings,
            current: ArcSwap::new(loaded.key),
        }))
    }

    /// Reads the files again and serves the new certificate to new handshakes; on failure the
    /// current one stays, and the error is logged, counted and returned.
    pub fn reload(&self) -> Result<(), LoadError> {
        match load::load(&self.settings.cert_path, &self.settings.key_path) {
            Ok(loaded) => {
                self.current.store(loaded.key);
                EXPIRY.set(loaded.not_after);
                RELOADS.with_label_values(&["ok"]).inc();
                tracing::info!(
                    certificate = %self.settings.cert_path.display(),
                    not_after = loaded.not_after,
                    "TLS certificate reloaded"
                );
                Ok(())
            }
            Err(error) => {
                RELOADS.with_label_values(&["failed"]).inc();
                tracing::error!(
                    error = %error,
                    "TLS certificate reload failed; still serving the previous certificate"
                );
                Err(error)
            }
        }
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.settings.handshake_timeout
    }

    /// The server side of every connection: TLS 1.2 and 1.3 with the ring provider, no client
    /// certificates, ALPN `http/1.1` (the server speaks HTTP/1 only), the certificate from
    /// `self` at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
