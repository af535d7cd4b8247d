//! The websocket frames (`DESIGN.md` §3): the server's `{"type", "id"?, "data"}` objects, read
//! lazily ([`Frame`] borrows from the text and skips what it does not name), `hello` read in
//! full ([`Hello`]), close codes, and the client's ops ([`Op`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::Error;

/// The fields of a server frame a client reads on its hot path; the rest is skipped unparsed
/// (a generic JSON value per frame costs a one-core load generator more than the server
/// spends on the frame).
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// `hello`, `post.created`, `post.deleted`, `notification`, `thread.reply`, `ai.delta`, …
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    /// The durable event id (absent on ephemeral frames).
    pub id: Option<i64>,
    #[serde(borrow)]
    pub data: Option<FrameData<'a>>,
}

/// The parts of `data` read here: a post's id and body (of `post.created`, `post.deleted`,
/// `thread.reply`), or a notification's id, kind and post.
#[derive(Debug, Deserialize)]
pub struct FrameData<'a> {
    pub id: Option<i64>,
    #[serde(borrow)]
    pub body: Option<Cow<'a, str>>,
    /// A notification's kind: `like`, `reply`, `mention`, `follow`.
    #[serde(borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// The post a notification is about.
    pub post_id: Option<i64>,
}

impl<'a> Frame<'a> {
    /// Reads a text frame.
    pub fn parse(text: &'a str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|source| Error::Decode {
            what: "frame".into(),
            source,
        })
    }

    /// Whether the frame is a durable event (it has an id; resume with `since` = that id).
    pub fn is_durable(&self) -> bool {
        self.id.is_some()
    }

    /// The post id of a `post.created`/`post.deleted`/`thread.reply` frame.
    pub fn post_id(&self) -> Option<i64> {
        self.data.as_ref().and_then(|d| d.id)
    }

    /// A `notification` frame's kind (`like`, `reply`, `mention`, `follow`) and post.
    pub fn notification(&self) -> Option<(&str, Option<i64>)> {
        let data = self.data.as_ref().filter(|_| self.kind == "notification")?;
        Some((data.kind.as_deref()?, data.post_id))
    }

    /// The post's body, or "".
    pub fn body(&self) -> &str {
        self.data
            .as_ref()
            .and_then(|d| d.body.as_deref())
            .unwrap_or_default()
    }
}

/// The first frame of every session.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub session_id: String,
    pub user: HelloUser,
    /// The server pings this often.
    pub heartbeat_ms: u64,
    pub resume: Resume,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct HelloUser {
    pub id: i64,
    pub handle: String,
}

/// How the session's `since` was answered.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Resume {
    pub since: Option<i64>,
    /// Durable events replayed right after `hello`.
    pub replayed: u64,
    pub status: ResumeStatus,
}

/// `hello.resume.status`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResumeStatus {
    /// No `since` was given: live events from now on.
    Fresh,
    /// Every durable event after `since` was replayed, then live.
    Resumed,
    /// `since` is outside the retention window: refetch over HTTP.
    ResyncRequired,
    /// A status this client does not know.
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct HelloFrame {
    #[serde(rename = "type")]
    kind: String,
    data: Hello,
}

impl Hello {
    /// Reads a `hello` frame's text; [`Error::NotHello`] for another frame.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let frame: HelloFrame = serde_json::from_str(text).map_err(|_| Error::NotHello)?;
        if frame.kind != "hello" {
            return Err(Error::NotHello);
        }
        Ok(frame.data)
    }

    /// `hello`, if `message` is a `hello` frame.
    pub fn from_message(message: &Message) -> Option<Self> {
        match message {
            Message::Text(text) => Self::parse(text).ok(),
            _ => None,
        }
    }

    /// Durable events replayed right after `hello`.
    pub fn replayed(&self) -> u64 {
        self.resume.replayed
    }

    /// `hello.resume.status`.
    pub fn resume_status(&self) -> ResumeStatus {
        self.resume.status
    }
}

/// The close code of a close frame (1005, "no status", when it carries none).
pub fn close_code(message: &Message) -> Option<u16> {
    match message {
        Message::Close(Some(frame)) => Some(frame.code.into()),
        Message::Close(None) => Some(1005),
        _ => None,
    }
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Renews the socket's token before it expires.
    Auth {
        token: String,
    },
    /// `thread:<post id>`: replies to that post, as `thread.reply`.
    Subscribe {
        topic: String,
    },
    Unsubscribe {
        topic: String,
    },
    Ping,
}

impl Op {
    /// Subscribes to the replies to `post`.
    pub fn subscribe_thread(post: i64) -> Self {
        Op::Subscribe {
            topic: format!("thread:{post}"),
        }
    }

    /// Unsubscribes from the replies to `post`.
    pub fn unsubscribe_thread(post: i64) -> Self {
        Op::Unsubscribe {
            topic: format!("thread:{post}"),
        }
    }

