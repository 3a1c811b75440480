//! `neuroshard up --nodes 6 --memory-budget 4MB`, a budget below the model's training footprint
//! (`neuroshard_pool::Footprint` says so): the nodes form a pipeline of at least two stages with
//! at least two replicas each, every node shows its role (stage, layers, lane, stage peers) in
//! `/api/status` and `/metrics`, and training through the pipeline with DiLoCo per stage lowers
//! the validation loss the last stage measures at each round's start.
//!
//! A small generated-corpus genesis (nano, vocabulary 384, H = 16) in a temporary directory;
//! `--http-port 0`, so every port is the OS's choice. Every wait is bounded, and `up` is killed
//! when the test ends, pass or fail (its children then stop by themselves).

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use neuroshard_model::Config;
use neuroshard_pool::{Footprint, Workload};
use neuroshard_testkit::nodes::{build_genesis, http_get, http_get_json};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
const NODES: usize = 6;
const BUDGET: u64 = 4_000_000;

/// `neuroshard up`, killed (SIGKILL) when dropped.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dashboard (`host:port`) in node `index`'s start line,
/// `node 1: pid 4242, dashboard http://127.0.0.1:39011/  (log …)`.
fn dashboard(line: &str, index: usize) -> Option<String> {
    let rest = line.strip_prefix(&format!("node {index}: pid "))?;
    let (_, rest) = rest.split_once(", dashboard http://")?;
    Some(rest.split('/').next()?.to_owned())
}

/// Starts `up` and returns it with every node's dashboard, in node order.
fn start(genesis: &Path, dir: &Path) -> (Up, Vec<String>) {
    let mut child = Command::new(EXE)
        .args(["up", "--nodes", &NODES.to_string(), "--http-port", "0"])
        .args(["--every", "5", "--memory-budget", &BUDGET.to_string()])
        .arg("--genesis")
        .arg(genesis)
        .arg("--dir")
        .arg(dir)
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the neuroshard binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("up| {line}");
            // Read on after the test stops listening: `up` must never write into a closed pipe.
            let _ = tx.send(line);
        }
    });
    let up = Up(child);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut dashboards = vec![None; NODES];
    while dashboards.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).expect("every node starts in time");
        for (index, slot) in dashboards.iter_mut().enumerate() {
            if let Some(found) = dashboard(&line, index) {
                *slot = Some(found);
            }
        }
    }
    (up, dashboards.into_iter().map(Option::unwrap).collect())
}

