//! An AiPool worker: runs one job at a time, from budget to upstream call to delivered answer.
//!
//! Before every upstream attempt it draws on the shared budget (waiting while the budget or a
//! pause says so). It streams the answer as `ai.delta` frames through the FeedBroker, retries
//! what may be retried with jittered exponential backoff, pauses the whole pool when the
//! upstream names a `retryDelay`, never retries 400/403/404, stores an `@ai` answer as a reply
//! post, records usage, and reports back to the dispatcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use aisocial_gemini::client::{Finish, StreamEvent};
use aisocial_gemini::{ErrorClass, GeminiClient, GeminiError};

use super::budget::{AiBudget, BudgetAnswer, Reservation};
use super::job::{AiJob, JobKind};
use super::metrics;
use crate::committed::EphemeralPush;
use crate::db_writer::commands::{CreatePost, RecordAiUsage, WriteError};
use crate::ids::{PostId, UserId};
use crate::meter::{ActorMeter, MeteredRecipient};
use crate::protocol::{self, AiUsage};

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per job, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Full jitter: uniformly between zero and the capped exponential delay.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(self.max_delay).mul_f64(rand::random::<f64>())
    }
}

/// What every worker needs.
pub struct WorkerDeps {
    pub client: GeminiClient,
    pub budget: Arc<dyn AiBudget>,
    pub push: MeteredRecipient<EphemeralPush>,
    pub create_post: MeteredRecipient<CreatePost>,
    pub record_usage: MeteredRecipient<RecordAiUsage>,
    /// The `ai` account, author of answers to mentions.
    pub ai_user: UserId,
    pub retry: RetryPolicy,
    /// From queueing to the last attempt: a job older than this fails as unavailable.
    pub job_timeout: Duration,
    /// Set when the node stops: jobs waiting for budget give up at once.
    pub stopping: Stopping,
}

/// The node is stopping: a flag, and a wake-up for those waiting.
#[derive(Debug, Default)]
pub struct Stopping {
    stopped: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stopping {
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Sleeps for `wait`; false when the node started stopping meanwhile (or before).
    pub async fn sleep(&self, wait: Duration) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = notified => false,
        }
    }
}

/// Dispatcher → worker: run this job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunJob(pub AiJob);

/// Worker → dispatcher: the job ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct JobFinished {
    pub worker: usize,
    pub report: JobReport,
}

/// How a job ended, for the dispatcher's view of upstream health.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub outcome: Outcome,
    /// The last upstream attempt failed with this error kind.
    pub upstream_error: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Declined,
    /// The request itself was refused (400, 404): not retried.
    Rejected,
    /// 403: the key or project is refused.
    Misconfigured,
    /// The per-day quota is used up, for this long.
    QuotaExhausted(Duration),
    /// Retries ran out, or the job waited too long.
    Unavailable,
    /// The answer could not be stored (the post was deleted meanwhile).
    NotStored,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Declined => "declined",
            Self::Rejected => "rejected",
            Self::Misconfigured => "misconfigured",
            Self::QuotaExhausted(_) => "quota_exhausted",
            Self::Unavailable => "unavailable",
            Self::NotStored => "not_stored",
        }
    }
}

pub struct AiWorker {
    meter: ActorMeter,
    index: usize,
    deps: Arc<WorkerDeps>,
    report_to: Recipient<JobFinished>,
}

impl AiWorker {
    pub const KIND: &'static str = "ai_worker";

    pub fn new(index: usize, deps: Arc<WorkerDeps>, report_to: Recipient<JobFinished>) -> Self {
        let instance = crate::meter::Instance {
            id: index as u64,
            user: None,
        };
        Self {
            meter: ActorMeter::for_instance(Self::KIND, instance),
            index,
            deps,
            report_to,
        }
    }

    /// This worker's meter: its address must meter through it for its clock to see messages.
    pub fn meter(&self) -> ActorMeter {
        self.meter.clone()
    }
}

impl Actor for AiWorker {
    type Context = Context<Self>;
}

impl Handler<RunJob> for AiWorker {
    type Result = ();

