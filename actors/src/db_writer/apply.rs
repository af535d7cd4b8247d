//! How each command changes the database, inside a transaction the caller opened.
//!
//! A command reads what it depends on first and refuses (with a [`WriteError`]) before it
//! writes anything, so a refusal never leaves the shared transaction aborted; a database error
//! does, and the batch is then retried command by command.

use std::sync::LazyLock;

use tokio::sync::oneshot;

use super::commands::{CreatePost, CreatedPost, Follow, SignInDev, Unfollow, WriteError};
use super::conn::WriterConn;
use crate::committed::FollowChange;
use crate::event_log::{Audience, NewEvent};
use crate::ids::{Handle, UserId};
use crate::model::User;
use crate::protocol::EventKind;
use crate::store::{POST_COLUMNS, USER_COLUMNS, post_from_row, user_from_row};

/// A command waiting in the DbWriter, with the channel its answer goes back on.
pub enum Command {
    SignInDev(SignInDev, Reply<User>),
    CreatePost(CreatePost, Reply<CreatedPost>),
    Follow(Follow, Reply<()>),
    Unfollow(Unfollow, Reply<()>),
}

pub type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

/// A command's result before COMMIT.
pub enum Output {
    User(User),
    Post(CreatedPost),
    Done,
}

/// Something a command changed that must be announced after COMMIT.
pub enum Change {
    Event(NewEvent),
    Follow(FollowChange),
}

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

pub type Applied = Result<(Output, Vec<Change>), ApplyError>;

impl Command {
    /// The message type, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::SignInDev(..) => "SignInDev",
            Command::CreatePost(..) => "CreatePost",
            Command::Follow(..) => "Follow",
            Command::Unfollow(..) => "Unfollow",
        }
    }

    pub async fn apply(&self, conn: &mut WriterConn) -> Applied {
        match self {
            Command::SignInDev(cmd, _) => sign_in_dev(conn, cmd).await,
            Command::CreatePost(cmd, _) => create_post(conn, cmd).await,
            Command::Follow(cmd, _) => set_follow(conn, cmd.follower, &cmd.followee, true).await,
            Command::Unfollow(cmd, _) => set_follow(conn, cmd.follower, &cmd.followee, false).await,
        }
    }

    /// Sends the answer; a caller that stopped waiting is not an error.
    pub fn respond(self, result: Result<Output, WriteError>) {
        let mismatch = || WriteError::Failed("internal: command and output disagree".into());
        match self {
            Command::SignInDev(_, tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Output::User(u) => Ok(u),
                    _ => Err(mismatch()),
                }));
            }
            Command::CreatePost(_, tx) => {
                let _ = tx.send(result.and_then(|o| match o {
                    Output::Post(p) => Ok(p),
                    _ => Err(mismatch()),
                }));
            }
            Command::Follow(_, tx) | Command::Unfollow(_, tx) => {
                let _ = tx.send(result.map(|_| ()));
            }
        }
    }
}

static UPSERT_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (handle, display_name) VALUES ($1, $1) \
         ON CONFLICT (handle) DO UPDATE SET handle = EXCLUDED.handle RETURNING {USER_COLUMNS}"
    )
});

const AUDIT: &str = "INSERT INTO audit_log (actor_id, action, detail) VALUES ($1, $2, $3)";

async fn sign_in_dev(conn: &mut WriterConn, cmd: &SignInDev) -> Applied {
    let row = conn
        .query_opt(UPSERT_USER.as_str(), &[&cmd.handle.as_str()])
        .await?
        .ok_or(ApplyError::Refused(WriteError::Failed(
            "the user upsert returned nothing".into(),
        )))?;
    let user = user_from_row(&row)?;
    let detail = serde_json::json!({"method": "dev"});
    conn.execute(AUDIT, &[&user.id.0, &"sign_in", &detail])
        .await?;
    Ok((Output::User(user), Vec::new()))
}

const PARENT: &str = "SELECT id, root_id FROM posts WHERE id = $1 AND deleted_at IS NULL";

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
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.author_id = $1 AND p.idempotency_key = $2"
    )
});

const COUNT_POST: &str = "UPDATE users SET posts_count = posts_count + 1 WHERE id = $1";
const COUNT_REPLY: &str = "UPDATE posts SET reply_count = reply_count + 1 WHERE id = $1";

async fn create_post(conn: &mut WriterConn, cmd: &CreatePost) -> Applied {
    let key = cmd.idempotency_key.as_deref();
    if let Some(key) = key
        && let Some(row) = conn
            .query_opt(EXISTING_POST.as_str(), &[&cmd.author.0, &key])
            .await?
    {
        let post = post_from_row(&row)?;
        return Ok((
            Output::Post(CreatedPost {
                post,
                created: false,
            }),
            Vec::new(),
        ));
    }
    let (reply_to, root_id) = match cmd.reply_to {
        None => (None, None),
        Some(parent) => {
            let row = conn
                .query_opt(PARENT, &[&parent.0])
                .await?
                .ok_or(ApplyError::Refused(WriteError::NotFound("reply_to post")))?;
            let parent_id: i64 = row.try_get(0)?;
            let parent_root: Option<i64> = row.try_get(1)?;
            (Some(parent_id), Some(parent_root.unwrap_or(parent_id)))
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
                "idempotency key conflict without a post".into(),
            )))?;
        let post = post_from_row(&row)?;
        return Ok((
            Output::Post(CreatedPost {
                post,
                created: false,
            }),
            Vec::new(),
        ));
    };
    let post = post_from_row(&row)?;
    conn.execute(COUNT_POST, &[&cmd.author.0]).await?;
    if let Some(parent) = reply_to {
        conn.execute(COUNT_REPLY, &[&parent]).await?;
    }
    let payload = serde_json::to_value(&post)
        .map_err(|e| ApplyError::Refused(WriteError::Failed(e.to_string())))?;
    let event = NewEvent {
        kind: EventKind::PostCreated,
        audience: Audience::FollowersOf(cmd.author),
        payload,
    };
    Ok((
        Output::Post(CreatedPost {
            post,
            created: true,
        }),
        vec![Change::Event(event)],
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
        return Err(ApplyError::Refused(WriteError::Invalid {
            field: "handle",
            detail: "you cannot follow yourself".into(),
        }));
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
    Ok((Output::Done, vec![Change::Follow(change)]))
}
