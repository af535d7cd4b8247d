//! `connect`: ramp N authenticated websocket sessions at a set rate, hold them, and report
//! handshake latency, failures by cause, and the server's memory per connection.
//!
//! One process cannot hold more than its open-file limit, and one source address has only so
//! many ephemeral ports, so the parent spreads the sessions over `--processes` child processes
//! (this binary again, as `connect-worker`), each on its own 127.0.0.x source address. The
//! parent signs the users in, hands each child its share of tokens on stdin, and merges what
//! they report. Memory is the server's RSS (from `/proc/<pid>/status`, so `--server-pid` is
//! needed and the server must run on this machine) before the ramp and once every session is
//! open and idle.
//!
//! Each child also writes a `Tick` line four times a second (the handshakes it finished, with
//! when, and the failures and drops since the last one); a thread per child reads its stdout
//! and feeds the `handshakes` series, so the parent shows progress while the children work.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use aisocial_client::{self as client, ws};

use crate::report::{self, Latency};

#[derive(clap::Args, Serialize)]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Sessions to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// New sessions per second, over all processes.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Seconds to hold every session open once the ramp is done.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// Client processes (each below its open-file limit).
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Source addresses, one per process in turn.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5"
    )]
    sources: Vec<IpAddr>,
    /// The server's pid, to read its memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A PEM CA to trust: with an `https://` URL the sessions are wss (see `tls-cert`).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Open unauthenticated sessions (for the bare echo server of `calibrate`).
    #[arg(long)]
    no_auth: bool,
    /// Sign-ins running at once.
    #[arg(long, default_value_t = 16)]
    sign_in_concurrency: usize,
    #[command(flatten)]
    output: report::Output,
}

/// What the parent tells a child (one JSON line on stdin).
#[derive(Serialize, Deserialize)]
pub struct WorkerPlan {
    ws_url: String,
    /// The CA to trust for wss.
    ca: Option<std::path::PathBuf>,
    source: IpAddr,
    tokens: Vec<Option<String>>,
    rate: f64,
}

/// What a child answers (JSON lines on stdout): `Tick`s every 250 ms when anything happened,
/// `Opened` once its ramp is done, then `Done`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage")]
pub enum WorkerReport {
    /// Since the last tick: handshakes as `[finished at, µs since the Unix epoch; handshake
    /// µs]`, failed opens, sessions the server dropped.
    Tick {
        handshakes: Vec<[u64; 2]>,
        failed: u64,
        dropped: u64,
    },
    Opened {
        handshake_micros: Vec<u64>,
        failures: BTreeMap<String, u64>,
        late: u64,
    },
    Done {
        dropped_by_server: u64,
    },
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    requested: usize,
    opened: usize,
    failures: BTreeMap<String, u64>,
    late_starts: u64,
    handshake: Latency,
    ramp_seconds: f64,
    dropped_during_hold: u64,
    server_rss_before_bytes: Option<u64>,
    server_rss_connected_bytes: Option<u64>,
    kib_per_connection: Option<f64>,
}

pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut run = report::Run::start("connect", &args, &args.output, &Report::default())?;
    anyhow::ensure!(args.processes >= 1, "--processes must be at least 1");
    anyhow::ensure!(!args.sources.is_empty(), "--sources names no address");
    let api = client::Client::with_http(crate::tls::http_client(args.ca.as_deref())?, &args.url);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let tokens: Vec<Option<String>> = if args.no_auth {
        vec![None; args.connections]
    } else {
        let handles: Vec<String> = (0..args.connections)
            .map(|n| format!("c{}_{n}", &run_id[..6]))
            .collect();
        api.sign_in_all(handles, args.sign_in_concurrency)
            .await?
            .into_iter()
            .map(|signed| Some(signed.token))
            .collect()
    };
    let rss_before = args.server_pid.and_then(rss_of);
    let exe = std::env::current_exe().context("finding this binary")?;
    let ws_url = client::ws::endpoint(&args.url, None);
    let per_process = args.connections.div_ceil(args.processes);
    let mut children = Vec::new();
    let handshakes = run.recorder("handshakes");
    handshakes.set_open(0);
    // The ramp, then the hold (the 2 s before reading the server's memory are part of it).
    let planned = Duration::from_secs_f64(args.connections as f64 / args.rate.max(0.001))
        + Duration::from_secs(args.hold);
    let progress = run.progress("connect", "handshakes", Some(planned), &handshakes);
    let started = Instant::now();
    for (n, share) in tokens.chunks(per_process.max(1)).enumerate() {
        let plan = WorkerPlan {
            ws_url: ws_url.clone(),
            ca: args.ca.clone(),
            source: args.sources[n % args.sources.len()],
            tokens: share.to_vec(),
            rate: args.rate / args.processes as f64,
        };
        let mut child = Command::new(&exe)
            .arg("connect-worker")
            .arg("--hold")
            .arg(args.hold.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a connect worker")?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(&plan)?)?;
        drop(stdin);
        children.push(child);
    }
    // A thread per child reads its stdout (so no child waits on a full pipe): ticks go to the
    // series, the rest comes here.
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    for (n, child) in children.iter_mut().enumerate() {
        let (stdout, events, handshakes) =
            (child.stdout.take(), events.clone(), handshakes.clone());
        std::thread::spawn(move || read_worker(n, stdout, &handshakes, &events));
    }
    drop(events);
    let mut merged = Merged {
        handshake: report::histogram(),
        failures: BTreeMap::new(),
        late: 0,
        dropped: 0,
        stages: vec![Stage::Ramping; children.len()],
        per_process: per_process as u64,
        series: handshakes.clone(),
    };
    // Each child reports `Opened`, then holds.
    while merged.stages.contains(&Stage::Ramping) {
        let Some((n, event)) = received.recv().await else {
            break;
        };
        merged.apply(n, event);
    }
    let ramp = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = args.server_pid.and_then(rss_of);
    while merged.stages.iter().any(|s| *s != Stage::Over) {
        let Some((n, event)) = received.recv().await else {
            break;
        };
        merged.apply(n, event);
    }
    for mut child in children {
        let _ = child.wait();
    }
    progress.stop();
    let Merged {
        handshake,
        failures,
        late,
        dropped,
        ..
    } = merged;
    let opened = handshake.len() as usize;
    let report = Report {
        scenario: "connect",
        requested: args.connections,
        opened,
        failures,
        late_starts: late,
        handshake: report::latency(&handshake),
        ramp_seconds: ramp.as_secs_f64(),
        dropped_during_hold: dropped,
        server_rss_before_bytes: rss_before,
        server_rss_connected_bytes: rss_connected,
        kib_per_connection: match (rss_before, rss_connected) {
            (Some(a), Some(b)) if opened > 0 => {
                Some(b.saturating_sub(a) as f64 / opened as f64 / 1024.0)
            }
            _ => None,
        },
    };
    println!(
        "connect: {} of {} sessions open in {:.1} s ({} processes); failures {:?}; late starts {}; handshake p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; dropped while held {}",
        report.opened,
        report.requested,
        report.ramp_seconds,
        args.processes,
        report.failures,
        report.late_starts,
        report.handshake.p50_ms,
        report.handshake.p99_ms,
        report.handshake.max_ms,
        report.dropped_during_hold
    );
    if let Some(kib) = report.kib_per_connection {
        println!("connect: {kib:.1} KiB of server RSS per idle connection");
    }
    run.finish(&report)
}

/// What a child's stdout said, as its reader thread passes it on.
enum Event {
    /// `Opened` or `Done`.
    Report(WorkerReport),
    /// A line that is no report.
    Garbled,
    /// The end of its stdout.
    Ended,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ramping,
    Holding,
    Over,
}

