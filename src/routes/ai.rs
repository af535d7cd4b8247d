//! `POST /api/v1/ai/compose` and `POST /api/v1/ai/summary`: queue an AI job and answer 202;
//! the text streams to the caller's websocket as `ai.delta`, then `ai.done` or `ai.error`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::ai::jobs::{self, AiJobs, MAX_PROMPT_CHARS};
use crate::auth::AuthUser;
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::routes::body::{JsonBody, trimmed_text};
use crate::routes::problems;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeRequest {
    /// What to write: 1 to 2000 characters after trimming; no NUL.
    #[schema(
        pattern = "^[^\\u0000]*\\S[^\\u0000]*$",
        min_length = 1,
        max_length = 2000
    )]
    prompt: String,
}

/// The job was queued; its text streams to the caller's websocket under this id.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    request_id: String,
}

fn accepted(id: impl ToString) -> HttpResponse {
    HttpResponse::Accepted().json(Accepted {
        request_id: id.to_string(),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/ai/compose",
    tag = "ai",
    summary = "Draft a post with the AI; 202, the draft streams over the websocket",
    request_body = ComposeRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 400, description = "malformed JSON", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::JsonBody, problems::Invalid, problems::AiBusy,
    ),
    security(("bearer" = []))
)]
pub async fn compose(
    jobs: web::Data<AiJobs>,
    me: AuthUser,
    body: JsonBody<ComposeRequest>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.into_inner().prompt;
    let prompt = trimmed_text("prompt", "a prompt", &raw, MAX_PROMPT_CHARS)?;
    jobs::check_quota(&jobs, me.id).await?;
    let id = jobs::submit(&jobs, jobs::compose(me.id, prompt)).await?;
    Ok(accepted(id))
}

#[utoipa::path(
    post,
    path = "/api/v1/ai/summary",
    tag = "ai",
    summary = "A catch-up of the caller's home timeline; 202, it streams over the websocket",
    responses(
        (status = 202, body = Accepted),
        problems::Bearer, problems::AiBusy,
    ),
    security(("bearer" = []))
)]
pub async fn summary(jobs: web::Data<AiJobs>, me: AuthUser) -> Result<HttpResponse, ApiError> {
    jobs::check_quota(&jobs, me.id).await?;
    let job = jobs::summary(&jobs, me.id, &me.handle).await?;
    let id = jobs::submit(&jobs, job).await?;
    Ok(accepted(id))
}
