//! Newtype ids, so a user id can never be passed where a post id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user's primary key in `users`.
    UserId
);
id_type!(
    /// A post's primary key in `posts`.
    PostId
);
id_type!(
    /// A durable event's id in `events`: dense and in commit order (see `event_log`).
    EventId
);

/// One websocket session on this node; unique for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A handle as users type it: `[a-z0-9_]{3,30}`, checked at construction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Handle(String);

/// Why a string is not a valid handle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a handle is 3 to 30 characters of a-z, 0-9 and _")]
pub struct InvalidHandle;

impl Handle {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 30;

    /// Checks `raw` against the handle rule; it is not lower-cased for the caller.
    pub fn parse(raw: &str) -> Result<Self, InvalidHandle> {
        let len_ok = (Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len());
        let chars_ok = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if len_ok && chars_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidHandle)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_follow_the_rule() {
        for ok in ["abc", "a_1", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
            assert!(Handle::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "ABC",
            "a-b",
            "héé",
            "a b",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(Handle::parse(bad), Err(InvalidHandle), "{bad}");
        }
    }
}
