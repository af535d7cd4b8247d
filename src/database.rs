//! PostgreSQL at start-up: create the database if missing, apply migrations, build the read
//! pool, and check readiness. Errors say which server, and how to start it.

use std::time::{Duration, Instant};

use aisocial_actors::db_error::ReadError;
use aisocial_actors::store::ReadPool;
use anyhow::{Context, anyhow};
use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::config::describe_hosts;
use crate::health::Check;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Connection attempts at start-up give up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An advisory-lock key that serialises migrations across nodes starting together.
const MIGRATION_LOCK: i64 = 0x6169_736f_6369_616c; // "aisocial"

fn unreachable_hint(config: &tokio_postgres::Config, e: &dyn std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "cannot reach PostgreSQL at {} (DATABASE_URL): {e}. Is it running? Start it with \
         `scripts/services.sh` (or `pg_ctlcluster --skip-systemctl-redirect 15 main start`), \
         or point DATABASE_URL at a running server.",
        describe_hosts(config)
    )
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a start-up connection ended");
        }
    });
    Ok(client)
}

async fn connect_with_timeout(
    config: &tokio_postgres::Config,
) -> anyhow::Result<Result<Client, tokio_postgres::Error>> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect(config))
        .await
        .map_err(|_| unreachable_hint(config, &format!("no answer within {CONNECT_TIMEOUT:?}")))
}

/// Creates the database named in `config` when it does not exist yet.
pub async fn ensure_database(config: &tokio_postgres::Config) -> anyhow::Result<()> {
    let name = config
        .get_dbname()
        .ok_or_else(|| anyhow!("DATABASE_URL names no database"))?
        .to_owned();
    match connect_with_timeout(config).await? {
        Ok(_) => return Ok(()),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(unreachable_hint(config, &e)),
    }
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let admin = connect_with_timeout(&maintenance)
        .await?
        .map_err(|e| unreachable_hint(config, &e))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match admin
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(e) => Err(anyhow!(
            "the database {name:?} does not exist and could not be created: {e}"
        )),
    }
}

/// Applies pending migrations; nodes starting together take turns.
pub async fn migrate(config: &tokio_postgres::Config) -> anyhow::Result<usize> {
    let mut client = connect_with_timeout(config)
        .await?
        .map_err(|e| unreachable_hint(config, &e))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("taking the migration lock")?;
    let report = embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .context("applying migrations");
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = report?;
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(report.applied_migrations().len())
}

/// The versions of this binary's migrations, in order.
pub fn migration_versions() -> Vec<i32> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .collect()
}

/// Applies this binary's migrations up to and including `version` (the migration tests step
/// through versions one at a time; serving always applies them all).
pub async fn migrate_to(config: &tokio_postgres::Config, version: i32) -> anyhow::Result<()> {
    let mut client = connect_with_timeout(config)
        .await?
        .map_err(|e| unreachable_hint(config, &e))?;
    embedded::migrations::runner()
        .set_target(refinery::Target::Version(version))
        .run_async(&mut client)
        .await
        .with_context(|| format!("applying migrations up to V{version}"))?;
    Ok(())
}

/// How the database's schema compares with the migrations this binary carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchemaCheck {
    /// Migrations of this binary the database has not applied (the binary is newer).
    pub pending: Vec<String>,
    /// Migrations the database has applied that this binary does not carry (it is newer).
    pub unknown: Vec<String>,
    /// Applied with different contents than this binary's migration of the same version.
    pub changed: Vec<String>,
}

impl SchemaCheck {
    pub fn matches(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty() && self.changed.is_empty()
    }
}

/// Compares the applied migrations (refinery's history table) with this binary's, changing
/// nothing.
pub async fn check_schema(config: &tokio_postgres::Config) -> anyhow::Result<SchemaCheck> {
    let client = connect_with_timeout(config)
        .await?
        .map_err(|e| unreachable_hint(config, &e))?;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .context("reading the migration history")?
        .get(0);
    let applied: Vec<(i32, String, String)> = if exists {
        client
            .query(
                "SELECT version, name, checksum FROM refinery_schema_history ORDER BY version",
                &[],
            )
            .await
            .context("reading the migration history")?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    } else {
        Vec::new()
    };
    let runner = embedded::migrations::runner();
    let ours = runner.get_migrations();
    let mut check = SchemaCheck::default();
    for migration in ours {
        match applied.iter().find(|(v, _, _)| *v == migration.version()) {
            None => check.pending.push(migration.to_string()),
            Some((_, _, checksum)) if *checksum != migration.checksum().to_string() => {
                check.changed.push(migration.to_string());
            }
            Some(_) => {}
        }
    }
    for (version, name, _) in &applied {
        if !ours.iter().any(|m| m.version() == *version) {
            check.unknown.push(format!("V{version}__{name}"));
        }
    }
    Ok(check)
}

/// The read pool; its first connection is made before this returns. Every statement on it is
/// cancelled by the server after `statement_timeout` (see [`with_statement_timeout`]).
pub async fn read_pool(
    config: &tokio_postgres::Config,
    size: u32,
    statement_timeout: Duration,
) -> anyhow::Result<ReadPool> {
    let manager =
        PostgresConnectionManager::new(with_statement_timeout(config, statement_timeout), NoTls);
    bb8::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(2))
        .build(manager)
        .await
        .map_err(|e| unreachable_hint(config, &e))
}

/// `config` whose sessions cancel any statement running longer than `timeout`
/// (`-c statement_timeout=…` among the connection's startup options): a read its caller gave
/// up on stops on the server too, instead of running on, and holding back, a pooled connection.
pub fn with_statement_timeout(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> tokio_postgres::Config {
    let mut config = config.clone();
    let ours = format!("-c statement_timeout={}", timeout.as_millis());
    let options = match config.get_options() {
        Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {ours}"),
        _ => ours,
    };
    config.options(options);
    config
}

/// Runs `SELECT 1` through the pool within `timeout`.
pub async fn check(pool: &ReadPool, timeout: Duration) -> Check {
    let started = Instant::now();
    let probe = async {
        let conn = pool.get().await?;
        conn.simple_query("SELECT 1").await?;
        Ok::<(), ReadError>(())
    };
    let result = tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or(Err(ReadError::TimedOut(timeout)));
    Check::from_result(started, result)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn the_statement_timeout_joins_the_options_already_given() {
        let timeout = Duration::from_millis(750);
        let plain = tokio_postgres::Config::from_str("postgres://u@h/db").unwrap();
        let config = with_statement_timeout(&plain, timeout);
        assert_eq!(config.get_options(), Some("-c statement_timeout=750"));
        let given =
            tokio_postgres::Config::from_str("postgres://u@h/db?options=-c%20work_mem%3D8MB")
                .unwrap();
        let config = with_statement_timeout(&given, timeout);
        assert_eq!(
            config.get_options(),
            Some("-c work_mem=8MB -c statement_timeout=750")
        );
    }
}