/// Reads child `n`'s lines: `Tick`s into `series`, the rest to `events`.
fn read_worker(
    n: usize,
    stdout: Option<ChildStdout>,
    series: &report::Recorder,
    events: &tokio::sync::mpsc::UnboundedSender<(usize, Event)>,
) {
    for line in stdout
        .map(std::io::BufReader::new)
        .into_iter()
        .flat_map(BufRead::lines)
    {
        let Ok(line) = line else {
            break;
        };
        let event = match serde_json::from_str(&line) {
            Ok(WorkerReport::Tick {
                handshakes,
                failed,
                dropped,
            }) => {
                for [at, micros] in &handshakes {
                    series.ok_at_unix_micros(*at, *micros);
                }
                series.errors(failed);
                series.add_open(handshakes.len() as i64 - dropped as i64);
                continue;
            }
            Ok(report) => Event::Report(report),
            Err(_) => Event::Garbled,
        };
        let _ = events.send((n, event));
    }
    let _ = events.send((n, Event::Ended));
}

/// What the children reported, merged.
struct Merged {
    handshake: hdrhistogram::Histogram<u64>,
    failures: BTreeMap<String, u64>,
    late: u64,
    dropped: u64,
    stages: Vec<Stage>,
    per_process: u64,
    series: report::Recorder,
}

impl Merged {
    fn apply(&mut self, n: usize, event: Event) {
        let ramping = self.stages[n] == Stage::Ramping;
        match event {
            Event::Report(WorkerReport::Opened {
                handshake_micros,
                failures,
                late,
            }) if ramping => {
                for micros in handshake_micros {
                    let _ = self.handshake.record(micros.max(1));
                }
                for (cause, count) in failures {
                    *self.failures.entry(cause).or_default() += count;
                }
                self.late += late;
                self.stages[n] = Stage::Holding;
            }
            Event::Report(WorkerReport::Done { dropped_by_server }) if !ramping => {
                self.dropped += dropped_by_server;
                self.stages[n] = Stage::Over;
            }
            // The first report was not `Opened`: the worker failed (as its share).
            Event::Report(_) | Event::Garbled | Event::Ended if ramping => {
                *self.failures.entry("worker failed".into()).or_default() += self.per_process;
                self.series.errors(self.per_process);
                self.stages[n] = if matches!(event, Event::Ended) {
                    Stage::Over
                } else {
                    Stage::Holding
                };
            }
            Event::Ended => self.stages[n] = Stage::Over,
            Event::Report(_) | Event::Garbled => {}
        }
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// What a worker saw since its last `Tick`.
#[derive(Default)]
struct Tally {
    handshakes: Vec<[u64; 2]>,
    failed: u64,
    dropped: u64,
}

/// Writes a `Tick` line with what `tally` holds, if anything, and empties it.
fn tick(tally: &Mutex<Tally>) -> anyhow::Result<()> {
    let Tally {
        handshakes,
        failed,
        dropped,
    } = std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner));
    if handshakes.is_empty() && failed == 0 && dropped == 0 {
        return Ok(());
    }
    let line = serde_json::to_string(&WorkerReport::Tick {
        handshakes,
        failed,
        dropped,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Seconds to hold the sessions after the ramp.
    #[arg(long, default_value_t = 10)]
    hold: u64,
}

/// A child: reads its plan on stdin, opens its sessions from its source address at its rate,
/// reports, holds them (answering pings), reports how many the server dropped, and exits.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let plan: WorkerPlan = serde_json::from_str(&line).context("reading the plan")?;
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let tls = match (&plan.ca, plan.ws_url.starts_with("wss:")) {
        (Some(ca), true) => Some(crate::tls::Connector::new(ca)?),
        (None, true) => anyhow::bail!("a wss URL needs --ca"),
        _ => None,
    };
    let started = Instant::now();
    let mut late = 0;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ticker = {
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                let _ = tick(&tally);
            }
        })
    };
    let mut opening = Vec::with_capacity(plan.tokens.len());
    for (n, token) in plan.tokens.into_iter().enumerate() {
        let at = started + interval.mul_f64(n as f64);
        let now = Instant::now();
        if at > now {
            tokio::time::sleep_until(at.into()).await;
        } else if now.duration_since(at) > Duration::from_millis(50) {
            late += 1;
        }
        let (url, source, tally) = (plan.ws_url.clone(), plan.source, tally.clone());
        let tls = tls.clone();
        opening.push(tokio::spawn(async move {
            let opened = open(&url, source, token, tls.as_ref()).await;
            let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
            match &opened {
                Ok((_, micros)) => tally.handshakes.push([unix_micros(), *micros]),
                Err(_) => tally.failed += 1,
            }
            opened
        }));
    }
    let mut handshakes = Vec::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut sockets = Vec::new();
    for task in opening {
        match task.await {
            Ok(Ok((ws, micros))) => {
                handshakes.push(micros);
                sockets.push(ws);
            }
            Ok(Err(cause)) => *failures.entry(cause).or_default() += 1,
            Err(_) => *failures.entry("task panicked".into()).or_default() += 1,
        }
    }
    tick(&tally)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::to_string(&WorkerReport::Opened {
            handshake_micros: handshakes,
            failures,
            late,
        })?
    )?;
    out.flush()?;
    drop(out);
    // Hold: read every socket (tungstenite answers pings) until the hold ends.
    let hold = Duration::from_secs(plan_hold(args.hold));
    let holders: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let tally = tally.clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + hold;
                loop {
                    match tokio::time::timeout_at(deadline, ws.next()).await {
                        Err(_) => return false,
                        Ok(Some(Ok(_))) => continue,
                        Ok(_) => {
                            tally.lock().unwrap_or_else(PoisonError::into_inner).dropped += 1;
                            return true;
                        }
                    }
                }
            })
        })
        .collect();
    let mut dropped = 0;
    for holder in holders {
        if holder.await.unwrap_or(true) {
            dropped += 1;
        }
    }
    ticker.abort();
    tick(&tally)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::to_string(&WorkerReport::Done {
            dropped_by_server: dropped,
        })?
    )?;
    Ok(())
}

