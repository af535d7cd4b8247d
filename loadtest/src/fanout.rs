//! `fanout`: one author, N followers online; the author posts at a fixed rate (open loop) and
//! every follower records the time from the post's *scheduled* send to its arrival (so a stall
//! is charged to the server, not hidden), checks that event ids only increase, and counts
//! missing and duplicated posts. Also reports the server's memory per idle connection (from
//! `/health/system`) and, with `--server-pid`, its CPU time per delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::client::sign_in;
use crate::report::{self, Latency};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Followers online, each with its own websocket.
    #[arg(long, default_value_t = 1000)]
    followers: usize,
    /// Posts per second by the author.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The server's pid, to read its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Serialize)]
struct Report {
    scenario: &'static str,
    followers: usize,
    posts: usize,
    expected_deliveries: usize,
    deliveries: u64,
    deliveries_per_second: f64,
    missing: u64,
    duplicated: u64,
    out_of_order: u64,
    late_sends: u64,
    latency: Latency,
    server_cpu_seconds: Option<f64>,
    deliveries_per_server_cpu_second: Option<f64>,
    server_rss_before_connect_bytes: Option<u64>,
    server_rss_idle_connected_bytes: Option<u64>,
    bytes_per_idle_connection: Option<f64>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn rss(http: &reqwest::Client, url: &str) -> Option<u64> {
    let body: serde_json::Value = http
        .get(format!("{url}/health/system"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["memory"]["process_rss_bytes"].as_u64()
}

/// The fields of a frame this scenario reads; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: Option<i64>,
    #[serde(borrow)]
    data: Option<FrameData<'a>>,
}

#[derive(serde::Deserialize)]
struct FrameData<'a> {
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
}

struct Tally {
    histogram: hdrhistogram::Histogram<u64>,
    deliveries: u64,
    duplicated: u64,
    out_of_order: u64,
    seen: Vec<HashSet<u64>>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let author_handle = format!("fa_{run_id}");
    let author = sign_in(&http, &args.url, &author_handle).await?;
    let mut tokens = Vec::with_capacity(args.followers);
    for n in 0..args.followers {
        let token = sign_in(&http, &args.url, &format!("ff_{run_id}_{n}")).await?;
        let res = http
            .put(format!("{}/api/v1/users/{author_handle}/follow", args.url))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(res.status().as_u16() == 204, "follow: {}", res.status());
        tokens.push(token);
    }
    let rss_before = rss(&http, &args.url).await;
    let ws_base = args.url.replacen("http", "ws", 1);
    let mut sockets = Vec::with_capacity(args.followers);
    for token in &tokens {
        let mut request = format!("{ws_base}/api/v1/ws").into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        // hello
        let _ = ws.next().await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss(&http, &args.url).await;

    let tally = Arc::new(Mutex::new(Tally {
        histogram: report::histogram(),
        deliveries: 0,
        duplicated: 0,
        out_of_order: 0,
        seen: Vec::new(),
    }));
    let posting = Duration::from_secs(args.seconds);
    let mut readers = Vec::new();
    for mut ws in sockets {
        let tally = tally.clone();
        readers.push(tokio::spawn(async move {
            let mut h = report::histogram();
            let (mut deliveries, mut dup, mut ooo, mut last) = (0u64, 0u64, 0u64, 0i64);
            let mut seen = HashSet::new();
            let quiet = Duration::from_secs(5);
            while let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, ws.next()).await {
                let Message::Text(text) = message else {
                    continue;
                };
                // Taken before parsing; the parse reads only the fields it needs (a generic
                // JSON value per frame cost this one-core client more than the server spent).
                let arrived = now_micros();
                let Ok(frame) = serde_json::from_str::<Frame>(&text) else {
                    continue;
                };
                if frame.kind != "post.created" {
                    continue;
                }
                let id = frame.id.unwrap_or_default();
                if id <= last {
                    ooo += 1;
                }
                last = last.max(id);
                // Bodies are "seq scheduled_micros".
                let body = frame.data.and_then(|d| d.body).unwrap_or_default();
                let mut parts = body.split(' ');
                let seq: u64 = parts
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(u64::MAX);
                let scheduled: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                if !seen.insert(seq) {
                    dup += 1;
                }
                deliveries += 1;
                let _ = h.record(arrived.saturating_sub(scheduled).max(1));
            }
            let mut t = tally.lock().await;
            let _ = t.histogram.add(&h);
            t.deliveries += deliveries;
            t.duplicated += dup;
            t.out_of_order += ooo;
            t.seen.push(seen);
        }));
    }

