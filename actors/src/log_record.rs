//! Every record of the event log, typed and versioned: the one module that knows how each
//! stored payload (and so each durable frame's `data`) looks as JSON, and how a record read back
//! from PostgreSQL or another node is decoded.
//!
//! A record is `(kind, version, payload)` in `events`. Client-visible events (`post.created`,
//! `post.deleted`, `notification`) are sent as they are stored; routing records
//! (`route.follow`) are read only by brokers and resumes. A kind or version this build does not
//! know (written by a newer node during a rolling upgrade) decodes as [`Decoded::Unknown`]: the
//! broker skips its id and counts it, it never waits for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event_log::{Audience, CommittedEvent};
use crate::ids::{EventId, PostId, UserId};
use crate::model::{Author, Notification, Post};
use crate::protocol::EventKind;

/// The payload version every record is written with by this build.
pub const VERSION: i16 = 1;

/// `events.kind` of a follow or unfollow.
pub const FOLLOW_KIND: &str = "route.follow";

/// A follow edge that was added or removed: a routing record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FollowChange {
    pub follower: UserId,
    pub followee: UserId,
    pub following: bool,
}

/// `events.kind` of a suspension or its end.
pub const ACCOUNT_KIND: &str = "route.account";

/// An account was suspended, or its suspension ended: a routing record. From its id on, the
/// user's sockets are closed and their tokens refused on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountChange {
    pub user: UserId,
    pub suspended: bool,
}

/// `events.kind` of a block, mute or their end, as it concerns one user.
pub const FILTER_KIND: &str = "route.filter";

/// Why one user does not receive another's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// The user blocked the other.
    Block,
    /// The other blocked the user.
    BlockedBy,
    /// The user muted the other.
    Mute,
}

impl FilterKind {
    /// The number a follow-list read carries it as.
    pub fn code(self) -> i16 {
        match self {
            FilterKind::Block => 0,
            FilterKind::BlockedBy => 1,
            FilterKind::Mute => 2,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(FilterKind::Block),
            1 => Some(FilterKind::BlockedBy),
            2 => Some(FilterKind::Mute),
            _ => None,
        }
    }
}

/// A filter that was put on or taken off: from this id on, `user` does (not) receive the events
/// `other` caused, for this reason. A routing record of `user`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FilterChange {
    pub user: UserId,
    pub other: UserId,
    pub kind: FilterKind,
    pub on: bool,
}

/// `author` inside `post.created` and `notification`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct AuthorV1 {
    id: i64,
    handle: String,
    display_name: String,
}

impl From<&Author> for AuthorV1 {
    fn from(a: &Author) -> Self {
        Self {
            id: a.id.0,
            handle: a.handle.clone(),
            display_name: a.display_name.clone(),
        }
    }
}

/// `post.created`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct PostCreatedV1 {
    id: i64,
    author: AuthorV1,
    body: String,
    reply_to: Option<i64>,
    root_id: Option<i64>,
    reply_count: i64,
    like_count: i64,
    created_at: DateTime<Utc>,
    /// Added within version 1 (readers that predate it ignore it; records that predate it
    /// read as false).
    #[serde(default)]
    ai_generated: bool,
}

/// `post.deleted`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct PostDeletedV1 {
    id: i64,
    author_id: i64,
    reply_to: Option<i64>,
    root_id: Option<i64>,
}

/// `notification`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct NotificationV1 {
    id: i64,
    kind: String,
    actor: AuthorV1,
    post_id: Option<i64>,
    created_at: DateTime<Utc>,
}

/// `route.follow`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct FollowV1 {
    follower: i64,
    followee: i64,
    following: bool,
}

/// `route.account`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct AccountV1 {
    user: i64,
    suspended: bool,
}

/// `route.filter`, version 1.
#[derive(Debug, Serialize, Deserialize)]
struct FilterV1 {
    user: i64,
    other: i64,
    kind: FilterKind,
    on: bool,
}

