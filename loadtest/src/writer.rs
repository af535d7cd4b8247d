//! `writer`: the same post-creating work done two ways against one database, in one run —
//! through the DbWriter (group commit: many commands, one transaction) and as one transaction
//! per request through a bb8 pool — from the same number of concurrent callers. Each mode has
//! its progress line and its series (`db_writer`, `transaction_per_request`); the summary's
//! metrics are `db_writer.*`, `transaction_per_request.*` and `speedup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Actor;
use aisocial_actors::committed::Committed;
use aisocial_actors::db_writer::{CreatePost, DbWriter, DbWriterConfig};
use aisocial_actors::ids::UserId;
use aisocial_actors::meter::{ActorMeter, MeteredAddr};
use anyhow::Context;
use bb8_postgres::PostgresConnectionManager;
use serde::Serialize;
use tokio_postgres::NoTls;

use crate::report::{self, Latency};

#[derive(clap::Args, Serialize)]
pub struct Args {
    /// A migrated aisocial database (`aisocial migrate`); posts are added to it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/aisocial_bench"
    )]
    #[serde(serialize_with = "report::redacted")]
    database_url: String,
    /// Concurrent callers in each mode.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Seconds per mode.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Pool size for the per-request mode.
    #[arg(long, default_value_t = 64)]
    pool: u32,
    #[command(flatten)]
    output: report::Output,
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

/// Both modes, for the summary and the reports (stdout keeps one JSON line per mode).
#[derive(Serialize, Default)]
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
impl actix::Handler<aisocial_actors::meter::Envelope<Committed>> for Sink {
    type Result = ();
    fn handle(&mut self, _: aisocial_actors::meter::Envelope<Committed>, _: &mut Self::Context) {}
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

async fn drive<F, Fut>(
    run: &mut report::Run,
    mode: &'static str,
    clients: usize,
    seconds: u64,
    call: F,
) -> ModeReport
where
    F: Fn(usize, u64) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = bool> + 'static,
{
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let series = run.recorder(mode);
    series.set_open(clients as i64);
    let progress = run.progress(
        &format!("writer {mode}"),
        "commits",
        Some(Duration::from_secs(seconds)),
        &series,
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (call, committed, failed, series) = (
            call.clone(),
            committed.clone(),
            failed.clone(),
            series.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let mut h = report::histogram();
            let mut seq = 0;
            while Instant::now() < deadline {
                seq += 1;
                let t = Instant::now();
                if call(n, seq).await {
                    committed.fetch_add(1, Ordering::Relaxed);
                    let micros = report::micros(t.elapsed());
                    let _ = h.record(micros);
                    series.ok(micros);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    series.error();
                }
            }
            h
        }));
    }
    let mut histogram = report::histogram();
    for task in tasks {
        if let Ok(h) = task.await {
            let _ = histogram.add(&h);
        }
    }
    progress.stop();
    let elapsed = started.elapsed().as_secs_f64();
    let committed = committed.load(Ordering::Relaxed);
    ModeReport {
        mode,
        clients,
        seconds: elapsed,
        committed,
        failed: failed.load(Ordering::Relaxed),
        per_second: committed as f64 / elapsed,
        latency: report::latency(&histogram),
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("writer", &args, &args.output, &Report::default())?;
    let config: tokio_postgres::Config = args.database_url.parse().context("DATABASE_URL")?;
    let pool = bb8::Pool::builder()
        .max_size(args.pool)
        .build(PostgresConnectionManager::new(config.clone(), NoTls))
        .await?;
    // One author per client, as in real traffic (no artificial hot row).
    let authors: Arc<Vec<i64>> = {
        let conn = pool.get().await?;
        let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut ids = Vec::with_capacity(args.clients);
        for n in 0..args.clients {
            let handle = format!("b{run}_{n}");
            let id: i64 = conn
                .query_one(
                    "INSERT INTO users (handle, display_name) VALUES ($1, $1) RETURNING id",
                    &[&handle],
                )
                .await
                .context("is the database migrated? run `aisocial migrate` first")?
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
    let batched = drive(
        &mut run,
        "db_writer",
        args.clients,
        args.seconds,
        move |n, seq| {
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
        },
    )
    .await;

    let pool = Arc::new(pool);
    let per_request_report = drive(
        &mut run,
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

    for r in [&batched, &per_request_report] {
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
    let speedup = batched.per_second / per_request_report.per_second.max(1e-9);
    println!(
        "writer: the DbWriter committed {speedup:.1}x the posts per second of one transaction per request"
    );
    run.without_json_line();
    run.finish(&Report {
        scenario: "writer",
        db_writer: batched,
        transaction_per_request: per_request_report,
        speedup,
    })
}
