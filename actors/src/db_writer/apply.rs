//! How each command changes the database, inside a transaction the caller opened.
//!
//! A command reads what it depends on first and refuses (with a [`WriteError`]) before it
//! writes anything, so a refusal never leaves the shared transaction aborted; a database error
//! does, and the batch is then retried command by command.

use std::sync::LazyLock;

use tokio::sync::oneshot;

use super::commands::{
    BLOCKED, Block, CreatePost, CreateReport, CreatedPost, DeletePost, ExpireMutes, Follow,
    LikePost, Mute, NOT_A_DEV_ACCOUNT, NewRefresh, PurgeEvents, RecordAiUsage, RecordAudit,
    ResolveReport, RevokeFamily, RotateRefresh, SetRole, SetSuspended, SignInDev, SignInGoogle,
    SignedIn, Unblock, Unfollow, UnlikePost, Unmute, UpdateProfile, WriteError, WriteFailure,
};
use super::conn::WriterConn;
use super::moderation;
use crate::event_log::{Audience, NewEvent, NewRecord};
use crate::ids::{Handle, PostId, UserId};
use crate::log_record::{self, FilterChange, FilterKind, FollowChange};
use crate::model::{Report, User};
use crate::protocol::EventKind;
use crate::roles::RoleGrants;
use crate::store::{POST_COLUMN_COUNT, POST_COLUMNS, USER_COLUMNS, post_from_row, user_from_row};

/// A command waiting in the DbWriter, with the channel its answer goes back on.
pub enum Command {
    SignInDev(SignInDev, Reply<SignedIn>),
    SignInGoogle(SignInGoogle, Reply<SignedIn>),
    RotateRefresh(RotateRefresh, Reply<SignedIn>),
    RevokeFamily(RevokeFamily, Reply<()>),
    UpdateProfile(UpdateProfile, Reply<User>),
    RecordAudit(RecordAudit, Reply<()>),
    PurgeEvents(PurgeEvents, Reply<u64>),
    RecordAiUsage(RecordAiUsage, Reply<()>),
    CreatePost(CreatePost, Reply<CreatedPost>),
    LikePost(LikePost, Reply<()>),
    UnlikePost(UnlikePost, Reply<()>),
    DeletePost(DeletePost, Reply<()>),
    Follow(Follow, Reply<()>),
    Unfollow(Unfollow, Reply<()>),
    SetRole(SetRole, Reply<User>),
    SetSuspended(SetSuspended, Reply<UserId>),
    CreateReport(CreateReport, Reply<Report>),
    ResolveReport(ResolveReport, Reply<Report>),
    Block(Block, Reply<()>),
    Unblock(Unblock, Reply<()>),
    Mute(Mute, Reply<()>),
    Unmute(Unmute, Reply<()>),
    ExpireMutes(ExpireMutes, Reply<u64>),
}

pub type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

/// A command's result before COMMIT.
pub enum Output {
    SignedIn(SignedIn),
    User(User),
    Post(CreatedPost),
    Report(Report),
    /// The account a command acted on.
    Account(UserId),
    Done,
    Purged(u64),
    /// The transaction must commit (it records why), but the caller gets this error.
    Refused(WriteError),
}

/// Something a command changed that goes into the log (and is announced after COMMIT).
pub type Change = NewRecord;

/// Why a command did not apply.
pub enum ApplyError {
    /// Refused before writing anything; the transaction is still usable.
    Refused(WriteError),
    /// The database failed; the transaction is aborted.
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for ApplyError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApplyError::Database(e)
    }
}

pub(super) type Applied = Result<(Output, Vec<Change>), ApplyError>;

pub(super) fn refuse(e: WriteError) -> ApplyError {
    ApplyError::Refused(e)
}

/// Sends `result` on `tx`, taking the output of the expected kind; a caller that stopped
/// waiting is not an error.
fn answer<T>(
    tx: Reply<T>,
    result: Result<Output, WriteError>,
    take: impl FnOnce(Output) -> Option<T>,
) {
    let result = result.and_then(|output| match output {
        Output::Refused(e) => Err(e),
        other => take(other).ok_or_else(|| {
            WriteError::Failed(WriteFailure::Inconsistent(
                "internal: command and output disagree",
            ))
        }),
    });
    let _ = tx.send(result);
}

