//! Turning requests into AI jobs: the context a prompt needs (read from PostgreSQL), each
//! user's AI quota, and what a caller hears when the pool cannot take the job.

use std::sync::LazyLock;

use std::sync::Arc;

use aisocial_actors::ai_pool::job::{AiJob, JobKind, RequestId};
use aisocial_actors::ai_pool::prompts::{self, PromptPost};
use aisocial_actors::ai_pool::{Submit, SubmitError};
use aisocial_actors::committed::EphemeralPush;
use aisocial_actors::db_writer::mentions_ai;
use aisocial_actors::ids::UserId;
use aisocial_actors::model::Post;
use aisocial_actors::protocol;
use aisocial_actors::store::{POST_COLUMNS, post_from_row};
use prometheus::IntCounterVec;

use crate::ai::Ai;
use crate::ai::budget::pacific_day;
use crate::problem::ApiError;
use crate::rate_limit::RateLimiting;
use crate::reads::{HOME_TIMELINE, query, reader_for, rows_to};
use crate::redis_store;
use crate::redis_store::Keyspace;
use crate::redis_store::redis_error;
use crate::replicas::ReadRouting;
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::meter::MeteredAddr;

/// Longest compose instructions, in characters.
pub const MAX_PROMPT_CHARS: usize = 2_000;
/// An answer to a mention is stored as a post, so it stops at a post's length.
pub const MAX_REPLY_CHARS: usize = 1_000;
/// Longest compose or summary answer, in characters.
pub const MAX_DRAFT_CHARS: usize = 4_000;
/// Posts of a thread, or of a timeline, a prompt shows at most.
const CONTEXT_POSTS: i64 = 20;

static MENTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    aisocial_actors::meter::labelled_counter(
        "aisocial_ai_mentions_total",
        "Posts mentioning @ai, by what became of them (queued, refused, failed, not_configured).",
        &["result"],
    )
});

static THREAD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE (p.id = $1 OR p.root_id = $1) AND p.id <= $2 AND p.deleted_at IS NULL \
         ORDER BY p.id DESC LIMIT $3"
    )
});

fn seed() -> i64 {
    // Gemini takes an int32 seed.
    i64::from(rand::random::<u32>() >> 1)
}

fn prompt_post(post: &Post) -> PromptPost {
    PromptPost {
        handle: post.author.handle.clone(),
        body: post.body.clone(),
    }
}

/// What turning requests into AI jobs needs: the AI, the per-user limits and day counts, the
/// posts a prompt shows, and the broker that tells an author no answer is coming.
pub struct AiJobs {
    pub ai: Arc<Ai>,
    pub limits: Arc<RateLimiting>,
    pub keys: Keyspace,
    pub reads: Arc<ReadRouting>,
    pub broker: MeteredAddr<FeedBroker>,
}

/// Counts one AI request against the user's AI quotas, per minute and per Pacific day
/// (shared by every node), so that no one person spends the project's day. On a node with no
/// AI, 503 `ai_unavailable` first, and nothing is counted.
pub async fn check_quota(jobs: &AiJobs, user: UserId) -> Result<(), ApiError> {
    jobs.ai.pool()?;
    jobs.limits
        .charge("ai", &user.0.to_string(), jobs.ai.user_per_min)?;
    let (day, left) = pacific_day();
    let key = jobs.keys.key(&format!("ai:user:{}:day:{day}", user.0));
    let mut count = redis::cmd("INCR");
    count.arg(&key);
    let used: u64 = redis_store::run(jobs.keys.conn(), count, REDIS_TIMEOUT)
        .await
        .map_err(redis_error)?;
    if used == 1 {
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(&key).arg(left.as_secs() + 3600);
        let _ = redis_store::run::<i64>(jobs.keys.conn(), expire, REDIS_TIMEOUT).await;
    }
    if used > u64::from(jobs.ai.user_per_day) {
        return Err(ApiError::RateLimited {
            retry_after_secs: left.as_secs().max(1),
            limit: jobs.ai.user_per_day,
        });
    }
    Ok(())
}

