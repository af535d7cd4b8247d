//! Authors who keep posting through the storm, at a modest open-loop rate shared among them, so
//! that there is something to deliver (and to miss). A post that fails (its node died, or it
//! was refused) is counted and its author's next post goes to the next node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use aisocial_client::{Client, NewPost};

use crate::report::{self, Latency, Recorder};
use crate::scenario::Schedule;

/// What the posting came to.
#[derive(Serialize, Default, Debug, Clone)]
pub struct PostsReport {
    pub authors: usize,
    pub rate_per_second: f64,
    pub sent: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// From each post's scheduled send to its 201.
    pub acknowledged_after: Latency,
}

/// Posts at `rate` a second in all, in turn by each of `tokens` (through the node of `clients`
/// that last answered each author), from now until `stop`.
pub async fn post_until(
    clients: Vec<Client>,
    tokens: Vec<String>,
    rate: f64,
    mut stop: watch::Receiver<bool>,
    series: Recorder,
) -> PostsReport {
    let mut report = PostsReport {
        authors: tokens.len(),
        rate_per_second: rate,
        ..PostsReport::default()
    };
    if tokens.is_empty() || rate <= 0.0 || clients.is_empty() {
        return report;
    }
    let nodes: Arc<Vec<AtomicUsize>> = Arc::new((0..tokens.len()).map(AtomicUsize::new).collect());
    let (clients, tokens) = (Arc::new(clients), Arc::new(tokens));
    let schedule = Schedule::new(Instant::now(), rate);
    let mut sends = Vec::new();
    for n in 0u64.. {
        tokio::select! {
            slot = schedule.wait_for(n) => {
                let author = (n % tokens.len() as u64) as usize;
                let (clients, tokens, nodes, series) =
                    (clients.clone(), tokens.clone(), nodes.clone(), series.clone());
                sends.push(tokio::spawn(async move {
                    let node = nodes[author].load(Ordering::Relaxed) % clients.len();
                    let post = NewPost::new(format!("storm post {n}"));
                    let ok = clients[node]
                        .create_post_request(&tokens[author], &post)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().as_u16() == 201);
                    let micros = report::micros(slot.due.elapsed());
                    if ok {
                        series.ok(micros);
                    } else {
                        series.error();
                        nodes[author].store(node + 1, Ordering::Relaxed);
                    }
                    ok.then_some(micros)
                }));
            }
            () = super::session::stopped(&mut stop) => break,
        }
    }
    let mut latency = report::histogram();
    for send in sends {
        report.sent += 1;
        match send.await {
            Ok(Some(micros)) => {
                report.acknowledged += 1;
                let _ = latency.record(micros);
            }
            _ => report.failed += 1,
        }
    }
    report.acknowledged_after = report::latency(&latency);
    report
}
