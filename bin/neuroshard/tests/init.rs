//! End to end: a network that starts from imported weights. A model trained two steps from
//! another seed is exported, imported with `--init` into the genesis directory, and two real
//! `neuroshard node` processes on 127.0.0.1 (the second with the genesis file alone, so it
//! fetches the init file from the first) start round 0 on exactly those weights and close it.

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use neuroshard_primitives::Hash;
use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, agree_at, bare_genesis, build_small_genesis, round_of, run_ok,
    wait_for,
};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

/// `path` as text (the test's paths are UTF-8).
fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Trains two steps from seed 5, exports that model and imports it as the network's initial
/// weights; returns their hash as the init file gives it.
fn import_initial_weights(genesis_dir: &Path, work: &Path) -> Hash {
    let (ckpt, hf) = (work.join("ckpt"), work.join("hf"));
    let (genesis, ckpt, hf) = (path(genesis_dir), path(&ckpt), path(&hf));
    let exe = Path::new(EXE);
    let train = [
        "train",
        "--genesis",
        genesis,
        "--checkpoint-dir",
        ckpt,
        "--steps",
        "2",
    ];
    let small = [
        "--seed",
        "5",
        "--batch",
        "2",
        "--eval-batches",
        "1",
        "--threads",
        "1",
    ];
    run_ok(exe, &[&train[..], &small].concat());
    let export = [
        "export",
        "--checkpoint",
        ckpt,
        "--genesis",
        genesis,
        "--out",
        hf,
    ];
    run_ok(exe, &export);
    let import = ["import", "--model", hf, "--genesis", genesis, "--init"];
    run_ok(exe, &import);
    let bytes = std::fs::read(genesis_dir.join("init.f32")).expect("import wrote init.f32");
    let hash = Hash::of(&bytes);
    let text = std::fs::read_to_string(genesis_dir.join("genesis.toml")).unwrap();
    assert!(
        text.contains(&format!("init = \"{hash}\"")),
        "the genesis names the file: {text}"
    );
    hash
}

/// Starts node `name` waiting (at most 20 s) for a second node before its first round.
fn start(name: &str, genesis: &Path, work: &Path, bootstrap: Option<&str>) -> NodeProcess {
    let mut args = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", "2", "--start-grace-secs", "20"]);
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap", addr]);
    }
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

#[test]
fn a_network_starts_from_imported_weights() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_small_genesis(
        Path::new(EXE),
        work,
        &["--inner-steps", "20", "--round-deadline-secs", "30"],
    );
    let imported = import_initial_weights(genesis.parent().unwrap(), work).to_hex();
    let at_round_0 = |node: &NodeProcess| {
        let status = wait_for("a model", &[node], Duration::from_secs(30), |s| {
            !s[0]["model_hash"].is_null()
        });
        assert_eq!(round_of(&status[0]), 0, "still before round 0 closes");
        assert_eq!(status[0]["model_hash"], imported.as_str());
    };
    let a = start("a", &genesis, work, None);
    at_round_0(&a);
    let b = start("b", &bare_genesis(&genesis, work, "b"), work, Some(&a.p2p));
    at_round_0(&b);
    assert!(
        work.join("b/genesis/init.f32").exists(),
        "the bare node fetched the init file"
    );
    wait_for(
        "round 0 to close",
        &[&a, &b],
        Duration::from_secs(120),
        |s| agree_at(s, 1),
    );
}
