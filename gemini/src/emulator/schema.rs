//! The request messages the emulator accepts, field by field, as in Google's v1beta protos.
//!
//! Every field is known by its JSON name (lowerCamelCase) and its proto name (snake_case); the
//! service accepts both, and so does the emulator. Paths in error messages use the proto names.

/// A protobuf message: its full type name (for "Invalid value" messages) and its fields.
pub struct Message {
    pub type_name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    /// The field a JSON key names, in either spelling.
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|field| field.json == key || field.proto == key)
    }
}

/// One field of a message.
pub struct Field {
    /// lowerCamelCase, the spelling the emulator normalises to.
    pub json: &'static str,
    /// snake_case, the spelling used in error paths.
    pub proto: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

/// An enum type: its full name and its value names.
pub struct EnumType {
    pub type_name: &'static str,
    pub values: &'static [&'static str],
}

/// What a field holds.
pub enum Kind {
    String,
    /// base64 text in JSON.
    Bytes,
    Float,
    Int32,
    Bool,
    Enum(&'static EnumType),
    Message(&'static Message),
    /// Free-form JSON (`google.protobuf.Struct`, schemas, tools): not checked further.
    AnyJson,
}

const fn single(json: &'static str, proto: &'static str, kind: Kind) -> Field {
    Field {
        json,
        proto,
        kind,
        repeated: false,
    }
}

const fn repeated(json: &'static str, proto: &'static str, kind: Kind) -> Field {
    Field {
        json,
        proto,
        kind,
        repeated: true,
    }
}

const PACKAGE: &str = "type.googleapis.com/google.ai.generativelanguage.v1beta.";

macro_rules! type_name {
    ($name:literal) => {
        concat!(
            "type.googleapis.com/google.ai.generativelanguage.v1beta.",
            $name
        )
    };
}

/// `HarmCategory` values a safety setting may name.
pub static HARM_CATEGORY: EnumType = EnumType {
    type_name: type_name!("HarmCategory"),
    values: &[
        "HARM_CATEGORY_UNSPECIFIED",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    ],
};

/// `SafetySetting.HarmBlockThreshold` values.
pub static HARM_BLOCK_THRESHOLD: EnumType = EnumType {
    type_name: type_name!("SafetySetting.HarmBlockThreshold"),
    values: &[
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
        "BLOCK_LOW_AND_ABOVE",
        "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH",
        "BLOCK_NONE",
        "OFF",
    ],
};

static MEDIA_RESOLUTION: EnumType = EnumType {
    type_name: type_name!("GenerationConfig.MediaResolution"),
    values: &[
        "MEDIA_RESOLUTION_UNSPECIFIED",
        "MEDIA_RESOLUTION_LOW",
        "MEDIA_RESOLUTION_MEDIUM",
        "MEDIA_RESOLUTION_HIGH",
    ],
};

static MODALITY: EnumType = EnumType {
    type_name: type_name!("GenerationConfig.Modality"),
    values: &["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"],
};

static THINKING_LEVEL: EnumType = EnumType {
    type_name: type_name!("ThinkingConfig.ThinkingLevel"),
    values: &["THINKING_LEVEL_UNSPECIFIED", "LOW", "MEDIUM", "HIGH"],
};

static BLOB: Message = Message {
    type_name: type_name!("Blob"),
    fields: &[
        single("mimeType", "mime_type", Kind::String),
        single("data", "data", Kind::Bytes),
    ],
};

static FILE_DATA: Message = Message {
    type_name: type_name!("FileData"),
    fields: &[
        single("mimeType", "mime_type", Kind::String),
        single("fileUri", "file_uri", Kind::String),
    ],
};

static FUNCTION_CALL: Message = Message {
    type_name: type_name!("FunctionCall"),
    fields: &[
        single("id", "id", Kind::String),
        single("name", "name", Kind::String),
        single("args", "args", Kind::AnyJson),
    ],
};

static FUNCTION_RESPONSE: Message = Message {
    type_name: type_name!("FunctionResponse"),
    fields: &[
        single("id", "id", Kind::String),
        single("name", "name", Kind::String),
        single("response", "response", Kind::AnyJson),
        single("willContinue", "will_continue", Kind::Bool),
        single("scheduling", "scheduling", Kind::String),
    ],
};

static VIDEO_METADATA: Message = Message {
    type_name: type_name!("VideoMetadata"),
    fields: &[
        single("startOffset", "start_offset", Kind::String),
        single("endOffset", "end_offset", Kind::String),
        single("fps", "fps", Kind::Float),
    ],
};

static PART: Message = Message {
    type_name: type_name!("Part"),
    fields: &[
        single("text", "text", Kind::String),
        single("inlineData", "inline_data", Kind::Message(&BLOB)),
        single(
            "functionCall",
            "function_call",
            Kind::Message(&FUNCTION_CALL),
        ),
        single(
            "functionResponse",
            "function_response",
            Kind::Message(&FUNCTION_RESPONSE),
        ),
        single("fileData", "file_data", Kind::Message(&FILE_DATA)),
        single("executableCode", "executable_code", Kind::AnyJson),
        single(
            "codeExecutionResult",
            "code_execution_result",
            Kind::AnyJson,
        ),
        single(
            "videoMetadata",
            "video_metadata",
            Kind::Message(&VIDEO_METADATA),
        ),
        single("thought", "thought", Kind::Bool),
        single("thoughtSignature", "thought_signature", Kind::Bytes),
    ],
};

/// `Content`: a role and its parts.
pub static CONTENT: Message = Message {
    type_name: type_name!("Content"),
    fields: &[
        repeated("parts", "parts", Kind::Message(&PART)),
        single("role", "role", Kind::String),
    ],
};

static THINKING_CONFIG: Message = Message {
    type_name: type_name!("ThinkingConfig"),
    fields: &[
        single("includeThoughts", "include_thoughts", Kind::Bool),
        single("thinkingBudget", "thinking_budget", Kind::Int32),
        single(
            "thinkingLevel",
            "thinking_level",
            Kind::Enum(&THINKING_LEVEL),
        ),
    ],
};

static GENERATION_CONFIG: Message = Message {
    type_name: type_name!("GenerationConfig"),
    fields: &[
        repeated("stopSequences", "stop_sequences", Kind::String),
        single("responseMimeType", "response_mime_type", Kind::String),
        single("responseSchema", "response_schema", Kind::AnyJson),
        single("responseJsonSchema", "response_json_schema", Kind::AnyJson),
        repeated(
            "responseModalities",
            "response_modalities",
            Kind::Enum(&MODALITY),
        ),
        single("candidateCount", "candidate_count", Kind::Int32),
        single("maxOutputTokens", "max_output_tokens", Kind::Int32),
        single("temperature", "temperature", Kind::Float),
        single("topP", "top_p", Kind::Float),
        single("topK", "top_k", Kind::Int32),
        single("seed", "seed", Kind::Int32),
        single("presencePenalty", "presence_penalty", Kind::Float),
        single("frequencyPenalty", "frequency_penalty", Kind::Float),
        single("responseLogprobs", "response_logprobs", Kind::Bool),
        single("logprobs", "logprobs", Kind::Int32),
        single(
            "enableEnhancedCivicAnswers",
            "enable_enhanced_civic_answers",
            Kind::Bool,
        ),
        single("speechConfig", "speech_config", Kind::AnyJson),
        single(
            "thinkingConfig",
            "thinking_config",
            Kind::Message(&THINKING_CONFIG),
        ),
        single(
            "mediaResolution",
            "media_resolution",
            Kind::Enum(&MEDIA_RESOLUTION),
        ),
    ],
};

static SAFETY_SETTING: Message = Message {
    type_name: type_name!("SafetySetting"),
    fields: &[
        single("category", "category", Kind::Enum(&HARM_CATEGORY)),
        single("threshold", "threshold", Kind::Enum(&HARM_BLOCK_THRESHOLD)),
    ],
};

/// `GenerateContentRequest`, the body of `generateContent` and `streamGenerateContent`.
pub static GENERATE_CONTENT_REQUEST: Message = Message {
    type_name: type_name!("GenerateContentRequest"),
    fields: &[
        single("model", "model", Kind::String),
        single(
            "systemInstruction",
            "system_instruction",
            Kind::Message(&CONTENT),
        ),
        repeated("contents", "contents", Kind::Message(&CONTENT)),
        repeated("tools", "tools", Kind::AnyJson),
        single("toolConfig", "tool_config", Kind::AnyJson),
        repeated(
            "safetySettings",
            "safety_settings",
            Kind::Message(&SAFETY_SETTING),
        ),
        single(
            "generationConfig",
            "generation_config",
            Kind::Message(&GENERATION_CONFIG),
        ),
        single("cachedContent", "cached_content", Kind::String),
    ],
};

/// `CountTokensRequest`: either `contents` or a whole `generateContentRequest`.
pub static COUNT_TOKENS_REQUEST: Message = Message {
    type_name: type_name!("CountTokensRequest"),
    fields: &[
        repeated("contents", "contents", Kind::Message(&CONTENT)),
        single(
            "generateContentRequest",
            "generate_content_request",
            Kind::Message(&GENERATE_CONTENT_REQUEST),
        ),
    ],
};

/// The short name of a message type (`GenerateContentRequest`), as Google's validation messages use it.
pub fn short_name(message: &Message) -> &'static str {
    message
        .type_name
        .strip_prefix(PACKAGE)
        .unwrap_or(message.type_name)
}
