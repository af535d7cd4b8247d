//! What the storm's parent and its worker processes say to each other: a [`Plan`] as one JSON
//! line on the worker's stdin (then `stop` on a line of its own, or the end of stdin, ends the
//! storm), and [`WorkerReport`]s as JSON lines on its stdout: a [`Tick`] four times a second
//! while anything happens, then [`WorkerReport::Done`] with every client's [`ClientOutcome`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A worker's share of the storm.
#[derive(Serialize, Deserialize)]
pub struct Plan {
    /// The nodes' base URLs (`http://host:port`); a client starts on its `home` one.
    pub urls: Vec<String>,
    /// The local address to connect from (for loopback targets), or none.
    pub source: Option<IpAddr>,
    /// The `since` of every client's first connection (the log's head before the storm), or
    /// none for fresh sessions.
    pub since: Option<i64>,
    /// When the storm started, µs since the Unix epoch (times to the first hello count from it).
    pub started_unix_micros: u64,
    /// One attempt (TCP connect, upgrade, `hello`) gives up after this.
    pub attempt_timeout_ms: u64,
    /// Seeds this worker's jitter.
    pub seed: u64,
    pub clients: Vec<ClientPlan>,
}

/// One client of a worker.
#[derive(Serialize, Deserialize, Clone)]
pub struct ClientPlan {
    /// The user's index in the storm.
    pub index: usize,
    pub token: String,
    /// Index into `Plan::urls`.
    pub home: usize,
}

/// What happened in a worker since its last tick.
#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
pub struct Tick {
    /// Clients' first `hello`s: `[at, µs since the Unix epoch; µs since the storm started]`.
    pub first_hellos: Vec<[u64; 2]>,
    /// Every session opened (first or again): `[at, µs since the epoch; µs from the start of
    /// the attempt (TCP connect) to its hello]`.
    pub opened: Vec<[u64; 2]>,
    /// Upgrades refused before the 101, by status (`503`, `429`, ...).
    pub refusals: BTreeMap<String, u64>,
    /// Refusals without a usable `Retry-After` (backed off instead).
    pub refusals_without_retry_after: u64,
    /// Retries made after waiting at least the refusal's `Retry-After`.
    pub retries_honoured: u64,
    /// Attempts that failed below HTTP, by cause (`connect: ConnectionRefused`, `hello timeout`).
    pub failures: BTreeMap<String, u64>,
    /// Open sessions the server ended, by close code (`no close frame` for a reset or EOF).
    pub closes: BTreeMap<String, u64>,
    /// Sessions opened minus sessions ended.
    pub open_delta: i64,
    /// Durable events received.
    pub deliveries: u64,
    /// Clients that stopped trying (refused with a status no client retries).
    pub gave_up: u64,
    /// Of those, the ones that never had a session.
    pub gave_up_unconnected: u64,
}

impl Tick {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Adds `other`'s counts to this one's (the per-client lists are not kept).
    pub fn add_counts(&mut self, other: &Tick) {
        for (into, from) in [
            (&mut self.refusals, &other.refusals),
            (&mut self.failures, &other.failures),
            (&mut self.closes, &other.closes),
        ] {
            for (key, count) in from {
                *into.entry(key.clone()).or_default() += count;
            }
        }
        self.refusals_without_retry_after += other.refusals_without_retry_after;
        self.retries_honoured += other.retries_honoured;
        self.open_delta += other.open_delta;
        self.deliveries += other.deliveries;
        self.gave_up += other.gave_up;
        self.gave_up_unconnected += other.gave_up_unconnected;
    }
}

/// One client's whole storm.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct ClientOutcome {
    pub index: usize,
    /// Every durable id received, in arrival order, across all its sessions.
    pub ids: Vec<i64>,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Sessions it opened.
    pub sessions: u32,
    /// Sessions opened on another node than the one before.
    pub moved: u32,
    /// `hello`s that said `resync_required`.
    pub resyncs: u32,
    /// Its first hello, µs since the Unix epoch, if it ever had one.
    pub first_hello_unix_micros: Option<u64>,
    /// Whether a session was open when the storm was stopped.
    pub open_at_stop: bool,
}

/// A worker's line on stdout.
#[derive(Serialize, Deserialize)]
#[serde(tag = "stage")]
pub enum WorkerReport {
    Tick(Tick),
    Done { clients: Vec<ClientOutcome> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_add_up_and_reports_round_trip() -> anyhow::Result<()> {
        let mut total = Tick::default();
        assert!(total.is_empty());
        let tick = Tick {
            refusals: [("503".to_owned(), 2)].into(),
            closes: [("1013".to_owned(), 1)].into(),
            retries_honoured: 2,
            open_delta: 3,
            deliveries: 9,
            ..Tick::default()
        };
        total.add_counts(&tick);
        total.add_counts(&tick);
        assert_eq!(total.refusals["503"], 4);
        assert_eq!(total.closes["1013"], 2);
        assert_eq!((total.retries_honoured, total.open_delta), (4, 6));
        let line = serde_json::to_string(&WorkerReport::Tick(tick.clone()))?;
        assert!(line.starts_with(r#"{"stage":"Tick""#), "{line}");
        let WorkerReport::Tick(back) = serde_json::from_str(&line)? else {
            anyhow::bail!("not a tick: {line}");
        };
        assert_eq!(back, tick);
        Ok(())
    }
}
