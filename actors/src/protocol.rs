//! The websocket wire format (v1): the only module that knows how frames look as JSON.
//!
//! Server → client frames are `{"type": …, "id": …, "data": …}` (`id` only on durable events);
//! client → server frames are `{"op": …}` and are parsed into the closed set [`ClientOp`].

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, PostId, UserId};

/// The largest client frame accepted; larger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What a client may ask for over its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    Subscribe(Topic),
    Unsubscribe(Topic),
    Ping,
    /// A new access token for this socket, before its current one expires.
    Auth {
        token: String,
    },
}

/// A topic a session can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Replies anywhere in the thread whose root post is this one.
    Thread(PostId),
}

impl Topic {
    fn parse(raw: &str) -> Result<Self, FrameError> {
        let bad = || FrameError::new("invalid_topic", "topics look like thread:<post id>");
        let id = raw.strip_prefix("thread:").ok_or_else(bad)?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let id: i64 = id.parse().map_err(|_| bad())?;
        if id <= 0 {
            return Err(bad());
        }
        Ok(Topic::Thread(PostId(id)))
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Thread(id) => write!(f, "thread:{id}"),
        }
    }
}

/// Why a client frame was refused; sent back as an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub detail: String,
}

impl FrameError {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum RawOp {
    Subscribe { topic: String },
    Unsubscribe { topic: String },
    Ping {},
    Auth { token: String },
}

/// Parses one client text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientOp, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new("invalid_json", format!("the frame is not JSON: {e}")))?;
    let op = value
        .get("op")
        .and_then(|op| op.as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            FrameError::new("invalid_frame", "a frame is an object with a string \"op\"")
        })?;
    if !matches!(op.as_str(), "subscribe" | "unsubscribe" | "ping" | "auth") {
        return Err(FrameError::new(
            "unknown_op",
            "op is one of subscribe, unsubscribe, ping, auth",
        ));
    }
    let raw: RawOp = serde_json::from_value(value)
        .map_err(|e| FrameError::new("invalid_frame", format!("{op}: {e}")))?;
    Ok(match raw {
        RawOp::Subscribe { topic } => ClientOp::Subscribe(Topic::parse(&topic)?),
        RawOp::Unsubscribe { topic } => ClientOp::Unsubscribe(Topic::parse(&topic)?),
        RawOp::Ping {} => ClientOp::Ping,
        RawOp::Auth { token } => ClientOp::Auth { token },
    })
}

/// The kinds of durable events, as stored in `events.kind` and sent as `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    PostCreated,
    PostDeleted,
    Notification,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PostCreated => "post.created",
            EventKind::PostDeleted => "post.deleted",
            EventKind::Notification => "notification",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "post.created" => Some(EventKind::PostCreated),
            "post.deleted" => Some(EventKind::PostDeleted),
            "notification" => Some(EventKind::Notification),
            _ => None,
        }
    }
}

/// How a resume request was answered, in `hello.resume.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeStatus {
    /// No `since` was given: live events from now on.
    Fresh,
    /// Every durable event after `since` was replayed, then live.
    Resumed,
    /// `since` is outside the retention window (or unknown): refetch over HTTP.
    ResyncRequired,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resume {
    pub since: Option<EventId>,
    pub replayed: u64,
    pub status: ResumeStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct HelloUser {
    pub id: UserId,
    pub handle: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    pub session_id: String,
    pub user: HelloUser,
    pub heartbeat_ms: u64,
    pub resume: Resume,
}

#[derive(Serialize)]
struct Frame<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<EventId>,
    data: &'a T,
}

fn frame<T: Serialize>(kind: &str, id: Option<EventId>, data: &T) -> ByteString {
    // Serialising plain structs, strings, numbers and `serde_json::Value`s into a Vec cannot
    // fail: every map key is a string.
    match serde_json::to_string(&Frame { kind, id, data }) {
        Ok(text) => ByteString::from(text),
        Err(e) => error_frame("internal", &format!("could not encode a {kind} frame: {e}")),
    }
}

pub fn hello_frame(hello: &Hello) -> ByteString {
    frame("hello", None, hello)
}

/// A durable event: serialised once and shared by every recipient.
pub fn durable_frame(kind: EventKind, id: EventId, data: &serde_json::Value) -> ByteString {
    frame(kind.as_str(), Some(id), data)
}

