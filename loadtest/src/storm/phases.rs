//! The storm's phases as the parent drives them, merging what the workers say every 100 ms and
//! sampling the servers every second: every client's first session (until the connect
//! deadline), the hold (with the SIGKILL of `--kill-node`), then, posting stopped, every client
//! back (until the settle deadline) and a drain for the last deliveries.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::fleet::{Fleet, Totals};
use super::servers::Servers;
use super::session::DROPPED;
use super::summary::KillReport;

/// How long each phase may last.
pub struct Timing {
    pub connect_deadline: Duration,
    pub hold: Duration,
    /// When the hold is this far along, the server of this index is killed.
    pub kill: Option<(Duration, usize)>,
    pub settle_deadline: Duration,
    pub drain: Duration,
}

/// What the phases came to.
pub struct Phases {
    /// From the storm's start to the last client's first hello, if every client had one.
    pub connected_within_seconds: Option<f64>,
    pub kill: KillReport,
    /// Sessions ended without a close frame before the kill (when there was one).
    pub dropped_before_kill: Option<u64>,
    pub open_at_stop: i64,
    pub storm_seconds: f64,
}

/// Sessions ended without a close frame so far.
pub fn dropped(totals: &Totals) -> u64 {
    totals.counts.closes.get(DROPPED).copied().unwrap_or(0)
}

/// What the parent watches while the storm runs.
pub struct Watch<'a> {
    pub fleet: &'a mut Fleet,
    pub totals: &'a mut Totals,
    pub servers: &'a mut Servers,
    /// Clients in the storm.
    pub users: usize,
    /// When the storm started (µs since the Unix epoch, and here).
    pub started_unix_micros: u64,
    pub started: Instant,
}

impl Watch<'_> {
    /// Runs the phases; `stop_posting` is told once the hold is over.
    pub async fn run(
        mut self,
        timing: &Timing,
        stop_posting: &watch::Sender<bool>,
    ) -> anyhow::Result<Phases> {
        let mut next_sample = Instant::now();
        let deadline = self.started + timing.connect_deadline;
        while self.totals.connected + self.gave_up_unconnected() < self.users
            && Instant::now() < deadline
        {
            if !self.step(&mut next_sample).await {
                break;
            }
        }
        let connected_within_seconds = (self.totals.connected == self.users).then(|| {
            self.totals
                .last_first_hello_unix_micros
                .saturating_sub(self.started_unix_micros) as f64
                / 1e6
        });
        println!(
            "storm: {} of {} clients connected after {:.1} s",
            self.totals.connected,
            self.users,
            self.started.elapsed().as_secs_f64()
        );

        let hold_started = Instant::now();
        let mut kill = KillReport::default();
        let mut killed_at: Option<(Instant, u64)> = None;
        while hold_started.elapsed() < timing.hold {
            if !self.step(&mut next_sample).await {
                break;
            }
            if let Some((after, server)) = timing.kill
                && killed_at.is_none()
                && hold_started.elapsed() >= after
            {
                kill.open_before = Some(self.totals.open);
                let pid = self.servers.kill(server)?;
                kill.killed_pid = Some(pid);
                kill.at_seconds = Some(self.started.elapsed().as_secs_f64());
                killed_at = Some((Instant::now(), dropped(self.totals)));
                println!("storm: SIGKILL sent to node {pid}");
            }
            self.note_reopened(killed_at, &mut kill);
        }
        let _ = stop_posting.send(true);

        let deadline = Instant::now() + timing.settle_deadline;
        while !self.all_open() && Instant::now() < deadline {
            if !self.step(&mut next_sample).await {
                break;
            }
            self.note_reopened(killed_at, &mut kill);
        }
        let drain_end = Instant::now() + timing.drain;
        while Instant::now() < drain_end && self.step(&mut next_sample).await {}
        self.servers.sample();
        Ok(Phases {
            connected_within_seconds,
            kill,
            dropped_before_kill: killed_at.map(|(_, before)| before),
            open_at_stop: self.totals.open,
            storm_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// Merges what the workers said in the next 100 ms, and samples the servers once a
    /// second; false once every worker has ended.
    async fn step(&mut self, next_sample: &mut Instant) -> bool {
        let running = self
            .fleet
            .poll(Duration::from_millis(100), self.totals)
            .await;
        if Instant::now() >= *next_sample {
            self.servers.sample();
            *next_sample += Duration::from_secs(1);
        }
        running
    }

    /// Whether every client still trying has a session.
    fn all_open(&self) -> bool {
        let gave_up = i64::try_from(self.totals.counts.gave_up).unwrap_or(i64::MAX);
        self.totals.open.saturating_add(gave_up) >= i64::try_from(self.users).unwrap_or(i64::MAX)
    }

    /// Clients that gave up before their first session.
    fn gave_up_unconnected(&self) -> usize {
        usize::try_from(self.totals.counts.gave_up_unconnected).unwrap_or(usize::MAX)
    }

    /// After the kill (when sessions were dropped since): notes when every client had a
    /// session again (to the 100 ms of a step).
    fn note_reopened(&self, killed_at: Option<(Instant, u64)>, kill: &mut KillReport) {
        if let Some((at, dropped_before)) = killed_at
            && kill.all_open_again_seconds.is_none()
            && dropped(self.totals) > dropped_before
            && self.all_open()
        {
            kill.all_open_again_seconds = Some(at.elapsed().as_secs_f64());
        }
    }
}
