//! Which PostgreSQL failures pass with time (a lock wait, a deadlock, a serialization failure,
//! a cancelled statement, a server starting or stopping, a lost connection): the same request
//! may well succeed later, so callers answer "retry" (503 with `Retry-After`), never 500.

use std::time::Duration;

use tokio_postgres::error::SqlState;

/// What a pool answers when no connection can be had (its timeout, or connecting failed).
pub type PoolError = bb8::RunError<tokio_postgres::Error>;

/// Why a read through the pool failed; the cause is kept as the source, never flattened.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No pooled connection: none free within the pool's timeout, or connecting failed.
    #[error("no database connection could be had")]
    Pool(#[source] PoolError),
    /// The statement failed, or a row it answered could not be read.
    #[error("a database read failed")]
    Query(#[source] tokio_postgres::Error),
    /// The read did not finish within its deadline.
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
}

impl From<PoolError> for ReadError {
    fn from(e: PoolError) -> Self {
        ReadError::Pool(e)
    }
}

impl From<tokio_postgres::Error> for ReadError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReadError::Query(e)
    }
}

impl ReadError {
    /// Whether the same read may well succeed later (see [`is_transient`]): a pool timeout and
    /// a missed deadline do; a PostgreSQL error as [`is_transient`] says.
    pub fn is_transient(&self) -> bool {
        match self {
            ReadError::Pool(bb8::RunError::User(e)) | ReadError::Query(e) => is_transient(e),
            ReadError::Pool(bb8::RunError::TimedOut) | ReadError::TimedOut(_) => true,
        }
    }

    /// The PostgreSQL error underneath, if there is one.
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            ReadError::Pool(bb8::RunError::User(e)) | ReadError::Query(e) => Some(e),
            ReadError::Pool(bb8::RunError::TimedOut) | ReadError::TimedOut(_) => None,
        }
    }
}

/// Whether `e` passes with time: PostgreSQL refused for a passing reason, or the connection
/// failed rather than the statement.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => is_transient_state(code),
        None => e.is_closed() || from_io(e),
    }
}

fn from_io(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|source| source.is::<std::io::Error>())
}

/// Whether a SQLSTATE names a passing condition.
pub fn is_transient_state(code: &SqlState) -> bool {
    let code = code.code();
    // 08: connection exceptions; 53: insufficient resources (too many connections, …).
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            // serialization failure, deadlock detected, statement completion unknown
            "40001" | "40P01" | "40003"
            // lock not available (lock_timeout, NOWAIT)
            | "55P03"
            // query canceled (statement_timeout, a cancel request)
            | "57014"
            // admin shutdown, crash shutdown, cannot connect now (starting up or recovering)
            | "57P01" | "57P02" | "57P03"
            // idle in transaction / idle session timeout (the server ended the session)
            | "25P03" | "57P05"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_error_keeps_its_cause_and_says_whether_it_passes() {
        let timed_out = ReadError::from(PoolError::TimedOut);
        assert!(timed_out.is_transient());
        assert!(std::error::Error::source(&timed_out).is_some());
        assert!(timed_out.postgres().is_none());
        let late = ReadError::TimedOut(Duration::from_secs(1));
        assert!(late.is_transient());
        assert!(std::error::Error::source(&late).is_none());
    }

    #[test]
    fn passing_conditions_are_told_from_our_mistakes() {
        for code in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        ] {
            assert!(is_transient_state(&code), "{}", code.code());
        }
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::UNDEFINED_TABLE,
            SqlState::CHECK_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::T_R_INTEGRITY_CONSTRAINT_VIOLATION,
        ] {
            assert!(!is_transient_state(&code), "{}", code.code());
        }
    }
}
