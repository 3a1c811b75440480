//! Errors from training: bad hyper-parameters, data, the model, and checkpoints.

use std::path::{Path, PathBuf};

use neuroshard_primitives::Hash;

/// Everything that can go wrong while training or reading and writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyper-parameter is out of range; the message says which and what is allowed.
    #[error("invalid hyper-parameters: {0}")]
    InvalidHyperParameters(String),
    /// Two vectors that must have the same length do not.
    #[error("{what} has {got} values, expected {expected}")]
    LengthMismatch {
        /// What was measured.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// The in-memory corpus cannot fill one row.
    #[error(
        "the corpus has {tokens} tokens but one row needs {needed}; use a longer corpus or a shorter --seq"
    )]
    CorpusTooShort {
        /// Tokens in the corpus.
        tokens: usize,
        /// Tokens one row needs (`seq + 1`).
        needed: usize,
    },
    /// A mean loss was asked of no batches.
    #[error("a mean loss needs at least one batch; ask for at least one validation batch")]
    NoBatches,
    /// The data source failed to produce a batch.
    #[error("reading a batch failed: {0}")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The model refused an operation (bad config, shapes, tokens).
    #[error(transparent)]
    Model(#[from] neuroshard_model::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// The loss or gradient norm became NaN or infinite; the weights were left as they were.
    #[error(
        "step {step}: loss {loss} / gradient norm {grad_norm} is not finite; lower the learning rate"
    )]
    NonFinite {
        /// The 0-based step that failed.
        step: u64,
        /// The batch loss.
        loss: f32,
        /// The gradient norm before clipping.
        grad_norm: f32,
    },
    /// A checkpoint file is missing: the directory is not a checkpoint, or a save was interrupted.
    #[error("{} is missing, so {} is not a complete checkpoint; check the path or save again", path.display(), dir.display())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// A checkpoint file is damaged or does not match its `meta.json`.
    #[error("checkpoint file {} is corrupt: {reason}; restore it or train from scratch", path.display())]
    CorruptFile {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The checkpoint was written by an incompatible version.
    #[error("{} has format version {found}, this build reads version {supported}", path.display())]
    UnsupportedFormat {
        /// The meta file.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The checkpoint's tokenizer is not the one in use.
    #[error(
        "tokenizer mismatch: the checkpoint was trained with tokenizer {checkpoint}, the current one is {current}; use the genesis the checkpoint was trained on"
    )]
    TokenizerMismatch {
        /// Tokenizer hash stored in the checkpoint.
        checkpoint: Hash,
        /// Hash of the tokenizer in use now.
        current: Hash,
    },
    /// The run asked for differs from the checkpoint's in one field.
    #[error(
        "{field} mismatch: the checkpoint has {checkpoint}, this run asks for {requested}; use the same settings to resume or another --checkpoint-dir"
    )]
    SpecMismatch {
        /// The field that differs.
        field: &'static str,
        /// Its value in the checkpoint.
        checkpoint: String,
        /// Its value in this run.
        requested: String,
    },
    /// Encoding tensors to safetensors failed.
    #[error("encoding safetensors failed: {0}")]
    Serialize(String),
    /// Reading or writing a file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a data source's error.
    pub fn data<E: std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        Self::Data(Box::new(error))
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
