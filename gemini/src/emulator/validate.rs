//! Checks a request body the way Google's front end does, then extracts what the model needs.
//!
//! Two passes, like the service: first the JSON must fit the proto (unknown names, wrong types:
//! "Invalid JSON payload received. Unknown name ..."), then the values must make sense
//! ("* GenerateContentRequest.contents: contents is not specified"). Both answer 400
//! `INVALID_ARGUMENT` with a `BadRequest` detail listing the field violations.

use serde_json::{Map, Number, Value};

use super::rpc_error::{FieldViolation, RpcError};
use super::schema::{self, Kind, Message};
use crate::wire::estimate_tokens;

/// Most stop sequences a request may set.
pub const MAX_STOP_SEQUENCES: usize = 5;
/// Largest `maxOutputTokens` the 2.5 models accept.
pub const MAX_OUTPUT_TOKENS_LIMIT: i64 = 65_536;
/// Most candidates a request may ask for.
pub const MAX_CANDIDATE_COUNT: i64 = 8;

/// What the emulated model reads from a valid request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    /// Characters of every text the request sends (system instruction and contents).
    pub chars: usize,
    /// Every text of the request joined, which (with the seed) decides the answer.
    pub all_text: String,
    /// The text of the last user turn: where the test triggers are looked for.
    pub last_user_text: String,
    pub max_output_tokens: Option<u32>,
    pub stop_sequences: Vec<String>,
    pub seed: Option<i64>,
    pub thinking_budget: Option<i64>,
}

impl Prompt {
    /// Prompt tokens, by Google's rule of thumb (4 characters a token, rounded up).
    pub fn tokens(&self) -> u32 {
        estimate_tokens(self.chars)
    }
}

/// Validates the body of `generateContent` / `streamGenerateContent`.
pub fn generate_content_request(body: &[u8]) -> Result<Prompt, RpcError> {
    let request = parse_shaped(body, &schema::GENERATE_CONTENT_REQUEST)?;
    let mut violations = Vec::new();
    check_generate_request(&request, "", &mut violations);
    if !violations.is_empty() {
        return Err(semantic_error(
            &schema::GENERATE_CONTENT_REQUEST,
            &violations,
        ));
    }
    Ok(prompt_of(&request, true))
}

/// Validates the body of `countTokens`: `contents`, or a whole `generateContentRequest`, not both.
pub fn count_tokens_request(body: &[u8]) -> Result<Prompt, RpcError> {
    let request = parse_shaped(body, &schema::COUNT_TOKENS_REQUEST)?;
    let mut violations = Vec::new();
    let nested = request
        .get("generateContentRequest")
        .and_then(Value::as_object);
    match (request.contains_key("contents"), nested) {
        (true, Some(_)) => violations.push(FieldViolation {
            field: String::new(),
            description: "Only one of contents or generate_content_request may be set.".into(),
        }),
        (false, Some(nested)) => {
            check_generate_request(nested, "generate_content_request.", &mut violations);
        }
        (_, None) => check_contents(&request, "", &mut violations),
    }
    if !violations.is_empty() {
        return Err(semantic_error(&schema::COUNT_TOKENS_REQUEST, &violations));
    }
    Ok(match nested {
        Some(nested) => prompt_of(nested, true),
        None => prompt_of(&request, false),
    })
}

/// Parses the body and checks it against the proto; returns it with lowerCamelCase keys,
/// nulls dropped and numbers given as strings turned into numbers.
fn parse_shaped(body: &[u8], message: &'static Message) -> Result<Map<String, Value>, RpcError> {
    let parsed: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            let description = format!(
                "Invalid JSON payload received. Unexpected token at line {}, column {}.",
                e.line(),
                e.column()
            );
            RpcError::bad_request(
                description.clone(),
                &[FieldViolation {
                    field: String::new(),
                    description,
                }],
            )
        })?
    };
    let Value::Object(fields) = parsed else {
        let description =
            "Invalid JSON payload received. Unknown name \"\": Root element must be a message."
                .to_owned();
        return Err(RpcError::bad_request(
            description.clone(),
            &[FieldViolation {
                field: String::new(),
                description,
            }],
        ));
    };
    let mut violations = Vec::new();
    let normalized = shape_message(&fields, message, "", &mut violations);
    if violations.is_empty() {
        Ok(normalized)
    } else {
        let message = violations
            .iter()
            .map(|v| v.description.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Err(RpcError::bad_request(message, &violations))
    }
}

