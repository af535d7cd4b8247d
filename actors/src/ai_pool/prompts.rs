//! What the AI is told: the persona, and the prompt for each kind of job.

use aisocial_gemini::wire::{
    Content, GenerateContentRequest, GenerationConfig, Role, ThinkingConfig,
};

const PERSONA: &str = "You are @ai, a friendly and concise member of a social network. \
You answer in plain text, without markdown, in a few sentences at most.";

/// One post of a thread or timeline, as the prompt shows it.
#[derive(Debug, Clone)]
pub struct PromptPost {
    pub handle: String,
    pub body: String,
}

fn request(
    system: &str,
    user_text: String,
    max_output_tokens: u32,
    seed: i64,
) -> GenerateContentRequest {
    GenerateContentRequest {
        system_instruction: Some(Content::text(None, system)),
        contents: vec![Content::text(Some(Role::User), &user_text)],
        generation_config: Some(GenerationConfig {
            temperature: Some(0.7),
            max_output_tokens: Some(max_output_tokens),
            candidate_count: Some(1),
            seed: Some(seed),
            // Thinking tokens would count against the answer's budget: answers are short.
            thinking_config: Some(ThinkingConfig {
                thinking_budget: Some(0),
            }),
            ..GenerationConfig::default()
        }),
        safety_settings: Vec::new(),
    }
}

fn lines(posts: &[PromptPost]) -> String {
    posts
        .iter()
        .map(|p| format!("@{}: {}", p.handle, p.body))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Answer the last post of `thread` (oldest first), which mentioned `@ai`.
pub fn mention(thread: &[PromptPost], seed: i64) -> GenerateContentRequest {
    let asker = thread
        .last()
        .map(|p| p.handle.as_str())
        .unwrap_or("someone");
    let text = format!(
        "The thread so far, oldest first:\n{}\n\nWrite your reply to @{asker}'s last post.",
        lines(thread)
    );
    request(PERSONA, text, 200, seed)
}

/// Draft a post from the caller's instructions.
pub fn compose(instructions: &str, seed: i64) -> GenerateContentRequest {
    let system = format!(
        "{PERSONA} Here you draft a post for the person asking; write only the post itself."
    );
    request(&system, instructions.to_owned(), 200, seed)
}

/// Summarise the caller's recent home timeline (newest first).
pub fn summary(handle: &str, timeline: &[PromptPost], seed: i64) -> GenerateContentRequest {
    let text = if timeline.is_empty() {
        format!("@{handle} has nothing new in their timeline. Say so kindly in one sentence.")
    } else {
        format!(
            "Catch @{handle} up on their home timeline, newest first:\n{}\n\nSummarise what \
             happened in a short paragraph.",
            lines(timeline)
        )
    };
    request(PERSONA, text, 300, seed)
}
