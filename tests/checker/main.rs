//! The delivery checker, a randomized multi-node set test in the manner of Jepsen: three real
//! nodes on a private PostgreSQL and a private Redis, writers posting, replying, liking,
//! following, unfollowing and deleting through random nodes, a websocket reader per user that
//! reconnects at random with `since`, and a nemesis pausing and killing Redis, stopping and
//! killing nodes and restarting PostgreSQL, one fault at a time. At the end every reader catches
//! up, and the oracle (`oracle.rs`) derives from the event log alone which ids each one had to
//! receive: each exactly once, in increasing order, nothing else (DESIGN.md §3).
//!
//! `cargo test --test checker -- --nocapture`; `CHECKER_SEED` (default 42: every random choice
//! comes from it), `CHECKER_SECONDS` (workload length, default 45, at most 600 so that the
//! access tokens outlive the run), `CHECKER_FAULTS` (`all`, `none`, or e.g.
//! `redis-pause,node-kill`), `CHECKER_FOLLOWS` (`churn`, the default, or `fixed`: no follow
//! changes during the run, for a server that writes no `route.follow` records),
//! `CHECKER_REPORT` (a path for the JSON report), `CHECKER_INJECT_LOSS=1` (drops one received
//! id before judging, to see the checker fail). `scripts/checker.sh` runs it for longer.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../faults/private_postgres.rs"]
mod private_postgres;

mod cluster;
mod nemesis;
mod oracle;
mod readers;
mod report;
mod workload;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::{SeedableRng, rngs::StdRng};
use tokio::sync::watch;
use tokio_postgres::GenericClient;

use cluster::{Cluster, DATABASE};
use nemesis::{FaultKind, Nemesis};
use oracle::{LogEvent, Pair, Start};
use readers::Phase;
use report::Report;
use workload::{User, Workload};

const NODES: usize = 3;
const WRITERS: usize = 12;
const READERS: usize = 32;

/// The run's settings, from the environment.
struct Config {
    seed: u64,
    seconds: u64,
    faults: Vec<FaultKind>,
    follow_churn: bool,
    report: Option<String>,
    inject_loss: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            env(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
            })
        };
        let seed = number("CHECKER_SEED", 42);
        let seconds = number("CHECKER_SECONDS", 45);
        assert!(
            (1..=600).contains(&seconds),
            "seed={seed}: CHECKER_SECONDS={seconds} is outside 1–600 (tokens live 900 s; \
             scripts/checker.sh runs longer as consecutive runs)"
        );
        let faults = FaultKind::parse_list(&env("CHECKER_FAULTS").unwrap_or_default())
            .unwrap_or_else(|e| panic!("seed={seed}: CHECKER_FAULTS: {e}"));
        let follow_churn = match env("CHECKER_FOLLOWS").as_deref() {
            None | Some("churn") => true,
            Some("fixed") => false,
            Some(other) => panic!("seed={seed}: CHECKER_FOLLOWS={other:?}: churn or fixed"),
        };
        Self {
            seed,
            seconds,
            faults,
            follow_churn,
            report: env("CHECKER_REPORT"),
            inject_loss: env("CHECKER_INJECT_LOSS").is_some_and(|v| v != "0"),
        }
    }
}

/// Signs every user in (writers first) through node 0; ids from the database.
async fn sign_in(http: &reqwest::Client, node: &str, db: &tokio_postgres::Client) -> Vec<User> {
    let handles: Vec<String> = (0..WRITERS)
        .map(|n| format!("writer_{n:02}"))
        .chain((0..READERS).map(|n| format!("reader_{n:02}")))
        .collect();
    let mut users = Vec::new();
    for handle in &handles {
        let token = helpers::dev_token(http, &format!("http://{node}"), handle).await;
        assert!(!token.is_empty(), "dev sign-in of {handle} was refused");
        users.push(User {
            id: 0,
            handle: handle.clone(),
            token,
        });
    }
    let rows = db
        .query(
            "SELECT id, handle FROM users WHERE handle = ANY($1)",
            &[&handles],
        )
        .await
        .unwrap();
    for row in rows {
        let handle: String = row.get(1);
        if let Some(user) = users.iter_mut().find(|u| u.handle == handle) {
            user.id = row.get(0);
        }
    }
    assert!(users.iter().all(|u| u.id > 0), "every user has an id");
    users
}

