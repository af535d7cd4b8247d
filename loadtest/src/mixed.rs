//! `mixed`: a realistic social mix for soak runs.
//!
//! N users online, one websocket each. At a fixed open-loop total rate they read about ten
//! times as often as they write: timelines, profiles, replies and notifications; posts,
//! replies, likes, follows and unfollows; they subscribe to threads over their socket, and now
//! and then drop their socket and come back with `since=<last id>`. Every user follows a fixed
//! set of others (never unfollowed; the follow churn uses other users), so every post by those
//! authors and by the user itself must arrive exactly once and in id order, across reconnects:
//! loss is counted, and loss around a reconnect separately (resume gaps). Every
//! `--sample-secs` the server's `/health/system` (RSS, open files, CPU) and this client's
//! latency p99 per window are recorded; the report shows the per-window table and the drift
//! from the first window to the last.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use aisocial_client::{self as client, Frame, NewPost, ResumeStatus, SignedIn, SystemSample};

use crate::report::{self, Latency};
use crate::scenario::{self, LateSends, Rng, Schedule, StreamCheck, Validity};

#[derive(clap::Args, Serialize)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Users online, each with its own websocket.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Operations per second over all users (reads, writes and subscriptions; open loop).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of load (soak runs: 3600 or more).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds per sampling window (server health and this client's p99).
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Users each user follows for the whole run (their posts are checked for loss).
    #[arg(long, default_value_t = 8)]
    follows: usize,
    /// Mean seconds between one user's reconnects (0: never).
    #[arg(long, default_value_t = 20.0)]
    reconnect_every: f64,
    /// Milliseconds a reconnecting user stays away.
    #[arg(long, default_value_t = 500)]
    offline_ms: u64,
    /// Seconds at most to wait, after the load, for the last events to arrive.
    #[arg(long, default_value_t = 5)]
    drain_secs: u64,
    /// Seed of the random choices (the same seed, the same sequence of operations).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sign-ins and follows at once while setting up.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// --threshold, --json, --html, --no-progress.
    #[command(flatten)]
    output: report::Output,
}

/// What a scheduled operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Timeline,
    Profile,
    Replies,
    Notifications,
    Post,
    Reply,
    Like,
    Follow,
    Subscribe,
}

/// The mix, in parts per hundred: reads are ten times the writes.
pub const MIX: [(Op, u32); 9] = [
    (Op::Timeline, 30),
    (Op::Profile, 20),
    (Op::Replies, 20),
    (Op::Notifications, 20),
    (Op::Post, 3),
    (Op::Reply, 3),
    (Op::Like, 2),
    (Op::Follow, 1),
    (Op::Subscribe, 1),
];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Timeline => "timeline",
            Op::Profile => "profile",
            Op::Replies => "replies",
            Op::Notifications => "notifications",
            Op::Post => "post",
            Op::Reply => "reply",
            Op::Like => "like",
            Op::Follow => "follow",
            Op::Subscribe => "subscribe",
        }
    }

    pub fn is_read(self) -> bool {
        matches!(
            self,
            Op::Timeline | Op::Profile | Op::Replies | Op::Notifications
        )
    }

    pub fn is_write(self) -> bool {
        matches!(self, Op::Post | Op::Reply | Op::Like | Op::Follow)
    }
}

/// The users a user follows for the whole run: the next `follows` users, wrapping around.
pub fn follows_stably(user: usize, author: usize, users: usize, follows: usize) -> bool {
    let distance = (author + users - user) % users.max(1);
    (1..=follows).contains(&distance)
}

/// A user the follow churn may follow or unfollow: one of the users it does not follow stably
/// (`None` when there is none).
pub fn churn_target(user: usize, users: usize, follows: usize, pick: usize) -> Option<usize> {
    let others = users.checked_sub(follows + 1).filter(|&n| n > 0)?;
    Some((user + follows + 1 + pick % others) % users)
}

/// One HTTP call of the mix.
enum Action {
    Get(String),
    Create { reply_to: Option<i64> },
    Like(i64),
    Follow { handle: String, on: bool },
}

/// What a connection is told to do.
enum Command {
    Subscribe(i64),
    Reconnect { due: Instant },
    Stop,
}

/// A post the run created: who must see it.
struct Created {
    id: i64,
    author: usize,
    acknowledged_micros: u64,
}

#[derive(Default)]
struct KindStats {
    count: u64,
    errors: u64,
    statuses: BTreeMap<String, u64>,
    latency: Option<Histogram<u64>>,
}

/// Latencies and counts, for the whole run and the current window.
struct Stats {
    kinds: BTreeMap<&'static str, KindStats>,
    operations: Histogram<u64>,
    deliveries: Histogram<u64>,
    window_operations: Histogram<u64>,
    window_deliveries: Histogram<u64>,
    window_errors: u64,
    /// Each kind's latency in the current window (which operation a drift belongs to).
    window_kinds: BTreeMap<&'static str, Histogram<u64>>,
}

impl Stats {
    fn new() -> Self {
        Self {
            kinds: BTreeMap::new(),
            operations: report::histogram(),
            deliveries: report::histogram(),
            window_operations: report::histogram(),
            window_deliveries: report::histogram(),
            window_errors: 0,
            window_kinds: BTreeMap::new(),
        }
    }

