//! Command line and configuration: every setting is an environment variable and a `serve`
//! flag, with a documented default, checked once at start-up into a typed [`Settings`].

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use aisocial_actors::roles::RoleGrants;
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

pub mod admission;
pub mod ai;
pub mod redis;
pub mod replicas;
pub mod roles;
pub mod tls;
pub mod writer;

/// aisocial: the realtime backend of an AI social network.
#[derive(Debug, Parser)]
#[command(name = "aisocial", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, start the actors and serve HTTP and websockets.
    Serve(Box<ServeArgs>),
    /// Create the database if it is missing and apply pending migrations, then exit.
    Migrate(MigrateArgs),
    /// Moderation from the command line: suspend or unsuspend an account, grant or revoke a
    /// role. Applied and audited like the API's; serving nodes learn of it from the log.
    Admin(AdminArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(subcommand)]
    pub action: AdminAction,
}

/// One moderation command.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminAction {
    /// Suspend an account: sign-in refused, every session revoked, its sockets closed on every
    /// node.
    Suspend { handle: String },
    /// End an account's suspension.
    Unsuspend { handle: String },
    /// Grant a role (it stays until revoked; configuration cannot take it back).
    Grant {
        #[arg(long, value_enum)]
        role: GrantedRole,
        handle: String,
    },
    /// Take any role away: the account becomes a plain user.
    Revoke { handle: String },
}

/// A role the command line grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrantedRole {
    Moderator,
    Admin,
}

impl From<GrantedRole> for aisocial_actors::model::Role {
    fn from(role: GrantedRole) -> Self {
        match role {
            GrantedRole::Moderator => Self::Moderator,
            GrantedRole::Admin => Self::Admin,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Change nothing: say whether the database's schema matches this binary's migrations
    /// (exit 0) or not (exit 1, naming pending, unknown or changed migrations).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL; the database is created if it does not exist.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/aisocial",
        hide_env_values = true
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Listen address; port 0 picks a free port (the `listening` log line names it).
    #[arg(long, env = "AISOCIAL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Connections in the read pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: u32,

    /// Milliseconds a read (a request's query, a resume's replay) may take, waiting for a pooled
    /// connection included, before it fails with 503.
    #[arg(long, env = "DATABASE_READ_TIMEOUT_MS", default_value_t = 5000)]
    pub database_read_timeout_ms: u64,

    /// Redis URL: one server, or one node of a Redis Cluster (detected), or a comma-separated
    /// list of cluster seed nodes.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Prefix of every Redis key and channel; isolates deployments (and tests) sharing a Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "aisocial:")]
    pub redis_prefix: String,

    /// This node's name in logs, metrics and cross-node messages [default: host name + pid].
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Enable `POST /api/v1/auth/dev` (sign in by handle, no password). Never in production.
    #[arg(long, env = "AUTH_DEV_LOGIN", default_value = "false", action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub auth_dev_login: bool,

    /// Dev login on an address other than loopback (a container's 0.0.0.0, a LAN address):
    /// refused unless this is exactly `i-understand-anyone-can-sign-in-as-anyone`, because
    /// whoever reaches the port can then sign in as any dev account, admins named in
    /// ADMIN_HANDLES included.
    #[arg(long, env = "AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND", hide_env_values = true)]
    pub auth_dev_login_allow_public_bind: Option<String>,

    /// Key (≥ 32 bytes, not a published example) for our access tokens [default: with dev
    /// login only, a random key drawn at start-up, so tokens die with the process].
    #[arg(long, env = "JWT_SIGNING_KEY", hide_env_values = true)]
    pub jwt_signing_key: Option<String>,

    /// Absolute lifetime of a sign-in session (its refresh-token family), in days.
    #[arg(long, env = "REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u64,

    /// Seconds after a rotation during which the same refresh request again (the same token
    /// and `Idempotency-Key`, the new token not used yet) gets the same new token instead of
    /// counting as reuse; 0 turns this off.
    #[arg(long, env = "REFRESH_RETRY_GRACE_SECS", default_value_t = 60)]
    pub refresh_retry_grace_secs: u64,

    /// A refresh without `Idempotency-Key` repeated within this many milliseconds of the
    /// rotation it repeats (and before the new token is used) gets the same new pair:
    /// concurrent refreshes of one token sign nobody out. Past it, reuse revokes the session;
    /// 0 turns this off.
    #[arg(long, env = "REFRESH_CONCURRENT_GRACE_MS", default_value_t = 2000)]
    pub refresh_concurrent_grace_ms: u64,

    /// Dev login only: comma-separated handles of dev accounts granted the admin role when
    /// they sign in. Refused without AUTH_DEV_LOGIN (a Google user chooses their own name).
    #[arg(long, env = "ADMIN_HANDLES", default_value = "")]
    pub admin_handles: String,

    /// Comma-separated Google account ids (`sub`) granted the admin role.
    #[arg(long, env = "ADMIN_SUBS", default_value = "")]
    pub admin_subs: String,

    /// Comma-separated e-mail addresses, verified by Google, granted the admin role.
    #[arg(long, env = "ADMIN_EMAILS", default_value = "")]
    pub admin_emails: String,

    /// Comma-separated Google account ids (`sub`) granted the moderator role.
    #[arg(long, env = "MODERATOR_SUBS", default_value = "")]
    pub moderator_subs: String,

    /// Comma-separated e-mail addresses, verified by Google, granted the moderator role.
    #[arg(long, env = "MODERATOR_EMAILS", default_value = "")]
    pub moderator_emails: String,

    /// Google OAuth client id; Google sign-in is off without it.
    #[arg(long, env = "GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,

    /// Google OAuth client secret (for the authorization-code flow).
    #[arg(long, env = "GOOGLE_CLIENT_SECRET", hide_env_values = true)]
    pub google_client_secret: Option<String>,

    /// Where Google sends the browser back: this server's `/api/v1/auth/google/callback`.
    #[arg(long, env = "GOOGLE_REDIRECT_URL")]
    pub google_redirect_url: Option<String>,

    /// Google's signing keys (JWKS).
    #[arg(
        long,
        env = "GOOGLE_JWKS_URL",
        default_value = "https://www.googleapis.com/oauth2/v3/certs"
    )]
    pub google_jwks_url: String,