    let cpu_before = args.server_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let posts = (posting.as_secs_f64() * args.rate) as usize;
    let mut late = 0u64;
    let mut sends = Vec::with_capacity(posts);
    for seq in 0..posts {
        let at = started + interval.mul_f64(seq as f64);
        let now = Instant::now();
        if at > now {
            tokio::time::sleep_until(at.into()).await;
        } else if now.duration_since(at) > Duration::from_millis(10) {
            late += 1;
        }
        let scheduled = now_micros().saturating_sub(
            u64::try_from(Instant::now().duration_since(at).as_micros()).unwrap_or(0),
        );
        let (http, url, author) = (http.clone(), args.url.clone(), author.clone());
        sends.push(tokio::spawn(async move {
            let ok = http
                .post(format!("{url}/api/v1/posts"))
                .bearer_auth(&author)
                .json(&serde_json::json!({ "body": format!("{seq} {scheduled}") }))
                .send()
                .await
                .map(|r| r.status().as_u16() == 201)
                .unwrap_or(false);
            (ok, now_micros().saturating_sub(scheduled).max(1))
        }));
    }
    let mut acknowledged = 0;
    let mut acknowledge_latency = report::histogram();
    for send in sends {
        if let Ok((true, micros)) = send.await {
            acknowledged += 1;
            let _ = acknowledge_latency.record(micros);
        }
    }
    let acknowledge_latency = report::latency(&acknowledge_latency);
    for reader in readers {
        let _ = reader.await;
    }
    let elapsed = started.elapsed().as_secs_f64() - 5.0;
    let cpu = match (cpu_before, args.server_pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let t = tally.lock().await;
    let expected = acknowledged * args.followers;
    let received_distinct: usize = t.seen.iter().map(HashSet::len).sum();
    let report = Report {
        scenario: "fanout",
        followers: args.followers,
        posts: acknowledged,
        expected_deliveries: expected,
        deliveries: t.deliveries,
        deliveries_per_second: t.deliveries as f64 / elapsed.max(0.001),
        missing: expected.saturating_sub(received_distinct) as u64,
        duplicated: t.duplicated,
        out_of_order: t.out_of_order,
        late_sends: late,
        latency: report::latency(&t.histogram),
        server_cpu_seconds: cpu,
        deliveries_per_server_cpu_second: cpu.map(|c| t.deliveries as f64 / c.max(0.001)),
        server_rss_before_connect_bytes: rss_before,
        server_rss_idle_connected_bytes: rss_idle,
        bytes_per_idle_connection: match (rss_before, rss_idle) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / args.followers as f64),
            _ => None,
        },
    };
    println!(
        "fanout: {} followers, {} posts: {} deliveries ({:.0}/s), missing {}, duplicated {}, out of order {}, late sends {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.followers,
        report.posts,
        report.deliveries,
        report.deliveries_per_second,
        report.missing,
        report.duplicated,
        report.out_of_order,
        report.late_sends,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.latency.max_ms
    );
    if let Some(per_cpu) = report.deliveries_per_server_cpu_second {
        println!("fanout: {per_cpu:.0} deliveries per server CPU-second");
    }
    if let Some(bytes) = report.bytes_per_idle_connection {
        println!(
            "fanout: {:.1} KiB of server RSS per idle authenticated connection",
            bytes / 1024.0
        );
    }
    if report.late_sends as f64 > report.posts as f64 * 0.001 {
        println!(
            "fanout: INVALID RUN: {} late sends (over 0.1%); the generator could not keep the schedule",
            report.late_sends
        );
    }
    // Where the time goes: the post's acknowledgement as the author saw it, and the server's
    // own histograms (bucket upper bounds).
    println!(
        "fanout: post acknowledged (201) after its scheduled send: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        acknowledge_latency.p50_ms, acknowledge_latency.p99_ms, acknowledge_latency.max_ms
    );
    if let Ok(metrics) = http.get(format!("{}/metrics", args.url)).send().await {
        let metrics = metrics.text().await.unwrap_or_default();
        for (what, name) in [
            (
                "POST /api/v1/posts handling",
                "aisocial_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/posts\"",
            ),
            (
                "DbWriter BEGIN..COMMIT",
                "aisocial_db_writer_commit_seconds_bucket{",
            ),
            (
                "COMMIT to socket write",
                "aisocial_delivery_latency_seconds_bucket{",
            ),
            (
                "FeedBroker mailbox wait",
                "aisocial_actor_mailbox_wait_seconds_bucket{actor=\"feed_broker\"",
            ),
        ] {
            let p50 = report::prometheus_quantile(&metrics, name, 0.5);
            let p99 = report::prometheus_quantile(&metrics, name, 0.99);
            if let (Some(p50), Some(p99)) = (p50, p99) {
                println!("fanout: server {what}: p50 ≤ {p50:.2} ms, p99 ≤ {p99:.2} ms");
            }
        }
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
