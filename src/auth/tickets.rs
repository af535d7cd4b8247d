//! Single-use websocket tickets for browsers: issued to a signed-in caller, kept in Redis for
//! 60 s, redeemed at most once by the upgrade.

use std::sync::Arc;
use std::time::Duration;

use aisocial_actors::ids::UserId;
use aisocial_actors::model::Role;
use serde::{Deserialize, Serialize};

use super::AuthUser;
use super::opaque::{self, Opaque};
use crate::problem::ApiError;
use crate::redis_store::redis_error;
use crate::redis_store::{self, Keyspace};
use crate::revocation::Revocations;

const TICKET_PREFIX: &str = "tk_";
/// How long a ticket may wait to be redeemed.
pub const TICKET_TTL_SECS: u64 = 60;
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a ticket stands for, kept in Redis until used or expired.
#[derive(Serialize, Deserialize)]
struct TicketClaims {
    user: i64,
    handle: String,
    role: Role,
    family: i64,
    /// When the access token the ticket was issued under expires (the socket closes then
    /// unless renewed). Absent in tickets of older nodes: the ticket's own lifetime.
    #[serde(default)]
    expires_at: Option<u64>,
}

/// Issues and redeems tickets.
pub struct Tickets {
    keys: Keyspace,
    revocations: Arc<Revocations>,
}

impl Tickets {
    pub fn new(keys: Keyspace, revocations: Arc<Revocations>) -> Self {
        Self { keys, revocations }
    }

    fn key(&self, ticket: &str) -> String {
        self.keys
            .key(&format!("ticket:{}", hex::encode(opaque::hash(ticket))))
    }

    /// A new ticket standing for `me`.
    pub async fn issue(&self, me: AuthUser) -> Result<Opaque, ApiError> {
        let ticket = opaque::generate(TICKET_PREFIX);
        let claims = TicketClaims {
            user: me.id.0,
            handle: me.handle,
            role: me.role,
            family: me.family,
            expires_at: Some(me.expires_at),
        };
        let value = serde_json::to_string(&claims).map_err(|e| ApiError::Internal(e.into()))?;
        let mut store = redis::cmd("SET");
        store
            .arg(self.key(&ticket.text))
            .arg(value)
            .arg("EX")
            .arg(TICKET_TTL_SECS);
        redis_store::run::<()>(self.keys.conn(), store, REDIS_TIMEOUT)
            .await
            .map_err(redis_error)?;
        Ok(ticket)
    }

    /// Redeems a ticket (at most once).
    pub async fn redeem(&self, ticket: &str) -> Result<AuthUser, ApiError> {
        let refused =
            || ApiError::Unauthorized("the ticket is unknown, expired or already used".into());
        if !opaque::well_formed(ticket, TICKET_PREFIX) {
            return Err(refused());
        }
        let mut take = redis::cmd("GETDEL");
        take.arg(self.key(ticket));
        let value = redis_store::run::<Option<String>>(self.keys.conn(), take, REDIS_TIMEOUT)
            .await
            .map_err(redis_error)?
            .ok_or_else(refused)?;
        let claims: TicketClaims = serde_json::from_str(&value).map_err(|_| refused())?;
        if self.revocations.is_revoked(claims.family) {
            return Err(refused());
        }
        let expires_at = claims.expires_at.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + TICKET_TTL_SECS
        });
        Ok(AuthUser {
            id: UserId(claims.user),
            handle: claims.handle,
            role: claims.role,
            family: claims.family,
            expires_at,
        })
    }
}
