//! One AI job: who asked, for what, the prompt, and whom its text streams to.

use std::time::Instant;

use aisocial_gemini::wire::{GenerateContentRequest, estimate_tokens};

use crate::ids::{PostId, UserId};

/// Names one AI request end to end: in `202` answers, frames and `ai_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub uuid::Uuid);

impl RequestId {
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the AI was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Answer `post`, which mentioned `@ai`, in its thread (rooted at `root`).
    Mention { post: PostId, root: PostId },
    /// Draft a post for the caller.
    Compose,
    /// Summarise the caller's recent home timeline.
    Summary,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mention { .. } => "mention",
            Self::Compose => "compose",
            Self::Summary => "summary",
        }
    }

    /// The post an answer is about, for the frames.
    pub fn post(self) -> Option<PostId> {
        match self {
            Self::Mention { post, .. } => Some(post),
            Self::Compose | Self::Summary => None,
        }
    }

    /// The thread whose subscribers watch the answer being written.
    pub fn thread(self) -> Option<PostId> {
        match self {
            Self::Mention { root, .. } => Some(root),
            Self::Compose | Self::Summary => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AiJob {
    pub id: RequestId,
    pub user: UserId,
    pub kind: JobKind,
    pub request: GenerateContentRequest,
    /// Input tokens reserved before the call: about chars / 4, plus 10 %.
    pub estimate: u32,
    /// The answer is cut here (an `@ai` reply must fit in a post).
    pub max_chars: usize,
    pub enqueued_at: Instant,
}

impl AiJob {
    pub fn new(
        user: UserId,
        kind: JobKind,
        request: GenerateContentRequest,
        max_chars: usize,
    ) -> Self {
        let base = estimate_tokens(request.prompt_chars());
        let estimate = base.saturating_add(base.div_ceil(10)).max(1);
        Self {
            id: RequestId::new(),
            user,
            kind,
            request,
            estimate,
            max_chars,
            enqueued_at: Instant::now(),
        }
    }
}
