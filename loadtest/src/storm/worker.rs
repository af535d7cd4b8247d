//! One process of the storm (`storm-worker`, started by the parent): reads its [`Plan`],
//! starts every one of its clients at once, reports a [`Tick`] four times a second, and on
//! `stop` (or the end of stdin) has its clients close their sessions and reports each client's
//! [`ClientOutcome`](super::wire::ClientOutcome).

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;

use super::session::{self, Env};
use super::wire::{Plan, Tick, WorkerReport};
use crate::scenario::Rng;

fn write_line(report: &WorkerReport) -> anyhow::Result<()> {
    let line = serde_json::to_string(report)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Writes what `env.tally` holds as a tick, if anything, and empties it.
fn tick(env: &Env) -> anyhow::Result<()> {
    let tally = std::mem::take(&mut *env.tally.lock().unwrap_or_else(PoisonError::into_inner));
    if tally.is_empty() {
        return Ok(());
    }
    write_line(&WorkerReport::Tick(tally))
}

pub async fn worker() -> anyhow::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    drop(stdin);
    let plan: Plan = serde_json::from_str(&line).context("reading the plan")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The rest of stdin is the parent's word to stop (or its end, if the parent died).
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.map_or(true, |l| l.trim() == "stop") {
                break;
            }
        }
        let _ = stop.send(true);
    });
    let env = Arc::new(Env {
        urls: plan.urls,
        source: plan.source,
        since: plan.since,
        started_unix_micros: plan.started_unix_micros,
        attempt_timeout: Duration::from_millis(plan.attempt_timeout_ms.max(1)),
        tally: Mutex::new(Tick::default()),
    });
    let ticker = {
        let env = env.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(250));
            loop {
                every.tick().await;
                if tick(&env).is_err() {
                    return;
                }
            }
        })
    };
    let clients: Vec<_> = plan
        .clients
        .into_iter()
        .map(|client| {
            let (env, stopped) = (env.clone(), stopped.clone());
            let rng = Rng::new(plan.seed ^ (client.index as u64).wrapping_mul(0x9E37_79B9));
            tokio::spawn(async move { session::live(&env, client, rng, stopped).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(clients.len());
    for client in clients {
        outcomes.push(client.await.context("a client task failed")?);
    }
    ticker.abort();
    tick(&env)?;
    write_line(&WorkerReport::Done { clients: outcomes })
}
