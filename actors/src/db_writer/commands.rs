//! The DbWriter's typed commands (one message per intent) and the errors a command can meet.

use actix::Message;

use crate::ids::{Handle, PostId, UserId};
use crate::model::{Post, User};

/// Why a write was not acknowledged.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    /// Something the command names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The command is well-formed but not allowed.
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// The writer's queue is full; try again shortly.
    #[error("the write queue is full")]
    Overloaded,
    /// PostgreSQL cannot be reached, or the connection was lost before COMMIT returned: the write
    /// may or may not have happened; retry with the same Idempotency-Key.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL refused this command alone (its batch committed without it).
    #[error("the database refused the write: {0}")]
    Failed(String),
}

/// Sign in through the dev login: the user with this handle, created on first use.
#[derive(Debug, Message)]
#[rtype(result = "Result<User, WriteError>")]
pub struct SignInDev {
    pub handle: Handle,
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

/// Resolves once every command received so far has been committed or failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;
