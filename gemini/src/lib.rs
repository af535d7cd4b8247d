//! Gemini for aisocial: the REST client the AiPool calls, and the emulator that stands in for
//! Google where it cannot be reached (tests, load tests, local runs without `GEMINI_API_KEY`).

pub mod client;
pub mod emulator;
pub mod error;
pub mod sse;
pub mod wire;

pub use client::{ClientConfig, GeminiClient, StreamEvent};
pub use error::{ErrorClass, GeminiError, QuotaScope};