    /// Records one operation; `in_totals` puts it in the run's and the window's latency too
    /// (reconnects are kept apart: their time is dominated by the replay).
    fn operation(
        &mut self,
        kind: &'static str,
        status: Result<u16, String>,
        micros: u64,
        in_totals: bool,
    ) {
        let entry = self.kinds.entry(kind).or_default();
        entry.count += 1;
        let ok = matches!(status, Ok(200..=299));
        let status = match status {
            Ok(code) => code.to_string(),
            Err(cause) => cause,
        };
        *entry.statuses.entry(status).or_default() += 1;
        if ok {
            let _ = entry
                .latency
                .get_or_insert_with(report::histogram)
                .record(micros);
            let _ = self
                .window_kinds
                .entry(kind)
                .or_insert_with(report::histogram)
                .record(micros);
            if in_totals {
                let _ = self.operations.record(micros);
                let _ = self.window_operations.record(micros);
            }
        } else {
            entry.errors += 1;
            self.window_errors += 1;
        }
    }

    fn delivery(&mut self, micros: u64) {
        let _ = self.deliveries.record(micros);
        let _ = self.window_deliveries.record(micros);
    }
}

/// Everything the scheduler, the operations and the connections share.
struct Shared {
    api: client::Client,
    users: Vec<SignedIn>,
    /// Each user's current (access, refresh) pair: a soak outlives access tokens, so they are
    /// rotated the way a real client does (`refresh_tokens`).
    tokens: Vec<std::sync::RwLock<(String, String)>>,
    /// Refreshes that failed (the user then signs in again).
    refresh_failures: AtomicU64,
    stats: Mutex<Stats>,
    recent_posts: Mutex<VecDeque<i64>>,
    created: Mutex<Vec<Created>>,
    in_flight: AtomicU64,
    last_delivery_micros: AtomicU64,
    /// Users whose connection has seen a durable event (and so can resume with `since`).
    users_with_cursor: AtomicU64,
    /// The per-second series, from the start of the load (nothing before is recorded).
    series: OnceLock<Series>,
}

/// The reported per-second series: operations (with `open` = users online) and live
/// deliveries.
struct Series {
    operations: report::Recorder,
    deliveries: report::Recorder,
}

impl Shared {
    /// The user's current access token.
    fn token(&self, user: usize) -> String {
        self.tokens
            .get(user)
            .map(|pair| {
                pair.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
                    .clone()
            })
            .unwrap_or_default()
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recent_post(&self, pick: usize) -> Option<i64> {
        let recent = self
            .recent_posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.get(pick % recent.len().max(1)).copied()
    }
}

/// What one user's connection saw over the run.
#[derive(Default)]
struct UserTally {
    check: StreamCheck<i64>,
    posts_seen: HashSet<i64>,
    notifications: u64,
    thread_replies: u64,
    error_frames: u64,
    reconnects: u64,
    resumed: u64,
    resync_required: u64,
    replayed: u64,
    failed_reconnects: u64,
    server_closes: BTreeMap<String, u64>,
    /// Wall-clock intervals (micros) the user was away, for telling resume gaps apart, and
    /// whether it came back with a `since` (without one, what it missed is not owed to it).
    away: Vec<Away>,
    /// Reconnects without a `since` (the user had seen no durable event yet).
    reconnects_without_cursor: u64,
}

/// A time a user was away.
#[derive(Clone, Copy, Debug)]
struct Away {
    left: u64,
    back: u64,
    with_cursor: bool,
}

/// One sampling window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    pub end_secs: f64,
    pub operations: u64,
    pub operations_per_second: f64,
    pub errors: u64,
    pub operation_p99_ms: f64,
    pub deliveries: u64,
    pub delivery_p99_ms: f64,
    pub server_rss_bytes: Option<u64>,
    pub server_open_files: Option<u64>,
    pub server_cpu_percent: Option<f64>,
    pub server_websockets: Option<u64>,
    /// This client's p99 per kind of operation in the window.
    pub operation_p99_by_kind_ms: BTreeMap<String, f64>,
    /// The server's own mean time per route in the window (from its
    /// `aisocial_http_request_duration_seconds` sum and count): where the client's time went.
    pub server_mean_by_route_ms: BTreeMap<String, f64>,
}

/// First window against last: what grew over the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Drift {
    pub windows: usize,
    pub rss_first_bytes: Option<u64>,
    pub rss_last_bytes: Option<u64>,
    pub rss_change_bytes: Option<i64>,
    pub rss_change_percent: Option<f64>,
    pub open_files_first: Option<u64>,
    pub open_files_last: Option<u64>,
    pub open_files_change: Option<i64>,
    pub operation_p99_first_ms: f64,
    pub operation_p99_last_ms: f64,
    pub operation_p99_change_percent: Option<f64>,
    pub delivery_p99_first_ms: f64,
    pub delivery_p99_last_ms: f64,
    /// Per kind of operation: (first window's p99, last window's p99).
    pub operation_p99_by_kind_ms: BTreeMap<String, (f64, f64)>,
    /// Per route: (the server's mean in the first window, in the last).
    pub server_mean_by_route_ms: BTreeMap<String, (f64, f64)>,
}

/// The drift from the first window to the last (`None` with fewer than two windows).
pub fn drift(windows: &[Window]) -> Option<Drift> {
    let (first, last) = (windows.first()?, windows.last()?);
    if windows.len() < 2 {
        return None;
    }
    let change = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(i64::try_from(b).ok()? - i64::try_from(a).ok()?),
        _ => None,
    };
    let percent = |a: f64, b: f64| (a > 0.0).then(|| (b - a) / a * 100.0);
    Some(Drift {
        windows: windows.len(),
        rss_first_bytes: first.server_rss_bytes,
        rss_last_bytes: last.server_rss_bytes,
        rss_change_bytes: change(first.server_rss_bytes, last.server_rss_bytes),
        rss_change_percent: match (first.server_rss_bytes, last.server_rss_bytes) {
            (Some(a), Some(b)) => percent(a as f64, b as f64),
            _ => None,
        },
        open_files_first: first.server_open_files,
        open_files_last: last.server_open_files,
        open_files_change: change(first.server_open_files, last.server_open_files),
        operation_p99_first_ms: first.operation_p99_ms,
        operation_p99_last_ms: last.operation_p99_ms,
        operation_p99_change_percent: percent(first.operation_p99_ms, last.operation_p99_ms),
        delivery_p99_first_ms: first.delivery_p99_ms,
        delivery_p99_last_ms: last.delivery_p99_ms,
        operation_p99_by_kind_ms: pair_up(
            &first.operation_p99_by_kind_ms,
            &last.operation_p99_by_kind_ms,
        ),
        server_mean_by_route_ms: pair_up(
            &first.server_mean_by_route_ms,
            &last.server_mean_by_route_ms,
        ),
    })
}

