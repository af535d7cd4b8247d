//! The DbWriter's own PostgreSQL connection, with its prepared statements cached: connected
//! and set up within one deadline, with TCP keepalives at both ends and a server that ends the
//! session should the writer fall silent inside a transaction.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::DbWriterConfig;

/// The server ends a writer session that sits this long inside a transaction. The writer never
/// pauses between the statements of a transaction, so this is a writer cut off mid-transaction,
/// whose locks (the event counter's among them, which every write of every node needs) would
/// otherwise stay held until the network gave up on it.
pub const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);
/// TCP keepalives, at both ends: an idle connection is probed after this long…
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// …then every this long…
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// …and given up after this many unanswered probes (a dead peer found within about 25 s).
const KEEPALIVE_RETRIES: u32 = 3;

/// Why no writer connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect")]
    Connect(#[source] tokio_postgres::Error),
    #[error("the session settings were refused")]
    Setup(#[source] tokio_postgres::Error),
    #[error("no connection ready within {0:?}")]
    Timeout(Duration),
}

/// How the writer connects: the configured database with TCP keepalives.
pub fn connection_config(config: &DbWriterConfig) -> tokio_postgres::Config {
    let mut database = config.database.clone();
    database
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES);
    database
}

/// The settings every writer session starts with.
pub fn session_setup(config: &DbWriterConfig) -> String {
    // A statement is cancelled by the server before its batch's deadline, so a slow statement
    // fails the batch cleanly (rolled back, retried one by one) instead of timing it out.
    let statement_timeout = config.batch_timeout * 2 / 3;
    // Acknowledgements promise durability: never let a session setting weaken COMMIT.
    format!(
        "SET synchronous_commit = on; \
         SET statement_timeout = '{}ms'; \
         SET lock_timeout = '{}ms'; \
         SET idle_in_transaction_session_timeout = '{}ms'; \
         SET tcp_keepalives_idle = {}; \
         SET tcp_keepalives_interval = {}; \
         SET tcp_keepalives_count = {KEEPALIVE_RETRIES}; \
         SET application_name = 'aisocial-dbwriter'",
        statement_timeout.as_millis(),
        config.lock_timeout.as_millis(),
        IDLE_IN_TRANSACTION.as_millis(),
        KEEPALIVE_IDLE.as_secs(),
        KEEPALIVE_INTERVAL.as_secs(),
    )
}

/// One dedicated write connection; replaced by a fresh one when it breaks.
pub struct WriterConn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl WriterConn {
    /// Connects and sets the session up for writing, both within `config.connect_timeout`.
    pub async fn connect(config: &DbWriterConfig) -> Result<Self, ConnectError> {
        let database = connection_config(config);
        let setup = session_setup(config);
        let connecting = async {
            let (client, connection) = database
                .connect(NoTls)
                .await
                .map_err(ConnectError::Connect)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "the DbWriter's connection ended");
                }
            });
            client
                .batch_execute(&setup)
                .await
                .map_err(ConnectError::Setup)?;
            Ok(client)
        };
        // Dropping the client on a timeout closes the connection.
        let client = tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| ConnectError::Timeout(config.connect_timeout))??;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
    }

    /// Ends the transaction in progress. `false` when the connection is closed, the ROLLBACK
    /// failed or the server did not answer within `within`: the connection must then go.
    pub async fn rollback(&self, within: Duration) -> bool {
        let rolled_back = tokio::time::timeout(within, self.client.batch_execute("ROLLBACK")).await;
        matches!(rolled_back, Ok(Ok(()))) && !self.is_closed()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub async fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query(&statement, params).await
    }

    pub async fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query_opt(&statement, params).await
    }

    pub async fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.execute(&statement, params).await
    }

    pub async fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(sql).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_session_is_bounded_everywhere() {
        let config = DbWriterConfig {
            batch_timeout: Duration::from_millis(1500),
            lock_timeout: Duration::from_millis(300),
            ..DbWriterConfig::new(tokio_postgres::Config::new())
        };
        let database = connection_config(&config);
        assert!(database.get_keepalives());
        assert_eq!(database.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(database.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(database.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        let setup = session_setup(&config);
        for expected in [
            "synchronous_commit = on",
            "statement_timeout = '1000ms'",
            "lock_timeout = '300ms'",
            "idle_in_transaction_session_timeout = '5000ms'",
            "tcp_keepalives_idle = 10",
            "tcp_keepalives_interval = 5",
            "tcp_keepalives_count = 3",
        ] {
            assert!(setup.contains(expected), "{expected} missing from {setup}");
        }
    }
}
