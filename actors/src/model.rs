//! Domain records shared by the actors and the HTTP layer (serialised the same way in both).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{PostId, UserId};

/// A user's role; admins may moderate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user as the API shows it to its owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub handle: String,
    pub display_name: String,
    pub role: Role,
}

/// The author of a post, as embedded in the post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Author {
    pub id: UserId,
    pub handle: String,
    pub display_name: String,
}

/// A post or a reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Post {
    pub id: PostId,
    pub author: Author,
    pub body: String,
    pub reply_to: Option<PostId>,
    /// The thread's first post; `None` for a post that starts a thread.
    pub root_id: Option<PostId>,
    pub reply_count: i64,
    pub like_count: i64,
    pub created_at: DateTime<Utc>,
}

/// A notification: someone liked, followed, replied to or mentioned the recipient.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Notification {
    pub id: i64,
    /// `like`, `follow`, `reply` or `mention`.
    pub kind: String,
    pub actor: Author,
    pub post_id: Option<PostId>,
    pub created_at: DateTime<Utc>,
}
