//! Errors as RFC 9457 problem documents: every failure an HTTP client sees has a status, a
//! stable `code`, a `detail`, and for validation errors the offending `field`.
//!
//! A failure of a dependency (PostgreSQL, Redis, an internal actor, Google's token endpoint) is
//! answered with its code's fixed detail ([`UNAVAILABLE_DETAIL`], [`INTERNAL_DETAIL`]), never
//! with the dependency's own error text: that text, with its whole cause chain, is logged once,
//! here, when the response is built.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use aisocial_actors::db_error::ReadError;
use aisocial_actors::db_writer::WriteError;
use aisocial_actors::error_chain::Chain;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `detail` of every `unavailable` (503) answered because a dependency failed: PostgreSQL
/// (unreachable, or a passing condition such as a lock timeout), Redis, an internal actor,
/// Google's token endpoint.
pub const UNAVAILABLE_DETAIL: &str = "a service this request depends on is unavailable; retry after Retry-After seconds (repeat a write with the same Idempotency-Key)";

/// The `detail` of every `internal` (500).
pub const INTERNAL_DETAIL: &str = "an internal error occurred; it has been logged";

/// The cause of a dependency failure, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body or a parameter breaks a documented rule.
    #[error("{detail}")]
    Validation {
        field: Option<String>,
        detail: String,
    },
    /// The request cannot be read at all (malformed JSON, bad cursor, …).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Forbidden, with a code of its own (`not_a_dev_account`).
    #[error("{detail}")]
    Denied { code: &'static str, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A resource only a protocol upgrade reaches (the websocket), asked for without one.
    #[error("{0}")]
    UpgradeRequired(String),
    /// Too many requests for this user or address in the current window.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64, limit: u32 },
    /// A queue for this caller is full (the AI's): try again after `retry_after_secs`.
    #[error("{detail}")]
    Busy {
        code: &'static str,
        detail: String,
        retry_after_secs: u64,
    },
    /// The service is draining, or a queue is full: `detail` says which (no dependency's
    /// text; a failed dependency is [`ApiError::Dependency`]).
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: u32,
    },
    /// A dependency (`what`) failed: `unavailable` with [`UNAVAILABLE_DETAIL`]; `source` goes
    /// to the log only.
    #[error("{UNAVAILABLE_DETAIL}")]
    Dependency {
        what: &'static str,
        retry_after_secs: u32,
        #[source]
        source: Cause,
    },
    #[error("{INTERNAL_DETAIL}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u32) -> Self {
        ApiError::Unavailable {
            code: "unavailable",
            detail: detail.into(),
            retry_after_secs,
        }
    }

    /// `what` (PostgreSQL, Redis, …) failed with `source`: 503 with the fixed detail.
    pub fn dependency(what: &'static str, source: impl Into<Cause>, retry_after_secs: u32) -> Self {
        ApiError::Dependency {
            what,
            retry_after_secs,
            source: source.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_failed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Denied { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UpgradeRequired(_) => "upgrade_required",
            ApiError::Unavailable { code, .. } | ApiError::Busy { code, .. } => code,
            ApiError::Dependency { .. } => "unavailable",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            WriteError::Invalid { field, detail } => ApiError::validation(field, detail),
            WriteError::Unauthorized(why) => ApiError::Unauthorized(why.into()),
            WriteError::Forbidden(why) => ApiError::Forbidden(why.into()),
            WriteError::Suspended => ApiError::Denied {
                code: "account_suspended",
                detail: "this account is suspended".into(),
            },
            WriteError::Blocked(why) => ApiError::Denied {
                code: "blocked",
                detail: why.into(),
            },
            WriteError::Conflict(why) => ApiError::Conflict(why.into()),
            WriteError::RefreshReused { .. } => ApiError::Unauthorized(
                "this refresh token was already used; the session is revoked, sign in again".into(),
            ),
            WriteError::Overloaded => ApiError::Unavailable {
                code: "overloaded",
                detail: "too many writes are waiting; retry shortly".into(),
                retry_after_secs: 1,
            },
            // The write may or may not have happened: a retry repeats the Idempotency-Key.
            e @ WriteError::Unavailable(_) => ApiError::dependency("PostgreSQL", e, 2),
            // Nothing was written: a retry may well succeed at once.
            e @ WriteError::Transient(_) => ApiError::dependency("PostgreSQL", e, 1),
            e @ WriteError::Failed(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::dependency("an internal actor", e, 1)
    }
}

impl From<ReadError> for ApiError {
    /// A lost or refused connection, no pooled connection in time, a read past its deadline,
    /// or a passing condition PostgreSQL reported (a statement cancelled at its timeout, a lock
    /// wait, a server starting or stopping) is the database being unavailable (503); any other
    /// error it reported about the statement is ours (500).
    fn from(e: ReadError) -> Self {
        match e.postgres() {
            Some(pg) if pg.as_db_error().is_some() => {
                if aisocial_actors::db_error::is_transient(pg) {
                    ApiError::dependency("PostgreSQL", e, 1)
                } else {
                    ApiError::Internal(anyhow::Error::new(e))
                }
            }
            _ => ApiError::dependency("PostgreSQL", e, 2),
        }
    }
}

/// An RFC 9457 problem document: every error this API answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// Always `about:blank`: `code` says what happened.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The HTTP status text.
    title: &'a str,
    status: u16,
    /// A stable snake_case word (`validation_failed`, `not_found`, `rate_limited`, …).
    code: &'a str,
    /// What went wrong, for people.
    detail: &'a str,
    /// The offending field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// The body of a problem document.
pub fn problem_body(status: StatusCode, code: &str, detail: &str, field: Option<&str>) -> String {
    let problem = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        code,
        detail,
        field,
    };
    serde_json::to_string(&problem).unwrap_or_else(|_| {
        format!(
            r#"{{"type":"about:blank","status":{},"code":"internal"}}"#,
            status.as_u16()
        )
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Denied { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::Unavailable { .. } | ApiError::Dependency { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited { .. } | ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The one place a request's failure is logged with its causes.
        match self {
            ApiError::Internal(e) => {
                tracing::error!(error = %Chain(e.as_ref()), "internal error");
            }
            ApiError::Dependency { what, source, .. } => {
                tracing::warn!(dependency = what, error = %Chain(source.as_ref()), "a dependency failed a request");
            }
            _ => {}
        }
        let detail = self.to_string();
        let field = match self {
            ApiError::Validation { field, .. } => field.as_deref(),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::UpgradeRequired(_) => {
                response.insert_header((header::UPGRADE, "websocket"));
                response.insert_header((header::CONNECTION, "Upgrade"));
            }
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::Dependency {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Busy {
                retry_after_secs, ..
            } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::RateLimited {
                retry_after_secs,
                limit,
            } => {
                let reset = retry_after_secs.to_string();
                response.insert_header((header::RETRY_AFTER, reset.clone()));
                response.insert_header(("ratelimit-limit", limit.to_string()));
                response.insert_header(("ratelimit-remaining", "0"));
                response.insert_header(("ratelimit-reset", reset));
            }
            _ => {}
        }
        response.body(problem_body(status, self.code(), &detail, field))
    }
}

/// Turns any error response that is not yet a problem document (405 from routing, errors raised
/// inside actix itself) into one, so clients see a single error format.
pub fn ensure_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this resource does not take that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send application/json"),
        s if s.is_server_error() => ("internal", INTERNAL_DETAIL),
        _ => ("bad_request", "the request could not be understood"),
    };
    let (req, res) = res.into_parts();
    let mut res = res.set_body(BoxBody::new(problem_body(status, code, detail, None)));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, res).map_into_right_body::<B>(),
    ))
}

