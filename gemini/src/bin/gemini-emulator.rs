//! `gemini-emulator`: the Gemini emulator as a standalone server (every flag also an `EMULATOR_*`
//! environment variable). Stops on Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use aisocial_gemini::emulator::{self, EmulatorConfig, QuotaLimits, QuotaTier};
use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Serves Google's Gemini REST API (v1beta) with made-up answers, quotas and injected failures.
/// Flags left out take the library defaults (free-tier gemini-2.5-flash limits, no pacing, no failures).
#[derive(Debug, Parser)]
#[command(name = "gemini-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "EMULATOR_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// The accepted API key; without it any non-empty key is accepted.
    #[arg(long, env = "EMULATOR_API_KEY")]
    api_key: Option<String>,
    /// Models served, comma-separated [default: gemini-2.5-flash,gemini-2.5-flash-lite].
    #[arg(long, env = "EMULATOR_MODELS", value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Requests per minute per model (0: no limit) [default: 10].
    #[arg(long, env = "EMULATOR_RPM")]
    rpm: Option<u32>,
    /// Input tokens per minute per model (0: no limit) [default: 250000].
    #[arg(long, env = "EMULATOR_TPM")]
    tpm: Option<u64>,
    /// Requests per day per model, reset at midnight Pacific (0: no limit) [default: 250].
    #[arg(long, env = "EMULATOR_RPD")]
    rpd: Option<u32>,
    /// Limits of particular models, comma-separated `model=rpm/tpm/rpd`
    /// (e.g. `gemini-2.5-flash-lite=15/250000/1000`).
    #[arg(long, env = "EMULATOR_MODEL_LIMITS", value_delimiter = ',', value_parser = parse_model_limits)]
    model_limits: Vec<(String, QuotaLimits)>,
    /// Quota ids and metrics name the paid tier instead of the free tier.
    #[arg(long, env = "EMULATOR_PAID_TIER")]
    paid_tier: bool,
    /// Wait before the first chunk, in milliseconds [default: 0].
    #[arg(long, env = "EMULATOR_FIRST_CHUNK_LATENCY_MS")]
    first_chunk_latency_ms: Option<u64>,
    /// Output pace in tokens per second (0: as fast as possible) [default: 0].
    #[arg(long, env = "EMULATOR_TOKENS_PER_SECOND")]
    tokens_per_second: Option<f64>,
    /// Length of an answer not cut by maxOutputTokens [default: 40].
    #[arg(long, env = "EMULATOR_DEFAULT_OUTPUT_TOKENS")]
    default_output_tokens: Option<u32>,
    /// About how many tokens each stream chunk carries [default: 4].
    #[arg(long, env = "EMULATOR_CHUNK_TOKENS")]
    chunk_tokens: Option<u32>,
    /// thoughtsTokenCount reported per answer [default: 0].
    #[arg(long, env = "EMULATOR_THOUGHTS_TOKENS")]
    thoughts_tokens: Option<u32>,
    /// Share (0..1) of generation requests answered 503 [default: 0].
    #[arg(long, env = "EMULATOR_FAIL_503_SHARE")]
    fail_503_share: Option<f64>,
    /// Share (0..1) of streams that stall after their first chunk [default: 0].
    #[arg(long, env = "EMULATOR_STALL_SHARE")]
    stall_share: Option<f64>,
    /// Quota 429s come with no details.
    #[arg(long, env = "EMULATOR_BARE_429S")]
    bare_429s: bool,
    /// Benchmarks only: stamp each stream chunk's text with its send time (`[[t=µs]]`).
    #[arg(long, env = "EMULATOR_STAMP_CHUNKS")]
    stamp_chunks: bool,
    /// Recent requests kept in the stats log [default: 1000].
    #[arg(long, env = "EMULATOR_LOG_CAPACITY")]
    log_capacity: Option<usize>,
}

impl Args {
    fn config(self) -> EmulatorConfig {
        let defaults = EmulatorConfig::default();
        let limits = QuotaLimits {
            rpm: self.rpm.unwrap_or(defaults.limits.rpm),
            input_tpm: self.tpm.unwrap_or(defaults.limits.input_tpm),
            rpd: self.rpd.unwrap_or(defaults.limits.rpd),
        };
        EmulatorConfig {
            api_key: self.api_key.filter(|key| !key.is_empty()),
            models: self.models.unwrap_or(defaults.models),
            limits,
            model_limits: self.model_limits.into_iter().collect::<BTreeMap<_, _>>(),
            tier: if self.paid_tier {
                QuotaTier::PaidTier
            } else {
                QuotaTier::FreeTier
            },
            first_chunk_latency: self
                .first_chunk_latency_ms
                .map_or(defaults.first_chunk_latency, Duration::from_millis),
            tokens_per_second: self.tokens_per_second.unwrap_or(defaults.tokens_per_second),
            default_output_tokens: self
                .default_output_tokens
                .unwrap_or(defaults.default_output_tokens),
            chunk_tokens: self.chunk_tokens.unwrap_or(defaults.chunk_tokens),
            thoughts_tokens: self.thoughts_tokens.unwrap_or(defaults.thoughts_tokens),
            fail_503_share: self.fail_503_share.unwrap_or(defaults.fail_503_share),
            stall_share: self.stall_share.unwrap_or(defaults.stall_share),
            bare_429s: self.bare_429s,
            stamp_chunks: self.stamp_chunks,
            log_capacity: self.log_capacity.unwrap_or(defaults.log_capacity),
        }
    }
}

/// `model=rpm/tpm/rpd`.
fn parse_model_limits(text: &str) -> Result<(String, QuotaLimits), String> {
    let usage = || format!("{text:?} is not model=rpm/tpm/rpd");
    let (model, numbers) = text.split_once('=').ok_or_else(usage)?;
    let numbers: Vec<&str> = numbers.split('/').map(str::trim).collect();
    let [rpm, tpm, rpd] = numbers.as_slice() else {
        return Err(usage());
    };
    let limits = QuotaLimits {
        rpm: rpm.parse().map_err(|_| usage())?,
        input_tpm: tpm.parse().map_err(|_| usage())?,
        rpd: rpd.parse().map_err(|_| usage())?,
    };
    Ok((model.trim().to_owned(), limits))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    actix_rt::System::new().block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bind = args.bind;
    let config = args.config();
    let models = config.models.join(",");
    let running = emulator::start(config, bind)
        .await
        .with_context(|| format!("cannot start the Gemini emulator on {bind}"))?;
    tracing::info!(url = %running.base_url(), %models, "gemini emulator listening");
    shutdown_signal().await;
    running.stop().await;
    tracing::info!("gemini emulator stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
