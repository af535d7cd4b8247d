//! The emulated model's answers: pleasant sentences built from the words of the last user turn
//! and a fixed vocabulary, the same for the same prompt and seed.

use super::validate::Prompt;
use crate::wire::estimate_tokens;

/// Why a composed answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It ran to its natural end, or to a stop sequence.
    Stop,
    /// `maxOutputTokens` cut it.
    MaxTokens,
}

/// The text the model answers with, and why it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    pub ending: Ending,
}

impl Answer {
    pub fn tokens(&self) -> u32 {
        tokens_of(&self.text)
    }
}

/// Tokens of a text, by Google's rule of thumb.
pub fn tokens_of(text: &str) -> u32 {
    estimate_tokens(text.chars().count())
}

const ADJECTIVES: &[&str] = &[
    "lovely",
    "bright",
    "gentle",
    "curious",
    "warm",
    "calm",
    "cheerful",
    "wonderful",
    "thoughtful",
    "delightful",
    "quiet",
    "golden",
];

const NOUNS: &[&str] = &[
    "gardens",
    "mornings",
    "coffee",
    "sunlight",
    "music",
    "friends",
    "books",
    "rain",
    "mountains",
    "the sea",
    "long walks",
    "stories",
    "tea",
    "laughter",
];

const TIMES: &[&str] = &[
    "Sunday morning",
    "quiet evening",
    "rainy afternoon",
    "sunny day",
    "long weekend",
];

/// `{t}` a topic, `{T}` the topic capitalised, `{a}` an adjective, `{n}` a noun, `{w}` a time.
const TEMPLATES: &[&str] = &[
    "What a {a} thought about {t}.",
    "I keep coming back to {t}, it feels {a}.",
    "{T} and {n} go together like {n} and {n}.",
    "There is something {a} about {t} on a {w}.",
    "Maybe {t} is the {a} part of the whole story.",
    "Thanks for sharing, {t} sounds {a}.",
    "I would love to hear more about {t} and {n}.",
    "Honestly, {t} makes any {w} feel {a}.",
];

const COMMON_WORDS: &[&str] = &[
    "the", "and", "you", "your", "for", "are", "was", "with", "this", "that", "what", "have",
    "has", "had", "not", "but", "can", "about", "from", "they", "them", "then", "there", "here",
    "how", "why", "who", "will", "would", "could", "should", "please", "tell", "some", "any",
    "our", "its", "into", "out", "just", "also", "very", "more",
];

/// The answer to `prompt`: about `target_tokens` of text ending a sentence, cut at the first
/// stop sequence (not included) or at `maxOutputTokens`.
pub fn compose(prompt: &Prompt, target_tokens: u32) -> Answer {
    let mut natural = natural_text(prompt, target_tokens);
    if let Some(echo) = echoed(&prompt.last_user_text) {
        natural = format!("{echo} {natural}");
    }
    let stop_at = prompt
        .stop_sequences
        .iter()
        .filter_map(|stop| natural.find(stop.as_str()))
        .min();
    let stopped = stop_at.map_or(natural.as_str(), |at| &natural[..at]);
    match prompt.max_output_tokens {
        Some(max) if tokens_of(stopped) > max => Answer {
            text: truncated(stopped, max).to_owned(),
            ending: Ending::MaxTokens,
        },
        _ => Answer {
            text: stopped.to_owned(),
            ending: Ending::Stop,
        },
    }
}