    fn handle(&mut self, RunJob(job): RunJob, ctx: &mut Self::Context) {
        let deps = Arc::clone(&self.deps);
        let worker = self.index;
        let report_to = self.report_to.clone();
        ctx.spawn(
            async move {
                let report = run(&deps, job).await;
                report_to.do_send(JobFinished { worker, report });
            }
            .into_actor(self),
        );
    }
}
crate::metered_handler!(AiWorker, RunJob);

/// Where a job's frames go.
struct Audience<'a> {
    deps: &'a WorkerDeps,
    job: &'a AiJob,
    request_id: String,
}

impl Audience<'_> {
    fn push(&self, frame: bytestring::ByteString) {
        crate::feed_broker::push_or_shed(
            &self.deps.push,
            EphemeralPush {
                users: vec![self.job.user],
                thread: self.job.kind.thread(),
                frame,
            },
        );
    }

    fn error(&self, code: &str, detail: &str) {
        self.push(protocol::ai_error_frame(
            &self.request_id,
            self.job.kind.post(),
            code,
            detail,
        ));
    }
}

/// What the user has been shown so far of an answer, across attempts.
#[derive(Default)]
struct Shown {
    text: String,
    deltas: u32,
}

async fn run(deps: &WorkerDeps, job: AiJob) -> JobReport {
    let started = Instant::now();
    let queued = started.saturating_duration_since(job.enqueued_at);
    let audience = Audience {
        deps,
        job: &job,
        request_id: job.id.to_string(),
    };
    let deadline = job.enqueued_at + deps.job_timeout;
    let mut shown = Shown::default();
    let mut attempts = 0;
    let mut last_error: Option<&'static str> = None;
    let mut pauses = 0;
    let result: Result<Finish, Outcome> = loop {
        // A job whose caller has waited this long is not worth a call any more.
        if Instant::now() >= deadline {
            break Err(Outcome::Unavailable);
        }
        let reservation = match acquire(deps, job.estimate, deadline).await {
            Ok(reservation) => reservation,
            Err(outcome) => break Err(outcome),
        };
        attempts += 1;
        let call_started = Instant::now();
        let mut reservation = Some(reservation);
        let attempt = stream_once(deps, &job, &audience, &mut shown, &mut reservation).await;
        metrics::UPSTREAM_SECONDS.observe(call_started.elapsed().as_secs_f64());
        match attempt {
            Ok(finish) => {
                last_error = None;
                metrics::record_tokens(&finish);
                if let Some(reservation) = reservation {
                    deps.budget
                        .reconcile(reservation, finish.usage.prompt_token_count)
                        .await;
                }
                break Ok(finish);
            }
            Err(error) => {
                let kind = error.kind();
                last_error = Some(kind);
                metrics::UPSTREAM_ERRORS.with_label_values(&[kind]).inc();
                tracing::warn!(request = %job.id, attempt = attempts, error = %error, "Gemini call failed");
                match error.class() {
                    ErrorClass::Fatal => break Err(Outcome::Rejected),
                    ErrorClass::Misconfigured => break Err(Outcome::Misconfigured),
                    ErrorClass::QuotaExhausted => {
                        // Every node stops until the day resets (Google's per-day 429s may
                        // name a short delay; it is not believed).
                        let named = error_delay(&error).unwrap_or_default();
                        let until = deps.budget.exhaust_today(named).await;
                        break Err(Outcome::QuotaExhausted(until));
                    }
                    ErrorClass::Pause(pause) => {
                        // Every worker on every node waits; this job goes again after it.
                        deps.budget.pause(pause).await;
                        metrics::PAUSES.inc();
                        pauses += 1;
                        if Instant::now() + pause > deadline || pauses > 4 * deps.retry.max_attempts
                        {
                            break Err(Outcome::Unavailable);
                        }
                    }
                    ErrorClass::Retry => {
                        if attempts >= deps.retry.max_attempts {
                            break Err(Outcome::Unavailable);
                        }
                        let backoff = deps.retry.backoff(attempts);
                        if Instant::now() + backoff > deadline {
                            break Err(Outcome::Unavailable);
                        }
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
    };
    let (outcome, finish, reply) = match result {
        Ok(finish) if finish.declined.is_some() => {
            let why = finish.declined.clone().unwrap_or_default();
            audience.error("declined", &format!("the AI declined to answer ({why})"));
            (Outcome::Declined, Some(finish), None)
        }
        Ok(finish) => deliver(deps, &job, &audience, &shown, finish).await,
        Err(outcome) => {
            let detail = match &outcome {
                Outcome::Rejected => "the AI service refused this request",
                Outcome::Misconfigured => "the AI service is not configured correctly",
                Outcome::QuotaExhausted(_) => "the AI has used its quota for today",
                _ => "the AI service is unavailable; try again later",
            };
            audience.error(outcome.as_str(), detail);
            (outcome, None, None)
        }
    };
    let usage = finish.as_ref().map(|f| f.usage).unwrap_or_default();
    let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    deps.record_usage.do_send(RecordAiUsage {
        request_id: job.id.to_string(),
        user: job.user,
        kind: job.kind.as_str(),
        model: deps.client.model().to_owned(),
        outcome: outcome.as_str().to_owned(),
        attempts,
        prompt_tokens: usage.prompt_token_count,
        output_tokens: usage.candidates_token_count,
        total_tokens: usage.total_token_count,
        queued_ms: millis(queued),
        duration_ms: millis(started.elapsed()),
        post: job.kind.post(),
        reply,
    });
    metrics::JOBS
        .with_label_values(&[job.kind.as_str(), outcome.as_str()])
        .inc();
    JobReport {
        outcome,
        upstream_error: last_error,
    }
}

fn error_delay(error: &GeminiError) -> Option<Duration> {
    match error {
        GeminiError::Api { retry_delay, .. } => *retry_delay,
        _ => None,
    }
}

/// Waits for budget until the job's deadline.
async fn acquire(
    deps: &WorkerDeps,
    tokens: u32,
    deadline: Instant,
) -> Result<Reservation, Outcome> {
    let asked = Instant::now();
    loop {
        let wait = match deps.budget.reserve(tokens).await {
            Ok(BudgetAnswer::Granted(reservation)) => {
                metrics::BUDGET_WAIT_SECONDS.observe(asked.elapsed().as_secs_f64());
                return Ok(reservation);
            }
            Ok(BudgetAnswer::Wait(wait)) => wait,
            Ok(BudgetAnswer::ExhaustedForToday(until)) => {
                return Err(Outcome::QuotaExhausted(until));
            }
            Ok(BudgetAnswer::TooLarge) => return Err(Outcome::Rejected),
            Err(error) => {
                tracing::warn!(error = %crate::error_chain::Chain(&error), "AI budget unavailable; waiting");
                Duration::from_secs(1)
            }
        };
        let wait = wait.max(Duration::from_millis(5));
        if Instant::now() + wait > deadline || !deps.stopping.sleep(wait).await {
            return Err(Outcome::Unavailable);
        }
    }
}

/// One upstream call, streaming what is new to the audience. The reservation's estimate is
/// replaced by the upstream's count as soon as a chunk reports it (taking `reservation`).
async fn stream_once(
    deps: &WorkerDeps,
    job: &AiJob,
    audience: &Audience<'_>,
    shown: &mut Shown,
    reservation: &mut Option<Reservation>,
) -> Result<Finish, GeminiError> {
    let mut stream = deps.client.stream(&job.request).await?;
    let mut received = String::new();
    loop {
        match stream.next_event().await? {
            Some(StreamEvent::Delta(piece)) => {
                received.push_str(&piece);
                let cut = cut_at_chars(&received, job.max_chars);
                let full = cut < received.len();
                received.truncate(cut);
                show(audience, shown, &received);
                let counted = stream.usage().prompt_token_count;
                if counted > 0
                    && let Some(reservation) = reservation.take()
                {
                    deps.budget.reconcile(reservation, counted).await;
                }
                if full {
                    // An answer that must fit a post stops here; the rest is not read.
                    return Ok(Finish {
                        reason: aisocial_gemini::wire::FinishReason::MaxTokens,
                        usage: stream.usage(),
                        text: received,
                        declined: None,
                    });
                }
            }
            Some(StreamEvent::Finished(mut finish)) => {
                finish.text = received;
                return Ok(finish);
            }
            None => return Err(GeminiError::Truncated),
        }
    }
}

/// The text without control characters other than newlines and tabs (which a post cannot
/// hold, and no reader wants).
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// Byte index where `text` reaches `max_chars` characters.
fn cut_at_chars(text: &str, max_chars: usize) -> usize {
    text.char_indices()
        .nth(max_chars)
        .map_or(text.len(), |(at, _)| at)
}

/// Sends what `received` adds to what was shown. A retried call that wrote something else
/// than what was shown starts the text again with a `reset` delta.
fn show(audience: &Audience<'_>, shown: &mut Shown, received: &str) {
    let (text, reset) = if let Some(new) = received.strip_prefix(shown.text.as_str()) {
        (new, false)
    } else if shown.text.starts_with(received) {
        return; // a retry re-reading what was shown already
    } else {
        (received, true)
    };
    if text.is_empty() {
        return;
    }
    audience.push(protocol::ai_delta_frame(
        &audience.request_id,
        audience.job.kind.post(),
        shown.deltas,
        text,
        reset,
    ));
    shown.deltas += 1;
    shown.text = received.to_owned();
}

/// After a whole answer: for a mention, store it as the `ai` account's reply; then `ai.done`.
async fn deliver(
    deps: &WorkerDeps,
    job: &AiJob,
    audience: &Audience<'_>,
    shown: &Shown,
    finish: Finish,
) -> (Outcome, Option<Finish>, Option<PostId>) {
    // The answer is what the last call wrote. If a retry wrote less than an earlier attempt
    // had shown, the audience is told to start again from it, so what they saw is the answer.
    let text = clean(&finish.text);
    if shown.text != finish.text || text != finish.text {
        audience.push(protocol::ai_delta_frame(
            &audience.request_id,
            job.kind.post(),
            shown.deltas,
            &text,
            true,
        ));
    }
    let usage = AiUsage {
        prompt_tokens: finish.usage.prompt_token_count,
        output_tokens: finish.usage.candidates_token_count,
        total_tokens: finish.usage.total_token_count,
    };
    let mut reply = None;
    if let JobKind::Mention { post, .. } = job.kind {
        let body = text.trim();
        if body.is_empty() {
            audience.error("unavailable", "the AI wrote nothing");
            return (Outcome::Unavailable, Some(finish), None);
        }
        let stored = deps
            .create_post
            .send(CreatePost {
                author: deps.ai_user,
                body: body.to_owned(),
                reply_to: Some(post),
                idempotency_key: Some(format!("ai:{}", job.id)),
            })
            .await;
        match stored {
            Ok(Ok(created)) => reply = Some(created.post.id),
            Ok(Err(WriteError::NotFound(_))) => {
                audience.error(
                    "not_stored",
                    "the post was deleted before the answer was stored",
                );
                return (Outcome::NotStored, Some(finish), None);
            }
            Ok(Err(e)) => {
                tracing::warn!(request = %job.id, error = %crate::error_chain::Chain(&e), "could not store the AI reply");
                audience.error("unavailable", "the answer could not be stored");
                return (Outcome::NotStored, Some(finish), None);
            }
            Err(e) => {
                tracing::warn!(request = %job.id, error = %e, "the DbWriter is gone");
                audience.error("unavailable", "the answer could not be stored");
                return (Outcome::NotStored, Some(finish), None);
            }
        }
    }
    let text = match job.kind {
        JobKind::Mention { .. } => text.trim().to_owned(),
        JobKind::Compose | JobKind::Summary => text,
    };
    audience.push(protocol::ai_done_frame(
        &audience.request_id,
        job.kind.post(),
        reply,
        &text,
        usage,
    ));
    (Outcome::Done, Some(finish), reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_under_an_exponential_cap() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for attempt in 1..10 {
            let cap =
                Duration::from_millis(100 * (1 << (attempt - 1).min(16))).min(policy.max_delay);
            for _ in 0..20 {
                assert!(policy.backoff(attempt) <= cap);
            }
        }
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(cut_at_chars("héllo", 2), 3);
        assert_eq!(cut_at_chars("héllo", 10), 6);
    }
}
