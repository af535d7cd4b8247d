//! Scripted next responses: "the next 3 requests get 503", "the next gets 429 with retryDelay 1.5s".
//!
//! Each generation request (`generateContent` or `streamGenerateContent`, not `countTokens`) that
//! passes authentication and validation takes the first entry of the queue, if any.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::quota::QuotaKind;

/// HTTP statuses a script may ask for (200 is an ordinary answer).
pub const SCRIPTABLE_STATUSES: [u16; 9] = [200, 400, 401, 403, 404, 429, 500, 503, 504];

/// One scripted answer. JSON: `{"status": 429, "retry_delay": "1.5s"}`, `{"status": 503}`,
/// `{"stall": true}`, `{"status": 200, "delay_ms": 2000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptedResponse {
    /// The HTTP status answered; 200 means an ordinary generation.
    pub status: u16,
    /// Replaces the standard message of the status.
    pub message: Option<String>,
    /// For 429: the `RetryInfo.retryDelay` sent verbatim (`"1.5s"`, `"1500ms"`); absent, the
    /// 429 has no `RetryInfo`.
    pub retry_delay: Option<String>,
    /// For 429: which quota the body names (default `rpm`).
    pub quota: Option<QuotaKind>,
    /// For 429: no details at all.
    pub bare: bool,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// For a 200 stream: stall after the first chunk (a plain `generateContent` never answers).
    pub stall: bool,
}

impl Default for ScriptedResponse {
    fn default() -> Self {
        Self {
            status: 200,
            message: None,
            retry_delay: None,
            quota: None,
            bare: false,
            delay_ms: 0,
            stall: false,
        }
    }
}

impl ScriptedResponse {
    /// An ordinary answer (useful between failures).
    pub fn ok() -> Self {
        Self::default()
    }

    /// The standard error body of this status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// A per-minute quota 429 with `RetryInfo.retryDelay` set to `retry_delay` (`"1.5s"`).
    pub fn quota_exceeded(retry_delay: &str) -> Self {
        Self {
            status: 429,
            retry_delay: Some(retry_delay.to_owned()),
            ..Self::default()
        }
    }

    /// A stream that stalls after its first chunk.
    pub fn stall() -> Self {
        Self {
            stall: true,
            ..Self::default()
        }
    }

    /// The same answer, after a wait.
    pub fn after(self, delay: Duration) -> Self {
        Self {
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            ..self
        }
    }

    pub fn validate(&self) -> Result<(), ScriptError> {
        if !SCRIPTABLE_STATUSES.contains(&self.status) {
            return Err(ScriptError::UnsupportedStatus(self.status));
        }
        if let Some(delay) = &self.retry_delay {
            parse_duration(delay)?;
        }
        Ok(())
    }

    /// The parsed `retry_delay`, with its text.
    pub fn retry(&self) -> Option<(Duration, String)> {
        let text = self.retry_delay.as_ref()?;
        parse_duration(text).ok().map(|delay| (delay, text.clone()))
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

/// A script entry the emulator cannot play.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("status {0} cannot be scripted (use one of {SCRIPTABLE_STATUSES:?})")]
    UnsupportedStatus(u16),
    #[error("retry_delay {0:?} is not a duration such as \"1.5s\" or \"1500ms\"")]
    BadDuration(String),
}

/// A protobuf-style duration: `"27s"`, `"1.5s"`, `"1500ms"`.
pub fn parse_duration(text: &str) -> Result<Duration, ScriptError> {
    let bad = || ScriptError::BadDuration(text.to_owned());
    let trimmed = text.trim();
    let (number, scale) = if let Some(millis) = trimmed.strip_suffix("ms") {
        (millis, 1e-3)
    } else if let Some(seconds) = trimmed.strip_suffix('s') {
        (seconds, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_from_json_with_defaults() {
        let entries: Vec<ScriptedResponse> = serde_json::from_str(
            r#"[{"status":503},{"status":429,"retry_delay":"1.5s"},{"stall":true}]"#,
        )
        .unwrap();
        assert_eq!(entries[0], ScriptedResponse::status(503));
        assert_eq!(entries[1], ScriptedResponse::quota_exceeded("1.5s"));
        assert_eq!(entries[2], ScriptedResponse::stall());
        assert!(entries.iter().all(|e| e.validate().is_ok()));
    }

    #[test]
    fn durations_and_statuses_are_checked() {
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45.5s"), Ok(Duration::from_millis(45_500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(ScriptedResponse::status(418).validate().is_err());
    }
}
