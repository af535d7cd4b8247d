//! The bundled web pages: the try-it client at `/` and the operator dashboard at
//! `/admin/dashboard`, with their scripts (`session.js` shared by both) and style under
//! `/static/`. The files live in `web/` and are compiled into the binary, so nothing needs
//! building or installing to serve them.
//! The pages themselves hold no data; what they show comes from the API with the signed-in
//! user's token (the dashboard's data from `/admin/live`, admins only).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::problem::{ApiError, PROBLEM_JSON};

/// One bundled file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_str!("../../web/index.html"),
};
const DASHBOARD: Asset = Asset {
    name: "dashboard.html",
    content_type: HTML,
    body: include_str!("../../web/dashboard.html"),
};
const STATIC: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../../web/app.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: JS,
        body: include_str!("../../web/dashboard.js"),
    },
    Asset {
        name: "session.js",
        content_type: JS,
        body: include_str!("../../web/session.js"),
    },
    Asset {
        name: "moderation.js",
        content_type: JS,
        body: include_str!("../../web/moderation.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JS,
        body: include_str!("../../web/chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: CSS,
        body: include_str!("../../web/style.css"),
    },
];

/// Scripts and styles from this origin only, no inline code, no framing; the websocket and the
/// API on this origin only (`'self'` covers `ws:`/`wss:` to the same host in CSP Level 3, as
/// every current browser implements it).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

fn serve(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The files change with the binary; a short cache keeps a rolling upgrade coherent.
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .body(asset.body)
}

#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    summary = "The try-it web client",
    responses((status = 200, description = "the page", content_type = "text/html"))
)]
pub async fn index() -> HttpResponse {
    serve(&INDEX)
}

#[utoipa::path(
    get,
    path = "/admin/dashboard",
    tag = "pages",
    summary = "The live operator dashboard (its data needs an admin's token)",
    responses((status = 200, description = "the page", content_type = "text/html"))
)]
pub async fn dashboard() -> HttpResponse {
    serve(&DASHBOARD)
}

#[utoipa::path(
    get,
    path = "/static/{file}",
    tag = "pages",
    summary = "A script or style of the bundled pages",
    params((
        "file" = String, Path,
        description = "app.js, dashboard.js, moderation.js, session.js, chart.js or style.css"
    )),
    responses(
        (status = 200, description = "the file"),
        (status = 404, description = "no such file", body = crate::problem::Problem,
         content_type = PROBLEM_JSON),
    )
)]
pub async fn asset(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    STATIC
        .iter()
        .find(|a| a.name == file.as_str())
        .map(serve)
        .ok_or_else(|| ApiError::NotFound("no such file".into()))
}
