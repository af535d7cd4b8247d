//! `ai`: the AiPool against the Gemini emulator started with `--stamp-chunks`.
//!
//! Phase 1 (overhead): one compose request at a time, the emulator answering at once; the
//! pool's own overhead per request is the time from sending `POST /ai/compose` to the moment
//! the emulator sent its first chunk (the chunk's `[[t=µs]]` stamp): HTTP, queue, the Redis
//! budget grant, and the upstream request. Phase 2 (overload): compose requests offered at
//! `--overload` times the budget's rate for `--seconds`, from many users; callers' statuses
//! (only 202 and 429 are correct), and the upstream requests in any sliding minute against the
//! limit, with the emulator's 429s (there should be none). Throughout: the latency each
//! streamed delta adds between the emulator sending it and a websocket receiving it.
//!
//! Series: `deltas` (each streamed delta and its added latency; `ai.error` answers as errors)
//! and `compose` (each `POST /ai/compose` and its answer time; statuses other than 202 and
//! 429 as errors). The progress line follows the deltas.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;

use aisocial_client as client;

use crate::report::{self, Latency};

#[derive(clap::Args, Serialize)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The emulator (run with `--stamp-chunks`), for its pacing and its counters.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    emulator_url: String,
    /// The server's `AI_RPM`, which the emulator's RPM quota should equal.
    #[arg(long, default_value_t = 60)]
    rpm: u32,
    /// Users asking, each with a websocket.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Sequential requests of the overhead phase.
    #[arg(long, default_value_t = 30)]
    sequential: usize,
    /// Offered load in the overload phase, as a multiple of the budget's rate.
    #[arg(long, default_value_t = 10.0)]
    overload: f64,
    /// Seconds of the overload phase.
    #[arg(long, default_value_t = 70)]
    seconds: u64,
    /// The emulator's output pace during the overload phase.
    #[arg(long, default_value_t = 100.0)]
    tokens_per_second: f64,
    #[command(flatten)]
    output: report::Output,
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    sequential_requests: usize,
    pool_overhead: Latency,
    deltas: u64,
    delta_added_latency: Latency,
    offered_per_minute: f64,
    callers: BTreeMap<u16, u64>,
    upstream_served: u64,
    upstream_429: u64,
    upstream_max_in_any_minute: usize,
    upstream_limit_per_minute: u32,
    answers_done: u64,
    answers_failed: u64,
    /// Answers that failed (`ai.error`) and compose requests answered other than 202 or 429.
    errors: u64,
    /// `errors` over the compose requests sent (both phases).
    errors_rate: f64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The `[[t=µs]]` stamp at the start of a delta's text.
fn stamp(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("[[t=")?;
    rest[..rest.find("]]")?].parse().ok()
}

/// What the readers learn, shared.
#[derive(Default)]
struct Seen {
    deltas: u64,
    /// First-chunk stamp of each request.
    first_chunk: HashMap<String, u64>,
    done: u64,
    failed: u64,
}

