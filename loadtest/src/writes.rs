//! `writes`: many clients post through the HTTP API as fast as they are answered (closed loop),
//! or at a fixed total rate (open loop, latency measured from each request's scheduled time so
//! a stall is not hidden). Reports acknowledged posts per second and latency percentiles,
//! with a progress line, a summary with `--threshold`s, and `--json` / `--html` reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use aisocial_client::{Client, NewPost};

use crate::report::{self, Latency};

#[derive(clap::Args, Serialize)]
pub struct Args {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent clients (each its own user and connection).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// How long to post.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Total posts per second across all clients (open loop); omit for as fast as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// Send an Idempotency-Key with each post.
    #[arg(long)]
    idempotency: bool,
    #[command(flatten)]
    output: report::Output,
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    clients: usize,
    seconds: f64,
    acknowledged: u64,
    failed: u64,
    acknowledged_per_second: f64,
    latency: Latency,
    late_sends: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("writes", &args, &args.output, &Report::default())?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut tokens = Vec::with_capacity(args.clients);
    let api = Client::with_http(
        reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients)
            .build()?,
        args.url.clone(),
    );
    for n in 0..args.clients {
        tokens.push(api.sign_in_dev(&format!("lt_{run_id}_{n}")).await?.token);
    }
    let histogram = Arc::new(Mutex::new(report::histogram()));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let posts = run.recorder("posts");
    posts.set_open(args.clients as i64);
    let progress = run.progress(
        "writes",
        "posts",
        Some(Duration::from_secs(args.seconds)),
        &posts,
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let per_client_interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.clients as f64 / rate.max(0.001)));
    let mut tasks = Vec::new();
    for (n, token) in tokens.into_iter().enumerate() {
        let api = api.clone();
        let (histogram, acknowledged, failed, late, posts) = (
            histogram.clone(),
            acknowledged.clone(),
            failed.clone(),
            late.clone(),
            posts.clone(),
        );
        let idempotency = args.idempotency;
        let clients = args.clients;
        tasks.push(tokio::spawn(async move {
            let mut local = report::histogram();
            let mut seq = 0u64;
            // Spread the open-loop schedule evenly over the clients.
            let mut scheduled =
                per_client_interval.map(|i| started + i.mul_f64(n as f64 / clients as f64));
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let send_at = match (&mut scheduled, per_client_interval) {
                    (Some(at), Some(interval)) => {
                        if *at > now {
                            tokio::time::sleep_until((*at).into()).await;
                        } else if now.duration_since(*at) > Duration::from_millis(10) {
                            late.fetch_add(1, Ordering::Relaxed);
                        }
                        let this = *at;
                        *at += interval;
                        this
                    }
                    _ => now,
                };
                seq += 1;
                let post = NewPost {
                    idempotency_key: idempotency.then(|| format!("{n}-{seq}")),
                    ..NewPost::new(format!("load test post {n}-{seq}"))
                };
                // Timed to the answer's status line, as before (its body is not read).
                match api.create_post_request(&token, &post).send().await {
                    Ok(res) if res.status().as_u16() == 201 => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                        let micros = report::micros(send_at.elapsed());
                        let _ = local.record(micros);
                        posts.ok(micros);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        posts.error();
                    }
                }
            }
            let _ = histogram.lock().await.add(&local);
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    progress.stop();
    let elapsed = started.elapsed().as_secs_f64();
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    let histogram = histogram.lock().await;
    let report = Report {
        scenario: "writes",
        clients: args.clients,
        seconds: elapsed,
        acknowledged,
        failed: failed.load(Ordering::Relaxed),
        acknowledged_per_second: acknowledged as f64 / elapsed,
        latency: report::latency(&histogram),
        late_sends: late.load(Ordering::Relaxed),
    };
    println!(
        "writes: {} clients, {:.1} s: {} acknowledged ({:.0}/s), {} failed; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.clients,
        report.seconds,
        report.acknowledged,
        report.acknowledged_per_second,
        report.failed,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.latency.max_ms
    );
    run.finish(&report)
}
