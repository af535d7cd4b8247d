//! The readers: one websocket client per user, starting at the run's first event id and
//! reconnecting to a random node with `since=<last durable id seen>` at random moments and
//! whenever its socket ends, honouring 503 and 429 with `Retry-After`. Every durable frame is
//! recorded in arrival order. At the end each one reconnects once more and reads until it has
//! everything the server replays up to the log's head.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;

use crate::helpers::{WsClient, WsEvent, ws_upgrade};
use crate::oracle::{ReaderLog, Received};
use crate::workload::User;

/// What the run asks of the readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Run,
    /// Writes and faults are over: reconnect once more and catch up.
    CatchUp,
}

/// Counters every reader adds to, for the progress line.
#[derive(Default)]
pub struct Progress {
    /// Readers that have had their first `hello`.
    pub started: AtomicUsize,
    pub sessions: AtomicU64,
    pub frames: AtomicU64,
}

/// One reader's life.
pub struct ReaderResult {
    pub log: ReaderLog,
    pub sessions: u64,
    pub session_ends: BTreeMap<String, u64>,
    pub connect_failures: BTreeMap<String, u64>,
    /// Broken promises (`resync_required`, a first frame that is not `hello`, …).
    pub failures: Vec<String>,
}

struct Reader {
    user: User,
    nodes: Vec<String>,
    rng: StdRng,
    since: i64,
    /// Whether a first `hello` came (and was counted in `progress.started`).
    started: bool,
    phase: watch::Receiver<Phase>,
    progress: Arc<Progress>,
    result: ReaderResult,
}

/// Starts the reader of `user`.
pub fn spawn(
    user: User,
    nodes: Vec<String>,
    start_id: i64,
    seed: u64,
    phase: watch::Receiver<Phase>,
    progress: Arc<Progress>,
) -> actix_rt::task::JoinHandle<ReaderResult> {
    let rng = StdRng::seed_from_u64(seed ^ (0x7265_6164_6572 + user.id.unsigned_abs()));
    let result = ReaderResult {
        log: ReaderLog {
            user: user.id,
            handle: user.handle.clone(),
            received: Vec::new(),
        },
        sessions: 0,
        session_ends: BTreeMap::new(),
        connect_failures: BTreeMap::new(),
        failures: Vec::new(),
    };
    let reader = Reader {
        user,
        nodes,
        rng,
        since: start_id,
        started: false,
        phase,
        progress,
        result,
    };
    actix_rt::spawn(reader.run())
}

