//! The AI settings: which Gemini to call (or the bundled emulator, or none), and the AiPool's
//! budget.

use std::time::Duration;

use super::{ConfigError, Secret, bad};

#[derive(Debug, Clone, clap::Args)]
pub struct AiArgs {
    /// Gemini API key; without one (and without GEMINI_EMULATOR) the node has no AI: the AI
    /// routes answer 503 `ai_unavailable` and `@ai` mentions go unanswered.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<String>,

    /// Without GEMINI_API_KEY, answer AI requests from the bundled Gemini emulator started
    /// in-process (canned text, for development and tests; never Google).
    #[arg(long, env = "GEMINI_EMULATOR", default_value = "false", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub gemini_emulator: bool,

    /// Gemini base URL.
    #[arg(
        long,
        env = "GEMINI_BASE_URL",
        default_value = aisocial_gemini::client::GOOGLE_BASE_URL
    )]
    pub gemini_base_url: String,

    /// Gemini model.
    #[arg(long, env = "GEMINI_MODEL", default_value = "gemini-2.5-flash")]
    pub gemini_model: String,

    /// Requests per minute the project may send (shared by every node).
    #[arg(long, env = "AI_RPM", default_value_t = 10)]
    pub ai_rpm: u32,

    /// Input tokens per minute the project may send (shared by every node).
    #[arg(long, env = "AI_TPM", default_value_t = 250_000)]
    pub ai_tpm: u32,

    /// Requests per day (Pacific time) the project may send (shared by every node).
    #[arg(long, env = "AI_RPD", default_value_t = 250)]
    pub ai_rpd: u32,

    /// Gemini calls running at once on this node.
    #[arg(long, env = "AI_CONCURRENCY", default_value_t = 4)]
    pub ai_concurrency: usize,

    /// AI jobs waiting at most on this node; past it callers get 429 with Retry-After.
    #[arg(long, env = "AI_QUEUE", default_value_t = 64)]
    pub ai_queue: usize,

    /// AI jobs one user may have waiting.
    #[arg(long, env = "AI_USER_QUEUE", default_value_t = 4)]
    pub ai_user_queue: usize,

    /// AI requests (compose, summary, @ai mentions) one user may make per minute.
    #[arg(long, env = "AI_USER_PER_MIN", default_value_t = 10)]
    pub ai_user_per_min: u32,

    /// AI requests one user may make per Pacific day (so no one person spends the project's).
    #[arg(long, env = "AI_USER_PER_DAY", default_value_t = 100)]
    pub ai_user_per_day: u32,

    /// Added to the budget's one-minute window, in milliseconds, so that requests that reach
    /// Google a little later than they were granted still fall inside its own window.
    #[arg(long, env = "AI_WINDOW_MARGIN_MS", default_value_t = 1_000)]
    pub ai_window_margin_ms: u64,

    /// Attempts per AI job for retryable failures (5xx, timeouts, stalls), the first included.
    #[arg(long, env = "AI_MAX_ATTEMPTS", default_value_t = 4)]
    pub ai_max_attempts: u32,

    /// First retry delay, in milliseconds (then doubled, with full jitter, up to 8 s).
    #[arg(long, env = "AI_RETRY_BASE_MS", default_value_t = 500)]
    pub ai_retry_base_ms: u64,

    /// An AI job not finished this long after it was queued fails as unavailable, in seconds.
    #[arg(long, env = "AI_JOB_TIMEOUT_SECS", default_value_t = 180)]
    pub ai_job_timeout_secs: u64,

    /// The longest silence between two chunks of a Gemini stream, in seconds.
    #[arg(long, env = "GEMINI_STALL_TIMEOUT_SECS", default_value_t = 20)]
    pub gemini_stall_timeout_secs: u64,

    /// Time allowed for Gemini's reply headers, in seconds.
    #[arg(long, env = "GEMINI_TIMEOUT_SECS", default_value_t = 30)]
    pub gemini_timeout_secs: u64,

    /// The in-process emulator's speed, in tokens per second (0: as fast as it can).
    #[arg(long, env = "EMULATOR_TOKENS_PER_SEC", default_value_t = 50.0)]
    pub emulator_tokens_per_sec: f64,

    /// The in-process emulator's delay before the first chunk, in milliseconds.
    #[arg(long, env = "EMULATOR_LATENCY_MS", default_value_t = 300)]
    pub emulator_latency_ms: u64,
}

