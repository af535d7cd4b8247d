//! The DbWriter's group commit against one transaction per request: the same post-creating
//! work done both ways against one database, in one run, from the same number of concurrent
//! callers (`cargo bench -p aisocial-actors --bench db_writer -- --clients 200 --seconds 10`).
//!
//! It needs a PostgreSQL server (`--database-url`, default the local one, or `DATABASE_URL`):
//! it creates a fresh database there, applies the migrations of `migrations/`, and drops the
//! database at the end. Per mode it prints a text line and that mode's JSON line; then the
//! speedup, and the whole report (`{"scenario": "writer", "db_writer": …,
//! "transaction_per_request": …, "speedup": …}`) as the last line of stdout.
//!
//! Flags: `--clients N` (200), `--seconds N` per mode (10), `--pool N` connections for the
//! per-request mode (64), `--database-url URL` (a server; its path is ignored). Cargo's own
//! `--bench` flag marks a measurement; without it (`cargo test --all-targets`) the run is a
//! one-second smoke test with 8 callers unless `--clients`/`--seconds` say otherwise.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Actor;
use aisocial_actors::committed::Committed;
use aisocial_actors::db_writer::{CreatePost, DbWriter, DbWriterConfig};
use aisocial_actors::ids::UserId;
use aisocial_actors::meter::{ActorMeter, Envelope, MeteredAddr};
use anyhow::Context;
use bb8_postgres::PostgresConnectionManager;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_postgres::NoTls;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The bench's flags.
struct Args {
    /// A PostgreSQL server; the bench's database is made there.
    server_url: String,
    /// Concurrent callers in each mode.
    clients: usize,
    /// Seconds per mode.
    seconds: u64,
    /// Pool size for the per-request mode.
    pool: u32,
}

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut args = Self {
            server_url: std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.into()),
            clients: 200,
            seconds: 10,
            pool: 64,
        };
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
        // it, as a smoke test: then a second with a few callers unless told otherwise.
        let mut benching = false;
        let mut sized = false;
        while let Some(flag) = argv.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (flag, None),
            };
            if name == "--bench" {
                benching = true;
                continue;
            }
            sized |= matches!(name.as_str(), "--clients" | "--seconds");
            let value = match inline {
                Some(value) => value,
                None => argv
                    .next()
                    .with_context(|| format!("{name} needs a value"))?,
            };
            match name.as_str() {
                "--database-url" => args.server_url = value,
                "--clients" => args.clients = value.parse().context("--clients")?,
                "--seconds" => args.seconds = value.parse().context("--seconds")?,
                "--pool" => args.pool = value.parse().context("--pool")?,
                other => anyhow::bail!(
                    "unknown flag {other} (known: --clients, --seconds, --pool, --database-url)"
                ),
            }
        }
        if !benching && !sized {
            args.clients = 8;
            args.seconds = 1;
        }
        anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
        Ok(args)
    }
}

/// Microsecond latencies from 1 µs to 60 s, 3 significant digits.
#[expect(clippy::expect_used, reason = "the bounds are valid constants")]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Latency {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// A duration in whole microseconds, at least 1 (HDR histograms start at 1).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[derive(Serialize, Default)]
struct ModeReport {
    mode: &'static str,
    clients: usize,
    seconds: f64,
    committed: u64,
    failed: u64,
    per_second: f64,
    latency: Latency,
}

/// Both modes (stdout also has one JSON line per mode).
#[derive(Serialize)]
struct Report {
    scenario: &'static str,
    db_writer: ModeReport,
    transaction_per_request: ModeReport,
    /// The DbWriter's commits per second over one transaction per request's.
    speedup: f64,
}

/// Swallows the DbWriter's announcements (there is no broker in this benchmark).
struct Sink;
impl Actor for Sink {
    type Context = actix::Context<Self>;
}
impl actix::Handler<Envelope<Committed>> for Sink {
    type Result = ();
    fn handle(&mut self, _: Envelope<Committed>, _: &mut Self::Context) {}
}

const PER_REQUEST: [&str; 4] = [
    "INSERT INTO posts (author_id, body) VALUES ($1, $2) RETURNING id, created_at",
    "UPDATE users SET posts_count = posts_count + 1 WHERE id = $1",
    "UPDATE event_counter SET last_id = last_id + 1 WHERE singleton RETURNING last_id",
    "INSERT INTO events (id, kind, author_id, payload) VALUES ($1, 'post.created', $2, $3)",
];

async fn per_request(
    pool: &bb8::Pool<PostgresConnectionManager<NoTls>>,
    author: i64,
    body: &str,
) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let row = tx.query_one(PER_REQUEST[0], &[&author, &body]).await?;
    let id: i64 = row.try_get(0)?;
    tx.execute(PER_REQUEST[1], &[&author]).await?;
    let event: i64 = tx.query_one(PER_REQUEST[2], &[]).await?.try_get(0)?;
    let payload = serde_json::json!({"id": id, "body": body});
    tx.execute(PER_REQUEST[3], &[&event, &author, &payload])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// `clients` callers calling `call(client, seq)` in a closed loop for `seconds`.
