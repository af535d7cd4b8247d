//! When a certificate stops being valid: its `notAfter` (RFC 5280 §4.1.2.5), decoded by `x509-cert`.

use x509_cert::Certificate;
use x509_cert::der::Decode;

/// Why a certificate's `notAfter` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ExpiryError {
    #[error("not a DER X.509 certificate: {0}")]
    Decode(#[from] x509_cert::der::Error),
    #[error("notAfter lies beyond what a Unix timestamp holds")]
    OutOfRange,
}

/// `notAfter` of a DER certificate as seconds since the Unix epoch.
pub fn not_after(certificate: &[u8]) -> Result<i64, ExpiryError> {
    let certificate = Certificate::from_der(certificate)?;
    let since_epoch = certificate
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration();
    i64::try_from(since_epoch.as_secs()).map_err(|_| ExpiryError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(year, month, day);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn unix(year: i32, month: u32, day: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .expect("bad date")
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        // Before 2050 a certificate carries UTCTime, from 2050 GeneralizedTime.
        for (year, month, day) in [(2031, 7, 4), (2061, 1, 2)] {
            let read = not_after(&certificate_until(year, month, day)).ok();
            assert_eq!(read, Some(unix(year, u32::from(month), u32::from(day))));
        }
    }

    #[test]
    fn garbage_and_truncated_certificates_are_errors() {
        let good = certificate_until(2031, 7, 4);
        assert!(not_after(b"").is_err());
        assert!(not_after(b"not der at all").is_err());
        for cut in [1, 10, good.len() / 2, good.len() - 1] {
            assert!(not_after(&good[..cut]).is_err(), "cut at {cut}");
        }
    }
}
