//! Before the storm, over HTTP: every user signed in through the dev login, the follow graph
//! made, and (when that took long) every token pair refreshed, so that no access token expires
//! during the storm. Requests go in batches, a bounded number at once, and a 429 or 503 is
//! retried after its `Retry-After` (the sign-in limit per IP is low by default). These requests
//! are idempotent, so another 5xx is retried too, a few times, with backoff (and counted).
//!
//! The setup talks to one node (the caller gives one URL): it is not what the storm measures,
//! and two nodes' DbWriters making follows at once can deadlock in PostgreSQL, which today's
//! server answers with 500.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};

use super::backoff::{self, Backoff};
use aisocial_client::{Client, SignedIn, TokenPair, http};

use crate::scenario::Rng;

/// Requests a batch holds (a progress line after each).
const BATCH: usize = 2_000;
/// A request refused (429, 503) more often than this fails the setup.
const MAX_ATTEMPTS: u32 = 200;
/// A request failing with another 5xx more often than this fails the setup.
const MAX_ERRORS: u32 = 5;

/// A signed-in user of the storm.
#[derive(Clone, Debug)]
pub struct User {
    pub handle: String,
    pub id: i64,
    pub token: String,
    pub refresh: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

/// The HTTP side of the setup: where, how many at once, and the refusals waited out.
pub struct Http {
    /// One client per node (requests rotate over them).
    pub clients: Vec<Client>,
    pub concurrency: usize,
    /// 429s and 503s waited out.
    pub waited: AtomicU64,
    /// Other 5xx answers retried.
    pub retried: AtomicU64,
}

impl Http {
    /// The connection pool all nodes share.
    pub fn pool(&self) -> Option<&reqwest::Client> {
        self.clients.first().map(Client::http)
    }

    /// The node for request `n` (requests rotate over the nodes given).
    fn node(&self, n: usize) -> anyhow::Result<&Client> {
        self.clients
            .get(n % self.clients.len().max(1))
            .context("no node to set up through")
    }

    /// Sends the request `make` builds until it is answered with neither 429 nor 503, waiting
    /// each refusal's `Retry-After` (or backing off without one); another 5xx is retried
    /// [`MAX_ERRORS`] times with backoff.
    async fn patiently(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let mut rng = Rng::new(crate::scenario::now_micros());
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut errors = 0;
        for _ in 0..MAX_ATTEMPTS {
            let res = make().send().await?;
            let status = res.status().as_u16();
            if status >= 500 && status != 503 && errors < MAX_ERRORS {
                errors += 1;
                self.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.next(&mut rng)).await;
                continue;
            }
            if status != 429 && status != 503 {
                return Ok(res);
            }
            self.waited.fetch_add(1, Ordering::Relaxed);
            let after = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok());
            let wait = match backoff::retry_after(after) {
                Some(after) => backoff::honour(after, &mut rng),
                None => backoff.next(&mut rng),
            };
            tokio::time::sleep(wait).await;
        }
        anyhow::bail!("refused {MAX_ATTEMPTS} times in a row")
    }

    async fn sign_in(&self, n: usize, handle: String) -> anyhow::Result<User> {
        let node = self.node(n)?;
        let what = format!("dev sign-in of {handle} (is AUTH_DEV_LOGIN=true?)");
        let res = self.patiently(|| node.sign_in_dev_request(&handle)).await?;
        let signed = SignedIn::parse(&http::success(res, &what, None).await?)?;
        Ok(User {
            id: signed.user_id,
            token: signed.token,
            refresh: signed.refresh,
            expires_in: signed.expires_in,
            handle,
        })
    }

    async fn follow(&self, n: usize, token: &str, handle: &str) -> anyhow::Result<()> {
        let node = self.node(n)?;
        let res = self
            .patiently(|| node.follow_request(token, handle))
            .await?;
        http::success(res, &format!("follow {handle}"), Some(204)).await?;
        Ok(())
    }

    async fn refresh(&self, n: usize, user: &mut User) -> anyhow::Result<()> {
        let node = self.node(n)?;
        let res = self
            .patiently(|| node.refresh_request(&user.refresh))
            .await?;
        let what = format!("refresh of {}", user.handle);
        let pair = TokenPair::parse(&http::success(res, &what, None).await?)?;
        user.token = pair.access_token;
        user.refresh = pair.refresh_token;
        Ok(())
    }
}

/// Signs in every handle, in batches; the users in the handles' order.
pub async fn sign_in_all(http: &Http, handles: Vec<String>) -> anyhow::Result<Vec<User>> {
    let total = handles.len();
    let mut users = Vec::with_capacity(total);
    for (b, batch) in handles.chunks(BATCH).enumerate() {
        let signed: Vec<User> = futures_util::stream::iter(batch.iter().cloned().enumerate())
            .map(|(n, handle)| http.sign_in(b * BATCH + n, handle))
            .buffered(http.concurrency.max(1))
            .try_collect()
            .await?;
        users.extend(signed);
        println!("storm: {} of {total} users signed in", users.len());
    }
    Ok(users)
}

/// Makes every `(follower, followee)` follow, in batches.
pub async fn follow_all(
    http: &Http,
    users: &[User],
    edges: &[(usize, usize)],
) -> anyhow::Result<()> {
    for (b, batch) in edges.chunks(BATCH * 5).enumerate() {
        futures_util::stream::iter(batch.iter().enumerate())
            .map(|(n, &(follower, followee))| {
                http.follow(
                    b * BATCH * 5 + n,
                    &users[follower].token,
                    &users[followee].handle,
                )
            })
            .buffer_unordered(http.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        println!(
            "storm: {} of {} follows made",
            (b * BATCH * 5 + batch.len()).min(edges.len()),
            edges.len()
        );
    }
    Ok(())
}

/// Refreshes every user's token pair when the oldest access token has used up more than a
/// quarter of its life since `signed_in`; whether it did.
pub async fn refresh_if_old(
    http: &Http,
    users: &mut [User],
    signed_in: Instant,
) -> anyhow::Result<bool> {
    let life = users.iter().map(|u| u.expires_in).min().unwrap_or(900);
    if signed_in.elapsed() < Duration::from_secs(life / 4) {
        return Ok(false);
    }
    let total = users.len();
    for (b, batch) in users.chunks_mut(BATCH).enumerate() {
        futures_util::stream::iter(batch.iter_mut().enumerate())
            .map(|(n, user)| http.refresh(b * BATCH + n, user))
            .buffer_unordered(http.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        println!(
            "storm: {} of {total} token pairs refreshed",
            ((b + 1) * BATCH).min(total)
        );
    }
    Ok(true)
}
