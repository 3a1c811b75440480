//! The training footprint of a stage: how many bytes a node needs to train a contiguous slice
//! of the model, and so how many layers a memory budget can train.
//!
//! Per parameter the node keeps [`STATE_BYTES_PER_PARAM`] bytes, as the training code holds
//! them today: the weights in the model's tensors (4), the inner loop's flat copy of them (4),
//! the gradient (4), AdamW's two moments (8), DiLoCo's θ_start (4) and outer momentum (4), and
//! the compression residual (4), all `f32`.
//!
//! Every node on a network also audits (`docs/verification.md`): beside its stage it keeps a
//! replayer of it, a second copy that replays the segments it challenges while training goes
//! on: [`REPLAY_BYTES_PER_PARAM`] bytes per parameter (the weights in tensors and their flat
//! copy, the gradient, AdamW's two moments) and the activations and kept inputs of the step it
//! replays, as much as a training step's. The footprint counts both, so a node's budget holds
//! what it runs.
//!
//! Activations: a stage's backward recomputes its forward from its input (`Stage::backward`),
//! so between micro-batches it keeps only the inputs of those still in flight (`micro_batches`
//! micro-batches of `(micro_batch, seq_len, d_model)`, all of a step's counted), and during one backward the graph of
//! one micro-batch through its layers: per token and layer, the normed inputs, q, k, v and
//! their rotations, the attention output and the softmax rows (`n_heads × seq_len`), the
//! SwiGLU gate, up and product, and the residual sums; the head adds one micro-batch of logits.
//! These are estimates of what candle keeps (upper bounds: it frees some earlier); the
//! parameter part is exact and checked against a real `Stage`.

use neuroshard_model::Config;

/// Bytes of training state per parameter (module docs).
pub const STATE_BYTES_PER_PARAM: u64 = 32;

/// Bytes per parameter of the replayer an auditing node keeps beside its stage (module docs).
pub const REPLAY_BYTES_PER_PARAM: u64 = 20;

/// The shape of the work a stage does per micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step; a stage keeps each one's input until its backward
    /// (counted in full: 1F1B keeps at most as many as there are stages).
    pub micro_batches: usize,
}

/// Bytes a stage's parts need for training, from the model config and the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Parameters in one decoder layer.
    pub layer_params: u64,
    /// Parameters in the embedding (the head has as many, plus the final norm's `d_model`).
    pub embed_params: u64,
    /// `d_model`: the final norm's parameters.
    pub norm_params: u64,
    /// Activation bytes of one layer for one micro-batch during backward.
    pub layer_activations: u64,
    /// Activation bytes of the head (the logits) for one micro-batch.
    pub head_activations: u64,
    /// Bytes of the kept stage inputs.
    pub inputs: u64,
}

impl Footprint {
    /// The footprint of `cfg`'s parts under `workload`.
    pub fn of(cfg: &Config, workload: Workload) -> Self {
        let tokens = (workload.micro_batch * cfg.seq_len) as u64;
        let (d, kv, ff) = (cfg.d_model as u64, cfg.kv_dim() as u64, cfg.d_ff as u64);
        let scores = (cfg.n_heads * cfg.seq_len) as u64;
        let per_token = 8 * d + 4 * kv + 3 * ff + scores;
        Self {
            layer_params: cfg.n_layer_params() as u64,
            embed_params: cfg.n_embed_params() as u64,
            norm_params: d,
            layer_activations: 4 * tokens * per_token,
            head_activations: 4 * tokens * cfg.vocab_size as u64,
            inputs: 4 * tokens * d * workload.micro_batches as u64,
        }
    }

    /// Parameters of a stage with `layers` layers and the given ends.
    pub fn params(&self, layers: usize, embedding: bool, head: bool) -> u64 {
        let ends = u64::from(embedding) * self.embed_params
            + u64::from(head) * (self.embed_params + self.norm_params);
        (layers as u64)
            .saturating_mul(self.layer_params)
            .saturating_add(ends)
    }

    /// Bytes to train a stage with `layers` layers and the given ends, and to replay it (module
    /// docs): the state of both copies, and one step's activations and inputs for each.
    pub fn bytes(&self, layers: usize, embedding: bool, head: bool) -> u64 {
        let state = self
            .params(layers, embedding, head)
            .saturating_mul(STATE_BYTES_PER_PARAM + REPLAY_BYTES_PER_PARAM);
        let activations = (layers as u64)
            .saturating_mul(self.layer_activations)
            .saturating_add(u64::from(head) * self.head_activations);
        let step = activations.saturating_add(self.inputs);
        state.saturating_add(step.saturating_mul(2))
    }

    /// The most layers `budget` bytes can train with the given ends (0 when not even the ends
    /// fit, or not one layer when the stage has no end).
    pub fn max_layers(&self, budget: u64, embedding: bool, head: bool) -> usize {
        let fixed = self.bytes(0, embedding, head);
        let per_layer = self.bytes(1, false, false) - self.bytes(0, false, false);
        match budget.checked_sub(fixed) {
            Some(left) => usize::try_from(left / per_layer.max(1)).unwrap_or(usize::MAX),
            None => 0,
        }
    }

    /// Work per token of a stage, in parameters passed through in matrix products: its layers
    /// and, with the head, the head's projection (the embedding is a lookup). The unit of
    /// [`crate::CapacityRecord::work_per_sec`].
    pub fn work(&self, layers: usize, head: bool) -> u64 {
        (layers as u64)
            .saturating_mul(self.layer_params)
            .saturating_add(u64::from(head) * self.embed_params)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use neuroshard_model::{Stage, StageSpec};

    use super::*;

    fn cfg() -> Config {
        Config::preset("nano", 300).unwrap()
    }

    const WORK: Workload = Workload {
        micro_batch: 2,
        micro_batches: 2,
    };

    #[test]
    fn the_parameter_count_is_that_of_a_real_stage() {
        let cfg = Config {
            n_layers: 5,
            ..cfg()
        };
        let fp = Footprint::of(&cfg, WORK);
        for (embedding, layers, head) in [
            (true, 0..2, false),
            (false, 2..4, false),
            (false, 4..5, true),
            (true, 0..5, true),
        ] {
            let n = layers.len();
            let spec = StageSpec {
                embedding,
                layers,
                head,
            };
            let stage = Stage::new(&cfg, spec, 1, &Device::Cpu).unwrap();
            let real_bytes: u64 = stage
                .named_tensors()
                .unwrap()
                .iter()
                .map(|(_, t)| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
                .sum();
            assert_eq!(4 * fp.params(n, embedding, head), real_bytes);
            let state = STATE_BYTES_PER_PARAM + REPLAY_BYTES_PER_PARAM;
            assert!(fp.bytes(n, embedding, head) > state * fp.params(n, embedding, head));
        }
    }

    #[test]
    fn a_budget_trains_the_layers_it_fits_and_no_more() {
        let fp = Footprint::of(&cfg(), WORK);
        for (embedding, head) in [(false, false), (true, false), (true, true)] {
            for layers in [1, 3, 10] {
                let need = fp.bytes(layers, embedding, head);
                assert_eq!(fp.max_layers(need, embedding, head), layers);
                assert_eq!(fp.max_layers(need - 1, embedding, head), layers - 1);
            }
        }
        assert_eq!(fp.max_layers(0, false, false), 0);
        assert!(fp.max_layers(u64::MAX, true, true) > 1 << 20);
    }
}
