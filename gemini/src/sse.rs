//! A lenient, incremental decoder for Gemini's server-sent events.
//!
//! Accepts CRLF, LF and CR line endings (so `\r\n\r\n`, `\n\n` and `\r\r` all end an event),
//! ignores comment and non-data fields, joins multi-line `data:`, and also yields a bare JSON
//! line without the `data:` prefix: that is how Gemini reports an error mid-stream. There is no
//! `[DONE]` sentinel; one is ignored if a proxy adds it.

/// Turns body bytes, as they arrive, into event payloads.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was a CR: a following LF belongs to the same line ending.
    after_cr: bool,
    /// `data:` lines of the event being read.
    data: Vec<String>,
    /// Their bytes.
    data_bytes: usize,
}

/// Lines longer than this are refused rather than buffered without bound.
pub const MAX_LINE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("an event line exceeded {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("an event exceeded {MAX_LINE_BYTES} bytes")]
    EventTooLong,
}

impl SseDecoder {
    /// Feeds bytes; returns the payloads of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    self.end_line(&mut out);
                    if self.data_bytes > MAX_LINE_BYTES {
                        return Err(SseError::EventTooLong);
                    }
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(out)
    }

    /// The body ended: whatever was pending is a last event.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.end_event(&mut out);
        out
    }

    fn end_line(&mut self, out: &mut Vec<String>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            self.end_event(out);
        } else if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.data_bytes += value.len();
            self.data.push(value.to_owned());
        } else if line.starts_with('{') || line.starts_with('[') {
            // A JSON line without `data:`: Gemini's mid-stream error.
            self.end_event(out);
            out.push(line);
        }
        // Comments (`:`) and other fields (`event:`, `id:`, `retry:`) carry nothing for us.
    }

    fn end_event(&mut self, out: &mut Vec<String>) {
        if self.data.is_empty() {
            return;
        }
        self.data_bytes = 0;
        let payload = std::mem::take(&mut self.data).join("\n");
        if payload.trim() != "[DONE]" {
            out.push(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &str, piece: usize) -> Vec<String> {
        let mut decoder = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in body.as_bytes().chunks(piece) {
            out.extend(decoder.push(chunk).unwrap());
        }
        out.extend(decoder.finish());
        out
    }

    #[test]
    fn every_line_ending_separates_events_whatever_the_chunking() {
        for body in [
            "data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\r\n\r\n",
            "data: {\"a\":1}\n\ndata: {\"a\":2}\n\n",
            "data: {\"a\":1}\r\rdata: {\"a\":2}\r\r",
            "data:{\"a\":1}\n\n: keep-alive\n\nevent: x\ndata: {\"a\":2}",
        ] {
            for piece in [1, 2, 3, 7, 1000] {
                assert_eq!(
                    decode_in_pieces(body, piece),
                    vec!["{\"a\":1}".to_owned(), "{\"a\":2}".to_owned()],
                    "{body:?} in pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn a_bare_error_line_mid_stream_is_a_payload() {
        let body =
            "data: {\"a\":1}\r\n\r\n{\"error\": {\"code\": 503, \"status\": \"UNAVAILABLE\"}}\r\n";
        assert_eq!(
            decode_in_pieces(body, 5),
            vec![
                "{\"a\":1}".to_owned(),
                "{\"error\": {\"code\": 503, \"status\": \"UNAVAILABLE\"}}".to_owned()
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_and_done_is_ignored() {
        assert_eq!(
            decode_in_pieces("data: {\"a\":\ndata: 1}\n\ndata: [DONE]\n\n", 4),
            vec!["{\"a\":\n1}".to_owned()]
        );
    }
}
