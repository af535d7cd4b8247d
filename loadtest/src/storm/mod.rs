//! `storm`: N distinct users connect at once, as fast as the generator can, and keep their
//! sockets while some authors post; what the server does under that (issue 17).
//!
//! 1. Setup, before the storm (`setup`): N users signed in through the dev login and a seeded
//!    power-law follow graph made (`graph`), over HTTP, in batches, waiting out 429s.
//! 2. The storm: the clients, spread over worker processes (`fleet`, `worker`: one process
//!    cannot hold more than its open files), all start at once, each on its node (several
//!    `--url`s: clients spread over them). Each behaves as a real client (`session`): it
//!    honours 503/429 `Retry-After` with jitter, comes back after its session is closed,
//!    resumes with `since`, and records every durable id. With `--database-url`, every first
//!    session carries the log's head before the storm as its `since` (clients coming back, as
//!    after a restart), so what each must receive is exactly known; `--fresh` opens them
//!    without. Meanwhile some authors post at a modest rate (`posting`).
//! 3. Once all are connected (or the connect deadline passed), they hold for `--hold` seconds.
//!    With `--kill-node`, the last `--url`'s server (the last `--server-pid`) is SIGKILLed
//!    `--kill-after` seconds into the hold; its clients go to another node with `since`.
//! 4. Posting stops; once every client has a session again (or the settle deadline passed)
//!    and a short drain, the clients close and report. With `--database-url`, each client's
//!    ids are compared with what the event log addressed to its user (`audit`).
//!
//! The report (`summary`): connected within T, time to first hello and connect time, refusals
//! by status and retries honoured, closes by code, resume missing / duplicated / out of order,
//! and the servers' memory and CPU (`servers`, with `--server-pid`).

mod audit;
mod backoff;
mod fleet;
mod graph;
mod phases;
mod posting;
mod servers;
mod session;
mod setup;
mod summary;
mod wire;
mod worker;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

pub use worker::worker;

use crate::report;
use crate::scenario::{self, Rng};
use fleet::{Fleet, Totals};
use phases::dropped;
use session::DROPPED;
use summary::Report;
use wire::{ClientPlan, Plan};

/// Clients one worker process holds at most by default (the open-file limit is 20,000).
const CLIENTS_PER_PROCESS: usize = 9_000;

#[derive(clap::Args, Serialize)]
pub struct Args {
    /// A node's base URL; repeat it for several nodes (clients are spread over them in turn).
    #[arg(long = "url", default_value = "http://127.0.0.1:8080")]
    urls: Vec<String>,
    /// Users, each one websocket client.
    #[arg(long, default_value_t = 5000)]
    users: usize,
    /// Client processes (0: one per 9,000 clients, at least 2).
    #[arg(long, default_value_t = 0)]
    processes: usize,
    /// Source addresses for loopback nodes, one per process in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5"
    )]
    sources: Vec<IpAddr>,
    /// Seeds the follow graph, the posters and the clients' jitter.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// The popularity law's exponent: the author of rank r is followed in proportion to 1/r^zipf.
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
    /// The most authors one user follows.
    #[arg(long, default_value_t = 100)]
    max_follows: usize,
    /// Authors who post during the storm: half of them the most followed, half drawn at random.
    #[arg(long, default_value_t = 8)]
    posters: usize,
    /// Posts per second, all posters together.
    #[arg(long, default_value_t = 4.0)]
    post_rate: f64,
    /// Seconds every client keeps its session once all are connected.
    #[arg(long, default_value_t = 20)]
    hold: u64,
    /// Seconds to wait for every client's first session before holding anyway.
    #[arg(long, default_value_t = 120)]
    connect_deadline: u64,
    /// Seconds one attempt (TCP connect, upgrade and hello) may take.
    #[arg(long, default_value_t = 30)]
    attempt_timeout: u64,
    /// Seconds, once posting stopped, to wait for every client to have a session again.
    #[arg(long, default_value_t = 60)]
    settle_deadline: u64,
    /// Seconds to let the last deliveries arrive before the clients stop.
    #[arg(long, default_value_t = 3)]
    drain: u64,
    /// First sessions without `since` (the exactness check then starts at each client's first id).
    #[arg(long)]
    fresh: bool,
    /// The servers' pids, in `--url` order: memory and CPU from /proc (and the one to kill).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Two nodes or more: SIGKILL the last one under load; its clients resume on another.
    #[arg(long)]
    kill_node: bool,
    /// Seconds into the hold at which the node is killed.
    #[arg(long, default_value_t = 5)]
    kill_after: u64,
    /// The servers' PostgreSQL, read (never written) for the exactness check.
    #[arg(long)]
    #[serde(serialize_with = "redacted_option")]
    database_url: Option<String>,
    /// Sign-ins and follows at once while setting up.
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// --threshold, --json, --html, --no-progress.
    #[command(flatten)]
    output: report::Output,
}

