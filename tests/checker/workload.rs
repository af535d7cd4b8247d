//! The writers: post, reply, like, follow, unfollow and delete through random nodes, retrying
//! 503, 429 and connection errors (posts with an `Idempotency-Key`). An operation never
//! acknowledged is not an error, since the oracle reads what PostgreSQL committed; a 5xx other
//! than 503 is a broken promise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::retry_after;
use crate::report::OpCounts;

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub handle: String,
    pub token: String,
}

/// How one request ended, after its retries.
#[derive(Debug)]
pub enum Outcome {
    Acked(Value),
    Rejected(u16),
    Unacknowledged,
    Failed(String),
}

impl Outcome {
    fn counts(&self) -> OpCounts {
        let mut counts = OpCounts::default();
        match self {
            Outcome::Acked(_) => counts.acked = 1,
            Outcome::Rejected(status) => {
                counts.rejected = 1;
                counts.rejected_by_status.insert(*status, 1);
            }
            Outcome::Unacknowledged => counts.unacknowledged = 1,
            Outcome::Failed(_) => counts.failed = 1,
        }
        counts
    }
}

/// One HTTP request of the workload.
pub struct Request<'a> {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub idempotency_key: Option<String>,
    pub user: &'a User,
}

/// What every writer shares.
pub struct Workload {
    pub http: reqwest::Client,
    pub nodes: Vec<String>,
    pub users: Vec<User>,
    /// How many of `users` (the first ones) are writers.
    pub writers: usize,
    /// Whether follows and unfollows are part of the mix (`CHECKER_FOLLOWS`).
    pub follow_churn: bool,
    /// Posts that exist as far as the writers know (replies and likes pick from them).
    pub posts: Mutex<Vec<i64>>,
    /// (follower, followee) indexes into `users` believed to stand (unfollows pick from them).
    pub follows: Mutex<BTreeSet<(usize, usize)>>,
    pub stop: AtomicBool,
    pub acked: AtomicU64,
    /// Broken promises: 5xx other than 503.
    pub failures: Mutex<Vec<String>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Workload {
    /// Sends `request` through random nodes until it is answered with something other than 503
    /// or 429, for at most 20 s (less once the run is stopping).
    pub async fn perform(&self, rng: &mut StdRng, request: &Request<'_>) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if Instant::now() >= deadline || self.stop.load(Ordering::Relaxed) {
                return Outcome::Unacknowledged;
            }
            let node = self.nodes.choose(rng).cloned().unwrap_or_default();
            let url = format!("http://{node}{}", request.path);
            let mut builder = self
                .http
                .request(request.method.clone(), &url)
                .bearer_auth(&request.user.token)
                .timeout(Duration::from_secs(5));
            if let Some(key) = &request.idempotency_key {
                builder = builder.header("idempotency-key", key);
            }
            if let Some(body) = &request.body {
                builder = builder.json(body);
            }
            match builder.send().await {
                Ok(res) => match res.status().as_u16() {
                    200..=299 => {
                        self.acked.fetch_add(1, Ordering::Relaxed);
                        return Outcome::Acked(res.json().await.unwrap_or_default());
                    }
                    503 | 429 => {
                        let wait = Duration::from_secs(retry_after(&res));
                        let jitter = Duration::from_millis(rng.random_range(0..200));
                        tokio::time::sleep(
                            wait.clamp(Duration::from_millis(100), Duration::from_secs(5)) + jitter,
                        )
                        .await;
                    }
                    status @ 500..=599 => {
                        let text = res.text().await.unwrap_or_default();
                        return Outcome::Failed(format!(
                            "{} {} as {} via {node}: {status} {text}",
                            request.method, request.path, request.user.handle
                        ));
                    }
                    status => return Outcome::Rejected(status),
                },
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(100..300))).await;
                }
            }
        }
    }

    /// Follows chosen at random before the run (each reader 3–6 writers and maybe a reader,
    /// each writer 2–4 writers); every one must be acknowledged.
    pub async fn initial_follows(&self, rng: &mut StdRng, seed: u64) {
        let writers: Vec<usize> = (0..self.writers).collect();
        for follower in 0..self.users.len() {
            let is_writer = follower < self.writers;
            let count = if is_writer {
                rng.random_range(2..=4)
            } else {
                rng.random_range(3..=6)
            };
            let mut targets: BTreeSet<usize> = writers
                .sample(rng, count + 1)
                .copied()
                .filter(|&t| t != follower)
                .take(count)
                .collect();
            if !is_writer && rng.random_bool(0.3) {
                let reader = rng.random_range(self.writers..self.users.len());
                if reader != follower {
                    targets.insert(reader);
                }
            }
            for followee in targets {
                let outcome = self.set_follow(rng, follower, followee, true).await;
                assert!(
                    matches!(outcome, Outcome::Acked(_)),
                    "seed={seed}: the initial follow {} -> {} was not acknowledged: {outcome:?}",
                    self.users[follower].handle,
                    self.users[followee].handle
                );
            }
        }
    }

    async fn set_follow(
        &self,
        rng: &mut StdRng,
        follower: usize,
        followee: usize,
        following: bool,
    ) -> Outcome {
        let request = Request {
            method: if following {
                Method::PUT
            } else {
                Method::DELETE
            },
            path: format!("/api/v1/users/{}/follow", self.users[followee].handle),
            body: None,
            idempotency_key: None,
            user: &self.users[follower],
        };
        let outcome = self.perform(rng, &request).await;
        if matches!(outcome, Outcome::Acked(_)) {
            let mut follows = locked(&self.follows);
            if following {
                follows.insert((follower, followee));
            } else {
                follows.remove(&(follower, followee));
            }
        }
        outcome
    }

    fn random_post(&self, rng: &mut StdRng) -> Option<i64> {
        locked(&self.posts).choose(rng).copied()
    }

    /// Writer `n` (user `n`) until the run stops: its operations by kind.
    pub async fn writer(self: Arc<Self>, n: usize, seed: u64) -> BTreeMap<String, OpCounts> {
        let mut rng = StdRng::seed_from_u64(seed ^ (0x7772_6974_6572 + n as u64));
        let me = &self.users[n];
        let mut mine: Vec<i64> = Vec::new();
        let mut counts: BTreeMap<String, OpCounts> = BTreeMap::new();
        let churn = u32::from(self.follow_churn);
        let mix = [
            ("post", 30),
            ("reply", 20),
            ("like", 20),
            ("follow", 12 * churn),
            ("unfollow", 10 * churn),
            ("delete", 8),
        ];
        let mut sequence = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let choice = mix
                .choose_weighted(&mut rng, |(_, weight)| *weight)
                .map_or("post", |(name, _)| *name);
            sequence += 1;
            let (kind, outcome) = match choice {
                "post" | "reply" => {
                    let reply_to = if choice == "reply" {
                        self.random_post(&mut rng)
                    } else {
                        None
                    };
                    let kind = if reply_to.is_some() { "reply" } else { "post" };
                    let request = Request {
                        method: Method::POST,
                        path: "/api/v1/posts".to_owned(),
                        body: Some(json!({
                            "body": format!("checker {kind} {sequence} by {}", me.handle),
                            "reply_to": reply_to,
                        })),
                        idempotency_key: Some(format!("checker-{seed}-{n}-{sequence}")),
                        user: me,
                    };
                    let outcome = self.perform(&mut rng, &request).await;
                    if let Outcome::Acked(post) = &outcome
                        && let Some(id) = post["id"].as_i64()
                    {
                        mine.push(id);
                        locked(&self.posts).push(id);
                    }
                    (kind, outcome)
                }
                "like" => {
                    let Some(post) = self.random_post(&mut rng) else {
                        continue;
                    };
                    let liker = rng.random_range(0..self.users.len());
                    let request = Request {
                        method: Method::PUT,
                        path: format!("/api/v1/posts/{post}/like"),
                        body: None,
                        idempotency_key: None,
                        user: &self.users[liker],
                    };
                    ("like", self.perform(&mut rng, &request).await)
                }
                "follow" => {
                    let follower = rng.random_range(0..self.users.len());
                    let followee = if rng.random_bool(0.8) {
                        rng.random_range(0..self.writers)
                    } else {
                        rng.random_range(0..self.users.len())
                    };
                    if follower == followee {
                        continue;
                    }
                    (
                        "follow",
                        self.set_follow(&mut rng, follower, followee, true).await,
                    )
                }
                "unfollow" => {
                    let pair = {
                        let follows = locked(&self.follows);
                        let count = follows.len();
                        if count == 0 {
                            None
                        } else {
                            follows.iter().nth(rng.random_range(0..count)).copied()
                        }
                    };
                    let Some((follower, followee)) = pair else {
                        continue;
                    };
                    (
                        "unfollow",
                        self.set_follow(&mut rng, follower, followee, false).await,
                    )
                }
                _ => {
                    if mine.is_empty() {
                        continue;
                    }
                    let post = mine.swap_remove(rng.random_range(0..mine.len()));
                    locked(&self.posts).retain(|&p| p != post);
                    let request = Request {
                        method: Method::DELETE,
                        path: format!("/api/v1/posts/{post}"),
                        body: None,
                        idempotency_key: None,
                        user: me,
                    };
                    ("delete", self.perform(&mut rng, &request).await)
                }
            };
            if let Outcome::Failed(why) = &outcome {
                locked(&self.failures).push(why.clone());
            }
            counts
                .entry(kind.to_owned())
                .or_default()
                .add(outcome.counts());
        }
        counts
    }
}
