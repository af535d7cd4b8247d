//! `slow`: slow consumers must not hurt the server or anyone else.
//!
//! One author posts at a fixed open-loop rate to many followers online. A share of them
//! (`--slow-share`) connect with a tiny receive buffer and, `--slow-after` seconds into the
//! posting, stop reading altogether. The server must stay bounded (its RSS from
//! `/health/system` before, during and after the slow phase; past `WS_OUTBOUND_LIMIT` frames it
//! closes a slow session with 1013), and the fast followers must not notice: their p99 from
//! each post's scheduled send during the slow phase against before it, with nothing missing,
//! duplicated or out of order. At the end the slow clients read again (their close codes are
//! counted) and resume with `since`, which must bring every post they were closed before.
//!
//! Before the server's own count of waiting frames grows, its kernel send buffer towards the
//! slow client fills (autotuned up to `tcp_wmem`'s maximum, 4 MiB by default: thousands of
//! frames), so the slow phase must be long and the frames big (`--body-bytes`) for the 1013
//! closes to come; the report estimates the frames needed and only requires the closes when
//! the run offered that many.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use aisocial_client::{self as client, Frame, NewPost, ResumeStatus, ws};

use crate::prometheus;
use crate::report::{self, Latency};
use crate::scenario::{self, LateSends, Schedule, StreamCheck, Validity};

#[derive(clap::Args, Serialize)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Followers online, each with its own websocket.
    #[arg(long, default_value_t = 200)]
    followers: usize,
    /// Share of the followers that stop reading.
    #[arg(long, default_value_t = 0.1)]
    slow_share: f64,
    /// Posts per second by the author.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of posting (the slow phase must outlast the server's socket buffer and its
    /// outbound limit: see `frames_to_overflow_estimate` in the report).
    #[arg(long, default_value_t = 45)]
    seconds: u64,
    /// Characters per post body (at most 1000): bigger frames fill the server's socket buffer
    /// towards a slow follower sooner.
    #[arg(long, default_value_t = 1000)]
    body_bytes: usize,
    /// Seconds into the posting at which the slow followers stop reading.
    #[arg(long, default_value_t = 5)]
    slow_after: u64,
    /// Receive buffer of a slow follower's socket, in bytes.
    #[arg(long, default_value_t = 4096)]
    recv_buffer: u32,
    /// The server's `WS_OUTBOUND_LIMIT` (frames), to judge whether the run could reach it and
    /// what memory the slow sessions may hold.
    #[arg(long, default_value_t = 1024)]
    outbound_limit: u64,
    /// The fast followers' p99 during the slow phase may be at most this many times the p99
    /// before it (plus 5 ms).
    #[arg(long, default_value_t = 2.0)]
    p99_tolerance: f64,
    /// Seconds without a frame after which a reader stops (after the posting, and when the
    /// slow followers read again).
    #[arg(long, default_value_t = 3)]
    drain_secs: u64,
    /// Sign-ins and follows at once while setting up.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// --threshold, --json, --html, --no-progress.
    #[command(flatten)]
    output: report::Output,
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    followers: usize,
    slow_followers: usize,
    posts: usize,
    rate: f64,
    seconds: u64,
    slow_after_seconds: u64,
    frames_due_per_slow_follower: u64,
    outbound_limit: u64,
    /// Frames a slow follower takes before the server may close it: the outbound limit plus
    /// what the server's kernel send buffer (up to `tcp_wmem`'s maximum here) holds.
    frames_to_overflow_estimate: Option<u64>,
    fast_deliveries: u64,
    fast_missing: u64,
    fast_duplicated: u64,
    fast_out_of_order: u64,
    fast_latency_before: Latency,
    fast_latency_during: Latency,
    fast_p99_limit_ms: f64,
    fast_p99_held: bool,
    slow_frames_read: u64,
    slow_closes_by_code: BTreeMap<String, u64>,
    slow_closed_1013: u64,
    slow_resumed: u64,
    slow_missing_after_resume: u64,
    slow_duplicated: u64,
    slow_out_of_order: u64,
    server_slow_consumer_closes: Option<f64>,
    server_durable_frames_dropped: Option<f64>,
    server_rss_before_bytes: Option<u64>,
    server_rss_during_max_bytes: Option<u64>,
    server_rss_end_of_slow_phase_bytes: Option<u64>,
    server_rss_after_bytes: Option<u64>,
    rss_growth_bytes: Option<u64>,
    rss_bound_bytes: u64,
    bounded: Option<bool>,
    mean_frame_bytes: f64,
    late_sends: u64,
    late_send_share: f64,
    #[serde(flatten)]
    validity: Validity,
    passed: bool,
    failures: Vec<String>,
}

