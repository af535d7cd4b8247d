//! `JsonBody<T>`: the JSON request-body extractor every route uses. Wrong content type → 415,
//! too large → 413, not JSON (or not UTF-8) → 400 `invalid_json`, JSON of the wrong shape →
//! 422 `validation_failed` naming the offending field by its path.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The largest JSON body any route accepts.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// An optional integer that JSON may also spell as an integral float (`5.0`): JSON Schema
/// calls both integers.
pub fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole)
        .transpose()
}

/// [`integral`] for a field that may be left out but, when sent, is a number (`null` is
/// refused: the document does not allow it).
pub fn present_integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    whole(serde_json::Number::deserialize(d)?).map(Some)
}

fn whole<E: serde::de::Error>(number: serde_json::Number) -> Result<i64, E> {
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(E::custom(format!(
            "invalid value: {number}, expected an integer id"
        ))),
    }
}

/// Parses `bytes` as `T`, naming the field at fault. Every body of this API is a JSON object:
/// an array is refused even where serde would read a struct from one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::Validation {
            field: None,
            detail: "the body is a JSON object, not an array".into(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let message = inner.to_string();
            // An unknown or missing field names itself; otherwise the path says where.
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| message.strip_prefix(p))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned);
            let field = named.or_else(|| (path != ".").then_some(path));
            ApiError::Validation {
                field,
                detail: message,
            }
        } else {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::bad_request("invalid_json", format!("trailing data after the JSON: {e}"))
    })?;
    Ok(value)
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as Content-Type: application/json".into(),
                ));
            }
            if let Some(length) = declared.filter(|l| *l > MAX_JSON_BYTES) {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the body is {length} bytes; at most {MAX_JSON_BYTES} are accepted"
                )));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
                if body.len() + chunk.len() > MAX_JSON_BYTES {
                    return Err(ApiError::PayloadTooLarge(format!(
                        "the body is larger than {MAX_JSON_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(JsonBody)
        })
    }
}

/// An optional JSON body, already read whole (`web::Bytes`): none at all (empty, whatever the
/// content type) or a JSON `null` (what the document's nullable body allows) is `None`;
/// otherwise the same rules as [`JsonBody`] (415, 413, 400, 422).
pub fn optional_json<T: DeserializeOwned>(
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !is_json(req) {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as Content-Type: application/json".into(),
        ));
    }
    if bytes.len() > MAX_JSON_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; at most {MAX_JSON_BYTES} are accepted",
            bytes.len()
        )));
    }
    if bytes.trim_ascii() == b"null" {
        return Ok(None);
    }
    parse(bytes).map(Some)
}

/// A text field that must be 1 to `max` characters after trimming, and at most `max` as sent
/// (the documented `maxLength`, which a schema cannot state "after trimming"), without NUL: the
/// trimmed text, or a 422 naming `field` and calling the value `noun` ("a post", "a prompt").
pub fn trimmed_text<'a>(
    field: &str,
    noun: &str,
    raw: &'a str,
    max: usize,
) -> Result<&'a str, ApiError> {
    let sent = raw.chars().count();
    if sent > max {
        return Err(ApiError::validation(
            field,
            format!("{noun} is at most {max} characters (this one has {sent})"),
        ));
    }
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > max {
        return Err(ApiError::validation(
            field,
            format!("{noun} is 1 to {max} characters after trimming (this one has {chars})"),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::validation(
            field,
            format!("{noun} cannot contain NUL characters"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: i64,
    }

    fn check(input: &str, expect: (&str, Option<&str>)) {
        match parse::<Probe>(input.as_bytes()) {
            Ok(p) => panic!("{input} parsed: {p:?}"),
            Err(ApiError::Validation { field, .. }) => {
                assert_eq!(("validation_failed", field.as_deref()), expect, "{input}")
            }
            Err(ApiError::BadRequest { code, .. }) => assert_eq!((code, None), expect, "{input}"),
            Err(other) => panic!("{input}: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        check(r#"{"name": 5}"#, ("validation_failed", Some("name")));
        check(r#"{}"#, ("validation_failed", Some("name")));
        check(r#"{"name":"a","x":1}"#, ("validation_failed", Some("x")));
        check(
            r#"{"name":"a","inner":{"n":"x"}}"#,
            ("validation_failed", Some("inner.n")),
        );
        check(r#"{"name":"a"} trailing"#, ("invalid_json", None));
        check(r#"{"name":"#, ("invalid_json", None));
        check("", ("invalid_json", None));
        check("[1]", ("validation_failed", None));
        check(" [null, null]", ("validation_failed", None));
    }

    #[test]
    fn text_is_trimmed_and_bounded_as_sent_and_after_trimming() {
        assert_eq!(
            trimmed_text("body", "a post", "  hi \n", 10).ok(),
            Some("hi")
        );
        assert!(trimmed_text("body", "a post", "   ", 10).is_err());
        assert!(trimmed_text("body", "a post", &"é".repeat(10), 10).is_ok());
        assert!(
            trimmed_text("body", "a post", &format!("{} ", "é".repeat(10)), 10).is_err(),
            "the documented maxLength holds for the text as sent"
        );
        assert!(trimmed_text("body", "a post", "a\0b", 10).is_err());
    }
}
