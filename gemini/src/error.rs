//! Gemini failures and what to do about each: retry, pause, or give up.
//!
//! The classes follow `gemini-api.md`: 400/401/404 are never retried, 403 means the key is
//! wrong (readiness shows the AI as misconfigured), 429 is a quota (its `RetryInfo.retryDelay`
//! says how long to pause; a per-day quota, or a delay beyond five minutes, is terminal), and
//! 5xx, transport failures, timeouts and stalled streams are retried with backoff.

use std::time::Duration;

use serde_json::Value;

use crate::wire::ErrorStatus;

/// Beyond this, a 429's delay is treated as terminal (as Gemini CLI does).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// A per-minute quota that names no delay, or a bare 429: wait for the minute to pass.
pub const PER_MINUTE_DEFAULT_DELAY: Duration = Duration::from_secs(60);
/// Delays named by the upstream are believed up to this (beyond, a day is as good as never).
const LONGEST_DELAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum GeminiError {
    #[error("Gemini answered {code} {status}: {message}")]
    Api {
        code: u16,
        status: String,
        message: String,
        /// From `RetryInfo.retryDelay`, or the message's "Please retry in Xs.".
        retry_delay: Option<Duration>,
        /// Which quota a 429 names.
        quota: Option<QuotaScope>,
    },
    #[error("could not reach Gemini: {0}")]
    Transport(String),
    #[error("Gemini did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the Gemini stream stalled for {0:?}")]
    Stalled(Duration),
    #[error("the Gemini stream ended before its last chunk")]
    Truncated,
    #[error("unreadable Gemini reply: {0}")]
    Malformed(String),
    #[error("the Gemini client is misconfigured: {0}")]
    Config(String),
}

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again after a jittered backoff (5xx, transport, timeouts, stalls).
    Retry,
    /// A quota: pause every call for `delay`, then try again.
    Pause(Duration),
    /// A quota that will not recover soon (per day, or a delay beyond five minutes).
    QuotaExhausted,
    /// The key or project is refused (403): no call will succeed until an operator acts.
    Misconfigured,
    /// This request is wrong (400, 404, …): report it, never retry.
    Fatal,
}

/// Which limit a 429 names, from its `QuotaFailure` quota ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    PerMinute,
    PerDay,
    Unknown,
}

impl GeminiError {
    /// Reads an error envelope's status (before a stream or in the middle of one).
    pub fn from_status(code_hint: u16, status: ErrorStatus) -> Self {
        let code = match (status.code, code_hint) {
            (0, 0) => code_for_status(&status.status),
            (0, hint) => hint,
            (code, _) => code,
        };
        if code == 400 && has_reason(&status.details, "API_KEY_INVALID") {
            // A wrong key is answered 400, but it is the operator's to fix, not the request's.
            return Self::Api {
                code: 401,
                status: status.status,
                message: status.message,
                retry_delay: None,
                quota: None,
            };
        }
        let retry_delay =
            retry_delay(&status.details).or_else(|| delay_in_message(&status.message));
        let quota = (code == 429).then(|| quota_scope(&status.details));
        Self::Api {
            code,
            status: status.status,
            message: status.message,
            retry_delay,
            quota,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api {
                code: 429,
                retry_delay,
                quota,
                ..
            } => match (quota, retry_delay) {
                (Some(QuotaScope::PerDay), _) => ErrorClass::QuotaExhausted,
                (_, Some(delay)) if *delay > MAX_RETRY_DELAY => ErrorClass::QuotaExhausted,
                (_, Some(delay)) => ErrorClass::Pause(*delay),
                // A per-minute quota without a delay, or a bare 429 (most likely a per-minute
                // quota too): the whole pool waits for the minute to pass.
                (_, None) => ErrorClass::Pause(PER_MINUTE_DEFAULT_DELAY),
            },
            Self::Api {
                code: 401 | 403, ..
            } => ErrorClass::Misconfigured,
            Self::Api { code, .. } if *code >= 500 => ErrorClass::Retry,
            Self::Api { .. } | Self::Config(_) => ErrorClass::Fatal,
            // A reply that could not be read (a proxy's page, a cut body) may read next time.
            Self::Transport(_)
            | Self::Timeout(_)
            | Self::Stalled(_)
            | Self::Truncated
            | Self::Malformed(_) => ErrorClass::Retry,
        }
    }

    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api { code: 400, .. } => "bad_request",
            Self::Api { code: 401, .. } => "api_key_invalid",
            Self::Api { code: 403, .. } => "permission_denied",
            Self::Api { code: 404, .. } => "not_found",
            Self::Api { code: 429, .. } => "resource_exhausted",
            Self::Api { code: 503, .. } => "unavailable",
            Self::Api { code: 504, .. } => "deadline_exceeded",
            Self::Api { code, .. } if *code >= 500 => "server_error",
            Self::Api { .. } => "client_error",
            Self::Transport(_) => "transport",
            Self::Timeout(_) => "timeout",
            Self::Stalled(_) => "stalled",
            Self::Truncated => "truncated",
            Self::Malformed(_) => "malformed",
            Self::Config(_) => "config",
        }
    }
}

