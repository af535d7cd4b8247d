//! What signing in needs: the token issuer, refresh-token lifetime and retry successors, who
//! may be admin, Google sign-in when configured, and whether dev login is on.

use std::sync::Arc;
use std::time::Duration;

use aisocial_actors::roles::RoleGrants;

use super::TokenIssuer;
use super::google::GoogleVerifier;
use super::successor::Successors;
use crate::config::GoogleSettings;

/// Google sign-in, when configured: the settings and the verifier with its key cache.
pub struct Google {
    pub settings: GoogleSettings,
    pub verifier: GoogleVerifier,
    pub http: reqwest::Client,
}

/// The sign-in routes' handle.
pub struct Accounts {
    pub tokens: TokenIssuer,
    pub refresh_lifetime: Duration,
    /// The successor of a refresh token rotated with an `Idempotency-Key` (retries).
    pub refresh_successors: Successors,
    /// The roles configuration grants.
    pub grants: Arc<RoleGrants>,
    pub google: Option<Google>,
    pub dev_login: bool,
}
