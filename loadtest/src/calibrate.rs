//! `calibrate-server` and `calibrate`: the floor every figure is read against.
//!
//! `calibrate-server` is a bare actix-web-actors websocket echo server (`connect --no-auth`
//! measures its memory per idle connection and handshake latency on the same machine, with the
//! same client). `calibrate` starts one as a child process on a free port (or uses `--url`),
//! drives it with N websocket clients sending at a fixed open-loop rate, and reports the
//! round trip from each message's scheduled send, messages per second, and the CPU time of
//! the client and of the server, so other scenarios' figures read as a share of what this
//! machine can do at all.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_actors::ws;
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use aisocial_client as client;

use crate::report::{self, Latency};
use crate::scenario::{self, LateSends, Schedule, Validity};

#[derive(clap::Args)]
pub struct Args {
    /// Where to listen; port 0 picks a free port (the `listening on` line names it).
    #[arg(long, default_value = "127.0.0.1:18095")]
    bind: String,
    /// Seconds after which the server stops by itself.
    #[arg(long, default_value_t = 600)]
    lifetime: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// Echoes text, answers pings, pings every 25 s like aisocial's sessions.
struct Echo {
    heard: Instant,
}

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(25), |echo, ctx| {
            if echo.heard.elapsed() > Duration::from_secs(60) {
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

async fn socket(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(
        Echo {
            heard: Instant::now(),
        },
        &req,
        stream,
    )
}

pub async fn serve(args: Args) -> anyhow::Result<()> {
    let server = HttpServer::new(|| App::new().route("/api/v1/ws", web::get().to(socket)))
        .workers(args.workers.max(1))
        .bind(&args.bind)?;
    let address = server
        .addrs()
        .first()
        .map_or_else(|| args.bind.clone(), ToString::to_string);
    let server = server.run();
    println!(
        "calibrate-server: listening on {address} (pid {})",
        std::process::id()
    );
    let handle = server.handle();
    actix_rt::spawn(async move {
        tokio::time::sleep(Duration::from_secs(args.lifetime)).await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}

#[derive(clap::Args, Serialize)]
pub struct ClientArgs {
    /// An echo server already running (`calibrate-server`); by default one is started as a
    /// child process on a free port and stopped at the end.
    #[arg(long)]
    url: Option<String>,
    /// The echo server's pid, for its CPU time when `--url` names one already running.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Websocket clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Messages per second over all clients.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of each message (about a post.created frame).
    #[arg(long, default_value_t = 300)]
    message_bytes: usize,
    /// Worker threads of the echo server started here.
    #[arg(long, default_value_t = 1)]
    server_workers: usize,
    /// --threshold, --json, --html, --no-progress.
    #[command(flatten)]
    output: report::Output,
}

#[derive(Serialize, Default)]
struct Report {
    scenario: &'static str,
    clients: usize,
    rate: f64,
    seconds: u64,
    message_bytes: usize,
    sent: u64,
    received: u64,
    lost: u64,
    messages_per_second: f64,
    /// Frames the server handled a second: each echo is one in and one out.
    frames_per_second: f64,
    round_trip: Latency,
    client_cpu_seconds: Option<f64>,
    server_cpu_seconds: Option<f64>,
    messages_per_client_cpu_second: Option<f64>,
    frames_per_server_cpu_second: Option<f64>,
    late_sends: u64,
    late_send_share: f64,
    #[serde(flatten)]
    validity: Validity,
}

/// An echo server this run started, stopped when dropped.
struct ChildServer {
    child: Child,
    url: String,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_echo_server(workers: usize, lifetime: u64) -> anyhow::Result<ChildServer> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let child = Command::new(exe)
        .args(["calibrate-server", "--bind", "127.0.0.1:0", "--lifetime"])
        .arg(lifetime.to_string())
        .arg("--workers")
        .arg(workers.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting calibrate-server")?;
    // Stopped on every early return from here on.
    let mut server = ChildServer {
        child,
        url: String::new(),
    };
    let stdout = server
        .child
        .stdout
        .take()
        .context("calibrate-server's stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let address = listening_address(&line)
        .with_context(|| format!("calibrate-server said {line:?}, not where it listens"))?;
    server.url = format!("http://{address}");
    Ok(server)
}

/// The address of a `calibrate-server: listening on ADDRESS (pid N)` line.
fn listening_address(line: &str) -> Option<&str> {
    line.split("listening on ")
        .nth(1)?
        .split_whitespace()
        .next()
}

/// What one client measured.
struct ClientTally {
    round_trip: Histogram<u64>,
    sent: u64,
    received: u64,
    late: LateSends,
    last_arrival_micros: u64,
}

pub async fn calibrate(args: ClientArgs) -> anyhow::Result<()> {
    let mut run = report::Run::start("calibrate", &args, &args.output, &Report::default())?;
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.rate > 0.0, "--rate must be above 0");
    let child = match &args.url {
        Some(_) => None,
        None => Some(start_echo_server(args.server_workers, args.seconds + 120)?),
    };
    let url = match (&args.url, &child) {
        (Some(url), _) => url.clone(),
        (None, Some(child)) => child.url.clone(),
        (None, None) => anyhow::bail!("no echo server"),
    };
    let server_pid = child.as_ref().map(|c| c.child.id()).or(args.server_pid);
    let mut sockets = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let endpoint = client::ws::endpoint(&url, None);
        sockets.push(client::ws::open_plain(&endpoint, &client::ws::Connect::default()).await?);
    }
    println!(
        "calibrate: {} clients on {url} ({} server worker(s)), {} messages/s of {} B for {} s",
        args.clients, args.server_workers, args.rate, args.message_bytes, args.seconds
    );
    let started = Instant::now() + Duration::from_millis(100);
    let per_client_rate = args.rate / args.clients as f64;
    let base = Schedule::new(started, per_client_rate);
    let spacing = Duration::from_secs_f64(1.0 / args.rate);
    let messages = (args.seconds as f64 * per_client_rate).round() as u64;
    let padding = "x".repeat(args.message_bytes.saturating_sub(40));
    let client_cpu_before = scenario::own_cpu_seconds();
    let server_cpu_before = server_pid.and_then(scenario::cpu_seconds_of);
    let echoes = run.recorder("echoes");
    echoes.set_open(args.clients as i64);
    let progress = run.progress(
        "calibrate",
        "echoes",
        Some(Duration::from_secs(args.seconds)),
        &echoes,
    );
    let mut tasks = Vec::with_capacity(args.clients);
    for (n, ws) in sockets.into_iter().enumerate() {
        let schedule = base.shifted(spacing.mul_f64(n as f64));
        tasks.push(tokio::spawn(echo_client(
            ws,
            schedule,
            messages,
            padding.clone(),
            echoes.clone(),
        )));
    }
    let mut tallies = Vec::with_capacity(tasks.len());
    for task in tasks {
        tallies.push(task.await?);
    }
    progress.stop();
    let client_cpu = match (client_cpu_before, scenario::own_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let server_cpu = match (
        server_cpu_before,
        server_pid.and_then(scenario::cpu_seconds_of),
    ) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    drop(child);
    let mut round_trip = report::histogram();
    let mut late = LateSends::default();
    let (mut sent, mut received, mut last_arrival) = (0, 0, 0);
    for tally in &tallies {
        let _ = round_trip.add(&tally.round_trip);
        late.merge(&tally.late);
        sent += tally.sent;
        received += tally.received;
        last_arrival = last_arrival.max(tally.last_arrival_micros);
    }
    let seconds = last_arrival.saturating_sub(base.wall_micros(started)) as f64 / 1e6;
    let messages_per_second = received as f64 / seconds.max(0.001);
    let report = Report {
        scenario: "calibrate",
        clients: args.clients,
        rate: args.rate,
        seconds: args.seconds,
        message_bytes: args.message_bytes,
        sent,
        received,
        lost: sent.saturating_sub(received),
        messages_per_second,
        frames_per_second: 2.0 * messages_per_second,
        round_trip: report::latency(&round_trip),
        client_cpu_seconds: client_cpu,
        server_cpu_seconds: server_cpu,
        messages_per_client_cpu_second: client_cpu.map(|c| received as f64 / c.max(0.001)),
        frames_per_server_cpu_second: server_cpu.map(|c| 2.0 * received as f64 / c.max(0.001)),
        late_sends: late.late,
        late_send_share: late.share(),
        validity: late.validity(),
    };
    print_report(&report);
    println!("{}", serde_json::to_string(&report)?);
    run.finish(&report)
}

/// One client: sends on its schedule and times each echo from the message's due time.
async fn echo_client(
    ws: client::Socket,
    schedule: Schedule,
    messages: u64,
    padding: String,
    series: report::Recorder,
) -> ClientTally {
    let (mut sink, mut stream) = ws.split();
    let receiver = tokio::spawn(async move {
        let mut round_trip = report::histogram();
        let (mut received, mut last_arrival_micros) = (0u64, 0u64);
        let quiet = Duration::from_secs(3);
        while received < messages {
            let Ok(Some(Ok(message))) = tokio::time::timeout(quiet, stream.next()).await else {
                break;
            };
            let Message::Text(text) = message else {
                continue;
            };
            let arrived = scenario::now_micros();
            let Some(due) = text.split(' ').nth(1).and_then(|d| d.parse::<u64>().ok()) else {
                continue;
            };
            received += 1;
            last_arrival_micros = arrived;
            let latency = arrived.saturating_sub(due).max(1);
            series.ok_at_unix_micros(arrived, latency);
            let _ = round_trip.record(latency);
        }
        (round_trip, received, last_arrival_micros)
    });
    let mut late = LateSends::default();
    let mut sent = 0;
    for seq in 0..messages {
        let slot = schedule.wait_for(seq).await;
        late.record(slot.lag);
        let text = format!("{seq} {} {padding}", slot.due_wall_micros);
        if sink.send(Message::text(text)).await.is_err() {
            break;
        }
        sent += 1;
    }
    let (round_trip, received, last_arrival_micros) = receiver
        .await
        .unwrap_or_else(|_| (report::histogram(), 0, 0));
    let _ = sink.close().await;
    ClientTally {
        round_trip,
        sent,
        received,
        late,
        last_arrival_micros,
    }
}

fn print_report(r: &Report) {
    println!(
        "calibrate: {} clients, {} of {} echoes back ({:.0} messages/s, {:.0} frames/s at the server); round trip p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; late sends {}",
        r.clients,
        r.received,
        r.sent,
        r.messages_per_second,
        r.frames_per_second,
        r.round_trip.p50_ms,
        r.round_trip.p90_ms,
        r.round_trip.p99_ms,
        r.round_trip.p999_ms,
        r.round_trip.max_ms,
        r.late_sends
    );
    if let Some(cpu) = r.client_cpu_seconds {
        println!(
            "calibrate: client CPU {cpu:.2} s ({:.0} messages per client CPU-second)",
            r.messages_per_client_cpu_second.unwrap_or_default()
        );
    }
    if let (Some(cpu), Some(per)) = (r.server_cpu_seconds, r.frames_per_server_cpu_second) {
        println!("calibrate: echo server CPU {cpu:.2} s ({per:.0} frames per server CPU-second)");
        println!(
            "calibrate: share of this machine = a scenario's frames per server CPU-second ÷ {per:.0}; e.g. fanout: deliveries_per_server_cpu_second ÷ {per:.0}"
        );
    }
    println!(
        "calibrate: share of this machine's rate = a scenario's frames/s ÷ {:.0} (fanout: deliveries_per_second ÷ {:.0}); meaningful when this run was not limited by --rate: raise it until late sends or p99 climb",
        r.frames_per_second, r.frames_per_second
    );
    r.validity.shout("calibrate");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_names_the_address() {
        assert_eq!(
            listening_address("calibrate-server: listening on 127.0.0.1:40001 (pid 7)\n"),
            Some("127.0.0.1:40001")
        );
        assert_eq!(listening_address("something else"), None);
    }
}
