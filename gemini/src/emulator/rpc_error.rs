//! Google's error bodies: `{"error": {"code", "message", "status", "details": [{"@type": ...}]}}`.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde_json::{Value, json};

use crate::wire::{ErrorEnvelope, ErrorStatus};

/// The message Google sends with a 503 when the model is busy.
pub const OVERLOADED: &str = "The model is overloaded. Please try again later.";

const TYPE_PREFIX: &str = "type.googleapis.com/google.rpc.";

/// One entry of a `google.rpc.BadRequest` detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The proto path (`generation_config.temperature`); empty for the request itself.
    pub field: String,
    pub description: String,
}

/// An error the emulator answers with, before any byte of a reply (or mid-stream).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: u16,
    pub status: &'static str,
    pub message: String,
    pub details: Vec<Value>,
}

impl RpcError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status: status_name(code),
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn with_detail(mut self, kind: &str, mut body: Value) -> Self {
        if let Value::Object(fields) = &mut body {
            fields.insert(
                "@type".into(),
                Value::String(format!("{TYPE_PREFIX}{kind}")),
            );
        }
        self.details.push(body);
        self
    }

    /// 400 with a `BadRequest` detail listing the violations.
    pub fn bad_request(message: impl Into<String>, violations: &[FieldViolation]) -> Self {
        let listed: Vec<Value> = violations
            .iter()
            .map(|violation| {
                if violation.field.is_empty() {
                    json!({"description": violation.description})
                } else {
                    json!({"field": violation.field, "description": violation.description})
                }
            })
            .collect();
        Self::new(400, message).with_detail("BadRequest", json!({"fieldViolations": listed}))
    }

    /// 403: the request carried no API key.
    pub fn no_api_key() -> Self {
        Self::new(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
        )
    }

    /// 400: the API key is not the one configured.
    pub fn api_key_invalid() -> Self {
        let message = "API key not valid. Please pass a valid API key.";
        Self::new(400, message)
            .with_detail(
                "ErrorInfo",
                json!({"reason": "API_KEY_INVALID", "domain": "googleapis.com",
                       "metadata": {"service": "generativelanguage.googleapis.com"}}),
            )
            .with_detail(
                "LocalizedMessage",
                json!({"locale": "en-US", "message": message}),
            )
    }

    /// 404: no such model (or the model does not support the method).
    pub fn model_not_found(model: &str, method: &str) -> Self {
        Self::new(
            404,
            format!(
                "models/{model} is not found for API version v1beta, or is not supported for \
                 {method}. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
        )
    }

    /// 404: a path the API does not have.
    pub fn no_such_method(path: &str) -> Self {
        Self::new(404, format!("Method not found: {path}"))
    }

    /// 503, the way Google says its model is busy.
    pub fn overloaded() -> Self {
        Self::new(503, OVERLOADED)
    }

    /// The error Google would send with this HTTP status, or with `message` when given.
    pub fn for_status(code: u16, message: Option<&str>) -> Self {
        let standard = match code {
            400 => "Request contains an invalid argument.",
            401 => {
                "Request had invalid authentication credentials. Expected OAuth 2 access token, \
                 login cookie or other valid authentication credential."
            }
            403 => "The caller does not have permission",
            404 => "Requested entity was not found.",
            429 => "Resource has been exhausted (e.g. check quota).",
            500 => {
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting"
            }
            503 => OVERLOADED,
            504 => "Deadline expired before operation could complete.",
            _ => "Unknown error.",
        };
        Self::new(code, message.unwrap_or(standard))
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorStatus {
                code: self.code,
                message: self.message.clone(),
                status: self.status.to_owned(),
                details: self.details.clone(),
            },
        }
    }

    /// The compact JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.envelope()).unwrap_or_default()
    }

    pub fn to_response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type("application/json; charset=UTF-8")
            .body(self.to_json())
    }
}

/// The canonical `google.rpc.Code` name Google pairs with an HTTP status.
pub fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_carry_their_type_and_the_request_level_violation_has_no_field() {
        let error = RpcError::bad_request(
            "bad",
            &[
                FieldViolation {
                    field: String::new(),
                    description: "top".into(),
                },
                FieldViolation {
                    field: "contents".into(),
                    description: "missing".into(),
                },
            ],
        );
        let body: Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        let detail = &body["error"]["details"][0];
        assert_eq!(detail["@type"], "type.googleapis.com/google.rpc.BadRequest");
        assert!(detail["fieldViolations"][0].get("field").is_none());
        assert_eq!(detail["fieldViolations"][1]["field"], "contents");
    }
}
