//! The Gemini emulator over real HTTP: shapes, framing, errors, quotas, scripts, triggers, stats.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

use std::time::{Duration, Instant};

use aisocial_gemini::emulator::{
    self, ConfigUpdate, EmulatorConfig, Endpoint, Outcome, QuotaLimits, RunningEmulator,
    ScriptedResponse,
};
use aisocial_gemini::wire::GenerateContentResponse;
use serde_json::{Value, json};

const KEY: &str = "test-key";
const FLASH: &str = "gemini-2.5-flash";

/// No quota in the way unless a test sets one.
fn roomy() -> EmulatorConfig {
    EmulatorConfig {
        api_key: Some(KEY.into()),
        limits: QuotaLimits::UNLIMITED,
        ..EmulatorConfig::default()
    }
}

async fn started(config: EmulatorConfig) -> (RunningEmulator, Api) {
    let running = emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let api = Api::new(&running.base_url());
    (running, api)
}

fn ask(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    fn url(&self, model: &str, method: &str) -> String {
        format!("{}/v1beta/models/{model}:{method}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, body)
    }

    async fn call(&self, method: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(FLASH, method))
                .header("x-goog-api-key", KEY)
                .json(body),
        )
        .await
    }

    async fn generate(&self, body: &Value) -> (u16, Value) {
        self.call("generateContent", body).await
    }

    async fn open_stream(&self, query: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!(
                "{}{query}",
                self.url(FLASH, "streamGenerateContent")
            ))
            .header("x-goog-api-key", KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The whole SSE body, and its events' JSON (a bare `{"error"...}` line included).
    async fn sse(&self, body: &Value) -> (String, Vec<Value>) {
        let response = self.open_stream("?alt=sse", body).await;
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "text/event-stream");
        let raw = response.text().await.unwrap();
        let events = raw
            .split("\r\n\r\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                let json = event.strip_prefix("data: ").unwrap_or(event);
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {event}"))
            })
            .collect();
        (raw, events)
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/emulator/{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }
}

