//! The token pair every sign-in and refresh answers with.

use aisocial_actors::db_writer::{NewRefresh, SignedIn};
use aisocial_actors::model::User;
use serde::Serialize;

use super::accounts::Accounts;
use super::opaque::{self, Opaque};
use crate::problem::ApiError;

/// Refresh tokens start with this.
pub const REFRESH_PREFIX: &str = "rt_";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub user: User,
}

/// A new refresh token for a sign-in: the secret for the client, the hash for the DbWriter.
pub fn new_refresh(accounts: &Accounts) -> (Opaque, NewRefresh) {
    let token = opaque::generate(REFRESH_PREFIX);
    let new = NewRefresh {
        hash: token.hash,
        lifetime: accounts.refresh_lifetime,
    };
    (token, new)
}

/// The answer to a sign-in or refresh whose refresh token is `refresh`.
pub fn token_pair(
    accounts: &Accounts,
    signed_in: SignedIn,
    refresh: Opaque,
) -> Result<TokenPair, ApiError> {
    let access_token = accounts
        .tokens
        .issue(&signed_in.user, signed_in.family)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(TokenPair {
        access_token,
        refresh_token: refresh.text,
        token_type: "Bearer",
        expires_in: accounts.tokens.ttl().as_secs(),
        user: signed_in.user,
    })
}
