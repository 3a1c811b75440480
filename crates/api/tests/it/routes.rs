//! The JSON and Prometheus routes over a real socket.

use std::collections::{BTreeMap, BTreeSet};

use expect_test::expect;

use crate::support::{get, sample_status, start};

#[tokio::test]
async fn status_json_has_the_documented_shape() {
    let (addr, _tx) = start(sample_status(3)).await;
    let response = get(addr, "/api/status").await;
    assert_eq!(response.code, 200);
    assert!(response.headers.contains("content-type: application/json"));
    let value: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    expect![[r#"
        {
          "audits": {
            "challenged": 0,
            "excluded": [],
            "failed": 0,
            "false_accusations": 0,
            "passed": 0,
            "proofs_seen": 0,
            "proofs_upheld": 0,
            "served": 0,
            "withheld": 0
          },
          "bytes_received": 3145728,
          "bytes_sent": 1048576,
          "capacity": {
            "measured": true,
            "memory_budget": 4000000,
            "work_per_sec": 3300000000
          },
          "contributors": 3,
          "growths": [],
          "history": [
            {
              "elapsed_s": 0.0,
              "loss": 6.0,
              "round": 0,
              "step": 0,
              "val_loss": 6.25
            },
            {
              "elapsed_s": 1.5,
              "loss": 4.0,
              "round": 0,
              "step": 10,
              "val_loss": null
            },
            {
              "elapsed_s": 3.0,
              "loss": 3.333333333333333,
              "round": 1,
              "step": 20,
              "val_loss": null
            }
          ],
          "inner_step": 7,
          "ledger": null,
          "listen_addrs": [
            "/ip4/127.0.0.1/tcp/4001"
          ],
          "loss": 3.333333333333333,
          "model_hash": "ccca53791b024d98ee5d8c126d923e16f6cede945beb0b93c9abca301ed453e7",
          "model_history": [],
          "n_layers": 0,
          "network_id": "396507cea36428fd93fd41a7ad586c82c66b4e9b72ab149f94ca9967bd0590ad",
          "network_tokens": 0,
          "node_id": "abababababababababababababababababababababababababababababababab",
          "params_held": 0,
          "params_peak": 0,
          "payload_bytes_received": 3072000,
          "payload_bytes_sent": 1024000,
          "peers": [
            "12D3KooWPeerA",
            "12D3KooWPeerB"
          ],
          "privacy": null,
          "role": null,
          "round": 3,
          "rounds": [
            {
              "closed_at_s": 1800000000.0,
              "duration_s": null,
              "grew_to": null,
              "included": 3,
              "installed": false,
              "missed": [],
              "model_hash": "40ade19869edcc4c84d289d4cd2fbcbad5f7455ad64fbf118ff2cc1be12040b6",
              "round": 1
            },
            {
              "closed_at_s": 1800000030.0,
              "duration_s": 30.0,
              "grew_to": null,
              "included": 2,
              "installed": false,
              "missed": [
                "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
              ],
              "model_hash": "db433a3666676c880492044bca28d3908e91641c7a4201dee04ace92cfb60376",
              "round": 2
            },
            {
              "closed_at_s": 1800000030.5,
              "duration_s": null,
              "grew_to": null,
              "included": 0,
              "installed": true,
              "missed": [],
              "model_hash": "ccca53791b024d98ee5d8c126d923e16f6cede945beb0b93c9abca301ed453e7",
              "round": 2
            }
          ],
          "rounds_at_deadline": 1,
          "tokens_per_sec": 1234.5,
          "val_loss": 6.25
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&value).unwrap());
}

#[tokio::test]
async fn status_follows_the_watch_channel() {
    let (addr, tx) = start(sample_status(1)).await;
    tx.send_modify(|status| status.round = 42);
    let body = get(addr, "/api/status").await.body;
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["round"], 42);
}

/// Parses the text format strictly: every sample belongs to a family declared with exactly one
/// `HELP` and one `TYPE` line before it, and every value is a float.
pub(crate) fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let (mut helped, mut typed) = (BTreeSet::new(), BTreeMap::new());
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
            assert!(!help.is_empty() && helped.insert(name.to_owned()), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a kind");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{line}"
            );
        } else {
            let (series, value) = line.rsplit_once(' ').expect("a sample is `name value`");
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(
                helped.contains(name) && typed.contains_key(name),
                "no HELP/TYPE: {line}"
            );
            if typed[name] == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                number => number
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}")),
            };
            samples.insert(series.to_owned(), value);
        }
    }
    samples
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text_with_the_status_figures() {
    let status = sample_status(3);
    let (addr, _tx) = start(status.clone()).await;
    let response = get(addr, "/metrics").await;
    assert_eq!(response.code, 200);
    assert!(
        response
            .headers
            .contains("content-type: text/plain; version=0.0.4")
    );
    let samples = parse_metrics(&response.body);
    assert_eq!(samples["neuroshard_round"], 3.0);
    assert_eq!(samples["neuroshard_inner_step"], 7.0);
    assert_eq!(samples["neuroshard_peers"], 2.0);
    assert_eq!(samples["neuroshard_loss"], status.loss.unwrap());
    assert_eq!(
        samples["neuroshard_validation_loss"],
        status.val_loss.unwrap()
    );
    assert_eq!(samples["neuroshard_tokens_per_second"], 1234.5);
    assert_eq!(samples["neuroshard_bytes_sent_total"], 1048576.0);
    assert_eq!(samples["neuroshard_bytes_received_total"], 3145728.0);
    assert_eq!(samples["neuroshard_payload_bytes_sent_total"], 1024000.0);
    assert_eq!(
        samples["neuroshard_payload_bytes_received_total"],
        3072000.0
    );
    assert_eq!(samples["neuroshard_round_contributors"], 3.0);
    assert_eq!(samples["neuroshard_rounds_at_deadline_total"], 1.0);
    let info = samples
        .keys()
        .find(|k| k.starts_with("neuroshard_info{"))
        .unwrap();
    assert!(info.contains(&format!("network_id=\"{}\"", status.network_id)));
    assert!(info.contains(&format!("node_id=\"{}\"", status.node_id)));
}

#[tokio::test]
async fn dashboard_is_self_contained() {
    let (addr, _tx) = start(sample_status(0)).await;
    let response = get(addr, "/").await;
    assert_eq!(response.code, 200);
    assert!(response.headers.contains("content-type: text/html"));
    assert!(response.body.contains("/api/status"));
    for external in ["http://", "https://", "src=", "<link"] {
        let hits: Vec<&str> = response
            .body
            .lines()
            .filter(|line| line.contains(external) && !line.contains("http://www.w3.org/2000/svg"))
            .collect();
        assert!(
            hits.is_empty(),
            "the page loads nothing from outside: {hits:?}"
        );
    }
}

#[tokio::test]
async fn unknown_route_is_404() {
    let (addr, _tx) = start(sample_status(0)).await;
    assert_eq!(get(addr, "/nope").await.code, 404);
}
