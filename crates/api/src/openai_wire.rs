//! The JSON of the OpenAI-compatible routes: the requests as clients send them (checked into a
//! [`Generation`]) and the answers, whole or as stream chunks.
//!
//! Fields this server does not know are ignored, as OpenAI's own server ignores them; fields it
//! knows but does not support (`n` above 1) are refused.

use serde::{Deserialize, Serialize};

use crate::openai::{
    CHAT_TURN_END, FinishReason, Finished, Generation, MAX_STOPS, ModelInfo, OpenAiError,
    chat_prompt,
};

/// `max_tokens` of a completion that does not say (OpenAI's default).
pub(crate) const DEFAULT_MAX_TOKENS: usize = 16;

/// A string, or a list of strings (`prompt`, `stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// What completions and chat completions share.
#[derive(Debug, Deserialize)]
pub(crate) struct Sampling {
    model: String,
    max_tokens: Option<u64>,
    /// The chat API's newer name for `max_tokens`.
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    stop: Option<OneOrMany>,
    n: Option<u64>,
    stream: Option<bool>,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    prompt: OneOrMany,
    #[serde(flatten)]
    sampling: Sampling,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    role: String,
    content: String,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    messages: Vec<Message>,
    #[serde(flatten)]
    sampling: Sampling,
}

/// A request checked against the served model: what to generate, and whether to stream it.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) generation: Generation,
    pub(crate) stream: bool,
}

impl CompletionRequest {
    /// The generation this asks for, or why it is refused.
    pub(crate) fn check(self, model: &ModelInfo, seed: u64) -> Result<Checked, OpenAiError> {
        let prompt = match self.prompt {
            OneOrMany::One(prompt) => prompt,
            OneOrMany::Many(mut prompts) if prompts.len() == 1 => prompts.remove(0),
            OneOrMany::Many(_) => {
                let message = "give one prompt (a string, or a list of one string)";
                return Err(OpenAiError::invalid(Some("prompt"), message));
            }
        };
        let max_tokens = self.sampling.max_tokens.or(Some(DEFAULT_MAX_TOKENS as u64));
        self.sampling
            .check(model, prompt, max_tokens, Vec::new(), seed)
    }
}

impl ChatRequest {
    /// The generation this asks for (the messages rendered with [`chat_prompt`]), or why it is
    /// refused.
    pub(crate) fn check(self, model: &ModelInfo, seed: u64) -> Result<Checked, OpenAiError> {
        if self.messages.is_empty() {
            return Err(OpenAiError::invalid(
                Some("messages"),
                "give at least one message",
            ));
        }
        let roles = ["system", "user", "assistant"];
        if let Some(odd) = self
            .messages
            .iter()
            .find(|m| !roles.contains(&m.role.as_str()))
        {
            let message = format!("role {:?} is not one of system, user, assistant", odd.role);
            return Err(OpenAiError::invalid(Some("messages"), message));
        }
        let prompt = chat_prompt(self.messages.iter().map(|m| (&*m.role, &*m.content)));
        let max_tokens = self
            .sampling
            .max_completion_tokens
            .or(self.sampling.max_tokens);
        let turn_end = vec![CHAT_TURN_END.to_owned()];
        self.sampling
            .check(model, prompt, max_tokens, turn_end, seed)
    }
}

impl Sampling {
    /// Checks the shared fields; `seed` is used when the request gives none, `stop` comes
    /// before the request's own stop strings.
    fn check(
        self,
        model: &ModelInfo,
        prompt: String,
        max_tokens: Option<u64>,
        mut stop: Vec<String>,
        seed: u64,
    ) -> Result<Checked, OpenAiError> {
        if self.model != model.id {
            return Err(OpenAiError::model_not_found(&self.model, &model.id));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(OpenAiError::invalid(Some("n"), "only n = 1 is supported"));
        }
        stop.extend(stop_strings(self.stop)?);
        let generation = Generation {
            prompt,
            max_tokens: max_tokens.map(|m| check_max_tokens(m, model)).transpose()?,
            temperature: check_temperature(self.temperature)?,
            top_p: check_top_p(self.top_p)?,
            seed: self.seed.unwrap_or(seed),
            stop,
        };
        let stream = self.stream.unwrap_or(false);
        Ok(Checked { generation, stream })
    }
}

fn check_max_tokens(max_tokens: u64, model: &ModelInfo) -> Result<usize, OpenAiError> {
    match usize::try_from(max_tokens) {
        Ok(m) if (1..=model.context).contains(&m) => Ok(m),
        _ => Err(OpenAiError::invalid(
            Some("max_tokens"),
            format!(
                "max_tokens {max_tokens} must lie in 1..={}, the model's context",
                model.context
            ),
        )),
    }
}

fn check_temperature(temperature: Option<f32>) -> Result<f32, OpenAiError> {
    let t = temperature.unwrap_or(1.0);
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        let message = format!("temperature {t} must lie in [0, 2]");
        Err(OpenAiError::invalid(Some("temperature"), message))
    }
}

