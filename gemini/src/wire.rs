//! The JSON shapes of the Gemini REST API (v1beta), as the client sends and reads them.
//!
//! Requests are written in lowerCamelCase. Responses are read leniently: unknown fields are
//! ignored, and enum values Google adds later parse into an `Other` variant instead of failing.

use serde::{Deserialize, Serialize};

/// `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "system_instruction"
    )]
    pub system_instruction: Option<Content>,
    pub contents: Vec<Content>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "generation_config"
    )]
    pub generation_config: Option<GenerationConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        alias = "safety_settings"
    )]
    pub safety_settings: Vec<SafetySetting>,
}

impl GenerateContentRequest {
    /// One user turn of plain text under a system instruction.
    pub fn user_text(system: &str, text: &str) -> Self {
        Self {
            system_instruction: Some(Content::text(None, system)),
            contents: vec![Content::text(Some(Role::User), text)],
            ..Self::default()
        }
    }

    /// All the text this request sends (system instruction and contents).
    pub fn prompt_chars(&self) -> usize {
        self.system_instruction
            .iter()
            .chain(&self.contents)
            .flat_map(|c| &c.parts)
            .filter_map(|p| p.text.as_deref())
            .map(|t| t.chars().count())
            .sum()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Model,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl Content {
    pub fn text(role: Option<Role>, text: &str) -> Self {
        Self {
            role,
            parts: vec![Part {
                text: Some(text.to_owned()),
                ..Part::default()
            }],
        }
    }

    /// The concatenated text of the parts.
    pub fn joined_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect()
    }
}

/// One part of a content. Only text is sent by this client; other kinds are kept as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "inline_data"
    )]
    pub inline_data: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_call"
    )]
    pub function_call: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_p")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_k")]
    pub top_k: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "candidate_count"
    )]
    pub candidate_count: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_output_tokens"
    )]
    pub max_output_tokens: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        alias = "stop_sequences"
    )]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// On 2.5 models thinking is on by default and its tokens count against
    /// `maxOutputTokens`; a budget of 0 turns it off.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_config"
    )]
    pub thinking_config: Option<ThinkingConfig>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_budget"
    )]
    pub thinking_budget: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SafetySetting {
    pub category: String,
    pub threshold: String,
}

/// The reply of `generateContent`, and each chunk of a stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

impl GenerateContentResponse {
    /// The text of the first candidate (thought parts excluded).
    pub fn text(&self) -> String {
        self.candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .map(|c| {
                c.parts
                    .iter()
                    .filter(|p| p.thought != Some(true))
                    .filter_map(|p| p.text.as_deref())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.candidates
            .first()
            .and_then(|c| c.finish_reason.as_ref())
    }

    /// Why the prompt was blocked, when it was (HTTP 200 with no candidates).
    pub fn block_reason(&self) -> Option<&str> {
        self.prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_ratings: Vec<SafetyRating>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SafetyRating {
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub probability: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_ratings: Vec<SafetyRating>,
}

/// Why a candidate stopped. New values appear over time; they become `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    MaxTokens,
    Safety,
    Recitation,
    Blocklist,
    ProhibitedContent,
    Spii,
    Other(String),
}

impl FinishReason {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "STOP",
            Self::MaxTokens => "MAX_TOKENS",
            Self::Safety => "SAFETY",
            Self::Recitation => "RECITATION",
            Self::Blocklist => "BLOCKLIST",
            Self::ProhibitedContent => "PROHIBITED_CONTENT",
            Self::Spii => "SPII",
            Self::Other(other) => other,
        }
    }

    /// The model stopped because its output was judged unsafe or not allowed.
    pub fn is_declined(&self) -> bool {
        matches!(
            self,
            Self::Safety
                | Self::Recitation
                | Self::Blocklist
                | Self::ProhibitedContent
                | Self::Spii
        )
    }
}

impl From<&str> for FinishReason {
    fn from(value: &str) -> Self {
        match value {
            "STOP" => Self::Stop,
            "MAX_TOKENS" => Self::MaxTokens,
            "SAFETY" => Self::Safety,
            "RECITATION" => Self::Recitation,
            "BLOCKLIST" => Self::Blocklist,
            "PROHIBITED_CONTENT" => Self::ProhibitedContent,
            "SPII" => Self::Spii,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl Serialize for FinishReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Ok(Self::from(raw.as_str()))
    }
}

/// Token counts. In a stream they are cumulative; early chunks may carry only the prompt.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u32,
    #[serde(default)]
    pub candidates_token_count: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub thoughts_token_count: u32,
    #[serde(default)]
    pub total_token_count: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// `POST /v1beta/models/{model}:countTokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "generate_content_request"
    )]
    pub generate_content_request: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    pub total_tokens: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    pub modality: String,
    pub token_count: u32,
}

/// `{"error": {...}}`: every error body, before a stream and in the middle of one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorEnvelope {
    pub error: ErrorStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ErrorStatus {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
}

/// Google's rule of thumb: about four characters per token.
pub fn estimate_tokens(chars: usize) -> u32 {
    u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_finish_reasons_and_fields_are_tolerated() {
        let raw = r#"{"candidates":[{"content":{"parts":[{"text":"Hi"},{"text":"...","thought":true}],"role":"model"},
            "finishReason":"SOMETHING_NEW","index":0,"brandNew":1}],
            "usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1,"totalTokenCount":4,"cachedContentTokenCount":0},
            "modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        let parsed: GenerateContentResponse = serde_json::from_str(raw).unwrap();
        assert_eq!(parsed.text(), "Hi");
        assert_eq!(
            parsed.finish_reason(),
            Some(&FinishReason::Other("SOMETHING_NEW".into()))
        );
        assert_eq!(parsed.usage_metadata.map(|u| u.total_token_count), Some(4));
    }

    #[test]
    fn a_blocked_prompt_has_a_block_reason_and_no_candidates() {
        let raw = r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#;
        let parsed: GenerateContentResponse = serde_json::from_str(raw).unwrap();
        assert!(parsed.candidates.is_empty());
        assert_eq!(parsed.block_reason(), Some("PROHIBITED_CONTENT"));
    }

    #[test]
    fn requests_are_written_in_lower_camel_case_and_snake_case_is_read() {
        let request = GenerateContentRequest {
            generation_config: Some(GenerationConfig {
                max_output_tokens: Some(64),
                ..GenerationConfig::default()
            }),
            ..GenerateContentRequest::user_text("be brief", "hello")
        };
        let json = serde_json::to_string(&request).unwrap_or_default();
        assert!(json.contains("\"systemInstruction\""));
        assert!(json.contains("\"maxOutputTokens\":64"));
        let snake = r#"{"system_instruction":{"parts":[{"text":"s"}]},"contents":[{"role":"user","parts":[{"text":"t"}]}],"generation_config":{"max_output_tokens":5}}"#;
        let parsed: GenerateContentRequest = serde_json::from_str(snake).unwrap();
        assert_eq!(parsed.prompt_chars(), 2);
        assert_eq!(
            parsed.generation_config.and_then(|g| g.max_output_tokens),
            Some(5)
        );
    }
}