fn shape_message(
    fields: &Map<String, Value>,
    message: &'static Message,
    path: &str,
    violations: &mut Vec<FieldViolation>,
) -> Map<String, Value> {
    let mut normalized = Map::new();
    for (key, value) in fields {
        let Some(field) = message.field(key) else {
            violations.push(unknown_name(key, path, "Cannot find field."));
            continue;
        };
        if value.is_null() {
            continue;
        }
        let field_path = join_path(path, field.proto);
        let shaped = if field.repeated {
            match value {
                Value::Array(items) => Some(Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(index, item)| {
                            let item_path = format!("{field_path}[{index}]");
                            shape_value(item, &field.kind, &item_path, violations)
                        })
                        .collect(),
                )),
                other => {
                    violations.push(invalid_value(&field_path, kind_label(&field.kind), other));
                    None
                }
            }
        } else if value.is_array() && !matches!(field.kind, Kind::AnyJson) {
            violations.push(unknown_name(
                key,
                path,
                "Proto field is not repeating, cannot start list.",
            ));
            None
        } else {
            shape_value(value, &field.kind, &field_path, violations)
        };
        let Some(shaped) = shaped else { continue };
        if normalized.insert(field.json.to_owned(), shaped).is_some() {
            violations.push(FieldViolation {
                field: field_path.clone(),
                description: format!(
                    "Invalid JSON payload received. Duplicate field \"{}\" at '{path}'.",
                    field.proto
                ),
            });
        }
    }
    normalized
}

fn shape_value(
    value: &Value,
    kind: &Kind,
    path: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<Value> {
    let shaped = match (kind, value) {
        (Kind::String | Kind::Bytes, Value::String(_)) | (Kind::Bool, Value::Bool(_)) => {
            Some(value.clone())
        }
        (Kind::Float, Value::Number(_)) => Some(value.clone()),
        (Kind::Float, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number),
        (Kind::Int32, Value::Number(number)) => int32_of(number).map(Value::from),
        (Kind::Int32, Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Value::from),
        (Kind::Enum(enum_type), Value::String(name)) => enum_type
            .values
            .contains(&name.as_str())
            .then(|| value.clone()),
        (Kind::Enum(enum_type), Value::Number(number)) => number
            .as_u64()
            .and_then(|index| usize::try_from(index).ok())
            .and_then(|index| enum_type.values.get(index))
            .map(|name| Value::String((*name).to_owned())),
        (Kind::Message(message), Value::Object(fields)) => Some(Value::Object(shape_message(
            fields, message, path, violations,
        ))),
        (Kind::AnyJson, _) => Some(value.clone()),
        _ => None,
    };
    if shaped.is_none() {
        violations.push(invalid_value(path, kind_label(kind), value));
    }
    shaped
}

fn int32_of(number: &Number) -> Option<i64> {
    if let Some(whole) = number.as_i64() {
        return i32::try_from(whole).is_ok().then_some(whole);
    }
    let float = number.as_f64()?;
    let in_range =
        float.fract() == 0.0 && float >= f64::from(i32::MIN) && float <= f64::from(i32::MAX);
    #[allow(clippy::cast_possible_truncation)]
    in_range.then_some(float as i64)
}

fn kind_label(kind: &Kind) -> &'static str {
    match kind {
        Kind::String => "TYPE_STRING",
        Kind::Bytes => "TYPE_BYTES",
        Kind::Float => "TYPE_FLOAT",
        Kind::Int32 => "TYPE_INT32",
        Kind::Bool => "TYPE_BOOL",
        Kind::Enum(enum_type) => enum_type.type_name,
        Kind::Message(message) => message.type_name,
        Kind::AnyJson => "type.googleapis.com/google.protobuf.Value",
    }
}

fn unknown_name(key: &str, path: &str, reason: &str) -> FieldViolation {
    let description = if path.is_empty() {
        format!("Invalid JSON payload received. Unknown name \"{key}\": {reason}")
    } else {
        format!("Invalid JSON payload received. Unknown name \"{key}\" at '{path}': {reason}")
    };
    FieldViolation {
        field: path.to_owned(),
        description,
    }
}

