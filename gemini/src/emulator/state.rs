//! The state the request handlers and the control handle share: configuration, quota usage,
//! the script of next responses and the stats; and the admission of a generation request.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::RngExt;

use super::config::{ConfigError, ConfigUpdate, EmulatorConfig};
use super::quota::{Moment, QuotaBook, QuotaKind, quota_error};
use super::rpc_error::RpcError;
use super::script::{ScriptError, ScriptedResponse};
use super::stats::{EmulatorStats, Outcome, RequestRecord, StatsBook};

/// A generation request that passed authentication and validation.
#[derive(Debug, Clone)]
pub struct Candidacy<'a> {
    pub model: &'a str,
    pub streaming: bool,
    pub prompt_tokens: u32,
    pub arrived: Moment,
}

/// What is decided before the first byte of an answer.
#[derive(Debug)]
pub enum Admission {
    /// An error answer, after `delay`.
    Refused {
        error: RpcError,
        outcome: Outcome,
        injected: bool,
        delay: Duration,
    },
    /// An answer (the request now counts toward the quotas).
    Admitted(Pacing),
}

/// How an admitted answer is sent.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Stall after the first chunk (a script or the stall share said so).
    pub stall: bool,
    /// A script or a share decided something about this answer.
    pub injected: bool,
    /// A scripted wait before anything is sent.
    pub delay: Duration,
    pub first_chunk_latency: Duration,
    pub tokens_per_second: f64,
    pub default_output_tokens: u32,
    pub chunk_tokens: u32,
    pub thoughts_tokens: u32,
    /// Stamp each chunk's text with its send time (benchmarks).
    pub stamp_chunks: bool,
}

impl Pacing {
    /// How long sending `tokens` takes at the configured rate.
    pub fn time_for(&self, tokens: u32) -> Duration {
        if self.tokens_per_second > 0.0 {
            Duration::try_from_secs_f64(f64::from(tokens) / self.tokens_per_second)
                .unwrap_or(Duration::ZERO)
        } else {
            Duration::ZERO
        }
    }
}

struct Inner {
    config: EmulatorConfig,
    quotas: QuotaBook,
    script: VecDeque<ScriptedResponse>,
    stats: StatsBook,
}

/// Shared by the server's handlers and every control handle.
pub struct Shared {
    started: Instant,
    inner: Mutex<Inner>,
}

impl Shared {
    pub fn new(config: EmulatorConfig) -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                config,
                quotas: QuotaBook::default(),
                script: VecDeque::new(),
                stats: StatsBook::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Milliseconds from the start of the emulator to `at`.
    pub fn clock_ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn config(&self) -> EmulatorConfig {
        self.lock().config.clone()
    }

    pub fn set_config(&self, config: EmulatorConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.lock().config = config;
        Ok(())
    }

    pub fn update_config(&self, update: &ConfigUpdate) -> Result<EmulatorConfig, ConfigError> {
        let mut inner = self.lock();
        let next = update.applied_to(&inner.config);
        next.validate()?;
        inner.config = next.clone();
        Ok(next)
    }

    /// Appends entries to the script (all or none); returns how many are queued.
    pub fn push_script(&self, entries: Vec<ScriptedResponse>) -> Result<usize, ScriptError> {
        entries.iter().try_for_each(ScriptedResponse::validate)?;
        let mut inner = self.lock();
        inner.script.extend(entries);
        Ok(inner.script.len())
    }

    pub fn script(&self) -> Vec<ScriptedResponse> {
        self.lock().script.iter().cloned().collect()
    }

    pub fn clear_script(&self) {
        self.lock().script.clear();
    }

    /// Forgets quota usage, the script and the counters; the configuration stays.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.quotas.clear();
        inner.script.clear();
        inner.stats.clear();
    }

    pub fn stats(&self) -> EmulatorStats {
        let now = Moment::now();
        let mut inner = self.lock();
        let usage = inner.quotas.usage(now);
        inner.stats.snapshot(self.clock_ms(now.instant), usage)
    }

    pub fn record(&self, record: RequestRecord) {
        let mut inner = self.lock();
        let capacity = inner.config.log_capacity;
        inner.stats.record(record, capacity);
    }

    pub fn add_output_tokens(&self, tokens: u32) {
        self.lock().stats.add_output_tokens(tokens);
    }

    pub fn stream_opened(&self) {
        self.lock().stats.stream_opened();
    }

    pub fn stream_closed(&self) {
        self.lock().stats.stream_closed();
    }

    /// The configured API key, and whether `model` is served.
    pub fn gate(&self, model: &str) -> (Option<String>, bool) {
        let inner = self.lock();
        (inner.config.api_key.clone(), inner.config.serves(model))
    }

    /// Scripted answer first, then the random 503 share, then the quotas.
    pub fn admit(&self, candidacy: &Candidacy<'_>) -> Admission {
        let mut inner = self.lock();
        let scripted = inner.script.pop_front();
        let config = &inner.config;
        let limits = config.limits_for(candidacy.model);
        if let Some(entry) = scripted.as_ref().filter(|entry| entry.status != 200) {
            let mut error = if entry.status == 429 {
                let kind = entry.quota.unwrap_or(QuotaKind::Rpm);
                quota_error(
                    candidacy.model,
                    config.tier,
                    &[(kind, kind.limit_in(&limits))],
                    entry.retry(),
                    entry.bare,
                )
            } else {
                RpcError::for_status(entry.status, None)
            };
            if let Some(message) = &entry.message {
                error.message.clone_from(message);
            }
            return Admission::Refused {
                error,
                outcome: Outcome::for_status(entry.status),
                injected: true,
                delay: entry.delay(),
            };
        }
        if scripted.is_none() && happens(config.fail_503_share) {
            return Admission::Refused {
                error: RpcError::overloaded(),
                outcome: Outcome::Unavailable,
                injected: true,
                delay: Duration::ZERO,
            };
        }
        let tier = config.tier;
        let bare = config.bare_429s;
        let stall_by_share = candidacy.streaming && happens(config.stall_share);
        let mut pacing = Pacing {
            stall: stall_by_share,
            injected: stall_by_share || scripted.is_some(),
            delay: Duration::ZERO,
            first_chunk_latency: config.first_chunk_latency,
            tokens_per_second: config.tokens_per_second,
            default_output_tokens: config.default_output_tokens,
            chunk_tokens: config.chunk_tokens,
            thoughts_tokens: config.thoughts_tokens,
            stamp_chunks: config.stamp_chunks,
        };
        if let Some(entry) = &scripted {
            pacing.stall |= entry.stall;
            pacing.delay = entry.delay();
        }
        let tokens = u64::from(candidacy.prompt_tokens);
        if let Err(refusal) =
            inner
                .quotas
                .admit(candidacy.model, &limits, tokens, candidacy.arrived)
        {
            return Admission::Refused {
                error: refusal.to_error(tier, bare),
                outcome: Outcome::for_quota(refusal.primary()),
                injected: false,
                delay: pacing.delay,
            };
        }
        inner.stats.add_prompt_tokens(candidacy.prompt_tokens);
        Admission::Admitted(pacing)
    }
}

/// True with probability `share`.
fn happens(share: f64) -> bool {
    share > 0.0 && rand::rng().random::<f64>() < share
}
