//! What the emulator is told at start and may be told again while it runs: models, quotas,
//! pacing and injected failures.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The models served when none are named.
pub const DEFAULT_MODELS: [&str; 2] = ["gemini-2.5-flash", "gemini-2.5-flash-lite"];

/// Per-model limits, as Google counts them per project and model. 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    /// Requests in any 60 s.
    pub rpm: u32,
    /// Prompt (input) tokens in any 60 s; output tokens do not count.
    #[serde(alias = "tpm")]
    pub input_tpm: u64,
    /// Requests since midnight Pacific time.
    pub rpd: u32,
}

impl QuotaLimits {
    /// Free tier, gemini-2.5-flash (2025 figures).
    pub const FREE_FLASH: Self = Self {
        rpm: 10,
        input_tpm: 250_000,
        rpd: 250,
    };
    /// Free tier, gemini-2.5-flash-lite.
    pub const FREE_FLASH_LITE: Self = Self {
        rpm: 15,
        input_tpm: 250_000,
        rpd: 1_000,
    };
    /// Tier 1 (paid), gemini-2.5-flash.
    pub const TIER1_FLASH: Self = Self {
        rpm: 1_000,
        input_tpm: 1_000_000,
        rpd: 10_000,
    };
    /// No limit at all.
    pub const UNLIMITED: Self = Self {
        rpm: 0,
        input_tpm: 0,
        rpd: 0,
    };
}

impl Default for QuotaLimits {
    fn default() -> Self {
        Self::FREE_FLASH
    }
}

/// Which tier the quota ids and metrics name (`…-FreeTier` or `…-PaidTier`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuotaTier {
    #[default]
    FreeTier,
    PaidTier,
}

/// Everything the emulator can be told. `Default` is the free-tier gemini-2.5-flash profile
/// for every model, no pacing (answers as fast as it can) and no injected failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// The accepted API key; `None` accepts any non-empty key (a missing key is still 403).
    pub api_key: Option<String>,
    /// The models served; any other answers 404.
    pub models: Vec<String>,
    /// The limits of every model without an entry in `model_limits`.
    pub limits: QuotaLimits,
    /// Limits of particular models.
    pub model_limits: BTreeMap<String, QuotaLimits>,
    pub tier: QuotaTier,
    /// Wait before the first chunk of a stream (and before any answer).
    #[serde(rename = "first_chunk_latency_ms", with = "millis")]
    pub first_chunk_latency: Duration,
    /// Output pace; 0 sends as fast as it can.
    pub tokens_per_second: f64,
    /// Length of an answer that is not cut by `maxOutputTokens` (it ends with `STOP`).
    pub default_output_tokens: u32,
    /// About how many tokens each stream chunk carries.
    pub chunk_tokens: u32,
    /// `thoughtsTokenCount` reported per answer (capped by `thinkingConfig.thinkingBudget`).
    pub thoughts_tokens: u32,
    /// Share (0..=1) of generation requests answered 503 UNAVAILABLE.
    pub fail_503_share: f64,
    /// Share (0..=1) of streams that stall after their first chunk.
    pub stall_share: f64,
    /// Quota 429s come with no details at all (Google sometimes does that).
    pub bare_429s: bool,
    /// Benchmarks only: each stream chunk's text starts with `[[t=<µs since the Unix
    /// epoch>]]`, the moment it was sent, so a client can measure what lies between.
    pub stamp_chunks: bool,
    /// How many recent requests the stats keep.
    pub log_capacity: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            models: DEFAULT_MODELS.iter().map(|&m| m.to_owned()).collect(),
            limits: QuotaLimits::FREE_FLASH,
            model_limits: BTreeMap::new(),
            tier: QuotaTier::FreeTier,
            first_chunk_latency: Duration::ZERO,
            tokens_per_second: 0.0,
            default_output_tokens: 40,
            chunk_tokens: 4,
            thoughts_tokens: 0,
            fail_503_share: 0.0,
            stall_share: 0.0,
            bare_429s: false,
            stamp_chunks: false,
            log_capacity: 1_000,
        }
    }
}

/// A configuration the emulator cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} must be between 0 and 1, got {value}")]
    ShareOutOfRange { name: &'static str, value: f64 },
    #[error("tokens_per_second must be a finite number >= 0, got {0}")]
    BadRate(f64),
    #[error("at least one model must be served")]
    NoModels,
    #[error("chunk_tokens must be at least 1")]
    EmptyChunks,
}

