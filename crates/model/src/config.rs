//! Model configuration: sizes, the named presets, validation and parameter counting.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The vocabulary size used when the tokenizer does not say otherwise.
pub const DEFAULT_VOCAB_SIZE: usize = 8192;

/// The preset names [`Config::preset`] accepts, smallest first.
pub const PRESET_NAMES: [&str; 4] = ["nano", "tiny", "small", "base"];

/// The sizes of a NeuroLLM decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Number of token ids (from the tokenizer).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of decoder layers.
    pub n_layers: usize,
    /// Query heads per layer; divides `d_model`.
    pub n_heads: usize,
    /// Key/value heads per layer (grouped-query attention); divides `n_heads`.
    pub n_kv_heads: usize,
    /// Hidden width of the SwiGLU MLP.
    pub d_ff: usize,
    /// Training sequence length (RoPE itself has no maximum).
    pub seq_len: usize,
    /// RoPE base θ.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
}

impl Config {
    /// The named preset (one of [`PRESET_NAMES`]) with the tokenizer's `vocab_size`.
    pub fn preset(name: &str, vocab_size: usize) -> Result<Self> {
        let (d_model, n_layers, n_heads, n_kv_heads, d_ff, seq_len) = match name {
            "nano" => (64, 2, 4, 2, 192, 64),
            "tiny" => (256, 4, 8, 2, 768, 128),
            "small" => (512, 8, 8, 2, 1536, 256),
            "base" => (768, 12, 12, 4, 2048, 512),
            _ => {
                return Err(Error::UnknownPreset {
                    name: name.to_owned(),
                    valid: PRESET_NAMES.join(", "),
                });
            }
        };
        let cfg = Self {
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            n_kv_heads,
            d_ff,
            seq_len,
            rope_theta: 10_000.0,
            norm_eps: 1e-5,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that a model with these sizes can be built and run.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("d_ff", self.d_ff),
            ("seq_len", self.seq_len),
        ];
        if let Some((field, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::ZeroSize { field });
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(Error::HeadsDoNotDivide {
                d_model: self.d_model,
                n_heads: self.n_heads,
            });
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::KvHeadsDoNotDivide {
                n_heads: self.n_heads,
                n_kv_heads: self.n_kv_heads,
            });
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(Error::OddHeadDim {
                head_dim: self.head_dim(),
            });
        }
        for (field, value) in [("rope_theta", self.rope_theta), ("norm_eps", self.norm_eps)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::BadFloat { field, value });
            }
        }
        Ok(())
    }

    /// Channels per attention head: `d_model / n_heads`.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Width of the key and value projections: `n_kv_heads * head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }

    /// Parameters in one decoder layer.
    pub fn n_layer_params(&self) -> usize {
        let (d, kv) = (self.d_model, self.kv_dim());
        2 * d + 2 * d * d + 2 * d * kv + 3 * d * self.d_ff
    }

    /// Parameters in the embedding (and, separately, in the untied LM head).
    pub fn n_embed_params(&self) -> usize {
        self.vocab_size * self.d_model
    }

    /// Total parameter count: embedding, layers, final norm and LM head.
    pub fn n_params(&self) -> usize {
        2 * self.n_embed_params() + self.n_layers * self.n_layer_params() + self.d_model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_table() {
        let rows = [
            ("nano", [64, 2, 4, 2, 192, 64]),
            ("tiny", [256, 4, 8, 2, 768, 128]),
            ("small", [512, 8, 8, 2, 1536, 256]),
            ("base", [768, 12, 12, 4, 2048, 512]),
        ];
        for (name, sizes) in rows {
            let c = Config::preset(name, DEFAULT_VOCAB_SIZE).unwrap();
            assert_eq!(
                [
                    c.d_model,
                    c.n_layers,
                    c.n_heads,
                    c.n_kv_heads,
                    c.d_ff,
                    c.seq_len
                ],
                sizes
            );
            assert_eq!(
                (c.vocab_size, c.rope_theta, c.norm_eps),
                (8192, 10_000.0, 1e-5)
            );
        }
    }

    #[test]
    fn base_is_the_125m_model_at_32k_vocab() {
        let n = Config::preset("base", 32_768).unwrap().n_params();
        assert!((120_000_000..135_000_000).contains(&n), "{n}");
    }

    #[test]
    fn unknown_preset_lists_the_valid_names() {
        let err = Config::preset("huge", 100).unwrap_err().to_string();
        assert!(
            err.contains("huge") && err.contains("nano, tiny, small, base"),
            "{err}"
        );
    }

    #[test]
    fn impossible_configs_are_refused() {
        let ok = Config::preset("nano", 100).unwrap();
        let bad = |f: fn(&mut Config)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.n_heads = 3),
            Error::HeadsDoNotDivide { .. }
        ));
        assert!(matches!(
            bad(|c| c.n_kv_heads = 3),
            Error::KvHeadsDoNotDivide { .. }
        ));
        assert!(matches!(
            bad(|c| c.d_ff = 0),
            Error::ZeroSize { field: "d_ff" }
        ));
        assert!(matches!(
            bad(|c| c.n_kv_heads = 0),
            Error::ZeroSize {
                field: "n_kv_heads"
            }
        ));
        assert!(matches!(
            bad(|c| c.d_model = 36),
            Error::OddHeadDim { head_dim: 9 }
        ));
        assert!(matches!(
            bad(|c| c.norm_eps = f32::NAN),
            Error::BadFloat { .. }
        ));
        assert!(matches!(
            bad(|c| c.rope_theta = 0.0),
            Error::BadFloat { .. }
        ));
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = Config::preset("tiny", 4096).unwrap();
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
