//! The `aisocial` binary: parse the command line, then serve, migrate or moderate.

use aisocial::config::{Cli, Command, LogFormat, Settings, parse_database_url};
use aisocial::startup::Application;
use aisocial::{database, telemetry};
use anyhow::Context;
use clap::Parser;

/// mimalloc: fewer cycles per allocation than glibc's under many small, cross-thread frees.
/// Built without transparent huge pages (`no_thp`): with them, every idle websocket cost 8 KiB
/// more resident memory (21.3 vs 12.6 KiB per connection; see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    actix_rt::System::new().block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(args) if args.check => {
            telemetry::init(LogFormat::Text);
            let (config, display) = parse_database_url(&args.database.database_url)?;
            let check = database::check_schema(&config).await?;
            if check.matches() {
                println!("{display}: the schema matches this binary's migrations");
                return Ok(());
            }
            for (what, list) in [
                ("pending (this binary is newer)", &check.pending),
                (
                    "unknown to this binary (the database is newer)",
                    &check.unknown,
                ),
                ("changed since they were applied", &check.changed),
            ] {
                if !list.is_empty() {
                    println!("{display}: {what}: {}", list.join(", "));
                }
            }
            std::process::exit(1);
        }
        Command::Migrate(args) => {
            telemetry::init(LogFormat::Text);
            let (config, display) = parse_database_url(&args.database.database_url)?;
            database::ensure_database(&config).await?;
            let applied = database::migrate(&config).await?;
            println!("{display}: {applied} migration(s) applied; the schema is current");
            Ok(())
        }
        Command::Admin(args) => {
            telemetry::init(LogFormat::Text);
            let (config, _) = parse_database_url(&args.database.database_url)?;
            let said = aisocial::admin_cli::run(args.action, config)
                .await
                .context("the admin command failed")?;
            println!("{said}");
            Ok(())
        }
        Command::Serve(args) => {
            telemetry::init(args.log_format);
            let settings = Settings::from_args(*args).context("invalid configuration")?;
            telemetry::set_node(&settings.node_id);
            let app = Application::build(settings).await?;
            if let Some(certificates) = app.certificates() {
                reload_on_hangup(certificates)?;
            }
            app.run_until_stopped(shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Re-reads the TLS certificate and key on every SIGHUP; a failed reload keeps serving the
/// previous certificate (the error is logged and counted by `reload`). The handler is in place
/// when this returns.
fn reload_on_hangup(
    certificates: std::sync::Arc<aisocial::tls::Certificates>,
) -> anyhow::Result<()> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("listening for SIGHUP (certificate reloads)")?;
    actix_rt::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the TLS certificate");
            let _ = certificates.reload();
        }
    });
    Ok(())
}