fn redacted_option<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => report::redacted(url, s),
        None => s.serialize_none(),
    }
}

fn validate(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.users >= 1, "--users must be at least 1");
    anyhow::ensure!(!args.urls.is_empty(), "no --url");
    if args.kill_node {
        anyhow::ensure!(args.urls.len() >= 2, "--kill-node needs two --url or more");
        anyhow::ensure!(
            args.server_pids.len() == args.urls.len(),
            "--kill-node needs a --server-pid for each --url, in the same order"
        );
        anyhow::ensure!(
            args.database_url.is_some(),
            "--kill-node checks resume exactness: give --database-url"
        );
    }
    Ok(())
}

/// Half the posters are the most followed authors, the rest drawn at random among the others.
fn choose_posters(graph: &graph::Graph, count: usize, seed: u64) -> Vec<usize> {
    let ranked = graph.by_popularity();
    let count = count.min(ranked.len());
    let mut chosen: Vec<usize> = ranked[..count.div_ceil(2)].to_vec();
    let mut rest = ranked[count.div_ceil(2)..].to_vec();
    let mut rng = Rng::new(seed ^ 0x5EED);
    while chosen.len() < count && !rest.is_empty() {
        chosen.push(rest.swap_remove(rng.below(rest.len())));
    }
    chosen
}

