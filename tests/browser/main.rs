//! Browser tests: the bundled pages (`/` and `/admin/dashboard`) in headless Chromium, driven
//! over WebDriver, against the real server on a fresh database. They need Debian's `chromium`
//! and `chromium-driver` packages and fail (never skip) without them.
//!
//! Each browser is its own chromedriver + Chromium with a fresh profile; the tests take a lock
//! so that only one test's browsers run at a time on this small machine. Screenshots land in
//! `target/browser-screenshots/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../api/provider.rs"]
#[allow(dead_code)]
mod provider;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aisocial_gemini::emulator::{self, EmulatorConfig, QuotaLimits, RunningEmulator};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use helpers::{TestApp, spawn_app_with, unique_name};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PACKAGES: &str = "chromium chromium-driver";

/// How long one step may take (a page load, a live update, a poll).
const STEP: Duration = Duration::from_secs(20);

/// One test's browsers at a time.
static BROWSERS: Mutex<()> = Mutex::const_new(());

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("no free port");
    listener.local_addr().expect("no local address").port()
}

/// The server on a port known before it starts, so that its own origin can be allowed to open
/// websockets (a browser always sends `Origin`).
async fn spawn_site(extra: &[&str]) -> TestApp {
    spawn_site_on(free_port(), extra).await
}

/// [`spawn_site`] on a port chosen beforehand (the Google flow's redirect names it).
async fn spawn_site_on(port: u16, extra: &[&str]) -> TestApp {
    let bind = format!("--bind=127.0.0.1:{port}");
    let origins = format!("--ws-allowed-origins=http://127.0.0.1:{port}");
    let mut args = vec![bind.as_str(), origins.as_str()];
    args.extend_from_slice(extra);
    let app = spawn_app_with(&args).await;
    assert_eq!(app.port, port, "the server listens where it was told to");
    app
}

fn require_browser() {
    for (path, what) in [(CHROMIUM, "Chromium"), (CHROMEDRIVER, "ChromeDriver")] {
        assert!(
            Path::new(path).exists(),
            "{what} is missing at {path}: the browser tests need Debian's packages \
             `{PACKAGES}` (apt-get install -y {PACKAGES})"
        );
    }
}

/// A chromedriver process on a port of its own.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start() -> Self {
        require_browser();
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} did not start ({e}); install `{PACKAGES}`"));
        let driver = Driver { child, port };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(res) = http.get(&status).send().await {
                let body: Value = res.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on port {port} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ends a WebDriver session from synchronous code (a `Drop` after a failed assertion), so that
/// chromedriver quits its Chromium.
fn delete_session_blocking(port: u16, session: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Read the whole answer (chromedriver answers once the browser is gone), but not past it:
    // the connection may stay open.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if response_complete(&answer) {
            break;
        }
    }
}

/// Whether `bytes` hold a whole HTTP response with a `Content-Length` body.
fn response_complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