fn to_value(record: &impl Serialize) -> serde_json::Value {
    // Plain structs of strings, numbers and timestamps always serialise.
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}

/// The payload of `post.created`.
pub fn post_created(post: &Post) -> serde_json::Value {
    to_value(&PostCreatedV1 {
        id: post.id.0,
        author: AuthorV1::from(&post.author),
        body: post.body.clone(),
        reply_to: post.reply_to.map(|p| p.0),
        root_id: post.root_id.map(|p| p.0),
        reply_count: post.reply_count,
        like_count: post.like_count,
        created_at: post.created_at,
        ai_generated: post.ai_generated,
    })
}

/// The payload of `post.deleted`.
pub fn post_deleted(
    post: PostId,
    author: UserId,
    reply_to: Option<PostId>,
    root_id: Option<PostId>,
) -> serde_json::Value {
    to_value(&PostDeletedV1 {
        id: post.0,
        author_id: author.0,
        reply_to: reply_to.map(|p| p.0),
        root_id: root_id.map(|p| p.0),
    })
}

/// The payload of `notification`.
pub fn notification(n: &Notification) -> serde_json::Value {
    to_value(&NotificationV1 {
        id: n.id,
        kind: n.kind.clone(),
        actor: AuthorV1::from(&n.actor),
        post_id: n.post_id.map(|p| p.0),
        created_at: n.created_at,
    })
}

/// The payload of `route.follow`.
pub fn follow(change: &FollowChange) -> serde_json::Value {
    to_value(&FollowV1 {
        follower: change.follower.0,
        followee: change.followee.0,
        following: change.following,
    })
}

/// The payload of `route.account`.
pub fn account(change: &AccountChange) -> serde_json::Value {
    to_value(&AccountV1 {
        user: change.user.0,
        suspended: change.suspended,
    })
}

/// The payload of `route.filter`.
pub fn filter(change: &FilterChange) -> serde_json::Value {
    to_value(&FilterV1 {
        user: change.user.0,
        other: change.other.0,
        kind: change.kind,
        on: change.on,
    })
}

/// Who caused an event (what a block or mute hides): a post's author, a notification's actor.
pub fn actor_of(
    kind: EventKind,
    audience: Audience,
    payload: &serde_json::Value,
) -> Option<UserId> {
    match (kind, audience) {
        (_, Audience::FollowersOf(author)) => Some(author),
        (EventKind::Notification, Audience::User(_)) => payload
            .get("actor")
            .and_then(|a| a.get("id"))
            .and_then(serde_json::Value::as_i64)
            .map(UserId),
        (_, Audience::User(_)) => None,
    }
}

/// A record read back from the log.
#[derive(Debug, Clone)]
pub enum Decoded {
    Event(CommittedEvent),
    Follow(FollowChange),
    Account(AccountChange),
    Filter(FilterChange),
    /// A kind or version this build does not know, or a payload that does not match its
    /// kind: the id is skipped.
    Unknown,
}

/// One stored row of `events`, as read.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub id: EventId,
    pub kind: String,
    pub version: i16,
    pub author: Option<i64>,
    pub recipient: Option<i64>,
    pub payload: serde_json::Value,
}

