//! `fanout`: authors post at a fixed open-loop rate to followers online, one websocket each.
//!
//! Without `--authors`, one author followed by every follower (`--authors all:1`). With it,
//! groups of authors by audience: `--authors 10:10,100:2,1000:1` is ten authors with 10
//! followers each, two with 100 and one with 1,000 (audiences spread over the followers), and
//! `all:1` one author followed by every follower online. Every follower records the time from
//! each post's *scheduled* send to its arrival (so a stall is charged to the server, not hidden
//! by a generator that waited), checks that event ids only increase, and counts missing and
//! duplicated posts. A send that starts more than 10 ms after its due time is late; past 0.1%
//! late sends the run is marked invalid. Also reports the server's memory per idle connection
//! (from `/health/system`) and, with `--server-pid`, its CPU time per delivery.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use aisocial_client::{self as client, Frame, NewPost};

use crate::prometheus;
use crate::report::{self, Latency};
use crate::scenario::{self, LateSends, Schedule, StreamCheck, Validity};

#[derive(clap::Args, Serialize)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Followers online, each with its own websocket.
    #[arg(long, default_value_t = 1000)]
    followers: usize,
    /// Posts per second by each author.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The server's pid, to read its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Authors by audience, `followers:authors` pairs separated by commas; `all` as the
    /// follower count is every follower online (default `all:1`: one author, everyone).
    #[arg(long, value_parser = parse_author_groups)]
    authors: Option<AuthorGroups>,
    /// Seconds without a frame, once the posting is over, after which a follower stops.
    #[arg(long, default_value_t = 5)]
    drain_secs: u64,
    /// Sign-ins and follows at once while setting up.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// --threshold, --json, --html, --no-progress.
    #[command(flatten)]
    output: report::Output,
}

/// How many followers an author of a group has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Followers(usize),
    /// Every follower online.
    All,
}

/// `authors` authors, each followed by `audience`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorGroup {
    pub audience: Audience,
    pub authors: usize,
}

/// The parsed `--authors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorGroups(pub Vec<AuthorGroup>);

impl fmt::Display for AuthorGroups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, group) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match group.audience {
                Audience::Followers(count) => write!(f, "{count}:{}", group.authors)?,
                Audience::All => write!(f, "all:{}", group.authors)?,
            }
        }
        Ok(())
    }
}

impl Serialize for AuthorGroups {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses `followers:authors[,followers:authors…]`, `followers` a number or `all`.
pub fn parse_author_groups(spec: &str) -> Result<AuthorGroups, String> {
    let mut groups = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (audience, authors) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?} is not followers:authors (e.g. 100:2 or all:1)"))?;
        let audience = match audience.trim() {
            "all" => Audience::All,
            n => Audience::Followers(n.parse().map_err(|_| {
                format!("{part:?}: the follower count {n:?} is neither a number nor \"all\"")
            })?),
        };
        let authors: usize = authors
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: the author count {authors:?} is not a number"))?;
        if authors == 0 {
            return Err(format!("{part:?}: a group needs at least one author"));
        }
        groups.push(AuthorGroup { audience, authors });
    }
    if groups.is_empty() {
        return Err("no followers:authors pair given".into());
    }
    Ok(AuthorGroups(groups))
}

/// One author of the run: its group and the followers (by index) that follow it.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorPlan {
    pub group: usize,
    pub followers: Vec<usize>,
}

/// Gives every author its followers among `total`, each audience starting where the last
/// ended, so the load spreads over all followers.
pub fn plan_authors(groups: &AuthorGroups, total: usize) -> Result<Vec<AuthorPlan>, String> {
    let mut plans = Vec::new();
    let mut next = 0;
    for (group, spec) in groups.0.iter().enumerate() {
        let audience = match spec.audience {
            Audience::All => total,
            Audience::Followers(n) if n <= total => n,
            Audience::Followers(n) => {
                return Err(format!(
                    "an author with {n} followers needs --followers {n} or more (it is {total})"
                ));
            }
        };
        for _ in 0..spec.authors {
            let followers = if audience == total {
                (0..total).collect()
            } else {
                let chosen = (next..next + audience).map(|i| i % total).collect();
                next = (next + audience) % total.max(1);
                chosen
            };
            plans.push(AuthorPlan { group, followers });
        }
    }
    Ok(plans)
}