    /// Google's authorization endpoint.
    #[arg(
        long,
        env = "GOOGLE_AUTH_URL",
        default_value = "https://accounts.google.com/o/oauth2/v2/auth"
    )]
    pub google_auth_url: String,

    /// Google's token endpoint.
    #[arg(
        long,
        env = "GOOGLE_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub google_token_url: String,

    /// Comma-separated proxies (IPs or CIDRs) whose X-Forwarded-For is believed [default: none].
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// Requests per minute per signed-in user.
    #[arg(long, env = "RATE_LIMIT_USER_PER_MIN", default_value_t = 600)]
    pub rate_limit_user_per_min: u32,

    /// Requests per minute per client IP.
    #[arg(long, env = "RATE_LIMIT_IP_PER_MIN", default_value_t = 1200)]
    pub rate_limit_ip_per_min: u32,

    /// Sign-in and token requests per minute per client IP.
    #[arg(long, env = "RATE_LIMIT_AUTH_PER_MIN", default_value_t = 30)]
    pub rate_limit_auth_per_min: u32,

    /// Health and metrics requests per minute per client IP (probes and scrapers; counted
    /// apart from the API's limit so that neither starves the other).
    #[arg(long, env = "RATE_LIMIT_OPS_PER_MIN", default_value_t = 600)]
    pub rate_limit_ops_per_min: u32,

    /// How often each node reloads revoked sign-in sessions from PostgreSQL, in milliseconds
    /// (a logout takes effect on every node within this even when Redis loses its
    /// announcement).
    #[arg(long, env = "REVOCATION_RELOAD_MS", default_value_t = 2000)]
    pub revocation_reload_ms: u64,

    /// Serve `/metrics` on this address only (`host:port`, e.g. a private interface) instead
    /// of the main listener [default: the main listener].
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`
    /// (at least 16 bytes).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// IPv6 clients whose addresses share this many leading bits count as one for per-IP
    /// limits and caps (one subscriber is usually given a whole /64).
    #[arg(long, env = "RATE_LIMIT_IPV6_PREFIX", default_value_t = 64)]
    pub rate_limit_ipv6_prefix: u8,

    /// Access-token lifetime in seconds (at most 900).
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Comma-separated exact origins allowed to open websockets; clients sending no Origin are
    /// always allowed [default: none, so any Origin is refused].
    #[arg(long, env = "WS_ALLOWED_ORIGINS", default_value = "")]
    pub ws_allowed_origins: String,

    /// Server ping interval on websockets, in milliseconds.
    #[arg(long, env = "WS_HEARTBEAT_MS", default_value_t = 25_000)]
    pub ws_heartbeat_ms: u64,

    /// A websocket client silent for this long is disconnected, in milliseconds.
    #[arg(long, env = "WS_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub ws_idle_timeout_ms: u64,

    /// Frames a websocket may have waiting to be written before it counts as a slow consumer
    /// (closed with 1013; the client resumes with `since`).
    #[arg(long, env = "WS_OUTBOUND_LIMIT", default_value_t = 1024)]
    pub ws_outbound_limit: usize,

    /// Websockets this node holds at most; past it upgrades get 503 [default: the open-file
    /// limit minus 512].
    #[arg(long, env = "WS_MAX_SESSIONS")]
    pub ws_max_sessions: Option<usize>,

    /// Websockets that may be registering and replaying at once; past it upgrades get 503.
    #[arg(long, env = "WS_MAX_STARTING", default_value_t = 512)]
    pub ws_max_starting: usize,

    /// Websockets one user may hold on this node at once; past it upgrades get 429.
    #[arg(long, env = "WS_MAX_PER_USER", default_value_t = 32)]
    pub ws_max_per_user: usize,

    /// Websockets one client IP may hold on this node at once; past it upgrades get 429.
    #[arg(long, env = "WS_MAX_PER_IP", default_value_t = 2_000)]
    pub ws_max_per_ip: usize,

    /// Messages to other nodes (log records, presence) that may wait to be published to Redis;
    /// past it they are dropped (the other nodes read the records from PostgreSQL).
    #[arg(long, env = "RELAY_QUEUE", default_value_t = 8_192)]
    pub relay_queue: usize,

    /// Ephemeral pushes (`ai.delta`, …) for other nodes that may wait behind the records; past it
    /// they are dropped.
    #[arg(long, env = "RELAY_PUSH_QUEUE", default_value_t = 1_024)]
    pub relay_push_queue: usize,

    /// How long a user must be gone before followers see `presence` offline, in milliseconds.
    #[arg(long, env = "PRESENCE_DEBOUNCE_MS", default_value_t = 5_000)]
    pub presence_debounce_ms: u64,

    /// How far back `since` can resume, in hours.
    #[arg(long, env = "EVENT_RETENTION_HOURS", default_value_t = 72)]
    pub event_retention_hours: u64,

    /// How often events older than the retention window are purged, in milliseconds.
    #[arg(long, env = "EVENT_PURGE_INTERVAL_MS", default_value_t = 300_000)]
    pub event_purge_interval_ms: u64,

    /// The most events one resume replays before asking the client to resync.
    #[arg(long, env = "WS_REPLAY_LIMIT", default_value_t = 10_000)]
    pub ws_replay_limit: usize,

    /// HTTP worker threads [default: one per core].
    #[arg(long, env = "AISOCIAL_WORKERS")]
    pub workers: Option<usize>,

    #[command(flatten)]
    pub writer: writer::WriterArgs,

    /// Seconds in-flight requests get to finish on SIGTERM.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,

    /// PEM certificate chain (end-entity certificate first) to serve https and wss with; the
    /// listener then speaks TLS only. Needs TLS_KEY_PATH; both are read again on SIGHUP
    /// [default: none, plain HTTP, as behind a TLS-terminating proxy].
    #[arg(long, env = "TLS_CERT_PATH")]
    pub tls_cert_path: Option<String>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate in TLS_CERT_PATH.
    #[arg(long, env = "TLS_KEY_PATH")]
    pub tls_key_path: Option<String>,

    /// A client must finish its TLS handshake within this, in milliseconds, or is dropped.
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub tls_handshake_timeout_ms: u64,

    /// Log format: json (one object per line) or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub replicas: replicas::ReplicaArgs,

    #[command(flatten)]
    pub ai: ai::AiArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The exact value of `AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND` that lets dev login listen on an
/// address other than loopback.
pub const ALLOW_PUBLIC_DEV_LOGIN: &str = "i-understand-anyone-can-sign-in-as-anyone";

/// Signing keys that were ever published (in this repository's code, compose file, examples
/// and docs): anyone can forge tokens with them, so they are refused like a short key.
pub const PLACEHOLDER_SIGNING_KEYS: &[&str] = &[
    // The fixed dev key earlier versions signed with when dev login was on and no key given.
    "aisocial-dev-only-signing-key-do-not-use-in-production",
    // docker-compose.yml's former default.
    "local-only-NOT-SECRET-aisocial-compose-signing-key",
    // deploy/kubernetes/secret.example.yaml.
    "CHANGE-ME-at-least-32-random-bytes-base64",
];

/// A configuration mistake, named by its variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

pub(crate) fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// Google sign-in, when configured.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_url: Option<String>,
    pub jwks_url: String,
    pub auth_url: String,
    pub token_url: String,
}

/// Requests per minute allowed per key.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub user_per_min: u32,
    pub ip_per_min: u32,
    pub auth_per_min: u32,
    /// Health and metrics, per IP.
    pub ops_per_min: u32,
    /// IPv6 addresses are keyed by this prefix length.
    pub ipv6_prefix: u8,
}

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database: tokio_postgres::Config,
    pub database_url_display: String,
    pub database_pool_size: u32,
    pub read_timeout: Duration,
    pub redis_url: Secret,
    pub redis_display: String,
    pub redis_prefix: String,
    pub node_id: String,
    pub dev_login: bool,
    pub signing_key: Secret,
    pub access_token_ttl: Duration,
    pub refresh_lifetime: Duration,
    pub refresh_retry_grace: Duration,
    pub refresh_concurrent_grace: Duration,
    /// The roles configuration grants (reconciled at every sign-in and refresh).
    pub role_grants: RoleGrants,
    pub google: Option<GoogleSettings>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: RateLimits,
    /// How often revocations are reloaded from PostgreSQL.
    pub revocation_reload: Duration,
    /// `/metrics` on an address of its own.
    pub metrics_bind: Option<SocketAddr>,
    /// The bearer token `/metrics` requires.
    pub metrics_token: Option<Secret>,
    pub allowed_origins: Vec<String>,
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    pub event_retention: Duration,
    pub event_purge_interval: Duration,
    pub replay_limit: usize,
    pub outbound_limit: usize,
    pub admission: admission::AdmissionLimits,
    pub relay_queues: redis::RelayQueues,
    pub presence_debounce: Duration,
    pub workers: usize,
    pub writer: writer::WriterSettings,
    pub shutdown_timeout: Duration,
    /// TLS termination, when a certificate and key are configured.
    pub tls: Option<tls::TlsSettings>,
    pub log_format: LogFormat,
    pub replicas: replicas::ReplicaSettings,
    pub ai: ai::AiSettings,
}

/// Parses and checks a PostgreSQL URL; the error names `DATABASE_URL`.
pub fn parse_database_url(raw: &str) -> Result<(tokio_postgres::Config, String), ConfigError> {
    let config = tokio_postgres::Config::from_str(raw).map_err(|e| {
        bad(
            "DATABASE_URL",
            format!("not a PostgreSQL URL ({e}); expected postgres://user@host:5432/database"),
        )
    })?;
    let Some(name) = config.get_dbname() else {
        return Err(bad(
            "DATABASE_URL",
            "names no database; expected postgres://user@host:5432/database",
        ));
    };
    if config.get_hosts().is_empty() {
        return Err(bad("DATABASE_URL", "names no host"));
    }
    let display = format!("{}/{}", describe_hosts(&config), name);
    Ok((config, display))
}

/// `host:port` of a PostgreSQL config, for messages (no credentials).
pub fn describe_hosts(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Settings {
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let bind: SocketAddr = args.bind.parse().map_err(|_| {
            bad(
                "AISOCIAL_BIND",
                format!("{:?} is not an address like 127.0.0.1:8080", args.bind),
            )
        })?;
        let (database, database_url_display) = parse_database_url(&args.database.database_url)?;
        let google = google_settings(&args)?;
        let tls = tls::tls_settings(&args)?;
        let role_grants = roles::role_grants(&args)?;
        let replicas = replicas::ReplicaSettings::from_args(args.replicas, &database)?;
        if args.database_read_timeout_ms < 100 {
            return Err(bad("DATABASE_READ_TIMEOUT_MS", "must be at least 100"));
        }
        if args.database_pool_size == 0 {
            return Err(bad("DATABASE_POOL_SIZE", "must be at least 1"));
        }
        let redis_display = redis::RedisUrls::parse(&args.redis_url)
            .map_err(|e| bad("REDIS_URL", e.to_string()))?
            .display();
        if args.redis_prefix.is_empty() || args.redis_prefix.len() > 64 {
            return Err(bad("REDIS_PREFIX", "must be 1 to 64 characters"));
        }
        let node_id = match args.node_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
            Some(_) => return Err(bad("NODE_ID", "must not be blank")),
            None => default_node_id(),
        };
        let allow_public_dev_login = match args.auth_dev_login_allow_public_bind.as_deref() {
            None | Some("") => false,
            Some(ALLOW_PUBLIC_DEV_LOGIN) => true,
            Some(_) => {
                return Err(bad(
                    "AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND",
                    format!(
                        "must be unset or exactly {ALLOW_PUBLIC_DEV_LOGIN:?} (dev login lets whoever reaches the port sign in as any dev account)"
                    ),
                ));
            }
        };
        if args.auth_dev_login && !bind.ip().is_loopback() {
            if !allow_public_dev_login {
                return Err(bad(
                    "AUTH_DEV_LOGIN",
                    format!(
                        "dev login signs in anyone by handle, without a password; it is refused on {bind}, which is not a loopback address. Listen on 127.0.0.1 or ::1, or, if everyone who can reach {bind} may sign in as any dev account, set AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND={ALLOW_PUBLIC_DEV_LOGIN}"
                    ),
                ));
            }
            tracing::warn!(
                %bind,
                "AUTH_DEV_LOGIN=true on an address that is not loopback (AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND is set): whoever reaches it can sign in as any dev account"
            );
        }
        let signing_key = match args.jwt_signing_key {
            Some(key) if PLACEHOLDER_SIGNING_KEYS.contains(&key.as_str()) => {
                return Err(bad(
                    "JWT_SIGNING_KEY",
                    "is a published example key, so anyone can forge tokens with it; draw a secret one (e.g. openssl rand -base64 48)",
                ));
            }
            Some(key) if key.len() >= 32 => key,
            Some(_) => return Err(bad("JWT_SIGNING_KEY", "must be at least 32 bytes")),
            None if args.auth_dev_login => {
                tracing::warn!(
                    "JWT_SIGNING_KEY is not set: signing with a random key drawn for this process (acceptable only because AUTH_DEV_LOGIN=true); tokens end with the process and no other node accepts them"
                );
                random_signing_key()
            }
            None => {
                return Err(bad(
                    "JWT_SIGNING_KEY",
                    "is required (at least 32 random bytes) unless AUTH_DEV_LOGIN=true",
                ));
            }
        };
        if !(60..=900).contains(&args.access_token_ttl_secs) {
            return Err(bad("ACCESS_TOKEN_TTL_SECS", "must be between 60 and 900"));
        }
        let allowed_origins = args
            .ws_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let parsed = url::Url::parse(o).map_err(|_| {
                    bad("WS_ALLOWED_ORIGINS", format!("{o:?} is not an origin like https://example.com"))
                })?;
                let origin = parsed.origin().ascii_serialization();
                if origin != o.trim_end_matches('/') {
                    return Err(bad(
                        "WS_ALLOWED_ORIGINS",
                        format!("{o:?} is not an exact origin (scheme://host[:port]); did you mean {origin}?"),
                    ));
                }
                Ok(origin)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(1..=365).contains(&args.refresh_token_ttl_days) {
            return Err(bad("REFRESH_TOKEN_TTL_DAYS", "must be between 1 and 365"));
        }
        if args.refresh_concurrent_grace_ms > 10_000 {
            return Err(bad(
                "REFRESH_CONCURRENT_GRACE_MS",
                "must be between 0 and 10000",
            ));
        }
        if args.refresh_retry_grace_secs > 600 {
            return Err(bad("REFRESH_RETRY_GRACE_SECS", "must be between 0 and 600"));
        }
        let trusted_proxies = args
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| bad("TRUSTED_PROXIES", format!("{p:?} is not an IP or CIDR")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (value, variable) in [
            (args.rate_limit_user_per_min, "RATE_LIMIT_USER_PER_MIN"),
            (args.rate_limit_ip_per_min, "RATE_LIMIT_IP_PER_MIN"),
            (args.rate_limit_auth_per_min, "RATE_LIMIT_AUTH_PER_MIN"),
            (args.rate_limit_ops_per_min, "RATE_LIMIT_OPS_PER_MIN"),
        ] {
            if value == 0 {
                return Err(bad(variable, "must be at least 1"));
            }
        }
        if !(100..=60_000).contains(&args.revocation_reload_ms) {
            return Err(bad("REVOCATION_RELOAD_MS", "must be between 100 and 60000"));
        }
        let metrics_token = match args.metrics_token {
            Some(token) if token.is_empty() => None,
            Some(token) if token.len() < 16 => {
                return Err(bad("METRICS_TOKEN", "must be at least 16 bytes"));
            }
            token => token.map(Secret),
        };
        if !(32..=128).contains(&args.rate_limit_ipv6_prefix) {
            return Err(bad("RATE_LIMIT_IPV6_PREFIX", "must be between 32 and 128"));
        }
        if args.ws_heartbeat_ms < 100 {
            return Err(bad("WS_HEARTBEAT_MS", "must be at least 100"));
        }
        if args.ws_idle_timeout_ms <= args.ws_heartbeat_ms {
            return Err(bad(
                "WS_IDLE_TIMEOUT_MS",
                "must be longer than WS_HEARTBEAT_MS",
            ));
        }
        if args.ws_outbound_limit < 16 {
            return Err(bad("WS_OUTBOUND_LIMIT", "must be at least 16"));
        }
        if args.event_retention_hours == 0 {
            return Err(bad("EVENT_RETENTION_HOURS", "must be at least 1"));
        }
        let workers = match args.workers {
            Some(0) => return Err(bad("AISOCIAL_WORKERS", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let writer = writer::WriterSettings::from_args(&args.writer)?;
        Ok(Self {
            bind,
            database,
            database_url_display,
            database_pool_size: args.database_pool_size,
            read_timeout: Duration::from_millis(args.database_read_timeout_ms),
            redis_url: Secret(args.redis_url),
            redis_display,
            redis_prefix: args.redis_prefix,
            node_id,
            dev_login: args.auth_dev_login,
            signing_key: Secret(signing_key),
            access_token_ttl: Duration::from_secs(args.access_token_ttl_secs),
            refresh_lifetime: Duration::from_secs(args.refresh_token_ttl_days * 86_400),
            refresh_retry_grace: Duration::from_secs(args.refresh_retry_grace_secs),
            refresh_concurrent_grace: Duration::from_millis(args.refresh_concurrent_grace_ms),
            role_grants,
            google,
            trusted_proxies,
            revocation_reload: Duration::from_millis(args.revocation_reload_ms),
            metrics_bind: args.metrics_bind,
            metrics_token,
            rate_limits: RateLimits {
                user_per_min: args.rate_limit_user_per_min,
                ip_per_min: args.rate_limit_ip_per_min,
                auth_per_min: args.rate_limit_auth_per_min,
                ops_per_min: args.rate_limit_ops_per_min,
                ipv6_prefix: args.rate_limit_ipv6_prefix,
            },
            allowed_origins,
            heartbeat: Duration::from_millis(args.ws_heartbeat_ms),
            idle_timeout: Duration::from_millis(args.ws_idle_timeout_ms),
            event_retention: Duration::from_secs(args.event_retention_hours * 3600),
            event_purge_interval: Duration::from_millis(args.event_purge_interval_ms.max(10)),
            replay_limit: args.ws_replay_limit.max(1),
            outbound_limit: args.ws_outbound_limit,
            relay_queues: redis::RelayQueues {
                records: args.relay_queue.max(1),
                pushes: args.relay_push_queue.max(1),
            },
            admission: admission::AdmissionLimits {
                max_sessions: args
                    .ws_max_sessions
                    .unwrap_or_else(admission::sessions_for_open_files)
                    .max(1),
                max_starting: args.ws_max_starting.max(1),
                per_user: args.ws_max_per_user.max(1),
                per_ip: args.ws_max_per_ip.max(1),
            },
            presence_debounce: Duration::from_millis(args.presence_debounce_ms),
            workers,
            writer,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            tls,
            log_format: args.log_format,
            replicas,
            ai: ai::AiSettings::from_args(args.ai)?,
        })
    }
}

/// 32 random bytes, hex: the signing key of a dev-login process given none.
fn random_signing_key() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn http_url(variable: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url =
        url::Url::parse(raw).map_err(|e| bad(variable, format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(variable, "must be an http(s) URL"));
    }
    Ok(url.to_string())
}

fn google_settings(args: &ServeArgs) -> Result<Option<GoogleSettings>, ConfigError> {
    let Some(client_id) = args
        .google_client_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    else {
        return Ok(None);
    };
    let redirect_url = args
        .google_redirect_url
        .as_deref()
        .map(|u| http_url("GOOGLE_REDIRECT_URL", u))
        .transpose()?;
    let client_secret = args
        .google_client_secret
        .clone()
        .filter(|s| !s.is_empty())
        .map(Secret);
    if redirect_url.is_some() != client_secret.is_some() {
        return Err(bad(
            "GOOGLE_REDIRECT_URL",
            "the browser sign-in flow needs both GOOGLE_REDIRECT_URL and GOOGLE_CLIENT_SECRET",
        ));
    }
    Ok(Some(GoogleSettings {
        client_id: client_id.to_owned(),
        client_secret,
        redirect_url,
        jwks_url: http_url("GOOGLE_JWKS_URL", &args.google_jwks_url)?,
        auth_url: http_url("GOOGLE_AUTH_URL", &args.google_auth_url)?,
        token_url: http_url("GOOGLE_TOKEN_URL", &args.google_token_url)?,
    }))
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[&str]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["aisocial", "serve"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| bad("argv", e.to_string()))?;
        match cli.command {
            Command::Serve(args) => Settings::from_args(*args),
            Command::Migrate(_) | Command::Admin(_) => Err(bad("argv", "not serve")),
        }
    }

    fn check(extra: &[&str], expect_variable: Option<&str>) {
        let got = settings(extra).err().map(|e| e.variable);
        assert_eq!(got, expect_variable, "{extra:?}");
    }

    #[test]
    fn each_mistake_names_its_variable() {
        let key = "--jwt-signing-key=0123456789abcdef0123456789abcdef";
        check(&[key], None);
        check(&["--auth-dev-login=true"], None);
        check(&[], Some("JWT_SIGNING_KEY"));
        check(&["--jwt-signing-key=short"], Some("JWT_SIGNING_KEY"));
        check(&[key, "--bind=localhost"], Some("AISOCIAL_BIND"));
        check(&[key, "--database-url=mysql://x"], Some("DATABASE_URL"));
        check(
            &[key, "--database-url=postgres://127.0.0.1:5432"],
            Some("DATABASE_URL"),
        );
        check(&[key, "--redis-url=http://x"], Some("REDIS_URL"));
        check(&[key, "--redis-prefix="], Some("REDIS_PREFIX"));
        check(&[key, "--node-id= "], Some("NODE_ID"));
        check(
            &[key, "--ws-allowed-origins=https://a.example/path"],
            Some("WS_ALLOWED_ORIGINS"),
        );
        check(
            &[key, "--ws-allowed-origins=nope"],
            Some("WS_ALLOWED_ORIGINS"),
        );
        check(
            &[
                key,
                "--ws-allowed-origins=https://a.example, http://b.example:8080",
            ],
            None,
        );
        check(
            &[key, "--access-token-ttl-secs=3600"],
            Some("ACCESS_TOKEN_TTL_SECS"),
        );
        check(
            &[key, "--ws-idle-timeout-ms=10", "--ws-heartbeat-ms=100"],
            Some("WS_IDLE_TIMEOUT_MS"),
        );
        check(&[key, "--workers=0"], Some("AISOCIAL_WORKERS"));
        check(&[key, "--bind=127.0.0.1:0"], None);
        check(
            &[key, "--admin-handles=alice, bob_2"],
            Some("ADMIN_HANDLES"),
        );
        check(&[key, "--admin-handles=Alice"], Some("ADMIN_HANDLES"));
        check(&[key, "--trusted-proxies=10.0.0.0/8, 127.0.0.1,::1"], None);
        check(
            &[key, "--trusted-proxies=proxy.local"],
            Some("TRUSTED_PROXIES"),
        );
        check(
            &[key, "--google-client-id=cid", "--google-jwks-url=ftp://x"],
            Some("GOOGLE_JWKS_URL"),
        );
        check(
            &[
                key,
                "--google-client-id=cid",
                "--google-redirect-url=http://a/cb",
            ],
            Some("GOOGLE_REDIRECT_URL"),
        );
        check(
            &[key, "--rate-limit-ip-per-min=0"],
            Some("RATE_LIMIT_IP_PER_MIN"),
        );
        check(
            &[key, "--refresh-token-ttl-days=0"],
            Some("REFRESH_TOKEN_TTL_DAYS"),
        );
        check(&[key, "--tls-cert-path=/c.pem"], Some("TLS_KEY_PATH"));
        check(&[key, "--tls-key-path=/k.pem"], Some("TLS_CERT_PATH"));
        check(
            &[key, "--tls-cert-path=/c.pem", "--tls-key-path=/k.pem"],
            None,
        );
        check(&[key, "--tls-cert-path=", "--tls-key-path="], None);
        check(
            &[key, "--tls-cert-path=/c.pem", "--tls-key-path="],
            Some("TLS_KEY_PATH"),
        );
        check(
            &[
                key,
                "--tls-cert-path=/c.pem",
                "--tls-key-path=/k.pem",
                "--tls-handshake-timeout-ms=0",
            ],
            Some("TLS_HANDSHAKE_TIMEOUT_MS"),
        );
    }

    #[test]
    fn dev_login_needs_a_loopback_bind_or_the_loud_override() {
        let key = "--jwt-signing-key=0123456789abcdef0123456789abcdef";
        let dev = "--auth-dev-login=true";
        let allow = format!("--auth-dev-login-allow-public-bind={ALLOW_PUBLIC_DEV_LOGIN}");
        // Loopback, IPv4 and IPv6: fine.
        check(&[key, dev, "--bind=127.0.0.1:8080"], None);
        check(&[key, dev, "--bind=127.0.0.2:0"], None);
        check(&[key, dev, "--bind=[::1]:8080"], None);
        // Anything else is refused, naming the variable to change.
        check(&[key, dev, "--bind=0.0.0.0:8080"], Some("AUTH_DEV_LOGIN"));
        check(&[key, dev, "--bind=[::]:8080"], Some("AUTH_DEV_LOGIN"));
        check(
            &[key, dev, "--bind=192.168.1.10:8080"],
            Some("AUTH_DEV_LOGIN"),
        );
        // ... unless the override says, word for word, that the operator knows.
        check(&[key, dev, "--bind=0.0.0.0:8080", &allow], None);
        check(
            &[
                key,
                dev,
                "--bind=0.0.0.0:8080",
                "--auth-dev-login-allow-public-bind=true",
            ],
            Some("AUTH_DEV_LOGIN_ALLOW_PUBLIC_BIND"),
        );
        // Empty means unset (a compose file passes it through empty).
        check(
            &[
                key,
                dev,
                "--bind=0.0.0.0:8080",
                "--auth-dev-login-allow-public-bind=",
            ],
            Some("AUTH_DEV_LOGIN"),
        );
        // Without dev login a public bind is what production does.
        check(&[key, "--bind=0.0.0.0:8080"], None);
        // The override without dev login is a mistake worth naming only if it is misspelt.
        check(&[key, "--bind=0.0.0.0:8080", &allow], None);
        let settings = settings(&[key, dev, "--bind=0.0.0.0:8080", &allow]).unwrap();
        assert!(settings.dev_login);
    }

    #[test]
    fn placeholder_and_short_signing_keys_are_refused() {
        for placeholder in PLACEHOLDER_SIGNING_KEYS {
            let flag = format!("--jwt-signing-key={placeholder}");
            check(&[&flag], Some("JWT_SIGNING_KEY"));
            // Dev login does not make a public key acceptable either.
            check(&[&flag, "--auth-dev-login=true"], Some("JWT_SIGNING_KEY"));
        }
        for known in [
            "aisocial-dev-only-signing-key-do-not-use-in-production",
            "local-only-NOT-SECRET-aisocial-compose-signing-key",
            "CHANGE-ME-at-least-32-random-bytes-base64",
        ] {
            assert!(PLACEHOLDER_SIGNING_KEYS.contains(&known), "{known}");
        }
        // 31 bytes: too short, with or without dev login.
        let short = format!("--jwt-signing-key={}", "k".repeat(31));
        check(&[&short], Some("JWT_SIGNING_KEY"));
        check(&[&short, "--auth-dev-login=true"], Some("JWT_SIGNING_KEY"));
        let exact = format!("--jwt-signing-key={}", "0123456789abcdef".repeat(2));
        check(&[&exact], None);
    }

    #[test]
    fn dev_login_without_a_key_signs_with_a_random_key_per_process() {
        let a = settings(&["--auth-dev-login=true"]).unwrap();
        let b = settings(&["--auth-dev-login=true"]).unwrap();
        let (a, b) = (a.signing_key.expose(), b.signing_key.expose());
        assert!(a.len() >= 32, "{}", a.len());
        assert_ne!(a, b, "each process draws its own key");
        assert!(!PLACEHOLDER_SIGNING_KEYS.contains(&a));
        // Without dev login a key is still required.
        check(&[], Some("JWT_SIGNING_KEY"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
