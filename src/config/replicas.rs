//! The read-replica settings: where replicas are, how much lag they may have, and where the
//! FeedBroker tails the event log (the primary, or in a far region the local replica).

use std::str::FromStr;
use std::time::Duration;

use super::{ConfigError, bad, describe_hosts};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaArgs {
    /// Comma-separated PostgreSQL URLs of streaming replicas for timeline, profile and list
    /// reads [default: none, every read goes to the primary]. A URL without a database name
    /// reads DATABASE_URL's database.
    #[arg(
        long,
        env = "DATABASE_READ_URLS",
        default_value = "",
        hide_env_values = true
    )]
    pub database_read_urls: String,

    /// A replica whose replay is further behind the primary than this many milliseconds (or
    /// that does not answer its check) leaves the rotation until it has caught up.
    #[arg(long, env = "DATABASE_READ_MAX_LAG_MS", default_value_t = 1_000)]
    pub database_read_max_lag_ms: u64,

    /// How often the primary's WAL position and each replica's replay position are read, in
    /// milliseconds.
    #[arg(long, env = "DATABASE_READ_CHECK_MS", default_value_t = 250)]
    pub database_read_check_ms: u64,

    /// Where the FeedBroker reads the event log to fill gaps and find events no Redis message
    /// brought: `primary`, or `replica` (a region far from the primary, whose events arrive
    /// through its local replica; falls back to the primary when no replica is in rotation).
    #[arg(long, env = "EVENT_LOG_READS", default_value = "primary")]
    pub event_log_reads: EventLogReads,

    /// How often the FeedBroker compares the event log's head with what it delivered, in
    /// milliseconds (the bound on delivering an event no Redis message brought).
    #[arg(long, env = "EVENT_LOG_POLL_MS", default_value_t = 500)]
    pub event_log_poll_ms: u64,
}

/// Where the broker tails the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventLogReads {
    Primary,
    Replica,
}

/// One replica: how to connect, and its name in logs, metrics and readiness (no credentials).
#[derive(Debug, Clone)]
pub struct ReplicaTarget {
    pub config: tokio_postgres::Config,
    pub name: String,
}

/// The checked replica settings.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub replicas: Vec<ReplicaTarget>,
    pub max_lag: Duration,
    pub check_every: Duration,
    pub event_log_reads: EventLogReads,
    pub event_log_poll: Duration,
}

