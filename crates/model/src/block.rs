//! One pre-norm decoder layer: RMSNorm → GQA attention with RoPE → residual, RMSNorm → SwiGLU → residual.

use candle_core::{Module, Tensor};
use candle_nn::Linear;
use neuroshard_kernels::{causal_attention, rms_norm, rope, swiglu};

use crate::Config;
use crate::params::{Init, ParamBuilder};

/// The standard deviation of every input-side weight matrix at init.
pub(crate) const INIT_STD: f32 = 0.02;

/// The rotary tables for the positions of one forward pass, shared by all layers.
#[derive(Debug)]
pub(crate) struct RopeTables {
    pub(crate) cos: Tensor,
    pub(crate) sin: Tensor,
}

/// The keys and values one layer has seen so far during generation, (b, t, n_kv_heads, head_dim).
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

impl LayerCache {
    /// Appends this step's keys and values and returns all of them.
    fn append(&mut self, k: Tensor, v: Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (k, v) = match self.kv.take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 1)?, Tensor::cat(&[&pv, &v], 1)?),
        };
        // Detached: generation needs no gradients, and a tracked cache would pin every past step's graph.
        self.kv = Some((k.detach(), v.detach()));
        Ok((k, v))
    }
}

/// A decoder layer's weights and sizes.
#[derive(Debug)]
pub(crate) struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    mlp_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    eps: f32,
}

impl Block {
    /// Creates layer `index` of `cfg`, named `layers.{index:0w}.…` with `w` from `cfg.n_layers`.
    pub(crate) fn new(cfg: &Config, index: usize, pb: &mut ParamBuilder) -> crate::Result<Self> {
        let width = layer_index_width(cfg.n_layers);
        let prefix = format!("layers.{index:0width$}");
        let (d, kv, ff) = (cfg.d_model, cfg.kv_dim(), cfg.d_ff);
        // GPT-2's scaled init for the projections that write into the residual stream.
        let out_std = INIT_STD / (2.0 * cfg.n_layers as f32).sqrt();
        let mut linear = |name: &str, out: usize, inp: usize, std: f32| -> crate::Result<Linear> {
            let w = pb.param(
                format!("{prefix}.{name}.weight"),
                &[out, inp],
                Init::Normal(std),
            )?;
            Ok(Linear::new(w, None))
        };
        let q = linear("attn.q", d, d, INIT_STD)?;
        let k = linear("attn.k", kv, d, INIT_STD)?;
        let v = linear("attn.v", kv, d, INIT_STD)?;
        let o = linear("attn.o", d, d, out_std)?;
        let gate = linear("mlp.gate", ff, d, INIT_STD)?;
        let up = linear("mlp.up", ff, d, INIT_STD)?;
        let down = linear("mlp.down", d, ff, out_std)?;
        let attn_norm = pb.param(format!("{prefix}.attn_norm.weight"), &[d], Init::Ones)?;
        let mlp_norm = pb.param(format!("{prefix}.mlp_norm.weight"), &[d], Init::Ones)?;
        Ok(Self {
            attn_norm,
            q,
            k,
            v,
            o,
            mlp_norm,
            gate,
            up,
            down,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim(),
            eps: cfg.norm_eps,
        })
    }

    /// Runs the layer on `x` (b·t, d) holding `b` rows of `t` positions; with a cache, the
    /// positions follow the cached ones and this step's keys and values are appended.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        (b, t): (usize, usize),
        rope_tables: &RopeTables,
        cache: Option<&mut LayerCache>,
    ) -> candle_core::Result<Tensor> {
        let h = self.attention(
            &rms_norm(x, &self.attn_norm, self.eps)?,
            (b, t),
            rope_tables,
            cache,
        )?;
        let x = (x + h)?;
        let h = rms_norm(&x, &self.mlp_norm, self.eps)?;
        let h = self
            .down
            .forward(&swiglu(&self.gate.forward(&h)?, &self.up.forward(&h)?)?)?;
        x + h
    }

    fn attention(
        &self,
        x: &Tensor,
        (b, t): (usize, usize),
        rope_tables: &RopeTables,
        cache: Option<&mut LayerCache>,
    ) -> candle_core::Result<Tensor> {
        let (h, hkv, dh) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let (cos, sin) = (&rope_tables.cos, &rope_tables.sin);
        // (b·t, h·dh) reshapes to (b, t, h, dh) without a copy: the layout the kernels want.
        let q = rope(&self.q.forward(x)?.reshape((b, t, h, dh))?, cos, sin)?;
        let k = rope(&self.k.forward(x)?.reshape((b, t, hkv, dh))?, cos, sin)?;
        let v = self.v.forward(x)?.reshape((b, t, hkv, dh))?;
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v)?,
            None => (k, v),
        };
        let y = causal_attention(&q, &k, &v, 1.0 / (dh as f32).sqrt())?;
        self.o.forward(&y.reshape((b * t, h * dh))?)
    }
}

/// Digits in the zero-padded layer index: at least 2, enough for the last layer.
pub(crate) fn layer_index_width(n_layers: usize) -> usize {
    n_layers.saturating_sub(1).to_string().len().max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_sort_naturally() {
        assert_eq!(layer_index_width(1), 2);
        assert_eq!(layer_index_width(100), 2);
        assert_eq!(layer_index_width(101), 3);
    }
}
