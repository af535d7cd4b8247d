//! The client against the emulator over real HTTP: every call, streaming, and each error class.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

use std::time::Duration;

use aisocial_gemini::client::{Finish, GeminiStream, StreamEvent};
use aisocial_gemini::emulator::{self, EmulatorConfig, RunningEmulator, ScriptedResponse};
use aisocial_gemini::wire::{
    Content, CountTokensRequest, FinishReason, GenerateContentRequest, GenerationConfig, Role,
};
use aisocial_gemini::{ClientConfig, ErrorClass, GeminiClient, GeminiError, QuotaScope};

const KEY: &str = "client-test-key";

async fn emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> RunningEmulator {
    let mut config = EmulatorConfig {
        api_key: Some(KEY.into()),
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    emulator::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn client(emulator: &RunningEmulator, key: &str, model: &str) -> GeminiClient {
    GeminiClient::new(ClientConfig {
        stall_timeout: Duration::from_millis(500),
        ..ClientConfig::new(&emulator.base_url(), key, model)
    })
    .unwrap()
}

fn ask(text: &str) -> GenerateContentRequest {
    GenerateContentRequest::user_text("Be brief.", text)
}

/// Reads a whole stream: the deltas and the finish.
async fn drain(mut stream: GeminiStream) -> Result<(Vec<String>, Finish), GeminiError> {
    let mut deltas = Vec::new();
    while let Some(event) = stream.next_event().await? {
        match event {
            StreamEvent::Delta(text) => deltas.push(text),
            StreamEvent::Finished(finish) => {
                assert!(
                    stream.next_event().await?.is_none(),
                    "nothing after the finish"
                );
                return Ok((deltas, finish));
            }
        }
    }
    panic!("the stream ended without a finish");
}

#[actix_web::test]
async fn generate_stream_and_count_tokens_agree() {
    let emulator = emulator(|_| {}).await;
    let client = client(&emulator, KEY, "gemini-2.5-flash");
    let request = ask("tell me about lighthouses");

    let whole = client.generate(&request).await.unwrap();
    assert!(!whole.text().is_empty());
    assert_eq!(whole.finish_reason(), Some(&FinishReason::Stop));
    let usage = whole.usage_metadata.unwrap_or_default();
    assert_eq!(
        usage.total_token_count,
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    );

    let stream = client.stream(&request).await.unwrap();
    let (deltas, finish) = drain(stream).await.unwrap();
    assert!(deltas.len() > 1, "streamed in pieces");
    assert_eq!(deltas.concat(), finish.text);
    assert_eq!(
        finish.text,
        whole.text(),
        "the same prompt, the same answer"
    );
    assert_eq!(finish.usage, usage);
    assert_eq!(finish.declined, None);

    let counted = client
        .count_tokens(&CountTokensRequest {
            contents: vec![Content::text(Some(Role::User), "tell me about lighthouses")],
            ..CountTokensRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(
        counted.total_tokens, 7,
        "25 characters at about four per token"
    );
}

#[actix_web::test]
async fn max_output_tokens_and_declines_are_reported() {
    let emulator = emulator(|_| {}).await;
    let client = client(&emulator, KEY, "gemini-2.5-flash");
    let short = GenerateContentRequest {
        generation_config: Some(GenerationConfig {
            max_output_tokens: Some(5),
            ..GenerationConfig::default()
        }),
        ..ask("a long story please")
    };
    let stream = client.stream(&short).await.unwrap();
    let (_, finish) = drain(stream).await.unwrap();
    assert_eq!(finish.reason, FinishReason::MaxTokens);
    assert!(finish.usage.candidates_token_count <= 5);

    for (trigger, reason) in [("[[block]]", "SAFETY"), ("[[safety]]", "SAFETY")] {
        let stream = client
            .stream(&ask(&format!("something {trigger}")))
            .await
            .unwrap();
        let (_, finish) = drain(stream).await.unwrap();
        assert_eq!(finish.declined.as_deref(), Some(reason), "{trigger}");
    }
    let stream = client.stream(&ask("odd [[unknown-finish]]")).await.unwrap();
    let (_, finish) = drain(stream).await.unwrap();
    assert_eq!(finish.reason, FinishReason::Other("SOMETHING_NEW".into()));
    assert_eq!(finish.declined, None);
}

#[actix_web::test]
async fn mid_stream_errors_and_stalls_are_errors_not_hangs() {
    let emulator = emulator(|_| {}).await;
    let client = client(&emulator, KEY, "gemini-2.5-flash");
    let stream = client.stream(&ask("go [[midstream-error]]")).await.unwrap();
    let error = drain(stream).await.expect_err("no error");
    assert!(
        matches!(error, GeminiError::Api { code: 503, .. }),
        "{error}"
    );
    assert_eq!(error.class(), ErrorClass::Retry);

    let stream = client.stream(&ask("go [[stall]]")).await.unwrap();
    let started = std::time::Instant::now();
    let error = drain(stream).await.expect_err("no error");
    assert!(matches!(error, GeminiError::Stalled(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.class(), ErrorClass::Retry);
}

#[actix_web::test]
async fn every_error_class_is_read_from_the_real_bodies() {
    let emulator = emulator(|_| {}).await;
    let control = emulator.control();

    let wrong_key = client(&emulator, "not-the-key", "gemini-2.5-flash");
    let error = wrong_key.generate(&ask("hi")).await.err();
    assert!(
        matches!(&error, Some(GeminiError::Api { message, .. }) if message.contains("API key not valid")),
        "{error:?}"
    );
    assert_eq!(
        error.map(|e| e.class()),
        Some(ErrorClass::Misconfigured),
        "a wrong key is the operator's to fix"
    );

    let unknown_model = client(&emulator, KEY, "gemini-0-nothing");
    let error = unknown_model.stream(&ask("hi")).await.err();
    assert!(
        matches!(error, Some(GeminiError::Api { code: 404, .. })),
        "{error:?}"
    );

    let client = client(&emulator, KEY, "gemini-2.5-flash");
    let mut invalid = ask("hi");
    invalid.generation_config = Some(GenerationConfig {
        temperature: Some(7.0),
        ..GenerationConfig::default()
    });
    let error = client.generate(&invalid).await.err();
    assert_eq!(error.map(|e| e.class()), Some(ErrorClass::Fatal));

    control
        .script([
            ScriptedResponse::quota_exceeded("1.5s"),
            ScriptedResponse::status(503),
            ScriptedResponse::status(403),
            ScriptedResponse {
                status: 429,
                bare: true,
                ..ScriptedResponse::default()
            },
        ])
        .unwrap();
    let quota = client.stream(&ask("hi")).await.err();
    assert!(
        matches!(
            quota,
            Some(GeminiError::Api {
                code: 429,
                quota: Some(QuotaScope::PerMinute),
                ..
            })
        ),
        "{quota:?}"
    );
    assert_eq!(
        quota.map(|e| e.class()),
        Some(ErrorClass::Pause(Duration::from_millis(1500)))
    );
    let overloaded = client.stream(&ask("hi")).await.err();
    assert_eq!(overloaded.map(|e| e.class()), Some(ErrorClass::Retry));
    let denied = client.generate(&ask("hi")).await.err();
    assert_eq!(denied.map(|e| e.class()), Some(ErrorClass::Misconfigured));
    let bare = client.generate(&ask("hi")).await.err();
    assert_eq!(
        bare.map(|e| e.class()),
        Some(ErrorClass::Pause(
            aisocial_gemini::error::PER_MINUTE_DEFAULT_DELAY
        ))
    );
}

#[actix_web::test]
async fn an_unreachable_upstream_is_a_transport_error() {
    let emulator = emulator(|_| {}).await;
    let base = emulator.base_url();
    emulator.stop().await;
    let client = GeminiClient::new(ClientConfig::new(&base, KEY, "gemini-2.5-flash")).unwrap();
    let error = client.generate(&ask("hi")).await.err();
    assert!(
        matches!(error, Some(GeminiError::Transport(_))),
        "{error:?}"
    );
    assert!(GeminiClient::new(ClientConfig::new("ftp://x", KEY, "m")).is_err());
    assert!(GeminiClient::new(ClientConfig::new(&base, "", "m")).is_err());
}
