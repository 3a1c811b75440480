//! A pipeline stage: an optional embedding, a contiguous range of decoder layers, an optional head.
//!
//! The whole model is the stage with everything ([`StageSpec::full`]); a pipeline splits the
//! same layers over several stages. Backward recomputes the stage's forward from its input, so
//! a stage keeps nothing between calls and a peer needs only the input it was sent.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Embedding, Linear};
use neuroshard_kernels::{linear_cross_entropy, rms_norm, rope_tables};

use crate::block::{Block, INIT_STD, LayerCache, RopeTables};
use crate::params::{Init, ParamBuilder, Params};
use crate::{Config, Error, Result};

/// Which parts of the model a stage holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    /// Whether the stage starts with the token embedding (then its input is tokens).
    pub embedding: bool,
    /// The decoder layers it runs, a sub-range of `0..n_layers`.
    pub layers: Range<usize>,
    /// Whether it ends with the final RMSNorm and the LM head (then its output is logits).
    pub head: bool,
}

impl StageSpec {
    /// The whole model as one stage.
    pub fn full(cfg: &Config) -> Self {
        Self {
            embedding: true,
            layers: 0..cfg.n_layers,
            head: true,
        }
    }

    /// The names and shapes of this stage's parameters in canonical order, as
    /// [`Stage::param_shapes`] gives them, built one part at a time: at most one layer's (or the
    /// embedding's, or the head's) tensors exist at once, so a node can lay out the whole model
    /// without holding it.
    pub fn param_shapes(&self, cfg: &Config) -> Result<Vec<(String, Vec<usize>)>> {
        self.validate(cfg)?;
        let part = |embedding, layers, head| Self {
            embedding,
            layers,
            head,
        };
        let parts = (self.embedding.then(|| part(true, 0..0, false)).into_iter())
            .chain(self.layers.clone().map(|i| part(false, i..i + 1, false)))
            .chain(self.head.then(|| part(false, 0..0, true)));
        let mut shapes = Vec::new();
        for part in parts {
            shapes.extend(Stage::new(cfg, part, 0, &Device::Cpu)?.param_shapes());
        }
        Params::sort_canonical(&mut shapes);
        Ok(shapes)
    }

    fn validate(&self, cfg: &Config) -> Result<()> {
        let bad = |reason| {
            Err(Error::BadStage {
                spec: format!("{self:?}"),
                reason,
            })
        };
        if self.layers.start > self.layers.end || self.layers.end > cfg.n_layers {
            return bad("the layer range must lie within 0..n_layers");
        }
        if !self.embedding && !self.head && self.layers.is_empty() {
            return bad("a stage must hold an embedding, a head or at least one layer");
        }
        Ok(())
    }
}

/// What a stage consumes.
#[derive(Debug, Clone)]
pub enum StageInput {
    /// Token ids (batch, time) u32, for a stage with the embedding.
    Tokens(Tensor),
    /// Hidden states (batch, time, d_model) f32 from the previous stage.
    Hidden(Tensor),
}

/// Gradients from [`Stage::backward`] and [`Stage::loss_and_backward`].
#[derive(Debug)]
pub struct StageGrads {
    /// Gradient of the stage's hidden-state input (batch, time, d_model); `None` for tokens.
    pub input: Option<Tensor>,
    /// Gradients of the stage's own parameters, flat, in its canonical order.
    pub params: Vec<f32>,
}

/// Per-layer key/value caches for incremental decoding through one stage.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// Number of positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The final RMSNorm and the (untied) LM head.
#[derive(Debug)]
struct Head {
    norm: Tensor,
    lm: Linear,
}

/// A contiguous slice of NeuroLLM with its parameters.
#[derive(Debug)]
pub struct Stage {
    cfg: Config,
    spec: StageSpec,
    embed: Option<Embedding>,
    blocks: Vec<Block>,
    head: Option<Head>,
    params: Params,
    device: Device,
}

impl Stage {
    /// Builds the stage with seeded weights, identical to the same parts of the whole model
    /// built from the same `seed`.
    pub fn new(cfg: &Config, spec: StageSpec, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        spec.validate(cfg)?;
        let (v, d) = (cfg.vocab_size, cfg.d_model);
        let mut pb = ParamBuilder::new(seed, device);
        let embed = match spec.embedding {
            true => Some(Embedding::new(
                pb.param("embed.weight".into(), &[v, d], Init::Normal(INIT_STD))?,
                d,
            )),
            false => None,
        };
        let blocks = spec
            .layers
            .clone()
            .map(|i| Block::new(cfg, i, &mut pb))
            .collect::<Result<_>>()?;
        let head = match spec.head {
            true => Some(Head {
                norm: pb.param("norm.weight".into(), &[d], Init::Ones)?,
                lm: Linear::new(
                    pb.param("head.weight".into(), &[v, d], Init::Normal(INIT_STD))?,
                    None,
                ),
            }),
            false => None,
        };
        let params = pb.finish();
        Ok(Self {
            cfg: cfg.clone(),
            spec,
            embed,
            blocks,
            head,
            params,
            device: device.clone(),
        })
    }

