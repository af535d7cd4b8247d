//! An error and its causes as one line, for logs: `what failed: why: why that`. Errors keep
//! their cause as a `source` instead of flattening it into their text; this is where the
//! chain is read back, once, by whoever logs it.

use std::error::Error;
use std::fmt;

/// Displays `error` followed by each of its sources, separated by `": "`. A source whose text
/// the previous one already ends with (as `tokio_postgres::Error` and bb8's `RunError` print
/// their cause themselves) is not repeated.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut next = self.0.source();
        while let Some(source) = next {
            let text = source.to_string();
            if !text.is_empty() && !previous.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            next = source.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once_in_order() {
        let e = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(Chain(&e).to_string(), "outer: middle: inner");
    }
}