fn invalid_value(path: &str, label: &str, value: &Value) -> FieldViolation {
    FieldViolation {
        field: path.to_owned(),
        description: format!("Invalid value at '{path}' ({label}), {value}"),
    }
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn semantic_error(request_type: &Message, violations: &[FieldViolation]) -> RpcError {
    let name = schema::short_name(request_type);
    let message: String = violations
        .iter()
        .map(|violation| {
            if violation.field.is_empty() {
                format!("* {name}: {}\n", violation.description)
            } else {
                format!("* {name}.{}: {}\n", violation.field, violation.description)
            }
        })
        .collect();
    RpcError::bad_request(message, violations)
}

fn violation(field: String, description: impl Into<String>) -> FieldViolation {
    FieldViolation {
        field,
        description: description.into(),
    }
}

/// `contents` present and not empty, each with parts and a valid role.
fn check_contents(
    request: &Map<String, Value>,
    prefix: &str,
    violations: &mut Vec<FieldViolation>,
) {
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if contents.is_empty() {
        violations.push(violation(
            format!("{prefix}contents"),
            "contents is not specified",
        ));
    }
    for (index, content) in contents.iter().enumerate() {
        let parts = content.get("parts").and_then(Value::as_array);
        if parts.is_none_or(Vec::is_empty) {
            violations.push(violation(
                format!("{prefix}contents[{index}].parts"),
                "contents.parts must not be empty.",
            ));
        }
        let role = content.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "" | "user" | "model") {
            violations.push(violation(
                format!("{prefix}contents[{index}].role"),
                "Please use a valid role: user, model.",
            ));
        }
    }
}

fn check_generate_request(
    request: &Map<String, Value>,
    prefix: &str,
    violations: &mut Vec<FieldViolation>,
) {
    check_contents(request, prefix, violations);
    let Some(config) = request.get("generationConfig") else {
        return;
    };
    let field = |name: &str| format!("{prefix}generation_config.{name}");
    if let Some(temperature) = config.get("temperature").and_then(Value::as_f64)
        && !(0.0..=2.0).contains(&temperature)
    {
        violations.push(violation(
            field("temperature"),
            "temperature must be in the range [0.0, 2.0].",
        ));
    }
    if let Some(top_p) = config.get("topP").and_then(Value::as_f64)
        && !(0.0..=1.0).contains(&top_p)
    {
        violations.push(violation(
            field("top_p"),
            "top_p must be in the range [0.0, 1.0].",
        ));
    }
    let stop_count = config
        .get("stopSequences")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if stop_count > MAX_STOP_SEQUENCES {
        violations.push(violation(
            field("stop_sequences"),
            format!(
                "stop_sequences must have at most {MAX_STOP_SEQUENCES} items, got {stop_count}."
            ),
        ));
    }
    if let Some(max) = config.get("maxOutputTokens").and_then(Value::as_i64)
        && !(0..=MAX_OUTPUT_TOKENS_LIMIT).contains(&max)
    {
        violations.push(violation(
            field("max_output_tokens"),
            format!(
                "max_output_tokens has a value of {max} but the supported range is from 1 \
                 (inclusive) to {} (exclusive).",
                MAX_OUTPUT_TOKENS_LIMIT + 1
            ),
        ));
    }
    if let Some(count) = config.get("candidateCount").and_then(Value::as_i64)
        && !(0..=MAX_CANDIDATE_COUNT).contains(&count)
    {
        violations.push(violation(
            field("candidate_count"),
            format!("candidate_count must be in the range [1, {MAX_CANDIDATE_COUNT}]."),
        ));
    }
}

fn texts_of(content: &Value) -> impl Iterator<Item = &str> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
}