fn plan_hold(hold: u64) -> u64 {
    hold.max(1)
}

/// A connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

type Socket = client::Socket<Box<dyn Io>>;

/// Opens one session from `source` (over TLS with `tls`); the handshake time (TCP, TLS and the
/// upgrade), or the cause of the failure.
async fn open(
    url: &str,
    source: IpAddr,
    token: Option<String>,
    tls: Option<&crate::tls::Connector>,
) -> Result<(Socket, u64), String> {
    let started = Instant::now();
    let request = ws::request(url, token.as_deref()).map_err(|e| e.to_string())?;
    let host = request.uri().host().unwrap_or("127.0.0.1").to_owned();
    let target = ws::target(&request).await.map_err(|e| e.to_string())?;
    let options = ws::Connect {
        source: Some(source),
        ..ws::Connect::default()
    };
    let stream = ws::connect(target, &options).await.map_err(|e| match e {
        client::Error::Io { what, source } => format!("{what}: {}", source.kind()),
        client::Error::Timeout(step) => format!("{step} timeout"),
        other => other.to_string(),
    })?;
    let stream: Box<dyn Io> = match tls {
        None => Box::new(stream),
        Some(tls) => Box::new(
            tokio::time::timeout(ws::STEP_TIMEOUT, tls.connect(&host, stream))
                .await
                .map_err(|_| "TLS handshake timeout".to_owned())?
                .map_err(|e| format!("TLS: {e}"))?,
        ),
    };
    let ws = tokio::time::timeout(ws::STEP_TIMEOUT, ws::handshake(request, stream))
        .await
        .map_err(|_| "handshake timeout".to_owned())?
        .map_err(|e| match e {
            client::Error::Refused { status, .. } => format!("HTTP {status}"),
            client::Error::WebSocket(e) => format!("handshake: {e}"),
            other => format!("handshake: {other}"),
        })?;
    Ok((ws, report::micros(started.elapsed())))
}