impl Command {
    /// The message type, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::SignInDev(..) => "SignInDev",
            Command::SignInGoogle(..) => "SignInGoogle",
            Command::RotateRefresh(..) => "RotateRefresh",
            Command::RevokeFamily(..) => "RevokeFamily",
            Command::UpdateProfile(..) => "UpdateProfile",
            Command::RecordAudit(..) => "RecordAudit",
            Command::PurgeEvents(..) => "PurgeEvents",
            Command::RecordAiUsage(..) => "RecordAiUsage",
            Command::CreatePost(..) => "CreatePost",
            Command::LikePost(..) => "LikePost",
            Command::UnlikePost(..) => "UnlikePost",
            Command::DeletePost(..) => "DeletePost",
            Command::Follow(..) => "Follow",
            Command::Unfollow(..) => "Unfollow",
            Command::SetRole(..) => "SetRole",
            Command::SetSuspended(..) => "SetSuspended",
            Command::CreateReport(..) => "CreateReport",
            Command::ResolveReport(..) => "ResolveReport",
            Command::Block(..) => "Block",
            Command::Unblock(..) => "Unblock",
            Command::Mute(..) => "Mute",
            Command::Unmute(..) => "Unmute",
            Command::ExpireMutes(..) => "ExpireMutes",
        }
    }

    pub async fn apply(&self, conn: &mut WriterConn) -> Applied {
        match self {
            Command::SignInDev(cmd, _) => sign_in_dev(conn, cmd).await,
            Command::SignInGoogle(cmd, _) => sign_in_google(conn, cmd).await,
            Command::RotateRefresh(cmd, _) => rotate_refresh(conn, cmd).await,
            Command::RevokeFamily(cmd, _) => revoke_family(conn, cmd).await,
            Command::UpdateProfile(cmd, _) => update_profile(conn, cmd).await,
            Command::RecordAudit(cmd, _) => record_audit(conn, cmd).await,
            Command::PurgeEvents(cmd, _) => purge_events(conn, cmd).await,
            Command::RecordAiUsage(cmd, _) => record_ai_usage(conn, cmd).await,
            Command::CreatePost(cmd, _) => create_post(conn, cmd).await,
            Command::LikePost(cmd, _) => set_like(conn, cmd.user, cmd.post, true).await,
            Command::UnlikePost(cmd, _) => set_like(conn, cmd.user, cmd.post, false).await,
            Command::DeletePost(cmd, _) => delete_post(conn, cmd).await,
            Command::Follow(cmd, _) => set_follow(conn, cmd.follower, &cmd.followee, true).await,
            Command::Unfollow(cmd, _) => set_follow(conn, cmd.follower, &cmd.followee, false).await,
            Command::SetRole(cmd, _) => moderation::set_role(conn, cmd).await,
            Command::SetSuspended(cmd, _) => moderation::set_suspended(conn, cmd).await,
            Command::CreateReport(cmd, _) => moderation::create_report(conn, cmd).await,
            Command::ResolveReport(cmd, _) => moderation::resolve_report(conn, cmd).await,
            Command::Block(cmd, _) => set_block(conn, cmd.blocker, &cmd.blocked, true).await,
            Command::Unblock(cmd, _) => set_block(conn, cmd.blocker, &cmd.blocked, false).await,
            Command::Mute(cmd, _) => {
                set_mute(conn, cmd.muter, &cmd.muted, Some(cmd.duration)).await
            }
            Command::Unmute(cmd, _) => set_mute(conn, cmd.muter, &cmd.muted, None).await,
            Command::ExpireMutes(cmd, _) => expire_mutes(conn, cmd).await,
        }
    }

    /// Sends the answer.
    pub fn respond(self, result: Result<Output, WriteError>) {
        let signed_in = |o| match o {
            Output::SignedIn(s) => Some(s),
            _ => None,
        };
        let done = |o| matches!(o, Output::Done).then_some(());
        match self {
            Command::SignInDev(_, tx)
            | Command::SignInGoogle(_, tx)
            | Command::RotateRefresh(_, tx) => answer(tx, result, signed_in),
            Command::UpdateProfile(_, tx) | Command::SetRole(_, tx) => {
                answer(tx, result, |o| match o {
                    Output::User(u) => Some(u),
                    _ => None,
                })
            }
            Command::SetSuspended(_, tx) => answer(tx, result, |o| match o {
                Output::Account(user) => Some(user),
                _ => None,
            }),
            Command::CreateReport(_, tx) | Command::ResolveReport(_, tx) => {
                answer(tx, result, |o| match o {
                    Output::Report(r) => Some(r),
                    _ => None,
                })
            }
            Command::PurgeEvents(_, tx) | Command::ExpireMutes(_, tx) => {
                answer(tx, result, |o| match o {
                    Output::Purged(n) => Some(n),
                    _ => None,
                })
            }
            Command::CreatePost(_, tx) => answer(tx, result, |o| match o {
                Output::Post(p) => Some(p),
                _ => None,
            }),
            Command::RevokeFamily(_, tx)
            | Command::RecordAudit(_, tx)
            | Command::RecordAiUsage(_, tx)
            | Command::LikePost(_, tx)
            | Command::UnlikePost(_, tx)
            | Command::DeletePost(_, tx)
            | Command::Follow(_, tx)
            | Command::Unfollow(_, tx)
            | Command::Block(_, tx)
            | Command::Unblock(_, tx)
            | Command::Mute(_, tx)
            | Command::Unmute(_, tx) => answer(tx, result, done),
        }
    }
}

const AUDIT: &str = "INSERT INTO audit_log (actor_id, action, detail) VALUES ($1, $2, $3)";

pub(super) async fn audit(
    conn: &mut WriterConn,
    actor: Option<UserId>,
    action: &str,
    detail: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    conn.execute(AUDIT, &[&actor.map(|a| a.0), &action, detail])
        .await
        .map(|_| ())
}

const NEW_FAMILY: &str = "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) \
     VALUES (nextval('refresh_family_seq'), $1, $2, now() + make_interval(secs => $3)) \
     RETURNING family_id";

/// The end of every sign-in: the role configuration grants, a new refresh family, the audit.
async fn finish_sign_in(
    conn: &mut WriterConn,
    user: User,
    refresh: &NewRefresh,
    grants: &RoleGrants,
    method: &str,
) -> Applied {
    let user = moderation::sync_configured_role(conn, user, grants).await?;
    let lifetime = refresh.lifetime.as_secs_f64();
    let family: i64 = conn
        .query_opt(
            NEW_FAMILY,
            &[&user.id.0, &refresh.hash.as_slice(), &lifetime],
        )
        .await?
        .ok_or_else(|| {
            refuse(WriteError::Failed(WriteFailure::Inconsistent(
                "no refresh family was created",
            )))
        })?
        .try_get(0)?;
    let detail = serde_json::json!({"method": method, "family": family});
    audit(conn, Some(user.id), "sign_in", &detail).await?;
    Ok((Output::SignedIn(SignedIn { user, family }), Vec::new()))
}

/// The account with this handle, created as a dev account on first use; the last column says
/// whether dev login may sign it in: only an account dev login made (`dev_account`, V5), and
/// never one with a Google identity or the `ai` account, whatever its flag says.
static UPSERT_DEV_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (handle, display_name, dev_account) VALUES ($1, $1, true) \
         ON CONFLICT (handle) DO UPDATE SET handle = EXCLUDED.handle \
         RETURNING {USER_COLUMNS}, disabled_at IS NOT NULL, \
         dev_account AND google_sub IS NULL AND handle <> '{AI_HANDLE}'"
    )
});