/// The keys both maps have, with the value in each.
fn pair_up(
    first: &BTreeMap<String, f64>,
    last: &BTreeMap<String, f64>,
) -> BTreeMap<String, (f64, f64)> {
    first
        .iter()
        .filter_map(|(k, a)| last.get(k).map(|b| (k.clone(), (*a, *b))))
        .collect()
}

/// Each route's (seconds, requests) so far, from the server's Prometheus text: the sum and count
/// of `aisocial_http_request_duration_seconds`, keyed `METHOD route`.
pub fn route_totals(metrics: &str) -> BTreeMap<String, (f64, f64)> {
    const NAME: &str = "aisocial_http_request_duration_seconds_";
    let label = |labels: &str, name: &str| -> Option<String> {
        let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
        let len = labels[start..].find('"')?;
        Some(labels[start..start + len].to_owned())
    };
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(NAME) else {
            continue;
        };
        let (is_sum, rest) = if let Some(r) = rest.strip_prefix("sum{") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("count{") {
            (false, r)
        } else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let (Some(method), Some(route), Ok(value)) = (
            label(labels, "method"),
            label(labels, "route"),
            value.trim().parse::<f64>(),
        ) else {
            continue;
        };
        let entry = totals.entry(format!("{method} {route}")).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    totals
}

/// Each route's mean in milliseconds between two `route_totals` readings (routes with requests
/// in between only).
pub fn route_means(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(route, (sum, count))| {
            let (sum0, count0) = before.get(route).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| (route.clone(), (sum - sum0) / n * 1000.0))
        })
        .collect()
}

#[derive(Serialize)]
struct KindReport {
    count: u64,
    errors: u64,
    statuses: BTreeMap<String, u64>,
    latency: Option<Latency>,
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    users: usize,
    rate: f64,
    seconds: u64,
    sample_secs: u64,
    follows_per_user: usize,
    reconnect_every_secs: f64,
    operations: u64,
    reads: u64,
    writes: u64,
    read_write_ratio: f64,
    errors: u64,
    ops: BTreeMap<String, KindReport>,
    operation_latency: Latency,
    deliveries: u64,
    delivery_latency: Latency,
    posts_created: usize,
    expected_deliveries: u64,
    missing: u64,
    resume_gaps: u64,
    duplicated: u64,
    out_of_order: u64,
    notifications: u64,
    thread_replies: u64,
    error_frames: u64,
    reconnects: u64,
    resumed: u64,
    resync_required: u64,
    replayed_events: u64,
    failed_reconnects: u64,
    /// Reconnects of users that had seen no durable event (no `since` to give).
    reconnects_without_cursor: u64,
    /// Posts such users missed while away (not owed to them; not counted as missing).
    missed_without_cursor: u64,
    /// Token-pair refreshes that failed (the user signed in again).
    token_refresh_failures: u64,
    server_closes: BTreeMap<String, u64>,
    server_before: Option<SystemSample>,
    windows: Vec<Window>,
    drift: Option<Drift>,
    late_sends: u64,
    late_send_share: f64,
    #[serde(flatten)]
    validity: Validity,
    passed: bool,
    failures: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("mixed", &args, &args.output, &Report::default())?;
    anyhow::ensure!(args.users >= 2, "--users must be at least 2");
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    anyhow::ensure!(args.sample_secs > 0, "--sample-secs must be at least 1");
    let follows = args.follows.min(args.users - 1);
    let api = client::Client::with_http(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        args.url.clone(),
    );
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let handles = (0..args.users)
        .map(|n| format!("mx_{run_id}_{n}"))
        .collect();
    let users = api.sign_in_all(handles, args.setup_concurrency).await?;
    println!(
        "mixed: {} users (each following {follows}), {} operations/s for {} s, windows of {} s; connecting",
        args.users, args.rate, args.seconds, args.sample_secs
    );
    let tokens = users
        .iter()
        .map(|u| std::sync::RwLock::new((u.token.clone(), u.refresh.clone())))
        .collect();
    let shared = Arc::new(Shared {
        api: api.clone(),
        tokens,
        refresh_failures: AtomicU64::new(0),
        users,
        stats: Mutex::new(Stats::new()),
        recent_posts: Mutex::new(VecDeque::new()),
        created: Mutex::new(Vec::new()),
        in_flight: AtomicU64::new(0),
        last_delivery_micros: AtomicU64::new(0),
        users_with_cursor: AtomicU64::new(0),
        series: OnceLock::new(),
    });
    let offline = Duration::from_millis(args.offline_ms);
    let mut commands = Vec::with_capacity(args.users);
    let mut connections = Vec::with_capacity(args.users);
    for user in 0..args.users {
        let (ws, _hello) = shared.api.open_feed(&shared.token(user), None).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        connections.push(tokio::spawn(connection(
            user,
            ws,
            shared.clone(),
            rx,
            offline,
        )));
    }
    // The follows come once everyone is online: each follow notifies its followee, so every
    // user has seen a durable event, and holds a `since`, before the first reconnect.
    let mut stable = Vec::new();
    for (user, signed) in shared.users.iter().enumerate() {
        for author in (1..=follows).map(|d| (user + d) % args.users) {
            stable.push((signed.token.clone(), shared.users[author].handle.clone()));
        }
    }
    api.follow_all(stable, args.setup_concurrency).await?;
    let cursors_by = Instant::now() + Duration::from_secs(10);
    while shared.users_with_cursor.load(Ordering::Relaxed) < args.users as u64
        && Instant::now() < cursors_by
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server_before = api.system_sample().await.ok();

