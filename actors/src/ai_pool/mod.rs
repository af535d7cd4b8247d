//! The AiPool: a dispatcher actor with a bounded queue fair across users, and worker actors
//! that call Gemini under the budget every node shares.
//!
//! Submitting answers at once: queued (the caller gets 202 and the answer streams to their
//! websocket), or refused with how long to wait (429 `Retry-After`). Jobs leave the queue one
//! user at a time; at most `concurrency` run at once on this node. The dispatcher also keeps
//! the pool's view of upstream health for readiness: degraded after several failures in a
//! row, misconfigured after a 403, exhausted after a per-day quota.

pub mod budget;
pub mod fair;
pub mod job;
pub mod metrics;
pub mod prompts;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use self::fair::{FairQueue, Refused};
use self::job::{AiJob, RequestId};
use self::worker::{AiWorker, JobFinished, Outcome, RunJob, WorkerDeps};
use crate::committed::EphemeralPush;
use crate::meter::{ActorMeter, MeteredAddr};
use crate::protocol;

#[derive(Debug, Clone, Copy)]
pub struct AiPoolConfig {
    /// Jobs running at once on this node.
    pub concurrency: usize,
    /// Jobs waiting at most on this node.
    pub queue: usize,
    /// Jobs one user may have waiting.
    pub per_user_queue: usize,
    /// The shared requests-per-minute budget, to tell refused callers how long to wait.
    pub rpm: u32,
    /// Upstream failures in a row after which readiness shows the AI as degraded.
    pub degraded_after: u32,
}

/// Submit a job.
#[derive(Message)]
#[rtype(result = "Result<RequestId, SubmitError>")]
pub struct Submit(pub AiJob);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the AI queue is full")]
    QueueFull { retry_after: Duration },
    #[error("you already have as many AI requests waiting as one person may")]
    UserQueueFull { retry_after: Duration },
    #[error("the AI has used its quota for today")]
    QuotaExhausted { retry_after: Duration },
    #[error("the AI is shutting down on this node")]
    Stopped,
}

/// The pool's state, for readiness and the admin view.
#[derive(Message)]
#[rtype(result = "AiStatus")]
pub struct GetAiStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AiHealth {
    Ok,
    /// The last calls kept failing (5xx, timeouts): answers are slow or failing.
    Degraded,
    /// The upstream refused the key or project (403).
    Misconfigured,
    /// The per-day quota is used up.
    Exhausted,
    /// This node has no AI (no Gemini key, no emulator): there is no pool to ask. Never
    /// reported by a pool, only in its place.
    NotConfigured,
}

#[derive(Debug, Clone, Serialize, MessageResponse, utoipa::ToSchema)]
pub struct AiStatus {
    pub health: AiHealth,
    pub queued: usize,
    pub in_flight: usize,
    pub users_waiting: usize,
    pub last_error: Option<&'static str>,
}

/// Stop taking jobs and fail those waiting (the node is shutting down).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAi;

pub struct AiPool {
    meter: ActorMeter,
    config: AiPoolConfig,
    deps: Arc<WorkerDeps>,
    queue: FairQueue<AiJob>,
    workers: Vec<MeteredAddr<AiWorker>>,
    idle: Vec<usize>,
    consecutive_failures: u32,
    misconfigured: bool,
    exhausted_until: Option<Instant>,
    last_error: Option<&'static str>,
    stopped: bool,
}

impl AiPool {
    pub const KIND: &'static str = "ai_pool";

    pub fn new(config: AiPoolConfig, deps: WorkerDeps) -> Self {
        metrics::register();
        Self {
            meter: ActorMeter::new(Self::KIND),
            queue: FairQueue::new(config.queue, config.per_user_queue),
            config,
            deps: Arc::new(deps),
            workers: Vec::new(),
            idle: Vec::new(),
            consecutive_failures: 0,
            misconfigured: false,
            exhausted_until: None,
            last_error: None,
            stopped: false,
        }
    }

    pub fn meter() -> ActorMeter {
        ActorMeter::new(Self::KIND)
    }

    fn in_flight(&self) -> usize {
        self.workers.len() - self.idle.len()
    }

    /// About how long until the queue has room: what is ahead, at the budget's rate.
    fn retry_after(&self) -> Duration {
        let ahead = (self.queue.len() + self.in_flight()) as u64;
        let per_minute = u64::from(self.config.rpm.max(1));
        Duration::from_secs((ahead * 60).div_ceil(per_minute).clamp(1, 300))
    }