impl EmulatorConfig {
    /// The limits that apply to `model`.
    pub fn limits_for(&self, model: &str) -> QuotaLimits {
        self.model_limits.get(model).copied().unwrap_or(self.limits)
    }

    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|served| served == model)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("fail_503_share", self.fail_503_share),
            ("stall_share", self.stall_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::ShareOutOfRange { name, value });
            }
        }
        if !self.tokens_per_second.is_finite() || self.tokens_per_second < 0.0 {
            return Err(ConfigError::BadRate(self.tokens_per_second));
        }
        if self.models.is_empty() {
            return Err(ConfigError::NoModels);
        }
        if self.chunk_tokens == 0 {
            return Err(ConfigError::EmptyChunks);
        }
        Ok(())
    }
}

/// A partial change (`POST /emulator/config`): every field absent is left as it is.
/// `rpm`, `input_tpm` and `rpd` change the limits of models without their own entry;
/// `model_limits` entries replace those of the models they name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigUpdate {
    /// `null` accepts any key again; a string sets the key.
    #[serde(
        deserialize_with = "present_even_if_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    #[serde(alias = "tpm")]
    pub input_tpm: Option<u64>,
    pub rpd: Option<u32>,
    pub model_limits: Option<BTreeMap<String, QuotaLimits>>,
    pub tier: Option<QuotaTier>,
    pub first_chunk_latency_ms: Option<u64>,
    pub tokens_per_second: Option<f64>,
    pub default_output_tokens: Option<u32>,
    pub chunk_tokens: Option<u32>,
    pub thoughts_tokens: Option<u32>,
    pub fail_503_share: Option<f64>,
    pub stall_share: Option<f64>,
    pub bare_429s: Option<bool>,
    pub stamp_chunks: Option<bool>,
    pub log_capacity: Option<usize>,
}

impl ConfigUpdate {
    /// The configuration with this change applied (not yet validated).
    pub fn applied_to(&self, config: &EmulatorConfig) -> EmulatorConfig {
        let mut next = config.clone();
        if let Some(api_key) = &self.api_key {
            next.api_key.clone_from(api_key);
        }
        if let Some(models) = &self.models {
            next.models.clone_from(models);
        }
        if let Some(rpm) = self.rpm {
            next.limits.rpm = rpm;
        }
        if let Some(input_tpm) = self.input_tpm {
            next.limits.input_tpm = input_tpm;
        }
        if let Some(rpd) = self.rpd {
            next.limits.rpd = rpd;
        }
        if let Some(model_limits) = &self.model_limits {
            next.model_limits.extend(model_limits.clone());
        }
        if let Some(tier) = self.tier {
            next.tier = tier;
        }
        if let Some(latency) = self.first_chunk_latency_ms {
            next.first_chunk_latency = Duration::from_millis(latency);
        }
        if let Some(rate) = self.tokens_per_second {
            next.tokens_per_second = rate;
        }
        if let Some(tokens) = self.default_output_tokens {
            next.default_output_tokens = tokens;
        }
        if let Some(tokens) = self.chunk_tokens {
            next.chunk_tokens = tokens;
        }
        if let Some(tokens) = self.thoughts_tokens {
            next.thoughts_tokens = tokens;
        }
        if let Some(share) = self.fail_503_share {
            next.fail_503_share = share;
        }
        if let Some(share) = self.stall_share {
            next.stall_share = share;
        }
        if let Some(bare) = self.bare_429s {
            next.bare_429s = bare;
        }
        if let Some(stamp) = self.stamp_chunks {
            next.stamp_chunks = stamp;
        }
        if let Some(capacity) = self.log_capacity {
            next.log_capacity = capacity;
        }
        next
    }
}

fn present_even_if_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// A `Duration` as whole milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_changes_only_what_it_names() {
        let update: ConfigUpdate = serde_json::from_str(
            r#"{"rpm":3,"fail_503_share":0.5,"api_key":null,
                "model_limits":{"gemini-2.5-flash-lite":{"rpm":1,"input_tpm":2,"rpd":3}}}"#,
        )
        .unwrap();
        let before = EmulatorConfig {
            api_key: Some("k".into()),
            ..EmulatorConfig::default()
        };
        let after = update.applied_to(&before);
        assert_eq!(after.api_key, None);
        assert_eq!(after.limits.rpm, 3);
        assert_eq!(after.limits.rpd, 250);
        assert_eq!(after.limits_for("gemini-2.5-flash-lite").input_tpm, 2);
        assert!((after.fail_503_share - 0.5).abs() < f64::EPSILON);
        assert_eq!(after.default_output_tokens, before.default_output_tokens);
        let untouched = ConfigUpdate::default().applied_to(&before);
        assert_eq!(untouched, before);
    }

    #[test]
    fn bad_values_are_refused() {
        let config = EmulatorConfig {
            stall_share: 1.5,
            ..EmulatorConfig::default()
        };
        assert!(config.validate().is_err());
        assert!(serde_json::from_str::<ConfigUpdate>(r#"{"rmp":3}"#).is_err());
    }
}