const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Queues a job; a full queue is 429 with `Retry-After`, no quota left today is 503.
pub async fn submit(jobs: &AiJobs, job: AiJob) -> Result<RequestId, ApiError> {
    match jobs.ai.pool()?.send(Submit(job)).await? {
        Ok(id) => Ok(id),
        Err(SubmitError::QueueFull { retry_after }) => Err(ApiError::Busy {
            code: "ai_busy",
            detail: "the AI has too many requests waiting; try again later".into(),
            retry_after_secs: retry_after.as_secs().max(1),
        }),
        Err(SubmitError::UserQueueFull { retry_after }) => Err(ApiError::Busy {
            code: "ai_busy",
            detail: "you already have as many AI requests waiting as one person may".into(),
            retry_after_secs: retry_after.as_secs().max(1),
        }),
        Err(SubmitError::QuotaExhausted { retry_after }) => Err(ApiError::Unavailable {
            code: "ai_quota_exhausted",
            detail: "the AI has used its quota for today".into(),
            retry_after_secs: u32::try_from(retry_after.as_secs().max(1)).unwrap_or(u32::MAX),
        }),
        Err(SubmitError::Stopped) => Err(ApiError::unavailable(
            "this node is shutting down; ask again",
            1,
        )),
    }
}

pub fn compose(user: UserId, instructions: &str) -> AiJob {
    AiJob::new(
        user,
        JobKind::Compose,
        prompts::compose(instructions, seed()),
        MAX_DRAFT_CHARS,
    )
}

pub async fn summary(jobs: &AiJobs, user: UserId, handle: &str) -> Result<AiJob, ApiError> {
    let rows = reader_for(&jobs.reads, user)
        .await
        .query(
            HOME_TIMELINE.as_str(),
            &[&user.0, &i64::MAX, &CONTEXT_POSTS],
        )
        .await?;
    let posts = rows_to(&rows, post_from_row)?;
    let timeline: Vec<PromptPost> = posts.iter().map(prompt_post).collect();
    Ok(AiJob::new(
        user,
        JobKind::Summary,
        prompts::summary(handle, &timeline, seed()),
        MAX_DRAFT_CHARS,
    ))
}

/// After a post is committed: if it mentions `@ai` (and is not the AI's own), queue an answer.
/// Runs in the background: the author already has their 201.
pub fn answer_if_mentioned(jobs: Arc<AiJobs>, post: Post) {
    if post.author.id == jobs.ai.user || !mentions_ai(&post.body) {
        return;
    }
    if !jobs.ai.is_configured() {
        // No AI on this node: nobody will answer; the author hears so at once.
        MENTIONS.with_label_values(&["not_configured"]).inc();
        tell_no_answer(
            &jobs,
            &post,
            "unavailable",
            "the AI is not configured on this server; nobody will answer this mention",
        );
        return;
    }
    actix_rt::spawn(async move {
        let result = async {
            check_quota(&jobs, post.author.id).await?;
            let root = post.root_id.unwrap_or(post.id);
            let rows = query(
                &jobs.reads,
                THREAD.as_str(),
                &[&root.0, &post.id.0, &CONTEXT_POSTS],
            )
            .await?;
            let mut thread = rows_to(&rows, post_from_row)?;
            thread.reverse();
            let thread: Vec<PromptPost> = thread.iter().map(prompt_post).collect();
            let job = AiJob::new(
                post.author.id,
                JobKind::Mention {
                    post: post.id,
                    root,
                },
                prompts::mention(&thread, seed()),
                MAX_REPLY_CHARS,
            );
            submit(&jobs, job).await
        }
        .await;
        let (result, code) = match result {
            Ok(_) => return MENTIONS.with_label_values(&["queued"]).inc(),
            Err(ApiError::Busy { .. } | ApiError::RateLimited { .. }) => ("refused", "busy"),
            Err(error) => {
                tracing::warn!(post = %post.id, %error, "an @ai mention could not be queued");
                ("failed", "unavailable")
            }
        };
        MENTIONS.with_label_values(&[result]).inc();
        tell_no_answer(
            &jobs,
            &post,
            code,
            "the AI cannot answer this mention now; mention it again later",
        );
    });
}

/// The author of `post` hears that no answer is coming.
fn tell_no_answer(jobs: &AiJobs, post: &Post, code: &str, message: &str) {
    let push = EphemeralPush {
        users: vec![post.author.id],
        thread: None,
        frame: protocol::ai_error_frame(
            &RequestId::new().to_string(),
            Some(post.id),
            code,
            message,
        ),
    };
    aisocial_actors::feed_broker::offer_or_shed(&jobs.broker, push, "EphemeralPush");
}
