//! The Gemini API routes: `POST /v1beta/models/{model}:{method}` for `generateContent`,
//! `streamGenerateContent` and `countTokens`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use super::composer;
use super::plan::{self, Twists, Whole};
use super::quota::Moment;
use super::reply::{self, ReplyHeader};
use super::rpc_error::RpcError;
use super::state::{Admission, Candidacy, Pacing, Shared};
use super::stats::{Endpoint, Outcome, RequestRecord};
use super::stream::{self, Framing};
use super::triggers::Triggers;
use super::validate::{self, Prompt};

/// The header the SDKs send the key in.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/v1beta/models/{tail}", web::post().to(model_call));
}

/// One API request on its way: who answers it, and what to write in the log.
struct Call {
    shared: Arc<Shared>,
    model: String,
    endpoint: Endpoint,
    arrived: Moment,
}

impl Call {
    fn record(&self, status: u16, outcome: Outcome, prompt_tokens: u32, injected: bool) {
        self.shared.record(RequestRecord {
            at_ms: self.shared.clock_ms(self.arrived.instant),
            model: self.model.clone(),
            endpoint: self.endpoint,
            status,
            outcome,
            prompt_tokens,
            injected,
        });
    }

    fn refuse(&self, error: &RpcError) -> HttpResponse {
        self.record(error.code, Outcome::for_status(error.code), 0, false);
        error.to_response()
    }
}

async fn model_call(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let arrived = Moment::now();
    let tail = request.match_info().get("tail").unwrap_or_default();
    let (model, method) = tail.rsplit_once(':').unwrap_or((tail, ""));
    let query = query_pairs(request.query_string());
    let call = Call {
        shared: shared.into_inner(),
        model: model.to_owned(),
        endpoint: Endpoint::from_method(method),
        arrived,
    };
    let presented_key = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_value(&query, "key"))
        .filter(|key| !key.is_empty());
    let (accepted_key, served) = call.shared.gate(model);
    let Some(presented_key) = presented_key else {
        return call.refuse(&RpcError::no_api_key());
    };
    if accepted_key.is_some_and(|accepted| accepted != presented_key) {
        return call.refuse(&RpcError::api_key_invalid());
    }
    if call.endpoint == Endpoint::Other {
        return call.refuse(&RpcError::no_such_method(request.path()));
    }
    if !served {
        return call.refuse(&RpcError::model_not_found(model, method));
    }
    match call.endpoint {
        Endpoint::CountTokens => count_tokens(&call, &body),
        Endpoint::StreamGenerateContent => {
            let framing = if query_value(&query, "alt").as_deref() == Some("sse") {
                Framing::Sse
            } else {
                Framing::JsonArray
            };
            generate(&call, &body, Some(framing)).await
        }
        Endpoint::GenerateContent | Endpoint::Other => generate(&call, &body, None).await,
    }
}

/// Any other path: a JSON 404, counted as an `other` request.
pub async fn unknown_path(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let call = Call {
        shared: shared.into_inner(),
        model: String::new(),
        endpoint: Endpoint::Other,
        arrived: Moment::now(),
    };
    call.refuse(&RpcError::no_such_method(request.path()))
}

fn count_tokens(call: &Call, body: &[u8]) -> HttpResponse {
    match validate::count_tokens_request(body) {
        Err(error) => call.refuse(&error),
        Ok(prompt) => {
            let tokens = prompt.tokens();
            call.record(200, Outcome::Ok, tokens, false);
            HttpResponse::Ok()
                .content_type("application/json; charset=UTF-8")
                .body(serde_json::to_string(&reply::token_count(tokens)).unwrap_or_default())
        }
    }
}

async fn generate(call: &Call, body: &[u8], framing: Option<Framing>) -> HttpResponse {
    let prompt = match validate::generate_content_request(body) {
        Ok(prompt) => prompt,
        Err(error) => return call.refuse(&error),
    };
    let prompt_tokens = prompt.tokens();
    let admission = call.shared.admit(&Candidacy {
        model: &call.model,
        streaming: framing.is_some(),
        prompt_tokens,
        arrived: call.arrived,
    });
    let pacing = match admission {
        Admission::Admitted(pacing) => pacing,
        Admission::Refused {
            error,
            outcome,
            injected,
            delay,
        } => {
            call.record(error.code, outcome, prompt_tokens, injected);
            pause(delay).await;
            return error.to_response();
        }
    };
    let answer = composer::compose(&prompt, pacing.default_output_tokens);
    let header = ReplyHeader {
        model: call.model.clone(),
        response_id: reply::new_response_id(),
        prompt_tokens,
        thoughts_tokens: thoughts_tokens(&prompt, pacing.thoughts_tokens),
    };
    let twists = Twists {
        triggers: Triggers::scan(&prompt.last_user_text),
        stall: pacing.stall,
    };
    match framing {
        Some(framing) => {
            let (steps, outcome) =
                plan::stream_steps(&header, &answer, twists, pacing.chunk_tokens);
            call.record(200, outcome, prompt_tokens, pacing.injected);
            HttpResponse::Ok()
                .content_type(framing.content_type())
                .insert_header(("cache-control", "no-cache"))
                .streaming(stream::body(
                    steps,
                    framing,
                    pacing,
                    Arc::clone(&call.shared),
                ))
        }
        None => {
            let (whole, outcome) = plan::whole_answer(&header, &answer, twists);
            let status = match &whole {
                Whole::Error(error) => error.code,
                Whole::Reply { .. } | Whole::Stall => 200,
            };
            call.record(status, outcome, prompt_tokens, pacing.injected);
            send_whole(call, whole, &pacing).await
        }
    }
}

/// A plain answer comes when the whole text would have been produced.
async fn send_whole(call: &Call, whole: Whole, pacing: &Pacing) -> HttpResponse {
    let before_anything = pacing.delay + pacing.first_chunk_latency;
    match whole {
        Whole::Reply {
            reply,
            output_tokens,
        } => {
            pause(before_anything + pacing.time_for(output_tokens)).await;
            call.shared.add_output_tokens(output_tokens);
            HttpResponse::Ok()
                .content_type("application/json; charset=UTF-8")
                .body(reply.to_json())
        }
        Whole::Error(error) => {
            pause(before_anything).await;
            error.to_response()
        }
        Whole::Stall => {
            std::future::pending::<()>().await;
            HttpResponse::NoContent().finish()
        }
    }
}

/// `thinkingConfig.thinkingBudget` caps the configured thoughts (0 turns thinking off).
fn thoughts_tokens(prompt: &Prompt, configured: u32) -> u32 {
    match prompt.thinking_budget {
        Some(budget) if budget >= 0 => configured.min(u32::try_from(budget).unwrap_or(u32::MAX)),
        _ => configured,
    }
}

async fn pause(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

fn query_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}