/// What a fast follower saw, split at the start of the slow phase by scheduled send time.
struct FastTally {
    check: StreamCheck<u64>,
    before: Histogram<u64>,
    during: Histogram<u64>,
    frame_bytes: u64,
}

/// How a slow follower's first connection ended once it read again.
struct SlowTally {
    check: StreamCheck<u64>,
    frames_read: u64,
    /// The close code, or `open`/`eof`/`error` when no close frame came.
    ended: String,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("slow", &args, &args.output, &Report::default())?;
    anyhow::ensure!(args.followers >= 2, "--followers must be at least 2");
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    anyhow::ensure!(
        args.slow_after < args.seconds,
        "--slow-after must be shorter than --seconds"
    );
    let slow_count =
        ((args.followers as f64 * args.slow_share).round() as usize).clamp(1, args.followers - 1);
    let api = client::Client::new(args.url.clone());
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let author_handle = format!("sa_{run_id}");
    let author = api.sign_in_dev(&author_handle).await?.token;
    let handles = (0..args.followers)
        .map(|n| format!("sf_{run_id}_{n}"))
        .collect();
    let followers = api.sign_in_all(handles, args.setup_concurrency).await?;
    let follows = followers
        .iter()
        .map(|f| (f.token.clone(), author_handle.clone()))
        .collect();
    api.follow_all(follows, args.setup_concurrency).await?;
    let is_slow = |n: usize| n >= args.followers - slow_count;
    let metrics_before = api.metrics().await.unwrap_or_default();
    let rss_before = api.system_sample().await.ok().and_then(|s| s.rss_bytes);
    println!(
        "slow: {} followers ({slow_count} slow, receive buffer {} B), {} posts/s for {} s, slow from {} s",
        args.followers, args.recv_buffer, args.rate, args.seconds, args.slow_after
    );

