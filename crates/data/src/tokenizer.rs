//! The byte-level BPE tokenizer: deterministic training and a small wrapper for encode/decode.
//!
//! Built on the `tokenizers` crate with GPT-2 style byte-level pre-tokenisation, so every byte
//! sequence encodes (there is no unknown token). The special tokens come first, so their ids
//! are fixed: `<|bos|>` = 0, `<|eos|>` = 1, `<|pad|>` = 2.
//!
//! Determinism: the trainer counts words in hash maps, but merges are chosen by (count, pair
//! ids) with ids assigned in sorted-alphabet order, and `tokenizer.json` lists the vocabulary
//! by id, so the same corpus and vocabulary size give the same bytes whatever the thread count
//! or hash seed (checked by a test that trains twice).

use std::path::Path;

use neuroshard_primitives::Hash;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::{Error, Result};

/// The beginning-of-sequence special token.
pub const BOS: &str = "<|bos|>";
/// The end-of-document special token: joins documents in the shards.
pub const EOS: &str = "<|eos|>";
/// The padding special token.
pub const PAD: &str = "<|pad|>";

/// `tokenizer.json`'s file name, in a genesis directory and in a Hugging Face model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The Hugging Face tokenizer settings that make `AutoTokenizer` load a `PreTrainedTokenizerFast`.
pub const HF_TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// The Hugging Face map from special-token roles to tokens.
pub const HF_SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";

/// Byte-level tokens plus the three specials: the smallest vocabulary that makes sense.
const MIN_VOCAB: usize = 256 + 3;

/// A loaded tokenizer with its `tokenizer.json` bytes and their hash.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    json: Vec<u8>,
    hash: Hash,
    bos: u32,
    eos: u32,
    pad: u32,
}

impl Tokenizer {
    /// Loads `tokenizer.json` from `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let json = std::fs::read(path).map_err(Error::io("reading", path))?;
        Self::from_json(json)
    }

    /// Parses `tokenizer.json` bytes; the three special tokens must be present.
    pub fn from_json(json: Vec<u8>) -> Result<Self> {
        let inner = HfTokenizer::from_bytes(&json).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "special token {token} is missing from the vocabulary"
                ))
            })
        };
        Ok(Self {
            bos: id(BOS)?,
            eos: id(EOS)?,
            pad: id(PAD)?,
            hash: Hash::of(&json),
            inner,
            json,
        })
    }

    /// Token ids of `text`, without adding any special token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; special tokens are left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Number of token ids, specials included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `<|bos|>`.
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// Id of `<|eos|>`.
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// Id of `<|pad|>`.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// BLAKE3 of the `tokenizer.json` bytes.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The `tokenizer.json` bytes.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The tokenizer's files in a Hugging Face model directory: `tokenizer.json` byte for byte,
    /// and the two small configs with which `AutoTokenizer.from_pretrained` loads it as a
    /// `PreTrainedTokenizerFast` that encodes and decodes as [`Tokenizer::encode`] and
    /// [`Tokenizer::decode`] do: no special token added, no clean-up of spaces on decode.
    pub fn hf_files(&self, model_max_length: usize) -> Vec<(&'static str, Vec<u8>)> {
        let specials = serde_json::json!({
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
        });
        let config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "model_max_length": model_max_length,
            "add_bos_token": false,
            "add_eos_token": false,
            "clean_up_tokenization_spaces": false,
            "model_input_names": ["input_ids", "attention_mask"],
        });
        let pretty =
            |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("a json value serializes");
        vec![
            (TOKENIZER_FILE, self.json.clone()),
            (HF_TOKENIZER_CONFIG_FILE, pretty(&config)),
            (HF_SPECIAL_TOKENS_FILE, pretty(&specials)),
        ]
    }
}

/// Trains a byte-level BPE tokenizer of `vocab_size` ids (specials included) on `texts`.
pub fn train_tokenizer<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
) -> Result<Tokenizer> {
    if vocab_size < MIN_VOCAB {
        return Err(Error::BadSetting {
            field: "vocab_size",
            reason: format!("is {vocab_size}; it must be at least {MIN_VOCAB}"),
        });
    }
    let byte_level = ByteLevel::new(false, true, true);
    let mut inner = HfTokenizer::new(ModelWrapper::BPE(BPE::default()));
    inner.with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(byte_level)));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)));
    let specials = [BOS, EOS, PAD]
        .iter()
        .map(|token| AddedToken::from(*token, true))
        .collect();
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    inner
        .train(&mut trainer, texts)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let json = inner
        .to_string(false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Tokenizer::from_json(json.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_texts() -> Vec<String> {
        (0..200)
            .map(|i| {
                format!(
                    "Document {i}: the quick brown fox jumps over the lazy dog {} times. \
                     To be, or not to be, that is the question — ünïcödé {}.",
                    i % 7,
                    i * 31
                )
            })
            .collect()
    }

    #[test]
    fn training_twice_gives_identical_bytes() {
        let texts = sample_texts();
        let a = train_tokenizer(texts.iter(), 400).unwrap();
        let b = train_tokenizer(texts.iter().rev(), 400).unwrap();
        assert_eq!(a.json(), b.json());
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn specials_have_fixed_ids_and_text_round_trips() {
        let tok = train_tokenizer(sample_texts().iter(), 400).unwrap();
        assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (0, 1, 2));
        assert_eq!(tok.vocab_size(), 400);
        for text in ["the quick brown fox", "ünïcödé ✓ never seen 中文", ""] {
            let ids = tok.encode(text).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), text);
        }
        let reloaded = Tokenizer::from_json(tok.json().to_vec()).unwrap();
        assert_eq!(reloaded.hash(), tok.hash());
    }

    #[test]
    fn hf_files_name_the_specials_and_keep_the_json() {
        let tok = train_tokenizer(sample_texts().iter(), 300).unwrap();
        let files = tok.hf_files(64);
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                TOKENIZER_FILE,
                HF_TOKENIZER_CONFIG_FILE,
                HF_SPECIAL_TOKENS_FILE
            ]
        );
        assert_eq!(files[0].1, tok.json());
        let config: serde_json::Value = serde_json::from_slice(&files[1].1).unwrap();
        assert_eq!(config["tokenizer_class"], "PreTrainedTokenizerFast");
        assert_eq!(config["eos_token"], EOS);
        assert_eq!(config["model_max_length"], 64);
        assert_eq!(config["clean_up_tokenization_spaces"], false);
        let map: serde_json::Value = serde_json::from_slice(&files[2].1).unwrap();
        assert_eq!(
            map,
            serde_json::json!({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD})
        );
    }

    #[test]
    fn tiny_vocabulary_is_refused() {
        let err = train_tokenizer(["x"].iter(), 100).unwrap_err();
        assert!(err.to_string().contains("vocab_size"), "{err}");
    }
}
