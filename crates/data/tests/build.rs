//! End-to-end builds on small generated corpora: reproducibility, reuse, verification, batches.

use std::path::Path;

use neuroshard_data::{
    BuildOptions, CorpusChoice, Error, GenesisDir, NoProgress, build_genesis, shard,
};
use neuroshard_primitives::BatchSource;

/// A few hundred varied documents, as `.txt` files and one `.jsonl` file.
fn write_corpus(dir: &Path) {
    let words = [
        "the", "king", "queen", "sword", "river", "night", "speaks", "falls", "O", "love",
    ];
    let sentence = |i: usize| -> String {
        (0..12)
            .map(|j| words[(i * 7 + j * j + j) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    for file in 0..20 {
        let text: Vec<String> = (0..30).map(|i| sentence(file * 31 + i)).collect();
        std::fs::write(dir.join(format!("doc{file:02}.txt")), text.join(".\n")).unwrap();
    }
    let lines: Vec<String> = (0..300)
        .map(|i| {
            serde_json::json!({ "text": format!("{} — number {i}.", sentence(i)) }).to_string()
        })
        .collect();
    std::fs::write(dir.join("lines.jsonl"), lines.join("\n")).unwrap();
}

fn options(corpus: &Path, out: &Path) -> BuildOptions {
    BuildOptions {
        corpus: CorpusChoice::Path(corpus.to_owned()),
        vocab_size: 320,
        shard_tokens: 2048,
        validation_fraction: 0.05,
        ..BuildOptions::new(out)
    }
}

#[test]
fn two_fresh_builds_agree_and_a_rebuild_reuses() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build_genesis(&options(corpus.path(), a.path()), &NoProgress).unwrap();
    let second = build_genesis(&options(corpus.path(), b.path()), &NoProgress).unwrap();
    assert_eq!(first.manifest(), second.manifest());
    assert_eq!(first.network_id(), second.network_id());
    let manifest = first.manifest();
    assert!(
        manifest.shards.len() >= 3,
        "{} shards",
        manifest.shards.len()
    );
    assert!(!manifest.validation_shards.is_empty());
    let sizes: Vec<u64> = manifest.shards.iter().map(|s| s.tokens).collect();
    let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(
        most - least <= 1 && *most <= 2048,
        "unequal shards {sizes:?}"
    );
    for (i, entry) in manifest.shards.iter().enumerate() {
        assert!(
            manifest
                .proof(i)
                .unwrap()
                .verify(&entry.hash, &manifest.merkle_root)
        );
    }
    let before = std::fs::metadata(a.path().join("shard-00000.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let again = build_genesis(&options(corpus.path(), a.path()), &NoProgress).unwrap();
    let after = std::fs::metadata(a.path().join("shard-00000.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the second build reuses the shards");
    assert_eq!(again.manifest(), manifest);
    std::fs::remove_file(a.path().join("genesis.toml")).unwrap();
    let restored = build_genesis(&options(corpus.path(), a.path()), &NoProgress).unwrap();
    let after = std::fs::metadata(a.path().join("shard-00000.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        before, after,
        "a missing genesis.toml alone does not rebuild the shards"
    );
    assert_eq!(restored.network_id(), first.network_id());
}

#[test]
fn validation_chunks_never_reach_training_shards() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    let out = tempfile::tempdir().unwrap();
    let dir = build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
    let manifest = dir.manifest();
    let read_split = |entries: &[neuroshard_data::ShardEntry]| -> Vec<u32> {
        entries
            .iter()
            .flat_map(|entry| {
                let bytes = std::fs::read(out.path().join(&entry.name)).unwrap();
                let n = manifest.token_width.count(&entry.name, &bytes).unwrap();
                (0..n).map(move |i| manifest.token_width.read(&bytes, i))
            })
            .collect()
    };
    let train = read_split(&manifest.shards);
    let validation = read_split(&manifest.validation_shards);
    let chunk = shard::VALIDATION_CHUNK_TOKENS;
    assert!(manifest.validation_chunks > 0);
    assert!(validation.len() <= manifest.validation_chunks * chunk);
    assert!(validation.len() > (manifest.validation_chunks - 1) * chunk);
    for held in validation.chunks(chunk).filter(|c| c.len() == chunk) {
        assert!(shard::is_validation(held, 0.05));
        let leaked = train.windows(chunk).any(|w| w == held);
        assert!(!leaked, "a validation chunk is in the training shards");
    }
}

#[test]
fn initial_weights_the_genesis_names_are_verified() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    let out = tempfile::tempdir().unwrap();
    let dir = build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
    let weights = vec![7u8; 64];
    let mut genesis = dir.genesis().clone();
    genesis.model.init = Some(neuroshard_primitives::Hash::of(&weights));
    std::fs::write(out.path().join("genesis.toml"), genesis.to_toml()).unwrap();
    let init = out.path().join(neuroshard_data::INIT_FILE);
    let failure = |expected: &str| match GenesisDir::verify_path(out.path()) {
        Err(Error::Verify { failures }) => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert!(failures[0].starts_with("init.f32") && failures[0].contains(expected));
        }
        other => panic!("expected a verification failure, got {other:?}"),
    };
    failure("");
    std::fs::write(&init, [8u8; 64]).unwrap();
    failure("model.init");
    std::fs::write(&init, &weights).unwrap();
    assert!(GenesisDir::verify_path(out.path()).is_ok());
}

#[test]
fn one_flipped_byte_is_named() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    let out = tempfile::tempdir().unwrap();
    let dir = build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
    assert!(dir.verify().is_ok());
    for name in ["shard-00001.bin", "val-00000.bin"] {
        let path = out.path().join(name);
        let original = std::fs::read(&path).unwrap();
        let mut flipped = original.clone();
        flipped[original.len() / 2] ^= 0x10;
        std::fs::write(&path, &flipped).unwrap();
        match GenesisDir::verify_path(out.path()) {
            Err(Error::Verify { failures }) => {
                assert_eq!(failures.len(), 1, "{failures:?}");
                assert!(failures[0].starts_with(name), "{failures:?}");
            }
            other => panic!("expected a verification failure, got {other:?}"),
        }
        assert!(dir.train_batches(None, 0).is_err() || name.starts_with("val"));
        std::fs::write(&path, &original).unwrap();
    }
    // The build notices the damage and rebuilds.
    let path = out.path().join("shard-00000.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
    assert!(GenesisDir::verify_path(out.path()).is_ok());
}

#[test]
fn broken_lines_are_skipped_or_refused() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    std::fs::write(
        corpus.path().join("bad.txt"),
        b"fine line\n\xff\xfe broken\nok",
    )
    .unwrap();
    std::fs::write(
        corpus.path().join("bad.jsonl"),
        "{\"text\": \"x y z\"}\n{\"text\": \n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let strict = BuildOptions {
        strict: true,
        ..options(corpus.path(), out.path())
    };
    let err = build_genesis(&strict, &NoProgress).unwrap_err().to_string();
    assert!(
        err.contains("bad.txt:2") && err.contains("bad.jsonl:2"),
        "{err}"
    );
    build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
}

#[test]
fn batches_read_back_and_genesis_is_consistent() {
    let corpus = tempfile::tempdir().unwrap();
    write_corpus(corpus.path());
    let out = tempfile::tempdir().unwrap();
    let dir = build_genesis(&options(corpus.path(), out.path()), &NoProgress).unwrap();
    let genesis = dir.genesis();
    assert_eq!(genesis.model.vocab_size, 320);
    assert_eq!(genesis.data.merkle_root, dir.manifest().merkle_root);
    assert_eq!(genesis.diloco, neuroshard_data::DilocoSpec::DEFAULT);
    let train = dir.train_batches(Some(&[1, 2]), 9).unwrap();
    let batch = train.batch(3, 4, 32).unwrap();
    assert_eq!(batch.tokens.len(), 4 * 33);
    assert!(batch.tokens.iter().all(|&t| (t as usize) < 320));
    assert!(
        train
            .addresses(3, 4, 32)
            .unwrap()
            .iter()
            .all(|a| [1, 2].contains(&a.shard))
    );
    let validation = dir.validation_batches().unwrap();
    assert!(validation.n_batches(2, 16) > 0);
    assert_eq!(
        validation.batch(0, 2, 16).unwrap(),
        validation.batch(0, 2, 16).unwrap()
    );
    assert!(dir.train_batches(Some(&[99]), 0).is_err());
}
