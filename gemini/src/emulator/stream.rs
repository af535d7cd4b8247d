//! Sending a stream: SSE events (`data: {...}\r\n\r\n`) or one JSON array (`[{...},\r\n{...}]`),
//! paced like the model (a latency before the first chunk, then a token rate).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use super::plan::Step;
use super::state::{Pacing, Shared};

/// The two forms of `streamGenerateContent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `?alt=sse`: `text/event-stream`.
    Sse,
    /// No `alt`: one JSON array sent piece by piece.
    JsonArray,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Sse => "text/event-stream",
            Self::JsonArray => "application/json; charset=UTF-8",
        }
    }

    fn element(self, json: &str, first: bool) -> String {
        match self {
            Self::Sse => format!("data: {json}\r\n\r\n"),
            Self::JsonArray if first => format!("[{json}"),
            Self::JsonArray => format!(",\r\n{json}"),
        }
    }

    /// An error in the middle: a bare JSON line in SSE, one more element of the array.
    fn error(self, json: &str, first: bool) -> String {
        match self {
            Self::Sse => format!("{json}\r\n\r\n"),
            Self::JsonArray => self.element(json, first),
        }
    }

    fn closing(self, first: bool) -> Option<&'static str> {
        match self {
            Self::Sse => None,
            Self::JsonArray if first => Some("[]"),
            Self::JsonArray => Some("]"),
        }
    }
}

/// Counts the stream as open while it lives (dropped when the client goes away, too).
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn new(shared: Arc<Shared>) -> Self {
        shared.stream_opened();
        Self(shared)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}

struct Sender {
    steps: VecDeque<Step>,
    framing: Framing,
    pacing: Pacing,
    nothing_sent_yet: bool,
    ended: bool,
    open: OpenStream,
}

impl Sender {
    /// The wait before the next step: the scripted delay and the latency before the first,
    /// the time to produce its tokens before each chunk.
    fn wait_before(&self, step: &Step) -> Duration {
        let producing = match step {
            Step::Chunk { new_tokens, .. } => self.pacing.time_for(*new_tokens),
            Step::Error(_) => self.pacing.time_for(self.pacing.chunk_tokens),
            Step::Stall => Duration::ZERO,
        };
        if self.nothing_sent_yet {
            self.pacing.delay + self.pacing.first_chunk_latency + producing
        } else {
            producing
        }
    }

    async fn next_bytes(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        let Some(step) = self.steps.pop_front() else {
            self.ended = true;
            return self
                .framing
                .closing(self.nothing_sent_yet)
                .map(|closing| Bytes::from_static(closing.as_bytes()));
        };
        let wait = self.wait_before(&step);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let first = std::mem::replace(&mut self.nothing_sent_yet, false);
        let text = match step {
            Step::Chunk {
                mut reply,
                new_tokens,
            } => {
                self.open.0.add_output_tokens(new_tokens);
                if self.pacing.stamp_chunks {
                    stamp(&mut reply);
                }
                self.framing.element(&reply.to_json(), first)
            }
            Step::Error(error) => self.framing.error(&error.to_json(), first),
            Step::Stall => {
                std::future::pending::<()>().await;
                String::new()
            }
        };
        Some(Bytes::from(text))
    }
}

/// The prefix of a chunk's send time, `[[t=<µs since the Unix epoch>]]`.
pub const STAMP_PREFIX: &str = "[[t=";

fn stamp(reply: &mut super::reply::Reply) {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let text = reply
        .candidates
        .first_mut()
        .and_then(|c| c.content.as_mut())
        .and_then(|c| c.parts.first_mut())
        .and_then(|p| p.text.as_mut());
    if let Some(text) = text {
        text.insert_str(0, &format!("{STAMP_PREFIX}{micros}]]"));
    }
}

/// The body of a stream answer.
pub fn body(
    steps: Vec<Step>,
    framing: Framing,
    pacing: Pacing,
    shared: Arc<Shared>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + 'static {
    let sender = Sender {
        steps: steps.into(),
        framing,
        pacing,
        nothing_sent_yet: true,
        ended: false,
        open: OpenStream::new(shared),
    };
    futures_util::stream::unfold(sender, |mut sender| async move {
        let bytes = sender.next_bytes().await?;
        Some((Ok(bytes), sender))
    })
}
