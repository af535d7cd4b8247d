//! Opaque list cursors: clients pass back what we gave them and never build one themselves.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::problem::ApiError;

const PREFIX: &str = "v1:";

/// A position in a list ordered by id, newest first: the next page holds ids below this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub before_id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{}", self.before_id))
    }

    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let invalid =
            || ApiError::bad_request("invalid_cursor", "cursor is not one this API gave out");
        if raw.len() > 64 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let id = text.strip_prefix(PREFIX).ok_or_else(invalid)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let before_id: i64 = id.parse().map_err(|_| invalid())?;
        Ok(Self { before_id })
    }
}

/// Checks `limit` against the documented range (default 20, at most 100).
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation("limit", "limit is between 1 and 100")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for id in [0, 1, 42, i64::MAX] {
            let c = Cursor { before_id: id };
            assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c));
        }
        let evil = [
            "",
            "!!",
            "djE6",
            "djE6LTE",
            "eDox",
            "djE6MTIzYQ",
            "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
            "' OR 1=1 --",
            &"A".repeat(1000),
        ];
        for raw in evil {
            assert!(Cursor::decode(raw).is_err(), "{raw:?} accepted");
        }
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
        assert_eq!(page_limit(None).ok(), Some(20));
    }
}
