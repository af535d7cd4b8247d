//! The websocket handshake's checks, in the order every upgrade passes them, and the Session
//! actor an accepted upgrade starts.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_http::ws::HandshakeError;
use actix_web::http::header;
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::ids::{EventId, SessionId};
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::session::{Session, SessionConfig, SessionIdentity};
use aisocial_actors::store::ReadPool;
use serde::Deserialize;

use super::OpenSockets;
use crate::admission::Admission;
use crate::auth::Verifier;
use crate::auth::tickets::Tickets;
use crate::lifecycle::Lifecycle;
use crate::problem::ApiError;
use crate::rate_limit::RateLimiting;

/// What the websocket upgrade needs: the checks' handles, and what a Session is started with.
pub struct Gate {
    pub lifecycle: Arc<Lifecycle>,
    pub allowed_origins: Vec<String>,
    pub verifier: Arc<Verifier>,
    pub tickets: Arc<Tickets>,
    pub limits: Arc<RateLimiting>,
    pub admission: Arc<Admission>,
    pub next_session: AtomicU64,
    pub broker: MeteredAddr<FeedBroker>,
    pub pool: ReadPool,
    pub session_config: Arc<SessionConfig>,
    /// Websockets held by this node (for shutdown).
    pub sockets: Arc<OpenSockets>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketQuery {
    pub since: Option<String>,
    pub ticket: Option<String>,
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
        426 => "upgrade_required",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "refused",
    };
    UPGRADES.with_label_values(&[outcome]).inc();
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
    gate: &Gate,
    headers: &header::HeaderMap,
    peer: Option<std::net::IpAddr>,
    query: &SocketQuery,
    handshake: Result<(), HandshakeError>,
) -> Result<Authorized, ApiError> {
    let since = match checks_before_the_caller(gate, headers, query, handshake) {
        Ok(since) => since,
        Err(refused) => {
            // A ticket is single use whatever the answer: one shown to a refused upgrade
            // cannot be tried again by whoever saw it.
            if let Some(ticket) = &query.ticket {
                let _ = gate.tickets.redeem(ticket).await;
            }
            return Err(refused);
        }
    };
    let me = match &query.ticket {
        Some(ticket) => gate.tickets.redeem(ticket).await?,
        None => {
            let me = gate.verifier.verify_bearer(headers)?;
            gate.limits.charge_user(me.id)?;
            me
        }
    };
    tracing::Span::current().record("user_id", me.id.0);
    let ip = gate.limits.client_key(peer, headers);
    let slot = gate.admission.admit(me.id, ip)?;
    let identity = SessionIdentity {
        user: me.id,
        handle: me.handle,
        family: Some(me.family),
        expires_at: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(me.expires_at)),
    };
    Ok(Authorized {
        identity,
        since,
        slot,
    })
}

/// The checks that do not need to know the caller: the node is not draining, the `Origin` is
/// allowed, the handshake is well formed, `since` is an event id.
fn checks_before_the_caller(
    gate: &Gate,
    headers: &header::HeaderMap,
    query: &SocketQuery,
    handshake: Result<(), HandshakeError>,
) -> Result<Option<EventId>, ApiError> {
    if gate.lifecycle.is_draining() {
        return Err(ApiError::unavailable(
            "this node is shutting down; reconnect to another",
            1,
        ));
    }
    if !origin_allowed(headers, &gate.allowed_origins) {
        return Err(ApiError::Forbidden(
            "this Origin may not open websockets".into(),
        ));
    }
    handshake.map_err(|e| match e {
        // A plain request: HTTP's answer is 426 with the protocol to upgrade to.
        HandshakeError::NoWebsocketUpgrade | HandshakeError::NoConnectionUpgrade => {
            ApiError::UpgradeRequired(format!("this resource is a websocket: {e}"))
        }
        other => ApiError::bad_request(
            "invalid_handshake",
            format!("not a websocket upgrade: {other}"),
        ),
    })?;
    parse_since(query.since.as_deref())
}

/// The Session actor for an authorised upgrade (holding its admission slot while it lives).
pub fn new_session(gate: &Gate, authorized: Authorized) -> Session {
    Session::new(
        SessionId(gate.next_session.fetch_add(1, Ordering::Relaxed)),
        authorized.identity,
        authorized.since,
        gate.broker.clone(),
        gate.pool.clone(),
        gate.session_config.clone(),
    )
    .holding(Box::new(authorized.slot))
}
