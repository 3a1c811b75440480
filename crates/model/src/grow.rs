//! Function-preserving depth growth: a stage (or the whole model) gains decoder layers on top of
//! its last one, and its output does not change.
//!
//! # Where the new layers go
//!
//! At the end of a stage: the whole model (or a pipeline's head stage) gains the indices
//! `n_layers..n_layers'`, between the last old layer and the head, so the old layers keep their
//! indices (and so their names, and their places in the canonical order). A pipeline that
//! spreads a growth over its stages (`docs/replan.md`) puts new layers at the end of any stage
//! ([`Stage::grown_to`]); the stages after it only relabel: their layers shift by the layers
//! inserted before them, and their parameters and canonical order stay as they were, since a
//! layer computes the same whatever its index. Interleaving (G_stack's stacking, MSG's masked
//! blocks) would renumber every layer and move every stage's boundary.
//!
//! # Why the new layers are the identity, and how they still learn
//!
//! A pre-norm layer adds `attn(norm(x))` and `mlp(norm(x))` to the residual stream, so a layer
//! whose two branches output zero passes `x` through. Zeroing the output projections (`attn.o`
//! and `mlp.down`) does that, but then the first step gives no gradient to `q`, `k`, `v`, `gate`
//! and `up`: every path to them runs through a zero matrix. We use a mirrored init instead
//! (the cancellation MSG and Net2Net use): the second half of the new layer's units copies the
//! first half, and the output projection's columns for the second half are the negated first
//! half, so the two halves cancel.
//!
//! - Attention: kv heads `hkv/2..hkv` copy kv heads `0..hkv/2`, query heads `h/2..h` copy
//!   `0..h/2` (query head `j` reads kv head `j / (h/hkv)`, so the copies read the copies),
//!   and `attn.o`'s columns for heads `h/2..h` are minus those for `0..h/2`.
//! - MLP: `gate` and `up` rows `ff/2..ff` copy rows `0..ff/2`; `down`'s columns `ff/2..ff`
//!   are minus columns `0..ff/2`.
//!
//! Each half then gets the opposite gradient of its twin, so the first step breaks the symmetry
//! and every weight matrix of the new layer has a nonzero gradient on it. The two norm scales
//! cannot: the branch is a function of `norm_scale ⊙ x̂` that is identically zero, so its
//! derivative by the scale is zero; they learn from the second step on. The sums cancel up to
//! rounding, not bit for bit (a matrix product does not pair the terms), so the logits move by
//! rounding error (1.2e-7 at most in the tests, one ulp of a logit). With an odd `n_kv_heads` (or odd
//! `d_ff`) the attention (or MLP) cannot be halved and falls back to a zero output projection.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::Tensor;

use crate::block::layer_index_width;
use crate::stage::{Stage, StageSpec};
use crate::{Config, Error, NeuroLlm, Result};

impl Stage {
    /// This stage in the model grown to `n_layers`: a stage with the head gains the layers
    /// `cfg.n_layers..n_layers`, every other stage only learns the new size ([`Stage::grown_to`]
    /// with the range that gives). Its output is unchanged up to rounding.
    pub fn grown(&self, n_layers: usize, seed: u64) -> Result<Stage> {
        let spec = self.spec();
        let layers = match spec.head {
            true => spec.layers.start..n_layers.max(spec.layers.start),
            false => spec.layers.clone(),
        };
        self.grown_to(n_layers, layers, seed)
    }

    /// This stage in the model grown to `n_layers`, holding `layers`: a range that starts where
    /// the stage's starts or later (the stages before it grew) and is at least as long. Its
    /// layers keep their order, relabelled to start at `layers.start`; the layers after them are
    /// new (mirrored, see the module docs; their other weights drawn from `seed` like any
    /// layer's). Its output is unchanged up to rounding.
    pub fn grown_to(&self, n_layers: usize, layers: Range<usize>, seed: u64) -> Result<Stage> {
        let old = self.config();
        let spec = self.spec();
        if n_layers < old.n_layers {
            return Err(Error::CannotShrink {
                from: old.n_layers,
                to: n_layers,
            });
        }
        if layers.start < spec.layers.start || layers.len() < spec.layers.len() {
            return Err(Error::BadStage {
                spec: format!("{spec:?} grown to {layers:?}"),
                reason: "a grown stage keeps its layers: it starts where it did or later and is at least as long",
            });
        }
        let cfg = Config {
            n_layers,
            ..old.clone()
        };
        let new_spec = StageSpec {
            layers: layers.clone(),
            ..spec.clone()
        };
        let mut grown = Stage::new(&cfg, new_spec, seed, self.device())?;
        let mut tensors: HashMap<String, Tensor> = grown.named_tensors()?.into_iter().collect();
        let (from, to) = (self.layer_names(), grown.layer_names());
        for (name, tensor) in self.named_tensors()? {
            tensors.insert(relabel(&name, from, to), tensor);
        }
        let width = layer_index_width(n_layers);
        for index in layers.start + spec.layers.len()..layers.end {
            mirror_layer(&cfg, &format!("layers.{index:0width$}"), &mut tensors)?;
        }
        grown.load_named(&tensors)?;
        Ok(grown)
    }

