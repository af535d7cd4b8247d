//! The JSON of answers: whole responses, stream chunks and token counts, shaped like Google's.

use rand::RngExt;
use serde::Serialize;

use crate::wire::{
    Candidate, Content, CountTokensResponse, FinishReason, ModalityTokenCount, Part,
    PromptFeedback, Role, SafetyRating,
};

/// A `GenerateContentResponse` (a whole answer, or one chunk of a stream).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Usage,
    pub model_version: String,
    pub response_id: String,
}

impl Reply {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `usageMetadata`; counts Google leaves out when zero are left out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_token_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates_token_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<u32>,
    pub total_token_count: u32,
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
}

impl Usage {
    pub fn new(prompt: u32, candidates: u32, thoughts: u32) -> Self {
        Self {
            prompt_token_count: prompt,
            candidates_token_count: (candidates > 0).then_some(candidates),
            thoughts_token_count: (thoughts > 0).then_some(thoughts),
            total_token_count: prompt.saturating_add(candidates).saturating_add(thoughts),
            prompt_tokens_details: text_tokens(prompt),
        }
    }
}

fn text_tokens(count: u32) -> Vec<ModalityTokenCount> {
    vec![ModalityTokenCount {
        modality: "TEXT".into(),
        token_count: count,
    }]
}

/// The `countTokens` answer.
pub fn token_count(total: u32) -> CountTokensResponse {
    CountTokensResponse {
        total_tokens: total,
        prompt_tokens_details: text_tokens(total),
    }
}

/// What every reply to one request shares.
#[derive(Debug, Clone)]
pub struct ReplyHeader {
    pub model: String,
    /// The same for every chunk of a stream.
    pub response_id: String,
    pub prompt_tokens: u32,
    pub thoughts_tokens: u32,
}

impl ReplyHeader {
    fn reply(&self, candidates: Vec<Candidate>, output_tokens: u32) -> Reply {
        Reply {
            candidates,
            prompt_feedback: None,
            usage_metadata: Usage::new(self.prompt_tokens, output_tokens, self.thoughts_tokens),
            model_version: self.model.clone(),
            response_id: self.response_id.clone(),
        }
    }

    /// Text (a piece, or the whole answer) with the output tokens sent so far.
    pub fn text(&self, text: &str, output_tokens: u32, finish: Option<FinishReason>) -> Reply {
        let candidate = Candidate {
            content: Some(Content {
                role: Some(Role::Model),
                parts: vec![Part {
                    text: Some(text.to_owned()),
                    ..Part::default()
                }],
            }),
            finish_reason: finish,
            index: Some(0),
            safety_ratings: Vec::new(),
        };
        self.reply(vec![candidate], output_tokens)
    }

    /// The end of an answer stopped for safety: no content, finish reason and ratings.
    pub fn safety_stop(&self, output_tokens: u32) -> Reply {
        let candidate = Candidate {
            content: None,
            finish_reason: Some(FinishReason::Safety),
            index: Some(0),
            safety_ratings: safety_ratings(),
        };
        self.reply(vec![candidate], output_tokens)
    }

    /// A blocked prompt: no candidates, `promptFeedback.blockReason`.
    pub fn blocked(&self) -> Reply {
        Reply {
            prompt_feedback: Some(PromptFeedback {
                block_reason: Some("SAFETY".into()),
                safety_ratings: safety_ratings(),
            }),
            ..self.reply(Vec::new(), 0)
        }
    }
}

/// Ratings with harassment judged HIGH and blocked, the rest negligible.
fn safety_ratings() -> Vec<SafetyRating> {
    [
        ("HARM_CATEGORY_HATE_SPEECH", "NEGLIGIBLE"),
        ("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
        ("HARM_CATEGORY_HARASSMENT", "HIGH"),
        ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
    ]
    .into_iter()
    .map(|(category, probability)| SafetyRating {
        category: category.into(),
        probability: probability.into(),
        blocked: (probability == "HIGH").then_some(true),
    })
    .collect()
}

/// A fresh `responseId`, like Google's 22-odd URL-safe characters.
pub fn new_response_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut random = rand::rng();
    (0..23)
        .map(|_| char::from(ALPHABET[random.random_range(0..ALPHABET.len())]))
        .collect()
}