async fn sign_in_dev(conn: &mut WriterConn, cmd: &SignInDev) -> Applied {
    let row = conn
        .query_opt(UPSERT_DEV_USER.as_str(), &[&cmd.handle.as_str()])
        .await?
        .ok_or_else(|| {
            refuse(WriteError::Failed(WriteFailure::Inconsistent(
                "the user upsert returned nothing",
            )))
        })?;
    if !row.try_get::<_, bool>(5)? {
        return Err(refuse(WriteError::Forbidden(NOT_A_DEV_ACCOUNT)));
    }
    if row.try_get::<_, bool>(4)? {
        return Err(refuse(WriteError::Suspended));
    }
    let user = user_from_row(&row)?;
    finish_sign_in(conn, user, &cmd.refresh, &cmd.grants, "dev").await
}

static USER_BY_SUB: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {USER_COLUMNS}, disabled_at IS NOT NULL FROM users WHERE google_sub = $1")
});
static INSERT_GOOGLE_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (handle, google_sub, email, display_name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}, false"
    )
});
const UPDATE_EMAIL: &str =
    "UPDATE users SET email = $2 WHERE id = $1 AND email IS DISTINCT FROM $2";

/// Handles tried for a new Google user before giving up.
const HANDLE_ATTEMPTS: u32 = 50;

async fn sign_in_google(conn: &mut WriterConn, cmd: &SignInGoogle) -> Applied {
    let mut found = conn.query_opt(USER_BY_SUB.as_str(), &[&cmd.sub]).await?;
    if found.is_none() {
        for attempt in 0..HANDLE_ATTEMPTS {
            let handle = handle_candidate(&cmd.handle_hint, attempt);
            let display_name: String = cmd.display_name.chars().take(100).collect();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&handle, &cmd.sub, &cmd.email, &display_name];
            found = conn.query_opt(INSERT_GOOGLE_USER.as_str(), &params).await?;
            if found.is_some() {
                break;
            }
            // The handle was taken, or another node created this user meanwhile.
            found = conn.query_opt(USER_BY_SUB.as_str(), &[&cmd.sub]).await?;
            if found.is_some() {
                break;
            }
        }
    }
    let row = found.ok_or_else(|| {
        refuse(WriteError::Failed(WriteFailure::Inconsistent(
            "no free handle could be derived for this account",
        )))
    })?;
    if row.try_get::<_, bool>(4)? {
        return Err(refuse(WriteError::Suspended));
    }
    let user = user_from_row(&row)?;
    if let Some(email) = &cmd.email {
        conn.execute(UPDATE_EMAIL, &[&user.id.0, email]).await?;
    }
    finish_sign_in(conn, user, &cmd.refresh, &cmd.grants, "google").await
}

/// The `attempt`-th handle to try for `hint` (already a valid handle): the hint itself, then
/// the hint shortened to leave room for a numeric suffix.
pub fn handle_candidate(hint: &str, attempt: u32) -> String {
    if attempt == 0 {
        return hint.to_owned();
    }
    let suffix = if attempt < 10 {
        format!("_{}", attempt + 1)
    } else {
        // Past the first few, spread out so a popular name does not walk a long chain.
        format!("_{}", uuid::Uuid::new_v4().as_u128() % 1_000_000)
    };
    let keep = 30 - suffix.len();
    let base: String = hint.chars().take(keep).collect();
    format!("{base}{suffix}")
}

const REFRESH_BY_HASH: &str = "SELECT id, family_id, user_id, expires_at < now(), \
     rotated_at IS NOT NULL, revoked_at IS NOT NULL \
     FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE";
const REVOKE_FAMILY: &str = "UPDATE refresh_tokens SET revoked_at = now() \
     WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL";
const MARK_ROTATED: &str = "UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1";
const NEXT_IN_FAMILY: &str = "INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at) \
     SELECT family_id, user_id, $2, expires_at FROM refresh_tokens WHERE id = $1";
static ACTIVE_USER: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND disabled_at IS NULL")
});

async fn rotate_refresh(conn: &mut WriterConn, cmd: &RotateRefresh) -> Applied {
    let row = conn
        .query_opt(REFRESH_BY_HASH, &[&cmd.presented.as_slice()])
        .await?
        .ok_or_else(|| refuse(WriteError::Unauthorized("unknown refresh token")))?;
    let (id, family, user): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let (expired, rotated, revoked): (bool, bool, bool) =
        (row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    if revoked {
        return Err(refuse(WriteError::Unauthorized("this session was revoked")));
    }
    if rotated {
        if let Some(grace) = cmd.retry_within
            && retried(conn, id, &cmd.next, grace).await?
        {
            return answer_retry(conn, UserId(user), family, expired).await;
        }
        // Someone holds an old token of this family: end the whole session.
        conn.execute(REVOKE_FAMILY, &[&family, &user]).await?;
        let detail = serde_json::json!({"family": family});
        audit(conn, Some(UserId(user)), "refresh_reuse", &detail).await?;
        let refused = WriteError::RefreshReused {
            user: UserId(user),
            family,
        };
        return Ok((Output::Refused(refused), Vec::new()));
    }
    if expired {
        return Err(refuse(WriteError::Unauthorized(
            "this session has expired; sign in again",
        )));
    }
    let user_row = conn
        .query_opt(ACTIVE_USER.as_str(), &[&user])
        .await?
        .ok_or_else(|| refuse(WriteError::Unauthorized("this account is suspended")))?;
    conn.execute(MARK_ROTATED, &[&id]).await?;
    conn.execute(NEXT_IN_FAMILY, &[&id, &cmd.next.as_slice()])
        .await?;
    let user = user_from_row(&user_row)?;
    let user = moderation::sync_configured_role(conn, user, &cmd.grants).await?;
    Ok((Output::SignedIn(SignedIn { user, family }), Vec::new()))
}

/// Whether token `id` was rotated less than `grace` ago into `next`, which is still unused.
const RETRIED_ROTATION: &str = "SELECT EXISTS (SELECT 1 FROM refresh_tokens s \
     WHERE s.token_hash = $2 AND s.family_id = t.family_id AND s.user_id = t.user_id \
     AND s.rotated_at IS NULL AND s.revoked_at IS NULL) \
     FROM refresh_tokens t WHERE t.id = $1 AND t.rotated_at > now() - make_interval(secs => $3)";

async fn retried(
    conn: &mut WriterConn,
    id: i64,
    next: &[u8; 32],
    grace: std::time::Duration,
) -> Result<bool, ApplyError> {
    let row = conn
        .query_opt(
            RETRIED_ROTATION,
            &[&id, &next.as_slice(), &grace.as_secs_f64()],
        )
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => false,
    })
}

