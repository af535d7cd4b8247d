//! One storm client, as a real client behaves: it connects (resuming with `since` when it has
//! one), keeps its socket and reads it, records every durable id, and whenever it is refused or
//! loses its session it waits and comes back, until the storm is stopped.
//!
//! - Refused before the 101 with 429 or a 5xx: it waits the `Retry-After` (with jitter), or
//!   backs off without one, and tries the same node again; so with 408 (the server gave up
//!   waiting for the request head, which it may under a storm). Any other refusal (401, 403,
//!   ...) ends the client (counted as given up): a real one would need a person or a new token.
//! - Closed with 1001 (going away) or dropped without a close frame (the node died): it goes
//!   to the next node, after a short jittered wait.
//! - Closed with another code (1013, 1011, ...): the same node, after jittered backoff.
//! - Attempts that fail below HTTP (connect refused, timeouts) move on to the next node too.
//!
//! Backoff starts again from its base only after a session that stood [`STOOD`].

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::backoff::{self, Backoff};
use super::wire::{ClientOutcome, ClientPlan, Tick};
use aisocial_client::{self as client, Frame, Socket, ws};

use crate::scenario::{self, Rng, StreamCheck};

/// The `closes` entry of a session that ended without a close frame.
pub const DROPPED: &str = "no close frame";

/// A session that stood this long resets the backoff.
const STOOD: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// What every client of a worker shares.
pub struct Env {
    pub urls: Vec<String>,
    pub source: Option<IpAddr>,
    pub since: Option<i64>,
    pub started_unix_micros: u64,
    pub attempt_timeout: Duration,
    /// What happened since the last tick.
    pub tally: Mutex<Tick>,
}

impl Env {
    fn count(&self, f: impl FnOnce(&mut Tick)) {
        f(&mut self.tally.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// How one attempt to open a session went.
enum Attempt {
    Open(Box<Socket>, client::Hello, u64),
    Refused {
        status: u16,
        retry_after: Option<Duration>,
    },
    Failed(String),
}

/// How an open session ended.
enum Ended {
    Stopped,
    /// By the server, with this close code.
    Closed(u16),
    /// Without a close frame (reset, EOF).
    Dropped,
}

/// A client's life until `stop` turns true.
pub async fn live(
    env: &Env,
    plan: ClientPlan,
    mut rng: Rng,
    mut stop: watch::Receiver<bool>,
) -> ClientOutcome {
    let mut outcome = ClientOutcome {
        index: plan.index,
        ..ClientOutcome::default()
    };
    let mut check = StreamCheck::<i64>::default();
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let nodes = env.urls.len().max(1);
    let mut node = plan.home % nodes;
    let mut last_node = None;
    while !*stop.borrow() {
        let since = check.last_id().or(env.since);
        let wait = match attempt(env, &env.urls[node], &plan.token, since).await {
            Attempt::Open(mut ws, hello, micros) => {
                let now = scenario::now_micros();
                outcome.sessions += 1;
                if last_node.is_some_and(|n| n != node) {
                    outcome.moved += 1;
                }
                last_node = Some(node);
                if hello.resume_status() == client::ResumeStatus::ResyncRequired {
                    outcome.resyncs += 1;
                }
                let first = outcome.first_hello_unix_micros.is_none();
                if first {
                    outcome.first_hello_unix_micros = Some(now);
                }
                env.count(|t| {
                    t.opened.push([now, micros]);
                    t.open_delta += 1;
                    if first {
                        t.first_hellos
                            .push([now, now.saturating_sub(env.started_unix_micros)]);
                    }
                });
                let opened = Instant::now();
                let ended = read(env, &mut ws, &mut check, &mut outcome.ids, &mut stop).await;
                env.count(|t| t.open_delta -= 1);
                if opened.elapsed() >= STOOD {
                    backoff.reset();
                }
                match ended {
                    Ended::Stopped => {
                        outcome.open_at_stop = true;
                        break;
                    }
                    Ended::Closed(code) => {
                        env.count(|t| *t.closes.entry(code.to_string()).or_default() += 1);
                        if code == 1001 {
                            node = (node + 1) % nodes;
                            Duration::from_secs(1).mul_f64(rng.fraction())
                        } else {
                            backoff.next(&mut rng)
                        }
                    }
                    Ended::Dropped => {
                        env.count(|t| *t.closes.entry(DROPPED.into()).or_default() += 1);
                        node = (node + 1) % nodes;
                        Duration::from_secs(1).mul_f64(rng.fraction())
                    }
                }
            }
            Attempt::Refused {
                status,
                retry_after,
            } => {
                env.count(|t| *t.refusals.entry(status.to_string()).or_default() += 1);
                if !retryable(status) {
                    let never_connected = outcome.first_hello_unix_micros.is_none();
                    env.count(|t| {
                        t.gave_up += 1;
                        t.gave_up_unconnected += u64::from(never_connected);
                    });
                    break;
                }
                match retry_after {
                    Some(after) => {
                        let wait = backoff::honour(after, &mut rng);
                        if !pause(wait, &mut stop).await {
                            break;
                        }
                        env.count(|t| t.retries_honoured += 1);
                        continue;
                    }
                    None => {
                        env.count(|t| t.refusals_without_retry_after += 1);
                        backoff.next(&mut rng)
                    }
                }
            }
            Attempt::Failed(cause) => {
                env.count(|t| *t.failures.entry(cause).or_default() += 1);
                node = (node + 1) % nodes;
                backoff.next(&mut rng)
            }
        };
        if !pause(wait, &mut stop).await {
            break;
        }
    }
    outcome.duplicated = check.duplicated;
    outcome.out_of_order = check.out_of_order;
    outcome
}

/// Whether a client tries again after an upgrade refused with `status`.
fn retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Sleeps `wait`; false when the storm was stopped meanwhile.
async fn pause(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = stopped(stop) => return false,
    }
    !*stop.borrow()
}

/// Returns once the storm is stopped (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Reads an open session until it ends or the storm is stopped (then closes it).
async fn read(
    env: &Env,
    ws: &mut Socket,
    check: &mut StreamCheck<i64>,
    ids: &mut Vec<i64>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            () = stopped(stop) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return Ended::Stopped;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let Ok(frame) = Frame::parse(&text) else {
                    continue;
                };
                if let Some(id) = frame.id {
                    check.observe(id, id);
                    ids.push(id);
                    env.count(|t| t.deliveries += 1);
                }
            }
            Some(Ok(message @ Message::Close(_))) => {
                return Ended::Closed(client::close_code(&message).unwrap_or(1005));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Ended::Dropped,
        }
    }
}

