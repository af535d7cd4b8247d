//! `aisocial-loadtest`: load scenarios against a running aisocial node (or its database). It
//! is a client of the wire protocol only: it talks to the server through `aisocial-client`
//! and keeps the scenarios' own logic (schedules, accounting, reports). The DbWriter measured
//! in process is `cargo bench -p aisocial-actors --bench db_writer`.
//!
//! - `writes`: HTTP posts from many concurrent clients, acknowledged/s and latency.
//! - `fanout`: authors (one by default, or groups by audience with `--authors`), many followers
//!   online; deliveries, latency from the scheduled send, order, loss, late sends, memory per
//!   idle connection, CPU per delivery.
//! - `mixed`: a realistic social mix (reads ≈ 10× writes, follows, thread subscriptions,
//!   reconnects with `since`) for soak runs; per-window server health and p99, and the drift.
//! - `slow`: followers that stop reading; the server stays bounded and closes them with 1013,
//!   the other followers' p99 holds and they lose nothing.
//! - `connect`: ramp N authenticated websockets from several processes and source addresses,
//!   hold them; handshake latency, failures by cause, server memory per connection.
//! - `calibrate-server`: a bare actix-web-actors echo server to read those figures against;
//!   `calibrate` starts one and drives it with the same websocket client machinery.
//! - `ai`: the AiPool against the Gemini emulator: its overhead per request, the latency it
//!   adds to each streamed delta, and the upstream rate under overload against the budget.
//! - `storm`: N distinct users (a power-law follow graph) connect at once from several
//!   processes, honouring 503/429 `Retry-After`, and keep their sockets while authors post;
//!   connected within T, refusals, closes by code, resume exactness against PostgreSQL, and
//!   with `--kill-node` one of two nodes SIGKILLed under load.
//! - `tls-cert`: a throwaway CA and server certificate for a bench server speaking TLS;
//!   `connect --ca` then opens wss sessions.

mod ai;
mod calibrate;
mod connect;
mod fanout;
mod mixed;
mod prometheus;
mod report;
mod scenario;
mod slow;
mod storm;
mod tls;
mod writes;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aisocial-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// HTTP posts through the API.
    Writes(writes::Args),
    /// Authors posting to followers online (`--authors 10:10,all:1`): deliveries, latency,
    /// loss, order, late sends, memory per connection.
    Fanout(fanout::Args),
    /// A realistic read/write/reconnect mix for soak runs: per-window server health and p99,
    /// and their drift.
    Mixed(mixed::Args),
    /// Followers that stop reading: the server stays bounded, closes them with 1013, and the
    /// others do not notice.
    Slow(slow::Args),
    /// The AiPool against the Gemini emulator: overhead, delta latency, overload.
    Ai(ai::Args),
    /// Many idle websockets: handshake latency, failures, server memory per connection.
    Connect(connect::Args),
    /// (internal) One process of `connect`.
    #[command(hide = true)]
    ConnectWorker(connect::WorkerArgs),
    /// N users connecting at once and keeping their sockets while authors post: connected
    /// within T, refusals and retries, closes by code, resume exactness; `--kill-node` kills
    /// one of two nodes under load.
    Storm(storm::Args),
    /// (internal) One process of `storm`.
    #[command(hide = true)]
    StormWorker,
    /// A bare actix-web-actors echo server, the floor of `connect`'s figures.
    CalibrateServer(calibrate::Args),
    /// Websocket clients against a bare echo server started here: round trip, messages/s and
    /// CPU, what this machine can do at all.
    Calibrate(calibrate::ClientArgs),
    /// Writes a throwaway CA and a server certificate (for `TLS_CERT_PATH`/`TLS_KEY_PATH`, and
    /// `connect --ca`).
    TlsCert(tls::CertArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // reqwest is built without a TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.scenario {
        Scenario::Writes(args) => tokio::runtime::Runtime::new()?.block_on(writes::run(args)),
        Scenario::Fanout(args) => tokio::runtime::Runtime::new()?.block_on(fanout::run(args)),
        Scenario::Mixed(args) => tokio::runtime::Runtime::new()?.block_on(mixed::run(args)),
        Scenario::Slow(args) => tokio::runtime::Runtime::new()?.block_on(slow::run(args)),
        Scenario::Ai(args) => tokio::runtime::Runtime::new()?.block_on(ai::run(args)),
        Scenario::Connect(args) => tokio::runtime::Runtime::new()?.block_on(connect::run(args)),
        Scenario::ConnectWorker(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(connect::worker(args)),
        Scenario::Storm(args) => tokio::runtime::Runtime::new()?.block_on(storm::run(args)),
        Scenario::StormWorker => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(storm::worker()),
        Scenario::CalibrateServer(args) => actix_rt::System::new().block_on(calibrate::serve(args)),
        Scenario::Calibrate(args) => {
            tokio::runtime::Runtime::new()?.block_on(calibrate::calibrate(args))
        }
        Scenario::TlsCert(args) => tls::write_certificates(&args),
    }
}
