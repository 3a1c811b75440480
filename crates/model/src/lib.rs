//! Builds, trains and runs NeuroLLM: config, presets, pipeline stages, forward and backward, KV-cache generation, function-preserving growth.
//!
//! # Bird's Eye View
//!
//! NeuroLLM is a pre-norm decoder in the Llama mould: RMSNorm, rotary position embeddings with no
//! maximum length, grouped-query attention, a SwiGLU MLP, no biases, an untied embedding and LM
//! head, and a final RMSNorm. [`Config`] holds the sizes ([`Config::preset`] gives the named
//! ones). A [`Stage`] holds an optional embedding, a contiguous range of layers and an optional
//! head; [`NeuroLlm`] is the stage that holds everything, so the pipeline and the whole model run
//! the same code. Hot operations (RMSNorm, RoPE, attention, SwiGLU, cross-entropy) come from
//! `neuroshard-kernels`, which fuses them on the CPU.
//!
//! Parameters are named (`embed.weight`, `layers.00.attn.q.weight`, …, `norm.weight`,
//! `head.weight`) and their canonical order is the sorted names: flat parameter and gradient
//! vectors use it. Each parameter draws its initial values from a ChaCha stream keyed by the seed
//! and its name, so the same seed gives bit-identical weights in a model and in its stages.
//!
//! [`hf`] writes a model in the Hugging Face Llama format (`config.json`, `model.safetensors`
//! under the standard names, `generation_config.json`) and reads one back, bit for bit.
//!
//! ```
//! use candle_core::Device;
//! use neuroshard_model::{Config, NeuroLlm, SamplingConfig, generate};
//! use neuroshard_primitives::Batch;
//!
//! let cfg = Config::preset("nano", 64)?;
//! let model = NeuroLlm::new(&cfg, 7, &Device::Cpu)?;
//! let batch = Batch::new((0..2 * 9).map(|i| i % 64).collect(), 2, 8);
//! let (loss, grads) = model.loss_and_grads(&batch)?;
//! assert!((loss - 64f32.ln()).abs() < 0.5);
//! assert_eq!(grads.len(), model.n_params());
//! let greedy = SamplingConfig { temperature: 0.0, top_k: None, top_p: None, seed: 0 };
//! let tokens = generate(&model, &[1, 2, 3], 5, &greedy, None)?;
//! assert_eq!(tokens.len(), 5);
//! # Ok::<(), neuroshard_model::Error>(())
//! ```
//!
//! # Feature Flags
//!
//! - `cuda`: builds candle and the kernels with CUDA, so models can live on a CUDA [`candle_core::Device`].
//!   The CPU path is always compiled and tested.

mod block;
mod config;
mod error;
mod generate;
mod grow;
pub mod hf;
mod model;
mod params;
mod sampling;
mod stage;
#[cfg(test)]
mod test_utils;

pub use config::{Config, DEFAULT_VOCAB_SIZE, PRESET_NAMES};
pub use error::{Error, Result};
pub use generate::{generate, generate_each};
pub use model::NeuroLlm;
pub use sampling::{Sampler, SamplingConfig};
pub use stage::{KvCache, Stage, StageGrads, StageInput, StageSpec};
