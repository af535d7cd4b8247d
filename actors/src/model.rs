//! Domain records shared by the actors and the HTTP layer (serialised the same way in both).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{PostId, UserId};

/// A user's role, in increasing power: moderators work the report queue, admins also suspend
/// accounts, grant roles and see the operations views.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Role::User),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may work the moderation queue.
    pub fn moderates(self) -> bool {
        self >= Role::Moderator
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
    /// Written by the AI persona (`@ai`), not a person.
    #[serde(default)]
    pub ai_generated: bool,
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

/// Why something was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Abuse,
    Illegal,
    Other,
}

/// How a moderator resolved a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportAction {
    /// Nothing to do.
    Dismiss,
    /// The reported post is deleted.
    RemovePost,
    /// The reported user is suspended.
    Suspend,
}

/// Whether a report still waits for a moderator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Open,
    Resolved,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($text => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(ReportReason { Spam => "spam", Abuse => "abuse", Illegal => "illegal", Other => "other" });
text_enum!(ReportAction { Dismiss => "dismiss", RemovePost => "remove_post", Suspend => "suspend" });

/// A report, as moderators see it (and its reporter, when it is made).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Report {
    pub id: i64,
    /// Who reported (absent once their account is gone).
    pub reporter: Option<Author>,
    /// The reported user (a reported post's author).
    pub target: Author,
    /// Whether the reported user is suspended now.
    pub target_suspended: bool,
    pub post_id: Option<PostId>,
    /// The post's text as it was when reported.
    pub post_body: Option<String>,
    pub reason: ReportReason,
    pub comment: String,
    pub status: ReportStatus,
    pub action: Option<ReportAction>,
    pub resolved_by: Option<Author>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}
