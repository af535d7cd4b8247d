//! `GET /api/v1/ws`: the websocket upgrade (served by `crate::upgrade` off the HTTP/1
//! connection; this route answers what reaches actix-web), and `POST /api/v1/ws/ticket`, which
//! issues the single-use tickets browsers open it with.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws as actix_ws;
use aisocial_actors::protocol::MAX_FRAME_BYTES;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::auth::tickets::{TICKET_TTL_SECS, Tickets};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::routes::problems;
use crate::upgrade::handshake::{Gate, SocketQuery, authorize, count_upgrade, new_session};

/// A websocket ticket.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketResponse {
    ticket: String,
    expires_in: u64,
}

#[utoipa::path(
    post,
    path = "/api/v1/ws/ticket",
    tag = "realtime",
    summary = "A single-use websocket ticket, valid 60 s",
    responses(
        (status = 201, body = TicketResponse),
        problems::Bearer, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn issue_ticket(
    tickets: web::Data<Tickets>,
    me: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let ticket = tickets.issue(me).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketResponse {
            ticket: ticket.text,
            expires_in: TICKET_TTL_SECS,
        }))
}

#[utoipa::path(
    get,
    path = "/api/v1/ws",
    tag = "realtime",
    summary = "Open the websocket (ticket or bearer token); see the protocol in the README",
    params(SocketQuery),
    responses(
        (status = 101, description = "switching to the websocket protocol; hello first"),
        (status = 400, description = "a malformed websocket handshake", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 426, description = "not a websocket upgrade (Upgrade: websocket)",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "Origin not allowed", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 422, description = "since is not an event id", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn open_socket(
    gate: web::Data<Gate>,
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
        let authorized = authorize(&gate, req.headers(), peer, &query, handshake).await?;
        let session = new_session(&gate, authorized);
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
