//! Every route given bad input answers a 4xx problem document: never a 5xx, never a hang.

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub(crate) struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    token: Option<String>,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

pub(crate) fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        token: None,
        headers: vec![("content-type", "application/json".to_owned())],
        body: None,
        status,
        code,
    }
}

impl Case {
    pub(crate) fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }
}

pub(crate) async fn check(app: &TestApp, case: Case) {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap_or_default();
    let mut req = app.http.request(method, app.url(&case.path));
    for (name, value) in &case.headers {
        req = req.header(*name, value);
    }
    if let Some(token) = &case.token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = case.body {
        req = req.body(body);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    assert_eq!(status, case.status, "{}: {body}", case.name);
    assert_eq!(ctype, "application/problem+json", "{}", case.name);
    assert_eq!(body["status"], status, "{}", case.name);
    assert_eq!(body["code"], case.code, "{}: {body}", case.name);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        case.name
    );
}

#[actix_web::test]
async fn every_route_answers_bad_input_with_a_problem_document() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let t = alice.token.as_str();
    let long_body = format!(r#"{{"body":"{}"}}"#, "é".repeat(1001));
    let huge = format!(r#"{{"body":"{}"}}"#, "a".repeat(100_000));
    let cases = vec![
        // Dev sign-in.
        case(
            "dev: malformed",
            "POST",
            "/api/v1/auth/dev",
            400,
            "invalid_json",
        )
        .body("{"),
        case(
            "dev: wrong type",
            "POST",
            "/api/v1/auth/dev",
            422,
            "validation_failed",
        )
        .body(r#"{"handle":5}"#),
        case(
            "dev: missing",
            "POST",
            "/api/v1/auth/dev",
            422,
            "validation_failed",
        )
        .body("{}"),
        case(
            "dev: unknown field",
            "POST",
            "/api/v1/auth/dev",
            422,
            "validation_failed",
        )
        .body(r#"{"handle":"abc","admin":true}"#),
        case(
            "dev: bad handle",
            "POST",
            "/api/v1/auth/dev",
            422,
            "validation_failed",
        )
        .body(r#"{"handle":"Robert'); DROP TABLE users;--"}"#),
        case(
            "dev: html handle",
            "POST",
            "/api/v1/auth/dev",
            422,
            "validation_failed",
        )
        .body(r#"{"handle":"<b>x</b>"}"#),
        case(
            "dev: not utf-8",
            "POST",
            "/api/v1/auth/dev",
            400,
            "invalid_json",
        )
        .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b'}']),
        case(
            "dev: no content type",
            "POST",
            "/api/v1/auth/dev",
            415,
            "unsupported_media_type",
        )
        .header("content-type", "text/plain")
        .body(r#"{"handle":"abc"}"#),
        case(
            "dev: huge",
            "POST",
            "/api/v1/auth/dev",
            413,
            "payload_too_large",
        )
        .body(huge.clone()),
        case(
            "dev: wrong method",
            "GET",
            "/api/v1/auth/dev",
            405,
            "method_not_allowed",
        ),
        // Posts.
        case(
            "post: no token",
            "POST",
            "/api/v1/posts",
            401,
            "unauthorized",
        )
        .body(r#"{"body":"x"}"#),
        case(
            "post: forged token",
            "POST",
            "/api/v1/posts",
            401,
            "unauthorized",
        )
        .token("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
        .body(r#"{"body":"x"}"#),
        case(
            "post: malformed",
            "POST",
            "/api/v1/posts",
            400,
            "invalid_json",
        )
        .token(t)
        .body(r#"{"body":"#),
        case(
            "post: wrong type",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":["x"]}"#),
        case(
            "post: empty",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"   "}"#),
        case(
            "post: too long",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(long_body),
        case(
            "post: huge",
            "POST",
            "/api/v1/posts",
            413,
            "payload_too_large",
        )
        .token(t)
        .body(huge),
        case(
            "post: unknown field",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"x","author_id":1}"#),
        case(
            "post: reply_to string",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"x","reply_to":"1"}"#),
        case(
            "post: reply_to negative",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"x","reply_to":-4}"#),
        case(
            "post: reply_to missing",
            "POST",
            "/api/v1/posts",
            404,
            "not_found",
        )
        .token(t)
        .body(r#"{"body":"x","reply_to":424242}"#),
        case(
            "post: reply_to overflow",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"x","reply_to":99999999999999999999}"#),
        case(
            "post: NUL",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"body":"a\u0000b"}"#),
        case(
            "post: bad idempotency key",
            "POST",
            "/api/v1/posts",
            422,
            "validation_failed",
        )
        .token(t)
        .header("idempotency-key", &"k".repeat(300))
        .body(r#"{"body":"x"}"#),
        case(
            "post: not utf-8",
            "POST",
            "/api/v1/posts",
            400,
            "invalid_json",
        )
        .token(t)
        .body(vec![
            b'{', b'"', b'b', b'o', b'd', b'y', b'"', b':', b'"', 0xc3, 0x28, b'"', b'}',
        ]),
        case(
            "posts: wrong method",
            "DELETE",
            "/api/v1/posts",
            405,
            "method_not_allowed",
        )
        .token(t),
        // Follows.
        case(
            "follow: no token",
            "PUT",
            "/api/v1/users/alice/follow",
            401,
            "unauthorized",
        ),
        case(
            "follow: sql",
            "PUT",
            "/api/v1/users/a'%20OR%201=1--/follow",
            404,
            "not_found",
        )
        .token(t),
        case(
            "follow: self",
            "PUT",
            "/api/v1/users/alice/follow",
            409,
            "conflict",
        )
        .token(t),
        case(
            "follow: unknown",
            "DELETE",
            "/api/v1/users/ghost_user/follow",
            404,
            "not_found",
        )
        .token(t),
        case(
            "follow: wrong method",
            "POST",
            "/api/v1/users/alice/follow",
            405,
            "method_not_allowed",
        )
        .token(t),
        // Timeline.
        case(
            "timeline: no token",
            "GET",
            "/api/v1/timeline",
            401,
            "unauthorized",
        ),
        case(
            "timeline: limit 0",
            "GET",
            "/api/v1/timeline?limit=0",
            422,
            "validation_failed",
        )
        .token(t),
        case(
            "timeline: limit 101",
            "GET",
            "/api/v1/timeline?limit=101",
            422,
            "validation_failed",
        )
        .token(t),
        case(
            "timeline: limit text",
            "GET",
            "/api/v1/timeline?limit=ten",
            400,
            "invalid_query",
        )
        .token(t),
        case(
            "timeline: cursor",
            "GET",
            "/api/v1/timeline?cursor=%27%20OR%201%3D1",
            400,
            "invalid_cursor",
        )
        .token(t),
        case(
            "timeline: expired token",
            "GET",
            "/api/v1/timeline",
            401,
            "unauthorized",
        )
        .token("a.b.c"),
        // Posts by id, likes, replies.
        case(
            "post: not an id",
            "GET",
            "/api/v1/posts/abc",
            404,
            "not_found",
        )
        .token(t),
        case(
            "post: negative id",
            "GET",
            "/api/v1/posts/-1",
            404,
            "not_found",
        )
        .token(t),
        case(
            "post: overflow id",
            "GET",
            "/api/v1/posts/99999999999999999999",
            404,
            "not_found",
        )
        .token(t),
        case(
            "post: sql id",
            "DELETE",
            "/api/v1/posts/1%20OR%201=1",
            404,
            "not_found",
        )
        .token(t),
        case(
            "post: missing",
            "DELETE",
            "/api/v1/posts/777",
            404,
            "not_found",
        )
        .token(t),
        case(
            "post: no token",
            "GET",
            "/api/v1/posts/1",
            401,
            "unauthorized",
        ),
        case(
            "like: missing post",
            "PUT",
            "/api/v1/posts/777/like",
            404,
            "not_found",
        )
        .token(t),
        case(
            "like: wrong method",
            "POST",
            "/api/v1/posts/1/like",
            405,
            "method_not_allowed",
        )
        .token(t),
        case(
            "replies: bad cursor",
            "GET",
            "/api/v1/posts/1/replies?cursor=zzz",
            400,
            "invalid_cursor",
        )
        .token(t),
        // Users and lists.
        case(
            "profile: unknown",
            "GET",
            "/api/v1/users/ghost_user",
            404,
            "not_found",
        )
        .token(t),
        case(
            "profile: html",
            "GET",
            "/api/v1/users/%3Cscript%3E",
            404,
            "not_found",
        )
        .token(t),
        case(
            "followers: limit",
            "GET",
            "/api/v1/users/alice/followers?limit=-5",
            422,
            "validation_failed",
        )
        .token(t),
        case(
            "following: cursor",
            "GET",
            "/api/v1/users/alice/following?cursor=%00",
            400,
            "invalid_cursor",
        )
        .token(t),
        case(
            "user posts: limit",
            "GET",
            "/api/v1/users/alice/posts?limit=1e3",
            400,
            "invalid_query",
        )
        .token(t),
        case(
            "notifications: no token",
            "GET",
            "/api/v1/notifications",
            401,
            "unauthorized",
        ),
        case(
            "notifications: limit",
            "GET",
            "/api/v1/notifications?limit=1000",
            422,
            "validation_failed",
        )
        .token(t),
        // Me, tokens, tickets.
        case(
            "me: unknown field",
            "PATCH",
            "/api/v1/me",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"handle":"root"}"#),
        case("me: malformed", "PATCH", "/api/v1/me", 400, "invalid_json")
            .token(t)
            .body("{"),
        case("me: no token", "GET", "/api/v1/me", 401, "unauthorized"),
        case(
            "refresh: malformed",
            "POST",
            "/api/v1/auth/refresh",
            400,
            "invalid_json",
        )
        .body("nope"),
        case(
            "refresh: wrong type",
            "POST",
            "/api/v1/auth/refresh",
            422,
            "validation_failed",
        )
        .body(r#"{"refresh_token":1}"#),
        case(
            "refresh: unknown token",
            "POST",
            "/api/v1/auth/refresh",
            401,
            "unauthorized",
        )
        .body(r#"{"refresh_token":"rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#),
        case(
            "refresh: sql",
            "POST",
            "/api/v1/auth/refresh",
            401,
            "unauthorized",
        )
        .body(r#"{"refresh_token":"' OR 1=1 --"}"#),
        case(
            "logout: no token",
            "POST",
            "/api/v1/auth/logout",
            401,
            "unauthorized",
        ),
        case(
            "ticket: no token",
            "POST",
            "/api/v1/ws/ticket",
            401,
            "unauthorized",
        ),
        case(
            "google: not configured",
            "POST",
            "/api/v1/auth/google",
            404,
            "not_found",
        )
        .body(r#"{"id_token":"x"}"#),
        case(
            "admin: no token",
            "GET",
            "/admin/actors",
            401,
            "unauthorized",
        ),
        case("admin: not admin", "GET", "/admin/actors", 403, "forbidden").token(t),
        // Elsewhere.
        case("unknown route", "GET", "/api/v1/nothing", 404, "not_found"),
        case(
            "health: wrong method",
            "POST",
            "/health/ready",
            405,
            "method_not_allowed",
        ),
        case(
            "metrics: wrong method",
            "DELETE",
            "/metrics",
            405,
            "method_not_allowed",
        ),
    ];
    for c in cases {
        check(&app, c).await;
    }
}

#[actix_web::test]
async fn dev_login_is_not_found_unless_enabled() {
    let app = spawn_app_with(&["--auth-dev-login=false"]).await;
    check(
        &app,
        case(
            "dev login off",
            "POST",
            "/api/v1/auth/dev",
            404,
            "not_found",
        )
        .body(r#"{"handle":"alice"}"#),
    )
    .await;
}

#[actix_web::test]
async fn health_and_metrics_answer() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["postgres"]["up"], true);
    assert_eq!(body["checks"]["redis"]["up"], true);
    assert!(body["checks"]["redis"]["latency_ms"].as_f64().is_some());
    let res = app
        .http
        .get(app.url("/health/system"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    assert!(
        body["memory"]["process_rss_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
    assert!(body["uptime_secs"].as_f64().is_some());
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .unwrap_or_default()
            .contains("aisocial_actor_mailbox_depth")
    );
}

#[actix_web::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap_or_default();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let mut documented: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().cloned().unwrap_or_default() {
        for method in item
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected: Vec<String> = [
        "POST /api/v1/auth/dev",
        "POST /api/v1/auth/google",
        "GET /api/v1/auth/google/login",
        "GET /api/v1/auth/google/callback",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "GET /api/v1/me",
        "PATCH /api/v1/me",
        "GET /api/v1/users/{handle}",
        "GET /api/v1/users/{handle}/followers",
        "GET /api/v1/users/{handle}/following",
        "GET /api/v1/users/{handle}/posts",
        "PUT /api/v1/users/{handle}/follow",
        "DELETE /api/v1/users/{handle}/follow",
        "POST /api/v1/posts",
        "GET /api/v1/posts/{id}",
        "DELETE /api/v1/posts/{id}",
        "GET /api/v1/posts/{id}/replies",
        "PUT /api/v1/posts/{id}/like",
        "DELETE /api/v1/posts/{id}/like",
        "GET /api/v1/timeline",
        "POST /api/v1/ai/compose",
        "POST /api/v1/ai/summary",
        "GET /api/v1/notifications",
        "POST /api/v1/ws/ticket",
        "GET /api/v1/ws",
        "GET /health/live",
        "GET /health/ready",
        "GET /health/system",
        "GET /metrics",
        "GET /admin/actors",
        "GET /admin/audit",
        "GET /admin/live",
        "GET /admin/dashboard",
        "GET /",
        "GET /static/{file}",
        "GET /api/v1/auth/methods",
        "GET /api/v1/openapi.json",
        "POST /api/v1/reports",
        "GET /api/v1/admin/reports",
        "POST /api/v1/admin/reports/{id}/resolve",
        "GET /api/v1/admin/users/suspended",
        "POST /api/v1/admin/users/{handle}/suspend",
        "POST /api/v1/admin/users/{handle}/unsuspend",
        "PUT /api/v1/admin/users/{handle}/role",
        "PUT /api/v1/users/{handle}/block",
        "DELETE /api/v1/users/{handle}/block",
        "PUT /api/v1/users/{handle}/mute",
        "DELETE /api/v1/users/{handle}/mute",
        "GET /api/v1/me/blocks",
        "GET /api/v1/me/mutes",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    expected.sort();
    assert_eq!(documented, expected);
    // Every documented route exists: none answers the router's 404 for an unknown path.
    for op in &documented {
        let (method, path) = op.split_once(' ').unwrap_or_default();
        let path = path
            .replace("{handle}", "alice")
            .replace("{id}", "1")
            .replace("{file}", "app.js");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
        let res = app
            .http
            .request(method, app.url(&path))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_ne!(
            body["detail"], "no such resource",
            "{op} is documented but not routed"
        );
    }
    // Errors are described as problem documents.
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(problem["properties"]["code"].is_object(), "{problem}");
    let post_errors = &doc["paths"]["/api/v1/posts"]["post"]["responses"];
    for status in [
        "201", "400", "401", "404", "409", "413", "415", "422", "429", "503",
    ] {
        assert!(
            post_errors[status].is_object(),
            "POST /api/v1/posts lacks {status}"
        );
    }
}
