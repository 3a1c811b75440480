//! A training node serves its model through the OpenAI-compatible API on its HTTP address:
//! `/v1/models` names it, a completion and a chat completion answer with usage counts, a
//! streamed completion arrives as server-sent events ending in `[DONE]`, and bad requests get
//! OpenAI's error shape with the right status.
//!
//! One node on a small generated-corpus genesis (nano), its ports chosen by the OS on
//! 127.0.0.1. Whether greedy decoding and seeds repeat is checked against fixed weights in the
//! daemon's tests: here the weights move at every round boundary.

use std::path::Path;
use std::time::Duration;

use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, build_small_genesis, http_get_json, http_post,
};
use serde_json::{Value, json};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

/// `POST path` with `body`, answered within a minute: the status and the body.
fn post(node: &NodeProcess, path: &str, body: &Value) -> (u16, String) {
    http_post(
        &node.dashboard,
        path,
        &body.to_string(),
        Duration::from_secs(60),
    )
}

fn answer(node: &NodeProcess, path: &str, body: &Value) -> Value {
    let (code, text) = post(node, path, body);
    assert_eq!(code, 200, "{text}\nlog:\n{}", node.log_tail());
    serde_json::from_str(&text).unwrap()
}

fn error_of(node: &NodeProcess, path: &str, body: &Value) -> (u16, Value) {
    let (code, text) = post(node, path, body);
    let value: Value = serde_json::from_str(&text).unwrap();
    (code, value["error"].clone())
}

#[test]
fn a_node_answers_openai_requests() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_small_genesis(Path::new(EXE), work, &["--inner-steps", "4"]);
    let node = NodeProcess::start(Path::new(EXE), "solo", work, &genesis, &SMALL_TRAINING);

    let models = http_get_json(&node.dashboard, "/v1/models").expect("/v1/models answers");
    let model = models["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(model, "neurollm-nano");

    let completion =
        json!({"model": model, "prompt": "The cat", "max_tokens": 8, "temperature": 0});
    let value = answer(&node, "/v1/completions", &completion);
    assert_eq!(value["object"], "text_completion");
    assert!(value["choices"][0]["text"].is_string());
    let usage = &value["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let chat = json!({"model": model, "max_tokens": 8, "seed": 3,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]});
    let value = answer(&node, "/v1/chat/completions", &chat);
    assert_eq!(value["choices"][0]["message"]["role"], "assistant");

    let stream = json!({"model": model, "prompt": "A dog", "max_tokens": 8, "stream": true});
    let (code, body) = post(&node, "/v1/completions", &stream);
    assert_eq!(code, 200, "{body}");
    let data: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    let last: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string(), "{last}");

    let unknown = json!({"model": "gpt-4", "prompt": "x"});
    let (code, error) = error_of(&node, "/v1/completions", &unknown);
    assert_eq!((code, &error["code"]), (404, &json!("model_not_found")));
    let long = json!({"model": model, "prompt": "word ".repeat(2000)});
    let (code, error) = error_of(&node, "/v1/completions", &long);
    assert_eq!(
        (code, &error["code"]),
        (400, &json!("context_length_exceeded"))
    );
    let many = json!({"model": model, "prompt": "x", "max_tokens": 1_000_000});
    let (code, error) = error_of(&node, "/v1/completions", &many);
    assert_eq!((code, &error["param"]), (400, &json!("max_tokens")));
}
