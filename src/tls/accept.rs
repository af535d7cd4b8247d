//! The TLS handshake in front of the HTTP/1 service: a client that does not finish it within
//! the handshake timeout, or sends something that is not TLS, is dropped and counted.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix_http::Protocol;
use actix_http::error::DispatchError;
use actix_service::{ServiceFactory, fn_service};
use aisocial_actors::meter;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

static FAILURES: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    let failures = meter::labelled_counter(
        "aisocial_tls_handshake_failures_total",
        "TLS handshakes that failed, by reason: timeout (the client did not finish in time) or error (not TLS, no shared protocol, an alert).",
        &["reason"],
    );
    for reason in ["timeout", "error"] {
        failures.with_label_values(&[reason]);
    }
    failures
});

/// Makes the handshake metrics exist before the first failure.
pub(super) fn register_metrics() {
    LazyLock::force(&FAILURES);
}

/// Accepts a TCP connection as TLS, for the HTTP/1 service that follows (`and_then`).
pub fn acceptor(
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (TlsStream<TcpStream>, Protocol, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> + Clone {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    fn_service(move |io: TcpStream| {
        let acceptor = acceptor.clone();
        async move {
            let peer = io.peer_addr().ok();
            match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => Ok((tls, Protocol::Http1, peer)),
                Ok(Err(error)) => {
                    FAILURES.with_label_values(&["error"]).inc();
                    tracing::debug!(peer = ?peer, error = %error, "TLS handshake failed");
                    Err(DispatchError::Io(error))
                }
                Err(_) => {
                    FAILURES.with_label_values(&["timeout"]).inc();
                    tracing::debug!(peer = ?peer, "TLS handshake timed out");
                    Err(DispatchError::Io(std::io::ErrorKind::TimedOut.into()))
                }
            }
        }
    })
}