/// What the model reads, from a request already checked.
fn prompt_of(request: &Map<String, Value>, with_system: bool) -> Prompt {
    let system = request
        .get("systemInstruction")
        .filter(|_| with_system)
        .into_iter();
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let texts: Vec<&str> = system.chain(contents).flat_map(texts_of).collect();
    let last_user_text = contents
        .iter()
        .rev()
        .find(|content| {
            matches!(
                content.get("role").and_then(Value::as_str),
                None | Some("" | "user")
            )
        })
        .map(|content| texts_of(content).collect::<String>())
        .unwrap_or_default();
    let config = request.get("generationConfig");
    let setting = |name: &str| config.and_then(|c| c.get(name));
    Prompt {
        chars: texts.iter().map(|text| text.chars().count()).sum(),
        all_text: texts.join("\n"),
        last_user_text,
        max_output_tokens: setting("maxOutputTokens")
            .and_then(Value::as_u64)
            .and_then(|max| u32::try_from(max).ok())
            .filter(|max| *max > 0),
        stop_sequences: setting("stopSequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|stop| !stop.is_empty())
            .map(str::to_owned)
            .collect(),
        seed: setting("seed").and_then(Value::as_i64),
        thinking_budget: setting("thinkingConfig")
            .and_then(|thinking| thinking.get("thinkingBudget"))
            .and_then(Value::as_i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> RpcError {
        match generate_content_request(body.as_bytes()) {
            Ok(prompt) => panic!("accepted: {prompt:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn snake_case_and_camel_case_are_both_read() {
        let body = r#"{"system_instruction":{"parts":[{"text":"be kind"}]},
            "contents":[{"role":"user","parts":[{"text":"hello there"}]}],
            "generation_config":{"max_output_tokens":"12","stopSequences":["x"],"seed":7,
                                 "thinking_config":{"thinking_budget":0}},
            "safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_ONLY_HIGH"}]}"#;
        let prompt = generate_content_request(body.as_bytes()).unwrap();
        assert_eq!(prompt.chars, "be kind".len() + "hello there".len());
        assert_eq!(prompt.last_user_text, "hello there");
        assert_eq!(prompt.max_output_tokens, Some(12));
        assert_eq!(prompt.stop_sequences, vec!["x".to_owned()]);
        assert_eq!(prompt.seed, Some(7));
        assert_eq!(prompt.thinking_budget, Some(0));
    }

    #[test]
    fn unknown_names_are_reported_with_their_path() {
        let error = refusal(
            r#"{"contents":[{"parts":[{"text":"x"}]}],"foo":1,"generation_config":{"bar":2}}"#,
        );
        assert_eq!(error.code, 400);
        assert!(
            error
                .message
                .contains("Unknown name \"foo\": Cannot find field.")
        );
        assert!(
            error
                .message
                .contains("Unknown name \"bar\" at 'generation_config': Cannot find field.")
        );
        assert_eq!(
            error.details[0]["fieldViolations"][1]["field"],
            "generation_config"
        );
    }

    #[test]
    fn wrong_types_and_values_are_refused() {
        let error = refusal(
            r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"temperature":"hot"}}"#,
        );
        assert_eq!(
            error.message,
            "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\""
        );
        let error = refusal(
            r#"{"contents":[{"role":"system","parts":[{"text":"x"}]}],"generationConfig":{"temperature":2.5,"stopSequences":["a","b","c","d","e","f"]}}"#,
        );
        assert!(
            error
                .message
                .starts_with("* GenerateContentRequest.contents[0].role: ")
        );
        let fields: Vec<&str> = error.details[0]["fieldViolations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "contents[0].role",
                "generation_config.temperature",
                "generation_config.stop_sequences"
            ]
        );
    }

    #[test]
    fn missing_or_empty_contents_are_refused() {
        for body in ["", "{}", r#"{"contents":[]}"#] {
            let error = refusal(body);
            assert_eq!(
                error.message,
                "* GenerateContentRequest.contents: contents is not specified\n"
            );
        }
        assert!(
            refusal(r#"{"contents":[{"parts":[]}]}"#)
                .message
                .contains("contents[0].parts")
        );
        assert!(
            refusal("{not json")
                .message
                .starts_with("Invalid JSON payload received.")
        );
        assert!(
            refusal("[1]")
                .message
                .contains("Root element must be a message")
        );
    }

    #[test]
    fn count_tokens_takes_contents_or_a_request_not_both() {
        let contents = r#"{"contents":[{"parts":[{"text":"abcdefgh"}]}]}"#;
        let counted = count_tokens_request(contents.as_bytes()).unwrap();
        assert_eq!(counted.tokens(), 2);
        let nested = r#"{"generateContentRequest":{"model":"models/gemini-2.5-flash","systemInstruction":{"parts":[{"text":"abcd"}]},"contents":[{"parts":[{"text":"abcdefgh"}]}]}}"#;
        let counted = count_tokens_request(nested.as_bytes()).unwrap();
        assert_eq!(counted.tokens(), 3);
        let both = r#"{"contents":[{"parts":[{"text":"a"}]}],"generateContentRequest":{"contents":[{"parts":[{"text":"a"}]}]}}"#;
        assert!(count_tokens_request(both.as_bytes()).is_err());
    }
}
