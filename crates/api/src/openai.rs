//! What the OpenAI-compatible routes ask of the node ([`Completions`]), the checked request they
//! hand it ([`Generation`]), what it answers ([`Finished`], [`CompletionError`]), and errors in
//! OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
//!
//! This crate does not depend on the model or the tokenizer; the daemon implements the trait.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Generations that may run at once; one more is answered 429 (OpenAI's clients retry it).
pub const GENERATIONS_AT_ONCE: usize = 2;

/// Most bytes in a `/v1` request body; a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Most stop strings in one request (as OpenAI allows).
pub const MAX_STOPS: usize = 4;

/// The chat template: each message on its own line as `role: content`, then `assistant:` for the
/// model to continue; generation also stops at [`CHAT_TURN_END`], where the model would start
/// the user's next turn. The model is small and not instruction-tuned: it continues text.
pub fn chat_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut prompt = String::new();
    for (role, content) in messages {
        prompt.push_str(role);
        prompt.push_str(": ");
        prompt.push_str(content);
        prompt.push('\n');
    }
    prompt.push_str("assistant:");
    prompt
}

/// Where a chat answer ends: the start of the next user turn in the [`chat_prompt`] template.
pub const CHAT_TURN_END: &str = "\nuser:";

/// The model a node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name requests must give as `model`, e.g. `neurollm-nano`.
    pub id: String,
    /// Most tokens a prompt and its completion may hold together.
    pub context: usize,
}

/// One generation, checked by the routes: the prompt is text (a chat is already rendered with
/// [`chat_prompt`]), the sampling settings are in range, `max_tokens` is at most the context.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The text to continue.
    pub prompt: String,
    /// Most new tokens; `None` fills the rest of the context.
    pub max_tokens: Option<usize>,
    /// Softmax temperature in [0, 2]; 0 picks the most likely token.
    pub temperature: f32,
    /// Nucleus sampling, in (0, 1); `None` keeps every token.
    pub top_p: Option<f32>,
    /// The sampling seed: the same seed, model and request give the same text.
    pub seed: u64,
    /// Strings that end the text; none of a stop string is ever returned.
    pub stop: Vec<String>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended the text, or a stop string did.
    Stop,
    /// `max_tokens` (or the context) ran out.
    Length,
}

/// How a generation ended and what it counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub reason: FinishReason,
}

/// What the OpenAI-compatible routes ask of the node; the daemon implements it.
pub trait Completions: Send + Sync + 'static {
    /// The model served.
    fn model(&self) -> ModelInfo;

    /// Runs `request` to the end, handing each new piece of text to `on_text` as soon as it is
    /// final; stops early when `on_text` returns `false` (the client went away). The server
    /// calls it on a blocking thread, at most [`GENERATIONS_AT_ONCE`] at a time.
    fn complete(
        &self,
        request: &Generation,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Finished, CompletionError>;
}

/// Why a generation was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// 400 `context_length_exceeded`: the prompt and the tokens asked for do not fit.
    #[error(
        "this model's context holds {context} tokens, but the prompt has {prompt} and {max_tokens} more were asked for; shorten the prompt or lower max_tokens"
    )]
    ContextLength {
        /// The context, in tokens.
        context: usize,
        /// Tokens in the prompt.
        prompt: usize,
        /// Tokens asked for (at least one).
        max_tokens: usize,
    },
    /// 400: the request cannot be run (an empty prompt).
    #[error("{0}")]
    BadRequest(String),
    /// 503: the node cannot generate yet (its tokenizer has not arrived).
    #[error("{0}")]
    Unavailable(String),
    /// 500: generation failed.
    #[error("generation failed: {0}")]
    Failed(String),
}

/// An error as OpenAI answers it: a status, and `{"error": {...}}` as the body (or as the
/// `data:` of a server-sent event when a stream fails part-way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct OpenAiError {
    #[serde(skip)]
    pub(crate) status: StatusCode,
    pub(crate) error: ErrorDetail,
}

/// The `error` object of OpenAI's error answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorDetail {
    pub(crate) message: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) param: Option<&'static str>,
    pub(crate) code: Option<&'static str>,
}

impl OpenAiError {
    /// An error of OpenAI's `type` `kind`, with no `param` and no `code`.
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: String) -> Self {
        let error = ErrorDetail {
            message,
            kind,
            param: None,
            code: None,
        };
        Self { status, error }
    }

    /// 400 `invalid_request_error`, about `param` when one is to blame.
    pub(crate) fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message.into(),
        );
        error.error.param = param;
        error
    }

    /// 404 `model_not_found`.
    pub(crate) fn model_not_found(asked: &str, served: &str) -> Self {
        let message = format!("the model {asked:?} does not exist; this node serves {served:?}");
        let mut error = Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message);
        error.error.param = Some("model");
        error.error.code = Some("model_not_found");
        error
    }

    /// 413: the body is larger than [`MAX_BODY_BYTES`].
    pub(crate) fn too_large() -> Self {
        let message =
            format!("the request body is over {MAX_BODY_BYTES} bytes; shorten the prompt");
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            message,
        )
    }

    /// 429: [`GENERATIONS_AT_ONCE`] generations are running.
    pub(crate) fn busy() -> Self {
        let message = format!(
            "this node is running {GENERATIONS_AT_ONCE} generations already; retry in a moment"
        );
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message);
        error.error.code = Some("rate_limit_exceeded");
        error
    }

    /// 503: this node serves no model.
    pub(crate) fn no_model() -> Self {
        let message = "this node serves no model".to_owned();
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
    }
}

impl From<CompletionError> for OpenAiError {
    fn from(err: CompletionError) -> Self {
        let message = err.to_string();
        match err {
            CompletionError::ContextLength { .. } => {
                let mut error = Self::invalid(Some("prompt"), message);
                error.error.code = Some("context_length_exceeded");
                error
            }
            CompletionError::BadRequest(_) => Self::invalid(Some("prompt"), message),
            CompletionError::Unavailable(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
            }
            CompletionError::Failed(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
            }
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            let retry = HeaderValue::from_static("1");
            response.headers_mut().insert(header::RETRY_AFTER, retry);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_template_is_role_lines_then_assistant() {
        let prompt = chat_prompt([("system", "Be brief."), ("user", "Hi")]);
        assert_eq!(prompt, "system: Be brief.\nuser: Hi\nassistant:");
    }

    #[test]
    fn completion_errors_map_to_openai_statuses() {
        let status = |err: CompletionError| OpenAiError::from(err).status;
        let long = CompletionError::ContextLength {
            context: 8,
            prompt: 9,
            max_tokens: 1,
        };
        assert_eq!(
            OpenAiError::from(long.clone()).error.code,
            Some("context_length_exceeded")
        );
        assert_eq!(status(long), StatusCode::BAD_REQUEST);
        let unavailable = CompletionError::Unavailable("no tokenizer".into());
        assert_eq!(status(unavailable), StatusCode::SERVICE_UNAVAILABLE);
        let failed = CompletionError::Failed("nan".into());
        assert_eq!(status(failed), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