/// One attempt: TCP connect (from `env.source` when the node is on loopback), the upgrade,
/// and `hello`, all within `env.attempt_timeout`.
async fn attempt(env: &Env, url: &str, token: &str, since: Option<i64>) -> Attempt {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + env.attempt_timeout;
    match open(env, url, token, since, deadline).await {
        Ok((ws, hello)) => Attempt::Open(
            Box::new(ws),
            hello,
            crate::report::micros(started.elapsed()),
        ),
        Err(client::Error::Refused {
            status,
            retry_after,
        }) => Attempt::Refused {
            status,
            retry_after: backoff::retry_after(retry_after.as_deref()),
        },
        Err(e) => Attempt::Failed(cause(&e)),
    }
}

/// The steps of [`attempt`], each within what is left before `deadline`.
async fn open(
    env: &Env,
    url: &str,
    token: &str,
    since: Option<i64>,
    deadline: tokio::time::Instant,
) -> Result<(Socket, client::Hello), client::Error> {
    let request = ws::request(&ws::endpoint(url, since), Some(token))?;
    let target = ws::target(&request).await?;
    let options = ws::Connect {
        recv_buffer: None,
        source: env
            .source
            .filter(|s| target.ip().is_loopback() && s.is_ipv4() == target.is_ipv4()),
        timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
    };
    let stream = ws::connect(target, &options).await?;
    let mut ws = tokio::time::timeout_at(deadline, ws::handshake(request, stream))
        .await
        .map_err(|_| client::Error::Timeout("upgrade"))??;
    let hello = tokio::time::timeout_at(deadline, ws::read_hello(&mut ws))
        .await
        .map_err(|_| client::Error::Timeout("hello"))??;
    Ok((ws, hello))
}

/// A short, stable cause for a failed attempt (no addresses or ids, so causes add up).
fn cause(e: &client::Error) -> String {
    match e {
        client::Error::Io { what, source } => format!("{what}: {:?}", source.kind()),
        client::Error::Timeout(step) => format!("{step} timeout"),
        client::Error::WebSocket(e) => format!("upgrade: {}", error_kind(e)),
        other => other.to_string(),
    }
}

