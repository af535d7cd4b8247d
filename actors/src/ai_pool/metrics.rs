//! The AiPool's metrics: queue, in flight, tokens, upstream latency and errors, budget waits.

use std::sync::LazyLock;

use aisocial_gemini::client::Finish;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use crate::meter;

pub static QUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_ai_queue_depth",
        "AI jobs waiting in this node's queue, by class (mention, compose, summary).",
        &["class"],
    )
});
pub static USERS_WAITING: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_ai_users_waiting",
        "Users with at least one AI job waiting on this node.",
    )
});
pub static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_ai_in_flight",
        "AI jobs being run by this node's workers (waiting for budget or calling Gemini).",
    )
});
pub static TOKENS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_ai_tokens_total",
        "Tokens Gemini counted for this node's calls, by kind (prompt, output).",
        &["kind"],
    )
});
pub static UPSTREAM_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    meter::histogram(
        "aisocial_ai_upstream_seconds",
        "Duration of one Gemini call, from request to the stream's end.",
        meter::exponential(0.01, 2.0, 14),
    )
});
pub static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_ai_upstream_errors_total",
        "Failed Gemini calls by kind (unavailable, resource_exhausted, bad_request, timeout, …).",
        &["kind"],
    )
});
pub static BUDGET_WAIT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    meter::histogram(
        "aisocial_ai_budget_wait_seconds",
        "Time a job waited for the shared Gemini budget before a call.",
        meter::exponential(0.001, 2.0, 18),
    )
});
pub static PAUSES: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_ai_pauses_total",
        "Times an upstream 429 paused the whole pool for its retryDelay.",
    )
});
pub static JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_ai_jobs_total",
        "AI jobs finished, by class and outcome.",
        &["class", "outcome"],
    )
});
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_ai_refused_total",
        "AI requests refused before queueing, by reason (queue_full, user_queue_full, quota_exhausted, stopped).",
        &["reason"],
    )
});

pub fn record_tokens(finish: &Finish) {
    TOKENS
        .with_label_values(&["prompt"])
        .inc_by(u64::from(finish.usage.prompt_token_count));
    TOKENS
        .with_label_values(&["output"])
        .inc_by(u64::from(finish.usage.candidates_token_count));
}

/// Registers every series that exists from the start (so dashboards and alerts see zeros, not
/// gaps, before the first AI job).
pub fn register() {
    for class in ["mention", "compose", "summary"] {
        QUEUE_DEPTH.with_label_values(&[class]).set(0);
    }
    for kind in ["prompt", "output"] {
        TOKENS.with_label_values(&[kind]);
    }
    LazyLock::force(&USERS_WAITING);
    LazyLock::force(&IN_FLIGHT);
    LazyLock::force(&UPSTREAM_SECONDS);
    LazyLock::force(&UPSTREAM_ERRORS);
    LazyLock::force(&BUDGET_WAIT_SECONDS);
    LazyLock::force(&PAUSES);
    LazyLock::force(&JOBS);
    LazyLock::force(&REFUSED);
}
