//! Test triggers: markers in the last user text that make the emulator misbehave on purpose.

/// The markers found in a prompt (see the module documentation of `emulator` for their effect).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Triggers {
    /// `[[block]]`: the prompt is blocked (HTTP 200, no candidates, `blockReason: SAFETY`).
    pub block: bool,
    /// `[[safety]]`: the answer ends early with finish reason `SAFETY`.
    pub safety: bool,
    /// `[[midstream-error]]`: a stream breaks off with a 503 error line after two chunks.
    pub midstream_error: bool,
    /// `[[stall]]`: one chunk, then nothing until the client goes away.
    pub stall: bool,
    /// `[[unknown-finish]]`: finish reason `SOMETHING_NEW`.
    pub unknown_finish: bool,
}

impl Triggers {
    pub fn scan(text: &str) -> Self {
        Self {
            block: text.contains("[[block]]"),
            safety: text.contains("[[safety]]"),
            midstream_error: text.contains("[[midstream-error]]"),
            stall: text.contains("[[stall]]"),
            unknown_finish: text.contains("[[unknown-finish]]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_anywhere_in_the_text() {
        let found = Triggers::scan("hello [[safety]] and [[unknown-finish]]");
        assert!(found.safety && found.unknown_finish);
        assert!(!found.block && !found.stall && !found.midstream_error);
        assert_eq!(Triggers::scan("[block]"), Triggers::default());
    }
}
