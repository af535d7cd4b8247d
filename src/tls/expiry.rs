//! When a certificate stops being valid: its `notAfter`, read straight from the DER.
//!
//! Only the path to `tbsCertificate.validity.notAfter` is walked (RFC 5280 §4.1), so no X.509
//! library is needed for one date.

/// `notAfter` of a DER certificate as seconds since the Unix epoch; `None` when the bytes are
/// not a certificate this walk understands.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    let (SEQUENCE, certificate, _) = element(certificate)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] EXPLICIT, absent in v1 certificates.
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        let (_, _, after) = element(rest)?;
        rest = after;
    }
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    parse_time(tag, time)
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (length, rest) = rest.split_at(octets);
        let length = length
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (contents, after) = rest.split_at(length);
    Some((tag, contents, after))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let full = match tag {
        UTC_TIME => {
            let year: u8 = text.get(..2)?.parse().ok()?;
            let century = if year >= 50 { "19" } else { "20" };
            format!("{century}{text}")
        }
        GENERALIZED_TIME => text.to_owned(),
        _ => return None,
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        params.not_after = rcgen::date_time_ymd(year, month, day);
        params
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("{e}"))
            .der()
            .to_vec()
    }

    fn unix(year: i32, month: u32, day: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .unwrap_or_else(|| panic!("bad date"))
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        // Before 2050 a certificate carries UTCTime, from 2050 GeneralizedTime.
        assert_eq!(
            not_after(&certificate_until(2031, 7, 4)),
            Some(unix(2031, 7, 4))
        );
        assert_eq!(
            not_after(&certificate_until(2061, 1, 2)),
            Some(unix(2061, 1, 2))
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let good = certificate_until(2031, 7, 4);
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(b"not der at all"), None);
        for cut in [1, 10, good.len() / 2] {
            let _ = not_after(&good[..cut]);
        }
        assert_eq!(parse_time(UTC_TIME, b"991231235959Z"), Some(946_684_799));
        assert_eq!(parse_time(UTC_TIME, b"99123123595"), None);
    }
}