    /// Its first layer's index and the width its layer names give indices: what
    /// [`relabel`] maps a name by.
    fn layer_names(&self) -> (usize, usize) {
        (
            self.spec().layers.start,
            layer_index_width(self.config().n_layers),
        )
    }

    /// `values`, flat in `before`'s canonical order (optimizer moments, an outer momentum),
    /// laid out in this grown stage's order: each parameter of `before` keeps its values, the
    /// new layers get zeros.
    pub fn carry_from(&self, before: &Stage, values: &[f32]) -> Result<Vec<f32>> {
        if values.len() != before.n_params() {
            return Err(Error::FlatLength {
                expected: before.n_params(),
                got: values.len(),
            });
        }
        let (from, to) = (before.layer_names(), self.layer_names());
        let mut old: HashMap<String, &[f32]> = HashMap::new();
        let mut offset = 0;
        for (name, shape) in before.param_shapes() {
            let n: usize = shape.iter().product();
            old.insert(relabel(&name, from, to), &values[offset..offset + n]);
            offset += n;
        }
        let mut out = Vec::with_capacity(self.n_params());
        for (name, shape) in self.param_shapes() {
            match old.get(&name) {
                Some(v) => out.extend_from_slice(v),
                None => out.resize(out.len() + shape.iter().product::<usize>(), 0.0),
            }
        }
        Ok(out)
    }
}

impl NeuroLlm {
    /// The model grown to `n_layers` by [`Stage::grown`]: new layers on top, output unchanged.
    pub fn grown(&self, n_layers: usize, seed: u64) -> Result<NeuroLlm> {
        Ok(NeuroLlm::from_stage(self.stage().grown(n_layers, seed)?))
    }

    /// [`Stage::carry_from`] for the whole model.
    pub fn carry_from(&self, before: &NeuroLlm, values: &[f32]) -> Result<Vec<f32>> {
        self.stage().carry_from(before.stage(), values)
    }
}

/// `layers.{i:0w}.rest` of a stage whose layers start at `from = (start, w)` → the name of
/// the same layer of a stage starting at `to = (start', w')`: `layers.{i − start + start':0w'}.rest`;
/// other names unchanged.
fn relabel(name: &str, from: (usize, usize), to: (usize, usize)) -> String {
    let Some(rest) = name.strip_prefix("layers.") else {
        return name.to_owned();
    };
    let (index, tail) = rest.split_at(from.1.min(rest.len()));
    let moved = index
        .parse::<usize>()
        .ok()
        .and_then(|i| i.checked_sub(from.0));
    match moved.and_then(|i| i.checked_add(to.0)) {
        Some(i) => format!("layers.{i:0w$}{tail}", w = to.1),
        None => name.to_owned(),
    }
}

/// Makes the layer `prefix` the identity by the mirrored init (module docs).
fn mirror_layer(cfg: &Config, prefix: &str, tensors: &mut HashMap<String, Tensor>) -> Result<()> {
    let mut update = |name: &str, f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
        let key = format!("{prefix}.{name}.weight");
        let tensor = tensors
            .get(&key)
            .ok_or_else(|| Error::MissingTensor { name: key.clone() })?;
        let new = f(tensor)?;
        tensors.insert(key, new);
        Ok::<_, Error>(())
    };
    match cfg.n_kv_heads.is_multiple_of(2) {
        true => {
            for name in ["attn.q", "attn.k", "attn.v"] {
                update(name, &|w| copy_first_half(w, 0))?;
            }
            update("attn.o", &|w| negate_first_half(w, 1))?;
        }
        false => update("attn.o", &|w| w.zeros_like())?,
    }
    match cfg.d_ff.is_multiple_of(2) {
        true => {
            for name in ["mlp.gate", "mlp.up"] {
                update(name, &|w| copy_first_half(w, 0))?;
            }
            update("mlp.down", &|w| negate_first_half(w, 1))?;
        }
        false => update("mlp.down", &|w| w.zeros_like())?,
    }
    Ok(())
}

/// `w` with its second half along `dim` replaced by a copy of its first half.
fn copy_first_half(w: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let first = w.narrow(dim, 0, w.dim(dim)? / 2)?;
    Tensor::cat(&[&first, &first], dim)
}

/// `w` with its second half along `dim` replaced by minus its first half.
fn negate_first_half(w: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let first = w.narrow(dim, 0, w.dim(dim)? / 2)?;
    Tensor::cat(&[&first, &first.neg()?], dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_are_rewritten_to_the_new_width_and_start() {
        assert_eq!(
            relabel("layers.07.attn.q.weight", (0, 2), (0, 3)),
            "layers.007.attn.q.weight"
        );
        assert_eq!(
            relabel("layers.99.mlp.up.weight", (0, 2), (0, 2)),
            "layers.99.mlp.up.weight"
        );
        assert_eq!(
            relabel("layers.04.mlp.up.weight", (3, 2), (5, 3)),
            "layers.006.mlp.up.weight",
            "a stage after one that grew by two"
        );
        assert_eq!(relabel("head.weight", (3, 2), (5, 3)), "head.weight");
    }
}