/// The same answer again for a retried rotation (its successor already stored).
async fn answer_retry(conn: &mut WriterConn, user: UserId, family: i64, expired: bool) -> Applied {
    if expired {
        return Err(refuse(WriteError::Unauthorized(
            "this session has expired; sign in again",
        )));
    }
    let user_row = conn
        .query_opt(ACTIVE_USER.as_str(), &[&user.0])
        .await?
        .ok_or_else(|| refuse(WriteError::Unauthorized("this account is suspended")))?;
    let detail = serde_json::json!({"family": family});
    audit(conn, Some(user), "refresh_retry", &detail).await?;
    let user = user_from_row(&user_row)?;
    Ok((Output::SignedIn(SignedIn { user, family }), Vec::new()))
}

async fn revoke_family(conn: &mut WriterConn, cmd: &RevokeFamily) -> Applied {
    let revoked = conn
        .execute(REVOKE_FAMILY, &[&cmd.family, &cmd.user.0])
        .await?;
    let detail = serde_json::json!({"family": cmd.family, "tokens_revoked": revoked});
    audit(conn, Some(cmd.user), "logout", &detail).await?;
    Ok((Output::Done, Vec::new()))
}

static UPDATE_PROFILE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE users SET display_name = COALESCE($2, display_name), bio = COALESCE($3, bio) \
         WHERE id = $1 AND disabled_at IS NULL RETURNING {USER_COLUMNS}"
    )
});

async fn update_profile(conn: &mut WriterConn, cmd: &UpdateProfile) -> Applied {
    let row = conn
        .query_opt(
            UPDATE_PROFILE.as_str(),
            &[&cmd.user.0, &cmd.display_name, &cmd.bio],
        )
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("user")))?;
    Ok((Output::User(user_from_row(&row)?), Vec::new()))
}

async fn record_audit(conn: &mut WriterConn, cmd: &RecordAudit) -> Applied {
    audit(conn, cmd.actor, cmd.action, &cmd.detail).await?;
    Ok((Output::Done, Vec::new()))
}

/// The newest record created before the window (and a minute's margin for transactions that
/// were open across its start: ids are in commit order, `created_at` is a transaction's start),
/// and the current floor.
const PURGE_BOUNDS: &str = "SELECT (SELECT id FROM events \
       WHERE created_at < now() - make_interval(secs => $1) - interval '1 minute' \
       ORDER BY created_at DESC LIMIT 1), purged_through FROM event_retention WHERE singleton";
const PURGE: &str = "DELETE FROM events WHERE id > $1 AND id <= $2";
const RAISE_FLOOR: &str =
    "UPDATE event_retention SET purged_through = GREATEST(purged_through, $1) WHERE singleton";

async fn purge_events(conn: &mut WriterConn, cmd: &PurgeEvents) -> Applied {
    conn.execute(PURGE_REPEATS, &[&REPEAT_WINDOW_SECS]).await?;
    let row = conn
        .query_opt(PURGE_BOUNDS, &[&cmd.retention.as_secs_f64()])
        .await?
        .ok_or_else(|| {
            refuse(WriteError::Failed(WriteFailure::Inconsistent(
                "no event_retention row",
            )))
        })?;
    let cutoff: Option<i64> = row.try_get(0)?;
    let floor: i64 = row.try_get(1)?;
    let Some(cutoff) = cutoff.filter(|c| *c > floor) else {
        return Ok((Output::Purged(0), Vec::new()));
    };
    let through = cutoff.min(floor.saturating_add(cmd.max_rows.max(1)));
    conn.execute(PURGE, &[&floor, &through]).await?;
    conn.execute(RAISE_FLOOR, &[&through]).await?;
    Ok((
        Output::Purged(u64::try_from(through - floor).unwrap_or(0)),
        Vec::new(),
    ))
}

const AI_USAGE: &str = "INSERT INTO ai_usage (request_id, user_id, kind, model, outcome, attempts, \
     prompt_tokens, output_tokens, total_tokens, queued_ms, duration_ms, post_id, reply_id) \
     VALUES ($1::text::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     (SELECT id FROM posts WHERE id = $12), (SELECT id FROM posts WHERE id = $13)) \
     ON CONFLICT (request_id) DO NOTHING";

async fn record_ai_usage(conn: &mut WriterConn, cmd: &RecordAiUsage) -> Applied {
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    conn.execute(
        AI_USAGE,
        &[
            &cmd.request_id,
            &cmd.user.0,
            &cmd.kind,
            &cmd.model,
            &cmd.outcome,
            &int(cmd.attempts),
            &int(cmd.prompt_tokens),
            &int(cmd.output_tokens),
            &int(cmd.total_tokens),
            &int(cmd.queued_ms),
            &int(cmd.duration_ms),
            &cmd.post.map(|p| p.0),
            &cmd.reply.map(|p| p.0),
        ],
    )
    .await?;
    Ok((Output::Done, Vec::new()))
}

const PARENT: &str =
    "SELECT id, root_id, author_id FROM posts WHERE id = $1 AND deleted_at IS NULL";

static INSERT_POST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH p AS (INSERT INTO posts (author_id, body, reply_to, root_id, idempotency_key) \
           VALUES ($1, $2, $3, $4, $5) \
           ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
           RETURNING *) \
         SELECT {POST_COLUMNS} FROM p JOIN users u ON u.id = p.author_id"
    )
});

static EXISTING_POST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS}, p.deleted_at IS NOT NULL FROM posts p \
         JOIN users u ON u.id = p.author_id WHERE p.author_id = $1 AND p.idempotency_key = $2"
    )
});

