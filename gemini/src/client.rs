//! The Gemini REST client: `generateContent`, `streamGenerateContent?alt=sse`, `countTokens`.
//!
//! Timeouts on connecting, on the first byte of a reply, and between two chunks of a stream (a
//! stalled stream is an error, not a hang). The key travels in `x-goog-api-key`, never in the
//! URL, so it cannot reach a log.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::error::GeminiError;
use crate::sse::SseDecoder;
use crate::wire::{
    CountTokensRequest, CountTokensResponse, ErrorEnvelope, FinishReason, GenerateContentRequest,
    GenerateContentResponse, UsageMetadata,
};

/// Google's endpoint.
pub const GOOGLE_BASE_URL: &str = "https://generativelanguage.googleapis.com";

#[derive(Clone)]
pub struct ClientConfig {
    /// Without a trailing slash, e.g. `https://generativelanguage.googleapis.com`.
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub connect_timeout: Duration,
    /// Until the reply's headers (and, without streaming, its whole body).
    pub request_timeout: Duration,
    /// The longest silence between two chunks of a stream.
    pub stall_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"***")
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

/// Error bodies are read up to this much.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl ClientConfig {
    pub fn new(base_url: &str, api_key: &str, model: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            model: model.to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for GeminiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeminiClient")
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

impl GeminiClient {
    pub fn new(config: ClientConfig) -> Result<Self, GeminiError> {
        if config.api_key.is_empty() {
            return Err(GeminiError::Config("the API key is empty".into()));
        }
        if !(config.base_url.starts_with("https://") || config.base_url.starts_with("http://")) {
            return Err(GeminiError::Config(format!(
                "the base URL {:?} is not http(s)",
                config.base_url
            )));
        }
        // One crypto backend for rustls in the whole process; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| GeminiError::Config(e.to_string()))?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    fn url(&self, method: &str) -> String {
        format!(
            "{}/v1beta/models/{}:{method}",
            self.config.base_url, self.config.model
        )
    }

    async fn post(
        &self,
        url: String,
        body: &impl serde::Serialize,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, GeminiError> {
        let mut request = self
            .http
            .post(url)
            .header("x-goog-api-key", &self.config.api_key)
            .json(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let send = request.send();
        let response = tokio::time::timeout(self.config.request_timeout, send)
            .await
            .map_err(|_| GeminiError::Timeout(self.config.request_timeout))?
            .map_err(transport)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from_response(response, self.config.request_timeout).await)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, GeminiError> {
        let timeout = self.config.request_timeout;
        let response = self.post(self.url(method), body, Some(timeout)).await?;
        let bytes = response.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| GeminiError::Malformed(e.to_string()))
    }

    /// One whole answer.
    pub async fn generate(
        &self,
        request: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse, GeminiError> {
        self.call("generateContent", request).await
    }

    pub async fn count_tokens(
        &self,
        request: &CountTokensRequest,
    ) -> Result<CountTokensResponse, GeminiError> {
        self.call("countTokens", request).await
    }

    /// Starts a streamed answer; errors before the first byte come back here, later ones from
    /// [`GeminiStream::next_event`].
    pub async fn stream(
        &self,
        request: &GenerateContentRequest,
    ) -> Result<GeminiStream, GeminiError> {
        let url = format!("{}?alt=sse", self.url("streamGenerateContent"));
        let response = self.post(url, request, None).await?;
        Ok(GeminiStream {
            body: Box::pin(response.bytes_stream()),
            decoder: SseDecoder::default(),
            pending: VecDeque::new(),
            stall_timeout: self.config.stall_timeout,
            usage: UsageMetadata::default(),
            text: String::new(),
            last: None,
            finished: false,
        })
    }
}

fn transport(error: reqwest::Error) -> GeminiError {
    if error.is_timeout() {
        GeminiError::Timeout(Duration::ZERO)
    } else {
        // The error's source chain names the cause (refused, reset, DNS) without the key.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        GeminiError::Transport(message)
    }
}

async fn error_from_response(mut response: reqwest::Response, timeout: Duration) -> GeminiError {
    let code = response.status().as_u16();
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    match serde_json::from_slice::<ErrorEnvelope>(&body) {
        Ok(envelope) => GeminiError::from_status(code, envelope.error),
        Err(_) => GeminiError::Api {
            code,
            status: String::new(),
            message: String::from_utf8_lossy(&body).chars().take(300).collect(),
            retry_delay: None,
            quota: (code == 429).then_some(crate::error::QuotaScope::Unknown),
        },
    }
}

/// What a stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The next piece of text.
    Delta(String),
    /// The last chunk: why it stopped, the final counts, and the whole text.
    Finished(Finish),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub reason: FinishReason,
    pub usage: UsageMetadata,
    pub text: String,
    /// Set when the prompt was blocked or the answer stopped for safety: the AI declined.
    pub declined: Option<String>,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A streamed answer being read.
pub struct GeminiStream {
    body: ByteStream,
    decoder: SseDecoder,
    pending: VecDeque<String>,
    stall_timeout: Duration,
    usage: UsageMetadata,
    text: String,
    /// The finish read with the last chunk's text, returned after that text.
    last: Option<Finish>,
    finished: bool,
}

impl GeminiStream {
    /// The counts as last reported (cumulative), for an answer cut short by the caller.
    pub fn usage(&self) -> UsageMetadata {
        self.usage
    }

    /// The next piece of text, then `Finished`, then `None`.
    pub async fn next_event(&mut self) -> Result<Option<StreamEvent>, GeminiError> {
        loop {
            if let Some(finish) = self.last.take() {
                self.finished = true;
                return Ok(Some(StreamEvent::Finished(finish)));
            }
            if self.finished {
                return Ok(None);
            }
            if let Some(payload) = self.pending.pop_front() {
                if let Some(event) = self.read_payload(&payload)? {
                    return Ok(Some(event));
                }
                continue;
            }
            match tokio::time::timeout(self.stall_timeout, self.body.next()).await {
                Err(_) => return Err(GeminiError::Stalled(self.stall_timeout)),
                Ok(Some(Ok(bytes))) => {
                    let payloads = self
                        .decoder
                        .push(&bytes)
                        .map_err(|e| GeminiError::Malformed(e.to_string()))?;
                    self.pending.extend(payloads);
                }
                Ok(Some(Err(error))) => return Err(transport(error)),
                Ok(None) => {
                    let rest = self.decoder.finish();
                    if rest.is_empty() {
                        return Err(GeminiError::Truncated);
                    }
                    self.pending.extend(rest);
                }
            }
        }
    }

    fn read_payload(&mut self, payload: &str) -> Result<Option<StreamEvent>, GeminiError> {
        let value: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| GeminiError::Malformed(e.to_string()))?;
        if value.get("error").is_some() {
            let envelope: ErrorEnvelope =
                serde_json::from_value(value).map_err(|e| GeminiError::Malformed(e.to_string()))?;
            return Err(GeminiError::from_status(
                envelope.error.code,
                envelope.error,
            ));
        }
        let chunk: GenerateContentResponse =
            serde_json::from_value(value).map_err(|e| GeminiError::Malformed(e.to_string()))?;
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage;
        }
        if let Some(reason) = chunk.block_reason() {
            self.finished = true;
            return Ok(Some(StreamEvent::Finished(Finish {
                reason: FinishReason::Other("PROMPT_BLOCKED".into()),
                usage: self.usage,
                text: String::new(),
                declined: Some(reason.to_owned()),
            })));
        }
        let piece = chunk.text();
        self.text.push_str(&piece);
        if let Some(reason) = chunk.finish_reason().cloned() {
            let declined = reason.is_declined().then(|| reason.as_str().to_owned());
            let finish = Finish {
                reason,
                usage: self.usage,
                text: std::mem::take(&mut self.text),
                declined,
            };
            if piece.is_empty() {
                self.finished = true;
                return Ok(Some(StreamEvent::Finished(finish)));
            }
            // The last chunk's text is a delta of its own; `Finished` comes on the next call.
            self.last = Some(finish);
        }
        Ok((!piece.is_empty()).then_some(StreamEvent::Delta(piece)))
    }
}
