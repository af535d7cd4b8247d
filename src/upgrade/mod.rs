//! The websocket transport: upgrades are taken straight off the HTTP/1 connection, so an idle
//! websocket holds no HTTP machinery.
//!
//! actix-web keeps an upgraded connection inside its HTTP/1 dispatcher, with an 8 KiB read and
//! an 8 KiB write buffer and the whole dispatcher state for as long as the socket lives. Here
//! the server's HTTP service hands every request that asks for an upgrade to [`service`]
//! instead: the same checks as `GET /api/v1/ws` (draining, per-IP limit, `Origin`, handshake,
//! `since`, ticket or bearer token; refusals are problem documents), then `101`, then the
//! buffers are dropped and the socket is driven by the same Session actor (an actix-web-actors
//! `WebsocketContext`) over a read side that allocates only while bytes are arriving, and a
//! write side that writes each frame as the context yields it. A client that stops reading
//! stops its session from being polled, exactly as before (see `backlog.rs`).
//!
//! The connection is a [`Transport`]: plain TCP ([`tcp`], the path above, no buffer held while
//! idle) or TLS ([`tls`], where rustls keeps its record buffers for the connection's life).

mod tcp;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, HttpMessage, Request, Response, StatusCode};
use actix_service::{ServiceFactory, fn_service};
use actix_web::web::Bytes;
use actix_web::{ResponseError, web};
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use crate::problem::ApiError;
use crate::request_context::{self, REQUEST_ID};
use crate::routes::ws::{Authorized, SocketQuery, authorize, new_session};
use crate::state::AppState;

const SOCKET_PATH: &str = "/api/v1/ws";
/// The 101, or a refusal, must be written within this (a client that reads nothing cannot
/// hold the connection).
const HANDSHAKE_WRITE: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection an upgraded websocket is driven over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Sized + 'static {
    /// Drives `session` over this connection until either side ends it; `leftover` is what the
    /// client sent after its request head. Returns at once (the socket gets a task of its own).
    fn run(
        self,
        session: aisocial_actors::session::Session,
        leftover: Bytes,
        stall: std::time::Duration,
        open: OpenSocket,
    );
}

static STALLED: std::sync::LazyLock<prometheus::IntCounter> = std::sync::LazyLock::new(|| {
    aisocial_actors::meter::counter(
        "aisocial_websocket_write_stalls_total",
        "Websockets dropped because the client accepted nothing for the idle timeout, or the write failed.",
    )
});
/// Bytes read from a socket at a time (allocated only while a read is happening).
const READ_CHUNK: usize = 4096;

