//! The `/v1/*` handlers: parse and check the request, run the generation on a blocking thread
//! (at most [`GENERATIONS_AT_ONCE`] at once, 429 past that), and answer the whole text as JSON or
//! its pieces as server-sent events (`data: {...}`, then `data: [DONE]`).

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, stream};
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};

use crate::Shared;
use crate::openai::{Completions, Finished, GENERATIONS_AT_ONCE, OpenAiError};
use crate::openai_wire::{
    Answer, ChatChoice, ChatMessage, ChatRequest, Checked, CompletionRequest, ModelEntry,
    ModelList, TextChoice, Usage,
};

type Reply = Result<Response, OpenAiError>;

/// What the OpenAI-compatible routes need: the node's [`Completions`] and the permits that bound
/// how many generations run at once.
#[derive(Clone)]
pub(crate) struct OpenAi {
    completions: Arc<dyn Completions>,
    permits: Arc<Semaphore>,
    /// When the server started (Unix seconds): the `created` of `/v1/models`.
    started: u64,
}

impl OpenAi {
    pub(crate) fn new(completions: Arc<dyn Completions>) -> Self {
        Self {
            completions,
            permits: Arc::new(Semaphore::new(GENERATIONS_AT_ONCE)),
            started: unix_now(),
        }
    }
}

pub(crate) async fn models(State(shared): State<Shared>) -> Reply {
    let openai = serving(&shared)?;
    let entry = ModelEntry {
        id: openai.completions.model().id,
        object: "model",
        created: openai.started,
        owned_by: "neuroshard",
    };
    let list = ModelList {
        object: "list",
        data: vec![entry],
    };
    Ok(Json(list).into_response())
}

pub(crate) async fn completions(
    State(shared): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let openai = serving(&shared)?;
    let request: CompletionRequest = parse(body)?;
    let checked = request.check(&openai.completions.model(), random_u64())?;
    run(openai, Kind::Text, checked).await
}

pub(crate) async fn chat(
    State(shared): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let openai = serving(&shared)?;
    let request: ChatRequest = parse(body)?;
    let checked = request.check(&openai.completions.model(), random_u64())?;
    run(openai, Kind::Chat, checked).await
}

/// A `/v1` route that does not exist, in OpenAI's error shape.
pub(crate) async fn not_found() -> OpenAiError {
    let message = "no such route; see GET /v1/models".to_owned();
    OpenAiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
}

fn serving(shared: &Shared) -> Result<&OpenAi, OpenAiError> {
    shared.openai.as_ref().ok_or_else(OpenAiError::no_model)
}

/// The body as JSON `T`; 400 (413 when too large) in OpenAI's shape otherwise.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, OpenAiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => OpenAiError::too_large(),
        _ => OpenAiError::invalid(None, rejection.body_text()),
    })?;
    serde_json::from_slice(&body).map_err(|err| {
        OpenAiError::invalid(None, format!("the body is not a valid request: {err}"))
    })
}

/// A fresh random number, for a seed a request does not give and for answer ids (no global
/// RNG here: the standard library's per-map random keys).
fn random_u64() -> u64 {
    RandomState::new().hash_one(0u8)
}

fn unix_now() -> u64 {
    // The `created` fields of answers are wall-clock times; nothing deterministic reads them.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_secs())
}

/// What a generation sends back to its handler.
enum Piece {
    Text(String),
    Done(Result<Finished, OpenAiError>),
}

/// Completion or chat completion: the shape of the answer.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Chat,
}

/// Starts the generation on a blocking thread, then answers it whole or as a stream.
async fn run(openai: &OpenAi, kind: Kind, checked: Checked) -> Reply {
    let permit = Arc::clone(&openai.permits)
        .try_acquire_owned()
        .map_err(|_| OpenAiError::busy())?;
    let (tx, mut pieces) = mpsc::channel(64);
    let completions = Arc::clone(&openai.completions);
    let generation = checked.generation;
    tokio::task::spawn_blocking(move || {
        let mut send = |text: &str| tx.blocking_send(Piece::Text(text.to_owned())).is_ok();
        let done = completions.complete(&generation, &mut send);
        // Free the slot before the client can see the answer, so a client that waits for each
        // answer before asking again is never told 429.
        drop(permit);
        let _ = tx.blocking_send(Piece::Done(done.map_err(OpenAiError::from)));
    });
    let head = Head {
        kind,
        id: format!("{}-{:016x}", kind.id_prefix(), random_u64()),
        created: unix_now(),
        model: openai.completions.model().id,
    };
    if !checked.stream {
        return whole(head, &mut pieces).await;
    }
    // The first piece decides the answer: a refusal is an error status, anything else a stream.
    let first = pieces.recv().await.unwrap_or_else(crashed);
    if let Piece::Done(Err(err)) = first {
        return Err(err);
    }
    Ok(Sse::new(events(head, first, pieces)).into_response())
}

