//! Google's per-model quotas: requests per minute, input tokens per minute, requests per day,
//! and the 429 body that names the one exceeded.
//!
//! Minutes are sliding 60 s windows; the day resets at midnight Pacific time (fixed UTC−8).
//! Only admitted requests count: a refused request consumes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{QuotaLimits, QuotaTier};
use super::rpc_error::RpcError;

/// The span of the per-minute quotas.
pub const MINUTE: Duration = Duration::from_secs(60);
const DAY_MS: i64 = 86_400_000;
/// Pacific time as a fixed UTC−8 (the service resets its daily counts at midnight Pacific).
const PACIFIC_OFFSET_MS: i64 = -8 * 3_600_000;

/// Which quota a 429 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKind {
    /// Requests per minute.
    Rpm,
    /// Input tokens per minute.
    Tpm,
    /// Requests per day.
    Rpd,
}

impl QuotaKind {
    pub fn quota_id(self, tier: QuotaTier) -> String {
        let base = match self {
            Self::Rpm => "GenerateRequestsPerMinutePerProjectPerModel",
            Self::Tpm => "GenerateContentInputTokensPerModelPerMinute",
            Self::Rpd => "GenerateRequestsPerDayPerProjectPerModel",
        };
        format!("{base}-{}", tier_suffix(tier))
    }

    pub fn metric(self, tier: QuotaTier) -> String {
        let tier = match tier {
            QuotaTier::FreeTier => "free_tier",
            QuotaTier::PaidTier => "paid_tier",
        };
        match self {
            Self::Rpm | Self::Rpd => {
                format!("generativelanguage.googleapis.com/generate_content_{tier}_requests")
            }
            Self::Tpm => {
                format!(
                    "generativelanguage.googleapis.com/generate_content_{tier}_input_token_count"
                )
            }
        }
    }

    /// The configured limit of this kind; 0 means none.
    pub fn limit_in(self, limits: &QuotaLimits) -> u64 {
        match self {
            Self::Rpm => u64::from(limits.rpm),
            Self::Tpm => limits.input_tpm,
            Self::Rpd => u64::from(limits.rpd),
        }
    }
}

fn tier_suffix(tier: QuotaTier) -> &'static str {
    match tier {
        QuotaTier::FreeTier => "FreeTier",
        QuotaTier::PaidTier => "PaidTier",
    }
}

/// A point in time, both for the sliding windows and for the Pacific calendar day.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl Moment {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            unix_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    fn pacific_day(self) -> i64 {
        (self.unix_ms + PACIFIC_OFFSET_MS).div_euclid(DAY_MS)
    }

    fn until_pacific_midnight(self) -> Duration {
        let into_day = (self.unix_ms + PACIFIC_OFFSET_MS).rem_euclid(DAY_MS);
        Duration::from_millis(u64::try_from(DAY_MS - into_day).unwrap_or(0))
    }
}

/// One exceeded quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub kind: QuotaKind,
    pub limit: u64,
    /// When the quota has room for this request again.
    pub retry_after: Duration,
}

/// Why a request was refused: every quota it would exceed, the most lasting first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRefusal {
    pub model: String,
    pub violations: Vec<Violation>,
}

impl QuotaRefusal {
    /// The kind counted in the stats: per day before per minute, requests before tokens.
    pub fn primary(&self) -> QuotaKind {
        self.violations.first().map_or(QuotaKind::Rpm, |v| v.kind)
    }

    /// When every exceeded quota has room again.
    pub fn retry_after(&self) -> Duration {
        self.violations
            .iter()
            .map(|v| v.retry_after)
            .max()
            .unwrap_or(MINUTE)
    }

    pub fn to_error(&self, tier: QuotaTier, bare: bool) -> RpcError {
        let exceeded: Vec<(QuotaKind, u64)> =
            self.violations.iter().map(|v| (v.kind, v.limit)).collect();
        let delay = self.retry_after();
        quota_error(
            &self.model,
            tier,
            &exceeded,
            Some((delay, duration_text(delay))),
            bare,
        )
    }
}

