//! HTTP routes, one module per resource, and the extractor configuration that turns every
//! malformed request into a problem document.

mod admin;
mod ai;
mod auth_dev;
mod auth_google;
mod auth_session;
mod blocks;
pub mod body;
mod follows;
pub mod health;
mod me;
pub mod metrics;
mod moderation;
mod notifications;
mod openapi;
mod pages;
mod posts;
mod problems;
mod timeline;
mod users;
pub mod ws;

use actix_web::error::{PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};
use aisocial_actors::db_writer::DbWriter;
use aisocial_actors::meter::MeteredAddr;

use crate::problem::ApiError;

/// The answer carrying a new token pair: never stored by a cache on the way.
fn tokens_issued(pair: crate::auth::pair::TokenPair) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(pair)
}

/// The DbWriter, as a route extracts it.
type Writer = web::Data<MeteredAddr<DbWriter>>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .service(
            web::scope("/api/v1")
                .service(web::resource("/auth/methods").route(web::get().to(auth_google::methods)))
                .service(web::resource("/auth/dev").route(web::post().to(auth_dev::sign_in_dev)))
                .service(
                    web::resource("/auth/google")
                        .route(web::post().to(auth_google::sign_in_with_id_token)),
                )
                .service(
                    web::resource("/auth/google/login").route(web::get().to(auth_google::login)),
                )
                .service(
                    web::resource("/auth/google/callback")
                        .route(web::get().to(auth_google::callback)),
                )
                .service(
                    web::resource("/auth/refresh").route(web::post().to(auth_session::refresh)),
                )
                .service(web::resource("/auth/logout").route(web::post().to(auth_session::logout)))
                .service(
                    web::resource("/me")
                        .route(web::get().to(me::get_me))
                        .route(web::patch().to(me::patch_me)),
                )
                .service(web::resource("/openapi.json").route(web::get().to(openapi::document)))
                .service(web::resource("/ws/ticket").route(web::post().to(ws::issue_ticket)))
                .service(web::resource("/users/{handle}").route(web::get().to(users::get_profile)))
                .service(
                    web::resource("/users/{handle}/followers")
                        .route(web::get().to(users::followers)),
                )
                .service(
                    web::resource("/users/{handle}/following")
                        .route(web::get().to(users::following)),
                )
                .service(web::resource("/users/{handle}/posts").route(web::get().to(users::posts)))
                .service(
                    web::resource("/posts/{id}")
                        .route(web::get().to(posts::get_post))
                        .route(web::delete().to(posts::delete_post)),
                )
                .service(web::resource("/posts/{id}/replies").route(web::get().to(posts::replies)))
                .service(
                    web::resource("/posts/{id}/like")
                        .route(web::put().to(posts::like))
                        .route(web::delete().to(posts::unlike)),
                )
                .service(web::resource("/notifications").route(web::get().to(notifications::list)))
                .service(
                    web::resource("/users/{handle}/follow")
                        .route(web::put().to(follows::follow_user))
                        .route(web::delete().to(follows::unfollow_user)),
                )
                .service(
                    web::resource("/users/{handle}/block")
                        .route(web::put().to(blocks::block_user))
                        .route(web::delete().to(blocks::unblock_user)),
                )
                .service(
                    web::resource("/users/{handle}/mute")
                        .route(web::put().to(blocks::mute_user))
                        .route(web::delete().to(blocks::unmute_user)),
                )
                .service(web::resource("/me/blocks").route(web::get().to(blocks::my_blocks)))
                .service(web::resource("/me/mutes").route(web::get().to(blocks::my_mutes)))
                .service(web::resource("/posts").route(web::post().to(posts::create_post)))
                .service(web::resource("/ai/compose").route(web::post().to(ai::compose)))
                .service(web::resource("/ai/summary").route(web::post().to(ai::summary)))
                .service(web::resource("/timeline").route(web::get().to(timeline::home_timeline)))
                .service(web::resource("/ws").route(web::get().to(ws::open_socket)))
                .service(web::resource("/reports").route(web::post().to(moderation::create_report)))
                .service(
                    web::resource("/admin/reports").route(web::get().to(moderation::list_reports)),
                )
                .service(
                    web::resource("/admin/reports/{id}/resolve")
                        .route(web::post().to(moderation::resolve_report)),
                )
                .service(
                    web::resource("/admin/users/suspended")
                        .route(web::get().to(moderation::suspended)),
                )
                .service(
                    web::resource("/admin/users/{handle}/suspend")
                        .route(web::post().to(moderation::suspend)),
                )
                .service(
                    web::resource("/admin/users/{handle}/unsuspend")
                        .route(web::post().to(moderation::unsuspend)),
                )
                .service(
                    web::resource("/admin/users/{handle}/role")
                        .route(web::put().to(moderation::set_role)),
                ),
        )
        .service(web::resource("/health/live").route(web::get().to(health::live)))
        .service(web::resource("/health/ready").route(web::get().to(health::ready)))
        .service(web::resource("/health/system").route(web::get().to(health::system)))
        .service(web::resource("/metrics").route(web::get().to(metrics::export)))
        .service(web::resource("/admin/actors").route(web::get().to(admin::actors)))
        .service(web::resource("/admin/audit").route(web::get().to(admin::audit)))
        .service(web::resource("/admin/live").route(web::get().to(admin::live)))
        .service(web::resource("/admin/dashboard").route(web::get().to(pages::dashboard)))
        .service(web::resource("/static/{file}").route(web::get().to(pages::asset)))
        .service(web::resource("/").route(web::get().to(pages::index)));
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("no such resource ({err})")).into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(
        "invalid_query",
        format!("the query string is invalid: {err}"),
    )
    .into()
}
