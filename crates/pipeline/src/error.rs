//! Errors from planning a pipeline, decoding a peer's frame and running a stage's step.

/// Errors from the pipeline.
///
/// Every decoding failure is a value of this type: hostile bytes never panic the decoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schedule parameter is out of range.
    #[error("invalid pipeline plan: {0}")]
    BadPlan(String),
    /// A batch cannot be split into equal micro-batches.
    #[error("a batch of {batch} sequences does not split into {micro_batches} equal micro-batches")]
    Split {
        /// Sequences in the batch.
        batch: usize,
        /// Micro-batches asked for.
        micro_batches: usize,
    },
    /// A precision name did not parse.
    #[error("unknown precision {0:?}; use f32, bf16 or f16")]
    UnknownPrecision(String),
    /// The frame's bytes are malformed, over the limit or fail their checksum.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// A well-formed frame this stage did not expect (another step or stage, a duplicate, a
    /// micro-batch out of range).
    #[error("unexpected frame: {0}")]
    Unexpected(String),
    /// The stage ran an operation whose input has not arrived (a programmer error in the driver).
    #[error("operation {0} is not ready: its input has not arrived")]
    NotReady(String),
    /// Parameter names or lengths do not line up between the stages and the whole model.
    #[error("layout mismatch: {0}")]
    Layout(String),
    /// The model failed (shapes, devices).
    #[error(transparent)]
    Model(#[from] neuroshard_model::Error),
}

/// The pipeline's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<candle_core::Error> for Error {
    fn from(err: candle_core::Error) -> Self {
        Self::Model(err.into())
    }
}
