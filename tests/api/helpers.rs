//! `spawn_app()` and the typed helpers every test uses.

use std::time::Duration;

use aisocial::config::{Cli, Command, Settings};
use aisocial::startup::{Application, DrainReport};
use aisocial_client::ws::Connect;
use aisocial_client::{Client, NewPost};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef-0123456789";
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

/// A running server with its own database and Redis prefix. The database is dropped on drop;
/// the keys under the prefix are left in Redis (the prefix is unique, so no other test reads them).
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db_name: String,
    pub redis_prefix: String,
    pub http: reqwest::Client,
    /// The serving certificate when the app speaks TLS (`--tls-cert-path`), to reload.
    pub certificates: Option<std::sync::Arc<aisocial::tls::Certificates>>,
    stop: Option<oneshot::Sender<()>>,
    run: Option<actix_rt::task::JoinHandle<anyhow::Result<DrainReport>>>,
}

/// A server with dev login on and the defaults otherwise.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Settings as `aisocial serve` would parse them from these flags (plus the test's own).
pub fn test_settings(
    db_name: &str,
    redis_prefix: &str,
    extra: &[&str],
) -> anyhow::Result<Settings> {
    let database_url = format!("--database-url={PG_BASE}/{db_name}");
    let prefix = format!("--redis-prefix={redis_prefix}");
    let key = format!("--jwt-signing-key={SIGNING_KEY}");
    let mut argv = vec![
        "aisocial",
        "serve",
        "--bind=127.0.0.1:0",
        &database_url,
        &prefix,
        &key,
        "--auth-dev-login=true",
        "--gemini-emulator=true",
        "--workers=2",
        "--database-pool-size=4",
        "--shutdown-timeout-secs=5",
        // Tests poll health and metrics as fast as they like; the limit has its own test.
        "--rate-limit-ops-per-min=100000000",
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        Command::Serve(args) => Ok(Settings::from_args(*args)?),
        Command::Migrate(_) | Command::Admin(_) => anyhow::bail!("not serve"),
    }
}

/// Waits until `count` nodes listen on the Redis channel `suffix` of this deployment (a node
/// subscribes in the background after start-up).
pub async fn wait_for_subscribers(app: &TestApp, suffix: &str, count: i64) {
    wait_for_subscribers_on("redis://127.0.0.1:6379", app, suffix, count).await;
}

/// [`wait_for_subscribers`] on the Redis at `url`.
pub async fn wait_for_subscribers_on(url: &str, app: &TestApp, suffix: &str, count: i64) {
    let channel = format!("{}{suffix}", app.redis_prefix);
    wait_for_channel_subscribers(url, &channel, count).await;
}

/// Waits until `count` clients listen on the Redis channel `channel` (its whole name) at `url`.
pub async fn wait_for_channel_subscribers(url: &str, channel: &str, count: i64) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..200 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if n >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} subscribers never appeared on {channel}");
}

/// Removes a test database, whoever is still connected to it.
pub async fn drop_database(db_name: &str) {
    if let Ok((client, conn)) =
        tokio_postgres::connect(&format!("{PG_BASE}/postgres"), tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
            ))
            .await;
    }
}

/// [`drop_database`] from synchronous code (a `Drop`), on a thread and runtime of its own.
pub fn drop_database_blocking(db_name: &str) {
    let db_name = db_name.to_owned();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(drop_database(&db_name));
    })
    .join();
}