    let mut sockets = Vec::with_capacity(args.followers);
    for (n, follower) in followers.iter().enumerate() {
        let buffer = is_slow(n).then_some(args.recv_buffer);
        let options = ws::Connect {
            recv_buffer: buffer,
            ..ws::Connect::default()
        };
        let (ws, _hello) = api.open_feed_with(&follower.token, None, &options).await?;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now() + Duration::from_millis(100);
    let schedule = Schedule::new(started, args.rate);
    let slow_from = started + Duration::from_secs(args.slow_after);
    let slow_from_wall = schedule.wall_micros(slow_from);
    let posting_end = started + Duration::from_secs(args.seconds);
    let quiet = Duration::from_secs(args.drain_secs.max(1));
    let (read_again, reading_again) = watch::channel(false);
    // The fast followers' deliveries; `open` counts the followers reading.
    let deliveries = run.recorder("fast_deliveries");
    deliveries.set_open(args.followers as i64);
    let progress = run.progress(
        "slow",
        "deliveries",
        Some(Duration::from_secs(args.seconds) + quiet),
        &deliveries,
    );
    let mut fast_readers = Vec::new();
    let mut slow_readers = Vec::new();
    for (n, ws) in sockets.into_iter().enumerate() {
        if is_slow(n) {
            slow_readers.push(tokio::spawn(read_slowly(
                ws,
                slow_from,
                reading_again.clone(),
                quiet,
                deliveries.clone(),
            )));
        } else {
            fast_readers.push(tokio::spawn(read_fast(
                ws,
                slow_from_wall,
                posting_end,
                quiet,
                deliveries.clone(),
            )));
        }
    }

    // The server's memory every half second while the posting runs.
    let sampler = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut during_max: Option<u64> = None;
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            while Instant::now() < posting_end {
                ticks.tick().await;
                let rss = api.system_sample().await.ok().and_then(|s| s.rss_bytes);
                if Instant::now() >= slow_from {
                    during_max = during_max.max(rss);
                }
            }
            during_max
        })
    };

    let padding = "x".repeat(args.body_bytes.clamp(40, 1000) - 40);
    let posts = (args.seconds as f64 * args.rate) as u64;
    let mut late = LateSends::default();
    let mut sends = Vec::with_capacity(usize::try_from(posts).unwrap_or_default());
    for seq in 0..posts {
        let slot = schedule.wait_for(seq).await;
        late.record(slot.lag);
        let (api, token) = (api.clone(), author.clone());
        let body = format!("{seq} {} {padding}", slot.due_wall_micros);
        sends.push(tokio::spawn(async move {
            let created = api.create_post(&token, &NewPost::new(body)).await.is_ok();
            created.then_some(seq)
        }));
    }
    let mut acknowledged = Vec::with_capacity(sends.len());
    for send in sends {
        if let Ok(Some(seq)) = send.await {
            acknowledged.push(seq);
        }
    }
    let mut fast = Vec::with_capacity(fast_readers.len());
    for reader in fast_readers {
        fast.push(reader.await?);
    }
    let rss_during_max = sampler.await?;
    progress.stop();
    let rss_end_of_slow_phase = api.system_sample().await.ok().and_then(|s| s.rss_bytes);

    // The slow followers read again: what is left, then (expected) a 1013 close.
    let _ = read_again.send(true);
    let mut read_again_tallies = Vec::with_capacity(slow_readers.len());
    for reader in slow_readers {
        read_again_tallies.push(reader.await?);
    }
    // Each resumes from the last id it read; together the two connections must hold every post.
    let slow_tokens: Vec<String> = (0..args.followers)
        .filter(|&n| is_slow(n))
        .map(|n| followers[n].token.clone())
        .collect();
    let resuming: Vec<_> = read_again_tallies
        .into_iter()
        .zip(slow_tokens)
        .map(|(mut tally, token)| {
            let api = api.clone();
            tokio::spawn(async move {
                let since = tally.check.last_id();
                let resumed = match api.open_feed(&token, since).await {
                    Ok((ws, hello)) => {
                        read_until_quiet(ws, &mut tally.check, quiet).await;
                        hello.resume_status() != ResumeStatus::ResyncRequired
                    }
                    Err(_) => false,
                };
                (tally, resumed)
            })
        })
        .collect();
    let mut slow = Vec::with_capacity(resuming.len());
    let mut resumed = 0;
    for task in resuming {
        let (tally, ok) = task.await?;
        resumed += u64::from(ok);
        slow.push(tally);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = api.system_sample().await.ok().and_then(|s| s.rss_bytes);
    let metrics_after = api.metrics().await.unwrap_or_default();
    // A counter never incremented is not exported yet: zero, when the server answered at all.
    let counter_delta = |name: &str| {
        if metrics_after.is_empty() {
            return None;
        }
        let value = |metrics: &str| prometheus::value(metrics, name).unwrap_or(0.0);
        Some(value(&metrics_after) - value(&metrics_before))
    };

    let keys: Vec<u64> = acknowledged.clone();
    let (mut before, mut during) = (report::histogram(), report::histogram());
    let (mut fast_deliveries, mut fast_missing, mut fast_duplicated, mut fast_out_of_order) =
        (0, 0, 0, 0);
    let mut frame_bytes = 0;
    for tally in &fast {
        let _ = before.add(&tally.before);
        let _ = during.add(&tally.during);
        fast_deliveries += tally.check.deliveries;
        fast_missing += tally.check.missing(&keys);
        fast_duplicated += tally.check.duplicated;
        fast_out_of_order += tally.check.out_of_order;
        frame_bytes += tally.frame_bytes;
    }
    let mean_frame_bytes = frame_bytes as f64 / fast_deliveries.max(1) as f64;
    let mut closes: BTreeMap<String, u64> = BTreeMap::new();
    for tally in &slow {
        *closes.entry(tally.ended.clone()).or_default() += 1;
    }
    let slow_closed_1013 = closes.get("1013").copied().unwrap_or_default();
    let frames_due = ((args.seconds - args.slow_after) as f64 * args.rate) as u64;
    let frames_to_overflow = send_buffer_max().map(|bytes| {
        // The kernel charges about 1.4 bytes of buffer per byte of data on loopback.
        args.outbound_limit + (bytes as f64 / 1.4 / mean_frame_bytes.max(1.0)) as u64
    });
    let could_overflow = frames_due > frames_to_overflow.unwrap_or(args.outbound_limit);
    let before_latency = report::latency(&before);
    let during_latency = report::latency(&during);
    let p99_limit = before_latency.p99_ms * args.p99_tolerance + 5.0;
    let fast_p99_held = during_latency.p99_ms <= p99_limit;
    // What the slow sessions may hold at most, each frame counted as a copy of its own (the
    // server shares one copy), plus allocator slack.
    let rss_bound =
        slow_count as u64 * args.outbound_limit * mean_frame_bytes as u64 + 32 * 1024 * 1024;
    let rss_growth = match (rss_before, rss_during_max.max(rss_end_of_slow_phase)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let bounded = rss_growth.map(|g| g <= rss_bound);
    let validity = late.validity();
    let mut failures = Vec::new();
    if fast_missing + fast_duplicated + fast_out_of_order > 0 {
        failures.push(format!(
            "fast followers: {fast_missing} missing, {fast_duplicated} duplicated, {fast_out_of_order} out of order"
        ));
    }
    if !fast_p99_held {
        failures.push(format!(
            "fast p99 during the slow phase {:.1} ms exceeds {p99_limit:.1} ms",
            during_latency.p99_ms
        ));
    }
    if bounded == Some(false) {
        failures.push(format!(
            "server RSS grew by {} MiB, over the bound of {} MiB",
            rss_growth.unwrap_or_default() / (1024 * 1024),
            rss_bound / (1024 * 1024)
        ));
    }
    if could_overflow && slow_closed_1013 < slow_count as u64 {
        failures.push(format!(
            "{slow_closed_1013} of {slow_count} slow followers were closed with 1013"
        ));
    }
    let slow_missing: u64 = slow.iter().map(|t| t.check.missing(&keys)).sum();
    let slow_duplicated: u64 = slow.iter().map(|t| t.check.duplicated).sum();
    let slow_out_of_order: u64 = slow.iter().map(|t| t.check.out_of_order).sum();
    if slow_missing + slow_duplicated + slow_out_of_order > 0 {
        failures.push(format!(
            "slow followers after resuming: {slow_missing} missing, {slow_duplicated} duplicated, {slow_out_of_order} out of order"
        ));
    }
    if !validity.valid {
        failures.push("late sends: the run is invalid".into());
    }
    let report = Report {
        scenario: "slow",
        followers: args.followers,
        slow_followers: slow_count,
        posts: acknowledged.len(),
        rate: args.rate,
        seconds: args.seconds,
        slow_after_seconds: args.slow_after,
        frames_due_per_slow_follower: frames_due,
        outbound_limit: args.outbound_limit,
        frames_to_overflow_estimate: frames_to_overflow,
        fast_deliveries,
        fast_missing,
        fast_duplicated,
        fast_out_of_order,
        fast_latency_before: before_latency,
        fast_latency_during: during_latency,
        fast_p99_limit_ms: p99_limit,
        fast_p99_held,
        slow_frames_read: slow.iter().map(|t| t.frames_read).sum(),
        slow_closes_by_code: closes,
        slow_closed_1013,
        slow_resumed: resumed,
        slow_missing_after_resume: slow_missing,
        slow_duplicated,
        slow_out_of_order,
        server_slow_consumer_closes: counter_delta("aisocial_session_slow_consumer_closes_total"),
        server_durable_frames_dropped: counter_delta(
            "aisocial_session_frames_dropped_total{kind=\"durable\"}",
        ),
        server_rss_before_bytes: rss_before,
        server_rss_during_max_bytes: rss_during_max,
        server_rss_end_of_slow_phase_bytes: rss_end_of_slow_phase,
        server_rss_after_bytes: rss_after,
        rss_growth_bytes: rss_growth,
        rss_bound_bytes: rss_bound,
        bounded,
        mean_frame_bytes,
        late_sends: late.late,
        late_send_share: late.share(),
        passed: failures.is_empty(),
        validity,
        failures,
    };
    print_report(&report);
    println!("{}", serde_json::to_string(&report)?);
    run.finish(&report)
}

/// A fast follower: reads every post until `quiet` passes without one after the posting.
async fn read_fast(
    mut ws: client::Socket,
    slow_from_wall: u64,
    posting_end: Instant,
    quiet: Duration,
    series: report::Recorder,
) -> FastTally {
    let mut tally = FastTally {
        check: StreamCheck::default(),
        before: report::histogram(),
        during: report::histogram(),
        frame_bytes: 0,
    };
    let hard_stop = posting_end + quiet + Duration::from_secs(60);
    loop {
        let listen_until = (Instant::now() + quiet)
            .max(posting_end + quiet)
            .min(hard_stop);
        // Pings (the server's heartbeat) and other control frames are not the end: only a
        // close, an error or the quiet period is.
        let text = match tokio::time::timeout_at(listen_until.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
            Ok(Some(Ok(_))) => continue,
        };
        let arrived = scenario::now_micros();
        let Some((id, seq, due)) = parse_post(&text) else {
            continue;
        };
        tally.frame_bytes += text.len() as u64;
        tally.check.observe(id, seq);
        let h = if due < slow_from_wall {
            &mut tally.before
        } else {
            &mut tally.during
        };
        let latency = arrived.saturating_sub(due).max(1);
        series.ok_at_unix_micros(arrived, latency);
        let _ = h.record(latency);
    }
    tally
}

/// A slow follower: reads until `slow_from`, then not at all until told to read again; then
/// reads what is left and how the server closed the connection.
async fn read_slowly(
    mut ws: client::Socket,
    slow_from: Instant,
    mut read_again: watch::Receiver<bool>,
    quiet: Duration,
    series: report::Recorder,
) -> SlowTally {
    let mut check = StreamCheck::default();
    let mut frames_read = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(slow_from.into(), ws.next()).await {
        if let Message::Text(text) = &message
            && let Some((id, seq, _)) = parse_post(text)
        {
            check.observe(id, seq);
        }
    }
    series.add_open(-1);
    let _ = read_again.wait_for(|&again| again).await;
    let ended = loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Err(_) => break "open".to_owned(),
            Ok(None) => break "eof".to_owned(),
            Ok(Some(Err(_))) => break "error".to_owned(),
            Ok(Some(Ok(message))) => {
                if let Some(code) = client::close_code(&message) {
                    break code.to_string();
                }
                if let Message::Text(text) = &message
                    && let Some((id, seq, _)) = parse_post(text)
                {
                    frames_read += 1;
                    check.observe(id, seq);
                }
            }
        }
    };
    SlowTally {
        check,
        frames_read,
        ended,
    }
}