/// The answer to a retry whose key already made a post: that post, unless it was deleted since.
fn replayed(row: &tokio_postgres::Row) -> Applied {
    if row.try_get::<_, bool>(POST_COLUMN_COUNT)? {
        return Err(refuse(WriteError::Conflict(
            "the post made with this Idempotency-Key has since been deleted",
        )));
    }
    let post = post_from_row(row)?;
    Ok((
        Output::Post(CreatedPost {
            post,
            created: false,
        }),
        Vec::new(),
    ))
}

const COUNT_POST: &str = "UPDATE users SET posts_count = posts_count + 1 WHERE id = $1";
const COUNT_REPLY: &str = "UPDATE posts SET reply_count = reply_count + 1 WHERE id = $1";

async fn create_post(conn: &mut WriterConn, cmd: &CreatePost) -> Applied {
    let key = cmd.idempotency_key.as_deref();
    if let Some(key) = key
        && let Some(row) = conn
            .query_opt(EXISTING_POST.as_str(), &[&cmd.author.0, &key])
            .await?
    {
        return replayed(&row);
    }
    let (reply_to, root_id, parent_author) = match cmd.reply_to {
        None => (None, None, None),
        Some(parent) => {
            let row = conn
                .query_opt(PARENT, &[&parent.0])
                .await?
                .ok_or_else(|| refuse(WriteError::NotFound("reply_to post")))?;
            let parent_id: i64 = row.try_get(0)?;
            let parent_root: Option<i64> = row.try_get(1)?;
            let parent_author: i64 = row.try_get(2)?;
            if blocked_between(conn, cmd.author, UserId(parent_author)).await? {
                return Err(refuse(WriteError::Blocked(BLOCKED)));
            }
            (
                Some(parent_id),
                Some(parent_root.unwrap_or(parent_id)),
                Some(UserId(parent_author)),
            )
        }
    };
    let inserted = conn
        .query_opt(
            INSERT_POST.as_str(),
            &[&cmd.author.0, &cmd.body, &reply_to, &root_id, &key],
        )
        .await?;
    let Some(row) = inserted else {
        // Another transaction committed the same key after our first look.
        let row = conn
            .query_opt(EXISTING_POST.as_str(), &[&cmd.author.0, &key])
            .await?
            .ok_or(ApplyError::Refused(WriteError::Failed(
                WriteFailure::Inconsistent("idempotency key conflict without a post"),
            )))?;
        return replayed(&row);
    };
    let post = post_from_row(&row)?;
    conn.execute(COUNT_POST, &[&cmd.author.0]).await?;
    if let Some(parent) = reply_to {
        conn.execute(COUNT_REPLY, &[&parent]).await?;
    }
    let event = NewEvent {
        kind: EventKind::PostCreated,
        audience: Audience::FollowersOf(cmd.author),
        payload: log_record::post_created(&post),
    };
    let mut changes = vec![Change::Event(event)];
    // One notification per person per post: the parent's author hears of a reply; everyone
    // else named with @handle hears of a mention.
    if let Some(parent_author) = parent_author.filter(|a| *a != cmd.author) {
        changes.push(
            notify(
                conn,
                parent_author,
                NotificationKind::Reply,
                cmd.author,
                Some(post.id),
            )
            .await?,
        );
    }
    // The AI persona's answers notify the asker (the parent's author) alone: a prompt that
    // talks it into naming people cannot make it spam them.
    let mentioned = if post.ai_generated {
        Vec::new()
    } else {
        mentions(&post.body)
    };
    if !mentioned.is_empty() {
        let rows = conn
            .query(MENTIONED_USERS, &[&mentioned, &cmd.author.0])
            .await?;
        for row in rows {
            let user = UserId(row.try_get(0)?);
            if user != cmd.author && Some(user) != parent_author {
                changes.push(
                    notify(
                        conn,
                        user,
                        NotificationKind::Mention,
                        cmd.author,
                        Some(post.id),
                    )
                    .await?,
                );
            }
        }
    }
    Ok((
        Output::Post(CreatedPost {
            post,
            created: true,
        }),
        changes,
    ))
}

const USER_BY_HANDLE: &str = "SELECT id FROM users WHERE handle = $1 AND disabled_at IS NULL";
const INSERT_FOLLOW: &str = "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) \
     ON CONFLICT DO NOTHING";
const DELETE_FOLLOW: &str = "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2";
const COUNT_FOLLOW: &str = "UPDATE users SET \
     following_count = following_count + CASE WHEN id = $1 THEN $3::bigint ELSE 0 END, \
     followers_count = followers_count + CASE WHEN id = $2 THEN $3::bigint ELSE 0 END \
     WHERE id IN ($1, $2)";

async fn set_follow(
    conn: &mut WriterConn,
    follower: UserId,
    followee: &Handle,
    following: bool,
) -> Applied {
    let row = conn
        .query_opt(USER_BY_HANDLE, &[&followee.as_str()])
        .await?
        .ok_or(ApplyError::Refused(WriteError::NotFound("user")))?;
    let followee = UserId(row.try_get(0)?);
    if followee == follower {
        return Err(refuse(WriteError::Conflict("you cannot follow yourself")));
    }
    if following && blocked_between(conn, follower, followee).await? {
        return Err(refuse(WriteError::Blocked(BLOCKED)));
    }
    let sql = if following {
        INSERT_FOLLOW
    } else {
        DELETE_FOLLOW
    };
    let changed = conn.execute(sql, &[&follower.0, &followee.0]).await?;
    if changed == 0 {
        return Ok((Output::Done, Vec::new()));
    }
    let delta: i64 = if following { 1 } else { -1 };
    conn.execute(COUNT_FOLLOW, &[&follower.0, &followee.0, &delta])
        .await?;
    let change = FollowChange {
        follower,
        followee,
        following,
    };
    let mut changes = vec![Change::Follow(change)];
    if following {
        changes.extend(
            notify_unless_repeated(conn, followee, NotificationKind::Follow, follower, None)
                .await?,
        );
    }
    Ok((Output::Done, changes))
}

