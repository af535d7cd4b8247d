//! `GET /api/v1/ws`: the websocket upgrade. Checks draining, `Origin`, the handshake and the
//! caller's token before a Session actor is started.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws as actix_ws;
use aisocial_actors::ids::EventId;
use aisocial_actors::protocol::MAX_FRAME_BYTES;
use aisocial_actors::session::Session;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SocketQuery {
    since: Option<String>,
}

fn parse_since(raw: Option<&str>) -> Result<Option<EventId>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = || ApiError::validation("since", "since is the id of the last event you saw");
    if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    raw.parse::<i64>()
        .map(|id| Some(EventId(id)))
        .map_err(|_| invalid())
}

/// The `Origin` rule: absent is allowed (non-browser clients); present must be on the list.
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    match req.headers().get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a == o)),
    }
}

pub async fn open_socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<SocketQuery>,
) -> Result<HttpResponse, ApiError> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::unavailable(
            "this node is shutting down; reconnect to another",
            1,
        ));
    }
    if !origin_allowed(&req, &state.allowed_origins) {
        return Err(ApiError::Forbidden(
            "this Origin may not open websockets".into(),
        ));
    }
    actix_ws::handshake(&req).map_err(|e| {
        ApiError::bad_request("invalid_handshake", format!("not a websocket upgrade: {e}"))
    })?;
    let me = AuthUser::extract_from(&req)?;
    let since = parse_since(query.since.as_deref())?;
    let session = Session::new(
        state.next_session_id(),
        me.id,
        me.handle,
        since,
        state.broker.clone(),
        state.pool.clone(),
        state.session_config.clone(),
    );
    actix_ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
        .map_err(|e| ApiError::bad_request("invalid_handshake", e.to_string()))
}