/// The `Retry-After` seconds of a response (0 when absent or unreadable).
pub fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn unique_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A Redis of the test's own (`redis-server` on `port`, nothing saved to disk), so that
/// killing, pausing or restarting it disturbs no other test. Killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// `CLIENT PAUSE <ms> ALL`: Redis answers nobody for a moment.
    pub async fn pause(&self, ms: u64) {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    pub fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        Self {
            port,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn wait_up(&self) {
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start on {}", self.port);
    }

    /// SIGKILL: whatever it held is gone (it saves nothing).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `request` and answers only its status.
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request
        .send()
        .await
        .expect("the server answers")
        .status()
        .as_u16()
}

/// GETs `url` without a token: its body as JSON (null when it is not JSON).
pub async fn get_json_from(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

/// GETs `url` without a token: its body as text (empty when unreadable).
pub async fn get_text_from(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap_or_default()
}

/// Signs `handle` in through the dev login of the server at `base` (over `http`, its pool and
/// TLS roots): its access token (empty when refused).
pub async fn dev_token(http: &reqwest::Client, base: &str, handle: &str) -> String {
    Client::with_http(http.clone(), base)
        .sign_in_dev(handle)
        .await
        .map(|signed| signed.token)
        .unwrap_or_default()
}

pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    let id = unique_name();
    spawn_node(
        format!("aisocial_test_{id}"),
        format!("aisocial-test:{id}:"),
        extra,
    )
    .await
}

/// A second node of `app`'s deployment: the same database and Redis prefix.
pub async fn spawn_peer(app: &TestApp, extra: &[&str]) -> TestApp {
    spawn_node(app.db_name.clone(), app.redis_prefix.clone(), extra).await
}

/// A server using the Redis at `redis_url` (a single server, a cluster node, or cluster seeds).
pub async fn spawn_app_on(redis_url: &str, extra: &[&str]) -> TestApp {
    let url = format!("--redis-url={redis_url}");
    let mut args = vec![url.as_str()];
    args.extend_from_slice(extra);
    spawn_app_with(&args).await
}

/// A second node of `app`'s deployment reaching its Redis through `redis_url`.
pub async fn spawn_peer_on(app: &TestApp, redis_url: &str, extra: &[&str]) -> TestApp {
    let url = format!("--redis-url={redis_url}");
    let mut args = vec![url.as_str()];
    args.extend_from_slice(extra);
    spawn_peer(app, &args).await
}

/// A node on `app`'s database with a Redis prefix of its own (cut off from the others' Redis
/// messages).
pub async fn spawn_node_with_prefix(app: &TestApp, prefix: &str) -> TestApp {
    spawn_node(app.db_name.clone(), prefix.to_owned(), &[]).await
}

async fn spawn_node(db_name: String, redis_prefix: String, extra: &[&str]) -> TestApp {
    aisocial::install_crypto_provider();
    if std::env::var_os("TEST_LOG").is_some() {
        aisocial::telemetry::init(aisocial::config::LogFormat::Text);
    }
    // Every node has its own id, as in production (the relay skips a node's own messages).
    let node_id = format!("--node-id=test-{}", &unique_name()[..8]);
    let mut args = vec![node_id.as_str()];
    args.extend_from_slice(extra);
    let settings = test_settings(&db_name, &redis_prefix, &args).expect("settings");
    let app = Application::build(settings)
        .await
        .expect("the app did not start");
    let port = app.port();
    let certificates = app.certificates();
    let (stop, stopped) = oneshot::channel::<()>();
    let run = actix_rt::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db_name,
        redis_prefix,
        // Idle pooled connections are dropped before the server's keep-alive (5 s) closes
        // them: a request sent on a connection the server is closing fails with
        // `IncompleteMessage` (seen in the regions fault test after a quiet spell).
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        certificates,
        stop: Some(stop),
        run: Some(run),
    }
}

/// The upgrade request for `/api/v1/ws` on `address` (`host:port`) as the bearer of `token`,
/// resuming after `since` (the client crate's).
pub fn ws_request(
    address: &str,
    token: &str,
    since: Option<i64>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = aisocial_client::ws::endpoint(&format!("http://{address}"), since);
    aisocial_client::ws::request(&url, Some(token)).unwrap()
}

/// A websocket upgraded on `address` (`host:port`) as the bearer of `token`, resuming after
/// `since`, before any frame is read (`hello` is its first). A refusal is
/// [`aisocial_client::Error::Refused`] with its status and `Retry-After`.
pub async fn ws_upgrade(
    address: &str,
    token: &str,
    since: Option<i64>,
) -> aisocial_client::Result<WsClient> {
    let request = ws_request(address, token, since);
    let stream = aisocial_client::ws::upgrade_request(request, &Connect::default()).await?;
    Ok(WsClient { stream })
}