/// The HTTP code of a canonical status name, for an error that names no code.
fn code_for_status(status: &str) -> u16 {
    match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

fn has_reason(details: &[Value], reason: &str) -> bool {
    details.iter().any(|d| {
        detail_type(d).ends_with("google.rpc.ErrorInfo")
            && d.get("reason").and_then(Value::as_str) == Some(reason)
    })
}

fn detail_type(detail: &Value) -> &str {
    detail
        .get("@type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .find(|d| detail_type(d).ends_with("google.rpc.RetryInfo"))
        .and_then(|d| d.get("retryDelay"))
        .and_then(|d| match d {
            Value::String(s) => parse_duration(s),
            // The proto JSON form is a string; tolerate {"seconds": n, "nanos": m} too.
            Value::Object(o) => {
                let seconds = o.get("seconds").and_then(value_as_f64).unwrap_or(0.0);
                let nanos = o.get("nanos").and_then(value_as_f64).unwrap_or(0.0);
                let total = (seconds + nanos / 1e9).min(LONGEST_DELAY.as_secs_f64());
                Duration::try_from_secs_f64(total).ok()
            }
            _ => None,
        })
}

fn value_as_f64(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn quota_scope(details: &[Value]) -> QuotaScope {
    let ids: Vec<&str> = details
        .iter()
        .filter(|d| detail_type(d).ends_with("google.rpc.QuotaFailure"))
        .filter_map(|d| d.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
        .collect();
    if ids.iter().any(|id| id.contains("PerDay")) {
        QuotaScope::PerDay
    } else if ids.iter().any(|id| id.contains("PerMinute")) {
        QuotaScope::PerMinute
    } else {
        QuotaScope::Unknown
    }
}

/// "… Please retry in 26.5s." (the message carries the delay when the details do not).
fn delay_in_message(message: &str) -> Option<Duration> {
    let rest = &message[message.find("retry in ")? + "retry in ".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c.is_ascii_alphabetic()))
        .unwrap_or(rest.len());
    parse_duration(rest[..end].trim_end_matches('.'))
}

/// A protobuf duration string: `"27s"`, `"45.837906927s"`, or in milliseconds, `"500ms"`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (number, scale) = if let Some(ms) = raw.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = raw.strip_suffix('s') {
        (s, 1.0)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0)
        .then(|| Duration::try_from_secs_f64((value * scale).min(LONGEST_DELAY.as_secs_f64())).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorEnvelope;

    fn parse(code: u16, body: &str) -> GeminiError {
        let envelope: ErrorEnvelope = serde_json::from_str(body).unwrap();
        GeminiError::from_status(code, envelope.error)
    }

    #[test]
    fn durations_in_every_spelling() {
        assert_eq!(parse_duration("27s"), Some(Duration::from_secs(27)));
        assert_eq!(
            parse_duration("45.837906927s").map(|d| d.as_millis()),
            Some(45_837)
        );
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(
            parse_duration("1e30s"),
            Some(LONGEST_DELAY),
            "no overflow downstream"
        );
    }

    #[test]
    fn a_per_minute_429_pauses_for_its_retry_delay() {
        let error = parse(
            429,
            r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
             "message": "You exceeded your current quota.\nPlease retry in 26.5s.",
             "details": [
              {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
              {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]}}"#,
        );
        assert_eq!(error.class(), ErrorClass::Pause(Duration::from_secs(27)));
    }

    #[test]
    fn a_per_day_429_is_terminal_and_a_bare_one_is_retried() {
        let per_day = parse(
            429,
            r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
             "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                         {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}}"#,
        );
        assert_eq!(per_day.class(), ErrorClass::QuotaExhausted);
        let bare = parse(
            429,
            r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted (e.g. check quota)."}}"#,
        );
        assert_eq!(bare.class(), ErrorClass::Pause(PER_MINUTE_DEFAULT_DELAY));
        let in_message = parse(
            429,
            r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded. Please retry in 1.5s."}}"#,
        );
        assert_eq!(
            in_message.class(),
            ErrorClass::Pause(Duration::from_millis(1500))
        );
    }

    #[test]
    fn client_errors_are_never_retried_and_server_errors_are() {
        let bad = parse(
            400,
            r#"{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}}"#,
        );
        assert_eq!(bad.class(), ErrorClass::Fatal);
        let denied = parse(
            403,
            r#"{"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}}"#,
        );
        assert_eq!(denied.class(), ErrorClass::Misconfigured);
        let missing = parse(
            404,
            r#"{"error": {"code": 404, "status": "NOT_FOUND", "message": "no model"}}"#,
        );
        assert_eq!(missing.class(), ErrorClass::Fatal);
        for code in [500, 503, 504] {
            let error = parse(
                code,
                &format!(r#"{{"error": {{"code": {code}, "status": "X", "message": "m"}}}}"#),
            );
            assert_eq!(error.class(), ErrorClass::Retry);
        }
        assert_eq!(GeminiError::Truncated.class(), ErrorClass::Retry);
        let wrong_key = parse(
            400,
            r#"{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid. Please pass a valid API key.",
             "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}"#,
        );
        assert_eq!(wrong_key.class(), ErrorClass::Misconfigured);
        let nameless = parse(
            0,
            r#"{"error": {"status": "UNAVAILABLE", "message": "overloaded"}}"#,
        );
        assert_eq!(nameless.class(), ErrorClass::Retry);
    }
}
