//! The problem responses the routes document, each written once: small response sets that a
//! `#[utoipa::path]` lists in its `responses(...)` beside its own entries, e.g.
//! `responses((status = 200, body = Me), problems::Bearer, problems::Busy)`.
//!
//! Each set is an enum whose variants are the responses (status, description, an
//! `application/problem+json` body of [`Problem`]). The sets a route lists never share a status:
//! an entry a route words its own way (a 409 of its own, say) is written in that route, in place
//! of the set that would give the same status. The types are never built, only read by utoipa,
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use utoipa::IntoResponses;

use crate::problem::{PROBLEM_JSON, Problem};

/// 401 for a route behind our bearer access token.
#[derive(IntoResponses)]
pub enum Bearer {
    #[response(
        status = 401,
        description = "missing, invalid, expired or revoked access token",
        content_type = PROBLEM_JSON
    )]
    Unauthorized(Problem<'static>),
}

/// 429 and 503: the shared rate limits, an unavailable dependency, a draining node.
#[derive(IntoResponses)]
pub enum Busy {
    #[response(
        status = 429,
        description = "rate limited (Retry-After, RateLimit-* headers)",
        content_type = PROBLEM_JSON
    )]
    RateLimited(Problem<'static>),
    #[response(
        status = 503,
        description = "a dependency is unavailable or the node is draining (Retry-After)",
        content_type = PROBLEM_JSON
    )]
    Unavailable(Problem<'static>),
}

/// 400 for a request whose JSON body, query or cursor cannot be read.
#[derive(IntoResponses)]
pub enum Malformed {
    #[response(
        status = 400,
        description = "malformed JSON, query or cursor",
        content_type = PROBLEM_JSON
    )]
    BadRequest(Problem<'static>),
}

/// 422 for a request that reads but breaks a documented rule.
#[derive(IntoResponses)]
pub enum Invalid {
    #[response(
        status = 422,
        description = "a field breaks a documented rule (field names it)",
        content_type = PROBLEM_JSON
    )]
    Unprocessable(Problem<'static>),
}

/// 413 and 415 for a route that takes a JSON body.
#[derive(IntoResponses)]
pub enum JsonBody {
    #[response(
        status = 413,
        description = "body over 16 KiB",
        content_type = PROBLEM_JSON
    )]
    TooLarge(Problem<'static>),
    #[response(
        status = 415,
        description = "body not application/json",
        content_type = PROBLEM_JSON
    )]
    NotJson(Problem<'static>),
}

/// 404 for a route about a user or a post that may not exist.
#[derive(IntoResponses)]
pub enum Missing {
    #[response(
        status = 404,
        description = "no such resource",
        content_type = PROBLEM_JSON
    )]
    NotFound(Problem<'static>),
}

/// 403 `blocked` for a follow, reply or like across a block.
#[derive(IntoResponses)]
pub enum Blocked {
    #[response(
        status = 403,
        description = "`blocked`: a block stands between the caller and this user",
        content_type = PROBLEM_JSON
    )]
    Forbidden(Problem<'static>),
}

/// 401 and 403 for the admin routes.
#[derive(IntoResponses)]
pub enum AdminOnly {
    #[response(
        status = 401,
        description = "not signed in",
        content_type = PROBLEM_JSON
    )]
    Unauthorized(Problem<'static>),
    #[response(
        status = 403,
        description = "not an admin",
        content_type = PROBLEM_JSON
    )]
    Forbidden(Problem<'static>),
}

/// 401 and 403 for the moderation routes.
#[derive(IntoResponses)]
pub enum StaffOnly {
    #[response(
        status = 401,
        description = "not signed in",
        content_type = PROBLEM_JSON
    )]
    Unauthorized(Problem<'static>),
    #[response(
        status = 403,
        description = "not a moderator or an admin",
        content_type = PROBLEM_JSON
    )]
    Forbidden(Problem<'static>),
}

/// 429 and 503 for the AI routes: the AI's queue and quotas as well as the node's.
#[derive(IntoResponses)]
pub enum AiBusy {
    #[response(
        status = 429,
        description = "the AI queue or the caller's AI quota is full (Retry-After)",
        content_type = PROBLEM_JSON
    )]
    Full(Problem<'static>),
    #[response(
        status = 503,
        description = "`ai_unavailable`: this node has no AI configured; \
                       `ai_quota_exhausted`: the AI quota for today is used up; \
                       `unavailable`: a dependency is unavailable, or the node is draining \
                       (Retry-After)",
        content_type = PROBLEM_JSON
    )]
    Unavailable(Problem<'static>),
}

/// 404 for the Google authorization-code flow when it is not configured.
#[derive(IntoResponses)]
pub enum CodeFlowOff {
    #[response(
        status = 404,
        description = "the code flow is not configured",
        content_type = PROBLEM_JSON
    )]
    NotConfigured(Problem<'static>),
}
