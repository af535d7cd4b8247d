//! Building and running the application: connect to PostgreSQL and Redis, migrate, start the
//! actors, bind the listener, serve until told to stop, then drain.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use actix::{Actor, Arbiter};
use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol};
use actix_server::GracefulShutdownSignal;
use actix_service::{ServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, web};

use aisocial_actors::db_writer::{DbWriter, DbWriterConfig, Drain};
use aisocial_actors::feed_broker::{BrokerConfig, CloseAll, FeedBroker};
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::revoked::{RevokedFamilies, SuspendedUsers};
use aisocial_actors::session::{SessionConfig, TokenCheck};
use anyhow::Context;
use tokio::net::TcpStream;

use crate::ai::jobs::AiJobs;
use crate::auth::google::{GoogleVerifier, Jwks};
use crate::auth::tickets::Tickets;
use crate::auth::{Accounts, Google, TokenIssuer, Verifier};
use crate::cache::Cache;
use crate::config::{Secret, Settings};
use crate::lifecycle::Lifecycle;
use crate::live::Live;
use crate::problem::ensure_problem;
use crate::rate_limit::{RateLimiter, RateLimiting};
use crate::readiness::NodeHealth;
use crate::redis_store::Keyspace;
use crate::relay::{self, RedisPublisher};
use crate::replicas::events::ReplicaEventSource;
use crate::replicas::sticky::Sticky;
use crate::replicas::{self, EventLogReads, ReadRouting};
use crate::request_context::request_context;
use crate::revocation::Revocations;
use crate::routes::metrics::MetricsAccess;
use crate::tls::Certificates;
use crate::upgrade::Transport;
use crate::upgrade::handshake::Gate;
use crate::{database, middleware, redis_store, routes};
use aisocial_actors::event_log::{EventSource, PgEventSource};
use aisocial_actors::follow_graph::PgFollowGraph;

/// How long a follow list may take to load before the user's sessions are told to retry.
const FOLLOW_LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The narrow handles the routes extract, each registered as its own `web::Data`. Start-up
/// alone builds them; a route names only those it uses.
#[derive(Clone)]
struct Handles {
    writer: web::Data<MeteredAddr<DbWriter>>,
    reads: web::Data<ReadRouting>,
    keys: web::Data<Keyspace>,
    cache: web::Data<Cache>,
    accounts: web::Data<Accounts>,
    revocations: web::Data<Revocations>,
    tickets: web::Data<Tickets>,
    limits: web::Data<RateLimiting>,
    verifier: web::Data<Verifier>,
    jobs: web::Data<AiJobs>,
    live: web::Data<Live>,
    node: web::Data<NodeHealth>,
    gate: web::Data<Gate>,
    metrics: web::Data<MetricsAccess>,
}

/// A built application: listening, actors running, not yet serving.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    /// `/metrics` on `METRICS_BIND`, when set.
    metrics_server: Option<Server>,
    handles: Handles,
    arbiters: Vec<Arbiter>,
    shutdown_timeout: Duration,
    certificates: Option<Arc<Certificates>>,
}