/// A signed-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub handle: String,
    pub token: String,
    pub refresh: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The client crate's client of this app, over the app's HTTP pool.
    pub fn client(&self) -> Client {
        Client::with_http(self.http.clone(), &self.address)
    }

    pub async fn sign_in(&self, handle: &str) -> TestUser {
        let signed = self.client().sign_in_dev(handle).await.unwrap();
        TestUser {
            id: signed.user_id,
            handle: handle.to_owned(),
            token: signed.token,
            refresh: signed.refresh,
        }
    }

    pub async fn post(&self, user: &TestUser, body: &str) -> reqwest::Response {
        self.client()
            .create_post_request(&user.token, &NewPost::new(body))
            .send()
            .await
            .unwrap()
    }

    /// Posts and returns the created post's JSON (asserting 201).
    pub async fn create_post(&self, user: &TestUser, body: &str) -> Value {
        let res = self.post(user, body).await;
        assert_eq!(res.status(), 201, "post by {}", user.handle);
        res.json().await.unwrap_or_default()
    }

    /// GETs `path` without a token; its JSON (null when the body is not JSON).
    pub async fn public_json(&self, path: &str) -> Value {
        get_json_from(&self.http, &self.url(path)).await
    }

    pub async fn follow(&self, follower: &TestUser, followee: &str) -> reqwest::StatusCode {
        self.client()
            .follow_request(&follower.token, followee)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn get_json(&self, user: &TestUser, path: &str) -> (reqwest::StatusCode, Value) {
        let res = self
            .client()
            .get_request(&user.token, path)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or_default())
    }

    /// Opens a websocket as `user`, resuming after `since` when given, and reads `hello`.
    pub async fn ws(&self, user: &TestUser, since: Option<i64>) -> (WsClient, Value) {
        let mut ws = self.ws_raw(user, since).await.expect("ws");
        let hello = ws.hello().await;
        (ws, hello)
    }

    /// The websocket of [`Self::ws`] before `hello`; a refused upgrade is
    /// [`aisocial_client::Error::Refused`].
    pub async fn ws_raw(
        &self,
        user: &TestUser,
        since: Option<i64>,
    ) -> aisocial_client::Result<WsClient> {
        ws_upgrade(&format!("127.0.0.1:{}", self.port), &user.token, since).await
    }

    /// A websocket that reads nothing after `hello`, through a 4 KiB receive window: a client
    /// that stops reading.
    pub async fn stalled_ws(&self, user: &TestUser) -> WsClient {
        self.stalled_ws_since(user, None).await.0
    }

    /// [`Self::stalled_ws`] resuming after `since`; answers the hello too.
    pub async fn stalled_ws_since(&self, user: &TestUser, since: Option<i64>) -> (WsClient, Value) {
        let small_window = Connect {
            recv_buffer: Some(4096),
            ..Connect::default()
        };
        let stream = aisocial_client::ws::upgrade(&self.address, &user.token, since, &small_window)
            .await
            .unwrap();
        let mut client = WsClient { stream };
        let hello = client.hello().await;
        (client, hello)
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        connect_db(&self.db_name).await
    }

    pub async fn metrics(&self) -> String {
        get_text_from(&self.http, &self.url("/metrics")).await
    }

    /// Takes the shutdown trigger out, to be pulled while the app is in use.
    pub fn shutdown_trigger(&mut self) -> ShutdownTrigger {
        ShutdownTrigger {
            stop: self.stop.take(),
            run: self.run.take().expect("already shut down"),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        drop_database_blocking(&self.db_name);
    }
}

/// Starts the drain of a [`TestApp`] when pulled.
pub struct ShutdownTrigger {
    stop: Option<oneshot::Sender<()>>,
    run: actix_rt::task::JoinHandle<anyhow::Result<DrainReport>>,
}

impl ShutdownTrigger {
    pub async fn pull(mut self) -> DrainReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.run.await.unwrap().expect("drain failed")
    }
}

/// A websocket client over a plain TCP stream (opened by the client crate).
pub struct WsClient {
    pub stream: aisocial_client::Socket,
}

/// What the server did next.
#[derive(Debug)]
pub enum WsEvent {
    Json(Value),
    Closed(Option<CloseFrame>),
    Timeout,
}

impl WsClient {
    /// Reads `hello` (the client crate's [`aisocial_client::Hello`], which must parse) within
    /// 10 s: the frame as JSON.
    pub async fn hello(&mut self) -> Value {
        let read = aisocial_client::ws::read_hello_text(&mut self.stream);
        let (_, text) = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no hello within 10 s")
            .expect("the first frame is hello");
        serde_json::from_str(&text).unwrap()
    }

