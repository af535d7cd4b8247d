//! [`Client`]: the HTTP side of the API. Each call has a `*_request` builder (the URL, method,
//! token and JSON of the call, for callers that time, retry or add headers themselves) and an
//! async method that sends it, checks the status and reads the answer.

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::ws::{self, Connect, Socket};
use crate::{Error, Hello, SignedIn, SystemSample, TokenPair};

/// A handle on one aisocial server: a connection pool and the server's base URL. Cheap to
/// clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// `http(s)://host:port`, without a trailing slash.
    base_url: String,
}

/// A post to create (`POST /api/v1/posts`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NewPost {
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    /// Sent as the `Idempotency-Key` header: a retried create answers the same post.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

impl NewPost {
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }
}

/// A single-use websocket ticket (`POST /api/v1/ws/ticket`): opens one feed without a
/// bearer header, within `expires_in` seconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Ticket {
    pub ticket: String,
    pub expires_in: u64,
}

/// What creating a post answered.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct CreatedPost {
    pub id: i64,
}

impl Client {
    /// A client of the server at `base_url`, with a connection pool of its own. reqwest is
    /// built without a TLS crypto provider of its own: install one first (as the server and
    /// the load tests do, `rustls::crypto::ring::default_provider().install_default()`).
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_http(reqwest::Client::new(), base_url)
    }

    /// A client of the server at `base_url` over `http` (its pool, timeouts and TLS roots).
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, base_url }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path` with `token` as the bearer token.
    pub fn get_request(&self, token: &str, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(token)
    }

    /// `POST /api/v1/auth/dev` for `handle`.
    pub fn sign_in_dev_request(&self, handle: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/api/v1/auth/dev"))
            .json(&serde_json::json!({ "handle": handle }))
    }

    /// Signs `handle` in through the dev login (the server needs `AUTH_DEV_LOGIN=true`, and
    /// an auth rate limit high enough for many sign-ins).
    pub async fn sign_in_dev(&self, handle: &str) -> Result<SignedIn, Error> {
        let what = format!("dev sign-in of {handle}");
        let res = self
            .sign_in_dev_request(handle)
            .send()
            .await
            .map_err(Error::transport(&what))?;
        SignedIn::parse(&success(res, &what, None).await?)
    }

    /// Signs every handle in, `concurrency` at a time; the users in the handles' order.
    pub async fn sign_in_all(
        &self,
        handles: Vec<String>,
        concurrency: usize,
    ) -> Result<Vec<SignedIn>, Error> {
        futures_util::stream::iter(handles)
            .map(|handle| async move { self.sign_in_dev(&handle).await })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    /// `POST /api/v1/auth/refresh` with `refresh_token`.
    pub fn refresh_request(&self, refresh_token: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/api/v1/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": refresh_token }))
    }

    /// A new token pair for `refresh_token` (which is spent).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, Error> {
        let res = self
            .refresh_request(refresh_token)
            .send()
            .await
            .map_err(Error::transport("refresh"))?;
        TokenPair::parse(&success(res, "refresh", None).await?)
    }

    /// `PUT /api/v1/users/{handle}/follow` as `token`'s user.
    pub fn follow_request(&self, token: &str, handle: &str) -> reqwest::RequestBuilder {
        self.http
            .put(self.url(&format!("/api/v1/users/{handle}/follow")))
            .bearer_auth(token)
    }

    /// `DELETE /api/v1/users/{handle}/follow` as `token`'s user.
    pub fn unfollow_request(&self, token: &str, handle: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(self.url(&format!("/api/v1/users/{handle}/follow")))
            .bearer_auth(token)
    }

    /// `token`'s user follows `handle` (204).
    pub async fn follow(&self, token: &str, handle: &str) -> Result<(), Error> {
        let what = format!("follow {handle}");
        let res = self
            .follow_request(token, handle)
            .send()
            .await
            .map_err(Error::transport(&what))?;
        success(res, &what, Some(204)).await.map(drop)
    }

    /// `token`'s user unfollows `handle` (204).
    pub async fn unfollow(&self, token: &str, handle: &str) -> Result<(), Error> {
        let what = format!("unfollow {handle}");
        let res = self
            .unfollow_request(token, handle)
            .send()
            .await
            .map_err(Error::transport(&what))?;
        success(res, &what, Some(204)).await.map(drop)
    }

    /// Every `(token, handle)` follow, `concurrency` at a time.
    pub async fn follow_all(
        &self,
        follows: Vec<(String, String)>,
        concurrency: usize,
    ) -> Result<(), Error> {
        futures_util::stream::iter(follows)
            .map(|(token, handle)| async move { self.follow(&token, &handle).await })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    /// `POST /api/v1/posts` as `token`'s user.
    pub fn create_post_request(&self, token: &str, post: &NewPost) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url("/api/v1/posts"))
            .bearer_auth(token)
            .json(post);
        match &post.idempotency_key {
            Some(key) => request.header("idempotency-key", key),
            None => request,
        }
    }

    /// Creates a post (201) and says its id.
    pub async fn create_post(&self, token: &str, post: &NewPost) -> Result<CreatedPost, Error> {
        let res = self
            .create_post_request(token, post)
            .send()
            .await
            .map_err(Error::transport("create post"))?;
        CreatedPost::read(res).await
    }

    /// `PUT /api/v1/posts/{post}/like` as `token`'s user.
    pub fn like_request(&self, token: &str, post: i64) -> reqwest::RequestBuilder {
        self.http
            .put(self.url(&format!("/api/v1/posts/{post}/like")))
            .bearer_auth(token)
    }

    /// `POST /api/v1/ai/compose` with `prompt` as `token`'s user (202 when accepted, 429
    /// when over a budget or quota).
    pub fn compose_request(&self, token: &str, prompt: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/api/v1/ai/compose"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "prompt": prompt }))
    }

    /// `POST /api/v1/ws/ticket` as `token`'s user.
    pub fn ws_ticket_request(&self, token: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url("/api/v1/ws/ticket"))
            .bearer_auth(token)
    }

    /// A single-use websocket ticket for `token`'s user (201).
    pub async fn ws_ticket(&self, token: &str) -> Result<Ticket, Error> {
        let res = self
            .ws_ticket_request(token)
            .send()
            .await
            .map_err(Error::transport("ws ticket"))?;
        let body = success(res, "ws ticket", Some(201)).await?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            what: "ws ticket".into(),
            source,
        })
    }

    /// `GET /health/system`: the server's memory, open files, CPU and websockets.
    pub async fn system_sample(&self) -> Result<SystemSample, Error> {
        let res = self
            .http
            .get(self.url("/health/system"))
            .send()
            .await
            .map_err(Error::transport("/health/system"))?;
        SystemSample::parse(&success(res, "/health/system", None).await?)
    }

    /// `GET /metrics`: the server's Prometheus text.
    pub async fn metrics(&self) -> Result<String, Error> {
        let res = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .map_err(Error::transport("/metrics"))?;
        let body = success(res, "/metrics", None).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Opens `token`'s feed (resuming after `since` when given) over plain TCP and reads
    /// `hello`; see [`ws::open`].
    pub async fn open_feed(
        &self,
        token: &str,
        since: Option<i64>,
    ) -> Result<(Socket, Hello), Error> {
        ws::open(&self.base_url, token, since, &Connect::default()).await
    }

    /// [`Client::open_feed`] with TCP options (a small receive buffer, a source address).
    pub async fn open_feed_with(
        &self,
        token: &str,
        since: Option<i64>,
        options: &Connect,
    ) -> Result<(Socket, Hello), Error> {
        ws::open(&self.base_url, token, since, options).await
    }

    /// Opens a feed with a single-use `ticket` (see [`Client::ws_ticket`]) instead of a
    /// bearer token, and reads `hello`; see [`ws::open_with_ticket`].
    pub async fn open_feed_with_ticket(
        &self,
        ticket: &str,
        since: Option<i64>,
    ) -> Result<(Socket, Hello), Error> {
        ws::open_with_ticket(&self.base_url, ticket, since, &Connect::default()).await
    }
}

impl CreatedPost {
    /// Reads the answer to [`Client::create_post_request`] (201 expected).
    pub async fn read(res: reqwest::Response) -> Result<Self, Error> {
        let body = success(res, "create post", Some(201)).await?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode {
            what: "create post".into(),
            source,
        })
    }
}

/// The body of `res` if its status is `expected` (any 2xx when `None`), else
/// [`Error::Status`] with its `Retry-After`.
pub async fn success(
    res: reqwest::Response,
    what: &str,
    expected: Option<u16>,
) -> Result<bytes::Bytes, Error> {
    let status = res.status();
    let ok = match expected {
        Some(code) => status.as_u16() == code,
        None => status.is_success(),
    };
    if !ok {
        return Err(Error::Status {
            what: what.to_owned(),
            status: status.as_u16(),
            retry_after: res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    }
    res.bytes().await.map_err(Error::transport(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_route_method_token_and_body() -> Result<(), Box<dyn std::error::Error>> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new("http://h:1/");
        assert_eq!(client.base_url(), "http://h:1");
        let post = NewPost {
            body: "hi".into(),
            reply_to: Some(9),
            idempotency_key: Some("k1".into()),
        };
        let request = client.create_post_request("tok", &post).build()?;
        assert_eq!(request.method(), reqwest::Method::POST);
        assert_eq!(request.url().as_str(), "http://h:1/api/v1/posts");
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("authorization").as_deref(), Some("Bearer tok"));
        assert_eq!(header("idempotency-key").as_deref(), Some("k1"));
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        assert_eq!(body, br#"{"body":"hi","reply_to":9}"#);
        let plain = serde_json::to_string(&NewPost::new("x"))?;
        assert_eq!(plain, r#"{"body":"x"}"#);

        let follow = client.follow_request("tok", "bob").build()?;
        assert_eq!(follow.method(), reqwest::Method::PUT);
        assert_eq!(follow.url().path(), "/api/v1/users/bob/follow");
        let unfollow = client.unfollow_request("tok", "bob").build()?;
        assert_eq!(unfollow.method(), reqwest::Method::DELETE);
        let ticket = client.ws_ticket_request("tok").build()?;
        assert_eq!(ticket.method(), reqwest::Method::POST);
        assert_eq!(ticket.url().path(), "/api/v1/ws/ticket");
        let parsed: Ticket = serde_json::from_str(r#"{"ticket":"t1","expires_in":60}"#)?;
        assert_eq!(parsed.expires_in, 60);
        let like = client.like_request("tok", 5).build()?;
        assert_eq!(like.url().path(), "/api/v1/posts/5/like");
        let refresh = client.refresh_request("rt").build()?;
        let body = refresh
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        assert_eq!(body, br#"{"refresh_token":"rt"}"#);
        Ok(())
    }
}
