//! The DbWriter's settings (`DB_WRITER_*`): how much it holds and how long it waits for
//! PostgreSQL, checked into a [`WriterSettings`].

use std::time::Duration;

use super::{ConfigError, bad};

#[derive(Debug, Clone, clap::Args)]
pub struct WriterArgs {
    /// Commands the DbWriter commits together at most.
    #[arg(long, env = "DB_WRITER_MAX_BATCH", default_value_t = 256)]
    pub db_writer_max_batch: usize,

    /// Commands the DbWriter holds at most before answering 503.
    #[arg(long, env = "DB_WRITER_MAX_QUEUE", default_value_t = 10_000)]
    pub db_writer_max_queue: usize,

    /// Milliseconds a DbWriter transaction may take from BEGIN to the end of COMMIT before it
    /// is abandoned and its writes answer 503; the one-by-one retry of a failed batch gets as
    /// long again.
    #[arg(long, env = "DB_WRITER_BATCH_TIMEOUT_MS", default_value_t = 15_000)]
    pub db_writer_batch_timeout_ms: u64,

    /// Milliseconds a write waits for a row lock before it gives up (503 with Retry-After;
    /// nothing written).
    #[arg(long, env = "DB_WRITER_LOCK_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_writer_lock_timeout_ms: u64,
}

/// The checked DbWriter settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    pub max_batch: usize,
    pub max_queue: usize,
    pub batch_timeout: Duration,
    pub lock_timeout: Duration,
}

impl WriterSettings {
    pub fn from_args(args: &WriterArgs) -> Result<Self, ConfigError> {
        if args.db_writer_max_batch == 0 {
            return Err(bad("DB_WRITER_MAX_BATCH", "must be at least 1"));
        }
        if args.db_writer_max_queue < args.db_writer_max_batch {
            return Err(bad(
                "DB_WRITER_MAX_QUEUE",
                "must be at least DB_WRITER_MAX_BATCH",
            ));
        }
        if !(500..=300_000).contains(&args.db_writer_batch_timeout_ms) {
            return Err(bad("DB_WRITER_BATCH_TIMEOUT_MS", "must be 500 to 300000"));
        }
        if args.db_writer_lock_timeout_ms < 50
            || args.db_writer_lock_timeout_ms >= args.db_writer_batch_timeout_ms
        {
            return Err(bad(
                "DB_WRITER_LOCK_TIMEOUT_MS",
                "must be at least 50 and less than DB_WRITER_BATCH_TIMEOUT_MS",
            ));
        }
        Ok(Self {
            max_batch: args.db_writer_max_batch,
            max_queue: args.db_writer_max_queue,
            batch_timeout: Duration::from_millis(args.db_writer_batch_timeout_ms),
            lock_timeout: Duration::from_millis(args.db_writer_lock_timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        writer: WriterArgs,
    }

    fn settings(args: &[&str]) -> Result<WriterSettings, ConfigError> {
        let mut argv = vec!["aisocial"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| bad("argv", e.to_string()))?;
        WriterSettings::from_args(&cli.writer)
    }

    fn mistake(args: &[&str]) -> Option<&'static str> {
        settings(args).err().map(|e| e.variable)
    }

    #[test]
    fn the_defaults_hold_together() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.max_batch, s.max_queue), (256, 10_000));
        assert_eq!(s.batch_timeout, Duration::from_secs(15));
        assert_eq!(s.lock_timeout, Duration::from_secs(5));
    }

    #[test]
    fn each_mistake_names_its_variable() {
        assert_eq!(
            mistake(&["--db-writer-max-batch=0"]),
            Some("DB_WRITER_MAX_BATCH")
        );
        assert_eq!(
            mistake(&["--db-writer-max-batch=10", "--db-writer-max-queue=5"]),
            Some("DB_WRITER_MAX_QUEUE")
        );
        assert_eq!(
            mistake(&["--db-writer-batch-timeout-ms=10"]),
            Some("DB_WRITER_BATCH_TIMEOUT_MS")
        );
        assert_eq!(
            mistake(&[
                "--db-writer-batch-timeout-ms=1000",
                "--db-writer-lock-timeout-ms=1000"
            ]),
            Some("DB_WRITER_LOCK_TIMEOUT_MS")
        );
        assert_eq!(
            mistake(&[
                "--db-writer-batch-timeout-ms=1000",
                "--db-writer-lock-timeout-ms=300"
            ]),
            None
        );
    }
}
