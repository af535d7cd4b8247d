//! A feed that keeps itself open ([`ResumingFeed`]): after every close it did not ask for it
//! reconnects with `since` = the last durable id it handed out, backing off with full jitter
//! (a server's `Retry-After` the least wait) and moving on to the next node when one cannot be
//! reached; it renews the token pair when the server says the token expired (one refresh for
//! every holder of the [`SharedTokens`]), keeps thread subscriptions across reconnects, and never
//! hands the application a durable id twice or out of order. A session the server ended for
//! good (suspended, revoked, a protocol error) is an error, never a reconnect loop.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::backoff::Backoff;
use crate::frame::{Frame, Hello, Op, close_code};
use crate::{Client, Error, Socket, TokenPair};

/// The token pair a feed (and anything else) signs its requests with, refreshed once for all
/// who hold it: a caller whose token went stale refreshes only if nobody did meanwhile.
#[derive(Clone)]
pub struct SharedTokens {
    pair: Arc<tokio::sync::Mutex<TokenPair>>,
}

impl SharedTokens {
    pub fn new(pair: TokenPair) -> Self {
        Self {
            pair: Arc::new(tokio::sync::Mutex::new(pair)),
        }
    }

    /// The current access token.
    pub async fn access(&self) -> String {
        self.pair.lock().await.access_token.clone()
    }

    /// A fresh access token for a caller whose `stale` one was refused: the one another
    /// caller already got, or a new pair from `client` (the refresh token is spent).
    pub async fn refreshed(&self, client: &Client, stale: &str) -> Result<String, Error> {
        let mut pair = self.pair.lock().await;
        if pair.access_token != stale {
            return Ok(pair.access_token.clone());
        }
        *pair = client.refresh(&pair.refresh_token).await?;
        Ok(pair.access_token.clone())
    }
}

/// What the feed hands the application.
#[derive(Debug)]
pub enum FeedEvent {
    /// A frame's text as the server sent it; durable ones (with an id) each once, in id order.
    Frame(String),
    /// The socket (re)opened on `nodes[node]`; `hello.resume` says how `since` was answered
    /// (`resync_required`: refetch over HTTP what the feed cannot replay).
    Opened { node: usize, hello: Hello },
}

/// Close codes after which reconnecting cannot help: the account suspended (4003), the sign-in
/// session revoked or a policy broken (1008), a frame too big (1009), a protocol error (1002).
pub fn ends_the_session(code: u16) -> bool {
    matches!(code, 1002 | 1008 | 1009 | 4003)
}

/// The close code that asks the client to renew its token and come back.
const TOKEN_EXPIRED: u16 = 4001;

/// An event feed over `nodes` (clients of the same deployment's nodes, tried in turn).
pub struct ResumingFeed {
    nodes: Vec<Client>,
    node: usize,
    tokens: SharedTokens,
    last_id: Option<i64>,
    topics: BTreeSet<String>,
    socket: Option<Socket>,
    backoff: Backoff,
    /// Sockets opened so far, the first included (for tests and metrics).
    pub opened: u64,
    /// Attempts to open that failed (a node down, refused, a lost connection).
    pub failed_attempts: u64,
}

impl ResumingFeed {
    /// A feed that opens on its first [`ResumingFeed::next`], resuming after `since`.
    pub fn new(nodes: Vec<Client>, tokens: SharedTokens, since: Option<i64>) -> Self {
        Self {
            nodes,
            node: 0,
            tokens,
            last_id: since,
            topics: BTreeSet::new(),
            socket: None,
            backoff: Backoff::default(),
            opened: 0,
            failed_attempts: 0,
        }
    }

    /// With other reconnect pacing.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The last durable id handed out: where a new feed would resume.
    pub fn last_event_id(&self) -> Option<i64> {
        self.last_id
    }

    /// Subscribes to `topic` (`thread:<post id>`) now and after every reconnect.
    pub async fn subscribe(&mut self, topic: &str) -> Result<(), Error> {
        self.topics.insert(topic.to_owned());
        let op = Op::Subscribe {
            topic: topic.to_owned(),
        };
        self.send_if_open(&op).await
    }