async fn set_emulator(
    http: &reqwest::Client,
    url: &str,
    update: serde_json::Value,
) -> anyhow::Result<()> {
    let res = http
        .post(format!("{url}/emulator/config"))
        .json(&update)
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "emulator config: {}",
        res.status()
    );
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("ai", &args, &args.output, &Report::default())?;
    let http = reqwest::Client::new();
    let api = client::Client::with_http(http.clone(), args.url.clone());
    set_emulator(
        &http,
        &args.emulator_url,
        serde_json::json!({"stamp_chunks": true, "tokens_per_second": 0.0, "first_chunk_latency_ms": 0, "log_capacity": 100_000}),
    )
    .await?;
    let _ = http
        .post(format!("{}/emulator/reset", args.emulator_url))
        .send()
        .await?;

    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut tokens = Vec::with_capacity(args.users);
    for n in 0..args.users.max(1) {
        tokens.push(api.sign_in_dev(&format!("ai_{run_id}_{n}")).await?.token);
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let delta_latency = Arc::new(Mutex::new(report::histogram()));
    let deltas = run.recorder("deltas");
    let compose = run.recorder("compose");
    deltas.set_open(0);
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<String>();
    for token in &tokens {
        let (mut ws, _hello) = api.open_feed(token, None).await?;
        deltas.add_open(1);
        let (seen, delta_latency, ended_tx, deltas) = (
            seen.clone(),
            delta_latency.clone(),
            ended_tx.clone(),
            deltas.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let arrived = now_micros();
                let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let data = &frame["data"];
                let request = data["request_id"].as_str().unwrap_or_default().to_owned();
                match frame["type"].as_str() {
                    Some("ai.delta") => {
                        let Some(sent) = data["text"].as_str().and_then(stamp) else {
                            continue;
                        };
                        let added = arrived.saturating_sub(sent).max(1);
                        let _ = delta_latency.lock().await.record(added);
                        deltas.ok(added);
                        let mut seen = seen.lock().await;
                        seen.deltas += 1;
                        seen.first_chunk.entry(request).or_insert(sent);
                    }
                    Some("ai.done") => {
                        seen.lock().await.done += 1;
                        let _ = ended_tx.send(request);
                    }
                    Some("ai.error") => {
                        deltas.error();
                        seen.lock().await.failed += 1;
                        let _ = ended_tx.send(request);
                    }
                    _ => {}
                }
            }
            deltas.add_open(-1);
        });
    }

    // Phase 1: one request at a time.
    let progress = run.progress("ai overhead", "deltas", None, &deltas);
    let mut overhead = report::histogram();
    for n in 0..args.sequential {
        let sent = now_micros();
        let asked = Instant::now();
        let res = api
            .compose_request(&tokens[0], &format!("overhead probe {n}"))
            .send()
            .await?;
        if res.status().as_u16() == 202 {
            compose.ok(report::micros(asked.elapsed()));
        } else {
            compose.error();
        }
        anyhow::ensure!(
            res.status().as_u16() == 202,
            "compose answered {}",
            res.status()
        );
        let body: serde_json::Value = res.json().await?;
        let id = body["request_id"].as_str().unwrap_or_default().to_owned();
        loop {
            let ended_id = tokio::time::timeout(Duration::from_secs(30), ended.recv())
                .await?
                .unwrap_or_default();
            if ended_id == id {
                break;
            }
        }
        if let Some(first) = seen.lock().await.first_chunk.get(&id) {
            let _ = overhead.record(first.saturating_sub(sent).max(1));
        }
    }

    progress.stop();

    // Phase 2: overload (and 5 s for the granted answers to finish).
    let progress = run.progress(
        "ai overload",
        "deltas",
        Some(Duration::from_secs(args.seconds + 5)),
        &deltas,
    );
    set_emulator(
        &http,
        &args.emulator_url,
        serde_json::json!({"tokens_per_second": args.tokens_per_second}),
    )
    .await?;
    let _ = http
        .post(format!("{}/emulator/reset", args.emulator_url))
        .send()
        .await?;
    let offered_per_second = f64::from(args.rpm) / 60.0 * args.overload;
    let interval = Duration::from_secs_f64(1.0 / offered_per_second.max(0.001));
    let total = (args.seconds as f64 * offered_per_second) as usize;
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for n in 0..total {
        let at = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(at.into()).await;
        let (api, token, compose) = (
            api.clone(),
            tokens[n % tokens.len()].clone(),
            compose.clone(),
        );
        sends.push(tokio::spawn(async move {
            let asked = Instant::now();
            let status = api
                .compose_request(&token, &format!("overload {n}"))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            if matches!(status, 202 | 429) {
                compose.ok(report::micros(asked.elapsed()));
            } else {
                compose.error();
            }
            status
        }));
    }
    let mut callers: BTreeMap<u16, u64> = BTreeMap::new();
    for send in sends {
        *callers.entry(send.await.unwrap_or(0)).or_default() += 1;
    }
    let offered_minutes = started.elapsed().as_secs_f64() / 60.0;
    // Let what was granted finish streaming.
    tokio::time::sleep(Duration::from_secs(5)).await;
    progress.stop();
    let stats: serde_json::Value = http
        .get(format!("{}/emulator/stats", args.emulator_url))
        .send()
        .await?
        .json()
        .await?;
    let mut arrivals: Vec<u64> = stats["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["endpoint"] != "countTokens")
        .filter_map(|r| r["at_ms"].as_u64())
        .collect();
    arrivals.sort_unstable();
    let max_in_minute = arrivals
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            arrivals[i..]
                .iter()
                .take_while(|&&b| b < at + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0);
    let outcomes = &stats["by_outcome"];
    let count = |name: &str| outcomes[name].as_u64().unwrap_or(0);
    let seen = seen.lock().await;
    let errors = seen.failed
        + callers
            .iter()
            .filter(|(status, _)| !matches!(status, 202 | 429))
            .map(|(_, count)| count)
            .sum::<u64>();
    let report = Report {
        scenario: "ai",
        sequential_requests: args.sequential,
        pool_overhead: report::latency(&overhead),
        deltas: seen.deltas,
        delta_added_latency: report::latency(&*delta_latency.lock().await),
        offered_per_minute: total as f64 / offered_minutes.max(0.001),
        callers,
        upstream_served: count("ok"),
        upstream_429: count("quota_rpm")
            + count("quota_tpm")
            + count("quota_rpd")
            + count("resource_exhausted"),
        upstream_max_in_any_minute: max_in_minute,
        upstream_limit_per_minute: args.rpm,
        answers_done: seen.done,
        answers_failed: seen.failed,
        errors,
        errors_rate: errors as f64 / (args.sequential + total).max(1) as f64,
    };
    println!(
        "ai: pool overhead per request p50 {:.2} ms, p99 {:.2} ms ({} sequential requests)",
        report.pool_overhead.p50_ms, report.pool_overhead.p99_ms, report.sequential_requests
    );
    println!(
        "ai: added latency per streamed delta (emulator → websocket) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} deltas",
        report.delta_added_latency.p50_ms,
        report.delta_added_latency.p99_ms,
        report.delta_added_latency.max_ms,
        report.deltas
    );
    println!(
        "ai: overload {:.0} requests/min offered against a budget of {}/min; callers {:?}; upstream served {}, at most {} in any minute, 429s {}",
        report.offered_per_minute,
        report.upstream_limit_per_minute,
        report.callers,
        report.upstream_served,
        report.upstream_max_in_any_minute,
        report.upstream_429
    );
    drop(seen);
    run.finish(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_the_start_of_a_delta() {
        assert_eq!(
            stamp("[[t=1764000000000000]] Hello"),
            Some(1_764_000_000_000_000)
        );
        assert_eq!(stamp("Hello [[t=1]]"), None, "only at the start");
        assert_eq!(stamp("[[t=12"), None);
        assert_eq!(stamp("[[t=x]]"), None);
    }
}
