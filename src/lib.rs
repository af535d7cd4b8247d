//! aisocial's server: configuration, start-up, HTTP routes and the websocket handshake. The
//! actors themselves live in the `aisocial-actors` crate.
//!
//! # Layout
//! - [`config`]: the command line and every setting, checked into [`config::Settings`].
//! - [`startup`]: [`startup::Application`] builds everything and runs until stopped, then drains.
//! - [`routes`]: one module per resource; [`problem`] is the single error format.
//! - [`auth`]: our access tokens and the `AuthUser` extractor.
//! - [`database`], [`redis_store`]: connections, migrations, readiness checks.
//! - [`request_context`], [`telemetry`], [`system`]: request ids, logs, metrics, host facts.

pub mod auth;
pub mod config;
pub mod cursor;
pub mod database;
pub mod problem;
pub mod redis_store;
pub mod request_context;
pub mod routes;
pub mod startup;
pub mod state;
pub mod system;
pub mod telemetry;