/// A post's body: `author seq due_micros`, read back by the followers.
fn post_body(author: usize, seq: u64, due_micros: u64) -> String {
    format!("{author} {seq} {due_micros}")
}

/// `(author, seq, due_micros)` from a post's body.
fn parse_post_body(body: &str) -> Option<(usize, u64, u64)> {
    let mut parts = body.split(' ');
    let author = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let due = parts.next()?.parse().ok()?;
    Some((author, seq, due))
}

/// The key of one post in a follower's stream check.
fn post_key(author: usize, seq: u64) -> u64 {
    ((author as u64) << 40) | seq
}

#[derive(Serialize)]
struct GroupReport {
    /// `all` or the follower count of each author of the group.
    audience: String,
    followers_per_author: usize,
    authors: usize,
    posts: usize,
    expected_deliveries: usize,
    deliveries: u64,
    missing: u64,
    latency: Latency,
}

#[derive(Serialize, Default)]
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
    authors: String,
    author_count: usize,
    rate_per_author: f64,
    seconds: u64,
    sends: u64,
    failed_posts: u64,
    late_send_share: f64,
    worst_send_lag_ms: f64,
    #[serde(flatten)]
    validity: Validity,
    post_acknowledged: Latency,
    groups: Vec<GroupReport>,
}

/// What one follower saw.
struct FollowerTally {
    check: StreamCheck<u64>,
    /// Latency per author group (only for groups it follows an author of).
    by_group: Vec<Option<Histogram<u64>>>,
    last_arrival_micros: u64,
}

/// What one author's sends came to.
struct AuthorTally {
    acknowledged: Vec<u64>,
    failed: u64,
    late: LateSends,
    acknowledge_latency: Histogram<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("fanout", &args, &args.output, &Report::default())?;
    anyhow::ensure!(args.followers > 0, "--followers must be at least 1");
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    let groups = args
        .authors
        .clone()
        .unwrap_or(AuthorGroups(vec![AuthorGroup {
            audience: Audience::All,
            authors: 1,
        }]));
    let plans = plan_authors(&groups, args.followers).map_err(anyhow::Error::msg)?;
    let api = client::Client::new(args.url.clone());
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let author_handles: Vec<String> = (0..plans.len())
        .map(|a| {
            if plans.len() == 1 {
                format!("fa_{run_id}")
            } else {
                format!("fa_{run_id}_{a}")
            }
        })
        .collect();
    let concurrency = args.setup_concurrency;
    let authors = api
        .sign_in_all(author_handles.clone(), concurrency)
        .await?
        .into_iter()
        .map(|a| a.token)
        .collect::<Vec<_>>();
    let follower_handles = (0..args.followers)
        .map(|n| format!("ff_{run_id}_{n}"))
        .collect();
    let followers = api.sign_in_all(follower_handles, concurrency).await?;
    let mut follows = Vec::new();
    let mut followed_by: Vec<Vec<usize>> = vec![Vec::new(); args.followers];
    for (author, plan) in plans.iter().enumerate() {
        for &f in &plan.followers {
            follows.push((followers[f].token.clone(), author_handles[author].clone()));
            followed_by[f].push(author);
        }
    }
    println!(
        "fanout: {} authors ({groups}), {} followers, {} follows; connecting",
        plans.len(),
        args.followers,
        follows.len()
    );
    api.follow_all(follows, concurrency).await?;
    let rss_before = api.system_sample().await.ok().and_then(|s| s.rss_bytes);
    let mut sockets = Vec::with_capacity(args.followers);
    for follower in &followers {
        let (ws, _hello) = api.open_feed(&follower.token, None).await?;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = api.system_sample().await.ok().and_then(|s| s.rss_bytes);

    // The schedule starts a little ahead, so every reader knows when the posting ends.
    let started = Instant::now() + Duration::from_millis(100);
    let posting = Duration::from_secs(args.seconds);
    let posting_end = started + posting;
    let quiet = Duration::from_secs(args.drain_secs.max(1));
    let group_of: Arc<Vec<usize>> = Arc::new(plans.iter().map(|p| p.group).collect());
    let group_count = groups.0.len();
    let deliveries_series = run.recorder("deliveries");
    let posts_series = run.recorder("posts");
    deliveries_series.set_open(args.followers as i64);
    let progress = run.progress(
        "fanout",
        "deliveries",
        Some(posting + quiet),
        &deliveries_series,
    );
    let mut readers = Vec::with_capacity(args.followers);
    for (ws, follows) in sockets.into_iter().zip(followed_by.iter()) {
        let group_of = group_of.clone();
        let mut by_group: Vec<Option<Histogram<u64>>> = (0..group_count).map(|_| None).collect();
        for &author in follows {
            if let Some(slot) = by_group.get_mut(group_of[author]) {
                slot.get_or_insert_with(report::histogram);
            }
        }
        readers.push(tokio::spawn(follow_posts(
            ws,
            group_of,
            by_group,
            posting_end,
            quiet,
            deliveries_series.clone(),
        )));
    }

    let cpu_before = args.server_pid.and_then(scenario::cpu_seconds_of);
    let posts_per_author = (posting.as_secs_f64() * args.rate) as u64;
    let base = Schedule::new(started, args.rate);
    let spacing = Duration::from_secs_f64(1.0 / args.rate / plans.len() as f64);
    let mut posters = Vec::with_capacity(plans.len());
    for (author, token) in authors.into_iter().enumerate() {
        let schedule = base.shifted(spacing.mul_f64(author as f64));
        posters.push(tokio::spawn(post_on_schedule(
            api.clone(),
            token,
            author,
            schedule,
            posts_per_author,
            posts_series.clone(),
        )));
    }
    let mut author_tallies = Vec::with_capacity(posters.len());
    for poster in posters {
        author_tallies.push(poster.await?);
    }
    let mut follower_tallies = Vec::with_capacity(readers.len());
    for reader in readers {
        follower_tallies.push(reader.await?);
    }
    progress.stop();
    let cpu = match (
        cpu_before,
        args.server_pid.and_then(scenario::cpu_seconds_of),
    ) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };

    // Totals, per group, and the exact loss: every acknowledged post of every followed author.
    let mut late = LateSends::default();
    let mut acknowledge_latency = report::histogram();
    let mut failed_posts = 0;
    for tally in &author_tallies {
        late.merge(&tally.late);
        failed_posts += tally.failed;
        let _ = acknowledge_latency.add(&tally.acknowledge_latency);
    }
    let acknowledged: usize = author_tallies.iter().map(|t| t.acknowledged.len()).sum();
    let mut latency = report::histogram();
    let mut group_latency: Vec<Histogram<u64>> =
        (0..group_count).map(|_| report::histogram()).collect();
    let mut group_missing = vec![0u64; group_count];
    let (mut deliveries, mut duplicated, mut out_of_order, mut last_arrival) = (0, 0, 0, 0);
    for (tally, follows) in follower_tallies.iter().zip(followed_by.iter()) {
        deliveries += tally.check.deliveries;
        duplicated += tally.check.duplicated;
        out_of_order += tally.check.out_of_order;
        last_arrival = last_arrival.max(tally.last_arrival_micros);
        for (group, h) in tally.by_group.iter().enumerate() {
            if let Some(h) = h {
                let _ = latency.add(h);
                let _ = group_latency[group].add(h);
            }
        }
        for &author in follows {
            let keys: Vec<u64> = author_tallies[author]
                .acknowledged
                .iter()
                .map(|&seq| post_key(author, seq))
                .collect();
            group_missing[group_of[author]] += tally.check.missing(&keys);
        }
    }
    let expected: usize = plans
        .iter()
        .zip(&author_tallies)
        .map(|(p, t)| p.followers.len() * t.acknowledged.len())
        .sum();
    let delivering_seconds =
        last_arrival.saturating_sub(base.wall_micros(started)) as f64 / 1_000_000.0;
    let group_reports = groups
        .0
        .iter()
        .enumerate()
        .map(|(g, spec)| {
            let members: Vec<usize> = (0..plans.len()).filter(|&a| plans[a].group == g).collect();
            GroupReport {
                audience: match spec.audience {
                    Audience::All => "all".into(),
                    Audience::Followers(n) => n.to_string(),
                },
                followers_per_author: members.first().map_or(0, |&a| plans[a].followers.len()),
                authors: spec.authors,
                posts: members
                    .iter()
                    .map(|&a| author_tallies[a].acknowledged.len())
                    .sum(),
                expected_deliveries: members
                    .iter()
                    .map(|&a| plans[a].followers.len() * author_tallies[a].acknowledged.len())
                    .sum(),
                deliveries: group_latency[g].len(),
                missing: group_missing[g],
                latency: report::latency(&group_latency[g]),
            }
        })
        .collect();
    let validity = late.validity();
    let report = Report {
        scenario: "fanout",
        followers: args.followers,
        posts: acknowledged,
        expected_deliveries: expected,
        deliveries,
        deliveries_per_second: deliveries as f64 / delivering_seconds.max(0.001),
        missing: group_missing.iter().sum(),
        duplicated,
        out_of_order,
        late_sends: late.late,
        latency: report::latency(&latency),
        server_cpu_seconds: cpu,
        deliveries_per_server_cpu_second: cpu.map(|c| deliveries as f64 / c.max(0.001)),
        server_rss_before_connect_bytes: rss_before,
        server_rss_idle_connected_bytes: rss_idle,
        bytes_per_idle_connection: match (rss_before, rss_idle) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / args.followers as f64),
            _ => None,
        },
        authors: groups.to_string(),
        author_count: plans.len(),
        rate_per_author: args.rate,
        seconds: args.seconds,
        sends: late.sends,
        failed_posts,
        late_send_share: late.share(),
        worst_send_lag_ms: late.worst_lag_micros as f64 / 1000.0,
        validity,
        post_acknowledged: report::latency(&acknowledge_latency),
        groups: group_reports,
    };
    print_report(&report, &api).await;
    println!("{}", serde_json::to_string(&report)?);
    run.finish(&report)
}

