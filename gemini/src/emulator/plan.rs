//! What an admitted request is answered with: the chunks of a stream or one whole reply,
//! shaped by the composed answer and the test triggers.

use super::composer::{self, Answer, Ending};
use super::reply::{Reply, ReplyHeader};
use super::rpc_error::RpcError;
use super::stats::Outcome;
use super::triggers::Triggers;
use crate::wire::FinishReason;

/// How many chunks go out before `[[safety]]` or `[[midstream-error]]` strikes.
const CHUNKS_BEFORE_TROUBLE: usize = 2;

/// The finish reason `[[unknown-finish]]` sends.
pub const UNKNOWN_FINISH: &str = "SOMETHING_NEW";

/// One step of a stream.
#[derive(Debug)]
pub enum Step {
    /// A chunk, and the output tokens it adds.
    Chunk { reply: Reply, new_tokens: u32 },
    /// An error line without `data:`; the body ends after it.
    Error(RpcError),
    /// Nothing more until the client goes away.
    Stall,
}

/// The answer of a plain `generateContent`.
#[derive(Debug)]
pub enum Whole {
    Reply {
        reply: Reply,
        output_tokens: u32,
    },
    Error(RpcError),
    /// Never answers (until the client goes away).
    Stall,
}

/// What the triggers and the pacing ask for, besides the text.
#[derive(Debug, Clone, Copy)]
pub struct Twists {
    pub triggers: Triggers,
    /// Stall after the first chunk (trigger, script or share).
    pub stall: bool,
}

impl Twists {
    fn finish(self, answer: &Answer) -> FinishReason {
        if self.triggers.unknown_finish {
            return FinishReason::Other(UNKNOWN_FINISH.to_owned());
        }
        match answer.ending {
            Ending::Stop => FinishReason::Stop,
            Ending::MaxTokens => FinishReason::MaxTokens,
        }
    }
}

/// The steps of `streamGenerateContent`, and the outcome they amount to.
pub fn stream_steps(
    header: &ReplyHeader,
    answer: &Answer,
    twists: Twists,
    chunk_tokens: u32,
) -> (Vec<Step>, Outcome) {
    if twists.triggers.block {
        let blocked = Step::Chunk {
            reply: header.blocked(),
            new_tokens: 0,
        };
        return (vec![blocked], Outcome::Blocked);
    }
    let pieces = composer::pieces(&answer.text, chunk_tokens);
    let (sent_pieces, ending, outcome) = if twists.stall || twists.triggers.stall {
        (1, Some(Step::Stall), Outcome::Stalled)
    } else if twists.triggers.midstream_error {
        let sent = CHUNKS_BEFORE_TROUBLE.min(pieces.len());
        (
            sent,
            Some(Step::Error(RpcError::overloaded())),
            Outcome::MidstreamError,
        )
    } else if twists.triggers.safety {
        (
            CHUNKS_BEFORE_TROUBLE.min(pieces.len().saturating_sub(1)),
            None,
            Outcome::Safety,
        )
    } else {
        (pieces.len(), None, Outcome::Ok)
    };
    let finish_on_last = outcome == Outcome::Ok;
    let mut steps = Vec::with_capacity(sent_pieces + 1);
    let mut sent_text = String::new();
    let mut sent_tokens = 0;
    for (index, piece) in pieces.iter().take(sent_pieces).enumerate() {
        sent_text.push_str(piece);
        let cumulative = composer::tokens_of(&sent_text);
        let last = index + 1 == pieces.len();
        let finish = (finish_on_last && last).then(|| twists.finish(answer));
        steps.push(Step::Chunk {
            reply: header.text(piece, cumulative, finish),
            new_tokens: cumulative - sent_tokens,
        });
        sent_tokens = cumulative;
    }
    if outcome == Outcome::Safety {
        steps.push(Step::Chunk {
            reply: header.safety_stop(sent_tokens),
            new_tokens: 0,
        });
    }
    steps.extend(ending);
    (steps, outcome)
}

/// The reply of `generateContent`, and its outcome.
pub fn whole_answer(header: &ReplyHeader, answer: &Answer, twists: Twists) -> (Whole, Outcome) {
    let triggers = twists.triggers;
    if triggers.block {
        let reply = header.blocked();
        return (
            Whole::Reply {
                reply,
                output_tokens: 0,
            },
            Outcome::Blocked,
        );
    }
    if twists.stall || triggers.stall {
        return (Whole::Stall, Outcome::Stalled);
    }
    if triggers.midstream_error {
        return (Whole::Error(RpcError::overloaded()), Outcome::Unavailable);
    }
    if triggers.safety {
        let reply = header.safety_stop(0);
        return (
            Whole::Reply {
                reply,
                output_tokens: 0,
            },
            Outcome::Safety,
        );
    }
    let output_tokens = answer.tokens();
    let reply = header.text(&answer.text, output_tokens, Some(twists.finish(answer)));
    (
        Whole::Reply {
            reply,
            output_tokens,
        },
        Outcome::Ok,
    )
}