/// Decodes one stored record.
pub fn decode(record: StoredRecord) -> Decoded {
    let StoredRecord {
        id,
        kind,
        version,
        author,
        recipient,
        payload,
    } = record;
    if version != VERSION {
        return Decoded::Unknown;
    }
    if kind == FOLLOW_KIND {
        return match serde_json::from_value::<FollowV1>(payload) {
            Ok(f) => Decoded::Follow(FollowChange {
                follower: UserId(f.follower),
                followee: UserId(f.followee),
                following: f.following,
            }),
            Err(_) => Decoded::Unknown,
        };
    }
    if kind == ACCOUNT_KIND {
        return match serde_json::from_value::<AccountV1>(payload) {
            Ok(a) => Decoded::Account(AccountChange {
                user: UserId(a.user),
                suspended: a.suspended,
            }),
            Err(_) => Decoded::Unknown,
        };
    }
    if kind == FILTER_KIND {
        return match serde_json::from_value::<FilterV1>(payload) {
            Ok(f) => Decoded::Filter(FilterChange {
                user: UserId(f.user),
                other: UserId(f.other),
                kind: f.kind,
                on: f.on,
            }),
            Err(_) => Decoded::Unknown,
        };
    }
    let Some(kind) = EventKind::parse(&kind) else {
        return Decoded::Unknown;
    };
    let audience = match (author, recipient) {
        (Some(a), _) => Audience::FollowersOf(UserId(a)),
        (None, Some(r)) => Audience::User(UserId(r)),
        (None, None) => return Decoded::Unknown,
    };
    Decoded::Event(CommittedEvent {
        id,
        kind,
        audience,
        payload,
    })
}

#[cfg(test)]
mod tests {
    //! Golden tests: each stored and sent JSON shape, pinned. A change here is a protocol change
    //! (clients parse these) or a storage change (older and newer nodes read these): it needs a
    //! new version, not an edit.

    use chrono::TimeZone;

    use super::*;

