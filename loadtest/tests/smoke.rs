//! Smoke tests: one short `fanout`, `connect` and `storm` run of the built load-test binary
//! against a real aisocial server started in-process on port 0, with a fresh database and
//! Redis prefix (both removed afterwards). Nothing is asserted beyond "it ran, exited well,
//! connected everyone, lost and duplicated nothing".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

use std::process::{Command, Output};

use aisocial::config::{Cli, Command as ServerCommand, Settings};
use aisocial::startup::Application;
use clap::Parser;
use tokio::sync::oneshot;

const SIGNING_KEY: &str = "smoke-signing-key-0123456789abcdef-0123456789";
const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

/// A running server with its own database; stopped, and the database dropped, on drop.
struct Server {
    url: String,
    db_name: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        drop_database_blocking(&self.db_name);
    }
}

async fn start_server() -> Server {
    start_server_with(&[], "http").await
}

/// A server started with `extra` flags, its URL in `scheme` (`https` when given a certificate).
async fn start_server_with(extra: &[String], scheme: &str) -> Server {
    aisocial::install_crypto_provider();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let db_name = format!("aisocial_test_{id}");
    let mut argv = vec![
        "aisocial".to_owned(),
        "serve".to_owned(),
        "--bind=127.0.0.1:0".to_owned(),
        format!("--database-url={PG_BASE}/{db_name}"),
        format!("--redis-prefix=aisocial-test:{id}:"),
        format!("--jwt-signing-key={SIGNING_KEY}"),
        format!("--node-id=smoke-{}", &id[..8]),
        "--auth-dev-login=true".to_owned(),
        "--workers=2".to_owned(),
        "--database-pool-size=4".to_owned(),
        "--shutdown-timeout-secs=5".to_owned(),
        "--rate-limit-auth-per-min=1000000".to_owned(),
        "--rate-limit-user-per-min=1000000".to_owned(),
        "--rate-limit-ip-per-min=10000000".to_owned(),
        "--rate-limit-ops-per-min=10000000".to_owned(),
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("server flags");
    let settings = match cli.command {
        ServerCommand::Serve(args) => Settings::from_args(*args).expect("settings"),
        ServerCommand::Migrate(_) | ServerCommand::Admin(_) => panic!("not serve"),
    };
    let app = Application::build(settings)
        .await
        .expect("the server did not start");
    let url = format!("{scheme}://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    actix_rt::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Server {
        url,
        db_name,
        stop: Some(stop),
    }
}

/// Removes the test database, whoever is still connected, on a thread and runtime of its own.
fn drop_database_blocking(db_name: &str) {
    let db_name = db_name.to_owned();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok((client, conn)) =
                tokio_postgres::connect(&format!("{PG_BASE}/postgres"), tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
                    ))
                    .await;
            }
        });
    })
    .join();
}

/// Runs the load-test binary with `args` (off the server's thread) and returns its output.
async fn run_loadtest(args: Vec<String>) -> Output {
    actix_rt::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_aisocial-loadtest"))
            .args(&args)
            .output()
    })
    .await
    .unwrap()
    .expect("the load-test binary did not run")
}

/// The JSON report (the last line of stdout that is a JSON object naming its scenario), after
/// checking the run exited well.
fn report_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .rev()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|report| report.get("scenario").is_some())
        .unwrap_or_else(|| panic!("no JSON report in stdout:\n{stdout}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

#[actix_rt::test]
async fn a_short_fanout_run_delivers_every_post_once() {
    let server = start_server().await;
    let mut args = strings(&[
        "fanout",
        "--followers",
        "20",
        "--authors",
        "5:2,all:1",
        "--rate",
        "10",
        "--seconds",
        "2",
        "--drain-secs",
        "2",
        "--url",
    ]);
    args.push(server.url.clone());
    let report = report_of(&run_loadtest(args).await);
    assert_eq!(report["scenario"], "fanout");
    assert!(report["posts"].as_u64().unwrap_or_default() > 0, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert_eq!(report["out_of_order"], 0, "{report}");
    drop(server);
}

#[actix_rt::test]
async fn a_short_connect_run_opens_every_session() {
    let server = start_server().await;
    let mut args = strings(&[
        "connect",
        "--connections",
        "50",
        "--processes",
        "1",
        "--rate",
        "200",
        "--hold",
        "1",
        "--url",
    ]);
    args.push(server.url.clone());
    let report = report_of(&run_loadtest(args).await);
    assert_eq!(report["scenario"], "connect");
    assert_eq!(report["opened"], 50, "{report}");
    assert_eq!(report["failures"], serde_json::json!({}), "{report}");
    drop(server);
}

#[actix_rt::test]
async fn a_short_connect_run_over_wss_opens_every_session() {
    let dir = std::env::temp_dir().join(format!("aisocial-smoke-tls-{}", uuid::Uuid::new_v4()));
    let out = dir.display().to_string();
    let made = run_loadtest(strings(&["tls-cert", "--out", &out])).await;
    assert!(made.status.success(), "tls-cert failed: {made:?}");
    let server = start_server_with(
        &[
            format!("--tls-cert-path={out}/cert.pem"),
            format!("--tls-key-path={out}/key.pem"),
        ],
        "https",
    )
    .await;
    let mut args = strings(&[
        "connect",
        "--connections",
        "50",
        "--processes",
        "1",
        "--rate",
        "200",
        "--hold",
        "1",
        "--ca",
        &format!("{out}/ca.pem"),
        "--url",
    ]);
    args.push(server.url.clone());
    let report = report_of(&run_loadtest(args).await);
    assert_eq!(report["scenario"], "connect");
    assert_eq!(report["opened"], 50, "{report}");
    assert_eq!(report["failures"], serde_json::json!({}), "{report}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn a_tiny_storm_connects_everyone_and_misses_nothing() {
    let server = start_server().await;
    let mut args = strings(&[
        "storm",
        "--users",
        "200",
        "--hold",
        "2",
        "--post-rate",
        "20",
        "--drain",
        "2",
        "--connect-deadline",
        "60",
        "--no-progress",
        "--url",
    ]);
    args.push(server.url.clone());
    args.push(format!("--database-url={PG_BASE}/{}", server.db_name));
    let report = report_of(&run_loadtest(args).await);
    assert_eq!(report["scenario"], "storm");
    assert_eq!(report["connected"], 200, "{report}");
    assert!(report["connected_within_seconds"].is_number(), "{report}");
    assert!(
        report["posts"]["acknowledged"].as_u64().unwrap_or_default() > 0,
        "{report}"
    );
    let resume = &report["resume"];
    assert_eq!(resume["checked"], true, "{report}");
    assert_eq!(resume["clients_checked"], 200, "{report}");
    assert!(
        resume["expected"].as_u64().unwrap_or_default() > 0,
        "{report}"
    );
    for zero in [
        "missing",
        "unexpected",
        "duplicated",
        "out_of_order",
        "resync_required",
    ] {
        assert_eq!(resume[zero], 0, "{zero}: {report}");
    }
    drop(server);
}
