//! aisocial's server: configuration, start-up, HTTP routes and the websocket handshake. The
//! actors themselves live in the `aisocial-actors` crate.
//!
//! # Layout
//! - [`config`]: the command line and every setting, checked into [`config::Settings`].
//! - [`startup`]: [`startup::Application`] builds everything and runs until stopped, then drains.
//! - [`routes`]: one module per resource; [`problem`] is the single error format.
//! - [`auth`]: our access tokens and the `AuthUser` extractor.
//! - [`database`], [`redis_store`]: connections, migrations, readiness checks;
//!   [`writer_config`]: the DbWriter's settings.
//! - [`replicas`]: read replicas (lag, rotation, read-your-writes) and the fallback to the
//!   primary.
//! - [`revocation`], [`rate_limit`], [`client_ip`]: revoked sessions, shared rate limits, who
//!   the client is behind proxies.
//! - [`request_context`], [`telemetry`], [`system`]: request ids, logs, metrics, host facts.
//! - [`upgrade`]: websockets taken off the HTTP/1 connection, over plain TCP or TLS; [`tls`]:
//!   certificates (reloaded on SIGHUP) and the handshake.

pub mod admin_cli;
pub mod admission;
pub mod ai;
pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod config;
pub mod cursor;
pub mod database;
pub mod health;
pub mod lifecycle;
pub mod live;
pub mod middleware;
pub mod mute_expiry;
pub mod problem;
pub mod rate_limit;
pub mod readiness;
pub mod reads;
pub mod redis_store;
pub mod relay;
pub mod replicas;
pub mod request_context;
pub mod retention;
pub mod revocation;
pub mod routes;
pub mod startup;
pub mod system;
pub mod telemetry;
pub mod tls;
pub mod upgrade;

/// Installs the TLS crypto provider (ring) for outgoing HTTPS, once per process; reqwest is
/// built without a provider of its own and refuses to build a client before this.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
