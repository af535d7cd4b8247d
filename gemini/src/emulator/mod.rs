//! The Gemini emulator: a real HTTP server speaking Google's Gemini REST API (v1beta), for tests,
//! load tests and local runs without `GEMINI_API_KEY`.
//!
//! # API
//!
//! - `POST /v1beta/models/{model}:generateContent`
//! - `POST /v1beta/models/{model}:streamGenerateContent?alt=sse`: `text/event-stream`, each event
//!   `data: <compact JSON>\r\n\r\n`, cumulative `usageMetadata`, `finishReason` on the last chunk,
//!   no `[DONE]`. Without `alt=sse`: one JSON array sent piece by piece, `[{…},\r\n{…}]`.
//! - `POST /v1beta/models/{model}:countTokens`: `{"contents": [...]}` or
//!   `{"generateContentRequest": {...}}`; free, outside every quota.
//!
//! The key comes in `x-goog-api-key` or `?key=`: none → 403 `PERMISSION_DENIED`; a key other
//! than the configured one → 400 `API_KEY_INVALID`. An unknown model → 404. Requests are
//! checked like Google checks them (unknown names in either spelling, types, temperature,
//! stop sequences, roles) → 400 with a `BadRequest` detail. Quotas per model (RPM, input TPM,
//! RPD since midnight Pacific) → 429 `RESOURCE_EXHAUSTED` with Help, QuotaFailure and
//! RetryInfo details (none with `bare_429s`); a refused request consumes no quota.
//!
//! Answers are pleasant sentences about the words of the last user turn, the same for the same
//! prompt and `seed`, about `default_output_tokens` long (`STOP`) unless `maxOutputTokens` cuts
//! them (`MAX_TOKENS`); a stop sequence ends them before it. Tokens are characters / 4,
//! rounded up.
//!
//! # Test triggers (in the last user text)
//!
//! - `[[block]]`: HTTP 200 with no candidates and `promptFeedback.blockReason: "SAFETY"`
//!   (a stream sends that as its only chunk).
//! - `[[safety]]`: the answer ends early with finish reason `SAFETY` and `safetyRatings` (no
//!   content in the last chunk; a plain answer has no content at all).
//! - `[[midstream-error]]`: a stream sends two chunks, then a line `{"error": {"code": 503, …,
//!   "status": "UNAVAILABLE"}}` without `data:`, then ends; a plain `generateContent` answers
//!   an ordinary 503.
//! - `[[stall]]`: a stream sends its first chunk, then nothing until the client goes away;
//!   a plain `generateContent` never answers.
//! - `[[unknown-finish]]`: finish reason `SOMETHING_NEW`.
//! - `[[echo:TEXT]]`: the answer starts with TEXT verbatim (what a prompt injection that talks
//!   the model into saying something looks like: `[[echo:@bob @carol]]`).
//!
//! # Failure injection
//!
//! `fail_503_share` of generation requests are answered 503 (before the quotas, so they
//! consume none), `stall_share` of streams stall after their first chunk, and a queue of
//! [`ScriptedResponse`]s decides the next generation requests (`countTokens` never takes
//! one): see [`control`] for the HTTP endpoints, [`EmulatorControl`] for the Rust API.

mod api;
mod composer;
mod config;
pub mod control;
mod plan;
mod quota;
mod reply;
mod rpc_error;
mod schema;
mod script;
mod server;
mod state;
mod stats;
mod stream;
mod triggers;
mod validate;

pub use api::API_KEY_HEADER;
pub use config::{
    ConfigError, ConfigUpdate, DEFAULT_MODELS, EmulatorConfig, QuotaLimits, QuotaTier,
};
pub use control::ScriptBody;
pub use plan::UNKNOWN_FINISH;
pub use quota::{QuotaKind, QuotaUsage};
pub use rpc_error::OVERLOADED;
pub use script::{ScriptError, ScriptedResponse, parse_duration};
pub use server::{EmulatorControl, MAX_BODY_BYTES, RunningEmulator, start};
pub use stats::{EmulatorStats, Endpoint, Outcome, RequestRecord};
pub use stream::STAMP_PREFIX;