/// The users named, but none with a block between them and the author `$2` (either way): a
/// mention across a block notifies nobody.
const BLOCK_BETWEEN: &str = "SELECT 1 FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
     OR (blocker_id = $2 AND blocked_id = $1)";

/// Whether a block stands between `a` and `b`, either way.
async fn blocked_between(conn: &mut WriterConn, a: UserId, b: UserId) -> Result<bool, ApplyError> {
    Ok(conn
        .query_opt(BLOCK_BETWEEN, &[&a.0, &b.0])
        .await?
        .is_some())
}

/// The user `handle` names, who must not be `me`.
async fn other_user(
    conn: &mut WriterConn,
    me: UserId,
    handle: &Handle,
    yourself: &'static str,
) -> Result<UserId, ApplyError> {
    let row = conn
        .query_opt(USER_BY_HANDLE, &[&handle.as_str()])
        .await?
        .ok_or(ApplyError::Refused(WriteError::NotFound("user")))?;
    let other = UserId(row.try_get(0)?);
    if other == me {
        return Err(refuse(WriteError::Conflict(yourself)));
    }
    Ok(other)
}

const INSERT_BLOCK: &str =
    "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const DELETE_BLOCK: &str = "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2";

/// A block (`on`) or its end: the filter records of both sides, and with a block the end of
/// the follows between them, each with its record and counts.
async fn set_block(conn: &mut WriterConn, blocker: UserId, blocked: &Handle, on: bool) -> Applied {
    let blocked = other_user(conn, blocker, blocked, "you cannot block yourself").await?;
    let sql = if on { INSERT_BLOCK } else { DELETE_BLOCK };
    if conn.execute(sql, &[&blocker.0, &blocked.0]).await? == 0 {
        return Ok((Output::Done, Vec::new()));
    }
    let mut changes = Vec::new();
    if on {
        for (follower, followee) in [(blocker, blocked), (blocked, blocker)] {
            if conn
                .execute(DELETE_FOLLOW, &[&follower.0, &followee.0])
                .await?
                == 1
            {
                conn.execute(COUNT_FOLLOW, &[&follower.0, &followee.0, &-1i64])
                    .await?;
                changes.push(Change::Follow(FollowChange {
                    follower,
                    followee,
                    following: false,
                }));
            }
        }
    }
    for (user, other, kind) in [
        (blocker, blocked, FilterKind::Block),
        (blocked, blocker, FilterKind::BlockedBy),
    ] {
        changes.push(Change::Filter(FilterChange {
            user,
            other,
            kind,
            on,
        }));
    }
    Ok((Output::Done, changes))
}

/// A new mute answers a row (`true`); one that stood gets its new end and answers `false`.
const UPSERT_MUTE: &str = "INSERT INTO mutes (muter_id, muted_id, until) \
     VALUES ($1, $2, now() + make_interval(secs => $3::float8)) \
     ON CONFLICT (muter_id, muted_id) DO UPDATE SET until = EXCLUDED.until \
     RETURNING (xmax = 0)";
const DELETE_MUTE: &str = "DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2";

/// A mute (`Some(duration)`, `None` inside for no end) or its end (`None`).
async fn set_mute(
    conn: &mut WriterConn,
    muter: UserId,
    muted: &Handle,
    mute: Option<Option<std::time::Duration>>,
) -> Applied {
    let muted = other_user(conn, muter, muted, "you cannot mute yourself").await?;
    let changed = match mute {
        Some(duration) => {
            let secs = duration.map(|d| d.as_secs_f64());
            match conn
                .query_opt(UPSERT_MUTE, &[&muter.0, &muted.0, &secs])
                .await?
            {
                Some(row) => row.try_get::<_, bool>(0)?,
                None => false,
            }
        }
        None => conn.execute(DELETE_MUTE, &[&muter.0, &muted.0]).await? == 1,
    };
    if !changed {
        return Ok((Output::Done, Vec::new()));
    }
    let change = FilterChange {
        user: muter,
        other: muted,
        kind: FilterKind::Mute,
        on: mute.is_some(),
    };
    Ok((Output::Done, vec![Change::Filter(change)]))
}

/// The timed mutes whose end has passed, a bounded number of them (walking the `until` index).
const EXPIRE_MUTES: &str = "DELETE FROM mutes WHERE (muter_id, muted_id) IN \
     (SELECT muter_id, muted_id FROM mutes WHERE until <= now() ORDER BY until LIMIT $1 \
      FOR UPDATE SKIP LOCKED) RETURNING muter_id, muted_id";

async fn expire_mutes(conn: &mut WriterConn, cmd: &ExpireMutes) -> Applied {
    let rows = conn.query(EXPIRE_MUTES, &[&cmd.max_rows]).await?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        changes.push(Change::Filter(FilterChange {
            user: UserId(row.try_get(0)?),
            other: UserId(row.try_get(1)?),
            kind: FilterKind::Mute,
            on: false,
        }));
    }
    Ok((Output::Purged(rows.len() as u64), changes))
}

const MENTIONED_USERS: &str = "SELECT id FROM users u WHERE handle = ANY($1) AND disabled_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = u.id AND b.blocked_id = $2) \
       OR (b.blocker_id = $2 AND b.blocked_id = u.id))";

/// The most people one post can notify by mention.
pub const MAX_MENTIONS: usize = 10;

/// The distinct `@handle`s in `body`, in order, at most [`MAX_MENTIONS`]. A mention starts at
/// the beginning or after a character that cannot be part of a handle or an e-mail address.
pub fn mentions(body: &str) -> Vec<String> {
    handles_in(body, MAX_MENTIONS, |handle| {
        (3..=30).contains(&handle.len())
    })
}

/// Whether `body` mentions the AI persona, `@ai` (a handle too short for a person).
pub fn mentions_ai(body: &str) -> bool {
    !handles_in(body, 1, |handle| handle == AI_HANDLE).is_empty()
}

/// The AI persona's handle.
pub const AI_HANDLE: &str = "ai";