/// Kills what is left of a browser: the processes (started by this test) whose command line
/// names its unique profile folder.
fn kill_browser_processes(profile: &Path) {
    let needle = profile.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// One headless Chromium (its own chromedriver and profile) and the page helpers the tests use.
struct Browser {
    name: String,
    client: Option<Client>,
    session: Option<String>,
    driver: Driver,
    profile: PathBuf,
}

impl Browser {
    async fn launch(name: &str) -> Self {
        let driver = Driver::start().await;
        let profile = std::env::temp_dir().join(format!("aisocial-browser-{}", unique_name()));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("profile folder {}: {e}", profile.display()));
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1280,900",
            format!("--user-data-dir={}", profile.display()),
        ]);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start for {name}: {e}"));
        let session = client.session_id().await.ok().flatten();
        Browser {
            name: name.to_owned(),
            client: Some(client),
            session,
            driver,
            profile,
        }
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| panic!("{}'s browser is closed", self.name))
    }

    /// Fails on what the page's console says went wrong: a Content-Security-Policy violation
    /// or an uncaught script error. (Refused requests the test provoked on purpose are fine.)
    async fn assert_clean_console(&self) {
        let Some(session) = &self.session else {
            return;
        };
        let res = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver.url()))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: console log: {e}", self.name));
        let log: Value = res.json().await.unwrap_or_default();
        let entries = log["value"].as_array().cloned().unwrap_or_default();
        let bad: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["message"].as_str())
            .filter(|m| {
                m.contains("Content Security Policy")
                    || m.contains("Uncaught")
                    || m.contains("TypeError")
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{}: the console reports problems: {bad:#?}",
            self.name
        );
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take()
            && client.close().await.is_ok()
        {
            self.session = None;
        }
    }

    async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open {url}: {e}", self.name));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client()
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    /// Polls `script` until it returns something other than `null` or `false`, and returns it.
    async fn wait(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait_up_to(STEP, what, script, args).await
    }

    async fn wait_up_to(
        &self,
        timeout: Duration,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script, args.clone()).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting until {what}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics with what the page shows (and saves a screenshot of it).
    async fn fail(&self, why: &str) -> ! {
        let page = self
            .client()
            .execute(
                "return {url: location.href, ws: document.getElementById('ws-status')?.dataset.state, \
                 text: document.body ? document.body.innerText.slice(0, 2000) : ''};",
                vec![],
            )
            .await
            .unwrap_or_default();
        let shot = screenshot_dir().join(format!("failure-{}.png", self.name));
        self.screenshot_to(&shot).await;
        panic!(
            "{}: {why}\npage: {}\nws: {}\nscreenshot: {}\n--- page text ---\n{}",
            self.name,
            page["url"],
            page["ws"],
            shot.display(),
            page["text"].as_str().unwrap_or_default()
        );
    }

    async fn screenshot_to(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(png) = self.client().screenshot().await {
            let _ = std::fs::write(path, png);
        }
    }

    async fn screenshot(&self, file: &str) -> PathBuf {
        let path = screenshot_dir().join(file);
        std::fs::create_dir_all(screenshot_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", screenshot_dir().display()));
        let png = self
            .client()
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot failed: {e}", self.name));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Waits until `css` is on the page and shown, scrolls it to the middle, and clicks it.
    async fn click(&self, css: &str) {
        self.wait(
            &format!("{css} can be clicked"),
            "const e = document.querySelector(arguments[0]); \
             if (!e || e.closest('[hidden]') || e.disabled) return false; \
             e.scrollIntoView({block: 'center'}); return true;",
            vec![json!(css)],
        )
        .await;
        let element = self
            .client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: {css} not found: {e}", self.name));
        if let Err(e) = element.click().await {
            self.fail(&format!("clicking {css} failed: {e}")).await;
        }
    }

    /// Types into the field `css` (which must be on the page and shown).
    async fn type_into(&self, css: &str, text: &str) {
        self.wait(
            &format!("{css} can be typed into"),
            "const e = document.querySelector(arguments[0]); \
             return Boolean(e && !e.closest('[hidden]') && !e.disabled && !e.readOnly);",
            vec![json!(css)],
        )
        .await;
        let element = self
            .client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: {css} not found: {e}", self.name));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: typing into {css} failed: {e}", self.name));
    }

    /// Signs in on the try-it page with the development sign-in.
    async fn sign_in(&self, app: &TestApp, handle: &str) {
        self.goto(&app.url("/")).await;
        self.type_into("#handle", handle).await;
        self.click("#sign-in").await;
        self.wait(
            &format!("the page says it is signed in as @{handle}"),
            "const e = document.getElementById('signed-in-as'); \
             return !e.hidden && e.dataset.handle === arguments[0] && e.textContent;",
            vec![json!(handle)],
        )
        .await;
    }

    async fn wait_connected(&self) {
        self.wait(
            "the websocket is connected (#ws-status[data-state=connected])",
            "return document.querySelector('#ws-status[data-state=\"connected\"]') !== null;",
            vec![],
        )
        .await;
    }

    /// Posts `text` through the compose box and returns the new post's id (from the page).
    async fn post(&self, text: &str) -> i64 {
        self.type_into("#compose-body", text).await;
        self.click("#post-button").await;
        self.wait(
            "the new post is in the own timeline",
            FIND_POST,
            vec![json!(text)],
        )
        .await
        .as_i64()
        .unwrap_or_else(|| panic!("{}: no post id", self.name))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            delete_session_blocking(self.driver.port, &session);
        }
        self.driver.kill();
        kill_browser_processes(&self.profile);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The id of the post in `#timeline` whose body is `arguments[0]`, or null.
const FIND_POST: &str = "for (const p of document.querySelectorAll('#timeline > .post')) { \
       const body = p.querySelector(':scope > .post-body'); \
       if (body && body.textContent === arguments[0]) return Number(p.dataset.postId); \
     } \
     return null;";

#[actix_web::test]
async fn two_browsers_see_a_post_live() {
    let _one_test_at_a_time = BROWSERS.lock().await;
    let app = spawn_site(&[]).await;
    let ann = Browser::launch("ann").await;
    let bob = Browser::launch("bob").await;
    ann.sign_in(&app, "ann").await;
    bob.sign_in(&app, "bob").await;

    // Bob follows ann through the page.
    bob.type_into("#follow-handle", "@ann").await;
    bob.click("#follow-button").await;
    bob.wait(
        "the page confirms that bob follows ann",
        "const m = document.getElementById('follow-message'); \
         return !m.hidden && m.dataset.handle === 'ann' && m.textContent;",
        vec![],
    )
    .await;
    ann.wait_connected().await;
    bob.wait_connected().await;

    // Ann posts; bob's page shows it without reloading.
    bob.js(
        "window.aisocialTestMarker = 'not reloaded'; return true;",
        vec![],
    )
    .await;
    let text = format!("Hello from ann, live {}", &unique_name()[..8]);
    let id = ann.post(&text).await;
    let seen = bob
        .wait(
            "ann's post arrives in bob's timeline over the websocket",
            FIND_POST,
            vec![json!(text)],
        )
        .await;
    assert_eq!(seen.as_i64(), Some(id), "the same post");
    assert_eq!(
        bob.js("return window.aisocialTestMarker || null;", vec![])
            .await,
        "not reloaded",
        "bob's page was not reloaded"
    );
    let post = format!("#timeline > .post[data-post-id=\"{id}\"]");
    let author = bob
        .js(
            "return document.querySelector(arguments[0] + ' .post-author').textContent;",
            vec![json!(post)],
        )
        .await;
    assert!(
        author.as_str().is_some_and(|a| a.contains("@ann")),
        "the author is shown: {author}"
    );

    // Bob likes it: the count becomes 1.
    bob.click(&format!("{post} > .post-actions .like-button"))
        .await;
    bob.wait(
        "the like count becomes 1",
        "const p = document.querySelector(arguments[0]); \
         return p.querySelector(':scope > .post-actions .like-count').textContent === '1' \
           && p.querySelector(':scope > .post-actions .like-button').classList.contains('liked');",
        vec![json!(post)],
    )
    .await;

    // Bob replies: the reply shows under the post.
    let reply = format!("Nice one, ann {}", &unique_name()[..6]);
    bob.click(&format!("{post} > .post-actions .reply-button"))
        .await;
    bob.type_into(&format!("{post} > .reply-form textarea"), &reply)
        .await;
    bob.click(&format!("{post} > .reply-form .reply-send"))
        .await;
    bob.wait(
        "bob's reply shows under ann's post",
        "const p = document.querySelector(arguments[0]); \
         return [...p.querySelectorAll(':scope > .replies-wrap .post > .post-body')] \
           .some((b) => b.textContent === arguments[1]);",
        vec![json!(post), json!(reply)],
    )
    .await;
    bob.wait(
        "the post's reply count becomes 1",
        "return document.querySelector(arguments[0] + ' > .post-actions .reply-count').textContent === '1';",
        vec![json!(post)],
    )
    .await;

    // Ann hears of the like and the reply live: her notifications and the badge.
    ann.wait(
        "ann's notifications show bob's like and reply, with an unread badge",
        "const kinds = [...document.querySelectorAll('#notifications .notification')] \
           .map((n) => n.dataset.kind); \
         const badge = document.getElementById('notifications-badge'); \
         return kinds.includes('like') && kinds.includes('reply') && !badge.hidden \
           && Number(badge.dataset.count) >= 2 && badge.dataset.count;",
        vec![],
    )
    .await;
    // …and sees the like count when she refreshes her timeline.
    ann.click("#refresh-button").await;
    ann.wait(
        "ann's timeline shows the like",
        "const p = document.querySelector(arguments[0]); \
         return p && p.querySelector(':scope > .post-actions .like-count').textContent === '1';",
        vec![json!(post)],
    )
    .await;

    let shot = bob.screenshot("try-it.png").await;
    println!("screenshot: {}", shot.display());

    // A refused action shows the problem document's detail next to it.
    bob.type_into("#follow-handle", "nobody_here").await;
    bob.click("#follow-button").await;
    let error = bob
        .wait(
            "the follow error is shown",
            "const e = document.getElementById('follow-error'); return !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(
        error.as_str().is_some_and(|e| e.contains("not found")),
        "the detail of the 404: {error}"
    );

    // An access token the server refuses is replaced with the refresh token, once, and the
    // call goes through.
    bob.js(
        "const s = JSON.parse(localStorage.getItem('aisocial.session')); \
         s.access_token = 'not-a-valid-token'; \
         localStorage.setItem('aisocial.session', JSON.stringify(s)); return true;",
        vec![],
    )
    .await;
    bob.click("#refresh-button").await;
    bob.wait(
        "the page refreshed its tokens and reloaded the timeline",
        "const s = JSON.parse(localStorage.getItem('aisocial.session') || 'null'); \
         return s && s.access_token !== 'not-a-valid-token' \
           && document.getElementById('timeline-error').hidden \
           && document.querySelectorAll('#timeline > .post').length >= 2;",
        vec![],
    )
    .await;

    // Signing out clears the stored session and shows the sign-in form again.
    bob.click("#sign-out").await;
    bob.wait(
        "bob is signed out",
        "return !document.getElementById('signin-panel').hidden \
           && document.getElementById('app-panel').hidden \
           && localStorage.getItem('aisocial.session') === null \
           && document.getElementById('ws-status').dataset.state === 'offline';",
        vec![],
    )
    .await;
    ann.assert_clean_console().await;
    bob.assert_clean_console().await;
    ann.close().await;
    bob.close().await;
}

const ROOMY: QuotaLimits = QuotaLimits {
    rpm: 1_000,
    input_tpm: 1_000_000,
    rpd: 10_000,
};
const GEMINI_KEY: &str = "browser-test-gemini-key";

/// The bundled Gemini emulator, slow enough that an answer streams in several visible pieces.
async fn slow_emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        api_key: Some(GEMINI_KEY.into()),
        limits: ROOMY,
        tokens_per_second: 10.0,
        first_chunk_latency: Duration::from_millis(200),
        ..EmulatorConfig::default()
    };
    emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("emulator")
}

