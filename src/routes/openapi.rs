//! `GET /api/v1/openapi.json`: the OpenAPI document, generated from the route annotations.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    admin, ai, auth_dev, auth_google, auth_session, blocks, follows, health, me, metrics,
    moderation, notifications, pages, posts, timeline, users, ws,
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
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route counts against a per-IP limit (the API's, sign-in's, or health and metrics'
/// own), so every operation can answer 429: the ones whose attribute does not say so get the
/// shared entry here, and the document tells the truth under any limits.
struct EveryRouteIsLimited;

impl utoipa::Modify for EveryRouteIsLimited {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let limited = ResponseBuilder::new()
            .description("rate limited (Retry-After, RateLimit-* headers)")
            .content(
                crate::problem::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                operation
                    .responses
                    .responses
                    .entry("429".to_owned())
                    .or_insert_with(|| limited.clone().into());
            }
        }
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
        blocks::block_user,
        blocks::unblock_user,
        blocks::mute_user,
        blocks::unmute_user,
        blocks::my_blocks,
        blocks::my_mutes,
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
        moderation::create_report,
        moderation::list_reports,
        moderation::resolve_report,
        moderation::suspended,
        moderation::suspend,
        moderation::unsuspend,
        moderation::set_role,
        pages::index,
        pages::dashboard,
        pages::asset,
        document,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&BearerAuth, &EveryRouteIsLimited),
    tags(
        (name = "auth", description = "Sign-in and tokens"),
        (name = "users", description = "Profiles, follows, notifications"),
        (name = "posts", description = "Posts, replies, likes, timelines"),
        (name = "realtime", description = "The websocket"),
        (name = "ai", description = "The AI: drafts and catch-ups streamed over the websocket"),
        (name = "moderation",
         description = "Reports, the moderation queue, suspensions and roles"),
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

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi;

    use super::ApiDoc;

    /// The responses each operation documents, by status. A change here is a change of the API's
    /// contract: update the table on purpose.
    const RESPONSES: &str = "\
DELETE /api/v1/posts/{id} 204 401 403 404 429 503
DELETE /api/v1/posts/{id}/like 204 401 404 429 503
DELETE /api/v1/users/{handle}/block 204 401 404 409 429 503
DELETE /api/v1/users/{handle}/follow 204 401 404 409 429 503
DELETE /api/v1/users/{handle}/mute 204 401 404 409 429 503
GET / 200 429
GET /admin/actors 200 401 403 429 503
GET /admin/audit 200 400 401 403 422 429 503
GET /admin/dashboard 200 429
GET /admin/live 200 401 403 429 503
GET /api/v1/admin/reports 200 400 401 403 422 429 503
GET /api/v1/admin/users/suspended 200 400 401 403 422 429 503
GET /api/v1/auth/google/callback 200 400 401 403 404 429 503
GET /api/v1/auth/google/login 302 404 429 503
GET /api/v1/auth/methods 200 429
GET /api/v1/me 200 401 429 503
GET /api/v1/me/blocks 200 400 401 422 429 503
GET /api/v1/me/mutes 200 400 401 422 429 503
GET /api/v1/notifications 200 400 401 422 429 503
GET /api/v1/openapi.json 200 429
GET /api/v1/posts/{id} 200 401 404 429 503
GET /api/v1/posts/{id}/replies 200 400 401 404 422 429 503
GET /api/v1/timeline 200 400 401 422 429 503
GET /api/v1/users/{handle} 200 401 404 429 503
GET /api/v1/users/{handle}/followers 200 400 401 404 422 429 503
GET /api/v1/users/{handle}/following 200 400 401 404 422 429 503
GET /api/v1/users/{handle}/posts 200 400 401 404 422 429 503
GET /api/v1/ws 101 400 401 403 422 426 429 503
GET /health/live 200 429
GET /health/ready 200 429 503
GET /health/system 200 429
GET /metrics 200 401 404 429 503
GET /static/{file} 200 404 429
PATCH /api/v1/me 200 400 401 413 415 422 429 503
POST /api/v1/admin/reports/{id}/resolve 200 400 401 403 404 409 413 415 422 429 503
POST /api/v1/admin/users/{handle}/suspend 204 401 403 404 409 429 503
POST /api/v1/admin/users/{handle}/unsuspend 204 401 403 404 409 429 503
POST /api/v1/ai/compose 202 400 401 413 415 422 429 503
POST /api/v1/ai/summary 202 401 429 503
POST /api/v1/auth/dev 200 400 403 404 413 415 422 429 503
POST /api/v1/auth/google 200 400 401 403 404 413 415 422 429 503
POST /api/v1/auth/logout 204 401 429 503
POST /api/v1/auth/refresh 200 400 401 413 415 422 429 503
POST /api/v1/posts 201 400 401 403 404 409 413 415 422 429 503
POST /api/v1/reports 201 400 401 404 409 413 415 422 429 503
POST /api/v1/ws/ticket 201 401 429 503
PUT /api/v1/admin/users/{handle}/role 200 400 401 403 404 409 413 415 422 429 503
PUT /api/v1/posts/{id}/like 204 401 403 404 429 503
PUT /api/v1/users/{handle}/block 204 401 404 409 429 503
PUT /api/v1/users/{handle}/follow 204 401 403 404 409 429 503
PUT /api/v1/users/{handle}/mute 204 400 401 404 409 413 415 422 429 503
";

    /// Every operation as `METHOD path`, with its responses.
    fn operations(doc: &Value) -> Vec<(String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let op_name = format!("{} {path}", method.to_uppercase());
                ops.push((op_name, op["responses"].clone()));
            }
        }
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        ops
    }

    #[test]
    fn every_operation_documents_its_responses() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let table: String = operations(&doc)
            .iter()
            .map(|(op, responses)| {
                let codes: Vec<&str> = responses
                    .as_object()
                    .into_iter()
                    .flat_map(|r| r.keys().map(String::as_str))
                    .collect();
                format!("{op} {}\n", codes.join(" "))
            })
            .collect();
        assert_eq!(table, RESPONSES);
    }

    #[test]
    fn every_error_is_a_described_problem_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let problem = &doc["components"]["schemas"]["Problem"];
        assert!(problem["properties"]["code"].is_object(), "{problem}");
        let mut problems = 0;
        for (op, responses) in operations(&doc) {
            for (status, response) in responses.as_object().into_iter().flatten() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{op} {status} has no description"
                );
                // Readiness answers its own document when it is not ready.
                if op == "GET /health/ready" && status == "503" {
                    continue;
                }
                let content = &response["content"];
                assert_eq!(
                    content.as_object().map(|c| c.len()),
                    Some(1),
                    "{op} {status}: {content}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{op} {status}: {content}"
                );
                problems += 1;
            }
        }
        assert!(problems > 0);
    }
}
