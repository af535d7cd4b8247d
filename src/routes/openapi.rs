//! `GET /api/v1/openapi.json`: the OpenAPI document, generated from the route annotations.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    admin, ai, auth_dev, auth_google, auth_session, follows, health, me, metrics, notifications,
    pages, posts, timeline, users, ws,
};

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "aisocial",
        description = "The realtime backend of an AI social network. \
                       Errors are RFC 9457 problem documents."
    ),
    paths(
        auth_google::methods,
        auth_dev::sign_in_dev,
        auth_google::sign_in_with_id_token,
        auth_google::login,
        auth_google::callback,
        auth_session::refresh,
        auth_session::logout,
        me::get_me,
        me::patch_me,
        users::get_profile,
        users::followers,
        users::following,
        users::posts,
        follows::follow_user,
        follows::unfollow_user,
        posts::create_post,
        posts::get_post,
        posts::delete_post,
        posts::replies,
        posts::like,
        posts::unlike,
        timeline::home_timeline,
        ai::compose,
        ai::summary,
        notifications::list,
        ws::issue_ticket,
        ws::open_socket,
        health::live,
        health::ready,
        health::system,
        metrics::export,
        admin::actors,
        admin::audit,
        admin::live,
        pages::index,
        pages::dashboard,
        pages::asset,
        document,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-in and tokens"),
        (name = "users", description = "Profiles, follows, notifications"),
        (name = "posts", description = "Posts, replies, likes, timelines"),
        (name = "realtime", description = "The websocket"),
        (name = "ai", description = "The AI: drafts and catch-ups streamed over the websocket"),
        (name = "operations", description = "Health, metrics, admin"),
        (name = "pages",
         description = "The bundled web pages: the try-it client and the dashboard"),
    )
)]
pub struct ApiDoc;

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    summary = "This document",
    responses((status = 200, description = "the OpenAPI document"))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