fn bump(map: &mut BTreeMap<String, u64>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

impl Reader {
    async fn run(mut self) -> ReaderResult {
        while *self.phase.borrow_and_update() == Phase::Run {
            let Some(mut ws) = self.connect().await else {
                continue;
            };
            let end = self.session(&mut ws).await;
            bump(&mut self.result.session_ends, end);
        }
        self.catch_up().await;
        self.result
    }

    fn fail(&mut self, what: String) {
        self.result
            .failures
            .push(format!("{}: {what}", self.user.handle));
    }

    /// An upgrade to a random node resuming after `since`; on a refusal or an error, the
    /// reason is counted, the wait asked for is kept, and None.
    async fn connect(&mut self) -> Option<WsClient> {
        let node = self
            .nodes
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_default();
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            ws_upgrade(&node, &self.user.token, Some(self.since)),
        )
        .await;
        let backoff = Duration::from_millis(self.rng.random_range(100..300));
        match attempt {
            Ok(Ok(ws)) => {
                self.result.sessions += 1;
                self.progress.sessions.fetch_add(1, Ordering::Relaxed);
                return Some(ws);
            }
            Ok(Err(aisocial_client::Error::Refused {
                status,
                retry_after,
            })) => {
                bump(&mut self.result.connect_failures, status.to_string());
                if status == 503 || status == 429 {
                    let seconds = retry_after.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    let wait = Duration::from_secs(seconds).min(Duration::from_secs(10));
                    tokio::time::sleep(wait.max(backoff)).await;
                } else {
                    self.fail(format!("the upgrade on {node} was refused with {status}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Ok(Err(_)) => {
                bump(&mut self.result.connect_failures, "connect error");
                tokio::time::sleep(backoff).await;
            }
            Err(_) => bump(&mut self.result.connect_failures, "handshake timeout"),
        }
        None
    }

    /// Keeps a durable frame.
    fn record(&mut self, frame: &Value) -> bool {
        let Some(id) = frame.get("id").and_then(Value::as_i64) else {
            return false;
        };
        let kind = frame["type"].as_str().unwrap_or("?").to_owned();
        self.result.log.received.push(Received { id, kind });
        self.since = self.since.max(id);
        self.progress.frames.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Reads the first frame, which must be `hello` with a resumed status; its `replayed`.
    async fn hello(&mut self, ws: &mut WsClient) -> Result<u64, String> {
        let hello = match ws.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) => frame,
            WsEvent::Closed(frame) => return Err(ended(frame.as_ref())),
            WsEvent::Timeout => return Err("hello timeout".to_owned()),
        };
        if hello["type"] != "hello" {
            self.fail(format!("the first frame is not hello: {hello}"));
            self.record(&hello);
            return Err("no hello".to_owned());
        }
        let resume = &hello["data"]["resume"];
        match resume["status"].as_str() {
            Some("resumed") => {}
            Some("resync_required") => self.fail(format!(
                "resync_required resuming after {} ({hello})",
                self.since
            )),
            other => self.fail(format!("hello with resume status {other:?}: {hello}")),
        }
        Ok(resume["replayed"].as_u64().unwrap_or(0))
    }

    /// One session during the run, until it ends, a random moment comes, or the run moves on:
    /// why it ended.
    async fn session(&mut self, ws: &mut WsClient) -> String {
        if let Err(why) = self.hello(ws).await {
            return why;
        }
        if !self.started {
            self.started = true;
            self.progress.started.fetch_add(1, Ordering::Relaxed);
        }
        let until = Instant::now() + Duration::from_millis(self.rng.random_range(1000..12000));
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let next = tokio::select! {
                next = ws.next_event(left) => next,
                _ = self.phase.changed() => return "run over".to_owned(),
            };
            match next {
                WsEvent::Json(frame) => {
                    self.record(&frame);
                }
                WsEvent::Closed(frame) => return ended(frame.as_ref()),
                WsEvent::Timeout => {
                    // Leave as a client would: politely or not at all.
                    if self.rng.random_bool(0.5) {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.stream.close(None))
                            .await;
                    }
                    return "voluntary".to_owned();
                }
            }
        }
    }

    /// The last reconnect: reads the replay `hello` announces, then until the socket is quiet.
    async fn catch_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(mut ws) = self.connect().await else {
                continue;
            };
            let replayed = match self.hello(&mut ws).await {
                Ok(replayed) => replayed,
                Err(why) => {
                    bump(&mut self.result.session_ends, why);
                    continue;
                }
            };
            let mut got = 0u64;
            loop {
                let quiet = if got >= replayed {
                    Duration::from_millis(500)
                } else {
                    Duration::from_secs(10)
                };
                match ws.next_event(quiet).await {
                    WsEvent::Json(frame) => {
                        if self.record(&frame) {
                            got += 1;
                        }
                    }
                    WsEvent::Closed(frame) => {
                        bump(&mut self.result.session_ends, ended(frame.as_ref()));
                        break;
                    }
                    WsEvent::Timeout => {
                        if got < replayed {
                            self.fail(format!(
                                "hello announced {replayed} replayed events, {got} arrived"
                            ));
                        }
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.stream.close(None))
                            .await;
                        bump(&mut self.result.session_ends, "caught up");
                        return;
                    }
                }
            }
        }
        self.fail("did not catch up within 60 s of the run's end".to_owned());
    }
}

/// A session's end by its close code (`error` when the connection just ended).
fn ended(frame: Option<&tungstenite::protocol::CloseFrame>) -> String {
    frame.map_or_else(
        || "error".to_owned(),
        |f| format!("close {}", u16::from(f.code)),
    )
}