    let started = Instant::now() + Duration::from_millis(100);
    let load = Duration::from_secs(args.seconds);
    let series = Series {
        operations: run.recorder("operations"),
        deliveries: run.recorder("deliveries"),
    };
    series.operations.set_open(args.users as i64);
    let progress = run.progress("mixed", "ops", Some(load), &series.operations);
    let _ = shared.series.set(series);
    let refresher = tokio::spawn(refresh_tokens(shared.clone()));
    let sampler = tokio::spawn(sample_windows(
        shared.clone(),
        started,
        load,
        Duration::from_secs(args.sample_secs),
        server_before,
    ));
    let reconnects = (args.reconnect_every > 0.0).then(|| {
        let schedule = Schedule::new(started, args.users as f64 / args.reconnect_every);
        let total = schedule.sends_within(load);
        let commands = commands.clone();
        tokio::spawn(async move {
            let mut late = LateSends::default();
            for n in 0..total {
                let slot = schedule.wait_for(n).await;
                late.record(slot.lag);
                let user = usize::try_from(n).unwrap_or_default() % commands.len();
                let _ = commands[user].send(Command::Reconnect { due: slot.due });
            }
            late
        })
    });

    // The open-loop mix.
    let schedule = Schedule::new(started, args.rate);
    let total = schedule.sends_within(load);
    let mut rng = Rng::new(args.seed);
    let mut churn: Vec<HashSet<usize>> = vec![HashSet::new(); args.users];
    let weights: Vec<u32> = MIX.iter().map(|&(_, w)| w).collect();
    let mut late = LateSends::default();
    let mut subscriptions = 0;
    for n in 0..total {
        let slot = schedule.wait_for(n).await;
        late.record(slot.lag);
        let user = rng.below(args.users);
        let op = MIX[rng.weighted(&weights)].0;
        let pick = rng.below(usize::MAX);
        let (op, action) = match op {
            Op::Timeline => (op, Action::Get("/api/v1/timeline".into())),
            Op::Notifications => (op, Action::Get("/api/v1/notifications".into())),
            Op::Profile => {
                let handle = &shared.users[pick % args.users].handle;
                (op, Action::Get(format!("/api/v1/users/{handle}")))
            }
            Op::Replies => match shared.recent_post(pick) {
                Some(post) => (op, Action::Get(format!("/api/v1/posts/{post}/replies"))),
                None => (Op::Timeline, Action::Get("/api/v1/timeline".into())),
            },
            Op::Post => (op, Action::Create { reply_to: None }),
            Op::Reply => match shared.recent_post(pick) {
                Some(post) => (
                    op,
                    Action::Create {
                        reply_to: Some(post),
                    },
                ),
                None => (Op::Post, Action::Create { reply_to: None }),
            },
            Op::Like => match shared.recent_post(pick) {
                Some(post) => (op, Action::Like(post)),
                None => (Op::Post, Action::Create { reply_to: None }),
            },
            Op::Follow => match churn_target(user, args.users, follows, pick) {
                Some(target) => {
                    let on = churn[user].insert(target);
                    if !on {
                        churn[user].remove(&target);
                    }
                    let handle = shared.users[target].handle.clone();
                    (op, Action::Follow { handle, on })
                }
                None => (Op::Timeline, Action::Get("/api/v1/timeline".into())),
            },
            Op::Subscribe => {
                if let Some(post) = shared.recent_post(pick) {
                    let _ = commands[user].send(Command::Subscribe(post));
                    subscriptions += 1;
                }
                continue;
            }
        };
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(perform(shared.clone(), user, op, action, slot));
    }
    if let Some(reconnects) = reconnects {
        late.merge(&reconnects.await?);
    }
    // The last operations finish, then the last events arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let windows = sampler.await?;
    progress.stop();
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while Instant::now() < drain_until {
        let quiet_for = scenario::now_micros()
            .saturating_sub(shared.last_delivery_micros.load(Ordering::Relaxed));
        if quiet_for > 2_000_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for tx in &commands {
        let _ = tx.send(Command::Stop);
    }
    refresher.abort();
    let mut tallies = Vec::with_capacity(connections.len());
    for connection in connections {
        tallies.push(connection.await?);
    }

    let report = build_report(
        &args,
        follows,
        &shared,
        &tallies,
        windows,
        server_before,
        late,
        subscriptions,
    );
    print_report(&report);
    println!("{}", serde_json::to_string(&report)?);
    run.finish(&report)
}

#[expect(clippy::too_many_arguments, reason = "one call, every figure named")]
fn build_report(
    args: &Args,
    follows: usize,
    shared: &Shared,
    tallies: &[UserTally],
    windows: Vec<Window>,
    server_before: Option<SystemSample>,
    late: LateSends,
    subscriptions: u64,
) -> Report {
    let created = shared
        .created
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (mut expected, mut missing, mut resume_gaps, mut excused) = (0, 0, 0, 0);
    for (user, tally) in tallies.iter().enumerate() {
        for post in created
            .iter()
            .filter(|p| p.author == user || follows_stably(user, p.author, args.users, follows))
        {
            if tally.posts_seen.contains(&post.id) {
                expected += 1;
                continue;
            }
            // Missing: around which time away, if any (a second of slack each side for the
            // commit before the acknowledgement and the replay after hello).
            let slack = 1_000_000;
            let around = tally.away.iter().find(|a| {
                post.acknowledged_micros + slack >= a.left
                    && post.acknowledged_micros <= a.back + slack
            });
            match around {
                Some(away) if !away.with_cursor => excused += 1,
                Some(_) => {
                    expected += 1;
                    missing += 1;
                    resume_gaps += 1;
                }
                None => {
                    expected += 1;
                    missing += 1;
                }
            }
        }
    }
    let stats = shared.stats();
    let mut ops = BTreeMap::new();
    let (mut reads, mut writes, mut errors, mut operations) = (0, 0, 0, 0);
    for &(op, _) in &MIX {
        let Some(kind) = stats.kinds.get(op.name()) else {
            continue;
        };
        operations += kind.count;
        errors += kind.errors;
        if op.is_read() {
            reads += kind.count;
        }
        if op.is_write() {
            writes += kind.count;
        }
        ops.insert(
            op.name().to_owned(),
            KindReport {
                count: kind.count,
                errors: kind.errors,
                statuses: kind.statuses.clone(),
                latency: kind.latency.as_ref().map(report::latency),
            },
        );
    }
    if let Some(kind) = stats.kinds.get("reconnect") {
        ops.insert(
            "reconnect".into(),
            KindReport {
                count: kind.count,
                errors: kind.errors,
                statuses: kind.statuses.clone(),
                latency: kind.latency.as_ref().map(report::latency),
            },
        );
    }
    ops.insert(
        "subscribe".into(),
        KindReport {
            count: subscriptions,
            errors: 0,
            statuses: BTreeMap::new(),
            latency: None,
        },
    );
    let sum = |f: fn(&UserTally) -> u64| tallies.iter().map(f).sum::<u64>();
    let mut server_closes: BTreeMap<String, u64> = BTreeMap::new();
    for tally in tallies {
        for (code, n) in &tally.server_closes {
            *server_closes.entry(code.clone()).or_default() += n;
        }
    }
    let duplicated = sum(|t| t.check.duplicated);
    let out_of_order = sum(|t| t.check.out_of_order);
    let validity = late.validity();
    let drift = drift(&windows);
    let mut failures = Vec::new();
    if missing + duplicated + out_of_order > 0 {
        failures.push(format!(
            "{missing} missing ({resume_gaps} around a reconnect), {duplicated} duplicated, {out_of_order} out of order"
        ));
    }
    if errors > 0 {
        failures.push(format!("{errors} operations failed"));
    }
    if sum(|t| t.failed_reconnects) > 0 {
        failures.push(format!(
            "{} reconnects failed",
            sum(|t| t.failed_reconnects)
        ));
    }
    if !validity.valid {
        failures.push("late sends: the run is invalid".into());
    }
    Report {
        scenario: "mixed",
        users: args.users,
        rate: args.rate,
        seconds: args.seconds,
        sample_secs: args.sample_secs,
        follows_per_user: follows,
        reconnect_every_secs: args.reconnect_every,
        operations,
        reads,
        writes,
        read_write_ratio: reads as f64 / writes.max(1) as f64,
        errors,
        ops,
        operation_latency: report::latency(&stats.operations),
        deliveries: stats.deliveries.len(),
        delivery_latency: report::latency(&stats.deliveries),
        posts_created: created.len(),
        expected_deliveries: expected,
        missing,
        resume_gaps,
        duplicated,
        out_of_order,
        notifications: sum(|t| t.notifications),
        thread_replies: sum(|t| t.thread_replies),
        error_frames: sum(|t| t.error_frames),
        reconnects: sum(|t| t.reconnects),
        resumed: sum(|t| t.resumed),
        resync_required: sum(|t| t.resync_required),
        replayed_events: sum(|t| t.replayed),
        failed_reconnects: sum(|t| t.failed_reconnects),
        reconnects_without_cursor: sum(|t| t.reconnects_without_cursor),
        missed_without_cursor: excused,
        token_refresh_failures: shared.refresh_failures.load(Ordering::Relaxed),
        server_closes,
        server_before,
        windows,
        drift,
        late_sends: late.late,
        late_send_share: late.share(),
        passed: failures.is_empty(),
        validity,
        failures,
    }
}

/// Rotates every user's token pair at two thirds of the access token's life, spread over that
/// time, as a real client does; a failed refresh signs the user in again (and is counted).
async fn refresh_tokens(shared: Arc<Shared>) {
    let life = shared.users.first().map_or(900, |u| u.expires_in).max(60);
    let every = Duration::from_secs(life * 2 / 3);
    let users = shared.users.len().max(1);
    let gap = every / u32::try_from(users).unwrap_or(u32::MAX);
    loop {
        tokio::time::sleep(every.saturating_sub(gap * u32::try_from(users).unwrap_or(0))).await;
        for user in 0..users {
            tokio::time::sleep(gap).await;
            let refresh_token = shared
                .tokens
                .get(user)
                .map(|p| p.read().unwrap_or_else(PoisonError::into_inner).1.clone())
                .unwrap_or_default();
            let renewed = match shared.api.refresh(&refresh_token).await {
                Ok(pair) => Some((pair.access_token, pair.refresh_token)),
                Err(_) => {
                    shared.refresh_failures.fetch_add(1, Ordering::Relaxed);
                    let handle = &shared.users[user].handle;
                    shared
                        .api
                        .sign_in_dev(handle)
                        .await
                        .ok()
                        .map(|s| (s.token, s.refresh))
                }
            };
            if let (Some(pair), Some(slot)) = (renewed, shared.tokens.get(user)) {
                *slot.write().unwrap_or_else(PoisonError::into_inner) = pair;
            }
        }
    }
}

/// One operation of the mix, timed from its scheduled start.
async fn perform(shared: Arc<Shared>, user: usize, op: Op, action: Action, slot: scenario::Slot) {
    let token = shared.token(user);
    let api = &shared.api;
    let request = match &action {
        Action::Get(path) => api.get_request(&token, path),
        Action::Create { reply_to } => {
            let body = format!("mixed {}", slot.due_wall_micros);
            let post = NewPost {
                reply_to: *reply_to,
                ..NewPost::new(body)
            };
            api.create_post_request(&token, &post)
        }
        Action::Like(post) => api.like_request(&token, *post),
        Action::Follow { handle, on: true } => api.follow_request(&token, handle),
        Action::Follow { handle, on: false } => api.unfollow_request(&token, handle),
    };
    let result = request.send().await;
    let micros = report::micros(slot.due.elapsed());
    let status = match result {
        Ok(res) => {
            let code = res.status().as_u16();
            if code == 201
                && matches!(action, Action::Create { .. })
                && let Ok(post) = res.json::<serde_json::Value>().await
                && let Some(id) = post["id"].as_i64()
            {
                let acknowledged_micros = scenario::now_micros();
                {
                    let mut recent = shared
                        .recent_posts
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    recent.push_front(id);
                    recent.truncate(1000);
                }
                shared
                    .created
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Created {
                        id,
                        author: user,
                        acknowledged_micros,
                    });
            }
            Ok(code)
        }
        Err(e) if e.is_timeout() => Err("timeout".to_owned()),
        Err(_) => Err("connection".to_owned()),
    };
    if let Some(series) = shared.series.get() {
        if matches!(status, Ok(200..=299)) {
            series.operations.ok(micros);
        } else {
            series.operations.error();
        }
    }
    shared.stats().operation(op.name(), status, micros, true);
    shared.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// One user's websocket over the run: reads every frame, subscribes when told, reconnects
/// with `since` when told (or when the server closes it), until told to stop.
async fn connection(
    user: usize,
    mut ws: client::Socket,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    offline: Duration,
) -> UserTally {
    let mut tally = UserTally::default();
    let mut topics: VecDeque<i64> = VecDeque::new();
    let mut replay_left = 0;
    loop {
        let reconnect_due = tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Stop) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    return tally;
                }
                Some(Command::Subscribe(post)) => {
                    if topics.len() >= 10
                        && let Some(oldest) = topics.pop_front()
                    {
                        let frame = client::Op::unsubscribe_thread(oldest).to_message();
                        let _ = ws.send(frame).await;
                    }
                    let frame = client::Op::subscribe_thread(post).to_message();
                    let _ = ws.send(frame).await;
                    topics.push_back(post);
                    continue;
                }
                Some(Command::Reconnect { due }) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    Some(due)
                }
            },
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    on_frame(&text, &shared, &mut tally, &mut replay_left);
                    continue;
                }
                Some(Ok(message)) => match client::close_code(&message) {
                    Some(code) => {
                        *tally.server_closes.entry(code.to_string()).or_default() += 1;
                        None
                    }
                    None => continue,
                },
                Some(Err(_)) => {
                    *tally.server_closes.entry("error".into()).or_default() += 1;
                    None
                }
                None => {
                    *tally.server_closes.entry("eof".into()).or_default() += 1;
                    None
                }
            },
        };
        // Away, then back with `since`: what was missed comes first, in order.
        let online = shared.series.get().map(|s| &s.operations);
        if let Some(online) = online {
            online.add_open(-1);
        }
        let left = scenario::now_micros();
        tokio::time::sleep(offline).await;
        let with_cursor = tally.check.last_id().is_some();
        if !with_cursor {
            tally.reconnects_without_cursor += 1;
        }
        let mut reopened = None;
        for attempt in 0..5 {
            let token = shared.token(user);
            match shared.api.open_feed(&token, tally.check.last_id()).await {
                Ok(session) => {
                    reopened = Some(session);
                    break;
                }
                Err(_) => {
                    tally.failed_reconnects += 1;
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        let Some((new_ws, hello)) = reopened else {
            return tally;
        };
        ws = new_ws;
        if let Some(online) = online {
            online.add_open(1);
        }
        tally.away.push(Away {
            left,
            back: scenario::now_micros(),
            with_cursor,
        });
        tally.reconnects += 1;
        tally.replayed += hello.replayed();
        replay_left = hello.replayed();
        match hello.resume_status() {
            ResumeStatus::Resumed => tally.resumed += 1,
            ResumeStatus::ResyncRequired => tally.resync_required += 1,
            ResumeStatus::Fresh | ResumeStatus::Unknown => {}
        }
        if let Some(due) = reconnect_due {
            // From when the reconnect was due to start (after the time away) to hello.
            let micros = report::micros((due + offline).elapsed());
            shared
                .stats()
                .operation("reconnect", Ok(200), micros, false);
        }
        for topic in &topics {
            let frame = client::Op::subscribe_thread(*topic).to_message();
            let _ = ws.send(frame).await;
        }
    }
}

/// Reads one frame into the user's tally (and the delivery latency of live posts).
fn on_frame(text: &str, shared: &Shared, tally: &mut UserTally, replay_left: &mut u64) {
    let arrived = scenario::now_micros();
    let Ok(frame) = Frame::parse(text) else {
        return;
    };
    if frame.id.is_some() && tally.check.last_id().is_none() {
        shared.users_with_cursor.fetch_add(1, Ordering::Relaxed);
    }
    let replayed = frame.id.is_some() && *replay_left > 0;
    if replayed {
        *replay_left -= 1;
    }
    match frame.kind {
        "post.created" => {
            let id = frame.id.unwrap_or_default();
            tally.check.observe(id, id);
            if let Some(post) = frame.post_id() {
                tally.posts_seen.insert(post);
            }
            shared
                .last_delivery_micros
                .store(arrived, Ordering::Relaxed);
            let due = frame.body().rsplit(' ').next().and_then(|d| d.parse().ok());
            if let (false, Some(due)) = (replayed, due) {
                let due: u64 = due;
                let latency = arrived.saturating_sub(due).max(1);
                if let Some(series) = shared.series.get() {
                    series.deliveries.ok_at_unix_micros(arrived, latency);
                }
                shared.stats().delivery(latency);
            }
        }
        "notification" | "post.deleted" => {
            let id = frame.id.unwrap_or_default();
            tally.check.observe(id, id);
            if frame.kind == "notification" {
                tally.notifications += 1;
            }
        }
        "thread.reply" => tally.thread_replies += 1,
        "error" => tally.error_frames += 1,
        _ => {}
    }
}

/// Every `every`, the server's health and this window's latencies, until the load ends.
async fn sample_windows(
    shared: Arc<Shared>,
    started: Instant,
    load: Duration,
    every: Duration,
    before: Option<SystemSample>,
) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut previous_cpu = before.and_then(|s| s.cpu_seconds);
    let mut previous_at = Instant::now();
    let mut previous_routes = route_totals(&shared.api.metrics().await.unwrap_or_default());
    let mut n = 1;
    loop {
        let end = (started + every * n).min(started + load);
        tokio::time::sleep_until(end.into()).await;
        let sample = shared.api.system_sample().await.unwrap_or_default();
        let routes = route_totals(&shared.api.metrics().await.unwrap_or_default());
        let server_mean_by_route_ms = route_means(&previous_routes, &routes);
        previous_routes = routes;
        let now = Instant::now();
        let (operations, deliveries, errors, kinds) = {
            let mut stats = shared.stats();
            let operations = std::mem::replace(&mut stats.window_operations, report::histogram());
            let deliveries = std::mem::replace(&mut stats.window_deliveries, report::histogram());
            let errors = std::mem::take(&mut stats.window_errors);
            let kinds = std::mem::take(&mut stats.window_kinds);
            (operations, deliveries, errors, kinds)
        };
        let operation_p99_by_kind_ms = kinds
            .iter()
            .map(|(kind, h)| ((*kind).to_owned(), report::latency(h).p99_ms))
            .collect();
        let seconds = now.duration_since(previous_at).as_secs_f64().max(0.001);
        let cpu_percent = match (previous_cpu, sample.cpu_seconds) {
            (Some(a), Some(b)) => Some((b - a) / seconds * 100.0),
            _ => None,
        };
        previous_cpu = sample.cpu_seconds.or(previous_cpu);
        previous_at = now;
        let window = Window {
            end_secs: end.duration_since(started).as_secs_f64(),
            operations: operations.len() + errors,
            operations_per_second: (operations.len() + errors) as f64 / seconds,
            errors,
            operation_p99_ms: report::latency(&operations).p99_ms,
            deliveries: deliveries.len(),
            delivery_p99_ms: report::latency(&deliveries).p99_ms,
            server_rss_bytes: sample.rss_bytes,
            server_open_files: sample.open_files,
            server_cpu_percent: cpu_percent,
            server_websockets: sample.websockets,
            operation_p99_by_kind_ms,
            server_mean_by_route_ms,
        };
        println!("mixed: {}", window_line(&window));
        println!("mixed: {}", window_detail(&window));
        windows.push(window);
        if end >= started + load {
            return windows;
        }
        n += 1;
    }
}

