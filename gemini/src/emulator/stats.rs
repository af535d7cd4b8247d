//! Counters of what the emulator served and refused, and a log of recent requests.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::quota::{QuotaKind, QuotaUsage};

/// The API method a request called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    #[serde(rename = "generateContent")]
    GenerateContent,
    #[serde(rename = "streamGenerateContent")]
    StreamGenerateContent,
    #[serde(rename = "countTokens")]
    CountTokens,
    /// A path or method the API does not have.
    #[serde(rename = "other")]
    Other,
}

impl Endpoint {
    pub fn from_method(method: &str) -> Self {
        match method {
            "generateContent" => Self::GenerateContent,
            "streamGenerateContent" => Self::StreamGenerateContent,
            "countTokens" => Self::CountTokens,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerateContent => "generateContent",
            Self::StreamGenerateContent => "streamGenerateContent",
            Self::CountTokens => "countTokens",
            Self::Other => "other",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An answer (a count, or a generation that ran to its finish reason).
    Ok,
    /// HTTP 200 with no candidates and `promptFeedback.blockReason` (`[[block]]`).
    Blocked,
    /// The answer ended early with finish reason `SAFETY` (`[[safety]]`).
    Safety,
    /// A stream that broke off with an error line (`[[midstream-error]]`).
    MidstreamError,
    /// A stream (or answer) that stalled on purpose.
    Stalled,
    /// 429 from an enforced per-minute request quota.
    QuotaRpm,
    /// 429 from an enforced per-minute input-token quota.
    QuotaTpm,
    /// 429 from an enforced per-day request quota.
    QuotaRpd,
    /// 429 from a script.
    ResourceExhausted,
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Internal,
    Unavailable,
    DeadlineExceeded,
}

impl Outcome {
    /// The outcome of an error answered with this HTTP status.
    pub fn for_status(code: u16) -> Self {
        match code {
            400 => Self::InvalidArgument,
            401 => Self::Unauthenticated,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            429 => Self::ResourceExhausted,
            503 => Self::Unavailable,
            504 => Self::DeadlineExceeded,
            200 => Self::Ok,
            _ => Self::Internal,
        }
    }

    pub fn for_quota(kind: QuotaKind) -> Self {
        match kind {
            QuotaKind::Rpm => Self::QuotaRpm,
            QuotaKind::Tpm => Self::QuotaTpm,
            QuotaKind::Rpd => Self::QuotaRpd,
        }
    }
}

/// One request, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival, in milliseconds since the emulator started.
    pub at_ms: u64,
    pub model: String,
    pub endpoint: Endpoint,
    /// The HTTP status answered (200 for streams, even those that break off).
    pub status: u16,
    pub outcome: Outcome,
    /// Prompt tokens of the request (0 when it was refused before they were counted).
    pub prompt_tokens: u32,
    /// The outcome was injected (a script, or the random 503/stall shares).
    pub injected: bool,
}

/// A snapshot of the counters (`GET /emulator/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Milliseconds since the emulator started (the clock of `RequestRecord::at_ms`).
    pub uptime_ms: u64,
    /// Every API request, whatever its outcome.
    pub requests: u64,
    pub by_endpoint: BTreeMap<Endpoint, u64>,
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Prompt tokens of the generations served (not refused, not `countTokens`).
    pub prompt_tokens: u64,
    /// Output tokens sent.
    pub output_tokens: u64,
    /// Streams being sent right now.
    pub open_streams: u64,
    /// Quota used per model.
    pub quota_usage: BTreeMap<String, QuotaUsage>,
    /// The most recent requests, oldest first.
    pub recent: Vec<RequestRecord>,
}

impl EmulatorStats {
    pub fn outcome_count(&self, outcome: Outcome) -> u64 {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }

    pub fn endpoint_count(&self, endpoint: Endpoint) -> u64 {
        self.by_endpoint.get(&endpoint).copied().unwrap_or(0)
    }

    /// Requests that arrived in `[from_ms, to_ms)` (emulator clock), among those still logged.
    pub fn arrivals_between(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> impl Iterator<Item = &RequestRecord> {
        self.recent
            .iter()
            .filter(move |record| (from_ms..to_ms).contains(&record.at_ms))
    }
}

/// The live counters behind the snapshots.
#[derive(Debug, Default)]
pub struct StatsBook {
    totals: EmulatorStats,
    recent: VecDeque<RequestRecord>,
}

impl StatsBook {
    pub fn record(&mut self, record: RequestRecord, capacity: usize) {
        let totals = &mut self.totals;
        totals.requests += 1;
        *totals.by_endpoint.entry(record.endpoint).or_default() += 1;
        *totals.by_outcome.entry(record.outcome).or_default() += 1;
        self.recent.push_back(record);
        while self.recent.len() > capacity {
            self.recent.pop_front();
        }
    }

    pub fn add_prompt_tokens(&mut self, tokens: u32) {
        self.totals.prompt_tokens += u64::from(tokens);
    }

    pub fn add_output_tokens(&mut self, tokens: u32) {
        self.totals.output_tokens += u64::from(tokens);
    }

    pub fn stream_opened(&mut self) {
        self.totals.open_streams += 1;
    }

    pub fn stream_closed(&mut self) {
        self.totals.open_streams = self.totals.open_streams.saturating_sub(1);
    }

    pub fn snapshot(
        &self,
        uptime_ms: u64,
        quota_usage: BTreeMap<String, QuotaUsage>,
    ) -> EmulatorStats {
        EmulatorStats {
            uptime_ms,
            quota_usage,
            recent: self.recent.iter().cloned().collect(),
            ..self.totals.clone()
        }
    }

    /// Zeroes the counters and empties the log; streams still open stay counted.
    pub fn clear(&mut self) {
        let open_streams = self.totals.open_streams;
        *self = Self::default();
        self.totals.open_streams = open_streams;
    }
}
