//! Runtime control over HTTP, under `/emulator/`: stats, configuration, script, reset.
//!
//! - `GET /emulator/stats` → [`EmulatorStats`](super::EmulatorStats)
//! - `GET /emulator/config` → the configuration; `POST /emulator/config` with a
//!   [`ConfigUpdate`] → the new configuration
//! - `GET /emulator/script` → `{"next": [...]}`; `POST /emulator/script` with
//!   `{"next": [{"status": 503}, {"status": 429, "retry_delay": "1.5s"}]}` appends and answers
//!   `{"queued": n}`; `DELETE /emulator/script` empties it
//! - `POST /emulator/reset` forgets quota usage, the script and the counters → `{"reset": true}`
//!
//! A body the emulator cannot use answers 400 with the usual error envelope.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::ConfigUpdate;
use super::rpc_error::RpcError;
use super::script::ScriptedResponse;
use super::state::Shared;

/// The body of `POST /emulator/script` (and of `GET`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    pub next: Vec<ScriptedResponse>,
}

pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/emulator")
            .route("/stats", web::get().to(stats))
            .route("/config", web::get().to(show_config))
            .route("/config", web::post().to(change_config))
            .route("/script", web::get().to(show_script))
            .route("/script", web::post().to(append_script))
            .route("/script", web::delete().to(clear_script))
            .route("/reset", web::post().to(reset)),
    );
}

fn json_reply(value: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::to_string(value).unwrap_or_default())
}

fn unusable(reason: impl std::fmt::Display) -> HttpResponse {
    RpcError::new(400, reason.to_string()).to_response()
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    json_reply(&shared.stats())
}

async fn show_config(shared: web::Data<Shared>) -> HttpResponse {
    json_reply(&shared.config())
}

async fn change_config(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let update: ConfigUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => return unusable(e),
    };
    match shared.update_config(&update) {
        Ok(config) => json_reply(&config),
        Err(e) => unusable(e),
    }
}

async fn show_script(shared: web::Data<Shared>) -> HttpResponse {
    json_reply(&ScriptBody {
        next: shared.script(),
    })
}

async fn append_script(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let script: ScriptBody = match serde_json::from_slice(&body) {
        Ok(script) => script,
        Err(e) => return unusable(e),
    };
    match shared.push_script(script.next) {
        Ok(queued) => json_reply(&json!({ "queued": queued })),
        Err(e) => unusable(e),
    }
}

async fn clear_script(shared: web::Data<Shared>) -> HttpResponse {
    shared.clear_script();
    json_reply(&json!({"queued": 0}))
}

async fn reset(shared: web::Data<Shared>) -> HttpResponse {
    shared.reset();
    json_reply(&json!({"reset": true}))
}
