//! The DbWriter's typed commands (one message per intent) and the errors a command can meet.

use std::sync::Arc;
use std::time::Duration;

use actix::Message;

use super::conn::ConnectError;
use crate::ids::{Handle, PostId, UserId};
use crate::model::{Post, Report, ReportAction, ReportReason, Role, User};
use crate::roles::RoleGrants;

/// Why a write was not acknowledged. A database failure keeps PostgreSQL's error as its
/// source (shared, as one failure may answer a whole batch); its text is for logs only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// Something the command names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A credential (refresh token) is unknown, expired, revoked or already used.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A rotated refresh token was presented again: its whole family is now revoked.
    #[error("refresh token reused; the session was revoked")]
    RefreshReused { user: UserId, family: i64 },
    /// The request conflicts with the state of things (following yourself).
    #[error("{0}")]
    Conflict(&'static str),
    /// The caller may not do this to that resource.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The account is suspended: it may not sign in.
    #[error("this account is suspended")]
    Suspended,
    /// A block stands between the caller and the user the command concerns (either way).
    #[error("{0}")]
    Blocked(&'static str),
    /// The command is well-formed but not allowed.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// The writer's queue is full; try again shortly.
    #[error("the write queue is full")]
    Overloaded,
    /// PostgreSQL cannot be reached, or the connection was lost before COMMIT returned: the write
    /// may or may not have happened; retry with the same Idempotency-Key.
    #[error("the database is unavailable; the write may or may not have happened")]
    Unavailable(#[source] WriteUnavailable),
    /// PostgreSQL turned this command down for a passing reason (a lock wait, a deadlock, a
    /// serialization failure, a cancelled statement): nothing was written; retry shortly.
    #[error("the database could not make the write now; nothing was written")]
    Transient(#[source] Arc<tokio_postgres::Error>),
    /// PostgreSQL refused this command alone (its batch committed without it).
    #[error("the write failed")]
    Failed(#[source] WriteFailure),
}

/// Why the writer could not get an answer from PostgreSQL for a command.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteUnavailable {
    /// No writer connection could be made.
    #[error("the writer cannot connect")]
    Connect(#[source] Arc<ConnectError>),
    /// The connection failed under the command (before COMMIT returned).
    #[error("the writer's connection failed")]
    Connection(#[source] Arc<tokio_postgres::Error>),
    /// An earlier command of the batch lost the connection this one was to use.
    #[error("the writer's connection was lost before this command ran")]
    ConnectionLost,
    /// The batch (or what was left of it) did not finish within its deadline.
    #[error("the database did not answer in time")]
    NoAnswer,
    /// The writer actor is gone.
    #[error("the writer stopped")]
    Stopped,
    /// The drain at shutdown ran out of time.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Why a command failed for good (a 500, not a retry).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteFailure {
    /// PostgreSQL refused the command's statements.
    #[error("PostgreSQL refused the command")]
    Database(#[source] Arc<tokio_postgres::Error>),
    /// The writer's own expectations did not hold (a row that should be there was not).
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// A refresh token to store with a sign-in or a rotation: only its SHA-256 travels.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh {
    pub hash: [u8; 32],
    /// The family's absolute lifetime, counted from the sign-in.
    pub lifetime: Duration,
}

/// Who signed in, and the refresh-token family (the sign-in session) that was started.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub family: i64,
}

/// Sign in through the dev login: the user with this handle, created on first use (as a dev
/// account). An existing account that dev login did not create (one that signs in with
/// Google, the `ai` account) is refused with [`WriteError::Forbidden`]`(`[`NOT_A_DEV_ACCOUNT`]`)`.
#[derive(Debug, Message)]
#[rtype(result = "Result<SignedIn, WriteError>")]
pub struct SignInDev {
    pub handle: Handle,
    pub refresh: NewRefresh,
    /// The roles configuration grants, reconciled with the account's at every sign-in.
    pub grants: Arc<RoleGrants>,
}

/// Why dev login refused an existing account.
pub const NOT_A_DEV_ACCOUNT: &str = "this account was not created by dev login (it signs in with Google, or is built in); dev login signs in only accounts it created";

/// Sign in with a verified Google identity: the user with this `sub`, created on first use with
/// a unique handle derived from `handle_hint`.
#[derive(Debug, Message)]
#[rtype(result = "Result<SignedIn, WriteError>")]
pub struct SignInGoogle {
    pub sub: String,
    /// Only an address Google is authoritative for.
    pub email: Option<String>,
    pub display_name: String,
    pub handle_hint: String,
    pub refresh: NewRefresh,
    pub grants: Arc<RoleGrants>,
}

/// Exchange a refresh token for the next one in its family.
#[derive(Debug, Message)]
#[rtype(result = "Result<SignedIn, WriteError>")]
pub struct RotateRefresh {
    pub presented: [u8; 32],
    pub next: [u8; 32],
    /// When `next` was derived from the presented token and the request's idempotency key
    /// (the same request again names the same `next`): a presented token rotated less than
    /// this long ago into exactly `next`, which is still unused, is a retry of that rotation
    /// (its answer may have been lost) and is answered again instead of counting as reuse.
    pub retry_within: Option<Duration>,
    /// The roles configuration grants, reconciled with the account's at every refresh.
    pub grants: Arc<RoleGrants>,
}

/// Revoke a sign-in session (logout): every refresh token of the family.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct RevokeFamily {
    pub user: UserId,
    pub family: i64,
}

/// Change the caller's own profile; `None` leaves a field as it is.
#[derive(Debug, Message)]
#[rtype(result = "Result<User, WriteError>")]
pub struct UpdateProfile {
    pub user: UserId,
    pub display_name: Option<String>,
    pub bio: Option<String>,
}

/// Record something in the audit log (a failed sign-in, …).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct RecordAudit {
    pub actor: Option<UserId>,
    pub action: &'static str,
    pub detail: serde_json::Value,
}

/// Delete log records older than the retention window, at most `max_rows` of them, and raise
/// the log's floor (`event_retention.purged_through`) to the last id deleted; answers how many
/// ids it purged (0: nothing older is left).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u64, WriteError>")]
pub struct PurgeEvents {
    pub retention: std::time::Duration,
    pub max_rows: i64,
}

/// Record one AI request's outcome and cost in `ai_usage`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct RecordAiUsage {
    /// A UUID.
    pub request_id: String,
    pub user: UserId,
    /// `mention`, `compose` or `summary`.
    pub kind: &'static str,
    pub model: String,
    /// `done`, `declined` or the error kind.
    pub outcome: String,
    pub attempts: u32,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub queued_ms: u32,
    pub duration_ms: u32,
    pub post: Option<PostId>,
    pub reply: Option<PostId>,
}

/// Create a post (or a reply when `reply_to` is set).
#[derive(Debug, Message)]
#[rtype(result = "Result<CreatedPost, WriteError>")]
pub struct CreatePost {
    pub author: UserId,
    /// Already trimmed and checked to be 1–1000 characters.
    pub body: String,
    pub reply_to: Option<PostId>,
    /// A retry with the same key returns the first post instead of creating another.
    pub idempotency_key: Option<String>,
}

/// The post, and whether this command created it (false for an idempotent retry).
#[derive(Debug, Clone)]
pub struct CreatedPost {
    pub post: Post,
    pub created: bool,
}

/// `follower` starts following the user `followee` (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Follow {
    pub follower: UserId,
    pub followee: Handle,
}

/// `follower` stops following the user `followee` (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Unfollow {
    pub follower: UserId,
    pub followee: Handle,
}