/// The upgrade service of the server's HTTP/1 connections.
pub fn service<T: Transport>(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    (Request, Framed<T, Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
> + Clone {
    fn_service(move |(req, framed): (Request, Framed<T, Codec>)| {
        let state = state.clone();
        async move {
            upgrade(state, req, framed).await;
            // Every outcome was answered on the connection itself.
            Ok::<_, actix_web::Error>(())
        }
    })
}

async fn upgrade<T: Transport>(state: web::Data<AppState>, req: Request, framed: Framed<T, Codec>) {
    let request_id = request_context::request_id(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = "GET",
        route = SOCKET_PATH,
        user_id = tracing::field::Empty
    );
    upgrade_in_span(state, req, framed, request_id)
        .instrument(span)
        .await;
}

async fn upgrade_in_span<T: Transport>(
    state: web::Data<AppState>,
    req: Request,
    mut framed: Framed<T, Codec>,
    request_id: String,
) {
    let started = Instant::now();
    let peer = req.peer_addr().map(|a| a.ip());
    let accepted = accept(&state, &req, peer).await;
    let status = match accepted {
        Ok(accepted) => {
            let mut response = accepted.response;
            if let Ok(value) = actix_http::header::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID.clone(), value);
            }
            let sent = tokio::time::timeout(
                HANDSHAKE_WRITE,
                framed.send(Message::Item((response, BodySize::None))),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
            let parts = framed.into_parts();
            // The HTTP buffers go; bytes the client sent after its request head stay.
            let leftover = Bytes::copy_from_slice(&parts.read_buf);
            drop(parts.read_buf);
            drop(parts.write_buf);
            let session = new_session(&state, accepted.authorized);
            let open = state.sockets.open();
            parts
                .io
                .run(session, leftover, state.session_config.idle_timeout, open);
            StatusCode::SWITCHING_PROTOCOLS
        }
        Err(error) => {
            let status = error.status_code();
            let _ = tokio::time::timeout(HANDSHAKE_WRITE, refuse(&mut framed, &error, &request_id))
                .await;
            status
        }
    };
    crate::routes::ws::count_upgrade(status.as_u16());
    request_context::record(
        "GET",
        if req.path() == SOCKET_PATH {
            SOCKET_PATH
        } else {
            "unmatched"
        },
        req.path(),
        status.as_u16(),
        started.elapsed(),
        peer,
    );
}

struct Accepted {
    response: Response<()>,
    authorized: Authorized,
}

async fn accept(
    state: &AppState,
    req: &Request,
    peer: Option<IpAddr>,
) -> Result<Accepted, ApiError> {
    // The per-IP limit every HTTP request counts against, whatever it asks for.
    if let Some(ip) = crate::client_ip::client_ip(peer, req.headers(), &state.trusted_proxies) {
        let limit = state.rate_limits.ip_per_min;
        let decision = state.rate_limiter.check("ip", &ip.to_string(), limit);
        if !decision.allowed {
            return Err(ApiError::RateLimited {
                retry_after_secs: decision.reset_secs,
                limit,
            });
        }
    }
    if req.path() != SOCKET_PATH {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    if req.method() != actix_http::Method::GET {
        return Err(ApiError::bad_request(
            "invalid_handshake",
            "a websocket upgrade is a GET",
        ));
    }
    let query = web::Query::<SocketQuery>::from_query(req.uri().query().unwrap_or_default())
        .map_err(|e| {
            ApiError::bad_request("invalid_query", format!("the query string is invalid: {e}"))
        })?
        .into_inner();
    let (response, handshake) = match actix_http::ws::handshake(req.head()) {
        Ok(mut builder) => (Some(builder.finish().drop_body()), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let authorized = authorize(state, req.headers(), peer, &query, handshake).await?;
    let response = response
        .ok_or_else(|| ApiError::bad_request("invalid_handshake", "not a websocket upgrade"))?;
    Ok(Accepted {
        response,
        authorized,
    })
}

/// Answers a refused upgrade with its problem document and closes the connection.
async fn refuse<T: Transport>(framed: &mut Framed<T, Codec>, error: &ApiError, request_id: &str) {
    let response: Response<_> = error.error_response().into();
    let (mut head, body) = response.into_parts();
    let body = actix_http::body::to_bytes(body).await.unwrap_or_default();
    head.head_mut().set_connection_type(ConnectionType::Close);
    if let Ok(value) = actix_http::header::HeaderValue::from_str(request_id) {
        head.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let size = BodySize::Sized(body.len() as u64);
    let _ = framed.send(Message::Item((head, size))).await;
    if !body.is_empty() {
        let _ = framed.send(Message::Chunk(Some(body))).await;
    }
    let _ = framed.send(Message::Chunk(None)).await;
    let _ = framed.close().await;
}

/// Websockets this node holds: the server's own connection tracking lets go of a socket once
/// it is upgraded, so shutdown waits on this instead for every close frame to be written.
#[derive(Debug, Default)]
pub struct OpenSockets {
    count: std::sync::atomic::AtomicUsize,
    none_left: tokio::sync::Notify,
}

impl OpenSockets {
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until no websocket is left, or `timeout`; true when none is left.
    pub async fn wait_closed(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }

    fn open(self: &Arc<Self>) -> OpenSocket {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        OpenSocket(Arc::clone(self))
    }
}

/// Counts one websocket while it lives.
pub struct OpenSocket(Arc<OpenSockets>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.none_left.notify_waiters();
        }
    }
}

/// How long a closed websocket waits for the client to close its side, so that what was sent
/// last (the close frame) is read rather than reset away.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