#[cfg(test)]
mod tests {
    use aisocial_actors::db_error::PoolError;
    use aisocial_actors::db_writer::{WriteFailure, WriteUnavailable};

    use super::*;

    /// Status, `Retry-After` and the problem document of `e` as a client gets them.
    async fn answer(e: &ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.error_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, retry, body)
    }

    /// Every dependency failure is `unavailable` with the one fixed detail, whatever the
    /// dependency said (which goes to the log only).
    #[actix_web::test]
    async fn every_dependency_failure_answers_the_fixed_unavailable_detail() {
        let cases: Vec<(ApiError, &str)> = vec![
            (
                WriteError::Unavailable(WriteUnavailable::NoAnswer).into(),
                "2",
            ),
            (
                WriteError::Unavailable(WriteUnavailable::ShuttingDown).into(),
                "2",
            ),
            (ReadError::from(PoolError::TimedOut).into(), "2"),
            (
                ReadError::TimedOut(std::time::Duration::from_secs(3)).into(),
                "2",
            ),
            (actix::MailboxError::Closed.into(), "1"),
            (
                ApiError::dependency("Google's token endpoint", "secret upstream text", 5),
                "5",
            ),
        ];
        for (error, retry) in cases {
            let source = std::error::Error::source(&error).map(|s| Chain(s).to_string());
            let (status, retry_after, body) = answer(&error).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error:?}");
            assert_eq!(retry_after.as_deref(), Some(retry), "{error:?}");
            assert_eq!(body["code"], "unavailable", "{error:?}");
            assert_eq!(body["detail"], UNAVAILABLE_DETAIL, "{error:?}");
            let text = body.to_string();
            for leak in ["secret", "refused", "bb8", "Mailbox", "within"] {
                assert!(!text.contains(leak), "{leak:?} leaked: {text}");
            }
            assert!(
                source.is_some_and(|s| !s.is_empty()),
                "{error:?} lost its cause"
            );
        }
    }

    #[actix_web::test]
    async fn an_internal_error_answers_the_fixed_internal_detail() {
        for error in [
            ApiError::from(WriteError::Failed(WriteFailure::Inconsistent(
                "secret: the post was not inserted",
            ))),
            ApiError::Internal(anyhow::anyhow!("secret: a read failed")),
        ] {
            let (status, _, body) = answer(&error).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(body["code"], "internal");
            assert_eq!(body["detail"], INTERNAL_DETAIL);
            assert!(!body.to_string().contains("secret"), "{body}");
        }
    }

    #[actix_web::test]
    async fn a_full_write_queue_is_overloaded_not_a_dependency_failure() {
        let (status, retry, body) = answer(&WriteError::Overloaded.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["code"], "overloaded");
        assert_eq!(body["detail"], "too many writes are waiting; retry shortly");
    }
}