/// `blocker` blocks the user `blocked` (idempotent): the follows between them end, both ways,
/// and from this record on neither receives what the other causes.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Block {
    pub blocker: UserId,
    pub blocked: Handle,
}

/// `blocker` ends a block of the user `blocked` (idempotent; follows are not restored).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Unblock {
    pub blocker: UserId,
    pub blocked: Handle,
}

/// `muter` mutes the user `muted`, for `duration` or until unmuted (a second mute sets the new
/// end): from this record on the muter does not receive what the muted user causes.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Mute {
    pub muter: UserId,
    pub muted: Handle,
    pub duration: Option<Duration>,
}

/// `muter` ends a mute of the user `muted` (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct Unmute {
    pub muter: UserId,
    pub muted: Handle,
}

/// Ends the timed mutes whose end has passed, at most `max_rows` of them, each with its routing
/// record; answers how many it ended.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u64, WriteError>")]
pub struct ExpireMutes {
    pub max_rows: i64,
}

/// Why a follow, a reply or a like across a block is refused.
pub const BLOCKED: &str = "a block stands between you and this user";

/// Resolves once every command received so far has been committed or failed, or after
/// `within`, when whatever still waits is answered [`WriteError::Unavailable`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain {
    pub within: Duration,
}

/// `user` likes `post` (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct LikePost {
    pub user: UserId,
    pub post: PostId,
}

/// `user` takes back a like of `post` (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct UnlikePost {
    pub user: UserId,
    pub post: PostId,
}

/// Delete a post: its author may, and a moderator or an admin may.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), WriteError>")]
pub struct DeletePost {
    pub actor: UserId,
    pub actor_moderates: bool,
    pub post: PostId,
}

/// Who takes a moderation action: the operator on the command line, or a signed-in member of
/// staff with the role their account holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderator {
    CommandLine,
    Staff { user: UserId, role: Role },
}

impl Moderator {
    /// The acting user, if the action was taken through the API.
    pub fn user(self) -> Option<UserId> {
        match self {
            Moderator::CommandLine => None,
            Moderator::Staff { user, .. } => Some(user),
        }
    }
}

/// Give `target` a role (`Role::User` takes any role away). The command line may change any
/// account's; an admin any but their own.
#[derive(Debug, Message)]
#[rtype(result = "Result<User, WriteError>")]
pub struct SetRole {
    pub target: Handle,
    pub role: Role,
    pub by: Moderator,
}

/// Suspend `target` (every sign-in session revoked, sign-in refused, sockets closed on every
/// node through the log's `route.account` record), or end a suspension. Idempotent. Staff may
/// act only on accounts of a lower role than theirs. Answers the target's id.
#[derive(Debug, Message)]
#[rtype(result = "Result<UserId, WriteError>")]
pub struct SetSuspended {
    pub target: Handle,
    pub suspended: bool,
    pub by: Moderator,
    /// Why, for the audit log.
    pub reason: Option<String>,
}

/// Report a post (its author is then the reported user) or a user to the moderators. A repeat
/// of an open report by the same reporter answers that report.
#[derive(Debug, Message)]
#[rtype(result = "Result<Report, WriteError>")]
pub struct CreateReport {
    pub reporter: UserId,
    pub post: Option<PostId>,
    pub handle: Option<Handle>,
    pub reason: ReportReason,
    /// Already checked to be at most 1000 characters.
    pub comment: String,
}

/// Resolve an open report with an action (removing the post, or suspending its target, in the
/// same transaction).
#[derive(Debug, Message)]
#[rtype(result = "Result<Report, WriteError>")]
pub struct ResolveReport {
    pub report: i64,
    pub action: ReportAction,
    pub by: Moderator,
}