async fn drive<F, Fut>(mode: &'static str, clients: usize, seconds: u64, call: F) -> ModeReport
where
    F: Fn(usize, u64) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = bool> + 'static,
{
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    eprintln!("writer {mode}: {clients} callers for {seconds} s…");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (call, committed, failed) = (call.clone(), committed.clone(), failed.clone());
        tasks.push(actix_rt::spawn(async move {
            let mut h = histogram();
            let mut seq = 0;
            while Instant::now() < deadline {
                seq += 1;
                let t = Instant::now();
                if call(n, seq).await {
                    committed.fetch_add(1, Ordering::Relaxed);
                    let _ = h.record(micros(t.elapsed()));
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            h
        }));
    }
    let mut all = histogram();
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = all.add(&h);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let committed = committed.load(Ordering::Relaxed);
    ModeReport {
        mode,
        clients,
        seconds: elapsed,
        committed,
        failed: failed.load(Ordering::Relaxed),
        per_second: committed as f64 / elapsed,
        latency: latency(&all),
    }
}

/// A fresh database on the server of `server`, migrated; dropped with [`drop_database`].
async fn create_database(server: &tokio_postgres::Config) -> anyhow::Result<String> {
    let name = format!(
        "aisocial_bench_writer_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = admin_client(server).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("creating the database {name}"))?;
    let mut config = server.clone();
    config.dbname(&name);
    let (client, conn) = config.connect(NoTls).await?;
    actix_rt::spawn(conn);
    for (file, sql) in migrations()? {
        client
            .batch_execute(&format!("BEGIN; {sql}; COMMIT;"))
            .await
            .with_context(|| format!("applying {file}"))?;
    }
    Ok(name)
}

async fn drop_database(server: &tokio_postgres::Config, name: &str) -> anyhow::Result<()> {
    admin_client(server)
        .await?
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    Ok(())
}

/// A connection to the server's `postgres` database.
async fn admin_client(server: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let mut config = server.clone();
    config.dbname("postgres");
    let (client, conn) = config
        .connect(NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    actix_rt::spawn(conn);
    Ok(client)
}

/// The workspace's migrations (`V<n>__name.sql`), in version order.
fn migrations() -> anyhow::Result<Vec<(String, String)>> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&folder).with_context(|| format!("{}", folder.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .strip_prefix('V')
            .and_then(|rest| rest.split_once("__"))
            .and_then(|(v, _)| v.parse::<u32>().ok())
        else {
            continue;
        };
        let sql = std::fs::read_to_string(folder.join(&name))?;
        files.push((version, name, sql));
    }
    files.sort_by_key(|(version, _, _)| *version);
    Ok(files
        .into_iter()
        .map(|(_, name, sql)| (name, sql))
        .collect())
}

async fn bench(args: &Args, config: tokio_postgres::Config) -> anyhow::Result<Report> {
    let pool = bb8::Pool::builder()
        .max_size(args.pool)
        .build(PostgresConnectionManager::new(config.clone(), NoTls))
        .await?;
    // One author per client, as in real traffic (no artificial hot row).
    let authors: Arc<Vec<i64>> = {
        let conn = pool.get().await?;
        let mut ids = Vec::with_capacity(args.clients);
        for n in 0..args.clients {
            let handle = format!("bench_{n}");
            let id: i64 = conn
                .query_one(
                    "INSERT INTO users (handle, display_name) VALUES ($1, $1) RETURNING id",
                    &[&handle],
                )
                .await?
                .try_get(0)?;
            ids.push(id);
        }
        Arc::new(ids)
    };

    let sink = Sink.start();
    let writer = DbWriter::new(
        DbWriterConfig {
            max_queue: 100_000,
            ..DbWriterConfig::new(config)
        },
        MeteredAddr::new(sink, ActorMeter::new("bench_sink")).recipient(),
    )
    .start();
    let writer = MeteredAddr::new(writer, DbWriter::meter());
    let writer_authors = authors.clone();
    let batched = drive("db_writer", args.clients, args.seconds, move |n, seq| {
        let writer = writer.clone();
        let author = writer_authors[n];
        async move {
            let post = CreatePost {
                author: UserId(author),
                body: format!("bench post {n}-{seq}"),
                reply_to: None,
                idempotency_key: None,
            };
            matches!(writer.send(post).await, Ok(Ok(_)))
        }
    })
    .await;

    let pool = Arc::new(pool);
    let per_request_report = drive(
        "transaction_per_request",
        args.clients,
        args.seconds,
        move |n, seq| {
            let pool = pool.clone();
            let author = authors[n];
            async move {
                per_request(&pool, author, &format!("bench post {n}-{seq}"))
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    let speedup = batched.per_second / per_request_report.per_second.max(1e-9);
    Ok(Report {
        scenario: "writer",
        db_writer: batched,
        transaction_per_request: per_request_report,
        speedup,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let server: tokio_postgres::Config = args.server_url.parse().context("--database-url")?;
    let name = create_database(&server).await?;
    let mut config = server.clone();
    config.dbname(&name);
    let report = bench(&args, config).await;
    let dropped = drop_database(&server, &name).await;
    let report = report?;
    dropped.with_context(|| format!("dropping the database {name}"))?;
    for r in [&report.db_writer, &report.transaction_per_request] {
        println!(
            "writer: {:<24} {} clients, {:.1} s: {} committed ({:.0}/s), {} failed; p50 {:.1} ms, p99 {:.1} ms",
            r.mode,
            r.clients,
            r.seconds,
            r.committed,
            r.per_second,
            r.failed,
            r.latency.p50_ms,
            r.latency.p99_ms
        );
        println!("{}", serde_json::to_string(r)?);
    }
    println!(
        "writer: the DbWriter committed {:.1}x the posts per second of one transaction per request",
        report.speedup
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    actix_rt::System::new().block_on(run(args))
}
