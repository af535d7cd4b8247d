//! `aisocial-loadtest`: load scenarios against a running aisocial node (or its database).
//!
//! - `writes`: HTTP posts from many concurrent clients, acknowledged/s and latency.
//! - `writer`: the DbWriter's group commit against one transaction per request through a pool,
//!   the same work each way, in one run.
//! - `fanout`: one author, many followers online; deliveries, latency from the scheduled send,
//!   order, loss, memory per idle connection, CPU per delivery.
//! - `connect`: ramp N authenticated websockets from several processes and source addresses,
//!   hold them; handshake latency, failures by cause, server memory per connection.
//! - `calibrate-server`: a bare actix-web-actors echo server to read those figures against.
//! - `ai`: the AiPool against the Gemini emulator: its overhead per request, the latency it
//!   adds to each streamed delta, and the upstream rate under overload against the budget.

mod ai;
mod calibrate;
mod client;
mod connect;
mod fanout;
mod report;
mod writer;
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
    /// The DbWriter against one transaction per request, straight to PostgreSQL.
    Writer(writer::Args),
    /// One author, many followers online: deliveries, latency, order, memory per connection.
    Fanout(fanout::Args),
    /// The AiPool against the Gemini emulator: overhead, delta latency, overload.
    Ai(ai::Args),
    /// Many idle websockets: handshake latency, failures, server memory per connection.
    Connect(connect::Args),
    /// (internal) One process of `connect`.
    #[command(hide = true)]
    ConnectWorker(connect::WorkerArgs),
    /// A bare actix-web-actors echo server, the floor of `connect`'s figures.
    CalibrateServer(calibrate::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // reqwest is built without a TLS provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.scenario {
        Scenario::Writes(args) => tokio::runtime::Runtime::new()?.block_on(writes::run(args)),
        Scenario::Writer(args) => actix_rt::System::new().block_on(writer::run(args)),
        Scenario::Fanout(args) => tokio::runtime::Runtime::new()?.block_on(fanout::run(args)),
        Scenario::Ai(args) => tokio::runtime::Runtime::new()?.block_on(ai::run(args)),
        Scenario::Connect(args) => tokio::runtime::Runtime::new()?.block_on(connect::run(args)),
        Scenario::ConnectWorker(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(connect::worker(args)),
        Scenario::CalibrateServer(args) => actix_rt::System::new().block_on(calibrate::serve(args)),
    }
}