    /// The next text frame as JSON, the close, or a timeout; pings are answered and skipped.
    pub async fn next_event(&mut self, timeout: Duration) -> WsEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match next {
                Err(_) => return WsEvent::Timeout,
                Ok(None) => return WsEvent::Closed(None),
                Ok(Some(Err(_))) => return WsEvent::Closed(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    let value: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("the server sent non-JSON {text:?}: {e}"));
                    return WsEvent::Json(value);
                }
                Ok(Some(Ok(Message::Close(frame)))) => return WsEvent::Closed(frame),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        match self.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame that is not `presence` (which a followee's coming online may send at any
    /// time, depending on when the follow list loaded).
    pub async fn next_json_skipping_presence(&mut self) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] != "presence" {
                return frame;
            }
        }
    }

    /// Waits for the server to close; returns the close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        loop {
            match self.next_event(Duration::from_secs(10)).await {
                WsEvent::Json(_) => continue,
                WsEvent::Closed(frame) => return frame.map(|f| u16::from(f.code)),
                WsEvent::Timeout => panic!("the server did not close the socket"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// Asserts nothing but pings arrives for `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        match self.next_event(wait).await {
            WsEvent::Timeout => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
}

/// The real `aisocial` binary serving on port 0 with a fresh database, its JSON log collected.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub address: String,
    pub db_name: String,
    pub log: Vec<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1:0", env).await
    }

    /// [`ServerProcess::start`] listening on `bind` (`host:port`), e.g. the port of a node
    /// killed a moment ago, so that clients find its replacement where it was.
    pub async fn start_on(bind: &str, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        aisocial::install_crypto_provider();
        let db_name = format!("aisocial_test_{}", unique_name());
        let mut command = Command::new(env!("CARGO_BIN_EXE_aisocial"));
        command
            .args(["serve", &format!("--bind={bind}"), "--workers=1"])
            .env("DATABASE_URL", format!("{PG_BASE}/{db_name}"))
            .env("REDIS_PREFIX", format!("aisocial-test:{db_name}:"))
            .env("AUTH_DEV_LOGIN", "true")
            .env("GEMINI_EMULATOR", "true")
            .env("RATE_LIMIT_OPS_PER_MIN", "100000000")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().expect("no stderr");
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let address = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no `listening` line; log so far: {log:#?}"));
            let json: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
            log.push(line);
            if json["message"] == "listening" {
                break json["address"].as_str().unwrap_or_default().to_owned();
            }
        };
        Self {
            child,
            address,
            db_name,
            log,
            lines,
        }
    }

    /// Everything logged so far.
    pub fn collect_log(&mut self) -> &[String] {
        self.log.extend(self.lines.try_iter());
        &self.log
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap_or_default()
    }

    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    pub fn rss_bytes(&self) -> u64 {
        self.proc_file("status")
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// After connect/disconnect cycles that began with `before` (open files, RSS): waits up to
    /// ten seconds until no session is registered and the open files are back within
    /// `pool_growth` (the read pool opens connections on demand), then prints `what` and
    /// asserts that no session, file or memory (8 MiB) was left behind. `base` is the server's
    /// URL as `http` reaches it (http or https).
    pub async fn assert_cycles_left_nothing(
        &self,
        what: &str,
        http: &reqwest::Client,
        base: &str,
        before: (usize, u64),
        pool_growth: usize,
    ) {
        let (fds_before, rss_before) = before;
        let mut online = u64::MAX;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let system = get_json_from(http, &format!("{base}/health/system")).await;
            online = system["connections"]["websockets"]
                .as_u64()
                .unwrap_or(u64::MAX);
            if online == 0 && self.open_files() <= fds_before + pool_growth {
                break;
            }
        }
        let (fds_after, rss_after) = (self.open_files(), self.rss_bytes());
        println!(
            "{what}; server open files {fds_before} -> {fds_after}; RSS {:.1} -> {:.1} MiB",
            rss_before as f64 / 1048576.0,
            rss_after as f64 / 1048576.0
        );
        assert_eq!(online, 0, "sessions left registered with the broker");
        assert!(
            fds_after <= fds_before + pool_growth,
            "open files grew: {fds_before} -> {fds_after}"
        );
        assert!(
            rss_after < rss_before + 8 * 1024 * 1024,
            "memory grew by {} MiB over {what}",
            rss_after.saturating_sub(rss_before) / 1048576
        );
    }

    /// Signs `handle` in: its access token (empty when refused).
    pub async fn sign_in(&self, handle: &str) -> String {
        dev_token(
            &reqwest::Client::new(),
            &format!("http://{}", self.address),
            handle,
        )
        .await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop_database_blocking(&self.db_name);
    }
}

/// Rows an `EXPLAIN (ANALYZE, FORMAT JSON)` plan read from `table`: returned, filtered out or
/// rechecked away, times the loops.
pub fn rows_read(plan: &Value, table: &str) -> f64 {
    let own = if plan["Relation Name"] == table {
        let loops = plan["Actual Loops"].as_f64().unwrap_or(1.0);
        (plan["Actual Rows"].as_f64().unwrap_or(0.0)
            + plan["Rows Removed by Filter"].as_f64().unwrap_or(0.0)
            + plan["Rows Removed by Index Recheck"]
                .as_f64()
                .unwrap_or(0.0))
            * loops
    } else {
        0.0
    };
    own + plan["Plans"]
        .as_array()
        .map(|children| children.iter().map(|c| rows_read(c, table)).sum())
        .unwrap_or(0.0)
}

/// A connection of the test's own, straight to the test database `db_name`.
pub async fn connect_db(db_name: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&format!("{PG_BASE}/{db_name}"), tokio_postgres::NoTls)
            .await
            .unwrap();
    actix_rt::spawn(async move {
        let _ = conn.await;
    });
    client
}