/// The 429 Google sends: details Help, QuotaFailure, RetryInfo (the last only with a delay),
/// or no details at all when `bare`.
pub fn quota_error(
    model: &str,
    tier: QuotaTier,
    exceeded: &[(QuotaKind, u64)],
    retry: Option<(Duration, String)>,
    bare: bool,
) -> RpcError {
    if bare {
        return RpcError::for_status(429, None);
    }
    let mut message =
        "You exceeded your current quota, please check your plan and billing details.\n".to_owned();
    for (kind, limit) in exceeded {
        message.push_str(&format!(
            "* Quota exceeded for metric: {}, limit: {limit}, model: {model}\n",
            kind.metric(tier)
        ));
    }
    if let Some((delay, _)) = &retry {
        message.push_str(&format!("Please retry in {}.", duration_text(*delay)));
    }
    let violations: Vec<_> = exceeded
        .iter()
        .map(|(kind, limit)| {
            json!({"quotaMetric": kind.metric(tier), "quotaId": kind.quota_id(tier),
                   "quotaDimensions": {"location": "global", "model": model},
                   "quotaValue": limit.to_string()})
        })
        .collect();
    let error = RpcError::new(429, message.trim_end().to_owned())
        .with_detail(
            "Help",
            json!({"links": [{"description": "Learn more about Gemini API quotas",
                              "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
        )
        .with_detail("QuotaFailure", json!({ "violations": violations }));
    match retry {
        Some((_, delay_text)) => {
            error.with_detail("RetryInfo", json!({ "retryDelay": delay_text }))
        }
        None => error,
    }
}

/// A protobuf duration string, rounded up to the millisecond: `27s`, `1.5s`, `26.517s`.
pub fn duration_text(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    let (seconds, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        format!("{seconds}s")
    } else {
        let fraction = format!("{fraction:03}");
        format!("{seconds}.{}s", fraction.trim_end_matches('0'))
    }
}

/// How much of each quota a model has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub requests_last_minute: u32,
    pub input_tokens_last_minute: u64,
    pub requests_today: u32,
}

#[derive(Debug, Default)]
struct ModelUsage {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u64)>,
    tokens_in_window: u64,
    day: i64,
    requests_today: u32,
}

impl ModelUsage {
    fn forget_before(&mut self, now: Moment) {
        let expired = |at: Instant| now.instant.saturating_duration_since(at) >= MINUTE;
        while self.requests.front().is_some_and(|&at| expired(at)) {
            self.requests.pop_front();
        }
        while let Some(&(at, tokens)) = self.tokens.front() {
            if !expired(at) {
                break;
            }
            self.tokens_in_window -= tokens;
            self.tokens.pop_front();
        }
        let today = now.pacific_day();
        if today != self.day {
            self.day = today;
            self.requests_today = 0;
        }
    }

    /// When the entry at `at` leaves the minute window.
    fn leaves_window(at: Instant, now: Moment) -> Duration {
        MINUTE.saturating_sub(now.instant.saturating_duration_since(at))
    }

    fn rpd_violation(&self, limit: u32, now: Moment) -> Option<Violation> {
        (limit > 0 && self.requests_today >= limit).then(|| Violation {
            kind: QuotaKind::Rpd,
            limit: u64::from(limit),
            retry_after: now.until_pacific_midnight(),
        })
    }

    fn rpm_violation(&self, limit: u32, now: Moment) -> Option<Violation> {
        let limit_len = usize::try_from(limit).unwrap_or(usize::MAX);
        if limit == 0 || self.requests.len() < limit_len {
            return None;
        }
        // The request that must leave the window for one more to fit.
        let blocking = self.requests[self.requests.len() - limit_len];
        Some(Violation {
            kind: QuotaKind::Rpm,
            limit: u64::from(limit),
            retry_after: Self::leaves_window(blocking, now),
        })
    }

    fn tpm_violation(&self, limit: u64, prompt_tokens: u64, now: Moment) -> Option<Violation> {
        if limit == 0 || self.tokens_in_window + prompt_tokens <= limit {
            return None;
        }
        let excess = self.tokens_in_window + prompt_tokens - limit;
        let mut freed = 0;
        let mut frees_at = self.tokens.back().map(|&(at, _)| at);
        for &(at, tokens) in &self.tokens {
            freed += tokens;
            if freed >= excess {
                frees_at = Some(at);
                break;
            }
        }
        Some(Violation {
            kind: QuotaKind::Tpm,
            limit,
            retry_after: frees_at.map_or(MINUTE, |at| Self::leaves_window(at, now)),
        })
    }
}

/// The usage of every model, and the admission decision.
#[derive(Debug, Default)]
pub struct QuotaBook {
    usage: HashMap<String, ModelUsage>,
}

impl QuotaBook {
    /// Admits a request (and counts it) or says every quota it would exceed (and counts nothing).
    pub fn admit(
        &mut self,
        model: &str,
        limits: &QuotaLimits,
        prompt_tokens: u64,
        now: Moment,
    ) -> Result<(), QuotaRefusal> {
        let usage = self.usage.entry(model.to_owned()).or_default();
        usage.forget_before(now);
        let violations: Vec<Violation> = [
            usage.rpd_violation(limits.rpd, now),
            usage.rpm_violation(limits.rpm, now),
            usage.tpm_violation(limits.input_tpm, prompt_tokens, now),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !violations.is_empty() {
            return Err(QuotaRefusal {
                model: model.to_owned(),
                violations,
            });
        }
        usage.requests.push_back(now.instant);
        if prompt_tokens > 0 {
            usage.tokens.push_back((now.instant, prompt_tokens));
            usage.tokens_in_window += prompt_tokens;
        }
        usage.requests_today += 1;
        Ok(())
    }

    /// What every model has used as of `now`.
    pub fn usage(&mut self, now: Moment) -> BTreeMap<String, QuotaUsage> {
        self.usage
            .iter_mut()
            .map(|(model, usage)| {
                usage.forget_before(now);
                let counts = QuotaUsage {
                    requests_last_minute: u32::try_from(usage.requests.len()).unwrap_or(u32::MAX),
                    input_tokens_last_minute: usage.tokens_in_window,
                    requests_today: usage.requests_today,
                };
                (model.clone(), counts)
            })
            .collect()
    }

    pub fn clear(&mut self) {
        self.usage.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "gemini-2.5-flash";

    fn limits(rpm: u32, input_tpm: u64, rpd: u32) -> QuotaLimits {
        QuotaLimits {
            rpm,
            input_tpm,
            rpd,
        }
    }

    fn at(start: Moment, millis: u64) -> Moment {
        Moment {
            instant: start.instant + Duration::from_millis(millis),
            unix_ms: start.unix_ms + i64::try_from(millis).unwrap_or(0),
        }
    }

    #[test]
    fn requests_per_minute_slide_and_refusals_do_not_count() {
        let start = Moment::now();
        let mut book = QuotaBook::default();
        let limits = limits(2, 0, 0);
        assert!(book.admit(MODEL, &limits, 1, start).is_ok());
        assert!(book.admit(MODEL, &limits, 1, at(start, 10_000)).is_ok());
        for _ in 0..5 {
            let refusal = book
                .admit(MODEL, &limits, 1, at(start, 20_000))
                .expect_err("admitted over the limit");
            assert_eq!(refusal.primary(), QuotaKind::Rpm);
            assert_eq!(refusal.retry_after(), Duration::from_secs(40));
        }
        assert!(book.admit(MODEL, &limits, 1, at(start, 60_000)).is_ok());
        assert!(book.admit(MODEL, &limits, 1, at(start, 60_001)).is_err());
        assert!(book.admit(MODEL, &limits, 1, at(start, 70_000)).is_ok());
    }

    #[test]
    fn input_tokens_per_minute_wait_for_enough_to_leave() {
        let start = Moment::now();
        let mut book = QuotaBook::default();
        let limits = limits(0, 100, 0);
        assert!(book.admit(MODEL, &limits, 30, start).is_ok());
        assert!(book.admit(MODEL, &limits, 50, at(start, 5_000)).is_ok());
        let refusal = book
            .admit(MODEL, &limits, 60, at(start, 10_000))
            .expect_err("admitted over the limit");
        // 40 tokens too many: both earlier requests must leave, the second at 65 s.
        assert_eq!(refusal.retry_after(), Duration::from_secs(55));
        assert!(book.admit(MODEL, &limits, 20, at(start, 10_000)).is_ok());
    }

    #[test]
    fn requests_per_day_reset_at_pacific_midnight() {
        let mut book = QuotaBook::default();
        let limits = limits(0, 0, 1);
        // 2025-01-01T07:59:00Z is 23:59 Pacific (UTC−8).
        let before_midnight = Moment {
            instant: Instant::now(),
            unix_ms: 1_735_718_340_000,
        };
        assert!(book.admit(MODEL, &limits, 1, before_midnight).is_ok());
        let refusal = book
            .admit(MODEL, &limits, 1, at(before_midnight, 30_000))
            .expect_err("admitted over the limit");
        assert_eq!(refusal.primary(), QuotaKind::Rpd);
        assert_eq!(refusal.retry_after(), Duration::from_secs(30));
        assert!(
            book.admit(MODEL, &limits, 1, at(before_midnight, 60_000))
                .is_ok()
        );
    }

    #[test]
    fn the_body_lists_help_quota_failure_and_retry_info_in_order() {
        let refusal = QuotaRefusal {
            model: MODEL.into(),
            violations: vec![Violation {
                kind: QuotaKind::Rpm,
                limit: 10,
                retry_after: Duration::from_millis(26_500),
            }],
        };
        let error = refusal.to_error(QuotaTier::FreeTier, false);
        assert!(
            error
                .message
                .ends_with("limit: 10, model: gemini-2.5-flash\nPlease retry in 26.5s.")
        );
        let kinds: Vec<&str> = error
            .details
            .iter()
            .filter_map(|d| d["@type"].as_str())
            .collect();
        assert_eq!(
            kinds,
            [
                "type.googleapis.com/google.rpc.Help",
                "type.googleapis.com/google.rpc.QuotaFailure",
                "type.googleapis.com/google.rpc.RetryInfo"
            ]
        );
        assert_eq!(error.details[2]["retryDelay"], "26.5s");
        assert!(
            refusal
                .to_error(QuotaTier::FreeTier, true)
                .details
                .is_empty()
        );
    }

    #[test]
    fn durations_are_written_like_protobuf() {
        assert_eq!(duration_text(Duration::from_secs(27)), "27s");
        assert_eq!(duration_text(Duration::from_millis(1_500)), "1.5s");
        assert_eq!(
            duration_text(Duration::from_nanos(26_516_000_001)),
            "26.517s"
        );
    }
}