/// The text in stream pieces of about `chunk_tokens` tokens each, cut between words;
/// concatenated they give the text back. An empty text is one empty piece.
pub fn pieces(text: &str, chunk_tokens: u32) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for word in text.split_inclusive(' ') {
        end += word.len();
        if tokens_of(&text[start..end]) >= chunk_tokens {
            pieces.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() || pieces.is_empty() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The longest prefix of whole words within `max` tokens (or of characters, for one long word).
fn truncated(text: &str, max: u32) -> &str {
    let mut fits = "";
    let mut end = 0;
    for word in text.split_inclusive(' ') {
        end += word.len();
        let candidate = text[..end].trim_end();
        if tokens_of(candidate) > max {
            break;
        }
        fits = candidate;
    }
    if fits.is_empty() {
        let max_chars = usize::try_from(max).unwrap_or(usize::MAX).saturating_mul(4);
        let cut = text
            .char_indices()
            .nth(max_chars)
            .map_or(text.len(), |(at, _)| at);
        return &text[..cut];
    }
    fits
}

fn natural_text(prompt: &Prompt, target_tokens: u32) -> String {
    let seed = fnv1a(prompt.all_text.as_bytes())
        ^ prompt.seed.map_or(0, |s| s.unsigned_abs().rotate_left(17));
    let mut random = SplitMix64(seed);
    let topics = topics_of(&prompt.last_user_text);
    let mut text = String::new();
    let mut sentence_index = 0;
    while tokens_of(&text) < target_tokens {
        let topic = topics
            .get(sentence_index % topics.len().max(1))
            .map_or_else(|| random.pick(NOUNS).to_string(), Clone::clone);
        let template = random.pick(TEMPLATES);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&fill(template, &topic, &mut random));
        sentence_index += 1;
    }
    text
}

fn fill(template: &str, topic: &str, random: &mut SplitMix64) -> String {
    let mut sentence = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        sentence.push_str(&rest[..open]);
        let slot = rest[open + 1..].chars().next().unwrap_or('}');
        match slot {
            't' => sentence.push_str(topic),
            'T' => sentence.push_str(&capitalised(topic)),
            'a' => sentence.push_str(random.pick(ADJECTIVES)),
            'n' => sentence.push_str(random.pick(NOUNS)),
            'w' => sentence.push_str(random.pick(TIMES)),
            _ => {}
        }
        rest = rest[open + 1..]
            .split_once('}')
            .map_or("", |(_, after)| after);
    }
    sentence.push_str(rest);
    capitalised(&sentence)
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The TEXT of an `[[echo:TEXT]]` marker in the user's text, which the answer starts with.
fn echoed(text: &str) -> Option<&str> {
    let (_, after) = text.split_once("[[echo:")?;
    let (echo, _) = after.split_once("]]")?;
    Some(echo.trim()).filter(|e| !e.is_empty())
}

/// The distinct words of the user's text worth talking about, in order, triggers left out.
fn topics_of(text: &str) -> Vec<String> {
    let mut without_triggers = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("[[") {
        without_triggers.push_str(&rest[..open]);
        without_triggers.push(' ');
        rest = rest[open..].split_once("]]").map_or("", |(_, after)| after);
    }
    without_triggers.push_str(rest);
    let mut topics: Vec<String> = Vec::new();
    for word in without_triggers.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 3
            && word.chars().all(char::is_alphabetic)
            && !COMMON_WORDS.contains(&word.as_str())
            && !topics.contains(&word)
        {
            topics.push(word);
        }
    }
    topics
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A small deterministic generator (SplitMix64), so answers never change with a library version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        let len = u64::try_from(choices.len()).unwrap_or(1).max(1);
        let index = usize::try_from(self.next() % len).unwrap_or(0);
        choices.get(index).copied().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            chars: text.len(),
            all_text: text.to_owned(),
            last_user_text: text.to_owned(),
            ..Prompt::default()
        }
    }

    #[test]
    fn answers_are_deterministic_talk_about_the_prompt_and_end_a_sentence() {
        let asked = prompt("Tell me about otters and kayaks");
        let first = compose(&asked, 40);
        assert_eq!(first, compose(&asked, 40));
        assert_eq!(first.ending, Ending::Stop);
        assert!(
            first.tokens() >= 40 && first.tokens() < 60,
            "{}",
            first.text
        );
        assert!(first.text.contains("otters"));
        assert!(first.text.ends_with('.'));
        let seeded = Prompt {
            seed: Some(42),
            ..asked.clone()
        };
        assert_ne!(compose(&seeded, 40).text, first.text);
    }

    #[test]
    fn an_echo_marker_starts_the_answer_verbatim() {
        let answer = compose(&prompt("hi [[echo:@bob @carol look]] there"), 20);
        assert!(
            answer.text.starts_with("@bob @carol look "),
            "{}",
            answer.text
        );
        assert!(!compose(&prompt("hi [[echo:]]"), 20).text.starts_with(' '));
    }

    #[test]
    fn stop_sequences_and_max_tokens_cut_the_answer() {
        let asked = prompt("gardens please");
        let full = compose(&asked, 40).text;
        let word = full
            .split(' ')
            .nth(4)
            .unwrap_or_else(|| panic!("short answer: {full}"))
            .to_owned();
        let stopped = compose(
            &Prompt {
                stop_sequences: vec![word.clone()],
                ..asked.clone()
            },
            40,
        );
        assert_eq!(stopped.ending, Ending::Stop);
        assert_eq!(stopped.text, full[..full.find(&word).unwrap_or(0)]);
        let capped = compose(
            &Prompt {
                max_output_tokens: Some(5),
                ..asked
            },
            40,
        );
        assert_eq!(capped.ending, Ending::MaxTokens);
        assert!(
            capped.tokens() <= 5 && capped.tokens() >= 3,
            "{}",
            capped.text
        );
        assert!(full.starts_with(&capped.text));
    }

    #[test]
    fn pieces_put_the_text_back_together() {
        let text = "one two three four five six seven eight nine ten eleven twelve";
        let split = pieces(text, 2);
        assert!(split.len() > 3);
        assert_eq!(split.concat(), text);
        assert_eq!(pieces("", 4), vec![""]);
    }

    #[test]
    fn triggers_are_not_topics() {
        assert_eq!(
            topics_of("[[block]] otters, Otters and kayaks!"),
            vec!["otters", "kayaks"]
        );
    }
}
