//! `GET /api/v1/ws`: the websocket upgrade. Checks draining, `Origin`, the handshake and the
//! caller (a single-use `ticket`, or a bearer token) before a Session actor is started; and
//! `POST /api/v1/ws/ticket`, which issues the tickets.

use std::sync::LazyLock;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws as actix_ws;
use aisocial_actors::ids::{EventId, UserId};
use aisocial_actors::model::Role;
use aisocial_actors::protocol::MAX_FRAME_BYTES;
use aisocial_actors::session::{Session, SessionIdentity};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::auth::extract::{charge_user, verify_bearer_in};
use crate::auth::opaque;
use crate::problem::{ApiError, Problem, redis_error};
use crate::redis_store;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    since: Option<String>,
    ticket: Option<String>,
}

static UPGRADES: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    aisocial_actors::meter::labelled_counter(
        "aisocial_websocket_upgrades_total",
        "Websocket upgrade requests by outcome: accepted, or why they were refused.",
        &["outcome"],
    )
});

/// Counts an upgrade request by the status it was answered with.
pub fn count_upgrade(status: u16) {
    let outcome = match status {
        101 => "accepted",
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        422 => "invalid",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "refused",
    };
    UPGRADES.with_label_values(&[outcome]).inc();
}

const TICKET_PREFIX: &str = "tk_";
const TICKET_TTL_SECS: u64 = 60;
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a ticket stands for, kept in Redis until used or expired.
#[derive(Serialize, Deserialize)]
struct TicketClaims {
    user: i64,
    handle: String,
    role: Role,
    family: i64,
}

fn ticket_key(state: &AppState, ticket: &str) -> String {
    state.redis_key(&format!("ticket:{}", hex::encode(opaque::hash(ticket))))
}

/// A websocket ticket.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketResponse {
    ticket: String,
    expires_in: u64,
}

/// `POST /api/v1/ws/ticket`: a single-use ticket for a browser's websocket, valid 60 s.
#[utoipa::path(
    post,
    path = "/api/v1/ws/ticket",
    tag = "realtime",
    summary = "A single-use websocket ticket, valid 60 s",
    responses((status = 201, body = TicketResponse), (status = 401, description = "missing, invalid, expired or revoked access token", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited (Retry-After, RateLimit-* headers)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable or the node is draining (Retry-After)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn issue_ticket(
    state: web::Data<AppState>,
    me: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let ticket = opaque::generate(TICKET_PREFIX);
    let claims = TicketClaims {
        user: me.id.0,
        handle: me.handle,
        role: me.role,
        family: me.family,
    };
    let value = serde_json::to_string(&claims).map_err(|e| ApiError::Internal(e.into()))?;
    let mut store = redis::cmd("SET");
    store
        .arg(ticket_key(&state, &ticket.text))
        .arg(value)
        .arg("EX")
        .arg(TICKET_TTL_SECS);
    redis_store::run::<()>(&state.redis, store, REDIS_TIMEOUT)
        .await
        .map_err(redis_error)?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketResponse {
            ticket: ticket.text,
            expires_in: TICKET_TTL_SECS,
        }))
}

