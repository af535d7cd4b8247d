//! Positions in PostgreSQL's write-ahead log, and the DbWriter's commit watermark: how far the
//! primary's WAL reached when the writer's newest acknowledged transaction had committed.
//!
//! Read replicas use them for read-your-writes: a replica that has replayed up to a user's last
//! commit position shows that user's writes (replay applies commits in WAL order).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A WAL position (`pg_lsn`), as the 64-bit byte offset PostgreSQL prints as `X/Y`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses PostgreSQL's text form, `X/Y` with X and Y hexadecimal (up to 8 digits each).
    pub fn parse(text: &str) -> Option<Self> {
        let (high, low) = text.trim().split_once('/')?;
        if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
            return None;
        }
        let high = u32::from_str_radix(high, 16).ok()?;
        let low = u32::from_str_radix(low, 16).ok()?;
        Some(Self((u64::from(high) << 32) | u64::from(low)))
    }

    /// Bytes from `earlier` to `self` (0 when `earlier` is not earlier).
    pub fn bytes_after(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The highest WAL position the DbWriter has seen right after one of its COMMITs returned. It is
/// raised before the batch's commands are answered, so a caller that reads it after its answer
/// gets a position at or past its own commit record. It only grows.
#[derive(Debug, Default)]
pub struct CommitWatermark(AtomicU64);

impl CommitWatermark {
    /// `None` until the writer has committed once since start-up.
    pub fn get(&self) -> Option<Lsn> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            n => Some(Lsn(n)),
        }
    }

    /// Raises the watermark to `lsn` (never lowers it).
    pub fn raise(&self, lsn: Lsn) {
        self.0.fetch_max(lsn.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_postgres_text_form() {
        for (text, value) in [
            ("0/0", 0),
            ("0/16B3748", 0x16B_3748),
            ("16/B374D848", 0x16_B374_D848),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            let lsn = Lsn::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(lsn, Lsn(value), "{text}");
            assert_eq!(lsn.to_string(), text);
        }
    }

    #[test]
    fn refuses_what_is_not_an_lsn() {
        for text in [
            "",
            "/",
            "0/",
            "/0",
            "12",
            "g/0",
            "0/-1",
            "1/2/3",
            "123456789/0",
            " 1 / 2",
        ] {
            assert_eq!(Lsn::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_watermark_only_grows() {
        let mark = CommitWatermark::default();
        assert_eq!(mark.get(), None);
        mark.raise(Lsn(20));
        mark.raise(Lsn(10));
        assert_eq!(mark.get(), Some(Lsn(20)));
        assert_eq!(Lsn(20).bytes_after(Lsn(5)), 15);
        assert_eq!(Lsn(5).bytes_after(Lsn(20)), 0);
    }
}