/// The distinct `@handle`s in `body` that `accept` takes, in order, at most `max`.
fn handles_in(body: &str, max: usize, accept: impl Fn(&str) -> bool) -> Vec<String> {
    let is_handle = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let chars: Vec<char> = body.chars().collect();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() && found.len() < max {
        let boundary = i == 0
            || !(is_handle(chars[i - 1]) || chars[i - 1].is_alphanumeric() || chars[i - 1] == '.');
        if chars[i] == '@' && boundary {
            let start = i + 1;
            let mut end = start;
            while end < chars.len() && is_handle(chars[end]) {
                end += 1;
            }
            let handle: String = chars[start..end].iter().collect();
            let next_ok =
                end == chars.len() || !(chars[end].is_alphanumeric() || chars[end] == '@');
            if accept(&handle) && next_ok && !found.contains(&handle) {
                found.push(handle);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    Like,
    Follow,
    Reply,
    Mention,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Like => "like",
            NotificationKind::Follow => "follow",
            NotificationKind::Reply => "reply",
            NotificationKind::Mention => "mention",
        }
    }
}

const INSERT_NOTIFICATION: &str = "WITH n AS (INSERT INTO notifications (user_id, kind, actor_id, post_id) \
       VALUES ($1, $2, $3, $4) RETURNING id, kind, actor_id, post_id, created_at) \
     SELECT n.id, n.kind, n.post_id, n.created_at, u.id, u.handle, u.display_name \
     FROM n JOIN users u ON u.id = n.actor_id";

/// How long a like or follow by the same person notifies only once: toggling one on and off
/// does not notify again and again.
const REPEAT_WINDOW_SECS: f64 = 3600.0;

/// Notes that `actor` notifies `recipient` of this now, unless it did within the window:
/// answers a row when the notification is to be made.
const NOTE_NOTIFIED: &str = "INSERT INTO notification_repeats \
     (user_id, actor_id, kind, post_id, notified_at) VALUES ($1, $2, $3, $4, now()) \
     ON CONFLICT (user_id, actor_id, kind, post_id) DO UPDATE SET notified_at = now() \
     WHERE notification_repeats.notified_at <= now() - make_interval(secs => $5) \
     RETURNING 1";

/// Forgets what is past the repeat window (run with the event purge).
const PURGE_REPEATS: &str =
    "DELETE FROM notification_repeats WHERE notified_at < now() - make_interval(secs => $1)";

/// [`notify`], unless `actor` already notified `recipient` of this within the repeat window.
async fn notify_unless_repeated(
    conn: &mut WriterConn,
    recipient: UserId,
    kind: NotificationKind,
    actor: UserId,
    post: Option<PostId>,
) -> Result<Option<Change>, ApplyError> {
    // A row back: the first notification of this within the window.
    let first = conn
        .query_opt(
            NOTE_NOTIFIED,
            &[
                &recipient.0,
                &actor.0,
                &kind.as_str(),
                &post.map_or(0, |p| p.0),
                &REPEAT_WINDOW_SECS,
            ],
        )
        .await?
        .is_some();
    if !first {
        return Ok(None);
    }
    Ok(Some(notify(conn, recipient, kind, actor, post).await?))
}

/// Stores a notification for `recipient` and returns the durable event announcing it.
async fn notify(
    conn: &mut WriterConn,
    recipient: UserId,
    kind: NotificationKind,
    actor: UserId,
    post: Option<PostId>,
) -> Result<Change, ApplyError> {
    let row = conn
        .query_opt(
            INSERT_NOTIFICATION,
            &[&recipient.0, &kind.as_str(), &actor.0, &post.map(|p| p.0)],
        )
        .await?
        .ok_or_else(|| {
            refuse(WriteError::Failed(WriteFailure::Inconsistent(
                "the notification insert returned nothing",
            )))
        })?;
    let notification = crate::model::Notification {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        post_id: row.try_get::<_, Option<i64>>(2)?.map(PostId),
        created_at: row.try_get(3)?,
        actor: crate::model::Author {
            id: UserId(row.try_get(4)?),
            handle: row.try_get(5)?,
            display_name: row.try_get(6)?,
        },
    };
    Ok(Change::Event(NewEvent {
        kind: EventKind::Notification,
        audience: Audience::User(recipient),
        payload: log_record::notification(&notification),
    }))
}

const LIVE_POST: &str = "SELECT author_id FROM posts WHERE id = $1 AND deleted_at IS NULL";
const INSERT_LIKE: &str =
    "INSERT INTO likes (user_id, post_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
const DELETE_LIKE: &str = "DELETE FROM likes WHERE user_id = $1 AND post_id = $2";
const COUNT_LIKE: &str = "UPDATE posts SET like_count = like_count + $2 WHERE id = $1";

async fn set_like(conn: &mut WriterConn, user: UserId, post: PostId, liked: bool) -> Applied {
    let row = conn
        .query_opt(LIVE_POST, &[&post.0])
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("post")))?;
    let author = UserId(row.try_get(0)?);
    if liked && blocked_between(conn, user, author).await? {
        return Err(refuse(WriteError::Blocked(BLOCKED)));
    }
    let sql = if liked { INSERT_LIKE } else { DELETE_LIKE };
    if conn.execute(sql, &[&user.0, &post.0]).await? == 0 {
        return Ok((Output::Done, Vec::new()));
    }
    let delta: i64 = if liked { 1 } else { -1 };
    conn.execute(COUNT_LIKE, &[&post.0, &delta]).await?;
    let mut changes = Vec::new();
    if liked && author != user {
        changes.extend(
            notify_unless_repeated(conn, author, NotificationKind::Like, user, Some(post)).await?,
        );
    }
    Ok((Output::Done, changes))
}

const POST_FOR_DELETE: &str = "SELECT author_id, reply_to, root_id FROM posts WHERE id = $1 AND deleted_at IS NULL FOR UPDATE";
const MARK_DELETED: &str = "UPDATE posts SET deleted_at = now() WHERE id = $1";
const UNCOUNT_POST: &str = "UPDATE users SET posts_count = posts_count - 1 WHERE id = $1";
const UNCOUNT_REPLY: &str = "UPDATE posts SET reply_count = reply_count - 1 WHERE id = $1";