impl ReplicaSettings {
    /// Checks `args`; `primary` lends its database name to replica URLs that name none.
    pub fn from_args(
        args: ReplicaArgs,
        primary: &tokio_postgres::Config,
    ) -> Result<Self, ConfigError> {
        const URLS: &str = "DATABASE_READ_URLS";
        let mut replicas = Vec::new();
        for raw in args
            .database_read_urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let mut config = tokio_postgres::Config::from_str(raw).map_err(|e| {
                bad(
                    URLS,
                    format!(
                        "a URL is not a PostgreSQL URL ({e}); expected \
                         postgres://user@replica-host:5432[/database], comma-separated"
                    ),
                )
            })?;
            if config.get_hosts().is_empty() {
                return Err(bad(URLS, "a URL names no host"));
            }
            if config.get_dbname().is_none()
                && let Some(name) = primary.get_dbname()
            {
                config.dbname(name);
            }
            let name = describe_hosts(&config);
            if replicas.iter().any(|r: &ReplicaTarget| r.name == name) {
                return Err(bad(URLS, format!("{name} is listed twice")));
            }
            replicas.push(ReplicaTarget { config, name });
        }
        if replicas.len() > 16 {
            return Err(bad(URLS, "at most 16 replicas"));
        }
        if !(100..=60_000).contains(&args.database_read_max_lag_ms) {
            return Err(bad("DATABASE_READ_MAX_LAG_MS", "must be 100 to 60000"));
        }
        if !(20..=10_000).contains(&args.database_read_check_ms) {
            return Err(bad("DATABASE_READ_CHECK_MS", "must be 20 to 10000"));
        }
        if args.database_read_check_ms > args.database_read_max_lag_ms {
            return Err(bad(
                "DATABASE_READ_CHECK_MS",
                "must not exceed DATABASE_READ_MAX_LAG_MS (lag is measured once per check)",
            ));
        }
        if !(10..=60_000).contains(&args.event_log_poll_ms) {
            return Err(bad("EVENT_LOG_POLL_MS", "must be 10 to 60000"));
        }
        if args.event_log_reads == EventLogReads::Replica && replicas.is_empty() {
            return Err(bad(
                "EVENT_LOG_READS",
                "`replica` needs at least one replica in DATABASE_READ_URLS",
            ));
        }
        Ok(Self {
            replicas,
            max_lag: Duration::from_millis(args.database_read_max_lag_ms),
            check_every: Duration::from_millis(args.database_read_check_ms),
            event_log_reads: args.event_log_reads,
            event_log_poll: Duration::from_millis(args.event_log_poll_ms),
        })
    }

    /// How long a user's reads stay bound to their last write's position: longer than any
    /// replica in rotation can be behind (the lag bound plus one check).
    pub fn sticky_for(&self) -> Duration {
        self.max_lag * 2 + self.check_every + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        replicas: ReplicaArgs,
    }

    fn settings(args: &[&str]) -> Result<ReplicaSettings, ConfigError> {
        let mut argv = vec!["aisocial"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| bad("argv", e.to_string()))?;
        let primary = tokio_postgres::Config::from_str("postgres://postgres@db:5432/social")
            .map_err(|e| bad("test", e.to_string()))?;
        ReplicaSettings::from_args(cli.replicas, &primary)
    }

    fn mistake(args: &[&str]) -> Option<&'static str> {
        settings(args).err().map(|e| e.variable)
    }

    #[test]
    fn no_replicas_by_default() {
        let s = settings(&[]).unwrap();
        assert!(s.replicas.is_empty());
        assert_eq!(s.event_log_reads, EventLogReads::Primary);
        assert_eq!(s.event_log_poll, Duration::from_millis(500));
    }

    #[test]
    fn replica_urls_are_named_by_host_and_borrow_the_primary_database() {
        let s = settings(&[
            "--database-read-urls=postgres://reader:secret@r1:5433, postgres://r2/other",
        ])
        .unwrap();
        let names: Vec<_> = s.replicas.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r1:5433", "r2:5432"]);
        assert_eq!(s.replicas[0].config.get_dbname(), Some("social"));
        assert_eq!(s.replicas[1].config.get_dbname(), Some("other"));
        assert!(!format!("{names:?}").contains("secret"));
        assert!(s.sticky_for() > s.max_lag + s.check_every);
    }

    #[test]
    fn each_mistake_names_its_variable() {
        let urls = "DATABASE_READ_URLS";
        assert_eq!(mistake(&["--database-read-urls=mysql://x"]), Some(urls));
        assert_eq!(
            mistake(&["--database-read-urls=postgres://a,postgres://a"]),
            Some(urls)
        );
        assert_eq!(
            mistake(&["--database-read-max-lag-ms=10"]),
            Some("DATABASE_READ_MAX_LAG_MS")
        );
        assert_eq!(
            mistake(&["--database-read-check-ms=5"]),
            Some("DATABASE_READ_CHECK_MS")
        );
        assert_eq!(
            mistake(&[
                "--database-read-max-lag-ms=200",
                "--database-read-check-ms=500"
            ]),
            Some("DATABASE_READ_CHECK_MS")
        );
        assert_eq!(
            mistake(&["--event-log-reads=replica"]),
            Some("EVENT_LOG_READS")
        );
        assert_eq!(
            mistake(&["--event-log-poll-ms=1"]),
            Some("EVENT_LOG_POLL_MS")
        );
        assert_eq!(
            mistake(&[
                "--database-read-urls=postgres://r1",
                "--event-log-reads=replica"
            ]),
            None
        );
    }
}