/// Each worker's plan: the users in `processes` consecutive shares, each client's home node in
/// turn, each process on the next source address.
fn plans(
    args: &Args,
    users: &[setup::User],
    processes: usize,
    since: Option<i64>,
    started_unix_micros: u64,
) -> Vec<Plan> {
    let per_process = users.len().div_ceil(processes.max(1)).max(1);
    users
        .chunks(per_process)
        .enumerate()
        .map(|(p, share)| Plan {
            urls: args.urls.clone(),
            source: (!args.sources.is_empty()).then(|| args.sources[p % args.sources.len()]),
            since,
            started_unix_micros,
            attempt_timeout_ms: args.attempt_timeout * 1000,
            seed: args.seed ^ ((p as u64 + 1) << 32),
            clients: share
                .iter()
                .enumerate()
                .map(|(i, user)| {
                    let index = p * per_process + i;
                    ClientPlan {
                        index,
                        token: user.token.clone(),
                        home: index % args.urls.len(),
                    }
                })
                .collect(),
        })
        .collect()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("storm", &args, &args.output, &Report::default())?;
    validate(&args)?;
    let db = match &args.database_url {
        Some(url) => Some(audit::Database::connect(url).await?),
        None => None,
    };
    let n = args.users;
    let graph = graph::build(graph::Spec {
        users: n,
        zipf: args.zipf,
        max_follows: args.max_follows,
        seed: args.seed,
    });
    let http = setup::Http {
        // A request left unanswered this long fails the setup (the run stops by itself).
        // One node: see `setup`.
        clients: vec![aisocial_client::Client::with_http(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            &args.urls[0],
        )],
        concurrency: args.setup_concurrency,
        waited: 0.into(),
        retried: 0.into(),
    };
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let handles = (0..n).map(|i| format!("st{run_id}_{i}")).collect();
    let setup_started = Instant::now();
    let mut users = setup::sign_in_all(&http, handles).await?;
    let edges: Vec<(usize, usize)> = graph.edges().collect();
    setup::follow_all(&http, &users, &edges).await?;
    let tokens_refreshed = setup::refresh_if_old(&http, &mut users, setup_started).await?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    let head = match &db {
        Some(db) => Some(db.head().await?),
        None => None,
    };
    let since = if args.fresh { None } else { head };
    let mut degrees: Vec<usize> = graph.follows.iter().map(Vec::len).collect();
    degrees.sort_unstable();
    let posters = choose_posters(&graph, args.posters, args.seed);
    println!(
        "storm: {n} users, {} follows (the most followed has {}), {} posters at {}/s; setup took {setup_seconds:.1} s; storm on {} node(s)",
        graph.edge_count(),
        graph.followers.iter().max().copied().unwrap_or(0),
        posters.len(),
        args.post_rate,
        args.urls.len()
    );

    // The storm.
    let processes = match args.processes {
        0 => n.div_ceil(CLIENTS_PER_PROCESS).max(2).min(n),
        p => p.min(n),
    };
    let started_unix_micros = scenario::now_micros();
    let plans = plans(&args, &users, processes, since, started_unix_micros);
    let mut servers = servers::Servers::watch(&args.server_pids);
    let own_cpu_before = scenario::own_cpu_seconds();
    let connects = run.recorder("connects");
    let mut totals = Totals::new(connects.clone(), run.recorder("deliveries"));
    let posts_series = run.recorder("posts");
    let progress = run.progress("storm", "connects", None, &connects);
    let storm_started = Instant::now();
    let mut fleet = Fleet::start(&plans)?;
    let (stop_posting, posting_stopped) = tokio::sync::watch::channel(false);
    let poster = tokio::spawn(posting::post_until(
        args.urls
            .iter()
            .map(|url| {
                aisocial_client::Client::with_http(http.pool().cloned().unwrap_or_default(), url)
            })
            .collect(),
        posters.iter().map(|&p| users[p].token.clone()).collect(),
        args.post_rate,
        posting_stopped,
        posts_series,
    ));
    let timing = phases::Timing {
        connect_deadline: Duration::from_secs(args.connect_deadline),
        hold: Duration::from_secs(args.hold),
        kill: args
            .kill_node
            .then(|| (Duration::from_secs(args.kill_after), args.urls.len() - 1)),
        settle_deadline: Duration::from_secs(args.settle_deadline),
        drain: Duration::from_secs(args.drain),
    };
    let phases = phases::Watch {
        fleet: &mut fleet,
        totals: &mut totals,
        servers: &mut servers,
        users: n,
        started_unix_micros,
        started: storm_started,
    }
    .run(&timing, &stop_posting)
    .await?;
    let posts = poster.await?;
    let generator_cpu_seconds = fleet
        .pids()
        .into_iter()
        .map(scenario::cpu_seconds_of)
        .chain([scenario::own_cpu_seconds()])
        .sum::<Option<f64>>()
        .map(|total| total - own_cpu_before.unwrap_or_default());
    fleet.stop();
    let outcomes = fleet.finish(&mut totals).await;
    progress.stop();
    let mut kill = phases.kill;
    if let Some(before) = phases.dropped_before_kill {
        kill.sessions_dropped = Some(dropped(&totals).saturating_sub(before));
    }
    kill.clients_moved = outcomes.iter().map(|o| u64::from(o.moved)).sum();

    // Exactness against the log.
    let addressed = match (&db, head) {
        (Some(db), Some(head)) => {
            let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
            Some(db.addressed(head, &ids).await?)
        }
        _ => None,
    };
    let resume = summary::check(
        &outcomes,
        addressed.as_ref(),
        head.unwrap_or_default(),
        args.fresh,
        |i| users.get(i).map_or(0, |u| u.id),
    );
    let counts = &totals.counts;
    let report = Report {
        scenario: "storm",
        mode: if args.kill_node { "kill-node" } else { "storm" },
        users: n,
        nodes: args.urls.len(),
        processes: plans.len(),
        follows: edges.len(),
        most_followers: graph.followers.iter().max().copied().unwrap_or(0),
        median_follows: degrees.get(n / 2).copied().unwrap_or(0),
        setup_seconds,
        setup_refusals_waited: http.waited.load(Ordering::Relaxed),
        setup_errors_retried: http.retried.load(Ordering::Relaxed),
        tokens_refreshed,
        since,
        connected: totals.connected,
        connected_within_seconds: phases.connected_within_seconds,
        time_to_first_hello: report::latency(&totals.time_to_first_hello),
        connect_time: report::latency(&totals.connect_time),
        sessions_opened: totals.sessions,
        peak_open: totals.peak_open,
        open_at_stop: phases.open_at_stop,
        refusals: counts.refusals.clone(),
        refusals_without_retry_after: counts.refusals_without_retry_after,
        retries_honoured: counts.retries_honoured,
        failures: counts.failures.clone(),
        closes: counts.closes.clone(),
        sessions_closed_by_server: counts
            .closes
            .iter()
            .filter(|(code, _)| code.as_str() != DROPPED)
            .map(|(_, n)| n)
            .sum(),
        sessions_dropped: dropped(&totals),
        clients_gave_up: counts.gave_up,
        deliveries: counts.deliveries,
        resume,
        kill,
        posts,
        server_rss_before_bytes: servers.total(|s| s.rss_before_bytes),
        server_rss_peak_bytes: servers.total(|s| s.rss_peak_bytes),
        server_cpu_seconds: servers.total(|s| s.cpu_seconds),
        servers: servers.reports(),
        generator_cpu_seconds,
        storm_seconds: phases.storm_seconds,
        clients_unreported: n.saturating_sub(outcomes.len()),
    };
    summary::print(&report);
    run.finish(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posters_are_the_most_followed_and_some_others() {
        let graph = graph::build(graph::Spec {
            users: 1_000,
            zipf: 1.0,
            max_follows: 50,
            seed: 5,
        });
        let ranked = graph.by_popularity();
        let posters = choose_posters(&graph, 8, 5);
        assert_eq!(posters.len(), 8);
        assert_eq!(posters[..4], ranked[..4]);
        let mut distinct = posters.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
        assert_eq!(posters, choose_posters(&graph, 8, 5), "seeded");
        assert_eq!(choose_posters(&graph, 5_000, 5).len(), 1_000);
    }
}