    /// The op as a text frame.
    pub fn to_message(&self) -> Message {
        // Serialising a tagged enum of strings cannot fail.
        Message::text(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    //! Golden frames: the JSON the server sends (`actors/src/protocol.rs`), one per shape
    //! read here, pinned so a change on either side shows.

    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    use super::*;

    const HELLO: &str = r#"{"type":"hello","data":{"session_id":"node-a:5","user":{"id":7,"handle":"alice"},"heartbeat_ms":15000,"resume":{"since":41,"replayed":3,"status":"resumed"}}}"#;
    const POST_CREATED: &str = r#"{"type":"post.created","id":42,"data":{"id":9,"author":{"id":8,"handle":"bob","display_name":"Bob"},"body":"hi \"you\"","reply_to":null,"root_id":null,"reply_count":0,"like_count":0,"created_at":"2026-01-01T00:00:00Z"}}"#;
    const POST_DELETED: &str = r#"{"type":"post.deleted","id":43,"data":{"id":9}}"#;
    const NOTIFICATION: &str = r#"{"type":"notification","id":44,"data":{"id":3,"kind":"like","actor":{"id":8,"handle":"bob","display_name":"Bob"},"post_id":9,"created_at":"2026-01-01T00:00:00Z"}}"#;
    const THREAD_REPLY: &str = r#"{"type":"thread.reply","data":{"id":10,"author":{"id":8,"handle":"bob","display_name":"Bob"},"body":"a reply","reply_to":9,"root_id":9,"reply_count":0,"like_count":0,"created_at":"2026-01-01T00:00:00Z"}}"#;
    const AI_DELTA: &str =
        r#"{"type":"ai.delta","data":{"request_id":"r1","post_id":9,"index":0,"text":"He"}}"#;
    const PONG: &str = r#"{"type":"pong","data":{}}"#;
    const ERROR: &str = r#"{"type":"error","data":{"code":"unknown_op","detail":"a \"b\""}}"#;

    #[test]
    fn hello_is_read_in_full() -> Result<(), Error> {
        let hello = Hello::parse(HELLO)?;
        assert_eq!(
            hello,
            Hello {
                session_id: "node-a:5".into(),
                user: HelloUser {
                    id: 7,
                    handle: "alice".into()
                },
                heartbeat_ms: 15_000,
                resume: Resume {
                    since: Some(41),
                    replayed: 3,
                    status: ResumeStatus::Resumed,
                },
            }
        );
        let fresh = HELLO
            .replace(r#""since":41"#, r#""since":null"#)
            .replace("resumed", "fresh");
        assert_eq!(Hello::parse(&fresh)?.resume_status(), ResumeStatus::Fresh);
        let resync = HELLO.replace("resumed", "resync_required");
        assert_eq!(
            Hello::parse(&resync)?.resume_status(),
            ResumeStatus::ResyncRequired
        );
        let unknown = HELLO.replace("resumed", "sideways");
        assert_eq!(
            Hello::parse(&unknown)?.resume_status(),
            ResumeStatus::Unknown
        );
        assert_eq!(
            Hello::from_message(&Message::text(HELLO)).map(|h| h.replayed()),
            Some(3)
        );
        Ok(())
    }

    #[test]
    fn another_frame_is_not_hello() {
        for text in [POST_CREATED, PONG, "not json", r#"{"type":"hello"}"#] {
            assert!(matches!(Hello::parse(text), Err(Error::NotHello)), "{text}");
        }
        assert_eq!(Hello::from_message(&Message::Ping(Vec::new().into())), None);
    }

    #[test]
    fn durable_frames_give_their_id_post_and_body() -> Result<(), Error> {
        let created = Frame::parse(POST_CREATED)?;
        assert_eq!(
            (created.kind, created.id, created.post_id(), created.body()),
            ("post.created", Some(42), Some(9), r#"hi "you""#)
        );
        assert!(created.is_durable());
        let deleted = Frame::parse(POST_DELETED)?;
        assert_eq!(
            (deleted.kind, deleted.id, deleted.post_id(), deleted.body()),
            ("post.deleted", Some(43), Some(9), "")
        );
        let notification = Frame::parse(NOTIFICATION)?;
        assert_eq!(
            (notification.kind, notification.id),
            ("notification", Some(44))
        );
        assert_eq!(notification.notification(), Some(("like", Some(9))));
        assert_eq!(created.notification(), None, "not a notification");
        Ok(())
    }

    #[test]
    fn ephemeral_frames_have_no_id() -> Result<(), Error> {
        let reply = Frame::parse(THREAD_REPLY)?;
        assert_eq!(
            (reply.kind, reply.id, reply.post_id(), reply.body()),
            ("thread.reply", None, Some(10), "a reply")
        );
        for (text, kind) in [(AI_DELTA, "ai.delta"), (PONG, "pong"), (ERROR, "error")] {
            let frame = Frame::parse(text)?;
            assert_eq!((frame.kind, frame.id), (kind, None), "{text}");
            assert!(!frame.is_durable());
        }
        assert!(matches!(Frame::parse("{}"), Err(Error::Decode { .. })));
        Ok(())
    }

    #[test]
    fn close_codes_are_read() {
        let close = Message::Close(Some(CloseFrame {
            code: 1013.into(),
            reason: "".into(),
        }));
        assert_eq!(close_code(&close), Some(1013));
        assert_eq!(close_code(&Message::Close(None)), Some(1005));
        assert_eq!(close_code(&Message::text(PONG)), None);
    }

    #[test]
    fn ops_are_written_as_the_server_reads_them() {
        let text = |op: Op| op.to_message().into_text().map(|t| t.to_string()).ok();
        assert_eq!(
            text(Op::subscribe_thread(42)).as_deref(),
            Some(r#"{"op":"subscribe","topic":"thread:42"}"#)
        );
        assert_eq!(
            text(Op::unsubscribe_thread(7)).as_deref(),
            Some(r#"{"op":"unsubscribe","topic":"thread:7"}"#)
        );
        assert_eq!(text(Op::Ping).as_deref(), Some(r#"{"op":"ping"}"#));
        assert_eq!(
            text(Op::Auth { token: "t".into() }).as_deref(),
            Some(r#"{"op":"auth","token":"t"}"#)
        );
    }
}