/// Which Gemini to call.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Neither a key nor `GEMINI_EMULATOR=true`: this node has no AI (its routes answer 503
    /// `ai_unavailable`, `@ai` is not answered).
    NotConfigured,
    Google {
        base_url: String,
        api_key: Secret,
    },
    /// No key and `GEMINI_EMULATOR=true`: the bundled emulator, in this process.
    Emulator {
        tokens_per_sec: f64,
        first_chunk_latency: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct AiSettings {
    pub upstream: Upstream,
    pub model: String,
    pub rpm: u32,
    pub tpm: u32,
    pub rpd: u32,
    pub concurrency: usize,
    pub queue: usize,
    pub user_queue: usize,
    pub user_per_min: u32,
    pub user_per_day: u32,
    pub window_margin: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub job_timeout: Duration,
    pub stall_timeout: Duration,
    pub request_timeout: Duration,
}

impl AiSettings {
    pub fn from_args(args: AiArgs) -> Result<Self, ConfigError> {
        let upstream = match args
            .gemini_api_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
        {
            Some(api_key) => {
                let url = url::Url::parse(&args.gemini_base_url).map_err(|e| {
                    bad(
                        "GEMINI_BASE_URL",
                        format!("{:?} is not a URL ({e})", args.gemini_base_url),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(bad("GEMINI_BASE_URL", "must be an http(s) URL"));
                }
                Upstream::Google {
                    base_url: args.gemini_base_url.trim_end_matches('/').to_owned(),
                    api_key: Secret::new(api_key),
                }
            }
            None if !args.gemini_emulator => Upstream::NotConfigured,
            None => {
                if !(args.emulator_tokens_per_sec.is_finite()
                    && args.emulator_tokens_per_sec >= 0.0)
                {
                    return Err(bad("EMULATOR_TOKENS_PER_SEC", "must be 0 or more"));
                }
                Upstream::Emulator {
                    tokens_per_sec: args.emulator_tokens_per_sec,
                    first_chunk_latency: Duration::from_millis(args.emulator_latency_ms),
                }
            }
        };
        let model = args.gemini_model.trim().to_owned();
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(bad(
                "GEMINI_MODEL",
                "must be a model name like gemini-2.5-flash",
            ));
        }
        for (value, variable) in [
            (args.ai_rpm, "AI_RPM"),
            (args.ai_tpm, "AI_TPM"),
            (args.ai_rpd, "AI_RPD"),
            (args.ai_user_per_min, "AI_USER_PER_MIN"),
            (args.ai_user_per_day, "AI_USER_PER_DAY"),
            (args.ai_max_attempts, "AI_MAX_ATTEMPTS"),
        ] {
            if value == 0 {
                return Err(bad(variable, "must be at least 1"));
            }
        }
        for (value, variable) in [
            (args.ai_concurrency, "AI_CONCURRENCY"),
            (args.ai_queue, "AI_QUEUE"),
            (args.ai_user_queue, "AI_USER_QUEUE"),
        ] {
            if value == 0 {
                return Err(bad(variable, "must be at least 1"));
            }
        }
        if args.ai_job_timeout_secs == 0 {
            return Err(bad("AI_JOB_TIMEOUT_SECS", "must be at least 1"));
        }
        if args.gemini_stall_timeout_secs == 0 || args.gemini_timeout_secs == 0 {
            return Err(bad(
                "GEMINI_STALL_TIMEOUT_SECS",
                "GEMINI_STALL_TIMEOUT_SECS and GEMINI_TIMEOUT_SECS must be at least 1",
            ));
        }
        Ok(Self {
            upstream,
            model,
            rpm: args.ai_rpm,
            tpm: args.ai_tpm,
            rpd: args.ai_rpd,
            concurrency: args.ai_concurrency,
            queue: args.ai_queue,
            user_queue: args.ai_user_queue,
            user_per_min: args.ai_user_per_min,
            user_per_day: args.ai_user_per_day,
            window_margin: Duration::from_millis(args.ai_window_margin_ms),
            max_attempts: args.ai_max_attempts,
            retry_base: Duration::from_millis(args.ai_retry_base_ms.max(1)),
            job_timeout: Duration::from_secs(args.ai_job_timeout_secs),
            stall_timeout: Duration::from_secs(args.gemini_stall_timeout_secs),
            request_timeout: Duration::from_secs(args.gemini_timeout_secs),
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
        ai: AiArgs,
    }

    fn upstream(argv: &[&str]) -> Upstream {
        let mut all = vec!["aisocial"];
        all.extend_from_slice(argv);
        AiSettings::from_args(Cli::try_parse_from(all).unwrap().ai)
            .unwrap()
            .upstream
    }

    #[test]
    fn the_emulator_runs_only_when_asked_for() {
        assert!(matches!(upstream(&[]), Upstream::NotConfigured));
        assert!(matches!(
            upstream(&["--gemini-api-key= "]),
            Upstream::NotConfigured
        ));
        assert!(matches!(
            upstream(&["--gemini-emulator=true"]),
            Upstream::Emulator { .. }
        ));
        assert!(matches!(
            upstream(&["--gemini-emulator=false"]),
            Upstream::NotConfigured
        ));
        // A key wins: Google, whatever GEMINI_EMULATOR says.
        assert!(matches!(
            upstream(&["--gemini-api-key=k", "--gemini-emulator=true"]),
            Upstream::Google { .. }
        ));
    }
}