/// One author: a post per slot of its schedule, each sent without waiting for the last.
async fn post_on_schedule(
    api: client::Client,
    token: String,
    author: usize,
    schedule: Schedule,
    posts: u64,
    series: report::Recorder,
) -> AuthorTally {
    let mut late = LateSends::default();
    let mut sends = Vec::with_capacity(usize::try_from(posts).unwrap_or_default());
    for seq in 0..posts {
        let slot = schedule.wait_for(seq).await;
        late.record(slot.lag);
        let (api, token, series) = (api.clone(), token.clone(), series.clone());
        sends.push(tokio::spawn(async move {
            let post = NewPost::new(post_body(author, seq, slot.due_wall_micros));
            let ok = api.create_post(&token, &post).await.is_ok();
            let micros = report::micros(slot.due.elapsed());
            if ok {
                series.ok(micros);
            } else {
                series.error();
            }
            (seq, ok, micros)
        }));
    }
    let mut tally = AuthorTally {
        acknowledged: Vec::with_capacity(sends.len()),
        failed: 0,
        late,
        acknowledge_latency: report::histogram(),
    };
    for send in sends {
        match send.await {
            Ok((seq, true, micros)) => {
                tally.acknowledged.push(seq);
                let _ = tally.acknowledge_latency.record(micros);
            }
            _ => tally.failed += 1,
        }
    }
    tally
}

