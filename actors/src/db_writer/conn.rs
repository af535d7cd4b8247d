//! The DbWriter's own PostgreSQL connection, with its prepared statements cached.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::DbWriterConfig;

/// One dedicated write connection; replaced by a fresh one when it breaks.
pub struct WriterConn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl WriterConn {
    /// Connects, with `timeout` on the whole handshake, and sets the session up for writing.
    pub async fn connect(config: &DbWriterConfig) -> Result<Self, String> {
        let timeout = config.connect_timeout;
        let connecting = config.database.connect(NoTls);
        let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no connection within {timeout:?}")),
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the DbWriter's connection ended");
            }
        });
        // Acknowledgements promise durability: never let a session setting weaken COMMIT.
        let setup = format!(
            "SET synchronous_commit = on; SET statement_timeout = '10s'; \
             SET lock_timeout = '{}ms'; SET application_name = 'aisocial-dbwriter'",
            config.lock_timeout.as_millis()
        );
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
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
