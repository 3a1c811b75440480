//! Errors from building, loading, running and sampling NeuroLLM.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A size in the config is zero.
    #[error("config field `{field}` is zero; every size must be at least 1")]
    ZeroSize {
        /// The offending field.
        field: &'static str,
    },
    /// `n_heads` does not divide `d_model`.
    #[error("n_heads {n_heads} does not divide d_model {d_model}; pick sizes where it does")]
    HeadsDoNotDivide {
        /// Model width.
        d_model: usize,
        /// Query heads.
        n_heads: usize,
    },
    /// `n_kv_heads` does not divide `n_heads` (grouped-query attention needs it to).
    #[error("n_kv_heads {n_kv_heads} does not divide n_heads {n_heads}; pick a divisor of n_heads")]
    KvHeadsDoNotDivide {
        /// Query heads.
        n_heads: usize,
        /// Key/value heads.
        n_kv_heads: usize,
    },
    /// RoPE rotates pairs of channels, so the head dimension must be even.
    #[error("head_dim {head_dim} (d_model / n_heads) is odd; RoPE needs an even head dimension")]
    OddHeadDim {
        /// `d_model / n_heads`.
        head_dim: usize,
    },
    /// A floating-point config field is not a positive finite number.
    #[error("config field `{field}` is {value}; it must be positive and finite")]
    BadFloat {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: f32,
    },
    /// The preset name is not one we know.
    #[error("unknown preset {name:?}; valid presets are {valid}")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A stage's layer range or parts do not fit the config.
    #[error("invalid stage {spec}: {reason}")]
    BadStage {
        /// The stage, as written by its `Debug`.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Growth asked for fewer layers than the model has.
    #[error("cannot grow a model of {from} layers to {to}; growth only adds layers")]
    CannotShrink {
        /// Layers now.
        from: usize,
        /// Layers asked for.
        to: usize,
    },
    /// A flat parameter (or gradient) vector has the wrong length.
    #[error(
        "flat parameter vector has {got} values but the model has {expected}; use a vector from the same config"
    )]
    FlatLength {
        /// Number of parameters in the model.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A named tensor the model needs is absent.
    #[error("tensor {name:?} is missing; the weights were saved from a different model")]
    MissingTensor {
        /// The parameter name.
        name: String,
    },
    /// A named tensor is not a parameter of this model.
    #[error(
        "tensor {name:?} is not a parameter of this model; the weights were saved from a different model"
    )]
    UnexpectedTensor {
        /// The name found.
        name: String,
    },
    /// A named tensor has the wrong shape.
    #[error(
        "tensor {name:?} has shape {got:?} but the model expects {expected:?}; check the config"
    )]
    ShapeMismatch {
        /// The parameter name.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A token id is not below the vocabulary size.
    #[error(
        "token id {token} is out of range for vocabulary size {vocab_size}; check the tokenizer"
    )]
    TokenOutOfRange {
        /// Largest id found.
        token: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// A stage was given the wrong kind or shape of input.
    #[error("bad stage input: {0}")]
    BadInput(String),
    /// A loss was asked of a stage that has no head.
    #[error("this stage has no head, so it cannot compute a loss; call it on the last stage")]
    NoHead,
    /// The sampling settings make no sense.
    #[error("bad sampling config: {0}")]
    BadSampling(String),
    /// Generation was given an empty prompt.
    #[error("the prompt is empty; give at least one token")]
    EmptyPrompt,
    /// The logits to sample from contain NaN or are empty.
    #[error("logits are empty or contain NaN; the model weights are probably corrupt")]
    BadLogits,
    /// A Hugging Face model uses something this engine does not compute.
    #[error("the model uses {0}; this engine runs only plain Llama models")]
    UnsupportedHf(String),
    /// A file of a Hugging Face model directory does not parse.
    #[error("{file} is not valid: {reason}")]
    BadHfFile {
        /// The file's name.
        file: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
