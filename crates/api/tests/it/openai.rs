//! The OpenAI-compatible routes over a real socket, against a small in-test [`Completions`]:
//! the answers' JSON, server-sent events ending in `[DONE]`, OpenAI's error shape with the right
//! statuses, and the bound on generations at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use expect_test::expect;
use neuroshard_api::{
    Backends, CompletionError, Completions, FinishReason, Finished, GENERATIONS_AT_ONCE,
    Generation, MAX_BODY_BYTES, ModelInfo, Status, serve_with,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::{Response, get, post};

const CONTEXT: usize = 32;

/// A "model" whose tokens are the prompt's words and whose output is ` w<seed>.<i>` per token
/// (seed 0 when greedy). The prompt `fail` fails after one piece; `hold` waits for the gate.
#[derive(Default)]
struct FakeModel {
    running: AtomicUsize,
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Completions for FakeModel {
    fn model(&self) -> ModelInfo {
        ModelInfo {
            id: "neurollm-test".into(),
            context: CONTEXT,
        }
    }

    fn complete(
        &self,
        request: &Generation,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Finished, CompletionError> {
        let prompt = request.prompt.split_whitespace().count();
        let max_tokens = request.max_tokens.unwrap_or(CONTEXT.saturating_sub(prompt));
        if prompt + max_tokens > CONTEXT {
            let context = CONTEXT;
            return Err(CompletionError::ContextLength {
                context,
                prompt,
                max_tokens,
            });
        }
        if request.prompt == "hold" {
            self.running.fetch_add(1, Ordering::SeqCst);
            let gate = self.gate.lock().unwrap();
            gate.as_ref().unwrap().recv().unwrap();
        }
        let seed = if request.temperature == 0.0 {
            0
        } else {
            request.seed
        };
        for i in 0..max_tokens {
            on_text(&format!(" w{seed}.{i}"));
            if request.prompt == "fail" {
                return Err(CompletionError::Failed("the fake broke".into()));
            }
        }
        Ok(Finished {
            prompt_tokens: prompt,
            completion_tokens: max_tokens,
            reason: FinishReason::Length,
        })
    }
}

async fn start(model: Arc<FakeModel>) -> SocketAddr {
    let (tx, rx) = watch::channel(Status::default());
    std::mem::forget(tx);
    let backends = Backends {
        ledger: None,
        completions: Some(model),
    };
    let addr = "127.0.0.1:0".parse().unwrap();
    serve_with(addr, rx, backends).await.unwrap().0
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Response {
    post(addr, path, body.to_string().as_bytes()).await
}

/// A completion request for `a b` with `fields` added or replaced.
async fn ask(addr: SocketAddr, fields: Value) -> Response {
    let mut body = json!({"model": "neurollm-test", "prompt": "a b"});
    let fields = fields.as_object().unwrap().clone();
    body.as_object_mut().unwrap().extend(fields);
    post_json(addr, "/v1/completions", &body).await
}

fn json_of(response: &Response) -> Value {
    serde_json::from_str(&response.body).unwrap()
}

/// The `data:` of each server-sent event; a chunked body's size lines are skipped.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The answer with its random id and clock time replaced, for snapshots.
fn scrubbed(mut value: Value) -> String {
    value["id"] = json!("<id>");
    value["created"] = json!(0);
    serde_json::to_string_pretty(&value).unwrap()
}

#[tokio::test]
async fn models_lists_the_one_served() {
    let addr = start(Arc::default()).await;
    let mut value = json_of(&get(addr, "/v1/models").await);
    assert!(value["data"][0]["created"].as_u64().unwrap() > 1_700_000_000);
    value["data"][0]["created"] = json!(0);
    expect![[r#"
        {
          "data": [
            {
              "created": 0,
              "id": "neurollm-test",
              "object": "model",
              "owned_by": "neuroshard"
            }
          ],
          "object": "list"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&value).unwrap());
}

#[tokio::test]
async fn a_completion_has_openai_shape_and_no_seed_draws_one() {
    let addr = start(Arc::default()).await;
    let request = json!({"model": "neurollm-test", "prompt": "a b c", "max_tokens": 2, "seed": 5});
    let response = post_json(addr, "/v1/completions", &request).await;
    assert_eq!(response.code, 200);
    let value = json_of(&response);
    assert!(value["id"].as_str().unwrap().starts_with("cmpl-"));
    expect![[r#"
        {
          "choices": [
            {
              "finish_reason": "length",
              "index": 0,
              "logprobs": null,
              "text": " w5.0 w5.1"
            }
          ],
          "created": 0,
          "id": "<id>",
          "model": "neurollm-test",
          "object": "text_completion",
          "usage": {
            "completion_tokens": 2,
            "prompt_tokens": 3,
            "total_tokens": 5
          }
        }"#]]
    .assert_eq(&scrubbed(value));
    // Without a seed, each request draws its own; the default max_tokens is 16.
    let unseeded = json!({"model": "neurollm-test", "prompt": "a"});
    let first = json_of(&post_json(addr, "/v1/completions", &unseeded).await);
    let second = json_of(&post_json(addr, "/v1/completions", &unseeded).await);
    let text = |value: &Value| value["choices"][0]["text"].as_str().unwrap().to_owned();
    assert_ne!(text(&first), text(&second));
    assert_eq!(text(&first).split_whitespace().count(), 16);
}

#[tokio::test]
async fn a_chat_completion_answers_an_assistant_message() {
    let addr = start(Arc::default()).await;
    let request = json!({"model": "neurollm-test", "temperature": 0, "max_completion_tokens": 1,
        "messages": [{"role": "user", "content": "hello"}]});
    let value = json_of(&post_json(addr, "/v1/chat/completions", &request).await);
    assert!(value["id"].as_str().unwrap().starts_with("chatcmpl-"));
    expect![[r#"
        {
          "choices": [
            {
              "finish_reason": "length",
              "index": 0,
              "logprobs": null,
              "message": {
                "content": " w0.0",
                "role": "assistant"
              }
            }
          ],
          "created": 0,
          "id": "<id>",
          "model": "neurollm-test",
          "object": "chat.completion",
          "usage": {
            "completion_tokens": 1,
            "prompt_tokens": 3,
            "total_tokens": 4
          }
        }"#]]
    .assert_eq(&scrubbed(value));
}

#[tokio::test]
async fn a_stream_sends_each_piece_then_done() {
    let addr = start(Arc::default()).await;
    let request = json!({"model": "neurollm-test", "prompt": "a", "max_tokens": 3,
        "temperature": 0, "stream": true});
    let response = post_json(addr, "/v1/completions", &request).await;
    assert_eq!(response.code, 200);
    assert!(response.headers.contains("content-type: text/event-stream"));
    let data = sse_data(&response.body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let texts: Vec<&str> = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, [" w0.0", " w0.1", " w0.2", ""]);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 3);

    let chat = json!({"model": "neurollm-test", "max_tokens": 2, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let data = sse_data(&post_json(addr, "/v1/chat/completions", &chat).await.body);
    assert_eq!(data.len(), 4);
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(first["choices"][0]["delta"]["content"].is_string());
    assert_eq!(data[3], "[DONE]");
}

#[tokio::test]
async fn a_stream_that_fails_part_way_ends_with_an_error_event() {
    let addr = start(Arc::default()).await;
    let request = json!({"model": "neurollm-test", "prompt": "fail", "stream": true});
    let data = sse_data(&post_json(addr, "/v1/completions", &request).await.body);
    assert_eq!(data.len(), 2, "{data:?}");
    let error: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert!(!data.contains(&"[DONE]".to_owned()));
}

/// Asserts an error answer: the status, and OpenAI's `{"error": {...}}` with this type, param
/// and code.
fn assert_error(response: &Response, code: u16, kind: &str, param: Value, error_code: Value) {
    assert_eq!(response.code, code, "{}", response.body);
    let error = &json_of(response)["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        (&error["type"], &error["param"], &error["code"]),
        (&json!(kind), &param, &error_code),
        "{error}"
    );
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let addr = start(Arc::default()).await;
    let invalid = "invalid_request_error";
    let bad_json = post(addr, "/v1/completions", b"{\"model\": ").await;
    assert_error(&bad_json, 400, invalid, Value::Null, Value::Null);
    let missing = post_json(addr, "/v1/completions", &json!({"model": "neurollm-test"})).await;
    assert_error(&missing, 400, invalid, Value::Null, Value::Null);
    let unknown = ask(addr, json!({"model": "gpt-4"})).await;
    assert_error(
        &unknown,
        404,
        invalid,
        json!("model"),
        json!("model_not_found"),
    );
    let many = ask(addr, json!({"n": 2})).await;
    assert_error(&many, 400, invalid, json!("n"), Value::Null);
    let huge = ask(addr, json!({"max_tokens": 100_000})).await;
    assert_error(&huge, 400, invalid, json!("max_tokens"), Value::Null);
    let long = ask(addr, json!({"max_tokens": CONTEXT - 1, "stream": true})).await;
    let overflow = json!("context_length_exceeded");
    assert_error(&long, 400, invalid, json!("prompt"), overflow);
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let too_large = post(addr, "/v1/completions", &body).await;
    assert_error(&too_large, 413, invalid, Value::Null, Value::Null);
    let no_route = get(addr, "/v1/engines").await;
    assert_error(&no_route, 404, invalid, Value::Null, Value::Null);
}

#[tokio::test]
async fn generations_past_the_bound_get_429() {
    let model = Arc::new(FakeModel::default());
    let (open, gate) = mpsc::channel();
    *model.gate.lock().unwrap() = Some(gate);
    let addr = start(Arc::clone(&model)).await;
    let hold = json!({"model": "neurollm-test", "prompt": "hold", "max_tokens": 1});
    let held: Vec<_> = (0..GENERATIONS_AT_ONCE)
        .map(|_| {
            let hold = hold.clone();
            tokio::spawn(async move { post_json(addr, "/v1/completions", &hold).await })
        })
        .collect();
    // Wait (bounded) until the held generations run: they hold every permit.
    for _ in 0..500 {
        if model.running.load(Ordering::SeqCst) == GENERATIONS_AT_ONCE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let request = json!({"model": "neurollm-test", "prompt": "a"});
    let busy = post_json(addr, "/v1/completions", &request).await;
    let limited = json!("rate_limit_exceeded");
    assert_error(&busy, 429, "rate_limit_error", Value::Null, limited);
    assert!(busy.headers.contains("retry-after: 1"));
    for _ in 0..GENERATIONS_AT_ONCE {
        open.send(()).unwrap();
    }
    for task in held {
        assert_eq!(task.await.unwrap().code, 200);
    }
}

#[tokio::test]
async fn without_a_model_the_v1_routes_answer_503() {
    let (_tx, rx) = watch::channel(Status::default());
    let addr = "127.0.0.1:0".parse().unwrap();
    let (addr, _task) = serve_with(addr, rx, Backends::default()).await.unwrap();
    let response = get(addr, "/v1/models").await;
    assert_error(&response, 503, "server_error", Value::Null, Value::Null);
}
