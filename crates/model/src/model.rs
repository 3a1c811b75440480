//! NeuroLLM, the whole model: one [`Stage`] holding the embedding, every layer and the head.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use neuroshard_primitives::{Batch, Hash};

use crate::stage::{KvCache, Stage, StageInput, StageSpec};
use crate::{Config, Error, Result};

/// The NeuroLLM decoder with its parameters.
#[derive(Debug)]
pub struct NeuroLlm {
    stage: Stage,
}

impl NeuroLlm {
    /// Builds the model with weights drawn from `seed`: the same seed gives bit-identical weights.
    pub fn new(cfg: &Config, seed: u64, device: &Device) -> Result<Self> {
        Ok(Self {
            stage: Stage::new(cfg, StageSpec::full(cfg), seed, device)?,
        })
    }

    /// The model over a stage that holds everything (a grown model).
    pub(crate) fn from_stage(stage: Stage) -> Self {
        debug_assert_eq!(stage.spec(), &StageSpec::full(stage.config()));
        Self { stage }
    }

    /// The model config.
    pub fn config(&self) -> &Config {
        self.stage.config()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.stage.device()
    }

    /// The model as a single pipeline stage.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.stage.n_params()
    }

    /// Logits (b, t, vocab) for token ids `tokens` (b, t) u32.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.stage.forward(&StageInput::Tokens(tokens.clone()))
    }

    /// Logits (b, t, vocab) for the positions after those in `cache`, which it extends.
    pub fn forward_cached(&self, tokens: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.stage
            .forward_cached(&StageInput::Tokens(tokens.clone()), cache)
    }

    /// An empty key/value cache for [`NeuroLlm::forward_cached`].
    pub fn new_cache(&self) -> KvCache {
        self.stage.new_cache()
    }

    /// Mean cross-entropy over the batch's `batch * seq` targets and the gradient of every
    /// parameter, flat in canonical order.
    pub fn loss_and_grads(&self, batch: &Batch) -> Result<(f32, Vec<f32>)> {
        let (inputs, targets) = self.batch_tensors(batch)?;
        let (loss, grads) = self
            .stage
            .loss_and_backward(&StageInput::Tokens(inputs), &targets)?;
        Ok((loss, grads.params))
    }

    /// Mean cross-entropy over the batch's targets, without gradients.
    pub fn loss(&self, batch: &Batch) -> Result<f32> {
        let (inputs, targets) = self.batch_tensors(batch)?;
        self.stage.loss(&StageInput::Tokens(inputs), &targets)
    }

    /// All parameters as one vector, in canonical (sorted-name) order.
    pub fn flat_params(&self) -> Result<Vec<f32>> {
        self.stage.flat_params()
    }

    /// Overwrites all parameters from one vector in canonical order.
    pub fn set_flat_params(&mut self, flat: &[f32]) -> Result<()> {
        self.stage.set_flat_params(flat)
    }

    /// Parameter names and shapes in canonical order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.stage.param_shapes()
    }

    /// Copies of the parameters with their names, in canonical order (for safetensors).
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.stage.named_tensors()
    }

    /// Overwrites the parameters from named tensors, which must match our names and shapes exactly.
    pub fn load_named(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.stage.load_named(tensors)
    }

    /// The BLAKE3 hash of [`NeuroLlm::flat_params`]' little-endian bytes.
    pub fn param_hash(&self) -> Result<Hash> {
        Ok(Hash::of_f32(&self.flat_params()?))
    }

    /// Inputs (b, seq) and targets (b, seq) u32 on the model's device.
    fn batch_tensors(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let (b, t) = (batch.batch, batch.seq);
        if b == 0 || t == 0 || batch.tokens.len() != b * (t + 1) {
            return Err(Error::BadInput(format!(
                "batch {b}x{t} holds {} tokens; it needs {} and both sizes non-zero",
                batch.tokens.len(),
                b * (t + 1)
            )));
        }
        let inputs = Tensor::from_vec(batch.inputs(), (b, t), self.device())?;
        let targets = Tensor::from_vec(batch.targets(), (b, t), self.device())?;
        Ok((inputs, targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{micro, test_devices};

    fn batch(cfg: &Config, b: usize, t: usize, salt: u32) -> Batch {
        let v = cfg.vocab_size as u32;
        Batch::new(
            (0..(b * (t + 1)) as u32)
                .map(|i| (i * 7 + salt * 13 + i / 3) % v)
                .collect(),
            b,
            t,
        )
    }

    #[test]
    fn same_seed_gives_bit_identical_params() {
        let cfg = micro();
        for dev in test_devices() {
            let a = NeuroLlm::new(&cfg, 42, &dev)
                .unwrap()
                .flat_params()
                .unwrap();
            let b = NeuroLlm::new(&cfg, 42, &dev)
                .unwrap()
                .flat_params()
                .unwrap();
            let c = NeuroLlm::new(&cfg, 43, &dev)
                .unwrap()
                .flat_params()
                .unwrap();
            assert_eq!(
                a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_ne!(a, c);
        }
    }

    #[test]
    fn names_are_sorted_and_counted() {
        let cfg = Config {
            n_layers: 11,
            ..micro()
        };
        let model = NeuroLlm::new(&cfg, 1, &Device::Cpu).unwrap();
        let shapes = model.param_shapes();
        let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(names[0], "embed.weight");
        assert_eq!(names[1], "head.weight");
        assert_eq!(names[2], "layers.00.attn.k.weight");
        assert!(names.contains(&"layers.10.mlp_norm.weight"));
        assert_eq!(*names.last().unwrap(), "norm.weight");
        assert_eq!(shapes.len(), 3 + 9 * 11);
        assert_eq!(model.n_params(), cfg.n_params());
        let shape = |name: &str| &shapes.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(shape("layers.03.attn.k.weight"), &[8, 16]);
        assert_eq!(shape("layers.03.mlp.down.weight"), &[16, 24]);
    }

    #[test]
    fn init_statistics_are_as_designed() {
        let cfg = Config {
            d_model: 64,
            n_heads: 4,
            d_ff: 128,
            n_layers: 8,
            ..micro()
        };
        let model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let named = model.named_tensors().unwrap();
        let std = |name: &str| {
            let t = &named.iter().find(|(n, _)| n == name).unwrap().1;
            t.sqr()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .sqrt()
        };
        assert!((std("layers.00.attn.q.weight") - 0.02).abs() < 0.002);
        assert!((std("layers.00.mlp.down.weight") - 0.02 / 4.0).abs() < 0.0005);
        assert_eq!(std("norm.weight"), 1.0);
    }

    #[test]
    fn flat_params_round_trip() {
        let cfg = micro();
        let mut model = NeuroLlm::new(&cfg, 1, &Device::Cpu).unwrap();
        let other = NeuroLlm::new(&cfg, 2, &Device::Cpu).unwrap();
        let loss_before = model.loss(&batch(&cfg, 2, 5, 0)).unwrap();
        model
            .set_flat_params(&other.flat_params().unwrap())
            .unwrap();
        assert_eq!(model.param_hash().unwrap(), other.param_hash().unwrap());
        assert_eq!(
            model.loss(&batch(&cfg, 2, 5, 0)).unwrap(),
            other.loss(&batch(&cfg, 2, 5, 0)).unwrap()
        );
        assert_ne!(model.loss(&batch(&cfg, 2, 5, 0)).unwrap(), loss_before);
        assert!(matches!(
            model.set_flat_params(&[0.0; 3]),
            Err(Error::FlatLength { got: 3, .. })
        ));
    }

    #[test]
    fn load_named_round_trips_and_checks() {
        let cfg = micro();
        let mut model = NeuroLlm::new(&cfg, 1, &Device::Cpu).unwrap();
        let other = NeuroLlm::new(&cfg, 2, &Device::Cpu).unwrap();
        let named: HashMap<String, Tensor> = other.named_tensors().unwrap().into_iter().collect();
        model.load_named(&named).unwrap();
        assert_eq!(model.flat_params().unwrap(), other.flat_params().unwrap());

        let mut missing = named.clone();
        missing.remove("norm.weight");
        assert!(
            matches!(model.load_named(&missing), Err(Error::MissingTensor { name }) if name == "norm.weight")
        );
        let mut extra = named.clone();
        extra.insert(
            "bias".into(),
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(
            matches!(model.load_named(&extra), Err(Error::UnexpectedTensor { name }) if name == "bias")
        );
        let mut reshaped = named;
        reshaped.insert(
            "norm.weight".into(),
            Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(matches!(
            model.load_named(&reshaped),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_eq!(
            model.flat_params().unwrap(),
            other.flat_params().unwrap(),
            "failed loads change nothing"
        );
    }

    #[test]
    fn initial_loss_is_near_log_vocab() {
        let cfg = micro();
        for dev in test_devices() {
            let loss = NeuroLlm::new(&cfg, 3, &dev)
                .unwrap()
                .loss(&batch(&cfg, 3, 6, 1))
                .unwrap();
            assert!((loss - (cfg.vocab_size as f32).ln()).abs() < 0.1, "{loss}");
        }
    }

    #[test]
    fn gradient_matches_a_finite_difference_along_itself() {
        let cfg = micro();
        let mut model = NeuroLlm::new(&cfg, 4, &Device::Cpu).unwrap();
        let data = batch(&cfg, 2, 6, 2);
        let (loss, grads) = model.loss_and_grads(&data).unwrap();
        assert_eq!(loss, model.loss(&data).unwrap());
        let norm = grads.iter().map(|g| g * g).sum::<f32>().sqrt();
        let theta = model.flat_params().unwrap();
        let eps = 1e-2;
        let mut at = |s: f32| {
            let moved: Vec<f32> = theta
                .iter()
                .zip(&grads)
                .map(|(p, g)| p + s * eps * g / norm)
                .collect();
            model.set_flat_params(&moved).unwrap();
            model.loss(&data).unwrap()
        };
        let slope = (at(1.0) - at(-1.0)) / (2.0 * eps);
        assert!(
            (slope - norm).abs() < 0.02 * norm,
            "finite difference {slope} vs |grad| {norm}"
        );
    }

    #[test]
    fn gradient_steps_reduce_the_loss() {
        let cfg = micro();
        let mut model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let data = batch(&cfg, 2, 8, 3);
        let first = model.loss(&data).unwrap();
        for _ in 0..20 {
            let (_, grads) = model.loss_and_grads(&data).unwrap();
            let theta: Vec<f32> = model
                .flat_params()
                .unwrap()
                .iter()
                .zip(&grads)
                .map(|(p, g)| p - 1.0 * g)
                .collect();
            model.set_flat_params(&theta).unwrap();
        }
        let last = model.loss(&data).unwrap();
        assert!(last < first - 0.5, "{first} -> {last}");
    }

    #[test]
    fn logits_are_causal() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 6, &Device::Cpu).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4, 5]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9, 9]], &Device::Cpu).unwrap();
        let la = model.forward(&a).unwrap();
        let lb = model.forward(&b).unwrap();
        assert_eq!(la.dims(), [1, 5, cfg.vocab_size]);
        let prefix = |l: &Tensor| {
            l.narrow(1, 0, 3)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(prefix(&la), prefix(&lb));
        assert_ne!(
            la.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            lb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn bad_batches_are_refused() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 7, &Device::Cpu).unwrap();
        let mut data = batch(&cfg, 1, 4, 0);
        data.tokens[2] = 37;
        assert!(matches!(
            model.loss(&data),
            Err(Error::TokenOutOfRange {
                token: 37,
                vocab_size: 37
            })
        ));
        data.tokens[2] = 0;
        data.tokens[4] = 40;
        assert!(matches!(
            model.loss_and_grads(&data),
            Err(Error::TokenOutOfRange { token: 40, .. })
        ));
        let wrong = Batch {
            tokens: vec![1, 2, 3],
            batch: 1,
            seq: 4,
        };
        assert!(matches!(model.loss(&wrong), Err(Error::BadInput(_))));
    }
}