    /// Stops hearing `topic`.
    pub async fn unsubscribe(&mut self, topic: &str) -> Result<(), Error> {
        self.topics.remove(topic);
        let op = Op::Unsubscribe {
            topic: topic.to_owned(),
        };
        self.send_if_open(&op).await
    }

    async fn send_if_open(&mut self, op: &Op) -> Result<(), Error> {
        if let Some(socket) = self.socket.as_mut()
            && socket.send(op.to_message()).await.is_err()
        {
            // The socket is gone: the next read reconnects and subscribes again.
            self.socket = None;
        }
        Ok(())
    }

    /// Closes the socket (the feed reopens on the next [`ResumingFeed::next`]).
    pub async fn close(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
    }

    /// The next event, reconnecting as often as it takes; an error only when the server
    /// ended the session for good ([`ends_the_session`]) or the token pair cannot be renewed.
    pub async fn next(&mut self) -> Result<FeedEvent, Error> {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return self.open().await;
            };
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Some(id) = Frame::parse(&text).ok().and_then(|f| f.id) {
                        if self.last_id.is_some_and(|last| id <= last) {
                            continue; // already handed out (a replay overlapping live delivery)
                        }
                        self.last_id = Some(id);
                    }
                    return Ok(FeedEvent::Frame(text.as_str().to_owned()));
                }
                Some(Ok(close @ Message::Close(_))) => {
                    self.socket = None;
                    let code = close_code(&close).unwrap_or(1005);
                    if ends_the_session(code) {
                        return Err(Error::Ended(code));
                    }
                    if code == TOKEN_EXPIRED {
                        let stale = self.tokens.access().await;
                        self.tokens
                            .refreshed(&self.nodes[self.node], &stale)
                            .await?;
                    }
                }
                Some(Ok(_)) => {} // pings (answered by the library), pongs
                Some(Err(_)) | None => self.socket = None,
            }
        }
    }

    /// Opens the socket, after a wait when the last attempt failed.
    async fn open(&mut self) -> Result<FeedEvent, Error> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.access().await;
            let client = &self.nodes[self.node];
            match client.open_feed(&token, self.last_id).await {
                Ok((socket, hello)) => {
                    self.socket = Some(socket);
                    self.opened += 1;
                    self.backoff.reset();
                    let topics: Vec<String> = self.topics.iter().cloned().collect();
                    for topic in topics {
                        self.send_if_open(&Op::Subscribe { topic }).await?;
                    }
                    return Ok(FeedEvent::Opened {
                        node: self.node,
                        hello,
                    });
                }
                Err(Error::Refused { status: 401, .. }) if !refreshed => {
                    self.tokens.refreshed(client, &token).await?;
                    refreshed = true;
                    continue;
                }
                Err(Error::Refused { status: 401, .. }) => return Err(Error::Ended(401)),
                Err(Error::ClosedBeforeHello(code)) if ends_the_session(code) => {
                    return Err(Error::Ended(code));
                }
                Err(Error::Refused {
                    status: 429 | 503,
                    retry_after,
                }) => {
                    let asked = retry_after
                        .as_deref()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    tokio::time::sleep(self.backoff.next(asked)).await;
                }
                Err(_) => {
                    // This node cannot be reached (or failed the upgrade): the next one.
                    self.node = (self.node + 1) % self.nodes.len().max(1);
                    tokio::time::sleep(self.backoff.next(None)).await;
                }
            }
            self.failed_attempts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_that_end_the_session_stop_the_feed() {
        for code in [1002, 1008, 1009, 4003] {
            assert!(ends_the_session(code), "{code}");
        }
        // Going away, try again later, abnormal closure, server error, token expired: resume.
        for code in [1001, 1005, 1006, 1011, 1012, 1013, 4001] {
            assert!(!ends_the_session(code), "{code}");
        }
    }
}