fn window_line(w: &Window) -> String {
    let mib = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
    format!(
        "{:>6.0} s  {:>7} ops ({:>6.0}/s)  errors {:>4}  op p99 {:>7.1} ms  {:>6} deliveries  p99 {:>7.1} ms  server RSS {:>7} MiB  open files {:>5}  CPU {:>5}%  websockets {:>5}",
        w.end_secs,
        w.operations,
        w.operations_per_second,
        w.errors,
        w.operation_p99_ms,
        w.deliveries,
        w.delivery_p99_ms,
        mib(w.server_rss_bytes),
        w.server_open_files
            .map_or("?".to_owned(), |n| n.to_string()),
        w.server_cpu_percent
            .map_or("?".to_owned(), |c| format!("{c:.0}")),
        w.server_websockets
            .map_or("?".to_owned(), |n| n.to_string()),
    )
}

/// A window's p99 per kind of operation and the server's mean per route.
fn window_detail(w: &Window) -> String {
    let kinds: Vec<String> = w
        .operation_p99_by_kind_ms
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect();
    let routes: Vec<String> = w
        .server_mean_by_route_ms
        .iter()
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    format!(
        "        p99 ms by op: {}; server mean ms by route: {}",
        kinds.join(", "),
        routes.join(", ")
    )
}