    fn exhausted_for(&self) -> Option<Duration> {
        self.exhausted_until
            .and_then(|until| until.checked_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    fn dispatch(&mut self) {
        while let Some(worker) = self.idle.last().copied() {
            let Some((_, job)) = self.queue.pop() else {
                break;
            };
            self.idle.pop();
            metrics::QUEUE_DEPTH
                .with_label_values(&[job.kind.as_str()])
                .dec();
            metrics::IN_FLIGHT.inc();
            self.workers[worker].do_send(RunJob(job));
        }
        metrics::USERS_WAITING.set(self.queue.users_waiting() as i64);
    }

    /// Fails every waiting job with `ai.error` (shutdown, or no quota left today).
    fn fail_waiting(&mut self, code: &str, detail: &str) {
        for (user, job) in self.queue.drain() {
            metrics::QUEUE_DEPTH
                .with_label_values(&[job.kind.as_str()])
                .dec();
            metrics::JOBS
                .with_label_values(&[job.kind.as_str(), code])
                .inc();
            crate::feed_broker::push_or_shed(
                &self.deps.push,
                EphemeralPush {
                    users: vec![user],
                    thread: job.kind.thread(),
                    frame: protocol::ai_error_frame(
                        &job.id.to_string(),
                        job.kind.post(),
                        code,
                        detail,
                    ),
                },
            );
        }
        metrics::USERS_WAITING.set(0);
    }
}

impl Actor for AiPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let report_to = ctx.address().recipient::<JobFinished>();
        for index in 0..self.config.concurrency.max(1) {
            let worker = AiWorker::new(index, Arc::clone(&self.deps), report_to.clone());
            let meter = worker.meter();
            self.workers.push(MeteredAddr::new(worker.start(), meter));
            self.idle.push(index);
        }
    }
}

impl Handler<Submit> for AiPool {
    type Result = Result<RequestId, SubmitError>;

    fn handle(&mut self, Submit(job): Submit, _: &mut Self::Context) -> Self::Result {
        let refuse = |reason: &str, error: SubmitError| {
            metrics::REFUSED.with_label_values(&[reason]).inc();
            Err(error)
        };
        if self.stopped {
            return refuse("stopped", SubmitError::Stopped);
        }
        if let Some(left) = self.exhausted_for() {
            return refuse(
                "quota_exhausted",
                SubmitError::QuotaExhausted { retry_after: left },
            );
        }
        let id = job.id;
        let class = job.kind.as_str();
        let user = job.user;
        match self.queue.push(user, job) {
            Ok(()) => {
                metrics::QUEUE_DEPTH.with_label_values(&[class]).inc();
                self.dispatch();
                Ok(id)
            }
            Err((Refused::Full, _)) => refuse(
                "queue_full",
                SubmitError::QueueFull {
                    retry_after: self.retry_after(),
                },
            ),
            Err((Refused::UserFull, _)) => refuse(
                "user_queue_full",
                SubmitError::UserQueueFull {
                    retry_after: self.retry_after(),
                },
            ),
        }
    }
}
crate::metered_handler!(AiPool, Submit);

impl Handler<JobFinished> for AiPool {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, _: &mut Self::Context) {
        metrics::IN_FLIGHT.dec();
        self.idle.push(msg.worker);
        match &msg.report.outcome {
            Outcome::Done | Outcome::Declined | Outcome::NotStored => {
                self.consecutive_failures = 0;
                self.misconfigured = false;
            }
            Outcome::Misconfigured => {
                self.misconfigured = true;
                self.consecutive_failures += 1;
            }
            Outcome::QuotaExhausted(left) => {
                self.exhausted_until = Instant::now().checked_add(*left);
                self.fail_waiting("quota_exhausted", "the AI has used its quota for today");
            }
            Outcome::Unavailable | Outcome::Rejected => self.consecutive_failures += 1,
        }
        if msg.report.upstream_error.is_some() {
            self.last_error = msg.report.upstream_error;
        }
        if !self.stopped {
            self.dispatch();
        }
    }
}
crate::metered_handler!(AiPool, JobFinished);

impl Handler<GetAiStatus> for AiPool {
    type Result = AiStatus;

    fn handle(&mut self, _: GetAiStatus, _: &mut Self::Context) -> Self::Result {
        let health = if self.exhausted_for().is_some() {
            AiHealth::Exhausted
        } else if self.misconfigured {
            AiHealth::Misconfigured
        } else if self.consecutive_failures >= self.config.degraded_after.max(1) {
            AiHealth::Degraded
        } else {
            AiHealth::Ok
        };
        AiStatus {
            health,
            queued: self.queue.len(),
            in_flight: self.in_flight(),
            users_waiting: self.queue.users_waiting(),
            last_error: self.last_error,
        }
    }
}
crate::metered_handler!(AiPool, GetAiStatus);

impl Handler<StopAi> for AiPool {
    type Result = ();

    fn handle(&mut self, _: StopAi, _: &mut Self::Context) {
        self.stopped = true;
        self.deps.stopping.stop();
        self.fail_waiting("unavailable", "this node is shutting down; ask again");
    }
}
crate::metered_handler!(AiPool, StopAi);
