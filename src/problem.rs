//! Errors as RFC 9457 problem documents: every failure an HTTP client sees has a status, a
//! stable `code`, a `detail`, and for validation errors the offending `field`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use aisocial_actors::db_writer::WriteError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

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
    /// A dependency is down, the service is draining, or a queue is full.
    #[error("{detail}")]
    Unavailable {
        code: &'static str,
        detail: String,
        retry_after_secs: u32,
    },
    #[error("internal error")]
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

    fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_failed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UpgradeRequired(_) => "upgrade_required",
            ApiError::Unavailable { code, .. } | ApiError::Busy { code, .. } => code,
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
            WriteError::Conflict(why) => ApiError::Conflict(why.into()),
            WriteError::RefreshReused { .. } => ApiError::Unauthorized(
                "this refresh token was already used; the session is revoked, sign in again".into(),
            ),
            WriteError::Overloaded => ApiError::Unavailable {
                code: "overloaded",
                detail: "too many writes are waiting; retry shortly".into(),
                retry_after_secs: 1,
            },
            WriteError::Unavailable(why) => ApiError::unavailable(
                format!(
                    "the database is unavailable ({why}); the write may not have happened: retry with the same Idempotency-Key"
                ),
                2,
            ),
            WriteError::Transient(why) => ApiError::unavailable(
                format!(
                    "the database could not make this write now ({why}); nothing was written: retry"
                ),
                1,
            ),
            WriteError::Failed(why) => ApiError::Internal(anyhow::anyhow!("write failed: {why}")),
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::unavailable(format!("an internal actor is unavailable ({e})"), 1)
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
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } | ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
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
        s if s.is_server_error() => ("internal", "an internal error occurred"),
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

/// A failed read: a lost or refused connection, or a passing condition PostgreSQL reported (a
/// statement cancelled at its timeout, a lock wait, a server starting or stopping), is the
/// database being unavailable (503); any other error it reported about the statement is ours
/// (500).
pub fn read_error(e: tokio_postgres::Error) -> ApiError {
    if e.as_db_error().is_none() {
        ApiError::unavailable(format!("the database is unavailable ({e})"), 2)
    } else if aisocial_actors::db_error::is_transient(&e) {
        let why = e.as_db_error().map_or("", |db| db.message());
        ApiError::unavailable(format!("the database could not answer now ({why})"), 1)
    } else {
        ApiError::Internal(anyhow::Error::new(e).context("a read failed"))
    }
}

/// Redis (tickets, sign-in flow state) did not answer.
pub fn redis_error<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::unavailable(format!("the session store (Redis) is unavailable ({e})"), 2)
}

/// No pooled connection could be had in time.
pub fn pool_error<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::unavailable(format!("the database is unavailable ({e})"), 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_write_failure_is_503_with_retry_after_and_a_real_one_500() {
        let transient = ApiError::from(WriteError::Transient(
            "canceling statement due to lock timeout".into(),
        ));
        let response = transient.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("1"))
        );
        assert_eq!(transient.code(), "unavailable");
        let failed = ApiError::from(WriteError::Failed("a check constraint".into()));
        assert_eq!(failed.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
