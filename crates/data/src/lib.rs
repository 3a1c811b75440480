//! The Genesis dataset: corpus, tokenizer, verifiable shards, manifest, genesis file.
