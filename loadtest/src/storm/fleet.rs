//! The storm's worker processes (this binary again, as `storm-worker`): each started with its
//! [`Plan`] on stdin, its stdout read by a thread of its own (so no worker waits on a full
//! pipe), its ticks merged into running [`Totals`] and the run's series as they come, told to
//! stop, and its clients' outcomes gathered.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::wire::{ClientOutcome, Plan, Tick, WorkerReport};
use crate::report::{self, Recorder};

/// What a worker's stdout said.
enum Event {
    Tick(Tick),
    Done(Vec<ClientOutcome>),
    /// A line that is no report (a panic message, say).
    Garbled,
    /// The end of its stdout.
    Ended,
}

/// The running workers.
pub struct Fleet {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    outcomes: Vec<Option<Vec<ClientOutcome>>>,
    ended: Vec<bool>,
    /// Lines that were no report.
    pub garbled: u64,
}

impl Fleet {
    /// Starts one worker per plan.
    pub fn start(plans: &[Plan]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let (sender, events) = mpsc::unbounded_channel();
        let mut children = Vec::with_capacity(plans.len());
        let mut stdins = Vec::with_capacity(plans.len());
        for (n, plan) in plans.iter().enumerate() {
            let mut child = Command::new(&exe)
                .arg("storm-worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a storm worker")?;
            let mut stdin = child.stdin.take().context("worker stdin")?;
            writeln!(stdin, "{}", serde_json::to_string(plan)?)?;
            stdin.flush()?;
            let (stdout, sender) = (child.stdout.take(), sender.clone());
            std::thread::spawn(move || read_worker(n, stdout, &sender));
            children.push(child);
            stdins.push(Some(stdin));
        }
        Ok(Self {
            outcomes: vec![None; children.len()],
            ended: vec![false; children.len()],
            children,
            stdins,
            events,
            garbled: 0,
        })
    }

    /// The workers' pids (for their CPU time).
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits up to `wait` for what the workers say, and merges it into `totals`; false once
    /// every worker's stdout has ended.
    pub async fn poll(&mut self, wait: Duration, totals: &mut Totals) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some((n, event))) = tokio::time::timeout_at(deadline, self.events.recv()).await
        {
            match event {
                Event::Tick(tick) => totals.apply(&tick),
                Event::Done(clients) => self.outcomes[n] = Some(clients),
                Event::Garbled => self.garbled += 1,
                Event::Ended => self.ended[n] = true,
            }
        }
        !self.ended.iter().all(|e| *e)
    }

    /// Tells every worker to stop (its clients close their sessions and report).
    pub fn stop(&mut self) {
        for stdin in &mut self.stdins {
            if let Some(mut stdin) = stdin.take() {
                let _ = writeln!(stdin, "stop");
            }
        }
    }

    /// After [`Fleet::stop`]: waits for every worker to finish, merging what they say; every
    /// client's outcome (a worker that failed reports none for its clients).
    pub async fn finish(mut self, totals: &mut Totals) -> Vec<ClientOutcome> {
        while self.poll(Duration::from_millis(200), totals).await {}
        for child in &mut self.children {
            let _ = child.wait();
        }
        self.outcomes.into_iter().flatten().flatten().collect()
    }
}

/// Reads worker `n`'s lines and passes them on as events.
fn read_worker(
    n: usize,
    stdout: Option<ChildStdout>,
    events: &mpsc::UnboundedSender<(usize, Event)>,
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
            Ok(WorkerReport::Tick(tick)) => Event::Tick(tick),
            Ok(WorkerReport::Done { clients }) => Event::Done(clients),
            Err(_) => Event::Garbled,
        };
        let _ = events.send((n, event));
    }
    let _ = events.send((n, Event::Ended));
}

/// Everything the workers reported so far, merged.
pub struct Totals {
    /// Summed counts (its per-client lists stay empty).
    pub counts: Tick,
    pub open: i64,
    pub peak_open: i64,
    /// Clients that had a first hello.
    pub connected: usize,
    /// The latest first hello, µs since the Unix epoch.
    pub last_first_hello_unix_micros: u64,
    /// From the storm's start to each client's first hello.
    pub time_to_first_hello: Histogram<u64>,
    /// Of each session opened, from its TCP connect to its hello.
    pub connect_time: Histogram<u64>,
    /// Sessions opened (first or again).
    pub sessions: u64,
    connects: Recorder,
    deliveries: Recorder,
}

impl Totals {
    /// Totals feeding the `connects` series (sessions opened, with their connect time;
    /// refusals and failures as errors; open sessions as its gauge) and `deliveries`.
    pub fn new(connects: Recorder, deliveries: Recorder) -> Self {
        connects.set_open(0);
        Self {
            counts: Tick::default(),
            open: 0,
            peak_open: 0,
            connected: 0,
            last_first_hello_unix_micros: 0,
            time_to_first_hello: report::histogram(),
            connect_time: report::histogram(),
            sessions: 0,
            connects,
            deliveries,
        }
    }

    fn apply(&mut self, tick: &Tick) {
        self.counts.add_counts(tick);
        for &[at, micros] in &tick.opened {
            self.connects.ok_at_unix_micros(at, micros.max(1));
            let _ = self.connect_time.record(micros.max(1));
        }
        self.sessions += tick.opened.len() as u64;
        for &[at, since_start] in &tick.first_hellos {
            let _ = self.time_to_first_hello.record(since_start.max(1));
            self.last_first_hello_unix_micros = self.last_first_hello_unix_micros.max(at);
        }
        self.connected += tick.first_hellos.len();
        let refused: u64 = tick.refusals.values().chain(tick.failures.values()).sum();
        self.connects.errors(refused);
        self.connects.add_open(tick.open_delta);
        self.deliveries.ops(tick.deliveries);
        self.open += tick.open_delta;
        self.peak_open = self.peak_open.max(self.open);
    }
}