/// The HTTP/1 service of one worker over connections of type `T` (TCP or TLS).
fn http_service<T: Transport>(
    handles: &Handles,
    shutting_down: &GracefulShutdownSignal,
    addr: SocketAddr,
) -> impl ServiceFactory<
    (T, Protocol, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
> + use<T> {
    let app = App::new()
        .app_data(handles.writer.clone())
        .app_data(handles.reads.clone())
        .app_data(handles.keys.clone())
        .app_data(handles.cache.clone())
        .app_data(handles.accounts.clone())
        .app_data(handles.revocations.clone())
        .app_data(handles.tickets.clone())
        .app_data(handles.limits.clone())
        .app_data(handles.verifier.clone())
        .app_data(handles.jobs.clone())
        .app_data(handles.live.clone())
        .app_data(handles.node.clone())
        .app_data(handles.gate.clone())
        .app_data(handles.metrics.clone())
        .configure(routes::configure)
        .wrap(from_fn(middleware::per_ip))
        .wrap(ErrorHandlers::new().default_handler(ensure_problem))
        .wrap(from_fn(request_context));
    let shutting_down = shutting_down.clone();
    HttpService::build()
        // As actix-web's HttpServer does: idle keep-alive connections close at once on a
        // graceful stop, and an answer sent before the request body was read lingers a second
        // instead of being reset away.
        .graceful_shutdown_signal(move || {
            let signal = shutting_down.clone();
            async move { signal.notified().await }
        })
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(addr)
        .upgrade(crate::upgrade::service::<T>(handles.gate.clone()))
        .finish(map_config(app, |_| AppConfig::default()))
}

/// A listener of its own for `/metrics` (`METRICS_BIND`), with the same token rule.
fn metrics_listener(bind: SocketAddr, token: Option<&Secret>) -> anyhow::Result<Server> {
    let access = web::Data::new(MetricsAccess::new(true, token.map(Secret::expose)));
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(access.clone())
            .route("/metrics", web::get().to(routes::metrics::export))
            .wrap(ErrorHandlers::new().default_handler(ensure_problem))
    })
    .workers(1)
    .disable_signals()
    .bind(bind)
    .with_context(|| format!("cannot listen on {bind} (METRICS_BIND)"))?
    .run();
    tracing::info!(address = %bind, "metrics listening");
    Ok(server)
}

/// What a drain did, for the log and for tests.
#[derive(Debug, Clone, Copy)]
pub struct DrainReport {
    pub sockets_closed: usize,
    pub drain_time: Duration,
}