/// `thread.reply`: an ephemeral frame carrying the reply post.
pub fn thread_reply_frame(data: &serde_json::Value) -> ByteString {
    frame("thread.reply", None, data)
}

/// `presence`: a followee came online or went offline.
pub fn presence_frame(user: UserId, handle: &str, online: bool) -> ByteString {
    #[derive(Serialize)]
    struct PresenceData<'a> {
        user: HelloUser,
        status: &'a str,
    }
    let data = PresenceData {
        user: HelloUser {
            id: user,
            handle: handle.to_owned(),
        },
        status: if online { "online" } else { "offline" },
    };
    frame("presence", None, &data)
}

/// `ai.delta`: the next piece of an AI answer being written. `reset` says the text so far was
/// discarded (a retried call wrote something else) and this delta starts it again.
pub fn ai_delta_frame(
    request_id: &str,
    post_id: Option<PostId>,
    index: u32,
    text: &str,
    reset: bool,
) -> ByteString {
    #[derive(Serialize)]
    struct AiDelta<'a> {
        request_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        post_id: Option<PostId>,
        index: u32,
        text: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        reset: bool,
    }
    frame(
        "ai.delta",
        None,
        &AiDelta {
            request_id,
            post_id,
            index,
            text,
            reset,
        },
    )
}

/// Token counts of one AI answer, as `ai.done` reports them.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct AiUsage {
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
}

/// `ai.done`: the whole answer. For an `@ai` mention, `reply_id` is the stored reply post.
pub fn ai_done_frame(
    request_id: &str,
    post_id: Option<PostId>,
    reply_id: Option<PostId>,
    text: &str,
    usage: AiUsage,
) -> ByteString {
    #[derive(Serialize)]
    struct AiDone<'a> {
        request_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        post_id: Option<PostId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_id: Option<PostId>,
        text: &'a str,
        usage: AiUsage,
    }
    frame(
        "ai.done",
        None,
        &AiDone {
            request_id,
            post_id,
            reply_id,
            text,
            usage,
        },
    )
}

/// `ai.error`: the answer could not be written (`code` says why: `declined`, `unavailable`,
/// `quota_exhausted`, `rejected`, `interrupted`).
pub fn ai_error_frame(
    request_id: &str,
    post_id: Option<PostId>,
    code: &str,
    detail: &str,
) -> ByteString {
    #[derive(Serialize)]
    struct AiError<'a> {
        request_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        post_id: Option<PostId>,
        code: &'a str,
        detail: &'a str,
    }
    frame(
        "ai.error",
        None,
        &AiError {
            request_id,
            post_id,
            code,
            detail,
        },
    )
}

/// The close code of a socket whose access token expired without being renewed in-band.
pub const TOKEN_EXPIRED: u16 = 4001;

/// The close code of a socket whose account was suspended (it must not reconnect).
pub const ACCOUNT_SUSPENDED: u16 = 4003;

/// `auth.ok`: the socket now runs on the token it was sent, which expires in `expires_in`
/// seconds.
pub fn auth_ok_frame(expires_in: u64) -> ByteString {
    #[derive(Serialize)]
    struct AuthOk {
        expires_in: u64,
    }
    frame("auth.ok", None, &AuthOk { expires_in })
}

