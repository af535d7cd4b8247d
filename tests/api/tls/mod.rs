//! TLS termination: https and wss from the configured files; a reload serves the new
//! certificate to new connections while open websockets keep theirs and keep receiving; a
//! broken file on reload keeps the old certificate; the handshake timeout; garbage on the TLS
//! port; and the real binary reloading on a real SIGHUP.

mod binary;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app_with, test_settings, unique_name};

/// A test CA and the files the server reads its certificate and key from.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
}

/// A server certificate for `127.0.0.1` and `localhost`, signed by the test CA.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("aisocial-tls-{}", unique_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "aisocial test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            dir,
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            ca: rcgen::Issuer::new(params, key),
        }
    }

    /// A new server certificate named `name` (its common name), valid for 90 days.
    pub fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let now = std::time::SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(90 * 86_400)).into();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// Puts `leaf` where the server reads it from (as an operator replacing the files would).
    pub fn install(&self, leaf: &Leaf) {
        self.write_cert(&leaf.cert_pem);
        std::fs::write(self.key_path(), &leaf.key_pem).unwrap();
    }

    pub fn write_cert(&self, contents: &str) {
        std::fs::write(self.cert_path(), contents).unwrap();
    }

    /// The flags that make a server serve the installed certificate.
    pub fn flags(&self) -> [String; 2] {
        [
            format!("--tls-cert-path={}", self.cert_path().display()),
            format!("--tls-key-path={}", self.key_path().display()),
        ]
    }

    /// An HTTPS client that trusts only the test CA.
    pub fn https_client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A TLS connection to `address` (`host:port`), verified against the test CA, and the
    /// certificate the server presented.
    pub async fn connect(&self, address: &str) -> (TlsStream<TcpStream>, CertificateDer<'static>) {
        let tcp = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_rustls::TlsConnector::from(self.client_config()).connect(name, tcp),
        )
        .await
        .expect("the TLS handshake timed out")
        .expect("the TLS handshake failed");
        let served = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned())
            .expect("no server certificate");
        (tls, served)
    }

    /// A `wss` session on `address` as the bearer of `token`, after its `hello`; and the
    /// certificate the server presented.
    pub async fn wss(&self, address: &str, token: &str) -> (Wss, CertificateDer<'static>) {
        let (tls, served) = self.connect(address).await;
        let stream = aisocial_client::ws::handshake(wss_request(address, token), tls)
            .await
            .expect("the wss upgrade failed");
        let mut wss = Wss { stream };
        let hello = wss.next_json().await;
        assert_eq!(hello["type"], "hello", "the first frame is hello: {hello}");
        (wss, served)
    }
}

/// The client crate's upgrade request for `wss://{address}/api/v1/ws` as the bearer of `token`.
fn wss_request(
    address: &str,
    token: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = aisocial_client::ws::endpoint(&format!("https://{address}"), None);
    aisocial_client::ws::request(&url, Some(token)).unwrap()
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A websocket over TLS.
pub struct Wss {
    pub stream: WebSocketStream<TlsStream<TcpStream>>,
}

impl Wss {
    /// The next text frame as JSON (pings answered and skipped), within 10 s.
    pub async fn next_json(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("no frame within 10 s"),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("non-JSON {text:?}: {e}"));
                }
                Ok(Some(Ok(Message::Close(frame)))) => panic!("closed: {frame:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("the socket ended: {other:?}"),
            }
        }
    }

    /// Reads until the server closes; its close code.
    pub async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("the server did not close the socket"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                Ok(_) => return None,
            }
        }
    }

    /// The next frame that is not `presence`.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] != "presence" {
                return frame;
            }
        }
    }
}

/// The value of a series (`name{labels}` exactly as exported), 0 when absent.
pub fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.strip_prefix(name_and_labels)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A server speaking TLS with `leaf`, its helpers talking https.
async fn spawn_tls_app(pki: &Pki, leaf: &Leaf, extra: &[&str]) -> TestApp {
    pki.install(leaf);
    let flags = pki.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    let mut app = spawn_app_with(&args).await;
    app.address = format!("https://127.0.0.1:{}", app.port);
    app.http = pki.https_client();
    app
}