fn print_report(r: &Report) {
    println!(
        "mixed: {} users, {} operations ({} reads, {} writes: {:.1}× as many reads), {} errors; op p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.users,
        r.operations,
        r.reads,
        r.writes,
        r.read_write_ratio,
        r.errors,
        r.operation_latency.p50_ms,
        r.operation_latency.p99_ms,
        r.operation_latency.max_ms
    );
    for (name, kind) in &r.ops {
        let latency = kind.latency.as_ref().map_or(String::new(), |l| {
            format!(
                "; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            )
        });
        println!(
            "mixed:   {name:<13} {:>7} (errors {}){latency}",
            kind.count, kind.errors
        );
    }
    println!(
        "mixed: {} posts created, {} live deliveries (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms); of {} expected: missing {} (around a reconnect {}), duplicated {}, out of order {}",
        r.posts_created,
        r.deliveries,
        r.delivery_latency.p50_ms,
        r.delivery_latency.p99_ms,
        r.delivery_latency.max_ms,
        r.expected_deliveries,
        r.missing,
        r.resume_gaps,
        r.duplicated,
        r.out_of_order
    );
    println!(
        "mixed: {} reconnects ({} resumed, {} resync required, {} without a since, {} failed attempts), {} events replayed; server closes {:?}; {} notifications, {} thread replies, {} error frames",
        r.reconnects,
        r.resumed,
        r.resync_required,
        r.reconnects_without_cursor,
        r.failed_reconnects,
        r.replayed_events,
        r.server_closes,
        r.notifications,
        r.thread_replies,
        r.error_frames
    );
    println!("mixed: windows:");
    for w in &r.windows {
        println!("mixed:   {}", window_line(w));
    }
    if let Some(d) = &r.drift {
        let mib =
            |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1048576.0));
        println!(
            "mixed: drift over {} windows: server RSS {} → {} MiB ({}), open files {} → {}, op p99 {:.1} → {:.1} ms, delivery p99 {:.1} → {:.1} ms",
            d.windows,
            mib(d.rss_first_bytes),
            mib(d.rss_last_bytes),
            d.rss_change_percent
                .map_or("?".to_owned(), |p| format!("{p:+.1}%")),
            d.open_files_first.map_or("?".to_owned(), |n| n.to_string()),
            d.open_files_last.map_or("?".to_owned(), |n| n.to_string()),
            d.operation_p99_first_ms,
            d.operation_p99_last_ms,
            d.delivery_p99_first_ms,
            d.delivery_p99_last_ms
        );
        for (kind, (a, b)) in &d.operation_p99_by_kind_ms {
            println!("mixed:   {kind} p99 {a:.1} → {b:.1} ms");
        }
        for (route, (a, b)) in &d.server_mean_by_route_ms {
            println!("mixed:   server mean {route} {a:.2} → {b:.2} ms");
        }
    }
    r.validity.shout("mixed");
    if r.passed {
        println!("mixed: PASSED");
    } else {
        println!("mixed: FAILED: {}", r.failures.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_reads_ten_times_as_often_as_it_writes() {
        let reads: u32 = MIX
            .iter()
            .filter(|(op, _)| op.is_read())
            .map(|(_, w)| w)
            .sum();
        let writes: u32 = MIX
            .iter()
            .filter(|(op, _)| op.is_write())
            .map(|(_, w)| w)
            .sum();
        assert_eq!(reads, 10 * writes);
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u32>(), 100);
    }

    #[test]
    fn stable_follows_and_churn_targets_never_overlap() {
        let (users, follows) = (10, 3);
        assert!(follows_stably(8, 9, users, follows));
        assert!(follows_stably(8, 1, users, follows));
        assert!(!follows_stably(8, 2, users, follows));
        assert!(!follows_stably(8, 8, users, follows), "not oneself");
        for user in 0..users {
            for pick in 0..50 {
                let target = churn_target(user, users, follows, pick)
                    .unwrap_or_else(|| panic!("a target for {user}"));
                assert_ne!(target, user);
                assert!(!follows_stably(user, target, users, follows));
            }
        }
        assert_eq!(churn_target(0, 4, 3, 7), None, "everyone else is followed");
    }

    fn window(rss: u64, files: u64, p99: f64) -> Window {
        Window {
            server_rss_bytes: Some(rss),
            server_open_files: Some(files),
            operation_p99_ms: p99,
            delivery_p99_ms: p99 / 2.0,
            ..Window::default()
        }
    }

    #[test]
    fn route_means_come_from_the_servers_sums_and_counts() {
        let before = route_totals(
            "# HELP x\n\
             aisocial_http_request_duration_seconds_bucket{method=\"GET\",route=\"/t\",le=\"0.1\"} 9\n\
             aisocial_http_request_duration_seconds_sum{method=\"GET\",route=\"/t\"} 1\n\
             aisocial_http_request_duration_seconds_count{method=\"GET\",route=\"/t\"} 100\n",
        );
        let after = route_totals(
            "aisocial_http_request_duration_seconds_sum{route=\"/t\",method=\"GET\"} 1.5\n\
             aisocial_http_request_duration_seconds_count{route=\"/t\",method=\"GET\"} 200\n\
             aisocial_http_request_duration_seconds_sum{method=\"POST\",route=\"/p\"} 0\n\
             aisocial_http_request_duration_seconds_count{method=\"POST\",route=\"/p\"} 0\n",
        );
        let means = route_means(&before, &after);
        assert_eq!(
            means.len(),
            1,
            "a route without requests has no mean: {means:?}"
        );
        let mean = means.get("GET /t").copied().unwrap_or_default();
        assert!((mean - 5.0).abs() < 1e-9, "0.5 s over 100 requests: {mean}");
    }

    #[test]
    fn drift_compares_the_first_window_with_the_last() {
        assert_eq!(drift(&[]), None);
        assert_eq!(drift(&[window(1, 1, 1.0)]), None);
        let d = drift(&[
            window(100 << 20, 50, 10.0),
            window(300 << 20, 70, 99.0),
            window(150 << 20, 48, 15.0),
        ])
        .expect("two windows or more drift");
        assert_eq!(d.windows, 3);
        assert_eq!(d.rss_change_bytes, Some(50 << 20));
        assert_eq!(d.rss_change_percent, Some(50.0));
        assert_eq!(d.open_files_change, Some(-2));
        assert_eq!(d.operation_p99_change_percent, Some(50.0));
        assert_eq!(
            (d.delivery_p99_first_ms, d.delivery_p99_last_ms),
            (5.0, 7.5)
        );
    }
}