/// Reads posts into `check` until `quiet` passes without a frame (at most a minute).
async fn read_until_quiet(mut ws: client::Socket, check: &mut StreamCheck<u64>, quiet: Duration) {
    let hard_stop = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let until = (tokio::time::Instant::now() + quiet).min(hard_stop);
        let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await else {
            break;
        };
        if let Message::Text(text) = &message
            && let Some((id, seq, _)) = parse_post(text)
        {
            check.observe(id, seq);
        }
    }
    let _ = ws.close(None).await;
}

/// The largest kernel send buffer of a TCP socket on this machine (`tcp_wmem`'s maximum), the
/// server's when it runs here.
fn send_buffer_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// `(event id, seq, due_micros)` of a `post.created` frame whose body is `seq due_micros`.
fn parse_post(text: &str) -> Option<(i64, u64, u64)> {
    let frame = Frame::parse(text).ok()?;
    if frame.kind != "post.created" {
        return None;
    }
    let mut parts = frame.body().split(' ');
    let seq = parts.next()?.parse().ok()?;
    let due = parts.next()?.parse().ok()?;
    Some((frame.id?, seq, due))
}

fn print_report(r: &Report) {
    let mib = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
    println!(
        "slow: {} posts to {} followers ({} slow); fast: {} deliveries, missing {}, duplicated {}, out of order {}",
        r.posts,
        r.followers,
        r.slow_followers,
        r.fast_deliveries,
        r.fast_missing,
        r.fast_duplicated,
        r.fast_out_of_order
    );
    println!(
        "slow: fast p99 before the slow phase {:.1} ms, during it {:.1} ms (limit {:.1} ms): {}",
        r.fast_latency_before.p99_ms,
        r.fast_latency_during.p99_ms,
        r.fast_p99_limit_ms,
        if r.fast_p99_held { "held" } else { "NOT HELD" }
    );
    println!(
        "slow: slow followers read {} frames once they read again; closes {:?}; server counted {} slow-consumer closes; resumed {}, missing after resume {}",
        r.slow_frames_read,
        r.slow_closes_by_code,
        r.server_slow_consumer_closes
            .map_or("?".to_owned(), |c| c.to_string()),
        r.slow_resumed,
        r.slow_missing_after_resume
    );
    println!(
        "slow: server RSS before {} MiB, during (max) {} MiB, end of slow phase {} MiB, after {} MiB; bound {:.1} MiB: {}",
        mib(r.server_rss_before_bytes),
        mib(r.server_rss_during_max_bytes),
        mib(r.server_rss_end_of_slow_phase_bytes),
        mib(r.server_rss_after_bytes),
        r.rss_bound_bytes as f64 / 1048576.0,
        match r.bounded {
            Some(true) => "bounded",
            Some(false) => "NOT BOUNDED",
            None => "unknown",
        }
    );
    let needed = r.frames_to_overflow_estimate.unwrap_or(r.outbound_limit);
    if r.frames_due_per_slow_follower <= needed {
        println!(
            "slow: note: only {} frames were due to each slow follower, about {needed} are needed to pass the server's socket buffer and outbound limit ({}): raise --rate or --seconds (or lower WS_OUTBOUND_LIMIT); 1013 closes were not required",
            r.frames_due_per_slow_follower, r.outbound_limit
        );
    }
    r.validity.shout("slow");
    if r.passed {
        println!("slow: PASSED");
    } else {
        println!("slow: FAILED: {}", r.failures.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_read_from_their_frames() {
        let frame = r#"{"type":"post.created","id":41,"data":{"id":7,"body":"3 1700000000000000","author":{"id":1}}}"#;
        assert_eq!(parse_post(frame), Some((41, 3, 1_700_000_000_000_000)));
        assert_eq!(parse_post(r#"{"type":"presence","data":{}}"#), None);
        assert_eq!(
            parse_post(r#"{"type":"post.created","id":1,"data":{"body":"x"}}"#),
            None
        );
        assert_eq!(parse_post("not json"), None);
    }
}