fn text_of(reply: &Value) -> String {
    reply["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect()
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn detail_types(error: &Value) -> Vec<String> {
    error["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|detail| detail["@type"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The `RetryInfo.retryDelay` of a 429, in seconds.
fn retry_delay_seconds(error: &Value) -> f64 {
    let details = error["error"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let delay = details
        .iter()
        .find_map(|detail| detail["retryDelay"].as_str())
        .unwrap_or_else(|| panic!("no RetryInfo in {error}"));
    emulator::parse_duration(delay).unwrap().as_secs_f64()
}

fn quota_id(error: &Value) -> String {
    error["error"]["details"][1]["violations"][0]["quotaId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn generate_content_answers_in_googles_shape_deterministically() {
    let (running, api) = started(roomy()).await;
    let prompt = "Tell me something nice about otters";
    let body = json!({"systemInstruction": {"parts": [{"text": "Be kind."}]},
                      "contents": [{"role": "user", "parts": [{"text": prompt}]}],
                      "generationConfig": {"temperature": 0.7, "candidateCount": 1},
                      "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]});
    let (status, reply) = api.generate(&body).await;
    assert_eq!(status, 200, "{reply}");
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    let text = text_of(&reply);
    assert!(text.contains("otters"), "{text}");
    let usage = &reply["usageMetadata"];
    let prompt_tokens = ("Be kind.".len() + prompt.len()).div_ceil(4) as u64;
    assert_eq!(count(&usage["promptTokenCount"]), prompt_tokens);
    assert_eq!(
        count(&usage["candidatesTokenCount"]),
        text.len().div_ceil(4) as u64
    );
    assert_eq!(
        count(&usage["totalTokenCount"]),
        count(&usage["promptTokenCount"]) + count(&usage["candidatesTokenCount"])
    );
    assert_eq!(
        usage["promptTokensDetails"],
        json!([{"modality": "TEXT", "tokenCount": prompt_tokens}])
    );
    assert_eq!(reply["modelVersion"], FLASH);
    let typed: GenerateContentResponse = serde_json::from_value(reply.clone()).unwrap();
    assert_eq!(typed.text(), text);

    let (_, again) = api.generate(&body).await;
    assert_eq!(
        text_of(&again),
        text,
        "the same prompt gets the same answer"
    );
    assert_ne!(again["responseId"], reply["responseId"]);
    assert!(reply["responseId"].as_str().is_some_and(|id| id.len() > 10));
    running.stop().await;
}

#[actix_web::test]
async fn snake_case_max_output_tokens_stop_sequences_and_thoughts_are_honoured() {
    let (running, api) = started(EmulatorConfig {
        thoughts_tokens: 24,
        ..roomy()
    })
    .await;
    let (_, full) = api.generate(&ask("gardens and rain")).await;
    let full_text = text_of(&full);
    let capped = json!({"contents": [{"role": "user", "parts": [{"text": "gardens and rain"}]}],
                        "generation_config": {"max_output_tokens": 5}});
    let (status, reply) = api.generate(&capped).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert!(count(&reply["usageMetadata"]["candidatesTokenCount"]) <= 5);
    assert!(full_text.starts_with(&text_of(&reply)));
    let usage = &full["usageMetadata"];
    assert_eq!(count(&usage["thoughtsTokenCount"]), 24);
    assert_eq!(
        count(&usage["totalTokenCount"]),
        count(&usage["promptTokenCount"]) + count(&usage["candidatesTokenCount"]) + 24
    );

    let stop_word = full_text
        .split(' ')
        .nth(5)
        .unwrap_or_else(|| panic!("{full_text}"));
    let stopped = json!({"contents": [{"role": "user", "parts": [{"text": "gardens and rain"}]}],
                         "generationConfig": {"stopSequences": [stop_word],
                                              "thinkingConfig": {"thinkingBudget": 0}}});
    let (_, reply) = api.generate(&stopped).await;
    assert_eq!(reply["candidates"][0]["finishReason"], "STOP");
    let expected = &full_text[..full_text.find(stop_word).unwrap_or(0)];
    assert_eq!(text_of(&reply), expected);
    assert!(reply["usageMetadata"].get("thoughtsTokenCount").is_none());
    running.stop().await;
}

#[actix_web::test]
async fn sse_streams_crlf_events_with_cumulative_usage_and_no_done() {
    let (running, api) = started(roomy()).await;
    let body = ask("Tell me about kayaks");
    let (_, whole) = api.generate(&body).await;
    let (raw, events) = api.sse(&body).await;
    assert!(raw.starts_with("data: {"));
    assert!(raw.ends_with("}\r\n\r\n"));
    assert!(
        !raw.replace("\r\n", "").contains('\n'),
        "every line ends with CRLF"
    );
    assert!(!raw.contains("[DONE]"));
    assert!(events.len() >= 3, "{raw}");
    let mut previous = 0;
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["responseId"], events[0]["responseId"]);
        assert_eq!(event["modelVersion"], FLASH);
        let usage = &event["usageMetadata"];
        assert_eq!(
            usage["promptTokenCount"],
            whole["usageMetadata"]["promptTokenCount"]
        );
        let so_far = count(&usage["candidatesTokenCount"]);
        assert!(so_far >= previous, "usage is cumulative");
        previous = so_far;
        let last = index + 1 == events.len();
        assert_eq!(event["candidates"][0].get("finishReason").is_some(), last);
    }
    let streamed: String = events.iter().map(text_of).collect();
    assert_eq!(streamed, text_of(&whole));
    let last = events.last().expect("no events");
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"], whole["usageMetadata"]);
    running.stop().await;
}

#[actix_web::test]
async fn without_alt_sse_the_stream_is_one_json_array() {
    let (running, api) = started(roomy()).await;
    let body = ask("Tell me about lighthouses");
    let response = api.open_stream("", &body).await;
    assert_eq!(response.status().as_u16(), 200);
    let raw = response.text().await.unwrap();
    assert!(raw.starts_with("[{") && raw.ends_with("}]"), "{raw}");
    assert!(raw.contains("},\r\n{"));
    let chunks: Vec<Value> = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert!(chunks.len() >= 3);
    let (_, whole) = api.generate(&body).await;
    assert_eq!(
        chunks.iter().map(text_of).collect::<String>(),
        text_of(&whole)
    );
    running.stop().await;
}

#[actix_web::test]
async fn count_tokens_takes_either_form_and_costs_no_quota() {
    let (running, api) = started(EmulatorConfig {
        limits: QuotaLimits {
            rpm: 1,
            input_tpm: 10,
            rpd: 1,
        },
        ..roomy()
    })
    .await;
    let contents = json!({"contents": [{"parts": [{"text": "abcdefghij"}]}]});
    for _ in 0..3 {
        let (status, reply) = api.call("countTokens", &contents).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply,
            json!({"totalTokens": 3, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]})
        );
    }
    let nested = json!({"generateContentRequest": {"model": "models/gemini-2.5-flash",
        "systemInstruction": {"parts": [{"text": "abcd"}]},
        "contents": [{"role": "user", "parts": [{"text": "abcdefghij"}]}]}});
    let (_, reply) = api.call("countTokens", &nested).await;
    assert_eq!(reply["totalTokens"], 4);
    let both = json!({"contents": contents["contents"], "generateContentRequest": nested["generateContentRequest"]});
    let (status, reply) = api.call("countTokens", &both).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["status"], "INVALID_ARGUMENT");

    let (status, reply) = api.generate(&ask("short")).await;
    assert_eq!(status, 200, "countTokens consumed quota: {reply}");
    let stats = running.stats();
    assert_eq!(stats.endpoint_count(Endpoint::CountTokens), 5);
    assert_eq!(
        stats.prompt_tokens, 2,
        "only the generation's prompt is counted as served"
    );
    running.stop().await;
}

#[actix_web::test]
async fn keys_are_checked_like_google() {
    let (running, api) = started(roomy()).await;
    let url = api.url(FLASH, "generateContent");
    let (status, reply) = api.send(api.http.post(&url).json(&ask("hi"))).await;
    assert_eq!(status, 403);
    assert_eq!(reply["error"]["code"], 403);
    assert_eq!(reply["error"]["status"], "PERMISSION_DENIED");

    let (status, reply) = api
        .send(
            api.http
                .post(&url)
                .header("x-goog-api-key", "wrong")
                .json(&ask("hi")),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(reply["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        reply["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(
        reply["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    assert_eq!(reply["error"]["details"][0]["reason"], "API_KEY_INVALID");

    let (status, _) = api
        .send(api.http.post(format!("{url}?key={KEY}")).json(&ask("hi")))
        .await;
    assert_eq!(status, 200);
    running.stop().await;

    let (running, api) = started(EmulatorConfig {
        api_key: None,
        ..roomy()
    })
    .await;
    let url = api.url(FLASH, "generateContent");
    let (status, _) = api
        .send(
            api.http
                .post(&url)
                .header("x-goog-api-key", "anything")
                .json(&ask("hi")),
        )
        .await;
    assert_eq!(status, 200, "without a configured key any key is accepted");
    let (status, _) = api.send(api.http.post(&url).json(&ask("hi"))).await;
    assert_eq!(status, 403, "but a key is still required");
    running.stop().await;
}

#[actix_web::test]
async fn unknown_models_and_methods_are_404() {
    let (running, api) = started(roomy()).await;
    for url in [
        api.url("gemini-9-ultra", "generateContent"),
        api.url(FLASH, "embedEverything"),
    ] {
        let (status, reply) = api
            .send(
                api.http
                    .post(&url)
                    .header("x-goog-api-key", KEY)
                    .json(&ask("hi")),
            )
            .await;
        assert_eq!(status, 404, "{url}");
        assert_eq!(reply["error"]["status"], "NOT_FOUND");
    }
    let (status, reply) = api
        .send(
            api.http
                .post(api.url("gemini-2.5-flash-lite", "countTokens"))
                .header("x-goog-api-key", KEY)
                .json(&ask("hi")),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    running.stop().await;
}

#[actix_web::test]
async fn bad_requests_are_400_with_field_violations() {
    let (running, api) = started(roomy()).await;
    let (status, reply) = api
        .generate(
            &json!({"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"foo": 1}}),
        )
        .await;
    assert_eq!(status, 400);
    let error = &reply["error"];
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    let expected = "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.";
    assert_eq!(error["message"], expected);
    assert_eq!(
        error["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        error["details"][0]["fieldViolations"],
        json!([{"field": "generation_config", "description": expected}])
    );

    let refused = [
        json!({"contents": [{"parts": [{"text": "x"}]}], "sillyName": true}),
        json!({"system_instruction": {"parts": [{"text": "x"}]}}),
        json!({"contents": []}),
        json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
        json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": 2.5}}),
        json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "warm"}}),
        json!({"contents": [{"parts": [{"text": "x"}]}],
               "generationConfig": {"stopSequences": ["a", "b", "c", "d", "e", "f"]}}),
        json!({"contents": [{"parts": [{"text": "x"}]}],
               "safetySettings": [{"category": "HARM_CATEGORY_NICENESS", "threshold": "OFF"}]}),
    ];
    for body in &refused {
        let (status, reply) = api.generate(body).await;
        assert_eq!(status, 400, "{body} → {reply}");
        assert_eq!(reply["error"]["status"], "INVALID_ARGUMENT");
        let violations = &reply["error"]["details"][0]["fieldViolations"];
        assert!(
            violations.as_array().is_some_and(|v| !v.is_empty()),
            "{reply}"
        );
    }
    let (status, reply) = api
        .send(
            api.http
                .post(api.url(FLASH, "generateContent"))
                .header("x-goog-api-key", KEY)
                .body("{\"contents\": ["),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid JSON payload received."))
    );
    assert_eq!(
        running.stats().outcome_count(Outcome::InvalidArgument),
        refused.len() as u64 + 2
    );
    running.stop().await;
}

#[actix_web::test]
async fn requests_per_minute_are_enforced_with_googles_429() {
    let (running, api) = started(EmulatorConfig {
        limits: QuotaLimits {
            rpm: 2,
            input_tpm: 0,
            rpd: 3,
        },
        ..roomy()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(api.generate(&ask("hello")).await.0, 200);
    }
    for _ in 0..3 {
        let (status, reply) = api.generate(&ask("hello")).await;
        assert_eq!(status, 429);
        let error = &reply["error"];
        assert_eq!(error["code"], 429);
        assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            detail_types(&reply),
            [
                "type.googleapis.com/google.rpc.Help",
                "type.googleapis.com/google.rpc.QuotaFailure",
                "type.googleapis.com/google.rpc.RetryInfo"
            ]
        );
        let violation = &error["details"][1]["violations"][0];
        assert_eq!(
            violation["quotaId"],
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        );
        assert_eq!(
            violation["quotaMetric"],
            "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        );
        assert_eq!(
            violation["quotaDimensions"],
            json!({"location": "global", "model": FLASH})
        );
        assert_eq!(violation["quotaValue"], "2");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("limit: 2, model: gemini-2.5-flash"),
            "{message}"
        );
        assert!(message.contains("Please retry in "), "{message}");
        let delay = retry_delay_seconds(&reply);
        assert!(delay > 30.0 && delay <= 60.0, "{delay}");
    }
    // The three refusals did not count toward the day: one more fits once the minute allows.
    running
        .update_config(&ConfigUpdate {
            rpm: Some(100),
            ..ConfigUpdate::default()
        })
        .unwrap();
    assert_eq!(api.generate(&ask("hello")).await.0, 200);
    let (status, reply) = api.generate(&ask("hello")).await;
    assert_eq!(status, 429);
    assert_eq!(
        quota_id(&reply),
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    );
    let stats = running.stats();
    assert_eq!(stats.outcome_count(Outcome::QuotaRpm), 3);
    assert_eq!(stats.outcome_count(Outcome::QuotaRpd), 1);
    assert_eq!(stats.quota_usage[FLASH].requests_today, 3);
    running.stop().await;
}

#[actix_web::test]
async fn input_tokens_per_minute_count_prompts_only_and_refusals_cost_nothing() {
    let (running, api) = started(EmulatorConfig {
        limits: QuotaLimits {
            rpm: 0,
            input_tpm: 100,
            rpd: 0,
        },
        default_output_tokens: 200,
        ..roomy()
    })
    .await;
    let tokens = |n: usize| ask(&"word ".repeat(n * 4 / 5));
    let (status, reply) = api.generate(&tokens(80)).await;
    assert_eq!(status, 200);
    assert_eq!(reply["usageMetadata"]["promptTokenCount"], 80);
    assert!(
        count(&reply["usageMetadata"]["candidatesTokenCount"]) >= 200,
        "long outputs do not count"
    );
    let (status, reply) = api.generate(&tokens(40)).await;
    assert_eq!(status, 429, "{reply}");
    assert_eq!(
        quota_id(&reply),
        "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    );
    assert_eq!(
        reply["error"]["details"][1]["violations"][0]["quotaMetric"],
        "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"
    );
    assert!(retry_delay_seconds(&reply) <= 60.0);
    let (status, reply) = api.generate(&tokens(20)).await;
    assert_eq!(
        status, 200,
        "the refused 40 tokens were not counted: {reply}"
    );
    assert_eq!(
        running.stats().quota_usage[FLASH].input_tokens_last_minute,
        100
    );
    running.stop().await;
}

#[actix_web::test]
async fn requests_per_day_are_refused_until_midnight_pacific() {
    let (running, api) = started(EmulatorConfig {
        limits: QuotaLimits {
            rpm: 0,
            input_tpm: 0,
            rpd: 2,
        },
        ..roomy()
    })
    .await;
    assert_eq!(api.generate(&ask("one")).await.0, 200);
    assert_eq!(api.generate(&ask("two")).await.0, 200);
    let (status, reply) = api.generate(&ask("three")).await;
    assert_eq!(status, 429);
    assert_eq!(
        quota_id(&reply),
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    );
    let delay = retry_delay_seconds(&reply);
    assert!(delay > 0.0 && delay <= 86_400.0, "{delay}");
    // Another model has its own quota.
    let (status, _) = api
        .send(
            api.http
                .post(api.url("gemini-2.5-flash-lite", "generateContent"))
                .header("x-goog-api-key", KEY)
                .json(&ask("three")),
        )
        .await;
    assert_eq!(status, 200);
    running.stop().await;
}

#[actix_web::test]
async fn bare_429s_have_no_details_and_per_model_limits_apply() {
    let mut config = roomy();
    config.bare_429s = true;
    config.model_limits.insert(
        FLASH.into(),
        QuotaLimits {
            rpm: 1,
            input_tpm: 0,
            rpd: 0,
        },
    );
    let (running, api) = started(config).await;
    assert_eq!(api.generate(&ask("one")).await.0, 200);
    let (status, reply) = api.generate(&ask("two")).await;
    assert_eq!(status, 429);
    assert_eq!(reply["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(reply["error"].get("details").is_none(), "{reply}");
    running.stop().await;
}

#[actix_web::test]
async fn scripted_responses_play_in_order_over_http_and_from_rust() {
    let (running, api) = started(roomy()).await;
    let (status, reply) = api
        .control(
            reqwest::Method::POST,
            "script",
            Some(
                json!({"next": [{"status": 503}, {"status": 429, "retry_delay": "1.5s"},
                                 {"status": 400}, {"status": 403}, {"status": 404},
                                 {"status": 500}, {"status": 504}]}),
            ),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["queued"], 7);
    let expected = [
        (503, "UNAVAILABLE"),
        (429, "RESOURCE_EXHAUSTED"),
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (500, "INTERNAL"),
        (504, "DEADLINE_EXCEEDED"),
    ];
    for (code, name) in expected {
        let (status, reply) = api.generate(&ask("hi")).await;
        assert_eq!(status, code, "{reply}");
        assert_eq!(reply["error"]["status"], name);
        if code == 503 {
            assert_eq!(reply["error"]["message"], emulator::OVERLOADED);
        }
        if code == 429 {
            assert_eq!(reply["error"]["details"][2]["retryDelay"], "1.5s");
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("Please retry in 1.5s."))
            );
        }
    }
    assert_eq!(
        api.generate(&ask("hi")).await.0,
        200,
        "the script is used up"
    );

    running
        .script([
            ScriptedResponse::status(503),
            ScriptedResponse::status(503),
            ScriptedResponse::status(503),
            ScriptedResponse::ok(),
            ScriptedResponse::quota_exceeded("2s"),
        ])
        .unwrap();
    let (status, _) = api.call("countTokens", &ask("hi")).await;
    assert_eq!(status, 200, "countTokens does not take scripted responses");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.generate(&ask("hi")).await.0);
    }
    assert_eq!(statuses, [503, 503, 503, 200, 429, 200]);
    assert!(running.script([ScriptedResponse::status(418)]).is_err());
    let (status, _) = api
        .control(
            reqwest::Method::POST,
            "script",
            Some(json!({"next": [{"status": 777}]})),
        )
        .await;
    assert_eq!(status, 400);

    let stats = running.stats();
    assert_eq!(stats.outcome_count(Outcome::Unavailable), 4);
    assert_eq!(stats.outcome_count(Outcome::ResourceExhausted), 2);
    assert!(stats.recent.iter().filter(|r| r.injected).count() >= 11);
    running.stop().await;
}

#[actix_web::test]
async fn a_scripted_delay_holds_the_answer() {
    let (running, api) = started(roomy()).await;
    running
        .script([ScriptedResponse::status(503).after(Duration::from_millis(300))])
        .unwrap();
    let started_at = Instant::now();
    assert_eq!(api.generate(&ask("hi")).await.0, 503);
    assert!(started_at.elapsed() >= Duration::from_millis(280));
    running.stop().await;
}

#[actix_web::test]
async fn failure_shares_change_at_runtime() {
    let (running, api) = started(EmulatorConfig {
        fail_503_share: 1.0,
        limits: QuotaLimits {
            rpm: 2,
            input_tpm: 0,
            rpd: 0,
        },
        ..roomy()
    })
    .await;
    for _ in 0..4 {
        let (status, reply) = api.generate(&ask("hi")).await;
        assert_eq!(status, 503);
        assert_eq!(
            reply["error"]["message"],
            "The model is overloaded. Please try again later."
        );
    }
    let (status, config) = api
        .control(
            reqwest::Method::POST,
            "config",
            Some(json!({"fail_503_share": 0.0, "stall_share": 1.0})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["fail_503_share"], 0.0);
    // The 503s consumed no quota: two streams fit in the minute, and both stall.
    for _ in 0..2 {
        let mut response = api.open_stream("?alt=sse", &ask("hi")).await;
        assert_eq!(response.status().as_u16(), 200);
        let first = response.chunk().await.unwrap();
        assert!(first.is_some_and(|bytes| bytes.starts_with(b"data: ")));
        let next = tokio::time::timeout(Duration::from_millis(400), response.chunk()).await;
        assert!(next.is_err(), "the stream should stall");
    }
    let (status, _) = api
        .control(
            reqwest::Method::POST,
            "config",
            Some(json!({"stall_share": 2.0})),
        )
        .await;
    assert_eq!(status, 400, "a share above 1 is refused");
    assert_eq!(running.stats().outcome_count(Outcome::Stalled), 2);
    running.stop().await;
}

#[actix_web::test]
async fn block_and_safety_triggers() {
    let (running, api) = started(roomy()).await;
    let (status, reply) = api.generate(&ask("please [[block]] this")).await;
    assert_eq!(status, 200);
    assert!(reply.get("candidates").is_none(), "{reply}");
    assert_eq!(reply["promptFeedback"]["blockReason"], "SAFETY");
    let typed: GenerateContentResponse = serde_json::from_value(reply).unwrap();
    assert_eq!(typed.block_reason(), Some("SAFETY"));
    let (_, events) = api.sse(&ask("[[block]]")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["promptFeedback"]["blockReason"], "SAFETY");

    let (_, normal) = api.sse(&ask("otters and rivers")).await;
    let (_, events) = api.sse(&ask("otters and rivers [[safety]]")).await;
    assert!(events.len() < normal.len());
    let last = events.last().expect("no events");
    assert_eq!(last["candidates"][0]["finishReason"], "SAFETY");
    let ratings = last["candidates"][0]["safetyRatings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        ratings
            .iter()
            .any(|r| r["probability"] == "HIGH" && r["blocked"] == true)
    );
    let (_, reply) = api.generate(&ask("[[safety]]")).await;
    assert_eq!(reply["candidates"][0]["finishReason"], "SAFETY");

    let (_, reply) = api.generate(&ask("[[unknown-finish]]")).await;
    assert_eq!(reply["candidates"][0]["finishReason"], "SOMETHING_NEW");
    let stats = running.stats();
    assert_eq!(stats.outcome_count(Outcome::Blocked), 2);
    assert_eq!(stats.outcome_count(Outcome::Safety), 2);
    running.stop().await;
}

#[actix_web::test]
async fn midstream_errors_arrive_without_data_prefix() {
    let (running, api) = started(roomy()).await;
    let (raw, events) = api.sse(&ask("tell me a story [[midstream-error]]")).await;
    assert_eq!(events.len(), 3, "{raw}");
    assert!(events[..2].iter().all(|e| e.get("candidates").is_some()));
    let tail = raw.rsplit("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(tail.starts_with("{\"error\":"), "{raw}");
    assert_eq!(events[2]["error"]["code"], 503);
    assert_eq!(events[2]["error"]["status"], "UNAVAILABLE");

    let response = api
        .open_stream("", &ask("tell me a story [[midstream-error]]"))
        .await;
    let raw = response.text().await.unwrap();
    let chunks: Vec<Value> = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(
        chunks.last().map(|c| c["error"]["code"].clone()),
        Some(json!(503))
    );

    let (status, _) = api.generate(&ask("[[midstream-error]]")).await;
    assert_eq!(status, 503, "a plain answer fails as a whole");
    assert_eq!(running.stats().outcome_count(Outcome::MidstreamError), 2);
    running.stop().await;
}

#[actix_web::test]
async fn the_stall_trigger_sends_one_chunk_then_nothing() {
    let (running, api) = started(roomy()).await;
    let mut response = api.open_stream("?alt=sse", &ask("hello [[stall]]")).await;
    let first = response.chunk().await.unwrap();
    let first = first.expect("no first chunk");
    let event: Value = serde_json::from_slice(
        first
            .strip_prefix(b"data: ")
            .and_then(|rest| rest.strip_suffix(b"\r\n\r\n"))
            .expect("not an event"),
    )
    .unwrap();
    assert!(event["candidates"][0].get("finishReason").is_none());
    let next = tokio::time::timeout(Duration::from_millis(500), response.chunk()).await;
    assert!(next.is_err(), "nothing after the first chunk");
    assert_eq!(running.stats().open_streams, 1);
    drop(response);
    let gave_up_at = Instant::now() + Duration::from_secs(2);
    while running.stats().open_streams > 0 && Instant::now() < gave_up_at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        running.stats().open_streams,
        0,
        "the stream ends when the client goes away"
    );

    let plain = api
        .http
        .post(api.url(FLASH, "generateContent"))
        .header("x-goog-api-key", KEY)
        .timeout(Duration::from_millis(400))
        .json(&ask("hello [[stall]]"))
        .send()
        .await;
    assert!(
        plain.is_err_and(|e| e.is_timeout()),
        "a plain answer never comes"
    );
    running.stop().await;
}

#[actix_web::test]
async fn pacing_delays_the_first_chunk_and_spreads_the_rest() {
    let (running, api) = started(EmulatorConfig {
        first_chunk_latency: Duration::from_millis(300),
        tokens_per_second: 200.0,
        ..roomy()
    })
    .await;
    let started_at = Instant::now();
    let mut response = api.open_stream("?alt=sse", &ask("hello")).await;
    let first = response.chunk().await.unwrap();
    assert!(first.is_some());
    assert!(started_at.elapsed() >= Duration::from_millis(300));
    while response.chunk().await.unwrap().is_some() {}
    // 40-odd tokens at 200 a second: at least 0.2 s after the latency.
    assert!(started_at.elapsed() >= Duration::from_millis(500));
    running.stop().await;
}

#[actix_web::test]
async fn stats_count_everything_and_log_arrivals() {
    let (running, api) = started(roomy()).await;
    assert_eq!(api.generate(&ask("one")).await.0, 200);
    let (_, events) = api.sse(&ask("two")).await;
    assert!(!events.is_empty());
    assert_eq!(api.call("countTokens", &ask("three")).await.0, 200);
    let (status, _) = api
        .send(
            api.http
                .post(api.url(FLASH, "generateContent"))
                .json(&ask("x")),
        )
        .await;
    assert_eq!(status, 403);

    // Milliseconds are truncated: the last requests may share the millisecond the pause starts in.
    let pause_from = running.stats().uptime_ms + 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pause_to = running.stats().uptime_ms;
    assert_eq!(api.generate(&ask("four")).await.0, 200);

    let (status, over_http) = api.control(reqwest::Method::GET, "stats", None).await;
    assert_eq!(status, 200);
    let stats = running.stats();
    assert_eq!(over_http["requests"], 5);
    assert_eq!(over_http["by_endpoint"]["generateContent"], 3);
    assert_eq!(over_http["by_endpoint"]["streamGenerateContent"], 1);
    assert_eq!(over_http["by_endpoint"]["countTokens"], 1);
    assert_eq!(over_http["by_outcome"]["ok"], 4);
    assert_eq!(over_http["by_outcome"]["permission_denied"], 1);
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.prompt_tokens, 3, "one, two, four: a token each");
    assert!(stats.output_tokens >= 3 * 40);
    assert_eq!(stats.recent.len(), 5);
    assert_eq!(stats.arrivals_between(pause_from, pause_to).count(), 0);
    let last = stats.recent.last().expect("empty log");
    assert!(last.at_ms >= pause_to);
    assert_eq!(
        (last.endpoint, last.status, last.outcome),
        (Endpoint::GenerateContent, 200, Outcome::Ok)
    );
    assert_eq!(last.model, FLASH);
    assert_eq!(over_http["recent"][4]["endpoint"], "generateContent");
    assert_eq!(over_http["recent"][4]["at_ms"], last.at_ms);

    let (status, _) = api.control(reqwest::Method::POST, "reset", None).await;
    assert_eq!(status, 200);
    let stats = running.stats();
    assert_eq!(
        (stats.requests, stats.recent.len(), stats.output_tokens),
        (0, 0, 0)
    );
    running.stop().await;
}

#[actix_web::test]
async fn config_and_script_are_readable_and_reset_forgets_quota_use() {
    let (running, api) = started(EmulatorConfig {
        limits: QuotaLimits {
            rpm: 1,
            input_tpm: 0,
            rpd: 0,
        },
        ..roomy()
    })
    .await;
    assert_eq!(api.generate(&ask("one")).await.0, 200);
    assert_eq!(api.generate(&ask("two")).await.0, 429);
    api.control(reqwest::Method::POST, "reset", None).await;
    assert_eq!(
        api.generate(&ask("three")).await.0,
        200,
        "reset forgets the minute"
    );

    let (_, config) = api.control(reqwest::Method::GET, "config", None).await;
    assert_eq!(config["limits"]["rpm"], 1);
    assert_eq!(
        config["models"],
        json!(["gemini-2.5-flash", "gemini-2.5-flash-lite"])
    );
    let (status, _) = api
        .control(
            reqwest::Method::POST,
            "config",
            Some(json!({"no_such_setting": 1})),
        )
        .await;
    assert_eq!(status, 400);

    running.script([ScriptedResponse::status(500)]).unwrap();
    let (_, script) = api.control(reqwest::Method::GET, "script", None).await;
    assert_eq!(script["next"][0]["status"], 500);
    let (_, cleared) = api.control(reqwest::Method::DELETE, "script", None).await;
    assert_eq!(cleared["queued"], 0);
    assert!(running.pending_script().is_empty());

    running
        .edit_config(|config| config.models = vec!["gemini-3-flash".into()])
        .unwrap();
    assert_eq!(api.generate(&ask("four")).await.0, 404);
    running.stop().await;
}