    fn author() -> Author {
        Author {
            id: UserId(7),
            handle: "alice".into(),
            display_name: "Alice A.".into(),
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 19, 30, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn post_created_is_pinned() {
        let post = Post {
            id: PostId(42),
            author: author(),
            body: "hello @bob".into(),
            reply_to: Some(PostId(40)),
            root_id: Some(PostId(39)),
            reply_count: 2,
            like_count: 3,
            created_at: at(),
            ai_generated: false,
        };
        assert_eq!(
            post_created(&post).to_string(),
            r#"{"ai_generated":false,"author":{"display_name":"Alice A.","handle":"alice","id":7},"body":"hello @bob","created_at":"2026-12-07T19:30:00Z","id":42,"like_count":3,"reply_count":2,"reply_to":40,"root_id":39}"#
        );
        // A record stored before `ai_generated` was added still reads, as a person's post.
        let older = r#"{"author":{"display_name":"Alice A.","handle":"alice","id":7},"body":"hello @bob","created_at":"2026-12-07T19:30:00Z","id":42,"like_count":3,"reply_count":2,"reply_to":40,"root_id":39}"#;
        let read: Post = serde_json::from_str(older).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, post);
        // The same shape the HTTP API gives a post: clients parse one.
        assert_eq!(
            post_created(&post),
            serde_json::to_value(&post).unwrap_or_default()
        );
    }

    #[test]
    fn post_deleted_is_pinned() {
        assert_eq!(
            post_deleted(PostId(42), UserId(7), None, Some(PostId(39))).to_string(),
            r#"{"author_id":7,"id":42,"reply_to":null,"root_id":39}"#
        );
    }

    #[test]
    fn notification_is_pinned() {
        let n = Notification {
            id: 5,
            kind: "like".into(),
            actor: author(),
            post_id: Some(PostId(42)),
            created_at: at(),
        };
        assert_eq!(
            notification(&n).to_string(),
            r#"{"actor":{"display_name":"Alice A.","handle":"alice","id":7},"created_at":"2026-12-07T19:30:00Z","id":5,"kind":"like","post_id":42}"#
        );
        assert_eq!(
            notification(&n),
            serde_json::to_value(&n).unwrap_or_default()
        );
    }

    #[test]
    fn follow_is_pinned_and_round_trips() {
        let change = FollowChange {
            follower: UserId(3),
            followee: UserId(7),
            following: false,
        };
        let stored = follow(&change);
        assert_eq!(
            stored.to_string(),
            r#"{"followee":7,"follower":3,"following":false}"#
        );
        let decoded = decode(StoredRecord {
            id: EventId(9),
            kind: FOLLOW_KIND.into(),
            version: VERSION,
            author: None,
            recipient: Some(3),
            payload: stored,
        });
        assert!(matches!(decoded, Decoded::Follow(f) if f == change));
    }

    #[test]
    fn account_is_pinned_and_round_trips() {
        let change = AccountChange {
            user: UserId(3),
            suspended: true,
        };
        let stored = account(&change);
        assert_eq!(stored.to_string(), r#"{"suspended":true,"user":3}"#);
        let decoded = decode(StoredRecord {
            id: EventId(9),
            kind: ACCOUNT_KIND.into(),
            version: VERSION,
            author: None,
            recipient: Some(3),
            payload: stored,
        });
        assert!(matches!(decoded, Decoded::Account(a) if a == change));
    }

    #[test]
    fn filter_is_pinned_and_round_trips() {
        let change = FilterChange {
            user: UserId(3),
            other: UserId(7),
            kind: FilterKind::BlockedBy,
            on: true,
        };
        let stored = filter(&change);
        assert_eq!(
            stored.to_string(),
            r#"{"kind":"blocked_by","on":true,"other":7,"user":3}"#
        );
        let decoded = decode(StoredRecord {
            id: EventId(9),
            kind: FILTER_KIND.into(),
            version: VERSION,
            author: None,
            recipient: Some(3),
            payload: stored,
        });
        assert!(matches!(decoded, Decoded::Filter(f) if f == change));
        for (kind, name) in [
            (FilterKind::Block, "block"),
            (FilterKind::BlockedBy, "blocked_by"),
            (FilterKind::Mute, "mute"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap_or_default(), name);
            assert_eq!(FilterKind::from_code(kind.code()), Some(kind));
        }
        // A kind of filter this build does not know is skipped, not misread.
        let unknown = decode(StoredRecord {
            id: EventId(10),
            kind: FILTER_KIND.into(),
            version: VERSION,
            author: None,
            recipient: Some(3),
            payload: serde_json::json!({"kind": "hide", "on": true, "other": 7, "user": 3}),
        });
        assert!(matches!(unknown, Decoded::Unknown));
    }

    #[test]
    fn the_actor_is_the_author_or_the_notifications_actor() {
        let n = Notification {
            id: 5,
            kind: "like".into(),
            actor: author(),
            post_id: None,
            created_at: at(),
        };
        assert_eq!(
            actor_of(
                EventKind::Notification,
                Audience::User(UserId(1)),
                &notification(&n)
            ),
            Some(UserId(7))
        );
        assert_eq!(
            actor_of(
                EventKind::PostDeleted,
                Audience::FollowersOf(UserId(4)),
                &serde_json::Value::Null
            ),
            Some(UserId(4))
        );
    }

    #[test]
    fn a_durable_frame_carries_the_payload_as_data() {
        let frame = crate::protocol::durable_frame(
            EventKind::PostDeleted,
            EventId(12),
            &post_deleted(PostId(42), UserId(7), None, None),
        );
        assert_eq!(
            &*frame,
            r#"{"type":"post.deleted","id":12,"data":{"author_id":7,"id":42,"reply_to":null,"root_id":null}}"#
        );
    }

    #[test]
    fn unknown_kinds_versions_and_shapes_decode_as_unknown() {
        let record = |kind: &str, version, payload| StoredRecord {
            id: EventId(1),
            kind: kind.into(),
            version,
            author: Some(1),
            recipient: None,
            payload,
        };
        let unknown = |r| matches!(decode(r), Decoded::Unknown);
        assert!(unknown(record(
            "poll.created",
            VERSION,
            serde_json::json!({})
        )));
        assert!(unknown(record(
            "post.created",
            VERSION + 1,
            serde_json::json!({})
        )));
        assert!(unknown(record(
            FOLLOW_KIND,
            VERSION,
            serde_json::json!({"x": 1})
        )));
        assert!(matches!(
            decode(record("post.created", VERSION, serde_json::json!({"id": 1}))),
            Decoded::Event(e) if e.audience == Audience::FollowersOf(UserId(1))
        ));
    }
}