/// One follower: reads posts until `quiet` passes without one after the posting ended.
async fn follow_posts(
    mut ws: client::Socket,
    group_of: Arc<Vec<usize>>,
    mut by_group: Vec<Option<Histogram<u64>>>,
    posting_end: Instant,
    quiet: Duration,
    series: report::Recorder,
) -> FollowerTally {
    let mut check = StreamCheck::default();
    let mut last_arrival_micros = 0;
    let hard_stop = posting_end + quiet + Duration::from_secs(60);
    loop {
        let listen_until = (Instant::now() + quiet)
            .max(posting_end + quiet)
            .min(hard_stop);
        let Ok(Some(Ok(message))) = tokio::time::timeout_at(listen_until.into(), ws.next()).await
        else {
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        // Taken before parsing; the parse reads only the fields it needs (a generic JSON value
        // per frame cost this one-core client more than the server spent).
        let arrived = scenario::now_micros();
        let Ok(frame) = Frame::parse(&text) else {
            continue;
        };
        if frame.kind != "post.created" {
            continue;
        }
        let Some((author, seq, due)) = parse_post_body(frame.body()) else {
            continue;
        };
        check.observe(frame.id.unwrap_or_default(), post_key(author, seq));
        last_arrival_micros = arrived;
        let group = group_of.get(author).copied().unwrap_or_default();
        let latency = arrived.saturating_sub(due).max(1);
        series.ok_at_unix_micros(arrived, latency);
        if let Some(Some(h)) = by_group.get_mut(group) {
            let _ = h.record(latency);
        }
    }
    FollowerTally {
        check,
        by_group,
        last_arrival_micros,
    }
}

async fn print_report(report: &Report, api: &client::Client) {
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
    if report.groups.len() > 1 || report.author_count > 1 {
        for g in &report.groups {
            println!(
                "fanout:   {} author(s) × {}{} followers: {} posts, {} of {} deliveries, missing {}; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
                g.authors,
                if g.audience == "all" { "all " } else { "" },
                g.followers_per_author,
                g.posts,
                g.deliveries,
                g.expected_deliveries,
                g.missing,
                g.latency.p50_ms,
                g.latency.p90_ms,
                g.latency.p99_ms,
                g.latency.p999_ms,
                g.latency.max_ms
            );
        }
    }
    if let Some(per_cpu) = report.deliveries_per_server_cpu_second {
        println!("fanout: {per_cpu:.0} deliveries per server CPU-second");
    }
    if let Some(bytes) = report.bytes_per_idle_connection {
        println!(
            "fanout: {:.1} KiB of server RSS per idle authenticated connection",
            bytes / 1024.0
        );
    }
    report.validity.shout("fanout");
    // Where the time goes: the post's acknowledgement as the author saw it, and the server's
    // own histograms (bucket upper bounds).
    println!(
        "fanout: post acknowledged (201) after its scheduled send: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report.post_acknowledged.p50_ms,
        report.post_acknowledged.p99_ms,
        report.post_acknowledged.max_ms
    );
    let metrics = api.metrics().await.unwrap_or_default();
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
        let p50 = prometheus::quantile_ms(&metrics, name, 0.5);
        let p99 = prometheus::quantile_ms(&metrics, name, 0.99);
        if let (Some(p50), Some(p99)) = (p50, p99) {
            println!("fanout: server {what}: p50 ≤ {p50:.2} ms, p99 ≤ {p99:.2} ms");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_groups_parse_counts_and_everyone() {
        let groups = parse_author_groups("10:10, 100:2,1000:1,all:1").unwrap();
        assert_eq!(
            groups.0,
            vec![
                AuthorGroup {
                    audience: Audience::Followers(10),
                    authors: 10
                },
                AuthorGroup {
                    audience: Audience::Followers(100),
                    authors: 2
                },
                AuthorGroup {
                    audience: Audience::Followers(1000),
                    authors: 1
                },
                AuthorGroup {
                    audience: Audience::All,
                    authors: 1
                },
            ]
        );
        assert_eq!(groups.to_string(), "10:10,100:2,1000:1,all:1");
        for bad in ["", "10", "x:1", "10:y", "10:0", "10:1,,5", "-1:2"] {
            assert!(parse_author_groups(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn audiences_spread_over_the_followers_and_all_is_everyone() {
        let groups = parse_author_groups("3:2,all:1,4:1").unwrap();
        let plans = plan_authors(&groups, 5).unwrap();
        let followers: Vec<Vec<usize>> = plans.iter().map(|p| p.followers.clone()).collect();
        assert_eq!(
            followers,
            vec![
                vec![0, 1, 2],
                vec![3, 4, 0],
                vec![0, 1, 2, 3, 4],
                vec![1, 2, 3, 4]
            ]
        );
        assert_eq!(
            plans.iter().map(|p| p.group).collect::<Vec<_>>(),
            vec![0, 0, 1, 2]
        );
        let too_many = parse_author_groups("6:1").unwrap();
        assert!(plan_authors(&too_many, 5).is_err());
    }

    #[test]
    fn bodies_and_keys_round_trip() {
        let body = post_body(12, 345, 1_700_000_000_000_000);
        assert_eq!(
            parse_post_body(&body),
            Some((12, 345, 1_700_000_000_000_000))
        );
        assert_eq!(parse_post_body("hello"), None);
        assert_ne!(post_key(1, 0), post_key(0, 1));
    }
}
