//! `POST /api/v1/posts`: create a post or reply, answered 201 after COMMIT; honours
//! `Idempotency-Key`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aisocial_actors::db_writer::CreatePost;
use aisocial_actors::ids::PostId;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::problem::ApiError;
use crate::routes::body::JsonBody;
use crate::state::AppState;

pub const MAX_BODY_CHARS: usize = 1000;
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    body: String,
    reply_to: Option<i64>,
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::validation(
            "Idempotency-Key",
            format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

pub async fn create_post(
    state: web::Data<AppState>,
    me: AuthUser,
    req: HttpRequest,
    body: JsonBody<NewPost>,
) -> Result<HttpResponse, ApiError> {
    let NewPost { body, reply_to } = body.into_inner();
    let text = body.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_BODY_CHARS {
        return Err(ApiError::validation(
            "body",
            format!(
                "a post is 1 to {MAX_BODY_CHARS} characters after trimming (this one has {chars})"
            ),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::validation(
            "body",
            "a post cannot contain NUL characters",
        ));
    }
    if reply_to.is_some_and(|id| id <= 0) {
        return Err(ApiError::validation("reply_to", "reply_to is a post id"));
    }
    let key = idempotency_key(&req)?;
    let created = state
        .writer
        .send(CreatePost {
            author: me.id,
            body: text.to_owned(),
            reply_to: reply_to.map(PostId),
            idempotency_key: key,
        })
        .await??;
    let location = format!("/api/v1/posts/{}", created.post.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .insert_header((
            "idempotent-replayed",
            if created.created { "false" } else { "true" },
        ))
        .json(created.post))
}