fn host(app: &TestApp) -> String {
    format!("127.0.0.1:{}", app.port)
}

/// `alice` posts; the follower of hers on `bob_ws` receives it.
async fn follower_receives_post(
    app: &TestApp,
    alice: &crate::helpers::TestUser,
    bob_ws: &mut Wss,
    body: &str,
) {
    let post = app.create_post(alice, body).await;
    let frame = bob_ws.next_event().await;
    assert_eq!(frame["type"], "post.created", "{frame}");
    assert_eq!(frame["data"]["id"], post["id"]);
    assert_eq!(frame["data"]["body"], body);
}

/// `alice` (a token) posts over `http` at `base`; the follower of hers on `bob_ws` receives it.
async fn follower_receives_over(
    http: &reqwest::Client,
    base: &str,
    alice: &str,
    bob_ws: &mut Wss,
    body: &str,
) {
    let res = http
        .post(format!("{base}/api/v1/posts"))
        .bearer_auth(alice)
        .json(&serde_json::json!({ "body": body }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let post: Value = res.json().await.unwrap_or_default();
    let frame = bob_ws.next_event().await;
    assert_eq!(frame["type"], "post.created", "{frame}");
    assert_eq!(frame["data"]["id"], post["id"]);
}

#[actix_web::test]
async fn https_and_wss_work_and_plain_http_is_refused() {
    let pki = Pki::new();
    let leaf = pki.leaf("first");
    let app = spawn_tls_app(&pki, &leaf, &[]).await;
    let res = app
        .http
        .get(app.url("/health/live"))
        .send()
        .await
        .expect("https");
    assert_eq!(res.status(), 200);

    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    let (mut bob_ws, served) = pki.wss(&host(&app), &bob.token).await;
    assert_eq!(served, leaf.der, "the configured certificate is served");
    follower_receives_post(&app, &alice, &mut bob_ws, "over wss").await;
    // The session answers what the client sends, too.
    bob_ws
        .stream
        .send(Message::text(r#"{"op":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(bob_ws.next_event().await["type"], "pong");

    // Plain HTTP (and a plain websocket) to the TLS port fail cleanly and at once.
    let before = series(
        &app.metrics().await,
        "aisocial_tls_handshake_failures_total{reason=\"error\"}",
    );
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let answer = plain
        .get(format!("http://127.0.0.1:{}/health/live", app.port))
        .send()
        .await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "it hung");
    let ws = crate::helpers::ws_upgrade(&host(&app), &bob.token, None).await;
    assert!(ws.is_err(), "a plain websocket was accepted");
    // The client sees its error as soon as the server's alert arrives; the server counts the
    // failed handshake when its future ends, which may come a moment later.
    let counted_by = Instant::now() + Duration::from_secs(3);
    let after = loop {
        let after = series(
            &app.metrics().await,
            "aisocial_tls_handshake_failures_total{reason=\"error\"}",
        );
        if after >= before + 2.0 || Instant::now() >= counted_by {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        after >= before + 2.0,
        "failures counted: {before} → {after}"
    );

    // The open session did not notice.
    follower_receives_post(&app, &alice, &mut bob_ws, "still here").await;
    let metrics = app.metrics().await;
    let expiry = series(
        &metrics,
        "aisocial_tls_certificate_expiry_timestamp_seconds",
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(expiry > now, "the expiry is exported: {expiry}");
}

#[actix_web::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_only() {
    let pki = Pki::new();
    let (old, new) = (pki.leaf("old"), pki.leaf("new"));
    let app = spawn_tls_app(&pki, &old, &[]).await;
    let certificates = app
        .certificates
        .clone()
        .expect("a TLS app has certificates");
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    let (mut before_ws, served) = pki.wss(&host(&app), &bob.token).await;
    assert_eq!(served, old.der);
    // An idle keep-alive https connection opened before the reload.
    let (mut kept, _) = pki.connect(&host(&app)).await;

    let ok_before = series(
        &app.metrics().await,
        "aisocial_tls_reloads_total{result=\"ok\"}",
    );
    pki.install(&new);
    certificates.reload().expect("the reload failed");
    let ok_after = series(
        &app.metrics().await,
        "aisocial_tls_reloads_total{result=\"ok\"}",
    );
    assert!(ok_after >= ok_before + 1.0);

    // New connections get the new certificate, websockets included.
    let (_, served) = pki.connect(&host(&app)).await;
    assert_eq!(served, new.der, "a new connection gets the new certificate");
    let (mut after_ws, served) = pki.wss(&host(&app), &bob.token).await;
    assert_eq!(served, new.der);
    // The websocket opened before the reload still works and still receives.
    let post = app.create_post(&alice, "after the reload").await;
    for ws in [&mut before_ws, &mut after_ws] {
        let frame = ws.next_event().await;
        assert_eq!(frame["data"]["id"], post["id"], "{frame}");
    }
    // So does the connection opened before, for a request sent now.
    kept.write_all(b"GET /health/live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), kept.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[actix_web::test]
async fn a_broken_file_on_reload_keeps_the_old_certificate() {
    let pki = Pki::new();
    let (good, other) = (pki.leaf("good"), pki.leaf("other"));
    let app = spawn_tls_app(&pki, &good, &[]).await;
    let certificates = app
        .certificates
        .clone()
        .expect("a TLS app has certificates");
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    let (mut bob_ws, _) = pki.wss(&host(&app), &bob.token).await;

    let failed = |metrics: &str| series(metrics, "aisocial_tls_reloads_total{result=\"failed\"}");
    let before = failed(&app.metrics().await);
    let half = &good.cert_pem[..good.cert_pem.len() / 2];
    let broken: [(&str, &dyn Fn()); 4] = [
        ("garbage", &|| pki.write_cert("not a certificate")),
        ("torn", &|| pki.write_cert(half)),
        ("another certificate than the key's", &|| {
            pki.write_cert(&other.cert_pem)
        }),
        ("missing", &|| {
            let _ = std::fs::remove_file(pki.cert_path());
        }),
    ];
    for (n, (what, make)) in broken.iter().enumerate() {
        make();
        let error = certificates.reload().err();
        assert!(error.is_some(), "{what}: the reload succeeded");
        let after = failed(&app.metrics().await);
        assert!(after >= before + n as f64 + 1.0, "{what}: not counted");
        // The old certificate is still served, to new connections too.
        let (_, served) = pki.connect(&host(&app)).await;
        assert_eq!(served, good.der, "{what}");
        let res = app
            .http
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(res.status(), 200);
        follower_receives_post(&app, &alice, &mut bob_ws, what).await;
    }
    // Fixing the files and reloading again works.
    pki.install(&other);
    certificates.reload().expect("the fixed reload failed");
    let (_, served) = pki.connect(&host(&app)).await;
    assert_eq!(served, other.der);
}

#[actix_web::test]
async fn a_certificate_without_a_key_or_an_unreadable_one_stops_the_start() {
    let pki = Pki::new();
    let [cert, key] = pki.flags();
    for (flags, variable) in [
        (vec![cert.as_str()], "TLS_KEY_PATH"),
        (vec![key.as_str()], "TLS_CERT_PATH"),
    ] {
        let error = test_settings("unused", "unused:", &flags)
            .err()
            .unwrap_or_else(|| panic!("{flags:?} was accepted"));
        assert!(error.to_string().contains(variable), "{error}");
    }
    // Both set, but the files are missing or wrong: the start fails, naming the file.
    let settings = test_settings("unused", "unused:", &[cert.as_str(), key.as_str()]).unwrap();
    let error = aisocial::startup::Application::build(settings.clone())
        .await
        .err()
        .expect("started without a certificate");
    let message = format!("{error:#}");
    assert!(
        message.contains("TLS_CERT_PATH") && message.contains("cert.pem"),
        "{message}"
    );
    pki.write_cert("not a certificate");
    std::fs::write(pki.key_path(), "nor a key").unwrap();
    let message = format!(
        "{:#}",
        aisocial::startup::Application::build(settings)
            .await
            .err()
            .expect("started with garbage")
    );
    assert!(message.contains("holds no PEM certificate"), "{message}");
}

#[actix_web::test]
async fn a_client_that_never_handshakes_is_dropped_after_the_timeout() {
    let pki = Pki::new();
    let leaf = pki.leaf("timeout");
    let app = spawn_tls_app(&pki, &leaf, &["--tls-handshake-timeout-ms=500"]).await;
    let before = series(
        &app.metrics().await,
        "aisocial_tls_handshake_failures_total{reason=\"timeout\"}",
    );
    // One sends nothing, one half a ClientHello's record header.
    for partial in [&b""[..], &[0x16, 0x03, 0x01, 0x02][..]] {
        let mut tcp = TcpStream::connect(host(&app)).await.unwrap();
        tcp.write_all(partial).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
        let waited = started.elapsed();
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "{partial:?}: not closed: {read:?}"
        );
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
            "{partial:?}: closed after {waited:?}"
        );
        println!(
            "handshake timeout 500 ms: a client that sent {} bytes was dropped after {waited:?}",
            partial.len()
        );
    }
    let after = series(
        &app.metrics().await,
        "aisocial_tls_handshake_failures_total{reason=\"timeout\"}",
    );
    assert!(
        after >= before + 2.0,
        "timeouts counted: {before} → {after}"
    );
}

#[actix_web::test]
async fn garbage_on_the_tls_port_is_dropped_and_serving_goes_on() {
    let pki = Pki::new();
    let leaf = pki.leaf("garbage");
    let app = spawn_tls_app(&pki, &leaf, &[]).await;
    let mut noise = vec![0u8; 64 * 1024];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for byte in &mut noise {
        // xorshift: reproducible noise without a random-number crate in the test.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("http", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
        ("zeros", vec![0u8; 4096]),
        ("noise", noise),
        // A handshake record that claims 16 MiB.
        ("huge record", vec![0x16, 0x03, 0x03, 0xff, 0xff, 1, 2, 3]),
        // A ClientHello record whose body is not one.
        ("bad hello", {
            let mut v = vec![0x16, 0x03, 0x01, 0x00, 0x40];
            v.extend(std::iter::repeat_n(0xab, 0x40));
            v
        }),
    ];
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        for (name, bytes) in &cases {
            let opened = Instant::now();
            let mut tcp = TcpStream::connect(host(&app)).await.unwrap();
            let _ = tcp.write_all(bytes).await;
            let mut sink = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
            assert!(
                read.is_ok(),
                "{name} (round {round}): the connection stayed open"
            );
            slowest = slowest.max(opened.elapsed());
        }
    }
    println!(
        "garbage: {} connections of junk dropped in {:?} (slowest {slowest:?}); still serving",
        3 * cases.len(),
        started.elapsed()
    );
    // Still serving.
    let res = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let alice = app.sign_in("alice").await;
    let (_ws, served) = pki.wss(&host(&app), &alice.token).await;
    assert_eq!(served, leaf.der);
}

#[actix_web::test]
async fn over_https_a_spoofed_forwarded_for_does_not_bypass_the_ip_limit() {
    let pki = Pki::new();
    let leaf = pki.leaf("limits");
    // No trusted proxy: the client is the TCP peer, whatever X-Forwarded-For says.
    let app = spawn_tls_app(&pki, &leaf, &["--rate-limit-ip-per-min=10"]).await;
    let mut limited = 0;
    for n in 0..20 {
        let res = app
            .http
            .get(app.url("/api/v1/users/nobody"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited += 1;
        }
    }
    assert!(
        limited >= 10,
        "only {limited} of 20 limited: the header was believed"
    );
}

#[actix_web::test]
async fn a_drain_closes_wss_sessions_with_1001() {
    let pki = Pki::new();
    let leaf = pki.leaf("drain");
    let mut app = spawn_tls_app(&pki, &leaf, &[]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = pki.wss(&host(&app), &alice.token).await;
    // The client reads (and answers the close) while the server drains.
    let reader = actix_rt::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, ws.stream.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    });
    let report = app.shutdown_trigger().pull().await;
    assert!(report.sockets_closed >= 1);
    let code = reader.await.unwrap();
    assert_eq!(code, Some(1001));
    println!("wss drain: closed with 1001 in {:?}", report.drain_time);
}

#[actix_web::test]
async fn a_wss_client_that_stops_reading_is_let_go() {
    let pki = Pki::new();
    let leaf = pki.leaf("stall");
    let app = spawn_tls_app(
        &pki,
        &leaf,
        &[
            "--ws-heartbeat-ms=300",
            "--ws-idle-timeout-ms=1500",
            "--ws-outbound-limit=64",
        ],
    )
    .await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    // Bob's client: a 4 KiB receive window, and it reads nothing after hello.
    let small_window = aisocial_client::ws::Connect {
        recv_buffer: Some(4096),
        ..aisocial_client::ws::Connect::default()
    };
    let tcp = aisocial_client::ws::connect(host(&app).parse().unwrap(), &small_window)
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let stream = aisocial_client::ws::handshake(wss_request(&host(&app), &bob.token), tls)
        .await
        .unwrap();
    let mut stalled = Wss { stream };
    assert_eq!(stalled.next_json().await["type"], "hello");
    // A reading follower on the same node, for comparison.
    let carol = app.sign_in("carol").await;
    assert_eq!(app.follow(&carol, "alice").await, 204);
    let (mut carol_ws, _) = pki.wss(&host(&app), &carol.token).await;
    // Carol reads on a task of her own the whole time (answering the 300 ms pings), so however
    // long the posting or the checks below take, the idle timeout never takes her; the count
    // of one is then the stalled session gone and hers held.
    let (posts_seen, mut seen) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stop_reading = std::sync::Arc::clone(&stop);
    let reader = actix_rt::spawn(async move {
        loop {
            tokio::select! {
                () = stop_reading.notified() => return carol_ws,
                frame = carol_ws.stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                        if frame["type"] == "post.created" {
                            let _ = posts_seen.send(Some(text.to_string()));
                        }
                    }
                    Some(Ok(m)) if !m.is_close() => {}
                    other => {
                        let _ = posts_seen.send(None);
                        panic!("the reading follower was dropped: {other:?}");
                    }
                },
            }
        }
    });

    let body = "x".repeat(900);
    let posts = 400;
    for _ in 0..posts / 50 {
        let batch = (0..50).map(|_| app.post(&alice, &body));
        for res in futures_util::future::join_all(batch).await {
            assert_eq!(res.status(), 201);
        }
    }
    for _ in 0..posts {
        let frame = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .expect("carol's posts stopped coming");
        assert!(
            matches!(frame, Some(Some(_))),
            "the reading follower was dropped"
        );
    }
    // The stalled session is let go (1013 it cannot read, then the write stall), the other
    // one stays.
    let started = Instant::now();
    let websockets = |system: &Value| system["connections"]["websockets"].as_u64();
    loop {
        let system: Value = app.public_json("/health/system").await;
        if websockets(&system) == Some(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stalled session is still held: {system}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "wss stall: the follower that stopped reading was let go {:?} after the other had all {posts} posts",
        started.elapsed()
    );
    stop.notify_one();
    let mut carol_ws = reader.await.expect("carol's reader");
    drop(stalled);
    follower_receives_post(&app, &alice, &mut carol_ws, "carol still here").await;
}

/// The frame limits hold over TLS as over TCP: oversize → 1009, a flood → 1008.
#[actix_web::test]
async fn wss_frames_keep_their_limits() {
    let pki = Pki::new();
    let leaf = pki.leaf("limits");
    let app = spawn_tls_app(&pki, &leaf, &[]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = pki.wss(&host(&app), &alice.token).await;
    let big = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    ws.stream.send(Message::text(big)).await.unwrap();
    assert_eq!(ws.closed_with().await, Some(1009));

    let (mut ws, _) = pki.wss(&host(&app), &alice.token).await;
    for _ in 0..500 {
        if ws
            .stream
            .send(Message::text(r#"{"op":"ping"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(ws.closed_with().await, Some(1008));
}