    /// The model config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Which parts this stage holds.
    pub fn spec(&self) -> &StageSpec {
        &self.spec
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Runs the stage: hidden states (b, t, d_model), or logits (b, t, vocab) with a head.
    pub fn forward(&self, input: &StageInput) -> Result<Tensor> {
        let (out, (b, t)) = self.run(input, None)?;
        Ok(out.reshape((b, t, ()))?)
    }

    /// Like [`Stage::forward`] for the positions after those in `cache`, which it extends.
    pub fn forward_cached(&self, input: &StageInput, cache: &mut KvCache) -> Result<Tensor> {
        let (out, (b, t)) = self.run(input, Some(cache))?;
        Ok(out.reshape((b, t, ()))?)
    }

    /// An empty cache for this stage's layers.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![LayerCache::default(); self.blocks.len()],
            len: 0,
        }
    }

    /// Given the gradient of the loss with respect to this stage's output (the shape
    /// [`Stage::forward`] returns), returns the gradient of its input and of its parameters.
    pub fn backward(&self, input: &StageInput, grad_output: &Tensor) -> Result<StageGrads> {
        let grad_output = grad_output.detach();
        let (_, grads) = self.backward_of(input, |hidden, (b, t)| {
            let out = &self.apply_head(hidden)?;
            let want = [b, t, out.dim(1)?];
            if grad_output.dims() != want {
                let got = grad_output.dims();
                return Err(Error::BadInput(format!(
                    "grad_output has shape {got:?}, expected {want:?}"
                )));
            }
            Ok((out * grad_output.reshape(out.shape())?.to_dtype(out.dtype())?)?.sum_all()?)
        })?;
        Ok(grads)
    }

    /// For the last stage: the mean cross-entropy of `targets` (b, t) u32 and the gradients.
    pub fn loss_and_backward(
        &self,
        input: &StageInput,
        targets: &Tensor,
    ) -> Result<(f32, StageGrads)> {
        let (loss, grads) = self.backward_of(input, |hidden, _| self.head_loss(hidden, targets))?;
        Ok((loss.to_scalar::<f32>()?, grads))
    }

    /// For the last stage: the mean cross-entropy of `targets` (b, t) u32, without gradients.
    pub fn loss(&self, input: &StageInput, targets: &Tensor) -> Result<f32> {
        let (hidden, _) = self.run_body(input, None)?;
        Ok(self.head_loss(&hidden, targets)?.to_scalar::<f32>()?)
    }

    /// Number of parameters in this stage.
    pub fn n_params(&self) -> usize {
        self.params.n_params()
    }

    /// Parameter names and shapes in canonical (sorted-name) order.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.params.shapes()
    }

    /// All parameters as one vector, in canonical order.
    pub fn flat_params(&self) -> Result<Vec<f32>> {
        self.params.flat()
    }

    /// Overwrites all parameters from one vector in canonical order.
    pub fn set_flat_params(&mut self, flat: &[f32]) -> Result<()> {
        self.params.set_flat(flat)
    }

    /// Copies of the parameters with their names, in canonical order.
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.params.named_tensors()
    }

    /// Overwrites the parameters from named tensors, which must match our names and shapes exactly.
    pub fn load_named(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.params.load_named(tensors)
    }

    /// Runs `objective` on the flat (b·t, ·) output and back-propagates it.
    fn backward_of(
        &self,
        input: &StageInput,
        objective: impl FnOnce(&Tensor, (usize, usize)) -> Result<Tensor>,
    ) -> Result<(Tensor, StageGrads)> {
        // The hidden input becomes a fresh variable so its gradient is recorded.
        let input_var = match input {
            StageInput::Hidden(h) => Some(Var::from_tensor(h)?),
            StageInput::Tokens(_) => None,
        };
        let input = match &input_var {
            Some(var) => &StageInput::Hidden(var.as_tensor().clone()),
            None => input,
        };
        let (hidden, bt) = self.run_body(input, None)?;
        let value = objective(&hidden, bt)?;
        let grads = value.backward()?;
        let input = match input_var {
            Some(var) => Some(match grads.get(var.as_tensor()) {
                Some(g) => g.clone(),
                None => var.as_tensor().zeros_like()?,
            }),
            None => None,
        };
        Ok((
            value,
            StageGrads {
                input,
                params: self.params.flat_grads(&grads)?,
            },
        ))
    }

    /// The forward pass on flat rows: returns (b·t, d_model) or (b·t, vocab), and (b, t).
    fn run(
        &self,
        input: &StageInput,
        cache: Option<&mut KvCache>,
    ) -> Result<(Tensor, (usize, usize))> {
        let (hidden, bt) = self.run_body(input, cache)?;
        Ok((self.apply_head(&hidden)?, bt))
    }

    /// The head's logits (b·t, vocab) for hidden rows; the rows unchanged without a head.
    fn apply_head(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.head {
            Some(head) => Ok(head
                .lm
                .forward(&rms_norm(hidden, &head.norm, self.cfg.norm_eps)?)?),
            None => Ok(hidden.clone()),
        }
    }

    /// Embedding (or hidden input) and blocks, without the head: (b·t, d_model) and (b, t).
    fn run_body(
        &self,
        input: &StageInput,
        mut cache: Option<&mut KvCache>,
    ) -> Result<(Tensor, (usize, usize))> {
        let (mut x, (b, t)) = self.embed_input(input)?;
        if let Some(cache) = &cache
            && cache.layers.len() != self.blocks.len()
        {
            return Err(Error::BadInput(
                "the kv cache belongs to a stage with other layers".into(),
            ));
        }
        if !self.blocks.is_empty() {
            let start = cache.as_ref().map_or(0, |c| c.len);
            let (cos, sin) = rope_tables(
                start..start + t,
                self.cfg.head_dim(),
                self.cfg.rope_theta,
                &self.device,
            )?;
            let tables = RopeTables { cos, sin };
            for (i, block) in self.blocks.iter().enumerate() {
                let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
                x = block.forward(&x, (b, t), &tables, layer_cache)?;
            }
        }
        if let Some(cache) = cache {
            cache.len += t;
        }
        Ok((x, (b, t)))
    }

    /// Checks the input and turns it into flat rows (b·t, d_model).
    fn embed_input(&self, input: &StageInput) -> Result<(Tensor, (usize, usize))> {
        match (input, &self.embed) {
            (StageInput::Tokens(ids), Some(embed)) => {
                let (b, t) = ids
                    .dims2()
                    .map_err(|_| bad_shape("tokens", ids, "(batch, time)"))?;
                if ids.dtype() != DType::U32 || b == 0 || t == 0 {
                    return Err(bad_shape("tokens", ids, "non-empty u32 (batch, time)"));
                }
                self.check_ids(ids)?;
                Ok((embed.forward(&ids.flatten_all()?)?, (b, t)))
            }
            (StageInput::Hidden(h), None) => {
                let d = self.cfg.d_model;
                let (b, t, hd) = h
                    .dims3()
                    .map_err(|_| bad_shape("hidden", h, "(batch, time, d_model)"))?;
                if hd != d || h.dtype() != DType::F32 || b == 0 || t == 0 {
                    return Err(bad_shape(
                        "hidden",
                        h,
                        &format!("non-empty f32 (batch, time, {d})"),
                    ));
                }
                Ok((h.reshape((b * t, d))?, (b, t)))
            }
            (StageInput::Tokens(_), None) => Err(Error::BadInput(
                "this stage has no embedding; send it hidden states".into(),
            )),
            (StageInput::Hidden(_), Some(_)) => Err(Error::BadInput(
                "this stage starts with the embedding; send it tokens".into(),
            )),
        }
    }

    /// Mean cross-entropy of `targets` under the head's logits for `hidden`, fused: the logits
    /// are never a node of the graph on the CPU (the kernels fall back to the composite form).
    fn head_loss(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let Some(head) = &self.head else {
            return Err(Error::NoHead);
        };
        let n = hidden.dim(0)?;
        if targets.elem_count() != n || targets.dtype() != DType::U32 {
            return Err(bad_shape(
                "targets",
                targets,
                &format!("u32 with {n} entries"),
            ));
        }
        self.check_ids(targets)?;
        let normed = rms_norm(hidden, &head.norm, self.cfg.norm_eps)?;
        Ok(linear_cross_entropy(
            &normed,
            head.lm.weight(),
            &targets.flatten_all()?,
        )?)
    }

    /// Fails unless every id in the u32 tensor `ids` is below the vocabulary size.
    fn check_ids(&self, ids: &Tensor) -> Result<()> {
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.cfg.vocab_size {
            return Err(Error::TokenOutOfRange {
                token: max,
                vocab_size: self.cfg.vocab_size,
            });
        }
        Ok(())
    }
}

fn bad_shape(what: &str, t: &Tensor, want: &str) -> Error {
    Error::BadInput(format!(
        "{what} is {:?} {:?}, expected {want}",
        t.dtype(),
        t.dims()
    ))
}
