//! What readiness reports about each dependency.

use std::time::Instant;

use aisocial_actors::error_chain::Chain;

/// A dependency's state for readiness.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    pub up: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    pub fn from_result<E: std::error::Error + 'static>(
        started: Instant,
        result: Result<(), E>,
    ) -> Self {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(()) => Check {
                up: true,
                latency_ms,
                error: None,
            },
            Err(e) => Check {
                up: false,
                latency_ms,
                error: Some(Chain(&e).to_string()),
            },
        }
    }
}