#[actix_web::test]
async fn the_ai_answer_appears_delta_by_delta() {
    let _one_test_at_a_time = BROWSERS.lock().await;
    let emulator = slow_emulator().await;
    let key = format!("--gemini-api-key={GEMINI_KEY}");
    let base = format!("--gemini-base-url={}", emulator.base_url());
    let rpm = format!("--ai-rpm={}", ROOMY.rpm);
    let tpm = format!("--ai-tpm={}", ROOMY.input_tpm);
    let rpd = format!("--ai-rpd={}", ROOMY.rpd);
    let app = spawn_site(&[&key, &base, &rpm, &tpm, &rpd]).await;
    let ann = Browser::launch("ann-ai").await;
    ann.sign_in(&app, "ann").await;
    ann.wait_connected().await;

    let text = format!(
        "hello @ai, what should I call my new cat? {}",
        &unique_name()[..6]
    );
    let id = ann.post(&text).await;

    // Watch the answer grow under the post.
    let read_answer = "const a = document.querySelector(\
         `#timeline > .post[data-post-id=\"${arguments[0]}\"] > .ai-answer[data-post-id=\"${arguments[0]}\"]`); \
         if (!a) return null; \
         return {state: a.dataset.state, text: a.querySelector('.ai-text').textContent};";
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen: Vec<String> = Vec::new();
    let mut shot_taken = false;
    let final_state = loop {
        let answer = ann.js(read_answer, vec![json!(id)]).await;
        let state = answer["state"].as_str().unwrap_or_default().to_owned();
        let now = answer["text"].as_str().unwrap_or_default().to_owned();
        if state == "streaming" && now != "…" && seen.last() != Some(&now) {
            seen.push(now.clone());
            if seen.len() == 2 && !shot_taken {
                ann.screenshot("ai-streaming.png").await;
                shot_taken = true;
            }
        }
        if state == "done" || state == "error" {
            break (state, now);
        }
        if answer.is_null() && !seen.is_empty() {
            // Already replaced by the stored reply.
            break ("settled".to_owned(), String::new());
        }
        if Instant::now() >= deadline {
            ann.fail(&format!(
                "the AI answer never finished; seen so far: {seen:?}"
            ))
            .await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    };
    assert_ne!(
        final_state.0, "error",
        "the AI answered with an error: {}",
        final_state.1
    );
    assert!(
        seen.len() >= 2,
        "the answer was seen growing at least twice before it was complete: {seen:?}"
    );
    for pair in seen.windows(2) {
        assert!(
            pair[1].starts_with(&pair[0]) && pair[1].len() > pair[0].len(),
            "the answer only grows: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }

    // The stored reply by @ai shows under the post, with the streamed text.
    let stored = ann
        .wait(
            "the stored AI reply shows under the post",
            "const p = document.querySelector(`#timeline > .post[data-post-id=\"${arguments[0]}\"]`); \
             const r = p && p.querySelector(':scope > .replies-wrap .post[data-author=\"ai\"] > .post-body'); \
             return r && r.textContent;",
            vec![json!(id)],
        )
        .await;
    let stored = stored.as_str().unwrap_or_default();
    let badge = ann
        .js(
            "const p = document.querySelector(`#timeline > .post[data-post-id=\"${arguments[0]}\"]`); \
             const b = p && p.querySelector(':scope > .replies-wrap .post[data-author=\"ai\"] .ai-badge'); \
             return b && b.textContent;",
            vec![json!(id)],
        )
        .await;
    assert_eq!(
        badge, "AI",
        "the stored reply is marked as written by the AI"
    );
    let longest = seen.last().map(|s| s.trim()).unwrap_or_default();
    assert!(
        stored.starts_with(longest),
        "the stored reply {stored:?} is the streamed text {longest:?} completed"
    );
    if !final_state.1.is_empty() {
        assert_eq!(
            stored,
            final_state.1.trim(),
            "the stored reply is the answer"
        );
    }
    println!(
        "the AI answer was seen in {} growing states before it was stored: {stored:?}",
        seen.len()
    );

    // "AI draft" fills the compose box with the streamed draft.
    let prompt = "a short note about autumn walks";
    ann.type_into("#compose-body", prompt).await;
    ann.click("#ai-draft-button").await;
    let draft = ann
        .wait_up_to(
            Duration::from_secs(30),
            "the AI draft fills the compose box",
            "const t = document.getElementById('compose-body'); \
             const s = document.getElementById('compose-status'); \
             return !t.readOnly && !s.hidden && s.textContent.startsWith('Draft ready') \
               && t.value !== arguments[0] && t.value;",
            vec![json!(prompt)],
        )
        .await;
    println!("AI draft: {draft}");
    assert!(
        !ann.js(
            "return document.getElementById('post-button').disabled;",
            vec![]
        )
        .await
        .as_bool()
        .unwrap_or(true),
        "the draft can be posted"
    );

    // "Catch me up" streams a summary into its panel.
    ann.click("#catch-up-button").await;
    let summary = ann
        .wait_up_to(
            Duration::from_secs(30),
            "the catch-up summary is shown",
            "const t = document.getElementById('ai-panel-text'); \
             return !document.getElementById('ai-panel').hidden \
               && t.dataset.state === 'done' && t.textContent;",
            vec![],
        )
        .await;
    println!("catch-up: {summary}");
    ann.assert_clean_console().await;
    ann.close().await;
}

#[actix_web::test]
async fn the_dashboard_shows_live_values() {
    let _one_test_at_a_time = BROWSERS.lock().await;
    let app = spawn_site(&["--admin-handles=boss"]).await;

    // Bob keeps the try-it page open (one websocket) and writes a little.
    let bob = Browser::launch("bob-dash").await;
    bob.sign_in(&app, "bob").await;
    bob.wait_connected().await;
    for n in 1..=3 {
        bob.post(&format!("bob's post number {n} {}", &unique_name()[..6]))
            .await;
    }

    let boss = Browser::launch("boss").await;
    boss.client()
        .set_window_size(1280, 1900)
        .await
        .expect("window size");
    boss.sign_in(&app, "boss").await;
    boss.goto(&app.url("/admin/dashboard")).await;
    boss.wait(
        "the dashboard polled /admin/live three times",
        "return Number(document.body.dataset.updates) >= 3 && document.body.dataset.updates;",
        vec![],
    )
    .await;

    let latest = "const fig = document.getElementById(arguments[0]).closest('figure'); \
         const e = fig.querySelector(`.latest[data-series=\"${arguments[1]}\"]`); \
         return e && e.dataset.value !== '' ? Number(e.dataset.value) : null;";
    // Bob's socket; boss's own try-it page closed its socket when it was left.
    boss.wait(
        "the connections chart counts exactly bob's websocket",
        &format!("const v = (() => {{ {latest} }})(); return v === 1;"),
        vec![json!("chart-connections"), json!("websockets")],
    )
    .await;
    let online = boss
        .js(
            latest,
            vec![json!("chart-connections"), json!("online_users")],
        )
        .await;
    assert!(online.as_f64() >= Some(1.0), "online users: {online}");

    let kinds = boss
        .wait(
            "the actors table lists feed_broker and db_writer",
            "const kinds = [...document.querySelectorAll('#actors-table tbody tr')] \
               .map((r) => r.cells[0].textContent); \
             return kinds.includes('feed_broker') && kinds.includes('db_writer') && kinds;",
            vec![],
        )
        .await;
    println!("actor kinds: {kinds}");
    for kind in ["feed_broker", "db_writer"] {
        let depth = boss
            .js(latest, vec![json!("chart-mailboxes"), json!(kind)])
            .await;
        assert!(
            depth.as_f64().is_some(),
            "the mailbox chart has a latest value for {kind}: {depth}"
        );
    }
    let status = boss
        .js(
            "const s = document.getElementById('last-update'); \
             return {state: s.dataset.state, node: s.dataset.node, text: s.textContent};",
            vec![],
        )
        .await;
    assert_eq!(status["state"], "ok", "{status}");
    let node = status["node"].as_str().unwrap_or_default();
    assert!(
        !node.is_empty() && status["text"].as_str().unwrap_or_default().contains(node),
        "the status line names the node: {status}"
    );

    // A few more points so the screenshot shows lines.
    boss.wait(
        "five polls",
        "return Number(document.body.dataset.updates) >= 5;",
        vec![],
    )
    .await;
    let shot = boss.screenshot("dashboard.png").await;
    println!("screenshot: {}", shot.display());

    // A signed-in non-admin is sent to sign in as an admin.
    bob.goto(&app.url("/admin/dashboard")).await;
    let message = bob
        .wait(
            "bob is told to sign in as an admin",
            "const e = document.getElementById('auth-needed'); \
             return !e.hidden && document.getElementById('dashboard-main').hidden && e.innerText;",
            vec![],
        )
        .await;
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("Sign in as an admin")),
        "{message}"
    );
    assert_eq!(
        bob.js("return document.body.dataset.updates;", vec![])
            .await,
        "0",
        "no data for a non-admin"
    );

    // Back on the try-it page, boss is live again.
    boss.client().back().await.expect("back");
    boss.wait_connected().await;
    boss.assert_clean_console().await;
    bob.assert_clean_console().await;
    boss.close().await;
    bob.close().await;
}

/// A report made on the try-it page reaches the dashboard's queue; the admin suspends the
/// reported user from there (their page loses its socket), then lifts the suspension.
#[actix_web::test]
async fn a_report_from_the_page_is_worked_on_the_dashboard() {
    let _one_test_at_a_time = BROWSERS.lock().await;
    let app = spawn_site(&["--admin-handles=boss"]).await;
    let spam = format!("cheap followers here {}", &unique_name()[..6]);
    let bob = Browser::launch("bob-spam").await;
    bob.sign_in(&app, "bob").await;
    bob.wait_connected().await;
    let post = bob.post(&spam).await;

    // Ann follows bob, sees the post and reports it from the page.
    let ann_token = app.sign_in("ann").await;
    assert_eq!(app.follow(&ann_token, "bob").await, 204);
    let ann = Browser::launch("ann-report").await;
    ann.sign_in(&app, "ann").await;
    ann.wait(
        "bob's post is in ann's timeline",
        FIND_POST,
        vec![json!(spam)],
    )
    .await;
    let on_post = |css: &str| format!("#timeline > .post[data-post-id=\"{post}\"] {css}");
    ann.click(&on_post(".report-button")).await;
    ann.type_into(&on_post(".report-comment"), "selling followers")
        .await;
    ann.click(&on_post(".report-send")).await;
    ann.wait(
        "the page thanks ann for the report",
        "const n = document.querySelector(arguments[0]); return n && !n.hidden && n.textContent;",
        vec![json!(on_post("> .post-note"))],
    )
    .await;

    // The admin's dashboard lists it; suspending bob from there closes his socket.
    let boss = Browser::launch("boss-moderates").await;
    boss.client()
        .set_window_size(1280, 1900)
        .await
        .expect("window size");
    boss.sign_in(&app, "boss").await;
    boss.goto(&app.url("/admin/dashboard")).await;
    let row = boss
        .wait(
            "the queue lists ann's report of bob's post",
            "const r = [...document.querySelectorAll('#reports-table tbody tr[data-report]')] \
               .find((tr) => tr.innerText.includes(arguments[0])); \
             return r ? r.dataset.report : false;",
            vec![json!(spam)],
        )
        .await;
    let row = row.as_str().unwrap_or_default().to_owned();
    boss.screenshot("moderation-queue.png").await;
    boss.click(&format!(
        "#reports-table tr[data-report=\"{row}\"] button[data-action=\"suspend\"]"
    ))
    .await;
    boss.wait(
        "bob is listed as suspended and the report left the queue",
        "return document.querySelector('#suspended-table tr[data-handle=\"bob\"]') !== null \
           && document.querySelector(`#reports-table tr[data-report=\"${arguments[0]}\"]`) === null;",
        vec![json!(row)],
    )
    .await;
    bob.wait(
        "bob's page lost its socket",
        "return document.querySelector('#ws-status[data-state=\"connected\"]') === null;",
        vec![],
    )
    .await;
    let auditor = app.sign_in("boss").await;
    let (status, audit) = app
        .get_json(&auditor, "/admin/audit?action=report_resolve")
        .await;
    assert_eq!(status, 200, "{audit}");
    let audit = audit["items"].as_array().map_or(0, Vec::len);
    assert_eq!(audit, 1, "the resolution is audited");

    boss.click("#suspended-table tr[data-handle=\"bob\"] button[data-action=\"unsuspend\"]")
        .await;
    boss.wait(
        "bob is no longer listed as suspended",
        "return document.querySelector('#suspended-table tr[data-handle=\"bob\"]') === null \
           && document.getElementById('moderation-status').dataset.state === 'ok';",
        vec![],
    )
    .await;
    boss.assert_clean_console().await;
    ann.assert_clean_console().await;
    boss.close().await;
    ann.close().await;
    bob.close().await;
}

/// Mute and Block on a post: the author's posts leave the page, and the server lists them.
#[actix_web::test]
async fn mute_and_block_on_the_page_hide_the_author() {
    let _one_test_at_a_time = BROWSERS.lock().await;
    let app = spawn_site(&[]).await;
    let tag = &unique_name()[..6];
    let bob = app.sign_in("bob").await;
    let carol = app.sign_in("carol").await;
    let ann_api = app.sign_in("ann").await;
    for who in ["bob", "carol"] {
        assert_eq!(app.follow(&ann_api, who).await, 204);
    }
    let bobs = format!("bob says hi {tag}");
    let carols = format!("carol says hi {tag}");
    app.create_post(&bob, &bobs).await;
    app.create_post(&carol, &carols).await;

    let ann = Browser::launch("ann-distance").await;
    ann.sign_in(&app, "ann").await;
    for text in [&bobs, &carols] {
        ann.wait(
            "the post is in ann's timeline",
            FIND_POST,
            vec![json!(text)],
        )
        .await;
    }
    ann.click("#timeline > .post[data-author=\"bob\"] .mute-button")
        .await;
    ann.wait(
        "bob's posts left the page and the page says so",
        "return document.querySelector('.post[data-author=\"bob\"]') === null \
           && document.getElementById('page-status').textContent.includes('muted @bob');",
        vec![],
    )
    .await;
    ann.click("#timeline > .post[data-author=\"carol\"] .block-button")
        .await;
    ann.wait(
        "carol's posts left the page",
        "return document.querySelector('.post[data-author=\"carol\"]') === null \
           && document.getElementById('page-status').textContent.includes('blocked @carol');",
        vec![],
    )
    .await;
    let handles = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["handle"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, mutes) = app.get_json(&ann_api, "/api/v1/me/mutes").await;
    assert_eq!(handles(&mutes), vec!["bob".to_owned()], "{mutes}");
    let (_, blocks) = app.get_json(&ann_api, "/api/v1/me/blocks").await;
    assert_eq!(handles(&blocks), vec!["carol".to_owned()], "{blocks}");
    let (_, following) = app.get_json(&ann_api, "/api/v1/users/ann/following").await;
    assert_eq!(
        handles(&following),
        vec!["bob".to_owned()],
        "the block ended the follow"
    );
    ann.assert_clean_console().await;
    ann.close().await;
}

#[actix_web::test]
async fn google_sign_in_in_a_popup_signs_the_page_in() {
    require_browser();
    let _one_test_at_a_time = BROWSERS.lock().await;
    let google = provider::Provider::start().await;
    google.approve_every_sign_in_as(provider::claims("google-sub-4242", "gina@example.com"));
    let port = free_port();
    let mut flags = google.flags();
    flags.push(format!(
        "--google-redirect-url=http://127.0.0.1:{port}/api/v1/auth/google/callback"
    ));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = spawn_site_on(port, &flags).await;

    let browser = Browser::launch("google").await;
    browser.goto(&app.url("/")).await;
    browser
        .wait(
            "the Google button is offered (auth methods say the browser flow is configured)",
            "const b = document.getElementById('google-sign-in'); return b && !b.hidden;",
            vec![],
        )
        .await;
    browser.click("#google-sign-in").await;
    // The popup goes to Google (here: the provider, which approves at once), comes back to the
    // callback with the token pair, and the page reads it and closes the popup.
    let who = browser
        .wait(
            "the page is signed in through Google",
            "const e = document.getElementById('signed-in-as'); return !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(who.as_str().is_some_and(|w| w.starts_with('@')), "{who}");
    browser.wait_connected().await;
    let windows = browser.client().windows().await.unwrap();
    assert_eq!(windows.len(), 1, "the popup closed itself");
    browser.screenshot("google-signed-in.png").await;
    browser.assert_clean_console().await;
    browser.close().await;
}
