//! The AI: `@ai` answers, compose and summary streamed over the websocket, the AiPool under
//! the upstream's quotas (shared by nodes), retries, pauses, fairness, and bad input. Against
//! the bundled Gemini emulator, started here so the tests can script it and read its counters.

use std::time::{Duration, Instant};

use aisocial_gemini::emulator::{
    self, EmulatorConfig, Outcome, QuotaKind, QuotaLimits, RunningEmulator, ScriptedResponse,
};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestUser, WsClient, WsEvent, retry_after, spawn_app_with, spawn_peer,
};

const KEY: &str = "test-gemini-key";

async fn start_emulator(
    limits: QuotaLimits,
    tweak: impl FnOnce(&mut EmulatorConfig),
) -> RunningEmulator {
    let mut config = EmulatorConfig {
        api_key: Some(KEY.into()),
        limits,
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("emulator")
}

/// The app calling `emulator` with `budget` as its AI budget (the same as the emulator's
/// quota unless a test says otherwise).
fn ai_args(emulator: &RunningEmulator, limits: QuotaLimits, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("--gemini-api-key={KEY}"),
        format!("--gemini-base-url={}", emulator.base_url()),
        format!("--ai-rpm={}", limits.rpm),
        format!("--ai-tpm={}", limits.input_tpm),
        format!("--ai-rpd={}", limits.rpd),
        "--ai-retry-base-ms=50".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

async fn app_on(emulator: &RunningEmulator, limits: QuotaLimits, extra: &[&str]) -> TestApp {
    let args = ai_args(emulator, limits, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_app_with(&refs).await
}

const ROOMY: QuotaLimits = QuotaLimits {
    rpm: 1_000,
    input_tpm: 1_000_000,
    rpd: 10_000,
};

async fn compose(app: &TestApp, user: &TestUser, prompt: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/ai/compose"))
        .bearer_auth(&user.token)
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .unwrap()
}

async fn compose_accepted(app: &TestApp, user: &TestUser, prompt: &str) -> String {
    let res = compose(app, user, prompt).await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap_or_default();
    body["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request_id in {body}"))
        .to_owned()
}

/// What one AI request streamed: its deltas in order, then `ai.done` or `ai.error`.
struct Streamed {
    deltas: Vec<String>,
    end: Value,
}

impl Streamed {
    fn text(&self) -> String {
        self.deltas.concat()
    }
}

/// Reads frames until the AI request matching `matches` ends.
async fn read_ai(ws: &mut WsClient, matches: impl Fn(&Value) -> bool) -> Streamed {
    let mut deltas = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = match ws.next_event(left).await {
            WsEvent::Json(frame) => frame,
            other => panic!("waiting for the AI: {other:?} (deltas so far: {deltas:?})"),
        };
        let kind = frame["type"].as_str().unwrap_or_default();
        if !kind.starts_with("ai.") || !matches(&frame["data"]) {
            continue;
        }
        match kind {
            "ai.delta" => {
                assert_eq!(
                    frame["data"]["index"].as_u64(),
                    Some(deltas.len() as u64),
                    "deltas arrive in order"
                );
                deltas.push(
                    frame["data"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            _ => {
                return Streamed { deltas, end: frame };
            }
        }
    }
}

/// Waits until `ai_usage` holds `count` rows (usage is recorded after the answer is sent).
async fn wait_for_usage(app: &TestApp, count: i64) {
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: i64 = db
            .query_one("SELECT count(*) FROM ai_usage", &[])
            .await
            .unwrap()
            .get(0);
        if rows >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} of {count} usage rows recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn by_request(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |data| data["request_id"] == id
}

#[actix_web::test]
async fn an_ai_mention_streams_to_the_author_and_the_thread_and_becomes_a_reply() {
    let emulator = start_emulator(ROOMY, |c| {
        c.first_chunk_latency = Duration::from_millis(300);
        c.tokens_per_second = 400.0;
    })
    .await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let (mut alice_ws, _) = app.ws(&alice, None).await;
    let root = app
        .create_post(&alice, "Planning a picnic this weekend")
        .await;
    let root_id = root["id"].as_i64().unwrap_or_default();
    let (mut bob_ws, _) = app.ws(&bob, None).await;
    bob_ws
        .send_text(&json!({"op": "subscribe", "topic": format!("thread:{root_id}")}).to_string())
        .await;
    assert_eq!(bob_ws.next_json().await["type"], "subscribed");

    let res = app
        .http
        .post(app.url("/api/v1/posts"))
        .bearer_auth(&alice.token)
        .json(&json!({"body": "@ai what should we bring to the picnic?", "reply_to": root_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mention: Value = res.json().await.unwrap_or_default();
    let mention_id = mention["id"].as_i64().unwrap_or_default();

    let about_mention = |data: &Value| data["post_id"].as_i64() == Some(mention_id);
    let seen_by_alice = read_ai(&mut alice_ws, about_mention).await;
    let seen_by_bob = read_ai(&mut bob_ws, about_mention).await;
    assert_eq!(
        seen_by_alice.end["type"], "ai.done",
        "{}",
        seen_by_alice.end
    );
    assert!(
        seen_by_alice.deltas.len() > 1,
        "the answer streamed in pieces"
    );
    let text = seen_by_alice.end["data"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        seen_by_alice.text().trim(),
        text,
        "the streamed text is the answer"
    );
    assert_eq!(
        seen_by_bob.text(),
        seen_by_alice.text(),
        "thread subscribers watch it too"
    );
    assert!(seen_by_alice.end["data"]["usage"]["total_tokens"].as_u64() > Some(0));

    // Stored as a real reply by @ai, in the thread, with the same text.
    let reply_id = seen_by_alice.end["data"]["reply_id"]
        .as_i64()
        .unwrap_or_default();
    let (status, replies) = app
        .get_json(&alice, &format!("/api/v1/posts/{mention_id}/replies"))
        .await;
    assert_eq!(status, 200);
    let stored = &replies["items"][0];
    assert_eq!(stored["id"].as_i64(), Some(reply_id));
    assert_eq!(stored["author"]["handle"], "ai");
    assert_eq!(stored["body"].as_str(), Some(text.as_str()));
    assert_eq!(stored["root_id"].as_i64(), Some(root_id));

    // One request reached Gemini, and its usage was recorded.
    wait_for_usage(&app, 1).await;
    let db = app.db().await;
    let usage = db
        .query_one(
            "SELECT kind, outcome, prompt_tokens, output_tokens, reply_id FROM ai_usage",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(usage.get::<_, String>(0), "mention");
    assert_eq!(usage.get::<_, String>(1), "done");
    assert!(usage.get::<_, i32>(2) > 0);
    assert_eq!(usage.get::<_, Option<i64>>(4), Some(reply_id));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(emulator.control().stats().requests, 1);
}

/// A prompt injection that makes the model name people (the emulator's `[[echo:…]]` marker
/// puts `@bob @carol` in its answer) notifies nobody but the asker; the answer is marked as the
/// AI's in the API.
#[actix_web::test]
async fn an_ai_answer_notifies_only_the_asker_and_is_marked_as_written_by_the_ai() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let carol = app.sign_in("carol").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let post = app
        .create_post(&alice, "@ai [[echo:@bob @carol read this now]] hello")
        .await;
    assert_eq!(post["ai_generated"], false, "{post}");
    let post_id = post["id"].as_i64();
    let answer = read_ai(&mut ws, |d| d["post_id"].as_i64() == post_id).await;
    assert_eq!(answer.end["type"], "ai.done", "{}", answer.end);
    let reply_id = answer.end["data"]["reply_id"].as_i64().unwrap_or_default();
    let (status, reply) = app
        .get_json(&alice, &format!("/api/v1/posts/{reply_id}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        reply["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("@bob @carol")),
        "the model did say it: {reply}"
    );
    assert_eq!(reply["ai_generated"], true, "{reply}");
    let from_ai = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["actor"]["handle"] == "ai")
            .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for user in [&bob, &carol] {
        let (_, page) = app.get_json(user, "/api/v1/notifications").await;
        assert!(
            from_ai(&page).is_empty(),
            "@{} was notified: {page}",
            user.handle
        );
    }
    let (_, page) = app.get_json(&alice, "/api/v1/notifications").await;
    assert_eq!(from_ai(&page), vec!["reply".to_owned()], "{page}");
}

#[actix_web::test]
async fn the_ai_never_answers_its_own_posts() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let post = app.create_post(&alice, "@ai say hello to @ai").await;
    let post_id = post["id"].as_i64();
    let answer = read_ai(&mut ws, |d| d["post_id"].as_i64() == post_id).await;
    assert_eq!(answer.end["type"], "ai.done");
    // The answer is a post by @ai; even if it mentioned @ai, nothing more is asked.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(emulator.control().stats().requests, 1);
    wait_for_usage(&app, 1).await;
    let db = app.db().await;
    let rows = db.query("SELECT 1 FROM ai_usage", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
}

#[actix_web::test]
async fn compose_and_summary_stream_to_the_caller_and_record_usage() {
    let emulator = start_emulator(ROOMY, |c| c.tokens_per_second = 500.0).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&alice, "bob").await, 204);
    app.create_post(&bob, "Shipped the new release today").await;
    let (mut ws, _) = app.ws(&alice, None).await;

    let id = compose_accepted(&app, &alice, "a cheerful post about autumn leaves").await;
    let draft = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(draft.end["type"], "ai.done", "{}", draft.end);
    assert_eq!(
        draft.text(),
        draft.end["data"]["text"].as_str().unwrap_or_default()
    );
    assert!(!draft.text().is_empty());
    let usage = &draft.end["data"]["usage"];
    assert!(usage["prompt_tokens"].as_u64() > Some(0));
    assert!(usage["output_tokens"].as_u64() > Some(0));

    let res = app
        .http
        .post(app.url("/api/v1/ai/summary"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap_or_default();
    let summary_id = body["request_id"].as_str().unwrap_or_default().to_owned();
    let summary = read_ai(&mut ws, by_request(&summary_id)).await;
    assert_eq!(summary.end["type"], "ai.done");

    wait_for_usage(&app, 2).await;
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT request_id::text, kind, outcome, prompt_tokens, output_tokens, total_tokens \
             FROM ai_usage WHERE user_id = $1 ORDER BY id",
            &[&alice.id],
        )
        .await
        .unwrap();
    let recorded: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        recorded,
        vec![
            (id.clone(), "compose".into(), "done".into()),
            (summary_id, "summary".into(), "done".into())
        ]
    );
    assert_eq!(
        i64::from(rows[0].get::<_, i32>(3)),
        usage["prompt_tokens"].as_i64().unwrap_or_default(),
        "the prompt tokens are Gemini's count"
    );
}

#[actix_web::test]
async fn a_blocked_prompt_is_declined_clearly() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let id = compose_accepted(&app, &alice, "something [[block]]").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.error");
    assert_eq!(answer.end["data"]["code"], "declined");
    let id = compose_accepted(&app, &alice, "something [[safety]]").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["data"]["code"], "declined");
}

#[actix_web::test]
async fn bad_input_to_the_ai_routes_gets_problem_documents() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let alice = app.sign_in("alice").await;
    let long = "x".repeat(2_001);
    let cases: Vec<(Value, u16)> = vec![
        (json!({}), 422),
        (json!({"prompt": ""}), 422),
        (json!({"prompt": "   "}), 422),
        (json!({"prompt": long}), 422),
        (json!({"prompt": "a\u{0}b"}), 422),
        (json!({"prompt": 5}), 422),
        (json!({"prompt": "ok", "extra": 1}), 422),
        (json!(["prompt"]), 422),
    ];
    for (body, expected) in cases {
        let res = app
            .http
            .post(app.url("/api/v1/ai/compose"))
            .bearer_auth(&alice.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), expected, "{body}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
    }
    let res = app
        .http
        .post(app.url("/api/v1/ai/compose"))
        .bearer_auth(&alice.token)
        .header("content-type", "text/plain")
        .body("write something")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    for path in ["/api/v1/ai/compose", "/api/v1/ai/summary"] {
        let res = app
            .http
            .post(app.url(path))
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    let res = app
        .http
        .get(app.url("/api/v1/ai/compose"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(
        emulator.control().stats().requests,
        0,
        "nothing bad reached Gemini"
    );
}

#[actix_web::test]
async fn ten_times_overload_draws_no_upstream_429_and_callers_get_202_or_429_with_retry_after() {
    let limits = QuotaLimits {
        rpm: 12,
        input_tpm: 250_000,
        rpd: 1_000,
    };
    let emulator = start_emulator(limits, |_| {}).await;
    let app = app_on(
        &emulator,
        limits,
        &[
            "--ai-queue=40",
            "--ai-user-queue=40",
            "--ai-user-per-min=1000",
        ],
    )
    .await;
    let mut users = Vec::new();
    for n in 0..6 {
        users.push(app.sign_in(&format!("user_{n}")).await);
    }
    // 120 requests at once: ten times what the upstream takes in a minute.
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..20 {
        for user in &users {
            let res = compose(&app, user, &format!("round {round}")).await;
            let status = res.status().as_u16();
            *statuses.entry(status).or_insert(0) += 1;
            match status {
                202 => {}
                429 => {
                    let retry = retry_after(&res);
                    assert!(retry >= 1, "429 carries Retry-After");
                    let body: Value = res.json().await.unwrap_or_default();
                    assert_eq!(body["code"], "ai_busy");
                }
                other => panic!("only 202 or 429, got {other}"),
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = emulator.control().stats();
    let served = stats.outcome_count(Outcome::Ok);
    let refused = stats.outcome_count(Outcome::QuotaRpm)
        + stats.outcome_count(Outcome::QuotaTpm)
        + stats.outcome_count(Outcome::QuotaRpd)
        + stats.outcome_count(Outcome::ResourceExhausted);
    println!(
        "AI overload: callers {statuses:?}; upstream served {served} of a limit of {} a minute, refused {refused}",
        limits.rpm
    );
    assert_eq!(refused, 0, "no upstream 429");
    assert_eq!(
        served,
        u64::from(limits.rpm),
        "the budget is used, and no more"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0);
    assert!(statuses.get(&202).copied().unwrap_or(0) >= 40);
}

#[actix_web::test]
async fn two_nodes_stay_under_one_shared_budget() {
    let limits = QuotaLimits {
        rpm: 10,
        input_tpm: 250_000,
        rpd: 1_000,
    };
    let emulator = start_emulator(limits, |_| {}).await;
    let args = ai_args(
        &emulator,
        limits,
        &["--ai-user-per-min=1000", "--ai-user-queue=20"],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = spawn_app_with(&refs).await;
    let b = spawn_peer(&a, &refs).await;
    let on_a = a.sign_in("on_a").await;
    let on_b = b.sign_in("on_b").await;
    for n in 0..15 {
        assert_eq!(compose(&a, &on_a, &format!("a {n}")).await.status(), 202);
        assert_eq!(compose(&b, &on_b, &format!("b {n}")).await.status(), 202);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = emulator.control().stats();
    println!(
        "two nodes: upstream served {}, refused {} (limit {} a minute)",
        stats.outcome_count(Outcome::Ok),
        stats.outcome_count(Outcome::QuotaRpm),
        limits.rpm
    );
    assert_eq!(stats.outcome_count(Outcome::QuotaRpm), 0);
    assert_eq!(stats.outcome_count(Outcome::Ok), u64::from(limits.rpm));
}

#[actix_web::test]
async fn an_upstream_429_pauses_every_worker_for_its_retry_delay() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &["--ai-concurrency=4"]).await;
    let control = emulator.control();
    control
        .script([ScriptedResponse::quota_exceeded("2s")])
        .unwrap();
    let users = [
        app.sign_in("first").await,
        app.sign_in("second").await,
        app.sign_in("third").await,
    ];
    let mut sockets = Vec::new();
    for user in &users {
        sockets.push(app.ws(user, None).await.0);
    }
    let first = compose_accepted(&app, &users[0], "one").await;
    // Wait until the 429 was answered, then ask for more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while control.stats().requests == 0 {
        assert!(Instant::now() < deadline, "the first request never came");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the worker time to read the 429 and pause the pool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let others = [
        compose_accepted(&app, &users[1], "two").await,
        compose_accepted(&app, &users[2], "three").await,
    ];
    let mut ids = vec![first];
    ids.extend(others);
    for (ws, id) in sockets.iter_mut().zip(&ids) {
        let answer = read_ai(ws, by_request(id)).await;
        assert_eq!(answer.end["type"], "ai.done", "{}", answer.end);
    }
    let log = control.stats().recent;
    let refused_at = log[0].at_ms;
    assert_eq!(log[0].status, 429);
    let next = log[1..].iter().map(|r| r.at_ms).min().unwrap_or_default();
    println!(
        "upstream 429 with retryDelay 2s: the next request came {} ms later",
        next - refused_at
    );
    assert!(log[1..].iter().all(|r| r.status == 200));
    assert!(
        next >= refused_at + 1_950,
        "nothing was sent during the pause"
    );
    assert_eq!(log.len(), 4);
}

#[actix_web::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &[]).await;
    let control = emulator.control();
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;

    control
        .script([ScriptedResponse::status(503), ScriptedResponse::status(500)])
        .unwrap();
    let id = compose_accepted(&app, &alice, "try hard").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.done", "{}", answer.end);
    assert_eq!(control.stats().requests, 3, "two failures, then the answer");

    for status in [400, 403, 404] {
        let before = control.stats().requests;
        control.script([ScriptedResponse::status(status)]).unwrap();
        let id = compose_accepted(&app, &alice, "once only").await;
        let answer = read_ai(&mut ws, by_request(&id)).await;
        assert_eq!(answer.end["type"], "ai.error", "{status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            control.stats().requests,
            before + 1,
            "{status} is not retried"
        );
    }

    // A stream that breaks off mid-way is retried; the client sees one coherent answer.
    let id = compose_accepted(&app, &alice, "tell me [[midstream-error]]").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.error");
    assert_eq!(
        answer.end["data"]["code"], "unavailable",
        "retries run out: every attempt breaks"
    );
}

#[actix_web::test]
async fn one_users_many_requests_do_not_starve_anothers_single_one() {
    let emulator = start_emulator(ROOMY, |c| {
        c.first_chunk_latency = Duration::from_millis(150)
    })
    .await;
    let app = app_on(
        &emulator,
        ROOMY,
        &[
            "--ai-concurrency=1",
            "--ai-user-queue=10",
            "--ai-user-per-min=1000",
        ],
    )
    .await;
    let heavy = app.sign_in("heavy").await;
    let light = app.sign_in("light").await;
    let (mut light_ws, _) = app.ws(&light, None).await;
    for n in 0..8 {
        compose_accepted(&app, &heavy, &format!("heavy {n}")).await;
    }
    let id = compose_accepted(&app, &light, "just one").await;
    let answer = read_ai(&mut light_ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.done");
    // Usage rows are written in the order jobs finish; wait for the light user's.
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let position = loop {
        let row = db
            .query_one(
                "SELECT (SELECT count(*) FROM ai_usage a WHERE a.id <= l.id) \
                 FROM ai_usage l WHERE l.request_id = $1::text::uuid \
                 UNION ALL SELECT 0 LIMIT 1",
                &[&id],
            )
            .await
            .unwrap();
        let position: i64 = row.get(0);
        if position > 0 {
            break position;
        }
        assert!(
            Instant::now() < deadline,
            "the light user's usage was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "fairness: the light user's one request finished {position}th, behind 8 of the heavy user's"
    );
    assert!(position <= 3, "finished {position}th");
}

#[actix_web::test]
async fn readiness_shows_the_ai_degraded_while_gemini_keeps_failing() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &["--ai-max-attempts=1"]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let ready = |app: &TestApp| {
        let url = app.url("/health/ready");
        let http = app.http.clone();
        async move {
            let res = http.get(url).send().await.unwrap();
            assert_eq!(res.status(), 200, "the AI does not decide readiness");
            res.json::<Value>().await.unwrap_or_default()
        }
    };
    assert_eq!(ready(&app).await["checks"]["ai"]["health"], "ok");
    emulator
        .control()
        .script((0..3).map(|_| ScriptedResponse::status(503)))
        .unwrap();
    for n in 0..3 {
        let id = compose_accepted(&app, &alice, &format!("fail {n}")).await;
        let answer = read_ai(&mut ws, by_request(&id)).await;
        assert_eq!(answer.end["data"]["code"], "unavailable");
    }
    // The worker reports to the dispatcher right after the frame it sent; wait for that.
    let wait_for = |expected: &'static str| {
        let ready = &ready;
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let body = ready(app).await;
                if body["checks"]["ai"]["health"] == expected {
                    return body;
                }
                assert!(
                    Instant::now() < deadline,
                    "AI health never became {expected}: {body}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let body = wait_for("degraded").await;
    assert_eq!(body["checks"]["ai"]["last_error"], "unavailable");
    let id = compose_accepted(&app, &alice, "works again").await;
    assert_eq!(
        read_ai(&mut ws, by_request(&id)).await.end["type"],
        "ai.done"
    );
    wait_for("ok").await;
}

#[actix_web::test]
async fn a_per_day_quota_stops_the_ai_until_it_resets_and_says_so() {
    let emulator = start_emulator(ROOMY, |_| {}).await;
    let app = app_on(&emulator, ROOMY, &["--ai-concurrency=1"]).await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    emulator
        .control()
        .script([ScriptedResponse {
            status: 429,
            quota: Some(QuotaKind::Rpd),
            retry_delay: Some("3600s".into()),
            ..ScriptedResponse::default()
        }])
        .unwrap();
    let id = compose_accepted(&app, &alice, "today").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(
        answer.end["data"]["code"], "quota_exhausted",
        "{}",
        answer.end
    );
    let res = compose(&app, &alice, "again").await;
    assert_eq!(res.status(), 503);
    let retry = retry_after(&res);
    // Until Pacific midnight, and never less than the 429 named.
    assert!((3_600..=25 * 3_600).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], "ai_quota_exhausted");
    let (_, ready) = app.get_json(&alice, "/health/ready").await;
    assert_eq!(ready["checks"]["ai"]["health"], "exhausted");
    assert_eq!(
        emulator.control().stats().requests,
        1,
        "a per-day quota is not retried"
    );
    let metrics = app.metrics().await;
    for name in [
        "aisocial_ai_queue_depth",
        "aisocial_ai_in_flight",
        "aisocial_ai_upstream_errors_total{kind=\"resource_exhausted\"}",
        "aisocial_ai_refused_total{reason=\"quota_exhausted\"}",
        "aisocial_ai_budget_wait_seconds",
        "aisocial_ai_upstream_seconds",
    ] {
        assert!(metrics.contains(name), "{name} is exported");
    }
}

#[actix_web::test]
async fn gemini_down_or_stalling_never_hangs_a_caller_and_the_pool_recovers() {
    // Gemini is down: nothing listens where the client calls.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let base = format!("--gemini-base-url=http://127.0.0.1:{port}");
    let key = format!("--gemini-api-key={KEY}");
    let app = spawn_app_with(&[
        key.as_str(),
        base.as_str(),
        "--ai-retry-base-ms=50",
        "--ai-max-attempts=2",
        "--gemini-stall-timeout-secs=1",
    ])
    .await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let asked = Instant::now();
    let id = compose_accepted(&app, &alice, "anyone there?").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.error", "{}", answer.end);
    assert_eq!(answer.end["data"]["code"], "unavailable", "{}", answer.end);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "an unreachable Gemini is an error within seconds, not a hang: {:?}",
        asked.elapsed()
    );

    // Gemini comes back on the same address: the next request is answered.
    let emulator = emulator::start(
        EmulatorConfig {
            api_key: Some(KEY.into()),
            limits: ROOMY,
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], port).into(),
    )
    .await
    .expect("emulator");
    let id = compose_accepted(&app, &alice, "and now?").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.done", "{}", answer.end);
    assert!(!answer.text().is_empty());

    // Gemini stalls mid-stream: each attempt is cut at the stall timeout, then a clear error.
    let asked = Instant::now();
    let id = compose_accepted(&app, &alice, "stall please [[stall]]").await;
    let answer = read_ai(&mut ws, by_request(&id)).await;
    assert_eq!(answer.end["type"], "ai.error", "{}", answer.end);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "two stalled attempts of 1 s each end in an error, not a hang: {:?}",
        asked.elapsed()
    );
    assert_eq!(
        emulator.control().stats().requests,
        3,
        "one answer, two stalled attempts"
    );
}