/// A short, stable cause for a failed upgrade (no addresses or ids, so causes add up).
fn error_kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) => format!("{:?}", io.kind()),
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".into(),
        Error::Protocol(p) => format!("protocol: {p}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    /// Reads a request head and answers it with `status` and `Retry-After: after`.
    async fn refuse(listener: &TcpListener, status: &str, after: &str) -> anyhow::Result<()> {
        let (mut socket, _) = listener.accept().await?;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            socket.read_exact(&mut byte).await?;
            head.push(byte[0]);
        }
        let answer =
            format!("HTTP/1.1 {status}\r\nRetry-After: {after}\r\ncontent-length: 0\r\n\r\n");
        socket.write_all(answer.as_bytes()).await?;
        Ok(())
    }

    /// Accepts a websocket and sends `hello`; the path and query it was asked for.
    #[expect(
        clippy::result_large_err,
        reason = "the handshake callback's signature is tungstenite's"
    )]
    async fn accept(
        listener: &TcpListener,
    ) -> anyhow::Result<(
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        String,
    )> {
        let (socket, _) = listener.accept().await?;
        let mut asked = String::new();
        let mut ws =
            tokio_tungstenite::accept_hdr_async(socket, |request: &Request, response: Response| {
                asked = request.uri().to_string();
                Ok(response)
            })
            .await?;
        let hello = r#"{"type":"hello","data":{"session_id":"s","user":{"id":1,"handle":"u"},"heartbeat_ms":15000,"resume":{"since":3,"status":"resumed","replayed":0}}}"#;
        ws.send(Message::text(hello)).await?;
        Ok((ws, asked))
    }

    #[tokio::test]
    async fn a_client_honours_refusals_and_resumes_after_a_close() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let env = std::sync::Arc::new(Env {
            urls: vec![url],
            source: None,
            since: Some(3),
            started_unix_micros: scenario::now_micros(),
            attempt_timeout: Duration::from_secs(5),
            tally: Mutex::new(Tick::default()),
        });
        let (stop, stopped) = watch::channel(false);
        let plan = ClientPlan {
            index: 7,
            token: "t".into(),
            home: 0,
        };
        let started = Instant::now();
        let client = {
            let env = env.clone();
            tokio::spawn(async move { live(&env, plan, Rng::new(1), stopped).await })
        };
        refuse(&listener, "503 Service Unavailable", "1").await?;
        refuse(&listener, "429 Too Many Requests", "0").await?;
        let (mut ws, asked) = accept(&listener).await?;
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        assert_eq!(
            asked, "/api/v1/ws?since=3",
            "the first session resumes from the plan"
        );
        ws.send(Message::text(r#"{"type":"post.created","id":5,"data":{}}"#))
            .await?;
        ws.send(Message::text(r#"{"type":"presence","data":{}}"#))
            .await?;
        ws.close(Some(CloseFrame {
            code: 1013.into(),
            reason: "too slow".into(),
        }))
        .await?;
        let (mut ws, asked) = accept(&listener).await?;
        assert_eq!(
            asked, "/api/v1/ws?since=5",
            "it resumes after the last id it saw"
        );
        ws.send(Message::text(r#"{"type":"post.created","id":6,"data":{}}"#))
            .await?;
        // Let the frame arrive, then stop the storm: the client closes and reports.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(true)?;
        let outcome = client.await?;
        assert_eq!(outcome.ids, vec![5, 6]);
        assert_eq!(
            (outcome.sessions, outcome.moved, outcome.resyncs),
            (2, 0, 0)
        );
        assert!(outcome.open_at_stop);
        assert_eq!((outcome.duplicated, outcome.out_of_order), (0, 0));
        let tally = std::mem::take(&mut *env.tally.lock().unwrap_or_else(PoisonError::into_inner));
        assert_eq!(
            tally.refusals,
            [("429".to_owned(), 1), ("503".to_owned(), 1)].into()
        );
        assert_eq!(tally.retries_honoured, 2);
        assert_eq!(tally.closes, [("1013".to_owned(), 1)].into());
        assert_eq!(tally.first_hellos.len(), 1);
        assert_eq!(tally.opened.len(), 2);
        assert_eq!(
            (tally.open_delta, tally.deliveries, tally.gave_up),
            (0, 2, 0)
        );
        Ok(())
    }

    #[test]
    fn clients_retry_what_a_real_client_would() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!retryable(status), "{status}");
        }
    }
}