impl Application {
    /// Everything up to the open listener: fails with a clear message when a dependency is
    /// missing or the configuration is wrong.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tokens = TokenIssuer::new(
            settings.signing_key.expose().as_bytes(),
            settings.access_token_ttl,
        );
        tokens.self_test().context(
            "the token self-test failed (is exactly one jsonwebtoken crypto backend enabled?)",
        )?;
        let certificates = settings
            .tls
            .clone()
            .map(Certificates::load)
            .transpose()
            .context("TLS_CERT_PATH / TLS_KEY_PATH")?;

        database::ensure_database(&settings.database).await?;
        database::migrate(&settings.database).await?;
        let pool = database::read_pool(
            &settings.database,
            settings.database_pool_size,
            settings.read_timeout,
        )
        .await?;
        let redis_store::Connected {
            conn: redis,
            subscriber,
        } = redis_store::connect(settings.redis_url.expose(), &settings.redis_display).await?;

        let reads = Arc::new(if settings.replicas.replicas.is_empty() {
            ReadRouting::primary_only(pool.clone(), settings.read_timeout)
        } else {
            let sticky = Sticky::new(
                redis.clone(),
                &settings.redis_prefix,
                settings.replicas.sticky_for(),
            );
            ReadRouting::with_replicas(
                pool.clone(),
                settings.read_timeout,
                &settings.replicas,
                settings.database_pool_size,
                sticky,
            )
        });
        replicas::monitor::spawn(
            &reads,
            settings.replicas.max_lag,
            settings.replicas.check_every,
        );

        let broker_arbiter = Arbiter::new();
        let graph = Arc::new(PgFollowGraph { pool: pool.clone() });
        let events: Arc<dyn EventSource> = match settings.replicas.event_log_reads {
            EventLogReads::Primary => Arc::new(PgEventSource { pool: pool.clone() }),
            EventLogReads::Replica => Arc::new(ReplicaEventSource::new(Arc::clone(&reads))),
        };
        // Revoked sign-in sessions: filled by `Revocations`, read by the broker at `Connect`.
        let revoked = Arc::new(RevokedFamilies::default());
        // Suspended accounts: kept by the broker from the log, reloaded by `Revocations`.
        let suspended = Arc::new(SuspendedUsers::default());
        let broker_config = BrokerConfig {
            revoked: Arc::clone(&revoked),
            suspended: Arc::clone(&suspended),
            load_timeout: FOLLOW_LOAD_TIMEOUT,
            outbound_limit: settings.outbound_limit,
            presence_debounce: settings.presence_debounce,
            log_poll: settings.replicas.event_log_poll,
            ..BrokerConfig::default()
        };
        let publisher = Arc::new(RedisPublisher::start(
            redis.clone(),
            &settings.redis_prefix,
            settings.node_id.clone(),
            settings.relay_queues,
        ));
        let broker = FeedBroker::start_in_arbiter(&broker_arbiter.handle(), move |_| {
            FeedBroker::new(graph, events, publisher, broker_config)
        });
        let broker = MeteredAddr::new(broker, FeedBroker::meter());
        relay::listen(
            subscriber.clone(),
            &settings.redis_prefix,
            settings.node_id.clone(),
            broker.clone(),
        );

        let writer_arbiter = Arbiter::new();
        let writer_config = DbWriterConfig {
            max_batch: settings.writer.max_batch,
            max_queue: settings.writer.max_queue,
            batch_timeout: settings.writer.batch_timeout,
            lock_timeout: settings.writer.lock_timeout,
            commit_watermark: reads.watermark(),
            ..DbWriterConfig::new(settings.database.clone())
        };
        let committed_to = broker.recipient();
        let writer = DbWriter::start_in_arbiter(&writer_arbiter.handle(), move |_| {
            DbWriter::new(writer_config, committed_to)
        });
        let writer = MeteredAddr::new(writer, DbWriter::meter());
        crate::retention::spawn(
            writer.clone(),
            settings.event_retention,
            settings.event_purge_interval,
        );
        crate::mute_expiry::spawn(
            writer.clone(),
            Arc::clone(&reads),
            crate::mute_expiry::SWEEP_EVERY,
        );

        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client")?;
        let google = settings.google.clone().map(|g| {
            let jwks = Jwks::new(http.clone(), g.jwks_url.clone());
            Google {
                verifier: GoogleVerifier::new(g.client_id.clone(), jwks),
                settings: g,
                http: http.clone(),
            }
        });
        // Remember a revocation for as long as one of its access tokens could still be valid.
        let remember = settings.access_token_ttl + Duration::from_secs(120);
        let revocations = Arc::new(Revocations::new(
            remember,
            revoked,
            suspended,
            broker.clone(),
            redis.clone(),
            &settings.redis_prefix,
        ));
        revocations
            .clone()
            .listen(subscriber, pool.clone(), settings.revocation_reload);
        let verifier = Arc::new(Verifier::new(tokens.clone(), Arc::clone(&revocations)));

        let starting = Arc::new(aisocial_actors::starting::Starting::default());
        let admission = crate::admission::Admission::new(settings.admission, Arc::clone(&starting));
        let session_config = Arc::new(SessionConfig {
            node_id: settings.node_id.clone(),
            heartbeat: settings.heartbeat,
            idle_timeout: settings.idle_timeout,
            replay_limit: settings.replay_limit,
            max_topics: 100,
            frames_per_second: 20.0,
            frame_burst: 60.0,
            read_timeout: settings.read_timeout,
            starting: Arc::clone(&starting),
            replay_page: (settings.outbound_limit / 2).clamp(1, 256),
            tokens: Some(TokenCheck(verifier.clone())),
        });
        let ai = crate::ai::start(
            &settings.ai,
            crate::ai::AiDeps {
                redis: redis.clone(),
                redis_prefix: &settings.redis_prefix,
                broker: &broker,
                writer: &writer,
                pool: &pool,
            },
        )
        .await?;
        let live = Arc::new(crate::live::Live::new(
            settings.node_id.clone(),
            settings.outbound_limit,
        ));
        let ai = Arc::new(ai);
        let lifecycle = Arc::new(Lifecycle::default());
        let keys = Keyspace::new(redis.clone(), &settings.redis_prefix);
        let limits = Arc::new(RateLimiting::new(
            RateLimiter::new(redis.clone(), settings.redis_prefix.clone()),
            settings.rate_limits,
            settings.trusted_proxies.clone(),
        ));
        let tickets = Arc::new(Tickets::new(keys.clone(), Arc::clone(&revocations)));
        let node = Arc::new(NodeHealth {
            node_id: settings.node_id.clone(),
            started_at: Instant::now(),
            pool: pool.clone(),
            redis: redis.clone(),
            ai: Arc::clone(&ai),
            broker: broker.clone(),
            writer: writer.clone(),
            reads: Arc::clone(&reads),
            lifecycle: Arc::clone(&lifecycle),
        });
        let handles = Handles {
            writer: web::Data::new(writer.clone()),
            reads: web::Data::from(Arc::clone(&reads)),
            keys: web::Data::new(keys.clone()),
            cache: web::Data::new(Cache::start(keys.clone())),
            accounts: web::Data::new(Accounts {
                tokens,
                refresh_lifetime: settings.refresh_lifetime,
                refresh_successors: crate::auth::successor::Successors::new(
                    settings.signing_key.expose().as_bytes(),
                    settings.refresh_retry_grace,
                    settings.refresh_concurrent_grace,
                ),
                grants: Arc::new(settings.role_grants.clone()),
                google,
                dev_login: settings.dev_login,
            }),
            revocations: web::Data::from(Arc::clone(&revocations)),
            tickets: web::Data::from(Arc::clone(&tickets)),
            limits: web::Data::from(Arc::clone(&limits)),
            verifier: web::Data::from(Arc::clone(&verifier)),
            jobs: web::Data::new(AiJobs {
                ai,
                limits: Arc::clone(&limits),
                keys,
                reads: Arc::clone(&reads),
                broker: broker.clone(),
            }),
            live: web::Data::from(Arc::clone(&live)),
            node: web::Data::from(Arc::clone(&node)),
            metrics: web::Data::new(MetricsAccess::new(
                settings.metrics_bind.is_none(),
                settings.metrics_token.as_ref().map(Secret::expose),
            )),
            gate: web::Data::new(Gate {
                lifecycle,
                allowed_origins: settings.allowed_origins.clone(),
                verifier,
                tickets,
                limits,
                admission,
                next_session: AtomicU64::new(1),
                broker,
                pool,
                session_config,
                sockets: Arc::default(),
            }),
        };
        crate::live::spawn_sampler(live, Arc::downgrade(&node));

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {} (AISOCIAL_BIND)", settings.bind))?;
        let addr = listener.local_addr()?;
        // actix-web's App on actix-http's HTTP/1 service, with the websocket upgrade taken off
        // the connection by `upgrade` (so an idle websocket keeps no HTTP buffers); behind a
        // TLS handshake when a certificate is configured.
        let builder = actix_server::Server::build();
        let shutting_down = builder.graceful_shutdown_signal();
        let builder = builder
            .workers(settings.workers)
            .disable_signals()
            .shutdown_timeout(settings.shutdown_timeout.as_secs());
        let metrics_server = settings
            .metrics_bind
            .map(|bind| metrics_listener(bind, settings.metrics_token.as_ref()))
            .transpose()?;
        let app_handles = handles.clone();
        let server = match &certificates {
            None => builder.listen("aisocial", listener, move || {
                fn_service(|io: TcpStream| async move {
                    let peer = io.peer_addr().ok();
                    Ok::<_, DispatchError>((io, Protocol::Http1, peer))
                })
                .and_then(http_service(&app_handles, &shutting_down, addr))
            })?,
            Some(certificates) => {
                let config = certificates
                    .server_config()
                    .context("building the TLS configuration")?;
                let handshake_timeout = certificates.handshake_timeout();
                builder.listen("aisocial", listener, move || {
                    crate::tls::accept::acceptor(Arc::clone(&config), handshake_timeout)
                        .and_then(http_service(&app_handles, &shutting_down, addr))
                })?
            }
        }
        .run();
        tracing::info!(
            address = %addr,
            node_id = %settings.node_id,
            database = %settings.database_url_display,
            redis = %settings.redis_display,
            dev_login = settings.dev_login,
            tls = certificates.is_some(),
            "listening"
        );
        Ok(Self {
            addr,
            server,
            metrics_server,
            handles,
            arbiters: vec![broker_arbiter, writer_arbiter],
            shutdown_timeout: settings.shutdown_timeout,
            certificates,
        })
    }

    /// The serving certificate when the listener speaks TLS: [`Certificates::reload`] is what
    /// SIGHUP does.
    pub fn certificates(&self) -> Option<Arc<Certificates>> {
        self.certificates.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` resolves, then drains: readiness turns 503 and upgrades are
    /// refused, every socket is closed with 1001, in-flight requests finish, the DbWriter
    /// commits or fails everything it holds, and the actors stop.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<DrainReport> {
        let handle = self.server.handle();
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            actix_rt::spawn(server);
            handle
        });
        let mut serving = actix_rt::spawn(self.server);
        tokio::select! {
            () = shutdown => {}
            result = &mut serving => {
                result.context("the server task failed")?.context("the server stopped")?;
            }
        }
        let started = Instant::now();
        let Handles {
            node, gate, writer, ..
        } = self.handles;
        node.lifecycle.start_draining();
        tracing::info!("draining: not ready, closing websockets with 1001");
        // Waiting AI jobs fail now (their callers hear ai.error); running ones finish or time out.
        node.ai.stop().await;
        let sockets_closed = node
            .broker
            .send(CloseAll {
                code: 1001,
                reason: "server shutting down",
            })
            .await
            .unwrap_or(0);
        // The websockets left the server's own connection tracking when they were upgraded:
        // wait for their close frames to be written (and the clients' closes) before stopping.
        if !gate.sockets.wait_closed(self.shutdown_timeout).await {
            tracing::warn!(
                open = gate.sockets.count(),
                "websockets still open at the shutdown timeout"
            );
        }
        // Graceful: stop accepting, let in-flight requests finish (bounded by the timeout).
        let stopping = handle.stop(true);
        if tokio::time::timeout(self.shutdown_timeout + Duration::from_secs(1), stopping)
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish in time");
        }
        let _ = serving.await;
        // AI jobs already running finish (their answers are stored through the DbWriter),
        // within the same time limit.
        let ai_deadline = Instant::now() + self.shutdown_timeout;
        while Instant::now() < ai_deadline {
            match node
                .ai
                .status(ai_deadline.saturating_duration_since(Instant::now()))
                .await
            {
                Some(status) if status.in_flight > 0 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => break,
            }
        }
        // Nothing can send new commands now; wait for the DbWriter to answer what it holds, for
        // as long as the shutdown timeout (it then answers the rest as unavailable).
        let drain = Drain {
            within: self.shutdown_timeout,
        };
        match tokio::time::timeout(
            self.shutdown_timeout + Duration::from_secs(1),
            writer.send(drain),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::warn!("the DbWriter stopped before draining"),
            Err(_) => tracing::warn!("the DbWriter did not finish draining in time"),
        }
        if let Some(metrics) = metrics {
            metrics.stop(false).await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        let report = DrainReport {
            sockets_closed,
            drain_time: started.elapsed(),
        };
        tracing::info!(
            sockets_closed = report.sockets_closed,
            drain_ms = report.drain_time.as_millis() as u64,
            "drained"
        );
        Ok(report)
    }
}