fn crashed() -> Piece {
    let message = "the generation stopped unexpectedly".to_owned();
    let error = OpenAiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message);
    Piece::Done(Err(error))
}

/// Collects the text and answers it as one JSON object.
async fn whole(head: Head, pieces: &mut mpsc::Receiver<Piece>) -> Reply {
    let mut text = String::new();
    loop {
        match pieces.recv().await.unwrap_or_else(crashed) {
            Piece::Text(piece) => text.push_str(&piece),
            Piece::Done(done) => return Ok(Json(head.whole(text, &done?)).into_response()),
        }
    }
}

/// The stream's events: the first piece, the rest as they come, then `[DONE]` (or an error
/// event, when the generation fails part-way). It ends when the generation's thread drops its
/// sender, right after its last piece.
fn events(
    head: Head,
    first: Piece,
    rest: mpsc::Receiver<Piece>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let rest = stream::unfold(rest, |mut rx| async {
        let piece = rx.recv().await?;
        Some((piece, rx))
    });
    stream::iter([first])
        .chain(rest)
        .flat_map(move |piece| stream::iter(head.events(piece)))
        .map(Ok)
}

/// What every answer and chunk of one generation repeats.
#[derive(Debug, Clone)]
struct Head {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Kind {
    fn id_prefix(self) -> &'static str {
        match self {
            Kind::Text => "cmpl",
            Kind::Chat => "chatcmpl",
        }
    }
}

impl Head {
    fn answer<C>(&self, object: &'static str, choice: C, usage: Option<Usage>) -> Answer<C> {
        Answer {
            id: self.id.clone(),
            object,
            created: self.created,
            model: self.model.clone(),
            choices: vec![choice],
            usage,
        }
    }

    /// The whole answer.
    fn whole(&self, text: String, done: &Finished) -> serde_json::Value {
        let usage = Some(Usage::from(done));
        let reason = Some(done.reason);
        let value = match self.kind {
            Kind::Text => serde_json::to_value(self.answer(
                "text_completion",
                text_choice(text, reason),
                usage,
            )),
            Kind::Chat => {
                let message = ChatMessage {
                    role: Some("assistant"),
                    content: Some(text),
                };
                let choice = ChatChoice {
                    index: 0,
                    message: Some(message),
                    delta: None,
                    logprobs: None,
                    finish_reason: reason,
                };
                serde_json::to_value(self.answer("chat.completion", choice, usage))
            }
        };
        value.expect("answers serialise")
    }

    /// The events one piece becomes: a text chunk; or the last chunk (with the finish reason
    /// and usage) and `[DONE]`; or an error event.
    fn events(&self, piece: Piece) -> Vec<Event> {
        match piece {
            Piece::Text(text) => vec![self.chunk(Some(text), None)],
            Piece::Done(Ok(done)) => vec![
                self.chunk(None, Some(&done)),
                Event::default().data("[DONE]"),
            ],
            Piece::Done(Err(err)) => vec![json_event(&err)],
        }
    }

    /// A stream chunk carrying `text`, or the finishing one.
    fn chunk(&self, text: Option<String>, done: Option<&Finished>) -> Event {
        let usage = done.map(Usage::from);
        let reason = done.map(|d| d.reason);
        match self.kind {
            Kind::Text => {
                let choice = text_choice(text.unwrap_or_default(), reason);
                json_event(&self.answer("text_completion", choice, usage))
            }
            Kind::Chat => {
                let delta = ChatMessage {
                    role: Some("assistant"),
                    content: text,
                };
                let choice = ChatChoice {
                    index: 0,
                    message: None,
                    delta: Some(delta),
                    logprobs: None,
                    finish_reason: reason,
                };
                json_event(&self.answer("chat.completion.chunk", choice, usage))
            }
        }
    }
}

fn text_choice(text: String, finish_reason: Option<crate::FinishReason>) -> TextChoice {
    TextChoice {
        text,
        index: 0,
        logprobs: None,
        finish_reason,
    }
}

fn json_event<T: serde::Serialize>(value: &T) -> Event {
    Event::default()
        .json_data(value)
        .expect("answers serialise")
}