/// Redeems a ticket (at most once).
async fn redeem(state: &AppState, ticket: &str) -> Result<AuthUser, ApiError> {
    let refused =
        || ApiError::Unauthorized("the ticket is unknown, expired or already used".into());
    if !opaque::well_formed(ticket, TICKET_PREFIX) {
        return Err(refused());
    }
    let mut take = redis::cmd("GETDEL");
    take.arg(ticket_key(state, ticket));
    let value = redis_store::run::<Option<String>>(&state.redis, take, REDIS_TIMEOUT)
        .await
        .map_err(redis_error)?
        .ok_or_else(refused)?;
    let claims: TicketClaims = serde_json::from_str(&value).map_err(|_| refused())?;
    if state.revocations.is_revoked(claims.family) {
        return Err(refused());
    }
    Ok(AuthUser {
        id: UserId(claims.user),
        handle: claims.handle,
        role: claims.role,
        family: claims.family,
    })
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
pub fn origin_allowed(headers: &header::HeaderMap, allowed: &[String]) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a == o)),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "realtime",
    summary = "Open the websocket (ticket or bearer token); see the protocol in the README",
    params(SocketQuery),
    responses((status = 101, description = "switching to the websocket protocol; hello first"), (status = 400, description = "not a websocket upgrade", body = Problem, content_type = "application/problem+json"), (status = 401, description = "missing, invalid, expired or revoked access token", body = Problem, content_type = "application/problem+json"), (status = 403, description = "Origin not allowed", body = Problem, content_type = "application/problem+json"), (status = 422, description = "since is not an event id", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited (Retry-After, RateLimit-* headers)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable or the node is draining (Retry-After)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn open_socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
    query: web::Query<SocketQuery>,
) -> Result<HttpResponse, ApiError> {
    // The server's upgrade transport (`crate::upgrade`) takes every request that HTTP/1 marks
    // as an upgrade (`Upgrade: websocket`). What reaches this route asked for none and fails the
    // handshake check here after the same checks in the same order, or spelled its upgrade in
    // a way only the handshake check recognises (`Upgrade: foo, websocket`) and is served over
    // actix-web's own connection, authorised the same way.
    let handshake = actix_ws::handshake(&req).map(|_| ());
    let opened = async {
        let peer = req.peer_addr().map(|a| a.ip());
        let authorized = authorize(&state, req.headers(), peer, &query, handshake).await?;
        let session = new_session(&state, authorized);
        actix_ws::WsResponseBuilder::new(session, &req, stream)
            .frame_size(MAX_FRAME_BYTES)
            .start()
            .map_err(|e| ApiError::bad_request("invalid_handshake", e.to_string()))
    }
    .await;
    count_upgrade(match &opened {
        Ok(response) => response.status().as_u16(),
        Err(error) => actix_web::ResponseError::status_code(error).as_u16(),
    });
    opened
}

/// An upgrade that passed every check: who, from where to resume, and its admission slot.
pub struct Authorized {
    pub identity: SessionIdentity,
    pub since: Option<EventId>,
    pub slot: crate::admission::Slot,
}

/// Everything an upgrade must pass, in order: the node is not draining, the `Origin` is
/// allowed, the handshake is well formed, `since` is an event id, the caller is known (a
/// ticket, or a bearer token counted against the user's request rate as issuing a ticket is),
/// and the node and the caller's caps admit one more socket.
pub async fn authorize(
    state: &AppState,
    headers: &header::HeaderMap,
    peer: Option<std::net::IpAddr>,
    query: &SocketQuery,
    handshake: Result<(), actix_http::ws::HandshakeError>,
) -> Result<Authorized, ApiError> {
    if state.lifecycle.is_draining() {
        return Err(ApiError::unavailable(
            "this node is shutting down; reconnect to another",
            1,
        ));
    }
    if !origin_allowed(headers, &state.allowed_origins) {
        return Err(ApiError::Forbidden(
            "this Origin may not open websockets".into(),
        ));
    }
    handshake.map_err(|e| {
        ApiError::bad_request("invalid_handshake", format!("not a websocket upgrade: {e}"))
    })?;
    let since = parse_since(query.since.as_deref())?;
    let me = match &query.ticket {
        Some(ticket) => redeem(state, ticket).await?,
        None => {
            let me = verify_bearer_in(state, headers)?;
            charge_user(state, &me).await?;
            me
        }
    };
    tracing::Span::current().record("user_id", me.id.0);
    let ip = crate::client_ip::client_ip(peer, headers, &state.trusted_proxies);
    let slot = state.admission.admit(me.id, ip)?;
    let identity = SessionIdentity {
        user: me.id,
        handle: me.handle,
        family: Some(me.family),
    };
    Ok(Authorized {
        identity,
        since,
        slot,
    })
}

/// The Session actor for an authorised upgrade (holding its admission slot while it lives).
pub fn new_session(state: &AppState, authorized: Authorized) -> Session {
    Session::new(
        state.next_session_id(),
        authorized.identity,
        authorized.since,
        state.broker.clone(),
        state.pool.clone(),
        state.session_config.clone(),
    )
    .holding(Box::new(authorized.slot))
}