pub(super) async fn delete_post(conn: &mut WriterConn, cmd: &DeletePost) -> Applied {
    let row = conn
        .query_opt(POST_FOR_DELETE, &[&cmd.post.0])
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("post")))?;
    let author = UserId(row.try_get(0)?);
    let reply_to: Option<i64> = row.try_get(1)?;
    let root_id: Option<i64> = row.try_get(2)?;
    if author != cmd.actor && !cmd.actor_moderates {
        return Err(refuse(WriteError::Forbidden(
            "only its author, a moderator or an admin may delete a post",
        )));
    }
    conn.execute(MARK_DELETED, &[&cmd.post.0]).await?;
    conn.execute(UNCOUNT_POST, &[&author.0]).await?;
    if let Some(parent) = reply_to {
        conn.execute(UNCOUNT_REPLY, &[&parent]).await?;
    }
    let detail = serde_json::json!({"post": cmd.post.0, "author": author.0, "as_moderator": author != cmd.actor});
    audit(conn, Some(cmd.actor), "post_delete", &detail).await?;
    let event = NewEvent {
        kind: EventKind::PostDeleted,
        audience: Audience::FollowersOf(author),
        payload: log_record::post_deleted(
            cmd.post,
            author,
            reply_to.map(PostId),
            root_id.map(PostId),
        ),
    };
    Ok((Output::Done, vec![Change::Event(event)]))
}

impl Command {
    /// A post that needs nothing but an insert (no reply, no key, no mention): such posts
    /// are written together with [`create_posts_together`].
    pub fn plain_post(&self) -> Option<&CreatePost> {
        match self {
            Command::CreatePost(cmd, _)
                if cmd.reply_to.is_none()
                    && cmd.idempotency_key.is_none()
                    && !cmd.body.contains('@') =>
            {
                Some(cmd)
            }
            _ => None,
        }
    }
}

const INSERT_POSTS: &str = "INSERT INTO posts (author_id, body) \
     SELECT * FROM unnest($1::bigint[], $2::text[]) \
     RETURNING id, author_id, body, reply_count, like_count, created_at";
const AUTHORS: &str = "SELECT id, handle, display_name FROM users WHERE id = ANY($1)";
const COUNT_POSTS: &str = "UPDATE users u SET posts_count = posts_count + c.n \
     FROM (SELECT author, count(*) AS n FROM unnest($1::bigint[]) AS author GROUP BY author) c \
     WHERE u.id = c.author";

/// Writes many plain posts with three statements in all (multi-row insert, authors, counts);
/// the results come back in the order of `posts`.
pub async fn create_posts_together(
    conn: &mut WriterConn,
    posts: &[&CreatePost],
) -> Result<Vec<(Output, Vec<Change>)>, tokio_postgres::Error> {
    use std::collections::HashMap;

    let authors: Vec<i64> = posts.iter().map(|p| p.author.0).collect();
    let bodies: Vec<&str> = posts.iter().map(|p| p.body.as_str()).collect();
    let rows = conn.query(INSERT_POSTS, &[&authors, &bodies]).await?;
    let mut distinct = authors.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let mut names: HashMap<i64, (String, String)> = HashMap::new();
    for row in conn.query(AUTHORS, &[&distinct]).await? {
        names.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    conn.execute(COUNT_POSTS, &[&authors]).await?;
    // Match each inserted row to a command with the same author and body (identical posts are
    // interchangeable), so the answer does not depend on the order RETURNING yields.
    let mut waiting: HashMap<(i64, String), Vec<usize>> = HashMap::new();
    for (i, post) in posts.iter().enumerate().rev() {
        waiting
            .entry((post.author.0, post.body.clone()))
            .or_default()
            .push(i);
    }
    let mut results: Vec<Option<(Output, Vec<Change>)>> = (0..posts.len()).map(|_| None).collect();
    for row in rows {
        let author: i64 = row.try_get(1)?;
        let key = (author, row.try_get::<_, String>(2)?);
        let Some(i) = waiting.get_mut(&key).and_then(Vec::pop) else {
            continue;
        };
        let body = key.1;
        let (handle, display_name) = names.get(&author).cloned().unwrap_or_default();
        let ai_generated = handle == AI_HANDLE;
        let post = crate::model::Post {
            id: PostId(row.try_get(0)?),
            author: crate::model::Author {
                id: UserId(author),
                handle,
                display_name,
            },
            body,
            reply_to: None,
            root_id: None,
            reply_count: row.try_get(3)?,
            like_count: row.try_get(4)?,
            created_at: row.try_get(5)?,
            ai_generated,
        };
        let event = NewEvent {
            kind: EventKind::PostCreated,
            audience: Audience::FollowersOf(post.author.id),
            payload: log_record::post_created(&post),
        };
        results[i] = Some((
            Output::Post(CreatedPost {
                post,
                created: true,
            }),
            vec![Change::Event(event)],
        ));
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or((
                Output::Refused(WriteError::Failed(WriteFailure::Inconsistent(
                    "the post was not inserted",
                ))),
                Vec::new(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_where_they_stand_alone() {
        let check = |body: &str, expected: &[&str]| assert_eq!(mentions(body), expected, "{body}");
        check("hi @alice and @bob_2!", &["alice", "bob_2"]);
        check("@ai what is this?", &["ai"][..0]); // too short to be a handle
        check("@abc", &["abc"]);
        check("mail me at x@example.com", &[]);
        check("@alice @alice @alice", &["alice"]);
        check("(@carol), @dave.", &["carol", "dave"]);
        check("@UPPER @x @waytoolongwaytoolongwaytoolong_31", &[]);
        check("@émile @abc@def", &[]);
        assert!(mentions_ai("@ai what is this?"));
        assert!(mentions_ai("so, @ai."));
        assert!(!mentions_ai("@aim @ai_fan x@ai"));
        let many: String = (0..20).map(|n| format!("@user_{n} ")).collect();
        assert_eq!(mentions(&many).len(), MAX_MENTIONS);
    }
}
