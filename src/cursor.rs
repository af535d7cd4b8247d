//! Keyset pagination: opaque cursors (clients pass back what we gave them and never build one),
//! the `cursor` + `limit` query every list takes, and the page every list answers.

use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

/// `?cursor=&limit=` of every list route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// An opaque cursor: the `next_cursor` of the previous page (400 `invalid_cursor` for
    /// anything else).
    #[param(pattern = "^v1\\.[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Which way a list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

impl PageQuery {
    /// The id to continue past (exclusive) and the page size.
    pub fn bounds(&self, order: Order) -> Result<(i64, i64), ApiError> {
        let limit = page_limit(self.limit)?;
        let position = match (&self.cursor, order) {
            (Some(raw), _) => Cursor::decode(raw)?.id,
            (None, Order::NewestFirst) => i64::MAX,
            (None, Order::OldestFirst) => 0,
        };
        Ok((position, limit))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when there may be more: pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `items` fetched with `LIMIT limit`; `id` gives each item's position.
    pub fn new(items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
        let next_cursor = items
            .last()
            .filter(|_| full)
            .map(|last| Cursor { id: id(last) }.encode());
        Self { items, next_cursor }
    }
}

const PREFIX: &str = "v1.";

/// A position in a list ordered by an id: the next page continues past this id (below it for
/// newest-first lists, above it for oldest-first ones). Clients treat it as opaque; its shape
/// is documented (`^v1\.[0-9]{1,18}$`) only so that schema-driven clients can validate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{PREFIX}{}", self.id)
    }

    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let invalid =
            || ApiError::bad_request("invalid_cursor", "cursor is not one this API gave out");
        let digits = raw.strip_prefix(PREFIX).ok_or_else(invalid)?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let id: i64 = digits.parse().map_err(|_| invalid())?;
        Ok(Self { id })
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
        for id in [0, 1, 42, 999_999_999_999_999_999] {
            let c = Cursor { id };
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

/// Property tests of cursor decoding: any string is a cursor or a 400, never a panic, and
/// every cursor the API gives out decodes to its position.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn any_string_decodes_or_is_refused(raw in "\\PC{0,40}") {
            if let Ok(cursor) = Cursor::decode(&raw) {
                prop_assert!(cursor.id >= 0);
            }
        }

        #[test]
        fn near_misses_are_refused_or_exact(digits in "[0-9]{0,22}", prefix in "(v1\\.|v1|v2\\.|V1\\.|)") {
            let raw = format!("{prefix}{digits}");
            match Cursor::decode(&raw) {
                Ok(cursor) => {
                    prop_assert_eq!(prefix.as_str(), "v1.");
                    prop_assert_eq!(cursor.id, digits.parse::<i64>().unwrap_or(-1));
                }
                Err(e) => prop_assert_eq!(actix_web::ResponseError::status_code(&e).as_u16(), 400),
            }
        }

        #[test]
        fn cursors_given_out_round_trip(id in 0i64..=999_999_999_999_999_999) {
            let cursor = Cursor { id };
            prop_assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        }
    }
}