async fn follow_table(db: &impl GenericClient) -> BTreeSet<Pair> {
    db.query("SELECT follower_id, followee_id FROM follows", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn log_head(db: &impl GenericClient) -> i64 {
    db.query_one("SELECT last_id FROM event_counter", &[])
        .await
        .map(|r| r.get(0))
        .unwrap()
}

/// The head and the follow table in one snapshot.
async fn snapshot(db: &mut tokio_postgres::Client) -> Start {
    let tx = db
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let last_id = log_head(&tx).await;
    let follows = follow_table(&tx).await;
    tx.commit().await.unwrap();
    Start { last_id, follows }
}

async fn read_log(db: &tokio_postgres::Client, after: i64, head: i64) -> Vec<LogEvent> {
    db.query(
        "SELECT id, kind, author_id, recipient_id, payload FROM events \
         WHERE id > $1 AND id <= $2 ORDER BY id",
        &[&after, &head],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| LogEvent {
        id: r.get(0),
        kind: r.get(1),
        author: r.get(2),
        recipient: r.get(3),
        payload: r.get(4),
    })
    .collect()
}

/// Waits until every node answers ready; the ones that never did.
async fn wait_ready(http: &reqwest::Client, nodes: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut late = Vec::new();
    for node in nodes {
        loop {
            let ready = http
                .get(format!("http://{node}/health/ready"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                late.push(format!("node {node} not ready 60 s after the last fault"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    late
}

#[actix_web::test]
async fn every_reader_gets_exactly_its_events_in_order_under_random_faults() {
    let config = Config::from_env();
    let seed = config.seed;
    let began = Instant::now();
    println!(
        "checker: seed={seed} seconds={} faults={:?} follows={}",
        config.seconds,
        config.faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        if config.follow_churn {
            "churn"
        } else {
            "fixed"
        }
    );
    aisocial::install_crypto_provider();
    let cluster = Cluster::start(NODES).await;
    let topology = cluster.topology();
    let pg = Arc::clone(&cluster.pg);
    let mut db = pg.client(DATABASE).await;
    helpers::wait_for_channel_subscribers(
        &topology.redis_url,
        &format!("{}events", topology.redis_prefix),
        NODES as i64,
    )
    .await;
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let users = sign_in(&http, &topology.nodes[0], &db).await;
    let workload = Arc::new(Workload {
        http: http.clone(),
        nodes: topology.nodes.clone(),
        users: users.clone(),
        writers: WRITERS,
        follow_churn: config.follow_churn,
        posts: Default::default(),
        follows: Default::default(),
        stop: Default::default(),
        acked: Default::default(),
        failures: Default::default(),
    });
    let mut rng = StdRng::seed_from_u64(seed);
    workload.initial_follows(&mut rng, seed).await;
    // Let the follow changes reach every broker before the run's start is taken.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = snapshot(&mut db).await;
    println!(
        "checker: seed={seed} {} users, {} follows, start at event {}",
        users.len(),
        start.follows.len(),
        start.last_id
    );

    // Readers first, from the start; then faults and writes.
    let (phase, phase_rx) = watch::channel(Phase::Run);
    let progress = Arc::new(readers::Progress::default());
    let readers: Vec<_> = users
        .iter()
        .map(|user| {
            readers::spawn(
                user.clone(),
                topology.nodes.clone(),
                start.last_id,
                seed,
                phase_rx.clone(),
                Arc::clone(&progress),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while progress.started.load(Ordering::Relaxed) < users.len() {
        assert!(
            Instant::now() < deadline,
            "seed={seed}: readers not all connected after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workload_began = Instant::now();
    let nemesis = Nemesis::start(cluster, seed, config.faults.clone(), workload_began);
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| actix_rt::spawn(Arc::clone(&workload).writer(n, seed)))
        .collect();
    let run_for = Duration::from_secs(config.seconds);
    while workload_began.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let elapsed = workload_began.elapsed().as_secs();
        if elapsed.is_multiple_of(10) {
            println!(
                "checker: seed={seed} {elapsed}s: {} writes acknowledged, {} sessions, {} frames",
                workload.acked.load(Ordering::Relaxed),
                progress.sessions.load(Ordering::Relaxed),
                progress.frames.load(Ordering::Relaxed)
            );
        }
    }

    // The end: writes stop, the last fault heals, every reader catches up to the head.
    workload.stop.store(true, Ordering::Relaxed);
    nemesis.stop();
    let mut report = Report {
        seed,
        seconds: config.seconds,
        nodes: NODES,
        writers: WRITERS,
        readers: users.len(),
        faults_enabled: config.faults.iter().map(|f| f.name().to_owned()).collect(),
        start_id: start.last_id,
        ..Report::default()
    };
    for writer in writers {
        let counts = writer
            .await
            .unwrap_or_else(|e| panic!("seed={seed}: a writer panicked: {e}"));
        for (kind, c) in counts {
            report.operations.entry(kind).or_default().add(c);
        }
    }
    let outcome = nemesis.finish(seed).await;
    report.faults = outcome.faults;
    report.fault_timeline = outcome.timeline;
    report.failures.extend(
        workload
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..),
    );
    report
        .failures
        .extend(wait_ready(&http, &topology.nodes).await);
    let mut db = pg.client(DATABASE).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let head = log_head(&db).await;
    report.head_id = head;
    phase
        .send(Phase::CatchUp)
        .unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    let mut logs = Vec::new();
    for reader in readers {
        let result = reader
            .await
            .unwrap_or_else(|e| panic!("seed={seed}: a reader panicked: {e}"));
        report.reconnects += result.sessions.saturating_sub(1);
        for (why, n) in result.session_ends {
            *report.session_ends.entry(why).or_default() += n;
        }
        for (why, n) in result.connect_failures {
            *report.connect_failures.entry(why).or_default() += n;
        }
        report.failures.extend(result.failures);
        logs.push(result.log);
    }
    let head_after = log_head(&db).await;
    if head_after != head {
        println!(
            "checker: seed={seed} the log moved on after the run ({head} -> {head_after}); \
             ids past {head} are not judged"
        );
    }
    let log = read_log(&db, start.last_id, head).await;
    let final_follows = snapshot(&mut db).await.follows;

    if config.inject_loss
        && let Some(victim) = logs.iter_mut().max_by_key(|l| l.received.len())
        && !victim.received.is_empty()
    {
        let dropped = victim.received.remove(victim.received.len() / 2);
        println!(
            "checker: seed={seed} CHECKER_INJECT_LOSS: dropped #{} ({}) from {}'s frames",
            dropped.id, dropped.kind, victim.handle
        );
    }
    let verdict = oracle::check(&start, head, &log, &final_follows, &logs);
    report.judge(verdict);
    report.wall_seconds = began.elapsed().as_secs_f64();
    println!("{}", report.table());
    let mut cluster = outcome.cluster;
    if let Some(path) = &config.report {
        report.write_json(path);
        if !report.valid {
            let logs = cluster.write_logs(path.trim_end_matches(".json"));
            println!("checker: seed={seed} node logs: {}", logs.join(", "));
        }
    }
    drop(db);
    drop(cluster);
    assert!(report.valid, "{}", report.failure_message());
}
