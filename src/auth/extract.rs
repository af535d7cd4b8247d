//! The `AuthUser` extractor: a route that takes one requires a valid, unrevoked access token in
//! `Authorization: Bearer …`, and counts against the caller's rate limit.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use aisocial_actors::ids::UserId;
use aisocial_actors::model::Role;
use aisocial_actors::session::{AccessTokens, TokenGrant, TokenRefused};
use futures_util::future::LocalBoxFuture;

use std::sync::Arc;

use super::{AccessClaims, TokenIssuer};
use crate::problem::ApiError;
use crate::rate_limit::RateLimiting;
use crate::replicas::ReadRouting;
use crate::revocation::Revocations;

/// The verified caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub handle: String,
    pub role: Role,
    /// The sign-in session (refresh-token family) of the token.
    pub family: i64,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// The caller, who must also be an admin now (403 otherwise); `role` is read from the database.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

/// The caller, who must be a moderator or an admin now (403 otherwise); `role` is read from the
/// database.
#[derive(Debug, Clone)]
pub struct StaffUser(pub AuthUser);

/// The token in an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_in(req.headers())
}

/// The token in these headers' `Authorization: Bearer …`, if there is one.
pub fn bearer_in(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks access tokens: their signature and claims, and that their sign-in session was not
/// revoked.
pub struct Verifier {
    tokens: TokenIssuer,
    revocations: Arc<Revocations>,
}

impl Verifier {
    pub fn new(tokens: TokenIssuer, revocations: Arc<Revocations>) -> Self {
        Self {
            tokens,
            revocations,
        }
    }

    /// Whether this sign-in session was revoked.
    pub fn is_revoked(&self, family: i64) -> bool {
        self.revocations.is_revoked(family)
    }

    /// Checks the bearer token of these headers (signature, claims, revocation); no rate
    /// limit.
    pub fn verify_bearer(&self, headers: &header::HeaderMap) -> Result<AuthUser, ApiError> {
        let token = bearer_in(headers).ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <access token>".into())
        })?;
        let (claims, id) = self
            .check(token)
            .map_err(|refused| ApiError::Unauthorized(refused.to_string()))?;
        Ok(AuthUser {
            id,
            handle: claims.handle,
            role: claims.role,
            family: claims.sid,
            expires_at: claims.exp,
        })
    }

    /// The one check of an access token, for requests and in-band renewals alike: our
    /// signature and claims, a user id, a sign-in session not revoked.
    fn check(&self, token: &str) -> Result<(AccessClaims, UserId), TokenRefused> {
        let claims = self.tokens.verify(token).map_err(|e| {
            tracing::debug!(error = %e, "access token refused");
            TokenRefused::Invalid
        })?;
        if self.is_revoked(claims.sid) {
            return Err(TokenRefused::Revoked);
        }
        let id = claims.user_id().ok_or(TokenRefused::Invalid)?;
        if self.revocations.is_suspended(id) {
            return Err(TokenRefused::Suspended);
        }
        Ok((claims, id))
    }
}

/// Sockets renew their token in-band through the same checks as every request.
impl AccessTokens for Verifier {
    fn verify(&self, token: &str) -> Result<TokenGrant, TokenRefused> {
        let (claims, user) = self.check(token)?;
        Ok(TokenGrant {
            user,
            family: claims.sid,
            expires_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(claims.exp),
        })
    }
}

/// A handle the application registered, or a 500 saying which is missing.
fn registered<T: 'static>(req: &HttpRequest) -> Result<&web::Data<T>, ApiError> {
    req.app_data::<web::Data<T>>().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "{} is not registered with the application",
            std::any::type_name::<T>()
        ))
    })
}

/// Checks the bearer token alone (signature, claims, revocation); no rate limit.
pub fn verify_bearer(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    registered::<Verifier>(req)?.verify_bearer(req.headers())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = verify_bearer(&req)?;
            tracing::Span::current().record("user_id", user.id.0);
            registered::<RateLimiting>(&req)?.charge_user(user.id)?;
            Ok(user)
        })
    }
}

/// The caller's role as the database holds it now (a token's claim may be up to an access
/// token's lifetime old: a demoted admin must not keep the admin routes that long).
async fn current_role(req: &HttpRequest, user: UserId) -> Result<Role, ApiError> {
    let reads = registered::<ReadRouting>(req)?;
    let rows = crate::reads::query(
        reads,
        "SELECT role FROM users WHERE id = $1 AND disabled_at IS NULL",
        &[&user.0],
    )
    .await?;
    let role = rows
        .first()
        .map(|row| {
            row.try_get::<_, &str>(0)
                .map(|r| Role::parse(r).unwrap_or(Role::User))
        })
        .transpose()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading a role")))?;
    role.ok_or_else(|| ApiError::Unauthorized("this account is suspended".into()))
}

/// Checks the caller, then that their current role is at least `least` (403 otherwise).
fn with_role(
    req: &HttpRequest,
    payload: &mut Payload,
    least: Role,
    refusal: &'static str,
) -> LocalBoxFuture<'static, Result<AuthUser, ApiError>> {
    let user = AuthUser::from_request(req, payload);
    let req = req.clone();
    Box::pin(async move {
        let mut user = user.await?;
        user.role = current_role(&req, user.id).await?;
        if user.role >= least {
            Ok(user)
        } else {
            Err(ApiError::Forbidden(refusal.into()))
        }
    })
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = with_role(req, payload, Role::Admin, "this route is for admins");
        Box::pin(async move { user.await.map(AdminUser) })
    }
}

impl FromRequest for StaffUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = with_role(
            req,
            payload,
            Role::Moderator,
            "this route is for moderators and admins",
        );
        Box::pin(async move { user.await.map(StaffUser) })
    }
}
