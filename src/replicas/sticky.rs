//! Read-your-writes across nodes: each user's last acknowledged write position (the DbWriter's
//! commit watermark when it was answered), kept in Redis for a little longer than any replica in
//! rotation can lag, so that whichever node serves the user's next read finds it.
//!
//! The value only grows (a Lua script keeps the larger of two concurrent writes), stored as 16
//! hexadecimal digits so that Redis compares positions as strings exactly.

use std::time::Duration;

use aisocial_actors::ids::UserId;
use aisocial_actors::lsn::Lsn;

use crate::redis_store;

/// Keeps the larger position and renews the expiry.
const RAISE: &str = "local current = redis.call('GET', KEYS[1]) \
     if (not current) or ARGV[1] > current then \
       redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
     else \
       redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
     end \
     return 1";

/// A Redis round trip here never waits longer than this (a read then goes to the primary).
const TIMEOUT: Duration = Duration::from_millis(250);

/// Why a user's write position could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error("the write position could not be read")]
    Redis(#[from] redis_store::CommandError),
    #[error("a malformed write position {0:?}")]
    Malformed(String),
}

pub struct Sticky {
    redis: crate::redis_store::RedisConn,
    prefix: String,
    keep: Duration,
}

impl Sticky {
    /// Positions live `keep` after the user's last write.
    pub fn new(redis: crate::redis_store::RedisConn, prefix: &str, keep: Duration) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            keep,
        }
    }

    fn key(&self, user: UserId) -> String {
        format!("{}rlsn:{}", self.prefix, user.0)
    }

    /// The user's last write position, if they wrote within the sticky time.
    pub async fn position(&self, user: UserId) -> Result<Option<Lsn>, PositionError> {
        let mut get = redis::cmd("GET");
        get.arg(self.key(user));
        let value = redis_store::run::<Option<String>>(&self.redis, get, TIMEOUT).await?;
        match value {
            None => Ok(None),
            Some(text) => u64::from_str_radix(&text, 16)
                .map(|n| Some(Lsn(n)))
                .map_err(|_| PositionError::Malformed(text)),
        }
    }

    /// Raises the user's position to `lsn` (never lowers it).
    pub async fn raise(&self, user: UserId, lsn: Lsn) -> Result<(), redis_store::CommandError> {
        let mut eval = redis::cmd("EVAL");
        eval.arg(RAISE)
            .arg(1)
            .arg(self.key(user))
            .arg(format!("{:016x}", lsn.0))
            .arg(u64::try_from(self.keep.as_millis()).unwrap_or(u64::MAX));
        redis_store::run::<i64>(&self.redis, eval, TIMEOUT)
            .await
            .map(|_| ())
    }
}