/// Polls every node's status until `done` holds for all of them, or panics after `limit`.
fn wait_all(
    what: &str,
    dashboards: &[String],
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let statuses: Vec<Option<Value>> = dashboards
            .iter()
            .map(|d| http_get_json(d, "/api/status"))
            .collect();
        if statuses.iter().all(|s| s.as_ref().is_some_and(&done)) {
            return statuses.into_iter().map(Option::unwrap).collect();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {statuses:#?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "flaky: a lane whose members fall a round apart does not realign (docs/pipeline.md, Not yet); run with --ignored"]
fn up_with_a_small_budget_trains_a_pipeline_of_stages_and_replicas() {
    let cfg = Config::preset("nano", 384).unwrap();
    let workload = Workload {
        micro_batch: 2,
        micro_batches: 4,
    };
    let whole = Footprint::of(&cfg, workload).bytes(cfg.n_layers, true, true);
    assert!(
        BUDGET < whole,
        "the budget {BUDGET} must be below the footprint {whole}"
    );

    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(
        Path::new(EXE),
        work,
        &["--inner-steps", "16", "--round-deadline-secs", "30"],
    );
    let (_up, dashboards) = start(genesis.parent().unwrap(), &work.join("up"));
    let limit = Duration::from_secs(240);
    let statuses = wait_all("every node's role", &dashboards, limit, |s| {
        !s["role"].is_null()
    });

    // The plan: stages × lanes, each (stage, lane) held once, the same counts everywhere.
    let roles: Vec<&Value> = statuses.iter().map(|s| &s["role"]).collect();
    let (stages, lanes) = (
        roles[0]["stages"].as_u64().unwrap(),
        roles[0]["lanes"].as_u64().unwrap(),
    );
    assert!(stages >= 2 && lanes >= 2, "{roles:#?}");
    assert_eq!((stages * lanes) as usize, NODES, "{roles:#?}");
    let held: BTreeSet<(u64, u64)> = roles
        .iter()
        .map(|r| (r["stage"].as_u64().unwrap(), r["lane"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        held.len(),
        NODES,
        "each (stage, lane) held by one node: {roles:#?}"
    );
    let mut end = 0;
    for stage in 0..stages {
        let role = roles.iter().find(|r| r["stage"] == stage).unwrap();
        assert_eq!(role["layers"][0], end, "contiguous stages: {roles:#?}");
        end = role["layers"][1].as_u64().unwrap();
        assert_eq!(role["embedding"], stage == 0);
        assert_eq!(role["head"], stage + 1 == stages);
    }
    assert_eq!(end as usize, cfg.n_layers, "the stages cover the model");
    for (status, role) in statuses.iter().zip(&roles) {
        let peers: BTreeSet<&str> = role["stage_peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let same_stage: BTreeSet<&str> = statuses
            .iter()
            .filter(|o| o["role"]["stage"] == role["stage"] && o["node_id"] != status["node_id"])
            .map(|o| o["node_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            peers, same_stage,
            "stage peers are the stage's other replicas"
        );
    }
    let metrics = http_get(&dashboards[0], "/metrics").expect("metrics");
    let line = format!("\nneuroshard_pipeline_stages {stages}\n");
    assert!(metrics.contains(&line), "{metrics}");

    // Training lowers the validation loss the last stage measures at each round's start.
    let last: Vec<&String> = dashboards
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| s["role"]["head"] == true)
        .map(|(d, _)| d)
        .collect();
    let trained = |s: &Value| {
        let history = s["model_history"].as_array().cloned().unwrap_or_default();
        history.len() >= 4 && history.iter().any(|p| p["round"] == 0)
    };
    let last: Vec<String> = last.into_iter().cloned().collect();
    for status in wait_all("four validated rounds", &last, limit, trained) {
        let history = status["model_history"].as_array().unwrap();
        let first = history.iter().find(|p| p["round"] == 0).unwrap()["val_loss"]
            .as_f64()
            .unwrap();
        let latest = history.last().unwrap()["val_loss"].as_f64().unwrap();
        assert!(
            latest < first * 0.9,
            "validation loss {first} at round 0, {latest} after: {history:#?}"
        );
    }
    // DiLoCo per stage: each stage's rounds aggregate its replicas' Δs, and the replicas end
    // each round with the same weights.
    let now: Vec<Value> = dashboards
        .iter()
        .map(|d| http_get_json(d, "/api/status").expect("a status"))
        .collect();
    for stage in 0..stages {
        let replicas: Vec<BTreeMap<u64, (Value, u64)>> = now
            .iter()
            .filter(|s| s["role"]["stage"] == stage)
            .map(|s| {
                let rounds = s["rounds"].as_array().unwrap().iter();
                rounds
                    .map(|r| {
                        let entry = (r["model_hash"].clone(), r["included"].as_u64().unwrap());
                        (r["round"].as_u64().unwrap(), entry)
                    })
                    .collect()
            })
            .collect();
        let common: Vec<u64> = replicas[0]
            .keys()
            .filter(|r| replicas.iter().all(|m| m.contains_key(r)))
            .copied()
            .collect();
        assert!(
            !common.is_empty(),
            "stage {stage}: no round closed by every replica"
        );
        for round in &common {
            let hashes: BTreeSet<String> =
                replicas.iter().map(|m| m[round].0.to_string()).collect();
            assert_eq!(hashes.len(), 1, "stage {stage} round {round}: {hashes:?}");
        }
        assert!(
            common.iter().any(|r| replicas[0][r].1 == lanes),
            "stage {stage}: some round aggregates every lane's Δ: {replicas:?}"
        );
    }
}