/// `None` for 1 (every token is kept).
fn check_top_p(top_p: Option<f32>) -> Result<Option<f32>, OpenAiError> {
    match top_p {
        None => Ok(None),
        Some(1.0) => Ok(None),
        Some(p) if p > 0.0 && p < 1.0 => Ok(Some(p)),
        Some(p) => Err(OpenAiError::invalid(
            Some("top_p"),
            format!("top_p {p} must lie in (0, 1]"),
        )),
    }
}

fn stop_strings(stop: Option<OneOrMany>) -> Result<Vec<String>, OpenAiError> {
    let stops = match stop {
        None => Vec::new(),
        Some(OneOrMany::One(stop)) => vec![stop],
        Some(OneOrMany::Many(stops)) => stops,
    };
    if stops.len() > MAX_STOPS || stops.iter().any(String::is_empty) {
        let message = format!("give at most {MAX_STOPS} stop strings, none of them empty");
        return Err(OpenAiError::invalid(Some("stop"), message));
    }
    Ok(stops)
}

/// `usage` of an answer.
#[derive(Debug, Serialize)]
pub(crate) struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
}

impl From<&Finished> for Usage {
    fn from(done: &Finished) -> Self {
        Self {
            prompt_tokens: done.prompt_tokens,
            completion_tokens: done.completion_tokens,
            total_tokens: done.prompt_tokens + done.completion_tokens,
        }
    }
}

/// One choice of a completion: its whole text, or a stream chunk's piece of it.
#[derive(Debug, Serialize)]
pub(crate) struct TextChoice {
    pub(crate) text: String,
    pub(crate) index: u32,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<FinishReason>,
}

/// An assistant message, whole (`message`) or a stream chunk's piece of one (`delta`).
#[derive(Debug, Default, Serialize)]
pub(crate) struct ChatMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
}

/// One choice of a chat completion or of a chat stream chunk.
#[derive(Debug, Serialize)]
pub(crate) struct ChatChoice {
    pub(crate) index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) delta: Option<ChatMessage>,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<FinishReason>,
}

/// A completion or chat completion answer, or one chunk of its stream.
#[derive(Debug, Serialize)]
pub(crate) struct Answer<C> {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize)]
pub(crate) struct ModelEntry {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) owned_by: &'static str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub(crate) struct ModelList {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<ModelEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelInfo {
        ModelInfo {
            id: "neurollm-nano".into(),
            context: 256,
        }
    }

    fn completion(json: &str) -> Result<Checked, OpenAiError> {
        let request: CompletionRequest = serde_json::from_str(json).unwrap();
        request.check(&model(), 7)
    }

    #[test]
    fn a_completion_gets_openai_defaults() {
        let checked = completion(r#"{"model":"neurollm-nano","prompt":["Once"]}"#).unwrap();
        let expected = Generation {
            prompt: "Once".into(),
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            temperature: 1.0,
            top_p: None,
            seed: 7,
            stop: Vec::new(),
        };
        assert_eq!(checked.generation, expected);
        assert!(!checked.stream);
    }

    #[test]
    fn out_of_range_fields_name_their_param() {
        let param = |json: &str| completion(json).unwrap_err().error.param;
        let m = r#""model":"neurollm-nano","prompt":"a""#;
        assert_eq!(
            param(&format!("{{{m},\"max_tokens\":257}}")),
            Some("max_tokens")
        );
        assert_eq!(
            param(&format!("{{{m},\"max_tokens\":0}}")),
            Some("max_tokens")
        );
        assert_eq!(
            param(&format!("{{{m},\"temperature\":2.5}}")),
            Some("temperature")
        );
        assert_eq!(param(&format!("{{{m},\"top_p\":0}}")), Some("top_p"));
        assert_eq!(param(&format!("{{{m},\"n\":2}}")), Some("n"));
        assert_eq!(param(&format!("{{{m},\"stop\":[\"\"]}}")), Some("stop"));
        let two = r#"{"model":"neurollm-nano","prompt":["a","b"]}"#;
        assert_eq!(param(two), Some("prompt"));
        let other = r#"{"model":"gpt-4","prompt":"a"}"#;
        assert_eq!(
            completion(other).unwrap_err().error.code,
            Some("model_not_found")
        );
    }

    #[test]
    fn a_chat_is_rendered_and_stops_at_the_next_user_turn() {
        let json = r#"{"model":"neurollm-nano","stream":true,"stop":"END","max_completion_tokens":9,
            "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#;
        let request: ChatRequest = serde_json::from_str(json).unwrap();
        let checked = request.check(&model(), 1).unwrap();
        assert!(checked.stream);
        assert_eq!(
            checked.generation.prompt,
            "system: Be brief.\nuser: Hi\nassistant:"
        );
        assert_eq!(checked.generation.stop, [CHAT_TURN_END, "END"]);
        assert_eq!(checked.generation.max_tokens, Some(9));
        let odd = r#"{"model":"neurollm-nano","messages":[{"role":"robot","content":"x"}]}"#;
        let request: ChatRequest = serde_json::from_str(odd).unwrap();
        assert_eq!(
            request.check(&model(), 1).unwrap_err().error.param,
            Some("messages")
        );
    }
}