pub fn pong_frame() -> ByteString {
    ByteString::from_static(r#"{"type":"pong","data":{}}"#)
}

/// `subscribed` / `unsubscribed`: the answer to a topic request.
pub fn topic_frame(subscribed: bool, topic: Topic) -> ByteString {
    #[derive(Serialize)]
    struct TopicData {
        topic: String,
    }
    let kind = if subscribed {
        "subscribed"
    } else {
        "unsubscribed"
    };
    frame(
        kind,
        None,
        &TopicData {
            topic: topic.to_string(),
        },
    )
}

pub fn error_frame(code: &str, detail: &str) -> ByteString {
    #[derive(Serialize)]
    struct ErrorData<'a> {
        code: &'a str,
        detail: &'a str,
    }
    let data = ErrorData { code, detail };
    match serde_json::to_string(&Frame {
        kind: "error",
        id: None,
        data: &data,
    }) {
        Ok(text) => ByteString::from(text),
        Err(_) => ByteString::from_static(r#"{"type":"error","data":{"code":"internal"}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<ClientOp, &str>) {
        let got = parse_client_frame(input).map_err(|e| e.code);
        assert_eq!(got, expect, "{input}");
    }

    #[test]
    fn client_frames_parse_into_a_closed_set() {
        check(r#"{"op":"ping"}"#, Ok(ClientOp::Ping));
        check(
            r#"{"op":"subscribe","topic":"thread:42"}"#,
            Ok(ClientOp::Subscribe(Topic::Thread(PostId(42)))),
        );
        check(
            r#"{"op":"unsubscribe","topic":"thread:7"}"#,
            Ok(ClientOp::Unsubscribe(Topic::Thread(PostId(7)))),
        );
        check("", Err("invalid_json"));
        check("{", Err("invalid_json"));
        check("[]", Err("invalid_frame"));
        check(r#"{"op":5}"#, Err("invalid_frame"));
        check(r#"{"op":"shutdown"}"#, Err("unknown_op"));
        check(
            r#"{"op":"auth","token":"abc"}"#,
            Ok(ClientOp::Auth {
                token: "abc".into(),
            }),
        );
        check(r#"{"op":"auth"}"#, Err("invalid_frame"));
        check(r#"{"op":"auth","token":5}"#, Err("invalid_frame"));
        check(r#"{"op":"ping","x":1}"#, Err("invalid_frame"));
        check(r#"{"op":"subscribe"}"#, Err("invalid_frame"));
        check(
            r#"{"op":"subscribe","topic":"user:1"}"#,
            Err("invalid_topic"),
        );
        check(
            r#"{"op":"subscribe","topic":"thread:"}"#,
            Err("invalid_topic"),
        );
        check(
            r#"{"op":"subscribe","topic":"thread:-1"}"#,
            Err("invalid_topic"),
        );
        check(
            r#"{"op":"subscribe","topic":"thread:0"}"#,
            Err("invalid_topic"),
        );
        check(
            r#"{"op":"subscribe","topic":"thread:99999999999999999999"}"#,
            Err("invalid_topic"),
        );
    }

    #[test]
    fn frames_have_the_documented_shape() {
        let f = durable_frame(
            EventKind::PostCreated,
            EventId(9),
            &serde_json::json!({"id": 1}),
        );
        assert_eq!(&*f, r#"{"type":"post.created","id":9,"data":{"id":1}}"#);
        assert_eq!(
            &*error_frame("x", "a \"b\""),
            r#"{"type":"error","data":{"code":"x","detail":"a \"b\""}}"#
        );
        assert_eq!(
            &*auth_ok_frame(900),
            r#"{"type":"auth.ok","data":{"expires_in":900}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&pong_frame()).unwrap_or_default();
        assert_eq!(v["type"], "pong");
    }
}

/// Property tests of the frame parser: whatever a client sends, it answers `Ok` or a
/// `FrameError`, never a panic; well-formed operations always parse to what they say.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Strings shaped like frames: JSON objects with a few likely keys and values, near misses
    /// included, so the cases reach past the JSON syntax check.
    fn framelike() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("op".to_owned()),
            Just("topic".to_owned()),
            Just("since".to_owned()),
            "[a-z]{1,8}",
        ];
        let value = prop_oneof![
            Just("\"subscribe\"".to_owned()),
            Just("\"unsubscribe\"".to_owned()),
            Just("\"ping\"".to_owned()),
            "\"thread:[0-9]{0,25}\"",
            "\"[ -~]{0,40}\"",
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:?}")),
            Just("null".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
        ];
        proptest::collection::vec((key, value), 0..4).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = parse_client_frame(&text);
        }

        #[test]
        fn framelike_objects_never_panic(text in framelike()) {
            if let Err(e) = parse_client_frame(&text) {
                prop_assert!(!e.code.is_empty() && !e.detail.is_empty());
            }
        }

        #[test]
        fn well_formed_subscriptions_parse(id in 1i64..=i64::MAX, unsubscribe in any::<bool>()) {
            let op = if unsubscribe { "unsubscribe" } else { "subscribe" };
            let frame = format!("{{\"op\":\"{op}\",\"topic\":\"thread:{id}\"}}");
            let parsed = parse_client_frame(&frame);
            prop_assert!(
                matches!(
                    parsed,
                    Ok(ClientOp::Subscribe(_)) | Ok(ClientOp::Unsubscribe(_))
                ),
                "{frame}: {parsed:?}"
            );
        }
    }
}
