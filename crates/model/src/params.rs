//! Named parameters in canonical (sorted-name) order: seeded init, flattening, loading, gradients.
//!
//! Every parameter draws its initial values from its own ChaCha stream, keyed by the model seed
//! and the parameter's name. So a pipeline stage built with the same seed holds exactly the
//! weights of the same layers of the whole model, whatever else the stage contains.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Storage, Tensor, Var};
use neuroshard_primitives::Hash;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::{Error, Result};

/// How a parameter's initial values are drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Init {
    /// Independent normal samples with mean 0 and this standard deviation.
    Normal(f32),
    /// All ones (norm scales).
    Ones,
}

/// Creates parameters with seeded values and records them under their names.
#[derive(Debug)]
pub(crate) struct ParamBuilder {
    seed: u64,
    device: Device,
    entries: Vec<(String, Var)>,
}

impl ParamBuilder {
    /// A builder whose parameters derive from `seed`.
    pub(crate) fn new(seed: u64, device: &Device) -> Self {
        Self {
            seed,
            device: device.clone(),
            entries: Vec::new(),
        }
    }

    /// Creates the parameter `name` of `shape`, returning its tensor (shared with the record).
    pub(crate) fn param(&mut self, name: String, shape: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = match init {
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(name_stream(&name));
                let normal = Normal::new(0.0f32, std).map_err(|_| Error::BadFloat {
                    field: "init std",
                    value: std,
                })?;
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            }
        };
        let var = Var::from_vec(values, shape, &self.device)?;
        let tensor = var.as_tensor().clone();
        self.entries.push((name, var));
        Ok(tensor)
    }

    /// The recorded parameters in canonical order.
    pub(crate) fn finish(mut self) -> Params {
        Params::sort_canonical(&mut self.entries);
        Params {
            entries: self.entries,
        }
    }
}

/// The ChaCha stream of a parameter: the first 8 bytes of the BLAKE3 hash of its name.
fn name_stream(name: &str) -> u64 {
    let hash = Hash::of(name.as_bytes());
    u64::from_le_bytes(hash.0[..8].try_into().expect("a hash has at least 8 bytes"))
}

/// A model's (or stage's) parameters, sorted by name.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    entries: Vec<(String, Var)>,
}

impl Params {
    /// Puts named entries in canonical order: sorted by name.
    pub(crate) fn sort_canonical<T>(entries: &mut [(String, T)]) {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
    }

    /// Total number of scalars.
    pub(crate) fn n_params(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Names and shapes, in canonical order.
    pub(crate) fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.entries
            .iter()
            .map(|(n, v)| (n.clone(), v.dims().to_vec()))
            .collect()
    }

    /// All values, concatenated in canonical order.
    pub(crate) fn flat(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.n_params());
        for (_, var) in &self.entries {
            extend_from(&mut out, var.as_tensor())?;
        }
        Ok(out)
    }

    /// Overwrites all values from one vector in canonical order.
    pub(crate) fn set_flat(&self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.n_params() {
            return Err(Error::FlatLength {
                expected: self.n_params(),
                got: flat.len(),
            });
        }
        let mut offset = 0;
        for (_, var) in &self.entries {
            let n = var.elem_count();
            let src = Tensor::from_slice(&flat[offset..offset + n], var.shape(), var.device())?;
            var.set(&src)?;
            offset += n;
        }
        Ok(())
    }

    /// Copies of the parameters with their names, in canonical order.
    pub(crate) fn named_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let copy = |(n, v): &(String, Var)| Ok((n.clone(), v.as_tensor().detach().copy()?));
        self.entries.iter().map(copy).collect()
    }

    /// Overwrites every parameter from `tensors`, which must hold exactly our names and shapes.
    pub(crate) fn load_named(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mut unknown: Vec<&String> = tensors
            .keys()
            .filter(|k| self.entries.binary_search_by(|(n, _)| n.cmp(k)).is_err())
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            return Err(Error::UnexpectedTensor {
                name: (*name).clone(),
            });
        }
        for (name, var) in &self.entries {
            let src = tensors
                .get(name)
                .ok_or_else(|| Error::MissingTensor { name: name.clone() })?;
            if src.dims() != var.dims() {
                return Err(Error::ShapeMismatch {
                    name: name.clone(),
                    expected: var.dims().to_vec(),
                    got: src.dims().to_vec(),
                });
            }
        }
        for (name, var) in &self.entries {
            let src = tensors[name]
                .to_dtype(DType::F32)?
                .to_device(var.device())?;
            var.set(&src)?;
        }
        Ok(())
    }

    /// The gradients of all parameters from `grads`, concatenated in canonical order; a parameter
    /// the objective does not depend on contributes zeros.
    pub(crate) fn flat_grads(&self, grads: &GradStore) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.n_params());
        for (_, var) in &self.entries {
            match grads.get(var.as_tensor()) {
                Some(g) => extend_from(&mut out, g)?,
                None => out.resize(out.len() + var.elem_count(), 0.0),
            }
        }
        Ok(out)
    }
}

/// Appends `t`'s values (row-major) to `out`: on the CPU straight from the (contiguous) storage,
/// so a transposed weight gradient costs one copy into contiguous order and one into `out`.
fn extend_from(out: &mut Vec<f32>, t: &Tensor) -> Result<()> {
    let t = t.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(cpu), Some((start, end))) => {
            out.extend_from_slice(&cpu.as_slice::<f32>()?[start..end]);
        }
        _ => out.extend(t.flatten_all()?.to_vec1::<f32>()?),
    }
    Ok(())
}
